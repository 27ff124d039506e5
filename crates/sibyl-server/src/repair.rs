//! Anti-entropy repair: for every token range this node replicates, each replica hashes its
//! data into a Merkle tree (leaves: token sub-ranges; root: the hash of the leaves); where the
//! trees differ, the partitions of the differing sub-ranges are exchanged so that every replica
//! ends up with every replica's cells (last write wins makes the exchange idempotent).
//!
//! Replicas compare and exchange partitions as stored (`Engine::scan_raw`): live cells and
//! tombstones alike, so a deletion one replica missed is repaired rather than undone.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use sibyl_cluster::messaging;
use sibyl_storage::model::{Mutation, PartitionKey, TableId};
use uuid::Uuid;

use crate::coordinator::VERB_MUTATION;
use crate::node::Node;

pub const VERB_REPAIR_TREE: u16 = 7;
/// A page of whole partitions (tombstones included) of a token range.
pub const VERB_SCAN_RAW: u16 = 12;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawScanRequest {
    pub table: TableId,
    pub from: Bound<PartitionKey>,
    pub to: i64,
    pub max: usize,
    pub now_secs: i64,
}

/// Serves VERB_SCAN_RAW.
pub fn serve_scan_raw(node: &Node, r: RawScanRequest) -> Result<Vec<Mutation>, String> {
    node.engine
        .scan_raw(r.table, r.from, Bound::Included(r.to), r.max, r.now_secs)
        .map_err(|e| e.to_string())
}
/// Leaves per range piece.
const LEAVES: usize = 64;
const PAGE: usize = 256;

/// A Merkle tree request for the token range (lo, hi] of one table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TreeRequest {
    pub table: TableId,
    /// Exclusive lower token; None: from the start of the ring (inclusive of i64::MIN).
    pub lo: Option<i64>,
    pub hi: i64,
    pub now_secs: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub root: [u8; 16],
    pub leaves: Vec<[u8; 16]>,
}

fn leaf_of(lo: Option<i64>, hi: i64, token: i64) -> usize {
    let start = lo.map_or(i64::MIN as i128, |l| l as i128 + 1);
    let width = (hi as i128 - start + 1).max(1);
    (((token as i128 - start).max(0) * LEAVES as i128) / width).min(LEAVES as i128 - 1) as usize
}

fn from_bound(lo: Option<i64>) -> Bound<PartitionKey> {
    match lo {
        None => Bound::Unbounded,
        Some(l) if l == i64::MAX => Bound::Excluded(PartitionKey {
            token: i64::MAX,
            key: Bytes::from(vec![0xFF; 1]),
        }),
        Some(l) => Bound::Included(PartitionKey {
            token: l + 1,
            key: Bytes::new(),
        }),
    }
}

/// The range (start, end] as pieces (lo, hi] that do not wrap around the ring; `lo` None
/// means from the ring's first token.
pub(crate) fn pieces(start: i64, end: i64) -> Vec<(Option<i64>, i64)> {
    if start < end {
        vec![(Some(start), end)]
    } else if start == i64::MAX {
        vec![(None, end)]
    } else {
        vec![(Some(start), i64::MAX), (None, end)]
    }
}

/// The partitions of (lo, hi] on one node, as stored: this one (None) or a peer.
pub(crate) async fn partitions_of(
    node: &Arc<Node>,
    at: Option<SocketAddr>,
    table: TableId,
    lo: Option<i64>,
    hi: i64,
    now_secs: i64,
) -> Result<Vec<Mutation>, String> {
    match at {
        None => {
            let mut v = vec![];
            scan_local(node, table, lo, hi, now_secs, |p| v.push(p))?;
            Ok(v)
        }
        Some(a) => remote_partitions(node, a, table, from_bound(lo), hi, now_secs).await,
    }
}

