use std::cmp::Ordering;
use std::net::IpAddr;

use bigdecimal::BigDecimal;
use num_bigint::BigInt;
use uuid::Uuid;

use crate::{CqlType, TypeError};

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

/// Largest valid `time` value: 23:59:59.999999999.
pub const MAX_TIME_NANOS: i64 = 86_399_999_999_999;

fn err<T>(msg: impl Into<String>) -> Result<T, TypeError> {
    Err(TypeError::Invalid(msg.into()))
}

// ---------------------------------------------------------------- vints (Cassandra VIntCoding)

/// Append Cassandra's unsigned vint encoding of `v`.
pub fn write_unsigned_vint(v: u64, out: &mut Vec<u8>) {
    let size = unsigned_vint_size(v);
    if size == 1 {
        out.push(v as u8);
        return;
    }
    let extra = size - 1;
    let mut bytes = [0u8; 9];
    let be = v.to_be_bytes();
    if size == 9 {
        bytes[0] = 0xff;
        bytes[1..].copy_from_slice(&be);
    } else {
        bytes[..size].copy_from_slice(&be[8 - size..]);
        bytes[0] |= !(0xffu8 >> extra);
    }
    out.extend_from_slice(&bytes[..size]);
}

fn unsigned_vint_size(v: u64) -> usize {
    let magnitude = (v | 1).leading_zeros() as usize;
    // 9 - ((magnitude - 1) / 7), as in VIntCoding.computeUnsignedVIntSize
    9 - (magnitude.saturating_sub(1)) / 7
}

/// Read an unsigned vint; returns the value and the number of bytes consumed.
pub fn read_unsigned_vint(b: &[u8]) -> Result<(u64, usize), TypeError> {
    let first = *b
        .first()
        .ok_or_else(|| TypeError::invalid("Not enough bytes for vint"))?;
    let extra = first.leading_ones() as usize;
    if b.len() < 1 + extra {
        return err("Not enough bytes for vint");
    }
    let mut v: u64 = if extra >= 8 {
        0
    } else {
        (first & (0xffu8 >> extra)) as u64
    };
    for &x in &b[1..=extra] {
        v = (v << 8) | x as u64;
    }
    Ok((v, 1 + extra))
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Append Cassandra's signed (zig-zag) vint encoding.
pub fn write_signed_vint(v: i64, out: &mut Vec<u8>) {
    write_unsigned_vint(zigzag(v), out)
}

/// Read a signed vint.
pub fn read_signed_vint(b: &[u8]) -> Result<(i64, usize), TypeError> {
    read_unsigned_vint(b).map(|(v, n)| (unzigzag(v), n))
}

// ---------------------------------------------------------------- helpers

fn write_bytes(out: &mut Vec<u8>, v: Option<&Value>) {
    match v {
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(v) => {
            let start = out.len();
            out.extend_from_slice(&[0, 0, 0, 0]);
            v.serialize(out);
            let len = (out.len() - start - 4) as i32;
            out[start..start + 4].copy_from_slice(&len.to_be_bytes());
        }
    }
}

/// A cursor over collection/tuple bytes with Cassandra-like error messages.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Reader { b, pos: 0 }
    }
    fn remaining(&self) -> usize {
        self.b.len() - self.pos
    }
    fn int(&mut self) -> Result<i32, TypeError> {
        if self.remaining() < 4 {
            return err("Not enough bytes to read size of collection/tuple element");
        }
        let v = i32::from_be_bytes(self.b[self.pos..self.pos + 4].try_into().unwrap());
        self.pos += 4;
        Ok(v)
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], TypeError> {
        if self.remaining() < n {
            return err(format!(
                "Not enough bytes to read a value of length {n} ({} remaining)",
                self.remaining()
            ));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    /// An [int n][n bytes] value; n < 0 is null.
    fn value(&mut self) -> Result<Option<&'a [u8]>, TypeError> {
        let n = self.int()?;
        if n < 0 {
            return Ok(None);
        }
        self.take(n as usize).map(Some)
    }
    fn count(&mut self) -> Result<usize, TypeError> {
        let n = self.int()?;
        if n < 0 {
            return err(format!("Invalid negative collection size {n}"));
        }
        Ok(n as usize)
    }
    fn done(&self, what: &str) -> Result<(), TypeError> {
        if self.remaining() != 0 {
            return err(format!("Unexpected extraneous bytes after {what} value"));
        }
        Ok(())
    }
}

