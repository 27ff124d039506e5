//! Immutable sorted tables: one file `<gen>-Data.db` per SSTable.
//!
//! Layout: `SIBYLSST` + u32 version, then data blocks, then four meta blocks (block offsets,
//! partition index with per-partition row index, bloom filter, statistics) and a fixed footer
//! (`u64 x4` meta offsets, u32 version, u32 crc32c of the preceding footer bytes, magic).
//! Every block is `[u32 stored_len][u32 raw_len][u8 codec][u32 crc32c(stored)][stored]`,
//! codec 0 = raw, 1 = lz4. Data blocks hold a stream of records (partition start, row,
//! partition end) that never straddle blocks; a partition spanning several blocks gets a row
//! index (first clustering of each block it has rows in) so slices read only needed blocks.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use fastbloom::BloomFilter;

use crate::cache::{next_sstable_id, Block, BlockCache};
use crate::codec::{Dec, Enc};
use crate::commitlog::ClPos;
use crate::error::{Result, StorageError};
use crate::model::{DeletionTime, PartitionKey, RangeTombstone};
use crate::options::Compression;
use crate::partition::{is_full_range, past_end, DataStats, PartitionData, RowData};
use crate::partition_index::{IndexedPartition, PartitionIndex};
use crate::yielding::Yielder;

const MAGIC: &[u8; 8] = b"SIBYLSST";
const VERSION: u32 = 1;
const FOOTER: usize = 8 * 4 + 4 + 4 + 8;
const BLOCK_HEADER: usize = 13;
const BLOOM_SEED: u128 = 0x5eed_51b7_1000_0001;

const REC_START: u8 = 1;
const REC_ROW: u8 = 2;
const REC_END: u8 = 3;

#[derive(Debug, Clone, Copy)]
pub struct SSTableStats {
    pub data: DataStats,
    pub min_token: i64,
    pub max_token: i64,
    pub partitions: u64,
    /// Commit log position covered by this SSTable's data (all entries ending at or before it).
    pub cl_pos: ClPos,
    /// LCS level (0 for flushed tables).
    pub level: u32,
}

pub fn data_file_name(gen: u64) -> String {
    format!("{gen}-Data.db")
}

