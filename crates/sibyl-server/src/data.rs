//! Where statements read data from: the local engine on a ring of one, or the coordinator that
//! asks replicas at the request's consistency level. Statement code sees only this trait.

use std::ops::Bound;

use serde::{Deserialize, Serialize};
use sibyl_index::{RowKey, TermQuery};
use sibyl_storage::model::{PartitionKey, PartitionView, Slice, TableId};

use crate::error::{QueryError, QueryResult};

/// The slice holding just the row with encoded clustering `ck` (for a table without
/// clustering columns, `ck` is empty and the partition's only row is meant).
pub fn one_row(ck: &bytes::Bytes) -> Slice {
    let ranges = if ck.is_empty() {
        vec![(Bound::Unbounded, Bound::Unbounded)]
    } else {
        vec![(
            Bound::Included(ck.clone()),
            Bound::Excluded(bytes::Bytes::from(sibyl_types::clustering::prefix_end(ck))),
        )]
    };
    Slice {
        ranges,
        reversed: false,
        limit: Some(1),
    }
}

/// What an index is asked for: rows whose indexed value matches, or rows near a vector.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum IndexLookup {
    Eq(bytes::Bytes),
    Range(Bound<bytes::Bytes>, Bound<bytes::Bytes>),
    Nearest { vector: Vec<f32>, k: usize },
}

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
    /// Candidate rows from a storage-attached index (to be re-read and re-checked).
    fn index_rows(
        &self,
        table: TableId,
        index: &str,
        lookup: &IndexLookup,
    ) -> QueryResult<Vec<RowKey>>;
}

/// The node's own data: the engine plus its indexes (a ring of one, or a replica's share).
/// Built by `Node::local_data`.
pub struct LocalData<'a> {
    pub engine: &'a sibyl_storage::Engine,
    pub indexes: &'a crate::indexes::Indexes,
}

impl LocalData<'_> {
    pub fn lookup(
        &self,
        table: TableId,
        index: &str,
        lookup: &IndexLookup,
    ) -> QueryResult<Vec<RowKey>> {
        let Some(ix) = self.indexes.index(table, index) else {
            return Err(QueryError::Invalid(format!(
                "Index '{index}' does not exist"
            )));
        };
        if !ix.is_built() {
            return Err(QueryError::Invalid(format!(
                "Index '{index}' is not yet queryable: its build is still running"
            )));
        }
        Ok(match lookup {
            IndexLookup::Eq(b) => ix.search_terms(&TermQuery::Eq(b.clone())),
            IndexLookup::Range(lo, hi) => {
                ix.search_terms(&TermQuery::Range(lo.clone(), hi.clone()))
            }
            IndexLookup::Nearest { vector, k } => ix
                .search_vectors(vector, *k)
                .map_err(|e| QueryError::Server(e.to_string()))?,
        })
    }
}

impl DataSource for LocalData<'_> {
    fn read(
        &self,
        table: TableId,
        key: &PartitionKey,
        slice: &Slice,
        now_secs: i64,
    ) -> QueryResult<Option<PartitionView>> {
        self.engine
            .read(table, key, slice, now_secs)
            .map_err(Into::into)
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
        self.engine
            .scan(table, from, to, slice, max, now_secs)
            .map_err(Into::into)
    }
    fn index_rows(
        &self,
        table: TableId,
        index: &str,
        lookup: &IndexLookup,
    ) -> QueryResult<Vec<RowKey>> {
        self.lookup(table, index, lookup)
    }
}
