//! Turning CQL terms (literals, bind markers, collection literals, function calls) into
//! serialized values of a known receiver type, with Cassandra's type checks and messages.

use std::str::FromStr;

use bigdecimal::BigDecimal;
use bytes::Bytes;
use num_bigint::BigInt;
use sibyl_cql::ast::{ArithOp, BindMarker, Literal, Term};
use sibyl_protocol::messages::BoundValue;
use sibyl_types::{literal, timeuuid, CqlType, Value};

use crate::error::{invalid, QueryError, QueryResult};

/// What a term evaluates against: the request's bound values and its clock.
pub struct EvalCtx<'a> {
    pub binds: &'a [BoundValue],
    pub now_micros: i64,
}

/// The result of evaluating a term.
#[derive(Debug, Clone, PartialEq)]
pub enum Evaluated {
    Null,
    Unset,
    Value(Bytes),
}

impl Evaluated {
    pub fn bytes(&self) -> Option<&Bytes> {
        match self {
            Evaluated::Value(b) => Some(b),
            _ => None,
        }
    }
}

fn literal_kind(l: &Literal) -> &'static str {
    match l {
        Literal::String(_) => "STRING",
        Literal::Integer(_) => "INTEGER",
        Literal::Float(_) => "FLOAT",
        Literal::Boolean(_) => "BOOLEAN",
        Literal::Uuid(_) => "UUID",
        Literal::Blob(_) => "HEX",
        Literal::Duration(_) => "DURATION",
        Literal::Null => "NULL",
    }
}

fn literal_text(l: &Literal) -> String {
    crate::ddl::literal_text(l)
}

fn mismatch<T>(l: &Literal, receiver: &str, ty: &CqlType) -> QueryResult<T> {
    invalid(format!(
        "Invalid {} constant ({}) for \"{}\" of type {}",
        literal_kind(l),
        literal_text(l),
        receiver,
        ty.cql_name()
    ))
}

