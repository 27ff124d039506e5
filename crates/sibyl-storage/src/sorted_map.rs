//! Ordered maps sized for what rows hold. A `BTreeMap` allocates a whole node (eleven
//! entries) for its first entry, which made a one-column row in a one-row partition cost about
//! 3 KiB of memtable; most rows have a handful of columns and most partitions few rows, so they
//! are kept in sorted vectors, and only a partition that grows large switches to a B-tree.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};

/// A map stored as a vector sorted by key. Inserting in the middle moves the tail, so it suits
/// small maps and maps filled in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VecMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        VecMap {
            entries: Vec::new(),
        }
    }
}

impl<K: Ord, V> VecMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        VecMap {
            entries: Vec::with_capacity(n),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries the vector holds room for (what it costs in memory).
    pub fn capacity(&self) -> usize {
        self.entries.capacity()
    }

    fn find<Q: Ord + ?Sized>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
    {
        // Keys usually arrive in order: check the end before searching.
        match self.entries.last() {
            None => return Err(0),
            Some((k, _)) => match k.borrow().cmp(key) {
                std::cmp::Ordering::Less => return Err(self.entries.len()),
                std::cmp::Ordering::Equal => return Ok(self.entries.len() - 1),
                std::cmp::Ordering::Greater => {}
            },
        }
        self.entries.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    pub fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| &self.entries[i].1)
    }

    pub fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| &mut self.entries[i].1)
    }

    pub fn contains_key<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.find(key).is_ok()
    }

    /// Inserts or replaces; returns the replaced value.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                if self.entries.capacity() == 0 {
                    // Most maps hold one entry: don't let the first insert reserve four.
                    self.entries.reserve_exact(1);
                }
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    pub fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| self.entries.remove(i).1)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + ExactSizeIterator {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = (&K, &mut V)> {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + ExactSizeIterator {
        self.entries.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator {
        self.entries.iter().map(|(_, v)| v)
    }

    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut V> {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
    }

    pub fn first_key_value(&self) -> Option<(&K, &V)> {
        self.entries.first().map(|(k, v)| (k, v))
    }

    pub fn last_key_value(&self) -> Option<(&K, &V)> {
        self.entries.last().map(|(k, v)| (k, v))
    }

    /// The entries whose keys lie in `range`, in order.
    pub fn range<Q: Ord + ?Sized, R: RangeBounds<Q>>(
        &self,
        range: R,
    ) -> impl DoubleEndedIterator<Item = (&K, &V)>
    where
        K: Borrow<Q>,
    {
        let from = match range.start_bound() {
            Bound::Unbounded => 0,
            Bound::Included(s) => self.entries.partition_point(|(k, _)| k.borrow() < s),
            Bound::Excluded(s) => self.entries.partition_point(|(k, _)| k.borrow() <= s),
        };
        let to = match range.end_bound() {
            Bound::Unbounded => self.entries.len(),
            Bound::Included(e) => self.entries.partition_point(|(k, _)| k.borrow() <= e),
            Bound::Excluded(e) => self.entries.partition_point(|(k, _)| k.borrow() < e),
        };
        self.entries[from..to.max(from)].iter().map(|(k, v)| (k, v))
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for VecMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut entries: Vec<(K, V)> = iter.into_iter().collect();
        // Stable sort, then keep the last of equal keys (as repeated inserts would).
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(K, V)> = Vec::with_capacity(entries.len());
        for e in entries {
            match out.last_mut() {
                Some(last) if last.0 == e.0 => *last = e,
                _ => out.push(e),
            }
        }
        VecMap { entries: out }
    }
}

impl<K, V> IntoIterator for VecMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'a, K, V> IntoIterator for &'a VecMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

/// Entries a [`RowMap`] keeps in a vector before it switches to a B-tree.
const SMALL_ROWS: usize = 32;

/// The rows of a partition by clustering: a sorted vector while small, a B-tree once large
/// (so rows inserted out of order into a wide partition never move a long tail).
#[derive(Debug, Clone)]
pub enum RowMap<K, V> {
    Small(VecMap<K, V>),
    Large(BTreeMap<K, V>),
}

impl<K, V> Default for RowMap<K, V> {
    fn default() -> Self {
        RowMap::Small(VecMap::default())
    }
}

impl<K: Ord + PartialEq, V: PartialEq> PartialEq for RowMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl<K: Ord + Eq, V: Eq> Eq for RowMap<K, V> {}

/// One of two iterators (the small or the large representation's).
pub enum Either<A, B> {
    A(A),
    B(B),
}

impl<T, A: Iterator<Item = T>, B: Iterator<Item = T>> Iterator for Either<A, B> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        match self {
            Either::A(a) => a.next(),
            Either::B(b) => b.next(),
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Either::A(a) => a.size_hint(),
            Either::B(b) => b.size_hint(),
        }
    }
}

impl<T, A: DoubleEndedIterator<Item = T>, B: DoubleEndedIterator<Item = T>> DoubleEndedIterator
    for Either<A, B>
{
    fn next_back(&mut self) -> Option<T> {
        match self {
            Either::A(a) => a.next_back(),
            Either::B(b) => b.next_back(),
        }
    }
}

