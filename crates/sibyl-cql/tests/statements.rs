//! Every statement form, checked against the AST.

use sibyl_cql::ast::*;
use sibyl_cql::{bind_marker_count, parse_statement, parse_statements, parse_term, parse_type};

fn p(text: &str) -> Statement {
    parse_statement(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn select(text: &str) -> SelectStatement {
    match p(text) {
        Statement::Select(s) => s,
        other => panic!("not a select: {other:?}"),
    }
}

fn insert(text: &str) -> InsertStatement {
    match p(text) {
        Statement::Insert(s) => s,
        other => panic!("not an insert: {other:?}"),
    }
}

fn update(text: &str) -> UpdateStatement {
    match p(text) {
        Statement::Update(s) => s,
        other => panic!("not an update: {other:?}"),
    }
}

fn delete(text: &str) -> DeleteStatement {
    match p(text) {
        Statement::Delete(s) => s,
        other => panic!("not a delete: {other:?}"),
    }
}

fn qn(ks: Option<&str>, name: &str) -> QualifiedName {
    QualifiedName {
        keyspace: ks.map(str::to_string),
        name: name.to_string(),
    }
}

fn int(s: &str) -> Term {
    Term::Literal(Literal::Integer(s.into()))
}

fn string(s: &str) -> Term {
    Term::Literal(Literal::String(s.into()))
}

fn pos(i: usize) -> Term {
    Term::Bind(BindMarker::Positional(i))
}

fn col(s: &str) -> Selector {
    Selector::Column(s.into())
}

fn func(name: &str, args: Vec<Selector>) -> Selector {
    Selector::Function {
        name: qn(None, name),
        args,
    }
}

fn rel(c: &str, op: Operator, rhs: Term) -> Relation {
    Relation {
        lhs: RelationLhs::Column(c.into()),
        op,
        rhs,
    }
}

fn native(s: &str) -> CqlTypeAst {
    CqlTypeAst::Native(s.into())
}

// ----- SELECT -------------------------------------------------------------------------------

#[test]
fn select_star() {
    let s = select("SELECT * FROM ks.t");
    assert_eq!(s.table, qn(Some("ks"), "t"));
    assert!(s.selectors.is_empty());
    assert!(!s.json && !s.distinct && !s.allow_filtering);
    assert!(s.where_clause.is_empty() && s.limit.is_none());
    // Trailing semicolons and case-insensitive keywords.
    assert_eq!(select("select * from KS.T;;"), select("SELECT * FROM ks.t"));
}

#[test]
fn select_json_distinct_and_aliases() {
    let s = select("SELECT JSON DISTINCT a, b AS bb FROM t");
    assert!(s.json && s.distinct);
    assert_eq!(
        s.selectors[0],
        SelectItem {
            selector: col("a"),
            alias: None
        }
    );
    assert_eq!(
        s.selectors[1],
        SelectItem {
            selector: col("b"),
            alias: Some("bb".into())
        }
    );
    assert!(select("SELECT JSON * FROM t").json);
    // json and distinct as column names
    let s = select("SELECT json, distinct FROM t");
    assert!(!s.json && !s.distinct);
    assert_eq!(s.selectors.len(), 2);
    let s = select("SELECT json FROM t");
    assert!(!s.json);
    assert_eq!(s.selectors[0].selector, col("json"));
    let s = select("SELECT distinct AS d FROM t");
    assert!(!s.distinct);
    assert_eq!(s.selectors[0].alias.as_deref(), Some("d"));
}

#[test]
fn select_functions() {
    let s = select(
        "SELECT count(*), COUNT(1), writetime(v), TTL(v), token(k1, k2), CAST(a AS text), \
         ks.f(a, 'x'), toJson(m), maxwritetime(v) FROM t",
    );
    let sel: Vec<Selector> = s.selectors.into_iter().map(|i| i.selector).collect();
    assert_eq!(sel[0], func("count", vec![Selector::Star]));
    assert_eq!(sel[1], func("count", vec![Selector::Term(int("1"))]));
    assert_eq!(sel[2], func("writetime", vec![col("v")]));
    assert_eq!(sel[3], func("ttl", vec![col("v")]));
    assert_eq!(sel[4], func("token", vec![col("k1"), col("k2")]));
    assert_eq!(sel[5], Selector::Cast(Box::new(col("a")), native("text")));
    assert_eq!(
        sel[6],
        Selector::Function {
            name: qn(Some("ks"), "f"),
            args: vec![col("a"), Selector::Term(string("x"))]
        }
    );
    assert_eq!(sel[7], func("tojson", vec![col("m")]));
    assert_eq!(sel[8], func("maxwritetime", vec![col("v")]));
    // Quoted function names keep their case.
    let s = select("SELECT \"myFunc\"(a) FROM t");
    assert_eq!(s.selectors[0].selector, func("myFunc", vec![col("a")]));
    // Zero-argument functions.
    let s = select("SELECT now() FROM t");
    assert_eq!(s.selectors[0].selector, func("now", vec![]));
}

#[test]
fn select_field_element_arithmetic() {
    let s = select("SELECT u.f, m['k'], l[0], u.a.b, a + 1 * 2, (a - b) / 2, -a, -1 FROM t");
    let sel: Vec<Selector> = s.selectors.into_iter().map(|i| i.selector).collect();
    assert_eq!(sel[0], Selector::Field(Box::new(col("u")), "f".into()));
    assert_eq!(
        sel[1],
        Selector::Element(Box::new(col("m")), Box::new(string("k")))
    );
    assert_eq!(
        sel[2],
        Selector::Element(Box::new(col("l")), Box::new(int("0")))
    );
    assert_eq!(
        sel[3],
        Selector::Field(
            Box::new(Selector::Field(Box::new(col("u")), "a".into())),
            "b".into()
        )
    );
    assert_eq!(
        sel[4],
        Selector::Arithmetic {
            op: ArithOp::Add,
            left: Box::new(col("a")),
            right: Box::new(Selector::Arithmetic {
                op: ArithOp::Mul,
                left: Box::new(Selector::Term(int("1"))),
                right: Box::new(Selector::Term(int("2"))),
            }),
        }
    );
    assert_eq!(
        sel[5],
        Selector::Arithmetic {
            op: ArithOp::Div,
            left: Box::new(Selector::Arithmetic {
                op: ArithOp::Sub,
                left: Box::new(col("a")),
                right: Box::new(col("b")),
            }),
            right: Box::new(Selector::Term(int("2"))),
        }
    );
    assert_eq!(sel[6], func("_negate", vec![col("a")]));
    assert_eq!(sel[7], Selector::Term(int("-1")));
}

#[test]
fn select_term_selectors() {
    let s = select("SELECT 'x', ?, [1, 2], {'a': 1}, (int) 3, (1, 'a') FROM t");
    let sel: Vec<Selector> = s.selectors.into_iter().map(|i| i.selector).collect();
    assert_eq!(sel[0], Selector::Term(string("x")));
    assert_eq!(sel[1], Selector::Term(pos(0)));
    assert_eq!(sel[2], Selector::Term(Term::List(vec![int("1"), int("2")])));
    assert_eq!(
        sel[3],
        Selector::Term(Term::Map(vec![(string("a"), int("1"))]))
    );
    assert_eq!(
        sel[4],
        Selector::Term(Term::Cast {
            ty: native("int"),
            term: Box::new(int("3"))
        })
    );
    assert_eq!(
        sel[5],
        Selector::Term(Term::Tuple(vec![int("1"), string("a")]))
    );
}

#[test]
fn select_where_single_column() {
    let s = select(
        "SELECT * FROM t WHERE a = 1 AND b != 2 AND c < 3 AND d <= 4 AND e > 5 AND f >= 6 \
         AND g IN (1, 2) AND h IN ? AND i IN () AND j CONTAINS 'x' AND k CONTAINS KEY 'y' \
         AND l LIKE 'a%' AND m IS NOT NULL AND n IN :names",
    );
    let w = s.where_clause;
    assert_eq!(w[0], rel("a", Operator::Eq, int("1")));
    assert_eq!(w[1], rel("b", Operator::Neq, int("2")));
    assert_eq!(w[2], rel("c", Operator::Lt, int("3")));
    assert_eq!(w[3], rel("d", Operator::Lte, int("4")));
    assert_eq!(w[4], rel("e", Operator::Gt, int("5")));
    assert_eq!(w[5], rel("f", Operator::Gte, int("6")));
    assert_eq!(
        w[6],
        rel("g", Operator::In, Term::Tuple(vec![int("1"), int("2")]))
    );
    assert_eq!(w[7], rel("h", Operator::In, pos(0)));
    assert_eq!(w[8], rel("i", Operator::In, Term::Tuple(vec![])));
    assert_eq!(w[9], rel("j", Operator::Contains, string("x")));
    assert_eq!(w[10], rel("k", Operator::ContainsKey, string("y")));
    assert_eq!(w[11], rel("l", Operator::Like, string("a%")));
    assert_eq!(
        w[12],
        rel("m", Operator::IsNot, Term::Literal(Literal::Null))
    );
    assert_eq!(
        w[13],
        rel(
            "n",
            Operator::In,
            Term::Bind(BindMarker::Named("names".into()))
        )
    );
    // A single-element IN is still a tuple.
    let s = select("SELECT * FROM t WHERE a IN (1)");
    assert_eq!(s.where_clause[0].rhs, Term::Tuple(vec![int("1")]));
    // `contains key` where `key` is a column name is CONTAINS of... a term, so `key` here is KEY.
    let s = select("SELECT * FROM t WHERE m CONTAINS KEY ?");
    assert_eq!(s.where_clause[0].op, Operator::ContainsKey);
}

#[test]
fn select_where_multi_column_token_and_map_element() {
    let s = select(
        "SELECT * FROM t WHERE (a, b) > (1, 2) AND (a, b) IN ((1, 2), (3, 4)) AND (c) = (5) \
         AND (a, b) <= ? AND (a, b) IN ? AND (a, b) IN (?, ?) AND token(a, b) > ? \
         AND token(k) <= token(1) AND m['k'] = 1",
    );
    let w = s.where_clause;
    let cols = |v: &[&str]| RelationLhs::Columns(v.iter().map(|s| s.to_string()).collect());
    assert_eq!(w[0].lhs, cols(&["a", "b"]));
    assert_eq!(w[0].op, Operator::Gt);
    assert_eq!(w[0].rhs, Term::Tuple(vec![int("1"), int("2")]));
    assert_eq!(w[1].op, Operator::In);
    assert_eq!(
        w[1].rhs,
        Term::Tuple(vec![
            Term::Tuple(vec![int("1"), int("2")]),
            Term::Tuple(vec![int("3"), int("4")])
        ])
    );
    assert_eq!(w[2].lhs, cols(&["c"]));
    assert_eq!(w[2].rhs, Term::Tuple(vec![int("5")]));
    assert_eq!(w[3].rhs, pos(0));
    assert_eq!(w[4].rhs, pos(1));
    assert_eq!(w[5].rhs, Term::Tuple(vec![pos(2), pos(3)]));
    assert_eq!(w[6].lhs, RelationLhs::Token(vec!["a".into(), "b".into()]));
    assert_eq!(w[6].rhs, pos(4));
    assert_eq!(w[7].lhs, RelationLhs::Token(vec!["k".into()]));
    assert_eq!(
        w[7].rhs,
        Term::Function {
            name: qn(None, "token"),
            args: vec![int("1")]
        }
    );
    assert_eq!(w[8].lhs, RelationLhs::MapElement("m".into(), string("k")));
    assert_eq!(w[8].rhs, int("1"));
}

#[test]
fn select_tail_clauses() {
    let s = select(
        "SELECT * FROM t WHERE k = 1 GROUP BY a, b ORDER BY c DESC, d ASC, e \
         PER PARTITION LIMIT 2 LIMIT ? ALLOW FILTERING",
    );
    assert_eq!(s.group_by, vec!["a".to_string(), "b".to_string()]);
    assert_eq!(
        s.order_by,
        vec![
            Ordering {
                target: OrderingTarget::Column("c".into()),
                descending: true
            },
            Ordering {
                target: OrderingTarget::Column("d".into()),
                descending: false
            },
            Ordering {
                target: OrderingTarget::Column("e".into()),
                descending: false
            },
        ]
    );
    assert_eq!(s.per_partition_limit, Some(int("2")));
    assert_eq!(s.limit, Some(pos(0)));
    assert!(s.allow_filtering);
    let s = select("SELECT * FROM t ORDER BY v ANN OF [1.0, -2.5] LIMIT 3");
    assert_eq!(
        s.order_by[0].target,
        OrderingTarget::Ann(
            "v".into(),
            Term::List(vec![
                Term::Literal(Literal::Float("1.0".into())),
                Term::Literal(Literal::Float("-2.5".into()))
            ])
        )
    );
}

// ----- INSERT / UPDATE / DELETE / BATCH -----------------------------------------------------

#[test]
fn insert_values() {
    let s = insert("INSERT INTO ks.t (a, \"B\") VALUES (1, 'x''y') IF NOT EXISTS USING TTL 10 AND TIMESTAMP 123");
    assert_eq!(s.table, qn(Some("ks"), "t"));
    assert_eq!(
        s.values,
        InsertValues::Values {
            columns: vec!["a".into(), "B".into()],
            values: vec![int("1"), string("x'y")]
        }
    );
    assert!(s.if_not_exists);
    assert_eq!(
        s.using,
        UsingClause {
            ttl: Some(int("10")),
            timestamp: Some(int("123"))
        }
    );
    let s = insert("INSERT INTO t (a) VALUES (?) USING TIMESTAMP ?");
    assert_eq!(s.using.timestamp, Some(pos(1)));
    assert!(!s.if_not_exists);
}

#[test]
fn insert_json() {
    let s = insert("INSERT INTO t JSON '{\"a\": 1}'");
    assert_eq!(
        s.values,
        InsertValues::Json {
            json: string("{\"a\": 1}"),
            default_unset: false
        }
    );
    let s = insert("INSERT INTO t JSON ? DEFAULT UNSET IF NOT EXISTS");
    assert_eq!(
        s.values,
        InsertValues::Json {
            json: pos(0),
            default_unset: true
        }
    );
    assert!(s.if_not_exists);
    let s = insert("INSERT INTO t JSON '{}' DEFAULT NULL USING TTL 1");
    assert_eq!(
        s.values,
        InsertValues::Json {
            json: string("{}"),
            default_unset: false
        }
    );
}

#[test]
fn update_assignments() {
    let s = update(
        "UPDATE ks.t USING TTL 5 AND TIMESTAMP 6 SET a = 1, b = b + {1}, c = [1] + c, d = d - {'x'}, \
         e += 1, f -= 2, m['k'] = 2, u.f = 3, g = g + 1, h = 1 + 2, i = now() WHERE k = 1",
    );
    assert_eq!(
        s.using,
        UsingClause {
            ttl: Some(int("5")),
            timestamp: Some(int("6"))
        }
    );
    let a = s.assignments;
    assert_eq!(
        a[0],
        Assignment::Set(ColumnTarget::Column("a".into()), int("1"))
    );
    assert_eq!(a[1], Assignment::Add("b".into(), Term::Set(vec![int("1")])));
    assert_eq!(
        a[2],
        Assignment::Prepend("c".into(), Term::List(vec![int("1")]))
    );
    assert_eq!(
        a[3],
        Assignment::Subtract("d".into(), Term::Set(vec![string("x")]))
    );
    assert_eq!(a[4], Assignment::Add("e".into(), int("1")));
    assert_eq!(a[5], Assignment::Subtract("f".into(), int("2")));
    assert_eq!(
        a[6],
        Assignment::Set(ColumnTarget::Element("m".into(), string("k")), int("2"))
    );
    assert_eq!(
        a[7],
        Assignment::Set(ColumnTarget::Field("u".into(), "f".into()), int("3"))
    );
    assert_eq!(a[8], Assignment::Add("g".into(), int("1")));
    assert_eq!(
        a[9],
        Assignment::Set(
            ColumnTarget::Column("h".into()),
            Term::Arithmetic {
                op: ArithOp::Add,
                left: Box::new(int("1")),
                right: Box::new(int("2"))
            }
        )
    );
    assert_eq!(
        a[10],
        Assignment::Set(
            ColumnTarget::Column("i".into()),
            Term::Function {
                name: qn(None, "now"),
                args: vec![]
            }
        )
    );
    assert_eq!(s.where_clause, vec![rel("k", Operator::Eq, int("1"))]);
    assert_eq!(s.conditions, Conditions::None);
}

#[test]
fn update_conditions() {
    let s = update("UPDATE t SET a = 1 WHERE k = 1 IF EXISTS");
    assert_eq!(s.conditions, Conditions::IfExists);
    let s = update(
        "UPDATE t SET a = 1 WHERE k = 1 IF a = 1 AND m['k'] > 2 AND u.f IN (1, 2) AND b != null \
         AND c IN ? AND s CONTAINS 3",
    );
    let Conditions::If(c) = s.conditions else {
        panic!()
    };
    assert_eq!(
        c[0],
        Condition {
            target: ColumnTarget::Column("a".into()),
            op: Operator::Eq,
            rhs: int("1")
        }
    );
    assert_eq!(
        c[1],
        Condition {
            target: ColumnTarget::Element("m".into(), string("k")),
            op: Operator::Gt,
            rhs: int("2")
        }
    );
    assert_eq!(
        c[2],
        Condition {
            target: ColumnTarget::Field("u".into(), "f".into()),
            op: Operator::In,
            rhs: Term::Tuple(vec![int("1"), int("2")])
        }
    );
    assert_eq!(c[3].op, Operator::Neq);
    assert_eq!(c[3].rhs, Term::Literal(Literal::Null));
    assert_eq!(c[4].rhs, pos(0));
    assert_eq!(c[5].op, Operator::Contains);
}

#[test]
fn delete_forms() {
    let s = delete("DELETE FROM t WHERE k = 1");
    assert!(s.columns.is_empty());
    assert_eq!(s.conditions, Conditions::None);
    let s =
        delete("DELETE a, m['k'], u.f FROM ks.t USING TIMESTAMP 5 WHERE k = 1 AND c > 2 IF EXISTS");
    assert_eq!(
        s.columns,
        vec![
            ColumnTarget::Column("a".into()),
            ColumnTarget::Element("m".into(), string("k")),
            ColumnTarget::Field("u".into(), "f".into()),
        ]
    );
    assert_eq!(s.using.timestamp, Some(int("5")));
    assert_eq!(s.where_clause.len(), 2);
    assert_eq!(s.conditions, Conditions::IfExists);
    let s = delete("DELETE FROM t WHERE k IN (1, 2) IF a = 3");
    assert!(matches!(s.conditions, Conditions::If(ref c) if c.len() == 1));
    assert!(parse_statement("DELETE FROM t USING TTL 5 WHERE k = 1").is_err());
}

#[test]
fn batches() {
    let Statement::Batch(b) = p(
        "BEGIN BATCH INSERT INTO t (a) VALUES (1) UPDATE t SET a = 2 WHERE k = 1 \
         DELETE FROM t WHERE k = 2 APPLY BATCH",
    ) else {
        panic!()
    };
    assert_eq!(b.kind, BatchKind::Logged);
    assert_eq!(b.statements.len(), 3);
    assert!(matches!(b.statements[0], BatchChild::Insert(_)));
    assert!(matches!(b.statements[1], BatchChild::Update(_)));
    assert!(matches!(b.statements[2], BatchChild::Delete(_)));
    let Statement::Batch(b) = p("begin unlogged batch using timestamp 1 \
         INSERT INTO t (a) VALUES (?); UPDATE t SET a = ? WHERE k = ?;; apply batch;")
    else {
        panic!()
    };
    assert_eq!(b.kind, BatchKind::Unlogged);
    assert_eq!(b.using.timestamp, Some(int("1")));
    let Statement::Batch(b2) =
        p("BEGIN COUNTER BATCH UPDATE t SET c = c + 1 WHERE k = 1; APPLY BATCH")
    else {
        panic!()
    };
    assert_eq!(b2.kind, BatchKind::Counter);
    assert!(parse_statement("BEGIN BATCH SELECT * FROM t APPLY BATCH").is_err());
    assert!(parse_statement("BEGIN BATCH INSERT INTO t (a) VALUES (1)").is_err());
}

#[test]
fn use_and_truncate() {
    assert_eq!(p("USE ks"), Statement::Use("ks".into()));
    assert_eq!(p("USE \"MyKs\""), Statement::Use("MyKs".into()));
    assert_eq!(p("TRUNCATE ks.t"), Statement::Truncate(qn(Some("ks"), "t")));
    assert_eq!(p("TRUNCATE TABLE t"), Statement::Truncate(qn(None, "t")));
    assert_eq!(
        p("TRUNCATE COLUMNFAMILY t"),
        Statement::Truncate(qn(None, "t"))
    );
}

// ----- DDL ----------------------------------------------------------------------------------

#[test]
fn keyspaces() {
    let Statement::CreateKeyspace(k) = p(
        "CREATE KEYSPACE IF NOT EXISTS ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1} \
         AND durable_writes = false",
    ) else {
        panic!()
    };
    assert_eq!(k.name, "ks");
    assert!(k.if_not_exists);
    assert_eq!(
        k.options,
        vec![
            (
                "replication".to_string(),
                OptionValue::Map(vec![
                    (
                        Literal::String("class".into()),
                        Literal::String("SimpleStrategy".into())
                    ),
                    (
                        Literal::String("replication_factor".into()),
                        Literal::Integer("1".into())
                    ),
                ])
            ),
            (
                "durable_writes".to_string(),
                OptionValue::Constant(Literal::Boolean(false))
            ),
        ]
    );
    assert!(
        matches!(p("CREATE SCHEMA ks WITH replication = {}"), Statement::CreateKeyspace(k) if !k.if_not_exists)
    );
    assert_eq!(
        p("ALTER KEYSPACE IF EXISTS ks WITH durable_writes = true"),
        Statement::AlterKeyspace {
            name: "ks".into(),
            if_exists: true,
            options: vec![(
                "durable_writes".into(),
                OptionValue::Constant(Literal::Boolean(true))
            )],
        }
    );
    assert_eq!(
        p("DROP KEYSPACE ks"),
        Statement::DropKeyspace {
            name: "ks".into(),
            if_exists: false
        }
    );
    assert_eq!(
        p("DROP KEYSPACE IF EXISTS ks"),
        Statement::DropKeyspace {
            name: "ks".into(),
            if_exists: true
        }
    );
    assert!(parse_statement("CREATE KEYSPACE ks").is_err());
}

#[test]
fn create_table() {
    let Statement::CreateTable(t) = p("CREATE TABLE IF NOT EXISTS ks.t (
            a int, b text, c frozen<map<text, list<int>>> static, d vector<float, 3>, e varchar,
            PRIMARY KEY ((a, b), c, d)
        ) WITH CLUSTERING ORDER BY (c DESC, d ASC) AND comment = 'x'
          AND compaction = {'class': 'LeveledCompactionStrategy', 'sstable_size_in_mb': 160}
          AND COMPACT STORAGE AND gc_grace_seconds = 0 AND bloom_filter_fp_chance = 0.01
          AND speculative_retry = '99p' AND caching = {'keys': 'ALL'}")
    else {
        panic!()
    };
    assert_eq!(t.name, qn(Some("ks"), "t"));
    assert!(t.if_not_exists);
    assert_eq!(t.columns.len(), 5);
    assert_eq!(
        t.columns[2],
        ColumnDef {
            name: "c".into(),
            ty: CqlTypeAst::Frozen(Box::new(CqlTypeAst::Map(
                Box::new(native("text")),
                Box::new(CqlTypeAst::List(Box::new(native("int"))))
            ))),
            is_static: true,
            primary_key: false,
        }
    );
    assert_eq!(
        t.columns[3].ty,
        CqlTypeAst::Vector(Box::new(native("float")), 3)
    );
    assert_eq!(t.columns[4].ty, native("text"));
    assert_eq!(t.partition_key, vec!["a".to_string(), "b".to_string()]);
    assert_eq!(t.clustering_key, vec!["c".to_string(), "d".to_string()]);
    assert_eq!(
        t.clustering_order,
        vec![("c".to_string(), true), ("d".to_string(), false)]
    );
    assert!(t.compact_storage);
    let names: Vec<&str> = t.options.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "comment",
            "compaction",
            "gc_grace_seconds",
            "bloom_filter_fp_chance",
            "speculative_retry",
            "caching"
        ]
    );
    assert_eq!(
        t.options[2].1,
        OptionValue::Constant(Literal::Integer("0".into()))
    );
    assert_eq!(
        t.options[3].1,
        OptionValue::Constant(Literal::Float("0.01".into()))
    );

    let Statement::CreateTable(t) = p("CREATE TABLE t (k int PRIMARY KEY, v text,)") else {
        panic!()
    };
    assert!(t.columns[0].primary_key);
    assert!(t.partition_key.is_empty() && t.clustering_key.is_empty());
    assert!(t.options.is_empty() && !t.compact_storage && !t.if_not_exists);

    let Statement::CreateTable(t) = p("CREATE COLUMNFAMILY t (k int, c int, PRIMARY KEY (k, c))")
    else {
        panic!()
    };
    assert_eq!(t.partition_key, vec!["k".to_string()]);
    assert_eq!(t.clustering_key, vec!["c".to_string()]);
    assert!(parse_statement("CREATE TABLE t (k int, PRIMARY KEY (k), PRIMARY KEY (k))").is_err());
}