pub fn parse_data_file_name(name: &str) -> Option<u64> {
    name.strip_suffix("-Data.db")?.parse().ok()
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Bytes per `write` of a large block (see `write_block`).
const LARGE_WRITE_STEP: usize = 256 << 10;

pub struct SSTableWriter {
    dir: PathBuf,
    gen: u64,
    tmp: PathBuf,
    out: BufWriter<File>,
    off: u64,
    compression: Compression,
    chunk: usize,
    fp_chance: f64,
    block: Vec<u8>,
    blocks: Vec<u64>,
    /// Built as the partitions are written and handed to the finished SSTable as it is (no
    /// reading back and decoding of what was just encoded).
    index: PartitionIndex,
    /// Row index of the partition being written.
    row_index: Vec<(Bytes, u32, u32)>,
    stats: DataStats,
    last_indexed_block: u32,
    cache: Option<Arc<BlockCache>>,
    /// Blocks still to store uncompressed after one that did not compress.
    raw_blocks_ahead: u32,
    /// Length of the current run of uncompressed blocks (doubles per failed attempt).
    raw_backoff: u32,
    /// Writers run in the background: the per-partition loops of `finish` step aside too.
    yielder: Yielder,
}

impl SSTableWriter {
    pub fn create(dir: &Path, gen: u64, compression: Compression, fp_chance: f64) -> Result<Self> {
        let tmp = dir.join(format!("{}.tmp", data_file_name(gen)));
        let f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&tmp)?;
        let mut out = BufWriter::with_capacity(256 * 1024, f);
        out.write_all(MAGIC)?;
        out.write_all(&VERSION.to_le_bytes())?;
        Ok(SSTableWriter {
            dir: dir.to_path_buf(),
            gen,
            tmp,
            out,
            off: 12,
            compression,
            chunk: compression.chunk_bytes(),
            fp_chance,
            block: Vec::with_capacity(compression.chunk_bytes() * 5 / 4),
            blocks: Vec::new(),
            index: PartitionIndex::default(),
            row_index: Vec::new(),
            stats: DataStats::default(),
            last_indexed_block: u32::MAX,
            cache: None,
            raw_blocks_ahead: 0,
            raw_backoff: 0,
            yielder: Yielder::default(),
        })
    }

    /// The block cache the finished SSTable reads through.
    pub fn with_cache(mut self, cache: Option<Arc<BlockCache>>) -> Self {
        self.cache = cache;
        self
    }

    /// Sizes the in-memory index for this many partitions and key bytes (a flush knows the
    /// count, a compaction its inputs' sums), so it is not regrown and copied step by step:
    /// each regrowth of a large vector also faulted in and zeroed fresh pages.
    pub fn expect_partitions(mut self, n: usize, key_bytes: usize) -> Self {
        self.index = PartitionIndex::with_capacity(n, key_bytes);
        self
    }

    pub fn bytes_written(&self) -> u64 {
        self.off + self.block.len() as u64
    }

    fn write_block(&mut self, raw: &[u8]) -> Result<u64> {
        let at = self.off;
        let (codec, stored): (u8, std::borrow::Cow<[u8]>) = match self.compression {
            Compression::Lz4 { .. } if self.raw_blocks_ahead > 0 => {
                self.raw_blocks_ahead -= 1;
                (0, raw.into())
            }
            Compression::Lz4 { .. } => {
                let c = lz4_flex::block::compress(raw);
                // Data that does not compress (random or already compressed values) would
                // make every block pay for a useless attempt: after a block saves less than
                // an eighth, the next ones are stored as they are, for longer each time it
                // happens again (up to 16 blocks), until one compresses.
                if c.len() + raw.len() / 8 > raw.len() {
                    self.raw_backoff = (self.raw_backoff * 2).clamp(1, 16);
                    self.raw_blocks_ahead = self.raw_backoff;
                } else {
                    self.raw_backoff = 0;
                }
                if c.len() < raw.len() {
                    (1, c.into())
                } else {
                    (0, raw.into())
                }
            }
            Compression::None => (0, raw.into()),
        };
        let mut h = [0u8; BLOCK_HEADER];
        h[0..4].copy_from_slice(&(stored.len() as u32).to_le_bytes());
        h[4..8].copy_from_slice(&(raw.len() as u32).to_le_bytes());
        h[8] = codec;
        h[9..13].copy_from_slice(&crc32c::crc32c(&stored).to_le_bytes());
        self.out.write_all(&h)?;
        // A meta block (a large table's partition index) runs to megabytes: one `write` of it
        // copied them into the page cache in one system call, which the kernel does not
        // preempt (4 MiB held a core for 6-10 ms while request threads waited for it).
        for piece in stored.chunks(LARGE_WRITE_STEP) {
            self.out.write_all(piece)?;
            if stored.len() > LARGE_WRITE_STEP {
                std::thread::yield_now();
            }
        }
        self.off += (BLOCK_HEADER + stored.len()) as u64;
        Ok(at)
    }

    fn finish_data_block(&mut self) -> Result<()> {
        if !self.block.is_empty() {
            // The buffer is reused: a fresh one per block would regrow from nothing each time.
            let raw = std::mem::take(&mut self.block);
            let at = self.write_block(&raw);
            self.block = raw;
            self.block.clear();
            self.blocks.push(at?);
        }
        Ok(())
    }

    fn maybe_cut(&mut self) -> Result<()> {
        if self.block.len() >= self.chunk {
            self.finish_data_block()?;
        }
        Ok(())
    }

    /// Appends a partition; keys must arrive in increasing order.
    pub fn add(&mut self, key: &PartitionKey, p: &PartitionData) -> Result<()> {
        self.start_partition(key, p)?;
        for (c, r) in &p.rows {
            self.add_row(c, r)?;
        }
        self.end_partition();
        Ok(())
    }

    /// Starts a partition with the header parts of `p` (its rows are ignored); keys must
    /// arrive in increasing order, rows in clustering order, then `end_partition`.
    pub fn start_partition(&mut self, key: &PartitionKey, p: &PartitionData) -> Result<()> {
        self.maybe_cut()?;
        let header = PartitionData {
            deletion: p.deletion,
            range_tombstones: p.range_tombstones.clone(),
            static_row: p.static_row.clone(),
            rows: Default::default(),
        };
        self.stats.merge(&header.stats());
        let start_block = self.blocks.len() as u32;
        let start_off = self.block.len() as u32;
        let mut e = Enc {
            buf: std::mem::take(&mut self.block),
        };
        e.u8(REC_START);
        e.key(key);
        e.deletion(&p.deletion);
        e.range_tombstones(&p.range_tombstones);
        e.opt_row(p.static_row.as_deref());
        self.block = e.buf;
        self.index.push(key, start_block, start_off, Vec::new());
        self.row_index.clear();
        self.last_indexed_block = u32::MAX;
        Ok(())
    }

    pub fn add_row(&mut self, c: &Bytes, r: &RowData) -> Result<()> {
        self.maybe_cut()?;
        let mut st = DataStats::default();
        r.stats(&mut st);
        self.stats.merge(&st);
        let b = self.blocks.len() as u32;
        if b != self.last_indexed_block {
            let off = self.block.len() as u32;
            self.row_index.push((c.clone(), b, off));
            self.last_indexed_block = b;
        }
        let mut e = Enc {
            buf: std::mem::take(&mut self.block),
        };
        e.u8(REC_ROW);
        e.bytes(c);
        e.row(r);
        self.block = e.buf;
        Ok(())
    }

    pub fn end_partition(&mut self) {
        self.block.push(REC_END);
        if self.row_index.len() > 1 {
            self.index
                .set_last_row_index(std::mem::take(&mut self.row_index));
        }
    }

    pub fn abort(self) {
        drop(self.out);
        let _ = fs::remove_file(&self.tmp);
    }

    /// Writes meta blocks and footer, fsyncs, renames into place. None if no partition was added.
    pub fn finish(mut self, cl_pos: ClPos, level: u32) -> Result<Option<SSTable>> {
        if self.index.is_empty() {
            self.abort();
            return Ok(None);
        }
        self.finish_data_block()?;
        let mut e = Enc::default();
        e.var(self.blocks.len() as u64);
        let mut prev = 0;
        for b in &self.blocks {
            e.var(b - prev);
            prev = *b;
        }
        let blocks_off = self.write_block(&e.buf)?;

        let index = std::mem::take(&mut self.index);
        let mut e = Enc {
            buf: Vec::with_capacity(index.key_bytes() + index.len() * 16 + 16),
        };
        e.var(index.len() as u64);
        for i in 0..index.len() {
            self.yielder.step();
            let (k, p) = (index.key(i).unwrap(), index.get(i).unwrap());
            e.ivar(k.token);
            e.bytes(k.key);
            e.var(p.block as u64);
            e.var(p.offset as u64);
            e.var(p.row_index.len() as u64);
            for (c, b, o) in p.row_index {
                e.bytes(c);
                e.var(*b as u64);
                e.var(*o as u64);
            }
        }
        let index_off = self.write_block(&e.buf)?;

        let fp = self.fp_chance.clamp(1e-6, 0.9);
        let mut bloom = BloomFilter::with_false_pos(fp)
            .seed(&BLOOM_SEED)
            .expected_items(index.len());
        for i in 0..index.len() {
            self.yielder.step();
            bloom.insert(index.key(i).unwrap().key);
        }
        let mut e = Enc::default();
        e.u32(bloom.num_hashes());
        e.var(bloom.as_slice().len() as u64);
        for w in bloom.as_slice() {
            e.u64(*w);
        }
        let bloom_off = self.write_block(&e.buf)?;

        let tokens = index.tokens();
        let stats = SSTableStats {
            data: self.stats,
            min_token: tokens[0],
            max_token: tokens[tokens.len() - 1],
            partitions: index.len() as u64,
            cl_pos,
            level,
        };
        let mut e = Enc::default();
        encode_stats(&mut e, &stats);
        let stats_off = self.write_block(&e.buf)?;

        let mut f = Vec::with_capacity(FOOTER);
        for o in [blocks_off, index_off, bloom_off, stats_off] {
            f.extend_from_slice(&o.to_le_bytes());
        }
        f.extend_from_slice(&VERSION.to_le_bytes());
        let crc = crc32c::crc32c(&f);
        f.extend_from_slice(&crc.to_le_bytes());
        f.extend_from_slice(MAGIC);
        self.out.write_all(&f)?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        let path = self.dir.join(data_file_name(self.gen));
        fs::rename(&self.tmp, &path)?;
        sync_dir(&self.dir)?;
        let size = self.off + FOOTER as u64;
        let file = File::open(&path)?;
        let mut sst = SSTable::new(file, &path, self.gen, self.cache, size, blocks_off);
        sst.install(self.blocks, index, bloom, stats);
        Ok(Some(sst))
    }
}

