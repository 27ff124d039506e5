//! The in-memory write buffer of one table: partitions in B-trees keyed by token, one per
//! slice of the token ring behind its own lock.
//!
//! A concurrent skip list cost a cache miss per level on every write (a fifth of a write's CPU
//! at a few hundred thousand partitions); B-tree nodes keep keys side by side, and cutting the
//! token ring into contiguous shards keeps each tree shallow and writers on different shards
//! apart. Shards follow token order, so walking them in turn visits partitions in order.
//!
//! The trees are keyed by the token alone and hold each partition behind a box: a search
//! reads 8-byte keys (eleven to a node in two cache lines, where (token, key bytes) pairs took
//! seven) and an insert shifts pointers, not partitions. Keys whose tokens collide share a
//! slot, chained in key order.

use std::cmp::Ordering as KeyOrder;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::model::PartitionKey;
use crate::partition::PartitionData;
use crate::yielding::Yielder;

/// log2 of the number of shards.
const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;

/// The partitions of one token: nearly always one.
struct Slot {
    key: PartitionKey,
    data: PartitionData,
    /// Partitions whose keys share this token and sort after this one.
    next: Option<Box<Slot>>,
}

impl Slot {
    fn chain(&self) -> impl Iterator<Item = &Slot> {
        std::iter::successors(Some(self), |s| s.next.as_deref())
    }

    fn find(&self, key: &PartitionKey) -> Option<&PartitionData> {
        self.chain().find(|s| s.key.key == key.key).map(|s| &s.data)
    }

    /// Merges into the partition of `key` or inserts it in key order; true if inserted.
    fn merge(self: &mut Box<Self>, key: PartitionKey, data: PartitionData) -> bool {
        let mut slot = self;
        loop {
            match slot.key.key.cmp(&key.key) {
                KeyOrder::Equal => {
                    slot.data.merge(data);
                    return false;
                }
                KeyOrder::Greater => {
                    let after = std::mem::replace(slot, Slot::boxed(key, data));
                    slot.next = Some(after);
                    return true;
                }
                KeyOrder::Less => {}
            }
            if slot.next.is_none() {
                slot.next = Some(Slot::boxed(key, data));
                return true;
            }
            slot = slot.next.as_mut().expect("checked above");
        }
    }

    fn boxed(key: PartitionKey, data: PartitionData) -> Box<Slot> {
        Box::new(Slot {
            key,
            data,
            next: None,
        })
    }
}

type Shard = RwLock<BTreeMap<i64, Box<Slot>>>;

/// Walking a memtable that is far larger than the caches (to flush it, then to free it) is
/// a chase of pointers into cold memory: the slot, its key, its rows, the first row's
/// clustering and columns, a column's value, one miss after another (about half of a flush
/// was spent waiting for them). Walks go through the slots in order, so the slots ahead are
/// known: each step asks for the memory the coming slots will need, one level deeper the
/// nearer a slot is, so several misses are outstanding at once instead of one.
mod lookahead {
    use super::Slot;

    /// How far ahead each level is asked for, from the slot itself to a column's value.
    const SLOT: usize = 12;
    const ROWS: usize = 8;
    const ROW: usize = 4;
    const VALUE: usize = 2;

    #[inline(always)]
    fn prefetch(p: *const u8) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint; it never faults, whatever the address.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = p;
    }

    /// Prefetches for the walk at position `i` of `slots` (`at(j)` is slot `j`, if any).
    /// Each level only reads memory an earlier step asked for.
    #[inline(always)]
    pub(super) fn ahead<'a>(i: usize, at: impl Fn(usize) -> Option<&'a Slot>) {
        if let Some(s) = at(i + SLOT) {
            let p = (s as *const Slot).cast::<u8>();
            prefetch(p);
            prefetch(p.wrapping_add(64));
            prefetch(p.wrapping_add(128));
        }
        if let Some(s) = at(i + ROWS) {
            prefetch(s.key.key.as_ptr());
            if let Some((c, _)) = s.data.rows.first_if_small() {
                let p = (c as *const bytes::Bytes).cast::<u8>();
                prefetch(p);
                prefetch(p.wrapping_add(64));
            }
        }
        if let Some((c, row)) = at(i + ROW).and_then(|s| s.data.rows.first_if_small()) {
            prefetch(c.as_ptr());
            if let Some((name, _)) = row.columns.first_key_value() {
                prefetch((name as *const bytes::Bytes).cast());
            }
        }
        if let Some((_, row)) = at(i + VALUE).and_then(|s| s.data.rows.first_if_small()) {
            if let Some((_, crate::partition::ColData::Simple(cell))) =
                row.columns.first_key_value()
            {
                if let Some(v) = &cell.value {
                    prefetch(v.as_ptr());
                }
            }
        }
    }
}

pub struct Memtable {
    /// Unique within the process, so observers can tell memtables apart.
    id: u64,
    shards: Box<[Shard]>,
    size: AtomicU64,
    partitions: AtomicU64,
    min_timestamp: AtomicI64,
}

