//! The node: its identity, schema, storage engine, prepared statements and the event bus that
//! connections subscribe to. One `Node` is shared by every connection.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use sibyl_cluster::messaging::{self, Messaging};
use sibyl_cluster::{allocate_tokens, NodeInfo, TokenRing};
use sibyl_protocol::messages::Event;
use sibyl_storage::{Engine, EngineOptions, TableParams};
use uuid::Uuid;

use crate::admin::{AdminRequest, AdminResponse, RingMember, VERB_ADMIN};
use crate::config::{CommitlogSyncMode, Config};
use crate::executor::PreparedStmt;
use crate::schema::{Schema, SchemaStore, Table};
use crate::system_tables::{self, LocalInfo};

pub struct Node {
    pub config: Config,
    pub local: LocalInfo,
    pub engine: Engine,
    schema: RwLock<Arc<Schema>>,
    store: SchemaStore,
    /// Serializes schema changes.
    pub ddl_lock: Mutex<()>,
    pub vtables: system_tables::VirtualTables,
    /// Keyed by MD5 digests: a fast hasher suffices, and every EXECUTE looks one up.
    pub prepared: RwLock<HashMap<Bytes, Arc<PreparedStmt>, foldhash::fast::RandomState>>,
    pub events: tokio::sync::broadcast::Sender<Event>,
    /// Whether this node still has to stream its ranges before serving them.
    pub needs_bootstrap: std::sync::atomic::AtomicBool,
    /// Writes kept for replicas that were down.
    pub hints: crate::hints::Hints,
    /// Logged batches this node keeps for their coordinators.
    pub batchlog: crate::batchlog::Batchlog,
    /// Paxos acceptor state of the partitions this node replicates.
    pub paxos: crate::paxos_store::PaxosStore,
    /// Membership, messaging and the ring, once started.
    pub cluster: std::sync::OnceLock<Arc<crate::coordinator::Cluster>>,
    /// Striped locks serializing read-modify-write (LWT, counters) per partition.
    pub partition_locks: Vec<Mutex<()>>,
    last_micros: AtomicI64,
    /// Storage-attached indexes of the schema's tables.
    pub indexes: crate::indexes::Indexes,
    self_ref: std::sync::OnceLock<std::sync::Weak<Node>>,
    /// Held for the node's life: a second process on the same data dir would replay and
    /// rewrite files under this one.
    _data_dir_lock: std::fs::File,
}

/// Takes the data dir's exclusive lock (released by the OS when the process ends, however).
fn lock_data_dir(dir: &std::path::Path) -> anyhow_like::Result<std::fs::File> {
    let path = dir.join("sibyl.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "data directory {} is in use by another process (lock {} is held)",
            dir.display(),
            path.display()
        )
        .into()),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// Per-node identity kept across restarts (host id, tokens).
#[derive(serde::Serialize, serde::Deserialize)]
struct Identity {
    host_id: Uuid,
    tokens: Vec<i64>,
    /// False until the node has streamed its ranges from the cluster (or found none to join).
    #[serde(default = "yes")]
    bootstrapped: bool,
}

fn yes() -> bool {
    true
}

fn save_identity(dir: &Path, id: &Identity) -> std::io::Result<()> {
    let path = dir.join("identity.json");
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(id).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, &path)
}

fn load_identity(config: &Config) -> std::io::Result<Identity> {
    let dir = &config.data_dir;
    if let Ok(bytes) = std::fs::read(dir.join("identity.json")) {
        if let Ok(id) = serde_json::from_slice::<Identity>(&bytes) {
            return Ok(id);
        }
    }
    let id = Identity {
        host_id: Uuid::new_v4(),
        tokens: first_tokens(config),
        bootstrapped: false,
    };
    save_identity(dir, &id)?;
    Ok(id)
}

/// How long a node's first start waits for a seed to describe the ring it joins.
const RING_FETCH_PATIENCE: Duration = Duration::from_secs(5);

