//! Operations in the spirit of nodetool: the `sibyl status|ring|describering|flush|compact`
//! commands, sent to a running node over the internode port (verb `ADMIN`) and answered there.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sibyl_cluster::gossip::NodeStatus;
use sibyl_cluster::messaging::{self, Messaging};
use sibyl_cluster::ring::{NodeInfo, TokenRing};

use crate::node::Node;

pub const VERB_ADMIN: u16 = 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AdminRequest {
    Decommission,
    RemoveNode {
        host_id: uuid::Uuid,
    },
    Status {
        keyspace: Option<String>,
    },
    Ring,
    DescribeRing {
        keyspace: String,
    },
    Flush {
        keyspace: Option<String>,
        tables: Vec<String>,
    },
    Compact {
        keyspace: Option<String>,
        tables: Vec<String>,
    },
    /// Bytes of data this node holds (for others' `status`).
    Load,
    Repair {
        keyspace: Option<String>,
    },
    /// The ring as this node sees it, nodes in state NORMAL only (for a joining node choosing
    /// its tokens).
    TokenMap,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AdminResponse {
    Text(String),
    Load(u64),
    TokenMap(Vec<RingMember>),
}

/// A node of the ring with its tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RingMember {
    pub host_id: uuid::Uuid,
    pub addr: std::net::IpAddr,
    pub dc: String,
    pub rack: String,
    pub tokens: Vec<i64>,
}

fn token_map(node: &Node) -> Vec<RingMember> {
    let ring = ring_of(node);
    ring.nodes()
        .into_iter()
        .map(|n| RingMember {
            tokens: ring.tokens_of(n.host_id),
            host_id: n.host_id,
            addr: n.addr,
            dc: n.dc,
            rack: n.rack,
        })
        .collect()
}

/// Bytes under the node's storage directory (SSTables and commit log).
fn local_load(node: &Node) -> u64 {
    fn walk(p: &std::path::Path) -> u64 {
        let Ok(rd) = std::fs::read_dir(p) else {
            return 0;
        };
        rd.flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => {
                    if e.file_name() == "snapshots" {
                        0
                    } else {
                        walk(&e.path())
                    }
                }
                Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
                Err(_) => 0,
            })
            .sum()
    }
    walk(&node.config.data_dir.join("storage"))
}

fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.2} {}", units[u])
}

fn state_letter(s: NodeStatus) -> char {
    match s {
        NodeStatus::Normal => 'N',
        NodeStatus::Joining => 'J',
        NodeStatus::Leaving => 'L',
        NodeStatus::Left => 'L',
    }
}

/// The tables named by `keyspace` and `tables` (all user tables when no keyspace).
fn tables_of(
    node: &Node,
    keyspace: &Option<String>,
    tables: &[String],
) -> Result<Vec<uuid::Uuid>, String> {
    let schema = node.schema();
    let mut out = vec![];
    for t in schema.tables() {
        let ks_ok = match keyspace {
            Some(k) => &t.keyspace == k,
            None => !crate::ddl::is_system_keyspace(&t.keyspace),
        };
        if ks_ok && (tables.is_empty() || tables.contains(&t.name)) {
            out.push(t.id);
        }
    }
    if let Some(k) = keyspace {
        if !schema.keyspaces.contains_key(k) {
            return Err(format!("Keyspace [{k}] does not exist."));
        }
    }
    for name in tables {
        let ks = keyspace.as_deref().unwrap_or_default();
        if schema.table(ks, name).is_none() {
            return Err(format!("Unknown table {name} in keyspace {ks}"));
        }
    }
    Ok(out)
}

