//! The token ring and replica placement.
//!
//! Tokens are Murmur3 tokens (`i64`). A node owns the ranges `(previous token, its token]`; a
//! token `t` belongs to the first ring token `>= t`, wrapping to the smallest one.
//!
//! Placement follows Cassandra 5 (`SimpleStrategy`, `NetworkTopologyStrategy`); the *set* of
//! replicas equals what the Python driver's `make_token_replica_map` computes (the oracle users
//! see through `cluster.metadata.get_replicas`). The *order* is Cassandra's: one walk of the ring
//! clockwise from the token, so the first replica is the token's primary owner. (The driver lists
//! the replicas of one DC after another and places rack repeats after the distinct racks; the
//! set is the same, see `tests/placement.rs`.)

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use uuid::Uuid;

use crate::ClusterError;

/// A ring member: identity and location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub host_id: Uuid,
    pub addr: IpAddr,
    pub dc: String,
    pub rack: String,
}

#[derive(Clone, Default)]
struct Inner {
    nodes: HashMap<Uuid, NodeInfo>,
    tokens_by_node: HashMap<Uuid, Vec<i64>>,
    /// Every token with its owner, sorted by token.
    sorted: Vec<(i64, Uuid)>,
    /// Per DC: number of token-owning nodes and number of distinct racks.
    dc_topology: HashMap<String, (usize, usize)>,
}

impl Inner {
    fn rebuild(&mut self) {
        let mut sorted: Vec<(i64, Uuid)> = self
            .tokens_by_node
            .iter()
            .flat_map(|(id, ts)| ts.iter().map(move |t| (*t, *id)))
            .collect();
        sorted.sort_unstable();
        self.sorted = sorted;
        let mut nodes_per_dc: HashMap<&str, usize> = HashMap::new();
        let mut racks_per_dc: HashMap<&str, HashSet<&str>> = HashMap::new();
        for (id, ts) in &self.tokens_by_node {
            if ts.is_empty() {
                continue;
            }
            let n = &self.nodes[id];
            *nodes_per_dc.entry(&n.dc).or_default() += 1;
            racks_per_dc.entry(&n.dc).or_default().insert(&n.rack);
        }
        self.dc_topology = nodes_per_dc
            .iter()
            .map(|(dc, n)| (dc.to_string(), (*n, racks_per_dc[dc].len())))
            .collect();
    }
}

/// The token ring: which node owns which tokens, and where each node lives. Cloning is cheap
/// (an `Arc`); mutation copies on write.
#[derive(Clone, Default)]
pub struct TokenRing {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TokenRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRing")
            .field("nodes", &self.inner.nodes.len())
            .field("tokens", &self.inner.sorted.len())
            .finish()
    }
}

impl TokenRing {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node or replaces its location and tokens. A token already owned by another node
    /// moves to this one (as in Cassandra's `TokenMetadata`).
    pub fn add_node(&mut self, info: NodeInfo, tokens: &[i64]) {
        let inner = Arc::make_mut(&mut self.inner);
        let id = info.host_id;
        let mut mine: Vec<i64> = tokens.to_vec();
        mine.sort_unstable();
        mine.dedup();
        let wanted: HashSet<i64> = mine.iter().copied().collect();
        for (other, ts) in inner.tokens_by_node.iter_mut() {
            if *other != id {
                ts.retain(|t| !wanted.contains(t));
            }
        }
        inner.tokens_by_node.insert(id, mine);
        inner.nodes.insert(id, info);
        inner.rebuild();
    }

    /// Removes a node and its tokens (no-op when unknown).
    pub fn remove_node(&mut self, host_id: Uuid) {
        if !self.inner.nodes.contains_key(&host_id) {
            return;
        }
        let inner = Arc::make_mut(&mut self.inner);
        inner.nodes.remove(&host_id);
        inner.tokens_by_node.remove(&host_id);
        inner.rebuild();
    }

    /// Every member, sorted by host id.
    /// How many nodes the ring holds (without copying them as `nodes` does).
    pub fn node_count(&self) -> usize {
        self.inner.nodes.len()
    }

    pub fn nodes(&self) -> Vec<NodeInfo> {
        let mut v: Vec<NodeInfo> = self.inner.nodes.values().cloned().collect();
        v.sort_by_key(|n| n.host_id);
        v
    }

