//! Vnode tokens for a joining node, chosen from the ring it joins so that ownership stays
//! balanced as nodes are added one after another (the aim of Cassandra's
//! `allocate_tokens_for_local_replication_factor`, by a simpler method).
//!
//! A node's raw ownership is the sum of its ranges `(previous token, token]`. The new node should
//! end with `1/(n+1)` of the ring. It takes that share in `num_tokens` chunks; each chunk comes
//! from the node currently furthest above the target share, cut from the low end of that node's
//! widest range, so the donors' own ranges even out as well.

use std::collections::{BTreeMap, BinaryHeap, HashSet};

use uuid::Uuid;

use crate::ring::TokenRing;

/// The width of the whole Murmur3 ring (2^64 tokens).
const RING: u128 = 1 << 64;

/// Tokens for a node joining datacenter `dc` of `ring` with `num_tokens` vnodes.
///
/// Ownership is balanced among the nodes of `dc` only: under `NetworkTopologyStrategy` each DC
/// places its replicas on its own ring, so that is where the load of a node is decided. The
/// tokens never repeat a token of any DC, nor are they `i64::MIN` (no key hashes to it). The first
/// node of a DC gets evenly spaced tokens from a `seed`-derived offset.
pub fn allocate_tokens(ring: &TokenRing, dc: &str, num_tokens: usize, seed: u64) -> Vec<i64> {
    let all = ring.sorted_tokens();
    let local: Vec<(i64, Uuid)> = all
        .iter()
        .filter(|(_, id)| ring.node(*id).is_some_and(|n| n.dc == dc))
        .copied()
        .collect();
    let taken: HashSet<i64> = all.iter().map(|(t, _)| *t).collect();
    balanced_tokens(&local, &taken, num_tokens, seed)
}

/// Tokens for a new node among the `existing` (token, owner) pairs: the new node gets about
/// `1/(owners + 1)` of the ring, taken mostly from the most loaded owners. The result is sorted
/// and shares no token with `existing` or `taken`. An empty `existing` yields evenly spaced tokens
/// from a `seed`-derived offset.
pub fn balanced_tokens(
    existing: &[(i64, Uuid)],
    taken: &HashSet<i64>,
    num_tokens: usize,
    seed: u64,
) -> Vec<i64> {
    let mut taken = taken.clone();
    taken.extend(existing.iter().map(|(t, _)| *t));
    let mut out = if existing.is_empty() {
        evenly_spaced(num_tokens, seed, &mut taken)
    } else {
        split_donors(existing, num_tokens, &mut taken)
    };
    out.sort_unstable();
    out
}

/// SplitMix64: a small deterministic generator.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn evenly_spaced(num_tokens: usize, seed: u64, taken: &mut HashSet<i64>) -> Vec<i64> {
    let mut state = seed;
    let offset = splitmix(&mut state);
    let step = RING / num_tokens.max(1) as u128;
    (0..num_tokens as u128)
        .map(|i| claim(offset.wrapping_add((i * step) as u64) as i64, taken))
        .collect()
}

/// `t`, or the next token after it that is free and not `i64::MIN`; marks it taken.
fn claim(mut t: i64, taken: &mut HashSet<i64>) -> i64 {
    while t == i64::MIN || !taken.insert(t) {
        t = t.wrapping_add(1);
    }
    t
}

/// An existing node as a source of ownership for the new one.
#[derive(Default)]
struct Donor {
    /// Ownership above the target share (negative below it), as a width of the ring.
    excess: i128,
    /// Ranges not split yet, as (width, start), widest first.
    whole: BinaryHeap<(u128, i64)>,
    /// What remains of ranges already split. Used only when no unsplit range can give a whole
    /// chunk: splitting a remainder again gives the new node a range adjacent to one it already
    /// has, a wasted vnode.
    split: BinaryHeap<(u128, i64)>,
}

