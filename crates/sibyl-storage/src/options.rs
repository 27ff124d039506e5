/// How the commit log is made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitlogSync {
    /// fsync in the background every `period_ms`; `apply` does not wait.
    Periodic { period_ms: u64 },
    /// `apply` waits for an fsync covering its entry; concurrent writers share one fsync.
    Batch,
    /// `apply` waits for an fsync; fsyncs happen at most every `window_ms`.
    Group { window_ms: u64 },
}

impl Default for CommitlogSync {
    fn default() -> Self {
        CommitlogSync::Periodic { period_ms: 10_000 }
    }
}

#[derive(Clone, Debug)]
pub struct EngineOptions {
    pub commitlog_sync: CommitlogSync,
    /// Size at which a commit log segment is closed and a new one started.
    pub commitlog_segment_size: u64,
    /// Total memtable budget across all tables, in bytes.
    pub memtable_space: u64,
    /// Compaction write throughput limit; 0 = unlimited.
    pub compaction_throughput_mb_per_sec: u64,
    /// Snapshot a table before dropping or truncating it.
    pub auto_snapshot: bool,
    /// Capacity of the cache of decompressed SSTable data blocks shared by all tables
    /// (0 disables it). SSTables are read with positional reads, so the file pages
    /// themselves live in the OS page cache, outside the process's RSS.
    pub block_cache_bytes: u64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            commitlog_sync: CommitlogSync::default(),
            commitlog_segment_size: 32 * 1024 * 1024,
            memtable_space: 256 * 1024 * 1024,
            compaction_throughput_mb_per_sec: 64,
            auto_snapshot: true,
            // Cassandra's chunk cache takes up to 512 MiB; half that keeps point reads over a
            // few hundred MB of SSTables off the decompressor without a large footprint.
            block_cache_bytes: 256 * 1024 * 1024,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Lz4 { chunk_length_kb: u32 },
    None,
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Lz4 {
            chunk_length_kb: 16,
        }
    }
}

impl Compression {
    /// Uncompressed size of a data block.
    pub(crate) fn chunk_bytes(&self) -> usize {
        match self {
            Compression::Lz4 { chunk_length_kb } => (*chunk_length_kb).max(1) as usize * 1024,
            Compression::None => 16 * 1024,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompactionStrategy {
    SizeTiered {
        min_threshold: usize,
        max_threshold: usize,
    },
    Leveled {
        sstable_size_in_mb: u64,
    },
}

impl Default for CompactionStrategy {
    fn default() -> Self {
        CompactionStrategy::SizeTiered {
            min_threshold: 4,
            max_threshold: 32,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TableParams {
    /// "ks.table", for file/dir naming and logs.
    pub name: String,
    pub compression: Compression,
    pub bloom_filter_fp_chance: f64,
    pub gc_grace_seconds: i64,
    pub compaction: CompactionStrategy,
}

impl Default for TableParams {
    fn default() -> Self {
        TableParams {
            name: String::new(),
            compression: Compression::default(),
            bloom_filter_fp_chance: 0.01,
            gc_grace_seconds: 864_000,
            compaction: CompactionStrategy::default(),
        }
    }
}