fn encode_stats(e: &mut Enc, s: &SSTableStats) {
    e.ivar(s.data.min_timestamp);
    e.ivar(s.data.max_timestamp);
    e.ivar(s.data.min_local_deletion_time);
    e.var(s.data.tombstones);
    e.ivar(s.min_token);
    e.ivar(s.max_token);
    e.var(s.partitions);
    e.var(s.cl_pos.segment);
    e.var(s.cl_pos.offset);
    e.var(s.level as u64);
}

fn decode_stats(d: &mut Dec) -> Result<SSTableStats> {
    Ok(SSTableStats {
        data: DataStats {
            min_timestamp: d.ivar()?,
            max_timestamp: d.ivar()?,
            min_local_deletion_time: d.ivar()?,
            tombstones: d.var()?,
        },
        min_token: d.ivar()?,
        max_token: d.ivar()?,
        partitions: d.var()?,
        cl_pos: ClPos {
            segment: d.var()?,
            offset: d.var()?,
        },
        level: d.var()? as u32,
    })
}

/// Where each slice of the token ring starts in an index's sorted tokens.
///
/// Murmur3 tokens are uniform, so cutting the ring into about one bucket per
/// `ENTRIES_PER_BUCKET` partitions leaves a point lookup one table entry and one or two cache
/// lines of tokens to read. (Bisecting sampled tokens, then a stride of dense ones, cost a
/// cache miss per step; point reads spent an eighth of their time there.) Skewed tokens
/// only make some buckets longer: a bucket is searched by bisection.
#[derive(Debug, Default, PartialEq, Eq)]
struct TokenBuckets {
    /// Bits of the (order-preserving, unsigned) token that pick the bucket.
    bits: u32,
    /// `starts[b]`: the first index entry in bucket `b` or later; one more than buckets.
    starts: Vec<u32>,
}

const ENTRIES_PER_BUCKET: usize = 8;

impl TokenBuckets {
    fn new(tokens: &[i64]) -> Self {
        if tokens.is_empty() {
            return Self::default();
        }
        let bits = (tokens.len() / ENTRIES_PER_BUCKET)
            .max(1)
            .ilog2()
            .clamp(1, 24);
        let buckets = 1usize << bits;
        let mut starts = Vec::with_capacity(buckets + 1);
        let mut i = 0;
        for b in 0..=buckets {
            while i < tokens.len() && Self::bucket_of(bits, tokens[i]) < b {
                i += 1;
            }
            starts.push(u32::try_from(i).unwrap_or(u32::MAX));
        }
        TokenBuckets { bits, starts }
    }

    fn bucket_of(bits: u32, token: i64) -> usize {
        (((token as u64) ^ (1 << 63)) >> (64 - bits)) as usize
    }

    /// The index range holding every entry of `token` (empty for an empty index).
    fn range(&self, token: i64) -> std::ops::Range<usize> {
        if self.starts.is_empty() {
            return 0..0;
        }
        let b = Self::bucket_of(self.bits, token);
        self.starts[b] as usize..self.starts[b + 1] as usize
    }
}

pub struct SSTable {
    pub gen: u64,
    pub path: PathBuf,
    pub size: u64,
    /// Read with positional reads: file pages stay in the OS page cache, not in our RSS.
    file: File,
    /// Unique instance id (block cache key).
    id: u64,
    cache: Option<Arc<BlockCache>>,
    blocks: Vec<u64>,
    /// Offset of the first meta block (end of the last data block).
    data_end: u64,
    pub index: PartitionIndex,
    token_buckets: TokenBuckets,
    bloom: BloomFilter,
    pub stats: SSTableStats,
    obsolete: AtomicBool,
}

impl std::fmt::Debug for SSTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SSTable({})", self.path.display())
    }
}

impl Drop for SSTable {
    fn drop(&mut self) {
        if let Some(c) = &self.cache {
            c.evict_sstable(self.id);
        }
        if self.obsolete.load(Ordering::Acquire) {
            if let Err(e) = fs::remove_file(&self.path).or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            }) {
                tracing::warn!(path = %self.path.display(), error = %e, "could not delete obsolete sstable");
            }
        }
    }
}

enum Record {
    Start(
        PartitionKey,
        Option<DeletionTime>,
        Vec<RangeTombstone>,
        Option<RowData>,
    ),
    Row(Bytes, RowData),
    End,
}