/// Converts a literal to a value of `ty`.
pub fn literal_value(l: &Literal, ty: &CqlType, receiver: &str) -> QueryResult<Option<Value>> {
    use CqlType as T;
    let t = ty.unfrozen();
    let v = match (l, t) {
        (Literal::Null, _) => return Ok(None),
        (Literal::String(s), T::Text) => Value::Text(s.clone()),
        (Literal::String(s), T::Ascii) => {
            if !s.is_ascii() {
                return invalid(format!("Invalid ASCII character in string literal {s}"));
            }
            Value::Ascii(s.clone())
        }
        (
            Literal::String(s),
            T::Timestamp | T::Date | T::Time | T::Uuid | T::Timeuuid | T::Inet | T::Duration,
        ) => literal::parse_string_as(t, s).map_err(|e| QueryError::Invalid(e.to_string()))?,
        (
            Literal::String(s),
            T::Bigint
            | T::Int
            | T::Smallint
            | T::Tinyint
            | T::Varint
            | T::Decimal
            | T::Float
            | T::Double
            | T::Counter
            | T::Boolean,
        ) => {
            // Cassandra's numeric types accept a string holding a number.
            let inner = match s.parse::<f64>() {
                Ok(_) if s.contains(['.', 'e', 'E']) => Literal::Float(s.clone()),
                Ok(_) => Literal::Integer(s.clone()),
                Err(_) if matches!(t, T::Boolean) => {
                    Literal::Boolean(s.eq_ignore_ascii_case("true"))
                }
                Err(_) => return mismatch(l, receiver, ty),
            };
            return literal_value(&inner, ty, receiver);
        }
        (Literal::Integer(s), _) => integer_value(s, t)
            .ok_or(())
            .or_else(|_| mismatch(l, receiver, ty))?,
        (Literal::Float(s), T::Double) => Value::Double(
            parse_float(s)
                .ok_or(())
                .or_else(|_| mismatch(l, receiver, ty))?,
        ),
        (Literal::Float(s), T::Float) => Value::Float(
            parse_float(s)
                .ok_or(())
                .or_else(|_| mismatch(l, receiver, ty))? as f32,
        ),
        (Literal::Float(s), T::Decimal) => {
            Value::Decimal(BigDecimal::from_str(s).map_err(|_| {
                QueryError::Invalid(format!(
                    "Invalid FLOAT constant ({s}) for \"{receiver}\" of type decimal"
                ))
            })?)
        }
        (Literal::Boolean(b), T::Boolean) => Value::Boolean(*b),
        (Literal::Uuid(s), T::Uuid | T::Timeuuid) => {
            literal::parse_string_as(t, s).map_err(|e| QueryError::Invalid(e.to_string()))?
        }
        (Literal::Blob(b), T::Blob) => Value::Blob(b.clone()),
        (Literal::Blob(b), T::Custom(_)) => Value::Raw(b.clone()),
        (Literal::Duration(s), T::Duration) => Value::Duration(
            literal::parse_duration(s).map_err(|e| QueryError::Invalid(e.to_string()))?,
        ),
        _ => return mismatch(l, receiver, ty),
    };
    Ok(Some(v))
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        "NaN" | "nan" => Some(f64::NAN),
        "Infinity" | "infinity" => Some(f64::INFINITY),
        "-Infinity" | "-infinity" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

fn integer_value(s: &str, t: &CqlType) -> Option<Value> {
    use CqlType as T;
    Some(match t {
        T::Int => Value::Int(s.parse().ok()?),
        T::Bigint => Value::Bigint(s.parse().ok()?),
        T::Counter => Value::Counter(s.parse().ok()?),
        T::Smallint => Value::Smallint(s.parse().ok()?),
        T::Tinyint => Value::Tinyint(s.parse().ok()?),
        T::Varint => Value::Varint(BigInt::from_str(s).ok()?),
        T::Decimal => Value::Decimal(BigDecimal::from_str(s).ok()?),
        T::Double => Value::Double(s.parse().ok()?),
        T::Float => Value::Float(s.parse().ok()?),
        T::Timestamp => Value::Timestamp(s.parse().ok()?),
        T::Date => Value::Date(s.parse::<i64>().ok().and_then(|d| u32::try_from(d).ok())?),
        T::Time => Value::Time(s.parse().ok()?),
        _ => return None,
    })
}

/// Evaluates `term` for a receiver of type `ty` named `receiver` (for messages).
pub fn eval(term: &Term, ty: &CqlType, receiver: &str, ctx: &EvalCtx) -> QueryResult<Evaluated> {
    match term {
        Term::Bind(BindMarker::Positional(i)) => {
            let Some(v) = ctx.binds.get(*i) else {
                return invalid(format!(
                    "There were {} markers(?) in CQL but {} bound variables",
                    i + 1,
                    ctx.binds.len()
                ));
            };
            match v {
                BoundValue::Null => Ok(Evaluated::Null),
                BoundValue::Unset => Ok(Evaluated::Unset),
                BoundValue::Value(b) => {
                    Value::validate(ty, b).map_err(|e| {
                        QueryError::Invalid(format!(
                            "Exception while binding column {receiver}: {e}"
                        ))
                    })?;
                    if has_set_or_map(ty) && !b.is_empty() {
                        // Sets and maps are stored in key order whatever order the client sent.
                        let v = canonical(Value::deserialize(ty, b)?, ty);
                        let mut out = Vec::with_capacity(b.len());
                        v.serialize_as(ty, &mut out);
                        return Ok(Evaluated::Value(Bytes::from(out)));
                    }
                    Ok(Evaluated::Value(b.clone()))
                }
            }
        }
        Term::Bind(BindMarker::Named(n)) => invalid(format!("Unbound named marker {n}")),
        Term::Literal(Literal::Null) => Ok(Evaluated::Null),
        _ => match eval_value(term, ty, receiver, ctx)? {
            Some(v) => {
                let mut out = Vec::new();
                v.serialize_as(ty, &mut out);
                Ok(Evaluated::Value(Bytes::from(out)))
            }
            None => Ok(Evaluated::Null),
        },
    }
}

/// Evaluates a term to a value (None = null). Unset binds inside collections are errors.
pub fn eval_value(
    term: &Term,
    ty: &CqlType,
    receiver: &str,
    ctx: &EvalCtx,
) -> QueryResult<Option<Value>> {
    use CqlType as T;
    let t = ty.unfrozen();
    match term {
        Term::Literal(l) => literal_value(l, ty, receiver),
        Term::Bind(_) => match eval(term, ty, receiver, ctx)? {
            Evaluated::Value(b) => Ok(Some(Value::deserialize(ty, &b)?)),
            Evaluated::Null => Ok(None),
            Evaluated::Unset => invalid(format!("Invalid unset value for {receiver}")),
        },
        Term::List(items) => match t {
            T::List(e) => Ok(Some(Value::List(elements(items, e, receiver, ctx)?))),
            T::Set(e) => Ok(Some(set_value(elements(items, e, receiver, ctx)?, e))),
            T::Vector(e, n) => {
                if items.len() != *n as usize {
                    return invalid(format!("Invalid vector literal for {receiver} of type {}; expected {n} elements, but given {}", ty.cql_name(), items.len()));
                }
                Ok(Some(Value::Vector(elements(items, e, receiver, ctx)?)))
            }
            _ => invalid(format!(
                "Invalid list literal for {receiver} of type {}",
                ty.cql_name()
            )),
        },
        Term::Set(items) => match t {
            T::Set(e) => Ok(Some(set_value(elements(items, e, receiver, ctx)?, e))),
            T::Map(..) if items.is_empty() => Ok(Some(Value::Map(vec![]))),
            _ => invalid(format!(
                "Invalid set literal for {receiver} of type {}",
                ty.cql_name()
            )),
        },
        Term::Map(entries) => match t {
            T::Map(kt, vt) => {
                let mut out: Vec<(Value, Value)> = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    let kv = eval_value(k, kt, receiver, ctx)?.ok_or_else(|| {
                        QueryError::Invalid("null is not supported inside collections".into())
                    })?;
                    let vv = eval_value(v, vt, receiver, ctx)?.ok_or_else(|| {
                        QueryError::Invalid("null is not supported inside collections".into())
                    })?;
                    out.push((kv, vv));
                }
                // Maps are ordered by key and keep the last value for a repeated key.
                let mut keyed: Vec<(Vec<u8>, Value, Value)> =
                    out.into_iter().map(|(k, v)| (k.to_bytes(), k, v)).collect();
                keyed.sort_by(|a, b| Value::compare(kt, &a.0, &b.0));
                let mut dedup: Vec<(Vec<u8>, Value, Value)> = vec![];
                for e in keyed {
                    match dedup.last_mut() {
                        Some(last) if last.0 == e.0 => *last = e,
                        _ => dedup.push(e),
                    }
                }
                Ok(Some(Value::Map(
                    dedup.into_iter().map(|(_, k, v)| (k, v)).collect(),
                )))
            }
            T::Set(_) if entries.is_empty() => Ok(Some(Value::Set(vec![]))),
            T::List(_) if entries.is_empty() => Ok(Some(Value::List(vec![]))),
            T::Udt(_) if entries.is_empty() => Ok(Some(Value::Udt(vec![]))),
            _ => invalid(format!(
                "Invalid map literal for {receiver} of type {}",
                ty.cql_name()
            )),
        },
        Term::Tuple(items) => match t {
            T::Tuple(ts) => {
                if items.len() > ts.len() {
                    return invalid(format!("Invalid tuple literal for {receiver}: too many elements. Type {} expects {} but got {}", ty.cql_name(), ts.len(), items.len()));
                }
                let mut out = vec![];
                for (i, it) in items.iter().enumerate() {
                    out.push(eval_value(it, &ts[i], receiver, ctx)?);
                }
                Ok(Some(Value::Tuple(out)))
            }
            _ => invalid(format!(
                "Invalid tuple literal for {receiver} of type {}",
                ty.cql_name()
            )),
        },
        Term::Udt(fields) => match t {
            T::Udt(def) => {
                let mut out = vec![None; def.fields.len()];
                for (name, term) in fields {
                    let Some(i) = def.fields.iter().position(|(n, _)| n == name) else {
                        return invalid(format!(
                            "Unknown field '{name}' in value of user defined type {}",
                            def.name
                        ));
                    };
                    out[i] = eval_value(term, &def.fields[i].1, receiver, ctx)?;
                }
                Ok(Some(Value::Udt(out)))
            }
            T::Map(..) => eval_value(
                &Term::Map(
                    fields
                        .iter()
                        .map(|(k, v)| (Term::Literal(Literal::String(k.clone())), v.clone()))
                        .collect(),
                ),
                ty,
                receiver,
                ctx,
            ),
            _ => invalid(format!(
                "Invalid user type literal for {receiver} of type {}",
                ty.cql_name()
            )),
        },
        Term::Function { name, args } => {
            call_function(&name.name.to_ascii_lowercase(), args, ty, receiver, ctx)
        }
        Term::Cast { ty: _, term } => eval_value(term, ty, receiver, ctx),
        Term::Negate(inner) => {
            let v = eval_value(inner, ty, receiver, ctx)?;
            Ok(v.map(negate).transpose()?)
        }
        Term::Arithmetic { op, left, right }
            if matches!(op, ArithOp::Add | ArithOp::Sub)
                && matches!(ty.unfrozen(), CqlType::Timestamp | CqlType::Date)
                && is_duration_term(right) =>
        {
            // `timestamp ± duration`, `date ± duration` (Cassandra's OperationFcts).
            let a = eval_value(left, ty, receiver, ctx)?;
            let b = eval_value(right, &CqlType::Duration, receiver, ctx)?;
            match (a, b) {
                (Some(a), Some(Value::Duration(d))) => {
                    Ok(Some(add_duration(&a, &d, *op == ArithOp::Sub)?))
                }
                _ => Ok(None),
            }
        }
        Term::Arithmetic { op, left, right } => {
            let a = eval_value(left, ty, receiver, ctx)?;
            let b = eval_value(right, ty, receiver, ctx)?;
            match (a, b) {
                (Some(a), Some(b)) => Ok(Some(arith(*op, a, b)?)),
                _ => Ok(None),
            }
        }
    }
}

