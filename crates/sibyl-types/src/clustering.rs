//! Order-preserving, reversible, prefix-free byte encoding of clustering keys, so the storage
//! engine can order rows with `memcmp`.
//!
//! Each component is encoded as a tag byte (`0x01` empty value, `0x02` non-empty value) followed
//! by a prefix-free body whose bytewise order is Cassandra's order for the type. A DESC
//! component has all of its bytes inverted. Component encodings therefore never start with
//! `0x00` or `0xFF`, so `prefix_end(p) = p ++ [0xFF]` sorts after every key extending `p` and
//! before every greater key that does not.
//!
//! Values that Cassandra compares as equal are encoded identically, so decoding returns a
//! canonical form: decimals lose trailing zeros of the unscaled value (`1.50` → `1.5`), varints
//! are minimal, NaNs are the canonical NaN, booleans are `0x00`/`0x01`, and trailing null
//! components of tuples/UDTs are dropped. Inputs must be valid serialized values.

use std::borrow::Borrow;

use bigdecimal::BigDecimal;
use num_bigint::{BigInt, Sign};

use crate::value::{
    reorder_back_timestamp, reorder_timestamp, split_collection, split_map, split_tuple,
    split_vector,
};
use crate::{CqlType, TypeError};

const TAG_EMPTY: u8 = 0x01;
const TAG_VALUE: u8 = 0x02;
const MORE: u8 = 0x02;
const END: u8 = 0x01;

/// Encode a clustering prefix: `values` may be shorter than `types`. `bool` = descending.
/// `types` may hold the types or references to them (a table's, without cloning).
pub fn encode<T: Borrow<CqlType>>(types: &[(T, bool)], values: &[&[u8]]) -> Vec<u8> {
    // Most components encode to their own length plus a byte or two.
    let mut out = Vec::with_capacity(values.iter().map(|v| v.len() + 2).sum());
    for ((ty, desc), v) in types.iter().zip(values) {
        let start = out.len();
        enc_component(ty.borrow(), v, &mut out);
        if *desc {
            for b in &mut out[start..] {
                *b = !*b;
            }
        }
    }
    out
}

/// Decode an encoded clustering (prefix) back into serialized component values.
pub fn decode<T: Borrow<CqlType>>(
    types: &[(T, bool)],
    bytes: &[u8],
) -> Result<Vec<Vec<u8>>, TypeError> {
    let mut d = Dec {
        b: bytes,
        pos: 0,
        inv: false,
    };
    let mut out = Vec::new();
    for (ty, desc) in types {
        if d.pos == bytes.len() {
            break;
        }
        d.inv = *desc;
        let mut v = Vec::new();
        dec_component(ty.borrow(), &mut d, &mut v)?;
        out.push(v);
    }
    if d.pos != bytes.len() {
        return Err(TypeError::invalid(
            "Extraneous bytes after encoded clustering",
        ));
    }
    Ok(out)
}

/// The smallest byte string greater than every encoding starting with `encoded_prefix`.
pub fn prefix_end(encoded_prefix: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(encoded_prefix.len() + 1);
    v.extend_from_slice(encoded_prefix);
    v.push(0xff);
    v
}

/// Encode one value (set element, map key) with the same properties as a clustering component.
pub fn encode_one(ty: &CqlType, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    enc_component(ty, value, &mut out);
    out
}

/// Inverse of [`encode_one`].
pub fn decode_one(ty: &CqlType, bytes: &[u8]) -> Result<Vec<u8>, TypeError> {
    let mut d = Dec {
        b: bytes,
        pos: 0,
        inv: false,
    };
    let mut v = Vec::new();
    dec_component(ty, &mut d, &mut v)?;
    if d.pos != bytes.len() {
        return Err(TypeError::invalid("Extraneous bytes after encoded value"));
    }
    Ok(v)
}

// ---------------------------------------------------------------- encoding

fn enc_component(ty: &CqlType, v: &[u8], out: &mut Vec<u8>) {
    if v.is_empty() {
        out.push(TAG_EMPTY);
    } else {
        out.push(TAG_VALUE);
        enc_body(ty.unfrozen(), v, out);
    }
}

