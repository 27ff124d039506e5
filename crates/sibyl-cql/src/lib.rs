//! CQL language: lexer, recursive-descent parser and AST, with Cassandra-style syntax errors.
//! Knows nothing of schema, storage or the network.
//!
//! Statements: SELECT, INSERT, UPDATE, DELETE, BATCH, USE, TRUNCATE, CREATE/ALTER/DROP
//! KEYSPACE, TABLE, TYPE, CREATE/DROP INDEX (Cassandra 5.0 syntax). Anything else (roles,
//! permissions, functions, views, DESCRIBE, ...) is a syntax error.
//!
//! Notes on how text maps to the AST:
//! - Keywords are case-insensitive; only Cassandra's reserved keywords (see
//!   [`is_reserved_keyword`]) and `true`/`false` cannot be unquoted names.
//! - `-` directly before a number or duration literal folds into the literal (`-1` is
//!   `Literal::Integer("-1")`); before anything else it is `Term::Negate` (in selectors, the
//!   function `_negate`).
//! - ISO 8601 durations made of letters and digits (`P1D`, `PT2H`, `P2W`) are recognised where a
//!   term is expected; elsewhere such words are ordinary names.
//! - `(x)` around a single term is grouping; `(a, b)` is a tuple. `IN (..)` and multi-column
//!   relations always give a `Term::Tuple`, even with one element.
//! - Binary operators count towards [`MAX_NESTING_DEPTH`] like brackets do, so no input can
//!   build an AST deep enough to overflow the stack.
//! - `ADD IF NOT EXISTS` / `DROP IF EXISTS` / `RENAME IF EXISTS` on columns and fields, and
//!   `ALTER TABLE .. DROP .. USING TIMESTAMP`, are accepted but not recorded in the AST.
//!
//! ```
//! use sibyl_cql::{parse_statement, ast::Statement};
//! let stmt = parse_statement("SELECT * FROM ks.t WHERE k = ?").unwrap();
//! assert!(matches!(stmt, Statement::Select(_)));
//! assert_eq!(sibyl_cql::bind_marker_count(&stmt), 1);
//! ```

pub mod ast;
mod binds;
mod display;
mod keywords;
mod lexer;
mod parser;

pub use binds::bind_marker_count;
pub use display::quote_string;
pub use keywords::{is_reserved_keyword, quote_identifier_if_needed};
pub use parser::MAX_NESTING_DEPTH;

/// A syntax error. `message` reads like Cassandra's: `line L:C <what> (<snippet>)`, with a
/// 1-based line and a 0-based column counted in characters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

/// Parse one statement, with an optional trailing `;`.
///
/// Bind markers are numbered in order of appearance: every `?` becomes
/// `BindMarker::Positional(i)` where `i` counts all markers before it, named ones included.
pub fn parse_statement(text: &str) -> Result<ast::Statement, ParseError> {
    let mut p = parser::Parser::new(text);
    let r = p.single_statement();
    p.finish(r)
}

/// Parse a `;`-separated script. Bind markers are numbered per statement.
pub fn parse_statements(text: &str) -> Result<Vec<ast::Statement>, ParseError> {
    let mut p = parser::Parser::new(text);
    let r = p.statement_list();
    p.finish(r)
}

/// Parse a type, e.g. `frozen<map<text, list<int>>>`.
pub fn parse_type(text: &str) -> Result<ast::CqlTypeAst, ParseError> {
    let mut p = parser::Parser::new(text);
    let r = p.single_type();
    p.finish(r)
}

/// Parse a single term (a literal, collection, function call, ...), e.g. for tools and tests.
pub fn parse_term(text: &str) -> Result<ast::Term, ParseError> {
    let mut p = parser::Parser::new(text);
    let r = p.single_term();
    p.finish(r)
}