#[test]
fn alter_table() {
    let alter = |text: &str| match p(text) {
        Statement::AlterTable {
            name,
            if_exists,
            op,
        } => (name, if_exists, op),
        other => panic!("{other:?}"),
    };
    let (name, if_exists, op) = alter("ALTER TABLE IF EXISTS ks.t ADD x int");
    assert_eq!(name, qn(Some("ks"), "t"));
    assert!(if_exists);
    assert_eq!(
        op,
        AlterTableOp::Add(
            vec![ColumnDef {
                name: "x".into(),
                ty: native("int"),
                is_static: false,
                primary_key: false
            }],
            false
        )
    );
    let (_, if_exists, op) = alter("ALTER TABLE t ADD IF NOT EXISTS (x int, y set<text> static)");
    assert!(!if_exists);
    let AlterTableOp::Add(defs, true) = op else {
        panic!()
    };
    assert_eq!(defs.len(), 2);
    assert!(defs[1].is_static);
    assert_eq!(
        alter("ALTER TABLE t DROP x").2,
        AlterTableOp::Drop(vec!["x".into()], false)
    );
    assert_eq!(
        alter("ALTER TABLE t DROP IF EXISTS (x, y)").2,
        AlterTableOp::Drop(vec!["x".into(), "y".into()], true)
    );
    assert_eq!(
        alter("ALTER TABLE t RENAME a TO b AND c TO d").2,
        AlterTableOp::Rename(
            vec![("a".into(), "b".into()), ("c".into(), "d".into())],
            false
        )
    );
    assert_eq!(
        alter("ALTER TABLE t ALTER c TYPE blob").2,
        AlterTableOp::AlterType("c".into(), native("blob"))
    );
    assert_eq!(
        alter("ALTER TABLE t WITH comment = 'hi' AND default_time_to_live = 10").2,
        AlterTableOp::With(vec![
            (
                "comment".into(),
                OptionValue::Constant(Literal::String("hi".into()))
            ),
            (
                "default_time_to_live".into(),
                OptionValue::Constant(Literal::Integer("10".into()))
            ),
        ])
    );
    assert!(parse_statement("ALTER TABLE t").is_err());
}

