//! CQL native protocol v4/v5 codec (server side).
//!
//! * [`ServerCodec`] turns the raw byte stream of a connection into [`Frame`]s (legacy v4-style
//!   frames, or v5 envelopes carried in CRC-protected segments) and back.
//! * [`messages`] decodes request bodies and encodes response bodies.

pub mod codec;
pub mod messages;
pub mod segment;
mod wire;

pub use codec::{encode_protocol_error, Compression, ServerCodec};
pub use messages::{write_type_option, Envelope, Request, Response};

use bytes::Bytes;

/// Default maximum size of one message envelope (header + body).
pub const MAX_FRAME_SIZE_DEFAULT: usize = 16 * 1024 * 1024;

/// Protocol versions this crate speaks, lowest first.
pub const SUPPORTED_VERSIONS: &[u8] = &[4, 5];
/// Highest supported version; used for error frames when the client's version is unusable.
pub const MAX_SUPPORTED_VERSION: u8 = 5;

/// Length of a legacy frame / v5 envelope header.
pub const HEADER_LEN: usize = 9;

/// Message opcodes.
pub mod opcode {
    pub const ERROR: u8 = 0x00;
    pub const STARTUP: u8 = 0x01;
    pub const READY: u8 = 0x02;
    pub const AUTHENTICATE: u8 = 0x03;
    pub const OPTIONS: u8 = 0x05;
    pub const SUPPORTED: u8 = 0x06;
    pub const QUERY: u8 = 0x07;
    pub const RESULT: u8 = 0x08;
    pub const PREPARE: u8 = 0x09;
    pub const EXECUTE: u8 = 0x0A;
    pub const REGISTER: u8 = 0x0B;
    pub const EVENT: u8 = 0x0C;
    pub const BATCH: u8 = 0x0D;
    pub const AUTH_CHALLENGE: u8 = 0x0E;
    pub const AUTH_RESPONSE: u8 = 0x0F;
    pub const AUTH_SUCCESS: u8 = 0x10;

    /// Is `op` an opcode a client may send?
    pub fn is_request(op: u8) -> bool {
        matches!(
            op,
            STARTUP | OPTIONS | QUERY | PREPARE | EXECUTE | REGISTER | BATCH | AUTH_RESPONSE
        )
    }

    /// Is `op` an opcode a server may send?
    pub fn is_response(op: u8) -> bool {
        matches!(
            op,
            ERROR
                | READY
                | AUTHENTICATE
                | SUPPORTED
                | RESULT
                | EVENT
                | AUTH_CHALLENGE
                | AUTH_SUCCESS
        )
    }
}

/// Frame header flags.
pub mod flags {
    pub const COMPRESSION: u8 = 0x01;
    pub const TRACING: u8 = 0x02;
    pub const CUSTOM_PAYLOAD: u8 = 0x04;
    pub const WARNING: u8 = 0x08;
    pub const USE_BETA: u8 = 0x10;
}

/// Error codes of ERROR responses.
pub mod error_code {
    pub const SERVER_ERROR: i32 = 0x0000;
    pub const PROTOCOL_ERROR: i32 = 0x000A;
    pub const BAD_CREDENTIALS: i32 = 0x0100;
    pub const UNAVAILABLE: i32 = 0x1000;
    pub const OVERLOADED: i32 = 0x1001;
    pub const IS_BOOTSTRAPPING: i32 = 0x1002;
    pub const TRUNCATE_ERROR: i32 = 0x1003;
    pub const WRITE_TIMEOUT: i32 = 0x1100;
    pub const READ_TIMEOUT: i32 = 0x1200;
    pub const READ_FAILURE: i32 = 0x1300;
    pub const FUNCTION_FAILURE: i32 = 0x1400;
    pub const WRITE_FAILURE: i32 = 0x1500;
    pub const CDC_WRITE_FAILURE: i32 = 0x1600;
    pub const CAS_WRITE_UNKNOWN: i32 = 0x1700;
    pub const SYNTAX_ERROR: i32 = 0x2000;
    pub const UNAUTHORIZED: i32 = 0x2100;
    pub const INVALID: i32 = 0x2200;
    pub const CONFIG_ERROR: i32 = 0x2300;
    pub const ALREADY_EXISTS: i32 = 0x2400;
    pub const UNPREPARED: i32 = 0x2500;
}

