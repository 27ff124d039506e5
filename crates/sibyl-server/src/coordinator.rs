//! The coordinator: any node answers any request by asking the replicas that own the data, at
//! the request's consistency level. Writes go to every live replica and wait for enough acks;
//! reads fetch each contacted replica's raw data (tombstones included), merge it by Cassandra's
//! rules, and repair replicas that were behind. Replica-side handlers serve the same verbs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sibyl_cluster::gossip::{Membership, NodeStatus};
use sibyl_cluster::messaging::{self, Messaging, MessagingError};
use sibyl_cluster::ring::{NodeInfo, Replication, TokenRing};
use sibyl_protocol::consistency as cl;
use sibyl_storage::model::{Mutation, PartitionKey, PartitionView, Slice, TableId};
use uuid::Uuid;

use crate::data::DataSource;
use crate::error::{QueryError, QueryResult};
use crate::node::Node;

pub const VERB_MUTATION: u16 = 1;
pub const VERB_READ_RAW: u16 = 2;
pub const VERB_SCAN: u16 = 3;
pub const VERB_SCHEMA_PUSH: u16 = 4;
pub const VERB_SCHEMA_PULL: u16 = 5;
pub const VERB_INDEX_SEARCH: u16 = 6;
pub const VERB_TRUNCATE: u16 = 11;
pub const VERB_READ_DIGEST: u16 = 16;

/// How long a read waits for a replica before asking one more.
const SPECULATIVE_RETRY: Duration = Duration::from_millis(100);

/// An index lookup on a replica's own data.
#[derive(serde::Serialize, serde::Deserialize)]
struct IndexSearchRequest {
    table: TableId,
    index: String,
    lookup: crate::data::IndexLookup,
}

#[derive(Serialize, Deserialize)]
pub struct ReadRawRequest {
    pub table: TableId,
    pub key: PartitionKey,
    pub slice: Slice,
    pub now_secs: i64,
}

#[derive(Serialize, Deserialize)]
pub struct ScanRequest {
    pub table: TableId,
    pub from: Bound<PartitionKey>,
    pub to: Bound<i64>,
    pub slice: Slice,
    pub max: usize,
    pub now_secs: i64,
}

/// Membership, messaging and the ring, shared by every request.
pub struct Cluster {
    pub local_id: Uuid,
    pub local_dc: String,
    pub membership: Arc<dyn Membership>,
    pub messaging: Arc<Messaging>,
    pub ring: RwLock<Arc<TokenRing>>,
    pub storage_port: u16,
    pub read_timeout: Duration,
    pub range_timeout: Duration,
    pub write_timeout: Duration,
    pub runtime: tokio::runtime::Handle,
    /// When each node currently down was first seen down (for the hint window).
    pub down_since: parking_lot::Mutex<std::collections::HashMap<Uuid, std::time::Instant>>,
}

impl Cluster {
    /// Rebuilds the ring from the nodes gossip knows in state NORMAL (the local node always).
    /// Nodes some member removed from the ring with `removenode`.
    pub fn removed(&self) -> std::collections::HashSet<Uuid> {
        self.membership
            .nodes()
            .into_iter()
            .flat_map(|(s, _)| s.removed)
            .collect()
    }

    pub fn rebuild_ring(&self) {
        let mut ring = TokenRing::new();
        let removed = self.removed();
        for (state, _alive) in self.membership.nodes() {
            if (state.status != NodeStatus::Normal || removed.contains(&state.host_id))
                && state.host_id != self.local_id
            {
                continue;
            }
            let info = NodeInfo {
                host_id: state.host_id,
                addr: state.addr,
                dc: state.dc.clone(),
                rack: state.rack.clone(),
            };
            ring.add_node(info, &state.tokens);
        }
        *self.ring.write() = Arc::new(ring);
    }

    /// Whether writes for `id` (down) should still be hinted.
    pub fn within_hint_window(&self, config: &crate::config::Config, id: Uuid) -> bool {
        config.hinted_handoff_enabled
            && self
                .down_since
                .lock()
                .get(&id)
                .is_none_or(|since| since.elapsed() <= config.max_hint_window)
    }

    pub fn node_count(&self) -> usize {
        self.ring.read().node_count()
    }

    pub(crate) fn addr_of(&self, ring: &TokenRing, id: Uuid) -> Option<SocketAddr> {
        ring.node(id)
            .map(|n| SocketAddr::new(n.addr, self.storage_port))
    }

    pub(crate) fn dc_of(&self, ring: &TokenRing, id: Uuid) -> String {
        ring.node(id).map(|n| n.dc.clone()).unwrap_or_default()
    }

    /// Replicas of a token, the local node first, then the local DC.
    pub(crate) fn replicas(&self, ring: &TokenRing, rep: &Replication, token: i64) -> Vec<Uuid> {
        let mut r = ring.replicas(rep, token);
        if r.is_empty() {
            r.push(self.local_id);
        }
        r.sort_by_key(|id| (*id != self.local_id, self.dc_of(ring, *id) != self.local_dc));
        r
    }
}

/// How many replica answers a consistency level needs.
pub(crate) fn block_for(
    consistency: u16,
    rep: &Replication,
    replicas: &[(Uuid, String)],
    local_dc: &str,
) -> usize {
    let total = replicas.len().max(1);
    let quorum = |n: usize| n / 2 + 1;
    let local = replicas.iter().filter(|(_, dc)| dc == local_dc).count();
    match consistency {
        cl::ANY | cl::ONE | cl::LOCAL_ONE => 1,
        cl::TWO => 2,
        cl::THREE => 3,
        cl::QUORUM | cl::SERIAL => quorum(rep.total_rf().max(total)),
        cl::ALL => total,
        cl::LOCAL_QUORUM | cl::LOCAL_SERIAL => quorum(rep.rf_in_dc(local_dc).max(local).max(1)),
        // EACH_QUORUM: the sum of every DC's quorum; writes also check each DC on its own.
        cl::EACH_QUORUM => match rep {
            Replication::NetworkTopology { dc_rf } => dc_rf
                .values()
                .filter(|rf| **rf > 0)
                .map(|rf| quorum(*rf))
                .sum(),
            _ => quorum(total),
        },
        _ => 1,
    }
}