#[test]
fn drop_table() {
    assert_eq!(
        p("DROP TABLE ks.t"),
        Statement::DropTable {
            name: qn(Some("ks"), "t"),
            if_exists: false
        }
    );
    assert_eq!(
        p("DROP TABLE IF EXISTS t"),
        Statement::DropTable {
            name: qn(None, "t"),
            if_exists: true
        }
    );
}

#[test]
fn types() {
    assert_eq!(
        p("CREATE TYPE IF NOT EXISTS ks.addr (street text, zip int, tags frozen<set<text>>)"),
        Statement::CreateType {
            name: qn(Some("ks"), "addr"),
            if_not_exists: true,
            fields: vec![
                ("street".into(), native("text")),
                ("zip".into(), native("int")),
                (
                    "tags".into(),
                    CqlTypeAst::Frozen(Box::new(CqlTypeAst::Set(Box::new(native("text")))))
                ),
            ],
        }
    );
    assert_eq!(
        p("ALTER TYPE addr ADD country text"),
        Statement::AlterType {
            name: qn(None, "addr"),
            if_exists: false,
            op: AlterTypeOp::Add("country".into(), native("text"), false)
        }
    );
    assert_eq!(
        p("ALTER TYPE IF EXISTS ks.addr RENAME a TO b AND c TO d"),
        Statement::AlterType {
            name: qn(Some("ks"), "addr"),
            if_exists: true,
            op: AlterTypeOp::Rename(
                vec![("a".into(), "b".into()), ("c".into(), "d".into())],
                false
            )
        }
    );
    assert_eq!(
        p("DROP TYPE IF EXISTS ks.addr"),
        Statement::DropType {
            name: qn(Some("ks"), "addr"),
            if_exists: true
        }
    );
    let e = parse_statement("CREATE TYPE int (a int)").unwrap_err();
    assert!(
        e.message.contains("Invalid (reserved) user type name int"),
        "{e}"
    );
}

