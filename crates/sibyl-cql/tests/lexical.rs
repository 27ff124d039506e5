//! Literals, identifiers, keywords, comments and terms.

use sibyl_cql::ast::*;
use sibyl_cql::{
    is_reserved_keyword, parse_statement, parse_term, parse_type, quote_identifier_if_needed,
};

fn lit(text: &str) -> Literal {
    match parse_term(text).unwrap_or_else(|e| panic!("{text}: {e}")) {
        Term::Literal(l) => l,
        other => panic!("{text}: not a literal: {other:?}"),
    }
}

fn term(text: &str) -> Term {
    parse_term(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn int(s: &str) -> Term {
    Term::Literal(Literal::Integer(s.into()))
}

fn first_where_rhs(text: &str) -> Term {
    match parse_statement(text).unwrap_or_else(|e| panic!("{text}: {e}")) {
        Statement::Select(s) => s.where_clause.into_iter().next().unwrap().rhs,
        other => panic!("{other:?}"),
    }
}

#[test]
fn string_literals() {
    assert_eq!(lit("'abc'"), Literal::String("abc".into()));
    assert_eq!(lit("''"), Literal::String("".into()));
    assert_eq!(lit("'it''s'"), Literal::String("it's".into()));
    assert_eq!(lit("'multi\nline'"), Literal::String("multi\nline".into()));
    assert_eq!(lit("'ünïcødé ✓'"), Literal::String("ünïcødé ✓".into()));
    assert_eq!(
        lit("$$it's $ \"raw\"$$"),
        Literal::String("it's $ \"raw\"".into())
    );
    assert_eq!(lit("$$$$"), Literal::String("".into()));
}

#[test]
fn numeric_literals() {
    assert_eq!(lit("42"), Literal::Integer("42".into()));
    assert_eq!(lit("-42"), Literal::Integer("-42".into()));
    assert_eq!(
        lit("123456789012345678901234567890"),
        Literal::Integer("123456789012345678901234567890".into())
    );
    assert_eq!(lit("1.5"), Literal::Float("1.5".into()));
    assert_eq!(lit("1."), Literal::Float("1.".into()));
    assert_eq!(lit("-0.25"), Literal::Float("-0.25".into()));
    assert_eq!(lit("1e10"), Literal::Float("1e10".into()));
    assert_eq!(lit("1.5E-3"), Literal::Float("1.5E-3".into()));
    assert_eq!(lit("-2e+5"), Literal::Float("-2e+5".into()));
    assert_eq!(lit("NaN"), Literal::Float("NaN".into()));
    assert_eq!(lit("nan"), Literal::Float("NaN".into()));
    assert_eq!(lit("Infinity"), Literal::Float("Infinity".into()));
    assert_eq!(lit("-infinity"), Literal::Float("-Infinity".into()));
    assert_eq!(lit("- 7"), Literal::Integer("-7".into()));
}

#[test]
fn other_literals() {
    assert_eq!(lit("true"), Literal::Boolean(true));
    assert_eq!(lit("FALSE"), Literal::Boolean(false));
    assert_eq!(lit("null"), Literal::Null);
    assert_eq!(
        lit("123e4567-e89b-12d3-a456-426614174000"),
        Literal::Uuid("123e4567-e89b-12d3-a456-426614174000".into())
    );
    assert_eq!(
        lit("DEADBEEF-e89b-12d3-a456-426614174000"),
        Literal::Uuid("DEADBEEF-e89b-12d3-a456-426614174000".into())
    );
    assert_eq!(
        lit("0xCAFEbabe"),
        Literal::Blob(vec![0xca, 0xfe, 0xba, 0xbe])
    );
    assert_eq!(lit("0x"), Literal::Blob(vec![]));
    assert!(parse_term("0xABC").is_err());
}

#[test]
fn durations() {
    for d in [
        "12h30m",
        "1y2mo",
        "3w",
        "1d",
        "10s",
        "5ms",
        "7us",
        "7µs",
        "9ns",
        "1Y2MO3W4D5H6M7S8MS9US10NS",
        "P1DT2H",
        "P2W",
        "PT30M",
        "P1Y2M3D",
        "p1d",
        "P0001-02-03T04:05:06",
    ] {
        assert_eq!(lit(d), Literal::Duration(d.into()), "{d}");
    }
    assert_eq!(lit("-2d"), Literal::Duration("-2d".into()));
    assert_eq!(lit("-P1D"), Literal::Duration("-P1D".into()));
    // Durations in statements.
    assert_eq!(
        first_where_rhs("SELECT * FROM t WHERE d = 1h"),
        Term::Literal(Literal::Duration("1h".into()))
    );
    assert_eq!(
        first_where_rhs("SELECT * FROM t WHERE d > -10m"),
        Term::Literal(Literal::Duration("-10m".into()))
    );
    // ISO-looking words are still usable as names.
    let Statement::Select(s) = parse_statement("SELECT p1d FROM p2w WHERE pt1h = P1D").unwrap()
    else {
        panic!()
    };
    assert_eq!(s.selectors[0].selector, Selector::Column("p1d".into()));
    assert_eq!(s.table.name, "p2w");
    assert_eq!(s.where_clause[0].lhs, RelationLhs::Column("pt1h".into()));
    // Not durations: a 'T' with nothing after it, components out of order.
    assert!(parse_term("PT").is_err());
    assert!(parse_term("P1H").is_err());
    assert!(parse_term("P1D2Y").is_err());
}

#[test]
fn collections_and_udts() {
    assert_eq!(term("[]"), Term::List(vec![]));
    assert_eq!(term("[1, 2]"), Term::List(vec![int("1"), int("2")]));
    assert_eq!(term("{}"), Term::Map(vec![]));
    assert_eq!(term("{1, 2}"), Term::Set(vec![int("1"), int("2")]));
    assert_eq!(
        term("{'a': 1, 'b': [2]}"),
        Term::Map(vec![
            (Term::Literal(Literal::String("a".into())), int("1")),
            (
                Term::Literal(Literal::String("b".into())),
                Term::List(vec![int("2")])
            ),
        ])
    );
    assert_eq!(
        term("{a: 1, \"B\": 'x', c: {d: null}}"),
        Term::Udt(vec![
            ("a".into(), int("1")),
            ("B".into(), Term::Literal(Literal::String("x".into()))),
            (
                "c".into(),
                Term::Udt(vec![("d".into(), Term::Literal(Literal::Null))])
            ),
        ])
    );
    assert_eq!(
        term("(1, 'a', [2])").clone(),
        Term::Tuple(vec![
            int("1"),
            Term::Literal(Literal::String("a".into())),
            Term::List(vec![int("2")])
        ])
    );
    assert_eq!(
        term("{1: ?}"),
        Term::Map(vec![(int("1"), Term::Bind(BindMarker::Positional(0)))])
    );
    assert_eq!(
        term("{k: :v}"),
        Term::Udt(vec![(
            "k".into(),
            Term::Bind(BindMarker::Named("v".into()))
        )])
    );
    assert_eq!(
        term("[[1], [2, 3]]"),
        Term::List(vec![
            Term::List(vec![int("1")]),
            Term::List(vec![int("2"), int("3")])
        ])
    );
}

#[test]
fn functions_casts_arithmetic() {
    let f = |ks: Option<&str>, name: &str, args: Vec<Term>| Term::Function {
        name: QualifiedName {
            keyspace: ks.map(str::to_string),
            name: name.into(),
        },
        args,
    };
    assert_eq!(term("now()"), f(None, "now", vec![]));
    assert_eq!(term("uuid()"), f(None, "uuid", vec![]));
    assert_eq!(
        term("toTimestamp(now())"),
        f(None, "totimestamp", vec![f(None, "now", vec![])])
    );
    assert_eq!(
        term("ks.f(1, 'x')"),
        f(
            Some("ks"),
            "f",
            vec![int("1"), Term::Literal(Literal::String("x".into()))]
        )
    );
    assert_eq!(
        term("blobAsInt(0x00000001)"),
        f(
            None,
            "blobasint",
            vec![Term::Literal(Literal::Blob(vec![0, 0, 0, 1]))]
        )
    );
    assert_eq!(term("\"Fn\"(1)"), f(None, "Fn", vec![int("1")]));
    assert_eq!(
        term("(int) 5"),
        Term::Cast {
            ty: CqlTypeAst::Native("int".into()),
            term: Box::new(int("5"))
        }
    );
    assert_eq!(
        term("(frozen<list<int>>) [1]"),
        Term::Cast {
            ty: CqlTypeAst::Frozen(Box::new(CqlTypeAst::List(Box::new(CqlTypeAst::Native(
                "int".into()
            ))))),
            term: Box::new(Term::List(vec![int("1")]))
        }
    );
    assert_eq!(
        term("(bigint) -1"),
        Term::Cast {
            ty: CqlTypeAst::Native("bigint".into()),
            term: Box::new(int("-1"))
        }
    );
    let ar = |op, l, r| Term::Arithmetic {
        op,
        left: Box::new(l),
        right: Box::new(r),
    };
    assert_eq!(
        term("1 + 2 * 3"),
        ar(ArithOp::Add, int("1"), ar(ArithOp::Mul, int("2"), int("3")))
    );
    assert_eq!(
        term("1 - 2 - 3"),
        ar(ArithOp::Sub, ar(ArithOp::Sub, int("1"), int("2")), int("3"))
    );
    assert_eq!(term("1-2"), ar(ArithOp::Sub, int("1"), int("2")));
    assert_eq!(
        term("(1 + 2) % 3"),
        ar(ArithOp::Mod, ar(ArithOp::Add, int("1"), int("2")), int("3"))
    );
    assert_eq!(term("6 / -2"), ar(ArithOp::Div, int("6"), int("-2")));
    assert_eq!(
        term("-now()"),
        Term::Negate(Box::new(f(None, "now", vec![])))
    );
    assert_eq!(term("- -1"), Term::Negate(Box::new(int("-1"))));
    assert_eq!(term("-(1)"), Term::Negate(Box::new(int("1"))));
    assert_eq!(term("(1)"), int("1"));
}

#[test]
fn identifiers() {
    // Unquoted names are lower-cased, quoted keep case and unescape "".
    let Statement::Select(s) =
        parse_statement("SELECT MyCol, \"MyCol\", \"a\"\"b\", \"select\" FROM \"KS\".\"Tab\"")
            .unwrap()
    else {
        panic!()
    };
    let names: Vec<Selector> = s.selectors.into_iter().map(|i| i.selector).collect();
    assert_eq!(
        names,
        ["mycol", "MyCol", "a\"b", "select"]
            .iter()
            .map(|n| Selector::Column(n.to_string()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        s.table,
        QualifiedName {
            keyspace: Some("KS".into()),
            name: "Tab".into()
        }
    );
    assert!(parse_statement("SELECT \"\" FROM t").is_err());
}

#[test]
fn unreserved_keywords_as_names() {
    let words = [
        "key",
        "value",
        "type",
        "ttl",
        "timestamp",
        "date",
        "time",
        "text",
        "list",
        "map",
        "set_",
        "keys",
        "values",
        "filtering",
        "json",
        "distinct",
        "count",
        "as",
        "options",
        "custom",
        "static",
        "frozen",
        "tuple",
        "vector",
        "varchar",
        "ascii",
        "writetime",
        "clustering",
        "compact",
        "storage",
        "contains",
        "exists",
        "user",
        "users",
        "role",
        "roles",
        "login",
        "password",
        "superuser",
        "function",
        "aggregate",
        "trigger",
        "language",
        "returns",
        "like",
        "per",
        "partition",
        "group",
        "cast",
        "ann",
        "default",
        "unset",
        "replace",
        "counter",
        "blob",
        "int",
        "uuid",
        "timeuuid",
        "inet",
        "duration",
        "varint",
        "decimal",
        "boolean",
        "bigint",
        "double",
        "float",
        "smallint",
        "tinyint",
        "all",
        "permission",
        "permissions",
        "keyspaces",
        "input",
        "called",
        "deterministic",
        "monotonic",
        "maxwritetime",
        "initcond",
        "sfunc",
        "stype",
        "finalfunc",
    ];
    for w in words {
        let ddl = format!("CREATE TABLE {w} ({w} int PRIMARY KEY, x {w}_t)");
        let Statement::CreateTable(t) =
            parse_statement(&ddl).unwrap_or_else(|e| panic!("{ddl}: {e}"))
        else {
            panic!()
        };
        assert_eq!(t.name.name, w);
        assert_eq!(t.columns[0].name, w);
        for q in [
            format!("SELECT {w} FROM {w}.{w} WHERE {w} = 1 AND {w} > 2 ORDER BY {w} DESC"),
            format!("SELECT {w}, {w} AS {w} FROM t WHERE {w} IN (1) GROUP BY {w}"),
            format!("INSERT INTO t ({w}) VALUES (:{w})"),
            format!("UPDATE t SET {w} = {w} + 1, {w}[1] = 2 WHERE {w} = 1 IF {w} = 3"),
            format!("DELETE {w} FROM t WHERE {w} = 1"),
            format!("ALTER TABLE t RENAME {w} TO {w}"),
            format!("CREATE INDEX {w} ON t ({w})"),
            format!("USE {w}"),
        ] {
            parse_statement(&q).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
    }
    // Reserved words cannot be names.
    for w in [
        "select", "from", "where", "and", "table", "token", "primary", "limit", "null", "nan",
        "true",
    ] {
        assert!(
            parse_statement(&format!("CREATE TABLE t ({w} int PRIMARY KEY)")).is_err(),
            "{w}"
        );
        assert!(
            parse_statement(&format!("CREATE TABLE t (\"{w}\" int PRIMARY KEY)")).is_ok(),
            "{w}"
        );
    }
}

#[test]
fn keyword_case_insensitivity() {
    let a = parse_statement("SeLeCt * FrOm t WhErE k = 1 LiMiT 1 aLlOw FiLtErInG").unwrap();
    let b = parse_statement("select * from t where k = 1 limit 1 allow filtering").unwrap();
    assert_eq!(a, b);
    assert_eq!(
        parse_type("FROZEN<LIST<INT>>").unwrap(),
        parse_type("frozen<list<int>>").unwrap()
    );
}

#[test]
fn comments_and_whitespace() {
    let plain = parse_statement("SELECT a FROM t WHERE k = 1").unwrap();
    for text in [
        "SELECT a -- comment\nFROM t WHERE k = 1",
        "SELECT a // comment\nFROM t WHERE k = 1",
        "SELECT /* multi\nline * / comment */ a FROM t WHERE k = 1",
        "/**/SELECT a FROM t WHERE k = 1 -- trailing",
        "\n\t SELECT\r\n a\n FROM\tt WHERE k=1 ;",
        "SELECT a FROM t WHERE k = 1; -- done",
    ] {
        assert_eq!(
            parse_statement(text).unwrap_or_else(|e| panic!("{text:?}: {e}")),
            plain,
            "{text:?}"
        );
    }
    // Comment markers inside strings are string content.
    let Statement::Select(s) =
        parse_statement("SELECT * FROM t WHERE k = '-- not /* a comment'").unwrap()
    else {
        panic!()
    };
    assert_eq!(
        s.where_clause[0].rhs,
        Term::Literal(Literal::String("-- not /* a comment".into()))
    );
}

#[test]
fn reserved_keywords_and_quoting() {
    for w in [
        "SELECT", "from", "Where", "token", "KEYSPACE", "nan", "infinity", "primary", "with",
    ] {
        assert!(is_reserved_keyword(w), "{w}");
    }
    for w in [
        "key",
        "ttl",
        "json",
        "type",
        "text",
        "count",
        "writetime",
        "value",
        "cast",
        "default",
    ] {
        assert!(!is_reserved_keyword(w), "{w}");
    }
    assert_eq!(quote_identifier_if_needed("abc_1"), "abc_1");
    assert_eq!(quote_identifier_if_needed("key"), "key");
    assert_eq!(quote_identifier_if_needed("MyCol"), "\"MyCol\"");
    assert_eq!(quote_identifier_if_needed("select"), "\"select\"");
    assert_eq!(quote_identifier_if_needed("1abc"), "\"1abc\"");
    assert_eq!(quote_identifier_if_needed("_a"), "\"_a\"");
    assert_eq!(quote_identifier_if_needed("a b"), "\"a b\"");
    assert_eq!(quote_identifier_if_needed("a\"b"), "\"a\"\"b\"");
    assert_eq!(quote_identifier_if_needed(""), "\"\"");
    assert_eq!(quote_identifier_if_needed("true"), "\"true\"");
    // Quoting round-trips through the parser.
    for name in ["MyCol", "select", "a\"b", "with space", "key", "x1", "ünï"] {
        let q = quote_identifier_if_needed(name);
        let Statement::Use(parsed) = parse_statement(&format!("USE {q}")).unwrap() else {
            panic!()
        };
        assert_eq!(parsed, name);
    }
}
