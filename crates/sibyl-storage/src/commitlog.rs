//! The commit log: append-only segments of CRC32C-protected entries, replayed on open.
//!
//! Segment file `CommitLog-<id>.log`: 8-byte magic, u64 segment id, then entries of
//! `[u32 len][u32 crc32c(len bytes ++ payload) ^ id_mask(id)][payload]`. A torn or corrupt entry
//! ends the replay of its segment. Once every table a segment holds data for has flushed past
//! it, the segment is released: a couple of released files are kept, renamed
//! `CommitLog-<id>.recycle` (which replay ignores), and reused for later segments; the rest
//! are deleted.
//!
//! Reusing a file skips what creating one costs on every rollover: allocating its disk
//! blocks, faulting in and zeroing fresh page-cache pages (slow in a virtual machine, and done
//! by a thread the kernel does not preempt mid-call), and freeing them all again on delete.
//! A reused file still holds its previous entries past what is written anew; they were written
//! under another segment id, which their checksums cover, so replay stops at the first one.
//! (Segments of the first format, `SIBYLCL1`, have checksums without the id and are still
//! read.)
//!
//! Segments are preallocated to their full size and memory-mapped (as Cassandra does): an
//! append is a copy into the mapping, not a `write` system call, yet the entry is in the OS
//! page cache when `append` returns, so a crash of the process loses nothing; only a crash of
//! the machine can lose what was not synced yet (the sync modes bound that). The zeroed tail of
//! a segment reads as its end (an entry length of 0).

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memmap2::MmapRaw;
use parking_lot::{Condvar, Mutex};

use crate::error::Result;
use crate::model::TableId;
use crate::options::CommitlogSync;

/// Entries' checksums do not cover the segment id (segments written before recycling).
const MAGIC_V1: &[u8; 8] = b"SIBYLCL1";
/// Entries' checksums are masked with the segment id.
const MAGIC: &[u8; 8] = b"SIBYLCL2";
const HEADER: u64 = 16;
/// Released segment files kept for reuse. Two cover a flush releasing segments in a burst;
/// more would only hold disk space.
const MAX_RECYCLED: usize = 2;

/// What the checksums of segment `id`'s entries are masked with. Distinct for ids that
/// differ in their low 32 bits (multiplying by an odd number permutes `u32`s), so an intact
/// entry left by a file's previous segment never checks out under the new id; and applied
/// after the checksum, so that is computed outside the log's lock, before the entry's
/// segment is known.
fn id_mask(id: u64) -> u32 {
    (id as u32).wrapping_mul(ID_MASK_FACTOR)
}

const ID_MASK_FACTOR: u32 = 0x9E37_79B1;
/// `ID_MASK_FACTOR`'s inverse modulo 2^32.
const ID_MASK_INVERSE: u32 = 0x0E8B_2F51;

/// Whether an entry whose unmasked checksum computes to `unmasked` but reads `stored` is an
/// intact entry of an earlier segment (a reused file's previous contents) rather than
/// damage: what it was masked with is the mask of an earlier id.
fn is_left_by_earlier_segment(stored: u32, unmasked: u32, id: u64) -> bool {
    let other = (stored ^ unmasked).wrapping_mul(ID_MASK_INVERSE);
    other != 0 && other < id as u32
}

/// A position in the commit log: everything appended before it has an end position <= it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ClPos {
    pub segment: u64,
    pub offset: u64,
}

struct Segment {
    /// Per table, the end offset of its last entry in this segment.
    dirty: HashMap<TableId, u64, foldhash::fast::FixedState>,
}

struct Active {
    id: u64,
    map: Arc<MmapRaw>,
    offset: u64,
    /// `id_mask(id)`.
    mask: u32,
}

impl Active {
    fn new(id: u64, map: Arc<MmapRaw>) -> Active {
        Active {
            id,
            map,
            offset: HEADER,
            mask: id_mask(id),
        }
    }
}

struct Inner {
    active: Active,
    segments: BTreeMap<u64, Segment>,
    /// Segments closed since the last sync: a roll does not wait for their `msync`, the next
    /// sync does it (before the active one's, so durable positions stay monotonic).
    unsynced: Vec<Arc<MmapRaw>>,
    /// A segment was created since the last sync, so the directory needs one too.
    dir_dirty: bool,
    /// Segments released (every table flushed past them) whose files are still to be
    /// deleted, outside this lock (`delete_released`).
    released: Vec<u64>,
}

