//! Date-time functions (`now`, `format_time`, `day_name`, `hour` …), the
//! configured time zone they work in, eKuiper's `YYYY-MM-dd HH:mm:ss` pattern
//! language, and the string → timestamp parser shared with `cast(…,
//! "datetime")` and `to_seconds`.
//!
//! Times are unix milliseconds. The zone is process-wide like eKuiper's
//! `basic.timezone`: the system zone by default, or a fixed offset set with
//! [`set_timezone`].

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{
    DateTime, Datelike, FixedOffset, Local, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone,
    Timelike, Utc,
};
use oort_core::{now_ms, Value};

use crate::util::{any_null, arg, go_desc, int_strict, text, vstring, FnResult};
use crate::{FnError, ScalarFunc};

macro_rules! f {
    ($name:literal, $min:expr, $max:expr, $call:expr) => {
        ScalarFunc {
            name: $name,
            min_args: $min,
            max_args: $max,
            call: $call,
        }
    };
}

pub(crate) static FUNCS: &[ScalarFunc] = &[
    f!("now", 0, Some(1), now),
    f!("current_timestamp", 0, Some(1), now),
    f!("local_time", 0, Some(1), now),
    f!("local_timestamp", 0, Some(1), now),
    f!("cur_date", 0, Some(0), cur_date),
    f!("current_date", 0, Some(0), cur_date),
    f!("cur_time", 0, Some(1), cur_time),
    f!("current_time", 0, Some(1), cur_time),
    f!("format_time", 2, Some(2), format_time),
    f!("date_calc", 2, Some(2), date_calc),
    f!("day_name", 1, Some(1), day_name),
    f!("day_of_month", 1, Some(1), day_of_month),
    f!("day", 1, Some(1), day_of_month),
    f!("day_of_week", 1, Some(1), day_of_week),
    f!("day_of_year", 1, Some(1), day_of_year),
    f!("from_unix_time", 1, Some(1), from_unix_time),
    f!("hour", 1, Some(1), hour),
    f!("last_day", 1, Some(1), last_day),
    f!("microsecond", 1, Some(1), microsecond),
    f!("minute", 1, Some(1), minute),
    f!("month", 1, Some(1), month),
    f!("month_name", 1, Some(1), month_name),
    f!("second", 1, Some(1), second),
];

/// Marker for "use the system zone".
const LOCAL: i64 = i64::MIN;
/// IANA zones are stored as this plus their index in `chrono_tz::TZ_VARIANTS`
/// (fixed offsets are seconds, within a day).
const IANA_BASE: i64 = 1 << 32;
static TZ_OFFSET_SECS: AtomicI64 = AtomicI64::new(LOCAL);

/// A zone name read as eKuiper's `basic.timezone` and `convert_tz` do:
/// `"Local"` (or empty), `"UTC"`, a fixed offset (`"+08:00"`, `"-0530"`,
/// `"UTC+8"`), or an IANA name (`"Europe/Berlin"`, daylight saving
/// included, through `chrono-tz`).
pub(crate) fn zone_code(name: &str) -> Option<i64> {
    let n = name.trim();
    if n.is_empty() || n.eq_ignore_ascii_case("local") {
        return Some(LOCAL);
    }
    if ["UTC", "GMT", "Z"]
        .iter()
        .any(|z| z.eq_ignore_ascii_case(n))
    {
        return Some(0);
    }
    if let Ok(tz) = n.parse::<chrono_tz::Tz>() {
        let i = chrono_tz::TZ_VARIANTS.iter().position(|t| *t == tz)?;
        return Some(IANA_BASE + i as i64);
    }
    let body = n
        .strip_prefix("UTC")
        .or_else(|| n.strip_prefix("GMT"))
        .unwrap_or(n);
    parse_offset(body).map(i64::from)
}

/// The offset of zone `code` at instant `ms`.
pub(crate) fn zone_offset_at(code: i64, ms: i64) -> FixedOffset {
    let t = utc(ms).unwrap_or_default();
    match code {
        LOCAL => Local.offset_from_utc_datetime(&t.naive_utc()).fix(),
        c if c >= IANA_BASE => match chrono_tz::TZ_VARIANTS.get((c - IANA_BASE) as usize) {
            Some(tz) => tz.offset_from_utc_datetime(&t.naive_utc()).fix(),
            None => Utc.fix(),
        },
        s => FixedOffset::east_opt(s as i32).unwrap_or_else(|| Utc.fix()),
    }
}

