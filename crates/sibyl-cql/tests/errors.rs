//! Syntax errors: Cassandra-style messages, positions, robustness.

use proptest::prelude::*;
use sibyl_cql::{
    parse_statement, parse_statements, parse_term, parse_type, ParseError, MAX_NESTING_DEPTH,
};

fn err(text: &str) -> ParseError {
    match parse_statement(text) {
        Ok(s) => panic!("{text:?} parsed: {s:?}"),
        Err(e) => e,
    }
}

/// Checks the position and that the message starts with `line L:C <rest>`.
fn check(text: &str, line: usize, column: usize, rest: &str) {
    let e = err(text);
    assert_eq!((e.line, e.column), (line, column), "{text:?}: {e}");
    let want = format!("line {line}:{column} {rest}");
    assert!(
        e.message.starts_with(&want),
        "{text:?}:\n got {}\nwant {want}",
        e.message
    );
}

#[test]
fn no_viable_alternative() {
    check(
        "SELEC * FROM t",
        1,
        0,
        "no viable alternative at input 'SELEC'",
    );
    check("DROP FOO x", 1, 5, "no viable alternative at input 'FOO'");
    check(
        "SELECT FROM t",
        1,
        7,
        "no viable alternative at input 'FROM'",
    );
    check(
        "SELECT * FROM t WHERE k == 1",
        1,
        25,
        "no viable alternative at input '='",
    );
    check("", 1, 0, "no viable alternative at input '<EOF>'");
    check("   ", 1, 3, "no viable alternative at input '<EOF>'");
}

#[test]
fn mismatched_input() {
    check(
        "SELECT * FRM t",
        1,
        9,
        "mismatched input 'FRM' expecting K_FROM",
    );
    check(
        "SELECT * FROM t WHERE k = 1 ORDER c",
        1,
        34,
        "mismatched input 'c' expecting K_BY",
    );
    check(
        "SELECT * FROM select",
        1,
        14,
        "mismatched input 'select' expecting IDENT",
    );
    check(
        "UPDATE t SET a = 1",
        1,
        18,
        "mismatched input '<EOF>' expecting K_WHERE",
    );
    check(
        "SELECT * FROM t WHERE k IN (1, 2",
        1,
        32,
        "mismatched input '<EOF>' expecting ')'",
    );
    check(
        "INSERT INTO t VALUES (1)",
        1,
        14,
        "mismatched input 'VALUES' expecting '('",
    );
}

#[test]
fn extraneous_input() {
    check(
        "INSERT INTO t (a, b) VALUES (1, 2))",
        1,
        34,
        "extraneous input ')' expecting EOF",
    );
    check(
        "SELECT * FROM t WHERE k = 1)",
        1,
        27,
        "extraneous input ')' expecting EOF",
    );
    check(
        "CREATE TABLE t (k int PRIMARY KEY))",
        1,
        34,
        "extraneous input ')' expecting EOF",
    );
}

#[test]
fn positions_are_lines_and_char_columns() {
    check(
        "SELECT *\nFROM t\n  WHERE k = = 1",
        3,
        12,
        "no viable alternative at input '='",
    );
    // Columns count characters, not bytes.
    check(
        "SELECT * FROM t WHERE k = 'ünï' AND AND",
        1,
        36,
        "mismatched input 'AND' expecting IDENT",
    );
    check(
        "-- comment\nSELEC",
        2,
        0,
        "no viable alternative at input 'SELEC'",
    );
}

#[test]
fn snippet_like_cassandra() {
    assert_eq!(
        err("SELECT * FRM t").message,
        "line 1:9 mismatched input 'FRM' expecting K_FROM (SELECT * [FRM] t)"
    );
    assert_eq!(
        err("SELEC * FROM t").message,
        "line 1:0 no viable alternative at input 'SELEC' ([SELEC] *...)"
    );
    assert_eq!(
        err("INSERT INTO t (a, b) VALUES (1, 2))").message,
        "line 1:34 extraneous input ')' expecting EOF (...) VALUES (1, 2)[)])"
    );
}

