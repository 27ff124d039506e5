//! The select list: column references, writetime/ttl, token, scalar functions, casts, field and
//! element access, arithmetic and aggregates (with GROUP BY), compiled once per statement and
//! evaluated on each row.

use std::cmp::Ordering;

use bigdecimal::{BigDecimal, FromPrimitive, ToPrimitive};
use bytes::Bytes;
use num_bigint::BigInt;
use sibyl_cql::ast::{ArithOp, SelectStatement, Selector, Term};
use sibyl_protocol::messages::RowsWriter;
use sibyl_storage::model::PartitionKey;
use sibyl_types::{literal, split_collection, split_map, split_tuple, timeuuid, CqlType, Value};

use crate::error::{invalid, QueryError, QueryResult};
use crate::rows::RowData;
use crate::schema::Table;
use crate::values::{eval, EvalCtx};

#[derive(Debug, Clone, Copy, PartialEq)]
enum AggKind {
    Count,
    Min,
    Max,
    Sum,
    Avg,
}

#[derive(Debug, Clone)]
enum Sel {
    Column(usize),
    WriteTime(usize),
    Ttl(usize),
    /// writetime / ttl of every element of a non-frozen collection, as a list.
    ElementWriteTimes(usize),
    ElementTtls(usize),
    /// writetime (true) or ttl (false) of the element with this key (list: index) of a
    /// non-frozen collection column.
    OneElementMeta(usize, CqlType, Bytes, bool),
    /// The newest timestamp of a column's cells.
    MaxWriteTime(usize),
    Token,
    Constant(Option<Bytes>),
    /// A scalar function of other selectors.
    Func(String, Vec<(Sel, CqlType)>),
    Cast(Box<Sel>, CqlType, CqlType),
    Field(Box<Sel>, usize, usize),
    Element(Box<Sel>, CqlType, Bytes),
    /// Operator, operands with their types, and the result type.
    Arith(ArithOp, Box<(Sel, CqlType)>, Box<(Sel, CqlType)>, CqlType),
    /// An aggregate; `None` input is count(*).
    Agg(AggKind, Option<Box<Sel>>, CqlType),
}

impl Sel {
    fn is_aggregate(&self) -> bool {
        matches!(self, Sel::Agg(..))
    }
}

pub struct Selection {
    items: Vec<Sel>,
    pub columns: Vec<(String, CqlType)>,
}

fn column_of(table: &Table, name: &str) -> QueryResult<usize> {
    table.column_index(name).ok_or_else(|| {
        QueryError::Invalid(format!(
            "Undefined column name {name} in table {}.{}",
            table.keyspace, table.name
        ))
    })
}

/// Compiles the select list against the table (`*` when empty).
pub fn compile(table: &Table, st: &SelectStatement, ctx: &EvalCtx) -> QueryResult<Selection> {
    let mut items = vec![];
    let mut columns = vec![];
    if st.selectors.is_empty() {
        for (i, c) in table.columns.iter().enumerate() {
            items.push(Sel::Column(i));
            columns.push((c.name.clone(), c.ty.clone()));
        }
        return Ok(Selection { items, columns });
    }
    for item in &st.selectors {
        let (sel, name, ty) = compile_one(table, &item.selector, ctx)?;
        items.push(sel);
        columns.push((item.alias.clone().unwrap_or(name), ty));
    }
    Ok(Selection { items, columns })
}

fn is_numeric(t: &CqlType) -> bool {
    matches!(
        t,
        CqlType::Int
            | CqlType::Bigint
            | CqlType::Smallint
            | CqlType::Tinyint
            | CqlType::Varint
            | CqlType::Decimal
            | CqlType::Float
            | CqlType::Double
            | CqlType::Counter
    )
}

fn selector_term(s: &Selector) -> Option<Term> {
    match s {
        Selector::Term(t) => Some(t.clone()),
        Selector::Function { name, args } => Some(Term::Function {
            name: name.clone(),
            args: args.iter().map(selector_term).collect::<Option<_>>()?,
        }),
        _ => None,
    }
}

fn resolve_cast_type(t: &sibyl_cql::ast::CqlTypeAst) -> QueryResult<CqlType> {
    match t {
        sibyl_cql::ast::CqlTypeAst::Native(n) => {
            CqlType::parse_native(n).ok_or_else(|| QueryError::Invalid(format!("Unknown type {n}")))
        }
        _ => invalid("CAST is only supported to native types"),
    }
}

fn castable(from: &CqlType, to: &CqlType) -> bool {
    use CqlType as T;
    from == to
        || matches!(to, T::Text | T::Ascii)
        || (is_numeric(from) && is_numeric(to) && !matches!(to, T::Counter))
        || matches!(
            (from, to),
            (T::Timestamp, T::Date)
                | (T::Date, T::Timestamp)
                | (T::Timeuuid, T::Timestamp)
                | (T::Timeuuid, T::Date)
        )
}

