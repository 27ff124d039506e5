//! CQL literal text <-> values: what a quoted string literal means for each type, CQL literal
//! rendering (DESCRIBE, defaults) and Cassandra's `CAST(x AS text)` display form.

use std::net::IpAddr;

use bigdecimal::BigDecimal;
use uuid::Uuid;

use crate::value::MAX_TIME_NANOS;
use crate::{CqlType, Duration, TypeError, Value};

fn err<T>(msg: impl Into<String>) -> Result<T, TypeError> {
    Err(TypeError::Invalid(msg.into()))
}

// ---------------------------------------------------------------- dates

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a count of days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The wire form of a `date` (unsigned days with the epoch at 2^31). Out-of-range input wraps.
pub fn date_to_wire(days_since_epoch: i64) -> u32 {
    (days_since_epoch + (1i64 << 31)) as u32
}

/// Days since 1970-01-01 of a wire `date`.
pub fn date_from_wire(w: u32) -> i64 {
    w as i64 - (1i64 << 31)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn is_integer(s: &str) -> bool {
    let d = s.strip_prefix('-').unwrap_or(s);
    !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit())
}

/// A tiny cursor for hand-written date/time parsing.
struct P<'a> {
    s: &'a [u8],
    i: usize,
}

impl P<'_> {
    fn digits(&mut self, min: usize, max: usize) -> Option<i64> {
        let start = self.i;
        while self.i < self.s.len() && self.i - start < max && self.s[self.i].is_ascii_digit() {
            self.i += 1;
        }
        if self.i - start < min {
            return None;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()?
            .parse()
            .ok()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn done(&self) -> bool {
        self.i == self.s.len()
    }
}

fn parse_ymd(p: &mut P) -> Option<(i64, u32, u32)> {
    let neg = p.eat(b'-');
    if !neg {
        p.eat(b'+');
    }
    let y = p.digits(1, 9)?;
    let y = if neg { -y } else { y };
    if !p.eat(b'-') {
        return None;
    }
    let m = p.digits(1, 2)? as u32;
    if !p.eat(b'-') {
        return None;
    }
    let d = p.digits(1, 2)? as u32;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some((y, m, d))
}

/// Fractional digits after '.', as nanoseconds (1 to 9 digits).
fn parse_fraction(p: &mut P) -> Option<i64> {
    let start = p.i;
    let v = p.digits(1, 9)?;
    let n = p.i - start;
    Some(v * 10i64.pow((9 - n) as u32))
}

/// Parse a timestamp string as Cassandra does: integer millis, or
/// `yyyy-mm-dd[( |T)HH:MM[:SS[.fff]]][ ][Z|±hh|±hhmm|±hh:mm|UTC|GMT]` (no zone = UTC).
pub fn parse_timestamp(s: &str) -> Result<i64, TypeError> {
    let bad = || TypeError::invalid(format!("Unable to parse a date/time from '{s}'"));
    let t = s.trim();
    if is_integer(t) {
        return t
            .parse::<i64>()
            .map_err(|_| TypeError::invalid(format!("Unable to make long from '{s}'")));
    }
    let mut p = P {
        s: t.as_bytes(),
        i: 0,
    };
    let (y, m, d) = parse_ymd(&mut p).ok_or_else(bad)?;
    let (mut hh, mut mm, mut ss, mut nanos) = (0, 0, 0, 0);
    if matches!(p.peek(), Some(b'T') | Some(b' '))
        && p.s.get(p.i + 1).is_some_and(|c| c.is_ascii_digit())
    {
        p.i += 1;
        hh = p.digits(1, 2).ok_or_else(bad)?;
        if !p.eat(b':') {
            return Err(bad());
        }
        mm = p.digits(1, 2).ok_or_else(bad)?;
        if p.eat(b':') {
            ss = p.digits(1, 2).ok_or_else(bad)?;
            if p.eat(b'.') {
                nanos = parse_fraction(&mut p).ok_or_else(bad)?;
            }
        }
    }
    if hh > 23 || mm > 59 || ss > 59 {
        return Err(bad());
    }
    while p.eat(b' ') {}
    let offset_secs = parse_zone(&mut p).ok_or_else(bad)?;
    if !p.done() {
        return Err(bad());
    }
    let secs = days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss - offset_secs;
    secs.checked_mul(1000)
        .and_then(|v| v.checked_add(nanos / 1_000_000))
        .ok_or_else(bad)
}

fn parse_zone(p: &mut P) -> Option<i64> {
    if p.done() {
        return Some(0);
    }
    let rest = &p.s[p.i..];
    if rest == b"Z" || rest == b"z" {
        p.i += 1;
        return Some(0);
    }
    for name in [&b"UTC"[..], b"GMT"] {
        if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(name) {
            p.i += 3;
            if p.done() {
                return Some(0);
            }
        }
    }
    let sign = match p.peek()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    p.i += 1;
    let start = p.i;
    let h = p.digits(2, 2)?;
    let m = if p.done() {
        0
    } else {
        p.eat(b':');
        p.digits(2, 2)?
    };
    let _ = start;
    if h > 18 || m > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

/// Parse a `date` string: `yyyy-mm-dd` or an integer (the unsigned wire value).
pub fn parse_date(s: &str) -> Result<u32, TypeError> {
    let t = s.trim();
    if is_integer(t) {
        return match t.parse::<i64>() {
            Ok(v) if (0..=u32::MAX as i64).contains(&v) => Ok(v as u32),
            _ => err(format!("Input date {s} is out of bounds")),
        };
    }
    let mut p = P {
        s: t.as_bytes(),
        i: 0,
    };
    match parse_ymd(&mut p) {
        Some((y, m, d)) if p.done() => {
            let days = days_from_civil(y, m, d);
            if days < i32::MIN as i64 || days > i32::MAX as i64 {
                return err(format!("Input date {s} is out of bounds"));
            }
            Ok(date_to_wire(days))
        }
        _ => err(format!("Unable to coerce '{s}' to a formatted date (long)")),
    }
}

/// Parse a `time` string: `HH:MM:SS[.fffffffff]` or integer nanoseconds.
pub fn parse_time(s: &str) -> Result<i64, TypeError> {
    let t = s.trim();
    if is_integer(t) {
        return match t.parse::<i64>() {
            Ok(v) if (0..=MAX_TIME_NANOS).contains(&v) => Ok(v),
            _ => err(format!("Input long out of bounds: {s}")),
        };
    }
    let bad = || TypeError::invalid(format!("Unable to coerce '{s}' to a formatted time (long)"));
    let mut p = P {
        s: t.as_bytes(),
        i: 0,
    };
    let h = p.digits(1, 2).ok_or_else(bad)?;
    if !p.eat(b':') {
        return Err(bad());
    }
    let m = p.digits(1, 2).ok_or_else(bad)?;
    if !p.eat(b':') {
        return Err(bad());
    }
    let sec = p.digits(1, 2).ok_or_else(bad)?;
    let mut nanos = 0;
    if p.eat(b'.') {
        nanos = parse_fraction(&mut p).ok_or_else(bad)?;
    }
    if !p.done() {
        return Err(bad());
    }
    if h > 23 {
        return err("Hour out of bounds.");
    }
    if m > 59 {
        return err("Minute out of bounds.");
    }
    if sec > 59 {
        return err("Second out of bounds.");
    }
    Ok(((h * 60 + m) * 60 + sec) * 1_000_000_000 + nanos)
}

// ---------------------------------------------------------------- durations

const NANOS_PER_MICRO: i64 = 1_000;
const NANOS_PER_MILLI: i64 = 1_000_000;
const NANOS_PER_SECOND: i64 = 1_000_000_000;
const NANOS_PER_MINUTE: i64 = 60 * NANOS_PER_SECOND;
const NANOS_PER_HOUR: i64 = 60 * NANOS_PER_MINUTE;

#[derive(Default)]
struct DurBuilder {
    months: i64,
    days: i64,
    nanos: i64,
    overflow: bool,
}

impl DurBuilder {
    fn add(&mut self, n: i64, unit: &str) -> bool {
        let (field, mult) = match unit {
            "y" => (0, 12),
            "mo" => (0, 1),
            "w" => (1, 7),
            "d" => (1, 1),
            "h" => (2, NANOS_PER_HOUR),
            "m" => (2, NANOS_PER_MINUTE),
            "s" => (2, NANOS_PER_SECOND),
            "ms" => (2, NANOS_PER_MILLI),
            "us" | "µs" => (2, NANOS_PER_MICRO),
            "ns" => (2, 1),
            _ => return false,
        };
        let slot = match field {
            0 => &mut self.months,
            1 => &mut self.days,
            _ => &mut self.nanos,
        };
        match n.checked_mul(mult).and_then(|v| slot.checked_add(v)) {
            Some(v) => *slot = v,
            None => self.overflow = true,
        }
        true
    }
    fn build(self, s: &str, neg: bool) -> Result<Duration, TypeError> {
        if self.overflow {
            return err(format!(
                "Invalid duration. The number of nanoseconds must be less or equal to {}",
                i64::MAX
            ));
        }
        if self.months > i32::MAX as i64 {
            return err(format!(
                "Invalid duration. The total number of months must be less or equal to {}",
                i32::MAX
            ));
        }
        if self.days > i32::MAX as i64 {
            return err(format!(
                "Invalid duration. The total number of days must be less or equal to {}",
                i32::MAX
            ));
        }
        let _ = s;
        let sign = if neg { -1 } else { 1 };
        Ok(Duration {
            months: sign * self.months as i32,
            days: sign * self.days as i32,
            nanos: sign as i64 * self.nanos,
        })
    }
}

/// Parse a duration: `1h30m`, `-2d`, `P1Y2M3DT4H5M6S`, `P2W`, `P0001-02-03T04:05:06`.
pub fn parse_duration(s: &str) -> Result<Duration, TypeError> {
    let bad = || TypeError::invalid(format!("Unable to convert '{s}' to a duration"));
    let t = s.trim();
    let (neg, body) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t),
    };
    if body.is_empty() {
        return Err(bad());
    }
    let mut b = DurBuilder::default();
    let num = |x: &str| x.parse::<i64>().map_err(|_| bad());
    if let Some(iso) = body.strip_prefix('P').or_else(|| body.strip_prefix('p')) {
        // Alternative format: PYYYY-MM-DDThh:mm:ss
        if iso.len() == 19 && iso.as_bytes()[4] == b'-' {
            let (date, time) = iso.split_once('T').ok_or_else(bad)?;
            let dp: Vec<&str> = date.split('-').collect();
            let tp: Vec<&str> = time.split(':').collect();
            if dp.len() != 3 || tp.len() != 3 {
                return Err(bad());
            }
            b.add(num(dp[0])?, "y");
            b.add(num(dp[1])?, "mo");
            b.add(num(dp[2])?, "d");
            b.add(num(tp[0])?, "h");
            b.add(num(tp[1])?, "m");
            b.add(num(tp[2])?, "s");
            return b.build(s, neg);
        }
        let upper = iso.to_ascii_uppercase();
        if let Some(w) = upper.strip_suffix('W') {
            if !w.is_empty() && w.bytes().all(|c| c.is_ascii_digit()) {
                b.add(num(w)?, "w");
                return b.build(s, neg);
            }
            return Err(bad());
        }
        let (date, time) = match upper.split_once('T') {
            Some((d, t)) if !t.is_empty() => (d.to_string(), Some(t.to_string())),
            Some(_) => return Err(bad()),
            None => (upper.clone(), None),
        };
        if date.is_empty() && time.is_none() {
            return Err(bad());
        }
        let mut parse_part = |part: &str, units: &[(char, &str)]| -> Result<(), TypeError> {
            let mut n = String::new();
            let mut idx = 0;
            for c in part.chars() {
                if c.is_ascii_digit() {
                    n.push(c);
                } else {
                    let pos = units[idx..]
                        .iter()
                        .position(|(u, _)| *u == c)
                        .ok_or_else(bad)?;
                    if n.is_empty() {
                        return Err(bad());
                    }
                    b.add(num(&n)?, units[idx + pos].1);
                    idx += pos + 1;
                    n.clear();
                }
            }
            if !n.is_empty() {
                return Err(bad());
            }
            Ok(())
        };
        parse_part(&date, &[('Y', "y"), ('M', "mo"), ('D', "d")])?;
        if let Some(time) = time {
            parse_part(&time, &[('H', "h"), ('M', "m"), ('S', "s")])?;
        }
        return b.build(s, neg);
    }
    // Standard format: (digits unit)+
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        let n = num(&chars[start..i].iter().collect::<String>())?;
        let ustart = i;
        while i < chars.len() && !chars[i].is_ascii_digit() {
            i += 1;
        }
        let unit: String = chars[ustart..i].iter().collect::<String>().to_lowercase();
        if !b.add(n, &unit) {
            return Err(bad());
        }
    }
    b.build(s, neg)
}

