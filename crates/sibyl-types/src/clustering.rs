//! Order-preserving, prefix-free byte encoding of clustering keys.
use crate::{CqlType, TypeError};

pub fn encode(_types: &[(CqlType, bool)], _values: &[&[u8]]) -> Vec<u8> {
    Vec::new()
}
pub fn decode(_types: &[(CqlType, bool)], _bytes: &[u8]) -> Result<Vec<Vec<u8>>, TypeError> {
    Err(TypeError::invalid("clustering::decode not implemented yet"))
}
pub fn prefix_end(encoded_prefix: &[u8]) -> Vec<u8> {
    let mut v = encoded_prefix.to_vec();
    v.push(0xff);
    v
}
pub fn encode_one(_ty: &CqlType, _value: &[u8]) -> Vec<u8> {
    Vec::new()
}
pub fn decode_one(_ty: &CqlType, _bytes: &[u8]) -> Result<Vec<u8>, TypeError> {
    Err(TypeError::invalid(
        "clustering::decode_one not implemented yet",
    ))
}
