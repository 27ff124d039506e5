//! Bounds-checked readers and writers for the protocol's primitive notations
//! ([int], [short], [string], [bytes], [value], [inet], ...).

use crate::ProtocolError;
use bytes::{BufMut, Bytes, BytesMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub(crate) type Result<T> = std::result::Result<T, ProtocolError>;

fn short(what: &str, need: usize, have: usize) -> ProtocolError {
    ProtocolError::malformed(format!(
        "Not enough bytes to read {what}: need {need}, {have} remaining"
    ))
}

/// A cursor over a message body. Every read checks the remaining length first.
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub fn new(buf: Bytes) -> Self {
        Reader { buf }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    pub fn take(&mut self, n: usize, what: &str) -> Result<Bytes> {
        if n > self.buf.len() {
            return Err(short(what, n, self.buf.len()));
        }
        Ok(self.buf.split_to(n))
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        // Copied out and skipped: splitting off a `Bytes` would bump and drop the buffer's
        // reference count for every short and int of a message.
        let Some(a) = self.buf.first_chunk::<N>().copied() else {
            return Err(short(what, N, self.buf.len()));
        };
        bytes::Buf::advance(&mut self.buf, N);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>("a byte")?[0])
    }
    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array("a short")?))
    }
    pub fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array("an int")?))
    }
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array("an int")?))
    }
    pub fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array("a long")?))
    }

    /// A collection count, checked against the bytes left (each element needs at least
    /// `min_elem` bytes), so a bogus count can never cause a huge allocation.
    pub fn check_count(&self, n: usize, min_elem: usize, what: &str) -> Result<usize> {
        if n.saturating_mul(min_elem.max(1)) > self.buf.len() {
            return Err(ProtocolError::malformed(format!(
                "Invalid {what} count {n}: only {} bytes remaining",
                self.buf.len()
            )));
        }
        Ok(n)
    }

    fn utf8(b: Bytes) -> Result<String> {
        String::from_utf8(b.to_vec())
            .map_err(|_| ProtocolError::malformed("Cannot decode string as UTF8"))
    }

    /// [string]
    pub fn string(&mut self) -> Result<String> {
        let n = self.u16()? as usize;
        let b = self.take(n, "an UTF8 string")?;
        Self::utf8(b)
    }

    /// [long string]
    pub fn long_string(&mut self) -> Result<String> {
        let n = self.i32()?;
        if n < 0 {
            return Err(ProtocolError::malformed(format!(
                "Invalid negative long string length {n}"
            )));
        }
        let b = self.take(n as usize, "a long UTF8 string")?;
        Self::utf8(b)
    }

    /// [bytes] (None when the length is negative)
    pub fn bytes(&mut self) -> Result<Option<Bytes>> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(None);
        }
        Ok(Some(self.take(n as usize, "a bytes value")?))
    }

    /// [short bytes]
    pub fn short_bytes(&mut self) -> Result<Bytes> {
        let n = self.u16()? as usize;
        self.take(n, "a short bytes value")
    }

    /// [value]: -1 null, -2 unset.
    pub fn value(&mut self) -> Result<crate::messages::BoundValue> {
        use crate::messages::BoundValue;
        let n = self.i32()?;
        match n {
            -1 => Ok(BoundValue::Null),
            -2 => Ok(BoundValue::Unset),
            n if n < 0 => Err(ProtocolError::malformed(format!(
                "Invalid value length {n}"
            ))),
            n => Ok(BoundValue::Value(self.take(n as usize, "a value")?)),
        }
    }

    /// [string list]
    pub fn string_list(&mut self) -> Result<Vec<String>> {
        let n = self.u16()? as usize;
        let n = self.check_count(n, 2, "string list")?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.string()?);
        }
        Ok(v)
    }

    /// [string map]
    pub fn string_map(&mut self) -> Result<Vec<(String, String)>> {
        let n = self.u16()? as usize;
        let n = self.check_count(n, 4, "string map")?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let k = self.string()?;
            let val = self.string()?;
            v.push((k, val));
        }
        Ok(v)
    }

    /// [string multimap]
    pub fn string_multimap(&mut self) -> Result<Vec<(String, Vec<String>)>> {
        let n = self.u16()? as usize;
        let n = self.check_count(n, 4, "string multimap")?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let k = self.string()?;
            let val = self.string_list()?;
            v.push((k, val));
        }
        Ok(v)
    }

    /// [bytes map]
    pub fn bytes_map(&mut self) -> Result<Vec<(String, Bytes)>> {
        let n = self.u16()? as usize;
        let n = self.check_count(n, 6, "bytes map")?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let k = self.string()?;
            let val = self.bytes()?.unwrap_or_default();
            v.push((k, val));
        }
        Ok(v)
    }

    /// [inetaddr]: one byte length (4 or 16) then the address.
    pub fn inetaddr(&mut self) -> Result<IpAddr> {
        let n = self.u8()?;
        match n {
            4 => Ok(IpAddr::V4(Ipv4Addr::from(
                self.array::<4>("an IPv4 address")?,
            ))),
            16 => Ok(IpAddr::V6(Ipv6Addr::from(
                self.array::<16>("an IPv6 address")?,
            ))),
            n => Err(ProtocolError::malformed(format!(
                "Invalid IP address length {n}"
            ))),
        }
    }

    /// [inet]: [inetaddr] then an [int] port.
    pub fn inet(&mut self) -> Result<SocketAddr> {
        let ip = self.inetaddr()?;
        let port = self.i32()?;
        let port = u16::try_from(port)
            .map_err(|_| ProtocolError::malformed(format!("Invalid port {port}")))?;
        Ok(SocketAddr::new(ip, port))
    }

    pub fn uuid(&mut self) -> Result<uuid::Uuid> {
        Ok(uuid::Uuid::from_bytes(self.array::<16>("a UUID")?))
    }
}