/// Consistency levels.
pub mod consistency {
    pub const ANY: u16 = 0;
    pub const ONE: u16 = 1;
    pub const TWO: u16 = 2;
    pub const THREE: u16 = 3;
    pub const QUORUM: u16 = 4;
    pub const ALL: u16 = 5;
    pub const LOCAL_QUORUM: u16 = 6;
    pub const EACH_QUORUM: u16 = 7;
    pub const SERIAL: u16 = 8;
    pub const LOCAL_SERIAL: u16 = 9;
    pub const LOCAL_ONE: u16 = 10;

    /// Cassandra's name of a consistency level (`"LOCAL_QUORUM"`), `"UNKNOWN"` for others.
    pub fn name(c: u16) -> &'static str {
        match c {
            ANY => "ANY",
            ONE => "ONE",
            TWO => "TWO",
            THREE => "THREE",
            QUORUM => "QUORUM",
            ALL => "ALL",
            LOCAL_QUORUM => "LOCAL_QUORUM",
            EACH_QUORUM => "EACH_QUORUM",
            SERIAL => "SERIAL",
            LOCAL_SERIAL => "LOCAL_SERIAL",
            LOCAL_ONE => "LOCAL_ONE",
            _ => "UNKNOWN",
        }
    }

    /// Inverse of [`name`] (case-insensitive).
    pub fn from_name(s: &str) -> Option<u16> {
        (0..=LOCAL_ONE).find(|&c| name(c).eq_ignore_ascii_case(s))
    }
}

/// One CQL message envelope (a v4 frame, or a v5 envelope inside segments). Body already
/// decompressed. `version` is without the direction bit; `flags` never has COMPRESSION set
/// after decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub version: u8,
    pub flags: u8,
    pub stream: i16,
    pub opcode: u8,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The client asked for a version we don't speak. `version` is what it sent (direction bit
    /// masked off); answer with [`encode_protocol_error`] and close.
    #[error(
        "Invalid or unsupported protocol version ({version}); supported versions are ({})",
        supported_versions_list()
    )]
    UnsupportedVersion { version: u8, stream: i16 },
    /// Malformed input; `stream` when known.
    #[error("{message}")]
    Malformed {
        message: String,
        stream: Option<i16>,
    },
    /// An envelope larger than the configured maximum. In legacy (pre-v5) framing the codec skips
    /// the oversized frame, so the connection can go on after an error response.
    #[error("Request is too big: length {size} exceeds maximum allowed length {max}.")]
    FrameTooLarge {
        size: usize,
        max: usize,
        stream: Option<i16>,
    },
    /// A v5 segment whose header or payload checksum does not match. Fatal for the connection.
    #[error("{message}")]
    Crc { message: String },
}

/// `"4/v4, 5/v5"`
pub fn supported_versions_list() -> String {
    SUPPORTED_VERSIONS
        .iter()
        .map(|v| format!("{v}/v{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ProtocolError {
    pub fn malformed(message: impl Into<String>) -> Self {
        ProtocolError::Malformed {
            message: message.into(),
            stream: None,
        }
    }

    /// The stream the error relates to, if known.
    pub fn stream(&self) -> Option<i16> {
        match self {
            ProtocolError::UnsupportedVersion { stream, .. } => Some(*stream),
            ProtocolError::Malformed { stream, .. }
            | ProtocolError::FrameTooLarge { stream, .. } => *stream,
            ProtocolError::Crc { .. } => None,
        }
    }

    /// Attach a stream id if none is known yet.
    pub fn with_stream(mut self, s: i16) -> Self {
        match &mut self {
            ProtocolError::Malformed { stream, .. }
            | ProtocolError::FrameTooLarge { stream, .. } => {
                if stream.is_none() {
                    *stream = Some(s);
                }
            }
            ProtocolError::UnsupportedVersion { .. } | ProtocolError::Crc { .. } => {}
        }
        self
    }

    /// The ERROR code Cassandra uses for this error: INVALID for an oversized request,
    /// PROTOCOL_ERROR otherwise.
    pub fn error_code(&self) -> i32 {
        match self {
            ProtocolError::FrameTooLarge { .. } => error_code::INVALID,
            _ => error_code::PROTOCOL_ERROR,
        }
    }

    /// Whether the connection must be closed after reporting this error. Only an oversized
    /// legacy frame is recoverable (the codec skipped it).
    pub fn is_fatal(&self) -> bool {
        !matches!(self, ProtocolError::FrameTooLarge { .. })
    }

    /// The ERROR response body to send for this error.
    pub fn to_error_body(&self) -> messages::ErrorBody {
        messages::ErrorBody {
            code: self.error_code(),
            message: self.to_string(),
            details: messages::ErrorDetails::None,
        }
    }
}