pub fn is_duration_term(t: &Term) -> bool {
    match t {
        Term::Literal(Literal::Duration(_)) => true,
        Term::Cast {
            ty: sibyl_cql::ast::CqlTypeAst::Native(n),
            ..
        } => n.eq_ignore_ascii_case("duration"),
        _ => false,
    }
}

/// Adds whole months to a day count the way java.util.Calendar does (clamping the day of month).
fn add_months(days: i64, months: i64) -> i64 {
    if months == 0 {
        return days;
    }
    let (y, m, d) = literal::civil_from_days(days);
    let total = y * 12 + (m as i64 - 1) + months;
    let (ny, nm) = (total.div_euclid(12), total.rem_euclid(12) as u32 + 1);
    let month_len = |y: i64, m: u32| {
        let next = if m == 12 {
            literal::days_from_civil(y + 1, 1, 1)
        } else {
            literal::days_from_civil(y, m + 1, 1)
        };
        (next - literal::days_from_civil(y, m, 1)) as u32
    };
    literal::days_from_civil(ny, nm, d.min(month_len(ny, nm)))
}

/// `timestamp ± duration` and `date ± duration` with Cassandra's precision rules and messages.
pub fn add_duration(v: &Value, d: &sibyl_types::Duration, subtract: bool) -> QueryResult<Value> {
    let sign: i64 = if subtract { -1 } else { 1 };
    let op = if subtract { '-' } else { '+' };
    match v {
        Value::Timestamp(ms) => {
            if d.nanos % 1_000_000 != 0 {
                return invalid(format!(
                    "the operation 'timestamp {op} duration' failed: The duration must have a millisecond precision. Was: {}",
                    literal::format_duration(d)
                ));
            }
            let day_ms = ms.div_euclid(86_400_000);
            let in_day = ms.rem_euclid(86_400_000);
            let days = add_months(day_ms, sign * d.months as i64);
            Ok(Value::Timestamp(
                days * 86_400_000
                    + in_day
                    + sign * (d.days as i64 * 86_400_000 + d.nanos / 1_000_000),
            ))
        }
        Value::Date(w) => {
            if d.nanos != 0 {
                return invalid(format!(
                    "the operation 'date {op} duration' failed: The duration must have a day precision. Was: {}",
                    literal::format_duration(d)
                ));
            }
            let days = add_months(literal::date_from_wire(*w), sign * d.months as i64)
                + sign * d.days as i64;
            Ok(Value::Date(literal::date_to_wire(days)))
        }
        _ => invalid("Duration arithmetic is only supported on timestamps and dates"),
    }
}

