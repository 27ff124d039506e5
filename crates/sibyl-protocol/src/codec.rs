//! Per-connection framing: legacy (pre-v5) frames, per-frame compression and v5 segments.

use crate::messages::{Envelope, Response};
use crate::segment::{self, MAX_PAYLOAD_LENGTH};
use crate::{
    flags, opcode, Frame, ProtocolError, HEADER_LEN, MAX_SUPPORTED_VERSION, SUPPORTED_VERSIONS,
};
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Direction bit of the header's version byte (set on responses).
const RESPONSE_BIT: u8 = 0x80;
const VERSION_MASK: u8 = 0x7f;

/// Body compression negotiated in STARTUP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    Lz4,
    Snappy,
}

impl Compression {
    /// Parse the STARTUP `COMPRESSION` option (`"lz4"`, `"snappy"`; case-insensitive).
    pub fn from_name(name: &str) -> Option<Compression> {
        match name.to_ascii_lowercase().as_str() {
            "lz4" => Some(Compression::Lz4),
            "snappy" => Some(Compression::Snappy),
            "" | "none" => Some(Compression::None),
            _ => None,
        }
    }

    /// Names for the SUPPORTED response's `COMPRESSION` entry.
    pub const SUPPORTED_NAMES: &'static [&'static str] = &["lz4", "snappy"];
}

/// The per-connection framing state machine, server side.
///
/// Typical life cycle: `decode` legacy frames until STARTUP; after writing READY (or
/// AUTHENTICATE), call [`set_compression`](Self::set_compression) with the negotiated
/// compression and, if the connection's version is 5, [`enable_v5_framing`](Self::enable_v5_framing).
/// In v5 only LZ4 applies (to whole segments); Snappy is not allowed there and is treated as none.
#[derive(Debug)]
pub struct ServerCodec {
    max_frame_size: usize,
    version: Option<u8>,
    compression: Compression,
    v5_framing: bool,
    /// Bytes of an oversized message still to be skipped (from the input in legacy framing,
    /// from the reassembled segment payloads in v5).
    discard: usize,
    /// v5: decoded segment payload bytes not yet cut into envelopes.
    pending: BytesMut,
    /// v5: whether `pending` came from a self-contained segment (so must hold whole envelopes).
    pending_self_contained: bool,
}

struct Header {
    version_byte: u8,
    flags: u8,
    stream: i16,
    opcode: u8,
    length: usize,
}

fn parse_header(b: &[u8]) -> Header {
    Header {
        version_byte: b[0],
        flags: b[1],
        stream: i16::from_be_bytes([b[2], b[3]]),
        opcode: b[4],
        length: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) as usize,
    }
}

fn check_opcode(h: &Header) -> Result<(), ProtocolError> {
    let malformed = |message: String| ProtocolError::Malformed {
        message,
        stream: Some(h.stream),
    };
    if h.version_byte & RESPONSE_BIT != 0 {
        return Err(malformed(format!(
            "Wrong protocol direction (expected REQUEST, got RESPONSE) for opcode {}",
            h.opcode
        )));
    }
    if !opcode::is_request(h.opcode) {
        if opcode::is_response(h.opcode) {
            return Err(malformed(format!(
                "Wrong protocol direction (expected RESPONSE, got REQUEST) for opcode {}",
                h.opcode
            )));
        }
        return Err(malformed(format!("Unknown opcode {}", h.opcode)));
    }
    Ok(())
}

