//! Counters replicated as Cassandra replicates them: a counter cell is a set of shards, one per
//! node that ever led an increment of it (cell path: the node's host id; value: that node's
//! running total; timestamp: its shard clock), and its value is their sum. An increment goes
//! to one replica, the leader, which adds the delta to its own shard under the partition's
//! lock and replicates the resulting shard. Since each shard has a single writer, concurrent
//! increments through different coordinators never overwrite each other, and replicas merge
//! shards by last-write-wins on the clock.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sibyl_cluster::messaging;
use sibyl_cluster::ring::Replication;
use sibyl_storage::model::{Cell, ColumnData, ColumnView, Mutation, RowUpdate, RowView};

use crate::coordinator::{block_for, unavailable};
use crate::error::{QueryError, QueryResult};
use crate::node::Node;

pub const VERB_COUNTER_LEAD: u16 = 15;

#[derive(Serialize, Deserialize)]
struct LeadRequest {
    keyspace: String,
    deltas: Mutation,
    consistency: u16,
}

/// Applies a counter update (a mutation of deltas) at `consistency`, through its leader.
pub fn write(node: &Node, keyspace: &str, deltas: Mutation, consistency: u16) -> QueryResult<()> {
    let Some(cluster) = node.cluster() else {
        return lead(node, keyspace, &deltas, consistency);
    };
    let rep = node.replication_of(keyspace);
    if rep == Replication::Local {
        return lead(node, keyspace, &deltas, consistency);
    }
    let ring = cluster.ring.read().clone();
    let replicas = cluster.replicas(&ring, &rep, deltas.key.token);
    let with_dc: Vec<(uuid::Uuid, String)> = replicas
        .iter()
        .map(|id| (*id, cluster.dc_of(&ring, *id)))
        .collect();
    let need = block_for(consistency, &rep, &with_dc, &cluster.local_dc);
    let alive: Vec<uuid::Uuid> = replicas
        .iter()
        .copied()
        .filter(|id| *id == cluster.local_id || cluster.membership.is_alive(*id))
        .collect();
    if alive.len() < need {
        return Err(unavailable(consistency, need, alive.len()));
    }
    // The local node leads when it is a replica; otherwise the nearest live replica does.
    let leader = alive[0];
    if leader == cluster.local_id {
        return lead(node, keyspace, &deltas, consistency);
    }
    let timeout_err = || QueryError::WriteTimeout {
        consistency,
        received: 0,
        block_for: need as i32,
        write_type: "COUNTER".into(),
    };
    let addr = cluster.addr_of(&ring, leader).ok_or_else(timeout_err)?;
    let payload = messaging::encode(&LeadRequest {
        keyspace: keyspace.to_string(),
        deltas,
        consistency,
    });
    // The leader waits for its replicas up to the write timeout; allow for that and the hop.
    let timeout = cluster.write_timeout * 2;
    let answer = cluster.runtime.block_on(cluster.messaging.request(
        addr,
        VERB_COUNTER_LEAD,
        payload,
        timeout,
    ));
    match answer {
        Ok(b) => messaging::decode::<Result<(), String>>(&b)
            .map_err(|_| timeout_err())?
            .map_err(|_| timeout_err()),
        Err(_) => Err(timeout_err()),
    }
}

/// Serves VERB_COUNTER_LEAD: this node leads the update.
pub fn serve(node: &Node, payload: &[u8]) -> Result<Bytes, String> {
    let r: LeadRequest = messaging::decode(payload).map_err(|e| e.to_string())?;
    let result = lead(node, &r.keyspace, &r.deltas, r.consistency).map_err(|e| e.to_string());
    Ok(messaging::encode(&result))
}

/// As the leader: folds the deltas into this node's shards, then replicates the shards.
fn lead(node: &Node, keyspace: &str, deltas: &Mutation, consistency: u16) -> QueryResult<()> {
    let shards = {
        let _guard = node.lock_partitions(&[(deltas.table, deltas.key.clone())]);
        let shards = own_shards(node, deltas)?;
        node.engine.apply(&shards)?;
        shards
    };
    node.coordinate_write(keyspace, &[shards], consistency, "COUNTER")
}

/// The mutation that sets this node's shard of every counter in `deltas` to its new total.
fn own_shards(node: &Node, deltas: &Mutation) -> QueryResult<Mutation> {
    let me = Bytes::copy_from_slice(node.local.host_id.as_bytes());
    let now_micros = sibyl_types::timeuuid::micros_now();
    let mut out = deltas.clone();
    let mut rows: Vec<&mut RowUpdate> = out.rows.iter_mut().collect();
    let is_static = out.static_row.is_some();
    if let Some(s) = out.static_row.as_mut() {
        rows.push(s);
    }
    for row in rows {
        let statics = is_static && row.clustering.is_empty();
        let current = current_row(node, deltas, &row.clustering, statics)?;
        for col in row.columns.iter_mut() {
            let ColumnData::Simple { column, cell } = col else {
                continue;
            };
            let delta = cell
                .value
                .as_ref()
                .and_then(|v| v.as_ref().try_into().ok())
                .map(i64::from_be_bytes)
                .unwrap_or(0);
            let (total, clock) = current
                .as_ref()
                .and_then(|r| r.columns.iter().find(|(n, _)| n == column))
                .and_then(|(_, v)| match v {
                    ColumnView::Complex(shards) => shards
                        .iter()
                        .find(|(p, _)| *p == me)
                        .map(|(_, c)| (c.value.clone(), c.timestamp)),
                    ColumnView::Simple(_) => None,
                })
                .map(|(v, ts)| {
                    let v = v.as_ref().try_into().map(i64::from_be_bytes).unwrap_or(0);
                    (v, ts)
                })
                .unwrap_or((0, i64::MIN));
            let new = total.wrapping_add(delta);
            *col = ColumnData::Complex {
                column: column.clone(),
                complex_deletion: None,
                cells: vec![(
                    me.clone(),
                    Cell {
                        timestamp: now_micros.max(clock.saturating_add(1)),
                        value: Some(Bytes::copy_from_slice(&new.to_be_bytes())),
                        ttl: 0,
                        local_deletion_time: 0,
                    },
                )],
            };
        }
    }
    Ok(out)
}

/// This node's current row (or static row) that the deltas address.
fn current_row(
    node: &Node,
    deltas: &Mutation,
    ck: &Bytes,
    statics: bool,
) -> QueryResult<Option<RowView>> {
    let slice = crate::data::one_row(ck);
    let now_secs = sibyl_types::timeuuid::micros_now() / 1_000_000;
    let Some(view) = node
        .engine
        .read(deltas.table, &deltas.key, &slice, now_secs)?
    else {
        return Ok(None);
    };
    Ok(if statics {
        view.static_row
    } else {
        view.rows.into_iter().next()
    })
}
