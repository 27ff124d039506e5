//! The data model shared by the engine's API: Cassandra's cells, rows, partitions and tombstones.
//! Keys are opaque bytes: clustering keys arrive already encoded in an order-preserving byte form
//! (see `sibyl_types::clustering`), so the engine compares them with memcmp.

use std::ops::Bound;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub type TableId = Uuid;

/// A column is named by its bytes (the CQL column name, UTF-8).
pub type ColumnName = Bytes;

/// A partition key: its Murmur3 token and its serialized (possibly composite) key bytes.
/// Partitions are ordered by (token, key bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartitionKey {
    pub token: i64,
    pub key: Bytes,
}

/// When and at what write timestamp something was deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionTime {
    /// Client write timestamp (microseconds) of the deletion.
    pub timestamp: i64,
    /// Server time (seconds since epoch) the deletion was made; drives gc_grace_seconds purges.
    pub local_deletion_time: i64,
}

/// A cell as written: value, or a tombstone when `value` is None.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    pub timestamp: i64,
    /// None: a tombstone. Some: a value (possibly empty bytes).
    pub value: Option<Bytes>,
    /// TTL in seconds (0 = none).
    pub ttl: i32,
    /// For tombstones: local deletion time (seconds). For expiring cells: the expiry time
    /// (seconds since epoch) = write time + ttl. Otherwise 0.
    pub local_deletion_time: i64,
}

/// Row liveness set by INSERT (a row created by INSERT exists even if all its regular
/// columns are null; one created by UPDATE carries no liveness).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LivenessInfo {
    pub timestamp: i64,
    pub ttl: i32,
    /// Expiry time in seconds if ttl > 0, else 0.
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColumnData {
    Simple {
        column: ColumnName,
        cell: Cell,
    },
    /// A non-frozen collection or UDT. `path` is an order-preserving encoding of the element
    /// key (set element, map key, list timeuuid, UDT field index), compared with memcmp.
    Complex {
        column: ColumnName,
        /// Deletes every element written at or before this timestamp (e.g. `SET m = {...}`).
        complex_deletion: Option<DeletionTime>,
        cells: Vec<(Bytes, Cell)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RowUpdate {
    /// Encoded clustering key (empty for tables without clustering columns).
    pub clustering: Bytes,
    pub liveness: Option<LivenessInfo>,
    pub deletion: Option<DeletionTime>,
    pub columns: Vec<ColumnData>,
}

/// A deletion of every row whose clustering key lies in [start, end].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeTombstone {
    pub start: Bound<Bytes>,
    pub end: Bound<Bytes>,
    pub deletion: DeletionTime,
}

/// Everything one statement (or one batch member) changes in one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mutation {
    pub table: TableId,
    pub key: PartitionKey,
    pub partition_deletion: Option<DeletionTime>,
    pub range_tombstones: Vec<RangeTombstone>,
    pub static_row: Option<RowUpdate>,
    pub rows: Vec<RowUpdate>,
}

impl Mutation {
    /// A mutation of partition `key` that changes nothing yet.
    pub fn new(table: TableId, key: PartitionKey) -> Mutation {
        Mutation {
            table,
            key,
            partition_deletion: None,
            range_tombstones: vec![],
            static_row: None,
            rows: vec![],
        }
    }
}

/// Which rows of a partition to read: the union of `ranges` (sorted, non-overlapping),
/// in reverse clustering order when `reversed`, at most `limit` live rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slice {
    pub ranges: Vec<(Bound<Bytes>, Bound<Bytes>)>,
    pub reversed: bool,
    pub limit: Option<usize>,
}

impl Slice {
    pub fn all() -> Self {
        Slice {
            ranges: vec![(Bound::Unbounded, Bound::Unbounded)],
            reversed: false,
            limit: None,
        }
    }
}

/// A live cell as read: tombstones, shadowed and expired data already removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveCell {
    pub value: Bytes,
    pub timestamp: i64,
    pub ttl: i32,
    /// Expiry in seconds since epoch when ttl > 0.
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColumnView {
    Simple(LiveCell),
    /// Live elements in path order (never empty).
    Complex(Vec<(Bytes, LiveCell)>),
}

/// A live row: it has live liveness info or at least one live cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowView {
    pub clustering: Bytes,
    pub liveness: Option<LivenessInfo>,
    /// Live columns sorted by column name.
    pub columns: Vec<(ColumnName, ColumnView)>,
}

/// The merged, live view of one partition for a slice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionView {
    pub key: PartitionKey,
    /// The static row, if it has any live cell.
    pub static_row: Option<RowView>,
    /// Live rows in the slice's order.
    pub rows: Vec<RowView>,
}