struct Cursor {
    block: usize,
    data: Block,
    pos: usize,
    /// Read through the block cache (point reads) or around it (scans).
    cached: bool,
}

impl Cursor {
    fn new(sst: &SSTable, block: usize, offset: usize, cached: bool) -> Result<Cursor> {
        let data = if block < sst.blocks.len() {
            sst.data_block(block, cached)?
        } else {
            Block::default()
        };
        Ok(Cursor {
            block,
            data,
            pos: offset,
            cached,
        })
    }

    fn at_block_end(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Moves on to the next block when this one is read to its end; false at the end of the
    /// data.
    fn fill(&mut self, sst: &SSTable) -> Result<bool> {
        while self.pos >= self.data.len() {
            if self.block + 1 >= sst.blocks.len() {
                return Ok(false);
            }
            self.block += 1;
            self.data = sst.data_block(self.block, self.cached)?;
            self.pos = 0;
        }
        Ok(true)
    }

    fn next(&mut self, sst: &SSTable) -> Result<Option<Record>> {
        if !self.fill(sst)? {
            return Ok(None);
        }
        let mut d = Dec {
            data: &self.data,
            pos: self.pos,
        };
        let rec = match d.u8()? {
            REC_START => {
                Record::Start(d.key()?, d.deletion()?, d.range_tombstones()?, d.opt_row()?)
            }
            REC_ROW => Record::Row(d.bytes()?, d.row()?),
            REC_END => Record::End,
            t => {
                return Err(StorageError::Corrupt(format!(
                    "{}: bad record tag {t}",
                    sst.path.display()
                )))
            }
        };
        self.pos = d.pos;
        Ok(Some(rec))
    }

    /// Moves past the rows of the current partition whose clustering is before `start`
    /// without decoding them (a slice within a partition that has no row index, or within
    /// one block of it); stops at the first other record.
    fn skip_rows_before(&mut self, sst: &SSTable, start: &Bound<Bytes>) -> Result<()> {
        if matches!(start, Bound::Unbounded) {
            return Ok(());
        }
        // The rest of the partition may be in the next blocks.
        while self.fill(sst)? {
            let mut d = Dec {
                data: &self.data,
                pos: self.pos,
            };
            if d.u8()? != REC_ROW {
                return Ok(());
            }
            let n = d.var()? as usize;
            if !crate::partition::before_start(start, d.raw(n)?) {
                return Ok(());
            }
            d.skip_row()?;
            self.pos = d.pos;
        }
        Ok(())
    }
}

impl SSTable {
    pub fn open(path: &Path, gen: u64, cache: Option<Arc<BlockCache>>) -> Result<SSTable> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        let corrupt = |m: &str| StorageError::Corrupt(format!("{}: {m}", path.display()));
        if len < (12 + FOOTER) as u64 {
            return Err(corrupt("bad header"));
        }
        let mut head = [0u8; 8];
        file.read_exact_at(&mut head, 0)?;
        if &head != MAGIC {
            return Err(corrupt("bad header"));
        }
        let mut footer = [0u8; FOOTER];
        file.read_exact_at(&mut footer, len - FOOTER as u64)?;
        let f = &footer[..];
        if &f[FOOTER - 8..] != MAGIC {
            return Err(corrupt("bad footer magic"));
        }
        let crc = u32::from_le_bytes(f[36..40].try_into().unwrap());
        if crc32c::crc32c(&f[..36]) != crc {
            return Err(corrupt("footer checksum mismatch"));
        }
        let version = u32::from_le_bytes(f[32..36].try_into().unwrap());
        if version != VERSION {
            return Err(corrupt(&format!("unsupported version {version}")));
        }
        let offs: Vec<u64> = (0..4)
            .map(|i| u64::from_le_bytes(f[i * 8..i * 8 + 8].try_into().unwrap()))
            .collect();
        let off = |i: usize| offs[i];
        let mut sst = SSTable::new(file, path, gen, cache, len, off(0));
        let raw = sst.read_block(None, off(0))?;
        let mut d = Dec::new(&raw);
        let n = d.var()? as usize;
        let mut prev = 0u64;
        let mut blocks = Vec::with_capacity(n);
        for _ in 0..n {
            prev += d.var()?;
            blocks.push(prev);
        }
        let raw = sst.read_block(None, off(1))?;
        let mut d = Dec::new(&raw);
        let n = d.var()? as usize;
        // Capacity from the block's size, not its claimed count: a corrupt count must not
        // reserve memory the data cannot fill.
        let mut index = PartitionIndex::with_capacity(n.min(raw.len() / 4), raw.len());
        for _ in 0..n {
            let key = d.key()?;
            let block = d.var()? as u32;
            let offset = d.var()? as u32;
            let m = d.var()? as usize;
            let mut row_index = Vec::with_capacity(m.min(raw.len() / 4));
            for _ in 0..m {
                row_index.push((d.bytes()?, d.var()? as u32, d.var()? as u32));
            }
            index.push(&key, block, offset, row_index);
        }
        let raw = sst.read_block(None, off(2))?;
        let mut d = Dec::new(&raw);
        let hashes = d.u32()?;
        let n = d.var()? as usize;
        let mut words = Vec::with_capacity(n);
        for _ in 0..n {
            words.push(d.u64()?);
        }
        if words.is_empty() {
            return Err(corrupt("empty bloom filter"));
        }
        let bloom = BloomFilter::from_vec(words)
            .seed(&BLOOM_SEED)
            .hashes(hashes);
        let raw = sst.read_block(None, off(3))?;
        let stats = decode_stats(&mut Dec::new(&raw))?;
        sst.install(blocks, index, bloom, stats);
        Ok(sst)
    }