struct SyncState {
    synced: ClPos,
    syncing: bool,
    last_sync: Instant,
}

pub struct CommitLog {
    dir: PathBuf,
    mode: CommitlogSync,
    segment_size: u64,
    inner: Mutex<Inner>,
    /// A segment was closed and waits for a sync (see `take_background_work`).
    rolled: std::sync::atomic::AtomicBool,
    sync: Mutex<SyncState>,
    synced_cv: Condvar,
    /// The next segment (its id and mapping), created and faulted in ahead of time by the
    /// sync thread: a rollover then only swaps mappings, and appends, made under the log's
    /// lock, no longer fault in (and allocate disk blocks for) a page every few dozen entries.
    spare: Mutex<Option<(u64, Arc<MmapRaw>)>>,
    /// A segment filled up since the log opened (see `prepare_spare`).
    filled: std::sync::atomic::AtomicBool,
    /// The active segment was not faulted in ahead: the one made at open, or one a rollover
    /// had to create itself. Its first write hands it to the sync thread (`prefault_active`).
    cold: std::sync::atomic::AtomicBool,
    /// The active segment is cold and written to: the sync thread faults in the rest of it.
    prefault_wanted: std::sync::atomic::AtomicBool,
    /// Ids of released segments whose files wait, renamed `.recycle`, to be reused.
    recycled: Mutex<Vec<u64>>,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("CommitLog-{id}.log"))
}

fn recycle_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("CommitLog-{id}.recycle"))
}

/// Ids of the files in `dir` named `CommitLog-<id>.<suffix>`, sorted.
fn ids_with_suffix(dir: &Path, suffix: &str) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    if dir.exists() {
        for e in fs::read_dir(dir)? {
            let name = e?.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name
                .strip_prefix("CommitLog-")
                .and_then(|s| s.strip_suffix(suffix))
                .and_then(|s| s.strip_suffix('.'))
            {
                if let Ok(id) = id.parse::<u64>() {
                    ids.push(id);
                }
            }
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Existing segment ids in `dir`, sorted.
pub fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    ids_with_suffix(dir, "log")
}

/// Reads every intact entry of segment `id`, calling `f(end_position, payload)`.
/// Stops silently at a torn or corrupt tail.
pub fn replay_segment(dir: &Path, id: u64, mut f: impl FnMut(ClPos, &[u8])) -> Result<()> {
    let data = fs::read(segment_path(dir, id))?;
    let mask = match data.get(..HEADER as usize) {
        Some(h) if &h[..8] == MAGIC_V1 => None,
        Some(h) if &h[..8] == MAGIC => {
            if h[8..] != id.to_le_bytes() {
                // A recycled file renamed for reuse whose new header was not written before a
                // crash: what it holds belongs to a released segment, all of it flushed.
                tracing::debug!(
                    segment = id,
                    "reused commit log segment not started; skipped"
                );
                return Ok(());
            }
            Some(id_mask(id))
        }
        _ => {
            tracing::warn!(
                segment = id,
                "commit log segment without valid header; skipped"
            );
            return Ok(());
        }
    };
    let mut pos = HEADER as usize;
    while data.len() - pos >= 8 {
        let len = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().unwrap());
        if len == 0 || data.len() - pos - 8 < len {
            break;
        }
        let payload = &data[pos + 8..pos + 8 + len];
        let unmasked = crc32c::crc32c_append(crc32c::crc32c(&data[pos..pos + 4]), payload);
        if unmasked ^ mask.unwrap_or(0) != crc {
            if mask.is_some() && is_left_by_earlier_segment(crc, unmasked, id) {
                // The end of this segment's entries in a reused file.
                break;
            }
            tracing::warn!(
                segment = id,
                offset = pos,
                "corrupt commit log entry; rest of segment ignored"
            );
            break;
        }
        pos += 8 + len;
        f(
            ClPos {
                segment: id,
                offset: pos as u64,
            },
            payload,
        );
    }
    Ok(())
}

