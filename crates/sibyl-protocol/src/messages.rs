//! Request bodies (decoded by the server) and response bodies (encoded by the server); the other
//! direction of each exists for tests and benchmark clients.

use crate::wire::{self, Reader, Result};
use crate::{error_code, flags, opcode, Frame, ProtocolError};
use bytes::{BufMut, Bytes, BytesMut};
use sibyl_types::{CqlType, UdtDef};
use std::net::{IpAddr, SocketAddr};
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

// ---------------------------------------------------------------- requests

/// A bound value: [value] in the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoundValue {
    Null,
    Unset,
    Value(Bytes),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Values {
    #[default]
    None,
    Positional(Vec<BoundValue>),
    Named(Vec<(String, BoundValue)>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::None => 0,
            Values::Positional(v) => v.len(),
            Values::Named(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// <query_parameters> of QUERY and EXECUTE.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueryParams {
    pub consistency: u16,
    pub values: Values,
    pub skip_metadata: bool,
    pub page_size: Option<i32>,
    pub paging_state: Option<Bytes>,
    pub serial_consistency: Option<u16>,
    pub default_timestamp: Option<i64>,
    /// v5 only.
    pub keyspace: Option<String>,
    /// v5 only.
    pub now_in_seconds: Option<i32>,
}

/// Query flags.
pub mod query_flags {
    pub const VALUES: u32 = 0x01;
    pub const SKIP_METADATA: u32 = 0x02;
    pub const PAGE_SIZE: u32 = 0x04;
    pub const PAGING_STATE: u32 = 0x08;
    pub const SERIAL_CONSISTENCY: u32 = 0x10;
    pub const DEFAULT_TIMESTAMP: u32 = 0x20;
    pub const NAMES_FOR_VALUES: u32 = 0x40;
    pub const KEYSPACE: u32 = 0x80;
    pub const NOW_IN_SECONDS: u32 = 0x100;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchQuery {
    Query(String),
    Prepared(Bytes),
}

/// Batch kinds.
pub mod batch_kind {
    pub const LOGGED: u8 = 0;
    pub const UNLOGGED: u8 = 1;
    pub const COUNTER: u8 = 2;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRequest {
    pub kind: u8,
    pub statements: Vec<(BatchQuery, Vec<BoundValue>)>,
    pub consistency: u16,
    pub serial_consistency: Option<u16>,
    pub default_timestamp: Option<i64>,
    pub keyspace: Option<String>,
    pub now_in_seconds: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Startup(Vec<(String, String)>),
    Options,
    Query {
        query: String,
        params: QueryParams,
    },
    Prepare {
        query: String,
        /// v5 only.
        keyspace: Option<String>,
    },
    Execute {
        id: Bytes,
        /// v5 only (always present there).
        result_metadata_id: Option<Bytes>,
        params: QueryParams,
    },
    Batch(BatchRequest),
    Register(Vec<String>),
    AuthResponse(Option<Bytes>),
}

/// A decoded request with its envelope-level extras.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestEnvelope {
    pub version: u8,
    pub stream: i16,
    /// The client asked for tracing (flag 0x02).
    pub tracing: bool,
    pub custom_payload: Vec<(String, Bytes)>,
    pub request: Request,
}

fn read_flags(r: &mut Reader, version: u8) -> Result<u32> {
    if version >= 5 {
        r.u32()
    } else {
        Ok(r.u8()? as u32)
    }
}

fn put_flags(out: &mut BytesMut, version: u8, f: u32) {
    if version >= 5 {
        out.put_u32(f);
    } else {
        out.put_u8(f as u8);
    }
}

fn read_positional(r: &mut Reader) -> Result<Vec<BoundValue>> {
    let n = r.u16()? as usize;
    let n = r.check_count(n, 4, "values")?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(r.value()?);
    }
    Ok(v)
}

fn put_positional(out: &mut BytesMut, vals: &[BoundValue]) {
    out.put_u16(vals.len() as u16);
    for v in vals {
        wire::put_value(out, v);
    }
}

impl QueryParams {
    pub fn decode(r: &mut Bytes, version: u8) -> std::result::Result<QueryParams, ProtocolError> {
        let mut rd = Reader::new(r.clone());
        let p = Self::read(&mut rd, version)?;
        *r = rd.rest();
        Ok(p)
    }

    fn read(r: &mut Reader, version: u8) -> Result<QueryParams> {
        use query_flags::*;
        let consistency = r.u16()?;
        let f = read_flags(r, version)?;
        let values = if f & VALUES != 0 {
            if f & NAMES_FOR_VALUES != 0 {
                let n = r.u16()? as usize;
                let n = r.check_count(n, 6, "named values")?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    let name = r.string()?;
                    v.push((name, r.value()?));
                }
                Values::Named(v)
            } else {
                Values::Positional(read_positional(r)?)
            }
        } else {
            Values::None
        };
        let page_size = if f & PAGE_SIZE != 0 {
            Some(r.i32()?)
        } else {
            None
        };
        let paging_state = if f & PAGING_STATE != 0 {
            r.bytes()?
        } else {
            None
        };
        let serial_consistency = if f & SERIAL_CONSISTENCY != 0 {
            Some(r.u16()?)
        } else {
            None
        };
        let default_timestamp = if f & DEFAULT_TIMESTAMP != 0 {
            Some(r.i64()?)
        } else {
            None
        };
        let keyspace = if version >= 5 && f & KEYSPACE != 0 {
            Some(r.string()?)
        } else {
            None
        };
        let now_in_seconds = if version >= 5 && f & NOW_IN_SECONDS != 0 {
            Some(r.i32()?)
        } else {
            None
        };
        Ok(QueryParams {
            consistency,
            values,
            skip_metadata: f & SKIP_METADATA != 0,
            page_size,
            paging_state,
            serial_consistency,
            default_timestamp,
            keyspace,
            now_in_seconds,
        })
    }

    pub fn encode(&self, version: u8, out: &mut BytesMut) {
        use query_flags::*;
        let mut f = 0u32;
        match &self.values {
            Values::None => {}
            Values::Positional(_) => f |= VALUES,
            Values::Named(_) => f |= VALUES | NAMES_FOR_VALUES,
        }
        if self.skip_metadata {
            f |= SKIP_METADATA;
        }
        if self.page_size.is_some() {
            f |= PAGE_SIZE;
        }
        if self.paging_state.is_some() {
            f |= PAGING_STATE;
        }
        if self.serial_consistency.is_some() {
            f |= SERIAL_CONSISTENCY;
        }
        if self.default_timestamp.is_some() {
            f |= DEFAULT_TIMESTAMP;
        }
        if version >= 5 && self.keyspace.is_some() {
            f |= KEYSPACE;
        }
        if version >= 5 && self.now_in_seconds.is_some() {
            f |= NOW_IN_SECONDS;
        }
        out.put_u16(self.consistency);
        put_flags(out, version, f);
        match &self.values {
            Values::None => {}
            Values::Positional(v) => put_positional(out, v),
            Values::Named(v) => {
                out.put_u16(v.len() as u16);
                for (n, val) in v {
                    wire::put_string(out, n);
                    wire::put_value(out, val);
                }
            }
        }
        if let Some(p) = self.page_size {
            out.put_i32(p);
        }
        if let Some(p) = &self.paging_state {
            wire::put_bytes(out, Some(p));
        }
        if let Some(s) = self.serial_consistency {
            out.put_u16(s);
        }
        if let Some(t) = self.default_timestamp {
            out.put_i64(t);
        }
        if version >= 5 {
            if let Some(k) = &self.keyspace {
                wire::put_string(out, k);
            }
            if let Some(n) = self.now_in_seconds {
                out.put_i32(n);
            }
        }
    }
}

const BATCH_SERIAL: u32 = 0x10;
const BATCH_TIMESTAMP: u32 = 0x20;
const BATCH_NAMES: u32 = 0x40;

impl Request {
    pub fn opcode(&self) -> u8 {
        match self {
            Request::Startup(_) => opcode::STARTUP,
            Request::Options => opcode::OPTIONS,
            Request::Query { .. } => opcode::QUERY,
            Request::Prepare { .. } => opcode::PREPARE,
            Request::Execute { .. } => opcode::EXECUTE,
            Request::Batch(_) => opcode::BATCH,
            Request::Register(_) => opcode::REGISTER,
            Request::AuthResponse(_) => opcode::AUTH_RESPONSE,
        }
    }

    /// Decode a request body (without any custom payload prefix; see [`Request::from_frame`]).
    pub fn decode(version: u8, op: u8, body: Bytes) -> std::result::Result<Request, ProtocolError> {
        let mut r = Reader::new(body);
        Ok(match op {
            opcode::STARTUP => Request::Startup(r.string_map()?),
            opcode::OPTIONS => Request::Options,
            opcode::QUERY => {
                let query = r.long_string()?;
                let params = QueryParams::read(&mut r, version)?;
                Request::Query { query, params }
            }
            opcode::PREPARE => {
                let query = r.long_string()?;
                let mut keyspace = None;
                if version >= 5 && r.remaining() > 0 {
                    let f = r.u32()?;
                    if f & 0x01 != 0 {
                        keyspace = Some(r.string()?);
                    }
                }
                Request::Prepare { query, keyspace }
            }
            opcode::EXECUTE => {
                let id = r.short_bytes()?;
                let result_metadata_id = if version >= 5 {
                    Some(r.short_bytes()?)
                } else {
                    None
                };
                let params = QueryParams::read(&mut r, version)?;
                Request::Execute {
                    id,
                    result_metadata_id,
                    params,
                }
            }
            opcode::BATCH => Request::Batch(Self::read_batch(&mut r, version)?),
            opcode::REGISTER => Request::Register(r.string_list()?),
            opcode::AUTH_RESPONSE => Request::AuthResponse(r.bytes()?),
            op => return Err(ProtocolError::malformed(format!("Unknown opcode {op}"))),
        })
    }

    fn read_batch(r: &mut Reader, version: u8) -> Result<BatchRequest> {
        let kind = r.u8()?;
        if kind > batch_kind::COUNTER {
            return Err(ProtocolError::malformed(format!(
                "Invalid BATCH message type {kind}"
            )));
        }
        let n = r.u16()? as usize;
        let n = r.check_count(n, 5, "batch statements")?;
        let mut statements = Vec::with_capacity(n);
        for _ in 0..n {
            let k = r.u8()?;
            let q = match k {
                0 => BatchQuery::Query(r.long_string()?),
                1 => BatchQuery::Prepared(r.short_bytes()?),
                k => {
                    return Err(ProtocolError::malformed(format!(
                        "Invalid query kind in BATCH messages. Must be 0 or 1 but got {k}"
                    )))
                }
            };
            statements.push((q, read_positional(r)?));
        }
        let consistency = r.u16()?;
        let f = read_flags(r, version)?;
        if f & BATCH_NAMES != 0 {
            return Err(ProtocolError::malformed(
                "Alternative syntax for values with names is not supported in BATCH",
            ));
        }
        let serial_consistency = if f & BATCH_SERIAL != 0 {
            Some(r.u16()?)
        } else {
            None
        };
        let default_timestamp = if f & BATCH_TIMESTAMP != 0 {
            Some(r.i64()?)
        } else {
            None
        };
        let keyspace = if version >= 5 && f & query_flags::KEYSPACE != 0 {
            Some(r.string()?)
        } else {
            None
        };
        let now_in_seconds = if version >= 5 && f & query_flags::NOW_IN_SECONDS != 0 {
            Some(r.i32()?)
        } else {
            None
        };
        Ok(BatchRequest {
            kind,
            statements,
            consistency,
            serial_consistency,
            default_timestamp,
            keyspace,
            now_in_seconds,
        })
    }

    /// Decode a request frame: strips the custom payload (flag 0x04) and puts the frame's stream
    /// into errors.
    pub fn from_frame(frame: &Frame) -> std::result::Result<RequestEnvelope, ProtocolError> {
        let inner = || -> Result<RequestEnvelope> {
            let mut body = frame.body.clone();
            let mut custom_payload = Vec::new();
            if frame.flags & flags::CUSTOM_PAYLOAD != 0 {
                let mut r = Reader::new(body);
                custom_payload = r.bytes_map()?;
                body = r.rest();
            }
            let request = Request::decode(frame.version, frame.opcode, body)?;
            Ok(RequestEnvelope {
                version: frame.version,
                stream: frame.stream,
                tracing: frame.flags & flags::TRACING != 0,
                custom_payload,
                request,
            })
        };
        inner().map_err(|e| e.with_stream(frame.stream))
    }

    /// Encode the request body (for tests and benchmark clients).
    pub fn encode(&self, version: u8, out: &mut BytesMut) {
        match self {
            Request::Startup(m) => wire::put_string_map(out, m),
            Request::Options => {}
            Request::Query { query, params } => {
                wire::put_long_string(out, query);
                params.encode(version, out);
            }
            Request::Prepare { query, keyspace } => {
                wire::put_long_string(out, query);
                if version >= 5 {
                    match keyspace {
                        Some(k) => {
                            out.put_u32(1);
                            wire::put_string(out, k);
                        }
                        None => out.put_u32(0),
                    }
                }
            }
            Request::Execute {
                id,
                result_metadata_id,
                params,
            } => {
                wire::put_short_bytes(out, id);
                if version >= 5 {
                    wire::put_short_bytes(out, result_metadata_id.as_deref().unwrap_or(&[]));
                }
                params.encode(version, out);
            }
            Request::Batch(b) => {
                out.put_u8(b.kind);
                out.put_u16(b.statements.len() as u16);
                for (q, vals) in &b.statements {
                    match q {
                        BatchQuery::Query(s) => {
                            out.put_u8(0);
                            wire::put_long_string(out, s);
                        }
                        BatchQuery::Prepared(id) => {
                            out.put_u8(1);
                            wire::put_short_bytes(out, id);
                        }
                    }
                    put_positional(out, vals);
                }
                out.put_u16(b.consistency);
                let mut f = 0;
                if b.serial_consistency.is_some() {
                    f |= BATCH_SERIAL;
                }
                if b.default_timestamp.is_some() {
                    f |= BATCH_TIMESTAMP;
                }
                if version >= 5 && b.keyspace.is_some() {
                    f |= query_flags::KEYSPACE;
                }
                if version >= 5 && b.now_in_seconds.is_some() {
                    f |= query_flags::NOW_IN_SECONDS;
                }
                put_flags(out, version, f);
                if let Some(s) = b.serial_consistency {
                    out.put_u16(s);
                }
                if let Some(t) = b.default_timestamp {
                    out.put_i64(t);
                }
                if version >= 5 {
                    if let Some(k) = &b.keyspace {
                        wire::put_string(out, k);
                    }
                    if let Some(n) = b.now_in_seconds {
                        out.put_i32(n);
                    }
                }
            }
            Request::Register(l) => wire::put_string_list(out, l),
            Request::AuthResponse(t) => wire::put_bytes(out, t.as_deref()),
        }
    }

    /// A request frame (direction bit clear) for tests and clients; the caller writes it as a
    /// legacy header + body or wraps it in segments.
    pub fn to_frame(&self, version: u8, stream: i16) -> Frame {
        let mut body = BytesMut::new();
        self.encode(version, &mut body);
        Frame {
            version,
            flags: 0,
            stream,
            opcode: self.opcode(),
            body: body.freeze(),
        }
    }
}

/// Write a request frame with a legacy header (direction bit clear), uncompressed.
pub fn write_request_frame(frame: &Frame, out: &mut BytesMut) {
    out.put_u8(frame.version & 0x7f);
    out.put_u8(frame.flags);
    out.put_i16(frame.stream);
    out.put_u8(frame.opcode);
    out.put_u32(frame.body.len() as u32);
    out.put_slice(&frame.body);
}

// ---------------------------------------------------------------- responses

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    pub keyspace: String,
    pub table: String,
    pub name: String,
    pub ty: CqlType,
}

