//! The batchlog: a logged batch that spans partitions is first written to up to two other
//! live nodes of the coordinator's data center (one file per batch, checksummed), then applied,
//! then removed. If the coordinator dies in between, those nodes replay the batch once it is
//! older than twice the write timeout, so a logged batch is eventually applied entirely or
//! (if it never reached the batchlog) not at all.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sibyl_cluster::messaging;
use sibyl_protocol::consistency as cl;
use sibyl_storage::model::Mutation;
use uuid::Uuid;

use crate::coordinator::{unavailable, Cluster};
use crate::error::{QueryError, QueryResult};
use crate::node::Node;

pub const VERB_BATCH_STORE: u16 = 13;
pub const VERB_BATCH_REMOVE: u16 = 14;

#[derive(Serialize, Deserialize)]
pub struct Entry {
    pub id: Uuid,
    /// The keyspace of each mutation, for its replication at replay.
    pub mutations: Vec<(String, Mutation)>,
}

pub struct Batchlog {
    dir: PathBuf,
    fsync: bool,
}

impl Batchlog {
    pub fn open(dir: PathBuf, fsync: bool) -> std::io::Result<Batchlog> {
        std::fs::create_dir_all(&dir)?;
        Ok(Batchlog { dir, fsync })
    }

    fn path(&self, id: Uuid) -> PathBuf {
        self.dir.join(format!("{id}.batch"))
    }

    /// Stores an encoded entry (length-free: one file, CRC32C first).
    pub fn store(&self, id: Uuid, encoded: &[u8]) -> std::io::Result<()> {
        let tmp = self.dir.join(format!("{id}.tmp"));
        let mut bytes = crc32c::crc32c(encoded).to_le_bytes().to_vec();
        bytes.extend_from_slice(encoded);
        std::fs::write(&tmp, &bytes)?;
        if self.fsync {
            std::fs::File::open(&tmp)?.sync_all()?;
        }
        std::fs::rename(&tmp, self.path(id))
    }

    pub fn remove(&self, id: Uuid) {
        let _ = std::fs::remove_file(self.path(id));
    }