fn compile_one(table: &Table, s: &Selector, ctx: &EvalCtx) -> QueryResult<(Sel, String, CqlType)> {
    Ok(match s {
        Selector::Column(c) => {
            let i = column_of(table, c)?;
            (Sel::Column(i), c.clone(), table.columns[i].ty.clone())
        }
        Selector::Star => (Sel::Constant(None), "*".into(), CqlType::Int),
        Selector::Term(t) => {
            let v = eval(t, &CqlType::Text, "term", ctx)?;
            (
                Sel::Constant(v.bytes().cloned()),
                "term".into(),
                CqlType::Text,
            )
        }
        Selector::Cast(inner, to) => {
            let (sel, name, from) = compile_one(table, inner, ctx)?;
            let to = resolve_cast_type(to)?;
            let from_plain = from.unfrozen().clone();
            if !castable(&from_plain, &to) {
                return invalid(format!(
                    "{} cannot be cast to {}",
                    from.cql_name(),
                    to.cql_name()
                ));
            }
            (
                Sel::Cast(Box::new(sel), from_plain, to.clone()),
                format!("cast({name} as {})", to.cql_name()),
                to,
            )
        }
        Selector::Field(inner, f) => {
            let (sel, name, ty) = compile_one(table, inner, ctx)?;
            let CqlType::Udt(def) = ty.unfrozen() else {
                return invalid(format!(
                    "Invalid field selection: {name} of type {} is not a user type",
                    ty.cql_name()
                ));
            };
            let Some(idx) = def.fields.iter().position(|(n, _)| n == f) else {
                return invalid(format!(
                    "{} of type {} has no field {f}",
                    name,
                    ty.cql_name()
                ));
            };
            (
                Sel::Field(Box::new(sel), idx, def.fields.len()),
                format!("{name}.{f}"),
                def.fields[idx].1.clone(),
            )
        }
        Selector::Element(inner, key) => {
            let (sel, name, ty) = compile_one(table, inner, ctx)?;
            let (key_ty, out_ty) = match ty.unfrozen() {
                CqlType::Map(k, v) => ((**k).clone(), (**v).clone()),
                CqlType::Set(e) => ((**e).clone(), (**e).clone()),
                CqlType::List(e) => (CqlType::Int, (**e).clone()),
                other => {
                    return invalid(format!(
                        "Invalid element selection: {name} is of type {} is not a collection",
                        other.cql_name()
                    ))
                }
            };
            let k = eval(key, &key_ty, &name, ctx)?
                .bytes()
                .cloned()
                .ok_or_else(|| QueryError::Invalid("Invalid null element selection".into()))?;
            (
                Sel::Element(Box::new(sel), ty.unfrozen().clone(), k),
                format!("{name}[..]"),
                out_ty,
            )
        }
        Selector::Arithmetic { op, left, right } => {
            // A literal operand takes the type of the other operand.
            let typed = |s: &Selector, other: &Selector| -> QueryResult<(Sel, String, CqlType)> {
                match s {
                    Selector::Term(t) => {
                        let (_, _, mut ty) = compile_one(table, other, ctx)?;
                        // A float literal next to an integer operand is a double, as in Cassandra.
                        if matches!(t, Term::Literal(sibyl_cql::ast::Literal::Float(_)))
                            && matches!(
                                ty,
                                CqlType::Tinyint
                                    | CqlType::Smallint
                                    | CqlType::Int
                                    | CqlType::Bigint
                                    | CqlType::Counter
                                    | CqlType::Varint
                            )
                        {
                            ty = CqlType::Double;
                        }
                        let v = eval(t, &ty, "term", ctx)?;
                        Ok((Sel::Constant(v.bytes().cloned()), t.to_string(), ty))
                    }
                    s => compile_one(table, s, ctx),
                }
            };
            if let Selector::Term(dt) = &**right {
                if crate::values::is_duration_term(dt) {
                    // `timestamp ± duration`, `date ± duration`.
                    let (l, ln, lt) = compile_one(table, left, ctx)?;
                    let rn = dt.to_string();
                    if !matches!(op, ArithOp::Add | ArithOp::Sub)
                        || !matches!(lt.unfrozen(), CqlType::Timestamp | CqlType::Date)
                    {
                        return invalid(format!(
                            "the '{}' operation is not supported between {ln} and {rn}",
                            op_symbol(*op)
                        ));
                    }
                    let v = eval(dt, &CqlType::Duration, "term", ctx)?;
                    let out = lt.unfrozen().clone();
                    return Ok((
                        Sel::Arith(
                            *op,
                            Box::new((l, out.clone())),
                            Box::new((Sel::Constant(v.bytes().cloned()), CqlType::Duration)),
                            out.clone(),
                        ),
                        format!("{ln} {} {rn}", op_symbol(*op)),
                        out,
                    ));
                }
            }
            let (l, ln, lt) = typed(left, right)?;
            let (r, rn, rt) = typed(right, left)?;
            if !is_numeric(&lt) || !is_numeric(&rt) {
                return invalid(format!(
                    "the '{}' operation is not supported between {ln} and {rn}",
                    op_symbol(*op)
                ));
            }
            let ty = wider_numeric(&lt, &rt);
            (
                Sel::Arith(*op, Box::new((l, lt)), Box::new((r, rt)), ty.clone()),
                format!("{ln} {} {rn}", op_symbol(*op)),
                ty,
            )
        }
        Selector::Function { name: fname, args } => {
            let f = fname.name.to_ascii_lowercase();
            let arg_names = || {
                args.iter()
                    .map(crate::select::selector_name)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            match f.as_str() {
                "writetime" | "ttl" if matches!(args.as_slice(), [Selector::Element(..)]) => {
                    // Cassandra 5.0: the write time or TTL of one element of a non-frozen
                    // collection, `writetime(m['k'])`, `ttl(l[0])`.
                    let [Selector::Element(inner, k)] = args.as_slice() else {
                        unreachable!("matched above")
                    };
                    let Selector::Column(c) = &**inner else {
                        return invalid(format!("Invalid arguments for function {f}"));
                    };
                    let i = column_of(table, c)?;
                    let col = &table.columns[i];
                    let key_ty = match col.ty.unfrozen() {
                        CqlType::Map(k, _) | CqlType::Set(k) if col.ty.is_multicell() => {
                            (**k).clone()
                        }
                        CqlType::List(_) if col.ty.is_multicell() => CqlType::Int,
                        _ => {
                            return invalid(format!(
                                "Invalid element selection: {} is not a non-frozen collection",
                                col.name
                            ))
                        }
                    };
                    let key = eval(k, &key_ty, c, ctx)?.bytes().cloned().ok_or_else(|| {
                        QueryError::Invalid("Invalid null element selection".into())
                    })?;
                    let name = format!("{f}({})", crate::select::selector_name(&args[0]));
                    return Ok(if f == "writetime" {
                        (
                            Sel::OneElementMeta(i, col.ty.unfrozen().clone(), key, true),
                            name,
                            CqlType::Bigint,
                        )
                    } else {
                        (
                            Sel::OneElementMeta(i, col.ty.unfrozen().clone(), key, false),
                            name,
                            CqlType::Int,
                        )
                    });
                }
                "writetime" | "ttl" | "maxwritetime" => {
                    let [Selector::Column(c)] = args.as_slice() else {
                        return invalid(format!("Invalid arguments for function {f}"));
                    };
                    let i = column_of(table, c)?;
                    let col = &table.columns[i];
                    if col.is_primary_key() {
                        return invalid(format!(
                            "Cannot use selection function {f} on PRIMARY KEY part {}",
                            col.name
                        ));
                    }
                    // Cassandra 5.0: per-element lists for non-frozen collections.
                    if col.ty.is_multicell() && col.ty.is_collection() {
                        return Ok(match f.as_str() {
                            "writetime" => (
                                Sel::ElementWriteTimes(i),
                                format!("writetime({c})"),
                                CqlType::List(Box::new(CqlType::Bigint)),
                            ),
                            "ttl" => (
                                Sel::ElementTtls(i),
                                format!("ttl({c})"),
                                CqlType::List(Box::new(CqlType::Int)),
                            ),
                            _ => (
                                Sel::MaxWriteTime(i),
                                format!("maxwritetime({c})"),
                                CqlType::Bigint,
                            ),
                        });
                    }
                    if f == "maxwritetime" {
                        return Ok((
                            Sel::MaxWriteTime(i),
                            format!("maxwritetime({c})"),
                            CqlType::Bigint,
                        ));
                    }
                    if col.ty.is_multicell() {
                        return invalid(format!(
                            "Cannot use selection function {f} on non-frozen {} {}",
                            if col.ty.is_collection() {
                                "collection"
                            } else {
                                "user type"
                            },
                            col.name
                        ));
                    }
                    if f == "writetime" {
                        (
                            Sel::WriteTime(i),
                            format!("writetime({c})"),
                            CqlType::Bigint,
                        )
                    } else {
                        (Sel::Ttl(i), format!("ttl({c})"), CqlType::Int)
                    }
                }
                "token" => {
                    let names: Vec<&str> = args
                        .iter()
                        .filter_map(|a| {
                            if let Selector::Column(c) = a {
                                Some(c.as_str())
                            } else {
                                None
                            }
                        })
                        .collect();
                    let pk: Vec<&str> = table
                        .partition_key()
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect();
                    if names != pk {
                        return invalid(format!("Invalid arguments for function token: the partition key columns are {}", pk.join(", ")));
                    }
                    (
                        Sel::Token,
                        format!("system.token({})", arg_names()),
                        CqlType::Bigint,
                    )
                }
                "similarity_cosine" | "similarity_euclidean" | "similarity_dot_product" => {
                    let [a, b] = args.as_slice() else {
                        return invalid(format!(
                            "Invalid number of arguments in call to function system.{f}: 2 required but {} provided",
                            args.len()
                        ));
                    };
                    // A literal or marker takes the vector type of the other argument.
                    let typed = |s: &Selector, other: &Selector| -> QueryResult<(Sel, CqlType)> {
                        match s {
                            Selector::Term(t) => {
                                let (_, _, ty) = compile_one(table, other, ctx)?;
                                let v = eval(t, &ty, &f, ctx)?;
                                Ok((Sel::Constant(v.bytes().cloned()), ty))
                            }
                            s => compile_one(table, s, ctx).map(|(sel, _, ty)| (sel, ty)),
                        }
                    };
                    let (la, ta) = typed(a, b)?;
                    let (lb, tb) = typed(b, a)?;
                    for t in [&ta, &tb] {
                        if !matches!(t.unfrozen(), CqlType::Vector(e, _) if **e == CqlType::Float) {
                            return invalid(format!(
                                "Function system.{f} requires a float vector argument, but found argument of type {}",
                                t.cql_name()
                            ));
                        }
                    }
                    if ta.unfrozen() != tb.unfrozen() {
                        return invalid(format!(
                            "All arguments must have the same vector dimensions in function system.{f}"
                        ));
                    }
                    (
                        Sel::Func(f.clone(), vec![(la, ta), (lb, tb)]),
                        format!("system.{f}({})", arg_names()),
                        CqlType::Float,
                    )
                }
                "count"
                    if matches!(
                        args.as_slice(),
                        [Selector::Star] | [Selector::Term(Term::Literal(_))]
                    ) =>
                {
                    (
                        Sel::Agg(AggKind::Count, None, CqlType::Bigint),
                        "count".into(),
                        CqlType::Bigint,
                    )
                }
                "count" | "min" | "max" | "sum" | "avg" => {
                    let [arg] = args.as_slice() else {
                        return invalid(format!(
                            "Invalid number of arguments in call to function system.{f}"
                        ));
                    };
                    let (inner, _, ty) = compile_one(table, arg, ctx)?;
                    let kind = match f.as_str() {
                        "count" => AggKind::Count,
                        "min" => AggKind::Min,
                        "max" => AggKind::Max,
                        "sum" => AggKind::Sum,
                        _ => AggKind::Avg,
                    };
                    if matches!(kind, AggKind::Sum | AggKind::Avg) && !is_numeric(&ty) {
                        return invalid(format!("Invalid call to function system.{f}: argument of type {} is not numeric", ty.cql_name()));
                    }
                    let out = if kind == AggKind::Count {
                        CqlType::Bigint
                    } else {
                        ty.clone()
                    };
                    (
                        Sel::Agg(kind, Some(Box::new(inner)), ty),
                        format!("system.{f}({})", arg_names()),
                        out,
                    )
                }
                "collection_min" | "collection_max" | "collection_sum" | "collection_avg"
                | "mask_null" | "mask_default" | "mask_replace" | "mask_inner" | "mask_outer"
                | "mask_hash" | "format_bytes" | "format_time" => {
                    let (compiled, ret) = compile_native(table, &f, args, ctx)?;
                    (
                        Sel::Func(f.clone(), compiled),
                        format!("system.{f}({})", arg_names()),
                        ret,
                    )
                }
                _ => {
                    if let Some(term) = selector_term(s) {
                        // Only terms: evaluate once (now(), uuid(), toTimestamp(now()), ...).
                        let ty = crate::values::function_return_type(&f).ok_or_else(|| {
                            QueryError::Invalid(format!("Unknown function '{f}'"))
                        })?;
                        let v = eval(&term, &ty, &f, ctx)?;
                        return Ok((
                            Sel::Constant(v.bytes().cloned()),
                            format!("system.{f}({})", arg_names()),
                            ty,
                        ));
                    }
                    let mut compiled = vec![];
                    for a in args {
                        let (sel, _, ty) = compile_one(table, a, ctx)?;
                        compiled.push((sel, ty));
                    }
                    let ret = scalar_return_type(&f, &compiled)?;
                    (
                        Sel::Func(f.clone(), compiled),
                        format!("system.{f}({})", arg_names()),
                        ret,
                    )
                }
            }
        }
    })
}

/// The type a literal has on its own (Cassandra's "compatible type if known").
fn literal_type(t: &Term) -> Option<CqlType> {
    use sibyl_cql::ast::Literal as L;
    Some(match t {
        Term::Literal(L::String(_)) => CqlType::Text,
        Term::Literal(L::Integer(i)) => match i.parse::<i64>() {
            Ok(v) if i32::try_from(v).is_ok() => CqlType::Int,
            Ok(_) => CqlType::Bigint,
            Err(_) => CqlType::Varint,
        },
        Term::Literal(L::Float(_)) => CqlType::Double,
        Term::Literal(L::Boolean(_)) => CqlType::Boolean,
        Term::Literal(L::Uuid(_)) => CqlType::Uuid,
        Term::Literal(L::Blob(_)) => CqlType::Blob,
        Term::Literal(L::Duration(_)) => CqlType::Duration,
        _ => return None,
    })
}

/// Compiles the arguments of Cassandra 5.0's collection, masking and format functions and
/// checks them as Cassandra's function parameters do; returns the arguments and result type.
fn compile_native(
    table: &Table,
    f: &str,
    args: &[Selector],
    ctx: &EvalCtx,
) -> QueryResult<(Vec<(Sel, CqlType)>, CqlType)> {
    let signature = match f {
        "collection_min" | "collection_max" | "collection_sum" | "collection_avg" => {
            "numeric_set_or_list"
        }
        "mask_null" | "mask_default" => "any",
        "mask_replace" => "any, same",
        "mask_inner" | "mask_outer" => "[text|varchar|ascii], int, int, [text]",
        "mask_hash" => "any, [text]",
        _ => "[int|tinyint|smallint|bigint|varint|ascii|text], [ascii], [ascii]",
    };
    let (min, max) = match f {
        "mask_replace" => (2, 2),
        "mask_inner" | "mask_outer" => (3, 4),
        "mask_hash" => (1, 2),
        "format_bytes" | "format_time" => (1, 3),
        _ => (1, 1),
    };
    if args.len() < min || args.len() > max {
        return invalid(format!(
            "Invalid number of arguments for function system.{f}({signature})"
        ));
    }
    let arg_name = |i: usize| crate::select::selector_name(&args[i]);
    // An argument; a literal or bind marker takes `ty` (or, without one, its own type).
    let typed = |i: usize, ty: Option<&CqlType>| -> QueryResult<(Sel, CqlType)> {
        match &args[i] {
            Selector::Term(t) => {
                let ty = match ty.cloned().or_else(|| literal_type(t)) {
                    Some(ty) => ty,
                    None => {
                        return invalid(format!(
                            "Cannot infer type of argument {} in call to function system.{f}: use type casts to disambiguate",
                            arg_name(i)
                        ))
                    }
                };
                let v = eval(t, &ty, f, ctx)?;
                Ok((Sel::Constant(v.bytes().cloned()), ty))
            }
            s => compile_one(table, s, ctx).map(|(sel, _, t)| (sel, t)),
        }
    };
    let first = typed(0, None)?;
    let t0 = first.1.unfrozen().clone();
    let require = |ok: bool, what: &str| -> QueryResult<()> {
        if ok {
            Ok(())
        } else {
            invalid(format!(
                "Function system.{f} requires {what} argument, but found argument {} of type {}",
                arg_name(0),
                first.1.cql_name()
            ))
        }
    };
    let mut out = vec![first.clone()];
    let ret = match f {
        "collection_min" | "collection_max" | "collection_sum" | "collection_avg" => {
            let elem = match &t0 {
                CqlType::List(e) | CqlType::Set(e) => (**e).clone(),
                _ => CqlType::Map(Box::new(CqlType::Int), Box::new(CqlType::Int)),
            };
            if matches!(f, "collection_min" | "collection_max") {
                require(
                    matches!(t0, CqlType::List(_) | CqlType::Set(_)),
                    "a set or list",
                )?;
            } else {
                require(
                    matches!(t0, CqlType::List(_) | CqlType::Set(_)) && is_numeric(elem.unfrozen()),
                    "a numeric set/list",
                )?;
            }
            elem
        }
        "mask_null" | "mask_default" => first.1.clone(),
        "mask_replace" => {
            out.push(typed(1, Some(&first.1))?);
            first.1.clone()
        }
        "mask_inner" | "mask_outer" => {
            if !matches!(t0, CqlType::Text | CqlType::Ascii) {
                return invalid(format!(
                    "Function system.{f} requires an argument of type [text|varchar|ascii], but found argument {} of type {}",
                    arg_name(0),
                    first.1.cql_name()
                ));
            }
            for i in 1..args.len() {
                let want = if i == 3 { CqlType::Text } else { CqlType::Int };
                let a = typed(i, Some(&want))?;
                if a.1.unfrozen() != &want {
                    return invalid(format!(
                        "Function system.{f} requires an argument of type {}, but found argument {} of type {}",
                        want.cql_name(),
                        arg_name(i),
                        a.1.cql_name()
                    ));
                }
                out.push(a);
            }
            first.1.clone()
        }
        "mask_hash" => {
            if args.len() == 2 {
                out.push(typed(1, Some(&CqlType::Text))?);
            }
            CqlType::Blob
        }
        _ => {
            // format_bytes / format_time
            if !matches!(
                t0,
                CqlType::Int
                    | CqlType::Tinyint
                    | CqlType::Smallint
                    | CqlType::Bigint
                    | CqlType::Varint
                    | CqlType::Ascii
                    | CqlType::Text
            ) {
                return invalid(format!(
                    "Function system.{f} requires an argument of type [int|tinyint|smallint|bigint|varint|ascii|text], but found argument {} of type {}",
                    arg_name(0),
                    first.1.cql_name()
                ));
            }
            for i in 1..args.len() {
                let a = typed(i, Some(&CqlType::Ascii))?;
                if !matches!(a.1.unfrozen(), CqlType::Ascii | CqlType::Text) {
                    return invalid(format!(
                        "Function system.{f} requires an argument of type ascii, but found argument {} of type {}",
                        arg_name(i),
                        a.1.cql_name()
                    ));
                }
                out.push(a);
            }
            CqlType::Text
        }
    };
    Ok((out, ret))
}

/// Cassandra's masked value of a type (`AbstractType.getMaskedValue`): `****` for strings,
/// zero for numbers, false, the epoch for dates and times, empty collections, and
/// field-by-field masked tuples and UDTs.
fn masked_value(ty: &CqlType) -> Vec<u8> {
    use CqlType as T;
    match ty.unfrozen() {
        T::Ascii | T::Text => b"****".to_vec(),
        T::Boolean => vec![0],
        T::Tinyint => vec![0],
        T::Smallint => vec![0; 2],
        T::Int | T::Float => vec![0; 4],
        T::Bigint | T::Counter | T::Double | T::Timestamp | T::Time => vec![0; 8],
        T::Varint => vec![0],
        T::Decimal => vec![0, 0, 0, 0, 0],
        T::Date => Value::Date(literal::date_to_wire(0)).to_bytes(),
        T::Uuid => vec![0; 16],
        T::Timeuuid => Value::Timeuuid(timeuuid::timeuuid_from_millis(0, true)).to_bytes(),
        T::Inet => vec![0; 4],
        T::Duration => vec![0, 0, 0],
        T::List(_) | T::Set(_) | T::Map(..) => vec![0; 4],
        T::Tuple(ts) => tuple_of(ts.iter()),
        T::Udt(d) => tuple_of(d.fields.iter().map(|(_, t)| t)),
        T::Vector(e, n) => {
            let one = masked_value(e);
            let mut out = vec![];
            for _ in 0..*n {
                if e.value_fixed_length().is_none() {
                    sibyl_types::write_unsigned_vint(one.len() as u64, &mut out);
                }
                out.extend_from_slice(&one);
            }
            out
        }
        _ => vec![],
    }
}

fn tuple_of<'a>(types: impl Iterator<Item = &'a CqlType>) -> Vec<u8> {
    let mut out = vec![];
    for t in types {
        let v = masked_value(t);
        out.extend_from_slice(&(v.len() as i32).to_be_bytes());
        out.extend_from_slice(&v);
    }
    out
}