impl Default for Memtable {
    fn default() -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Memtable {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            size: AtomicU64::new(0),
            partitions: AtomicU64::new(0),
            min_timestamp: AtomicI64::new(i64::MAX),
        }
    }
}

/// The shard of a token: its top bits, once the signed order is mapped onto unsigned order.
fn shard_of(token: i64) -> usize {
    (((token as u64) ^ (1 << 63)) >> (64 - SHARD_BITS)) as usize
}

/// Bytes accounted for a new partition beyond its data's own estimate: the B-tree entry
/// (token and pointer, nodes taken as half full), the boxed slot, the key bytes and the
/// allocator's overhead for the box and the key.
fn partition_overhead(key: &PartitionKey) -> u64 {
    (2 * (8 + 8) + std::mem::size_of::<Slot>() + key.key.len().next_multiple_of(16) + 2 * 16) as u64
}

impl Memtable {
    pub fn id(&self) -> u64 {
        self.id
    }

    fn shard(&self, key: &PartitionKey) -> &Shard {
        &self.shards[shard_of(key.token)]
    }

    /// Merges `data` into the partition; returns the estimated bytes added.
    pub fn apply(&self, key: PartitionKey, data: PartitionData) -> u64 {
        let st = data.stats();
        self.min_timestamp
            .fetch_min(st.min_timestamp, Ordering::Relaxed);
        let mut added = data.estimated_size() as u64;
        let overhead = partition_overhead(&key);
        let mut shard = self.shard(&key).write();
        // One search for both cases (most writes of a load create their partition).
        let inserted = match shard.entry(key.token) {
            std::collections::btree_map::Entry::Occupied(mut slot) => {
                slot.get_mut().merge(key, data)
            }
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(Slot::boxed(key, data));
                true
            }
        };
        drop(shard);
        if inserted {
            added += overhead;
            self.partitions.fetch_add(1, Ordering::Relaxed);
        }
        self.size.fetch_add(added, Ordering::Relaxed);
        added
    }

    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.read().is_empty())
    }

    pub fn partition_count(&self) -> usize {
        self.partitions.load(Ordering::Relaxed) as usize
    }

    pub fn min_timestamp(&self) -> i64 {
        self.min_timestamp.load(Ordering::Relaxed)
    }

    /// `f` of the partition of `key`, if present.
    fn with_partition<R>(
        &self,
        key: &PartitionKey,
        f: impl FnOnce(&PartitionData) -> R,
    ) -> Option<R> {
        self.shard(key)
            .read()
            .get(&key.token)
            .and_then(|slot| slot.find(key))
            .map(f)
    }

    pub fn contains(&self, key: &PartitionKey) -> bool {
        self.with_partition(key, |_| ()).is_some()
    }

    /// The partition restricted to `ranges`, at most `max_rows` rows; plus the last clustering
    /// taken if the budget cut it short.
    pub fn get_sliced(
        &self,
        key: &PartitionKey,
        ranges: &[(Bound<bytes::Bytes>, Bound<bytes::Bytes>)],
        max_rows: usize,
        reversed: bool,
    ) -> Option<(PartitionData, Option<bytes::Bytes>)> {
        self.with_partition(key, |p| p.sliced(ranges, max_rows, reversed))
    }

    /// The first key strictly after `after` (or the first key at/after `from`).
    pub fn next_key(&self, lower: Bound<&PartitionKey>) -> Option<PartitionKey> {
        let (first, from_token) = match lower {
            Bound::Unbounded => (0, Bound::Unbounded),
            Bound::Included(k) | Bound::Excluded(k) => {
                (shard_of(k.token), Bound::Included(k.token))
            }
        };
        let above = |k: &PartitionKey| match lower {
            Bound::Unbounded => true,
            Bound::Included(l) => k >= l,
            Bound::Excluded(l) => k > l,
        };
        // Later shards hold only greater tokens, so the bound can apply to every shard.
        self.shards[first..].iter().find_map(|s| {
            s.read()
                .range((from_token, Bound::Unbounded))
                .flat_map(|(_, slot)| slot.chain())
                .find(|slot| above(&slot.key))
                .map(|slot| slot.key.clone())
        })
    }

    /// Drops every partition, stepping `yielder` for each, so freeing a large memtable does
    /// not hold a core for long in one go.
    pub fn free_gradually(self, yielder: &mut Yielder) {
        for s in self.shards.iter() {
            let tree = std::mem::take(&mut *s.write());
            let mut slots: Vec<Option<Box<Slot>>> = tree.into_values().map(Some).collect();
            for i in 0..slots.len() {
                lookahead::ahead(i, |j| slots.get(j).and_then(|s| s.as_deref()));
                drop(slots[i].take());
                yielder.step();
            }
        }
    }

    /// All partitions in order (for flushing a frozen memtable).
    pub fn for_each(
        &self,
        mut f: impl FnMut(&PartitionKey, &PartitionData) -> crate::error::Result<()>,
    ) -> crate::error::Result<()> {
        for s in self.shards.iter() {
            let tree = s.read();
            let slots: Vec<&Slot> = tree.values().flat_map(|slot| slot.chain()).collect();
            for (i, p) in slots.iter().enumerate() {
                lookahead::ahead(i, |j| slots.get(j).copied());
                f(&p.key, &p.data)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell as StdCell;

    use bytes::Bytes;

    use crate::partition::RowData;

    use super::*;

    /// Counts the bytes allocated (net) by the current thread.
    struct Counting;
    thread_local! {
        static NET: StdCell<isize> = const { StdCell::new(0) };
    }
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            let _ = NET.try_with(|n| n.set(n.get() + l.size() as isize));
            System.alloc(l)
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            let _ = NET.try_with(|n| n.set(n.get() - l.size() as isize));
            System.dealloc(p, l)
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
            let _ = NET.try_with(|n| n.set(n.get() + new as isize - l.size() as isize));
            System.realloc(p, l, new)
        }
    }
    #[global_allocator]
    static A: Counting = Counting;

    fn one_row(c: u8) -> PartitionData {
        let mut p = PartitionData::default();
        p.rows.insert(Bytes::from(vec![c]), row(1));
        p
    }

    /// Keys whose tokens collide share a slot: each is found, merged and walked in
    /// (token, key) order, wherever it was inserted in the chain.
    #[test]
    fn colliding_tokens_keep_their_partitions_apart() {
        let m = Memtable::default();
        let key = |t: i64, k: &str| PartitionKey {
            token: t,
            key: Bytes::copy_from_slice(k.as_bytes()),
        };
        for (t, k, c) in [
            (5, "m", 1),
            (5, "c", 2),
            (5, "x", 3),
            (5, "h", 4),
            (-9, "z", 5),
        ] {
            m.apply(key(t, k), one_row(c));
        }
        m.apply(key(5, "h"), one_row(6));
        m.apply(key(5, "x"), one_row(7));
        assert_eq!(m.partition_count(), 5);
        let mut seen = Vec::new();
        m.for_each(|k, p| {
            seen.push((k.clone(), p.rows.len()));
            Ok(())
        })
        .unwrap();
        let expect = [
            (-9, "z", 1),
            (5, "c", 1),
            (5, "h", 2),
            (5, "m", 1),
            (5, "x", 2),
        ];
        let expect: Vec<_> = expect.iter().map(|&(t, k, n)| (key(t, k), n)).collect();
        assert_eq!(seen, expect);
        for (k, _) in &expect {
            assert!(m.contains(k));
            assert!(m
                .get_sliced(k, &[(Bound::Unbounded, Bound::Unbounded)], 10, false)
                .is_some());
        }
        assert!(!m.contains(&key(5, "a")));
        assert!(!m.contains(&key(6, "m")));
        assert!(m.get_sliced(&key(5, "d"), &[], 10, false).is_none());
        let next = |b: Bound<&PartitionKey>| m.next_key(b);
        assert_eq!(next(Bound::Unbounded), Some(key(-9, "z")));
        assert_eq!(next(Bound::Excluded(&key(-9, "z"))), Some(key(5, "c")));
        assert_eq!(next(Bound::Included(&key(5, "h"))), Some(key(5, "h")));
        assert_eq!(next(Bound::Excluded(&key(5, "h"))), Some(key(5, "m")));
        assert_eq!(next(Bound::Included(&key(5, "i"))), Some(key(5, "m")));
        assert_eq!(next(Bound::Excluded(&key(5, "x"))), None);
        assert_eq!(
            next(Bound::Included(&key(i64::MIN, ""))),
            Some(key(-9, "z"))
        );
    }

    fn row(value: usize) -> RowData {
        crate::partition::one_column_row(Bytes::from(vec![7u8; value]))
    }

    /// The accounted size covers the heap really used (bytes requested from the allocator;
    /// malloc's own headers are what the estimate's per-allocation overhead is for).
    #[test]
    fn accounting_covers_real_heap() {
        for (value, rows_per_partition) in [(1000, 100), (10, 100), (1000, 1), (0, 7), (100, 1)] {
            let before = NET.with(|n| n.get());
            let m = Memtable::default();
            for i in 0..20_000u64 {
                let pk = i / rows_per_partition;
                let key = PartitionKey {
                    token: pk as i64,
                    key: Bytes::from(pk.to_be_bytes().to_vec()),
                };
                let mut p = PartitionData::default();
                p.rows
                    .insert(Bytes::from(i.to_be_bytes().to_vec()), row(value));
                m.apply(key, p);
            }
            let used = (NET.with(|n| n.get()) - before) as u64;
            let counted = m.size();
            assert!(
                counted >= used && counted < used * 2,
                "value {value} B, {rows_per_partition} rows/partition: counted {counted}, heap {used}"
            );
            drop(m);
        }
    }
}