/// Tokens for a node's first start: balanced against the ring of the cluster it joins, or evenly
/// spaced from a random offset when it is its own only seed (or no seed answers).
fn first_tokens(config: &Config) -> Vec<i64> {
    let seeds: Vec<SocketAddr> = config
        .seeds
        .iter()
        .filter(|ip| **ip != config.listen_address)
        .map(|ip| SocketAddr::new(*ip, config.storage_port))
        .collect();
    let ring = if seeds.is_empty() {
        TokenRing::new()
    } else {
        fetch_ring(config.listen_address, &seeds).unwrap_or_else(|| {
            tracing::warn!(
                "no seed described the ring within {RING_FETCH_PATIENCE:?}: choosing tokens \
                 without it, ownership may be unbalanced"
            );
            TokenRing::new()
        })
    };
    let tokens = allocate_tokens(
        &ring,
        &config.dc,
        config.num_tokens as usize,
        Uuid::new_v4().as_u128() as u64,
    );
    if !ring.is_empty() {
        tracing::info!(
            "chose {} tokens balanced against the {} nodes of the ring",
            tokens.len(),
            ring.nodes().len()
        );
    }
    tokens
}

/// The ring (nodes in state NORMAL) as one of `seeds` sees it, asked over the admin verb.
///
/// Runs on a thread of its own with its own runtime: `Node::open` is synchronous and may be
/// called inside or outside a runtime.
fn fetch_ring(local: IpAddr, seeds: &[SocketAddr]) -> Option<TokenRing> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(fetch_ring_async(local, seeds))
        })
        .join()
        .ok()
        .flatten()
    })
}