    /// An SSTable of `size` bytes whose data blocks end at `data_end`, with nothing loaded yet
    /// (see `install`).
    fn new(
        file: File,
        path: &Path,
        gen: u64,
        cache: Option<Arc<BlockCache>>,
        size: u64,
        data_end: u64,
    ) -> SSTable {
        SSTable {
            gen,
            path: path.to_path_buf(),
            size,
            file,
            id: next_sstable_id(),
            cache,
            blocks: Vec::new(),
            data_end,
            index: PartitionIndex::default(),
            token_buckets: TokenBuckets::default(),
            bloom: BloomFilter::with_num_bits(64).hashes(1),
            stats: SSTableStats {
                data: DataStats::default(),
                min_token: 0,
                max_token: 0,
                partitions: 0,
                cl_pos: ClPos::default(),
                level: 0,
            },
            obsolete: AtomicBool::new(false),
        }
    }

    fn install(
        &mut self,
        blocks: Vec<u64>,
        mut index: PartitionIndex,
        bloom: BloomFilter,
        stats: SSTableStats,
    ) {
        index.shrink_to_fit();
        self.blocks = blocks;
        self.token_buckets = TokenBuckets::new(index.tokens());
        self.index = index;
        self.bloom = bloom;
        self.stats = stats;
    }

    /// Data block `i`, from the block cache if `cached` and present (then also cached).
    fn data_block(&self, i: usize, cached: bool) -> Result<Block> {
        let off = self.blocks[i];
        let cache = if cached { self.cache.as_ref() } else { None };
        if let Some(c) = cache {
            if let Some(b) = c.get(self.id, off) {
                return Ok(b);
            }
        }
        let end = self.blocks.get(i + 1).copied().unwrap_or(self.data_end);
        let b = Arc::new(self.read_block(end.checked_sub(off), off)?);
        if let Some(c) = cache {
            c.insert(self.id, off, b.clone());
        }
        Ok(b)
    }

    /// Reads, checks and decompresses the block at `off`; `len` is its total length (header
    /// included) when known, saving a read.
    fn read_block(&self, len: Option<u64>, off: u64) -> Result<Vec<u8>> {
        let corrupt =
            |m: &str| StorageError::Corrupt(format!("{} block at {off}: {m}", self.path.display()));
        let size = self.size;
        if off + BLOCK_HEADER as u64 > size {
            return Err(corrupt("out of bounds"));
        }
        let mut buf;
        match len {
            Some(l) if l >= BLOCK_HEADER as u64 && off + l <= size => {
                buf = vec![0u8; l as usize];
                self.file.read_exact_at(&mut buf, off)?;
            }
            _ => {
                buf = vec![0u8; BLOCK_HEADER];
                self.file.read_exact_at(&mut buf, off)?;
            }
        }
        let h = &buf[..BLOCK_HEADER];
        let stored_len = u32::from_le_bytes(h[0..4].try_into().unwrap()) as usize;
        let raw_len = u32::from_le_bytes(h[4..8].try_into().unwrap()) as usize;
        let codec = h[8];
        let crc = u32::from_le_bytes(h[9..13].try_into().unwrap());
        if off + (BLOCK_HEADER + stored_len) as u64 > size {
            return Err(corrupt("out of bounds"));
        }
        if buf.len() < BLOCK_HEADER + stored_len {
            let have = buf.len();
            buf.resize(BLOCK_HEADER + stored_len, 0);
            self.file
                .read_exact_at(&mut buf[have..], off + have as u64)?;
        }
        let stored = &buf[BLOCK_HEADER..BLOCK_HEADER + stored_len];
        if crc32c::crc32c(stored) != crc {
            return Err(corrupt("checksum mismatch"));
        }
        match codec {
            0 => {
                buf.truncate(BLOCK_HEADER + stored_len);
                buf.drain(..BLOCK_HEADER);
                Ok(buf)
            }
            1 => lz4_flex::block::decompress(stored, raw_len).map_err(|e| corrupt(&e.to_string())),
            c => Err(corrupt(&format!("unknown codec {c}"))),
        }
    }

    pub fn mark_obsolete(&self) {
        self.obsolete.store(true, Ordering::Release);
    }

    /// Token range and bloom filter check.
    pub fn may_contain(&self, key: &PartitionKey) -> bool {
        key.token >= self.stats.min_token
            && key.token <= self.stats.max_token
            && self.bloom.contains(key.key.as_ref())
    }

    /// Position of `key` in the index.
    fn find(&self, key: &PartitionKey) -> Option<usize> {
        let tokens = self.index.tokens();
        let r = self.token_buckets.range(key.token);
        let first = r.start + tokens[r].partition_point(|t| *t < key.token);
        (first..)
            .map_while(|i| self.index.key(i).filter(|e| e.token == key.token))
            .position(|e| e.key == key.key.as_ref())
            .map(|p| first + p)
    }

    /// Index of the first partition not below `lower`.
    pub fn lower_bound(&self, lower: Bound<&PartitionKey>) -> usize {
        match lower {
            Bound::Unbounded => 0,
            Bound::Included(k) => self.index.partition_point(|e| e.cmp_key(k).is_lt()),
            Bound::Excluded(k) => self.index.partition_point(|e| e.cmp_key(k).is_le()),
        }
    }