/// Sets the zone used to read and print local date-times, like eKuiper's
/// `basic.timezone` (see [`zone_code`] for the names).
pub fn set_timezone(name: &str) -> Result<(), FnError> {
    let code = zone_code(name)
        .ok_or_else(|| FnError::validate("timezone", format!("unknown time zone {name}")))?;
    TZ_OFFSET_SECS.store(code, Ordering::Relaxed);
    Ok(())
}

/// The configured zone: `"Local"`, an IANA name or a `+hh:mm` offset.
pub fn timezone_name() -> String {
    match TZ_OFFSET_SECS.load(Ordering::Relaxed) {
        LOCAL => "Local".to_string(),
        c if c >= IANA_BASE => chrono_tz::TZ_VARIANTS
            .get((c - IANA_BASE) as usize)
            .map(|t| t.name().to_string())
            .unwrap_or_else(|| "UTC".into()),
        s => offset_text(s as i32, true),
    }
}

/// `+8`, `+08`, `+0800`, `+08:00`, `-5:30` → seconds east of UTC.
fn parse_offset(s: &str) -> Option<i32> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = if let Some((h, m)) = rest.split_once(':') {
        (h, m)
    } else if rest.len() == 4 {
        rest.split_at(2)
    } else {
        (rest, "0")
    };
    let h: i32 = h.parse().ok()?;
    let m: i32 = m.parse().ok()?;
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

fn offset_text(secs: i32, colon: bool) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.unsigned_abs();
    if colon {
        format!("{sign}{:02}:{:02}", a / 3600, a / 60 % 60)
    } else {
        format!("{sign}{:02}{:02}", a / 3600, a / 60 % 60)
    }
}

fn utc(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

/// The configured zone's offset at instant `ms`.
fn offset_at(ms: i64) -> FixedOffset {
    zone_offset_at(TZ_OFFSET_SECS.load(Ordering::Relaxed), ms)
}

/// Instant `ms` seen in the configured zone.
pub(crate) fn local(ms: i64) -> Option<DateTime<FixedOffset>> {
    utc(ms).map(|t| t.with_timezone(&offset_at(ms)))
}

/// Reads a wall-clock time of the configured zone as unix ms (the earlier
/// instant of a time that daylight saving repeats; none for one it skips).
fn local_to_ms(naive: NaiveDateTime) -> Option<i64> {
    match TZ_OFFSET_SECS.load(Ordering::Relaxed) {
        LOCAL => Local
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| t.timestamp_millis()),
        c if c >= IANA_BASE => chrono_tz::TZ_VARIANTS
            .get((c - IANA_BASE) as usize)?
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| t.timestamp_millis()),
        s => FixedOffset::east_opt(s as i32)?
            .from_local_datetime(&naive)
            .single()
            .map(|t| t.timestamp_millis()),
    }
}

/// RFC 3339 with milliseconds in the configured zone (how a `Datetime`
/// prints as text).
pub(crate) fn rfc3339_millis(ms: i64) -> String {
    match local(ms) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string(),
        None => ms.to_string(),
    }
}

const OFFSET_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S%.f %z",
    "%Y-%m-%d %H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M:%S%.f %:z",
    "%Y-%m-%dT%H:%M:%S%.f%z",
];
const NAIVE_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y/%m/%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y/%m/%d %H:%M",
];
const DATE_FORMATS: &[&str] = &["%Y-%m-%d", "%Y/%m/%d", "%Y%m%d"];
const TIME_FORMATS: &[&str] = &["%H:%M:%S%.f", "%H:%M"];

/// Parses a date-time string the way eKuiper's `cast.ParseTime` (jinzhu/now)
/// does for the common layouts: RFC 3339, `YYYY-MM-DD[ HH:mm[:ss[.fff]]]`
/// with an optional offset, `YYYY-MM`, `YYYY`, and a bare `HH:mm[:ss]` (today).
/// Strings without an offset are read in the configured zone.
pub(crate) fn parse_time_str(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    for f in OFFSET_FORMATS {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.timestamp_millis());
        }
    }
    for f in NAIVE_FORMATS {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return local_to_ms(t);
        }
    }
    for f in DATE_FORMATS {
        if let Ok(d) = NaiveDate::parse_from_str(s, f) {
            return local_to_ms(d.and_time(NaiveTime::MIN));
        }
    }
    if let Some((y, m)) = s.split_once('-') {
        if let (Ok(y), Ok(m)) = (y.parse::<i32>(), m.parse::<u32>()) {
            if y >= 1000 {
                return local_to_ms(NaiveDate::from_ymd_opt(y, m, 1)?.and_time(NaiveTime::MIN));
            }
        }
    }
    if s.len() == 4 {
        if let Ok(y) = s.parse::<i32>() {
            return local_to_ms(NaiveDate::from_ymd_opt(y, 1, 1)?.and_time(NaiveTime::MIN));
        }
    }
    for f in TIME_FORMATS {
        if let Ok(t) = NaiveTime::parse_from_str(s, f) {
            let today = local(now_ms())?.date_naive();
            return local_to_ms(today.and_time(t));
        }
    }
    None
}

