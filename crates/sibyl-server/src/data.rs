//! Where statements read data from: the local engine on a ring of one, or the coordinator that
//! asks replicas at the request's consistency level. Statement code sees only this trait.

use std::ops::Bound;

use sibyl_storage::model::{PartitionKey, PartitionView, Slice, TableId};

use crate::error::QueryResult;

pub trait DataSource: Sync {
    /// The live view of one partition's slice.
    fn read(
        &self,
        table: TableId,
        key: &PartitionKey,
        slice: &Slice,
        now_secs: i64,
    ) -> QueryResult<Option<PartitionView>>;
    /// Live partitions in token order from `from` up to token `to`, at most `max`.
    fn scan(
        &self,
        table: TableId,
        from: Bound<PartitionKey>,
        to: Bound<i64>,
        slice: &Slice,
        max: usize,
        now_secs: i64,
    ) -> QueryResult<Vec<PartitionView>>;
}

impl DataSource for sibyl_storage::Engine {
    fn read(
        &self,
        table: TableId,
        key: &PartitionKey,
        slice: &Slice,
        now_secs: i64,
    ) -> QueryResult<Option<PartitionView>> {
        Ok(sibyl_storage::Engine::read(
            self, table, key, slice, now_secs,
        )?)
    }
    fn scan(
        &self,
        table: TableId,
        from: Bound<PartitionKey>,
        to: Bound<i64>,
        slice: &Slice,
        max: usize,
        now_secs: i64,
    ) -> QueryResult<Vec<PartitionView>> {
        Ok(sibyl_storage::Engine::scan(
            self, table, from, to, slice, max, now_secs,
        )?)
    }
}