#[test]
fn indexes() {
    let idx = |text: &str| match p(text) {
        Statement::CreateIndex(i) => i,
        other => panic!("{other:?}"),
    };
    let i = idx("CREATE INDEX ON t (v)");
    assert_eq!(i.name, None);
    assert_eq!(i.table, qn(None, "t"));
    assert_eq!((i.column.as_str(), i.kind), ("v", IndexTargetKind::Simple));
    assert!(!i.custom && !i.if_not_exists && i.using.is_none() && i.options.is_empty());
    let i = idx("CREATE INDEX IF NOT EXISTS my_idx ON ks.t (\"Col\")");
    assert_eq!(i.name.as_deref(), Some("my_idx"));
    assert_eq!(i.column, "Col");
    assert!(i.if_not_exists);
    assert_eq!(
        idx("CREATE INDEX ON t (keys(m))").kind,
        IndexTargetKind::Keys
    );
    assert_eq!(
        idx("CREATE INDEX ON t (VALUES(m))").kind,
        IndexTargetKind::Values
    );
    assert_eq!(
        idx("CREATE INDEX ON t (entries(m))").kind,
        IndexTargetKind::Entries
    );
    assert_eq!(
        idx("CREATE INDEX ON t (full(l))").kind,
        IndexTargetKind::Full
    );
    let i = idx(
        "CREATE CUSTOM INDEX IF NOT EXISTS idx ON ks.t (v) USING 'StorageAttachedIndex' \
         WITH OPTIONS = {'case_sensitive': 'false', 'similarity_function': 'cosine'}",
    );
    assert!(i.custom);
    assert_eq!(i.using.as_deref(), Some("StorageAttachedIndex"));
    assert_eq!(
        i.options,
        vec![
            ("case_sensitive".into(), "false".into()),
            ("similarity_function".into(), "cosine".into())
        ]
    );
    let i = idx("CREATE INDEX ON t (v) USING 'sai'");
    assert_eq!(i.using.as_deref(), Some("sai"));
    assert_eq!(
        p("DROP INDEX ks.idx"),
        Statement::DropIndex {
            name: qn(Some("ks"), "idx"),
            if_exists: false
        }
    );
    assert_eq!(
        p("DROP INDEX IF EXISTS idx"),
        Statement::DropIndex {
            name: qn(None, "idx"),
            if_exists: true
        }
    );
}