/// A time argument as unix ms: `Datetime`, ms numbers, or a date-time string.
pub(crate) fn time_arg(name: &'static str, v: &Value) -> Result<i64, FnError> {
    match v {
        Value::Datetime(t) | Value::Int(t) => Ok(*t),
        Value::Float(f) if f.is_finite() => Ok(*f as i64),
        Value::Str(s) => parse_time_str(s)
            .ok_or_else(|| FnError::call(name, format!("Can't parse string as time: {s}"))),
        other => Err(FnError::call(
            name,
            format!(
                "unsupported type to convert to timestamp {}",
                crate::util::go_v(other)
            ),
        )),
    }
}

fn local_arg(name: &'static str, v: &Value) -> Result<DateTime<FixedOffset>, FnError> {
    let ms = time_arg(name, v)?;
    local(ms).ok_or_else(|| FnError::call(name, format!("time {ms} is out of range")))
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Formats `t` with eKuiper's pattern letters: `YYYY`/`yyyy`, `YY`, `M`…`MMMM`,
/// `d`/`dd`, `EEE`/`EEEE`, `HH`, `h`/`hh`, `a`, `m`/`mm`, `s`/`ss`, `S…`
/// (a dot plus that many fraction digits), `z`, `Z`, `X`/`XX`/`XXX`, `G`;
/// `'text'` is literal, `''` a quote, `\x` escapes one character.
pub(crate) fn format_pattern(t: &DateTime<FixedOffset>, pattern: &str) -> Result<String, String> {
    let p: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let run = |i: usize, c: char, max: usize| {
        let mut j = 1;
        while i + j < p.len() && j <= max && p[i + j] == c {
            j += 1;
        }
        j
    };
    let off = t.offset().local_minus_utc();
    let mut i = 0;
    while i < p.len() {
        let c = p[i];
        let mut width = 1;
        match c {
            '\\' => {
                i += 1;
                match p.get(i) {
                    Some(x) => out.push(*x),
                    None => return Err(format!("{pattern} is invalid")),
                }
            }
            'Y' | 'y' => {
                width = run(i, c, 4);
                match width {
                    4 => {
                        let _ = write!(out, "{:04}", t.year());
                    }
                    2 => {
                        let _ = write!(out, "{:02}", t.year().rem_euclid(100));
                    }
                    _ => return Err(format!("invalid time format {pattern} for Y/y")),
                }
            }
            'G' => out.push_str("AD"),
            'M' => {
                width = run(i, c, 4);
                let m = t.month();
                match width {
                    1 => {
                        let _ = write!(out, "{m}");
                    }
                    2 => {
                        let _ = write!(out, "{m:02}");
                    }
                    3 => out.push_str(&MONTHS[m as usize - 1][..3]),
                    4 => out.push_str(MONTHS[m as usize - 1]),
                    _ => {}
                }
            }
            'd' => {
                width = run(i, c, 2);
                match width {
                    1 => {
                        let _ = write!(out, "{}", t.day());
                    }
                    2 => {
                        let _ = write!(out, "{:02}", t.day());
                    }
                    _ => {}
                }
            }
            'E' => {
                width = run(i, c, 4);
                let d = DAYS[t.weekday().num_days_from_sunday() as usize];
                match width {
                    3 => out.push_str(&d[..3]),
                    4 => out.push_str(d),
                    _ => return Err(format!("invalid time format {pattern} for E")),
                }
            }
            'H' => {
                width = run(i, c, 2);
                if width != 2 {
                    return Err(format!(
                        "invalid time format {pattern} of H, only HH is supported"
                    ));
                }
                let _ = write!(out, "{:02}", t.hour());
            }
            'h' => {
                width = run(i, c, 2);
                let h = match t.hour() % 12 {
                    0 => 12,
                    h => h,
                };
                match width {
                    1 => {
                        let _ = write!(out, "{h}");
                    }
                    2 => {
                        let _ = write!(out, "{h:02}");
                    }
                    _ => {}
                }
            }
            'a' => out.push_str(if t.hour() < 12 { "AM" } else { "PM" }),
            'm' | 's' => {
                width = run(i, c, 2);
                let v = if c == 'm' { t.minute() } else { t.second() };
                match width {
                    1 => {
                        let _ = write!(out, "{v}");
                    }
                    2 => {
                        let _ = write!(out, "{v:02}");
                    }
                    _ => {}
                }
            }
            'S' => {
                width = run(i, c, usize::MAX - 1);
                let digits = format!("{:09}", t.nanosecond().min(999_999_999));
                out.push('.');
                out.push_str(&digits[..width.min(9)]);
                for _ in 9..width {
                    out.push('0');
                }
            }
            'z' => {
                if off == 0 {
                    out.push_str("UTC");
                } else {
                    let a = off.unsigned_abs();
                    let sign = if off < 0 { '-' } else { '+' };
                    let _ = write!(out, "{sign}{:02}", a / 3600);
                    if !a.is_multiple_of(3600) {
                        let _ = write!(out, "{:02}", a / 60 % 60);
                    }
                }
            }
            'Z' => out.push_str(&offset_text(off, false)),
            'X' => {
                width = run(i, c, 3);
                match width {
                    1 => out.push_str(&offset_text(off, false)[..3]),
                    2 => out.push_str(&offset_text(off, false)),
                    _ => out.push_str(&offset_text(off, true)),
                }
            }
            '\'' => {
                if p.get(i + 1) == Some(&'\'') {
                    out.push('\'');
                    width = 2;
                } else {
                    let mut j = i + 1;
                    while j < p.len() && p[j] != '\'' {
                        out.push(p[j]);
                        j += 1;
                    }
                    width = j + 1 - i;
                }
            }
            other => out.push(other),
        }
        i += width;
    }
    Ok(out)
}

/// Unix ms `ms` in the configured time zone, with eKuiper's pattern.
pub(crate) fn format_ms(ms: i64, pattern: &str) -> Result<String, String> {
    let t = local(ms).ok_or_else(|| format!("time {ms} is out of range"))?;
    format_pattern(&t, pattern)
}

fn fmt_local(name: &'static str, ms: i64, pattern: &str) -> FnResult {
    let t = local(ms).ok_or_else(|| FnError::call(name, format!("time {ms} is out of range")))?;
    format_pattern(&t, pattern)
        .map(vstring)
        .map_err(|e| FnError::call(name, e))
}

fn fsp_arg(name: &'static str, args: &[Value]) -> Result<usize, FnError> {
    match args.first() {
        None | Some(Value::Null) => Ok(0),
        Some(v) => Ok(int_strict(name, v)?.clamp(0, 6) as usize),
    }
}

const FRACTIONS: [&str; 7] = ["", ".S", ".SS", ".SSS", ".SSSS", ".SSSSS", ".SSSSSS"];

/// `now([fsp])`: the current local time as `YYYY-MM-DD HH:mm:ss[.f…]`.
fn now(args: &[Value]) -> FnResult {
    let fsp = fsp_arg("now", args)?;
    // `S` already prints its dot.
    let pattern = format!(
        "yyyy-MM-dd HH:mm:ss{}",
        &FRACTIONS[fsp][usize::from(fsp > 0)..]
    );
    fmt_local("now", now_ms(), &pattern)
}

fn cur_date(_: &[Value]) -> FnResult {
    fmt_local("cur_date", now_ms(), "yyyy-MM-dd")
}

fn cur_time(args: &[Value]) -> FnResult {
    let fsp = fsp_arg("cur_time", args)?;
    let pattern = format!("HH:mm:ss{}", &FRACTIONS[fsp][usize::from(fsp > 0)..]);
    fmt_local("cur_time", now_ms(), &pattern)
}

fn format_time(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let ms = time_arg("format_time", arg(args, 0))?;
    fmt_local("format_time", ms, &text(arg(args, 1)))
}

/// Go's `time.ParseDuration` (units ns, us, µs, ms, s, m, h), in nanoseconds.
fn parse_go_duration(s: &str) -> Option<i128> {
    let (neg, mut rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let num: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += num * unit;
    }
    let ns = total.round() as i128;
    Some(if neg { -ns } else { ns })
}

/// `date_calc(t, "1h30m")` / `date_calc(t, "-1h")`: shifts a time and prints
/// it as `YYYY-MM-DD HH:mm:ss`.
fn date_calc(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let ms = time_arg("date_calc", arg(args, 0))?;
    let d = text(arg(args, 1));
    let ns = parse_go_duration(&d)
        .ok_or_else(|| FnError::call("date_calc", format!("time: invalid duration \"{d}\"")))?;
    let shifted = i64::try_from(i128::from(ms) + ns / 1_000_000)
        .map_err(|_| FnError::call("date_calc", "time out of range"))?;
    fmt_local("date_calc", shifted, "yyyy-MM-dd HH:mm:ss")
}

fn with_local(
    name: &'static str,
    args: &[Value],
    op: fn(&DateTime<FixedOffset>) -> Value,
) -> FnResult {
    let a = arg(args, 0);
    if a.is_null() {
        return Ok(Value::Null);
    }
    Ok(op(&local_arg(name, a)?))
}

fn day_name(args: &[Value]) -> FnResult {
    with_local("day_name", args, |t| {
        Value::str(DAYS[t.weekday().num_days_from_sunday() as usize])
    })
}
fn day_of_month(args: &[Value]) -> FnResult {
    with_local("day_of_month", args, |t| Value::Int(i64::from(t.day())))
}
/// Sunday = 0 … Saturday = 6 (Go's `time.Weekday`).
fn day_of_week(args: &[Value]) -> FnResult {
    with_local("day_of_week", args, |t| {
        Value::Int(i64::from(t.weekday().num_days_from_sunday()))
    })
}
fn day_of_year(args: &[Value]) -> FnResult {
    with_local("day_of_year", args, |t| Value::Int(i64::from(t.ordinal())))
}
fn hour(args: &[Value]) -> FnResult {
    with_local("hour", args, |t| Value::Int(i64::from(t.hour())))
}
fn minute(args: &[Value]) -> FnResult {
    with_local("minute", args, |t| Value::Int(i64::from(t.minute())))
}
fn second(args: &[Value]) -> FnResult {
    with_local("second", args, |t| Value::Int(i64::from(t.second())))
}
fn microsecond(args: &[Value]) -> FnResult {
    with_local("microsecond", args, |t| {
        Value::Int(i64::from(t.nanosecond().min(999_999_999) / 1000))
    })
}
fn month(args: &[Value]) -> FnResult {
    with_local("month", args, |t| Value::Int(i64::from(t.month())))
}
fn month_name(args: &[Value]) -> FnResult {
    with_local("month_name", args, |t| {
        Value::str(MONTHS[t.month0() as usize])
    })
}

fn last_day(args: &[Value]) -> FnResult {
    let a = arg(args, 0);
    if a.is_null() {
        return Ok(Value::Null);
    }
    let t = local_arg("last_day", a)?;
    let (y, m) = if t.month() == 12 {
        (t.year() + 1, 1)
    } else {
        (t.year(), t.month() + 1)
    };
    let last = NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.pred_opt())
        .ok_or_else(|| FnError::call("last_day", "date out of range"))?;
    Ok(vstring(last.format("%Y-%m-%d").to_string()))
}