impl Donor {
    /// Cuts about `chunk` from the low end of a wide range: the new token `t` makes `(start, t]`
    /// the new node's and leaves `(t, end]` here. Returns `t` and the width taken.
    fn give(&mut self, chunk: u128, taken: &mut HashSet<i64>) -> Option<(i64, u128)> {
        while let Some((width, start)) = self.widest(chunk) {
            let Some(t) = cut(start, width, chunk, taken) else {
                continue;
            };
            let took = (t as u64).wrapping_sub(start as u64) as u128;
            self.split.push((width - took, t));
            self.excess -= took as i128;
            return Some((t, took));
        }
        None
    }

    /// The widest unsplit range while one can give the whole `chunk`; then the widest of all.
    fn widest(&mut self, chunk: u128) -> Option<(u128, i64)> {
        let whole = self.whole.peek().map_or(0, |r| r.0);
        let split = self.split.peek().map_or(0, |r| r.0);
        if whole > chunk || whole >= split {
            self.whole.pop().or_else(|| self.split.pop())
        } else {
            self.split.pop()
        }
    }
}

/// A free token about `chunk` past `start`, strictly inside the range `(start, start + width)`.
fn cut(start: i64, width: u128, chunk: u128, taken: &mut HashSet<i64>) -> Option<i64> {
    if width < 2 {
        return None;
    }
    let ideal = chunk.clamp(1, width - 1);
    // A collision is a 2^-64 event per token: a few neighbours are plenty.
    let candidates = (0..8u128).flat_map(|d| [ideal + d, ideal.wrapping_sub(d)]);
    for off in candidates.filter(|off| (1..width).contains(off)) {
        let t = (start as u64).wrapping_add(off as u64) as i64;
        if t != i64::MIN && taken.insert(t) {
            return Some(t);
        }
    }
    None
}

/// Every owner with its ranges and its ownership as `excess`, keyed by owner (a deterministic
/// order).
fn donors(existing: &[(i64, Uuid)]) -> BTreeMap<Uuid, Donor> {
    let mut sorted = existing.to_vec();
    sorted.sort_unstable();
    sorted.dedup_by_key(|(t, _)| *t);
    let mut out: BTreeMap<Uuid, Donor> = BTreeMap::new();
    for (i, (t, owner)) in sorted.iter().enumerate() {
        let prev = sorted[(i + sorted.len() - 1) % sorted.len()].0;
        let width = match sorted.len() {
            1 => RING,
            _ => (*t as u64).wrapping_sub(prev as u64) as u128,
        };
        let d = out.entry(*owner).or_default();
        d.excess += width as i128;
        d.whole.push((width, prev));
    }
    out
}