#[test]
fn lexical_errors() {
    check(
        "SELECT * FROM t WHERE a = @",
        1,
        26,
        "no viable alternative at character '@'",
    );
    check(
        "SELECT * FROM t WHERE a = 'abc",
        1,
        30,
        "mismatched character '<EOF>' expecting",
    );
    check(
        "SELECT * FROM \"abc",
        1,
        18,
        "mismatched character '<EOF>' expecting",
    );
    check(
        "SELECT * FROM t /* never closed",
        1,
        31,
        "mismatched character '<EOF>' expecting",
    );
    check(
        "SELECT * FROM t WHERE a = $$abc",
        1,
        31,
        "mismatched character '<EOF>' expecting",
    );
    // A parse error before a bad character wins.
    check(
        "SELEC * FROM t WHERE a = #",
        1,
        0,
        "no viable alternative at input 'SELEC'",
    );
    // A bad character in a statement that would otherwise parse.
    check(
        "SELECT * FROM t # x",
        1,
        16,
        "no viable alternative at character '#'",
    );
}

#[test]
fn semantic_syntax_errors() {
    assert!(err("INSERT INTO t (a) VALUES (0x123)")
        .message
        .contains("even length"));
    assert!(
        err("CREATE TABLE t (k int, v vector<float, 0>, PRIMARY KEY (k))")
            .message
            .contains("vector")
    );
    assert!(
        err("CREATE TABLE t (k int PRIMARY KEY, v int, PRIMARY KEY (v))")
            .message
            .contains("Multiple PRIMARY KEYs")
    );
    assert!(parse_statement("CREATE TABLE t ()").is_err());
    assert!(parse_statement("SELECT * FROM t WHERE").is_err());
    assert!(parse_statement("SELECT * FROM t LIMIT").is_err());
    assert!(parse_statement("SELECT a AS FROM t").is_err());
    assert!(parse_statement("INSERT INTO t (a) VALUES ()").is_err());
    assert!(parse_statement("UPDATE t SET WHERE k = 1").is_err());
    assert!(parse_statement("DELETE FROM t").is_err());
    assert!(parse_statement("CREATE INDEX ON t (foo(c))").is_err());
    assert!(parse_statement("SELECT * FROM t WHERE k = :").is_err());
    assert!(parse_statement("SELECT * FROM t; SELECT * FROM t").is_err());
    assert!(parse_statements("SELECT * FROM t; SELEC").is_err());
}