pub(crate) fn unavailable(consistency: u16, required: usize, alive: usize) -> QueryError {
    QueryError::Unavailable {
        consistency,
        required: required as i32,
        alive: alive as i32,
    }
}

impl Node {
    pub(crate) fn replication_of(&self, keyspace: &str) -> Replication {
        let schema = self.schema();
        match schema.keyspaces.get(keyspace) {
            Some(ks) => {
                Replication::from_options(&ks.replication).unwrap_or(Replication::Simple { rf: 1 })
            }
            None => Replication::Local,
        }
    }

    /// Writes mutations to their replicas and waits for the consistency level.
    pub fn coordinate_write(
        &self,
        keyspace: &str,
        mutations: &[Mutation],
        consistency: u16,
        write_type: &str,
    ) -> QueryResult<()> {
        let Some(cluster) = self.cluster() else {
            for m in mutations {
                self.engine.apply(m)?;
            }
            return Ok(());
        };
        let rep = self.replication_of(keyspace);
        if rep == Replication::Local {
            for m in mutations {
                self.engine.apply(m)?;
            }
            return Ok(());
        }
        let ring = cluster.ring.read().clone();
        // Check availability of every mutation before writing anything.
        let mut plans = vec![];
        for m in mutations {
            let replicas = cluster.replicas(&ring, &rep, m.key.token);
            let with_dc: Vec<(Uuid, String)> = replicas
                .iter()
                .map(|id| (*id, cluster.dc_of(&ring, *id)))
                .collect();
            let need = block_for(consistency, &rep, &with_dc, &cluster.local_dc);
            let alive: Vec<Uuid> = replicas
                .iter()
                .copied()
                .filter(|id| *id == cluster.local_id || cluster.membership.is_alive(*id))
                .collect();
            // EACH_QUORUM: a quorum of every data center's replicas.
            let per_dc: Vec<(String, usize)> = match (&rep, consistency) {
                (Replication::NetworkTopology { dc_rf }, cl::EACH_QUORUM) => dc_rf
                    .iter()
                    .filter(|(_, rf)| **rf > 0)
                    .map(|(dc, rf)| (dc.clone(), rf / 2 + 1))
                    .collect(),
                _ => vec![],
            };
            for (dc, q) in &per_dc {
                let alive_dc = alive
                    .iter()
                    .filter(|id| cluster.dc_of(&ring, **id) == *dc)
                    .count();
                if alive_dc < *q {
                    return Err(unavailable(consistency, *q, alive_dc));
                }
            }
            if per_dc.is_empty() && alive.len() < need && consistency != cl::ANY {
                return Err(unavailable(consistency, need, alive.len()));
            }
            let dead: Vec<Uuid> = replicas
                .iter()
                .copied()
                .filter(|id| !alive.contains(id))
                .collect();
            plans.push((m, alive, dead, need, per_dc));
        }
        let write_type = write_type.to_string();
        let timeout = cluster.write_timeout;
        let result = cluster.runtime.block_on(async {
            let mut all = vec![];
            for (m, alive, dead, need, per_dc) in plans {
                // Hinted handoff: the coordinator keeps the write for replicas that are down.
                let mut hinted = 0;
                for id in dead {
                    if cluster.within_hint_window(&self.config, id)
                        && self.hints.store(id, m).unwrap_or(false)
                    {
                        hinted += 1;
                    }
                }
                // ANY is satisfied by a stored hint when no replica is alive.
                let need = if consistency == cl::ANY && hinted > 0 {
                    need.min(alive.len())
                } else {
                    need
                };
                let payload = messaging::encode(m);
                let mut futs: Vec<BoxFut> = vec![];
                let mut dcs: Vec<String> = vec![];
                for id in alive {
                    if id == cluster.local_id {
                        let r = self.engine.apply(m).map_err(|e| e.to_string());
                        futs.push(Box::pin(async move { r.map(|_| ()) }) as BoxFut);
                        dcs.push(cluster.dc_of(&ring, id));
                    } else if let Some(addr) = cluster.addr_of(&ring, id) {
                        let msg = cluster.messaging.clone();
                        let payload = payload.clone();
                        futs.push(Box::pin(async move {
                            msg.request(addr, VERB_MUTATION, payload, timeout)
                                .await
                                .map(|_| ())
                                .map_err(|e| e.to_string())
                        }));
                        dcs.push(cluster.dc_of(&ring, id));
                    }
                }
                all.push((futs, dcs, need, per_dc));
            }
            for (futs, dcs, need, per_dc) in all {
                if !per_dc.is_empty() {
                    let (ok, received, block_for) = wait_each_dc(futs, dcs, &per_dc, timeout).await;
                    if !ok {
                        return Err(QueryError::WriteTimeout {
                            consistency,
                            received: received as i32,
                            block_for: block_for as i32,
                            write_type: write_type.clone(),
                        });
                    }
                    continue;
                }
                let received = wait_for(futs, need, timeout).await;
                if received < need {
                    return Err(QueryError::WriteTimeout {
                        consistency,
                        received: received as i32,
                        block_for: need as i32,
                        write_type: write_type.clone(),
                    });
                }
            }
            Ok(())
        });
        result
    }

    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.get().filter(|c| c.node_count() > 1)
    }
}

type BoxFut = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

