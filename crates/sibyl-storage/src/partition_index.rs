//! The in-memory partition index of one SSTable, packed into flat arrays: per partition a
//! token, the end of its key in one shared key buffer and its position in the data blocks
//! (about 24 bytes plus the key), with row indexes kept only for the partitions that span
//! several blocks. An entry per partition as a struct with its own key allocation cost
//! about 150 bytes, which made a node's memory grow with the number of partitions on disk.

use std::cmp::Ordering;

use bytes::Bytes;

use crate::model::PartitionKey;

/// (first clustering in block, block, offset) for each block holding rows of a partition.
pub type RowIndex = [(Bytes, u32, u32)];

/// A partition's key as the index holds it.
#[derive(Clone, Copy, Debug)]
pub struct IndexedKey<'a> {
    pub token: i64,
    pub key: &'a [u8],
}

impl IndexedKey<'_> {
    pub fn partition_key(&self) -> PartitionKey {
        PartitionKey {
            token: self.token,
            key: Bytes::copy_from_slice(self.key),
        }
    }

    /// Orders like `PartitionKey`: by token, then key bytes.
    pub fn cmp_key(&self, k: &PartitionKey) -> Ordering {
        self.token
            .cmp(&k.token)
            .then_with(|| self.key.cmp(k.key.as_ref()))
    }
}

/// Where one partition's data is, as the index describes it.
#[derive(Clone, Copy, Debug)]
pub struct IndexedPartition<'a> {
    /// Data block, and offset in its decompressed bytes, of the partition's start record.
    pub block: u32,
    pub offset: u32,
    /// Empty unless the partition's rows span several blocks.
    pub row_index: &'a RowIndex,
}

#[derive(Default)]
pub struct PartitionIndex {
    tokens: Vec<i64>,
    keys: Vec<u8>,
    /// Where each key ends in `keys` (it starts where the previous one ends).
    key_ends: Vec<u64>,
    positions: Vec<(u32, u32)>,
    /// By partition number, ascending.
    row_indexes: Vec<(u32, Box<RowIndex>)>,
}

impl PartitionIndex {
    /// Room for `partitions` partitions whose keys take `key_bytes` in all.
    pub fn with_capacity(partitions: usize, key_bytes: usize) -> PartitionIndex {
        PartitionIndex {
            tokens: Vec::with_capacity(partitions),
            keys: Vec::with_capacity(key_bytes),
            key_ends: Vec::with_capacity(partitions),
            positions: Vec::with_capacity(partitions),
            row_indexes: Vec::new(),
        }
    }

    /// Appends the next partition (in key order).
    pub fn push(
        &mut self,
        key: &PartitionKey,
        block: u32,
        offset: u32,
        row_index: Vec<(Bytes, u32, u32)>,
    ) {
        if !row_index.is_empty() {
            self.row_indexes
                .push((self.tokens.len() as u32, row_index.into_boxed_slice()));
        }
        self.tokens.push(key.token);
        self.keys.extend_from_slice(&key.key);
        self.key_ends.push(self.keys.len() as u64);
        self.positions.push((block, offset));
    }

    /// Attaches a row index to the partition pushed last (known once its rows are written).
    /// The partition must have been pushed without one.
    pub fn set_last_row_index(&mut self, row_index: Vec<(Bytes, u32, u32)>) {
        let last = self.tokens.len() as u32 - 1;
        debug_assert!(self.row_indexes.last().is_none_or(|(i, _)| *i < last));
        self.row_indexes.push((last, row_index.into_boxed_slice()));
    }

    /// Gives back the slack of the vectors (their final sizes are known once loaded).
    pub fn shrink_to_fit(&mut self) {
        self.tokens.shrink_to_fit();
        self.keys.shrink_to_fit();
        self.key_ends.shrink_to_fit();
        self.positions.shrink_to_fit();
        self.row_indexes.shrink_to_fit();
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Bytes of key data held (the key buffer's length).
    pub fn key_bytes(&self) -> usize {
        self.keys.len()
    }

    pub fn tokens(&self) -> &[i64] {
        &self.tokens
    }

    /// Partition `i`'s key (what searches compare; cheaper than the whole entry).
    pub fn key(&self, i: usize) -> Option<IndexedKey<'_>> {
        let token = *self.tokens.get(i)?;
        let start = if i == 0 {
            0
        } else {
            self.key_ends[i - 1] as usize
        };
        let end = self.key_ends[i] as usize;
        Some(IndexedKey {
            token,
            key: &self.keys[start..end],
        })
    }

    pub fn get(&self, i: usize) -> Option<IndexedPartition<'_>> {
        let (block, offset) = *self.positions.get(i)?;
        let row_index = match self
            .row_indexes
            .binary_search_by_key(&(i as u32), |(p, _)| *p)
        {
            Ok(r) => &self.row_indexes[r].1[..],
            Err(_) => &[][..],
        };
        Some(IndexedPartition {
            block,
            offset,
            row_index,
        })
    }

    /// The number of leading partitions whose key satisfies `pred` (it must hold for a prefix).
    pub fn partition_point(&self, pred: impl Fn(&IndexedKey<'_>) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if pred(&self.key(mid).expect("in range")) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Memory held.
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.tokens.capacity() * 8
            + self.keys.capacity()
            + self.key_ends.capacity() * 8
            + self.positions.capacity() * 8
            + self
                .row_indexes
                .iter()
                .map(|(_, r)| 16 + r.len() * 40 + r.iter().map(|(c, ..)| c.len()).sum::<usize>())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(token: i64, k: &str) -> PartitionKey {
        PartitionKey {
            token,
            key: Bytes::copy_from_slice(k.as_bytes()),
        }
    }

    #[test]
    fn entries_come_back_as_pushed_and_search_in_key_order() {
        let mut idx = PartitionIndex::with_capacity(4, 8);
        let keys = [key(-5, "a"), key(3, "bb"), key(3, "c"), key(9, "")];
        for (i, k) in keys.iter().enumerate() {
            let ri = if i == 1 {
                vec![
                    (Bytes::from_static(b"x"), 1, 2),
                    (Bytes::from_static(b"y"), 2, 0),
                ]
            } else {
                vec![]
            };
            idx.push(k, i as u32, 10 * i as u32, ri);
        }
        idx.shrink_to_fit();
        assert_eq!(idx.len(), 4);
        for (i, k) in keys.iter().enumerate() {
            let e = idx.get(i).unwrap();
            assert_eq!(idx.key(i).unwrap().partition_key(), *k);
            assert_eq!((e.block, e.offset), (i as u32, 10 * i as u32));
            assert_eq!(e.row_index.len(), if i == 1 { 2 } else { 0 });
            assert_eq!(idx.key(i).unwrap().cmp_key(k), Ordering::Equal);
        }
        assert!(idx.get(4).is_none() && idx.key(4).is_none());
        let below = |k: &PartitionKey| idx.partition_point(|e| e.cmp_key(k) == Ordering::Less);
        assert_eq!(below(&key(3, "bb")), 1);
        assert_eq!(below(&key(3, "bz")), 2);
        assert_eq!(below(&key(100, "")), 4);
        assert_eq!(below(&key(-100, "")), 0);
        assert!(idx.heap_bytes() < 4 * 48 + 200);
    }
}