/// The column specs of a result, with their wire form encoded on first use and kept. The
/// answers of one prepared statement share one, so each copies its metadata's bytes instead
/// of cloning and re-encoding every name and type.
#[derive(Clone, Default)]
pub struct ResultColumns(Arc<ColumnsInner>);

#[derive(Default)]
struct ColumnsInner {
    specs: Vec<ColumnSpec>,
    /// Whether one keyspace and table cover every column, and the specs as written.
    wire: OnceLock<(bool, Vec<u8>)>,
}

impl ResultColumns {
    pub fn new(specs: Vec<ColumnSpec>) -> Self {
        ResultColumns(Arc::new(ColumnsInner {
            specs,
            wire: OnceLock::new(),
        }))
    }

    fn wire(&self) -> &(bool, Vec<u8>) {
        self.0.wire.get_or_init(|| {
            let global = global_spec(&self.0.specs);
            let mut out = BytesMut::new();
            put_col_specs(&mut out, &self.0.specs, global);
            (global.is_some(), out.to_vec())
        })
    }
}

impl Deref for ResultColumns {
    type Target = [ColumnSpec];
    fn deref(&self) -> &[ColumnSpec] {
        &self.0.specs
    }
}

impl From<Vec<ColumnSpec>> for ResultColumns {
    fn from(specs: Vec<ColumnSpec>) -> Self {
        ResultColumns::new(specs)
    }
}