fn decompress_body(
    c: Compression,
    body: Bytes,
    max: usize,
    stream: i16,
) -> Result<Bytes, ProtocolError> {
    let err = |m: String| ProtocolError::Malformed {
        message: m,
        stream: Some(stream),
    };
    match c {
        Compression::None => Err(err(
            "Received a compressed frame but no compression was negotiated".into(),
        )),
        Compression::Lz4 => {
            if body.len() < 4 {
                return Err(err("LZ4 compressed body too short".into()));
            }
            let n = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
            if n > max {
                return Err(ProtocolError::FrameTooLarge {
                    size: n,
                    max,
                    stream: Some(stream),
                });
            }
            let d = lz4_flex::block::decompress(&body[4..], n)
                .map_err(|e| err(format!("Could not decompress LZ4 frame body: {e}")))?;
            if d.len() != n {
                return Err(err("LZ4 decompressed length mismatch".into()));
            }
            Ok(Bytes::from(d))
        }
        Compression::Snappy => {
            let n = snap::raw::decompress_len(&body)
                .map_err(|e| err(format!("Could not decompress Snappy frame body: {e}")))?;
            if n > max {
                return Err(ProtocolError::FrameTooLarge {
                    size: n,
                    max,
                    stream: Some(stream),
                });
            }
            let d = snap::raw::Decoder::new()
                .decompress_vec(&body)
                .map_err(|e| err(format!("Could not decompress Snappy frame body: {e}")))?;
            Ok(Bytes::from(d))
        }
    }
}

fn compress_body(c: Compression, body: &[u8]) -> Option<Vec<u8>> {
    match c {
        Compression::None => None,
        Compression::Lz4 => {
            let mut v =
                Vec::with_capacity(4 + lz4_flex::block::get_maximum_output_size(body.len()));
            v.extend_from_slice(&(body.len() as u32).to_be_bytes());
            v.extend_from_slice(&lz4_flex::block::compress(body));
            Some(v)
        }
        Compression::Snappy => snap::raw::Encoder::new().compress_vec(body).ok(),
    }
}

fn put_header(out: &mut BytesMut, version: u8, flags: u8, stream: i16, op: u8, len: usize) {
    out.put_u8(version | RESPONSE_BIT);
    out.put_u8(flags);
    out.put_i16(stream);
    out.put_u8(op);
    out.put_u32(len as u32);
}

impl ServerCodec {
    pub fn new(max_frame_size: usize) -> Self {
        ServerCodec {
            max_frame_size: max_frame_size.max(HEADER_LEN),
            version: None,
            compression: Compression::None,
            v5_framing: false,
            discard: 0,
            pending: BytesMut::new(),
            pending_self_contained: false,
        }
    }

    /// The protocol version of this connection, fixed by its first frame.
    pub fn version(&self) -> Option<u8> {
        self.version
    }

    pub fn compression(&self) -> Compression {
        self.compression
    }

    pub fn is_v5_framing(&self) -> bool {
        self.v5_framing
    }

    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Set the compression negotiated by STARTUP; call after writing the READY/AUTHENTICATE
    /// response (which must go out uncompressed).
    pub fn set_compression(&mut self, c: Compression) {
        self.compression = c;
    }

    /// Switch both directions to v5 segment framing; call after writing READY/AUTHENTICATE for a
    /// v5 STARTUP.
    pub fn enable_v5_framing(&mut self) {
        self.v5_framing = true;
        self.discard = 0;
        if self.version.is_none() {
            self.version = Some(5);
        }
    }

    fn segment_lz4(&self) -> bool {
        self.compression == Compression::Lz4
    }

