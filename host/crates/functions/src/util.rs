//! Shared helpers of the function library: argument coercion with eKuiper's
//! strictness rules, Go-style value printing (`%v`, `%T(%v)`, `FormatFloat`),
//! and a small per-thread cache of compiled regular expressions.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;

use ahash::AHashMap;
use oort_core::Value;
use regex::Regex;

use crate::FnError;

/// Result type of every function body.
pub(crate) type FnResult = Result<Value, FnError>;

/// Upper bound for results whose size is chosen by an argument (`lpad`,
/// `sequence`, ...), so that one bad event cannot exhaust memory.
pub(crate) const MAX_GENERATED: usize = 1 << 20;

#[inline]
pub(crate) fn any_null(args: &[Value]) -> bool {
    args.iter().any(Value::is_null)
}

#[inline]
pub(crate) fn arg(args: &[Value], i: usize) -> &Value {
    args.get(i).unwrap_or(&Value::Null)
}

#[inline]
pub(crate) fn vstr(s: &str) -> Value {
    Value::Str(Arc::from(s))
}

#[inline]
pub(crate) fn vstring(s: String) -> Value {
    Value::Str(Arc::from(s))
}

#[inline]
pub(crate) fn varray(v: Vec<Value>) -> Value {
    Value::Array(Arc::new(v))
}

/// Numeric argument with eKuiper's `CONVERT_SAMEKIND`: ints and floats only.
pub(crate) fn f64_arg(name: &'static str, v: &Value) -> Result<f64, FnError> {
    match v {
        Value::Int(i) => Ok(*i as f64),
        Value::Float(f) => Ok(*f),
        other => Err(FnError::call(
            name,
            format!("cannot convert {} to float64", go_desc(other)),
        )),
    }
}

/// Integer argument with eKuiper's `STRICT` rule: ints, or floats without a
/// fractional part.
pub(crate) fn int_strict(name: &'static str, v: &Value) -> Result<i64, FnError> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Float(f) if f.fract() == 0.0 && f.is_finite() => Ok(*f as i64),
        other => Err(FnError::call(
            name,
            format!("cannot convert {} to int", go_desc(other)),
        )),
    }
}

/// Integer argument with eKuiper's `CONVERT_SAMEKIND`: floats are truncated.
pub(crate) fn int_samekind(name: &'static str, v: &Value) -> Result<i64, FnError> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Float(f) => Ok(*f as i64),
        other => Err(FnError::call(
            name,
            format!("cannot convert {} to int", go_desc(other)),
        )),
    }
}

/// eKuiper's `ToStringAlways`: nil is the empty string, strings are borrowed,
/// bytes are read as (lossy) UTF-8, anything else is printed like Go's `%v`.
pub(crate) fn text(v: &Value) -> Cow<'_, str> {
    match v {
        Value::Null => Cow::Borrowed(""),
        Value::Str(s) => Cow::Borrowed(s),
        Value::Bytes(b) => String::from_utf8_lossy(b),
        other => Cow::Owned(go_v(other)),
    }
}

/// eKuiper's `ToString(CONVERT_ALL)` used by `cast(x, "string")`: floats
/// without exponent, datetimes as RFC 3339 with milliseconds.
pub(crate) fn to_string_all(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Float(f) => go_float_plain(*f),
        Value::Datetime(ms) => crate::time::rfc3339_millis(*ms),
        other => text(other).into_owned(),
    }
}

/// Go's `%T(%v)` description used in conversion errors: `string(foo)`.
pub(crate) fn go_desc(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        other => format!("{}({})", other.type_name(), go_v(other)),
    }
}

/// Go's `%v` rendering of a value.
pub(crate) fn go_v(v: &Value) -> String {
    let mut s = String::new();
    push_go_v(&mut s, v);
    s
}

pub(crate) fn push_go_v(out: &mut String, v: &Value) {
    oort_core::gofmt::write_v_with(out, v, &|out: &mut String, ms: i64| {
        out.push_str(&crate::time::rfc3339_millis(ms))
    });
}

fn go_special(f: f64) -> Option<&'static str> {
    if f.is_nan() {
        Some("NaN")
    } else if f == f64::INFINITY {
        Some("+Inf")
    } else if f == f64::NEG_INFINITY {
        Some("-Inf")
    } else {
        None
    }
}