/// The first argument of format_bytes / format_time as a long.
fn format_value(b: &[u8], ty: &CqlType) -> QueryResult<i64> {
    let v = match Value::deserialize(ty, b)? {
        Value::Text(s) | Value::Ascii(s) => s.parse::<i64>().map_err(|_| {
            QueryError::Invalid(format!(
                "unable to convert string '{s}' to a value of type long"
            ))
        })?,
        other => as_decimal(&other)
            .and_then(|d| d.to_i128())
            .map(|x| x as i64)
            .unwrap_or(0),
    };
    if v < 0 {
        return invalid("value must be non-negative");
    }
    Ok(v)
}

fn text_arg(a: &Option<Bytes>) -> String {
    a.as_ref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

/// `format_bytes`: B, KiB, MiB, GiB (case-insensitive), saturating at Long.MAX_VALUE.
fn format_bytes(v: i64, units: &[String]) -> QueryResult<String> {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let unit = |s: &str| {
        UNITS
            .iter()
            .position(|u| u.eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                QueryError::Invalid(format!(
                    "Unsupported data storage unit: {s}. Supported units are: B, KiB, MiB, GiB"
                ))
            })
    };
    let (from, to) = match units {
        [] => {
            let to = if v > 1 << 30 {
                3
            } else if v > 1 << 20 {
                2
            } else if v > 1 << 10 {
                1
            } else {
                0
            };
            (0, to)
        }
        [t] => (0, unit(t)?),
        [s, t, ..] => (unit(s)?, unit(t)?),
    };
    let bytes = (v as i128) << (10 * from);
    let out = (bytes >> (10 * to)).min(i64::MAX as i128);
    Ok(format!("{out} {}", UNITS[to]))
}