/// `from_unix_time(seconds)`: `YYYY-MM-DD HH:mm:ss` in the configured zone
/// (0 gives nil, as in eKuiper).
fn from_unix_time(args: &[Value]) -> FnResult {
    let a = arg(args, 0);
    if a.is_null() {
        return Ok(Value::Null);
    }
    let secs = int_strict("from_unix_time", a)?;
    if secs == 0 {
        return Ok(Value::Null);
    }
    let ms = secs.checked_mul(1000).ok_or_else(|| {
        FnError::call("from_unix_time", format!("{} is out of range", go_desc(a)))
    })?;
    fmt_local("from_unix_time", ms, "yyyy-MM-dd HH:mm:ss")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::scalar;
    use std::sync::{Mutex, MutexGuard};

    /// Serialises tests that depend on the process-wide zone.
    pub(crate) static TZ_LOCK: Mutex<()> = Mutex::new(());

    pub(crate) fn tz(name: &str) -> MutexGuard<'static, ()> {
        let g = TZ_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        set_timezone(name).unwrap();
        g
    }

    fn call(name: &str, args: &[Value]) -> Result<Value, String> {
        let f = scalar(name).unwrap_or_else(|| panic!("no function {name}"));
        (f.call)(args).map_err(|e| e.to_string())
    }
    fn i(v: i64) -> Value {
        Value::Int(v)
    }
    fn s(v: &str) -> Value {
        Value::str(v)
    }
    const N: Value = Value::Null;

    // 2020-01-16T02:14:24.913Z, a Thursday.
    const T: i64 = 1_579_140_864_913;

    #[test]
    fn patterns() {
        let _g = tz("UTC");
        let t = local(T).unwrap();
        let cases = [
            ("YYYY-MM-dd HH:mm:ssSSS", "2020-01-16 02:14:24.913"),
            ("YYYY-MM-dd T HH:mm:ss", "2020-01-16 T 02:14:24"),
            ("yy/M/d h:m:s a", "20/1/16 2:14:24 AM"),
            ("EEE EEEE MMM MMMM G", "Thu Thursday Jan January AD"),
            ("HH:mm:ss.S|SSSSSS", "02:14:24..9|.913000"),
            // Like eKuiper, `''` inside a quoted run closes and reopens it.
            ("'at' hh 'o''clock' \\Y ''", "at 02 oclock Y '"),
            ("Z X XX XXX z", "+0000 +00 +0000 +00:00 UTC"),
        ];
        for (p, want) in cases {
            assert_eq!(format_pattern(&t, p).as_deref(), Ok(want), "{p}");
        }
        assert!(format_pattern(&t, "YYY").is_err());
        assert!(format_pattern(&t, "H").is_err());
        assert!(format_pattern(&t, "E").is_err());
        let t8 = utc(T)
            .unwrap()
            .with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap());
        assert_eq!(
            format_pattern(&t8, "yyyy-MM-dd HH:mm Z XXX z").as_deref(),
            Ok("2020-01-16 10:14 +0800 +08:00 +08")
        );
    }

    #[test]
    fn parsing() {
        let _g = tz("Asia/Shanghai");
        let cases = [
            ("2022-04-13 06:22:32.233", 1_649_802_152_233),
            ("2022-04-13T06:22:32.233", 1_649_802_152_233),
            ("2022-04-13 06:22:32", 1_649_802_152_000),
            ("2022-04-12T22:22:32.233Z", 1_649_802_152_233),
            ("2022-04-13T06:22:32+08:00", 1_649_802_152_000),
            ("2022-04-13 06:22:32 +0800", 1_649_802_152_000),
            ("2022-04-13", 1_649_779_200_000),
            ("2022-04", 1_648_742_400_000),
            ("2022", 1_640_966_400_000),
        ];
        for (s, want) in cases {
            assert_eq!(parse_time_str(s), Some(want), "{s}");
        }
        assert_eq!(parse_time_str("not a time"), None);
        assert!(parse_time_str("12:30").is_some());
    }

    #[test]
    fn timezone_setting() {
        let _g = tz("UTC+8");
        assert_eq!(timezone_name(), "+08:00");
        set_timezone("-05:30").unwrap();
        assert_eq!(timezone_name(), "-05:30");
        set_timezone("Local").unwrap();
        assert_eq!(timezone_name(), "Local");
        assert!(set_timezone("Mars/Olympus").is_err());
        set_timezone("America/New_York").unwrap();
        assert_eq!(timezone_name(), "America/New_York");
        // Daylight saving: EST in January, EDT in July.
        assert_eq!(offset_at(1_642_000_000_000).local_minus_utc(), -5 * 3600);
        assert_eq!(offset_at(1_657_000_000_000).local_minus_utc(), -4 * 3600);
        assert!(set_timezone("+25:00").is_err());
    }

    #[test]
    fn table() {
        let _g = tz("UTC");
        let dt = Value::Datetime(T);
        let cases: Vec<(&str, Vec<Value>, Value)> = vec![
            (
                "format_time",
                vec![dt.clone(), s("yyyy-MM-dd")],
                s("2020-01-16"),
            ),
            (
                "format_time",
                vec![i(1_568_854_515_000), s("yyyy-MM-dd T HH:mm:ss")],
                s("2019-09-19 T 00:55:15"),
            ),
            (
                "format_time",
                vec![Value::Float(1.62000273e12), s("yyyy-MM-dd T HH:mm:ss")],
                s("2021-05-03 T 00:45:30"),
            ),
            ("format_time", vec![N, s("yyyy")], N),
            (
                "date_calc",
                vec![s("2019-01-01"), s("1h30m")],
                s("2019-01-01 01:30:00"),
            ),
            (
                "date_calc",
                vec![s("2019-01-01"), s("-1h")],
                s("2018-12-31 23:00:00"),
            ),
            ("date_calc", vec![N, s("1h")], N),
            ("day_name", vec![s("2019-01-01 00:00:00")], s("Tuesday")),
            ("day_name", vec![N], N),
            ("day_of_month", vec![dt.clone()], i(16)),
            ("day", vec![dt.clone()], i(16)),
            ("day_of_week", vec![s("2019-01-01 00:00:00")], i(2)),
            ("day_of_year", vec![s("2019-02-01")], i(32)),
            ("hour", vec![dt.clone()], i(2)),
            ("minute", vec![dt.clone()], i(14)),
            ("second", vec![dt.clone()], i(24)),
            ("microsecond", vec![dt.clone()], i(913_000)),
            ("month", vec![dt.clone()], i(1)),
            ("month_name", vec![s("2019-01-01 01:23:45")], s("January")),
            ("month", vec![N], N),
            ("last_day", vec![s("2020-02-10")], s("2020-02-29")),
            ("last_day", vec![s("2019-12-10")], s("2019-12-31")),
            ("from_unix_time", vec![i(100)], s("1970-01-01 00:01:40")),
            ("from_unix_time", vec![i(0)], N),
            ("from_unix_time", vec![N], N),
        ];
        for (name, args, want) in cases {
            assert_eq!(call(name, &args), Ok(want), "{name}({args:?})");
        }
    }

    #[test]
    fn errors() {
        let _g = tz("UTC");
        let cases: Vec<(&str, Vec<Value>, &str)> = vec![
            (
                "format_time",
                vec![s("garbage"), s("yyyy")],
                "call func format_time error: Can't parse string as time: garbage",
            ),
            (
                "format_time",
                vec![i(0), s("YYY")],
                "call func format_time error: invalid time format YYY for Y/y",
            ),
            (
                "hour",
                vec![Value::Bool(true)],
                "call func hour error: unsupported type to convert to timestamp true",
            ),
            (
                "date_calc",
                vec![i(0), s("1x")],
                "call func date_calc error: time: invalid duration \"1x\"",
            ),
            (
                "from_unix_time",
                vec![Value::Float(0.5)],
                "call func from_unix_time error: cannot convert float64(0.5) to int",
            ),
            (
                "now",
                vec![s("x")],
                "call func now error: cannot convert string(x) to int",
            ),
        ];
        for (name, args, want) in cases {
            assert_eq!(call(name, &args), Err(want.to_string()), "{name}({args:?})");
        }
    }

    #[test]
    fn current_time_functions() {
        let _g = tz("UTC");
        let shape = |v: Value, re: &str| {
            let Value::Str(s) = v else {
                panic!("not a string: {v:?}")
            };
            assert!(regex::Regex::new(re).unwrap().is_match(&s), "{s} !~ {re}");
        };
        shape(
            call("now", &[]).unwrap(),
            r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$",
        );
        shape(
            call("current_timestamp", &[i(3)]).unwrap(),
            r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$",
        );
        shape(call("cur_date", &[]).unwrap(), r"^\d{4}-\d\d-\d\d$");
        shape(call("current_date", &[]).unwrap(), r"^\d{4}-\d\d-\d\d$");
        shape(call("cur_time", &[]).unwrap(), r"^\d\d:\d\d:\d\d$");
        shape(
            call("current_time", &[i(1)]).unwrap(),
            r"^\d\d:\d\d:\d\d\.\d$",
        );
        shape(call("local_time", &[]).unwrap(), r"^\d{4}-");
        shape(call("local_timestamp", &[]).unwrap(), r"^\d{4}-");
        let year = call("now", &[]).unwrap().to_string()[..4]
            .parse::<i32>()
            .unwrap();
        assert!(year >= 2024);
    }

    #[test]
    fn go_durations() {
        assert_eq!(
            parse_go_duration("1h30m10s100ms200us300ns"),
            Some(5_410_100_200_300)
        );
        assert_eq!(parse_go_duration("-1.5h"), Some(-5_400_000_000_000));
        assert_eq!(parse_go_duration("0"), Some(0));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration(""), None);
    }
}
