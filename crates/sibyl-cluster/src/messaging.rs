//! Internode request/response messaging over TCP.
//!
//! # Wire format
//!
//! Every frame is `u32 length` (big endian, of what follows) then a 12-byte header and the
//! payload:
//!
//! ```text
//! u8 version (1) | u8 kind | u16 verb | u64 message id | payload
//! ```
//!
//! `kind` is `0` request, `1` response, `2` error (payload: UTF-8 message), `3` hello. A client
//! opens a connection with a hello whose payload is its own listening address (postcard), which
//! the server passes to the handler as `from`; afterwards the client only sends requests and the
//! server only sends responses and errors, matched by message id, in any order. Frames larger
//! than [`MAX_FRAME`] close the connection.
//!
//! # Flow control
//!
//! A server connection runs at most [`MAX_IN_FLIGHT`] handlers at once and stops reading while
//! that many are running, so TCP pushes back on the sender. A client has [`CONNECTIONS_PER_PEER`]
//! pooled connections per peer, created lazily and replaced after a failure; writes go through a
//! bounded queue; and every request has a timeout covering connect, send and reply.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tracing::{debug, warn};

use crate::ClusterError;

/// A message type; the meaning of each is the caller's.
pub type Verb = u16;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum MessagingError {
    #[error("request timed out")]
    Timeout,
    #[error("i/o error: {0}")]
    Io(String),
    /// The remote handler returned an error.
    #[error("remote error: {0}")]
    Remote(String),
    /// Too many requests are waiting for this peer.
    #[error("too many requests in flight")]
    Overloaded,
    /// This `Messaging` was shut down.
    #[error("messaging is shut down")]
    Closed,
}

/// Serves one request: `(from, verb, payload) -> response payload or error message`. `from` is
/// the sender's listening address (as announced in its hello).
pub type Handler = Arc<
    dyn Fn(SocketAddr, Verb, Bytes) -> Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send>>
        + Send
        + Sync,
>;

/// Protocol version byte.
pub const VERSION: u8 = 1;
/// The largest frame accepted or sent (256 MiB).
pub const MAX_FRAME: usize = 256 << 20;
/// Handlers running at once per server connection.
pub const MAX_IN_FLIGHT: usize = 1024;
/// Requests waiting for a reply per peer before [`MessagingError::Overloaded`].
pub const MAX_PENDING_PER_PEER: usize = 65_536;
/// Pooled connections per peer.
pub const CONNECTIONS_PER_PEER: usize = 2;
/// Frames queued for one connection's writer.
const WRITE_QUEUE: usize = 1024;
/// How long a connect may take at most (further bounded by the request's timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

const KIND_REQUEST: u8 = 0;
const KIND_RESPONSE: u8 = 1;
const KIND_ERROR: u8 = 2;
const KIND_HELLO: u8 = 3;
const HEADER: usize = 12;

/// Serializes with postcard.
pub fn encode<T: Serialize>(v: &T) -> Bytes {
    Bytes::from(postcard::to_allocvec(v).expect("postcard serialization of an in-memory value"))
}

/// Deserializes with postcard; a malformed payload is [`MessagingError::Io`].
pub fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, MessagingError> {
    postcard::from_bytes(b).map_err(|e| MessagingError::Io(format!("malformed payload: {e}")))
}

struct Frame {
    kind: u8,
    verb: Verb,
    id: u64,
    payload: Bytes,
}

fn frame_bytes(kind: u8, verb: Verb, id: u64, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + HEADER + payload.len());
    b.put_u32((HEADER + payload.len()) as u32);
    b.put_u8(VERSION);
    b.put_u8(kind);
    b.put_u16(verb);
    b.put_u64(id);
    b.put_slice(payload);
    b.freeze()
}

async fn read_frame(r: &mut BufReader<OwnedReadHalf>) -> std::io::Result<Option<Frame>> {
    let len = match r.read_u32().await {
        Ok(n) => n as usize,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    if !(HEADER..=MAX_FRAME).contains(&len) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad frame length {len}"),
        ));
    }
    let mut buf = BytesMut::zeroed(len);
    r.read_exact(&mut buf).await?;
    let mut b = buf.freeze();
    let version = b.get_u8();
    if version != VERSION {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unsupported messaging version {version}"),
        ));
    }
    let kind = b.get_u8();
    let verb = b.get_u16();
    let id = b.get_u64();
    Ok(Some(Frame {
        kind,
        verb,
        id,
        payload: b,
    }))
}

/// Writes queued frames, flushing whenever the queue runs dry.
async fn write_loop(
    w: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Bytes>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut w = BufWriter::with_capacity(64 * 1024, w);
    loop {
        let first = tokio::select! {
            f = rx.recv() => f,
            _ = shutdown.wait_for(|s| *s) => None,
        };
        let Some(first) = first else { break };
        w.write_all(&first).await?;
        while let Ok(more) = rx.try_recv() {
            w.write_all(&more).await?;
        }
        w.flush().await?;
    }
    let _ = w.shutdown().await;
    Ok(())
}

