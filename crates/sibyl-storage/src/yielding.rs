//! Background work (flushes, compactions, freeing a flushed memtable) that steps aside for
//! requests every fraction of a millisecond.
//!
//! A lowered nice value alone did not keep requests waiting briefly: the scheduler lets a
//! running thread finish its slice before a woken one gets the core, so on a two-core machine
//! a flush held one core for 2-7 ms at a time while request threads queued behind it (p99 at
//! half load). Giving up the core every `INTERVAL` bounds that wait without changing the
//! share of CPU the background thread gets when nothing else wants it: `sched_yield` returns
//! at once when no other thread is waiting.

use std::time::{Duration, Instant};

/// How long background work runs before letting waiting threads have the core.
const INTERVAL: Duration = Duration::from_micros(250);

/// Clock reads are spaced out: one per this many steps.
const STEPS_PER_CHECK: u32 = 32;

pub struct Yielder {
    interval: Duration,
    last: Instant,
    steps: u32,
}

impl Default for Yielder {
    fn default() -> Self {
        Yielder::every(INTERVAL)
    }
}

impl Yielder {
    fn every(interval: Duration) -> Self {
        Yielder {
            interval,
            last: Instant::now(),
            steps: 0,
        }
    }

    /// One unit of work done (a partition or a row); yields if the interval has passed.
    /// Returns whether it yielded.
    #[inline]
    pub fn step(&mut self) -> bool {
        self.steps += 1;
        if self.steps < STEPS_PER_CHECK {
            return false;
        }
        self.steps = 0;
        let now = Instant::now();
        if now.duration_since(self.last) < self.interval {
            return false;
        }
        std::thread::yield_now();
        self.last = Instant::now();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yields_once_per_check_after_the_interval() {
        let mut due = Yielder::every(Duration::ZERO);
        let yields = (0..10 * STEPS_PER_CHECK).filter(|_| due.step()).count();
        assert_eq!(yields, 10, "one clock check per {STEPS_PER_CHECK} steps");
        let mut never = Yielder::every(Duration::from_secs(3600));
        assert_eq!(
            (0..10 * STEPS_PER_CHECK).filter(|_| never.step()).count(),
            0
        );
    }
}