/// Waits until `need` futures succeeded, all finished, or the timeout passed; returns successes.
/// Waits until every data center of `needs` has acknowledged its quorum; returns whether they
/// all did, the acknowledgements received and the total required.
async fn wait_each_dc(
    futs: Vec<BoxFut>,
    dcs: Vec<String>,
    needs: &[(String, usize)],
    timeout: Duration,
) -> (bool, usize, usize) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(usize, bool)>(futs.len().max(1));
    let total = futs.len();
    for (i, f) in futs.into_iter().enumerate() {
        let tx = tx.clone();
        tokio::spawn(async move {
            let ok = f.await.is_ok();
            let _ = tx.send((i, ok)).await;
        });
    }
    drop(tx);
    let mut acked: std::collections::HashMap<&str, usize> = Default::default();
    let satisfied = |acked: &std::collections::HashMap<&str, usize>| {
        needs
            .iter()
            .all(|(dc, q)| acked.get(dc.as_str()).copied().unwrap_or(0) >= *q)
    };
    let (mut ok, mut done) = (0, 0);
    let deadline = tokio::time::Instant::now() + timeout;
    while !satisfied(&acked) && done < total {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((i, true))) => {
                ok += 1;
                done += 1;
                *acked.entry(dcs[i].as_str()).or_default() += 1;
            }
            Ok(Some((_, false))) => done += 1,
            _ => break,
        }
    }
    let required = needs.iter().map(|(_, q)| q).sum();
    (satisfied(&acked), ok, required)
}

async fn wait_for(futs: Vec<BoxFut>, need: usize, timeout: Duration) -> usize {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bool>(futs.len().max(1));
    let total = futs.len();
    for f in futs {
        let tx = tx.clone();
        tokio::spawn(async move {
            let ok = f.await.is_ok();
            let _ = tx.send(ok).await;
        });
    }
    drop(tx);
    let mut ok = 0;
    let mut done = 0;
    let deadline = tokio::time::Instant::now() + timeout;
    while ok < need && done < total {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(true)) => {
                ok += 1;
                done += 1;
            }
            Ok(Some(false)) => done += 1,
            _ => break,
        }
    }
    ok
}

/// Reads through the coordinator at a consistency level.
pub struct CoordinatedRead<'a> {
    pub node: &'a Node,
    pub cluster: &'a Arc<Cluster>,
    pub replication: Replication,
    pub consistency: u16,
}

impl<'a> CoordinatedRead<'a> {
    pub fn new(
        node: &'a Node,
        cluster: &'a Arc<Cluster>,
        keyspace: &str,
        consistency: u16,
    ) -> Self {
        CoordinatedRead {
            node,
            cluster,
            replication: node.replication_of(keyspace),
            consistency,
        }
    }
}