impl PartialEq for ResultColumns {
    fn eq(&self, other: &Self) -> bool {
        self.0.specs == other.0.specs
    }
}

impl Eq for ResultColumns {}

impl std::fmt::Debug for ResultColumns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.specs.fmt(f)
    }
}

/// Metadata of a ROWS result (also the result metadata of PREPARED).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RowsMetadata {
    /// With `no_metadata`, only the count of `columns` is written.
    pub columns: ResultColumns,
    pub paging_state: Option<Bytes>,
    pub no_metadata: bool,
    /// v5: set when the metadata changed since the client's result_metadata_id (flag 0x08).
    pub new_metadata_id: Option<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rows {
    pub metadata: RowsMetadata,
    pub row_count: i32,
    /// `row_count * columns` cells, each a [bytes].
    pub content: Bytes,
}

impl Rows {
    /// A result with full metadata for `columns` and the rows `w` wrote.
    pub fn from_writer(
        columns: impl Into<ResultColumns>,
        paging_state: Option<Bytes>,
        w: RowsWriter,
    ) -> Rows {
        let (row_count, content) = w.finish();
        Rows {
            metadata: RowsMetadata {
                columns: columns.into(),
                paging_state,
                no_metadata: false,
                new_metadata_id: None,
            },
            row_count,
            content,
        }
    }
}

/// Builds the `content` of [`Rows`].
#[derive(Debug, Default)]
pub struct RowsWriter {
    buf: BytesMut,
    rows: i32,
}