fn fixed<const N: usize>(b: &[u8]) -> [u8; N] {
    b.try_into().unwrap()
}

/// Split a serialized collection (list/set) into its element slices.
pub fn split_collection(bytes: &[u8]) -> Result<Vec<&[u8]>, TypeError> {
    let mut r = Reader::new(bytes);
    let n = r.count()?;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        match r.value()? {
            Some(v) => out.push(v),
            None => return err("null is not supported inside collections"),
        }
    }
    r.done("collection")?;
    Ok(out)
}

/// A map entry as (key bytes, value bytes).
pub type MapEntry<'a> = (&'a [u8], &'a [u8]);

/// Split a serialized map into (key, value) slices.
pub fn split_map(bytes: &[u8]) -> Result<Vec<MapEntry<'_>>, TypeError> {
    let mut r = Reader::new(bytes);
    let n = r.count()?;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let k = r
            .value()?
            .ok_or_else(|| TypeError::invalid("null is not supported inside collections"))?;
        let v = r
            .value()?
            .ok_or_else(|| TypeError::invalid("null is not supported inside collections"))?;
        out.push((k, v));
    }
    r.done("map")?;
    Ok(out)
}

/// Split a serialized tuple/UDT into component slices (`None` = null). Fewer components than
/// types may be present; more is an error.
pub fn split_tuple(n_types: usize, bytes: &[u8]) -> Result<Vec<Option<&[u8]>>, TypeError> {
    let mut r = Reader::new(bytes);
    let mut out = Vec::new();
    while r.remaining() > 0 {
        if out.len() >= n_types {
            return err(format!(
                "Expected {n_types} components for tuple/UDT, got more (extraneous bytes)"
            ));
        }
        out.push(r.value()?);
    }
    Ok(out)
}

/// Split a serialized vector into its element slices.
pub fn split_vector<'a>(
    elem: &CqlType,
    dim: u32,
    bytes: &'a [u8],
) -> Result<Vec<&'a [u8]>, TypeError> {
    let mut out = Vec::with_capacity(dim as usize);
    if let Some(len) = elem.value_fixed_length() {
        let expected = len * dim as usize;
        if bytes.len() != expected {
            return err(format!(
                "Expected {expected} bytes for vector of {dim} elements of size {len}, got {}",
                bytes.len()
            ));
        }
        if len == 0 {
            out.resize(dim as usize, &bytes[..0]);
            return Ok(out);
        }
        return Ok(bytes.chunks(len).collect());
    }
    let mut pos = 0;
    for _ in 0..dim {
        let (len, n) = read_unsigned_vint(&bytes[pos..]).map_err(|_| {
            TypeError::invalid(format!(
                "Not enough bytes to read a vector<{}, {dim}>",
                elem.cql_name()
            ))
        })?;
        pos += n;
        let len = len as usize;
        if bytes.len() - pos < len {
            return err(format!(
                "Not enough bytes to read a vector<{}, {dim}>",
                elem.cql_name()
            ));
        }
        out.push(&bytes[pos..pos + len]);
        pos += len;
    }
    if pos != bytes.len() {
        return err(format!(
            "Unexpected {} extraneous bytes after vector<{}, {dim}> value",
            bytes.len() - pos,
            elem.cql_name()
        ));
    }
    Ok(out)
}

fn uuid_version(b: &[u8]) -> u8 {
    b[6] >> 4
}

// ---------------------------------------------------------------- impl Value