impl DataSource for CoordinatedRead<'_> {
    fn read(
        &self,
        table: TableId,
        key: &PartitionKey,
        slice: &Slice,
        now_secs: i64,
    ) -> QueryResult<Option<PartitionView>> {
        let c = self.cluster;
        if self.consistency == cl::SERIAL || self.consistency == cl::LOCAL_SERIAL {
            crate::paxos::serial_barrier(
                self.node,
                c,
                self.replication.clone(),
                table,
                key,
                self.consistency,
            )?;
            let quorum = CoordinatedRead {
                consistency: if self.consistency == cl::SERIAL {
                    cl::QUORUM
                } else {
                    cl::LOCAL_QUORUM
                },
                replication: self.replication.clone(),
                ..*self
            };
            return quorum
                .read(table, key, slice, now_secs)
                .map_err(|e| match e {
                    QueryError::ReadTimeout {
                        received,
                        block_for,
                        data_present,
                        ..
                    } => QueryError::ReadTimeout {
                        consistency: self.consistency,
                        received,
                        block_for,
                        data_present,
                    },
                    other => other,
                });
        }
        let ring = c.ring.read().clone();
        let replicas = c.replicas(&ring, &self.replication, key.token);
        let with_dc: Vec<(Uuid, String)> = replicas
            .iter()
            .map(|id| (*id, c.dc_of(&ring, *id)))
            .collect();
        let need = block_for(self.consistency, &self.replication, &with_dc, &c.local_dc);
        let alive: Vec<Uuid> = replicas
            .iter()
            .copied()
            .filter(|id| *id == c.local_id || c.membership.is_alive(*id))
            .collect();
        if alive.len() < need {
            return Err(unavailable(self.consistency, need, alive.len()));
        }
        if need == 1 && alive[0] == c.local_id {
            return Ok(self.node.engine.read(table, key, slice, now_secs)?);
        }
        let req = ReadRawRequest {
            table,
            key: key.clone(),
            slice: slice.clone(),
            now_secs,
        };
        let payload = messaging::encode(&req);
        let consistency = self.consistency;
        // Data from one replica and digests from the others: when they all agree (the common
        // case) nothing more travels; otherwise every contacted replica sends its data.
        if need > 1 {
            let replies = c.runtime.block_on(self.gather(
                &ring, &alive, need, &payload, table, key, slice, now_secs, true,
            ));
            let data = replies.iter().find_map(|(_, r)| match r {
                Reply::Data(m) => Some(m),
                Reply::Digest(_) => None,
            });
            if let (Some(data), true) = (data, replies.len() >= need) {
                let d = digest(data);
                if replies.iter().all(|(_, r)| match r {
                    Reply::Digest(x) => *x == d,
                    Reply::Data(_) => true,
                }) {
                    let parts: Vec<Mutation> = data.iter().cloned().collect();
                    return Ok(sibyl_storage::resolve(key, &parts, slice, now_secs));
                }
            } else if replies.len() < need {
                return Err(QueryError::ReadTimeout {
                    consistency,
                    received: replies.len() as i32,
                    block_for: need as i32,
                    data_present: data.is_some_and(|m| m.is_some()),
                });
            }
        }
        let raws: Vec<(Uuid, Option<Mutation>)> = c
            .runtime
            .block_on(self.gather(
                &ring, &alive, need, &payload, table, key, slice, now_secs, false,
            ))
            .into_iter()
            .filter_map(|(id, r)| match r {
                Reply::Data(m) => Some((id, m)),
                Reply::Digest(_) => None,
            })
            .collect();
        if raws.len() < need {
            return Err(QueryError::ReadTimeout {
                consistency,
                received: raws.len() as i32,
                block_for: need as i32,
                data_present: raws.iter().any(|(_, m)| m.is_some()),
            });
        }
        let parts: Vec<Mutation> = raws.iter().filter_map(|(_, m)| m.clone()).collect();
        if slice.limit.is_some() && !sibyl_storage::is_complete(&parts, slice, now_secs) {
            // Short read: a replica's deletions hid rows another replica stopped before; ask
            // again without the limit (Cassandra's short read protection, in its simplest form).
            let unlimited = Slice {
                limit: None,
                ..slice.clone()
            };
            return self.read(table, key, &unlimited, now_secs).map(|v| {
                v.map(|mut v| {
                    if let Some(l) = slice.limit {
                        v.rows.truncate(l);
                    }
                    v
                })
            });
        }
        // Read repair: replicas whose data differs from the merge get the merged data.
        if parts.len() > 1 || (raws.len() > 1 && parts.len() == 1) {
            if let Some(merged) = sibyl_storage::merge(&parts) {
                for (id, m) in &raws {
                    if m.as_ref() != Some(&merged) {
                        self.repair(*id, &merged, &ring);
                    }
                }
            }
        }
        Ok(sibyl_storage::resolve(key, &parts, slice, now_secs))
    }

    fn scan(
        &self,
        table: TableId,
        from: Bound<PartitionKey>,
        to: Bound<i64>,
        slice: &Slice,
        max: usize,
        now_secs: i64,
    ) -> QueryResult<Vec<PartitionView>> {
        // Every live node scans its own data; a partition is taken from its first live replica.
        if self.consistency == cl::SERIAL || self.consistency == cl::LOCAL_SERIAL {
            return Err(QueryError::Invalid(
                "SERIAL/LOCAL_SERIAL consistency may only be requested for one partition at a time"
                    .into(),
            ));
        }
        let c = self.cluster;
        let ring = c.ring.read().clone();
        let nodes: Vec<Uuid> = ring
            .nodes()
            .into_iter()
            .map(|n| n.host_id)
            .filter(|id| *id == c.local_id || c.membership.is_alive(*id))
            .collect();
        let req = ScanRequest {
            table,
            from: from.clone(),
            to,
            slice: slice.clone(),
            max,
            now_secs,
        };
        let payload = messaging::encode(&req);
        let timeout = c.range_timeout;
        let results: Vec<(Uuid, Vec<PartitionView>)> = c.runtime.block_on(async {
            let mut handles = vec![];
            for id in nodes {
                if id == c.local_id {
                    let r = self
                        .node
                        .engine
                        .scan(table, from.clone(), to, slice, max, now_secs)
                        .unwrap_or_default();
                    handles.push(tokio::spawn(async move { Some((id, r)) }));
                } else if let Some(addr) = c.addr_of(&ring, id) {
                    let msg = c.messaging.clone();
                    let payload = payload.clone();
                    handles.push(tokio::spawn(async move {
                        let b = msg.request(addr, VERB_SCAN, payload, timeout).await.ok()?;
                        Some((id, messaging::decode::<Vec<PartitionView>>(&b).ok()?))
                    }));
                }
            }
            let mut out = vec![];
            for h in handles {
                if let Ok(Some(r)) = h.await {
                    out.push(r);
                }
            }
            out
        });
        if !matches!(self.consistency, cl::ONE | cl::LOCAL_ONE | cl::ANY) {
            // Above ONE every partition any replica has is read through the coordinator at the
            // request's level (data from several replicas, resolved, read-repaired).
            let full_page = results.iter().any(|(_, views)| views.len() >= max);
            let keys: std::collections::BTreeSet<PartitionKey> = results
                .iter()
                .flat_map(|(_, views)| views.iter().map(|v| v.key.clone()))
                .collect();
            let last = keys.iter().next_back().cloned();
            let mut out = Vec::new();
            for key in keys {
                if out.len() >= max {
                    return Ok(out);
                }
                if let Some(v) = self.read(table, &key, slice, now_secs)? {
                    out.push(v);
                }
            }
            // Partitions deleted since a replica listed them leave room: look further.
            if out.len() < max && full_page {
                if let Some(last) = last {
                    let more = self.scan(
                        table,
                        Bound::Excluded(last),
                        to,
                        slice,
                        max - out.len(),
                        now_secs,
                    )?;
                    out.extend(more);
                }
            }
            return Ok(out);
        }
        let mut merged: BTreeMap<PartitionKey, PartitionView> = BTreeMap::new();
        for (from_node, views) in results {
            for v in views {
                let first_alive = c
                    .replicas(&ring, &self.replication, v.key.token)
                    .into_iter()
                    .find(|id| *id == c.local_id || c.membership.is_alive(*id));
                if first_alive == Some(from_node)
                    || (first_alive.is_none() && !merged.contains_key(&v.key))
                {
                    merged.insert(v.key.clone(), v);
                }
            }
        }
        Ok(merged.into_values().take(max).collect())
    }

    fn index_rows(
        &self,
        table: TableId,
        index: &str,
        lookup: &crate::data::IndexLookup,
    ) -> QueryResult<Vec<sibyl_index::RowKey>> {
        // Every live node nominates candidates from its own data; the caller re-reads each at
        // the request's consistency level, so the union only has to cover every replica.
        let c = self.cluster;
        let ring = c.ring.read().clone();
        let mut out = self.node.local_data().lookup(table, index, lookup)?;
        let payload = messaging::encode(&IndexSearchRequest {
            table,
            index: index.to_string(),
            lookup: lookup.clone(),
        });
        let timeout = c.read_timeout;
        let remote: Vec<Vec<sibyl_index::RowKey>> = c.runtime.block_on(async {
            let mut handles = vec![];
            for n in ring.nodes() {
                let id = n.host_id;
                if id == c.local_id || !c.membership.is_alive(id) {
                    continue;
                }
                if let Some(addr) = c.addr_of(&ring, id) {
                    let msg = c.messaging.clone();
                    let payload = payload.clone();
                    handles.push(tokio::spawn(async move {
                        let b = msg
                            .request(addr, VERB_INDEX_SEARCH, payload, timeout)
                            .await
                            .ok()?;
                        messaging::decode::<Vec<sibyl_index::RowKey>>(&b).ok()
                    }));
                }
            }
            let mut all = vec![];
            for h in handles {
                if let Ok(Some(r)) = h.await {
                    all.push(r);
                }
            }
            all
        });
        for r in remote {
            out.extend(r);
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// A replica's answer to a read: its data, or only a digest of it. (Short-lived and moved,
/// never copied: boxing the data would only add an allocation per read.)
#[allow(clippy::large_enum_variant)]
enum Reply {
    Data(Option<Mutation>),
    Digest([u8; 16]),
}

/// The digest replicas compare: MD5 of the data as it travels.
fn digest(data: &Option<Mutation>) -> [u8; 16] {
    use md5::{Digest, Md5};
    Md5::digest(messaging::encode(data)).into()
}

impl CoordinatedRead<'_> {
    /// Asks `need` of the `alive` replicas (the first for data, the others for digests when
    /// `digests`; all for data otherwise), backing a slow or failed one up with a spare
    /// replica; returns the answers received before the read timeout.
    #[allow(clippy::too_many_arguments)]
    async fn gather(
        &self,
        ring: &TokenRing,
        alive: &[Uuid],
        need: usize,
        payload: &Bytes,
        table: TableId,
        key: &PartitionKey,
        slice: &Slice,
        now_secs: i64,
        digests: bool,
    ) -> Vec<(Uuid, Reply)> {
        let c = self.cluster;
        let timeout = c.read_timeout;
        let mut set = tokio::task::JoinSet::new();
        let ask = |set: &mut tokio::task::JoinSet<_>, id: Uuid, data: bool| {
            if id == c.local_id {
                let r = self
                    .node
                    .engine
                    .read_raw(table, key, slice, now_secs)
                    .map_err(|e| e.to_string())
                    .map(|m| {
                        if data {
                            Reply::Data(m)
                        } else {
                            Reply::Digest(digest(&m))
                        }
                    });
                set.spawn(async move { (id, data, r) });
            } else if let Some(addr) = c.addr_of(ring, id) {
                let msg = c.messaging.clone();
                let payload = payload.clone();
                let verb = if data {
                    VERB_READ_RAW
                } else {
                    VERB_READ_DIGEST
                };
                set.spawn(async move {
                    let r = match msg.request(addr, verb, payload, timeout).await {
                        Ok(b) if data => messaging::decode::<Option<Mutation>>(&b)
                            .map(Reply::Data)
                            .map_err(|e| e.to_string()),
                        Ok(b) => messaging::decode::<[u8; 16]>(&b)
                            .map(Reply::Digest)
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    (id, data, r)
                });
            }
        };
        let (first, spare) = alive.split_at(need.min(alive.len()));
        for (i, id) in first.iter().enumerate() {
            ask(&mut set, *id, !digests || i == 0);
        }
        let mut spare = spare.iter();
        let deadline = tokio::time::Instant::now() + timeout;
        // Speculative retry: a replica slower than this (or dead but not yet convicted by the
        // failure detector) is backed up by one more replica.
        let mut speculate_at = tokio::time::Instant::now() + SPECULATIVE_RETRY;
        let mut out: Vec<(Uuid, Reply)> = vec![];
        let mut has_data = false;
        while out.len() < need || !has_data {
            let until = speculate_at.min(deadline);
            match tokio::time::timeout_at(until, set.join_next()).await {
                Ok(Some(Ok((id, _, Ok(r))))) => {
                    has_data |= matches!(r, Reply::Data(_));
                    out.push((id, r));
                }
                Ok(Some(failed)) => {
                    // A failed data request is replaced by a data request.
                    let data = failed.map(|(_, d, _)| d).unwrap_or(true);
                    match spare.next() {
                        Some(id) => ask(&mut set, *id, data),
                        None if set.is_empty() => break,
                        None => {}
                    }
                }
                Ok(None) => break,
                Err(_) if until == deadline => break,
                Err(_) => {
                    if let Some(id) = spare.next() {
                        ask(&mut set, *id, !has_data);
                    }
                    speculate_at = deadline;
                }
            }
        }
        set.detach_all();
        out
    }

    fn repair(&self, id: Uuid, merged: &Mutation, ring: &TokenRing) {
        let c = self.cluster;
        if id == c.local_id {
            let _ = self.node.engine.apply(merged);
            return;
        }
        if let Some(addr) = c.addr_of(ring, id) {
            let msg = c.messaging.clone();
            let payload = messaging::encode(merged);
            let timeout = c.write_timeout;
            c.runtime.spawn(async move {
                let _ = msg.request(addr, VERB_MUTATION, payload, timeout).await;
            });
        }
    }
}

/// Serves internode requests addressed to this node.
pub async fn handle(node: Arc<Node>, verb: u16, payload: Bytes) -> Result<Bytes, String> {
    let err = |e: MessagingError| e.to_string();
    match verb {
        VERB_MUTATION => {
            let m: Mutation = messaging::decode(&payload).map_err(err)?;
            let node2 = node.clone();
            tokio::task::spawn_blocking(move || node2.engine.apply(&m))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            Ok(Bytes::new())
        }
        VERB_READ_RAW => {
            let r: ReadRawRequest = messaging::decode(&payload).map_err(err)?;
            let m = node
                .engine
                .read_raw(r.table, &r.key, &r.slice, r.now_secs)
                .map_err(|e| e.to_string())?;
            Ok(messaging::encode(&m))
        }
        VERB_READ_DIGEST => {
            let r: ReadRawRequest = messaging::decode(&payload).map_err(err)?;
            let m = node
                .engine
                .read_raw(r.table, &r.key, &r.slice, r.now_secs)
                .map_err(|e| e.to_string())?;
            Ok(messaging::encode(&digest(&m)))
        }
        VERB_SCAN => {
            let r: ScanRequest = messaging::decode(&payload).map_err(err)?;
            let v = node
                .engine
                .scan(r.table, r.from, r.to, &r.slice, r.max, r.now_secs)
                .map_err(|e| e.to_string())?;
            Ok(messaging::encode(&v))
        }
        VERB_SCHEMA_PUSH => {
            let text: String = messaging::decode(&payload).map_err(err)?;
            let schema: crate::schema::Schema =
                serde_json::from_str(&text).map_err(|e| e.to_string())?;
            let node2 = node.clone();
            tokio::task::spawn_blocking(move || node2.adopt_schema(schema))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            Ok(Bytes::new())
        }
        VERB_INDEX_SEARCH => {
            let r: IndexSearchRequest = messaging::decode(&payload).map_err(err)?;
            let node2 = node.clone();
            let rows = tokio::task::spawn_blocking(move || {
                node2
                    .local_data()
                    .lookup(r.table, &r.index, &r.lookup)
                    .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())??;
            Ok(messaging::encode(&rows))
        }
        crate::admin::VERB_ADMIN => crate::admin::handle(node, payload).await,
        crate::paxos::VERB_PAXOS_PREPARE
        | crate::paxos::VERB_PAXOS_PROPOSE
        | crate::paxos::VERB_PAXOS_COMMIT => {
            tokio::task::spawn_blocking(move || crate::paxos::serve(&node, verb, &payload))
                .await
                .map_err(|e| e.to_string())?
        }
        crate::batchlog::VERB_BATCH_STORE | crate::batchlog::VERB_BATCH_REMOVE => {
            tokio::task::spawn_blocking(move || crate::batchlog::serve(&node, verb, &payload))
                .await
                .map_err(|e| e.to_string())?
        }
        crate::counters::VERB_COUNTER_LEAD => {
            tokio::task::spawn_blocking(move || crate::counters::serve(&node, &payload))
                .await
                .map_err(|e| e.to_string())?
        }
        VERB_TRUNCATE => {
            let table: TableId = messaging::decode(&payload).map_err(err)?;
            tokio::task::spawn_blocking(move || node.truncate_local(table))
                .await
                .map_err(|e| e.to_string())??;
            Ok(Bytes::new())
        }
        crate::repair::VERB_SCAN_RAW => {
            let r: crate::repair::RawScanRequest = messaging::decode(&payload).map_err(err)?;
            let page = tokio::task::spawn_blocking(move || crate::repair::serve_scan_raw(&node, r))
                .await
                .map_err(|e| e.to_string())??;
            Ok(messaging::encode(&page))
        }
        crate::repair::VERB_REPAIR_TREE => {
            let r: crate::repair::TreeRequest = messaging::decode(&payload).map_err(err)?;
            let t = tokio::task::spawn_blocking(move || crate::repair::local_tree(&node, &r))
                .await
                .map_err(|e| e.to_string())??;
            Ok(messaging::encode(&t))
        }
        VERB_SCHEMA_PULL => {
            let text = serde_json::to_string(&*node.schema()).map_err(|e| e.to_string())?;
            Ok(messaging::encode(&text))
        }
        other => Err(format!("unknown verb {other}")),
    }
}

/// Starts internode messaging and gossip on the storage port, builds the ring and follows
/// membership: ring rebuilds, TOPOLOGY_CHANGE/STATUS_CHANGE events, and schema pulls from peers
/// that gossip a different schema version.
pub async fn start(node: Arc<Node>) -> Result<(), crate::node::anyhow_like::Error> {
    use sibyl_cluster::gossip::{start_gossip, GossipConfig, MembershipEvent, NodeState};
    use sibyl_protocol::messages::Event;
    let cfg = &node.config;
    let listen = SocketAddr::new(cfg.listen_address, cfg.storage_port);
    let handler_node = node.clone();
    let handler: sibyl_cluster::messaging::Handler = Arc::new(move |_from, verb, payload| {
        let n = handler_node.clone();
        Box::pin(async move { handle(n, verb, payload).await })
    });
    let messaging = Messaging::bind(listen, handler).await?;
    // A new node joining an existing cluster streams its ranges before it serves them.
    let joining = node
        .needs_bootstrap
        .load(std::sync::atomic::Ordering::Relaxed)
        && cfg.seeds.iter().any(|s| *s != cfg.listen_address);
    let seeds: Vec<SocketAddr> = if cfg.seeds.is_empty() {
        vec![listen]
    } else {
        cfg.seeds
            .iter()
            .map(|ip| SocketAddr::new(*ip, cfg.storage_port))
            .collect()
    };
    let local = NodeState {
        host_id: node.local.host_id,
        addr: cfg.listen_address,
        storage_port: cfg.storage_port,
        native_port: cfg.native_port,
        dc: cfg.dc.clone(),
        rack: cfg.rack.clone(),
        tokens: node.local.tokens.clone(),
        status: if joining {
            NodeStatus::Joining
        } else {
            NodeStatus::Normal
        },
        schema_version: node.schema().version,
        release_version: crate::system_tables::RELEASE_VERSION.to_string(),
        removed: vec![],
        generation: node.local.gossip_generation as u64,
    };
    let membership = start_gossip(
        GossipConfig::new(cfg.cluster_name.clone(), listen, seeds),
        local,
    )
    .await?;
    let cluster = Arc::new(Cluster {
        local_id: node.local.host_id,
        local_dc: cfg.dc.clone(),
        membership: membership.clone(),
        messaging,
        ring: RwLock::new(Arc::new(TokenRing::new())),
        storage_port: cfg.storage_port,
        read_timeout: node.config.read_request_timeout,
        range_timeout: node.config.range_request_timeout,
        write_timeout: node.config.write_request_timeout,
        runtime: tokio::runtime::Handle::current(),
        down_since: Default::default(),
    });
    cluster.rebuild_ring();
    let _ = node.cluster.set(cluster.clone());
    if joining {
        bootstrap(&node, &cluster).await;
    }
    if node
        .needs_bootstrap
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        node.mark_bootstrapped()?;
    }
    // Batchlog replay: batches whose coordinator did not finish them.
    {
        let node = node.clone();
        let timeout = cluster.write_timeout;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let n = node.clone();
                let _ =
                    tokio::task::spawn_blocking(move || crate::batchlog::replay_due(&n, timeout))
                        .await;
            }
        });
    }
    // Hint replay: deliver stored writes to replicas that are alive again.
    {
        let node = node.clone();
        let cluster = cluster.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                for target in node.hints.targets() {
                    if !cluster.membership.is_alive(target) {
                        continue;
                    }
                    let addr = cluster
                        .membership
                        .nodes()
                        .into_iter()
                        .find(|(s, _)| s.host_id == target)
                        .map(|(s, _)| SocketAddr::new(s.addr, s.storage_port));
                    let Some(addr) = addr else { continue };
                    let Ok(pending) = node.hints.take(target) else {
                        continue;
                    };
                    let mut delivered = 0;
                    for m in &pending {
                        let sent = cluster
                            .messaging
                            .request(
                                addr,
                                VERB_MUTATION,
                                messaging::encode(m),
                                cluster.write_timeout,
                            )
                            .await;
                        if sent.is_err() {
                            break;
                        }
                        delivered += 1;
                    }
                    for m in &pending[delivered..] {
                        let _ = node.hints.store(target, m);
                    }
                    if delivered > 0 {
                        tracing::info!("delivered {delivered} hints to {target}");
                    }
                }
            }
        });
    }
    let mut events = membership.subscribe();
    tokio::spawn(async move {
        loop {
            let ev = match events.recv().await {
                Ok(ev) => ev,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => break,
            };
            cluster.rebuild_ring();
            let native = |id: Uuid| {
                cluster
                    .membership
                    .nodes()
                    .into_iter()
                    .find(|(s, _)| s.host_id == id)
                    .map(|(s, _)| SocketAddr::new(s.addr, s.native_port))
            };
            match &ev {
                MembershipEvent::Down(id) => {
                    cluster
                        .down_since
                        .lock()
                        .entry(*id)
                        .or_insert_with(std::time::Instant::now);
                }
                MembershipEvent::Up(id) | MembershipEvent::Left(id) => {
                    cluster.down_since.lock().remove(id);
                }
                _ => {}
            }
            let client_event = match &ev {
                MembershipEvent::Joined(s) => Some(Event::TopologyChange {
                    change: "NEW_NODE".into(),
                    address: SocketAddr::new(s.addr, s.native_port),
                }),
                MembershipEvent::Left(id) => native(*id).map(|a| Event::TopologyChange {
                    change: "REMOVED_NODE".into(),
                    address: a,
                }),
                MembershipEvent::Up(id) => native(*id).map(|a| Event::StatusChange {
                    change: "UP".into(),
                    address: a,
                }),
                MembershipEvent::Down(id) => native(*id).map(|a| Event::StatusChange {
                    change: "DOWN".into(),
                    address: a,
                }),
                MembershipEvent::Changed(_) => None,
            };
            if let Some(e) = client_event {
                let _ = node.events.send(e);
            }
            // A peer with another schema version may have a newer schema: pull it.
            let peer = match &ev {
                MembershipEvent::Joined(s) | MembershipEvent::Changed(s)
                    if s.schema_version != node.schema().version =>
                {
                    Some(SocketAddr::new(s.addr, s.storage_port))
                }
                _ => None,
            };
            if let Some(addr) = peer {
                if let Ok(b) = cluster
                    .messaging
                    .request(addr, VERB_SCHEMA_PULL, Bytes::new(), Duration::from_secs(5))
                    .await
                {
                    if let Ok(text) = messaging::decode::<String>(&b) {
                        if let Ok(schema) = serde_json::from_str::<crate::schema::Schema>(&text) {
                            let n = node.clone();
                            let _ =
                                tokio::task::spawn_blocking(move || n.adopt_schema(schema)).await;
                        }
                    }
                }
            }
        }
    });
    Ok(())
}