fn split_donors(existing: &[(i64, Uuid)], num_tokens: usize, taken: &mut HashSet<i64>) -> Vec<i64> {
    let mut donors = donors(existing);
    let target = RING / (donors.len() as u128 + 1);
    for d in donors.values_mut() {
        d.excess -= target as i128;
    }
    let mut wanted = target;
    let mut out = Vec::with_capacity(num_tokens);
    for left in (1..=num_tokens as u128).rev() {
        // Spread what is still wanted over the tokens left, so a short cut is made up later.
        let chunk = wanted / left;
        while let Some(d) = donors.values_mut().max_by_key(|d| d.excess) {
            if d.excess == i128::MIN {
                break;
            }
            match d.give(chunk, taken) {
                Some((t, took)) => {
                    out.push(t);
                    wanted = wanted.saturating_sub(took);
                    break;
                }
                // Nothing left to split: never ask this node again.
                None => d.excess = i128::MIN,
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::NodeInfo;
    use std::net::{IpAddr, Ipv4Addr};

    fn node(n: u8, dc: &str) -> NodeInfo {
        NodeInfo {
            host_id: Uuid::from_u128(n as u128),
            addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)),
            dc: dc.into(),
            rack: "r1".into(),
        }
    }

    fn id(n: u8) -> Uuid {
        Uuid::from_u128(n as u128)
    }

    /// Adds `count` nodes one after another to `dc`, checking each allocation's basic promises.
    fn grow(ring: &mut TokenRing, dc: &str, first: u8, count: u8, num_tokens: usize, seed: u64) {
        for n in first..first + count {
            let t = allocate_tokens(ring, dc, num_tokens, seed ^ n as u64);
            assert_eq!(t.len(), num_tokens);
            assert!(t.windows(2).all(|w| w[0] < w[1]), "sorted and distinct");
            assert!(t.iter().all(|x| *x != i64::MIN));
            assert!(ring.sorted_tokens().iter().all(|(x, _)| !t.contains(x)));
            ring.add_node(node(n, dc), &t);
        }
    }

    /// The worst relative deviation from the fair share `1/n` over the `n` nodes of `ring`.
    fn worst_deviation(ring: &TokenRing) -> f64 {
        let own = ring.ownership();
        let fair = 1.0 / own.len() as f64;
        own.values()
            .map(|o| (o / fair - 1.0).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn first_node_gets_evenly_spaced_tokens() {
        let ring = TokenRing::new();
        let t = allocate_tokens(&ring, "dc1", 16, 7);
        assert_eq!(t, allocate_tokens(&ring, "dc1", 16, 7));
        assert_ne!(t, allocate_tokens(&ring, "dc1", 16, 8));
        assert_eq!(t.len(), 16);
        let mut gaps: Vec<u64> = t
            .windows(2)
            .map(|w| (w[1] as u64).wrapping_sub(w[0] as u64))
            .collect();
        gaps.push((t[0] as u64).wrapping_sub(t[15] as u64));
        assert!(gaps.iter().all(|g| *g == 1 << 60), "{gaps:?}");
    }

    #[test]
    fn nodes_added_one_by_one_stay_balanced() {
        let mut worst = (0.0, 0, 0);
        for num_tokens in [8, 16, 32] {
            for seed in 0..200u64 {
                let mut ring = TokenRing::new();
                grow(&mut ring, "dc1", 1, 1, num_tokens, seed);
                for n in 2..=6u8 {
                    grow(&mut ring, "dc1", n, 1, num_tokens, seed);
                    let dev = worst_deviation(&ring);
                    assert!(
                        dev <= 0.20,
                        "{num_tokens} tokens, seed {seed}, {n} nodes: {dev}"
                    );
                    if num_tokens == 16 && dev > worst.0 {
                        worst = (dev, seed, n);
                    }
                }
            }
        }
        println!("evenly spaced first node, 16 tokens: worst deviation {worst:?}");
    }

    /// A property over arbitrary first nodes: one whose 16 tokens are random (as a node started
    /// before this allocation picked them) still ends with its share once others join.
    #[test]
    fn nodes_joining_a_random_first_node_stay_balanced() {
        let mut worst = (0.0, 0, 0);
        for seed in 0..300u64 {
            let mut state = seed;
            let random: Vec<i64> = (0..16).map(|_| splitmix(&mut state) as i64).collect();
            let mut ring = TokenRing::new();
            ring.add_node(node(1, "dc1"), &random);
            for n in 2..=6u8 {
                grow(&mut ring, "dc1", n, 1, 16, seed);
                let dev = worst_deviation(&ring);
                assert!(dev <= 0.20, "seed {seed}, {n} nodes: {dev}");
                if dev > worst.0 {
                    worst = (dev, seed, n);
                }
            }
        }
        println!("random first node, 16 tokens: worst deviation {worst:?}");
    }

    #[test]
    fn growth_well_past_six_nodes_stays_balanced() {
        let mut ring = TokenRing::new();
        grow(&mut ring, "dc1", 1, 1, 16, 11);
        for n in 2..=24u8 {
            grow(&mut ring, "dc1", n, 1, 16, 11);
            let dev = worst_deviation(&ring);
            println!("{n} nodes: worst deviation {dev:.3}");
            assert!(dev <= 0.25, "{n} nodes: {dev}");
        }
    }

    #[test]
    fn three_nodes_of_sixteen_tokens_split_the_ring_in_thirds() {
        let mut ring = TokenRing::new();
        grow(&mut ring, "dc1", 1, 3, 16, 42);
        let own = ring.ownership();
        for n in 1..=3 {
            assert!((own[&id(n)] - 1.0 / 3.0).abs() < 0.01, "{own:?}");
        }
    }

    #[test]
    fn an_unbalanced_ring_gives_mostly_from_its_heaviest_nodes() {
        // 4 tokens each; node 1 owns 70 %, node 2 20 %, node 3 10 % (as random tokens can leave it).
        let mut ring = TokenRing::new();
        let mut end = 0u128;
        for (n, permille) in [(1u8, 175u128), (2, 50), (3, 25)] {
            let tokens: Vec<i64> = (0..4)
                .map(|_| {
                    end += permille;
                    ((RING * end / 1000) as u64) as i64
                })
                .collect();
            ring.add_node(node(n, "dc1"), &tokens);
        }
        let before = ring.ownership();
        grow(&mut ring, "dc1", 4, 1, 16, 1);
        let after = ring.ownership();
        assert!((after[&id(4)] - 0.25).abs() < 0.01, "{after:?}");
        let gave = |n| before[&id(n)] - after[&id(n)];
        assert!(gave(1) > 0.2 && gave(3) < 0.01, "{before:?} -> {after:?}");
    }

    #[test]
    fn datacenters_balance_apart_and_never_share_tokens() {
        let mut ring = TokenRing::new();
        grow(&mut ring, "dc1", 1, 3, 16, 5);
        // The first node of dc2 is spaced evenly whatever dc1 holds.
        let t = allocate_tokens(&ring, "dc2", 16, 9);
        assert_eq!(t, balanced_tokens(&[], &HashSet::new(), 16, 9));
        grow(&mut ring, "dc2", 4, 3, 16, 5);
        let dc2: Vec<(i64, Uuid)> = ring
            .sorted_tokens()
            .iter()
            .filter(|(_, o)| *o >= id(4))
            .copied()
            .collect();
        let mut dc2_ring = TokenRing::new();
        for n in 4..=6 {
            let mine: Vec<i64> = dc2
                .iter()
                .filter(|(_, o)| *o == id(n))
                .map(|(t, _)| *t)
                .collect();
            dc2_ring.add_node(node(n, "dc2"), &mine);
        }
        assert!(worst_deviation(&dc2_ring) < 0.05);
        assert_eq!(ring.sorted_tokens().len(), 96);
    }

    #[test]
    fn taken_tokens_and_tiny_rings_are_respected() {
        // One existing token: the whole ring is one range.
        let existing = [(0i64, id(1))];
        let t = balanced_tokens(&existing, &HashSet::new(), 4, 0);
        assert_eq!(t.len(), 4);
        assert!(!t.contains(&0));
        // Where the ideal cut is taken already, a neighbour is used instead.
        let ideal = balanced_tokens(&existing, &HashSet::new(), 1, 0);
        let avoid: HashSet<i64> = ideal.iter().copied().collect();
        let moved = balanced_tokens(&existing, &avoid, 1, 0);
        assert_eq!(moved.len(), 1);
        assert!(moved[0].wrapping_sub(ideal[0]).unsigned_abs() <= 8 && moved[0] != ideal[0]);
        // A range one token wide cannot be split; the other range gives everything.
        let adjacent = [(1i64, id(1)), (2, id(2))];
        let t = balanced_tokens(&adjacent, &HashSet::new(), 3, 0);
        assert_eq!(t.len(), 3);
        assert!(t.iter().all(|x| *x != 1 && *x != 2));
        // One token per node.
        let mut ring = TokenRing::new();
        grow(&mut ring, "dc1", 1, 4, 1, 3);
        assert_eq!(ring.sorted_tokens().len(), 4);
    }
}