async fn fetch_ring_async(local: IpAddr, seeds: &[SocketAddr]) -> Option<TokenRing> {
    let handler: messaging::Handler =
        Arc::new(|_, _, _| Box::pin(async { Err("not serving yet".to_string()) }));
    let client = Messaging::bind(SocketAddr::new(local, 0), handler)
        .await
        .ok()?;
    let deadline = tokio::time::Instant::now() + RING_FETCH_PATIENCE;
    let members = loop {
        if let Some(m) = ask_seeds(&client, seeds).await {
            break Some(m);
        }
        if tokio::time::Instant::now() >= deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    client.shutdown();
    let mut ring = TokenRing::new();
    for m in members? {
        let info = NodeInfo {
            host_id: m.host_id,
            addr: m.addr,
            dc: m.dc,
            rack: m.rack,
        };
        ring.add_node(info, &m.tokens);
    }
    Some(ring)
}

async fn ask_seeds(client: &Messaging, seeds: &[SocketAddr]) -> Option<Vec<RingMember>> {
    let request = messaging::encode(&AdminRequest::TokenMap);
    for seed in seeds {
        let reply = client
            .request(*seed, VERB_ADMIN, request.clone(), Duration::from_secs(2))
            .await;
        match reply.map(|b| messaging::decode::<AdminResponse>(&b)) {
            Ok(Ok(AdminResponse::TokenMap(members))) => return Some(members),
            Ok(other) => tracing::debug!("ring from seed {seed}: unexpected {other:?}"),
            Err(e) => tracing::debug!("ring from seed {seed}: {e}"),
        }
    }
    None
}

pub fn table_params(t: &Table) -> TableParams {
    let mut p = TableParams {
        name: format!("{}.{}", t.keyspace, t.name),
        ..TableParams::default()
    };
    p.bloom_filter_fp_chance = t.options.bloom_filter_fp_chance;
    p.gc_grace_seconds = t.options.gc_grace_seconds as i64;
    let comp = &t.options.compression;
    p.compression = if comp.get("enabled").map(|e| e == "false").unwrap_or(false)
        || comp
            .get("class")
            .map(|c| c.ends_with("NoopCompressor"))
            .unwrap_or(false)
    {
        sibyl_storage::Compression::None
    } else {
        let kb = comp
            .get("chunk_length_in_kb")
            .and_then(|v| v.parse().ok())
            .unwrap_or(16);
        sibyl_storage::Compression::Lz4 {
            chunk_length_kb: kb,
        }
    };
    let class = t
        .options
        .compaction
        .get("class")
        .cloned()
        .unwrap_or_default();
    p.compaction = if class.ends_with("LeveledCompactionStrategy") {
        let mb = t
            .options
            .compaction
            .get("sstable_size_in_mb")
            .and_then(|v| v.parse().ok())
            .unwrap_or(160);
        sibyl_storage::CompactionStrategy::Leveled {
            sstable_size_in_mb: mb,
        }
    } else {
        let min = t
            .options
            .compaction
            .get("min_threshold")
            .and_then(|v| v.parse().ok())
            .unwrap_or(4);
        let max = t
            .options
            .compaction
            .get("max_threshold")
            .and_then(|v| v.parse().ok())
            .unwrap_or(32);
        sibyl_storage::CompactionStrategy::SizeTiered {
            min_threshold: min,
            max_threshold: max,
        }
    };
    p
}

impl Node {
    pub fn open(config: Config) -> anyhow_like::Result<Arc<Node>> {
        std::fs::create_dir_all(&config.data_dir)?;
        let data_dir_lock = lock_data_dir(&config.data_dir)?;
        let identity = load_identity(&config)?;
        let identity_bootstrapped = identity.bootstrapped;
        let store = SchemaStore::new(&config.data_dir);
        let mut schema = store.load()?;
        schema.version = crate::ddl::content_version(&schema);
        let mut tables: Vec<(Uuid, TableParams)> =
            schema.tables().map(|t| (t.id, table_params(t))).collect();
        tables.push((
            crate::paxos_store::SPILL_TABLE,
            crate::paxos_store::spill_table_params(),
        ));
        let mut opts = EngineOptions {
            commitlog_sync: match config.commitlog_sync {
                CommitlogSyncMode::Periodic { period_ms } => {
                    sibyl_storage::CommitlogSync::Periodic { period_ms }
                }
                CommitlogSyncMode::Batch => sibyl_storage::CommitlogSync::Batch,
                CommitlogSyncMode::Group { window_ms } => {
                    sibyl_storage::CommitlogSync::Group { window_ms }
                }
            },
            ..EngineOptions::default()
        };
        if let Some(m) = config.memtable_space {
            opts.memtable_space = m;
        }
        if let Some(t) = config.compaction_throughput_mb {
            opts.compaction_throughput_mb_per_sec = t;
        }
        if let Some(c) = config.file_cache_size {
            opts.block_cache_bytes = c;
        }
        opts.auto_snapshot = config.auto_snapshot;
        let engine = Engine::open(&config.data_dir.join("storage"), opts, tables)?;
        let generation = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)) as i32;
        let local = LocalInfo {
            cluster_name: config.cluster_name.clone(),
            dc: config.dc.clone(),
            rack: config.rack.clone(),
            host_id: identity.host_id,
            address: config.listen_address,
            native_port: config.native_port,
            storage_port: config.storage_port,
            tokens: identity.tokens,
            gossip_generation: generation,
        };
        let (events, _) = tokio::sync::broadcast::channel(1024);
        let hints = crate::hints::Hints::open(config.data_dir.join("hints"))?;
        let batchlog = crate::batchlog::Batchlog::open(
            config.data_dir.join("batchlog"),
            config.commitlog_sync == CommitlogSyncMode::Batch,
        )?;
        let paxos = crate::paxos_store::PaxosStore::open(
            &config.data_dir.join("paxos"),
            config.commitlog_sync == CommitlogSyncMode::Batch,
            config.paxos_cache_size as usize,
        )?;
        let node = Arc::new(Node {
            config,
            local,
            engine,
            schema: RwLock::new(Arc::new(schema)),
            store,
            ddl_lock: Mutex::new(()),
            vtables: system_tables::definitions(),
            prepared: RwLock::new(HashMap::default()),
            events,
            hints,
            paxos,
            batchlog,
            needs_bootstrap: std::sync::atomic::AtomicBool::new(!identity_bootstrapped),
            cluster: std::sync::OnceLock::new(),
            partition_locks: (0..1024).map(|_| Mutex::new(())).collect(),
            last_micros: AtomicI64::new(0),
            indexes: crate::indexes::Indexes::default(),
            self_ref: std::sync::OnceLock::new(),
            _data_dir_lock: data_dir_lock,
        });
        let _ = node.self_ref.set(Arc::downgrade(&node));
        node.sync_indexes();
        Ok(node)
    }

    /// This node's own data as statements read it.
    pub fn local_data(&self) -> crate::data::LocalData<'_> {
        crate::data::LocalData {
            engine: &self.engine,
            indexes: &self.indexes,
        }
    }

    /// Attaches, detaches and builds indexes to match the current schema.
    pub fn sync_indexes(&self) {
        if let Some(me) = self.self_ref.get() {
            self.indexes.sync(me, &self.engine, &self.schema());
        }
    }

    pub fn schema(&self) -> Arc<Schema> {
        self.schema.read().clone()
    }

    /// Persists and publishes a new schema (the caller holds `ddl_lock`).
    pub fn install_schema(&self, mut schema: Schema) -> std::io::Result<()> {
        schema.epoch = self.schema.read().epoch + 1;
        schema.version = crate::ddl::content_version(&schema);
        self.store.save(&schema)?;
        *self.schema.write() = Arc::new(schema);
        Ok(())
    }

    /// Installs a schema received from another node when it is newer than ours, creating and
    /// dropping tables in storage to match, and announces what changed to clients.
    pub fn adopt_schema(&self, incoming: Schema) -> Result<(), crate::error::QueryError> {
        let _guard = self.ddl_lock.lock();
        let current = self.schema();
        if incoming.epoch < current.epoch
            || (incoming.epoch == current.epoch && incoming.version == current.version)
        {
            return Ok(());
        }
        self.prepare_storage(&current, &incoming)?;
        self.store
            .save(&incoming)
            .map_err(|e| crate::error::QueryError::Server(format!("cannot persist schema: {e}")))?;
        let changes = crate::ddl::diff(&current, &incoming);
        let dropped: Vec<Uuid> = current
            .tables()
            .filter(|t| !incoming.tables().any(|n| n.id == t.id))
            .map(|t| t.id)
            .collect();
        let version = incoming.version;
        *self.schema.write() = Arc::new(incoming);
        self.prepared.write().clear();
        self.sync_indexes();
        for id in dropped {
            let _ = self.engine.drop_table(id);
            let _ = self.paxos.drop_table(id);
        }
        if let Some(c) = self.cluster.get() {
            c.membership.update_local(&|s| s.schema_version = version);
        }
        for ch in changes {
            let _ = self.events.send(Event::SchemaChange(ch));
        }
        Ok(())
    }

    /// A write timestamp in microseconds that never repeats or goes backwards on this node.
    pub fn next_timestamp(&self) -> i64 {
        let now = sibyl_types::timeuuid::micros_now();
        let mut last = self.last_micros.load(Ordering::Relaxed);
        loop {
            let next = if now > last { now } else { last + 1 };
            match self.last_micros.compare_exchange_weak(
                last,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(x) => last = x,
            }
        }
    }

    pub fn find_table(&self, schema: &Schema, ks: &str, name: &str) -> Option<Arc<Table>> {
        self.vtables
            .get(ks)
            .and_then(|tables| tables.get(name))
            .or_else(|| schema.table(ks, name))
            .cloned()
    }

    pub fn shutdown(&self) {
        if let Err(e) = self.engine.shutdown() {
            tracing::error!("storage shutdown failed: {e}");
        }
    }
}