impl RowsWriter {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with_capacity(bytes: usize) -> Self {
        RowsWriter {
            buf: BytesMut::with_capacity(bytes),
            rows: 0,
        }
    }
    /// Append one cell (`None` = null).
    pub fn push_cell(&mut self, cell: Option<&[u8]>) {
        let need = 4 + cell.map_or(0, <[u8]>::len);
        if self.buf.capacity() - self.buf.len() < need {
            // Grow geometrically from a small result's size: growing by exactly what each
            // cell needs reallocated (and copied) the buffer for nearly every cell.
            self.buf.reserve(need.max(self.buf.len()).max(256));
        }
        wire::put_bytes(&mut self.buf, cell);
    }
    /// Mark the end of the current row.
    pub fn finish_row(&mut self) {
        self.rows += 1;
    }
    pub fn row_count(&self) -> i32 {
        self.rows
    }
    /// Bytes written so far (to cap page sizes).
    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }
    pub fn finish(self) -> (i32, Bytes) {
        (self.rows, self.buf.freeze())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub id: Bytes,
    /// v5 only.
    pub result_metadata_id: Option<Bytes>,
    pub bind_columns: Vec<ColumnSpec>,
    pub pk_indexes: Vec<u16>,
    pub result_metadata: RowsMetadata,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaChangeTarget {
    Keyspace(String),
    Table(String, String),
    Type(String, String),
    Function(String, String, Vec<String>),
    Aggregate(String, String, Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaChange {
    /// CREATED | UPDATED | DROPPED
    pub change_type: String,
    pub target: SchemaChangeTarget,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultBody {
    Void,
    Rows(Rows),
    SetKeyspace(String),
    Prepared(Prepared),
    SchemaChange(SchemaChange),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorDetails {
    None,
    Unavailable {
        consistency: u16,
        required: i32,
        alive: i32,
    },
    WriteTimeout {
        consistency: u16,
        received: i32,
        block_for: i32,
        write_type: String,
        /// v5, write type CAS only.
        contentions: Option<u16>,
    },
    ReadTimeout {
        consistency: u16,
        received: i32,
        block_for: i32,
        data_present: bool,
    },
    /// v4 sends only the number of reasons; decoding v4 gives `reasons` of that many
    /// unspecified-address entries.
    ReadFailure {
        consistency: u16,
        received: i32,
        block_for: i32,
        reasons: Vec<(IpAddr, u16)>,
        data_present: bool,
    },
    WriteFailure {
        consistency: u16,
        received: i32,
        block_for: i32,
        reasons: Vec<(IpAddr, u16)>,
        write_type: String,
    },
    FunctionFailure {
        keyspace: String,
        function: String,
        arg_types: Vec<String>,
    },
    AlreadyExists {
        keyspace: String,
        table: String,
    },
    Unprepared {
        id: Bytes,
    },
    CasWriteUnknown {
        consistency: u16,
        received: i32,
        block_for: i32,
    },
}

/// An ERROR body. The `details` must match `code` (e.g. `Unavailable` for `UNAVAILABLE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    pub code: i32,
    pub message: String,
    pub details: ErrorDetails,
}

impl ErrorBody {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        ErrorBody {
            code,
            message: message.into(),
            details: ErrorDetails::None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// change: NEW_NODE | REMOVED_NODE
    TopologyChange {
        change: String,
        address: SocketAddr,
    },
    /// change: UP | DOWN
    StatusChange {
        change: String,
        address: SocketAddr,
    },
    SchemaChange(SchemaChange),
}

impl Event {
    /// The REGISTER event type name this event belongs to.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::TopologyChange { .. } => "TOPOLOGY_CHANGE",
            Event::StatusChange { .. } => "STATUS_CHANGE",
            Event::SchemaChange(_) => "SCHEMA_CHANGE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Error(ErrorBody),
    Ready,
    Authenticate(String),
    Supported(Vec<(String, Vec<String>)>),
    Result(ResultBody),
    Event(Event),
    AuthChallenge(Option<Bytes>),
    AuthSuccess(Option<Bytes>),
}

/// A response with its envelope-level parts: stream, tracing id, warnings, custom payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The request's stream; -1 for events.
    pub stream: i16,
    /// Set when the request asked for tracing (flag 0x02, RESULT and ERROR responses).
    pub tracing_id: Option<uuid::Uuid>,
    /// Client warnings (flag 0x08).
    pub warnings: Vec<String>,
    /// Custom payload (flag 0x04).
    pub custom_payload: Vec<(String, Bytes)>,
    pub response: Response,
}

impl Envelope {
    pub fn new(stream: i16, response: Response) -> Self {
        Envelope {
            stream,
            tracing_id: None,
            warnings: Vec::new(),
            custom_payload: Vec::new(),
            response,
        }
    }

    /// A server push: stream -1.
    pub fn event(event: Event) -> Self {
        Envelope::new(-1, Response::Event(event))
    }

    pub fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings = warnings;
        self
    }

    pub fn with_tracing_id(mut self, id: uuid::Uuid) -> Self {
        self.tracing_id = Some(id);
        self
    }

    /// Build the response frame (flags and body) for `version`.
    pub fn to_frame(&self, version: u8) -> Frame {
        let plain =
            self.tracing_id.is_none() && self.warnings.is_empty() && self.custom_payload.is_empty();
        if plain && matches!(self.response, Response::Result(ResultBody::Void)) {
            // The answer to every write: no buffer to allocate (and a second allocation for
            // the shared header when a partly filled buffer is frozen).
            static VOID: [u8; 4] = RESULT_VOID.to_be_bytes();
            return Frame {
                version,
                flags: 0,
                stream: self.stream,
                opcode: self.response.opcode(),
                body: Bytes::from_static(&VOID),
            };
        }
        // Room for the rows and a typical metadata, so encoding does not regrow the buffer
        // step by step (each step copies what was written).
        let rows = match &self.response {
            Response::Result(ResultBody::Rows(r)) => r.content.len(),
            _ => 0,
        };
        let mut body = BytesMut::with_capacity(256 + rows);
        let mut fl = 0u8;
        if let Some(id) = &self.tracing_id {
            fl |= flags::TRACING;
            body.put_slice(id.as_bytes());
        }
        if !self.warnings.is_empty() {
            fl |= flags::WARNING;
            wire::put_string_list(&mut body, &self.warnings);
        }
        if !self.custom_payload.is_empty() {
            fl |= flags::CUSTOM_PAYLOAD;
            wire::put_bytes_map(&mut body, &self.custom_payload);
        }
        self.response.encode_body(version, &mut body);
        Frame {
            version,
            flags: fl,
            stream: self.stream,
            opcode: self.response.opcode(),
            body: body.freeze(),
        }
    }

    /// Decode a response frame (tests and clients).
    pub fn from_frame(frame: &Frame) -> std::result::Result<Envelope, ProtocolError> {
        let mut r = Reader::new(frame.body.clone());
        let tracing_id = if frame.flags & flags::TRACING != 0 {
            Some(r.uuid()?)
        } else {
            None
        };
        let warnings = if frame.flags & flags::WARNING != 0 {
            r.string_list()?
        } else {
            Vec::new()
        };
        let custom_payload = if frame.flags & flags::CUSTOM_PAYLOAD != 0 {
            r.bytes_map()?
        } else {
            Vec::new()
        };
        let response = Response::decode(frame.version, frame.opcode, r.rest())?;
        Ok(Envelope {
            stream: frame.stream,
            tracing_id,
            warnings,
            custom_payload,
            response,
        })
    }
}

const ROWS_GLOBAL_TABLES_SPEC: i32 = 0x01;
const ROWS_HAS_MORE_PAGES: i32 = 0x02;
const ROWS_NO_METADATA: i32 = 0x04;
const ROWS_METADATA_CHANGED: i32 = 0x08;

fn global_spec(cols: &[ColumnSpec]) -> Option<(&str, &str)> {
    let first = cols.first()?;
    cols.iter()
        .all(|c| c.keyspace == first.keyspace && c.table == first.table)
        .then_some((first.keyspace.as_str(), first.table.as_str()))
}

fn put_col_specs(out: &mut BytesMut, cols: &[ColumnSpec], global: Option<(&str, &str)>) {
    if let Some((ks, t)) = global {
        wire::put_string(out, ks);
        wire::put_string(out, t);
    }
    for c in cols {
        if global.is_none() {
            wire::put_string(out, &c.keyspace);
            wire::put_string(out, &c.table);
        }
        wire::put_string(out, &c.name);
        write_type_option(&c.ty, out);
    }
}

fn read_col_specs(r: &mut Reader, n: usize, global: bool) -> Result<Vec<ColumnSpec>> {
    let n = r.check_count(n, 4, "columns")?;
    let g = if global {
        Some((r.string()?, r.string()?))
    } else {
        None
    };
    let mut cols = Vec::with_capacity(n);
    for _ in 0..n {
        let (keyspace, table) = match &g {
            Some((k, t)) => (k.clone(), t.clone()),
            None => (r.string()?, r.string()?),
        };
        let name = r.string()?;
        let ty = read_type_option(r)?;
        cols.push(ColumnSpec {
            keyspace,
            table,
            name,
            ty,
        });
    }
    Ok(cols)
}

impl RowsMetadata {
    pub fn encode(&self, version: u8, out: &mut BytesMut) {
        let specs = (!self.no_metadata).then(|| self.columns.wire());
        let mut f = 0;
        if specs.is_some_and(|(global, _)| *global) {
            f |= ROWS_GLOBAL_TABLES_SPEC;
        }
        if self.paging_state.is_some() {
            f |= ROWS_HAS_MORE_PAGES;
        }
        if self.no_metadata {
            f |= ROWS_NO_METADATA;
        }
        if version >= 5 && self.new_metadata_id.is_some() {
            f |= ROWS_METADATA_CHANGED;
        }
        out.put_i32(f);
        out.put_i32(self.columns.len() as i32);
        if let Some(p) = &self.paging_state {
            wire::put_bytes(out, Some(p));
        }
        if version >= 5 {
            if let Some(id) = &self.new_metadata_id {
                wire::put_short_bytes(out, id);
            }
        }
        if let Some((_, specs)) = specs {
            out.extend_from_slice(specs);
        }
    }

    fn read(r: &mut Reader, version: u8) -> Result<RowsMetadata> {
        let f = r.i32()?;
        let n = r.i32()?;
        if n < 0 {
            return Err(ProtocolError::malformed(format!(
                "Invalid column count {n}"
            )));
        }
        let paging_state = if f & ROWS_HAS_MORE_PAGES != 0 {
            r.bytes()?
        } else {
            None
        };
        let new_metadata_id = if version >= 5 && f & ROWS_METADATA_CHANGED != 0 {
            Some(r.short_bytes()?)
        } else {
            None
        };
        let no_metadata = f & ROWS_NO_METADATA != 0;
        let columns = if no_metadata {
            Vec::new()
        } else {
            read_col_specs(r, n as usize, f & ROWS_GLOBAL_TABLES_SPEC != 0)?
        };
        Ok(RowsMetadata {
            columns: columns.into(),
            paging_state,
            no_metadata,
            new_metadata_id,
        })
    }
}

fn target_name(t: &SchemaChangeTarget) -> &'static str {
    match t {
        SchemaChangeTarget::Keyspace(_) => "KEYSPACE",
        SchemaChangeTarget::Table(..) => "TABLE",
        SchemaChangeTarget::Type(..) => "TYPE",
        SchemaChangeTarget::Function(..) => "FUNCTION",
        SchemaChangeTarget::Aggregate(..) => "AGGREGATE",
    }
}

impl SchemaChange {
    pub fn encode(&self, out: &mut BytesMut) {
        wire::put_string(out, &self.change_type);
        wire::put_string(out, target_name(&self.target));
        match &self.target {
            SchemaChangeTarget::Keyspace(k) => wire::put_string(out, k),
            SchemaChangeTarget::Table(k, n) | SchemaChangeTarget::Type(k, n) => {
                wire::put_string(out, k);
                wire::put_string(out, n);
            }
            SchemaChangeTarget::Function(k, n, a) | SchemaChangeTarget::Aggregate(k, n, a) => {
                wire::put_string(out, k);
                wire::put_string(out, n);
                wire::put_string_list(out, a);
            }
        }
    }

    fn read(r: &mut Reader) -> Result<SchemaChange> {
        let change_type = r.string()?;
        let target = r.string()?;
        let target = match target.as_str() {
            "KEYSPACE" => SchemaChangeTarget::Keyspace(r.string()?),
            "TABLE" => SchemaChangeTarget::Table(r.string()?, r.string()?),
            "TYPE" => SchemaChangeTarget::Type(r.string()?, r.string()?),
            "FUNCTION" => SchemaChangeTarget::Function(r.string()?, r.string()?, r.string_list()?),
            "AGGREGATE" => {
                SchemaChangeTarget::Aggregate(r.string()?, r.string()?, r.string_list()?)
            }
            t => {
                return Err(ProtocolError::malformed(format!(
                    "Unknown schema change target {t}"
                )))
            }
        };
        Ok(SchemaChange {
            change_type,
            target,
        })
    }
}

fn put_reasons(out: &mut BytesMut, version: u8, reasons: &[(IpAddr, u16)]) {
    if version >= 5 {
        out.put_i32(reasons.len() as i32);
        for (ip, code) in reasons {
            wire::put_inetaddr(out, ip);
            out.put_u16(*code);
        }
    } else {
        out.put_i32(reasons.len() as i32);
    }
}

fn read_reasons(r: &mut Reader, version: u8) -> Result<Vec<(IpAddr, u16)>> {
    let n = r.i32()?;
    if n < 0 {
        return Err(ProtocolError::malformed(format!(
            "Invalid failure count {n}"
        )));
    }
    if version >= 5 {
        let n = r.check_count(n as usize, 7, "reason map")?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let ip = r.inetaddr()?;
            v.push((ip, r.u16()?));
        }
        Ok(v)
    } else {
        // v4 carries only the count; cap what we materialize.
        let n = (n as usize).min(1024);
        Ok(vec![(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0); n])
    }
}

impl ErrorBody {
    pub fn encode(&self, version: u8, out: &mut BytesMut) {
        out.put_i32(self.code);
        wire::put_string(out, &self.message);
        match &self.details {
            ErrorDetails::None => {}
            ErrorDetails::Unavailable {
                consistency,
                required,
                alive,
            } => {
                out.put_u16(*consistency);
                out.put_i32(*required);
                out.put_i32(*alive);
            }
            ErrorDetails::WriteTimeout {
                consistency,
                received,
                block_for,
                write_type,
                contentions,
            } => {
                out.put_u16(*consistency);
                out.put_i32(*received);
                out.put_i32(*block_for);
                wire::put_string(out, write_type);
                if version >= 5 && write_type == "CAS" {
                    out.put_u16(contentions.unwrap_or(0));
                }
            }
            ErrorDetails::ReadTimeout {
                consistency,
                received,
                block_for,
                data_present,
            } => {
                out.put_u16(*consistency);
                out.put_i32(*received);
                out.put_i32(*block_for);
                out.put_u8(*data_present as u8);
            }
            ErrorDetails::ReadFailure {
                consistency,
                received,
                block_for,
                reasons,
                data_present,
            } => {
                out.put_u16(*consistency);
                out.put_i32(*received);
                out.put_i32(*block_for);
                put_reasons(out, version, reasons);
                out.put_u8(*data_present as u8);
            }
            ErrorDetails::WriteFailure {
                consistency,
                received,
                block_for,
                reasons,
                write_type,
            } => {
                out.put_u16(*consistency);
                out.put_i32(*received);
                out.put_i32(*block_for);
                put_reasons(out, version, reasons);
                wire::put_string(out, write_type);
            }
            ErrorDetails::FunctionFailure {
                keyspace,
                function,
                arg_types,
            } => {
                wire::put_string(out, keyspace);
                wire::put_string(out, function);
                wire::put_string_list(out, arg_types);
            }
            ErrorDetails::AlreadyExists { keyspace, table } => {
                wire::put_string(out, keyspace);
                wire::put_string(out, table);
            }
            ErrorDetails::Unprepared { id } => wire::put_short_bytes(out, id),
            ErrorDetails::CasWriteUnknown {
                consistency,
                received,
                block_for,
            } => {
                out.put_u16(*consistency);
                out.put_i32(*received);
                out.put_i32(*block_for);
            }
        }
    }

    fn read(r: &mut Reader, version: u8) -> Result<ErrorBody> {
        use error_code::*;
        let code = r.i32()?;
        let message = r.string()?;
        let details = match code {
            UNAVAILABLE => ErrorDetails::Unavailable {
                consistency: r.u16()?,
                required: r.i32()?,
                alive: r.i32()?,
            },
            WRITE_TIMEOUT => {
                let consistency = r.u16()?;
                let received = r.i32()?;
                let block_for = r.i32()?;
                let write_type = r.string()?;
                let contentions = if version >= 5 && write_type == "CAS" {
                    Some(r.u16()?)
                } else {
                    None
                };
                ErrorDetails::WriteTimeout {
                    consistency,
                    received,
                    block_for,
                    write_type,
                    contentions,
                }
            }
            READ_TIMEOUT => ErrorDetails::ReadTimeout {
                consistency: r.u16()?,
                received: r.i32()?,
                block_for: r.i32()?,
                data_present: r.u8()? != 0,
            },
            READ_FAILURE => ErrorDetails::ReadFailure {
                consistency: r.u16()?,
                received: r.i32()?,
                block_for: r.i32()?,
                reasons: read_reasons(r, version)?,
                data_present: r.u8()? != 0,
            },
            WRITE_FAILURE => ErrorDetails::WriteFailure {
                consistency: r.u16()?,
                received: r.i32()?,
                block_for: r.i32()?,
                reasons: read_reasons(r, version)?,
                write_type: r.string()?,
            },
            FUNCTION_FAILURE => ErrorDetails::FunctionFailure {
                keyspace: r.string()?,
                function: r.string()?,
                arg_types: r.string_list()?,
            },
            ALREADY_EXISTS => ErrorDetails::AlreadyExists {
                keyspace: r.string()?,
                table: r.string()?,
            },
            UNPREPARED => ErrorDetails::Unprepared {
                id: r.short_bytes()?,
            },
            CAS_WRITE_UNKNOWN => ErrorDetails::CasWriteUnknown {
                consistency: r.u16()?,
                received: r.i32()?,
                block_for: r.i32()?,
            },
            _ => ErrorDetails::None,
        };
        Ok(ErrorBody {
            code,
            message,
            details,
        })
    }
}

const RESULT_VOID: i32 = 1;
const RESULT_ROWS: i32 = 2;
const RESULT_SET_KEYSPACE: i32 = 3;
const RESULT_PREPARED: i32 = 4;
const RESULT_SCHEMA_CHANGE: i32 = 5;

impl Response {
    pub fn opcode(&self) -> u8 {
        match self {
            Response::Error(_) => opcode::ERROR,
            Response::Ready => opcode::READY,
            Response::Authenticate(_) => opcode::AUTHENTICATE,
            Response::Supported(_) => opcode::SUPPORTED,
            Response::Result(_) => opcode::RESULT,
            Response::Event(_) => opcode::EVENT,
            Response::AuthChallenge(_) => opcode::AUTH_CHALLENGE,
            Response::AuthSuccess(_) => opcode::AUTH_SUCCESS,
        }
    }

    /// Encode the message body (no envelope flags' prefixes; see [`Envelope::to_frame`]).
    pub fn encode_body(&self, version: u8, out: &mut BytesMut) {
        match self {
            Response::Error(e) => e.encode(version, out),
            Response::Ready => {}
            Response::Authenticate(a) => wire::put_string(out, a),
            Response::Supported(m) => wire::put_string_multimap(out, m),
            Response::Result(r) => match r {
                ResultBody::Void => out.put_i32(RESULT_VOID),
                ResultBody::Rows(rows) => {
                    out.put_i32(RESULT_ROWS);
                    rows.metadata.encode(version, out);
                    out.put_i32(rows.row_count);
                    out.put_slice(&rows.content);
                }
                ResultBody::SetKeyspace(k) => {
                    out.put_i32(RESULT_SET_KEYSPACE);
                    wire::put_string(out, k);
                }
                ResultBody::Prepared(p) => {
                    out.put_i32(RESULT_PREPARED);
                    wire::put_short_bytes(out, &p.id);
                    if version >= 5 {
                        wire::put_short_bytes(out, p.result_metadata_id.as_deref().unwrap_or(&[]));
                    }
                    let global = global_spec(&p.bind_columns);
                    out.put_i32(if global.is_some() {
                        ROWS_GLOBAL_TABLES_SPEC
                    } else {
                        0
                    });
                    out.put_i32(p.bind_columns.len() as i32);
                    out.put_i32(p.pk_indexes.len() as i32);
                    for i in &p.pk_indexes {
                        out.put_u16(*i);
                    }
                    put_col_specs(out, &p.bind_columns, global);
                    p.result_metadata.encode(version, out);
                }
                ResultBody::SchemaChange(s) => {
                    out.put_i32(RESULT_SCHEMA_CHANGE);
                    s.encode(out);
                }
            },
            Response::Event(e) => {
                wire::put_string(out, e.type_name());
                match e {
                    Event::TopologyChange { change, address }
                    | Event::StatusChange { change, address } => {
                        wire::put_string(out, change);
                        wire::put_inet(out, address);
                    }
                    Event::SchemaChange(s) => s.encode(out),
                }
            }
            Response::AuthChallenge(t) | Response::AuthSuccess(t) => {
                wire::put_bytes(out, t.as_deref())
            }
        }
    }

    /// Decode a response body (tests and clients).
    pub fn decode(
        version: u8,
        op: u8,
        body: Bytes,
    ) -> std::result::Result<Response, ProtocolError> {
        let mut r = Reader::new(body);
        Ok(match op {
            opcode::ERROR => Response::Error(ErrorBody::read(&mut r, version)?),
            opcode::READY => Response::Ready,
            opcode::AUTHENTICATE => Response::Authenticate(r.string()?),
            opcode::SUPPORTED => Response::Supported(r.string_multimap()?),
            opcode::RESULT => Response::Result(match r.i32()? {
                RESULT_VOID => ResultBody::Void,
                RESULT_ROWS => {
                    let metadata = RowsMetadata::read(&mut r, version)?;
                    let row_count = r.i32()?;
                    ResultBody::Rows(Rows {
                        metadata,
                        row_count,
                        content: r.rest(),
                    })
                }
                RESULT_SET_KEYSPACE => ResultBody::SetKeyspace(r.string()?),
                RESULT_PREPARED => {
                    let id = r.short_bytes()?;
                    let result_metadata_id = if version >= 5 {
                        Some(r.short_bytes()?)
                    } else {
                        None
                    };
                    let f = r.i32()?;
                    let n = r.i32()?;
                    let pk = r.i32()?;
                    if n < 0 || pk < 0 {
                        return Err(ProtocolError::malformed("Invalid prepared metadata counts"));
                    }
                    let pk = r.check_count(pk as usize, 2, "partition key indexes")?;
                    let mut pk_indexes = Vec::with_capacity(pk);
                    for _ in 0..pk {
                        pk_indexes.push(r.u16()?);
                    }
                    let bind_columns =
                        read_col_specs(&mut r, n as usize, f & ROWS_GLOBAL_TABLES_SPEC != 0)?;
                    let result_metadata = RowsMetadata::read(&mut r, version)?;
                    ResultBody::Prepared(Prepared {
                        id,
                        result_metadata_id,
                        bind_columns,
                        pk_indexes,
                        result_metadata,
                    })
                }
                RESULT_SCHEMA_CHANGE => ResultBody::SchemaChange(SchemaChange::read(&mut r)?),
                k => return Err(ProtocolError::malformed(format!("Unknown result kind {k}"))),
            }),
            opcode::EVENT => {
                let t = r.string()?;
                Response::Event(match t.as_str() {
                    "TOPOLOGY_CHANGE" => Event::TopologyChange {
                        change: r.string()?,
                        address: r.inet()?,
                    },
                    "STATUS_CHANGE" => Event::StatusChange {
                        change: r.string()?,
                        address: r.inet()?,
                    },
                    "SCHEMA_CHANGE" => Event::SchemaChange(SchemaChange::read(&mut r)?),
                    t => return Err(ProtocolError::malformed(format!("Unknown event type {t}"))),
                })
            }
            opcode::AUTH_CHALLENGE => Response::AuthChallenge(r.bytes()?),
            opcode::AUTH_SUCCESS => Response::AuthSuccess(r.bytes()?),
            op => {
                return Err(ProtocolError::malformed(format!(
                    "Unknown response opcode {op}"
                )))
            }
        })
    }
}

// ---------------------------------------------------------------- [option] types

/// Type option ids.
pub mod type_id {
    pub const CUSTOM: u16 = 0x0000;
    pub const ASCII: u16 = 0x0001;
    pub const BIGINT: u16 = 0x0002;
    pub const BLOB: u16 = 0x0003;
    pub const BOOLEAN: u16 = 0x0004;
    pub const COUNTER: u16 = 0x0005;
    pub const DECIMAL: u16 = 0x0006;
    pub const DOUBLE: u16 = 0x0007;
    pub const FLOAT: u16 = 0x0008;
    pub const INT: u16 = 0x0009;
    pub const TIMESTAMP: u16 = 0x000B;
    pub const UUID: u16 = 0x000C;
    pub const VARCHAR: u16 = 0x000D;
    pub const VARINT: u16 = 0x000E;
    pub const TIMEUUID: u16 = 0x000F;
    pub const INET: u16 = 0x0010;
    pub const DATE: u16 = 0x0011;
    pub const TIME: u16 = 0x0012;
    pub const SMALLINT: u16 = 0x0013;
    pub const TINYINT: u16 = 0x0014;
    pub const DURATION: u16 = 0x0015;
    pub const LIST: u16 = 0x0020;
    pub const MAP: u16 = 0x0021;
    pub const SET: u16 = 0x0022;
    pub const UDT: u16 = 0x0030;
    pub const TUPLE: u16 = 0x0031;
}

/// Write a type as an [option]: natives by id, collections/UDT/tuple structurally, vectors and
/// custom types as a Custom option with the marshal class. `frozen` is not visible on the wire.
pub fn write_type_option(ty: &CqlType, out: &mut BytesMut) {
    use type_id::*;
    let id = match ty {
        CqlType::Ascii => ASCII,
        CqlType::Bigint => BIGINT,
        CqlType::Blob => BLOB,
        CqlType::Boolean => BOOLEAN,
        CqlType::Counter => COUNTER,
        CqlType::Date => DATE,
        CqlType::Decimal => DECIMAL,
        CqlType::Double => DOUBLE,
        CqlType::Duration => DURATION,
        CqlType::Float => FLOAT,
        CqlType::Inet => INET,
        CqlType::Int => INT,
        CqlType::Smallint => SMALLINT,
        CqlType::Text => VARCHAR,
        CqlType::Time => TIME,
        CqlType::Timestamp => TIMESTAMP,
        CqlType::Timeuuid => TIMEUUID,
        CqlType::Tinyint => TINYINT,
        CqlType::Uuid => UUID,
        CqlType::Varint => VARINT,
        CqlType::List(e) => {
            out.put_u16(LIST);
            return write_type_option(e, out);
        }
        CqlType::Set(e) => {
            out.put_u16(SET);
            return write_type_option(e, out);
        }
        CqlType::Map(k, v) => {
            out.put_u16(MAP);
            write_type_option(k, out);
            return write_type_option(v, out);
        }
        CqlType::Tuple(ts) => {
            out.put_u16(TUPLE);
            out.put_u16(ts.len() as u16);
            for t in ts {
                write_type_option(t, out);
            }
            return;
        }
        CqlType::Udt(u) => {
            out.put_u16(UDT);
            wire::put_string(out, &u.keyspace);
            wire::put_string(out, &u.name);
            out.put_u16(u.fields.len() as u16);
            for (n, t) in &u.fields {
                wire::put_string(out, n);
                write_type_option(t, out);
            }
            return;
        }
        CqlType::Frozen(e) => return write_type_option(e, out),
        CqlType::Vector(..) | CqlType::Custom(_) => {
            out.put_u16(CUSTOM);
            wire::put_string(out, &ty.marshal_class());
            return;
        }
    };
    out.put_u16(id);
}

const MAX_TYPE_DEPTH: usize = 64;

/// Read an [option] type. Custom types (including vectors) come back as `CqlType::Custom`.
pub fn decode_type_option(body: &mut Bytes) -> std::result::Result<CqlType, ProtocolError> {
    let mut r = Reader::new(body.clone());
    let t = read_type_option(&mut r)?;
    *body = r.rest();
    Ok(t)
}

fn read_type_option(r: &mut Reader) -> Result<CqlType> {
    read_type_depth(r, 0)
}

fn read_type_depth(r: &mut Reader, depth: usize) -> Result<CqlType> {
    use type_id::*;
    if depth > MAX_TYPE_DEPTH {
        return Err(ProtocolError::malformed("Type nesting too deep"));
    }
    let sub = |r: &mut Reader| read_type_depth(r, depth + 1).map(Box::new);
    Ok(match r.u16()? {
        CUSTOM => CqlType::Custom(r.string()?),
        ASCII => CqlType::Ascii,
        BIGINT => CqlType::Bigint,
        BLOB => CqlType::Blob,
        BOOLEAN => CqlType::Boolean,
        COUNTER => CqlType::Counter,
        DECIMAL => CqlType::Decimal,
        DOUBLE => CqlType::Double,
        FLOAT => CqlType::Float,
        INT => CqlType::Int,
        TIMESTAMP => CqlType::Timestamp,
        UUID => CqlType::Uuid,
        VARCHAR => CqlType::Text,
        VARINT => CqlType::Varint,
        TIMEUUID => CqlType::Timeuuid,
        INET => CqlType::Inet,
        DATE => CqlType::Date,
        TIME => CqlType::Time,
        SMALLINT => CqlType::Smallint,
        TINYINT => CqlType::Tinyint,
        DURATION => CqlType::Duration,
        LIST => CqlType::List(sub(r)?),
        SET => CqlType::Set(sub(r)?),
        MAP => {
            let k = sub(r)?;
            CqlType::Map(k, sub(r)?)
        }
        UDT => {
            let keyspace = r.string()?;
            let name = r.string()?;
            let n = r.u16()? as usize;
            let n = r.check_count(n, 4, "UDT fields")?;
            let mut fields = Vec::with_capacity(n);
            for _ in 0..n {
                let f = r.string()?;
                fields.push((f, *sub(r)?));
            }
            CqlType::Udt(UdtDef {
                keyspace,
                name,
                fields,
            })
        }
        TUPLE => {
            let n = r.u16()? as usize;
            let n = r.check_count(n, 2, "tuple elements")?;
            let mut ts = Vec::with_capacity(n);
            for _ in 0..n {
                ts.push(*sub(r)?);
            }
            CqlType::Tuple(ts)
        }
        id => {
            return Err(ProtocolError::malformed(format!(
                "Unknown type id {id:#06x}"
            )))
        }
    })
}