// ---------------------------------------------------------------- string literals

/// Whether Cassandra accepts a quoted string constant for a value of this type.
pub fn string_literal_accepted(ty: &CqlType) -> bool {
    matches!(
        ty.unfrozen(),
        CqlType::Ascii
            | CqlType::Text
            | CqlType::Inet
            | CqlType::Date
            | CqlType::Time
            | CqlType::Timestamp
            | CqlType::Duration
    )
}

/// What a quoted string literal means for a value of type `ty`. UUID/timeuuid text is also
/// accepted (for UUID constants and casts); blobs and numbers are not (use their own literals).
pub fn parse_string_as(ty: &CqlType, s: &str) -> Result<Value, TypeError> {
    use CqlType as T;
    match ty.unfrozen() {
        T::Text => Ok(Value::Text(s.to_string())),
        T::Ascii => {
            if s.is_ascii() {
                Ok(Value::Ascii(s.to_string()))
            } else {
                err(format!("Invalid ASCII character in string literal: {s}"))
            }
        }
        T::Timestamp => parse_timestamp(s).map(Value::Timestamp),
        T::Date => parse_date(s).map(Value::Date),
        T::Time => parse_time(s).map(Value::Time),
        T::Inet => s
            .trim()
            .parse::<IpAddr>()
            .map(Value::Inet)
            .map_err(|_| TypeError::invalid(format!("Unable to make inet address from '{s}'"))),
        T::Uuid => parse_uuid(s).map(Value::Uuid),
        T::Timeuuid => {
            let u = parse_uuid(s)?;
            if u.get_version_num() != 1 {
                return err("TimeUUID supports only version 1 UUIDs");
            }
            Ok(Value::Timeuuid(u))
        }
        T::Duration => parse_duration(s).map(Value::Duration),
        other => err(format!(
            "Invalid STRING constant ({s}) for type {}",
            other.cql_name()
        )),
    }
}