impl Value {
    /// Native protocol (v4+) value bytes, without the outer `[bytes]` length.
    pub fn serialize(&self, out: &mut Vec<u8>) {
        match self {
            Value::Ascii(s) | Value::Text(s) => out.extend_from_slice(s.as_bytes()),
            Value::Bigint(v) | Value::Counter(v) | Value::Timestamp(v) | Value::Time(v) => {
                out.extend_from_slice(&v.to_be_bytes())
            }
            Value::Blob(b) | Value::Raw(b) => out.extend_from_slice(b),
            Value::Boolean(b) => out.push(*b as u8),
            Value::Date(d) => out.extend_from_slice(&d.to_be_bytes()),
            Value::Decimal(d) => {
                let (unscaled, scale) = d.as_bigint_and_exponent();
                out.extend_from_slice(&(scale as i32).to_be_bytes());
                out.extend_from_slice(&unscaled.to_signed_bytes_be());
            }
            Value::Double(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::Float(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::Duration(d) => {
                write_signed_vint(d.months as i64, out);
                write_signed_vint(d.days as i64, out);
                write_signed_vint(d.nanos, out);
            }
            Value::Inet(IpAddr::V4(a)) => out.extend_from_slice(&a.octets()),
            Value::Inet(IpAddr::V6(a)) => out.extend_from_slice(&a.octets()),
            Value::Int(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::Smallint(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::Tinyint(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::Timeuuid(u) | Value::Uuid(u) => out.extend_from_slice(u.as_bytes()),
            Value::Varint(v) => out.extend_from_slice(&v.to_signed_bytes_be()),
            Value::List(vs) | Value::Set(vs) => {
                out.extend_from_slice(&(vs.len() as i32).to_be_bytes());
                for v in vs {
                    write_bytes(out, Some(v));
                }
            }
            Value::Map(kvs) => {
                out.extend_from_slice(&(kvs.len() as i32).to_be_bytes());
                for (k, v) in kvs {
                    write_bytes(out, Some(k));
                    write_bytes(out, Some(v));
                }
            }
            Value::Tuple(vs) | Value::Udt(vs) => {
                for v in vs {
                    write_bytes(out, v.as_ref());
                }
            }
            Value::Vector(vs) => {
                // Fixed-length elements are packed; others carry an unsigned vint length.
                let fixed = vs.first().and_then(|v| v.fixed_length_hint());
                for v in vs {
                    if fixed.is_some() {
                        v.serialize(out);
                    } else {
                        let mut tmp = Vec::new();
                        v.serialize(&mut tmp);
                        write_unsigned_vint(tmp.len() as u64, out);
                        out.extend_from_slice(&tmp);
                    }
                }
            }
        }
    }

    /// Serialized bytes as a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.serialize(&mut v);
        v
    }

    /// Whether this value's type has a fixed serialized length (used for vector packing when
    /// no type is at hand). Matches `CqlType::value_fixed_length` for the value's type.
    fn fixed_length_hint(&self) -> Option<usize> {
        match self {
            Value::Boolean(_) => Some(1),
            Value::Int(_) | Value::Float(_) | Value::Date(_) => Some(4),
            Value::Bigint(_)
            | Value::Counter(_)
            | Value::Double(_)
            | Value::Timestamp(_)
            | Value::Time(_) => Some(8),
            Value::Uuid(_) | Value::Timeuuid(_) => Some(16),
            Value::Vector(vs) => {
                let first = vs.first()?.fixed_length_hint()?;
                Some(first * vs.len())
            }
            _ => None,
        }
    }

    /// Serialize for a known type: exact for vectors (whose packing depends on the element type)
    /// and for `Raw` values.
    pub fn serialize_as(&self, ty: &CqlType, out: &mut Vec<u8>) {
        match (ty.unfrozen(), self) {
            (CqlType::Vector(elem, _), Value::Vector(vs)) => {
                let fixed = elem.value_fixed_length().is_some();
                for v in vs {
                    if fixed {
                        v.serialize_as(elem, out);
                    } else {
                        let mut tmp = Vec::new();
                        v.serialize_as(elem, &mut tmp);
                        write_unsigned_vint(tmp.len() as u64, out);
                        out.extend_from_slice(&tmp);
                    }
                }
            }
            (CqlType::List(e) | CqlType::Set(e), Value::List(vs) | Value::Set(vs)) => {
                out.extend_from_slice(&(vs.len() as i32).to_be_bytes());
                for v in vs {
                    let mut tmp = Vec::new();
                    v.serialize_as(e, &mut tmp);
                    out.extend_from_slice(&(tmp.len() as i32).to_be_bytes());
                    out.extend_from_slice(&tmp);
                }
            }
            (CqlType::Map(kt, vt), Value::Map(kvs)) => {
                out.extend_from_slice(&(kvs.len() as i32).to_be_bytes());
                for (k, v) in kvs {
                    for (t, x) in [(kt, k), (vt, v)] {
                        let mut tmp = Vec::new();
                        x.serialize_as(t, &mut tmp);
                        out.extend_from_slice(&(tmp.len() as i32).to_be_bytes());
                        out.extend_from_slice(&tmp);
                    }
                }
            }
            (CqlType::Tuple(ts), Value::Tuple(vs)) => serialize_components(ts.iter(), vs, out),
            (CqlType::Udt(u), Value::Udt(vs)) => {
                serialize_components(u.fields.iter().map(|(_, t)| t), vs, out)
            }
            _ => self.serialize(out),
        }
    }

    /// Parse native-protocol value bytes of type `ty`, validating them as Cassandra does.
    pub fn deserialize(ty: &CqlType, b: &[u8]) -> Result<Value, TypeError> {
        use CqlType as T;
        let ty = ty.unfrozen();
        if b.is_empty() && empty_is_raw(ty) {
            return Ok(Value::Raw(Vec::new()));
        }
        Ok(match ty {
            T::Ascii => {
                if let Some(&c) = b.iter().find(|&&c| c > 127) {
                    return err(format!("Invalid byte for ascii: {}", c as i8));
                }
                Value::Ascii(String::from_utf8(b.to_vec()).expect("ascii"))
            }
            T::Text => match std::str::from_utf8(b) {
                Ok(s) => Value::Text(s.to_string()),
                Err(_) => return err("String didn't validate."),
            },
            T::Blob => Value::Blob(b.to_vec()),
            T::Custom(_) => Value::Raw(b.to_vec()),
            T::Int => {
                if b.len() != 4 {
                    return err(format!("Expected 4 or 0 byte int ({})", b.len()));
                }
                Value::Int(i32::from_be_bytes(fixed(b)))
            }
            T::Bigint | T::Counter => {
                if b.len() != 8 {
                    return err(format!("Expected 8 or 0 byte long ({})", b.len()));
                }
                let v = i64::from_be_bytes(fixed(b));
                if matches!(ty, T::Counter) {
                    Value::Counter(v)
                } else {
                    Value::Bigint(v)
                }
            }
            T::Smallint => {
                if b.len() != 2 {
                    return err(format!("Expected 2 bytes for a smallint ({})", b.len()));
                }
                Value::Smallint(i16::from_be_bytes(fixed(b)))
            }
            T::Tinyint => {
                if b.len() != 1 {
                    return err(format!("Expected 1 byte for a tinyint ({})", b.len()));
                }
                Value::Tinyint(b[0] as i8)
            }
            T::Boolean => {
                if b.len() != 1 {
                    return err(format!("Expected 1 or 0 byte value ({})", b.len()));
                }
                Value::Boolean(b[0] != 0)
            }
            T::Float => {
                if b.len() != 4 {
                    return err(format!(
                        "Expected 4 or 0 byte value for a float ({})",
                        b.len()
                    ));
                }
                Value::Float(f32::from_be_bytes(fixed(b)))
            }
            T::Double => {
                if b.len() != 8 {
                    return err(format!(
                        "Expected 8 or 0 byte value for a double ({})",
                        b.len()
                    ));
                }
                Value::Double(f64::from_be_bytes(fixed(b)))
            }
            T::Timestamp => {
                if b.len() != 8 {
                    return err(format!("Expected 8 or 0 byte long for date ({})", b.len()));
                }
                Value::Timestamp(i64::from_be_bytes(fixed(b)))
            }
            T::Date => {
                if b.len() != 4 {
                    return err(format!("Expected 4 byte long for date ({})", b.len()));
                }
                Value::Date(u32::from_be_bytes(fixed(b)))
            }
            T::Time => {
                if b.len() != 8 {
                    return err(format!("Expected 8 byte long for time ({})", b.len()));
                }
                let v = i64::from_be_bytes(fixed(b));
                if !(0..=MAX_TIME_NANOS).contains(&v) {
                    return err(format!(
                        "Invalid time value {v}: must be between 0 and {MAX_TIME_NANOS} nanoseconds"
                    ));
                }
                Value::Time(v)
            }
            T::Uuid | T::Timeuuid => {
                if b.len() != 16 {
                    return err(format!("UUID should be 16 or 0 bytes ({})", b.len()));
                }
                let u = Uuid::from_bytes(fixed(b));
                if matches!(ty, T::Timeuuid) {
                    let v = uuid_version(b);
                    if v != 1 {
                        return err(format!("Invalid UUID version {v} for timeuuid"));
                    }
                    Value::Timeuuid(u)
                } else {
                    Value::Uuid(u)
                }
            }
            T::Varint => Value::Varint(BigInt::from_signed_bytes_be(b)),
            T::Decimal => {
                if b.len() < 4 {
                    return err(format!("Expected 0 or at least 4 bytes ({})", b.len()));
                }
                let scale = i32::from_be_bytes(fixed(&b[..4]));
                let unscaled = BigInt::from_signed_bytes_be(&b[4..]);
                Value::Decimal(BigDecimal::new(unscaled, scale as i64))
            }
            T::Inet => match b.len() {
                4 => Value::Inet(IpAddr::from(<[u8; 4]>::try_from(b).unwrap())),
                16 => Value::Inet(IpAddr::from(<[u8; 16]>::try_from(b).unwrap())),
                n => return err(format!("Invalid length for inet address ({n})")),
            },
            T::Duration => {
                if b.len() < 3 {
                    return err(format!(
                        "Expected at least 3 bytes for a duration ({})",
                        b.len()
                    ));
                }
                let (months, n1) = read_signed_vint(b)?;
                let (days, n2) = read_signed_vint(&b[n1..])?;
                let (nanos, n3) = read_signed_vint(&b[n1 + n2..])?;
                if n1 + n2 + n3 != b.len() {
                    return err("Invalid duration: extraneous bytes");
                }
                let (Ok(months), Ok(days)) = (i32::try_from(months), i32::try_from(days)) else {
                    return err("Invalid duration: months or days out of range");
                };
                let signs = [months.signum() as i64, days.signum() as i64, nanos.signum()];
                if signs.contains(&1) && signs.contains(&-1) {
                    return err(
                        "The duration months, days and nanoseconds must be all of the same sign",
                    );
                }
                Value::Duration(Duration {
                    months,
                    days,
                    nanos,
                })
            }
            T::List(e) | T::Set(e) => {
                let elems = split_collection(b)?
                    .into_iter()
                    .map(|x| Value::deserialize(e, x))
                    .collect::<Result<Vec<_>, _>>()?;
                if matches!(ty, T::List(_)) {
                    Value::List(elems)
                } else {
                    Value::Set(elems)
                }
            }
            T::Map(kt, vt) => Value::Map(
                split_map(b)?
                    .into_iter()
                    .map(|(k, v)| Ok((Value::deserialize(kt, k)?, Value::deserialize(vt, v)?)))
                    .collect::<Result<Vec<_>, TypeError>>()?,
            ),
            T::Tuple(ts) => Value::Tuple(deserialize_components(ts.iter(), b)?),
            T::Udt(u) => Value::Udt(deserialize_components(u.fields.iter().map(|(_, t)| t), b)?),
            T::Vector(e, dim) => Value::Vector(
                split_vector(e, *dim, b)?
                    .into_iter()
                    .map(|x| Value::deserialize(e, x))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            T::Frozen(_) => unreachable!("unfrozen"),
        })
    }

    /// Check that `bytes` is a valid serialized value of `ty`.
    pub fn validate(ty: &CqlType, b: &[u8]) -> Result<(), TypeError> {
        use CqlType as T;
        let ty = ty.unfrozen();
        if b.is_empty() && empty_is_raw(ty) {
            return Ok(());
        }
        match ty {
            T::Blob | T::Custom(_) | T::Varint => Ok(()),
            T::Ascii => match b.iter().find(|&&c| c > 127) {
                Some(&c) => err(format!("Invalid byte for ascii: {}", c as i8)),
                None => Ok(()),
            },
            T::Text => std::str::from_utf8(b)
                .map(|_| ())
                .map_err(|_| TypeError::invalid("String didn't validate.")),
            T::List(e) | T::Set(e) => {
                for x in split_collection(b)? {
                    Value::validate(e, x)?;
                }
                Ok(())
            }
            T::Map(kt, vt) => {
                for (k, v) in split_map(b)? {
                    Value::validate(kt, k)?;
                    Value::validate(vt, v)?;
                }
                Ok(())
            }
            T::Tuple(ts) => validate_components(ts.iter(), b),
            T::Udt(u) => validate_components(u.fields.iter().map(|(_, t)| t), b),
            T::Vector(e, dim) => {
                for x in split_vector(e, *dim, b)? {
                    Value::validate(e, x)?;
                }
                Ok(())
            }
            _ => Value::deserialize(ty, b).map(|_| ()),
        }
    }

    /// Cassandra's comparison order of two serialized values of type `ty`.
    pub fn compare(ty: &CqlType, a: &[u8], b: &[u8]) -> Ordering {
        use CqlType as T;
        let ty = ty.unfrozen();
        if a.is_empty() || b.is_empty() {
            return a.len().min(1).cmp(&b.len().min(1));
        }
        match ty {
            T::Ascii | T::Text | T::Blob | T::Inet | T::Duration | T::Custom(_) | T::Date => {
                a.cmp(b)
            }
            T::Int | T::Bigint | T::Counter | T::Timestamp | T::Time | T::Smallint | T::Tinyint => {
                // Signed big-endian: flip the sign bit of the first byte and compare bytewise.
                let fa = a[0] ^ 0x80;
                let fb = b[0] ^ 0x80;
                fa.cmp(&fb).then_with(|| a[1..].cmp(&b[1..]))
            }
            T::Boolean => (a[0] != 0).cmp(&(b[0] != 0)),
            T::Float if a.len() == 4 && b.len() == 4 => java_float_cmp(
                f32::from_be_bytes(fixed(a)) as f64,
                f32::from_be_bytes(fixed(b)) as f64,
            ),
            T::Double if a.len() == 8 && b.len() == 8 => {
                java_float_cmp(f64::from_be_bytes(fixed(a)), f64::from_be_bytes(fixed(b)))
            }
            T::Uuid if a.len() == 16 && b.len() == 16 => uuid_key(a).cmp(&uuid_key(b)),
            T::Timeuuid if a.len() == 16 && b.len() == 16 => timeuuid_key(a).cmp(&timeuuid_key(b)),
            T::Varint => BigInt::from_signed_bytes_be(a).cmp(&BigInt::from_signed_bytes_be(b)),
            T::Decimal if a.len() >= 4 && b.len() >= 4 => {
                let da = BigDecimal::new(
                    BigInt::from_signed_bytes_be(&a[4..]),
                    i32::from_be_bytes(fixed(&a[..4])) as i64,
                );
                let db = BigDecimal::new(
                    BigInt::from_signed_bytes_be(&b[4..]),
                    i32::from_be_bytes(fixed(&b[..4])) as i64,
                );
                da.cmp(&db)
            }
            T::List(e) | T::Set(e) => match (split_collection(a), split_collection(b)) {
                (Ok(xa), Ok(xb)) => {
                    for (x, y) in xa.iter().zip(xb.iter()) {
                        let c = Value::compare(e, x, y);
                        if c != Ordering::Equal {
                            return c;
                        }
                    }
                    xa.len().cmp(&xb.len())
                }
                _ => a.cmp(b),
            },
            T::Map(kt, vt) => match (split_map(a), split_map(b)) {
                (Ok(xa), Ok(xb)) => {
                    for ((ka, va), (kb, vb)) in xa.iter().zip(xb.iter()) {
                        let c = Value::compare(kt, ka, kb).then_with(|| Value::compare(vt, va, vb));
                        if c != Ordering::Equal {
                            return c;
                        }
                    }
                    xa.len().cmp(&xb.len())
                }
                _ => a.cmp(b),
            },
            T::Tuple(ts) => compare_components(ts, a, b),
            T::Udt(u) => {
                let ts: Vec<CqlType> = u.fields.iter().map(|(_, t)| t.clone()).collect();
                compare_components(&ts, a, b)
            }
            T::Vector(e, dim) => match (split_vector(e, *dim, a), split_vector(e, *dim, b)) {
                (Ok(xa), Ok(xb)) => {
                    for (x, y) in xa.iter().zip(xb.iter()) {
                        let c = Value::compare(e, x, y);
                        if c != Ordering::Equal {
                            return c;
                        }
                    }
                    Ordering::Equal
                }
                _ => a.cmp(b),
            },
            _ => a.cmp(b),
        }
    }
}

/// Types whose zero-length value is accepted by Cassandra but is not their normal form.
fn empty_is_raw(ty: &CqlType) -> bool {
    use CqlType as T;
    matches!(
        ty,
        T::Int
            | T::Bigint
            | T::Counter
            | T::Boolean
            | T::Float
            | T::Double
            | T::Timestamp
            | T::Uuid
            | T::Timeuuid
            | T::Varint
            | T::Decimal
            | T::Inet
            | T::List(_)
            | T::Set(_)
            | T::Map(..)
            | T::Vector(..)
    )
}

fn serialize_components<'a>(
    types: impl Iterator<Item = &'a CqlType>,
    vs: &[Option<Value>],
    out: &mut Vec<u8>,
) {
    let types: Vec<&CqlType> = types.collect();
    for (i, v) in vs.iter().enumerate() {
        match (v, types.get(i)) {
            (None, _) => out.extend_from_slice(&(-1i32).to_be_bytes()),
            (Some(v), Some(t)) => {
                let mut tmp = Vec::new();
                v.serialize_as(t, &mut tmp);
                out.extend_from_slice(&(tmp.len() as i32).to_be_bytes());
                out.extend_from_slice(&tmp);
            }
            (Some(v), None) => write_bytes(out, Some(v)),
        }
    }
}

fn deserialize_components<'a>(
    types: impl ExactSizeIterator<Item = &'a CqlType>,
    b: &[u8],
) -> Result<Vec<Option<Value>>, TypeError> {
    let types: Vec<&CqlType> = types.collect();
    split_tuple(types.len(), b)?
        .into_iter()
        .zip(types)
        .map(|(x, t)| x.map(|x| Value::deserialize(t, x)).transpose())
        .collect()
}

fn validate_components<'a>(
    types: impl ExactSizeIterator<Item = &'a CqlType>,
    b: &[u8],
) -> Result<(), TypeError> {
    let types: Vec<&CqlType> = types.collect();
    for (x, t) in split_tuple(types.len(), b)?.into_iter().zip(types) {
        if let Some(x) = x {
            Value::validate(t, x)?;
        }
    }
    Ok(())
}

fn compare_components(types: &[CqlType], a: &[u8], b: &[u8]) -> Ordering {
    let (Ok(xa), Ok(xb)) = (split_tuple(types.len(), a), split_tuple(types.len(), b)) else {
        return a.cmp(b);
    };
    for ((x, y), t) in xa.iter().zip(xb.iter()).zip(types) {
        let c = match (x, y) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => Value::compare(t, x, y),
        };
        if c != Ordering::Equal {
            return c;
        }
    }
    // Trailing nulls are equivalent to missing components.
    let nonnull_rest =
        |v: &[Option<&[u8]>], from: usize| v[from.min(v.len())..].iter().any(|x| x.is_some());
    let common = xa.len().min(xb.len());
    match (nonnull_rest(&xa, common), nonnull_rest(&xb, common)) {
        (false, false) => Ordering::Equal,
        (true, _) => Ordering::Greater,
        (false, true) => Ordering::Less,
    }
}

/// Java's `Double.compare`: -0.0 < 0.0, NaN greater than everything and equal to itself.
pub(crate) fn java_float_cmp(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.total_cmp(&b),
    }
}