fn negate(v: Value) -> QueryResult<Value> {
    Ok(match v {
        Value::Int(x) => Value::Int(x.wrapping_neg()),
        Value::Bigint(x) => Value::Bigint(x.wrapping_neg()),
        Value::Smallint(x) => Value::Smallint(x.wrapping_neg()),
        Value::Tinyint(x) => Value::Tinyint(x.wrapping_neg()),
        Value::Double(x) => Value::Double(-x),
        Value::Float(x) => Value::Float(-x),
        Value::Varint(x) => Value::Varint(-x),
        Value::Decimal(x) => Value::Decimal(-x),
        _ => return invalid("Invalid operand for unary minus"),
    })
}

fn arith(op: ArithOp, a: Value, b: Value) -> QueryResult<Value> {
    let name = |v: &Value| match v {
        Value::Int(_) => "int",
        Value::Bigint(_) => "bigint",
        Value::Smallint(_) => "smallint",
        Value::Tinyint(_) => "tinyint",
        _ => "?",
    };
    let (left, right) = (name(&a), name(&b));
    let by_zero = |op: char| Err(crate::error::operation_failed(op, left, right, "/ by zero"));
    macro_rules! int_op {
        ($v:ident, $x:expr, $y:expr) => {{
            let (x, y) = ($x, $y);
            Value::$v(match op {
                ArithOp::Add => x.wrapping_add(y),
                ArithOp::Sub => x.wrapping_sub(y),
                ArithOp::Mul => x.wrapping_mul(y),
                ArithOp::Div => {
                    if y == 0 {
                        return by_zero('/');
                    }
                    x.wrapping_div(y)
                }
                ArithOp::Mod => {
                    if y == 0 {
                        return by_zero('%');
                    }
                    x.wrapping_rem(y)
                }
            })
        }};
    }
    Ok(match (a, b) {
        (Value::Int(x), Value::Int(y)) => int_op!(Int, x, y),
        (Value::Bigint(x), Value::Bigint(y)) => int_op!(Bigint, x, y),
        (Value::Smallint(x), Value::Smallint(y)) => int_op!(Smallint, x, y),
        (Value::Tinyint(x), Value::Tinyint(y)) => int_op!(Tinyint, x, y),
        (Value::Double(x), Value::Double(y)) => Value::Double(match op {
            ArithOp::Add => x + y,
            ArithOp::Sub => x - y,
            ArithOp::Mul => x * y,
            ArithOp::Div => x / y,
            ArithOp::Mod => x % y,
        }),
        (Value::Float(x), Value::Float(y)) => Value::Float(match op {
            ArithOp::Add => x + y,
            ArithOp::Sub => x - y,
            ArithOp::Mul => x * y,
            ArithOp::Div => x / y,
            ArithOp::Mod => x % y,
        }),
        _ => return invalid("Arithmetic is only supported on numbers of the same type"),
    })
}

