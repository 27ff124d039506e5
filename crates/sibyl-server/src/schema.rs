//! The live schema: keyspaces, tables, user types and indexes, persisted as one JSON document
//! that is replaced atomically on every change. Each change yields a new schema version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sibyl_types::{CqlType, UdtDef};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColumnKind {
    PartitionKey,
    Clustering,
    Static,
    Regular,
}

impl ColumnKind {
    pub fn schema_name(self) -> &'static str {
        match self {
            ColumnKind::PartitionKey => "partition_key",
            ColumnKind::Clustering => "clustering",
            ColumnKind::Static => "static",
            ColumnKind::Regular => "regular",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub ty: CqlType,
    pub kind: ColumnKind,
    /// Position within the partition key or clustering key; -1 otherwise.
    pub position: i32,
    /// Clustering column stored in descending order.
    pub reversed: bool,
}

impl Column {
    pub fn is_primary_key(&self) -> bool {
        matches!(self.kind, ColumnKind::PartitionKey | ColumnKind::Clustering)
    }
}

/// Table options as Cassandra 5.0 shows them in system_schema.tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableOptions {
    pub additional_write_policy: String,
    pub allow_auto_snapshot: bool,
    pub bloom_filter_fp_chance: f64,
    pub caching: BTreeMap<String, String>,
    pub cdc: bool,
    pub comment: String,
    pub compaction: BTreeMap<String, String>,
    pub compression: BTreeMap<String, String>,
    pub crc_check_chance: f64,
    pub default_time_to_live: i32,
    pub extensions: BTreeMap<String, Vec<u8>>,
    pub gc_grace_seconds: i32,
    pub incremental_backups: bool,
    pub max_index_interval: i32,
    pub memtable: String,
    pub memtable_flush_period_in_ms: i32,
    pub min_index_interval: i32,
    pub read_repair: String,
    pub speculative_retry: String,
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            additional_write_policy: "99p".into(),
            allow_auto_snapshot: true,
            bloom_filter_fp_chance: 0.01,
            caching: map(&[("keys", "ALL"), ("rows_per_partition", "NONE")]),
            cdc: false,
            comment: String::new(),
            compaction: map(&[
                (
                    "class",
                    "org.apache.cassandra.db.compaction.SizeTieredCompactionStrategy",
                ),
                ("max_threshold", "32"),
                ("min_threshold", "4"),
            ]),
            compression: map(&[
                ("chunk_length_in_kb", "16"),
                ("class", "org.apache.cassandra.io.compress.LZ4Compressor"),
            ]),
            crc_check_chance: 1.0,
            default_time_to_live: 0,
            extensions: BTreeMap::new(),
            gc_grace_seconds: 864000,
            incremental_backups: true,
            max_index_interval: 2048,
            memtable: "default".into(),
            memtable_flush_period_in_ms: 0,
            min_index_interval: 128,
            read_repair: "BLOCKING".into(),
            speculative_retry: "99p".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexDef {
    pub name: String,
    /// KEYS, COMPOSITES or CUSTOM as in system_schema.indexes.
    pub kind: String,
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub keyspace: String,
    pub name: String,
    pub id: Uuid,
    /// Partition key columns, then clustering columns, then the others sorted by name.
    pub columns: Vec<Column>,
    pub partition_key_count: usize,
    pub clustering_count: usize,
    pub options: TableOptions,
    #[serde(default)]
    pub indexes: Vec<IndexDef>,
    #[serde(default)]
    pub dropped: BTreeMap<String, (i64, CqlType)>,
    /// A virtual (system) table: rows are generated, never stored.
    #[serde(skip)]
    pub is_virtual: bool,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
    pub fn partition_key(&self) -> &[Column] {
        &self.columns[..self.partition_key_count]
    }
    pub fn clustering(&self) -> &[Column] {
        &self.columns[self.partition_key_count..self.partition_key_count + self.clustering_count]
    }
    pub fn regular_and_static(&self) -> &[Column] {
        &self.columns[self.partition_key_count + self.clustering_count..]
    }
    pub fn has_statics(&self) -> bool {
        self.columns.iter().any(|c| c.kind == ColumnKind::Static)
    }
    pub fn is_counter_table(&self) -> bool {
        self.regular_and_static().iter().any(|c| c.ty.is_counter())
    }
    /// Clustering types with their order, as the clustering encoder wants them (inline: this
    /// runs for every write and read of a table with clustering columns).
    pub fn clustering_types(&self) -> smallvec::SmallVec<[(&CqlType, bool); 4]> {
        self.clustering()
            .iter()
            .map(|c| (&c.ty, c.reversed))
            .collect()
    }
    /// Sorts non-key columns by name, as Cassandra orders them in `SELECT *`.
    pub fn normalize(&mut self) {
        let start = self.partition_key_count + self.clustering_count;
        self.columns[start..].sort_by(|a, b| a.name.cmp(&b.name));
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Keyspace {
    pub name: String,
    /// The replication map including "class".
    pub replication: BTreeMap<String, String>,
    pub durable_writes: bool,
    pub tables: BTreeMap<String, Arc<Table>>,
    pub types: BTreeMap<String, UdtDef>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Schema {
    pub version: Uuid,
    /// Counts changes, so that every change yields a new version even when it restores an
    /// earlier content (e.g. CREATE TYPE then DROP TYPE).
    #[serde(default)]
    pub epoch: u64,
    pub keyspaces: BTreeMap<String, Arc<Keyspace>>,
}

impl Schema {
    pub fn table(&self, ks: &str, name: &str) -> Option<&Arc<Table>> {
        self.keyspaces.get(ks)?.tables.get(name)
    }
    pub fn tables(&self) -> impl Iterator<Item = &Arc<Table>> {
        self.keyspaces.values().flat_map(|k| k.tables.values())
    }
}

/// Loads and saves the schema document.
pub struct SchemaStore {
    path: PathBuf,
}

impl SchemaStore {
    pub fn new(data_dir: &Path) -> Self {
        SchemaStore {
            path: data_dir.join("schema.json"),
        }
    }

    pub fn load(&self) -> std::io::Result<Schema> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Schema {
                version: Uuid::new_v4(),
                ..Default::default()
            }),
            Err(e) => Err(e),
        }
    }

    /// Writes to a temporary file, fsyncs, and renames over the old document.
    pub fn save(&self, schema: &Schema) -> std::io::Result<()> {
        use std::io::Write;
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(schema).map_err(std::io::Error::other)?;
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}