pub(crate) fn reorder_timestamp(msb: u64) -> u64 {
    (msb << 48) | ((msb << 16) & 0xFFFF_0000_0000) | (msb >> 32)
}

pub(crate) fn reorder_back_timestamp(v: u64) -> u64 {
    (v >> 48) | ((v & 0xFFFF_0000_0000) >> 16) | (v << 32)
}

/// UUIDType order key: version, then (time for v1 | msb), then lsb, all unsigned.
pub(crate) fn uuid_key(b: &[u8]) -> (u8, u64, u64) {
    let msb = u64::from_be_bytes(fixed(&b[..8]));
    let lsb = u64::from_be_bytes(fixed(&b[8..]));
    let v = ((msb >> 12) & 0xf) as u8;
    let m = if v == 1 { reorder_timestamp(msb) } else { msb };
    (v, m, lsb)
}

/// TimeUUIDType order key: reordered timestamp, then lsb bytes compared as signed bytes.
pub(crate) fn timeuuid_key(b: &[u8]) -> (u64, u64) {
    let msb = u64::from_be_bytes(fixed(&b[..8]));
    let lsb = u64::from_be_bytes(fixed(&b[8..]));
    (
        reorder_timestamp(msb) ^ (1 << 63),
        lsb ^ 0x8080_8080_8080_8080,
    )
}