/// Writes `m` on one node: this one (None) or a peer.
async fn send(
    node: &Arc<Node>,
    at: Option<SocketAddr>,
    m: &sibyl_storage::Mutation,
) -> Result<(), String> {
    match at {
        None => node.engine.apply(m).map_err(|e| e.to_string()),
        Some(a) => {
            let c = node.cluster.get().ok_or("no cluster")?;
            c.messaging
                .request(
                    a,
                    VERB_MUTATION,
                    messaging::encode(m),
                    Duration::from_secs(30),
                )
                .await
                .map(|_| ())
                .map_err(|e| format!("streaming to {a} failed: {e}"))
        }
    }
}

/// Pages through the partitions of (lo, hi] on this node.
fn scan_local(
    node: &Node,
    table: TableId,
    lo: Option<i64>,
    hi: i64,
    now_secs: i64,
    mut f: impl FnMut(Mutation),
) -> Result<(), String> {
    let mut from = from_bound(lo);
    loop {
        let page = serve_scan_raw(
            node,
            RawScanRequest {
                table,
                from: from.clone(),
                to: hi,
                max: PAGE,
                now_secs,
            },
        )?;
        let n = page.len();
        for m in page {
            from = Bound::Excluded(m.key.clone());
            f(m);
        }
        if n < PAGE {
            return Ok(());
        }
    }
}

/// This node's Merkle tree of (lo, hi].
pub fn local_tree(node: &Node, req: &TreeRequest) -> Result<Tree, String> {
    let mut hashers: Vec<Md5> = (0..LEAVES).map(|_| Md5::new()).collect();
    scan_local(node, req.table, req.lo, req.hi, req.now_secs, |v| {
        let leaf = leaf_of(req.lo, req.hi, v.key.token);
        hashers[leaf].update(messaging::encode(&v));
    })?;
    let leaves: Vec<[u8; 16]> = hashers.into_iter().map(|h| h.finalize().into()).collect();
    let mut root = Md5::new();
    for l in &leaves {
        root.update(l);
    }
    Ok(Tree {
        root: root.finalize().into(),
        leaves,
    })
}

/// What one repair did.
#[derive(Debug, Default)]
pub struct RepairStats {
    pub ranges: usize,
    pub mismatched_ranges: usize,
    pub mismatched_leaves: usize,
    pub partitions_sent: usize,
}

async fn remote_partitions(
    node: &Arc<Node>,
    addr: SocketAddr,
    table: TableId,
    lo: Bound<PartitionKey>,
    hi: i64,
    now_secs: i64,
) -> Result<Vec<Mutation>, String> {
    let c = node.cluster.get().ok_or("no cluster")?;
    let mut out = vec![];
    let mut from = lo;
    loop {
        let req = RawScanRequest {
            table,
            from: from.clone(),
            to: hi,
            max: PAGE,
            now_secs,
        };
        let b = c
            .messaging
            .request(
                addr,
                VERB_SCAN_RAW,
                messaging::encode(&req),
                Duration::from_secs(60),
            )
            .await
            .map_err(|e| format!("scan from {addr} failed: {e}"))?;
        let page: Vec<Mutation> = messaging::decode(&b).map_err(|e| e.to_string())?;
        let n = page.len();
        if let Some(last) = page.last() {
            from = Bound::Excluded(last.key.clone());
        }
        out.extend(page);
        if n < PAGE {
            return Ok(out);
        }
    }
}

