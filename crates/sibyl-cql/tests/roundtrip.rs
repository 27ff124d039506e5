//! Rendering an AST with `Display` and parsing it back gives the same AST.

use proptest::prelude::*;
use sibyl_cql::ast::*;
use sibyl_cql::{parse_term, parse_type};

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_]{0,6}".prop_filter("not an ISO duration", |s| !looks_iso(s)),
        "[A-Za-z \"'.]{1,6}",
        prop::sample::select(vec![
            "key".to_string(),
            "select".into(),
            "token".into(),
            "ttl".into(),
            "Type".into()
        ]),
    ]
}

fn looks_iso(s: &str) -> bool {
    s.starts_with('p') && s.len() > 2 && s[1..].chars().any(|c| c.is_ascii_digit())
}

fn qualified() -> impl Strategy<Value = QualifiedName> {
    (prop::option::of(name()), name()).prop_map(|(keyspace, name)| QualifiedName { keyspace, name })
}

fn cql_type() -> impl Strategy<Value = CqlTypeAst> {
    let leaf = prop_oneof![
        prop::sample::select(vec![
            "ascii",
            "bigint",
            "blob",
            "boolean",
            "counter",
            "date",
            "decimal",
            "double",
            "duration",
            "float",
            "inet",
            "int",
            "smallint",
            "text",
            "time",
            "timestamp",
            "timeuuid",
            "tinyint",
            "uuid",
            "varint",
        ])
        .prop_map(|n| CqlTypeAst::Native(n.to_string())),
        qualified()
            .prop_filter("not a native or collection name", |q| {
                let n = q.name.as_str();
                q.keyspace.is_some()
                    || !matches!(
                        n,
                        "ascii"
                            | "bigint"
                            | "blob"
                            | "boolean"
                            | "counter"
                            | "date"
                            | "decimal"
                            | "double"
                            | "duration"
                            | "float"
                            | "inet"
                            | "int"
                            | "smallint"
                            | "text"
                            | "time"
                            | "timestamp"
                            | "timeuuid"
                            | "tinyint"
                            | "uuid"
                            | "varint"
                            | "varchar"
                    )
            })
            .prop_map(CqlTypeAst::Udt),
        "[a-zA-Z.']{1,10}".prop_map(CqlTypeAst::Custom),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|t| CqlTypeAst::List(Box::new(t))),
            inner.clone().prop_map(|t| CqlTypeAst::Set(Box::new(t))),
            inner.clone().prop_map(|t| CqlTypeAst::Frozen(Box::new(t))),
            (inner.clone(), inner.clone())
                .prop_map(|(k, v)| CqlTypeAst::Map(Box::new(k), Box::new(v))),
            prop::collection::vec(inner.clone(), 1..4).prop_map(CqlTypeAst::Tuple),
            (inner, 1u32..5000).prop_map(|(t, n)| CqlTypeAst::Vector(Box::new(t), n)),
        ]
    })
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        "\\PC{0,8}".prop_map(Literal::String),
        "-?[0-9]{1,25}".prop_map(Literal::Integer),
        prop::sample::select(vec![
            "1.5",
            "-0.25",
            "1e10",
            "2.5E-3",
            "NaN",
            "Infinity",
            "-Infinity",
            "3."
        ])
        .prop_map(|s| Literal::Float(s.to_string())),
        any::<bool>().prop_map(Literal::Boolean),
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}".prop_map(Literal::Uuid),
        prop::collection::vec(any::<u8>(), 0..6).prop_map(Literal::Blob),
        prop::sample::select(vec![
            "1h30m",
            "-2d",
            "P1D",
            "PT2H",
            "P2W",
            "3mo",
            "1y2mo3w4d5h6m7s8ms9us10ns",
            "-P1DT1H"
        ])
        .prop_map(|s| Literal::Duration(s.to_string())),
        Just(Literal::Null),
    ]
}

fn term() -> impl Strategy<Value = Term> {
    let leaf = prop_oneof![
        literal().prop_map(Term::Literal),
        name().prop_map(|n| Term::Bind(BindMarker::Named(n))),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        let op = prop::sample::select(vec![ArithOp::Add, ArithOp::Sub, ArithOp::Mul, ArithOp::Div, ArithOp::Mod]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Term::List),
            prop::collection::vec(inner.clone(), 1..4).prop_map(Term::Set),
            // `{P1D: x}` reads as a UDT literal (durations cannot be map keys anyway).
            prop::collection::vec((inner.clone(), inner.clone()), 0..3)
                .prop_filter("no ISO duration keys", |es| {
                    !es.iter().any(|(k, _)| matches!(k, Term::Literal(Literal::Duration(d)) if d.starts_with('P')))
                })
                .prop_map(Term::Map),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Term::Tuple),
            prop::collection::vec((name(), inner.clone()), 1..3).prop_map(Term::Udt),
            (qualified(), prop::collection::vec(inner.clone(), 0..3))
                .prop_map(|(name, args)| Term::Function { name, args }),
            (cql_type(), inner.clone()).prop_map(|(ty, t)| Term::Cast { ty, term: Box::new(t) }),
            (op, inner.clone(), inner.clone())
                .prop_map(|(op, l, r)| Term::Arithmetic { op, left: Box::new(l), right: Box::new(r) }),
            inner.prop_map(|t| Term::Negate(Box::new(t))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn types_round_trip(t in cql_type()) {
        let text = t.to_string();
        prop_assert_eq!(parse_type(&text), Ok(t), "{}", text);
    }

    #[test]
    fn terms_round_trip(t in term()) {
        let text = t.to_string();
        prop_assert_eq!(parse_term(&text), Ok(t), "{}", text);
    }
}

#[test]
fn display_examples() {
    assert_eq!(
        parse_type("FROZEN<map<VARCHAR, list<ks.\"My T\">>>")
            .unwrap()
            .to_string(),
        "frozen<map<text, list<ks.\"My T\">>>"
    );
    assert_eq!(
        parse_type("vector<float, 3>").unwrap().to_string(),
        "vector<float, 3>"
    );
    assert_eq!(
        parse_term("{a: 'it''s', b: [0xFF, -1]}")
            .unwrap()
            .to_string(),
        "{a: 'it''s', b: [0xff, -1]}"
    );
    assert_eq!(sibyl_cql::quote_string("it's"), "'it''s'");
}
