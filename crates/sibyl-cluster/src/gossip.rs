//! Gossip membership with failure detection, on chitchat.
//!
//! chitchat (quickwit-oss) does the gossip: scuttlebutt anti-entropy over UDP (on the storage
//! port; messaging uses TCP on the same port), versioned key-values per node, a phi accrual
//! failure detector, and a cluster id check that ignores nodes of another cluster. Each node
//! publishes its [`NodeState`] as key-values (one key per field, so a schema change gossips only
//! the schema key). A chitchat node is `(host id, generation, gossip address)`: a restarted node
//! comes back with a higher generation and is a new chitchat node, the old one dying away; this
//! module folds the generations of a host into one member, the newest.
//!
//! A refresh task reads chitchat every `interval`, keeps the view that [`Membership`]'s
//! synchronous methods answer from, and broadcasts the differences as [`MembershipEvent`]s.
//! Members are never forgotten because they are down: a node leaves the view only after it
//! gossiped [`NodeStatus::Left`] (it is still listed, with that status, until chitchat drops it).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chitchat::transport::UdpTransport;
use chitchat::{
    spawn_chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig,
    ProtocolVersion,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, Notify};
use tracing::debug;
use uuid::Uuid;

use crate::ClusterError;

/// A node's place in the ring's life cycle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeStatus {
    Joining,
    Normal,
    Leaving,
    Left,
}

impl NodeStatus {
    fn as_str(&self) -> &'static str {
        match self {
            NodeStatus::Joining => "JOINING",
            NodeStatus::Normal => "NORMAL",
            NodeStatus::Leaving => "LEAVING",
            NodeStatus::Left => "LEFT",
        }
    }

    fn parse(s: &str) -> Option<NodeStatus> {
        Some(match s {
            "JOINING" => NodeStatus::Joining,
            "NORMAL" => NodeStatus::Normal,
            "LEAVING" => NodeStatus::Leaving,
            "LEFT" => NodeStatus::Left,
            _ => return None,
        })
    }
}

/// What a node gossips about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    pub host_id: Uuid,
    pub addr: IpAddr,
    pub storage_port: u16,
    pub native_port: u16,
    pub dc: String,
    pub rack: String,
    pub tokens: Vec<i64>,
    pub status: NodeStatus,
    pub schema_version: Uuid,
    pub release_version: String,
    /// Dead nodes this node removed from the ring (`removenode`); every node honours the union.
    pub removed: Vec<Uuid>,
    /// Bumped on every start (Cassandra uses the start time in seconds). `0` given to
    /// [`start_gossip`] means "now, in milliseconds since the epoch".
    pub generation: u64,
}