fn enc_escaped(v: &[u8], out: &mut Vec<u8>) {
    for &b in v {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

fn fixed_len(ty: &CqlType) -> Option<usize> {
    use CqlType as T;
    Some(match ty {
        T::Tinyint | T::Boolean => 1,
        T::Smallint => 2,
        T::Int | T::Date | T::Float => 4,
        T::Bigint | T::Counter | T::Timestamp | T::Time | T::Double => 8,
        T::Uuid | T::Timeuuid => 16,
        _ => return None,
    })
}

fn enc_body(ty: &CqlType, v: &[u8], out: &mut Vec<u8>) {
    use CqlType as T;
    if let Some(n) = fixed_len(ty) {
        if v.len() != n {
            // Invalid input: keep it decodable-ish by escaping (never produced for valid values).
            enc_escaped(v, out);
            return;
        }
    }
    match ty {
        T::Int | T::Bigint | T::Counter | T::Timestamp | T::Time | T::Smallint | T::Tinyint => {
            out.push(v[0] ^ 0x80);
            out.extend_from_slice(&v[1..]);
        }
        T::Date => out.extend_from_slice(v),
        T::Boolean => out.push((v[0] != 0) as u8),
        T::Float => {
            let mut bits = u32::from_be_bytes(v.try_into().unwrap());
            if f32::from_bits(bits).is_nan() {
                bits = 0x7fc0_0000;
            }
            let k = if bits >> 31 == 1 {
                !bits
            } else {
                bits ^ (1 << 31)
            };
            out.extend_from_slice(&k.to_be_bytes());
        }
        T::Double => {
            let mut bits = u64::from_be_bytes(v.try_into().unwrap());
            if f64::from_bits(bits).is_nan() {
                bits = 0x7ff8_0000_0000_0000;
            }
            let k = if bits >> 63 == 1 {
                !bits
            } else {
                bits ^ (1 << 63)
            };
            out.extend_from_slice(&k.to_be_bytes());
        }
        T::Uuid => {
            let msb = u64::from_be_bytes(v[..8].try_into().unwrap());
            let version = ((msb >> 12) & 0xf) as u8;
            out.push(version);
            let m = if version == 1 {
                reorder_timestamp(msb)
            } else {
                msb
            };
            out.extend_from_slice(&m.to_be_bytes());
            out.extend_from_slice(&v[8..]);
        }
        T::Timeuuid => {
            let msb = u64::from_be_bytes(v[..8].try_into().unwrap());
            let lsb = u64::from_be_bytes(v[8..].try_into().unwrap());
            out.extend_from_slice(&(reorder_timestamp(msb) ^ (1 << 63)).to_be_bytes());
            out.extend_from_slice(&(lsb ^ 0x8080_8080_8080_8080).to_be_bytes());
        }
        T::Varint => {
            let canon = BigInt::from_signed_bytes_be(v).to_signed_bytes_be();
            let n = canon.len() as u32;
            if canon[0] & 0x80 == 0 {
                out.push(0x01);
                out.extend_from_slice(&n.to_be_bytes());
            } else {
                out.push(0x00);
                out.extend_from_slice(&(!n).to_be_bytes());
            }
            out.extend_from_slice(&canon);
        }
        T::Decimal if v.len() >= 4 => enc_decimal(v, out),
        T::List(e) | T::Set(e) => match split_collection(v) {
            Ok(xs) => {
                for x in xs {
                    out.push(MORE);
                    enc_component(e, x, out);
                }
                out.push(END);
            }
            Err(_) => enc_escaped(v, out),
        },
        T::Map(kt, vt) => match split_map(v) {
            Ok(xs) => {
                for (k, x) in xs {
                    out.push(MORE);
                    enc_component(kt, k, out);
                    enc_component(vt, x, out);
                }
                out.push(END);
            }
            Err(_) => enc_escaped(v, out),
        },
        T::Tuple(ts) => enc_components(ts.iter(), v, out),
        T::Udt(u) => enc_components(u.fields.iter().map(|(_, t)| t), v, out),
        T::Vector(e, dim) => match split_vector(e, *dim, v) {
            Ok(xs) => {
                for x in xs {
                    enc_component(e, x, out);
                }
            }
            Err(_) => enc_escaped(v, out),
        },
        _ => enc_escaped(v, out),
    }
}

fn enc_components<'a>(types: impl Iterator<Item = &'a CqlType>, v: &[u8], out: &mut Vec<u8>) {
    let types: Vec<&CqlType> = types.collect();
    let Ok(mut xs) = split_tuple(types.len(), v) else {
        enc_escaped(v, out);
        return;
    };
    // Trailing nulls compare equal to missing components, but a non-empty value stays
    // non-empty (the empty value sorts before every other one).
    while xs.len() > 1 && xs.last().is_some_and(|x| x.is_none()) {
        xs.pop();
    }
    for (x, t) in xs.into_iter().zip(types) {
        out.push(MORE);
        match x {
            None => out.push(0x00),
            Some(x) => enc_component(t, x, out),
        }
    }
    out.push(END);
}

/// Decimal: zero is `0x01`; a positive value 0.D × 10^E is `0x02`, E (8 bytes, sign-flipped),
/// digits as bytes 1..=10, then `0x00`; a negative value is `0x00` then the inverted bytes of
/// its absolute value's encoding (without the leading `0x02`).
fn enc_decimal(v: &[u8], out: &mut Vec<u8>) {
    let scale = i32::from_be_bytes(v[..4].try_into().unwrap()) as i64;
    let unscaled = BigInt::from_signed_bytes_be(&v[4..]);
    let (sign, mag) = unscaled.into_parts();
    if sign == Sign::NoSign {
        out.push(0x01);
        return;
    }
    let mut digits = mag.to_string().into_bytes();
    let mut s = scale;
    while digits.last() == Some(&b'0') {
        digits.pop();
        s -= 1;
    }
    let e = digits.len() as i64 - s;
    let start = out.len();
    out.push(0x02);
    out.extend_from_slice(&((e as u64) ^ (1 << 63)).to_be_bytes());
    out.extend(digits.iter().map(|d| d - b'0' + 1));
    out.push(0x00);
    if sign == Sign::Minus {
        out[start] = 0x00;
        for b in &mut out[start + 1..] {
            *b = !*b;
        }
    }
}

// ---------------------------------------------------------------- decoding

struct Dec<'a> {
    b: &'a [u8],
    pos: usize,
    inv: bool,
}

