//! Coordinator-side helpers for reads at consistency levels above ONE: merge the raw
//! (unresolved) answers of several replicas (`Engine::read_raw`) by the engine's own rules,
//! resolve them to the live view `Engine::read` would give, and build read-repair data.

use bytes::Bytes;

use crate::model::{Mutation, PartitionKey, PartitionView, Slice};
use crate::partition::PartitionData;

fn merged(parts: &[Mutation]) -> Option<PartitionData> {
    let mut it = parts.iter();
    let mut p = PartitionData::from_mutation(it.next()?);
    for m in it {
        p.merge(PartitionData::from_mutation(m));
    }
    Some(p)
}

/// The raw data of all `parts` (one partition's data from several replicas) merged by the
/// engine's reconciliation rules: superseded cell versions dropped, the greatest deletions and
/// liveness kept, tombstones kept. Applying it to a replica makes that replica hold everything
/// the parts held (read repair). `table` and `key` are taken from the first part; None when
/// `parts` is empty or holds nothing at all.
pub fn merge(parts: &[Mutation]) -> Option<Mutation> {
    let first = parts.first()?;
    let p = merged(parts)?;
    if p.is_empty() {
        return None;
    }
    Some(p.to_mutation(first.table, &first.key))
}

/// The live view of the merged `parts` for `slice` at `now_secs`: exactly what
/// `Engine::read(table, key, slice, now_secs)` returns on an engine holding all of the parts
/// (same order, `reversed`, `limit`).
///
/// With a `limit`, each replica's `read_raw` stops at its own `limit`-th live row, so the
/// merge can be short (another replica's tombstones may shadow rows one replica counted as
/// live): check [`is_complete`] first, and re-query the replicas with a larger limit (or
/// none) when it says false, then call `resolve` with the original slice.
pub fn resolve(
    key: &PartitionKey,
    parts: &[Mutation],
    slice: &Slice,
    now_secs: i64,
) -> Option<PartitionView> {
    merged(parts)?.resolve(key, slice, now_secs)
}

/// Short-read check: true when `resolve(key, parts, slice, now_secs)` is exact, given that each
/// part is a replica's `read_raw` answer for this same `slice` (and `now_secs`).
///
/// A part with fewer than `limit` live rows is exhausted (it returned everything it has in the
/// slice). A part that reached the limit is only known up to its last row, so the merged
/// answer is exact only if its `limit` live rows all lie at or before every such part's last
/// row (in slice order). Always true without a limit.
pub fn is_complete(parts: &[Mutation], slice: &Slice, now_secs: i64) -> bool {
    let Some(limit) = slice.limit else {
        return true;
    };
    if limit == 0 {
        return true;
    }
    let before = |a: &Bytes, b: &Bytes| if slice.reversed { a > b } else { a < b };
    let unlimited = Slice {
        limit: None,
        ..slice.clone()
    };
    // The earliest (in slice order) last row among the parts that reached the limit.
    let mut known_until: Option<Bytes> = None;
    for m in parts {
        let p = PartitionData::from_mutation(m);
        let live = p
            .resolve(&m.key, &unlimited, now_secs)
            .map_or(0, |v| v.rows.len());
        if live < limit {
            continue;
        }
        let (cut, _) = p.raw_slice(&unlimited, now_secs);
        let last = if slice.reversed {
            cut.rows.keys().next()
        } else {
            cut.rows.keys().next_back()
        };
        if let Some(last) = last {
            if known_until.as_ref().is_none_or(|k| before(last, k)) {
                known_until = Some(last.clone());
            }
        }
    }
    let Some(until) = known_until else {
        return true;
    };
    let Some(first) = parts.first() else {
        return true;
    };
    match resolve(&first.key, parts, slice, now_secs) {
        Some(v) if v.rows.len() >= limit => {
            let c = &v.rows[limit - 1].clustering;
            !before(&until, c)
        }
        _ => false,
    }
}