impl NodeState {
    fn to_kvs(&self) -> Vec<(String, String)> {
        let tokens: Vec<String> = self.tokens.iter().map(|t| t.to_string()).collect();
        vec![
            (K_HOST_ID.into(), self.host_id.to_string()),
            (K_ADDR.into(), self.addr.to_string()),
            (K_STORAGE_PORT.into(), self.storage_port.to_string()),
            (K_NATIVE_PORT.into(), self.native_port.to_string()),
            (K_DC.into(), self.dc.clone()),
            (K_RACK.into(), self.rack.clone()),
            (K_TOKENS.into(), tokens.join(",")),
            (K_STATUS.into(), self.status.as_str().into()),
            (K_SCHEMA.into(), self.schema_version.to_string()),
            (K_RELEASE.into(), self.release_version.clone()),
            (
                K_REMOVED.into(),
                self.removed
                    .iter()
                    .map(|u| u.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ]
    }

    /// `None` while some key has not arrived yet (or is malformed).
    fn from_chitchat(id: &ChitchatId, s: &chitchat::NodeState) -> Option<NodeState> {
        let tokens = s.get(K_TOKENS)?;
        let tokens = if tokens.is_empty() {
            Vec::new()
        } else {
            tokens
                .split(',')
                .map(|t| t.parse().ok())
                .collect::<Option<Vec<i64>>>()?
        };
        Some(NodeState {
            host_id: s.get(K_HOST_ID)?.parse().ok()?,
            addr: s.get(K_ADDR)?.parse().ok()?,
            storage_port: s.get(K_STORAGE_PORT)?.parse().ok()?,
            native_port: s.get(K_NATIVE_PORT)?.parse().ok()?,
            dc: s.get(K_DC)?.to_string(),
            rack: s.get(K_RACK)?.to_string(),
            tokens,
            status: NodeStatus::parse(s.get(K_STATUS)?)?,
            schema_version: s.get(K_SCHEMA)?.parse().ok()?,
            release_version: s.get(K_RELEASE)?.to_string(),
            removed: s
                .get(K_REMOVED)
                .unwrap_or_default()
                .split(',')
                .filter_map(|u| u.parse().ok())
                .collect(),
            generation: id.generation_id,
        })
    }
}

const K_HOST_ID: &str = "host_id";
const K_ADDR: &str = "addr";
const K_STORAGE_PORT: &str = "storage_port";
const K_NATIVE_PORT: &str = "native_port";
const K_DC: &str = "dc";
const K_RACK: &str = "rack";
const K_TOKENS: &str = "tokens";
const K_STATUS: &str = "status";
const K_SCHEMA: &str = "schema_version";
const K_RELEASE: &str = "release_version";
const K_REMOVED: &str = "removed";

/// A change in the cluster as one node sees it.
///
/// A node seen for the first time yields `Joined` (then `Up` if it is alive); a restart (new
/// generation) yields `Changed` and `Up`; any gossiped field change yields `Changed`; status
/// `Left` yields `Left`.
#[derive(Clone, Debug)]
pub enum MembershipEvent {
    Joined(NodeState),
    Up(Uuid),
    Down(Uuid),
    Changed(NodeState),
    Left(Uuid),
}

/// The cluster's members as this node knows them.
pub trait Membership: Send + Sync {
    /// This node's state.
    fn local(&self) -> NodeState;
    /// Changes this node's state (e.g. a new schema version, a status); gossiped at once.
    fn update_local(&self, f: &dyn Fn(&mut NodeState));
    /// Every known node including the local one (always alive), with its liveness.
    fn nodes(&self) -> Vec<(NodeState, bool)>;
    fn is_alive(&self, host_id: Uuid) -> bool;
    fn subscribe(&self) -> broadcast::Receiver<MembershipEvent>;
    /// Stops gossiping (the others then see this node down). Default: nothing.
    fn shutdown(&self) {}
}

/// Gossip settings.
#[derive(Clone, Debug)]
pub struct GossipConfig {
    /// Nodes gossip only with nodes of the same cluster name.
    pub cluster_name: String,
    /// `listen_address:storage_port`; gossip uses UDP on it.
    pub listen: SocketAddr,
    pub seeds: Vec<SocketAddr>,
    /// Gossip round period (also the failure detector's initial heartbeat interval).
    pub interval: Duration,
    /// Phi above which a node is down, in Cassandra's scale (`phi_convict_threshold`, 8: a node
    /// is convicted after about 18 mean heartbeat intervals of silence, ~4 s at 200 ms rounds).
    pub phi_threshold: f64,
}

impl GossipConfig {
    /// 200 ms rounds and phi 8.
    pub fn new(
        cluster_name: impl Into<String>,
        listen: SocketAddr,
        seeds: Vec<SocketAddr>,
    ) -> Self {
        GossipConfig {
            cluster_name: cluster_name.into(),
            listen,
            seeds,
            interval: Duration::from_millis(200),
            phi_threshold: 8.0,
        }
    }
}

/// How long chitchat keeps a dead node's state (Cassandra keeps down nodes until removed; our
/// view keeps them regardless, this only bounds chitchat's memory of old generations).
const DEAD_NODE_GRACE: Duration = Duration::from_secs(3 * 24 * 3600);

struct Member {
    state: NodeState,
    alive: bool,
}

struct Gossip {
    local: parking_lot::RwLock<NodeState>,
    view: parking_lot::RwLock<HashMap<Uuid, Member>>,
    events: broadcast::Sender<MembershipEvent>,
    poke: Arc<Notify>,
    handle: parking_lot::Mutex<Option<ChitchatHandle>>,
}

impl Membership for Gossip {
    fn local(&self) -> NodeState {
        self.local.read().clone()
    }

    fn update_local(&self, f: &dyn Fn(&mut NodeState)) {
        {
            let mut l = self.local.write();
            let (host_id, generation) = (l.host_id, l.generation);
            f(&mut l);
            // Identity is fixed for the life of the gossiper.
            l.host_id = host_id;
            l.generation = generation;
        }
        self.poke.notify_one();
    }

    fn nodes(&self) -> Vec<(NodeState, bool)> {
        let mut v = vec![(self.local(), true)];
        v.extend(
            self.view
                .read()
                .values()
                .map(|m| (m.state.clone(), m.alive)),
        );
        v
    }

    fn is_alive(&self, host_id: Uuid) -> bool {
        if host_id == self.local.read().host_id {
            return true;
        }
        self.view.read().get(&host_id).is_some_and(|m| m.alive)
    }

    fn subscribe(&self) -> broadcast::Receiver<MembershipEvent> {
        self.events.subscribe()
    }

    fn shutdown(&self) {
        if let Some(h) = self.handle.lock().take() {
            let _ = h.initiate_shutdown();
        }
        self.poke.notify_one();
    }
}

impl Drop for Gossip {
    fn drop(&mut self) {
        if let Some(h) = self.handle.lock().take() {
            let _ = h.initiate_shutdown();
        }
    }
}

/// Starts gossiping as `local` and returns the membership view. Seeds equal to `listen` are
/// ignored. Fails when the UDP socket cannot be bound.
pub async fn start_gossip(
    config: GossipConfig,
    mut local: NodeState,
) -> Result<Arc<dyn Membership>, ClusterError> {
    if local.generation == 0 {
        local.generation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1);
    }
    let chitchat_id = ChitchatId::new(local.host_id.to_string(), local.generation, config.listen);
    let seeds: Vec<String> = config
        .seeds
        .iter()
        .filter(|s| **s != config.listen)
        .map(|s| s.to_string())
        .collect();
    let cc = ChitchatConfig {
        chitchat_id: chitchat_id.clone(),
        cluster_id: config.cluster_name.clone(),
        gossip_interval: config.interval,
        listen_addr: config.listen,
        seed_nodes: seeds,
        failure_detector_config: FailureDetectorConfig {
            // chitchat's phi is elapsed / mean interval; Cassandra's is that times log10(e).
            phi_threshold: config.phi_threshold * std::f64::consts::LN_10,
            sampling_window_size: 1000,
            max_interval: (config.interval * 50).max(Duration::from_secs(10)),
            initial_interval: config.interval,
            dead_node_grace_period: DEAD_NODE_GRACE,
        },
        marked_for_deletion_grace_period: Duration::from_secs(3600),
        catchup_callback: None,
        extra_liveness_predicate: None,
        protocol_version: ProtocolVersion::V0,
    };
    let handle = spawn_chitchat(cc, local.to_kvs(), &UdpTransport)
        .await
        .map_err(|e| ClusterError::Gossip(format!("{e:#}")))?;
    let chitchat = handle.chitchat();
    let (events, _) = broadcast::channel(1024);
    let g = Arc::new(Gossip {
        local: parking_lot::RwLock::new(local),
        view: Default::default(),
        events,
        poke: Arc::new(Notify::new()),
        handle: parking_lot::Mutex::new(Some(handle)),
    });
    let weak: Weak<Gossip> = Arc::downgrade(&g);
    let interval = config.interval;
    let poke = g.poke.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval / 2);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let Some(g) = weak.upgrade() else { return };
            if g.handle.lock().is_none() {
                return;
            }
            let local = g.local();
            let snapshot = {
                let mut cc = chitchat.lock().await;
                let me = cc.self_node_state();
                for (k, v) in local.to_kvs() {
                    me.set(k, v);
                }
                let live: HashSet<ChitchatId> = cc.live_nodes().cloned().collect();
                cc.node_states()
                    .iter()
                    .filter(|(id, _)| **id != chitchat_id)
                    .filter_map(|(id, s)| {
                        NodeState::from_chitchat(id, s).map(|st| (st, live.contains(id)))
                    })
                    .collect::<Vec<_>>()
            };
            g.apply(snapshot, local.host_id);
            drop(g);
            tokio::select! {
                _ = tick.tick() => {}
                _ = poke.notified() => {}
            }
        }
    });
    Ok(g)
}