async fn loads(node: &Arc<Node>) -> BTreeMap<uuid::Uuid, u64> {
    let mut out = BTreeMap::new();
    out.insert(node.local.host_id, local_load(node));
    let Some(c) = node.cluster.get() else {
        return out;
    };
    let payload = messaging::encode(&AdminRequest::Load);
    for (state, alive) in c.membership.nodes() {
        if state.host_id == node.local.host_id || !alive {
            continue;
        }
        let addr = SocketAddr::new(state.addr, state.storage_port);
        if let Ok(b) = c
            .messaging
            .request(addr, VERB_ADMIN, payload.clone(), Duration::from_secs(5))
            .await
        {
            if let Ok(AdminResponse::Load(l)) = messaging::decode::<AdminResponse>(&b) {
                out.insert(state.host_id, l);
            }
        }
    }
    out
}

fn ring_of(node: &Node) -> Arc<TokenRing> {
    match node.cluster.get() {
        Some(c) => c.ring.read().clone(),
        None => {
            let mut r = TokenRing::new();
            r.add_node(
                NodeInfo {
                    host_id: node.local.host_id,
                    addr: node.local.address,
                    dc: node.local.dc.clone(),
                    rack: node.local.rack.clone(),
                },
                &node.local.tokens,
            );
            Arc::new(r)
        }
    }
}

/// Every node gossip knows, with liveness (the local node alone before gossip starts).
fn members(node: &Node) -> Vec<(sibyl_cluster::gossip::NodeState, bool)> {
    match node.cluster.get() {
        Some(c) => c.membership.nodes(),
        None => vec![],
    }
}

async fn status(node: &Arc<Node>, keyspace: Option<String>) -> Result<String, String> {
    let ring = ring_of(node);
    let loads = loads(node).await;
    let ownership: std::collections::HashMap<uuid::Uuid, f64> = match &keyspace {
        Some(k) => {
            let rep = node.replication_of(k);
            let schema = node.schema();
            if !schema.keyspaces.contains_key(k) {
                return Err(format!("Keyspace [{k}] does not exist."));
            }
            ring.nodes()
                .iter()
                .map(|n| {
                    let owned: f64 = ring
                        .ranges_for(&rep, n.host_id)
                        .iter()
                        .map(|(s, e)| (e.wrapping_sub(*s) as u64) as f64 / 2f64.powi(64))
                        .sum();
                    (n.host_id, if ring.nodes().len() == 1 { 1.0 } else { owned })
                })
                .collect()
        }
        None => ring.ownership(),
    };
    let mut by_dc: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut states = members(node);
    if states.is_empty() {
        states.push((
            sibyl_cluster::gossip::NodeState {
                host_id: node.local.host_id,
                addr: node.local.address,
                storage_port: node.local.storage_port,
                native_port: node.local.native_port,
                dc: node.local.dc.clone(),
                rack: node.local.rack.clone(),
                tokens: node.local.tokens.clone(),
                status: NodeStatus::Normal,
                schema_version: node.schema().version,
                release_version: String::new(),
                removed: vec![],
                generation: 0,
            },
            true,
        ));
    }
    let removed = node.cluster.get().map(|c| c.removed()).unwrap_or_default();
    for (s, alive) in states {
        if s.status == NodeStatus::Left || removed.contains(&s.host_id) {
            continue;
        }
        let load = loads.get(&s.host_id).map_or("?".to_string(), |l| human(*l));
        let owns = ownership
            .get(&s.host_id)
            .map_or("?".to_string(), |o| format!("{:.1}%", o * 100.0));
        by_dc.entry(s.dc.clone()).or_default().push(format!(
            "{}{}  {:<15} {:<12} {:<6} {:<7} {}  {}",
            if alive { 'U' } else { 'D' },
            state_letter(s.status),
            s.addr,
            load,
            s.tokens.len(),
            owns,
            s.host_id,
            s.rack
        ));
    }
    let mut out = String::new();
    for (dc, mut lines) in by_dc {
        lines.sort_by(|a, b| a[4..].cmp(&b[4..]));
        let _ = writeln!(out, "Datacenter: {dc}");
        let _ = writeln!(out, "{}", "=".repeat(12 + dc.len()));
        let _ = writeln!(out, "Status=Up/Down");
        let _ = writeln!(out, "|/ State=Normal/Leaving/Joining/Moving");
        let _ = writeln!(
            out,
            "--  {:<15} {:<12} {:<6} {:<7} {:<36}  Rack",
            "Address", "Load", "Tokens", "Owns", "Host ID"
        );
        for l in lines {
            let _ = writeln!(out, "{l}");
        }
        out.push('\n');
    }
    if keyspace.is_none() {
        out.push_str("Note: Non-system keyspaces don't have the same replication settings, effective ownership information is meaningless\n");
    }
    Ok(out)
}

