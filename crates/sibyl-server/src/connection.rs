//! One CQL client connection: a reader that decodes requests and runs each on its own task, and
//! a writer that batches finished responses into as few socket writes as possible. Responses go
//! out in completion order; the reader never waits for them.

use std::sync::Arc;

use bytes::BytesMut;
use parking_lot::Mutex;
use sibyl_protocol::codec::{Compression, ServerCodec};
use sibyl_protocol::messages::{Envelope, Event, Request, Response, ResultBody};
use sibyl_protocol::{Frame, ProtocolError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};

use crate::error::QueryError;
use crate::executor::Session;
use crate::node::Node;

/// Requests in flight per connection before the reader stops reading (backpressure).
const MAX_IN_FLIGHT: usize = 1024;

/// Requests run inline before their answers are handed to the writer even if more are buffered.
const INLINE_BATCH: usize = 64;

enum Outgoing {
    Frame(Frame),
    Frames(Vec<Frame>),
    SetCompression(Compression),
    EnableV5,
    /// Bytes already framed (protocol errors encoded by the reader's codec).
    Raw(BytesMut),
    /// Write what is queued, then close.
    Close,
}

struct Shared {
    node: Arc<Node>,
    session: Mutex<Session>,
    tx: mpsc::Sender<Outgoing>,
    version: std::sync::atomic::AtomicU8,
}