/// Repairs every table of `keyspace` over the ranges this node replicates.
pub async fn repair_keyspace(node: &Arc<Node>, keyspace: &str) -> Result<RepairStats, String> {
    let mut stats = RepairStats::default();
    let Some(c) = node.cluster.get().cloned() else {
        return Ok(stats);
    };
    let schema = node.schema();
    if !schema.keyspaces.contains_key(keyspace) {
        return Err(format!("Keyspace [{keyspace}] does not exist."));
    }
    let ring = c.ring.read().clone();
    let rep = node.replication_of(keyspace);
    let now_secs = sibyl_types::timeuuid::micros_now() / 1_000_000;
    let local = c.local_id;
    for table in schema.tables().filter(|t| t.keyspace == keyspace) {
        for (start, end) in ring.ranges_for(&rep, local) {
            for (lo, hi) in pieces(start, end) {
                stats.ranges += 1;
                let replicas = ring.replicas(&rep, hi);
                let mut addrs: Vec<(Uuid, Option<SocketAddr>)> = vec![];
                for id in &replicas {
                    if *id == local {
                        addrs.push((*id, None));
                        continue;
                    }
                    if !c.membership.is_alive(*id) {
                        let who = ring
                            .node(*id)
                            .map(|n| n.addr.to_string())
                            .unwrap_or_default();
                        return Err(format!("Repair failed: endpoint {who} is down"));
                    }
                    let addr = ring
                        .node(*id)
                        .map(|n| SocketAddr::new(n.addr, c.storage_port))
                        .ok_or("replica without an address")?;
                    addrs.push((*id, Some(addr)));
                }
                let req = TreeRequest {
                    table: table.id,
                    lo,
                    hi,
                    now_secs,
                };
                let mut trees = vec![];
                for (_, addr) in &addrs {
                    let t = match addr {
                        None => {
                            let n = node.clone();
                            let r = req.clone();
                            tokio::task::spawn_blocking(move || local_tree(&n, &r))
                                .await
                                .map_err(|e| e.to_string())??
                        }
                        Some(a) => {
                            let b = c
                                .messaging
                                .request(
                                    *a,
                                    VERB_REPAIR_TREE,
                                    messaging::encode(&req),
                                    Duration::from_secs(120),
                                )
                                .await
                                .map_err(|e| format!("Merkle tree from {a} failed: {e}"))?;
                            messaging::decode::<Tree>(&b).map_err(|e| e.to_string())?
                        }
                    };
                    trees.push(t);
                }
                if trees.iter().all(|t| t.root == trees[0].root) {
                    continue;
                }
                stats.mismatched_ranges += 1;
                let bad: Vec<usize> = (0..LEAVES)
                    .filter(|&i| trees.iter().any(|t| t.leaves[i] != trees[0].leaves[i]))
                    .collect();
                stats.mismatched_leaves += bad.len();
                // Exchange the partitions of the differing leaves.
                let mut by_key: BTreeMap<PartitionKey, Vec<(usize, Mutation)>> = BTreeMap::new();
                for (ri, (_, addr)) in addrs.iter().enumerate() {
                    for v in partitions_of(node, *addr, table.id, lo, hi, now_secs).await? {
                        if bad.contains(&leaf_of(lo, hi, v.key.token)) {
                            by_key.entry(v.key.clone()).or_default().push((ri, v));
                        }
                    }
                }
                for (_, views) in by_key {
                    for (ri, (_, addr)) in addrs.iter().enumerate() {
                        let own = views.iter().find(|(r, _)| *r == ri).map(|(_, v)| v);
                        for (from, v) in &views {
                            if *from == ri || own == Some(v) {
                                continue;
                            }
                            send(node, *addr, v).await?;
                            stats.partitions_sent += 1;
                        }
                    }
                }
            }
        }
    }
    Ok(stats)
}

/// Streams the data of every range `leaving` replicates in `full` to the nodes that become its
/// replicas in `without` (partitions as stored, tombstones included). The source of a range is this node
/// when it is the one leaving, otherwise a surviving live replica.
async fn hand_over(
    node: &Arc<Node>,
    full: &sibyl_cluster::ring::TokenRing,
    without: &sibyl_cluster::ring::TokenRing,
    leaving: Uuid,
) -> Result<usize, String> {
    let c = node.cluster.get().cloned().ok_or("no cluster")?;
    let at = |ring: &sibyl_cluster::ring::TokenRing, id: Uuid| -> Option<Option<SocketAddr>> {
        if id == c.local_id {
            return Some(None);
        }
        ring.node(id)
            .map(|n| Some(SocketAddr::new(n.addr, c.storage_port)))
    };
    let schema = node.schema();
    let now_secs = sibyl_types::timeuuid::micros_now() / 1_000_000;
    let mut sent = 0;
    for table in schema.tables() {
        if crate::ddl::is_system_keyspace(&table.keyspace) {
            continue;
        }
        let rep = node.replication_of(&table.keyspace);
        for (start, end) in full.ranges_for(&rep, leaving) {
            let old = full.replicas(&rep, end);
            let targets: Vec<Option<SocketAddr>> = without
                .replicas(&rep, end)
                .into_iter()
                .filter(|id| !old.contains(id))
                .filter_map(|id| at(without, id))
                .collect();
            if targets.is_empty() {
                continue;
            }
            let source = if leaving == c.local_id {
                Some(c.local_id)
            } else {
                old.iter()
                    .copied()
                    .find(|id| *id != leaving && (*id == c.local_id || c.membership.is_alive(*id)))
            };
            let Some(source) = source.and_then(|id| at(full, id)) else {
                tracing::warn!(
                    start,
                    end,
                    "no live replica left for a range being handed over"
                );
                continue;
            };
            for (lo, hi) in pieces(start, end) {
                for m in partitions_of(node, source, table.id, lo, hi, now_secs).await? {
                    for t in &targets {
                        send(node, *t, &m).await?;
                        sent += 1;
                    }
                }
            }
        }
    }
    Ok(sent)
}