    /// The partition's data restricted to the clustering `ranges` (at most `max_rows` rows in
    /// clustering order), if present; plus the last clustering taken when the budget cut the
    /// read short.
    ///
    /// With `reversed`, the budget applies from the end of the last range backwards and the
    /// returned clustering is the lowest one taken.
    pub fn read(
        &self,
        key: &PartitionKey,
        ranges: &[(Bound<Bytes>, Bound<Bytes>)],
        max_rows: usize,
        reversed: bool,
    ) -> Result<Option<(PartitionData, Option<Bytes>)>> {
        if !self.may_contain(key) {
            return Ok(None);
        }
        let Some(i) = self.find(key) else {
            return Ok(None);
        };
        let ie = self.index.get(i).expect("found above");
        let mut cur = Cursor::new(self, ie.block as usize, ie.offset as usize, true)?;
        let mut p = PartitionData::default();
        match cur.next(self)? {
            Some(Record::Start(k, del, rts, st)) if &k == key => {
                p.deletion = del;
                p.range_tombstones = rts;
                p.static_row = st.map(Box::new);
            }
            _ => {
                return Err(StorageError::Corrupt(format!(
                    "{}: index points to wrong partition",
                    self.path.display()
                )))
            }
        }
        let full = is_full_range(ranges);
        let all = [(Bound::Unbounded, Bound::Unbounded)];
        let ranges = if full { &all[..] } else { ranges };
        if reversed && max_rows != usize::MAX {
            return self.read_reversed(ie, p, ranges, max_rows).map(Some);
        }
        let mut taken = 0usize;
        let mut at_first_row = Some(cur);
        for (s, e) in ranges {
            if crate::partition::is_empty_range(s, e) {
                continue;
            }
            // Start at the row index entry (if any) of the block holding the range start;
            // without a row index, at the partition's first row.
            let mut cur = match (ie.row_index.is_empty(), s) {
                (false, Bound::Included(b) | Bound::Excluded(b)) => {
                    let entry = ie
                        .row_index
                        .partition_point(|(c, _, _)| c <= b)
                        .saturating_sub(1);
                    let (_, blk, off) = &ie.row_index[entry];
                    Cursor::new(self, *blk as usize, *off as usize, true)?
                }
                // The cursor that read the partition start is right at the first row.
                _ => match at_first_row.take() {
                    Some(c) => c,
                    None => {
                        let mut c = Cursor::new(self, ie.block as usize, ie.offset as usize, true)?;
                        c.next(self)?; // the partition start record
                        c
                    }
                },
            };
            cur.skip_rows_before(self, s)?;
            loop {
                match cur.next(self)? {
                    Some(Record::Row(c, r)) => {
                        if past_end(e, &c) {
                            break;
                        }
                        if crate::partition::bound_contains(s, e, &c) {
                            if taken >= max_rows {
                                let last = p.rows.keys().next_back().cloned();
                                return Ok(Some((p, last)));
                            }
                            p.rows.insert(c, r);
                            taken += 1;
                        }
                    }
                    Some(Record::End) | None => break,
                    Some(Record::Start(..)) => {
                        return Err(StorageError::Corrupt("missing partition end".into()))
                    }
                }
            }
        }
        Ok(Some((p, None)))
    }

    /// Rows of `ranges` from the end backwards, block by block via the row index.
    fn read_reversed(
        &self,
        ie: IndexedPartition<'_>,
        mut p: PartitionData,
        ranges: &[(Bound<Bytes>, Bound<Bytes>)],
        max_rows: usize,
    ) -> Result<(PartitionData, Option<Bytes>)> {
        use crate::partition::{bound_contains, is_empty_range};
        let mut taken = 0usize;
        for (s, e) in ranges.iter().rev() {
            if is_empty_range(s, e) {
                continue;
            }
            // Groups of rows, each read forward, visited last group first.
            let groups: Vec<(usize, usize)> = if ie.row_index.is_empty() {
                vec![(ie.block as usize, usize::MAX)]
            } else {
                let entry_of = |b: &Bound<Bytes>, default: usize| match b {
                    Bound::Unbounded => default,
                    Bound::Included(x) | Bound::Excluded(x) => ie
                        .row_index
                        .partition_point(|(c, _, _)| c <= x)
                        .saturating_sub(1),
                };
                let first = entry_of(s, 0);
                let last = entry_of(e, ie.row_index.len() - 1);
                (first..=last.max(first)).map(|i| (i, 0)).collect()
            };
            for &(g, _) in groups.iter().rev() {
                let (mut cur, whole) = if ie.row_index.is_empty() {
                    let mut c = Cursor::new(self, ie.block as usize, ie.offset as usize, true)?;
                    c.next(self)?;
                    (c, true)
                } else {
                    let (_, blk, off) = &ie.row_index[g];
                    (
                        Cursor::new(self, *blk as usize, *off as usize, true)?,
                        false,
                    )
                };
                let mut rows = Vec::new();
                loop {
                    if !whole && cur.at_block_end() {
                        break;
                    }
                    match cur.next(self)? {
                        Some(Record::Row(c, r)) => {
                            if past_end(e, &c) {
                                break;
                            }
                            if bound_contains(s, e, &c) {
                                rows.push((c, r));
                            }
                        }
                        Some(Record::End) | None => break,
                        Some(Record::Start(..)) => {
                            return Err(StorageError::Corrupt("missing partition end".into()))
                        }
                    }
                }
                for (c, r) in rows.into_iter().rev() {
                    if taken >= max_rows {
                        let lowest = p.rows.keys().next().cloned();
                        return Ok((p, lowest));
                    }
                    p.rows.insert(c, r);
                    taken += 1;
                }
            }
        }
        Ok((p, None))
    }

    /// Sequential scan of all partitions (compaction).
    pub fn scanner(&self) -> Result<Scanner<'_>> {
        Ok(Scanner {
            sst: self,
            cur: Cursor::new(self, 0, 0, false)?,
        })
    }
}

pub struct Scanner<'a> {
    sst: &'a SSTable,
    cur: Cursor,
}