impl Dec<'_> {
    fn next(&mut self) -> Result<u8, TypeError> {
        let b = *self
            .b
            .get(self.pos)
            .ok_or_else(|| TypeError::invalid("Truncated encoded clustering"))?;
        self.pos += 1;
        Ok(if self.inv { !b } else { b })
    }
    fn peek(&self) -> Result<u8, TypeError> {
        let b = *self
            .b
            .get(self.pos)
            .ok_or_else(|| TypeError::invalid("Truncated encoded clustering"))?;
        Ok(if self.inv { !b } else { b })
    }
    fn take<const N: usize>(&mut self) -> Result<[u8; N], TypeError> {
        let mut a = [0u8; N];
        for x in &mut a {
            *x = self.next()?;
        }
        Ok(a)
    }
}

fn bad() -> TypeError {
    TypeError::invalid("Invalid encoded clustering")
}

fn dec_component(ty: &CqlType, d: &mut Dec, out: &mut Vec<u8>) -> Result<(), TypeError> {
    match d.next()? {
        TAG_EMPTY => Ok(()),
        TAG_VALUE => dec_body(ty.unfrozen(), d, out),
        _ => Err(bad()),
    }
}

fn dec_escaped(d: &mut Dec, out: &mut Vec<u8>) -> Result<(), TypeError> {
    loop {
        let b = d.next()?;
        if b == 0 {
            match d.next()? {
                0 => return Ok(()),
                0xff => out.push(0),
                _ => return Err(bad()),
            }
        } else {
            out.push(b);
        }
    }
}