/// `format_time`: d, h, m, s, ms, us, µs, ns (case-insensitive), saturating at Long.MAX_VALUE.
fn format_time(v: i64, units: &[String]) -> QueryResult<String> {
    let nanos_of = |s: &str| -> QueryResult<i128> {
        Ok(match s.to_lowercase().as_str() {
            "d" => 86_400_000_000_000,
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            "us" | "µs" => 1_000,
            "ns" => 1,
            _ => {
                return invalid(format!(
                    "Unsupported time unit: {s}. Supported units are: ns, us, ms, s, m, h, d"
                ))
            }
        })
    };
    let convert = |from: i128, to: i128| ((v as i128 * from) / to).min(i64::MAX as i128);
    match units {
        [] => {
            for (sym, n) in [
                ("d", 86_400_000_000_000i128),
                ("h", 3_600_000_000_000),
                ("m", 60_000_000_000),
                ("s", 1_000_000_000),
            ] {
                let x = convert(1_000_000, n);
                if x > 0 {
                    return Ok(format!("{x} {sym}"));
                }
            }
            Ok(format!("{v} ms"))
        }
        [t] => Ok(format!("{} {t}", convert(1_000_000, nanos_of(t)?))),
        [s, t, ..] => {
            let from = nanos_of(s)?;
            Ok(format!("{} {t}", convert(from, nanos_of(t)?)))
        }
    }
}

