//! CQL language: lexer, recursive-descent parser and AST, with Cassandra-style syntax errors.
//! Knows nothing of schema, storage or the network.
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
