//! One CQL client connection: a reader that decodes requests, runs quick ones itself and the
//! others on tasks of their own, and an [`Outbox`] that every finished answer is written
//! through. Responses go out in completion order; the reader never waits for them.

use std::sync::Arc;

use bytes::BytesMut;
use parking_lot::Mutex;
use sibyl_protocol::codec::{Compression, ServerCodec};
use sibyl_protocol::messages::{Envelope, Event, Request, Response, ResultBody};
use sibyl_protocol::Frame;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::error::QueryError;
use crate::executor::Session;
use crate::node::Node;
use crate::outbox::{Closed, Outbox};

/// Requests in flight per connection before the reader stops reading (backpressure).
const MAX_IN_FLIGHT: usize = 1024;

/// Requests run inline before their answers are sent even if more are buffered.
const INLINE_BATCH: usize = 64;

struct Shared {
    node: Arc<Node>,
    session: Mutex<Session>,
    outbox: Arc<Outbox>,
}

pub async fn handle(node: Arc<Node>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let max_frame = node.config.max_frame_size;
    let (mut rd, wr) = stream.into_split();
    let outbox = Arc::new(Outbox::new(wr, max_frame));
    let writer = {
        let outbox = outbox.clone();
        tokio::spawn(async move { outbox.run_writer().await })
    };

    let shared = Arc::new(Shared {
        node: node.clone(),
        session: Mutex::new(Session::default()),
        outbox: outbox.clone(),
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
                    match frame.opcode {
                        sibyl_protocol::opcode::STARTUP
                        | sibyl_protocol::opcode::OPTIONS
                        | sibyl_protocol::opcode::REGISTER
                        | sibyl_protocol::opcode::AUTH_RESPONSE => {
                            // Connection-state requests run in order, on the reader.
                            if send_answered(&mut answered, &outbox).is_err() {
                                break 'read;
                            }
                            if frame.opcode == sibyl_protocol::opcode::STARTUP {
                                ready = true;
                            }
                            match control_request(&shared, &mut codec, frame, &mut events_task) {
                                Ok(()) => {}
                                Err(_) => break 'read,
                            }
                        }
                        op if !ready => {
                            let err = QueryError::Protocol(format!(
                                "Unexpected message {}, expecting STARTUP or OPTIONS",
                                opcode_name(op)
                            ));
                            answered.push(error_frame(frame.version, frame.stream, &err));
                        }
                        _ if shared.node.cluster().is_none()
                            && runs_inline(&shared.node, &frame) =>
                        {
                            // Alone in the ring nothing waits on the network, so a short request
                            // runs right here: no task per request, and the answers to everything
                            // one read brought in leave in one write.
                            answered.push(run_request(&shared, frame));
                            if answered.len() >= INLINE_BATCH
                                && send_answered(&mut answered, &outbox).is_err()
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
                                let _ = tokio::task::spawn_blocking(move || {
                                    let frame = run_request(&shared, frame);
                                    let _ = shared.outbox.send(&frame);
                                })
                                .await;
                                drop(permit);
                            });
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    if send_answered(&mut answered, &outbox).is_err() {
                        break 'read;
                    }
                    tracing::debug!("protocol error from client: {e}");
                    let _ = outbox.send_protocol_error(&e);
                    if e.is_fatal() {
                        break 'read;
                    }
                }
            }
        }
        if send_answered(&mut answered, &outbox).is_err() {
            break;
        }
        if outbox.wait_drained().await.is_err() {
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
    // Requests still running answer before the connection closes.
    let _ = permits.acquire_many(MAX_IN_FLIGHT as u32).await;
    outbox.close();
    drop(shared);
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

fn send_answered(answered: &mut Vec<Frame>, outbox: &Outbox) -> Result<(), Closed> {
    if answered.is_empty() {
        return Ok(());
    }
    let sent = outbox.send_all(answered);
    answered.clear();
    sent
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

/// Runs a request that changes the connection's state. `Err` ends the connection.
fn control_request(
    shared: &Arc<Shared>,
    codec: &mut ServerCodec,
    frame: Frame,
    events_task: &mut Option<tokio::task::JoinHandle<()>>,
) -> Result<(), Closed> {
    let version = frame.version;
    let stream = frame.stream;
    let env = match Request::from_frame(&frame) {
        Ok(e) => e,
        Err(e) => {
            let err = QueryError::Protocol(e.to_string());
            shared.outbox.send(&error_frame(version, stream, &err))?;
            return if e.is_fatal() { Err(Closed) } else { Ok(()) };
        }
    };
    let send = |f: Frame| shared.outbox.send(&f);
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
            ))?;
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
                            send(error_frame(version, stream, &err))?;
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
                    send(error_frame(version, stream, &err))?;
                    return Ok(());
                }
            }
            send(response_frame(version, stream, Response::Ready, vec![]))?;
            if version >= 5 {
                if compression == Compression::Snappy {
                    compression = Compression::None;
                }
                shared.outbox.set_compression(compression)?;
                shared.outbox.enable_v5_framing()?;
                codec.set_compression(compression);
                codec.enable_v5_framing();
            } else {
                shared.outbox.set_compression(compression)?;
                codec.set_compression(compression);
            }
        }
        Request::Register(kinds) => {
            let wants_schema = kinds
                .iter()
                .any(|k| k.eq_ignore_ascii_case("SCHEMA_CHANGE"));
            if wants_schema && events_task.is_none() {
                let mut rx = shared.node.events.subscribe();
                let outbox = shared.outbox.clone();
                let v = version;
                *events_task = Some(tokio::spawn(async move {
                    while let Ok(ev) = rx.recv().await {
                        if !matches!(ev, Event::SchemaChange(_)) {
                            continue;
                        }
                        let frame = Envelope::event(ev).to_frame(v);
                        if outbox.send(&frame).is_err() {
                            break;
                        }
                    }
                }));
            }
            send(response_frame(version, stream, Response::Ready, vec![]))?;
        }
        Request::AuthResponse(_) => {
            let err = QueryError::Protocol(
                "Unexpected message AUTH_RESPONSE, authentication is not enabled".into(),
            );
            send(error_frame(version, stream, &err))?;
        }
        _ => unreachable!("only control requests come here"),
    }
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
