use std::net::IpAddr;

use bigdecimal::BigDecimal;
use num_bigint::BigInt;
use uuid::Uuid;

/// A CQL duration: months, days, nanoseconds (each signed, all with the same sign).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Duration {
    pub months: i32,
    pub days: i32,
    pub nanos: i64,
}

/// A non-null CQL value. Null is `Option::None` wherever a value may be absent.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Ascii(String),
    Bigint(i64),
    Blob(Vec<u8>),
    Boolean(bool),
    Counter(i64),
    /// Days since -5877641-06-23 (unsigned, epoch at 2^31), as on the wire.
    Date(u32),
    Decimal(BigDecimal),
    Double(f64),
    Duration(Duration),
    Float(f32),
    Inet(IpAddr),
    Int(i32),
    Smallint(i16),
    Text(String),
    /// Nanoseconds since midnight.
    Time(i64),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
    Timeuuid(Uuid),
    Tinyint(i8),
    Uuid(Uuid),
    Varint(BigInt),
    List(Vec<Value>),
    Set(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Tuple(Vec<Option<Value>>),
    /// Field values in the UDT's declared order (trailing fields may be missing).
    Udt(Vec<Option<Value>>),
    Vector(Vec<Value>),
    /// A value of a type we do not interpret (custom types), or an empty value
    /// (zero-length bytes) of a type whose normal form is not empty.
    Raw(Vec<u8>),
}