/// Evaluates the functions compiled by `compile_native`.
fn call_native(f: &str, args: &[(Option<Bytes>, &CqlType)]) -> QueryResult<Option<Bytes>> {
    let (a0, t0) = (&args[0].0, args[0].1.unfrozen());
    match f {
        "mask_null" => return Ok(None),
        "mask_default" => return Ok(Some(Bytes::from(masked_value(t0)))),
        "mask_replace" => return Ok(args[1].0.clone()),
        _ => {}
    }
    let Some(a0) = a0 else {
        return Ok(None);
    };
    Ok(match f {
        "collection_min" | "collection_max" | "collection_sum" | "collection_avg" => {
            let (CqlType::List(e) | CqlType::Set(e)) = t0 else {
                return Ok(None);
            };
            let elems: Vec<Option<Bytes>> = split_collection(a0)?
                .into_iter()
                .map(|x| Some(Bytes::copy_from_slice(x)))
                .collect();
            let kind = match f {
                "collection_min" => AggKind::Min,
                "collection_max" => AggKind::Max,
                "collection_sum" => AggKind::Sum,
                _ => AggKind::Avg,
            };
            aggregate(kind, e, &elems, 0)?
        }
        "mask_inner" | "mask_outer" => {
            let s = String::from_utf8_lossy(a0).into_owned();
            let int = |i: usize| -> i64 {
                args.get(i)
                    .and_then(|(b, _)| b.as_ref())
                    .and_then(|b| <[u8; 4]>::try_from(b.as_ref()).ok())
                    .map(|b| i32::from_be_bytes(b) as i64)
                    .unwrap_or(0)
            };
            let (begin, end) = (int(1), int(2));
            let pad = match args.get(3).map(|(b, _)| b) {
                Some(Some(p)) => {
                    let p = String::from_utf8_lossy(p).into_owned();
                    let n = p.encode_utf16().count();
                    if n != 1 {
                        return invalid(format!("The padding argument for function system.{f} should be single-character, but '{p}' has {n} characters."));
                    }
                    p.chars().next().unwrap_or('*')
                }
                _ => '*',
            };
            let chars: Vec<char> = s.chars().collect();
            let last = chars.len() as i64 - 1 - end;
            let masked: String = chars
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let i = i as i64;
                    let inner = i >= begin && i <= last;
                    if inner == (f == "mask_inner") {
                        pad
                    } else {
                        *c
                    }
                })
                .collect();
            Some(Bytes::from(masked))
        }
        "mask_hash" => {
            let algo = match args.get(1).map(|(b, _)| b) {
                Some(Some(b)) => String::from_utf8_lossy(b).into_owned(),
                _ => "SHA-256".to_string(),
            };
            // The algorithm names of Java's MessageDigest, as Cassandra accepts them.
            use sha2::Digest;
            let digest = match algo.to_ascii_uppercase().as_str() {
                "MD5" => md5::Md5::digest(a0).to_vec(),
                "SHA-1" | "SHA1" | "SHA" => sha1::Sha1::digest(a0).to_vec(),
                "SHA-224" => sha2::Sha224::digest(a0).to_vec(),
                "SHA-256" => sha2::Sha256::digest(a0).to_vec(),
                "SHA-384" => sha2::Sha384::digest(a0).to_vec(),
                "SHA-512" => sha2::Sha512::digest(a0).to_vec(),
                _ => return invalid(format!("Hash algorithm not found: {algo}")),
            };
            Some(Bytes::from(digest))
        }
        _ => {
            // format_bytes / format_time
            if args[1..].iter().any(|(b, _)| b.is_none()) {
                return invalid("none of the arguments may be null");
            }
            let v = format_value(a0, t0)?;
            let units: Vec<String> = args[1..].iter().map(|(b, _)| text_arg(b)).collect();
            let s = if f == "format_bytes" {
                format_bytes(v, &units)?
            } else {
                format_time(v, &units)?
            };
            Some(Bytes::from(s))
        }
    })
}

fn op_symbol(op: ArithOp) -> &'static str {
    match op {
        ArithOp::Add => "+",
        ArithOp::Sub => "-",
        ArithOp::Mul => "*",
        ArithOp::Div => "/",
        ArithOp::Mod => "%",
    }
}

fn numeric_rank(t: &CqlType) -> u8 {
    match t {
        CqlType::Tinyint => 0,
        CqlType::Smallint => 1,
        CqlType::Int => 2,
        CqlType::Bigint | CqlType::Counter => 3,
        CqlType::Varint => 4,
        CqlType::Float => 5,
        CqlType::Double => 6,
        _ => 7,
    }
}

fn wider_numeric(a: &CqlType, b: &CqlType) -> CqlType {
    let w = if numeric_rank(a) >= numeric_rank(b) {
        a
    } else {
        b
    };
    match (w, a, b) {
        (CqlType::Counter, _, _) => CqlType::Bigint,
        // Varint mixed with floating point gives decimal, as in Cassandra.
        (CqlType::Float | CqlType::Double, CqlType::Varint, _)
        | (CqlType::Float | CqlType::Double, _, CqlType::Varint) => CqlType::Decimal,
        (w, _, _) => w.clone(),
    }
}

