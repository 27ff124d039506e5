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
                        let (_, _, ty) = compile_one(table, other, ctx)?;
                        let v = eval(t, &ty, "term", ctx)?;
                        Ok((Sel::Constant(v.bytes().cloned()), t.to_string(), ty))
                    }
                    s => compile_one(table, s, ctx),
                }
            };
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
                "writetime" | "ttl" => {
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
    let div_zero = |what: &str| invalid(format!("the operation '{what}' failed: / by zero"));
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