    /// A node's tokens, sorted.
    pub fn tokens_of(&self, host_id: Uuid) -> Vec<i64> {
        self.inner
            .tokens_by_node
            .get(&host_id)
            .cloned()
            .unwrap_or_default()
    }

    pub fn node(&self, host_id: Uuid) -> Option<&NodeInfo> {
        self.inner.nodes.get(&host_id)
    }

    /// True when no node owns a token.
    pub fn is_empty(&self) -> bool {
        self.inner.sorted.is_empty()
    }

    /// Every (token, owner), sorted by token.
    pub fn sorted_tokens(&self) -> &[(i64, Uuid)] {
        &self.inner.sorted
    }

    /// The node whose range holds `token` (the owner of the first ring token `>= token`).
    pub fn primary(&self, token: i64) -> Option<Uuid> {
        let s = &self.inner.sorted;
        if s.is_empty() {
            return None;
        }
        Some(s[self.start_index(token)].1)
    }

    /// The names of the datacenters that have token-owning nodes, sorted.
    pub fn datacenters(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self.inner.dc_topology.keys().collect();
        set.into_iter().cloned().collect()
    }

    fn start_index(&self, token: i64) -> usize {
        let s = &self.inner.sorted;
        let i = s.partition_point(|(t, _)| *t < token);
        if i == s.len() {
            0
        } else {
            i
        }
    }

    /// Natural replicas for a token, in Cassandra's order (primary first).
    ///
    /// `Replication::Local` has no ring placement and yields no replica (the caller uses the
    /// local node).
    pub fn replicas(&self, strategy: &Replication, token: i64) -> Vec<Uuid> {
        if self.inner.sorted.is_empty() {
            return Vec::new();
        }
        let start = self.start_index(token);
        match strategy {
            Replication::Local => Vec::new(),
            Replication::Simple { rf } => self.simple(*rf, start),
            Replication::NetworkTopology { dc_rf } => self.network_topology(dc_rf, start),
        }
    }

    fn walk(&self, start: usize) -> impl Iterator<Item = Uuid> + '_ {
        let s = &self.inner.sorted;
        (0..s.len()).map(move |k| s[(start + k) % s.len()].1)
    }

    fn simple(&self, rf: usize, start: usize) -> Vec<Uuid> {
        let mut out: Vec<Uuid> = Vec::with_capacity(rf);
        if rf == 0 {
            return out;
        }
        for id in self.walk(start) {
            if !out.contains(&id) {
                out.push(id);
                if out.len() == rf {
                    break;
                }
            }
        }
        out
    }

    fn network_topology(&self, dc_rf: &BTreeMap<String, usize>, start: usize) -> Vec<Uuid> {
        // Per DC: replicas still wanted, rack repeats still acceptable, racks already used.
        struct Dc<'a> {
            left: usize,
            repeats: isize,
            racks: HashSet<&'a str>,
        }
        let mut dcs: HashMap<&str, Dc> = HashMap::new();
        for (dc, rf) in dc_rf {
            let Some(&(nodes, racks)) = self.inner.dc_topology.get(dc) else {
                continue;
            };
            if *rf == 0 || nodes == 0 {
                continue;
            }
            dcs.insert(
                dc.as_str(),
                Dc {
                    // Fewer nodes than the RF: every node of the DC is a replica.
                    left: (*rf).min(nodes),
                    // Fewer racks than the RF: one node per rack, and the first rack repeats
                    // met along the walk fill the difference.
                    repeats: *rf as isize - racks as isize,
                    racks: HashSet::new(),
                },
            );
        }
        let mut to_fill = dcs.len();
        let mut out: Vec<Uuid> = Vec::new();
        for id in self.walk(start) {
            if to_fill == 0 {
                break;
            }
            let info = &self.inner.nodes[&id];
            let Some(dc) = dcs.get_mut(info.dc.as_str()) else {
                continue;
            };
            if dc.left == 0 || out.contains(&id) {
                continue;
            }
            if dc.racks.insert(info.rack.as_str()) {
                out.push(id);
                dc.left -= 1;
            } else if dc.repeats > 0 {
                out.push(id);
                dc.repeats -= 1;
                dc.left -= 1;
            } else {
                continue;
            }
            if dc.left == 0 {
                to_fill -= 1;
            }
        }
        out
    }

    /// The token ranges (start exclusive, end inclusive; wrapping) a node replicates under a
    /// strategy, one per ring token whose replicas include the node, in token order. A range with
    /// `start == end` is the whole ring (a ring of one token). `Replication::Local` yields the
    /// whole ring for a member.
    pub fn ranges_for(&self, strategy: &Replication, host_id: Uuid) -> Vec<(i64, i64)> {
        let s = &self.inner.sorted;
        if s.is_empty() || !self.inner.nodes.contains_key(&host_id) {
            return Vec::new();
        }
        if *strategy == Replication::Local {
            return vec![(i64::MIN, i64::MIN)];
        }
        let mut out = Vec::new();
        for (i, (t, _)) in s.iter().enumerate() {
            let prev = if i == 0 { s[s.len() - 1].0 } else { s[i - 1].0 };
            if self.replicas(strategy, *t).contains(&host_id) {
                out.push((prev, *t));
            }
        }
        out
    }

    /// Each node's share of the ring's primary ranges (the sum over nodes is 1.0).
    pub fn ownership(&self) -> HashMap<Uuid, f64> {
        let s = &self.inner.sorted;
        let mut out: HashMap<Uuid, f64> = HashMap::new();
        if s.is_empty() {
            return out;
        }
        if s.len() == 1 {
            out.insert(s[0].1, 1.0);
            return out;
        }
        for (i, (t, id)) in s.iter().enumerate() {
            let prev = if i == 0 { s[s.len() - 1].0 } else { s[i - 1].0 };
            *out.entry(*id).or_default() += width(prev, *t) as f64 / RING_SIZE;
        }
        out
    }
}

