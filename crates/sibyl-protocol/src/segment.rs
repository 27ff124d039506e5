//! Protocol v5 segment framing: every segment is a header protected by a CRC24, and a payload
//! protected by a CRC32. A self-contained segment holds one or more complete envelopes; an
//! envelope larger than [`MAX_PAYLOAD_LENGTH`] is split over several non-self-contained segments.
//!
//! Uncompressed header (3 bytes, little endian): payload length (17 bits) | self-contained (bit 17).
//! Compressed header (5 bytes, little endian): compressed length (17 bits) | uncompressed length
//! (17 bits, 0 = payload stored uncompressed) | self-contained (bit 34). Compressed payloads are
//! raw LZ4 blocks.

use crate::ProtocolError;
use bytes::{BufMut, Bytes, BytesMut};

/// Largest payload one segment can carry.
pub const MAX_PAYLOAD_LENGTH: usize = 128 * 1024 - 1;
pub const UNCOMPRESSED_HEADER_LENGTH: usize = 3;
pub const COMPRESSED_HEADER_LENGTH: usize = 5;
pub const CRC24_LENGTH: usize = 3;
pub const CRC32_LENGTH: usize = 4;

const CRC24_INIT: u32 = 0x875060;
const CRC24_POLY: u32 = 0x1974F0B;
const CRC32_PREFIX: [u8; 4] = [0xfa, 0x2d, 0x55, 0xca];

/// CRC24 of a segment header (its bytes in wire order).
pub fn crc24(bytes: &[u8]) -> u32 {
    let mut crc = CRC24_INIT;
    for &b in bytes {
        crc ^= (b as u32) << 16;
        for _ in 0..8 {
            crc <<= 1;
            if crc & 0x1000000 != 0 {
                crc ^= CRC24_POLY;
            }
        }
    }
    crc & 0xFF_FFFF
}

/// CRC32 of a segment payload (zlib CRC32 seeded with four fixed bytes).
pub fn crc32(payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&CRC32_PREFIX);
    h.update(payload);
    h.finalize()
}

/// A decoded segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Uncompressed payload.
    pub payload: Bytes,
    pub self_contained: bool,
}

fn put_le(out: &mut BytesMut, v: u64, n: usize) {
    for i in 0..n {
        out.put_u8((v >> (8 * i)) as u8);
    }
}

fn get_le(b: &[u8]) -> u64 {
    b.iter()
        .enumerate()
        .fold(0u64, |acc, (i, &x)| acc | ((x as u64) << (8 * i)))
}

/// Encode one segment. `payload.len()` must be at most [`MAX_PAYLOAD_LENGTH`].
pub fn encode_segment(payload: &[u8], self_contained: bool, compressed: bool, out: &mut BytesMut) {
    assert!(
        payload.len() <= MAX_PAYLOAD_LENGTH,
        "segment payload too large"
    );
    let start = out.len();
    if compressed {
        let c = lz4_flex::block::compress(payload);
        let (body, uncompressed_len): (&[u8], u64) = if c.len() >= payload.len() {
            (payload, 0)
        } else {
            (&c, payload.len() as u64)
        };
        let header = body.len() as u64 | (uncompressed_len << 17) | ((self_contained as u64) << 34);
        put_le(out, header, COMPRESSED_HEADER_LENGTH);
        let crc = crc24(&out[start..]);
        put_le(out, crc as u64, CRC24_LENGTH);
        out.put_slice(body);
        out.put_u32_le(crc32(body));
    } else {
        let header = payload.len() as u64 | ((self_contained as u64) << 17);
        put_le(out, header, UNCOMPRESSED_HEADER_LENGTH);
        let crc = crc24(&out[start..]);
        put_le(out, crc as u64, CRC24_LENGTH);
        out.put_slice(payload);
        out.put_u32_le(crc32(payload));
    }
}

/// Encode a whole message: one self-contained segment if it fits, else a run of
/// non-self-contained segments.
pub fn encode_message(msg: &[u8], compressed: bool, out: &mut BytesMut) {
    if msg.len() <= MAX_PAYLOAD_LENGTH {
        encode_segment(msg, true, compressed, out);
    } else {
        for chunk in msg.chunks(MAX_PAYLOAD_LENGTH) {
            encode_segment(chunk, false, compressed, out);
        }
    }
}

/// Decode one segment from the front of `buf`, consuming it; `Ok(None)` when incomplete.
pub fn decode_segment(
    buf: &mut BytesMut,
    compressed: bool,
) -> Result<Option<Segment>, ProtocolError> {
    let hlen = if compressed {
        COMPRESSED_HEADER_LENGTH
    } else {
        UNCOMPRESSED_HEADER_LENGTH
    };
    if buf.len() < hlen + CRC24_LENGTH {
        return Ok(None);
    }
    let header = get_le(&buf[..hlen]);
    let expected = get_le(&buf[hlen..hlen + CRC24_LENGTH]) as u32;
    let actual = crc24(&buf[..hlen]);
    if expected != actual {
        return Err(ProtocolError::Crc {
            message: format!(
                "CRC mismatch on header {header:x}. Received {expected:x}, computed {actual:x}."
            ),
        });
    }
    let payload_len = (header & MAX_PAYLOAD_LENGTH as u64) as usize;
    let (uncompressed_len, self_contained) = if compressed {
        (
            ((header >> 17) & MAX_PAYLOAD_LENGTH as u64) as usize,
            (header >> 34) & 1 == 1,
        )
    } else {
        (0, (header >> 17) & 1 == 1)
    };
    let total = hlen + CRC24_LENGTH + payload_len + CRC32_LENGTH;
    if buf.len() < total {
        return Ok(None);
    }
    let mut seg = buf.split_to(total).freeze();
    let _ = seg.split_to(hlen + CRC24_LENGTH);
    let payload = seg.split_to(payload_len);
    let expected = u32::from_le_bytes([seg[0], seg[1], seg[2], seg[3]]);
    let actual = crc32(&payload);
    if expected != actual {
        return Err(ProtocolError::Crc {
            message: format!(
                "CRC mismatch on payload. Received {expected:x}, computed {actual:x}."
            ),
        });
    }
    let payload = if compressed && uncompressed_len > 0 {
        let d = lz4_flex::block::decompress(&payload, uncompressed_len).map_err(|e| {
            ProtocolError::malformed(format!("Could not decompress segment payload: {e}"))
        })?;
        if d.len() != uncompressed_len {
            return Err(ProtocolError::malformed(format!(
                "Decompressed segment payload has {} bytes, header says {uncompressed_len}",
                d.len()
            )));
        }
        Bytes::from(d)
    } else {
        payload
    };
    Ok(Some(Segment {
        payload,
        self_contained,
    }))
}