async fn ring(node: &Arc<Node>) -> String {
    let ring = ring_of(node);
    let loads = loads(node).await;
    let alive: std::collections::HashMap<uuid::Uuid, bool> = members(node)
        .into_iter()
        .map(|(s, a)| (s.host_id, a))
        .collect();
    let own = ring.ownership();
    let mut out = String::new();
    for dc in ring.datacenters() {
        let _ = writeln!(out, "\nDatacenter: {dc}\n==========");
        let _ = writeln!(
            out,
            "{:<15} {:<8} {:<7} {:<8} {:<12} {:<8} Token",
            "Address", "Rack", "Status", "State", "Load", "Owns"
        );
        for (t, id) in ring.sorted_tokens() {
            let Some(n) = ring.node(*id) else { continue };
            if n.dc != dc {
                continue;
            }
            let up = alive.get(id).copied().unwrap_or(*id == node.local.host_id);
            let _ = writeln!(
                out,
                "{:<15} {:<8} {:<7} {:<8} {:<12} {:<8} {t}",
                n.addr,
                n.rack,
                if up { "Up" } else { "Down" },
                "Normal",
                loads.get(id).map_or("?".into(), |l| human(*l)),
                own.get(id)
                    .map_or("?".into(), |o| format!("{:.2}%", o * 100.0)),
            );
        }
    }
    out
}

