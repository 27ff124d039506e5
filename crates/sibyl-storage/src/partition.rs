//! The engine's internal, unresolved form of a partition (tombstones and all) with
//! Cassandra's reconciliation rules, resolution to a live view, and compaction purging.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;

use crate::sorted_map::{RowMap, VecMap};

use crate::model::{
    Cell, ColumnData, ColumnView, DeletionTime, LiveCell, LivenessInfo, Mutation, PartitionKey,
    PartitionView, RangeTombstone, RowUpdate, RowView, Slice, TableId,
};

/// Which of two cells wins, following Cassandra's `Cells.reconcile` for regular cells:
/// higher timestamp; on a tie, expiring-or-tombstone beats a regular live cell, a tombstone
/// beats an expiring cell, then the greater local deletion time, then the greater value.
/// (Counter cells, when added, will need their own merge instead of last-write-wins.)
pub fn reconcile<'a>(a: &'a Cell, b: &'a Cell) -> &'a Cell {
    if a.timestamp != b.timestamp {
        return if a.timestamp > b.timestamp { a } else { b };
    }
    let a_eot = a.value.is_none() || a.ttl > 0;
    let b_eot = b.value.is_none() || b.ttl > 0;
    if a_eot || b_eot {
        if a_eot != b_eot {
            return if a_eot { a } else { b };
        }
        let a_tomb = a.value.is_none();
        let b_tomb = b.value.is_none();
        if a_tomb != b_tomb {
            return if a_tomb { a } else { b };
        }
        if a.local_deletion_time != b.local_deletion_time {
            return if a.local_deletion_time > b.local_deletion_time {
                a
            } else {
                b
            };
        }
    }
    if a.value >= b.value {
        a
    } else {
        b
    }
}

/// True when deletion `a` supersedes `b` (Cassandra's `DeletionTime.supersedes`).
pub fn deletion_supersedes(a: &DeletionTime, b: &DeletionTime) -> bool {
    a.timestamp > b.timestamp
        || (a.timestamp == b.timestamp && a.local_deletion_time > b.local_deletion_time)
}

