//! Storage-attached indexes (SAI) and vector search: per-source segments (one per memtable and
//! one per SSTable, persisted next to it) of term postings and HNSW graphs. Segments only
//! nominate candidate rows; callers re-read every candidate through the normal read path, so
//! overwritten, deleted and expired rows are never returned even while a segment still lists
//! them. Knows storage (it follows a table's sources) but nothing of CQL text or the network.

mod analyzer;
mod segment;
mod table;
pub mod vector;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sibyl_storage::PartitionKey;
use sibyl_types::CqlType;

pub use analyzer::Analyzer;
pub use table::{ColumnIndex, IndexStatus, TableIndexes};
pub use vector::{GraphParams, Similarity};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt index component: {0}")]
    Corrupt(String),
    #[error("vector graph: {0}")]
    Graph(String),
    #[error(transparent)]
    Storage(#[from] sibyl_storage::StorageError),
}

/// One row of a table: the partition and the row's encoded clustering (empty for the static
/// row and for tables without clustering columns).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RowKey {
    pub partition: PartitionKey,
    pub clustering: Bytes,
}

/// What of the column an index holds (`c`, `values(c)`, `keys(c)`, `full(c)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The value of a regular column, or the elements of a non-frozen list/set/map's values.
    Values,
    /// The keys of a non-frozen map.
    Keys,
    /// A frozen collection as a whole.
    Full,
}

/// An index as the schema defines it, resolved against the column's type.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexSpec {
    pub name: String,
    /// The column name as storage names it (UTF-8 bytes).
    pub column: Bytes,
    pub column_type: CqlType,
    pub target: Target,
    pub analyzer: Analyzer,
    /// Set for `vector<float, n>` columns.
    pub graph: Option<GraphParams>,
}

/// A term lookup, with values in their serialized CQL form.
#[derive(Debug, Clone)]
pub enum TermQuery {
    Eq(Bytes),
    Range(std::ops::Bound<Bytes>, std::ops::Bound<Bytes>),
}