fn set_value(mut items: Vec<Value>, elem: &CqlType) -> Value {
    let mut keyed: Vec<(Vec<u8>, Value)> = items.drain(..).map(|v| (v.to_bytes(), v)).collect();
    keyed.sort_by(|a, b| Value::compare(elem, &a.0, &b.0));
    keyed.dedup_by(|a, b| a.0 == b.0);
    Value::Set(keyed.into_iter().map(|(_, v)| v).collect())
}

fn elements(
    items: &[Term],
    elem: &CqlType,
    receiver: &str,
    ctx: &EvalCtx,
) -> QueryResult<Vec<Value>> {
    items
        .iter()
        .map(|it| {
            eval_value(it, elem, receiver, ctx)?.ok_or_else(|| {
                QueryError::Invalid("null is not supported inside collections".into())
            })
        })
        .collect()
}

/// The return type of a function used as a term, when it does not depend on the receiver.
pub fn function_return_type(name: &str) -> Option<CqlType> {
    Some(match name {
        "now" | "currenttimeuuid" | "mintimeuuid" | "maxtimeuuid" => CqlType::Timeuuid,
        "uuid" => CqlType::Uuid,
        "currenttimestamp" | "totimestamp" => CqlType::Timestamp,
        "currentdate" | "todate" => CqlType::Date,
        "currenttime" => CqlType::Time,
        "tounixtimestamp" => CqlType::Bigint,
        _ => {
            if let Some(t) = name.strip_prefix("blobas") {
                return CqlType::parse_native(t);
            }
            if name.ends_with("asblob") {
                return Some(CqlType::Blob);
            }
            return None;
        }
    })
}

