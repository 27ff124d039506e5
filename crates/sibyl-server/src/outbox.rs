//! The sending side of one client connection. Whoever finishes a response (the connection's
//! reader for quick requests, a request's own task otherwise) encodes it into the shared
//! buffer and writes it to the socket at once; a writer task steps in only when the socket
//! stops taking bytes, and writes the rest when it can.
//!
//! Handing every response to a writer task cost a task wake-up per batch of answers, and the
//! reader's answers waited for that task to be scheduled on a busy core: at a few dozen
//! requests in flight the round trip, not the work, bounded throughput.

use std::io::ErrorKind;
use std::pin::pin;

use bytes::{Buf, BytesMut};
use parking_lot::Mutex;
use sibyl_protocol::codec::{Compression, ServerCodec};
use sibyl_protocol::{Frame, ProtocolError};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

/// Bytes waiting for a slow client beyond which producers that can wait (the reader) stop
/// taking new requests until the writer has drained them.
const MAX_PENDING: usize = 8 * 1024 * 1024;

/// A buffer grown beyond this for one large answer is given back once it drains.
const KEEP_CAPACITY: usize = 4 * 1024 * 1024;

/// The socket is gone: nothing more can be sent on this connection.
#[derive(Debug)]
pub struct Closed;

pub struct Outbox {
    socket: OwnedWriteHalf,
    state: Mutex<State>,
    /// Wakes the writer task: the socket refused bytes that are now its to write.
    handed_off: Notify,
    /// Wakes producers waiting for the pending bytes to drain.
    drained: Notify,
}

struct State {
    /// Encodes in the order producers take the lock, so compression and v5 framing switch
    /// exactly between the frames they apply to.
    codec: ServerCodec,
    pending: BytesMut,
    /// The writer task owns the pending bytes until the socket has taken them all; producers
    /// only append meanwhile.
    writer_owns: bool,
    /// Close the sending side once everything pending is written.
    close_when_flushed: bool,
    closed: bool,
}

impl Outbox {
    pub fn new(socket: OwnedWriteHalf, max_frame: usize) -> Self {
        Outbox {
            socket,
            state: Mutex::new(State {
                codec: ServerCodec::new(max_frame),
                pending: BytesMut::with_capacity(64 * 1024),
                writer_owns: false,
                close_when_flushed: false,
                closed: false,
            }),
            handed_off: Notify::new(),
            drained: Notify::new(),
        }
    }

    pub fn send(&self, frame: &Frame) -> Result<(), Closed> {
        self.send_all(std::slice::from_ref(frame))
    }

    pub fn send_all(&self, frames: &[Frame]) -> Result<(), Closed> {
        self.produce(|st| {
            if !frames.is_empty() {
                st.codec.encode_batch(frames, &mut st.pending);
            }
        })
    }

    /// A protocol error found while decoding, framed as the connection currently frames.
    pub fn send_protocol_error(&self, e: &ProtocolError) -> Result<(), Closed> {
        self.produce(|st| st.codec.encode_error(e, &mut st.pending))
    }

    /// Frames sent after this call are compressed with `c`.
    pub fn set_compression(&self, c: Compression) -> Result<(), Closed> {
        self.produce(|st| st.codec.set_compression(c))
    }

    /// Frames sent after this call go out in v5 segments.
    pub fn enable_v5_framing(&self) -> Result<(), Closed> {
        self.produce(|st| st.codec.enable_v5_framing())
    }

    /// Writes what is pending, then closes the sending side.
    pub fn close(&self) {
        let _ = self.produce(|st| st.close_when_flushed = true);
    }

    fn produce(&self, f: impl FnOnce(&mut State)) -> Result<(), Closed> {
        let mut st = self.state.lock();
        if st.closed {
            return Err(Closed);
        }
        f(&mut st);
        if !st.writer_owns {
            self.write_pending(&mut st);
            if !st.pending.is_empty() && !st.closed {
                st.writer_owns = true;
                self.handed_off.notify_one();
            }
        }
        if st.closed {
            Err(Closed)
        } else {
            Ok(())
        }
    }