type Pending = parking_lot::Mutex<HashMap<u64, oneshot::Sender<Result<Bytes, MessagingError>>>>;

/// One outbound connection.
struct Conn {
    tx: mpsc::Sender<Bytes>,
    pending: Pending,
    closed: AtomicBool,
    next_id: AtomicU64,
}

impl Conn {
    fn fail_all(&self, why: &str) {
        self.closed.store(true, Ordering::Release);
        let drained: Vec<_> = self.pending.lock().drain().collect();
        for (_, tx) in drained {
            let _ = tx.send(Err(MessagingError::Io(why.to_string())));
        }
    }
}

#[derive(Default)]
struct PeerSlot {
    conns: parking_lot::Mutex<Vec<Option<Arc<Conn>>>>,
    connecting: Vec<tokio::sync::Mutex<()>>,
    next: AtomicUsize,
    pending: AtomicUsize,
}

/// Internode messaging: a TCP server for incoming requests and pooled client connections for
/// outgoing ones. Shut down when dropped or by [`Messaging::shutdown`].
pub struct Messaging {
    local: SocketAddr,
    peers: parking_lot::Mutex<HashMap<SocketAddr, Arc<PeerSlot>>>,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for Messaging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messaging")
            .field("local", &self.local)
            .finish()
    }
}

impl Messaging {
    /// Listens on `addr` (TCP, the storage port) and serves requests with `handler`.
    pub async fn bind(addr: SocketAddr, handler: Handler) -> Result<Arc<Messaging>, ClusterError> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let (shutdown, rx) = watch::channel(false);
        tokio::spawn(accept_loop(listener, handler, rx));
        Ok(Arc::new(Messaging {
            local,
            peers: Default::default(),
            shutdown,
        }))
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops listening, closes every connection and fails waiting requests with `Io`; later
    /// requests fail with `Closed`.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        let slots: Vec<Arc<PeerSlot>> = self.peers.lock().drain().map(|(_, s)| s).collect();
        for s in slots {
            for c in s.conns.lock().iter().flatten() {
                c.fail_all("messaging shut down");
            }
        }
    }

    /// Sends a request and waits for its response (or the timeout). Reuses pooled connections
    /// per peer, reconnecting lazily.
    pub async fn request(
        &self,
        to: SocketAddr,
        verb: Verb,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, MessagingError> {
        if *self.shutdown.borrow() {
            return Err(MessagingError::Closed);
        }
        if payload.len() + HEADER > MAX_FRAME {
            return Err(MessagingError::Io(format!(
                "payload of {} bytes exceeds the frame limit",
                payload.len()
            )));
        }
        let slot = {
            let mut peers = self.peers.lock();
            peers
                .entry(to)
                .or_insert_with(|| {
                    Arc::new(PeerSlot {
                        conns: parking_lot::Mutex::new(vec![None; CONNECTIONS_PER_PEER]),
                        connecting: (0..CONNECTIONS_PER_PEER)
                            .map(|_| tokio::sync::Mutex::new(()))
                            .collect(),
                        ..Default::default()
                    })
                })
                .clone()
        };
        if slot.pending.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING_PER_PEER {
            slot.pending.fetch_sub(1, Ordering::AcqRel);
            return Err(MessagingError::Overloaded);
        }
        let r = tokio::time::timeout(timeout, self.send_on(&slot, to, verb, payload)).await;
        slot.pending.fetch_sub(1, Ordering::AcqRel);
        match r {
            Ok(r) => r,
            Err(_) => Err(MessagingError::Timeout),
        }
    }

    async fn send_on(
        &self,
        slot: &PeerSlot,
        to: SocketAddr,
        verb: Verb,
        payload: Bytes,
    ) -> Result<Bytes, MessagingError> {
        let i = slot.next.fetch_add(1, Ordering::Relaxed) % CONNECTIONS_PER_PEER;
        let conn = self.conn(slot, i, to).await?;
        let id = conn.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        conn.pending.lock().insert(id, tx);
        // Removes the pending entry however this future ends (reply, error, timeout).
        struct Guard<'a>(&'a Conn, u64);
        impl Drop for Guard<'_> {
            fn drop(&mut self) {
                self.0.pending.lock().remove(&self.1);
            }
        }
        let _guard = Guard(&conn, id);
        if conn
            .tx
            .send(frame_bytes(KIND_REQUEST, verb, id, &payload))
            .await
            .is_err()
        {
            conn.fail_all("connection closed");
            return Err(MessagingError::Io("connection closed".into()));
        }
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(MessagingError::Io("connection closed".into())),
        }
    }

    async fn conn(
        &self,
        slot: &PeerSlot,
        i: usize,
        to: SocketAddr,
    ) -> Result<Arc<Conn>, MessagingError> {
        if let Some(c) = &slot.conns.lock()[i] {
            if !c.closed.load(Ordering::Acquire) {
                return Ok(c.clone());
            }
        }
        let _connecting = slot.connecting[i].lock().await;
        if let Some(c) = &slot.conns.lock()[i] {
            if !c.closed.load(Ordering::Acquire) {
                return Ok(c.clone());
            }
        }
        if *self.shutdown.borrow() {
            return Err(MessagingError::Closed);
        }
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(MessagingError::Io(format!("connect to {to}: {e}"))),
            Err(_) => return Err(MessagingError::Timeout),
        };
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let hello = postcard::to_allocvec(&self.local).expect("socket address serializes");
        tx.try_send(frame_bytes(KIND_HELLO, 0, 0, &hello))
            .expect("fresh queue has room");
        let conn = Arc::new(Conn {
            tx,
            pending: Default::default(),
            closed: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
        });
        let shutdown = self.shutdown.subscribe();
        let c = conn.clone();
        tokio::spawn(async move {
            if let Err(e) = write_loop(w, rx, shutdown).await {
                debug!("messaging: write to {to} failed: {e}");
            }
            c.fail_all("connection closed");
        });
        let c = conn.clone();
        let mut shutdown = self.shutdown.subscribe();
        tokio::spawn(async move {
            let mut r = BufReader::with_capacity(64 * 1024, r);
            let why = loop {
                let f = tokio::select! {
                    f = read_frame(&mut r) => f,
                    _ = shutdown.wait_for(|s| *s) => break "messaging shut down".to_string(),
                };
                match f {
                    Ok(Some(f)) => {
                        let reply = match f.kind {
                            KIND_RESPONSE => Ok(f.payload),
                            KIND_ERROR => Err(MessagingError::Remote(
                                String::from_utf8_lossy(&f.payload).into_owned(),
                            )),
                            k => break format!("unexpected frame kind {k} from {to}"),
                        };
                        if let Some(tx) = c.pending.lock().remove(&f.id) {
                            let _ = tx.send(reply);
                        }
                    }
                    Ok(None) => break "connection closed by peer".to_string(),
                    Err(e) => break format!("read from {to}: {e}"),
                }
            };
            debug!("messaging: connection to {to} ends: {why}");
            c.fail_all(&why);
        });
        slot.conns.lock()[i] = Some(conn.clone());
        Ok(conn)
    }
}

