//! The in-memory write buffer of one table: a concurrent skip list of partitions.

use std::ops::Bound;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crossbeam_skiplist::SkipMap;
use parking_lot::Mutex;

use crate::model::PartitionKey;
use crate::partition::PartitionData;

pub struct Memtable {
    map: SkipMap<PartitionKey, Mutex<PartitionData>>,
    size: AtomicU64,
    min_timestamp: AtomicI64,
}

impl Default for Memtable {
    fn default() -> Self {
        Memtable {
            map: SkipMap::new(),
            size: AtomicU64::new(0),
            min_timestamp: AtomicI64::new(i64::MAX),
        }
    }
}

impl Memtable {
    /// Merges `data` into the partition; returns the estimated bytes added.
    pub fn apply(&self, key: &PartitionKey, data: PartitionData) -> u64 {
        let st = data.stats();
        self.min_timestamp
            .fetch_min(st.min_timestamp, Ordering::Relaxed);
        let mut added = data.estimated_size() as u64;
        let entry = self.map.get_or_insert_with(key.clone(), || {
            added += key.key.len() as u64 + 64;
            Mutex::new(PartitionData::default())
        });
        entry.value().lock().merge(data);
        self.size.fetch_add(added, Ordering::Relaxed);
        added
    }

    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn min_timestamp(&self) -> i64 {
        self.min_timestamp.load(Ordering::Relaxed)
    }

    pub fn contains(&self, key: &PartitionKey) -> bool {
        self.map.contains_key(key)
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
        self.map
            .get(key)
            .map(|e| e.value().lock().sliced(ranges, max_rows, reversed))
    }

    /// The first key strictly after `after` (or the first key at/after `from`).
    pub fn next_key(&self, lower: Bound<&PartitionKey>) -> Option<PartitionKey> {
        self.map.lower_bound(lower).map(|e| e.key().clone())
    }

    /// All partitions in order (for flushing a frozen memtable).
    pub fn for_each(
        &self,
        mut f: impl FnMut(&PartitionKey, &PartitionData) -> crate::error::Result<()>,
    ) -> crate::error::Result<()> {
        for e in self.map.iter() {
            f(e.key(), &e.value().lock())?;
        }
        Ok(())
    }
}