impl Gossip {
    /// Folds a snapshot of chitchat's nodes into the view and broadcasts the differences.
    fn apply(&self, snapshot: Vec<(NodeState, bool)>, me: Uuid) {
        // Newest generation per host.
        let mut newest: HashMap<Uuid, (NodeState, bool)> = HashMap::new();
        for (st, alive) in snapshot {
            if st.host_id == me {
                continue; // an older generation of this very node
            }
            match newest.get(&st.host_id) {
                Some((cur, _)) if cur.generation >= st.generation => {}
                _ => {
                    newest.insert(st.host_id, (st, alive));
                }
            }
        }
        let mut out = Vec::new();
        {
            let mut view = self.view.write();
            for (id, (st, alive)) in newest {
                match view.get_mut(&id) {
                    None => {
                        if st.status == NodeStatus::Left {
                            continue;
                        }
                        out.push(MembershipEvent::Joined(st.clone()));
                        if alive {
                            out.push(MembershipEvent::Up(id));
                        }
                        view.insert(id, Member { state: st, alive });
                    }
                    Some(m) => {
                        if st.generation < m.state.generation {
                            continue;
                        }
                        if m.state != st {
                            if st.status == NodeStatus::Left {
                                out.push(MembershipEvent::Left(id));
                                view.remove(&id);
                                continue;
                            }
                            out.push(MembershipEvent::Changed(st.clone()));
                            m.state = st;
                        }
                        if m.alive != alive {
                            m.alive = alive;
                            out.push(if alive {
                                MembershipEvent::Up(id)
                            } else {
                                MembershipEvent::Down(id)
                            });
                        }
                    }
                }
            }
        }
        for e in out {
            debug!("gossip: {e:?}");
            let _ = self.events.send(e);
        }
    }
}