    /// Decode the next complete message from `buf` (consuming it), or `Ok(None)` if more bytes
    /// are needed. After an error other than [`ProtocolError::FrameTooLarge`] the connection
    /// state is undefined: report the error and close.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        if self.v5_framing {
            self.decode_v5(buf)
        } else {
            self.decode_legacy(buf)
        }
    }

    fn check_version(&self, h: &Header) -> Result<u8, ProtocolError> {
        let v = h.version_byte & VERSION_MASK;
        if let Some(cur) = self.version {
            if cur != v {
                return Err(ProtocolError::Malformed {
                    message: format!(
                        "Invalid message version. Got {v} but previous messages on this connection had version {cur}"
                    ),
                    stream: Some(h.stream),
                });
            }
        }
        Ok(v)
    }

    fn decode_legacy(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        if self.discard > 0 {
            let n = self.discard.min(buf.len());
            buf.advance(n);
            self.discard -= n;
            if self.discard > 0 {
                return Ok(None);
            }
        }
        if buf.is_empty() {
            return Ok(None);
        }
        let v = buf[0] & VERSION_MASK;
        if !SUPPORTED_VERSIONS.contains(&v) {
            // Wait for the stream id so the client can match the error to its request.
            let stream = if v <= 2 {
                if buf.len() < 3 {
                    return Ok(None);
                }
                buf[2] as i8 as i16
            } else {
                if buf.len() < 4 {
                    return Ok(None);
                }
                i16::from_be_bytes([buf[2], buf[3]])
            };
            return Err(ProtocolError::UnsupportedVersion { version: v, stream });
        }
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let h = parse_header(&buf[..HEADER_LEN]);
        let total = HEADER_LEN.saturating_add(h.length);
        if total > self.max_frame_size {
            let n = total.min(buf.len());
            buf.advance(n);
            self.discard = total - n;
            return Err(ProtocolError::FrameTooLarge {
                size: total,
                max: self.max_frame_size,
                stream: Some(h.stream),
            });
        }
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        let mut raw = buf.split_to(total).freeze();
        raw.advance(HEADER_LEN);
        let version = self.check_version(&h)?;
        check_opcode(&h)?;
        self.version = Some(version);
        let mut fl = h.flags;
        let body = if fl & flags::COMPRESSION != 0 && version < 5 {
            fl &= !flags::COMPRESSION;
            decompress_body(self.compression, raw, self.max_frame_size, h.stream)?
        } else {
            // v5 never compresses envelopes (compression applies to segments); like the drivers,
            // ignore the flag there.
            fl &= !flags::COMPRESSION;
            raw
        };
        Ok(Some(Frame {
            version,
            flags: fl,
            stream: h.stream,
            opcode: h.opcode,
            body,
        }))
    }

    fn decode_v5(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        loop {
            if let Some(f) = self.take_envelope()? {
                return Ok(Some(f));
            }
            let seg = match segment::decode_segment(buf, self.segment_lz4())? {
                None => return Ok(None),
                Some(s) => s,
            };
            if seg.self_contained {
                if !self.pending.is_empty() {
                    return Err(ProtocolError::malformed(
                        "Received a self-contained segment while a multi-segment message was incomplete",
                    ));
                }
                self.pending_self_contained = true;
            } else {
                self.pending_self_contained = false;
            }
            self.pending.extend_from_slice(&seg.payload);
        }
    }

    fn take_envelope(&mut self) -> Result<Option<Frame>, ProtocolError> {
        if self.discard > 0 {
            let n = self.discard.min(self.pending.len());
            self.pending.advance(n);
            self.discard -= n;
        }
        let incomplete = |sc: bool| {
            if sc {
                Err(ProtocolError::malformed(
                    "Incomplete envelope in a self-contained segment",
                ))
            } else {
                Ok(None)
            }
        };
        if self.pending.is_empty() {
            self.pending_self_contained = false;
            return Ok(None);
        }
        if self.pending.len() < HEADER_LEN {
            return incomplete(self.pending_self_contained);
        }
        let h = parse_header(&self.pending[..HEADER_LEN]);
        let total = HEADER_LEN.saturating_add(h.length);
        if total > self.max_frame_size {
            let n = total.min(self.pending.len());
            self.pending.advance(n);
            self.discard = total - n;
            return Err(ProtocolError::FrameTooLarge {
                size: total,
                max: self.max_frame_size,
                stream: Some(h.stream),
            });
        }
        if self.pending.len() < total {
            return incomplete(self.pending_self_contained);
        }
        let mut raw = self.pending.split_to(total).freeze();
        raw.advance(HEADER_LEN);
        let version = self.check_version(&h)?;
        check_opcode(&h)?;
        Ok(Some(Frame {
            version,
            flags: h.flags & !flags::COMPRESSION,
            stream: h.stream,
            opcode: h.opcode,
            body: raw,
        }))
    }

    /// Write one envelope (header + possibly compressed body) in legacy layout.
    fn put_envelope(&self, frame: &Frame, out: &mut BytesMut) {
        let mut fl = frame.flags & !flags::COMPRESSION;
        let compressed = if !self.v5_framing && frame.version < 5 && !frame.body.is_empty() {
            compress_body(self.compression, &frame.body)
        } else {
            None
        };
        match compressed {
            Some(c) => {
                fl |= flags::COMPRESSION;
                put_header(out, frame.version, fl, frame.stream, frame.opcode, c.len());
                out.put_slice(&c);
            }
            None => {
                put_header(
                    out,
                    frame.version,
                    fl,
                    frame.stream,
                    frame.opcode,
                    frame.body.len(),
                );
                out.put_slice(&frame.body);
            }
        }
    }

    /// Encode a response/event envelope into `out` (applying compression / v5 segment framing as
    /// configured). The direction bit is set here.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) {
        if self.v5_framing {
            let mut env = BytesMut::with_capacity(HEADER_LEN + frame.body.len());
            self.put_envelope(frame, &mut env);
            segment::encode_message(&env, self.segment_lz4(), out);
        } else {
            self.put_envelope(frame, out);
        }
    }

    /// Encode several envelopes; in v5, consecutive small envelopes are packed into shared
    /// self-contained segments.
    pub fn encode_batch(&mut self, frames: &[Frame], out: &mut BytesMut) {
        if !self.v5_framing {
            for f in frames {
                self.put_envelope(f, out);
            }
            return;
        }
        let lz4 = self.segment_lz4();
        let mut cur = BytesMut::new();
        for f in frames {
            let len = HEADER_LEN + f.body.len();
            if len > MAX_PAYLOAD_LENGTH {
                if !cur.is_empty() {
                    segment::encode_segment(&cur, true, lz4, out);
                    cur.clear();
                }
                let mut env = BytesMut::with_capacity(len);
                self.put_envelope(f, &mut env);
                segment::encode_message(&env, lz4, out);
                continue;
            }
            if cur.len() + len > MAX_PAYLOAD_LENGTH {
                segment::encode_segment(&cur, true, lz4, out);
                cur.clear();
            }
            self.put_envelope(f, &mut cur);
        }
        if !cur.is_empty() {
            segment::encode_segment(&cur, true, lz4, out);
        }
    }

    /// Encode the ERROR response for a protocol error, in this connection's version and framing.
    /// Unsupported versions are answered as [`encode_protocol_error`] does.
    pub fn encode_error(&mut self, err: &ProtocolError, out: &mut BytesMut) {
        if matches!(err, ProtocolError::UnsupportedVersion { .. }) || self.version.is_none() {
            encode_protocol_error(err, out);
            return;
        }
        let version = self.version.unwrap_or(4);
        let frame = Envelope::new(
            err.stream().unwrap_or(0),
            Response::Error(err.to_error_body()),
        )
        .to_frame(version);
        self.encode(&frame, out);
    }
}

