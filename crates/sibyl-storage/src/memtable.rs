//! The in-memory write buffer of one table: partitions in B-trees, one per slice of the token
//! ring behind its own lock.
//!
//! A concurrent skip list cost a cache miss per level on every write (a fifth of a write's CPU
//! at a few hundred thousand partitions); B-tree nodes keep keys side by side, and cutting the
//! token ring into contiguous shards keeps each tree shallow and writers on different shards
//! apart. Shards follow token order, so walking them in turn visits partitions in order.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::model::PartitionKey;
use crate::partition::PartitionData;

/// log2 of the number of shards.
const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;

type Shard = RwLock<BTreeMap<PartitionKey, PartitionData>>;

pub struct Memtable {
    /// Unique within the process, so observers can tell memtables apart.
    id: u64,
    shards: Box<[Shard]>,
    size: AtomicU64,
    min_timestamp: AtomicI64,
}

impl Default for Memtable {
    fn default() -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Memtable {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            size: AtomicU64::new(0),
            min_timestamp: AtomicI64::new(i64::MAX),
        }
    }
}

/// The shard of a token: its top bits, once the signed order is mapped onto unsigned order.
fn shard_of(token: i64) -> usize {
    (((token as u64) ^ (1 << 63)) >> (64 - SHARD_BITS)) as usize
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
        let key_heap = key.key.len().next_multiple_of(16);
        let mut shard = self.shard(&key).write();
        // One search for both cases (most writes of a load create their partition).
        match shard.entry(key) {
            std::collections::btree_map::Entry::Occupied(mut p) => p.get_mut().merge(data),
            std::collections::btree_map::Entry::Vacant(v) => {
                // The B-tree entry (key and value inline, nodes taken as half full), the key
                // bytes, allocator overhead. (The rows' storage is in `data`'s estimate.)
                added += (2
                    * (std::mem::size_of::<PartitionKey>() + std::mem::size_of::<PartitionData>())
                    + key_heap
                    + 48) as u64;
                v.insert(data);
            }
        }
        drop(shard);
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
        self.shards.iter().map(|s| s.read().len()).sum()
    }

    pub fn min_timestamp(&self) -> i64 {
        self.min_timestamp.load(Ordering::Relaxed)
    }

    pub fn contains(&self, key: &PartitionKey) -> bool {
        self.shard(key).read().contains_key(key)
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
        self.shard(key)
            .read()
            .get(key)
            .map(|p| p.sliced(ranges, max_rows, reversed))
    }

    /// The first key strictly after `after` (or the first key at/after `from`).
    pub fn next_key(&self, lower: Bound<&PartitionKey>) -> Option<PartitionKey> {
        let first = match lower {
            Bound::Unbounded => 0,
            Bound::Included(k) | Bound::Excluded(k) => shard_of(k.token),
        };
        // Later shards hold only greater keys, so the bound can apply to every shard.
        self.shards[first..].iter().find_map(|s| {
            s.read()
                .range::<PartitionKey, _>((lower, Bound::Unbounded))
                .next()
                .map(|(k, _)| k.clone())
        })
    }

    /// All partitions in order (for flushing a frozen memtable).
    pub fn for_each(
        &self,
        mut f: impl FnMut(&PartitionKey, &PartitionData) -> crate::error::Result<()>,
    ) -> crate::error::Result<()> {
        for s in self.shards.iter() {
            for (k, p) in s.read().iter() {
                f(k, p)?;
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
