//! Version-1 (time-based) UUIDs as Cassandra generates and interprets them.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

/// 100ns intervals between the UUID epoch (1582-10-15) and the Unix epoch.
pub const UUID_EPOCH_OFFSET: i64 = 0x01B2_1DD2_1381_4000;

/// Cassandra's lsb for `minTimeuuid` (smallest under TimeUUIDType's signed-byte comparison).
pub const MIN_CLOCK_SEQ_AND_NODE: u64 = 0x8080_8080_8080_8080;
/// Cassandra's lsb for `maxTimeuuid`.
pub const MAX_CLOCK_SEQ_AND_NODE: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// Microseconds since the Unix epoch, from the system clock.
pub fn micros_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(e) => -(e.duration().as_micros() as i64),
    }
}

/// The msb of a version-1 UUID for a count of 100ns intervals since the UUID epoch.
pub fn msb_from_uuid_time(t: i64) -> u64 {
    let t = t as u64;
    ((t & 0xffff_ffff) << 32) | (((t >> 32) & 0xffff) << 16) | 0x1000 | ((t >> 48) & 0x0fff)
}

/// 100ns intervals since the UUID epoch encoded in a version-1 UUID.
pub fn uuid_time(u: &Uuid) -> i64 {
    let msb = u64::from_be_bytes(u.as_bytes()[..8].try_into().unwrap());
    (((msb & 0x0fff) << 48) | (((msb >> 16) & 0xffff) << 32) | (msb >> 32)) as i64
}

fn make(msb: u64, lsb: u64) -> Uuid {
    Uuid::from_u64_pair(msb, lsb)
}

fn clock_seq_and_node() -> u64 {
    static LSB: OnceLock<u64> = OnceLock::new();
    *LSB.get_or_init(|| {
        let r = RandomState::new().hash_one(micros_now());
        let clock_seq = (r >> 48) & 0x3fff;
        // Random node id with the multicast bit set, as RFC 4122 recommends.
        let node = (r & 0xffff_ffff_ffff) | 0x0100_0000_0000;
        0x8000_0000_0000_0000 | (clock_seq << 48) | node
    })
}

/// A new version-1 UUID for the current time; strictly increasing within the process.
pub fn now_timeuuid() -> Uuid {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = micros_now() * 10 + UUID_EPOCH_OFFSET;
    let mut last = LAST.load(Ordering::Relaxed);
    let t = loop {
        let candidate = if now > last { now } else { last + 1 };
        match LAST.compare_exchange_weak(last, candidate, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => break candidate,
            Err(actual) => last = actual,
        }
    };
    make(msb_from_uuid_time(t), clock_seq_and_node())
}

/// `minTimeuuid(ms)` (`min = true`) or `maxTimeuuid(ms)`: the smallest / largest timeuuid
/// (in TimeUUIDType order) whose timestamp falls in millisecond `ms`.
pub fn timeuuid_from_millis(ms: i64, min: bool) -> Uuid {
    if min {
        make(
            msb_from_uuid_time(ms * 10_000 + UUID_EPOCH_OFFSET),
            MIN_CLOCK_SEQ_AND_NODE,
        )
    } else {
        make(
            msb_from_uuid_time((ms + 1) * 10_000 + UUID_EPOCH_OFFSET - 1),
            MAX_CLOCK_SEQ_AND_NODE,
        )
    }
}

/// Milliseconds since the Unix epoch of a version-1 UUID (`toTimestamp`, `toUnixTimestamp`).
pub fn timeuuid_millis(u: &Uuid) -> i64 {
    (uuid_time(u) - UUID_EPOCH_OFFSET).div_euclid(10_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CqlType, Value};
    use std::cmp::Ordering as O;

    #[test]
    fn monotonic_and_ordered() {
        let mut prev = now_timeuuid();
        assert_eq!(prev.get_version_num(), 1);
        for _ in 0..10_000 {
            let u = now_timeuuid();
            assert_eq!(
                Value::compare(&CqlType::Timeuuid, prev.as_bytes(), u.as_bytes()),
                O::Less
            );
            prev = u;
        }
        let ms = timeuuid_millis(&prev);
        assert!((ms - micros_now() / 1000).abs() < 5_000);
    }

    #[test]
    fn min_max() {
        let ms = 1_300_000_000_123;
        let lo = timeuuid_from_millis(ms, true);
        let hi = timeuuid_from_millis(ms, false);
        assert_eq!(timeuuid_millis(&lo), ms);
        assert_eq!(timeuuid_millis(&hi), ms);
        assert_eq!(lo.get_version_num(), 1);
        let t = CqlType::Timeuuid;
        let mid = make(
            msb_from_uuid_time(ms * 10_000 + UUID_EPOCH_OFFSET + 5),
            0x0000_0000_0000_0000,
        );
        assert_eq!(Value::compare(&t, lo.as_bytes(), mid.as_bytes()), O::Less);
        assert_eq!(Value::compare(&t, mid.as_bytes(), hi.as_bytes()), O::Less);
        let next = timeuuid_from_millis(ms + 1, true);
        assert_eq!(Value::compare(&t, hi.as_bytes(), next.as_bytes()), O::Less);
        assert_eq!(timeuuid_millis(&timeuuid_from_millis(-5, true)), -5);
    }
}