/// Encode a standalone (legacy-framed, uncompressed) error frame for a protocol error, usable
/// before the connection has a state.
///
/// Like Cassandra, an unsupported version is answered in a header the client can parse: the
/// client's own version for the old versions 1-3 (v1/v2 with their 8-byte header), otherwise
/// our highest version. The message contains "Invalid or unsupported protocol version", which
/// drivers look for to downgrade. Other errors use a v4 header.
pub fn encode_protocol_error(err: &ProtocolError, out: &mut BytesMut) {
    let stream = err.stream().unwrap_or(0);
    let version = match err {
        ProtocolError::UnsupportedVersion { version, .. } if (1..=3).contains(version) => *version,
        ProtocolError::UnsupportedVersion { .. } => MAX_SUPPORTED_VERSION,
        _ => 4,
    };
    let mut body = BytesMut::new();
    Response::Error(err.to_error_body()).encode_body(version.max(4), &mut body);
    if version <= 2 {
        out.put_u8(version | RESPONSE_BIT);
        out.put_u8(0);
        out.put_i8(stream as i8);
        out.put_u8(opcode::ERROR);
        out.put_u32(body.len() as u32);
        out.put_slice(&body);
    } else {
        put_header(out, version, 0, stream, opcode::ERROR, body.len());
        out.put_slice(&body);
    }
}