#[test]
fn type_parsing() {
    assert_eq!(
        parse_type("frozen<map<text, list<int>>>").unwrap(),
        CqlTypeAst::Frozen(Box::new(CqlTypeAst::Map(
            Box::new(native("text")),
            Box::new(CqlTypeAst::List(Box::new(native("int"))))
        )))
    );
    for n in [
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
    ] {
        assert_eq!(parse_type(n).unwrap(), native(n));
        assert_eq!(parse_type(&n.to_uppercase()).unwrap(), native(n));
    }
    assert_eq!(parse_type("VARCHAR").unwrap(), native("text"));
    assert_eq!(
        parse_type("tuple<int, text, frozen<addr>>").unwrap(),
        CqlTypeAst::Tuple(vec![
            native("int"),
            native("text"),
            CqlTypeAst::Frozen(Box::new(CqlTypeAst::Udt(qn(None, "addr"))))
        ])
    );
    assert_eq!(
        parse_type("vector<float, 1536>").unwrap(),
        CqlTypeAst::Vector(Box::new(native("float")), 1536)
    );
    assert_eq!(
        parse_type("ks.\"MyType\"").unwrap(),
        CqlTypeAst::Udt(qn(Some("ks"), "MyType"))
    );
    assert_eq!(
        parse_type("'org.apache.Foo'").unwrap(),
        CqlTypeAst::Custom("org.apache.Foo".into())
    );
    assert_eq!(
        parse_type("list").unwrap(),
        CqlTypeAst::Udt(qn(None, "list"))
    );
    assert!(parse_type("vector<float, 0>").is_err());
    assert!(parse_type("vector<float>").is_err());
    assert!(parse_type("map<int>").is_err());
    assert!(parse_type("list<int").is_err());
    assert!(parse_type("int int").is_err());
}