    /// Every intact entry stored before `stored_before` (younger files are not even read;
    /// damaged ones are dropped: their coordinator saw the store fail or never finished it).
    pub fn entries(&self, stored_before: std::time::SystemTime) -> Vec<Entry> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return vec![];
        };
        let mut out = vec![];
        for e in rd.filter_map(|e| e.ok()) {
            let path = e.path();
            if path.extension().and_then(|x| x.to_str()) != Some("batch") {
                continue;
            }
            let young = e
                .metadata()
                .and_then(|m| m.modified())
                .map_or(true, |t| t > stored_before);
            if young {
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let intact = bytes.len() >= 4
                && crc32c::crc32c(&bytes[4..]).to_le_bytes() == bytes[..4]
                && postcard::from_bytes::<Entry>(&bytes[4..]).is_ok();
            match intact {
                true => out.extend(postcard::from_bytes::<Entry>(&bytes[4..]).ok()),
                false => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        out
    }
}

/// Serves the batchlog verbs on this node.
pub fn serve(node: &Node, verb: u16, payload: &[u8]) -> Result<bytes::Bytes, String> {
    match verb {
        VERB_BATCH_STORE => {
            let id: Uuid = postcard::from_bytes::<Entry>(payload)
                .map_err(|e| e.to_string())?
                .id;
            node.batchlog
                .store(id, payload)
                .map_err(|e| e.to_string())?;
        }
        VERB_BATCH_REMOVE => {
            let id: Uuid = messaging::decode(payload).map_err(|e| e.to_string())?;
            node.batchlog.remove(id);
        }
        other => return Err(format!("unknown batchlog verb {other}")),
    }
    Ok(bytes::Bytes::new())
}

/// Up to two live nodes of the local data center other than this one, on different racks
/// when possible; this node alone when it is the only one.
fn endpoints(cluster: &Cluster) -> Vec<Uuid> {
    let ring = cluster.ring.read().clone();
    let mut others: Vec<(String, Uuid)> = ring
        .nodes()
        .into_iter()
        .filter(|n| n.dc == cluster.local_dc && n.host_id != cluster.local_id)
        .filter(|n| cluster.membership.is_alive(n.host_id))
        .map(|n| (n.rack, n.host_id))
        .collect();
    // Spread over time: not always the same two nodes.
    let shift = (Uuid::new_v4().as_u128() % others.len().max(1) as u128) as usize;
    others.rotate_left(shift);
    let mut picked: Vec<(String, Uuid)> = vec![];
    for (rack, id) in &others {
        if picked.len() < 2 && !picked.iter().any(|(r, _)| r == rack) {
            picked.push((rack.clone(), *id));
        }
    }
    for (rack, id) in &others {
        if picked.len() < 2 && !picked.iter().any(|(_, p)| p == id) {
            picked.push((rack.clone(), *id));
        }
    }
    let mut ids: Vec<Uuid> = picked.into_iter().map(|(_, id)| id).collect();
    if ids.is_empty() && ring.nodes().len() <= 1 {
        ids.push(cluster.local_id);
    }
    ids
}

/// A logged batch across partitions: batchlog first, then the writes, then the removal.
pub fn write_logged(
    node: &Node,
    cluster: &Arc<Cluster>,
    mutations: Vec<(String, Mutation)>,
    consistency: u16,
) -> QueryResult<()> {
    let targets = endpoints(cluster);
    if targets.is_empty() {
        return Err(unavailable(cl::ONE, 1, 0));
    }
    let entry = Entry {
        id: Uuid::new_v4(),
        mutations,
    };
    let payload = messaging::encode(&entry);
    let timeout = cluster.write_timeout;
    let ring = cluster.ring.read().clone();
    let stored = cluster.runtime.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for id in &targets {
            if *id == cluster.local_id {
                let r = node.batchlog.store(entry.id, &payload).is_ok();
                set.spawn(async move { r });
            } else if let Some(addr) = cluster.addr_of(&ring, *id) {
                let msg = cluster.messaging.clone();
                let payload = payload.clone();
                set.spawn(async move {
                    msg.request(addr, VERB_BATCH_STORE, payload, timeout)
                        .await
                        .is_ok()
                });
            }
        }
        let mut ok = 0;
        let deadline = tokio::time::Instant::now() + timeout;
        while let Ok(Some(r)) = tokio::time::timeout_at(deadline, set.join_next()).await {
            ok += r.unwrap_or(false) as usize;
        }
        ok
    });
    if stored < targets.len() {
        return Err(QueryError::WriteTimeout {
            consistency: if targets.len() > 1 { cl::TWO } else { cl::ONE },
            received: stored as i32,
            block_for: targets.len() as i32,
            write_type: "BATCH_LOG".into(),
        });
    }
    if std::env::var_os("SIBYL_FAULT_CRASH_AFTER_BATCHLOG").is_some() {
        // Fault injection for the tests: die between the batchlog and the writes.
        std::process::abort();
    }
    for (ks, ms) in by_keyspace(&entry.mutations) {
        node.coordinate_write(ks, &ms, consistency, "BATCH")?;
    }
    // The batch is applied: its batchlog copies can go (a lost removal only means a replay of
    // timestamped, idempotent writes).
    for id in targets {
        if id == cluster.local_id {
            node.batchlog.remove(entry.id);
        } else if let Some(addr) = cluster.addr_of(&ring, id) {
            let msg = cluster.messaging.clone();
            let payload = messaging::encode(&entry.id);
            cluster.runtime.spawn(async move {
                let _ = msg.request(addr, VERB_BATCH_REMOVE, payload, timeout).await;
            });
        }
    }
    Ok(())
}

/// Replays batches whose coordinator did not remove them in time: their writes go to every
/// replica (hints for the ones down); a batch that cannot be written is kept for next time.
pub fn replay_due(node: &Node, write_timeout: Duration) -> usize {
    let due_before = std::time::SystemTime::now() - 2 * write_timeout;
    let mut replayed = 0;
    for entry in node.batchlog.entries(due_before) {
        let mut ok = true;
        for (ks, ms) in by_keyspace(&entry.mutations) {
            if node.schema().keyspaces.contains_key(ks) {
                ok &= node.coordinate_write(ks, &ms, cl::ANY, "BATCH").is_ok();
            }
        }
        if ok {
            node.batchlog.remove(entry.id);
            replayed += 1;
            tracing::info!(batch = %entry.id, "replayed a batch its coordinator did not finish");
        }
    }
    replayed
}

/// The batch's mutations grouped by keyspace (their replication differs).
fn by_keyspace(
    mutations: &[(String, Mutation)],
) -> std::collections::BTreeMap<&str, Vec<Mutation>> {
    let mut out: std::collections::BTreeMap<&str, Vec<Mutation>> = Default::default();
    for (ks, m) in mutations {
        out.entry(ks.as_str()).or_default().push(m.clone());
    }
    out
}