fn arg_value(args: &[Term], i: usize, ty: &CqlType, ctx: &EvalCtx) -> QueryResult<Option<Value>> {
    match args.get(i) {
        Some(t) => eval_value(t, ty, "argument", ctx),
        None => invalid("Invalid number of arguments in call to function"),
    }
}

/// A time-like argument: a timeuuid, timestamp or date, whichever the term produces.
fn time_arg(args: &[Term], ctx: &EvalCtx) -> QueryResult<Option<Value>> {
    let Some(t) = args.first() else {
        return invalid("Invalid number of arguments in call to function");
    };
    let ty = match t {
        Term::Function { name, .. } => {
            function_return_type(&name.name.to_ascii_lowercase()).unwrap_or(CqlType::Timestamp)
        }
        Term::Cast {
            ty: sibyl_cql::ast::CqlTypeAst::Native(n),
            ..
        } => CqlType::parse_native(n).unwrap_or(CqlType::Timestamp),
        Term::Literal(Literal::Uuid(_)) => CqlType::Timeuuid,
        _ => CqlType::Timestamp,
    };
    eval_value(t, &ty, "argument", ctx)
}

fn to_millis(v: &Value) -> Option<i64> {
    match v {
        Value::Timestamp(ms) => Some(*ms),
        Value::Timeuuid(u) => Some(timeuuid::timeuuid_millis(u)),
        Value::Date(d) => Some(literal::date_from_wire(*d) * 86_400_000),
        _ => None,
    }
}

fn coerce(v: Value, ty: &CqlType, receiver: &str) -> QueryResult<Option<Value>> {
    let ok = match (ty.unfrozen(), &v) {
        (CqlType::Timestamp, Value::Timestamp(_))
        | (CqlType::Timeuuid, Value::Timeuuid(_))
        | (CqlType::Uuid, Value::Uuid(_) | Value::Timeuuid(_))
        | (CqlType::Date, Value::Date(_))
        | (CqlType::Time, Value::Time(_))
        | (CqlType::Bigint, Value::Bigint(_))
        | (CqlType::Blob, Value::Blob(_)) => true,
        (t, v) => t.unfrozen() == &value_type(v).unwrap_or(CqlType::Blob),
    };
    if !ok {
        return invalid(format!(
            "Type error: cannot assign result of function to {receiver} (type {})",
            ty.cql_name()
        ));
    }
    Ok(Some(match (ty.unfrozen(), v) {
        (CqlType::Uuid, Value::Timeuuid(u)) => Value::Uuid(u),
        (_, v) => v,
    }))
}

fn value_type(v: &Value) -> Option<CqlType> {
    Some(match v {
        Value::Ascii(_) => CqlType::Ascii,
        Value::Bigint(_) => CqlType::Bigint,
        Value::Blob(_) => CqlType::Blob,
        Value::Boolean(_) => CqlType::Boolean,
        Value::Int(_) => CqlType::Int,
        Value::Text(_) => CqlType::Text,
        Value::Double(_) => CqlType::Double,
        Value::Float(_) => CqlType::Float,
        Value::Smallint(_) => CqlType::Smallint,
        Value::Tinyint(_) => CqlType::Tinyint,
        Value::Varint(_) => CqlType::Varint,
        Value::Decimal(_) => CqlType::Decimal,
        Value::Inet(_) => CqlType::Inet,
        Value::Duration(_) => CqlType::Duration,
        _ => return None,
    })
}