pub fn max_deletion(a: Option<DeletionTime>, b: Option<DeletionTime>) -> Option<DeletionTime> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if deletion_supersedes(&y, &x) { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

/// True when liveness `a` supersedes `b` (Cassandra's `LivenessInfo.supersedes`).
pub fn liveness_supersedes(a: &LivenessInfo, b: &LivenessInfo) -> bool {
    if a.timestamp != b.timestamp {
        return a.timestamp > b.timestamp;
    }
    let ae = a.ttl > 0;
    let be = b.ttl > 0;
    if ae == be {
        return a.expires_at > b.expires_at;
    }
    ae
}

fn max_liveness(a: Option<LivenessInfo>, b: Option<LivenessInfo>) -> Option<LivenessInfo> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if liveness_supersedes(&y, &x) { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

pub fn cell_is_live(c: &Cell, now: i64) -> bool {
    c.value.is_some() && (c.ttl <= 0 || c.local_deletion_time > now)
}

pub fn liveness_is_live(l: &LivenessInfo, now: i64) -> bool {
    l.ttl <= 0 || l.expires_at > now
}

pub fn bound_contains(start: &Bound<Bytes>, end: &Bound<Bytes>, c: &[u8]) -> bool {
    !before_start(start, c) && !past_end(end, c)
}

/// Whether clustering `c` sorts before a range starting at `start`.
pub fn before_start(start: &Bound<Bytes>, c: &[u8]) -> bool {
    match start {
        Bound::Unbounded => false,
        Bound::Included(s) => c < &s[..],
        Bound::Excluded(s) => c <= &s[..],
    }
}

/// True when `c` lies beyond the end bound (used to stop forward scans).
pub fn past_end(end: &Bound<Bytes>, c: &[u8]) -> bool {
    match end {
        Bound::Unbounded => false,
        Bound::Included(e) => c > &e[..],
        Bound::Excluded(e) => c >= &e[..],
    }
}

pub fn slice_contains(ranges: &[(Bound<Bytes>, Bound<Bytes>)], c: &[u8]) -> bool {
    ranges.iter().any(|(s, e)| bound_contains(s, e, c))
}

pub fn is_full_range(ranges: &[(Bound<Bytes>, Bound<Bytes>)]) -> bool {
    ranges
        .iter()
        .any(|(s, e)| matches!((s, e), (Bound::Unbounded, Bound::Unbounded)))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColData {
    Simple(Cell),
    Complex {
        deletion: Option<DeletionTime>,
        cells: BTreeMap<Bytes, Cell>,
    },
}

/// Puts `c` at `path`, or keeps the cell already there if it wins reconciliation.
fn merge_cell(cells: &mut BTreeMap<Bytes, Cell>, path: Bytes, c: Cell) {
    match cells.get_mut(&path) {
        Some(existing) => {
            if !std::ptr::eq(reconcile(existing, &c), existing) {
                *existing = c;
            }
        }
        None => {
            cells.insert(path, c);
        }
    }
}

/// Per-allocation overhead of the allocator (header and rounding), counted conservatively.
const MALLOC_OVERHEAD: usize = 16;
/// Entries of a `BTreeMap` node (std's B = 6).
const BTREE_CAPACITY: usize = 11;

/// Heap of a `BTreeMap<Bytes, V>` of `len` entries: one leaf allocated at full capacity
/// while it fits, else nodes taken as half full (plus internal nodes, small).
pub(crate) fn btree_bytes<V>(len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    let node = 16
        + BTREE_CAPACITY * (std::mem::size_of::<Bytes>() + std::mem::size_of::<V>())
        + MALLOC_OVERHEAD;
    let nodes = if len <= BTREE_CAPACITY {
        1
    } else {
        (2 * len).div_ceil(BTREE_CAPACITY) + 1
    };
    nodes * node
}

/// Heap behind a `Bytes`: its payload (rounded up by the allocator) and a shared header.
fn bytes_heap(b: &Bytes) -> usize {
    if b.is_empty() {
        0
    } else {
        b.len().next_multiple_of(16) + MALLOC_OVERHEAD + 32
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RowData {
    pub liveness: Option<LivenessInfo>,
    pub deletion: Option<DeletionTime>,
    pub columns: VecMap<Bytes, ColData>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartitionData {
    pub deletion: Option<DeletionTime>,
    pub range_tombstones: Vec<RangeTombstone>,
    /// Boxed: most partitions have none, and the memtable keeps partitions inline in B-tree
    /// nodes, where every byte of this struct is moved on inserts.
    pub static_row: Option<Box<RowData>>,
    pub rows: RowMap<Bytes, RowData>,
}

/// Min/max statistics collected over everything in a partition.
#[derive(Debug, Clone, Copy)]
pub struct DataStats {
    pub min_timestamp: i64,
    pub max_timestamp: i64,
    pub min_local_deletion_time: i64,
    pub tombstones: u64,
}

impl Default for DataStats {
    fn default() -> Self {
        DataStats {
            min_timestamp: i64::MAX,
            max_timestamp: i64::MIN,
            min_local_deletion_time: i64::MAX,
            tombstones: 0,
        }
    }
}

impl DataStats {
    fn ts(&mut self, t: i64) {
        self.min_timestamp = self.min_timestamp.min(t);
        self.max_timestamp = self.max_timestamp.max(t);
    }
    fn del(&mut self, d: &DeletionTime) {
        self.ts(d.timestamp);
        self.min_local_deletion_time = self.min_local_deletion_time.min(d.local_deletion_time);
        self.tombstones += 1;
    }
    fn cell(&mut self, c: &Cell) {
        self.ts(c.timestamp);
        if c.value.is_none() {
            self.tombstones += 1;
        }
        if c.value.is_none() || c.ttl > 0 {
            self.min_local_deletion_time = self.min_local_deletion_time.min(c.local_deletion_time);
        }
    }
    pub fn merge(&mut self, o: &DataStats) {
        self.min_timestamp = self.min_timestamp.min(o.min_timestamp);
        self.max_timestamp = self.max_timestamp.max(o.max_timestamp);
        self.min_local_deletion_time = self.min_local_deletion_time.min(o.min_local_deletion_time);
        self.tombstones += o.tombstones;
    }
}

impl ColData {
    fn merge(&mut self, other: ColData) {
        match (self, other) {
            (ColData::Simple(a), ColData::Simple(b)) => {
                if !std::ptr::eq(reconcile(a, &b), a) {
                    *a = b;
                }
            }
            (
                ColData::Complex { deletion, cells },
                ColData::Complex {
                    deletion: od,
                    cells: oc,
                },
            ) => {
                *deletion = max_deletion(*deletion, od);
                for (path, c) in oc {
                    merge_cell(cells, path, c);
                }
            }
            // A column whose kind changed (schema change): the incoming form replaces it.
            (s, o) => *s = o,
        }
    }
}

impl RowData {
    pub fn from_update(u: &RowUpdate) -> RowData {
        RowData::from_update_owned(u.clone())
    }

    /// Like `from_update`, moving the values instead of sharing them with the update.
    pub fn from_update_owned(u: RowUpdate) -> RowData {
        let mut r = RowData {
            liveness: u.liveness,
            deletion: u.deletion,
            columns: VecMap::with_capacity(u.columns.len()),
        };
        for cd in u.columns {
            let (name, data) = match cd {
                ColumnData::Simple { column, cell } => {
                    (crate::names::intern(&column), ColData::Simple(cell))
                }
                ColumnData::Complex {
                    column,
                    complex_deletion,
                    cells,
                } => {
                    let mut m: BTreeMap<Bytes, Cell> = BTreeMap::new();
                    for (p, c) in cells {
                        merge_cell(&mut m, p, c);
                    }
                    (
                        crate::names::intern(&column),
                        ColData::Complex {
                            deletion: complex_deletion,
                            cells: m,
                        },
                    )
                }
            };
            r.merge_column(name, data);
        }
        r
    }

    fn merge_column(&mut self, name: Bytes, data: ColData) {
        match self.columns.get_mut(&name) {
            Some(e) => e.merge(data),
            None => {
                self.columns.insert(name, data);
            }
        }
    }

    pub fn merge(&mut self, other: RowData) {
        self.liveness = max_liveness(self.liveness, other.liveness);
        self.deletion = max_deletion(self.deletion, other.deletion);
        for (n, d) in other.columns {
            self.merge_column(n, d);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.liveness.is_none() && self.deletion.is_none() && self.columns.is_empty()
    }

    /// Conservative estimate of the heap this row uses (memtable accounting): the columns'
    /// vector at its capacity, B-tree nodes at their allocated capacity, `Bytes` payloads and
    /// shared headers, allocator overhead.
    pub fn estimated_size(&self) -> usize {
        let mut s = match self.columns.capacity() {
            0 => 0,
            n => n * std::mem::size_of::<(Bytes, ColData)>() + MALLOC_OVERHEAD,
        };
        // Names are shared (`names::intern`: rows are built by `from_update` or decoded).
        for c in self.columns.values() {
            match c {
                ColData::Simple(c) => s += c.value.as_ref().map_or(0, bytes_heap),
                ColData::Complex { cells, .. } => {
                    s += btree_bytes::<Cell>(cells.len());
                    for (p, c) in cells {
                        s += bytes_heap(p) + c.value.as_ref().map_or(0, bytes_heap);
                    }
                }
            }
        }
        s
    }

    pub fn stats(&self, st: &mut DataStats) {
        if let Some(l) = &self.liveness {
            st.ts(l.timestamp);
            if l.ttl > 0 {
                st.min_local_deletion_time = st.min_local_deletion_time.min(l.expires_at);
            }
        }
        if let Some(d) = &self.deletion {
            st.del(d);
        }
        for c in self.columns.values() {
            match c {
                ColData::Simple(c) => st.cell(c),
                ColData::Complex { deletion, cells } => {
                    if let Some(d) = deletion {
                        st.del(d);
                    }
                    cells.values().for_each(|c| st.cell(c));
                }
            }
        }
    }

    /// The live view of this row, given the deletion covering it from above.
    pub fn resolve(
        &self,
        clustering: &Bytes,
        covering: Option<DeletionTime>,
        now: i64,
    ) -> Option<RowView> {
        let del = max_deletion(covering, self.deletion);
        let dead = |ts: i64| del.is_some_and(|d| ts <= d.timestamp);
        let liveness = self
            .liveness
            .filter(|l| !dead(l.timestamp) && liveness_is_live(l, now));
        let live_cell = |c: &Cell, dead_ts: Option<i64>| -> Option<LiveCell> {
            if dead_ts.is_some_and(|d| c.timestamp <= d) || !cell_is_live(c, now) {
                return None;
            }
            Some(LiveCell {
                value: c.value.clone().unwrap_or_default(),
                timestamp: c.timestamp,
                ttl: c.ttl,
                expires_at: if c.ttl > 0 { c.local_deletion_time } else { 0 },
            })
        };
        let mut columns = Vec::new();
        for (name, cd) in &self.columns {
            match cd {
                ColData::Simple(c) => {
                    if let Some(lc) = live_cell(c, del.map(|d| d.timestamp)) {
                        columns.push((name.clone(), ColumnView::Simple(lc)));
                    }
                }
                ColData::Complex { deletion, cells } => {
                    let cdel = max_deletion(del, *deletion).map(|d| d.timestamp);
                    let live: Vec<(Bytes, LiveCell)> = cells
                        .iter()
                        .filter_map(|(p, c)| live_cell(c, cdel).map(|lc| (p.clone(), lc)))
                        .collect();
                    if !live.is_empty() {
                        columns.push((name.clone(), ColumnView::Complex(live)));
                    }
                }
            }
        }
        if liveness.is_none() && columns.is_empty() {
            return None;
        }
        Some(RowView {
            clustering: clustering.clone(),
            liveness,
            columns,
        })
    }

    /// Compaction: drop data shadowed by `covering` (and the row's own deletions), turn expired
    /// cells into tombstones, purge purgeable tombstones. Returns false when the row is empty.
    pub fn compact(&mut self, covering: Option<DeletionTime>, p: &Purger) -> bool {
        if let (Some(d), Some(c)) = (self.deletion, covering) {
            if !deletion_supersedes(&d, &c) {
                self.deletion = None;
            }
        }
        let del = max_deletion(covering, self.deletion);
        let dead = |ts: i64| del.is_some_and(|d| ts <= d.timestamp);
        if let Some(l) = self.liveness {
            let expired_purgeable =
                l.ttl > 0 && l.expires_at <= p.now && p.purgeable(l.timestamp, l.expires_at);
            if dead(l.timestamp) || expired_purgeable {
                self.liveness = None;
            }
        }
        self.columns.retain(|_, cd| match cd {
            ColData::Simple(c) => p.compact_cell(c, del.map(|d| d.timestamp)),
            ColData::Complex { deletion, cells } => {
                if let (Some(cd), Some(d)) = (*deletion, del) {
                    if !deletion_supersedes(&cd, &d) {
                        *deletion = None;
                    }
                }
                let cdel = max_deletion(del, *deletion).map(|d| d.timestamp);
                cells.retain(|_, c| p.compact_cell(c, cdel));
                if let Some(d) = *deletion {
                    if p.purgeable(d.timestamp, d.local_deletion_time) {
                        *deletion = None;
                    }
                }
                deletion.is_some() || !cells.is_empty()
            }
        });
        if let Some(d) = self.deletion {
            if p.purgeable(d.timestamp, d.local_deletion_time) {
                self.deletion = None;
            }
        }
        !self.is_empty()
    }
}

/// Decides what compaction may purge.
pub struct Purger<'a> {
    pub now: i64,
    /// Tombstones whose local deletion time is before this may be purged...
    pub gc_before: i64,
    /// ...if their timestamp is below this (no older data may exist outside the compaction).
    /// Finding it means probing every other SSTable's filter and the memtables, so it is
    /// computed only for partitions that have a tombstone old enough to ask about.
    max_purgeable_ts: std::cell::OnceCell<i64>,
    max_purgeable: &'a dyn Fn() -> i64,
}

impl<'a> Purger<'a> {
    pub fn new(now: i64, gc_before: i64, max_purgeable: &'a dyn Fn() -> i64) -> Self {
        Purger {
            now,
            gc_before,
            max_purgeable_ts: std::cell::OnceCell::new(),
            max_purgeable,
        }
    }

    pub fn purgeable(&self, ts: i64, ldt: i64) -> bool {
        ldt < self.gc_before && ts < *self.max_purgeable_ts.get_or_init(|| (self.max_purgeable)())
    }

    /// Returns false when the cell is to be dropped.
    fn compact_cell(&self, c: &mut Cell, dead_ts: Option<i64>) -> bool {
        if dead_ts.is_some_and(|d| c.timestamp <= d) {
            return false;
        }
        if c.value.is_some() && c.ttl > 0 && c.local_deletion_time <= self.now {
            // Expired: becomes a tombstone deleted at its expiry time.
            *c = Cell {
                timestamp: c.timestamp,
                value: None,
                ttl: 0,
                local_deletion_time: c.local_deletion_time,
            };
        }
        if c.value.is_none() && self.purgeable(c.timestamp, c.local_deletion_time) {
            return false;
        }
        true
    }
}

impl PartitionData {
    pub fn from_mutation(m: &Mutation) -> PartitionData {
        PartitionData::from_mutation_owned(m.clone())
    }

    /// Like `from_mutation`, moving the values instead of sharing them with the mutation.
    pub fn from_mutation_owned(m: Mutation) -> PartitionData {
        let mut p = PartitionData {
            deletion: m.partition_deletion,
            range_tombstones: Vec::new(),
            static_row: m
                .static_row
                .map(|u| Box::new(RowData::from_update_owned(u))),
            rows: RowMap::with_capacity(m.rows.len()),
        };
        for rt in m.range_tombstones {
            p.add_range_tombstone(rt);
        }
        for mut r in m.rows {
            let clustering = std::mem::take(&mut r.clustering);
            p.merge_row(clustering, RowData::from_update_owned(r));
        }
        p
    }

    fn add_range_tombstone(&mut self, rt: RangeTombstone) {
        if !self.range_tombstones.contains(&rt) {
            self.range_tombstones.push(rt);
        }
    }

    fn merge_row(&mut self, c: Bytes, r: RowData) {
        match self.rows.get_mut(&c) {
            Some(e) => e.merge(r),
            None => {
                self.rows.insert(c, r);
            }
        }
    }

    pub fn merge(&mut self, other: PartitionData) {
        self.deletion = max_deletion(self.deletion, other.deletion);
        for rt in other.range_tombstones {
            self.add_range_tombstone(rt);
        }
        match (&mut self.static_row, other.static_row) {
            (Some(a), Some(b)) => a.merge(*b),
            (a @ None, b) => *a = b,
            (_, None) => {}
        }
        if self.rows.is_empty() {
            self.rows = other.rows;
        } else {
            for (c, r) in other.rows {
                self.merge_row(c, r);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.deletion.is_none()
            && self.range_tombstones.is_empty()
            && self.static_row.is_none()
            && self.rows.is_empty()
    }

    /// A copy holding only the rows within `ranges` (plus all partition-level data), at most
    /// `max_rows` of them in clustering order; the second value is the last clustering taken
    /// when the budget cut the copy short.
    ///
    /// With `reversed`, the budget applies from the end backwards and the returned
    /// clustering is the lowest one taken.
    pub fn sliced(
        &self,
        ranges: &[(Bound<Bytes>, Bound<Bytes>)],
        max_rows: usize,
        reversed: bool,
    ) -> (PartitionData, Option<Bytes>) {
        let mut rows = RowMap::new();
        let mut cut = None;
        let full = is_full_range(ranges);
        let all = [(Bound::Unbounded, Bound::Unbounded)];
        let ranges = if full { &all[..] } else { ranges };
        let mut take = |c: &Bytes, r: &RowData, rows: &mut RowMap<Bytes, RowData>| -> bool {
            if rows.len() >= max_rows {
                cut = if reversed {
                    rows.keys().next().cloned()
                } else {
                    rows.keys().next_back().cloned()
                };
                return false;
            }
            rows.insert(c.clone(), r.clone());
            true
        };
        let order: Vec<&(Bound<Bytes>, Bound<Bytes>)> = if reversed {
            ranges.iter().rev().collect()
        } else {
            ranges.iter().collect()
        };
        'outer: for (s, e) in order {
            if is_empty_range(s, e) {
                continue;
            }
            let it = self.rows.range::<Bytes, _>((s.clone(), e.clone()));
            if reversed {
                for (c, r) in it.rev() {
                    if !take(c, r, &mut rows) {
                        break 'outer;
                    }
                }
            } else {
                for (c, r) in it {
                    if !take(c, r, &mut rows) {
                        break 'outer;
                    }
                }
            }
        }
        let p = PartitionData {
            deletion: self.deletion,
            range_tombstones: self.range_tombstones.clone(),
            static_row: self.static_row.clone(),
            rows,
        };
        (p, cut)
    }

    /// Conservative estimate of the heap this partition's data uses (see
    /// `RowData::estimated_size`); the rows map is charged as if nodes were half full, which
    /// also covers merging many single-row mutations into one partition.
    pub fn estimated_size(&self) -> usize {
        let mut s = 64
            + self.range_tombstones.len()
                * (std::mem::size_of::<RangeTombstone>() + 2 * (MALLOC_OVERHEAD + 32));
        if let Some(r) = &self.static_row {
            s += std::mem::size_of::<RowData>() + MALLOC_OVERHEAD + r.estimated_size();
        }
        s += self.rows.structure_bytes();
        for (c, r) in &self.rows {
            s += bytes_heap(c) + r.estimated_size();
        }
        s
    }

    pub fn stats(&self) -> DataStats {
        let mut st = DataStats::default();
        if let Some(d) = &self.deletion {
            st.del(d);
        }
        for rt in &self.range_tombstones {
            st.del(&rt.deletion);
        }
        if let Some(r) = &self.static_row {
            r.stats(&mut st);
        }
        for r in self.rows.values() {
            r.stats(&mut st);
        }
        st
    }

    /// The deletion covering clustering `c` from partition level and range tombstones.
    fn covering(&self, c: &[u8]) -> Option<DeletionTime> {
        let mut d = self.deletion;
        for rt in &self.range_tombstones {
            if bound_contains(&rt.start, &rt.end, c) {
                d = max_deletion(d, Some(rt.deletion));
            }
        }
        d
    }

    /// The live view for `slice` at `now`; None when no live static row and no live row.
    pub fn resolve(&self, key: &PartitionKey, slice: &Slice, now: i64) -> Option<PartitionView> {
        let static_row = self
            .static_row
            .as_ref()
            .and_then(|r| r.resolve(&Bytes::new(), self.deletion, now))
            .filter(|r| !r.columns.is_empty());
        let limit = slice.limit.unwrap_or(usize::MAX);
        let mut rows = Vec::new();
        let visit = |c: &Bytes, r: &RowData, rows: &mut Vec<RowView>| -> bool {
            if rows.len() >= limit {
                return false;
            }
            if let Some(v) = r.resolve(c, self.covering(c), now) {
                rows.push(v);
            }
            rows.len() < limit
        };
        let ranges: Vec<&(Bound<Bytes>, Bound<Bytes>)> = if slice.reversed {
            slice.ranges.iter().rev().collect()
        } else {
            slice.ranges.iter().collect()
        };
        'outer: for (s, e) in ranges {
            if is_empty_range(s, e) {
                continue;
            }
            let it = self.rows.range::<Bytes, _>((s.clone(), e.clone()));
            if slice.reversed {
                for (c, r) in it.rev() {
                    if !visit(c, r, &mut rows) {
                        break 'outer;
                    }
                }
            } else {
                for (c, r) in it {
                    if !visit(c, r, &mut rows) {
                        break 'outer;
                    }
                }
            }
        }
        if static_row.is_none() && rows.is_empty() {
            return None;
        }
        Some(PartitionView {
            key: key.clone(),
            static_row,
            rows,
        })
    }

    /// Compaction-time cleanup; returns false when nothing at all remains.
    pub fn compact(&mut self, p: &Purger) -> bool {
        let cov = self.compact_header(p);
        self.rows.retain(|c, r| r.compact(cov.covering(c), p));
        !self.is_empty()
    }

    /// Compacts the partition-level parts (deletion, range tombstones, static row); returns
    /// what covers the rows, to compact them one by one with `RowData::compact`.
    pub fn compact_header(&mut self, p: &Purger) -> Coverage {
        let pdel = self.deletion;
        self.range_tombstones.retain(|rt| match pdel {
            Some(d) => deletion_supersedes(&rt.deletion, &d),
            None => true,
        });
        let cov = Coverage {
            deletion: pdel,
            range_tombstones: self.range_tombstones.clone(),
        };
        if let Some(s) = &mut self.static_row {
            if !s.compact(pdel, p) {
                self.static_row = None;
            }
        }
        self.range_tombstones
            .retain(|rt| !p.purgeable(rt.deletion.timestamp, rt.deletion.local_deletion_time));
        if let Some(d) = self.deletion {
            if p.purgeable(d.timestamp, d.local_deletion_time) {
                self.deletion = None;
            }
        }
        cov
    }
}

/// Raw (unresolved) reads: the stored form of a slice, for a coordinator to merge replicas.
impl PartitionData {
    /// The rows of the slice in the slice's order, copied as stored (tombstones and all),
    /// stopping after the `slice.limit`-th live row at `now`; rows that only carry tombstones
    /// or dead data are kept up to that point (they may shadow other replicas' rows). Range
    /// tombstones are kept whole (not clipped) when they may overlap the slice; the partition
    /// deletion and the whole static row are kept. The second value is the clustering of the
    /// `limit`-th live row when the limit was reached.
    pub fn raw_slice(&self, slice: &Slice, now: i64) -> (PartitionData, Option<Bytes>) {
        let limit = slice.limit.unwrap_or(usize::MAX);
        let mut rows = RowMap::new();
        let mut live = 0usize;
        let mut last = None;
        let ranges: Vec<&(Bound<Bytes>, Bound<Bytes>)> = if slice.reversed {
            slice.ranges.iter().rev().collect()
        } else {
            slice.ranges.iter().collect()
        };
        let mut visit = |c: &Bytes, r: &RowData, rows: &mut RowMap<Bytes, RowData>| -> bool {
            if live >= limit {
                return false;
            }
            if r.is_empty() {
                return true;
            }
            rows.insert(c.clone(), r.clone());
            if r.resolve(c, self.covering(c), now).is_some() {
                live += 1;
                if live >= limit {
                    last = Some(c.clone());
                    return false;
                }
            }
            true
        };
        'outer: for (s, e) in ranges {
            if limit == 0 {
                break;
            }
            if is_empty_range(s, e) {
                continue;
            }
            let it = self.rows.range::<Bytes, _>((s.clone(), e.clone()));
            if slice.reversed {
                for (c, r) in it.rev() {
                    if !visit(c, r, &mut rows) {
                        break 'outer;
                    }
                }
            } else {
                for (c, r) in it {
                    if !visit(c, r, &mut rows) {
                        break 'outer;
                    }
                }
            }
        }
        let full = is_full_range(&slice.ranges);
        let range_tombstones = self
            .range_tombstones
            .iter()
            .filter(|rt| {
                full || slice
                    .ranges
                    .iter()
                    .any(|(s, e)| ranges_overlap(&rt.start, &rt.end, s, e))
            })
            .cloned()
            .collect();
        let p = PartitionData {
            deletion: self.deletion,
            range_tombstones,
            static_row: self.static_row.clone().filter(|r| !r.is_empty()),
            rows,
        };
        (p, last)
    }

    /// The mutation that writes exactly this data.
    pub fn to_mutation(&self, table: TableId, key: &PartitionKey) -> Mutation {
        Mutation {
            table,
            key: key.clone(),
            partition_deletion: self.deletion,
            range_tombstones: self.range_tombstones.clone(),
            static_row: self.static_row.as_ref().map(|r| r.to_update(Bytes::new())),
            rows: self
                .rows
                .iter()
                .map(|(c, r)| r.to_update(c.clone()))
                .collect(),
        }
    }
}

impl RowData {
    /// The update that writes exactly this row.
    pub fn to_update(&self, clustering: Bytes) -> RowUpdate {
        RowUpdate {
            clustering,
            liveness: self.liveness,
            deletion: self.deletion,
            columns: self
                .columns
                .iter()
                .map(|(name, cd)| match cd {
                    ColData::Simple(c) => ColumnData::Simple {
                        column: name.clone(),
                        cell: c.clone(),
                    },
                    ColData::Complex { deletion, cells } => ColumnData::Complex {
                        column: name.clone(),
                        complex_deletion: *deletion,
                        cells: cells.iter().map(|(p, c)| (p.clone(), c.clone())).collect(),
                    },
                })
                .collect(),
        }
    }
}

/// Start bounds ordered by where they begin, end bounds by where they end.
fn start_cmp(a: &Bound<Bytes>, b: &Bound<Bytes>) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a, b) {
        (Bound::Unbounded, Bound::Unbounded) => Equal,
        (Bound::Unbounded, _) => Less,
        (_, Bound::Unbounded) => Greater,
        (Bound::Included(x), Bound::Included(y)) | (Bound::Excluded(x), Bound::Excluded(y)) => {
            x.cmp(y)
        }
        (Bound::Included(x), Bound::Excluded(y)) => x.cmp(y).then(Less),
        (Bound::Excluded(x), Bound::Included(y)) => x.cmp(y).then(Greater),
    }
}

fn end_cmp(a: &Bound<Bytes>, b: &Bound<Bytes>) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a, b) {
        (Bound::Unbounded, Bound::Unbounded) => Equal,
        (Bound::Unbounded, _) => Greater,
        (_, Bound::Unbounded) => Less,
        (Bound::Included(x), Bound::Included(y)) | (Bound::Excluded(x), Bound::Excluded(y)) => {
            x.cmp(y)
        }
        (Bound::Included(x), Bound::Excluded(y)) => x.cmp(y).then(Greater),
        (Bound::Excluded(x), Bound::Included(y)) => x.cmp(y).then(Less),
    }
}

/// Whether two clustering ranges may share a key (conservative: adjacent exclusive bounds
/// such as `(a, a\0)` count as overlapping).
pub fn ranges_overlap(
    s1: &Bound<Bytes>,
    e1: &Bound<Bytes>,
    s2: &Bound<Bytes>,
    e2: &Bound<Bytes>,
) -> bool {
    let s = if start_cmp(s1, s2).is_ge() { s1 } else { s2 };
    let e = if end_cmp(e1, e2).is_le() { e1 } else { e2 };
    !is_empty_range(s, e) && !is_empty_range(s1, e1) && !is_empty_range(s2, e2)
}

/// Partition-level deletions covering rows during compaction (before purging them).
pub struct Coverage {
    deletion: Option<DeletionTime>,
    range_tombstones: Vec<RangeTombstone>,
}

impl Coverage {
    pub fn covering(&self, c: &[u8]) -> Option<DeletionTime> {
        let mut d = self.deletion;
        for rt in &self.range_tombstones {
            if bound_contains(&rt.start, &rt.end, c) {
                d = max_deletion(d, Some(rt.deletion));
            }
        }
        d
    }
}

/// BTreeMap::range panics on start > end or equal excluded bounds; such ranges are empty.
pub fn is_empty_range(s: &Bound<Bytes>, e: &Bound<Bytes>) -> bool {
    match (s, e) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b))
        | (Bound::Excluded(a), Bound::Excluded(b)) => a >= b,
        _ => false,
    }
}

/// A live row with one regular column `v` holding `value` (for tests).
#[cfg(test)]
pub(crate) fn one_column_row(value: Bytes) -> RowData {
    let mut r = RowData {
        liveness: Some(LivenessInfo {
            timestamp: 1,
            ttl: 0,
            expires_at: 0,
        }),
        ..Default::default()
    };
    r.columns.insert(
        Bytes::from_static(b"v"),
        ColData::Simple(Cell {
            timestamp: 1,
            value: Some(value),
            ttl: 0,
            local_deletion_time: 0,
        }),
    );
    r
}
