//! CQL language: lexer, recursive-descent parser and AST, with Cassandra-style syntax errors.
//! Knows nothing of schema, storage or the network.

pub mod ast;