    /// Writes until everything pending is written or the socket would block.
    fn write_pending(&self, st: &mut State) {
        while !st.pending.is_empty() {
            match self.socket.try_write(&st.pending) {
                Ok(0) => return self.mark_closed(st),
                Ok(n) => st.pending.advance(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.mark_closed(st),
            }
        }
        if st.pending.capacity() > KEEP_CAPACITY {
            st.pending = BytesMut::with_capacity(64 * 1024);
        }
        if st.close_when_flushed {
            let _ =
                socket2::SockRef::from(self.socket.as_ref()).shutdown(std::net::Shutdown::Write);
            self.mark_closed(st);
        }
    }

    /// Nothing more will be written: pending bytes are dropped and every waiter is woken.
    fn mark_closed(&self, st: &mut State) {
        st.closed = true;
        st.pending = BytesMut::new();
        self.drained.notify_waiters();
        self.handed_off.notify_one();
    }

    /// Waits while more than `MAX_PENDING` bytes wait for the client to read them.
    pub async fn wait_drained(&self) -> Result<(), Closed> {
        loop {
            let mut drained = pin!(self.drained.notified());
            drained.as_mut().enable();
            {
                let st = self.state.lock();
                if st.closed {
                    return Err(Closed);
                }
                if st.pending.len() <= MAX_PENDING {
                    return Ok(());
                }
            }
            drained.await;
        }
    }

    /// The writer task: writes what producers handed off whenever the socket takes bytes
    /// again. Ends when the socket is closed.
    pub async fn run_writer(&self) {
        loop {
            self.handed_off.notified().await;
            loop {
                if self.state.lock().closed {
                    return;
                }
                if self.socket.writable().await.is_err() {
                    return self.mark_closed(&mut self.state.lock());
                }
                let mut st = self.state.lock();
                self.write_pending(&mut st);
                if st.closed {
                    return;
                }
                if st.pending.is_empty() {
                    st.writer_owns = false;
                    self.drained.notify_waiters();
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    fn frame(producer: u8, seq: u16) -> Frame {
        let mut body = vec![producer; 16 * 1024];
        body[..2].copy_from_slice(&seq.to_be_bytes());
        Frame {
            version: 4,
            flags: 0,
            stream: producer as i16,
            opcode: sibyl_protocol::opcode::RESULT,
            body: Bytes::from(body),
        }
    }

    /// A client that does not read: producers' bytes pile up, the writer task takes over,
    /// the reader-side wait holds until the client reads, and every frame arrives whole and in
    /// each producer's order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_client_gets_every_frame_in_order() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (_rd, wr) = server.into_split();
        let outbox = Arc::new(Outbox::new(wr, 1 << 20));
        let writer = tokio::spawn({
            let o = outbox.clone();
            async move { o.run_writer().await }
        });
        const N: u16 = 1000; // 2 x 16 MiB: far beyond the socket buffers and MAX_PENDING
        let other = std::thread::spawn({
            let o = outbox.clone();
            move || (0..N).for_each(|i| o.send(&frame(2, i)).unwrap())
        });
        for i in 0..N {
            outbox.send(&frame(1, i)).unwrap();
        }
        other.join().unwrap();
        let waited = tokio::time::timeout(Duration::from_millis(200), outbox.wait_drained()).await;
        assert!(
            waited.is_err(),
            "32 MiB cannot have drained to a client that reads nothing"
        );

        let reading = tokio::spawn(async move {
            let mut buf = BytesMut::new();
            let mut next = [0u16; 3];
            loop {
                // v4 response frames: version, flags, stream, opcode, body length, body.
                while buf.len() >= 9 {
                    let len = u32::from_be_bytes(buf[5..9].try_into().unwrap()) as usize;
                    if buf.len() < 9 + len {
                        break;
                    }
                    let f = buf.split_to(9 + len);
                    assert_eq!(f[0], 0x84);
                    let p = i16::from_be_bytes([f[2], f[3]]) as usize;
                    let body = &f[9..];
                    assert_eq!(u16::from_be_bytes([body[0], body[1]]), next[p]);
                    assert!(body[2..].iter().all(|&b| b == p as u8));
                    next[p] += 1;
                }
                if client.read_buf(&mut buf).await.unwrap() == 0 {
                    return next;
                }
            }
        });
        outbox.wait_drained().await.unwrap();
        outbox.close();
        writer.await.unwrap();
        assert_eq!(reading.await.unwrap(), [0, N, N]);
        assert!(
            outbox.send(&frame(1, 0)).is_err(),
            "closed outbox refuses frames"
        );
    }
}