fn describe_ring(node: &Node, keyspace: &str) -> Result<String, String> {
    if !node.schema().keyspaces.contains_key(keyspace) {
        return Err(format!("The keyspace {keyspace}, does not exist"));
    }
    let ring = ring_of(node);
    let rep = node.replication_of(keyspace);
    let tokens = ring.sorted_tokens();
    let mut out = format!("Schema Version:{}\nTokenRange: \n", node.schema().version);
    for (i, (end, _)) in tokens.iter().enumerate() {
        let start = if i == 0 {
            tokens[tokens.len() - 1].0
        } else {
            tokens[i - 1].0
        };
        let replicas: Vec<&NodeInfo> = ring
            .replicas(&rep, *end)
            .iter()
            .filter_map(|id| ring.node(*id))
            .collect();
        let eps: Vec<String> = replicas.iter().map(|n| n.addr.to_string()).collect();
        let details: Vec<String> = replicas
            .iter()
            .map(|n| {
                format!(
                    "EndpointDetails(host:{}, datacenter:{}, rack:{})",
                    n.addr, n.dc, n.rack
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "\tTokenRange(start_token:{start}, end_token:{end}, endpoints:[{}], rpc_endpoints:[{}], endpoint_details:[{}])",
            eps.join(", "),
            eps.join(", "),
            details.join(", ")
        );
    }
    Ok(out)
}

/// Serves one admin request on the node.
pub async fn handle(node: Arc<Node>, payload: Bytes) -> Result<Bytes, String> {
    let req: AdminRequest = messaging::decode(&payload).map_err(|e| e.to_string())?;
    let resp = match req {
        AdminRequest::Load => AdminResponse::Load(local_load(&node)),
        AdminRequest::Status { keyspace } => AdminResponse::Text(status(&node, keyspace).await?),
        AdminRequest::Ring => AdminResponse::Text(ring(&node).await),
        AdminRequest::TokenMap => AdminResponse::TokenMap(token_map(&node)),
        AdminRequest::DescribeRing { keyspace } => {
            AdminResponse::Text(describe_ring(&node, &keyspace)?)
        }
        AdminRequest::RemoveNode { host_id } => {
            AdminResponse::Text(crate::repair::removenode(&node, host_id).await?)
        }
        AdminRequest::Decommission => {
            AdminResponse::Text(crate::repair::decommission(&node).await?)
        }
        AdminRequest::Repair { keyspace } => AdminResponse::Text(repair(&node, keyspace).await?),
        AdminRequest::Flush { keyspace, tables } => {
            flush_or_compact(&node, keyspace, tables, false).await?
        }
        AdminRequest::Compact { keyspace, tables } => {
            flush_or_compact(&node, keyspace, tables, true).await?
        }
    };
    Ok(messaging::encode(&resp))
}

async fn repair(node: &Arc<Node>, keyspace: Option<String>) -> Result<String, String> {
    let keyspaces: Vec<String> = match keyspace {
        Some(k) => vec![k],
        None => node
            .schema()
            .keyspaces
            .keys()
            .filter(|k| !crate::ddl::is_system_keyspace(k))
            .cloned()
            .collect(),
    };
    let mut out = String::new();
    for k in keyspaces {
        let started = std::time::Instant::now();
        let s = crate::repair::repair_keyspace(node, &k).await?;
        let _ = writeln!(
            out,
            "Repair of {k} completed in {} ms: {} ranges, {} out of sync ({} of their {} Merkle leaves), {} partitions streamed",
            started.elapsed().as_millis(),
            s.ranges,
            s.mismatched_ranges,
            s.mismatched_leaves,
            s.mismatched_ranges * 64,
            s.partitions_sent
        );
        tracing::info!("{}", out.lines().last().unwrap_or_default());
    }
    Ok(out)
}

async fn flush_or_compact(
    node: &Arc<Node>,
    keyspace: Option<String>,
    tables: Vec<String>,
    compact: bool,
) -> Result<AdminResponse, String> {
    {
        {
            let ids = tables_of(node, &keyspace, &tables)?;
            let n = node.clone();
            tokio::task::spawn_blocking(move || -> Result<(), String> {
                for id in ids {
                    if compact {
                        n.engine.flush(Some(id)).map_err(|e| e.to_string())?;
                        n.engine.compact(id).map_err(|e| e.to_string())?;
                    } else {
                        n.engine.flush(Some(id)).map_err(|e| e.to_string())?;
                    }
                }
                Ok(())
            })
            .await
            .map_err(|e| e.to_string())??;
            Ok(AdminResponse::Text(String::new()))
        }
    }
}

/// Runs a CLI command against the node at `to` (its storage port); returns the exit code.
pub async fn run_cli(to: SocketAddr, req: AdminRequest) -> u8 {
    let handler: messaging::Handler =
        Arc::new(|_, _, _| Box::pin(async { Err("this is a client".to_string()) }));
    let Ok(client) = Messaging::bind(
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), 0),
        handler,
    )
    .await
    else {
        eprintln!("sibyl: cannot open a client socket");
        return 1;
    };
    let timeout = Duration::from_secs(3600);
    let r = client
        .request(to, VERB_ADMIN, messaging::encode(&req), timeout)
        .await;
    client.shutdown();
    match r {
        Ok(b) => match messaging::decode::<AdminResponse>(&b) {
            Ok(AdminResponse::Text(t)) => {
                print!("{t}");
                0
            }
            Ok(AdminResponse::Load(l)) => {
                println!("{l}");
                0
            }
            Ok(AdminResponse::TokenMap(members)) => {
                for m in members {
                    println!("{} {} {:?}", m.addr, m.host_id, m.tokens);
                }
                0
            }
            Err(e) => {
                eprintln!("sibyl: bad response: {e}");
                1
            }
        },
        Err(messaging::MessagingError::Remote(msg)) => {
            eprintln!("sibyl: {msg}");
            2
        }
        Err(e) => {
            eprintln!("sibyl: cannot reach the node at {to}: {e}");
            1
        }
    }
}