#[test]
fn deep_nesting_is_capped() {
    // Run on a small stack to prove the cap keeps recursion bounded.
    std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(|| {
            for open in ["(", "[", "{", "- ", "f(", "(int)"] {
                let n = 100_000;
                let text = format!("INSERT INTO t (a) VALUES ({}1)", open.repeat(n));
                let e = parse_statement(&text).unwrap_err();
                assert!(
                    e.message.contains("maximum nesting depth"),
                    "{open}: {}",
                    &e.message[..100.min(e.message.len())]
                );
            }
            let ty = format!("{}int{}", "list<".repeat(100_000), ">".repeat(100_000));
            assert!(parse_type(&ty)
                .unwrap_err()
                .message
                .contains("maximum nesting depth"));
            let sel = format!("SELECT {}a FROM t", "f(".repeat(100_000));
            assert!(parse_statement(&sel)
                .unwrap_err()
                .message
                .contains("maximum nesting depth"));
            // Reasonable nesting is fine.
            let ok = format!(
                "{}1{}",
                "[".repeat(MAX_NESTING_DEPTH / 2),
                "]".repeat(MAX_NESTING_DEPTH / 2)
            );
            assert!(parse_term(&ok).is_ok());
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn long_inputs_parse_in_linear_time() {
    let n = 200_000;
    let in_list = (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
    let start = std::time::Instant::now();
    parse_statement(&format!("SELECT * FROM t WHERE k IN ({in_list})")).unwrap();
    // Operator chains build deep trees, so they count towards the nesting cap too.
    let sum = vec!["1"; n].join(" + ");
    assert!(parse_term(&sum)
        .unwrap_err()
        .message
        .contains("maximum nesting depth"));
    let sum = vec!["1"; MAX_NESTING_DEPTH / 2].join(" * 2 + ");
    parse_term(&sum).unwrap();
    let many = vec!["a = 1"; n / 10].join(" AND ");
    parse_statement(&format!("SELECT * FROM t WHERE {many}")).unwrap();
    let parens = "(".repeat(n);
    assert!(parse_term(&parens).is_err());
    let casts = "(a) ".repeat(n);
    assert!(parse_term(&casts).is_err());
    assert!(start.elapsed().as_secs() < 20, "took {:?}", start.elapsed());
}

fn token_soup() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "SELECT",
        "FROM",
        "WHERE",
        "INSERT",
        "INTO",
        "VALUES",
        "UPDATE",
        "SET",
        "DELETE",
        "BEGIN",
        "BATCH",
        "APPLY",
        "CREATE",
        "TABLE",
        "KEYSPACE",
        "INDEX",
        "TYPE",
        "ALTER",
        "DROP",
        "IF",
        "NOT",
        "EXISTS",
        "AND",
        "IN",
        "CONTAINS",
        "KEY",
        "USING",
        "TTL",
        "TIMESTAMP",
        "PRIMARY",
        "WITH",
        "ORDER",
        "BY",
        "LIMIT",
        "JSON",
        "DISTINCT",
        "AS",
        "CAST",
        "token",
        "count",
        "frozen",
        "list",
        "map",
        "<",
        ">",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ",",
        ";",
        ".",
        "*",
        "=",
        "!=",
        "+",
        "-",
        "/",
        "%",
        "?",
        ":",
        ":x",
        "+=",
        "-=",
        "a",
        "\"Q\"",
        "'s'",
        "$$d$$",
        "1",
        "-1",
        "1.5",
        "1e3",
        "NaN",
        "Infinity",
        "0xab",
        "1h30m",
        "P1D",
        "true",
        "null",
        " ",
        "\n",
        "--c\n",
        "/*c*/",
        "123e4567-e89b-12d3-a456-426614174000",
        "ü",
        "'",
        "\"",
        "$$",
        "/*",
        "@",
        "0x1",
    ]);
    prop::collection::vec(pieces, 0..40).prop_map(|v| v.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary strings never panic, and errors point inside the text.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,80}") {
        let errors = [parse_statement(&text).err(), parse_statements(&text).err(), parse_type(&text).err(), parse_term(&text).err()];
        for e in errors.into_iter().flatten() {
            prop_assert!(e.message.starts_with(&format!("line {}:{} ", e.line, e.column)), "{}", e.message);
            prop_assert!(e.line >= 1 && e.line <= text.matches('\n').count() + 1);
        }
    }

    /// Keyword/token soups explore deeper parser states.
    #[test]
    fn token_soup_never_panics(text in token_soup()) {
        let errors = [parse_statement(&text).err(), parse_statements(&text).err(), parse_type(&text).err(), parse_term(&text).err()];
        for e in errors.into_iter().flatten() {
            prop_assert!(e.message.starts_with(&format!("line {}:{} ", e.line, e.column)), "{}", e.message);
        }
    }

    /// Quoting any name and parsing it back gives the name.
    #[test]
    fn quoted_names_round_trip(name in "\\PC{1,20}") {
        let q = sibyl_cql::quote_identifier_if_needed(&name);
        let parsed = parse_statement(&format!("USE {q}"));
        prop_assert_eq!(parsed, Ok(sibyl_cql::ast::Statement::Use(name)));
    }

    /// String literals round-trip through '' escaping.
    #[test]
    fn string_literals_round_trip(s in "\\PC{0,30}") {
        let text = format!("'{}'", s.replace('\'', "''"));
        prop_assert_eq!(
            parse_term(&text),
            Ok(sibyl_cql::ast::Term::Literal(sibyl_cql::ast::Literal::String(s)))
        );
    }
}