/// A boxed error for start-up, where any failure ends the process with a message.
pub mod anyhow_like {
    pub type Error = Box<dyn std::error::Error + Send + Sync>;
    pub type Result<T> = std::result::Result<T, Error>;
}

impl Node {
    /// Records that bootstrap is done, so a restart does not stream again.
    pub fn mark_bootstrapped(&self) -> std::io::Result<()> {
        self.needs_bootstrap.store(false, Ordering::Relaxed);
        save_identity(
            &self.config.data_dir,
            &Identity {
                host_id: self.local.host_id,
                tokens: self.local.tokens.clone(),
                bootstrapped: true,
            },
        )
    }
}

impl Node {
    /// Storage follows the schema: tables of `new` exist (with its options) in the engine before
    /// the schema naming them is installed.
    pub fn prepare_storage(
        &self,
        old: &Schema,
        new: &Schema,
    ) -> Result<(), sibyl_storage::StorageError> {
        for t in new.tables() {
            match old.table(&t.keyspace, &t.name) {
                Some(o) if o.id == t.id => {
                    if table_params(o) != table_params(t) {
                        self.engine.alter_table(t.id, table_params(t))?;
                    }
                }
                _ => self.engine.create_table(t.id, table_params(t))?,
            }
        }
        Ok(())
    }
}