const RING_SIZE: f64 = 18_446_744_073_709_551_616.0; // 2^64

/// The width of the wrapping range `(start, end]`; `start == end` is the whole ring (`0` here,
/// as the full width does not fit).
fn width(start: i64, end: i64) -> u64 {
    (end as u64).wrapping_sub(start as u64)
}

/// The default replication factor Cassandra 4.1+ uses when a strategy's options omit it
/// (`default_keyspace_rf`, default 1).
pub const DEFAULT_KEYSPACE_RF: usize = 1;

const CLASS_PREFIX: &str = "org.apache.cassandra.locator.";

/// A keyspace's replication strategy.
#[derive(Clone, Debug, PartialEq)]
pub enum Replication {
    /// `LocalStrategy`: data stays on the node that writes it (system keyspaces).
    Local,
    /// `SimpleStrategy`: the first `rf` distinct nodes clockwise.
    Simple { rf: usize },
    /// `NetworkTopologyStrategy`: per DC, rack-aware.
    NetworkTopology { dc_rf: BTreeMap<String, usize> },
}

impl Replication {
    /// Parses `system_schema.keyspaces.replication` options: `class` (full
    /// `org.apache.cassandra.locator.X` or short name) plus `replication_factor` or DC names.
    ///
    /// As in Cassandra 4.0+, `NetworkTopologyStrategy`'s `replication_factor` option is a default
    /// that expands to every datacenter of the cluster not named explicitly; it is never stored.
    /// This function knows no datacenter, so there it expands to nothing — CREATE/ALTER KEYSPACE
    /// should call [`Replication::from_options_with_dcs`] with the ring's datacenters and store
    /// [`Replication::to_options`]. As in Cassandra 4.1+, a `SimpleStrategy` without
    /// `replication_factor`, or a `NetworkTopologyStrategy` with no option at all, gets
    /// [`DEFAULT_KEYSPACE_RF`].
    pub fn from_options(opts: &BTreeMap<String, String>) -> Result<Replication, ClusterError> {
        Self::from_options_with_dcs(opts, &[])
    }

