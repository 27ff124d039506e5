//! Rendering AST pieces back to CQL text (types for DESCRIBE, terms for messages and tests).
//! What is rendered parses back to the same AST, except that a one-element `Term::Tuple` reads
//! back as its element and an empty `Term::Set` / `Term::Udt` reads back as an empty map.

use std::fmt::{self, Display, Formatter, Write};

use crate::ast::*;
use crate::quote_identifier_if_needed as q;

impl Display for QualifiedName {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if let Some(ks) = &self.keyspace {
            write!(f, "{}.", q(ks))?;
        }
        f.write_str(&q(&self.name))
    }
}

/// A string as a CQL `'...'` literal.
pub fn quote_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl Display for CqlTypeAst {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            CqlTypeAst::Native(n) => f.write_str(n),
            CqlTypeAst::List(t) => write!(f, "list<{t}>"),
            CqlTypeAst::Set(t) => write!(f, "set<{t}>"),
            CqlTypeAst::Map(k, v) => write!(f, "map<{k}, {v}>"),
            CqlTypeAst::Tuple(ts) => {
                f.write_str("tuple<")?;
                comma_list(f, ts)?;
                f.write_char('>')
            }
            CqlTypeAst::Frozen(t) => write!(f, "frozen<{t}>"),
            CqlTypeAst::Vector(t, n) => write!(f, "vector<{t}, {n}>"),
            CqlTypeAst::Udt(name) => write!(f, "{name}"),
            CqlTypeAst::Custom(c) => f.write_str(&quote_string(c)),
        }
    }
}

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(s) => f.write_str(&quote_string(s)),
            Literal::Integer(s) | Literal::Float(s) | Literal::Uuid(s) | Literal::Duration(s) => {
                f.write_str(s)
            }
            Literal::Boolean(b) => write!(f, "{b}"),
            Literal::Blob(bytes) => {
                f.write_str("0x")?;
                bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
            Literal::Null => f.write_str("null"),
        }
    }
}

impl Display for BindMarker {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            BindMarker::Positional(_) => f.write_char('?'),
            BindMarker::Named(n) => write!(f, ":{}", q(n)),
        }
    }
}

impl Display for ArithOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Mod => "%",
        })
    }
}

impl Display for Term {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Term::Literal(l) => write!(f, "{l}"),
            Term::Bind(b) => write!(f, "{b}"),
            Term::List(ts) => {
                f.write_char('[')?;
                comma_list(f, ts)?;
                f.write_char(']')
            }
            Term::Set(ts) => {
                f.write_char('{')?;
                comma_list(f, ts)?;
                f.write_char('}')
            }
            Term::Map(entries) => {
                f.write_char('{')?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_char('}')
            }
            Term::Tuple(ts) => {
                f.write_char('(')?;
                comma_list(f, ts)?;
                f.write_char(')')
            }
            Term::Udt(fields) => {
                f.write_char('{')?;
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}: {v}", q(k))?;
                }
                f.write_char('}')
            }
            Term::Function { name, args } => {
                write!(f, "{name}(")?;
                comma_list(f, args)?;
                f.write_char(')')
            }
            Term::Cast { ty, term } => write!(f, "({ty}) {term}"),
            Term::Arithmetic { op, left, right } => write!(f, "({left} {op} {right})"),
            // `-('')` would read back as a cast to the custom type '' when a term follows, so a
            // negated literal is written without parentheses.
            Term::Negate(t) if matches!(**t, Term::Literal(Literal::String(_))) => {
                write!(f, "-{t}")
            }
            Term::Negate(t) => write!(f, "-({t})"),
        }
    }
}

fn comma_list<T: Display>(f: &mut Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, t) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{t}")?;
    }
    Ok(())
}