fn call_function(
    name: &str,
    args: &[Term],
    ty: &CqlType,
    receiver: &str,
    ctx: &EvalCtx,
) -> QueryResult<Option<Value>> {
    let now_ms = ctx.now_micros.div_euclid(1000);
    let v = match name {
        "now" | "currenttimeuuid" => Value::Timeuuid(timeuuid::now_timeuuid()),
        "uuid" => Value::Uuid(uuid::Uuid::new_v4()),
        "currenttimestamp" => Value::Timestamp(now_ms),
        "currentdate" => Value::Date(literal::date_to_wire(now_ms.div_euclid(86_400_000))),
        "currenttime" => Value::Time(now_ms.rem_euclid(86_400_000) * 1_000_000),
        "totimestamp" => match time_arg(args, ctx)?.as_ref().and_then(to_millis) {
            Some(ms) => Value::Timestamp(ms),
            None => return Ok(None),
        },
        "todate" => match time_arg(args, ctx)?.as_ref().and_then(to_millis) {
            Some(ms) => Value::Date(literal::date_to_wire(ms.div_euclid(86_400_000))),
            None => return Ok(None),
        },
        "tounixtimestamp" => match time_arg(args, ctx)?.as_ref().and_then(to_millis) {
            Some(ms) => Value::Bigint(ms),
            None => return Ok(None),
        },
        "mintimeuuid" | "maxtimeuuid" => match time_arg(args, ctx)?.as_ref().and_then(to_millis) {
            Some(ms) => Value::Timeuuid(timeuuid::timeuuid_from_millis(ms, name == "mintimeuuid")),
            None => return Ok(None),
        },
        "fromjson" => {
            let text = match arg_value(args, 0, &CqlType::Text, ctx)? {
                Some(Value::Text(t)) => t,
                _ => return Ok(None),
            };
            let parsed: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                QueryError::Invalid(format!("Could not decode JSON string '{text}': {e}"))
            })?;
            return sibyl_types::json::from_json(ty, &parsed)
                .map_err(|e| QueryError::Invalid(e.to_string()));
        }
        _ if name.starts_with("blobas") => {
            let target = CqlType::parse_native(&name["blobas".len()..])
                .ok_or_else(|| QueryError::Invalid(format!("Unknown function '{name}'")))?;
            match arg_value(args, 0, &CqlType::Blob, ctx)? {
                Some(Value::Blob(b)) => Value::deserialize(&target, &b)?,
                _ => return Ok(None),
            }
        }
        _ if name.ends_with("asblob") => {
            let source = CqlType::parse_native(&name[..name.len() - "asblob".len()])
                .ok_or_else(|| QueryError::Invalid(format!("Unknown function '{name}'")))?;
            match arg_value(args, 0, &source, ctx)? {
                Some(v) => {
                    let mut out = vec![];
                    v.serialize_as(&source, &mut out);
                    Value::Blob(out)
                }
                None => return Ok(None),
            }
        }
        _ => return invalid(format!("Unknown function '{name}'")),
    };
    coerce(v, ty, receiver)
}

fn has_set_or_map(ty: &CqlType) -> bool {
    match ty {
        CqlType::Set(_) | CqlType::Map(..) => true,
        CqlType::List(e) | CqlType::Frozen(e) | CqlType::Vector(e, _) => has_set_or_map(e),
        CqlType::Tuple(ts) => ts.iter().any(has_set_or_map),
        CqlType::Udt(d) => d.fields.iter().any(|(_, t)| has_set_or_map(t)),
        _ => false,
    }
}

/// Sorts and deduplicates sets and maps (recursively) into Cassandra's stored order.
fn canonical(v: Value, ty: &CqlType) -> Value {
    match (ty.unfrozen(), v) {
        (CqlType::Set(e), Value::Set(items) | Value::List(items)) => {
            let items: Vec<Value> = items.into_iter().map(|x| canonical(x, e)).collect();
            set_value(items, e)
        }
        (CqlType::Map(kt, vt), Value::Map(entries)) => {
            let mut keyed: Vec<(Vec<u8>, Value, Value)> = entries
                .into_iter()
                .map(|(k, v)| (k.to_bytes(), canonical(k, kt), canonical(v, vt)))
                .collect();
            keyed.sort_by(|a, b| Value::compare(kt, &a.0, &b.0));
            keyed.dedup_by(|a, b| a.0 == b.0);
            Value::Map(keyed.into_iter().map(|(_, k, v)| (k, v)).collect())
        }
        (CqlType::List(e), Value::List(items)) => {
            Value::List(items.into_iter().map(|x| canonical(x, e)).collect())
        }
        (CqlType::Tuple(ts), Value::Tuple(items)) => Value::Tuple(
            items
                .into_iter()
                .zip(ts)
                .map(|(x, t)| x.map(|x| canonical(x, t)))
                .collect(),
        ),
        (CqlType::Udt(d), Value::Udt(items)) => Value::Udt(
            items
                .into_iter()
                .zip(&d.fields)
                .map(|(x, (_, t))| x.map(|x| canonical(x, t)))
                .collect(),
        ),
        (_, v) => v,
    }
}
