//! The storage engine: commit log, memtables, SSTables, compaction, with Cassandra's cell
//! semantics. Knows nothing of the network, CQL text or the protocol.

pub mod model;
