//! A bounded cache of decompressed, checksum-verified SSTable data blocks, shared by all
//! tables of an engine: sharded CLOCK (an LRU approximation) keyed by (SSTable instance id, block offset).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
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

/// Keys are two integers the cache chose itself, so a multiply-mix is hash enough (SipHash
/// was a visible part of every point read).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(*b as u64);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

type Key = (u64, u64);

struct Slot {
    key: Key,
    block: Option<Block>,
    /// Set by a hit, cleared by the clock hand: a block survives one sweep per hit.
    referenced: bool,
}

/// One shard: a CLOCK approximation of LRU. A hit only sets a flag, where an exact LRU
/// reordered a tree on every read.
#[derive(Default)]
struct Shard {
    map: HashMap<Key, usize, BuildHasherDefault<KeyHasher>>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    hand: usize,
    bytes: usize,
}

impl Shard {
    fn remove_slot(&mut self, i: usize) {
        if let Some(b) = self.slots[i].block.take() {
            self.bytes -= charge(&b);
            self.map.remove(&self.slots[i].key);
            self.free.push(i);
        }
    }

    /// Evicts unreferenced blocks under the hand until the shard fits `capacity`.
    fn shrink_to(&mut self, capacity: usize) {
        while self.bytes > capacity && !self.slots.is_empty() {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let i = self.hand;
            self.hand += 1;
            let slot = &mut self.slots[i];
            if slot.block.is_none() {
                continue;
            }
            if slot.referenced {
                slot.referenced = false;
            } else {
                self.remove_slot(i);
            }
        }
    }
}

/// Sharded block cache, bounded by total charged bytes.
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

    fn shard(&self, key: Key) -> &Mutex<Shard> {
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
        let i = *s.map.get(&key)?;
        let slot = &mut s.slots[i];
        slot.referenced = true;
        slot.block.clone()
    }

    pub fn insert(&self, sst: u64, off: u64, block: Block) {
        let size = charge(&block);
        if size > self.shard_capacity {
            return;
        }
        let key = (sst, off);
        let mut s = self.shard(key).lock();
        if let Some(&i) = s.map.get(&key) {
            s.remove_slot(i);
        }
        s.shrink_to(self.shard_capacity - size);
        let slot = Slot {
            key,
            block: Some(block),
            referenced: false,
        };
        let i = match s.free.pop() {
            Some(i) => {
                s.slots[i] = slot;
                i
            }
            None => {
                s.slots.push(slot);
                s.slots.len() - 1
            }
        };
        s.map.insert(key, i);
        s.bytes += size;
    }

    /// Drops every block of an SSTable (deleted or reopened).
    pub fn evict_sstable(&self, sst: u64) {
        if self.shard_capacity == 0 {
            return;
        }
        for sh in &self.shards {
            let mut s = sh.lock();
            for i in 0..s.slots.len() {
                if s.slots[i].block.is_some() && s.slots[i].key.0 == sst {
                    s.remove_slot(i);
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
        // A block read between insertions outlives a stream of blocks read once.
        let c = BlockCache::new(16 * 10_000);
        c.insert(2, 0, Arc::new(vec![0u8; 1000]));
        for i in 1..1000u64 {
            c.insert(2, i << 14, Arc::new(vec![0u8; 1000]));
            assert!(
                c.get(2, 0).is_some(),
                "hot block evicted after {i} insertions"
            );
            assert!(c.used() <= 16 * 10_000);
        }
        // Reinserting a key replaces its block without double-charging it.
        let used = c.used();
        c.insert(2, 0, Arc::new(vec![0u8; 1000]));
        assert_eq!(c.used(), used);
        let off = BlockCache::new(0);
        off.insert(1, 0, Arc::new(vec![1]));
        assert!(off.get(1, 0).is_none());
    }
}