fn parse_uuid(s: &str) -> Result<Uuid, TypeError> {
    let t = s.trim();
    if t.len() != 36 {
        return err(format!("Unable to make UUID from '{s}'"));
    }
    Uuid::parse_str(t).map_err(|_| TypeError::invalid(format!("Unable to make UUID from '{s}'")))
}

// ---------------------------------------------------------------- rendering

/// Java's `Double.toString` / `Float.toString`.
pub fn java_double_string(d: f64, is_float: bool) -> String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let e = if is_float {
        format!("{:e}", d as f32)
    } else {
        format!("{d:e}")
    };
    let (mant, exp) = e.split_once('e').unwrap();
    let exp: i32 = exp.parse().unwrap();
    let (neg, mant) = match mant.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mant),
    };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let abs = d.abs();
    if (1e-3..1e7).contains(&abs) {
        if exp >= 0 {
            let e = exp as usize;
            let mut int_part = digits.chars().take(e + 1).collect::<String>();
            while int_part.len() < e + 1 {
                int_part.push('0');
            }
            let frac: String = digits.chars().skip(e + 1).collect();
            out.push_str(&int_part);
            out.push('.');
            out.push_str(if frac.is_empty() { "0" } else { &frac });
        } else {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        out.push('.');
        out.push_str(if digits.len() > 1 { &digits[1..] } else { "0" });
        out.push('E');
        out.push_str(&exp.to_string());
    }
    out
}