// ---- writers ----

pub(crate) fn put_string(out: &mut BytesMut, s: &str) {
    // [string] lengths are unsigned shorts; longer strings are truncated at a char boundary.
    let mut n = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    out.put_u16(n as u16);
    out.put_slice(&s.as_bytes()[..n]);
}

pub(crate) fn put_long_string(out: &mut BytesMut, s: &str) {
    out.put_i32(s.len() as i32);
    out.put_slice(s.as_bytes());
}

pub(crate) fn put_bytes(out: &mut BytesMut, b: Option<&[u8]>) {
    match b {
        None => out.put_i32(-1),
        Some(b) => {
            out.put_i32(b.len() as i32);
            out.put_slice(b);
        }
    }
}

pub(crate) fn put_short_bytes(out: &mut BytesMut, b: &[u8]) {
    let n = b.len().min(u16::MAX as usize);
    out.put_u16(n as u16);
    out.put_slice(&b[..n]);
}

pub(crate) fn put_value(out: &mut BytesMut, v: &crate::messages::BoundValue) {
    use crate::messages::BoundValue;
    match v {
        BoundValue::Null => out.put_i32(-1),
        BoundValue::Unset => out.put_i32(-2),
        BoundValue::Value(b) => put_bytes(out, Some(b)),
    }
}

pub(crate) fn put_string_list(out: &mut BytesMut, l: &[String]) {
    out.put_u16(l.len() as u16);
    for s in l {
        put_string(out, s);
    }
}

pub(crate) fn put_string_map(out: &mut BytesMut, m: &[(String, String)]) {
    out.put_u16(m.len() as u16);
    for (k, v) in m {
        put_string(out, k);
        put_string(out, v);
    }
}

pub(crate) fn put_string_multimap(out: &mut BytesMut, m: &[(String, Vec<String>)]) {
    out.put_u16(m.len() as u16);
    for (k, v) in m {
        put_string(out, k);
        put_string_list(out, v);
    }
}

pub(crate) fn put_bytes_map(out: &mut BytesMut, m: &[(String, Bytes)]) {
    out.put_u16(m.len() as u16);
    for (k, v) in m {
        put_string(out, k);
        put_bytes(out, Some(v));
    }
}

pub(crate) fn put_inetaddr(out: &mut BytesMut, ip: &IpAddr) {
    match ip {
        IpAddr::V4(a) => {
            out.put_u8(4);
            out.put_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.put_u8(16);
            out.put_slice(&a.octets());
        }
    }
}

pub(crate) fn put_inet(out: &mut BytesMut, a: &SocketAddr) {
    put_inetaddr(out, &a.ip());
    out.put_i32(a.port() as i32);
}