/// Leaves the ring: streams this node's ranges to their new replicas, announces LEAVING (the
/// others stop sending it requests), streams what was written meanwhile, then announces LEFT.
pub async fn decommission(node: &Arc<Node>) -> Result<String, String> {
    use sibyl_cluster::gossip::NodeStatus;
    let c = node.cluster.get().cloned().ok_or("no cluster")?;
    let full = c.ring.read().clone();
    if full.nodes().len() < 2 {
        return Err("no other nodes in the cluster".into());
    }
    let mut without_me = (*full).clone();
    without_me.remove_node(c.local_id);
    let schema = node.schema();
    for ks in schema
        .keyspaces
        .keys()
        .filter(|k| !crate::ddl::is_system_keyspace(k))
    {
        let rep = node.replication_of(ks);
        let dcs = without_me.datacenters();
        for dc in dcs {
            let rf = rep.rf_in_dc(&dc);
            let n = without_me.nodes().iter().filter(|x| x.dc == dc).count();
            if rf > n {
                return Err(format!(
                    "Not enough live nodes to maintain replication factor in keyspace {ks} (RF = {rf}, N = {n}). Perform a forceful decommission to ignore."
                ));
            }
        }
    }
    let started = std::time::Instant::now();
    let first = hand_over(node, &full, &without_me, c.local_id).await?;
    c.membership
        .update_local(&|s| s.status = NodeStatus::Leaving);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = hand_over(node, &full, &without_me, c.local_id).await?;
    c.membership.update_local(&|s| s.status = NodeStatus::Left);
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(format!(
        "Decommissioned in {} ms: {} partition copies streamed, {} more caught up after LEAVING\n",
        started.elapsed().as_millis(),
        first,
        second
    ))
}

/// Removes the dead node `host` from the ring: for every range it replicated, the nodes that
/// become replicas get the data from a surviving replica; then this node gossips the removal.
pub async fn removenode(node: &Arc<Node>, host: Uuid) -> Result<String, String> {
    let c = node.cluster.get().cloned().ok_or("no cluster")?;
    if host == c.local_id {
        return Err("Cannot remove self".into());
    }
    let Some((state, alive)) = c
        .membership
        .nodes()
        .into_iter()
        .find(|(s, _)| s.host_id == host)
    else {
        return Err("Host ID not found.".into());
    };
    if alive {
        return Err(format!(
            "Node /{} is alive and owns this ID. Use decommission command to remove it from the ring",
            state.addr
        ));
    }
    let full = c.ring.read().clone();
    let mut without = (*full).clone();
    without.remove_node(host);
    let started = std::time::Instant::now();
    let sent = hand_over(node, &full, &without, host).await?;
    c.membership.update_local(&|s| {
        if !s.removed.contains(&host) {
            s.removed.push(host);
        }
    });
    c.rebuild_ring();
    Ok(format!(
        "Removed node {host} in {} ms: {sent} partition copies streamed from surviving replicas\n",
        started.elapsed().as_millis()
    ))
}
