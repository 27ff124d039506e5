//! Version-1 (time-based) UUIDs as Cassandra generates and interprets them.
use uuid::Uuid;

pub fn now_timeuuid() -> Uuid {
    Uuid::nil()
}
pub fn timeuuid_from_millis(_ms: i64, _min: bool) -> Uuid {
    Uuid::nil()
}
pub fn timeuuid_millis(_u: &Uuid) -> i64 {
    0
}
pub fn micros_now() -> i64 {
    0
}
