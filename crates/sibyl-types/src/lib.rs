//! CQL data types and values: their native-protocol serialized form, Cassandra's comparison
//! order, an order-preserving byte encoding for clustering keys, literal parsing, and the
//! Murmur3 partitioner token. Knows nothing of the network, the parser or storage.

mod cqltype;
mod value;

pub use cqltype::{CqlType, UdtDef};
pub use value::{Duration, Value};

pub mod clustering;
pub mod murmur3;
pub mod literal;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum TypeError {
    /// Message in Cassandra's wording, e.g. "Expected 4 or 0 byte int (3)".
    #[error("{0}")]
    Invalid(String),
}
