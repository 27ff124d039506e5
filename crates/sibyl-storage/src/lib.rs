//! The storage engine: commit log, memtables, SSTables, compaction, with Cassandra's cell
//! semantics. Knows nothing of the network, CQL text or the protocol.

mod cache;
mod codec;
mod commitlog;
mod compaction;
mod engine;
mod error;
mod memtable;
pub mod model;
pub mod names;
mod observer;
mod options;
pub mod partition;
mod partition_index;
mod replica;
pub mod sorted_map;
mod sstable;
mod yielding;

pub use engine::{Engine, SSTableInfo};
pub use error::StorageError;
pub use model::*;
pub use observer::{SSTableRows, TableObserver};
pub use options::{CommitlogSync, CompactionStrategy, Compression, EngineOptions, TableParams};
pub use replica::{is_complete, merge, resolve};
