//! The engine: tables, write path (commit log + memtable), read path (memtables + SSTables),
//! background flushing, compaction and commit log syncing.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::Write;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex, RwLock};

use crate::cache::BlockCache;
use crate::codec::{Dec, Enc};
use crate::commitlog::{self, ClPos, CommitLog};
use crate::compaction::{self, RateLimiter, Task};
use crate::error::{Result, StorageError};
use crate::memtable::Memtable;
use crate::model::{Mutation, PartitionKey, PartitionView, Slice, TableId};
use crate::observer::{SSTableRows, TableObserver};
use crate::options::{CommitlogSync, CompactionStrategy, EngineOptions, TableParams};
use crate::partition::{PartitionData, Purger, RowData};
use crate::sstable::{data_file_name, parse_data_file_name, SSTable, SSTableWriter};
use crate::yielding::Yielder;

/// Flush the tables pinning the oldest commit log segment beyond this many segments.
const MAX_COMMITLOG_SEGMENTS: usize = 16;

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Writes `data` to `path` atomically (temp file, fsync, rename, fsync dir).
fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_dir(path.parent().unwrap())
}

#[derive(Default)]
struct Signal {
    flag: Mutex<bool>,
    cv: Condvar,
}

impl Signal {
    fn notify(&self) {
        *self.flag.lock() = true;
        self.cv.notify_all();
    }
    fn wait(&self, timeout: Duration) {
        let mut f = self.flag.lock();
        if !*f {
            self.cv.wait_for(&mut f, timeout);
        }
        *f = false;
    }
}

struct Table {
    id: TableId,
    dir: PathBuf,
    params: RwLock<TableParams>,
    memtable: RwLock<Arc<Memtable>>,
    flushing: Mutex<Vec<Arc<Memtable>>>,
    sstables: RwLock<Arc<Vec<Arc<SSTable>>>>,
    next_gen: AtomicU64,
    flush_lock: Mutex<()>,
    compaction_lock: Mutex<()>,
    /// Commit log entries ending at or before this are already in SSTables (or truncated).
    replay_floor: ClPos,
    dropped: AtomicBool,
    /// The engine's block cache, shared by all tables.
    cache: Option<Arc<BlockCache>>,
    /// Storage-attached indexes following this table's sources.
    observer: RwLock<Option<Arc<dyn TableObserver>>>,
}

/// The sources a read merges, captured consistently.
struct View {
    memtables: Vec<Arc<Memtable>>,
    sstables: Arc<Vec<Arc<SSTable>>>,
}

impl View {
    /// Merged data of all sources, each cut at `max_rows` rows; plus the lowest clustering at
    /// which some source was cut (rows beyond it may be incomplete).
    fn read_budget(
        &self,
        key: &PartitionKey,
        slice: &Slice,
        max_rows: usize,
    ) -> Result<(Option<PartitionData>, Option<Bytes>)> {
        let mut out: Option<PartitionData> = None;
        let mut cut: Option<Bytes> = None;
        let mut add = |(p, c): (PartitionData, Option<Bytes>)| {
            if let Some(c) = c {
                // The binding cut: rows beyond it (in slice order) may be incomplete.
                cut = Some(match cut.take() {
                    Some(x) if (x < c) != slice.reversed => x,
                    _ => c,
                });
            }
            match &mut out {
                Some(o) => o.merge(p),
                None => out = Some(p),
            }
        };
        for s in self.sstables.iter() {
            if let Some(r) = s.read(key, &slice.ranges, max_rows, slice.reversed)? {
                add(r);
            }
        }
        for m in &self.memtables {
            if let Some(r) = m.get_sliced(key, &slice.ranges, max_rows, slice.reversed) {
                add(r);
            }
        }
        Ok((out, cut))
    }

    /// The merged but unresolved data of `key` for `slice` (see `PartitionData::raw_slice`),
    /// reading growing budgets like `read` until the rows up to the `limit`-th live one are
    /// known to be complete.
    fn read_raw(
        &self,
        key: &PartitionKey,
        slice: &Slice,
        now: i64,
    ) -> Result<Option<PartitionData>> {
        let limit = slice.limit.unwrap_or(usize::MAX);
        let mut budget = match slice.limit {
            None => usize::MAX,
            Some(l) => l.saturating_add(l / 2).max(l + 1),
        };
        loop {
            let (p, cut) = self.read_budget(key, slice, budget)?;
            let Some(p) = p else { return Ok(None) };
            let (raw, last) = p.raw_slice(slice, now);
            let done = match (&cut, &last) {
                (None, _) => true,
                _ if limit == 0 => true,
                (Some(cut), Some(last)) => {
                    if slice.reversed {
                        last >= cut
                    } else {
                        last <= cut
                    }
                }
                (Some(_), None) => false,
            };
            if done {
                return Ok(Some(raw).filter(|r| !r.is_empty()));
            }
            budget = budget.saturating_mul(4);
        }
    }

    /// The live view of `key` for `slice`. Slices with a limit read a bounded number of rows
    /// (from the slice's start, or its end when reversed) from each source, growing the budget until the first `limit` live rows are
    /// known to be complete.
    fn read(&self, key: &PartitionKey, slice: &Slice, now: i64) -> Result<Option<PartitionView>> {
        let limit = match slice.limit {
            Some(l) => l,
            None => {
                let (p, _) = self.read_budget(key, slice, usize::MAX)?;
                return Ok(p.and_then(|p| p.resolve(key, slice, now)));
            }
        };
        let mut budget = limit.saturating_add(limit / 2).max(limit + 1);
        loop {
            let (p, cut) = self.read_budget(key, slice, budget)?;
            let Some(p) = p else { return Ok(None) };
            let view = p.resolve(key, slice, now);
            let Some(cut) = cut else { return Ok(view) };
            if let Some(v) = &view {
                let complete = |c: &Bytes| if slice.reversed { *c >= cut } else { *c <= cut };
                if limit == 0 || (v.rows.len() >= limit && complete(&v.rows[limit - 1].clustering))
                {
                    return Ok(view);
                }
            }
            budget = budget.saturating_mul(4);
        }
    }
}