impl<K: Ord, V> RowMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Room for `n` rows (a vector grown from empty takes room for four at once).
    pub fn with_capacity(n: usize) -> Self {
        if n > SMALL_ROWS {
            RowMap::Large(BTreeMap::new())
        } else {
            RowMap::Small(VecMap::with_capacity(n))
        }
    }

    pub fn len(&self) -> usize {
        match self {
            RowMap::Small(m) => m.len(),
            RowMap::Large(m) => m.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes behind the map's own structure (not behind its keys and values), B-tree
    /// nodes taken as half full.
    pub fn structure_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(K, V)>();
        match self {
            RowMap::Small(m) if m.capacity() == 0 => 0,
            // Merged into a partition, a vector grows by doubling: half as long again on average.
            RowMap::Small(m) => m.capacity().max(3 * m.len() / 2) * entry + 16,
            RowMap::Large(m) => 2 * m.len() * entry + 16,
        }
    }

    pub fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        match self {
            RowMap::Small(m) => m.get(key),
            RowMap::Large(m) => m.get(key),
        }
    }

    pub fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        match self {
            RowMap::Small(m) => m.get_mut(key),
            RowMap::Large(m) => m.get_mut(key),
        }
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        if let RowMap::Small(m) = self {
            if m.len() >= SMALL_ROWS && !m.contains_key(&key) {
                let large: BTreeMap<K, V> = std::mem::take(m).into_iter().collect();
                *self = RowMap::Large(large);
            }
        }
        match self {
            RowMap::Small(m) => m.insert(key, value),
            RowMap::Large(m) => m.insert(key, value),
        }
    }

    /// The first entry of a small map (found without reading the entries' memory); None
    /// for a B-tree.
    pub fn first_if_small(&self) -> Option<(&K, &V)> {
        match self {
            RowMap::Small(m) => m.first_key_value(),
            RowMap::Large(_) => None,
        }
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> {
        match self {
            RowMap::Small(m) => Either::A(m.iter()),
            RowMap::Large(m) => Either::B(m.iter()),
        }
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    pub fn retain(&mut self, keep: impl FnMut(&K, &mut V) -> bool) {
        match self {
            RowMap::Small(m) => m.retain(keep),
            RowMap::Large(m) => m.retain(keep),
        }
    }

    pub fn range<Q: Ord + ?Sized, R: RangeBounds<Q>>(
        &self,
        range: R,
    ) -> impl DoubleEndedIterator<Item = (&K, &V)>
    where
        K: Borrow<Q>,
    {
        match self {
            RowMap::Small(m) => Either::A(m.range(range)),
            RowMap::Large(m) => Either::B(m.range(range)),
        }
    }
}

impl<K, V> IntoIterator for RowMap<K, V> {
    type Item = (K, V);
    type IntoIter = Either<std::vec::IntoIter<(K, V)>, std::collections::btree_map::IntoIter<K, V>>;
    fn into_iter(self) -> Self::IntoIter {
        match self {
            RowMap::Small(m) => Either::A(m.into_iter()),
            RowMap::Large(m) => Either::B(m.into_iter()),
        }
    }
}

impl<'a, K: Ord, V> IntoIterator for &'a RowMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Box<dyn DoubleEndedIterator<Item = (&'a K, &'a V)> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for RowMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut m = RowMap::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Both maps behave as a BTreeMap under inserts, lookups, retains and ranges.
        #[test]
        fn behave_as_btreemap(ops in proptest::collection::vec((0u8..80, any::<u16>(), any::<bool>()), 0..300),
                              lo in 0u8..80, hi in 0u8..80) {
            let mut model = BTreeMap::new();
            let mut v = VecMap::new();
            let mut r = RowMap::new();
            for (k, val, ins) in &ops {
                if *ins {
                    prop_assert_eq!(model.insert(*k, *val), v.insert(*k, *val));
                    r.insert(*k, *val);
                } else {
                    model.retain(|key, _| key != k);
                    v.retain(|key, _| key != k);
                    r.retain(|key, _| key != k);
                }
                prop_assert_eq!(model.get(k), v.get(k));
                prop_assert_eq!(model.get(k), r.get(k));
            }
            let m: Vec<_> = model.iter().collect();
            prop_assert_eq!(&m, &v.iter().collect::<Vec<_>>());
            prop_assert_eq!(&m, &r.iter().collect::<Vec<_>>());
            let (a, b) = (lo.min(hi), lo.max(hi));
            let want: Vec<_> = model.range(a..=b).rev().collect();
            prop_assert_eq!(&want, &v.range(a..=b).rev().collect::<Vec<_>>());
            prop_assert_eq!(&want, &r.range(a..=b).rev().collect::<Vec<_>>());
            if a < b {
                let want: Vec<_> = model.range((Bound::Excluded(a), Bound::Excluded(b))).collect();
                prop_assert_eq!(&want, &r.range((Bound::Excluded(a), Bound::Excluded(b))).collect::<Vec<_>>());
            }
        }
    }
}
