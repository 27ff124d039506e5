//! Reserved keywords and native type names.

/// Cassandra 5.0's reserved keywords: words that can never be unquoted identifiers.
/// Every other keyword (`key`, `type`, `ttl`, `json`, `list`, ...) is unreserved.
const RESERVED: &[&str] = &[
    "add",
    "allow",
    "alter",
    "and",
    "apply",
    "asc",
    "authorize",
    "batch",
    "begin",
    "by",
    "columnfamily",
    "create",
    "delete",
    "desc",
    "describe",
    "drop",
    "entries",
    "execute",
    "from",
    "full",
    "grant",
    "if",
    "in",
    "index",
    "infinity",
    "insert",
    "into",
    "is",
    "keyspace",
    "limit",
    "materialized",
    "modify",
    "nan",
    "norecursive",
    "not",
    "null",
    "of",
    "on",
    "or",
    "order",
    "primary",
    "rename",
    "revoke",
    "schema",
    "select",
    "set",
    "table",
    "to",
    "token",
    "truncate",
    "unlogged",
    "update",
    "use",
    "using",
    "view",
    "where",
    "with",
];

/// Whether `word` is a reserved CQL keyword (case-insensitive).
pub fn is_reserved_keyword(word: &str) -> bool {
    RESERVED.iter().any(|k| k.eq_ignore_ascii_case(word))
}

/// Whether an unquoted word can be used as a name: not reserved, and not a boolean literal.
pub(crate) fn is_identifier_word(word: &str) -> bool {
    !is_reserved_keyword(word)
        && !word.eq_ignore_ascii_case("true")
        && !word.eq_ignore_ascii_case("false")
}

/// The canonical name of a native type (lower-case input), with `varchar` folded to `text`.
pub(crate) fn native_type_name(lower: &str) -> Option<&'static str> {
    Some(match lower {
        "ascii" => "ascii",
        "bigint" => "bigint",
        "blob" => "blob",
        "boolean" => "boolean",
        "counter" => "counter",
        "date" => "date",
        "decimal" => "decimal",
        "double" => "double",
        "duration" => "duration",
        "float" => "float",
        "inet" => "inet",
        "int" => "int",
        "smallint" => "smallint",
        "text" | "varchar" => "text",
        "time" => "time",
        "timestamp" => "timestamp",
        "timeuuid" => "timeuuid",
        "tinyint" => "tinyint",
        "uuid" => "uuid",
        "varint" => "varint",
        _ => return None,
    })
}

/// Quote a name for CQL output (e.g. DESCRIBE) unless it is a lower-case `[a-z][a-z0-9_]*`
/// word that is not a reserved keyword. Quotes inside are doubled.
pub fn quote_identifier_if_needed(name: &str) -> String {
    let mut chars = name.chars();
    let plain = matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && is_identifier_word(name);
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}