/// Copies `bytes` into the mapping at `at`. Callers hold the commit log's lock (or own the
/// mapping alone, at creation), so no two writes overlap; syncs only `msync` the mapping.
fn write_at(map: &MmapRaw, at: usize, bytes: &[u8]) {
    assert!(
        at + bytes.len() <= map.len(),
        "commit log write past its segment"
    );
    // SAFETY: in bounds (checked above), the mapping lives as long as `map`, and writers are
    // serialized as described; nothing holds a Rust reference into the mapped bytes.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), map.as_mut_ptr().add(at), bytes.len()) }
}

/// Runs `op(offset, len)` over `[from, to)` in steps of `step` bytes, stopping early when it
/// returns false. The calls below zero, allocate or free a whole segment's pages, and the
/// kernel does not preempt one long call: between steps it is back in user space, where the
/// core is offered to waiting threads.
#[cfg(target_os = "linux")]
fn in_steps(from: usize, to: usize, step: usize, mut op: impl FnMut(usize, usize) -> bool) {
    let mut at = from;
    while at < to {
        let len = step.min(to - at);
        if !op(at, len) {
            return;
        }
        at += len;
        std::thread::yield_now();
    }
}

/// Faults in every page of a fresh segment from byte `from` on, writable (allocating its disk
/// blocks), so the appends that fill it do not. Best effort: kernels before 5.14 refuse and
/// appends fault.
fn prefault(map: &MmapRaw, from: usize) {
    #[cfg(target_os = "linux")]
    {
        /// `MADV_POPULATE_WRITE` (Linux UAPI; not yet named by the libc crate).
        const POPULATE_WRITE: libc::c_int = 23;
        /// Populating holds the process's memory-map lock: in steps this size, an allocator
        /// mapping memory on a request thread waits for one step, not the whole segment. A
        /// step is also CPU (zeroing and allocating blocks, ~0.3 ms here).
        const STEP: usize = 256 << 10;
        in_steps(from / 4096 * 4096, map.len(), STEP, |at, len| {
            // SAFETY: the range lies within the live mapping; populating changes no contents.
            unsafe { libc::madvise(map.as_mut_ptr().add(at).cast(), len, POPULATE_WRITE) == 0 }
        });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (map, from);
}

/// Bytes per step of the gradual releases below.
#[cfg(target_os = "linux")]
const RELEASE_STEP: usize = 1 << 20;

/// Drops the page cache of a file in steps.
fn drop_cache_gradually(f: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let len = f.metadata().map_or(0, |m| m.len()) as usize;
        in_steps(0, len, RELEASE_STEP, |at, len| {
            // SAFETY: advice on an open descriptor; no memory is passed.
            unsafe {
                libc::posix_fadvise(
                    f.as_raw_fd(),
                    at as libc::off_t,
                    len as libc::off_t,
                    libc::POSIX_FADV_DONTNEED,
                )
            };
            true
        });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = f;
}

/// Unmaps a closed segment's pages in steps before the mapping itself goes (unmapping 32 MiB
/// at once held a core for 27 ms inside the kernel).
fn unmap_gradually(map: Arc<MmapRaw>) {
    #[cfg(target_os = "linux")]
    if let Ok(map) = Arc::try_unwrap(map) {
        in_steps(0, map.len(), RELEASE_STEP, |at, len| {
            // SAFETY: the range lies within the live mapping, which nothing else references
            // (the last `Arc`); dropping the pages of a shared file mapping keeps the file's
            // contents (they were synced, and live on in the page cache until then).
            unsafe { libc::madvise(map.as_mut_ptr().add(at).cast(), len, libc::MADV_DONTNEED) };
            true
        });
    }
    #[cfg(not(target_os = "linux"))]
    drop(map);
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Creates segment `id` of `size` bytes (sparse, so only what is written takes disk space)
/// with its header written, and maps it. Nothing is synced: that is the sync's job, and a roll
/// of the active segment must not stall the writers behind its lock.
fn create_segment(dir: &Path, id: u64, size: u64) -> Result<Arc<MmapRaw>> {
    let f = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(segment_path(dir, id))?;
    f.set_len(size)?;
    start_segment(&f, id)
}

/// Maps a segment file and writes its header.
fn start_segment(f: &File, id: u64) -> Result<Arc<MmapRaw>> {
    let map = MmapRaw::map_raw(f)?;
    let mut header = [0u8; HEADER as usize];
    header[..8].copy_from_slice(MAGIC);
    header[8..].copy_from_slice(&id.to_le_bytes());
    write_at(&map, 0, &header);
    Ok(Arc::new(map))
}

/// Turns the recycled file of released segment `old` into segment `id`: renamed (the
/// directory is synced with the next sync, as after any roll, before anything in it counts
/// as durable), then given its new header. Its old entries stay until overwritten; replay
/// tells them apart by their checksums.
fn reuse_segment(dir: &Path, old: u64, id: u64, size: u64) -> Result<Arc<MmapRaw>> {
    let path = segment_path(dir, id);
    fs::rename(recycle_path(dir, old), &path)?;
    let f = OpenOptions::new().read(true).write(true).open(&path)?;
    if f.metadata()?.len() != size {
        f.set_len(size)?;
    }
    start_segment(&f, id)
}

impl CommitLog {
    /// Starts a new active segment with an id greater than `min_id` and every existing one.
    /// Existing segments are left alone (the engine replays and then releases them).
    pub fn open(
        dir: &Path,
        mode: CommitlogSync,
        segment_size: u64,
        min_id: u64,
    ) -> Result<CommitLog> {
        fs::create_dir_all(dir)?;
        let existing = list_segments(dir)?;
        let mut recycled = ids_with_suffix(dir, "recycle")?;
        for extra in recycled.drain(MAX_RECYCLED.min(recycled.len())..) {
            let _ = fs::remove_file(recycle_path(dir, extra));
        }
        let id = existing
            .last()
            .map_or(min_id, |l| (*l + 1).max(min_id))
            .max(1);
        let segment_size = segment_size.max(4096);
        let map = create_segment(dir, id, segment_size)?;
        map.flush()?;
        sync_dir(dir)?;
        let mut segments = BTreeMap::new();
        for e in existing {
            // Old segments: held until the engine marks them replayed.
            segments.insert(
                e,
                Segment {
                    dirty: [(TableId::nil(), u64::MAX)].into_iter().collect(),
                },
            );
        }
        segments.insert(
            id,
            Segment {
                dirty: HashMap::default(),
            },
        );
        Ok(CommitLog {
            dir: dir.to_path_buf(),
            mode,
            segment_size,
            inner: Mutex::new(Inner {
                active: Active::new(id, map),
                segments,
                unsynced: Vec::new(),
                dir_dirty: false,
                released: Vec::new(),
            }),
            rolled: std::sync::atomic::AtomicBool::new(false),
            sync: Mutex::new(SyncState {
                synced: ClPos {
                    segment: id,
                    offset: HEADER,
                },
                syncing: false,
                last_sync: Instant::now(),
            }),
            synced_cv: Condvar::new(),
            spare: Mutex::new(None),
            filled: std::sync::atomic::AtomicBool::new(false),
            cold: std::sync::atomic::AtomicBool::new(true),
            prefault_wanted: std::sync::atomic::AtomicBool::new(false),
            recycled: Mutex::new(recycled),
        })
    }

    /// A new segment `id` of `size` bytes: a recycled file when one is kept, else a new one.
    fn new_segment(&self, id: u64, size: u64) -> Result<Arc<MmapRaw>> {
        let old = self.recycled.lock().pop();
        if let Some(old) = old {
            match reuse_segment(&self.dir, old, id, size) {
                Ok(map) => return Ok(map),
                Err(e) => {
                    tracing::debug!(segment = old, error = %e, "recycled commit log segment not reused");
                    let _ = fs::remove_file(recycle_path(&self.dir, old));
                    let _ = fs::remove_file(segment_path(&self.dir, id));
                }
            }
        }
        create_segment(&self.dir, id, size)
    }

    /// Creates and faults in the segment that will follow the active one, unless it exists.
    /// A rollover that wins the race creates its segment itself; this one then gives up.
    ///
    /// Only a log that has filled a segment since it opened gets one: an idle node (or a
    /// short-lived engine in tests) does not write and fault in a segment it may never use.
    pub fn prepare_spare(&self) {
        if !self.filled.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let next = self.inner.lock().active.id + 1;
        let map = {
            let mut spare = self.spare.lock();
            if spare.as_ref().is_some_and(|(id, _)| *id == next) {
                return;
            }
            self.discard(spare.take());
            match self.new_segment(next, self.segment_size) {
                Ok(map) => {
                    *spare = Some((next, map.clone()));
                    map
                }
                Err(e) => {
                    tracing::debug!(segment = next, error = %e, "commit log segment not prepared");
                    return;
                }
            }
        };
        prefault(&map, 0);
    }

    /// Faults in the rest of the active segment if it is cold and being written to, so the
    /// appends after this (made under the log's lock, which every writer waits on) stop
    /// faulting in a page every few dozen entries. A segment that is never written to (an
    /// idle node's) is left as it is and costs no memory.
    pub fn prefault_active(&self) {
        if !self
            .prefault_wanted
            .swap(false, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        let (map, offset) = {
            let inner = self.inner.lock();
            (inner.active.map.clone(), inner.active.offset as usize)
        };
        prefault(&map, offset);
    }

    /// The segment to roll over to: the spare if it is the one and large enough.
    fn next_segment(&self, id: u64, size: u64) -> Result<Arc<MmapRaw>> {
        match self.spare.lock().take() {
            Some((sid, map)) if sid == id && map.len() as u64 >= size => Ok(map),
            other => {
                self.discard(other);
                let map = self.new_segment(id, size)?;
                self.cold.store(true, std::sync::atomic::Ordering::Release);
                Ok(map)
            }
        }
    }

    /// Unmaps and deletes a spare that will not be used (it holds no entries).
    fn discard(&self, spare: Option<(u64, Arc<MmapRaw>)>) {
        if let Some((id, map)) = spare {
            drop(map);
            let _ = fs::remove_file(segment_path(&self.dir, id));
        }
    }

    /// Appends one entry; returns its end position.
    pub fn append(&self, table: TableId, payload: &[u8]) -> Result<ClPos> {
        let len = payload.len() as u32;
        let crc = crc32c::crc32c_append(crc32c::crc32c(&len.to_le_bytes()), payload);
        let entry_len = payload.len() as u64 + 8;
        let mut inner = self.inner.lock();
        if inner.active.offset + entry_len > inner.active.map.len() as u64 {
            let id = inner.active.id + 1;
            // An entry larger than a segment gets a segment of its own size.
            let size = self.segment_size.max(HEADER + entry_len);
            let map = self.next_segment(id, size)?;
            let old = std::mem::replace(&mut inner.active, Active::new(id, map));
            inner.unsynced.push(old.map);
            inner.dir_dirty = true;
            self.rolled
                .store(true, std::sync::atomic::Ordering::Release);
            self.filled
                .store(true, std::sync::atomic::Ordering::Relaxed);
            inner.segments.insert(
                id,
                Segment {
                    dirty: HashMap::default(),
                },
            );
            self.release_clean(&mut inner, old.id);
        }
        let crc = crc ^ inner.active.mask;
        let at = inner.active.offset as usize;
        let map = &inner.active.map;
        write_at(map, at, &len.to_le_bytes());
        write_at(map, at + 4, &crc.to_le_bytes());
        write_at(map, at + 8, payload);
        inner.active.offset += entry_len;
        let pos = ClPos {
            segment: inner.active.id,
            offset: inner.active.offset,
        };
        let id = inner.active.id;
        inner
            .segments
            .get_mut(&id)
            .unwrap()
            .dirty
            .insert(table, pos.offset);
        Ok(pos)
    }

    /// Whether the sync thread has work since the last call: a segment was closed (it stays
    /// mapped, its pages counted in the process's RSS, until a sync has written it, so the
    /// periodic sync is asked to come early instead of letting a period's worth of segments
    /// pile up, and the segment it released, if any, is deleted), or the active segment is
    /// cold and was just written to (`prefault_active`). Called after appends.
    pub fn take_background_work(&self) -> bool {
        use std::sync::atomic::Ordering::{AcqRel, Relaxed};
        let rolled = self.rolled.load(Relaxed) && self.rolled.swap(false, AcqRel);
        let cold = self.cold.load(Relaxed) && self.cold.swap(false, AcqRel);
        if cold {
            self.prefault_wanted
                .store(true, std::sync::atomic::Ordering::Release);
        }
        rolled || cold
    }

    /// The position after the last appended entry.
    pub fn current_pos(&self) -> ClPos {
        let inner = self.inner.lock();
        ClPos {
            segment: inner.active.id,
            offset: inner.active.offset,
        }
    }

    /// Blocks until `pos` is durable, sharing fsyncs between concurrent callers.
    pub fn sync_to(&self, pos: ClPos) -> Result<()> {
        let mut st = self.sync.lock();
        loop {
            if st.synced >= pos {
                return Ok(());
            }
            if st.syncing {
                self.synced_cv.wait(&mut st);
                continue;
            }
            st.syncing = true;
            let last = st.last_sync;
            drop(st);
            if let CommitlogSync::Group { window_ms } = self.mode {
                let next = last + Duration::from_millis(window_ms);
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                }
            }
            let r = self.sync_now();
            st = self.sync.lock();
            st.syncing = false;
            st.last_sync = Instant::now();
            self.synced_cv.notify_all();
            match r {
                Ok(end) => st.synced = st.synced.max(end),
                Err(e) => return Err(e),
            }
        }
    }

    fn sync_now(&self) -> Result<ClPos> {
        let (closed, map, end, dir_dirty) = {
            let mut inner = self.inner.lock();
            let dir_dirty = std::mem::take(&mut inner.dir_dirty);
            (
                std::mem::take(&mut inner.unsynced),
                inner.active.map.clone(),
                ClPos {
                    segment: inner.active.id,
                    offset: inner.active.offset,
                },
                dir_dirty,
            )
        };
        let synced = (|| -> Result<()> {
            for m in &closed {
                m.flush()?;
            }
            map.flush_range(0, end.offset as usize)?;
            if dir_dirty {
                sync_dir(&self.dir)?;
            }
            Ok(())
        })();
        if let Err(e) = synced {
            // Leave the work for the next attempt.
            let mut inner = self.inner.lock();
            let mut rest = closed;
            rest.append(&mut inner.unsynced);
            inner.unsynced = rest;
            inner.dir_dirty |= dir_dirty;
            return Err(e);
        }
        for m in closed {
            unmap_gradually(m);
        }
        Ok(end)
    }

    /// fsyncs everything appended so far.
    pub fn sync_all(&self) -> Result<()> {
        self.sync_to(self.current_pos())
    }

    /// Declares `table`'s data up to `upto` flushed; deletes segments nothing needs any more.
    pub fn mark_clean(&self, table: TableId, upto: ClPos) {
        let mut inner = self.inner.lock();
        for (id, seg) in inner.segments.range_mut(..=upto.segment) {
            if let Some(end) = seg.dirty.get(&table) {
                if *id < upto.segment || *end <= upto.offset {
                    seg.dirty.remove(&table);
                }
            }
        }
        let active = inner.active.id;
        let ids: Vec<u64> = inner
            .segments
            .keys()
            .copied()
            .filter(|i| *i != active)
            .collect();
        for id in ids {
            self.release_clean(&mut inner, id);
        }
        drop(inner);
        self.delete_released();
    }

    /// Forgets the replayed pre-existing segments (their data was flushed after replay).
    pub fn release_replayed(&self) {
        self.mark_clean(
            TableId::nil(),
            ClPos {
                segment: u64::MAX,
                offset: u64::MAX,
            },
        );
    }

    fn release_clean(&self, inner: &mut Inner, id: u64) {
        if id == inner.active.id {
            return;
        }
        if inner.segments.get(&id).is_some_and(|s| s.dirty.is_empty()) {
            inner.segments.remove(&id);
            inner.released.push(id);
        }
    }

    /// Deletes the files of released segments. Not under the log's lock: deleting a file
    /// frees its page cache inside the kernel (8 ms for a full 32 MiB segment here), which
    /// writers must not wait for; the cache is dropped in steps first, each a point where a
    /// waiting thread gets the core (the kernel does not preempt one long call).
    pub fn delete_released(&self) {
        let ids = std::mem::take(&mut self.inner.lock().released);
        for id in ids {
            let path = segment_path(&self.dir, id);
            if self.recycle(id, &path) {
                continue;
            }
            if let Ok(f) = File::open(&path) {
                drop_cache_gradually(&f);
            }
            if let Err(e) = fs::remove_file(&path) {
                tracing::warn!(segment = id, error = %e, "could not delete commit log segment");
            }
        }
    }

    /// Keeps released segment `id` for reuse if fewer than `MAX_RECYCLED` are kept and it has
    /// the standard size (one grown for a large entry is deleted). Its page cache stays: the
    /// segment that reuses it writes into those pages instead of fresh ones.
    ///
    /// The system calls run outside the pool's lock, which a rollover takes under the log's
    /// own lock. Two releases racing may keep one file more; `open` trims the pool.
    fn recycle(&self, id: u64, path: &Path) -> bool {
        if self.recycled.lock().len() >= MAX_RECYCLED
            || fs::metadata(path).map_or(true, |m| m.len() != self.segment_size)
            || fs::rename(path, recycle_path(&self.dir, id)).is_err()
        {
            return false;
        }
        self.recycled.lock().push(id);
        true
    }

    /// Tables with unflushed data in the oldest segment, when more than `max_segments` exist.
    pub fn tables_pinning_old_segments(&self, max_segments: usize) -> Vec<TableId> {
        let inner = self.inner.lock();
        if inner.segments.len() <= max_segments {
            return Vec::new();
        }
        inner
            .segments
            .values()
            .next()
            .map(|s| s.dirty.keys().copied().filter(|t| !t.is_nil()).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages of the active segment in the page cache (Linux `mincore`).
    #[cfg(target_os = "linux")]
    fn resident_pages(log: &CommitLog) -> usize {
        let map = log.inner.lock().active.map.clone();
        let pages = map.len().div_ceil(4096);
        let mut v = vec![0u8; pages];
        // SAFETY: the mapping is live (held above) and `v` has one byte per page.
        let r = unsafe { libc::mincore(map.as_mut_ptr().cast(), map.len(), v.as_mut_ptr()) };
        assert_eq!(r, 0);
        v.iter().filter(|b| **b & 1 == 1).count()
    }

    /// The segment made at open is faulted in only once written to, and only once.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_first_segment_is_faulted_in_once_written_to() {
        let dir = tempfile::tempdir().unwrap();
        // Larger than the readahead that the header's page fault brings into the page cache.
        let log = CommitLog::open(dir.path(), CommitlogSync::default(), 64 << 20, 0).unwrap();
        log.prefault_active();
        let before = resident_pages(&log);
        assert!(
            before < 16384 / 2,
            "nothing written, nothing faulted in: {before} pages"
        );
        log.append(TableId::from_u128(7), b"first").unwrap();
        assert!(
            log.take_background_work(),
            "the sync thread is asked to come"
        );
        assert!(!log.take_background_work(), "once");
        log.prefault_active();
        assert_eq!(resident_pages(&log), 16384, "the whole 64 MiB segment");
        log.append(TableId::from_u128(7), b"second").unwrap();
        assert!(!log.take_background_work());
    }

    /// Released segments' files are reused for later segments (the files on disk stay few),
    /// and replay returns the latest entries in order, every unflushed one among them, and
    /// none of the older entries a reused file still holds past its new ones.
    #[cfg(unix)]
    #[test]
    fn reused_segments_replay_only_their_own_entries() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let log = CommitLog::open(dir.path(), CommitlogSync::default(), 4096, 0).unwrap();
        let table = TableId::from_u128(7);
        let mut inodes = HashMap::<u64, usize>::new();
        let mut written = Vec::new();
        let mut unflushed = 0;
        for i in 0u32..610 {
            // Long entries early, short ones late: a reused file's old entries extend past
            // where the new ones end.
            let pad = if i < 300 { 120 } else { 10 };
            let payload = format!("entry {i:>4} {}", "y".repeat(pad));
            let pos = log.append(table, payload.as_bytes()).unwrap();
            written.push(payload.into_bytes());
            unflushed += 1;
            if i % 40 == 39 {
                // Everything so far is flushed, as a flush of the table would declare.
                log.mark_clean(table, pos);
                unflushed = 0;
                log.prepare_spare();
            }
            let active = log.current_pos().segment;
            let ino = fs::metadata(segment_path(dir.path(), active))
                .unwrap()
                .ino();
            *inodes.entry(ino).or_default() += 1;
        }
        let segments = list_segments(dir.path()).unwrap();
        let files = fs::read_dir(dir.path()).unwrap().count();
        assert!(files <= segments.len() + MAX_RECYCLED, "{files} files");
        let ids_used = log.current_pos().segment;
        assert!(
            (inodes.len() as u64) < ids_used / 2,
            "{} files for {ids_used} segments",
            inodes.len()
        );
        let mut replayed = Vec::new();
        for id in segments {
            replay_segment(dir.path(), id, |_, p| replayed.push(p.to_vec())).unwrap();
        }
        assert!(replayed.len() >= unflushed && unflushed == 10);
        assert!(replayed.len() < 100, "{} replayed", replayed.len());
        assert_eq!(replayed[..], written[written.len() - replayed.len()..]);
    }

    /// A recycled file renamed for reuse whose new header was never written holds only a
    /// released segment's entries: replay skips it. Segments of the first format (checksums
    /// without the id) still replay.
    #[test]
    fn replay_skips_unstarted_reuse_and_reads_the_first_format() {
        let dir = tempfile::tempdir().unwrap();
        let log = CommitLog::open(dir.path(), CommitlogSync::default(), 4096, 0).unwrap();
        let id = log.current_pos().segment;
        log.append(TableId::from_u128(7), b"released long ago")
            .unwrap();
        log.sync_all().unwrap();
        drop(log);
        fs::rename(
            segment_path(dir.path(), id),
            segment_path(dir.path(), id + 5),
        )
        .unwrap();
        let mut seen = 0;
        replay_segment(dir.path(), id + 5, |_, _| seen += 1).unwrap();
        assert_eq!(seen, 0);

        let mut v1 = MAGIC_V1.to_vec();
        v1.extend_from_slice(&3u64.to_le_bytes());
        for p in [&b"one"[..], b"two"] {
            let len = (p.len() as u32).to_le_bytes();
            let crc = crc32c::crc32c_append(crc32c::crc32c(&len), p);
            v1.extend_from_slice(&len);
            v1.extend_from_slice(&crc.to_le_bytes());
            v1.extend_from_slice(p);
        }
        v1.resize(4096, 0);
        fs::write(segment_path(dir.path(), 3), v1).unwrap();
        let mut got = Vec::new();
        replay_segment(dir.path(), 3, |_, p| got.push(p.to_vec())).unwrap();
        assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
    }

    /// An entry masked with any earlier id is told apart from the current segment's own, and
    /// from damage that happens to leave a later id's mask.
    #[test]
    fn entries_of_earlier_segments_are_recognised() {
        for id in [2u64, 3, 17, 1000, 1 << 31] {
            for earlier in [1u64, id / 2, id - 1] {
                let unmasked = 0xDEAD_BEEF_u32.wrapping_add(earlier as u32);
                let stored = unmasked ^ id_mask(earlier);
                assert_ne!(stored, unmasked ^ id_mask(id));
                assert!(is_left_by_earlier_segment(stored, unmasked, id));
            }
            let later = (id as u32).rotate_left(7);
            assert!(!is_left_by_earlier_segment(
                later ^ id_mask(id + 1),
                later,
                id
            ));
        }
    }

    /// Rollovers onto prepared segments and onto segments created on the spot both keep
    /// every entry, in order, in segments numbered without gaps.
    #[test]
    fn entries_survive_rollovers_onto_prepared_segments() {
        let dir = tempfile::tempdir().unwrap();
        let log = CommitLog::open(dir.path(), CommitlogSync::default(), 4096, 0).unwrap();
        let table = TableId::from_u128(7);
        let mut written = Vec::new();
        for i in 0u32..400 {
            if i % 50 == 0 {
                log.prepare_spare();
            }
            let payload = format!("entry {i:>4} {}", "x".repeat((i % 90) as usize));
            log.append(table, payload.as_bytes()).unwrap();
            written.push(payload.into_bytes());
        }
        // The spare follows the active segment.
        let active = log.current_pos().segment;
        log.prepare_spare();
        assert_eq!(
            log.spare.lock().as_ref().map(|(id, _)| *id),
            Some(active + 1)
        );
        log.sync_all().unwrap();
        let mut segments = list_segments(dir.path()).unwrap();
        assert_eq!(
            segments.pop(),
            Some(active + 1),
            "the unused spare comes last"
        );
        assert!(segments.len() > 5, "{segments:?}");
        assert!(
            segments.windows(2).all(|w| w[1] == w[0] + 1),
            "{segments:?}"
        );
        let mut replayed = Vec::new();
        for id in segments {
            replay_segment(dir.path(), id, |_, p| replayed.push(p.to_vec())).unwrap();
        }
        assert_eq!(replayed, written);
    }
}
