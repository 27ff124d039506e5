//! Feeds arbitrary UTF-8 to the CQL parser: it must return Ok or Err, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sibyl_cql::parse_statement(text);
        let _ = sibyl_cql::parse_statements(text);
        let _ = sibyl_cql::parse_type(text);
        let _ = sibyl_cql::parse_term(text);
        let _ = sibyl_cql::quote_identifier_if_needed(text);
    }
});
