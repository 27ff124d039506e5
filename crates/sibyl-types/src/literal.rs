//! CQL literal text <-> values.
use crate::{CqlType, Duration, TypeError, Value};

pub fn parse_string_as(_ty: &CqlType, _s: &str) -> Result<Value, TypeError> {
    Err(TypeError::invalid("literal parsing not implemented yet"))
}
pub fn parse_duration(_s: &str) -> Result<Duration, TypeError> {
    Err(TypeError::invalid("duration parsing not implemented yet"))
}
pub fn to_cql_literal(_ty: &CqlType, v: &Value) -> String {
    format!("{v:?}")
}
pub fn to_display_string(_ty: &CqlType, v: &Value) -> String {
    format!("{v:?}")
}
pub fn days_from_civil(_y: i64, _m: u32, _d: u32) -> i64 {
    0
}
pub fn civil_from_days(_z: i64) -> (i64, u32, u32) {
    (1970, 1, 1)
}
pub fn date_to_wire(days_since_epoch: i64) -> u32 {
    (days_since_epoch + (1i64 << 31)) as u32
}
pub fn date_from_wire(w: u32) -> i64 {
    w as i64 - (1i64 << 31)
}
