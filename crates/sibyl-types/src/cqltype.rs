use serde::{Deserialize, Serialize};

/// A CQL type as it appears in schema. `Frozen` wraps collections, tuples and UDTs that are frozen.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CqlType {
    Ascii, Bigint, Blob, Boolean, Counter, Date, Decimal, Double, Duration, Float, Inet, Int,
    Smallint, Text, Time, Timestamp, Timeuuid, Tinyint, Uuid, Varint,
    List(Box<CqlType>),
    Set(Box<CqlType>),
    Map(Box<CqlType>, Box<CqlType>),
    Tuple(Vec<CqlType>),
    Udt(UdtDef),
    /// `vector<elem, n>`
    Vector(Box<CqlType>, u32),
    Frozen(Box<CqlType>),
    /// A custom type named by its marshal class.
    Custom(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UdtDef {
    pub keyspace: String,
    pub name: String,
    pub fields: Vec<(String, CqlType)>,
}