impl Scanner<'_> {
    /// The next partition's key and header (deletion, range tombstones, static row); its rows
    /// follow through `next_row`, which must be drained before the next header.
    pub fn next_header(&mut self) -> Result<Option<(PartitionKey, PartitionData)>> {
        match self.cur.next(self.sst)? {
            None => Ok(None),
            Some(Record::Start(k, del, rts, st)) => Ok(Some((
                k,
                PartitionData {
                    deletion: del,
                    range_tombstones: rts,
                    static_row: st.map(Box::new),
                    rows: Default::default(),
                },
            ))),
            Some(_) => Err(StorageError::Corrupt(format!(
                "{}: expected partition start",
                self.sst.path.display()
            ))),
        }
    }

    /// The next row of the current partition; None at its end.
    pub fn next_row(&mut self) -> Result<Option<(Bytes, RowData)>> {
        match self.cur.next(self.sst)? {
            Some(Record::Row(c, r)) => Ok(Some((c, r))),
            Some(Record::End) => Ok(None),
            _ => Err(StorageError::Corrupt(format!(
                "{}: truncated partition",
                self.sst.path.display()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bucket range always holds every entry of the token (first one included), for
    /// uniform, clustered, duplicated and extreme tokens.
    #[test]
    fn token_buckets_cover_every_entry_of_a_token() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as i64
        };
        let uniform: Vec<i64> = (0..5000).map(|_| next()).collect();
        let clustered: Vec<i64> = (0..3000).map(|i| 1_000_000 + (i / 3)).collect();
        let mut mixed = vec![i64::MIN, i64::MIN, -1, 0, 0, 0, 1, i64::MAX, i64::MAX];
        mixed.extend((0..100).map(|_| next() >> 40));
        for mut tokens in [uniform, clustered, mixed, vec![7], vec![]] {
            tokens.sort_unstable();
            let b = TokenBuckets::new(&tokens);
            let mut probes = tokens.clone();
            probes.extend((0..2000).map(|_| next()));
            probes.extend([i64::MIN, i64::MAX, 0, -1]);
            for t in probes {
                let r = b.range(t);
                let first = r.start + tokens[r.clone()].partition_point(|x| *x < t);
                assert_eq!(first, tokens.partition_point(|x| *x < t), "token {t}");
                let count = tokens.iter().filter(|x| **x == t).count();
                assert!(first + count <= r.end.max(first), "token {t}: range {r:?}");
            }
        }
    }

    fn partition(v: u8) -> PartitionData {
        let r = crate::partition::one_column_row(Bytes::from(vec![v]));
        let mut p = PartitionData::default();
        p.rows.insert(Bytes::new(), r);
        p
    }

    /// The SSTable a writer hands back (built from what it wrote) equals the one opened from
    /// its file: sizes, blocks, stats, every index entry (row indexes of wide partitions too)
    /// and the bloom filter.
    #[test]
    fn finished_table_matches_the_file_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SSTableWriter::create(dir.path(), 7, Compression::default(), 0.01)
            .unwrap()
            .expect_partitions(3, 48);
        let mut keys = vec![];
        for i in 0..400i64 {
            keys.push(PartitionKey {
                token: i * 3 - 500,
                key: Bytes::from(format!("key-{i}")),
            });
        }
        for (n, k) in keys.iter().enumerate() {
            let mut p = partition(n as u8);
            if n % 100 == 7 {
                // Wide enough to span several 16 KiB blocks: gets a row index.
                for c in 0..300u32 {
                    let v = Bytes::from(vec![c as u8; 200]);
                    p.rows.insert(
                        Bytes::from(c.to_be_bytes().to_vec()),
                        crate::partition::one_column_row(v),
                    );
                }
            }
            w.add(k, &p).unwrap();
        }
        let pos = ClPos {
            segment: 3,
            offset: 99,
        };
        let built = w.finish(pos, 2).unwrap().unwrap();
        let opened = SSTable::open(&built.path, 7, None).unwrap();
        assert_eq!(built.size, std::fs::metadata(&built.path).unwrap().len());
        assert_eq!(built.size, opened.size);
        assert_eq!(built.data_end, opened.data_end);
        assert_eq!(built.blocks, opened.blocks);
        assert_eq!(built.token_buckets, opened.token_buckets);
        assert_eq!(format!("{:?}", built.stats), format!("{:?}", opened.stats));
        assert_eq!(built.index.len(), keys.len());
        assert_eq!(built.index.len(), opened.index.len());
        let mut wide = 0;
        for i in 0..keys.len() {
            let (a, b) = (built.index.key(i).unwrap(), opened.index.key(i).unwrap());
            assert_eq!((a.token, a.key), (b.token, b.key));
            let (a, b) = (built.index.get(i).unwrap(), opened.index.get(i).unwrap());
            assert_eq!(
                (a.block, a.offset, a.row_index),
                (b.block, b.offset, b.row_index)
            );
            wide += usize::from(!a.row_index.is_empty());
        }
        assert_eq!(wide, 4, "the four wide partitions have row indexes");
        assert_eq!(built.bloom.as_slice(), opened.bloom.as_slice());
        assert_eq!(built.bloom.num_hashes(), opened.bloom.num_hashes());
        let all = [(Bound::Unbounded, Bound::Unbounded)];
        for k in &keys {
            assert!(built.may_contain(k));
            let a = built.read(k, &all, usize::MAX, false).unwrap();
            assert_eq!(a, opened.read(k, &all, usize::MAX, false).unwrap());
        }
    }

    /// Slices that start inside a partition (rows before the start skipped undecoded, within a
    /// block and across blocks) return exactly the rows a full read filtered by the same
    /// bounds returns.
    #[test]
    fn slices_skip_to_their_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SSTableWriter::create(dir.path(), 1, Compression::default(), 0.01).unwrap();
        let c = |i: u32| Bytes::from(i.to_be_bytes().to_vec());
        let keys: Vec<PartitionKey> = (0..3i64)
            .map(|i| PartitionKey {
                token: i,
                key: Bytes::from(format!("p{i}")),
            })
            .collect();
        // A small partition (one block, no row index), a wide one (several blocks), another.
        let sizes = [(100u32, 20usize), (400, 300), (50, 20)];
        for (k, (rows, value)) in keys.iter().zip(sizes) {
            let mut p = PartitionData::default();
            for i in 0..rows {
                let r = crate::partition::one_column_row(Bytes::from(vec![i as u8; value]));
                p.rows.insert(c(i * 2), r);
            }
            w.add(k, &p).unwrap();
        }
        let sst = w.finish(ClPos::default(), 0).unwrap().unwrap();
        let all = [(Bound::Unbounded, Bound::Unbounded)];
        for (k, (rows, _)) in keys.iter().zip(sizes) {
            let (full, _) = sst.read(k, &all, usize::MAX, false).unwrap().unwrap();
            for start in [0, 1, 2, 37, 38, rows, 2 * rows - 2, 2 * rows + 5] {
                for (s, e) in [
                    (Bound::Included(c(start)), Bound::Excluded(c(start + 20))),
                    (Bound::Excluded(c(start)), Bound::Included(c(start + 20))),
                    (Bound::Included(c(start)), Bound::Unbounded),
                ] {
                    let want: Vec<Bytes> = full
                        .rows
                        .keys()
                        .filter(|r| crate::partition::bound_contains(&s, &e, r))
                        .cloned()
                        .collect();
                    let (got, _) = sst
                        .read(k, &[(s.clone(), e.clone())], usize::MAX, false)
                        .unwrap()
                        .unwrap();
                    let got: Vec<Bytes> = got.rows.keys().cloned().collect();
                    assert_eq!(got, want, "{k:?} {s:?}..{e:?}");
                }
            }
            // Two ranges in one read: the second starts its own skip from the partition start.
            let ranges = [
                (Bound::Included(c(10)), Bound::Included(c(14))),
                (Bound::Included(c(60)), Bound::Excluded(c(66))),
            ];
            let (got, _) = sst.read(k, &ranges, usize::MAX, false).unwrap().unwrap();
            let got: Vec<Bytes> = got.rows.keys().cloned().collect();
            let want = [10, 12, 14, 60, 62, 64].map(c).to_vec();
            assert_eq!(got, want, "{k:?}");
        }
    }

    /// Point lookups through the token samples find every key, including runs of keys that
    /// share a token across sample boundaries, and nothing that is absent.
    #[test]
    fn lookups_find_every_key_and_only_those() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SSTableWriter::create(dir.path(), 1, Compression::default(), 0.01).unwrap();
        let mut keys = vec![];
        for i in 0..1000i64 {
            // Tokens 0, 2, 4, ... with runs of five keys sharing a token every 97th step.
            let same = if i % 97 == 0 { 5 } else { 1 };
            for j in 0..same {
                keys.push(PartitionKey {
                    token: i * 2,
                    key: Bytes::from(format!("k{i}-{j}")),
                });
            }
        }
        keys.sort();
        for (n, k) in keys.iter().enumerate() {
            w.add(k, &partition(n as u8)).unwrap();
        }
        let sst = w.finish(ClPos::default(), 0).unwrap().unwrap();
        let all = [(Bound::Unbounded, Bound::Unbounded)];
        for (n, k) in keys.iter().enumerate() {
            assert_eq!(sst.find(k), Some(n), "{k:?}");
            let (p, _) = sst.read(k, &all, usize::MAX, false).unwrap().unwrap();
            assert_eq!(p, partition(n as u8));
        }
        for absent in [
            PartitionKey {
                token: 1,
                key: Bytes::from_static(b"k0-0"),
            },
            PartitionKey {
                token: 0,
                key: Bytes::from_static(b"k0-9"),
            },
            PartitionKey {
                token: 5000,
                key: Bytes::from_static(b"x"),
            },
            PartitionKey {
                token: -1,
                key: Bytes::from_static(b"x"),
            },
        ] {
            assert_eq!(sst.find(&absent), None, "{absent:?}");
        }
        // Loaded, the index costs its keys plus a few words per partition.
        let key_bytes: usize = keys.iter().map(|k| k.key.len()).sum();
        let per_partition = (sst.index.heap_bytes() - key_bytes) / keys.len();
        assert!(per_partition <= 24, "{per_partition} bytes per partition");
        for absent in [Bound::Included(&keys[3]), Bound::Excluded(&keys[3])] {
            let i = sst.lower_bound(absent);
            let want = if matches!(absent, Bound::Included(_)) {
                3
            } else {
                4
            };
            assert_eq!(i, want);
        }
    }

    /// A run of incompressible blocks stops compression attempts for a while, and blocks
    /// that compress again are compressed: everything reads back, and the file is small.
    #[test]
    fn incompressible_runs_then_compressible_data() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SSTableWriter::create(dir.path(), 1, Compression::default(), 0.01).unwrap();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut noise = |n: usize| {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect::<Vec<u8>>()
        };
        let value = |i: i64, noise: &mut dyn FnMut(usize) -> Vec<u8>| {
            if i < 300 {
                noise(2048)
            } else {
                vec![b'a'; 2048]
            }
        };
        let mut written = vec![];
        for i in 0..3000i64 {
            let key = PartitionKey {
                token: i,
                key: Bytes::from(i.to_be_bytes().to_vec()),
            };
            let mut p = PartitionData::default();
            p.rows.insert(
                Bytes::new(),
                crate::partition::one_column_row(Bytes::from(value(i, &mut noise))),
            );
            w.add(&key, &p).unwrap();
            written.push((key, p));
        }
        let sst = w.finish(ClPos::default(), 0).unwrap().unwrap();
        let all = [(Bound::Unbounded, Bound::Unbounded)];
        for (k, p) in &written {
            let (got, _) = sst.read(k, &all, usize::MAX, false).unwrap().unwrap();
            assert_eq!(&got, p);
        }
        // 300 x 2 KiB of noise stay as they are; 2,700 x 2 KiB of one letter shrink.
        let size = std::fs::metadata(&sst.path).unwrap().len();
        assert!(size > 300 * 2048, "{size}");
        assert!(size < 300 * 2048 + 400 * 1024, "{size}");
    }
}