/// Java's `BigDecimal.toString`.
pub fn java_decimal_string(d: &BigDecimal) -> String {
    let (unscaled, scale) = d.as_bigint_and_exponent();
    let s = unscaled.magnitude().to_string();
    let neg = unscaled.sign() == num_bigint::Sign::Minus;
    let adjusted = -scale + (s.len() as i64 - 1);
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if scale >= 0 && adjusted >= -6 {
        let scale = scale as usize;
        if scale == 0 {
            out.push_str(&s);
        } else if s.len() > scale {
            out.push_str(&s[..s.len() - scale]);
            out.push('.');
            out.push_str(&s[s.len() - scale..]);
        } else {
            out.push_str("0.");
            for _ in 0..(scale - s.len()) {
                out.push('0');
            }
            out.push_str(&s);
        }
    } else {
        out.push_str(&s[..1]);
        if s.len() > 1 {
            out.push('.');
            out.push_str(&s[1..]);
        }
        out.push('E');
        if adjusted >= 0 {
            out.push('+');
        }
        out.push_str(&adjusted.to_string());
    }
    out
}

fn fmt_date_days(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    if y < 0 {
        format!("-{:04}-{m:02}-{d:02}", -y)
    } else if y > 9999 {
        format!("+{y}-{m:02}-{d:02}")
    } else {
        format!("{y:04}-{m:02}-{d:02}")
    }
}