fn dec_body(ty: &CqlType, d: &mut Dec, out: &mut Vec<u8>) -> Result<(), TypeError> {
    use CqlType as T;
    match ty {
        T::Int | T::Bigint | T::Counter | T::Timestamp | T::Time | T::Smallint | T::Tinyint => {
            let n = fixed_len(ty).unwrap();
            out.push(d.next()? ^ 0x80);
            for _ in 1..n {
                out.push(d.next()?);
            }
        }
        T::Date => out.extend_from_slice(&d.take::<4>()?),
        T::Boolean => out.push(d.next()?),
        T::Float => {
            let k = u32::from_be_bytes(d.take::<4>()?);
            let bits = if k >> 31 == 1 { k ^ (1 << 31) } else { !k };
            out.extend_from_slice(&bits.to_be_bytes());
        }
        T::Double => {
            let k = u64::from_be_bytes(d.take::<8>()?);
            let bits = if k >> 63 == 1 { k ^ (1 << 63) } else { !k };
            out.extend_from_slice(&bits.to_be_bytes());
        }
        T::Uuid => {
            let version = d.next()?;
            let m = u64::from_be_bytes(d.take::<8>()?);
            let msb = if version == 1 {
                reorder_back_timestamp(m)
            } else {
                m
            };
            out.extend_from_slice(&msb.to_be_bytes());
            out.extend_from_slice(&d.take::<8>()?);
        }
        T::Timeuuid => {
            let m = u64::from_be_bytes(d.take::<8>()?) ^ (1 << 63);
            let l = u64::from_be_bytes(d.take::<8>()?) ^ 0x8080_8080_8080_8080;
            out.extend_from_slice(&reorder_back_timestamp(m).to_be_bytes());
            out.extend_from_slice(&l.to_be_bytes());
        }
        T::Varint => {
            let sign = d.next()?;
            let n = u32::from_be_bytes(d.take::<4>()?);
            let n = match sign {
                0x01 => n,
                0x00 => !n,
                _ => return Err(bad()),
            } as usize;
            for _ in 0..n {
                out.push(d.next()?);
            }
        }
        T::Decimal => dec_decimal(d, out)?,
        T::List(e) | T::Set(e) => {
            let mut elems = Vec::new();
            loop {
                match d.next()? {
                    END => break,
                    MORE => {
                        let mut x = Vec::new();
                        dec_component(e, d, &mut x)?;
                        elems.push(x);
                    }
                    _ => return Err(bad()),
                }
            }
            out.extend_from_slice(&(elems.len() as i32).to_be_bytes());
            for x in elems {
                out.extend_from_slice(&(x.len() as i32).to_be_bytes());
                out.extend_from_slice(&x);
            }
        }
        T::Map(kt, vt) => {
            let mut body = Vec::new();
            let mut n = 0i32;
            loop {
                match d.next()? {
                    END => break,
                    MORE => {
                        for t in [kt, vt] {
                            let mut x = Vec::new();
                            dec_component(t, d, &mut x)?;
                            body.extend_from_slice(&(x.len() as i32).to_be_bytes());
                            body.extend_from_slice(&x);
                        }
                        n += 1;
                    }
                    _ => return Err(bad()),
                }
            }
            out.extend_from_slice(&n.to_be_bytes());
            out.extend_from_slice(&body);
        }
        T::Tuple(ts) => dec_components(ts.iter(), d, out)?,
        T::Udt(u) => dec_components(u.fields.iter().map(|(_, t)| t), d, out)?,
        T::Vector(e, dim) => {
            let fixed = e.value_fixed_length().is_some();
            for _ in 0..*dim {
                let mut x = Vec::new();
                dec_component(e, d, &mut x)?;
                if !fixed {
                    crate::value::write_unsigned_vint(x.len() as u64, out);
                }
                out.extend_from_slice(&x);
            }
        }
        _ => dec_escaped(d, out)?,
    }
    Ok(())
}

fn dec_components<'a>(
    types: impl Iterator<Item = &'a CqlType>,
    d: &mut Dec,
    out: &mut Vec<u8>,
) -> Result<(), TypeError> {
    let mut types = types;
    loop {
        match d.next()? {
            END => return Ok(()),
            MORE => {
                let t = types.next().ok_or_else(bad)?;
                if d.peek()? == 0x00 {
                    d.next()?;
                    out.extend_from_slice(&(-1i32).to_be_bytes());
                } else {
                    let mut x = Vec::new();
                    dec_component(t, d, &mut x)?;
                    out.extend_from_slice(&(x.len() as i32).to_be_bytes());
                    out.extend_from_slice(&x);
                }
            }
            _ => return Err(bad()),
        }
    }
}

fn dec_decimal(d: &mut Dec, out: &mut Vec<u8>) -> Result<(), TypeError> {
    let sign = d.next()?;
    if sign == 0x01 {
        out.extend_from_slice(&[0, 0, 0, 0, 0]);
        return Ok(());
    }
    let negative = match sign {
        0x02 => false,
        0x00 => true,
        _ => return Err(bad()),
    };
    let flip = |b: u8| if negative { !b } else { b };
    let mut eb = [0u8; 8];
    for x in &mut eb {
        *x = flip(d.next()?);
    }
    let e = (u64::from_be_bytes(eb) ^ (1 << 63)) as i64;
    let mut digits = String::new();
    loop {
        let b = flip(d.next()?);
        match b {
            0 => break,
            1..=10 => digits.push((b'0' + b - 1) as char),
            _ => return Err(bad()),
        }
    }
    let mut unscaled: BigInt = digits.parse().map_err(|_| bad())?;
    let mut scale = digits.len() as i64 - e;
    if scale < i32::MIN as i64 {
        unscaled *= BigInt::from(10u8).pow((i32::MIN as i64 - scale) as u32);
        scale = i32::MIN as i64;
    }
    if scale > i32::MAX as i64 {
        return Err(bad());
    }
    if negative {
        unscaled = -unscaled;
    }
    let dec = BigDecimal::new(unscaled, scale);
    let (u, s) = dec.as_bigint_and_exponent();
    out.extend_from_slice(&(s as i32).to_be_bytes());
    out.extend_from_slice(&u.to_signed_bytes_be());
    Ok(())
}