fn scalar_return_type(f: &str, args: &[(Sel, CqlType)]) -> QueryResult<CqlType> {
    let arg = |i: usize| {
        args.get(i)
            .map(|(_, t)| t.unfrozen().clone())
            .ok_or_else(|| {
                QueryError::Invalid(format!(
                    "Invalid number of arguments in call to function system.{f}"
                ))
            })
    };
    Ok(match f {
        "totimestamp" => CqlType::Timestamp,
        "todate" => CqlType::Date,
        "tounixtimestamp" => CqlType::Bigint,
        "mintimeuuid" | "maxtimeuuid" => CqlType::Timeuuid,
        "abs" => {
            let t = arg(0)?;
            if !is_numeric(&t) {
                return invalid(format!(
                    "Function system.abs is not defined for type {}",
                    t.cql_name()
                ));
            }
            t
        }
        "collection_count" => CqlType::Int,
        "tojson" => CqlType::Text,
        "map_keys" => match arg(0)? {
            CqlType::Map(k, _) => CqlType::Set(k),
            t => return invalid(format!("map_keys requires a map, got {}", t.cql_name())),
        },
        "map_values" => match arg(0)? {
            CqlType::Map(_, v) => CqlType::List(v),
            t => return invalid(format!("map_values requires a map, got {}", t.cql_name())),
        },
        _ if f.ends_with("asblob") => CqlType::Blob,
        _ if f.starts_with("blobas") => CqlType::parse_native(&f["blobas".len()..])
            .ok_or_else(|| QueryError::Invalid(format!("Unknown function '{f}'")))?,
        _ => return invalid(format!("Unknown function '{f}'")),
    })
}

fn to_millis(ty: &CqlType, b: &[u8]) -> Option<i64> {
    match Value::deserialize(ty, b).ok()? {
        Value::Timestamp(ms) => Some(ms),
        Value::Timeuuid(u) => Some(timeuuid::timeuuid_millis(&u)),
        Value::Date(d) => Some(literal::date_from_wire(d) * 86_400_000),
        _ => None,
    }
}

fn call_scalar(f: &str, args: &[(Option<Bytes>, &CqlType)]) -> QueryResult<Option<Bytes>> {
    if f.starts_with("collection_") && f != "collection_count"
        || f.starts_with("mask_")
        || f.starts_with("format_")
    {
        return call_native(f, args);
    }
    if let Some(kind) = f.strip_prefix("similarity_") {
        let sim = sibyl_index::Similarity::parse(kind)
            .ok_or_else(|| QueryError::Invalid(format!("Unknown function '{f}'")))?;
        let (Some((Some(a), _)), Some((Some(b), _))) = (args.first(), args.get(1)) else {
            return Ok(None);
        };
        let (Some(a), Some(b)) = (
            sibyl_index::vector::decode_f32s(a),
            sibyl_index::vector::decode_f32s(b),
        ) else {
            return Ok(None);
        };
        if sim == sibyl_index::Similarity::Cosine
            && (sibyl_index::vector::is_zero_vector(&a) || sibyl_index::vector::is_zero_vector(&b))
        {
            return invalid("Function system.similarity_cosine doesn't support all-zero vectors");
        }
        return Ok(Some(Bytes::copy_from_slice(
            &sim.score(&a, &b).to_be_bytes(),
        )));
    }
    if f == "tojson" {
        let text = match args.first() {
            Some((Some(b), t)) => sibyl_types::json::to_json(t, b)?,
            _ => "null".to_string(),
        };
        return Ok(Some(Bytes::from(text)));
    }
    let Some((Some(a0), t0)) = args.first().map(|(b, t)| (b.clone(), *t)) else {
        return Ok(None);
    };
    let t0 = t0.unfrozen();
    let out = match f {
        "totimestamp" => to_millis(t0, &a0).map(|ms| Value::Timestamp(ms).to_bytes()),
        "todate" => to_millis(t0, &a0)
            .map(|ms| Value::Date(literal::date_to_wire(ms.div_euclid(86_400_000))).to_bytes()),
        "tounixtimestamp" => to_millis(t0, &a0).map(|ms| Value::Bigint(ms).to_bytes()),
        "mintimeuuid" | "maxtimeuuid" => to_millis(t0, &a0).map(|ms| {
            Value::Timeuuid(timeuuid::timeuuid_from_millis(ms, f == "mintimeuuid")).to_bytes()
        }),
        "abs" => Some(
            match Value::deserialize(t0, &a0)? {
                Value::Int(x) => Value::Int(x.wrapping_abs()),
                Value::Bigint(x) => Value::Bigint(x.wrapping_abs()),
                Value::Counter(x) => Value::Counter(x.wrapping_abs()),
                Value::Smallint(x) => Value::Smallint(x.wrapping_abs()),
                Value::Tinyint(x) => Value::Tinyint(x.wrapping_abs()),
                Value::Double(x) => Value::Double(x.abs()),
                Value::Float(x) => Value::Float(x.abs()),
                Value::Varint(x) => Value::Varint(if x < BigInt::from(0) { -x } else { x }),
                Value::Decimal(x) => Value::Decimal(x.abs()),
                v => v,
            }
            .to_bytes(),
        ),
        "collection_count" => {
            let n = match t0 {
                CqlType::Map(..) => split_map(&a0)?.len(),
                _ => split_collection(&a0)?.len(),
            };
            Some((n as i32).to_be_bytes().to_vec())
        }
        "map_keys" | "map_values" => {
            let entries = split_map(&a0)?;
            let mut out = (entries.len() as i32).to_be_bytes().to_vec();
            for (k, v) in entries {
                let x = if f == "map_keys" { k } else { v };
                out.extend_from_slice(&(x.len() as i32).to_be_bytes());
                out.extend_from_slice(x);
            }
            Some(out)
        }
        _ if f.ends_with("asblob") => Some(a0.to_vec()),
        _ if f.starts_with("blobas") => {
            let target = CqlType::parse_native(&f["blobas".len()..])
                .ok_or_else(|| QueryError::Invalid(format!("Unknown function '{f}'")))?;
            Value::validate(&target, &a0)?;
            Some(a0.to_vec())
        }
        _ => return invalid(format!("Unknown function '{f}'")),
    };
    Ok(out.map(Bytes::from))
}

fn as_decimal(v: &Value) -> Option<BigDecimal> {
    Some(match v {
        Value::Int(x) => BigDecimal::from(*x),
        Value::Bigint(x) | Value::Counter(x) => BigDecimal::from(*x),
        Value::Smallint(x) => BigDecimal::from(*x),
        Value::Tinyint(x) => BigDecimal::from(*x),
        Value::Varint(x) => BigDecimal::from(x.clone()),
        Value::Decimal(x) => x.clone(),
        Value::Float(x) => BigDecimal::from_f32(*x)?,
        Value::Double(x) => BigDecimal::from_f64(*x)?,
        _ => return None,
    })
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Float(x) => Some(*x as f64),
        Value::Double(x) => Some(*x),
        other => as_decimal(other)?.to_f64(),
    }
}

/// Converts a number to the numeric type `to` (truncating like Java's narrowing casts).
fn numeric_to(v: &Value, to: &CqlType) -> Option<Value> {
    let d = as_decimal(v);
    let int = || -> Option<i128> {
        match v {
            Value::Float(x) => Some(*x as i128),
            Value::Double(x) => Some(*x as i128),
            _ => d.as_ref()?.with_scale(0).to_i128(),
        }
    };
    Some(match to {
        CqlType::Tinyint => Value::Tinyint(int()? as i8),
        CqlType::Smallint => Value::Smallint(int()? as i16),
        CqlType::Int => Value::Int(int()? as i32),
        CqlType::Bigint | CqlType::Counter => Value::Bigint(int()? as i64),
        CqlType::Varint => Value::Varint(d?.with_scale(0).into_bigint_and_exponent().0),
        CqlType::Float => Value::Float(as_f64(v)? as f32),
        CqlType::Double => Value::Double(as_f64(v)?),
        CqlType::Decimal => Value::Decimal(d?),
        _ => return None,
    })
}