impl Node {
    /// Sends the current schema to every live peer (after a schema change on this node) and
    /// gossips the new version; waits for the peers' acknowledgements up to a few seconds.
    pub fn announce_schema(&self) {
        let Some(cluster) = self.cluster.get() else {
            return;
        };
        let schema = self.schema();
        let version = schema.version;
        cluster
            .membership
            .update_local(&|s| s.schema_version = version);
        let Ok(text) = serde_json::to_string(&*schema) else {
            return;
        };
        let payload = messaging::encode(&text);
        let peers: Vec<SocketAddr> = cluster
            .membership
            .nodes()
            .into_iter()
            .filter(|(s, alive)| *alive && s.host_id != cluster.local_id)
            .map(|(s, _)| SocketAddr::new(s.addr, s.storage_port))
            .collect();
        if peers.is_empty() {
            return;
        }
        let msg = cluster.messaging.clone();
        let fut = async move {
            let mut hs = vec![];
            for p in peers {
                let msg = msg.clone();
                let payload = payload.clone();
                hs.push(tokio::spawn(async move {
                    msg.request(p, VERB_SCHEMA_PUSH, payload, Duration::from_secs(5))
                        .await
                }));
            }
            for h in hs {
                let _ = h.await;
            }
        };
        // Called from blocking request threads or from the async runtime.
        match tokio::runtime::Handle::try_current() {
            Ok(h)
                if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
                    && tokio::task::try_id().is_some() =>
            {
                h.spawn(fut);
            }
            _ => cluster.runtime.block_on(fut),
        }
    }
}