/// `yyyy-mm-dd HH:MM:SS.fff` of epoch millis (UTC), without zone.
fn fmt_timestamp_base(ms: i64) -> (String, i64) {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (h, m, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    (
        format!("{} {h:02}:{m:02}:{s:02}", fmt_date_days(days)),
        milli,
    )
}

/// `HH:MM:SS.nnnnnnnnn` of nanoseconds since midnight.
pub fn format_time(nanos: i64) -> String {
    let s = nanos / NANOS_PER_SECOND;
    format!(
        "{:02}:{:02}:{:02}.{:09}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        nanos % NANOS_PER_SECOND
    )
}

/// Cassandra's `Duration.toString`: `1y2mo3d4h5m6s7ms8us9ns`, negative with a leading '-'.
pub fn format_duration(d: &Duration) -> String {
    fn app(out: &mut String, v: i64, div: i64, unit: &str) -> i64 {
        if v == 0 || v < div {
            return v;
        }
        out.push_str(&(v / div).to_string());
        out.push_str(unit);
        v % div
    }
    let mut out = String::new();
    if d.months < 0 || d.days < 0 || d.nanos < 0 {
        out.push('-');
    }
    let rem = app(&mut out, (d.months as i64).abs(), 12, "y");
    app(&mut out, rem, 1, "mo");
    app(&mut out, (d.days as i64).abs(), 1, "d");
    if d.nanos != 0 {
        let mut r = d.nanos.unsigned_abs() as i64;
        r = app(&mut out, r, NANOS_PER_HOUR, "h");
        r = app(&mut out, r, NANOS_PER_MINUTE, "m");
        r = app(&mut out, r, NANOS_PER_SECOND, "s");
        r = app(&mut out, r, NANOS_PER_MILLI, "ms");
        r = app(&mut out, r, NANOS_PER_MICRO, "us");
        app(&mut out, r, 1, "ns");
    }
    out
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn hex_blob(b: &[u8]) -> String {
    let mut s = String::from("0x");
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

fn elem_types(ty: &CqlType) -> (Option<&CqlType>, Option<&CqlType>) {
    match ty.unfrozen() {
        CqlType::List(e) | CqlType::Set(e) | CqlType::Vector(e, _) => (Some(e), None),
        CqlType::Map(k, v) => (Some(k), Some(v)),
        _ => (None, None),
    }
}

/// A value as CQL text (e.g. `'it''s'`, `[1, 2]`, `{'a': 1}`, `'2011-02-03 04:05:00.000000+0000'`).
pub fn to_cql_literal(ty: &CqlType, v: &Value) -> String {
    let any = CqlType::Blob;
    match v {
        Value::Ascii(s) | Value::Text(s) => quote(s),
        Value::Timestamp(ms) => {
            let (base, milli) = fmt_timestamp_base(*ms);
            format!("'{base}.{:06}+0000'", milli * 1000)
        }
        Value::Date(_) | Value::Time(_) | Value::Inet(_) | Value::Duration(_) => {
            if matches!(v, Value::Duration(_)) {
                to_display_string(ty, v)
            } else {
                quote(&to_display_string(ty, v))
            }
        }
        Value::Raw(b) if b.is_empty() => match ty.unfrozen() {
            CqlType::Text | CqlType::Ascii => "''".into(),
            CqlType::Blob | CqlType::Custom(_) => "0x".into(),
            _ => "null".into(),
        },
        Value::List(xs) | Value::Vector(xs) => {
            let e = elem_types(ty).0.unwrap_or(&any);
            format!(
                "[{}]",
                xs.iter()
                    .map(|x| to_cql_literal(e, x))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        Value::Set(xs) => {
            let e = elem_types(ty).0.unwrap_or(&any);
            format!(
                "{{{}}}",
                xs.iter()
                    .map(|x| to_cql_literal(e, x))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        Value::Map(kvs) => {
            let (k, vt) = elem_types(ty);
            format!(
                "{{{}}}",
                kvs.iter()
                    .map(|(a, b)| format!(
                        "{}: {}",
                        to_cql_literal(k.unwrap_or(&any), a),
                        to_cql_literal(vt.unwrap_or(&any), b)
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        Value::Tuple(xs) => {
            let types: Vec<CqlType> = match ty.unfrozen() {
                CqlType::Tuple(ts) => ts.clone(),
                _ => vec![],
            };
            format!(
                "({})",
                xs.iter()
                    .enumerate()
                    .map(|(i, x)| match x {
                        None => "null".to_string(),
                        Some(x) => to_cql_literal(types.get(i).unwrap_or(&any), x),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        Value::Udt(xs) => {
            let fields: Vec<(String, CqlType)> = match ty.unfrozen() {
                CqlType::Udt(u) => u.fields.clone(),
                _ => vec![],
            };
            format!(
                "{{{}}}",
                xs.iter()
                    .enumerate()
                    .map(|(i, x)| {
                        let (name, t) = fields
                            .get(i)
                            .map(|(n, t)| (crate::cqltype::maybe_quote(n), t))
                            .unwrap_or((format!("field{i}"), &any));
                        let val = match x {
                            None => "null".to_string(),
                            Some(x) => to_cql_literal(t, x),
                        };
                        format!("{name}: {val}")
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        _ => to_display_string(ty, v),
    }
}

/// Cassandra's `CAST(x AS text)` form: unquoted text, timestamps as `yyyy-mm-dd HH:MM:SS.fffZ`.
pub fn to_display_string(ty: &CqlType, v: &Value) -> String {
    match v {
        Value::Ascii(s) | Value::Text(s) => s.clone(),
        Value::Bigint(x) | Value::Counter(x) => x.to_string(),
        Value::Int(x) => x.to_string(),
        Value::Smallint(x) => x.to_string(),
        Value::Tinyint(x) => x.to_string(),
        Value::Varint(x) => x.to_string(),
        Value::Decimal(d) => java_decimal_string(d),
        Value::Double(d) => java_double_string(*d, false),
        Value::Float(f) => java_double_string(*f as f64, true),
        Value::Boolean(b) => b.to_string(),
        Value::Blob(b) => hex_blob(b),
        Value::Raw(b) => match ty.unfrozen() {
            CqlType::Text | CqlType::Ascii if b.is_empty() => String::new(),
            _ if b.is_empty() => String::new(),
            _ => hex_blob(b),
        },
        Value::Uuid(u) | Value::Timeuuid(u) => u.hyphenated().to_string(),
        Value::Inet(a) => a.to_string(),
        Value::Timestamp(ms) => {
            let (base, milli) = fmt_timestamp_base(*ms);
            format!("{base}.{milli:03}Z")
        }
        Value::Date(w) => {
            let days = date_from_wire(*w);
            fmt_date_days(days)
        }
        Value::Time(n) => format_time(*n),
        Value::Duration(d) => format_duration(d),
        _ => to_cql_literal(ty, v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
        assert_eq!(civil_from_days(11017), (2000, 3, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        for z in [
            -1_000_000i64,
            -719_468,
            -1,
            0,
            1,
            59,
            60,
            365 * 400,
            2_932_896,
        ] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(date_to_wire(0), 1 << 31);
        assert_eq!(date_from_wire(date_to_wire(-5)), -5);
    }

    #[test]
    fn timestamps() {
        let base = 1_296_705_900_000; // 2011-02-03 04:05:00 UTC
        for s in [
            "2011-02-03 04:05",
            "2011-02-03 04:05:00",
            "2011-02-03T04:05:00",
            "2011-02-03 04:05:00.000",
            "2011-02-03 04:05:00Z",
            "2011-02-03 04:05:00+0000",
            "2011-02-03T05:05:00+01:00",
            "2011-02-03T05:05:00+0100",
            "2011-02-03 03:05:00-0100",
            "2011-02-03 04:05:00 UTC",
            "1296705900000",
        ] {
            assert_eq!(parse_timestamp(s), Ok(base), "{s}");
        }
        assert_eq!(parse_timestamp("2011-02-03"), Ok(1_296_691_200_000));
        assert_eq!(parse_timestamp("2011-02-03 04:05:00.123"), Ok(base + 123));
        assert_eq!(parse_timestamp("2011-02-03 04:05:00.1"), Ok(base + 100));
        assert!(parse_timestamp("2011-02-30").is_err());
        assert!(parse_timestamp("hello").is_err());
        assert!(parse_timestamp("2011-02-03 25:00").is_err());
        assert_eq!(
            to_display_string(&CqlType::Timestamp, &Value::Timestamp(base + 7)),
            "2011-02-03 04:05:00.007Z"
        );
        assert_eq!(
            to_cql_literal(&CqlType::Timestamp, &Value::Timestamp(base)),
            "'2011-02-03 04:05:00.000000+0000'"
        );
        assert_eq!(
            to_display_string(&CqlType::Timestamp, &Value::Timestamp(-1)),
            "1969-12-31 23:59:59.999Z"
        );
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(parse_date("1970-01-01"), Ok(1 << 31));
        assert_eq!(parse_date("2147483648"), Ok(1 << 31));
        assert_eq!(parse_date("1969-12-31"), Ok((1 << 31) - 1));
        assert!(parse_date("1970-13-01").is_err());
        assert!(parse_date("-1").is_err());
        assert_eq!(
            to_display_string(
                &CqlType::Date,
                &Value::Date(parse_date("2017-11-05").unwrap())
            ),
            "2017-11-05"
        );
        assert_eq!(parse_time("08:12:54"), Ok(29_574_000_000_000));
        assert_eq!(parse_time("08:12:54.123"), Ok(29_574_123_000_000));
        assert_eq!(parse_time("08:12:54.123456789"), Ok(29_574_123_456_789));
        assert!(parse_time("24:00:00").is_err());
        assert!(parse_time("86400000000000").is_err());
        assert_eq!(format_time(29_574_123_000_000), "08:12:54.123000000");
    }

    #[test]
    fn durations() {
        let d = |m, dd, n| Duration {
            months: m,
            days: dd,
            nanos: n,
        };
        assert_eq!(parse_duration("1h30m"), Ok(d(0, 0, 90 * NANOS_PER_MINUTE)));
        assert_eq!(parse_duration("1y2mo3w4d"), Ok(d(14, 25, 0)));
        assert_eq!(parse_duration("-2d10ms"), Ok(d(0, -2, -10_000_000)));
        assert_eq!(parse_duration("5us6µs7ns"), Ok(d(0, 0, 11_007)));
        assert_eq!(
            parse_duration("P1Y2M3DT4H5M6S"),
            Ok(d(
                14,
                3,
                4 * NANOS_PER_HOUR + 5 * NANOS_PER_MINUTE + 6 * NANOS_PER_SECOND
            ))
        );
        assert_eq!(parse_duration("P2W"), Ok(d(0, 14, 0)));
        assert_eq!(parse_duration("PT1M"), Ok(d(0, 0, NANOS_PER_MINUTE)));
        assert_eq!(
            parse_duration("P0001-02-03T04:05:06"),
            Ok(d(
                14,
                3,
                4 * NANOS_PER_HOUR + 5 * NANOS_PER_MINUTE + 6 * NANOS_PER_SECOND
            ))
        );
        assert!(parse_duration("1x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("P").is_err());
        assert_eq!(
            format_duration(&d(14, 3, 90 * NANOS_PER_MINUTE + 1)),
            "1y2mo3d1h30m1ns"
        );
        assert_eq!(format_duration(&d(0, -2, -10_000_000)), "-2d10ms");
    }

    #[test]
    fn string_literals() {
        assert!(parse_string_as(&CqlType::Blob, "abc").is_err());
        assert!(parse_string_as(&CqlType::Int, "1").is_err());
        assert!(parse_string_as(&CqlType::Ascii, "é").is_err());
        assert_eq!(
            parse_string_as(&CqlType::Inet, "127.0.0.1"),
            Ok(Value::Inet("127.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            parse_string_as(&CqlType::Timeuuid, "550e8400-e29b-41d4-a716-446655440000"),
            Err(TypeError::invalid("TimeUUID supports only version 1 UUIDs"))
        );
        assert!(
            parse_string_as(&CqlType::Timeuuid, "50554d6e-29bb-11e5-b345-feff819cdc9f").is_ok()
        );
        assert!(string_literal_accepted(&CqlType::Timestamp));
        assert!(!string_literal_accepted(&CqlType::Blob));
    }

    #[test]
    fn rendering() {
        assert_eq!(java_double_string(1.0, false), "1.0");
        assert_eq!(java_double_string(1e7, false), "1.0E7");
        assert_eq!(java_double_string(1234567.5, false), "1234567.5");
        assert_eq!(java_double_string(0.001, false), "0.001");
        assert_eq!(java_double_string(0.0001, false), "1.0E-4");
        assert_eq!(java_double_string(-2.5e-10, false), "-2.5E-10");
        assert_eq!(java_double_string(0.1f32 as f64, true), "0.1");
        assert_eq!(java_double_string(100.0, false), "100.0");
        let dec = |s: &str| s.parse::<BigDecimal>().unwrap();
        assert_eq!(java_decimal_string(&dec("1.50")), "1.50");
        assert_eq!(java_decimal_string(&dec("-0.0001")), "-0.0001");
        assert_eq!(java_decimal_string(&BigDecimal::new(1.into(), 10)), "1E-10");
        assert_eq!(
            java_decimal_string(&BigDecimal::new(12.into(), -3)),
            "1.2E+4"
        );
        let lt = CqlType::List(Box::new(CqlType::Int));
        assert_eq!(
            to_cql_literal(&lt, &Value::List(vec![Value::Int(1), Value::Int(2)])),
            "[1, 2]"
        );
        let mt = CqlType::Map(Box::new(CqlType::Text), Box::new(CqlType::Int));
        assert_eq!(
            to_cql_literal(
                &mt,
                &Value::Map(vec![(Value::Text("a'b".into()), Value::Int(1))])
            ),
            "{'a''b': 1}"
        );
        assert_eq!(
            to_cql_literal(&CqlType::Blob, &Value::Blob(vec![0xca, 0xfe])),
            "0xcafe"
        );
        assert_eq!(
            to_display_string(&CqlType::Text, &Value::Text("x'y".into())),
            "x'y"
        );
        let tt = CqlType::Tuple(vec![CqlType::Int, CqlType::Text]);
        assert_eq!(
            to_cql_literal(&tt, &Value::Tuple(vec![Some(Value::Int(1)), None])),
            "(1, null)"
        );
    }
}
