use serde::{Deserialize, Serialize};

/// A CQL type as it appears in schema. `Frozen` wraps collections, tuples and UDTs that are frozen.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CqlType {
    Ascii,
    Bigint,
    Blob,
    Boolean,
    Counter,
    Date,
    Decimal,
    Double,
    Duration,
    Float,
    Inet,
    Int,
    Smallint,
    Text,
    Time,
    Timestamp,
    Timeuuid,
    Tinyint,
    Uuid,
    Varint,
    List(Box<CqlType>),
    Set(Box<CqlType>),
    Map(Box<CqlType>, Box<CqlType>),
    Tuple(Vec<CqlType>),
    Udt(UdtDef),
    /// `vector<elem, n>`
    Vector(Box<CqlType>, u32),
    Frozen(Box<CqlType>),
    /// A custom type named by its marshal class.
    Custom(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UdtDef {
    pub keyspace: String,
    pub name: String,
    pub fields: Vec<(String, CqlType)>,
}

const PKG: &str = "org.apache.cassandra.db.marshal.";

/// Quote a CQL identifier if it is not a plain lower-case identifier (ColumnIdentifier.maybeQuote).
pub(crate) fn maybe_quote(name: &str) -> String {
    let plain = !name.is_empty()
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain && !is_reserved_keyword(name) {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

fn is_reserved_keyword(s: &str) -> bool {
    // Cassandra's reserved keywords (ReservedKeywords.java), which must be quoted as identifiers.
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
        "default",
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
        "mbean",
        "mbeans",
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
        "replace",
        "revoke",
        "schema",
        "select",
        "set",
        "table",
        "to",
        "token",
        "truncate",
        "unlogged",
        "unset",
        "update",
        "use",
        "using",
        "view",
        "where",
        "with",
    ];
    RESERVED.contains(&s)
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

impl CqlType {
    /// The type as Cassandra 5.0 writes it in `system_schema.columns.type` and DESCRIBE.
    pub fn cql_name(&self) -> String {
        self.cql_name_impl(false)
    }

    /// `nested`: the type sits inside another type, where collections/UDTs are always frozen.
    fn cql_name_impl(&self, nested: bool) -> String {
        use CqlType::*;
        match self {
            Ascii => "ascii".into(),
            Bigint => "bigint".into(),
            Blob => "blob".into(),
            Boolean => "boolean".into(),
            Counter => "counter".into(),
            Date => "date".into(),
            Decimal => "decimal".into(),
            Double => "double".into(),
            Duration => "duration".into(),
            Float => "float".into(),
            Inet => "inet".into(),
            Int => "int".into(),
            Smallint => "smallint".into(),
            Text => "text".into(),
            Time => "time".into(),
            Timestamp => "timestamp".into(),
            Timeuuid => "timeuuid".into(),
            Tinyint => "tinyint".into(),
            Uuid => "uuid".into(),
            Varint => "varint".into(),
            List(_) | Set(_) | Map(..) | Udt(_) if nested => {
                format!("frozen<{}>", self.cql_name_impl(false))
            }
            List(e) => format!("list<{}>", e.cql_name_impl(true)),
            Set(e) => format!("set<{}>", e.cql_name_impl(true)),
            Map(k, v) => format!("map<{}, {}>", k.cql_name_impl(true), v.cql_name_impl(true)),
            Tuple(ts) => format!(
                "frozen<tuple<{}>>",
                ts.iter()
                    .map(|t| t.cql_name_impl(true))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Udt(u) => maybe_quote(&u.name),
            Vector(e, n) => format!("vector<{}, {}>", e.cql_name_impl(true), n),
            Frozen(inner) => match inner.as_ref() {
                List(_) | Set(_) | Map(..) | Udt(_) => inner.cql_name_impl(true),
                other => other.cql_name_impl(nested),
            },
            Custom(c) => format!("'{}'", c.replace('\'', "''")),
        }
    }

    /// The Java marshal class string Cassandra uses for this type (AbstractType.toString()).
    pub fn marshal_class(&self) -> String {
        self.marshal_impl(false, false)
    }

    /// `ReversedType(...)` of this type, as used for DESC clustering columns.
    pub fn marshal_class_reversed(&self) -> String {
        format!("{PKG}ReversedType({})", self.marshal_class())
    }

    fn marshal_impl(&self, frozen: bool, ignore_freezing: bool) -> String {
        use CqlType::*;
        let simple = |n: &str| format!("{PKG}{n}");
        let wrap = |include: bool, s: String| {
            if include {
                format!("{PKG}FrozenType({s})")
            } else {
                s
            }
        };
        match self {
            Ascii => simple("AsciiType"),
            Bigint => simple("LongType"),
            Blob => simple("BytesType"),
            Boolean => simple("BooleanType"),
            Counter => simple("CounterColumnType"),
            Date => simple("SimpleDateType"),
            Decimal => simple("DecimalType"),
            Double => simple("DoubleType"),
            Duration => simple("DurationType"),
            Float => simple("FloatType"),
            Inet => simple("InetAddressType"),
            Int => simple("Int32Type"),
            Smallint => simple("ShortType"),
            Text => simple("UTF8Type"),
            Time => simple("TimeType"),
            Timestamp => simple("TimestampType"),
            Timeuuid => simple("TimeUUIDType"),
            Tinyint => simple("ByteType"),
            Uuid => simple("UUIDType"),
            Varint => simple("IntegerType"),
            List(e) => wrap(
                frozen && !ignore_freezing,
                format!(
                    "{PKG}ListType({})",
                    e.marshal_impl(true, ignore_freezing || frozen)
                ),
            ),
            Set(e) => wrap(
                frozen && !ignore_freezing,
                format!(
                    "{PKG}SetType({})",
                    e.marshal_impl(true, ignore_freezing || frozen)
                ),
            ),
            Map(k, v) => {
                let ig = ignore_freezing || frozen;
                wrap(
                    frozen && !ignore_freezing,
                    format!(
                        "{PKG}MapType({},{})",
                        k.marshal_impl(true, ig),
                        v.marshal_impl(true, ig)
                    ),
                )
            }
            Tuple(ts) => wrap(
                !ignore_freezing,
                format!(
                    "{PKG}TupleType({})",
                    ts.iter()
                        .map(|t| t.marshal_impl(true, true))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            ),
            Udt(u) => {
                let ig = ignore_freezing || frozen;
                let mut s = format!("{PKG}UserType({},{}", u.keyspace, hex(&u.name));
                for (f, t) in &u.fields {
                    s.push(',');
                    s.push_str(&hex(f));
                    s.push(':');
                    s.push_str(&t.marshal_impl(true, ig));
                }
                s.push(')');
                wrap(frozen && !ignore_freezing, s)
            }
            Vector(e, n) => format!(
                "{PKG}VectorType({} , {n})",
                e.marshal_impl(true, ignore_freezing)
            ),
            Frozen(inner) => inner.marshal_impl(true, ignore_freezing),
            Custom(c) => c.clone(),
        }
    }

    /// A native (non-parameterized) type by its CQL name, case-insensitive; `varchar` is `text`.
    pub fn parse_native(name: &str) -> Option<CqlType> {
        use CqlType::*;
        Some(match name.to_ascii_lowercase().as_str() {
            "ascii" => Ascii,
            "bigint" => Bigint,
            "blob" => Blob,
            "boolean" => Boolean,
            "counter" => Counter,
            "date" => Date,
            "decimal" => Decimal,
            "double" => Double,
            "duration" => Duration,
            "float" => Float,
            "inet" => Inet,
            "int" => Int,
            "smallint" => Smallint,
            "text" | "varchar" => Text,
            "time" => Time,
            "timestamp" => Timestamp,
            "timeuuid" => Timeuuid,
            "tinyint" => Tinyint,
            "uuid" => Uuid,
            "varint" => Varint,
            _ => return None,
        })
    }

    /// Non-frozen list/set/map/UDT: stored as one cell per element/field.
    pub fn is_multicell(&self) -> bool {
        matches!(
            self,
            CqlType::List(_) | CqlType::Set(_) | CqlType::Map(..) | CqlType::Udt(_)
        )
    }

    /// List, set or map, frozen or not.
    pub fn is_collection(&self) -> bool {
        matches!(
            self.unfrozen(),
            CqlType::List(_) | CqlType::Set(_) | CqlType::Map(..)
        )
    }

    pub fn is_counter(&self) -> bool {
        matches!(self, CqlType::Counter)
    }

    /// Wrap in `Frozen` if the type is freezable and not already frozen.
    pub fn freeze(self) -> CqlType {
        match self {
            CqlType::List(_) | CqlType::Set(_) | CqlType::Map(..) | CqlType::Udt(_) => {
                CqlType::Frozen(Box::new(self))
            }
            other => other,
        }
    }

    /// The type without any `Frozen` wrapper.
    pub fn unfrozen(&self) -> &CqlType {
        let mut t = self;
        while let CqlType::Frozen(inner) = t {
            t = inner;
        }
        t
    }

    /// Whether this type mentions the UDT `ks.name` anywhere.
    pub fn references_udt(&self, ks: &str, name: &str) -> bool {
        use CqlType::*;
        match self {
            List(e) | Set(e) | Vector(e, _) | Frozen(e) => e.references_udt(ks, name),
            Map(k, v) => k.references_udt(ks, name) || v.references_udt(ks, name),
            Tuple(ts) => ts.iter().any(|t| t.references_udt(ks, name)),
            Udt(u) => {
                (u.keyspace == ks && u.name == name)
                    || u.fields.iter().any(|(_, t)| t.references_udt(ks, name))
            }
            _ => false,
        }
    }

    /// Cassandra's `valueLengthIfFixed`: the serialized size if every value has the same size.
    pub fn value_fixed_length(&self) -> Option<usize> {
        use CqlType::*;
        match self {
            Boolean => Some(1),
            Int | Float | Date => Some(4),
            Bigint | Counter | Double | Timestamp | Time => Some(8),
            Uuid | Timeuuid => Some(16),
            Vector(e, n) => e.value_fixed_length().map(|l| l * *n as usize),
            Frozen(e) => e.value_fixed_length(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let l = CqlType::List(Box::new(CqlType::Int));
        assert_eq!(l.cql_name(), "list<int>");
        assert_eq!(
            CqlType::Map(Box::new(CqlType::Text), Box::new(CqlType::Int)).cql_name(),
            "map<text, int>"
        );
        assert_eq!(
            CqlType::Frozen(Box::new(CqlType::Set(Box::new(CqlType::Text)))).cql_name(),
            "frozen<set<text>>"
        );
        assert_eq!(
            CqlType::Tuple(vec![CqlType::Int, CqlType::Text]).cql_name(),
            "frozen<tuple<int, text>>"
        );
        assert_eq!(
            CqlType::List(Box::new(CqlType::Set(Box::new(CqlType::Int)))).cql_name(),
            "list<frozen<set<int>>>"
        );
        assert_eq!(
            CqlType::Vector(Box::new(CqlType::Float), 3).cql_name(),
            "vector<float, 3>"
        );
        assert_eq!(CqlType::Custom("a.B".into()).cql_name(), "'a.B'");
        let u = CqlType::Udt(UdtDef {
            keyspace: "ks".into(),
            name: "Addr".into(),
            fields: vec![("street".into(), CqlType::Text)],
        });
        assert_eq!(u.cql_name(), "\"Addr\"");
        assert_eq!(u.clone().freeze().cql_name(), "frozen<\"Addr\">");
        assert!(u.references_udt("ks", "Addr"));
        assert_eq!(CqlType::parse_native("VARCHAR"), Some(CqlType::Text));
    }

    #[test]
    fn marshal() {
        assert_eq!(
            CqlType::Int.marshal_class(),
            "org.apache.cassandra.db.marshal.Int32Type"
        );
        assert_eq!(
            CqlType::Vector(Box::new(CqlType::Float), 3).marshal_class(),
            "org.apache.cassandra.db.marshal.VectorType(org.apache.cassandra.db.marshal.FloatType , 3)"
        );
        assert_eq!(
            CqlType::List(Box::new(CqlType::Int)).marshal_class(),
            "org.apache.cassandra.db.marshal.ListType(org.apache.cassandra.db.marshal.Int32Type)"
        );
        assert_eq!(
            CqlType::Frozen(Box::new(CqlType::Map(
                Box::new(CqlType::Text),
                Box::new(CqlType::List(Box::new(CqlType::Int)))
            )))
            .marshal_class(),
            "org.apache.cassandra.db.marshal.FrozenType(org.apache.cassandra.db.marshal.MapType(\
             org.apache.cassandra.db.marshal.UTF8Type,org.apache.cassandra.db.marshal.ListType(\
             org.apache.cassandra.db.marshal.Int32Type)))"
        );
        assert_eq!(
            CqlType::List(Box::new(CqlType::Set(Box::new(CqlType::Int)))).marshal_class(),
            "org.apache.cassandra.db.marshal.ListType(org.apache.cassandra.db.marshal.FrozenType(\
             org.apache.cassandra.db.marshal.SetType(org.apache.cassandra.db.marshal.Int32Type)))"
        );
        let u = CqlType::Udt(UdtDef {
            keyspace: "ks".into(),
            name: "a".into(),
            fields: vec![("b".into(), CqlType::Int)],
        });
        assert_eq!(
            u.marshal_class(),
            "org.apache.cassandra.db.marshal.UserType(ks,61,62:org.apache.cassandra.db.marshal.Int32Type)"
        );
        assert_eq!(
            CqlType::Int.marshal_class_reversed(),
            "org.apache.cassandra.db.marshal.ReversedType(org.apache.cassandra.db.marshal.Int32Type)"
        );
        assert_eq!(
            CqlType::Vector(Box::new(CqlType::Float), 3).value_fixed_length(),
            Some(12)
        );
    }
}