impl Table {
    fn open(
        root: &Path,
        id: TableId,
        params: TableParams,
        cache: Option<Arc<BlockCache>>,
    ) -> Result<Table> {
        let tables_dir = root.join("tables");
        fs::create_dir_all(&tables_dir)?;
        let suffix = format!("-{}", id.simple());
        let mut dir = None;
        for e in fs::read_dir(&tables_dir)? {
            let e = e?;
            if e.file_name().to_string_lossy().ends_with(&suffix) && e.file_type()?.is_dir() {
                dir = Some(e.path());
            }
        }
        let safe_name: String = params
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let dir = match dir {
            Some(d) => d,
            None => {
                let d = tables_dir.join(format!("{safe_name}{suffix}"));
                fs::create_dir_all(&d)?;
                // The new directory entry must survive a crash along with the SSTables in it.
                sync_dir(&tables_dir)?;
                d
            }
        };
        // Finish interrupted compactions: their outputs are complete, inputs must go.
        let mut names = Vec::new();
        for e in fs::read_dir(&dir)? {
            names.push(e?.file_name().to_string_lossy().into_owned());
        }
        for n in &names {
            if n.starts_with("compaction-") && n.ends_with(".log") {
                let log = fs::read_to_string(dir.join(n)).unwrap_or_default();
                for input in log.lines().filter(|l| parse_data_file_name(l).is_some()) {
                    let _ = fs::remove_file(dir.join(input));
                }
                fs::remove_file(dir.join(n))?;
            }
        }
        let mut sstables = Vec::new();
        let mut max_gen = 0;
        for e in fs::read_dir(&dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                fs::remove_file(e.path())?;
                continue;
            }
            if let Some(gen) = parse_data_file_name(&name) {
                max_gen = max_gen.max(gen);
                sstables.push(Arc::new(SSTable::open(&e.path(), gen, cache.clone())?));
            }
        }
        sstables.sort_by_key(|s| s.gen);
        let mut replay_floor = sstables
            .iter()
            .map(|s| s.stats.cl_pos)
            .max()
            .unwrap_or_default();
        if let Ok(t) = fs::read_to_string(dir.join("truncated")) {
            let mut it = t.split_whitespace().map(|x| x.parse::<u64>());
            if let (Some(Ok(segment)), Some(Ok(offset))) = (it.next(), it.next()) {
                replay_floor = replay_floor.max(ClPos { segment, offset });
            }
        }
        Ok(Table {
            id,
            dir,
            params: RwLock::new(params),
            memtable: RwLock::new(Arc::new(Memtable::default())),
            flushing: Mutex::new(Vec::new()),
            sstables: RwLock::new(Arc::new(sstables)),
            next_gen: AtomicU64::new(max_gen + 1),
            flush_lock: Mutex::new(()),
            compaction_lock: Mutex::new(()),
            replay_floor,
            dropped: AtomicBool::new(false),
            cache,
            observer: RwLock::new(None),
        })
    }

    fn view(&self) -> View {
        // Order matters: a memtable moves current -> flushing -> sstable, and is added to the
        // sstables before leaving `flushing`, so this order never misses it.
        let mut memtables = vec![self.memtable.read().clone()];
        memtables.extend(self.flushing.lock().iter().cloned());
        View {
            memtables,
            sstables: self.sstables.read().clone(),
        }
    }

    fn live_memtable_size(&self) -> u64 {
        self.memtable.read().size()
    }
}

/// Tables by id, looked up on every write and read (ids are ours: no flooding to fear).
type TableMap = HashMap<TableId, Arc<Table>, foldhash::fast::FixedState>;

/// A mutation entering the engine: borrowed from the caller, or handed over. (Lives on the
/// stack for one call; boxing the owned variant would cost an allocation per write.)
#[allow(clippy::large_enum_variant)]
enum Incoming<'a> {
    Shared(&'a Mutation),
    Owned(Mutation),
}

impl Incoming<'_> {
    fn mutation(&self) -> &Mutation {
        match self {
            Incoming::Shared(m) => m,
            Incoming::Owned(m) => m,
        }
    }
}

struct Inner {
    dir: PathBuf,
    options: EngineOptions,
    commitlog: CommitLog,
    tables: RwLock<TableMap>,
    mem_used: AtomicU64,
    cache: Option<Arc<BlockCache>>,
    mem_lock: Mutex<()>,
    mem_cv: Condvar,
    flush_signal: Signal,
    compaction_signal: Signal,
    sync_signal: Signal,
    closed: AtomicBool,
}

/// Statistics of one live SSTable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SSTableInfo {
    pub path: PathBuf,
    pub size: u64,
    pub partitions: u64,
    /// Tombstones of every kind (partition, range, row, complex, cell).
    pub tombstones: u64,
    pub min_timestamp: i64,
    pub max_timestamp: i64,
    pub min_token: i64,
    pub max_token: i64,
    /// Leveled compaction level (0 for flushed and size-tiered SSTables).
    pub level: u32,
}