// ----- scripts and bind markers -------------------------------------------------------------

#[test]
fn scripts() {
    let v = parse_statements(
        "-- a script\nCREATE KEYSPACE ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1};\n\
         USE ks;\n;\nCREATE TABLE t (k int PRIMARY KEY); /* done */\nINSERT INTO t (k) VALUES (?)",
    )
    .unwrap();
    assert_eq!(v.len(), 4);
    assert_eq!(v[1], Statement::Use("ks".into()));
    assert!(parse_statements("").unwrap().is_empty());
    assert!(parse_statements(" ; ;").unwrap().is_empty());
    let e = parse_statements("USE a USE b").unwrap_err();
    assert_eq!((e.line, e.column), (1, 6));
    // Markers are numbered per statement.
    let v = parse_statements("SELECT * FROM t WHERE a = ?; SELECT * FROM t WHERE a = ?").unwrap();
    for s in &v {
        let Statement::Select(s) = s else { panic!() };
        assert_eq!(s.where_clause[0].rhs, pos(0));
    }
}

#[test]
fn bind_marker_numbering() {
    let s = p(
        "UPDATE t USING TTL ? SET a = :x, b = ?, m[?] = ? WHERE k = :k AND c IN (?, :y) IF d = ?",
    );
    assert_eq!(bind_marker_count(&s), 9);
    let Statement::Update(u) = &s else { panic!() };
    assert_eq!(u.using.ttl, Some(pos(0)));
    assert_eq!(
        u.assignments[0],
        Assignment::Set(
            ColumnTarget::Column("a".into()),
            Term::Bind(BindMarker::Named("x".into()))
        )
    );
    assert_eq!(
        u.assignments[1],
        Assignment::Set(ColumnTarget::Column("b".into()), pos(2))
    );
    assert_eq!(
        u.assignments[2],
        Assignment::Set(ColumnTarget::Element("m".into(), pos(3)), pos(4))
    );
    assert_eq!(
        u.where_clause[1].rhs,
        Term::Tuple(vec![pos(6), Term::Bind(BindMarker::Named("y".into()))])
    );
    let Conditions::If(c) = &u.conditions else {
        panic!()
    };
    assert_eq!(c[0].rhs, pos(8));
    // Named markers keep quoted case; unquoted are lower-cased.
    let Statement::Select(s) = p("SELECT * FROM t WHERE a = :\"MyName\" AND b = :Other") else {
        panic!()
    };
    assert_eq!(
        s.where_clause[0].rhs,
        Term::Bind(BindMarker::Named("MyName".into()))
    );
    assert_eq!(
        s.where_clause[1].rhs,
        Term::Bind(BindMarker::Named("other".into()))
    );
    // Counting across every place a marker can appear.
    let cases = [
        ("SELECT * FROM t", 0),
        ("SELECT ?, f(?) FROM t WHERE a = ? AND token(k) > ? ORDER BY v ANN OF ? PER PARTITION LIMIT ? LIMIT ?", 7),
        ("INSERT INTO t (a, b) VALUES (?, [?, {?: ?}]) USING TTL ? AND TIMESTAMP ?", 6),
        ("INSERT INTO t JSON ?", 1),
        ("DELETE m[?] FROM t USING TIMESTAMP ? WHERE k = ? IF m[?] = ?", 5),
        ("BEGIN BATCH USING TIMESTAMP ? INSERT INTO t (a) VALUES (?) DELETE FROM t WHERE k = ? APPLY BATCH", 3),
        ("SELECT * FROM t WHERE (a, b) IN ((?, ?), (?, ?)) AND m[?] = ?", 6),
        ("CREATE TABLE t (k int PRIMARY KEY)", 0),
    ];
    for (text, n) in cases {
        assert_eq!(bind_marker_count(&p(text)), n, "{text}");
    }
    let Statement::Batch(b) =
        p("BEGIN BATCH INSERT INTO t (a) VALUES (?) UPDATE t SET a = :v WHERE k = ? APPLY BATCH")
    else {
        panic!()
    };
    let BatchChild::Update(u) = &b.statements[1] else {
        panic!()
    };
    assert_eq!(u.where_clause[0].rhs, pos(2));
}

#[test]
fn parse_term_api() {
    assert_eq!(
        parse_term("1 + 2").unwrap(),
        Term::Arithmetic {
            op: ArithOp::Add,
            left: Box::new(int("1")),
            right: Box::new(int("2"))
        }
    );
    assert!(parse_term("1 2").is_err());
}
