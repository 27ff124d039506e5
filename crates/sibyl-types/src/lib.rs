//! CQL data types and values: their native-protocol serialized form, Cassandra's comparison
//! order, an order-preserving byte encoding for clustering keys, literal parsing, and the
//! Murmur3 partitioner token. Knows nothing of the network, the parser or storage.

mod cqltype;
mod value;

pub use cqltype::{CqlType, UdtDef};
pub use value::{
    read_signed_vint, read_unsigned_vint, split_collection, split_map, split_tuple, split_vector,
    write_signed_vint, write_unsigned_vint, Duration, MapEntry, Value, MAX_TIME_NANOS,
};

pub mod clustering;
pub mod json;
pub mod literal;
pub mod murmur3;
pub mod timeuuid;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum TypeError {
    /// Message in Cassandra's wording, e.g. "Expected 4 or 0 byte int (3)".
    #[error("{0}")]
    Invalid(String),
}

impl TypeError {
    /// Shorthand for `TypeError::Invalid(msg.into())`.
    pub fn invalid(msg: impl Into<String>) -> TypeError {
        TypeError::Invalid(msg.into())
    }
}
