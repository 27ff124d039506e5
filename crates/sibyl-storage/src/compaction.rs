//! Compaction strategies (which SSTables to merge) and the compaction throughput limiter.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::options::CompactionStrategy;
use crate::sstable::SSTable;

/// One unit of compaction work.
pub struct Task {
    pub inputs: Vec<Arc<SSTable>>,
    /// Level written into the outputs' statistics (LCS; 0 for STCS).
    pub level: u32,
    /// Roll to a new output SSTable past this size (LCS).
    pub max_output_bytes: Option<u64>,
}

const STCS_SMALL: u64 = 50 * 1024 * 1024;
const LCS_MAX_LEVEL: u32 = 8;
const LCS_L0_TRIGGER: usize = 4;
const LCS_FANOUT: u64 = 10;

pub fn pick(strategy: &CompactionStrategy, sstables: &[Arc<SSTable>]) -> Option<Task> {
    match *strategy {
        CompactionStrategy::SizeTiered {
            min_threshold,
            max_threshold,
        } => pick_stcs(sstables, min_threshold.max(2), max_threshold.max(2)),
        CompactionStrategy::Leveled { sstable_size_in_mb } => {
            pick_lcs(sstables, sstable_size_in_mb.max(1) * 1024 * 1024)
        }
    }
}

/// Groups SSTables of similar size (within 0.5x..1.5x of the bucket average, or all below
/// 50 MiB) and picks the bucket of smallest tables that reached `min` members.
fn pick_stcs(sstables: &[Arc<SSTable>], min: usize, max: usize) -> Option<Task> {
    let mut sorted: Vec<Arc<SSTable>> = sstables.to_vec();
    sorted.sort_by_key(|s| s.size);
    let mut buckets: Vec<Vec<Arc<SSTable>>> = Vec::new();
    for s in sorted {
        if let Some(b) = buckets.last_mut() {
            let avg = b.iter().map(|x| x.size).sum::<u64>() / b.len() as u64;
            let fits = (s.size as f64 >= avg as f64 * 0.5 && s.size as f64 <= avg as f64 * 1.5)
                || (s.size < STCS_SMALL && avg < STCS_SMALL);
            if fits {
                b.push(s);
                continue;
            }
        }
        buckets.push(vec![s]);
    }
    let mut b = buckets.into_iter().find(|b| b.len() >= min)?;
    b.truncate(max);
    Some(Task {
        inputs: b,
        level: 0,
        max_output_bytes: None,
    })
}

fn overlaps(a: &SSTable, min: i64, max: i64) -> bool {
    a.stats.min_token <= max && a.stats.max_token >= min
}

fn pick_lcs(sstables: &[Arc<SSTable>], target: u64) -> Option<Task> {
    let level = |l: u32| -> Vec<Arc<SSTable>> {
        let mut v: Vec<Arc<SSTable>> = sstables
            .iter()
            .filter(|s| s.stats.level.min(LCS_MAX_LEVEL) == l)
            .cloned()
            .collect();
        v.sort_by_key(|s| s.gen);
        v
    };
    let l0 = level(0);
    if l0.len() >= LCS_L0_TRIGGER {
        let inputs: Vec<Arc<SSTable>> = l0.into_iter().take(32).collect();
        let min = inputs.iter().map(|s| s.stats.min_token).min().unwrap();
        let max = inputs.iter().map(|s| s.stats.max_token).max().unwrap();
        let mut all = inputs;
        all.extend(level(1).into_iter().filter(|s| overlaps(s, min, max)));
        return Some(Task {
            inputs: all,
            level: 1,
            max_output_bytes: Some(target),
        });
    }
    for l in 1..LCS_MAX_LEVEL {
        let tables = level(l);
        let total: u64 = tables.iter().map(|s| s.size).sum();
        if total > LCS_FANOUT.pow(l) * target {
            let first = tables[0].clone();
            let (min, max) = (first.stats.min_token, first.stats.max_token);
            let mut inputs = vec![first];
            inputs.extend(level(l + 1).into_iter().filter(|s| overlaps(s, min, max)));
            return Some(Task {
                inputs,
                level: l + 1,
                max_output_bytes: Some(target),
            });
        }
    }
    None
}

/// Sleeps as needed to keep the average write rate below the limit.
pub struct RateLimiter {
    bytes_per_sec: u64,
    start: Instant,
    bytes: u64,
}

impl RateLimiter {
    pub fn new(mb_per_sec: u64) -> Self {
        RateLimiter {
            bytes_per_sec: mb_per_sec * 1024 * 1024,
            start: Instant::now(),
            bytes: 0,
        }
    }

    pub fn consume(&mut self, bytes: u64) {
        if self.bytes_per_sec == 0 {
            return;
        }
        self.bytes += bytes;
        let due = Duration::from_secs_f64(self.bytes as f64 / self.bytes_per_sec as f64);
        let elapsed = self.start.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RateLimiter;
    use std::time::{Duration, Instant};

    #[test]
    fn rate_limiter_throttles() {
        let start = Instant::now();
        let mut l = RateLimiter::new(4); // 4 MiB/s
        for _ in 0..8 {
            l.consume(256 * 1024); // 2 MiB in total: ~0.5 s
        }
        let el = start.elapsed();
        assert!(el >= Duration::from_millis(450), "{el:?}");
        assert!(el < Duration::from_secs(3), "{el:?}");
        let start = Instant::now();
        let mut unlimited = RateLimiter::new(0);
        unlimited.consume(1 << 40);
        assert!(start.elapsed() < Duration::from_millis(50));
    }
}