/// The storage engine. `Send + Sync`; share it behind an `Arc`.
pub struct Engine {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Engine {
    /// Opens (creating) the data dir, registers the given tables, replays the commit log
    /// (mutations for unknown tables are skipped), and starts background threads.
    pub fn open(
        dir: &Path,
        options: EngineOptions,
        tables: Vec<(TableId, TableParams)>,
    ) -> Result<Engine> {
        fs::create_dir_all(dir.join("tables"))?;
        fs::create_dir_all(dir.join("commitlog"))?;
        sync_dir(dir)?;
        let cache = (options.block_cache_bytes > 0)
            .then(|| Arc::new(BlockCache::new(options.block_cache_bytes)));
        let mut map = TableMap::default();
        for (id, params) in tables {
            map.insert(id, Arc::new(Table::open(dir, id, params, cache.clone())?));
        }
        let cl_dir = dir.join("commitlog");
        let min_seg = map
            .values()
            .map(|t| t.replay_floor.segment + 1)
            .max()
            .unwrap_or(1);
        let existing = commitlog::list_segments(&cl_dir)?;
        let cl = CommitLog::open(
            &cl_dir,
            options.commitlog_sync,
            options.commitlog_segment_size,
            min_seg,
        )?;
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            options,
            commitlog: cl,
            tables: RwLock::new(map),
            mem_used: AtomicU64::new(0),
            cache,
            mem_lock: Mutex::new(()),
            mem_cv: Condvar::new(),
            flush_signal: Signal::default(),
            compaction_signal: Signal::default(),
            sync_signal: Signal::default(),
            closed: AtomicBool::new(false),
        });
        inner.replay(&cl_dir, &existing)?;
        let mut threads = Vec::new();
        let i = inner.clone();
        threads.push(
            std::thread::Builder::new()
                .name("sibyl-flush".into())
                .spawn(move || {
                    run_in_background();
                    i.flush_loop()
                })?,
        );
        let i = inner.clone();
        threads.push(
            std::thread::Builder::new()
                .name("sibyl-compaction".into())
                .spawn(move || {
                    run_in_background();
                    i.compaction_loop()
                })?,
        );
        if let CommitlogSync::Periodic { period_ms } = inner.options.commitlog_sync {
            let i = inner.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("sibyl-clsync".into())
                    .spawn(move || {
                        run_in_background();
                        i.sync_loop(Duration::from_millis(period_ms.max(1)))
                    })?,
            );
        }
        Ok(Engine {
            inner,
            threads: Mutex::new(threads),
        })
    }

    pub fn create_table(&self, id: TableId, params: TableParams) -> Result<()> {
        let mut tables = self.inner.tables.write();
        if tables.contains_key(&id) {
            return Ok(());
        }
        tables.insert(
            id,
            Arc::new(Table::open(
                &self.inner.dir,
                id,
                params,
                self.inner.cache.clone(),
            )?),
        );
        Ok(())
    }

    pub fn alter_table(&self, id: TableId, params: TableParams) -> Result<()> {
        let t = self.inner.table(id)?;
        *t.params.write() = params;
        self.inner.compaction_signal.notify();
        Ok(())
    }

    /// Snapshots (if auto_snapshot) and removes the table and its data.
    pub fn drop_table(&self, id: TableId) -> Result<()> {
        let inner = &self.inner;
        let t = inner.table(id)?;
        if inner.options.auto_snapshot {
            inner.flush_table(&t, None)?;
            let name = t.params.read().name.clone();
            inner.snapshot_table(
                &t,
                &inner.snapshot_root(&format!("dropped-{}-{}", millis(), name))?,
            )?;
        }
        inner.tables.write().remove(&id);
        t.dropped.store(true, Ordering::Release);
        let _c = t.compaction_lock.lock();
        let _f = t.flush_lock.lock();
        let old = std::mem::replace(&mut *t.memtable.write(), Arc::new(Memtable::default()));
        inner.release_mem(old.size());
        inner.commitlog.mark_clean(
            id,
            ClPos {
                segment: u64::MAX,
                offset: u64::MAX,
            },
        );
        *t.sstables.write() = Arc::new(Vec::new());
        fs::remove_dir_all(&t.dir)?;
        Ok(())
    }

    /// Snapshots (if auto_snapshot) and removes all data of the table.
    pub fn truncate(&self, id: TableId) -> Result<()> {
        let inner = &self.inner;
        let t = inner.table(id)?;
        if inner.options.auto_snapshot {
            inner.flush_table(&t, None)?;
            let name = t.params.read().name.clone();
            inner.snapshot_table(
                &t,
                &inner.snapshot_root(&format!("truncated-{}-{}", millis(), name))?,
            )?;
        }
        let _c = t.compaction_lock.lock();
        let _f = t.flush_lock.lock();
        let mut memtables = vec![];
        let pos = {
            let mut w = t.memtable.write();
            let pos = inner.commitlog.current_pos();
            let old = std::mem::replace(&mut *w, Arc::new(Memtable::default()));
            inner.release_mem(old.size());
            memtables.push(old.id());
            pos
        };
        for m in t.flushing.lock().drain(..) {
            inner.release_mem(m.size());
            memtables.push(m.id());
        }
        write_atomic(
            &t.dir.join("truncated"),
            format!("{} {}\n", pos.segment, pos.offset).as_bytes(),
        )?;
        let old = std::mem::replace(&mut *t.sstables.write(), Arc::new(Vec::new()));
        for s in old.iter() {
            s.mark_obsolete();
            let _ = fs::remove_file(&s.path);
        }
        inner.commitlog.mark_clean(id, pos);
        if let Some(o) = t.observer.read().as_ref() {
            let gens: Vec<u64> = old.iter().map(|s| s.gen).collect();
            o.on_sources_removed(&gens, &memtables);
        }
        Ok(())
    }

    /// Attaches (or with None detaches) the observer that keeps the table's indexes. Data
    /// already in the current memtable is not announced: flush the table, then cover the
    /// SSTables with `visit_sstables`.
    pub fn set_observer(
        &self,
        id: TableId,
        observer: Option<Arc<dyn TableObserver>>,
    ) -> Result<()> {
        let t = self.inner.table(id)?;
        *t.observer.write() = observer;
        Ok(())
    }

    /// Visits each live SSTable of the table with compaction held off, so none of them is
    /// replaced while an index is being built over it.
    pub fn visit_sstables(
        &self,
        id: TableId,
        mut f: impl FnMut(u64, &Path, &SSTableRows<'_>),
    ) -> Result<()> {
        let t = self.inner.table(id)?;
        let _c = t.compaction_lock.lock();
        let list = t.sstables.read().clone();
        let now = now_secs();
        for s in list.iter() {
            f(s.gen, &t.dir, &SSTableRows { sst: s, now });
        }
        Ok(())
    }

    /// Generations of the table's live SSTables.
    pub fn sstable_generations(&self, id: TableId) -> Result<Vec<u64>> {
        let t = self.inner.table(id)?;
        let list = t.sstables.read().clone();
        Ok(list.iter().map(|s| s.gen).collect())
    }

    /// Applies a mutation; durable per `commitlog_sync` when it returns.
    pub fn apply(&self, m: &Mutation) -> Result<()> {
        self.inner.apply(Incoming::Shared(m))
    }

    /// Like `apply`, for a mutation the caller is done with: its values move into the
    /// memtable instead of being shared with it (no reference counts to bump and drop).
    pub fn apply_owned(&self, m: Mutation) -> Result<()> {
        self.inner.apply(Incoming::Owned(m))
    }

    /// The live view of one partition restricted to `slice`.
    pub fn read(
        &self,
        table: TableId,
        key: &PartitionKey,
        slice: &Slice,
        now_secs: i64,
    ) -> Result<Option<PartitionView>> {
        let t = self.inner.table(table)?;
        t.view().read(key, slice, now_secs)
    }

    /// The merged (memtables + SSTables) but unresolved content of one partition restricted
    /// to `slice`, for a coordinator to reconcile replicas (`resolve`, `merge`,
    /// `is_complete`) and to repair them: the partition deletion, every range tombstone that
    /// may overlap the slice (whole, not clipped), the whole static row, and the slice's rows
    /// as stored after reconciling versions (superseded cells dropped; tombstones, row and
    /// complex deletions, liveness and shadowed-but-not-yet-compacted data kept; expired
    /// cells as they are stored: as-is, or as tombstones once compaction rewrote them).
    /// Rows come in clustering order in the mutation. With `slice.limit`, rows stop at the
    /// `limit`-th live row at `now_secs` in slice order (rows without live data before it are
    /// included: they may shadow another replica's rows). None when nothing at all is there.
    pub fn read_raw(
        &self,
        table: TableId,
        key: &PartitionKey,
        slice: &Slice,
        now_secs: i64,
    ) -> Result<Option<Mutation>> {
        let t = self.inner.table(table)?;
        Ok(t.view()
            .read_raw(key, slice, now_secs)?
            .map(|p| p.to_mutation(table, key)))
    }

    /// Live partitions in (token, key) order from `from` up to token `to`, at most `max_partitions`.
    pub fn scan(
        &self,
        table: TableId,
        from: Bound<PartitionKey>,
        to: Bound<i64>,
        slice: &Slice,
        max_partitions: usize,
        now_secs: i64,
    ) -> Result<Vec<PartitionView>> {
        self.scan_with(table, from, to, max_partitions, |view, key| {
            view.read(key, slice, now_secs)
        })
    }

    /// Like `scan`, but each partition as `read_raw` returns it (whole, tombstones included):
    /// what repair compares and what streaming copies, so deletions travel with the data.
    pub fn scan_raw(
        &self,
        table: TableId,
        from: Bound<PartitionKey>,
        to: Bound<i64>,
        max_partitions: usize,
        now_secs: i64,
    ) -> Result<Vec<Mutation>> {
        let all = Slice::all();
        self.scan_with(table, from, to, max_partitions, |view, key| {
            Ok(view
                .read_raw(key, &all, now_secs)?
                .map(|p| p.to_mutation(table, key)))
        })
    }

    /// Walks the partition keys of every memtable and SSTable in (token, key) order and keeps
    /// what `read` makes of each, up to `max_partitions` results.
    fn scan_with<T>(
        &self,
        table: TableId,
        from: Bound<PartitionKey>,
        to: Bound<i64>,
        max_partitions: usize,
        mut read: impl FnMut(&View, &PartitionKey) -> Result<Option<T>>,
    ) -> Result<Vec<T>> {
        let t = self.inner.table(table)?;
        let view = t.view();
        let mut out = Vec::new();
        if max_partitions == 0 {
            return Ok(out);
        }
        let mut mem_cursor: Vec<Option<PartitionKey>> = vec![None; view.memtables.len()];
        let mut sst_cursor: Vec<usize> = vec![0; view.sstables.len()];
        let nm = view.memtables.len();
        let mut heap: BinaryHeap<Reverse<(PartitionKey, usize)>> = BinaryHeap::new();
        let from_ref = match &from {
            Bound::Unbounded => Bound::Unbounded,
            Bound::Included(k) => Bound::Included(k),
            Bound::Excluded(k) => Bound::Excluded(k),
        };
        for (i, m) in view.memtables.iter().enumerate() {
            if let Some(k) = m.next_key(from_ref) {
                mem_cursor[i] = Some(k.clone());
                heap.push(Reverse((k, i)));
            }
        }
        for (j, s) in view.sstables.iter().enumerate() {
            let idx = s.lower_bound(from_ref);
            sst_cursor[j] = idx;
            if let Some(e) = s.index.key(idx) {
                heap.push(Reverse((e.partition_key(), nm + j)));
            }
        }
        let advance = |src: usize,
                       heap: &mut BinaryHeap<Reverse<(PartitionKey, usize)>>,
                       mem_cursor: &mut Vec<Option<PartitionKey>>,
                       sst_cursor: &mut Vec<usize>| {
            if src < nm {
                let cur = mem_cursor[src].take().unwrap();
                if let Some(k) = view.memtables[src].next_key(Bound::Excluded(&cur)) {
                    mem_cursor[src] = Some(k.clone());
                    heap.push(Reverse((k, src)));
                }
            } else {
                let j = src - nm;
                sst_cursor[j] += 1;
                if let Some(e) = view.sstables[j].index.key(sst_cursor[j]) {
                    heap.push(Reverse((e.partition_key(), src)));
                }
            }
        };
        while let Some(Reverse((key, src))) = heap.pop() {
            let beyond = match to {
                Bound::Unbounded => false,
                Bound::Included(t) => key.token > t,
                Bound::Excluded(t) => key.token >= t,
            };
            if beyond {
                break;
            }
            advance(src, &mut heap, &mut mem_cursor, &mut sst_cursor);
            while heap.peek().is_some_and(|Reverse((k, _))| *k == key) {
                let Reverse((_, s)) = heap.pop().unwrap();
                advance(s, &mut heap, &mut mem_cursor, &mut sst_cursor);
            }
            if let Some(v) = read(&view, &key)? {
                out.push(v);
                if out.len() >= max_partitions {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Flushes the memtable of one table (or all) to SSTables; waits until done.
    pub fn flush(&self, table: Option<TableId>) -> Result<()> {
        let tables: Vec<Arc<Table>> = match table {
            Some(id) => vec![self.inner.table(id)?],
            None => self.inner.tables.read().values().cloned().collect(),
        };
        for t in tables {
            self.inner.flush_table(&t, None)?;
        }
        Ok(())
    }

    /// Major compaction of all the table's SSTables; waits until done.
    pub fn compact(&self, table: TableId) -> Result<()> {
        let t = self.inner.table(table)?;
        let _g = t.compaction_lock.lock();
        let inputs: Vec<Arc<SSTable>> = t.sstables.read().iter().cloned().collect();
        if inputs.is_empty() {
            return Ok(());
        }
        let task = match t.params.read().compaction {
            CompactionStrategy::SizeTiered { .. } => Task {
                inputs,
                level: 0,
                max_output_bytes: None,
            },
            CompactionStrategy::Leveled { sstable_size_in_mb } => Task {
                inputs,
                level: 1,
                max_output_bytes: Some(sstable_size_in_mb.max(1) * 1024 * 1024),
            },
        };
        self.inner.run_compaction(&t, task)
    }

    /// Statistics of the table's live SSTables (for diagnostics and tests).
    pub fn sstable_info(&self, table: TableId) -> Result<Vec<SSTableInfo>> {
        let t = self.inner.table(table)?;
        let list = t.sstables.read().clone();
        Ok(list
            .iter()
            .map(|s| SSTableInfo {
                path: s.path.clone(),
                size: s.size,
                partitions: s.stats.partitions,
                tombstones: s.stats.data.tombstones,
                min_timestamp: s.stats.data.min_timestamp,
                max_timestamp: s.stats.data.max_timestamp,
                min_token: s.stats.min_token,
                max_token: s.stats.max_token,
                level: s.stats.level,
            })
            .collect())
    }

    /// Hard links every live SSTable under `<dir>/snapshots/<tag>/<table dir>/`.
    pub fn snapshot(&self, tag: &str) -> Result<PathBuf> {
        let root = self.inner.snapshot_root(tag)?;
        let tables: Vec<Arc<Table>> = self.inner.tables.read().values().cloned().collect();
        for t in tables {
            self.inner.snapshot_table(&t, &root)?;
        }
        Ok(root)
    }

    /// Flushes all tables, syncs the commit log and stops background threads.
    pub fn shutdown(&self) -> Result<()> {
        let r = self
            .flush(None)
            .and_then(|_| self.inner.commitlog.sync_all());
        self.stop_threads();
        r
    }

    fn stop_threads(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.flush_signal.notify();
        self.inner.compaction_signal.notify();
        self.inner.sync_signal.notify();
        self.inner.mem_cv.notify_all();
        for h in self.threads.lock().drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // No flush: dropping without shutdown behaves like a crash (the commit log has the data).
        self.stop_threads();
    }
}

fn millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

thread_local! {
    /// Commit log entries are encoded into one buffer per writing thread, not a fresh one
    /// per write.
    static ENTRY_BUF: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A buffer grown beyond this by one large mutation is not kept for the next.
const MAX_KEPT_ENTRY_BUF: usize = 64 * 1024;

impl Inner {
    fn table(&self, id: TableId) -> Result<Arc<Table>> {
        self.tables
            .read()
            .get(&id)
            .cloned()
            .ok_or(StorageError::UnknownTable(id))
    }

    fn release_mem(&self, bytes: u64) {
        self.mem_used.fetch_sub(
            bytes.min(self.mem_used.load(Ordering::Relaxed)),
            Ordering::AcqRel,
        );
        let _g = self.mem_lock.lock();
        self.mem_cv.notify_all();
    }

    fn replay(&self, cl_dir: &Path, segments: &[u64]) -> Result<()> {
        let tables: TableMap = self.tables.read().clone();
        let mut replayed = 0u64;
        let mut last = ClPos::default();
        let mut err = None;
        for &seg in segments {
            commitlog::replay_segment(cl_dir, seg, |pos, payload| {
                if err.is_some() {
                    return;
                }
                last = pos;
                let mut d = Dec::new(payload);
                let decoded = (|| -> Result<(TableId, PartitionKey, PartitionData)> {
                    let id = TableId::from_slice(d.raw(16)?)
                        .map_err(|e| StorageError::Corrupt(e.to_string()))?;
                    Ok((id, d.key()?, d.partition()?))
                })();
                let Ok((id, key, p)) = decoded else {
                    tracing::warn!(segment = seg, "undecodable commit log entry skipped");
                    return;
                };
                let Some(t) = tables.get(&id) else { return };
                if pos <= t.replay_floor {
                    return;
                }
                let added = t.memtable.read().apply(key, p);
                replayed += 1;
                if self.mem_used.fetch_add(added, Ordering::AcqRel) + added
                    > self.options.memtable_space / 2
                {
                    // Flush what has been replayed so far, covering entries up to `pos`.
                    for t in tables.values() {
                        if let Err(e) = self.flush_table(t, Some(pos)) {
                            err = Some(e);
                            return;
                        }
                    }
                }
            })?;
            if let Some(e) = err.take() {
                return Err(e);
            }
        }
        if replayed > 0 {
            tracing::info!(entries = replayed, "commit log replayed");
            for t in tables.values() {
                self.flush_table(t, Some(last))?;
            }
        }
        self.commitlog.release_replayed();
        Ok(())
    }

    fn apply(&self, w: Incoming<'_>) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::Shutdown);
        }
        let t = self.table(w.mutation().table)?;
        // Backpressure: wait while memtables use more than the budget.
        if self.mem_used.load(Ordering::Acquire) > self.options.memtable_space {
            let mut g = self.mem_lock.lock();
            while self.mem_used.load(Ordering::Acquire) > self.options.memtable_space
                && !self.closed.load(Ordering::Acquire)
            {
                self.flush_signal.notify();
                self.mem_cv.wait_for(&mut g, Duration::from_millis(100));
            }
        }
        let pos = {
            let mt = t.memtable.read();
            // Read once: an observer (index) must see every write that enters this memtable
            // after it, and it sees the mutation itself, so only a table without one can
            // have its mutation handed over.
            let observer = t.observer.read();
            let (key, p, kept) = match w {
                Incoming::Owned(mut m) if observer.is_none() => {
                    let key = std::mem::take(&mut m.key);
                    (key, PartitionData::from_mutation_owned(m), None)
                }
                w => {
                    let m = w.mutation();
                    (m.key.clone(), PartitionData::from_mutation(m), Some(w))
                }
            };
            let mut e = Enc {
                buf: ENTRY_BUF.take(),
            };
            e.buf.clear();
            e.buf.extend_from_slice(t.id.as_bytes());
            e.key(&key);
            e.partition(&p);
            let appended = self.commitlog.append(t.id, &e.buf);
            if e.buf.capacity() <= MAX_KEPT_ENTRY_BUF {
                ENTRY_BUF.set(e.buf);
            }
            let pos = appended?;
            let added = mt.apply(key, p);
            self.mem_used.fetch_add(added, Ordering::AcqRel);
            if let (Some(o), Some(w)) = (observer.as_ref(), &kept) {
                o.on_write(mt.id(), w.mutation());
            }
            pos
        };
        if self.mem_used.load(Ordering::Relaxed) > self.options.memtable_space / 2 {
            self.flush_signal.notify();
        }
        if self.commitlog.take_background_work() {
            self.sync_signal.notify();
        }
        match self.options.commitlog_sync {
            CommitlogSync::Batch | CommitlogSync::Group { .. } => self.commitlog.sync_to(pos),
            CommitlogSync::Periodic { .. } => Ok(()),
        }
    }

    /// Switches the table's memtable and writes it out. `replay_pos` overrides the commit log
    /// position the new SSTable covers (during replay).
    fn flush_table(&self, t: &Arc<Table>, replay_pos: Option<ClPos>) -> Result<()> {
        let _g = t.flush_lock.lock();
        if t.dropped.load(Ordering::Acquire) {
            return Ok(());
        }
        let (old, pos) = {
            let mut w = t.memtable.write();
            let pos = replay_pos.unwrap_or_else(|| self.commitlog.current_pos());
            if w.is_empty() {
                drop(w);
                if replay_pos.is_none() {
                    self.commitlog.mark_clean(t.id, pos);
                }
                return Ok(());
            }
            let old = std::mem::replace(&mut *w, Arc::new(Memtable::default()));
            t.flushing.lock().push(old.clone());
            (old, pos)
        };
        let params = t.params.read().clone();
        let gen = t.next_gen.fetch_add(1, Ordering::AcqRel);
        let mut yielder = Yielder::default();
        let written = (|| -> Result<Option<SSTable>> {
            let mut w = SSTableWriter::create(
                &t.dir,
                gen,
                params.compression,
                params.bloom_filter_fp_chance,
            )?
            .with_cache(t.cache.clone())
            .expect_partitions(old.partition_count(), old.partition_count() * 16);
            old.for_each(|k, p| {
                yielder.step();
                w.add(k, p)
            })?;
            w.finish(pos, 0)
        })();
        let sst = match written {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(table = %params.name, error = %e, "flush failed; data kept in memory and commit log");
                // Put the data back into the live memtable so memory accounting stays right and
                // the next flush retries it (its commit log segments are still marked dirty).
                {
                    let cur = t.memtable.read();
                    let _ = old.for_each(|k, p| {
                        let added = cur.apply(k.clone(), p.clone());
                        self.mem_used.fetch_add(added, Ordering::AcqRel);
                        Ok(())
                    });
                }
                t.flushing.lock().retain(|m| !Arc::ptr_eq(m, &old));
                self.release_mem(old.size());
                return Err(e);
            }
        };
        let observer = t.observer.read().clone();
        if let Some(s) = sst {
            if let Some(o) = &observer {
                o.on_sstable_written(
                    s.gen,
                    &t.dir,
                    &SSTableRows {
                        sst: &s,
                        now: now_secs(),
                    },
                );
            }
            let mut w = t.sstables.write();
            let mut v: Vec<Arc<SSTable>> = w.iter().cloned().collect();
            v.push(Arc::new(s));
            *w = Arc::new(v);
        }
        t.flushing.lock().retain(|m| !Arc::ptr_eq(m, &old));
        if let Some(o) = &observer {
            o.on_sources_removed(&[], &[old.id()]);
        }
        self.release_mem(old.size());
        if replay_pos.is_none() {
            self.commitlog.mark_clean(t.id, pos);
        }
        // Unless a read still holds it, the memtable is freed here, a shard at a time.
        if let Ok(mt) = Arc::try_unwrap(old) {
            mt.free_gradually(&mut yielder);
        }
        self.compaction_signal.notify();
        tracing::debug!(table = %params.name, gen, "memtable flushed");
        Ok(())
    }

    fn flush_loop(&self) {
        while !self.closed.load(Ordering::Acquire) {
            self.flush_signal.wait(Duration::from_secs(1));
            if self.closed.load(Ordering::Acquire) {
                break;
            }
            for id in self
                .commitlog
                .tables_pinning_old_segments(MAX_COMMITLOG_SEGMENTS)
            {
                if let Ok(t) = self.table(id) {
                    let _ = self.flush_table(&t, None);
                }
            }
            loop {
                let tables: Vec<Arc<Table>> = self.tables.read().values().cloned().collect();
                let live: u64 = tables.iter().map(|t| t.live_memtable_size()).sum();
                if live <= self.options.memtable_space / 2 || self.closed.load(Ordering::Acquire) {
                    break;
                }
                let Some(t) = tables.into_iter().max_by_key(|t| t.live_memtable_size()) else {
                    break;
                };
                if let Err(e) = self.flush_table(&t, None) {
                    tracing::error!(error = %e, "background flush failed");
                    std::thread::sleep(Duration::from_secs(1));
                    break;
                }
            }
        }
    }

    fn sync_loop(&self, period: Duration) {
        while !self.closed.load(Ordering::Acquire) {
            self.sync_signal.wait(period);
            if let Err(e) = self.commitlog.sync_all() {
                tracing::error!(error = %e, "commit log sync failed");
            }
            self.commitlog.delete_released();
            self.commitlog.prefault_active();
            self.commitlog.prepare_spare();
        }
    }

    fn compaction_loop(&self) {
        while !self.closed.load(Ordering::Acquire) {
            self.compaction_signal.wait(Duration::from_secs(5));
            let tables: Vec<Arc<Table>> = self.tables.read().values().cloned().collect();
            for t in tables {
                if self.closed.load(Ordering::Acquire) {
                    return;
                }
                let Some(_g) = t.compaction_lock.try_lock() else {
                    continue;
                };
                while !self.closed.load(Ordering::Acquire) && !t.dropped.load(Ordering::Acquire) {
                    let strategy = t.params.read().compaction;
                    let Some(task) = compaction::pick(&strategy, &t.sstables.read()) else {
                        break;
                    };
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.run_compaction(&t, task)
                    }))
                    .unwrap_or_else(|_| Err(StorageError::Corrupt("compaction panicked".into())));
                    if let Err(e) = r {
                        tracing::error!(table = %t.params.read().name, error = %e, "compaction failed");
                        break;
                    }
                }
            }
        }
    }

    /// Lowest timestamp of data for `key` that may exist outside `inputs` (memtables, other
    /// SSTables); tombstones at or above it must be kept.
    fn max_purgeable(&self, t: &Table, key: &PartitionKey, inputs: &HashSet<u64>) -> i64 {
        let mut min = i64::MAX;
        let view = t.view();
        for m in &view.memtables {
            if m.contains(key) {
                min = min.min(m.min_timestamp());
            }
        }
        for s in view.sstables.iter() {
            if !inputs.contains(&s.gen) && s.may_contain(key) {
                min = min.min(s.stats.data.min_timestamp);
            }
        }
        min
    }

    /// Merges `task.inputs` into new SSTables, purging what the rules allow, and swaps them in.
    fn run_compaction(&self, t: &Arc<Table>, task: Task) -> Result<()> {
        let params = t.params.read().clone();
        let now = now_secs();
        let gc_before = now.saturating_sub(params.gc_grace_seconds);
        let input_gens: HashSet<u64> = task.inputs.iter().map(|s| s.gen).collect();
        let cl_pos = task
            .inputs
            .iter()
            .map(|s| s.stats.cl_pos)
            .max()
            .unwrap_or_default();
        let mut scanners = Vec::with_capacity(task.inputs.len());
        let mut heads = Vec::with_capacity(task.inputs.len());
        for s in &task.inputs {
            let mut sc = s.scanner()?;
            heads.push(sc.next_header()?);
            scanners.push(sc);
        }
        let mut limiter = RateLimiter::new(self.options.compaction_throughput_mb_per_sec);
        let mut yielder = Yielder::default();
        let mut outputs: Vec<SSTable> = Vec::new();
        let mut writer: Option<SSTableWriter> = None;
        // The inputs' sums bound one output's index (merged keys only make it smaller); an
        // output cut at a size gets its share of them.
        let (in_partitions, in_key_bytes, in_bytes) = task
            .inputs
            .iter()
            .fold((0usize, 0usize, 0u64), |(p, k, b), s| {
                (p + s.index.len(), k + s.index.key_bytes(), b + s.size)
            });
        let share = |n: usize| match task.max_output_bytes {
            Some(max) if in_bytes > max => {
                (n as u128 * max as u128 / in_bytes as u128) as usize * 9 / 8
            }
            _ => n,
        };
        let new_writer = || -> Result<SSTableWriter> {
            let gen = t.next_gen.fetch_add(1, Ordering::AcqRel);
            Ok(SSTableWriter::create(
                &t.dir,
                gen,
                params.compression,
                params.bloom_filter_fp_chance,
            )?
            .with_cache(t.cache.clone())
            .expect_partitions(share(in_partitions), share(in_key_bytes)))
        };
        // Partitions are merged row by row (never held whole in memory): headers first, then a
        // k-way merge of the inputs' rows in clustering order.
        let result = (|| -> Result<()> {
            loop {
                let Some(key) = heads.iter().flatten().map(|(k, _)| k).min().cloned() else {
                    break;
                };
                let mut header = PartitionData::default();
                let mut active = Vec::new();
                for (i, h) in heads.iter_mut().enumerate() {
                    if h.as_ref().is_some_and(|(k, _)| *k == key) {
                        header.merge(h.take().unwrap().1);
                        active.push(i);
                    }
                }
                let max_purgeable = || self.max_purgeable(t, &key, &input_gens);
                let purger = Purger::new(now, gc_before, &max_purgeable);
                let coverage = header.compact_header(&purger);
                let mut rows = Vec::with_capacity(active.len());
                for &i in &active {
                    rows.push(scanners[i].next_row()?);
                }
                let mut started = false;
                loop {
                    let Some(c) = rows.iter().flatten().map(|(c, _)| c).min().cloned() else {
                        break;
                    };
                    let mut row: Option<RowData> = None;
                    for (j, r) in rows.iter_mut().enumerate() {
                        if r.as_ref().is_some_and(|(rc, _)| *rc == c) {
                            let (_, rd) = r.take().unwrap();
                            match &mut row {
                                Some(x) => x.merge(rd),
                                None => row = Some(rd),
                            }
                            *r = scanners[active[j]].next_row()?;
                        }
                    }
                    let mut row = row.unwrap();
                    if !row.compact(coverage.covering(&c), &purger) {
                        continue;
                    }
                    if writer.is_none() {
                        writer = Some(new_writer()?);
                    }
                    let w = writer.as_mut().unwrap();
                    if !started {
                        w.start_partition(&key, &header)?;
                        started = true;
                    }
                    let before = w.bytes_written();
                    w.add_row(&c, &row)?;
                    limiter.consume(w.bytes_written().saturating_sub(before));
                    yielder.step();
                    if self.closed.load(Ordering::Relaxed) {
                        return Err(StorageError::Shutdown);
                    }
                }
                for &i in &active {
                    heads[i] = scanners[i].next_header()?;
                }
                if !started && header.is_empty() {
                    continue;
                }
                if writer.is_none() {
                    writer = Some(new_writer()?);
                }
                let w = writer.as_mut().unwrap();
                if !started {
                    w.start_partition(&key, &header)?;
                }
                w.end_partition();
                if self.closed.load(Ordering::Relaxed) {
                    return Err(StorageError::Shutdown);
                }
                if task
                    .max_output_bytes
                    .is_some_and(|m| w.bytes_written() >= m)
                {
                    if let Some(s) = writer.take().unwrap().finish(cl_pos, task.level)? {
                        outputs.push(s);
                    }
                }
            }
            if let Some(w) = writer.take() {
                if let Some(s) = w.finish(cl_pos, task.level)? {
                    outputs.push(s);
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            if let Some(w) = writer.take() {
                w.abort();
            }
            for o in &outputs {
                o.mark_obsolete();
            }
            return Err(e);
        }
        if t.dropped.load(Ordering::Acquire) {
            return Ok(());
        }
        let observer = t.observer.read().clone();
        if let Some(o) = &observer {
            for s in &outputs {
                o.on_sstable_written(s.gen, &t.dir, &SSTableRows { sst: s, now });
            }
        }
        // Record the inputs to delete, so a crash after this point finishes the job on open.
        let first_out = outputs
            .first()
            .map(|s| s.gen)
            .unwrap_or_else(|| t.next_gen.fetch_add(1, Ordering::AcqRel));
        let log_path = t.dir.join(format!("compaction-{first_out}.log"));
        let log: String = task
            .inputs
            .iter()
            .map(|s| format!("{}\n", data_file_name(s.gen)))
            .collect();
        write_atomic(&log_path, log.as_bytes())?;
        {
            let mut w = t.sstables.write();
            let mut v: Vec<Arc<SSTable>> = w
                .iter()
                .filter(|s| !input_gens.contains(&s.gen))
                .cloned()
                .collect();
            v.extend(outputs.into_iter().map(Arc::new));
            v.sort_by_key(|s| s.gen);
            *w = Arc::new(v);
        }
        for s in &task.inputs {
            s.mark_obsolete();
            let _ = fs::remove_file(&s.path);
        }
        sync_dir(&t.dir)?;
        fs::remove_file(&log_path)?;
        if let Some(o) = &observer {
            let gens: Vec<u64> = task.inputs.iter().map(|s| s.gen).collect();
            o.on_sources_removed(&gens, &[]);
        }
        tracing::debug!(table = %params.name, inputs = task.inputs.len(), "compaction done");
        Ok(())
    }

    fn snapshot_root(&self, tag: &str) -> Result<PathBuf> {
        if tag.is_empty() || tag.contains('/') || tag.contains('\\') || tag == "." || tag == ".." {
            return Err(StorageError::InvalidArgument(format!(
                "bad snapshot tag {tag:?}"
            )));
        }
        let root = self.dir.join("snapshots").join(tag);
        fs::create_dir_all(&root)?;
        Ok(root)
    }

    fn snapshot_table(&self, t: &Table, root: &Path) -> Result<()> {
        let dest = root.join(t.dir.file_name().unwrap());
        fs::create_dir_all(&dest)?;
        for s in t.sstables.read().iter() {
            let target = dest.join(data_file_name(s.gen));
            match fs::hard_link(&s.path, &target) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        sync_dir(&dest)
    }
}

/// Flushes, compactions and commit log syncs run only on CPU time no request thread wants
/// (Linux's `SCHED_IDLE`; Cassandra runs compaction at the lowest priority too). With a nice
/// value of 4 or 10 they still took a core for several milliseconds while request threads
/// waited (p99 at half load on two cores). The whole machine busy with requests is what lets
/// them starve, and then writers soon wait on memtable space and leave the CPU to the flush.
/// Where the policy is refused, the lowest nice value stands in.
fn run_in_background() {
    #[cfg(target_os = "linux")]
    // SAFETY: system calls on the calling thread; `param` outlives the call.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
            let _ = libc::setpriority(libc::PRIO_PROCESS, 0, 19);
        }
    }
}
