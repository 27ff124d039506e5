//! Messaging between two instances on 127.0.0.1 / 127.0.0.2. Every test bounds its time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sibyl_cluster::{decode, encode, Handler, Messaging, MessagingError};
use tokio::time::timeout;

const ECHO: u16 = 1;
const FAIL: u16 = 2;
const SLOW: u16 = 3;
const WHO: u16 = 4;

fn handler() -> Handler {
    Arc::new(|from: SocketAddr, verb, payload: Bytes| {
        Box::pin(async move {
            match verb {
                ECHO => {
                    let n: u64 = decode(&payload).map_err(|e| e.to_string())?;
                    // Answer out of order: later requests may finish first.
                    if n.is_multiple_of(7) {
                        tokio::task::yield_now().await;
                    }
                    Ok(encode(&(n * 2)))
                }
                FAIL => Err("no such thing".to_string()),
                SLOW => {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Ok(Bytes::new())
                }
                WHO => Ok(encode(&from)),
                _ => Err(format!("unknown verb {verb}")),
            }
        })
    })
}

async fn pair() -> (Arc<Messaging>, Arc<Messaging>) {
    let a = Messaging::bind("127.0.0.1:0".parse().unwrap(), handler())
        .await
        .unwrap();
    let b = Messaging::bind("127.0.0.2:0".parse().unwrap(), handler())
        .await
        .unwrap();
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_requests() {
    timeout(Duration::from_secs(60), async {
        let (a, b) = pair().await;
        let to = b.local_addr();
        let mut tasks = Vec::new();
        for n in 0..10_000u64 {
            let a = a.clone();
            tasks.push(tokio::spawn(async move {
                let r = a
                    .request(to, ECHO, encode(&n), Duration::from_secs(30))
                    .await
                    .unwrap();
                assert_eq!(decode::<u64>(&r).unwrap(), n * 2);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        // And the other way round, with `from` being the sender's listening address.
        let r = b
            .request(a.local_addr(), WHO, Bytes::new(), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(decode::<SocketAddr>(&r).unwrap(), b.local_addr());
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn handler_error_is_remote() {
    timeout(Duration::from_secs(10), async {
        let (a, b) = pair().await;
        let e = a
            .request(b.local_addr(), FAIL, Bytes::new(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, MessagingError::Remote(m) if m == "no such thing"),
            "{e:?}"
        );
        // The connection is still usable afterwards.
        let r = a
            .request(b.local_addr(), ECHO, encode(&21u64), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(decode::<u64>(&r).unwrap(), 42);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn unbound_address_fails_fast() {
    timeout(Duration::from_secs(10), async {
        let (a, _b) = pair().await;
        // Bind then drop a listener to get a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.2:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let to: SocketAddr = format!("127.0.0.2:{port}").parse().unwrap();
        let start = Instant::now();
        let e = a
            .request(to, ECHO, encode(&1u64), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(e, MessagingError::Io(_)), "{e:?}");
        assert!(start.elapsed() < Duration::from_secs(1));
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn slow_handler_times_out() {
    timeout(Duration::from_secs(10), async {
        let (a, b) = pair().await;
        let start = Instant::now();
        let e = a
            .request(
                b.local_addr(),
                SLOW,
                Bytes::new(),
                Duration::from_millis(300),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, MessagingError::Timeout), "{e:?}");
        assert!(start.elapsed() < Duration::from_secs(2));
        // Other requests on the same connection are not held up by the slow one.
        let r = a
            .request(b.local_addr(), ECHO, encode(&1u64), Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(decode::<u64>(&r).unwrap(), 2);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn peer_restart_reconnects_and_shutdown_fails_waiters() {
    timeout(Duration::from_secs(20), async {
        let (a, b) = pair().await;
        let addr = b.local_addr();
        a.request(addr, ECHO, encode(&1u64), Duration::from_secs(2))
            .await
            .unwrap();
        // A request in flight when the peer goes away fails with Io, not by waiting out its
        // timeout.
        let a2 = a.clone();
        let waiting = tokio::spawn(async move {
            let start = Instant::now();
            let r = a2
                .request(addr, SLOW, Bytes::new(), Duration::from_secs(8))
                .await;
            (r, start.elapsed())
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        b.shutdown();
        drop(b);
        let (r, took) = waiting.await.unwrap();
        assert!(matches!(r, Err(MessagingError::Io(_))), "{r:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        // Down peer: fails fast.
        let e = a
            .request(addr, ECHO, encode(&1u64), Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(e, MessagingError::Io(_)), "{e:?}");
        // Back on the same address: the pool reconnects lazily.
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let h: Handler = Arc::new(move |_, _, p| {
            c.fetch_add(1, Ordering::Relaxed);
            Box::pin(async move { Ok(p) })
        });
        let b2 = Messaging::bind(addr, h).await.unwrap();
        let mut ok = false;
        for _ in 0..20 {
            if let Ok(r) = a
                .request(addr, ECHO, Bytes::from_static(b"x"), Duration::from_secs(2))
                .await
            {
                assert_eq!(&r[..], b"x");
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ok);
        assert!(calls.load(Ordering::Relaxed) >= 1);
        a.shutdown();
        let e = a
            .request(b2.local_addr(), ECHO, Bytes::new(), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(e, MessagingError::Closed), "{e:?}");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_are_bounded_per_connection() {
    use sibyl_cluster::messaging::{CONNECTIONS_PER_PEER, MAX_IN_FLIGHT};
    timeout(Duration::from_secs(60), async {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (r, p) = (running.clone(), peak.clone());
        let h: Handler = Arc::new(move |_, _, payload| {
            let (r, p) = (r.clone(), p.clone());
            Box::pin(async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                Ok(payload)
            })
        });
        let server = Messaging::bind("127.0.0.2:0".parse().unwrap(), h)
            .await
            .unwrap();
        let (client, _) = pair().await;
        let to = server.local_addr();
        let total = CONNECTIONS_PER_PEER * MAX_IN_FLIGHT + 500;
        let mut tasks = Vec::new();
        for _ in 0..total {
            let c = client.clone();
            tasks.push(tokio::spawn(async move {
                c.request(to, ECHO, Bytes::from_static(b"y"), Duration::from_secs(30))
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(&t.await.unwrap().unwrap()[..], b"y");
        }
        let peak = peak.load(Ordering::SeqCst);
        assert!(peak <= CONNECTIONS_PER_PEER * MAX_IN_FLIGHT, "peak {peak}");
        assert!(peak >= MAX_IN_FLIGHT, "peak {peak}");
    })
    .await
    .expect("test timed out");
}