/// Bootstrap: learn the schema, stream the ranges this node will own from their current
/// replicas, become NORMAL, then stream once more to catch writes made meanwhile.
async fn bootstrap(node: &Arc<Node>, cluster: &Arc<Cluster>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let peer = loop {
        let p = cluster.membership.nodes().into_iter().find(|(s, alive)| {
            *alive && s.host_id != cluster.local_id && s.status == NodeStatus::Normal
        });
        if let Some((s, _)) = p {
            break Some(SocketAddr::new(s.addr, s.storage_port));
        }
        if tokio::time::Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let Some(peer) = peer else {
        tracing::info!("no live node to bootstrap from: starting as the first node");
        cluster
            .membership
            .update_local(&|s| s.status = NodeStatus::Normal);
        return;
    };
    if let Ok(b) = cluster
        .messaging
        .request(
            peer,
            VERB_SCHEMA_PULL,
            Bytes::new(),
            Duration::from_secs(10),
        )
        .await
    {
        if let Ok(text) = messaging::decode::<String>(&b) {
            if let Ok(schema) = serde_json::from_str::<crate::schema::Schema>(&text) {
                let n = node.clone();
                let _ = tokio::task::spawn_blocking(move || n.adopt_schema(schema)).await;
            }
        }
    }
    let streamed = stream_ranges(node, cluster).await;
    tracing::info!("bootstrap streamed {streamed} partitions; joining the ring");
    cluster
        .membership
        .update_local(&|s| s.status = NodeStatus::Normal);
    cluster.rebuild_ring();
    // Writes that reached only the previous replicas while streaming ran.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = stream_ranges(node, cluster).await;
    tracing::info!("bootstrap catch-up streamed {again} partitions");
}

/// Copies every partition in the ranges this node owns from the first live other replica.
async fn stream_ranges(node: &Arc<Node>, cluster: &Arc<Cluster>) -> usize {
    let schema = node.schema();
    let full = cluster.ring.read().clone();
    let mut without_me = (*full).clone();
    without_me.remove_node(cluster.local_id);
    let now_secs = sibyl_types::timeuuid::micros_now() / 1_000_000;
    let mut count = 0;
    for table in schema.tables() {
        let rep = node.replication_of(&table.keyspace);
        for (start, end) in full.ranges_for(&rep, cluster.local_id) {
            for (lo, hi) in crate::repair::pieces(start, end) {
                let source = without_me
                    .replicas(&rep, hi)
                    .into_iter()
                    .find(|id| cluster.membership.is_alive(*id));
                let Some(addr) = source.and_then(|id| cluster.addr_of(&without_me, id)) else {
                    continue;
                };
                // Partitions as stored: deletions the source knows must not come back here.
                let Ok(parts) =
                    crate::repair::partitions_of(node, Some(addr), table.id, lo, hi, now_secs)
                        .await
                else {
                    continue;
                };
                for m in parts {
                    if node.engine.apply(&m).is_ok() {
                        count += 1;
                    }
                }
            }
        }
    }
    count
}

impl Node {
    /// Empties a table's data and Paxos state on this node.
    pub fn truncate_local(&self, table: TableId) -> Result<(), String> {
        self.engine.truncate(table).map_err(|e| e.to_string())?;
        self.paxos.drop_table(table).map_err(|e| e.to_string())
    }

    /// TRUNCATE reaches every node of the ring, as in Cassandra: all must be up, and all must
    /// answer within truncate_request_timeout.
    pub fn truncate_everywhere(&self, table: TableId) -> QueryResult<()> {
        let Some(cluster) = self.cluster() else {
            return self.truncate_local(table).map_err(QueryError::Truncate);
        };
        let ring = cluster.ring.read().clone();
        let nodes: Vec<Uuid> = ring.nodes().iter().map(|n| n.host_id).collect();
        let alive: Vec<Uuid> = nodes
            .iter()
            .copied()
            .filter(|id| *id == cluster.local_id || cluster.membership.is_alive(*id))
            .collect();
        if alive.len() < nodes.len() {
            return Err(unavailable(cl::ALL, nodes.len(), alive.len()));
        }
        self.truncate_local(table).map_err(QueryError::Truncate)?;
        let payload = messaging::encode(&table);
        let timeout = self.config.truncate_request_timeout;
        let futs: Vec<BoxFut> = alive
            .iter()
            .filter(|id| **id != cluster.local_id)
            .filter_map(|id| cluster.addr_of(&ring, *id))
            .map(|addr| {
                let msg = cluster.messaging.clone();
                let payload = payload.clone();
                Box::pin(async move {
                    msg.request(addr, VERB_TRUNCATE, payload, timeout)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }) as BoxFut
            })
            .collect();
        let need = futs.len();
        let got = cluster.runtime.block_on(wait_for(futs, need, timeout));
        if got < need {
            return Err(QueryError::Truncate(format!(
                "Truncate timed out - received only {} responses",
                got + 1
            )));
        }
        Ok(())
    }
}