impl Drop for Messaging {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn accept_loop(listener: TcpListener, handler: Handler, mut shutdown: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_conn(stream, peer, handler.clone(), shutdown.clone()));
            }
            Err(e) => {
                warn!("messaging: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_conn(
    stream: TcpStream,
    peer: SocketAddr,
    handler: Handler,
    mut shutdown: watch::Receiver<bool>,
) {
    let (r, w) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
    let writer = tokio::spawn(write_loop(w, rx, shutdown.clone()));
    let mut r = BufReader::with_capacity(64 * 1024, r);
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut from = peer;
    loop {
        // Backpressure: no more reading while MAX_IN_FLIGHT handlers run.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let f = tokio::select! {
            f = read_frame(&mut r) => f,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let f = match f {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                debug!("messaging: read from {peer} failed: {e}");
                break;
            }
        };
        match f.kind {
            KIND_HELLO => match postcard::from_bytes::<SocketAddr>(&f.payload) {
                Ok(a) => from = a,
                Err(e) => {
                    debug!("messaging: bad hello from {peer}: {e}");
                    break;
                }
            },
            KIND_REQUEST => {
                let handler = handler.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let out = match handler(from, f.verb, f.payload).await {
                        Ok(b) if b.len() + HEADER <= MAX_FRAME => {
                            frame_bytes(KIND_RESPONSE, f.verb, f.id, &b)
                        }
                        Ok(b) => frame_bytes(
                            KIND_ERROR,
                            f.verb,
                            f.id,
                            format!("response of {} bytes exceeds the frame limit", b.len())
                                .as_bytes(),
                        ),
                        Err(e) => frame_bytes(KIND_ERROR, f.verb, f.id, e.as_bytes()),
                    };
                    let _ = tx.send(out).await;
                    drop(permit);
                });
            }
            k => {
                debug!("messaging: unexpected frame kind {k} from {peer}");
                break;
            }
        }
    }
    drop(tx);
    // The writer ends once every running handler has sent its reply (or on shutdown).
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_roundtrip() {
        let b = encode(&(1u32, "x".to_string(), vec![1i64, -2]));
        let v: (u32, String, Vec<i64>) = decode(&b).unwrap();
        assert_eq!(v, (1, "x".to_string(), vec![1, -2]));
        assert!(matches!(
            decode::<String>(&[0xff]),
            Err(MessagingError::Io(_))
        ));
        let f = frame_bytes(KIND_REQUEST, 7, 9, b"abc");
        assert_eq!(&f[..4], &(HEADER as u32 + 3).to_be_bytes());
        assert_eq!(f[4], VERSION);
        assert_eq!(f.len(), 4 + HEADER + 3);
    }
}
