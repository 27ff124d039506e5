//! The commit log: append-only segments of CRC32C-protected entries, replayed on open.
//!
//! Segment file `CommitLog-<id>.log`: 8-byte magic, u64 segment id, then entries of
//! `[u32 len][u32 crc32c(len bytes ++ payload)][payload]`. A torn or corrupt entry ends the
//! replay of its segment. A segment is deleted once every table it holds data for has
//! flushed past it.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::Result;
use crate::model::TableId;
use crate::options::CommitlogSync;

const MAGIC: &[u8; 8] = b"SIBYLCL1";
const HEADER: u64 = 16;

/// A position in the commit log: everything appended before it has an end position <= it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ClPos {
    pub segment: u64,
    pub offset: u64,
}

struct Segment {
    /// Per table, the end offset of its last entry in this segment.
    dirty: HashMap<TableId, u64>,
}

struct Active {
    id: u64,
    file: Arc<File>,
    offset: u64,
}

struct Inner {
    active: Active,
    segments: BTreeMap<u64, Segment>,
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
    sync: Mutex<SyncState>,
    synced_cv: Condvar,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("CommitLog-{id}.log"))
}

/// Existing segment ids in `dir`, sorted.
pub fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    if dir.exists() {
        for e in fs::read_dir(dir)? {
            let name = e?.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name
                .strip_prefix("CommitLog-")
                .and_then(|s| s.strip_suffix(".log"))
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

/// Reads every intact entry of segment `id`, calling `f(end_position, payload)`.
/// Stops silently at a torn or corrupt tail.
pub fn replay_segment(dir: &Path, id: u64, mut f: impl FnMut(ClPos, &[u8])) -> Result<()> {
    let data = fs::read(segment_path(dir, id))?;
    if data.len() < HEADER as usize || &data[..8] != MAGIC {
        tracing::warn!(
            segment = id,
            "commit log segment without valid header; skipped"
        );
        return Ok(());
    }
    let mut pos = HEADER as usize;
    while data.len() - pos >= 8 {
        let len = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().unwrap());
        if len == 0 || data.len() - pos - 8 < len {
            break;
        }
        let payload = &data[pos + 8..pos + 8 + len];
        let mut c = crc32c::crc32c(&data[pos..pos + 4]);
        c = crc32c::crc32c_append(c, payload);
        if c != crc {
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

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

fn create_segment(dir: &Path, id: u64) -> Result<Arc<File>> {
    let mut f = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(segment_path(dir, id))?;
    let mut h = Vec::with_capacity(HEADER as usize);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&id.to_le_bytes());
    f.write_all(&h)?;
    f.sync_all()?;
    sync_dir(dir)?;
    Ok(Arc::new(f))
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
        let id = existing
            .last()
            .map_or(min_id, |l| (*l + 1).max(min_id))
            .max(1);
        let file = create_segment(dir, id)?;
        let mut segments = BTreeMap::new();
        for e in existing {
            // Old segments: held until the engine marks them replayed.
            segments.insert(
                e,
                Segment {
                    dirty: HashMap::from([(TableId::nil(), u64::MAX)]),
                },
            );
        }
        segments.insert(
            id,
            Segment {
                dirty: HashMap::new(),
            },
        );
        Ok(CommitLog {
            dir: dir.to_path_buf(),
            mode,
            segment_size: segment_size.max(4096),
            inner: Mutex::new(Inner {
                active: Active {
                    id,
                    file,
                    offset: HEADER,
                },
                segments,
            }),
            sync: Mutex::new(SyncState {
                synced: ClPos {
                    segment: id,
                    offset: HEADER,
                },
                syncing: false,
                last_sync: Instant::now(),
            }),
            synced_cv: Condvar::new(),
        })
    }

    /// Appends one entry; returns its end position.
    pub fn append(&self, table: TableId, payload: &[u8]) -> Result<ClPos> {
        let len = payload.len() as u32;
        let mut entry = Vec::with_capacity(payload.len() + 8);
        entry.extend_from_slice(&len.to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&len.to_le_bytes()), payload);
        entry.extend_from_slice(&crc.to_le_bytes());
        entry.extend_from_slice(payload);
        let mut inner = self.inner.lock();
        if inner.active.offset > HEADER
            && inner.active.offset + entry.len() as u64 > self.segment_size
        {
            // Roll: make the old segment fully durable first so sync positions stay monotonic.
            inner.active.file.sync_data()?;
            let id = inner.active.id + 1;
            let file = create_segment(&self.dir, id)?;
            let old = inner.active.id;
            inner.active = Active {
                id,
                file,
                offset: HEADER,
            };
            inner.segments.insert(
                id,
                Segment {
                    dirty: HashMap::new(),
                },
            );
            {
                let mut s = self.sync.lock();
                s.synced = s.synced.max(ClPos {
                    segment: id,
                    offset: HEADER,
                });
            }
            self.release_clean(&mut inner, old);
        }
        (&*inner.active.file).write_all(&entry)?;
        inner.active.offset += entry.len() as u64;
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
        let (file, end) = {
            let inner = self.inner.lock();
            (
                inner.active.file.clone(),
                ClPos {
                    segment: inner.active.id,
                    offset: inner.active.offset,
                },
            )
        };
        file.sync_data()?;
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
            if let Err(e) = fs::remove_file(segment_path(&self.dir, id)) {
                tracing::warn!(segment = id, error = %e, "could not delete commit log segment");
            }
        }
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
