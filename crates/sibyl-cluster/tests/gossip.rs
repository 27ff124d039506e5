//! Three in-process gossipers on 127.0.0.1-3 (same port). Every test bounds its time.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sibyl_cluster::{
    start_gossip, GossipConfig, Membership, MembershipEvent, NodeState, NodeStatus,
};
use tokio::time::timeout;
use uuid::Uuid;

/// A UDP port free on 127.0.0.1, .2, .3 and .4.
fn free_port() -> u16 {
    loop {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = s.local_addr().unwrap().port();
        let others: Vec<_> = (2..=4)
            .map(|i| std::net::UdpSocket::bind(format!("127.0.0.{i}:{port}")))
            .collect();
        if others.iter().all(|o| o.is_ok()) {
            return port;
        }
    }
}

fn addr(i: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)), port)
}

fn state(i: u8, generation: u64) -> NodeState {
    NodeState {
        host_id: Uuid::from_u128(i as u128),
        addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)),
        storage_port: 7000,
        native_port: 9042,
        dc: "dc1".into(),
        rack: format!("rack{i}"),
        tokens: vec![i as i64 * 1000, -(i as i64) * 1000],
        status: NodeStatus::Normal,
        schema_version: Uuid::nil(),
        release_version: "5.0.0".into(),
        removed: vec![],
        generation,
    }
}

async fn start(cluster: &str, i: u8, port: u16, generation: u64) -> Arc<dyn Membership> {
    let config = GossipConfig::new(cluster, addr(i, port), vec![addr(1, port)]);
    // A restarted node may find its previous socket not yet released.
    for _ in 0..50 {
        match start_gossip(config.clone(), state(i, generation)).await {
            Ok(m) => return m,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("could not start gossiper {i}");
}

async fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within {limit:?}");
}

fn alive_count(m: &Arc<dyn Membership>) -> usize {
    m.nodes().iter().filter(|(_, alive)| *alive).count()
}

async fn bounded(f: impl Future<Output = ()>) {
    timeout(Duration::from_secs(60), f)
        .await
        .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converge_propagate_down_and_up() {
    bounded(async {
        let port = free_port();
        let n1 = start("test", 1, port, 1).await;
        let mut events = n1.subscribe();
        let n2 = start("test", 2, port, 1).await;
        let n3 = start("test", 3, port, 1).await;
        let nodes = [n1.clone(), n2.clone(), n3.clone()];

        let took = eventually("convergence to 3 alive nodes", Duration::from_secs(10), || {
            nodes.iter().all(|n| alive_count(n) == 3)
        })
        .await;
        eprintln!("converged in {took:?}");
        assert!(took < Duration::from_secs(5), "converged only after {took:?}");
        let seen = n1.nodes();
        let n3_state = seen
            .iter()
            .find(|(s, _)| s.host_id == Uuid::from_u128(3))
            .unwrap();
        assert_eq!(n3_state.0, state(3, 1));

        // A state change propagates.
        let v = Uuid::from_u128(0xabc);
        n2.update_local(&|s| s.schema_version = v);
        assert_eq!(n2.local().schema_version, v);
        eventually("schema version propagation", Duration::from_secs(5), || {
            [&n1, &n3].iter().all(|n| {
                n.nodes()
                    .iter()
                    .any(|(s, _)| s.host_id == Uuid::from_u128(2) && s.schema_version == v)
            })
        })
        .await;

        // Stopping a node is seen as Down.
        n3.shutdown();
        drop(n3);
        let took = eventually("node 3 down", Duration::from_secs(15), || {
            !n1.is_alive(Uuid::from_u128(3)) && !n2.is_alive(Uuid::from_u128(3))
        })
        .await;
        eprintln!("down detected in {took:?}");
        assert!(n1.is_alive(Uuid::from_u128(2)));
        // Still a member while down.
        assert_eq!(n1.nodes().len(), 3);

        // It comes back with a new generation and is Up again.
        let n3 = start("test", 3, port, 2).await;
        eventually("node 3 up again", Duration::from_secs(10), || {
            n1.is_alive(Uuid::from_u128(3)) && n2.is_alive(Uuid::from_u128(3))
        })
        .await;
        let seen = n1.nodes();
        assert_eq!(seen.len(), 3);
        let back = seen
            .iter()
            .find(|(s, _)| s.host_id == Uuid::from_u128(3))
            .unwrap();
        assert_eq!(back.0.generation, 2);
        eventually("node 3 sees the others", Duration::from_secs(10), || {
            alive_count(&n3) == 3
        })
        .await;

        // The events node 1 saw, in order per node.
        let mut log = Vec::new();
        while let Ok(e) = events.try_recv() {
            log.push(e);
        }
        let for3: Vec<&MembershipEvent> = log
            .iter()
            .filter(|e| match e {
                MembershipEvent::Joined(s) | MembershipEvent::Changed(s) => {
                    s.host_id == Uuid::from_u128(3)
                }
                MembershipEvent::Up(h) | MembershipEvent::Down(h) | MembershipEvent::Left(h) => {
                    *h == Uuid::from_u128(3)
                }
            })
            .collect();
        assert!(matches!(for3.first(), Some(MembershipEvent::Joined(_))), "{for3:?}");
        assert!(for3.iter().any(|e| matches!(e, MembershipEvent::Down(_))), "{for3:?}");
        assert!(matches!(for3.last(), Some(MembershipEvent::Up(_))), "{for3:?}");
        assert!(log.iter().any(
            |e| matches!(e, MembershipEvent::Changed(s) if s.host_id == Uuid::from_u128(2) && s.schema_version == v)
        ));

        // Leaving: status Left removes the node from the others' views.
        n3.update_local(&|s| s.status = NodeStatus::Left);
        eventually("node 3 left", Duration::from_secs(5), || {
            n1.nodes().len() == 2 && n2.nodes().len() == 2
        })
        .await;
        for n in [n1, n2, n3] {
            n.shutdown();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_cluster_is_ignored() {
    bounded(async {
        let port = free_port();
        let a = start("alpha", 1, port, 1).await;
        let b = start("alpha", 2, port, 1).await;
        // Seeds itself on alpha's seed, but is of another cluster.
        let x = start("beta", 4, port, 1).await;
        eventually("alpha converges", Duration::from_secs(10), || {
            alive_count(&a) == 2 && alive_count(&b) == 2
        })
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(a.nodes().len(), 2);
        assert_eq!(b.nodes().len(), 2);
        assert_eq!(x.nodes().len(), 1);
        assert!(!a.is_alive(Uuid::from_u128(4)));
        for n in [a, b, x] {
            n.shutdown();
        }
    })
    .await;
}