pub async fn handle(node: Arc<Node>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let max_frame = node.config.max_frame_size;
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Outgoing>(MAX_IN_FLIGHT * 2);
    let writer = tokio::spawn(async move {
        let mut codec = ServerCodec::new(max_frame);
        let mut out = BytesMut::with_capacity(64 * 1024);
        let mut frames: Vec<Frame> = vec![];
        let mut closing = false;
        while let Some(first) = rx.recv().await {
            let mut next = Some(first);
            // Drain everything already queued into one buffer.
            loop {
                match next.take() {
                    Some(Outgoing::Frame(f)) => frames.push(f),
                    Some(Outgoing::Frames(mut fs)) => frames.append(&mut fs),
                    Some(control) => {
                        if !frames.is_empty() {
                            codec.encode_batch(&frames, &mut out);
                            frames.clear();
                        }
                        match control {
                            Outgoing::SetCompression(c) => codec.set_compression(c),
                            Outgoing::EnableV5 => codec.enable_v5_framing(),
                            Outgoing::Close => closing = true,
                            Outgoing::Raw(b) => out.extend_from_slice(&b),
                            Outgoing::Frame(_) | Outgoing::Frames(_) => unreachable!(),
                        }
                    }
                    None => {}
                }
                if closing || frames.len() >= 256 {
                    break;
                }
                match rx.try_recv() {
                    Ok(m) => next = Some(m),
                    Err(_) => break,
                }
            }
            if !frames.is_empty() {
                codec.encode_batch(&frames, &mut out);
                frames.clear();
            }
            if !out.is_empty() {
                if wr.write_all(&out).await.is_err() {
                    break;
                }
                out.clear();
                if out.capacity() > 4 * 1024 * 1024 {
                    out = BytesMut::with_capacity(64 * 1024);
                }
            }
            if closing {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });

    let shared = Arc::new(Shared {
        node: node.clone(),
        session: Mutex::new(Session::default()),
        tx: tx.clone(),
        version: std::sync::atomic::AtomicU8::new(0),
    });
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut codec = ServerCodec::new(max_frame);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut events_task: Option<tokio::task::JoinHandle<()>> = None;
    let mut ready = false;
    let mut answered: Vec<Frame> = Vec::new();
    'read: loop {
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    shared
                        .version
                        .store(frame.version, std::sync::atomic::Ordering::Relaxed);
                    match frame.opcode {
                        sibyl_protocol::opcode::STARTUP
                        | sibyl_protocol::opcode::OPTIONS
                        | sibyl_protocol::opcode::REGISTER
                        | sibyl_protocol::opcode::AUTH_RESPONSE => {
                            // Connection-state requests run in order, on the reader.
                            if send_answered(&mut answered, &tx).await.is_err() {
                                break 'read;
                            }
                            if frame.opcode == sibyl_protocol::opcode::STARTUP {
                                ready = true;
                            }
                            match control_request(&shared, &mut codec, frame, &mut events_task)
                                .await
                            {
                                Ok(()) => {}
                                Err(()) => break 'read,
                            }
                        }
                        op if !ready => {
                            let err = QueryError::Protocol(format!(
                                "Unexpected message {}, expecting STARTUP or OPTIONS",
                                opcode_name(op)
                            ));
                            let _ = tx
                                .send(Outgoing::Frame(error_frame(
                                    frame.version,
                                    frame.stream,
                                    &err,
                                )))
                                .await;
                        }
                        _ if shared.node.cluster().is_none()
                            && runs_inline(&shared.node, &frame) =>
                        {
                            // Alone in the ring nothing waits on the network, so a short request
                            // runs right here: no task per request, and the answers to everything
                            // one read brought in leave in one message to the writer.
                            answered.push(run_request(&shared, frame));
                            if answered.len() >= INLINE_BATCH
                                && send_answered(&mut answered, &tx).await.is_err()
                            {
                                break 'read;
                            }
                        }
                        _ => {
                            let Ok(permit) = permits.clone().acquire_owned().await else {
                                break 'read;
                            };
                            let shared = shared.clone();
                            tokio::spawn(async move {
                                // These requests may wait on the network (other nodes) or
                                // run long (scans, ANN searches): on the blocking pool they
                                // never hold a worker, whose stall would also leave the
                                // reactor unpolled and every connection waiting.
                                let s = shared.clone();
                                let frame = match tokio::task::spawn_blocking(move || {
                                    run_request(&s, frame)
                                })
                                .await
                                {
                                    Ok(f) => f,
                                    Err(_) => return,
                                };
                                let _ = shared.tx.send(Outgoing::Frame(frame)).await;
                                drop(permit);
                            });
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    if send_answered(&mut answered, &tx).await.is_err() {
                        break 'read;
                    }
                    tracing::debug!("protocol error from client: {e}");
                    let mut out = BytesMut::new();
                    codec.encode_error(&e, &mut out);
                    let fatal = e.is_fatal();
                    let _ = tx.send(Outgoing::Raw(out)).await;
                    if fatal {
                        let _ = tx.send(Outgoing::Close).await;
                        break 'read;
                    }
                }
            }
        }
        if send_answered(&mut answered, &tx).await.is_err() {
            break;
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    if let Some(t) = events_task {
        t.abort();
    }
    drop(shared);
    drop(tx);
    let _ = writer.await;
}

/// Requests that cannot hold the connection up for long run on its reader: PREPAREs and
/// executions of prepared writes and of reads of given partitions. Anything else (scans, ANN
/// searches, QUERY and BATCH texts) gets a task of its own, so a slow request never stalls the
/// quick ones queued behind it on the same connection.
fn runs_inline(node: &Node, frame: &Frame) -> bool {
    match frame.opcode {
        sibyl_protocol::opcode::PREPARE => true,
        sibyl_protocol::opcode::EXECUTE => {
            // The body starts with the statement id as [short bytes].
            let b = &frame.body;
            let Some(len) = b
                .get(..2)
                .map(|l| u16::from_be_bytes([l[0], l[1]]) as usize)
            else {
                return true; // malformed: answered with an error at once
            };
            b.get(2..2 + len).is_none_or(|id| node.runs_quickly(id))
        }
        _ => false,
    }
}

async fn send_answered(answered: &mut Vec<Frame>, tx: &mpsc::Sender<Outgoing>) -> Result<(), ()> {
    if answered.is_empty() {
        return Ok(());
    }
    let batch = std::mem::take(answered);
    tx.send(Outgoing::Frames(batch)).await.map_err(|_| ())
}

fn response_frame(version: u8, stream: i16, response: Response, warnings: Vec<String>) -> Frame {
    let mut env = Envelope::new(stream, response);
    if !warnings.is_empty() && version >= 4 {
        env = env.with_warnings(warnings);
    }
    env.to_frame(version)
}

fn error_frame(version: u8, stream: i16, e: &QueryError) -> Frame {
    response_frame(version, stream, Response::Error(e.to_error_body()), vec![])
}

async fn control_request(
    shared: &Arc<Shared>,
    codec: &mut ServerCodec,
    frame: Frame,
    events_task: &mut Option<tokio::task::JoinHandle<()>>,
) -> Result<(), ()> {
    let version = frame.version;
    let stream = frame.stream;
    let env = match Request::from_frame(&frame) {
        Ok(e) => e,
        Err(e) => {
            let err = QueryError::Protocol(e.to_string());
            let _ = shared
                .tx
                .send(Outgoing::Frame(error_frame(version, stream, &err)))
                .await;
            return if e.is_fatal() { Err(()) } else { Ok(()) };
        }
    };
    let send = |f: Frame| shared.tx.send(Outgoing::Frame(f));
    match env.request {
        Request::Options => {
            let supported = vec![
                (
                    "CQL_VERSION".to_string(),
                    vec![crate::system_tables::CQL_VERSION.to_string()],
                ),
                (
                    "COMPRESSION".to_string(),
                    vec!["lz4".to_string(), "snappy".to_string()],
                ),
                (
                    "PROTOCOL_VERSIONS".to_string(),
                    vec!["4/v4".to_string(), "5/v5".to_string()],
                ),
            ];
            send(response_frame(
                version,
                stream,
                Response::Supported(supported),
                vec![],
            ))
            .await
            .map_err(|_| ())?;
        }
        Request::Startup(opts) => {
            let mut compression = Compression::None;
            for (k, v) in &opts {
                if k.eq_ignore_ascii_case("COMPRESSION") {
                    match Compression::from_name(v) {
                        Some(c) => compression = c,
                        None => {
                            let err =
                                QueryError::Protocol(format!("Unknown compression algorithm: {v}"));
                            send(error_frame(version, stream, &err))
                                .await
                                .map_err(|_| ())?;
                            return Ok(());
                        }
                    }
                }
                if k.eq_ignore_ascii_case("CQL_VERSION")
                    && v.split('.')
                        .next()
                        .and_then(|m| m.parse::<u32>().ok())
                        .is_none_or(|m| m < 3)
                {
                    let err =
                        QueryError::Protocol(format!("Invalid or unsupported CQL version: {v}"));
                    send(error_frame(version, stream, &err))
                        .await
                        .map_err(|_| ())?;
                    return Ok(());
                }
            }
            send(response_frame(version, stream, Response::Ready, vec![]))
                .await
                .map_err(|_| ())?;
            if version >= 5 {
                if compression == Compression::Snappy {
                    compression = Compression::None;
                }
                shared
                    .tx
                    .send(Outgoing::SetCompression(compression))
                    .await
                    .map_err(|_| ())?;
                shared.tx.send(Outgoing::EnableV5).await.map_err(|_| ())?;
                codec.set_compression(compression);
                codec.enable_v5_framing();
            } else {
                shared
                    .tx
                    .send(Outgoing::SetCompression(compression))
                    .await
                    .map_err(|_| ())?;
                codec.set_compression(compression);
            }
        }
        Request::Register(kinds) => {
            let wants_schema = kinds
                .iter()
                .any(|k| k.eq_ignore_ascii_case("SCHEMA_CHANGE"));
            if wants_schema && events_task.is_none() {
                let mut rx = shared.node.events.subscribe();
                let tx = shared.tx.clone();
                let v = version;
                *events_task = Some(tokio::spawn(async move {
                    while let Ok(ev) = rx.recv().await {
                        if !matches!(ev, Event::SchemaChange(_)) {
                            continue;
                        }
                        let frame = Envelope::event(ev).to_frame(v);
                        if tx.send(Outgoing::Frame(frame)).await.is_err() {
                            break;
                        }
                    }
                }));
            }
            send(response_frame(version, stream, Response::Ready, vec![]))
                .await
                .map_err(|_| ())?;
        }
        Request::AuthResponse(_) => {
            let err = QueryError::Protocol(
                "Unexpected message AUTH_RESPONSE, authentication is not enabled".into(),
            );
            send(error_frame(version, stream, &err))
                .await
                .map_err(|_| ())?;
        }
        _ => unreachable!("only control requests come here"),
    }
    let _ = ProtocolError::malformed("");
    Ok(())
}

fn run_request(shared: &Shared, frame: Frame) -> Frame {
    let version = frame.version;
    let stream = frame.stream;
    let env = match Request::from_frame(&frame) {
        Ok(e) => e,
        Err(e) => return error_frame(version, stream, &QueryError::Protocol(e.to_string())),
    };
    let node = &shared.node;
    let mut session = shared.session.lock().clone();
    let result = match &env.request {
        Request::Query { query, params } => node.query(&mut session, query, params),
        Request::Prepare { query, keyspace } => {
            let ks = keyspace.clone().or_else(|| session.keyspace.clone());
            node.prepare(ks.as_deref(), query)
                .map(|p| crate::executor::Outcome {
                    body: ResultBody::Prepared(node.prepared_result(&p)),
                    warnings: vec![],
                    schema_change: None,
                })
        }
        Request::Execute {
            id,
            result_metadata_id,
            params,
        } => node.execute_with_metadata_id(&mut session, id, result_metadata_id.as_ref(), params),
        Request::Batch(b) => node.batch(&mut session, b),
        _ => Err(QueryError::Protocol(format!(
            "Unexpected message {:#04x}",
            frame.opcode
        ))),
    };
    match result {
        Ok(out) => {
            if let ResultBody::SetKeyspace(ks) = &out.body {
                shared.session.lock().keyspace = Some(ks.clone());
            }
            response_frame(version, stream, Response::Result(out.body), out.warnings)
        }
        Err(e) => error_frame(version, stream, &e),
    }
}

fn opcode_name(op: u8) -> &'static str {
    use sibyl_protocol::opcode::*;
    match op {
        QUERY => "QUERY",
        PREPARE => "PREPARE",
        EXECUTE => "EXECUTE",
        BATCH => "BATCH",
        REGISTER => "REGISTER",
        AUTH_RESPONSE => "AUTH_RESPONSE",
        _ => "UNKNOWN",
    }
}
