//! A bounded cache of decompressed, checksum-verified SSTable data blocks, shared by all
//! tables of an engine: sharded LRU keyed by (SSTable instance id, block offset).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

const SHARDS: usize = 16;
/// Bookkeeping charged per cached block besides its bytes (map entries, Arc, allocator).
const ENTRY_OVERHEAD: usize = 128;

pub type Block = Arc<Vec<u8>>;

/// Unique id of an opened SSTable (cache key part); never reused within a process.
pub fn next_sstable_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[derive(Default)]
struct Shard {
    map: HashMap<(u64, u64), (Block, u64)>,
    /// Recency order: tick -> key; the smallest tick is evicted first.
    lru: BTreeMap<u64, (u64, u64)>,
    tick: u64,
    bytes: usize,
}

pub struct BlockCache {
    shards: Vec<Mutex<Shard>>,
    shard_capacity: usize,
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlockCache({} B)", self.used())
    }
}

fn charge(b: &Block) -> usize {
    b.capacity() + ENTRY_OVERHEAD
}

impl BlockCache {
    /// A cache holding at most `capacity` bytes (0 disables it).
    pub fn new(capacity: u64) -> BlockCache {
        BlockCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_capacity: (capacity / SHARDS as u64) as usize,
        }
    }

    fn shard(&self, key: (u64, u64)) -> &Mutex<Shard> {
        let h = key
            .0
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(key.1 >> 10)
            .wrapping_mul(0xff51_afd7_ed55_8ccd);
        &self.shards[(h >> 59) as usize % SHARDS]
    }

    pub fn get(&self, sst: u64, off: u64) -> Option<Block> {
        if self.shard_capacity == 0 {
            return None;
        }
        let key = (sst, off);
        let mut s = self.shard(key).lock();
        let s = &mut *s;
        s.tick += 1;
        let tick = s.tick;
        let (b, t) = s.map.get_mut(&key)?;
        let b = b.clone();
        let old = std::mem::replace(t, tick);
        s.lru.remove(&old);
        s.lru.insert(tick, key);
        Some(b)
    }

    pub fn insert(&self, sst: u64, off: u64, block: Block) {
        let size = charge(&block);
        if size > self.shard_capacity {
            return;
        }
        let key = (sst, off);
        let mut s = self.shard(key).lock();
        let s = &mut *s;
        s.tick += 1;
        let tick = s.tick;
        if let Some((old, t)) = s.map.insert(key, (block, tick)) {
            s.lru.remove(&t);
            s.bytes -= charge(&old);
        }
        s.lru.insert(tick, key);
        s.bytes += size;
        while s.bytes > self.shard_capacity {
            let Some((_, k)) = s.lru.pop_first() else {
                break;
            };
            if let Some((b, _)) = s.map.remove(&k) {
                s.bytes -= charge(&b);
            }
        }
    }

    /// Drops every block of SSTable `sst` (when it is deleted).
    pub fn evict_sstable(&self, sst: u64) {
        if self.shard_capacity == 0 {
            return;
        }
        for sh in &self.shards {
            let mut s = sh.lock();
            let s = &mut *s;
            let keys: Vec<(u64, u64)> = s.map.keys().filter(|k| k.0 == sst).copied().collect();
            for k in keys {
                if let Some((b, t)) = s.map.remove(&k) {
                    s.lru.remove(&t);
                    s.bytes -= charge(&b);
                }
            }
        }
    }

    /// Bytes currently charged (blocks plus bookkeeping).
    pub fn used(&self) -> usize {
        self.shards.iter().map(|s| s.lock().bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_lru() {
        let c = BlockCache::new(16 * 10_000);
        for i in 0..1000u64 {
            c.insert(1, i << 14, Arc::new(vec![0u8; 1000]));
            assert!(c.used() <= 16 * 10_000);
        }
        // The most recent block survives; an early one was evicted.
        assert!(c.get(1, 999 << 14).is_some());
        assert!(c.get(1, 0).is_none());
        c.evict_sstable(1);
        assert_eq!(c.used(), 0);
        let off = BlockCache::new(0);
        off.insert(1, 0, Arc::new(vec![1]));
        assert!(off.get(1, 0).is_none());
    }
}