    /// [`Replication::from_options`] with the cluster's known datacenters, to which a
    /// `NetworkTopologyStrategy` `replication_factor` default (or an empty option list) expands.
    pub fn from_options_with_dcs(
        opts: &BTreeMap<String, String>,
        known_dcs: &[String],
    ) -> Result<Replication, ClusterError> {
        let class = opts
            .get("class")
            .ok_or_else(|| ClusterError::Config("Missing replication strategy class".into()))?;
        let short = class.strip_prefix(CLASS_PREFIX).unwrap_or(class);
        match short {
            "LocalStrategy" => Ok(Replication::Local),
            "SimpleStrategy" => {
                let mut rf = DEFAULT_KEYSPACE_RF;
                for (k, v) in opts {
                    match k.as_str() {
                        "class" => {}
                        "replication_factor" => rf = parse_rf(v)?,
                        _ => {
                            return Err(ClusterError::Config(format!(
                                "Unrecognized strategy option {{{k}}} passed to SimpleStrategy"
                            )))
                        }
                    }
                }
                Ok(Replication::Simple { rf })
            }
            "NetworkTopologyStrategy" => {
                let mut dc_rf = BTreeMap::new();
                let mut default = None;
                for (k, v) in opts {
                    match k.as_str() {
                        "class" => {}
                        "replication_factor" => default = Some(parse_rf(v)?),
                        dc => {
                            dc_rf.insert(dc.to_string(), parse_rf(v)?);
                        }
                    }
                }
                if default.is_none() && dc_rf.is_empty() {
                    default = Some(DEFAULT_KEYSPACE_RF);
                }
                if let Some(rf) = default {
                    for dc in known_dcs {
                        dc_rf.entry(dc.clone()).or_insert(rf);
                    }
                }
                Ok(Replication::NetworkTopology { dc_rf })
            }
            _ => Err(ClusterError::Config(format!(
                "Unable to find replication strategy class '{}'",
                if class.contains('.') {
                    class.clone()
                } else {
                    format!("{CLASS_PREFIX}{class}")
                }
            ))),
        }
    }

    /// The options as Cassandra stores them in `system_schema.keyspaces.replication`.
    pub fn to_options(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        match self {
            Replication::Local => {
                m.insert("class".into(), format!("{CLASS_PREFIX}LocalStrategy"));
            }
            Replication::Simple { rf } => {
                m.insert("class".into(), format!("{CLASS_PREFIX}SimpleStrategy"));
                m.insert("replication_factor".into(), rf.to_string());
            }
            Replication::NetworkTopology { dc_rf } => {
                m.insert(
                    "class".into(),
                    format!("{CLASS_PREFIX}NetworkTopologyStrategy"),
                );
                for (dc, rf) in dc_rf {
                    m.insert(dc.clone(), rf.to_string());
                }
            }
        }
        m
    }

    /// Replicas per token over the whole cluster (`Local` counts 1).
    pub fn total_rf(&self) -> usize {
        match self {
            Replication::Local => 1,
            Replication::Simple { rf } => *rf,
            Replication::NetworkTopology { dc_rf } => dc_rf.values().sum(),
        }
    }

    /// Replicas per token in one DC. `SimpleStrategy` is DC-blind and answers its RF, as Cassandra
    /// does for `LOCAL_QUORUM` on a SimpleStrategy keyspace; `Local` answers 1.
    pub fn rf_in_dc(&self, dc: &str) -> usize {
        match self {
            Replication::Local => 1,
            Replication::Simple { rf } => *rf,
            Replication::NetworkTopology { dc_rf } => dc_rf.get(dc).copied().unwrap_or(0),
        }
    }
}

