//! Counting bind markers in a parsed statement.

use crate::ast::*;

/// The number of bind markers (`?` and `:name`) in a statement. Markers are numbered in order
/// of appearance, so this is also one more than the highest `Positional` index.
pub fn bind_marker_count(stmt: &Statement) -> usize {
    let mut n = 0;
    match stmt {
        Statement::Select(s) => select(s, &mut n),
        Statement::Insert(s) => insert(s, &mut n),
        Statement::Update(s) => update(s, &mut n),
        Statement::Delete(s) => delete(s, &mut n),
        Statement::Batch(b) => {
            using(&b.using, &mut n);
            for c in &b.statements {
                match c {
                    BatchChild::Insert(s) => insert(s, &mut n),
                    BatchChild::Update(s) => update(s, &mut n),
                    BatchChild::Delete(s) => delete(s, &mut n),
                }
            }
        }
        _ => {}
    }
    n
}

fn term(t: &Term, n: &mut usize) {
    match t {
        Term::Literal(_) => {}
        Term::Bind(_) => *n += 1,
        Term::List(v) | Term::Set(v) | Term::Tuple(v) => v.iter().for_each(|t| term(t, n)),
        Term::Function { args, .. } => args.iter().for_each(|t| term(t, n)),
        Term::Map(v) => v.iter().for_each(|(k, x)| {
            term(k, n);
            term(x, n)
        }),
        Term::Udt(v) => v.iter().for_each(|(_, x)| term(x, n)),
        Term::Cast { term: t, .. } | Term::Negate(t) => term(t, n),
        Term::Arithmetic { left, right, .. } => {
            term(left, n);
            term(right, n)
        }
    }
}

fn selector(s: &Selector, n: &mut usize) {
    match s {
        Selector::Column(_) | Selector::Star => {}
        Selector::Function { args, .. } => args.iter().for_each(|a| selector(a, n)),
        Selector::Cast(s, _) | Selector::Field(s, _) => selector(s, n),
        Selector::Term(t) => term(t, n),
        Selector::Element(s, t) => {
            selector(s, n);
            term(t, n)
        }
        Selector::Arithmetic { left, right, .. } => {
            selector(left, n);
            selector(right, n)
        }
    }
}

fn relations(rs: &[Relation], n: &mut usize) {
    for r in rs {
        if let RelationLhs::MapElement(_, k) = &r.lhs {
            term(k, n);
        }
        term(&r.rhs, n);
    }
}

fn using(u: &UsingClause, n: &mut usize) {
    if let Some(t) = &u.ttl {
        term(t, n);
    }
    if let Some(t) = &u.timestamp {
        term(t, n);
    }
}

fn target(t: &ColumnTarget, n: &mut usize) {
    if let ColumnTarget::Element(_, k) = t {
        term(k, n);
    }
}

fn conditions(c: &Conditions, n: &mut usize) {
    if let Conditions::If(cs) = c {
        for c in cs {
            target(&c.target, n);
            term(&c.rhs, n);
        }
    }
}

fn select(s: &SelectStatement, n: &mut usize) {
    s.selectors.iter().for_each(|i| selector(&i.selector, n));
    relations(&s.where_clause, n);
    for o in &s.order_by {
        if let OrderingTarget::Ann(_, t) = &o.target {
            term(t, n);
        }
    }
    if let Some(t) = &s.per_partition_limit {
        term(t, n);
    }
    if let Some(t) = &s.limit {
        term(t, n);
    }
}

fn insert(s: &InsertStatement, n: &mut usize) {
    match &s.values {
        InsertValues::Values { values, .. } => values.iter().for_each(|t| term(t, n)),
        InsertValues::Json { json, .. } => term(json, n),
    }
    using(&s.using, n);
}

fn update(s: &UpdateStatement, n: &mut usize) {
    using(&s.using, n);
    for a in &s.assignments {
        match a {
            Assignment::Set(t, v) => {
                target(t, n);
                term(v, n)
            }
            Assignment::Add(_, v) | Assignment::Prepend(_, v) | Assignment::Subtract(_, v) => {
                term(v, n)
            }
        }
    }
    relations(&s.where_clause, n);
    conditions(&s.conditions, n);
}

fn delete(s: &DeleteStatement, n: &mut usize) {
    s.columns.iter().for_each(|t| target(t, n));
    using(&s.using, n);
    relations(&s.where_clause, n);
    conditions(&s.conditions, n);
}