fn cast(b: &[u8], from: &CqlType, to: &CqlType) -> QueryResult<Option<Bytes>> {
    if from == to {
        return Ok(Some(Bytes::copy_from_slice(b)));
    }
    let v = Value::deserialize(from, b)?;
    let out = match to {
        CqlType::Text | CqlType::Ascii => Value::Text(literal::to_display_string(from, &v)),
        t if is_numeric(t) => numeric_to(&v, t)
            .ok_or_else(|| QueryError::Invalid(format!("Unable to cast to {}", t.cql_name())))?,
        CqlType::Date => match to_millis(from, b) {
            Some(ms) => Value::Date(literal::date_to_wire(ms.div_euclid(86_400_000))),
            None => return Ok(None),
        },
        CqlType::Timestamp => match to_millis(from, b) {
            Some(ms) => Value::Timestamp(ms),
            None => return Ok(None),
        },
        _ => {
            return invalid(format!(
                "{} cannot be cast to {}",
                from.cql_name(),
                to.cql_name()
            ))
        }
    };
    Ok(Some(Bytes::from(out.to_bytes())))
}

fn arith(
    op: ArithOp,
    a: &[u8],
    at: &CqlType,
    b: &[u8],
    bt: &CqlType,
    out: &CqlType,
) -> QueryResult<Option<Bytes>> {
    let (x, y) = (Value::deserialize(at, a)?, Value::deserialize(bt, b)?);
    if let Value::Duration(d) = &y {
        let v = crate::values::add_duration(&x, d, op == ArithOp::Sub)?;
        return Ok(Some(Bytes::from(v.to_bytes())));
    }
    let div_zero = |what: &str| -> QueryResult<Option<Bytes>> {
        let op = if what == "division" { '/' } else { '%' };
        Err(crate::error::operation_failed(
            op,
            &at.cql_name(),
            &bt.cql_name(),
            "/ by zero",
        ))
    };
    let v = match out {
        CqlType::Float | CqlType::Double => {
            let (p, q) = (as_f64(&x).unwrap_or(0.0), as_f64(&y).unwrap_or(0.0));
            let r = match op {
                ArithOp::Add => p + q,
                ArithOp::Sub => p - q,
                ArithOp::Mul => p * q,
                ArithOp::Div => p / q,
                ArithOp::Mod => p % q,
            };
            if matches!(out, CqlType::Float) {
                Value::Float(r as f32)
            } else {
                Value::Double(r)
            }
        }
        CqlType::Decimal | CqlType::Varint => {
            let (p, q) = (
                as_decimal(&x).unwrap_or_default(),
                as_decimal(&y).unwrap_or_default(),
            );
            let zero = BigDecimal::from(0);
            let r = match op {
                ArithOp::Add => p + q,
                ArithOp::Sub => p - q,
                ArithOp::Mul => p * q,
                ArithOp::Div if q == zero => return div_zero("division"),
                ArithOp::Div => p / q,
                ArithOp::Mod if q == zero => return div_zero("modulo"),
                ArithOp::Mod => p % q,
            };
            if matches!(out, CqlType::Varint) {
                Value::Varint(r.with_scale(0).into_bigint_and_exponent().0)
            } else {
                Value::Decimal(r)
            }
        }
        _ => {
            let p = as_decimal(&x).and_then(|d| d.to_i128()).unwrap_or(0);
            let q = as_decimal(&y).and_then(|d| d.to_i128()).unwrap_or(0);
            let r = match op {
                ArithOp::Add => p.wrapping_add(q),
                ArithOp::Sub => p.wrapping_sub(q),
                ArithOp::Mul => p.wrapping_mul(q),
                ArithOp::Div if q == 0 => return div_zero("division"),
                ArithOp::Div => p / q,
                ArithOp::Mod if q == 0 => return div_zero("modulo"),
                ArithOp::Mod => p % q,
            };
            numeric_to(&Value::Varint(BigInt::from(r)), out).unwrap_or(Value::Bigint(r as i64))
        }
    };
    Ok(Some(Bytes::from(v.to_bytes())))
}

fn eval_sel(
    sel: &Sel,
    row: &RowData,
    key: &PartitionKey,
    now_secs: i64,
) -> QueryResult<Option<Bytes>> {
    Ok(match sel {
        Sel::Column(i) => row.values[*i].clone(),
        Sel::WriteTime(i) => {
            row.meta[*i].map(|m| Bytes::copy_from_slice(&m.timestamp.to_be_bytes()))
        }
        Sel::Ttl(i) => row.meta[*i].filter(|m| m.ttl > 0).map(|m| {
            Bytes::copy_from_slice(&(((m.expires_at - now_secs).max(0)) as i32).to_be_bytes())
        }),
        Sel::MaxWriteTime(i) => {
            row.meta[*i].map(|m| Bytes::copy_from_slice(&m.timestamp.to_be_bytes()))
        }
        Sel::ElementWriteTimes(i) | Sel::ElementTtls(i) => {
            let Some((_, metas)) = row.elements.iter().find(|(c, _)| c == i) else {
                return Ok(None);
            };
            let mut out = (metas.len() as i32).to_be_bytes().to_vec();
            for m in metas {
                if matches!(sel, Sel::ElementWriteTimes(_)) {
                    out.extend_from_slice(&8i32.to_be_bytes());
                    out.extend_from_slice(&m.timestamp.to_be_bytes());
                } else if m.ttl > 0 {
                    out.extend_from_slice(&4i32.to_be_bytes());
                    out.extend_from_slice(
                        &(((m.expires_at - now_secs).max(0)) as i32).to_be_bytes(),
                    );
                } else {
                    out.extend_from_slice(&(-1i32).to_be_bytes());
                }
            }
            Some(Bytes::from(out))
        }
        Sel::OneElementMeta(i, ty, k, write) => {
            let Some((_, metas)) = row.elements.iter().find(|(c, _)| c == i) else {
                return Ok(None);
            };
            let Some(value) = &row.values[*i] else {
                return Ok(None);
            };
            let position = match ty {
                CqlType::Map(kt, _) => split_map(value)?
                    .iter()
                    .position(|(mk, _)| Value::compare(kt, mk, k) == Ordering::Equal),
                CqlType::Set(e) => split_collection(value)?
                    .iter()
                    .position(|x| Value::compare(e, x, k) == Ordering::Equal),
                _ => {
                    let idx = i32::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 4]));
                    usize::try_from(idx).ok().filter(|i| *i < metas.len())
                }
            };
            position.and_then(|p| metas.get(p)).and_then(|m| {
                if *write {
                    Some(Bytes::copy_from_slice(&m.timestamp.to_be_bytes()))
                } else if m.ttl > 0 {
                    Some(Bytes::copy_from_slice(
                        &(((m.expires_at - now_secs).max(0)) as i32).to_be_bytes(),
                    ))
                } else {
                    None
                }
            })
        }
        Sel::Token => Some(Bytes::copy_from_slice(&key.token.to_be_bytes())),
        Sel::Constant(b) => b.clone(),
        Sel::Func(f, args) => {
            let mut vals = vec![];
            for (a, t) in args {
                vals.push((eval_sel(a, row, key, now_secs)?, t));
            }
            call_scalar(f, &vals)?
        }
        Sel::Cast(inner, from, to) => match eval_sel(inner, row, key, now_secs)? {
            Some(b) => cast(&b, from, to)?,
            None => None,
        },
        Sel::Field(inner, idx, n) => match eval_sel(inner, row, key, now_secs)? {
            Some(b) => split_tuple(*n, &b)?
                .get(*idx)
                .copied()
                .flatten()
                .map(Bytes::copy_from_slice),
            None => None,
        },
        Sel::Element(inner, ty, k) => match eval_sel(inner, row, key, now_secs)? {
            Some(b) => match ty {
                CqlType::Map(kt, _) => split_map(&b)?
                    .into_iter()
                    .find(|(mk, _)| Value::compare(kt, mk, k) == Ordering::Equal)
                    .map(|(_, v)| Bytes::copy_from_slice(v)),
                CqlType::Set(e) => split_collection(&b)?
                    .into_iter()
                    .find(|x| Value::compare(e, x, k) == Ordering::Equal)
                    .map(Bytes::copy_from_slice),
                CqlType::List(_) => {
                    let idx = i32::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 4]));
                    split_collection(&b)?
                        .get(idx.max(0) as usize)
                        .map(|x| Bytes::copy_from_slice(x))
                }
                _ => None,
            },
            None => None,
        },
        Sel::Arith(op, l, r, out) => match (
            eval_sel(&l.0, row, key, now_secs)?,
            eval_sel(&r.0, row, key, now_secs)?,
        ) {
            (Some(a), Some(b)) => arith(*op, &a, &l.1, &b, &r.1, out)?,
            _ => None,
        },
        Sel::Agg(..) => None,
    })
}