fn parse_rf(v: &str) -> Result<usize, ClusterError> {
    if v.contains('/') {
        return Err(ClusterError::Config(
            "Transient replication is not enabled on this node".into(),
        ));
    }
    match v.trim().parse::<i64>() {
        Ok(n) if n < 0 => Err(ClusterError::Config(format!(
            "Replication factor must be non-negative; found {v}"
        ))),
        Ok(n) => Ok(n as usize),
        Err(_) => Err(ClusterError::Config(format!(
            "Replication factor must be numeric; found {v}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn node(n: u8, dc: &str, rack: &str) -> NodeInfo {
        NodeInfo {
            host_id: Uuid::from_u128(n as u128),
            addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)),
            dc: dc.into(),
            rack: rack.into(),
        }
    }

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn simple_walks_clockwise() {
        let mut r = TokenRing::new();
        r.add_node(node(1, "dc1", "r1"), &[-100, 100]);
        r.add_node(node(2, "dc1", "r1"), &[0]);
        r.add_node(node(3, "dc1", "r1"), &[50]);
        let s = Replication::Simple { rf: 2 };
        let id = |n: u128| Uuid::from_u128(n);
        assert_eq!(r.replicas(&s, -100), vec![id(1), id(2)]);
        assert_eq!(r.replicas(&s, -99), vec![id(2), id(3)]);
        assert_eq!(r.replicas(&s, 51), vec![id(1), id(2)]);
        assert_eq!(r.replicas(&s, 101), vec![id(1), id(2)]);
        assert_eq!(r.replicas(&Replication::Simple { rf: 9 }, 0).len(), 3);
        assert_eq!(r.primary(60), Some(id(1)));
        assert!(r.replicas(&Replication::Local, 0).is_empty());
        // ranges_for: node 3 replicates (0,50] as primary and (-100,0] as second replica.
        assert_eq!(r.ranges_for(&s, id(3)), vec![(-100, 0), (0, 50)]);
    }

    #[test]
    fn add_replaces_tokens_and_steals_collisions() {
        let mut r = TokenRing::new();
        r.add_node(node(1, "dc1", "r1"), &[1, 2, 3]);
        r.add_node(node(2, "dc1", "r1"), &[3, 4]);
        assert_eq!(r.tokens_of(Uuid::from_u128(1)), vec![1, 2]);
        r.add_node(node(1, "dc1", "r1"), &[10]);
        assert_eq!(r.tokens_of(Uuid::from_u128(1)), vec![10]);
        assert_eq!(r.sorted_tokens().len(), 3);
        let before = r.clone();
        r.remove_node(Uuid::from_u128(2));
        assert_eq!(r.nodes().len(), 1);
        assert_eq!(before.nodes().len(), 2);
    }

    #[test]
    fn nts_rack_repeats_follow_walk_order() {
        let mut r = TokenRing::new();
        r.add_node(node(1, "dc1", "a"), &[10]);
        r.add_node(node(2, "dc1", "a"), &[20]);
        r.add_node(node(3, "dc1", "b"), &[30]);
        r.add_node(node(4, "dc1", "a"), &[40]);
        r.add_node(node(5, "dc2", "a"), &[15]);
        let id = |n: u128| Uuid::from_u128(n);
        let nts = Replication::NetworkTopology {
            dc_rf: [("dc1".to_string(), 3), ("dc2".to_string(), 1)].into(),
        };
        // Cassandra: 1 (rack a), 5 (dc2), 2 (a repeat, one allowed as RF 3 > 2 racks), 3 (b).
        assert_eq!(r.replicas(&nts, 10), vec![id(1), id(5), id(2), id(3)]);
        let nts2 = Replication::NetworkTopology {
            dc_rf: [("dc1".to_string(), 2)].into(),
        };
        // RF 2 = 2 racks: no repeat allowed, so 2 is skipped for 3.
        assert_eq!(r.replicas(&nts2, 10), vec![id(1), id(3)]);
        assert_eq!(r.replicas(&nts2, 35), vec![id(4), id(3)]);
    }

    #[test]
    fn options() {
        let s = Replication::from_options(&opts(&[
            ("class", "SimpleStrategy"),
            ("replication_factor", "3"),
        ]))
        .unwrap();
        assert_eq!(s, Replication::Simple { rf: 3 });
        assert_eq!(Replication::from_options(&s.to_options()).unwrap(), s);
        let n = Replication::from_options_with_dcs(
            &opts(&[
                (
                    "class",
                    "org.apache.cassandra.locator.NetworkTopologyStrategy",
                ),
                ("replication_factor", "2"),
                ("dc2", "1"),
            ]),
            &["dc1".into(), "dc2".into()],
        )
        .unwrap();
        assert_eq!(
            n,
            Replication::NetworkTopology {
                dc_rf: [("dc1".to_string(), 2), ("dc2".to_string(), 1)].into()
            }
        );
        assert_eq!(n.total_rf(), 3);
        assert_eq!(n.rf_in_dc("dc1"), 2);
        assert_eq!(n.rf_in_dc("dc9"), 0);
        assert_eq!(Replication::from_options(&n.to_options()).unwrap(), n);
        assert_eq!(
            Replication::from_options(&opts(&[("class", "SimpleStrategy")])).unwrap(),
            Replication::Simple { rf: 1 }
        );
        for bad in [
            opts(&[]),
            opts(&[("class", "Nope")]),
            opts(&[("class", "SimpleStrategy"), ("replication_factor", "x")]),
            opts(&[("class", "SimpleStrategy"), ("replication_factor", "-1")]),
            opts(&[("class", "SimpleStrategy"), ("dc1", "1")]),
            opts(&[("class", "NetworkTopologyStrategy"), ("dc1", "2/1")]),
        ] {
            assert!(Replication::from_options(&bad).is_err(), "{bad:?}");
        }
        let e = Replication::from_options(&opts(&[("class", "Nope")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Unable to find replication strategy class 'org.apache.cassandra.locator.Nope'"
        );
    }
}