/// Go's `%v` for a float64 (`strconv.FormatFloat(f, 'g', -1, 64)`): plain
/// decimal unless the decimal exponent is < -4 or >= 6 (`1e+06`).
#[cfg(test)]
fn go_float_v(f: f64) -> String {
    let mut s = String::new();
    oort_core::gofmt::write_float_g(&mut s, f, None, false);
    s
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`: never an exponent.
pub(crate) fn go_float_plain(f: f64) -> String {
    match go_special(f) {
        Some(s) => s.to_string(),
        None => format!("{f}"),
    }
}

/// Go's `encoding/json` float rendering (`1e-7`, `1e+21`, otherwise plain):
/// the codec's writer, the one copy.
pub(crate) fn go_json_float(f: f64) -> String {
    let mut out = Vec::with_capacity(24);
    oort_core::codec::text::write_json_float(&mut out, f);
    String::from_utf8(out).unwrap_or_default()
}

const REGEX_CACHE_CAP: usize = 64;

thread_local! {
    static REGEX_CACHE: RefCell<AHashMap<Box<str>, Regex>> = RefCell::new(AHashMap::new());
}

/// Runs `f` with the compiled form of `pattern`, compiling it at most once per
/// thread (patterns are almost always constants of the rule).
pub(crate) fn with_regex<R>(
    name: &'static str,
    pattern: &str,
    f: impl FnOnce(&Regex) -> R,
) -> Result<R, FnError> {
    REGEX_CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(re) = cache.get(pattern) {
            return Ok(f(re));
        }
        let re = Regex::new(pattern)
            .map_err(|e| FnError::call(name, format!("error parsing regexp: {e}")))?;
        let out = f(&re);
        if cache.len() >= REGEX_CACHE_CAP {
            cache.clear();
        }
        cache.insert(Box::from(pattern), re);
        Ok(out)
    })
}

/// A hashable view of the scalar values Go can use as map keys; `None` for
/// arrays, objects and bytes (which eKuiper never deduplicates).
#[derive(Hash, PartialEq, Eq)]
pub(crate) enum ScalarKey<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(u64),
    Str(&'a str),
    Datetime(i64),
}

pub(crate) fn scalar_key(v: &Value) -> Option<ScalarKey<'_>> {
    Some(match v {
        Value::Null => ScalarKey::Null,
        Value::Bool(b) => ScalarKey::Bool(*b),
        Value::Int(i) => ScalarKey::Int(*i),
        // Normalise -0.0 to 0.0 so that equal floats hash equally.
        Value::Float(f) => ScalarKey::Float(if *f == 0.0 { 0 } else { f.to_bits() }),
        Value::Str(s) => ScalarKey::Str(s),
        Value::Datetime(t) => ScalarKey::Datetime(*t),
        Value::Bytes(_) | Value::Array(_) | Value::Object(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_float_formats() {
        assert_eq!(go_float_v(1.5), "1.5");
        assert_eq!(go_float_v(3.0), "3");
        assert_eq!(go_float_v(1e21), "1e+21");
        assert_eq!(go_float_v(1234567.0), "1.234567e+06");
        assert_eq!(go_float_v(123456.0), "123456");
        assert_eq!(go_float_v(0.00001), "1e-05");
        assert_eq!(go_float_v(-2.5e-7), "-2.5e-07");
        assert_eq!(go_float_plain(1e21), "1000000000000000000000");
        assert_eq!(go_float_plain(f64::INFINITY), "+Inf");
        assert_eq!(go_json_float(1e-7), "1e-7");
        assert_eq!(go_json_float(1e21), "1e+21");
        assert_eq!(go_json_float(2.0), "2");
        assert_eq!(go_json_float(0.5), "0.5");
    }

    #[test]
    fn go_v_and_desc() {
        let arr = varray(vec![Value::Int(1), vstr("a")]);
        assert_eq!(go_v(&arr), "[1 a]");
        assert_eq!(go_desc(&vstr("foo")), "string(foo)");
        assert_eq!(go_desc(&Value::Int(3)), "int64(3)");
        assert_eq!(text(&Value::Null), "");
    }

    #[test]
    fn regex_cache_reports_bad_patterns() {
        assert_eq!(with_regex("t", "a+", |r| r.is_match("caat")), Ok(true));
        assert_eq!(with_regex("t", "a+", |r| r.is_match("xyz")), Ok(false));
        assert!(with_regex("t", "[a", |_| ()).is_err());
    }
}