fn aggregate(
    kind: AggKind,
    ty: &CqlType,
    vals: &[Option<Bytes>],
    count_rows: usize,
) -> QueryResult<Option<Bytes>> {
    let present: Vec<&Bytes> = vals.iter().flatten().collect();
    Ok(match kind {
        AggKind::Count => Some(Bytes::copy_from_slice(
            &(if vals.is_empty() {
                count_rows
            } else {
                present.len()
            } as i64)
                .to_be_bytes(),
        )),
        AggKind::Min => present
            .into_iter()
            .min_by(|a, b| Value::compare(ty, a, b))
            .cloned(),
        AggKind::Max => present
            .into_iter()
            .max_by(|a, b| Value::compare(ty, a, b))
            .cloned(),
        AggKind::Sum | AggKind::Avg => {
            let decoded: Vec<Value> = present
                .iter()
                .map(|b| Value::deserialize(ty, b))
                .collect::<Result<_, _>>()?;
            let n = decoded.len();
            let out = match ty.unfrozen() {
                CqlType::Float | CqlType::Double => {
                    let mut s: f64 = decoded.iter().filter_map(as_f64).sum();
                    if kind == AggKind::Avg {
                        s = if n == 0 { 0.0 } else { s / n as f64 };
                    }
                    if matches!(ty.unfrozen(), CqlType::Float) {
                        Value::Float(s as f32)
                    } else {
                        Value::Double(s)
                    }
                }
                t => {
                    let mut s: BigDecimal = decoded.iter().filter_map(as_decimal).sum();
                    if kind == AggKind::Avg && n > 0 {
                        s = if matches!(t, CqlType::Decimal) {
                            s / BigDecimal::from(n as i64)
                        } else {
                            BigDecimal::from(s.to_i128().unwrap_or(0) / n as i128)
                        };
                    }
                    numeric_to(&Value::Decimal(s), t).unwrap_or(Value::Bigint(0))
                }
            };
            Some(Bytes::from(out.to_bytes()))
        }
    })
}

impl Selection {
    pub fn is_aggregate(&self) -> bool {
        self.items.iter().any(|s| s.is_aggregate())
    }

    /// The result rows: one per input row, or one per group when aggregating.
    pub fn rows(
        &self,
        rows: &[(RowData, PartitionKey)],
        group_by: &[usize],
        now_secs: i64,
    ) -> QueryResult<Vec<Vec<Option<Bytes>>>> {
        let mut out = vec![];
        if !self.is_aggregate() && group_by.is_empty() {
            for (row, key) in rows {
                out.push(
                    self.items
                        .iter()
                        .map(|item| eval_sel(item, row, key, now_secs))
                        .collect::<QueryResult<_>>()?,
                );
            }
            return Ok(out);
        }
        // Groups of consecutive rows with equal GROUP BY columns (rows arrive in primary key order);
        // without GROUP BY, one group even when there are no rows (count(*) = 0).
        let mut start = 0;
        while start < rows.len() || (out.is_empty() && group_by.is_empty()) {
            let mut end = start + 1;
            while end < rows.len()
                && group_by
                    .iter()
                    .all(|&c| rows[end].0.values[c] == rows[start].0.values[c])
            {
                end += 1;
            }
            let group = &rows[start.min(rows.len())..end.min(rows.len())];
            let mut cells = vec![];
            for item in &self.items {
                cells.push(match item {
                    Sel::Agg(kind, inner, ty) => {
                        let vals: Vec<Option<Bytes>> = match inner {
                            Some(s) => group
                                .iter()
                                .map(|(r, k)| eval_sel(s, r, k, now_secs))
                                .collect::<QueryResult<_>>()?,
                            None => vec![],
                        };
                        aggregate(*kind, ty, &vals, group.len())?
                    }
                    other => match group.first() {
                        Some((r, k)) => eval_sel(other, r, k, now_secs)?,
                        None => None,
                    },
                });
            }
            out.push(cells);
            start = end;
        }
        Ok(out)
    }

    /// Writes the result rows, or for SELECT JSON one `[json]` text cell per row.
    pub fn write_rows(
        &self,
        rows: &[(RowData, PartitionKey)],
        group_by: &[usize],
        now_secs: i64,
        json: bool,
        w: &mut RowsWriter,
    ) -> QueryResult<()> {
        for cells in self.rows(rows, group_by, now_secs)? {
            if json {
                let cols: Vec<(String, CqlType, Option<&[u8]>)> = self
                    .columns
                    .iter()
                    .zip(&cells)
                    .map(|((n, t), c)| (n.clone(), t.clone(), c.as_deref()))
                    .collect();
                let text = sibyl_types::json::row_to_json(&cols)?;
                w.push_cell(Some(text.as_bytes()));
            } else {
                for c in &cells {
                    w.push_cell(c.as_deref());
                }
            }
            w.finish_row();
        }
        Ok(())
    }
}

/// Columns named by GROUP BY: a prefix of the primary key, as Cassandra requires.
pub fn group_by_columns(table: &Table, st: &SelectStatement) -> QueryResult<Vec<usize>> {
    let mut out = vec![];
    for (k, name) in st.group_by.iter().enumerate() {
        let i = column_of(table, name)?;
        if i != k || !table.columns[i].is_primary_key() {
            return invalid("Group by currently only support groups of columns following their declared order in the PRIMARY KEY");
        }
        out.push(i);
    }
    if !out.is_empty() && out.len() < table.partition_key_count {
        return invalid("Group by is not supported on only a part of the partition key");
    }
    Ok(out)
}
