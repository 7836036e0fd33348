//! Conversion and transform functions: `cast`, `to_seconds`, `encode`/`decode`
//! (base64), `trunc`, `chr`, `hex2dec`, `dec2hex`, `to_json`, `parse_json`.
//! `to_json` prints like Go's `encoding/json` (sorted keys, `3` not `3.0`,
//! HTML-safe escapes) so that results match eKuiper byte for byte.

use std::fmt::Write as _;
use std::sync::Arc;

use base64::Engine as _;
use oort_core::Value;

use crate::time::{parse_time_str, time_arg};
use crate::util::{
    any_null, arg, f64_arg, go_desc, go_json_float, go_v, int_strict, to_string_all, vstr, vstring,
    FnResult,
};
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
    f!("cast", 2, Some(2), cast),
    f!("to_seconds", 1, Some(1), to_seconds),
    f!("encode", 2, Some(2), encode),
    f!("decode", 2, Some(2), decode),
    f!("trunc", 2, Some(2), trunc),
    f!("chr", 1, Some(1), chr),
    f!("hex2dec", 1, Some(1), hex2dec),
    f!("dec2hex", 1, Some(1), dec2hex),
    f!("to_json", 1, Some(1), to_json),
    f!("parse_json", 1, Some(1), parse_json),
];

/// The target types accepted by `cast`.
pub const CAST_TYPES: [&str; 6] = ["bigint", "float", "string", "boolean", "datetime", "bytea"];

fn conversion_error(inner: String) -> FnError {
    FnError::call(
        "cast",
        format!("not supported type conversion, got error {inner}"),
    )
}

/// Go's `strconv.ParseInt(s, 0, 64)`: optional sign, `0x`/`0o`/`0b` or a
/// leading `0` (octal) prefix, `_` separators after a prefix.
fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.get(..2).map(str::to_ascii_lowercase);
    let (radix, digits, prefixed) = match lower.as_deref() {
        Some("0x") => (16, &body[2..], true),
        Some("0o") => (8, &body[2..], true),
        Some("0b") => (2, &body[2..], true),
        _ if body.len() > 1 && body.starts_with('0') => (8, &body[1..], true),
        _ => (10, body, false),
    };
    let cleaned: String;
    let digits = if prefixed && digits.contains('_') {
        cleaned = digits.replace('_', "");
        cleaned.as_str()
    } else {
        digits
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let mag = u64::from_str_radix(digits, radix).ok()?;
    if neg {
        if mag == i64::MIN.unsigned_abs() {
            Some(i64::MIN)
        } else {
            i64::try_from(mag).ok().map(|v| -v)
        }
    } else {
        i64::try_from(mag).ok()
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// `cast(x, type)` with eKuiper's `CONVERT_ALL` rules. Datetimes cast to
/// `bigint`/`float` give unix ms; to `string`, RFC 3339 with milliseconds.
/// `ty` is one of [`CAST_TYPES`].
pub fn cast_value(v: &Value, ty: &str) -> FnResult {
    match ty {
        "bigint" => match v {
            Value::Int(i) | Value::Datetime(i) => Ok(Value::Int(*i)),
            Value::Float(f) => Ok(Value::Int(*f as i64)),
            Value::Bool(b) => Ok(Value::Int(i64::from(*b))),
            Value::Str(s) => parse_go_int(s)
                .map(Value::Int)
                .ok_or_else(|| conversion_error(format!("cannot convert {} to int", go_desc(v)))),
            _ => Err(conversion_error(format!(
                "cannot convert {} to int",
                go_desc(v)
            ))),
        },
        "float" => {
            match v {
                Value::Int(i) | Value::Datetime(i) => Ok(Value::Float(*i as f64)),
                Value::Float(f) => Ok(Value::Float(*f)),
                Value::Bool(b) => Ok(Value::Float(if *b { 1.0 } else { 0.0 })),
                Value::Str(s) => s.trim().parse::<f64>().map(Value::Float).map_err(|_| {
                    conversion_error(format!("cannot convert {} to float64", go_desc(v)))
                }),
                _ => Err(conversion_error(format!(
                    "cannot convert {} to float64",
                    go_desc(v)
                ))),
            }
        }
        "string" => Ok(vstring(to_string_all(v))),
        "boolean" => match v {
            Value::Bool(b) => Ok(Value::Bool(*b)),
            Value::Int(i) => Ok(Value::Bool(*i != 0)),
            Value::Float(f) => Ok(Value::Bool(*f != 0.0)),
            Value::Str(s) => parse_go_bool(s).map(Value::Bool).ok_or_else(|| {
                conversion_error(format!(
                    "strconv.ParseBool: parsing \"{s}\": invalid syntax"
                ))
            }),
            _ => Err(conversion_error(format!(
                "cannot convert {} to bool",
                go_desc(v)
            ))),
        },
        "datetime" => match v {
            Value::Str(s) => parse_time_str(s)
                .map(Value::Datetime)
                .ok_or_else(|| FnError::call("cast", format!("Can't parse string as time: {s}"))),
            other => time_arg("cast", other).map(Value::Datetime),
        },
        "bytea" => match v {
            Value::Bytes(b) => Ok(Value::Bytes(b.clone())),
            Value::Str(s) => Ok(Value::Bytes(
                match base64::engine::general_purpose::STANDARD.decode(s.as_bytes()) {
                    Ok(b) => Arc::from(b),
                    Err(_) => Arc::from(s.as_bytes()),
                },
            )),
            other => Err(FnError::call(
                "cast",
                format!("cannot convert {} to bytea", go_desc(other)),
            )),
        },
        _ => Err(FnError::call(
            "cast",
            "unknow type, only support bigint, float, string, boolean and datetime",
        )),
    }
}

fn cast(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    match arg(args, 1) {
        Value::Str(ty) => cast_value(arg(args, 0), ty),
        _ => Err(FnError::call(
            "cast",
            "expect string type for type parameter",
        )),
    }
}

/// Seconds since the epoch of a time argument.
fn to_seconds(args: &[Value]) -> FnResult {
    let a = arg(args, 0);
    if a.is_null() {
        return Ok(Value::Null);
    }
    Ok(Value::Int(time_arg("to_seconds", a)?.div_euclid(1000)))
}

fn base64_method(name: &'static str, v: &Value, what: &str) -> Result<(), FnError> {
    match v {
        Value::Str(m) if m.eq_ignore_ascii_case("base64") => Ok(()),
        _ => Err(FnError::call(
            name,
            format!("Only base64 {what} is supported."),
        )),
    }
}

fn encode(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    base64_method("encode", arg(args, 1), "encoding")?;
    let engine = &base64::engine::general_purpose::STANDARD;
    match arg(args, 0) {
        Value::Str(s) => Ok(vstring(engine.encode(s.as_bytes()))),
        Value::Bytes(b) => Ok(vstring(engine.encode(b))),
        _ => Err(FnError::call("encode", "Only string type can be encoded.")),
    }
}

fn decode(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    base64_method("decode", arg(args, 1), "decoding")?;
    match arg(args, 0) {
        Value::Str(s) => base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map(|b| Value::Bytes(Arc::from(b)))
            .map_err(|e| FnError::call("decode", format!("fail to decode base64 string: {e}"))),
        _ => Err(FnError::call("decode", "Only string type can be decoded.")),
    }
}

/// `trunc(x, n)`: eKuiper rounds half away from zero at `n` decimals.
fn trunc(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let x = f64_arg("trunc", arg(args, 0))?;
    let Value::Int(n) = arg(args, 1) else {
        return Err(FnError::call(
            "trunc",
            "The 2nd parameter must be int value.",
        ));
    };
    let factor = 10f64.powi((*n).clamp(-400, 400) as i32);
    let scaled = x * factor;
    if !scaled.is_finite() || factor == 0.0 {
        return Ok(Value::Float(if factor == 0.0 { 0.0 } else { x }));
    }
    Ok(Value::Float(
        (scaled + 0.5f64.copysign(scaled)).trunc() / factor,
    ))
}

/// `chr(n)`: the character with code point `n` (a one-character string
/// passes through), as eKuiper's documentation describes.
fn chr(args: &[Value]) -> FnResult {
    let a = arg(args, 0);
    let code = match a {
        Value::Null => return Ok(Value::Null),
        Value::Int(i) => *i,
        Value::Float(f) => *f as i64,
        Value::Str(s) => {
            let mut it = s.chars();
            return match (it.next(), it.next()) {
                (Some(c), None) => Ok(vstring(c.to_string())),
                (None, _) => Ok(vstr("")),
                _ => Err(FnError::call(
                    "chr",
                    "Parameter length cannot larger than 1.",
                )),
            };
        }
        _ => {
            return Err(FnError::call(
                "chr",
                "Only bigint, float and string type can be convert to char type.",
            ))
        }
    };
    u32::try_from(code)
        .ok()
        .and_then(char::from_u32)
        .map(|c| vstring(c.to_string()))
        .ok_or_else(|| FnError::call("chr", format!("{code} is not a valid character code")))
}

fn hex2dec(args: &[Value]) -> FnResult {
    let a = arg(args, 0);
    let s = match a {
        Value::Null => return Ok(Value::Null),
        Value::Str(s) => s,
        other => {
            return Err(FnError::call(
                "hex2dec",
                format!(
                    "invalid input type: {} please input hex string",
                    go_v(other)
                ),
            ))
        }
    };
    let hex = s.strip_prefix("0x").unwrap_or(s);
    let (neg, digits) = match hex.as_bytes().first() {
        Some(b'-') => (true, &hex[1..]),
        Some(b'+') => (false, &hex[1..]),
        _ => (false, hex),
    };
    i64::from_str_radix(digits, 16)
        .ok()
        .filter(|_| !digits.starts_with(['+', '-']))
        .map(|v| Value::Int(if neg { -v } else { v }))
        .ok_or_else(|| FnError::call("hex2dec", format!("invalid hexadecimal value: {hex}")))
}

/// `dec2hex(16)` = `"0x10"`; negatives print as Go does (`"0x-10"`).
fn dec2hex(args: &[Value]) -> FnResult {
    let a = arg(args, 0);
    if a.is_null() {
        return Ok(Value::Null);
    }
    let v = int_strict("dec2hex", a)?;
    let sign = if v < 0 { "-" } else { "" };
    Ok(vstring(format!("0x{sign}{:x}", v.unsigned_abs())))
}

/// Appends `s` as a JSON string the way Go's `encoding/json` does.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Serialises `v` like Go's `json.Marshal`; `Err` for NaN/±Inf.
pub(crate) fn write_go_json(out: &mut String, v: &Value) -> Result<(), ()> {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => {
            if !f.is_finite() {
                return Err(());
            }
            out.push_str(&go_json_float(*f));
        }
        Value::Str(s) => push_json_str(out, s),
        Value::Bytes(b) => {
            out.push('"');
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(b));
            out.push('"');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(out, x)?;
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_str(out, k);
                out.push(':');
                write_go_json(out, x)?;
            }
            out.push('}');
        }
        Value::Datetime(ms) => push_json_str(out, &crate::time::rfc3339_millis(*ms)),
    }
    Ok(())
}

fn to_json(args: &[Value]) -> FnResult {
    let a = arg(args, 0);
    if a.is_null() {
        return Ok(Value::Null);
    }
    let mut out = String::new();
    write_go_json(&mut out, a)
        .map_err(|_| FnError::call("to_json", format!("fail to convert {} to json", go_v(a))))?;
    Ok(vstring(out))
}

fn parse_json(args: &[Value]) -> FnResult {
    let a = arg(args, 0);
    let bytes: &[u8] = match a {
        Value::Null => return Ok(Value::Null),
        Value::Str(s) if &**s == "null" => return Ok(Value::Null),
        Value::Str(s) => s.as_bytes(),
        Value::Bytes(b) => b,
        other => {
            return Err(FnError::call(
                "parse_json",
                format!("fail to convert {} to string", go_v(other)),
            ))
        }
    };
    serde_json::from_slice::<serde_json::Value>(bytes)
        .map(|j| Value::from_json(&j))
        .map_err(|e| FnError::call("parse_json", format!("fail to parse json: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scalar;
    use crate::time::tests::tz;
    use oort_core::Map;

    fn call(name: &str, args: &[Value]) -> Result<Value, String> {
        let f = scalar(name).unwrap_or_else(|| panic!("no function {name}"));
        (f.call)(args).map_err(|e| e.to_string())
    }
    fn i(v: i64) -> Value {
        Value::Int(v)
    }
    fn fl(v: f64) -> Value {
        Value::Float(v)
    }
    fn s(v: &str) -> Value {
        Value::str(v)
    }
    fn b(v: bool) -> Value {
        Value::Bool(v)
    }
    fn bytes(v: &[u8]) -> Value {
        Value::Bytes(Arc::from(v))
    }
    const N: Value = Value::Null;

    #[test]
    fn table() {
        let _g = tz("UTC");
        let mut m = Map::new();
        m.insert(
            Arc::from("b"),
            Value::Array(Arc::new(vec![i(1), fl(2.0), N])),
        );
        m.insert(Arc::from("a"), s("<x>"));
        let obj = Value::Object(Arc::new(m));
        let cases: Vec<(&str, Vec<Value>, Value)> = vec![
            ("cast", vec![fl(1.2), s("bigint")], i(1)),
            ("cast", vec![i(5), s("bigint")], i(5)),
            ("cast", vec![s("0x1F"), s("bigint")], i(31)),
            ("cast", vec![s("-12"), s("bigint")], i(-12)),
            ("cast", vec![b(true), s("bigint")], i(1)),
            ("cast", vec![s("1.5"), s("float")], fl(1.5)),
            ("cast", vec![i(3), s("float")], fl(3.0)),
            ("cast", vec![fl(1.2), s("string")], s("1.2")),
            (
                "cast",
                vec![fl(1e21), s("string")],
                s("1000000000000000000000"),
            ),
            ("cast", vec![b(true), s("string")], s("true")),
            ("cast", vec![i(42), s("string")], s("42")),
            ("cast", vec![s("true"), s("boolean")], b(true)),
            ("cast", vec![s("1"), s("boolean")], b(true)),
            ("cast", vec![fl(0.0), s("boolean")], b(false)),
            (
                "cast",
                vec![i(1_000), s("datetime")],
                Value::Datetime(1_000),
            ),
            (
                "cast",
                vec![s("1970-01-01T00:00:01Z"), s("datetime")],
                Value::Datetime(1_000),
            ),
            ("cast", vec![s("aGk="), s("bytea")], bytes(b"hi")),
            ("cast", vec![s("hi!"), s("bytea")], bytes(b"hi!")),
            (
                "cast",
                vec![Value::Datetime(1_000), s("string")],
                s("1970-01-01T00:00:01.000+00:00"),
            ),
            ("cast", vec![N, s("bigint")], N),
            ("to_seconds", vec![i(1_500)], i(1)),
            ("to_seconds", vec![s("1970-01-01T00:01:00Z")], i(60)),
            ("to_seconds", vec![N], N),
            ("encode", vec![s("hello"), s("base64")], s("aGVsbG8=")),
            ("encode", vec![N, s("base64")], N),
            ("decode", vec![s("aGVsbG8="), s("BASE64")], bytes(b"hello")),
            ("decode", vec![N, s("base64")], N),
            ("trunc", vec![fl(5.4321), i(2)], fl(5.43)),
            ("trunc", vec![i(3), i(2)], fl(3.0)),
            ("trunc", vec![fl(-2.5), i(0)], fl(-3.0)),
            ("trunc", vec![N, i(2)], N),
            ("chr", vec![i(97)], s("a")),
            ("chr", vec![s("a")], s("a")),
            ("chr", vec![fl(65.0)], s("A")),
            ("chr", vec![N], N),
            ("hex2dec", vec![s("0x10")], i(16)),
            ("hex2dec", vec![s("ff")], i(255)),
            ("hex2dec", vec![N], N),
            ("dec2hex", vec![i(16)], s("0x10")),
            ("dec2hex", vec![i(-16)], s("0x-10")),
            ("dec2hex", vec![N], N),
            (
                "to_json",
                vec![obj.clone()],
                s(r#"{"a":"\u003cx\u003e","b":[1,2,null]}"#),
            ),
            ("to_json", vec![fl(1e-7)], s("1e-7")),
            ("to_json", vec![s("a\"b\n")], s(r#""a\"b\n""#)),
            ("to_json", vec![N], N),
            ("parse_json", vec![s(r#"{"b":[1,2,null],"a":"<x>"}"#)], {
                let mut m = Map::new();
                m.insert(Arc::from("b"), Value::Array(Arc::new(vec![i(1), i(2), N])));
                m.insert(Arc::from("a"), s("<x>"));
                Value::Object(Arc::new(m))
            }),
            ("parse_json", vec![s("null")], N),
            (
                "parse_json",
                vec![bytes(b"[1.5]")],
                Value::Array(Arc::new(vec![fl(1.5)])),
            ),
            ("parse_json", vec![N], N),
        ];
        for (name, args, want) in cases {
            assert_eq!(call(name, &args), Ok(want), "{name}({args:?})");
        }
    }

    #[test]
    fn errors() {
        let cases: Vec<(&str, Vec<Value>, &str)> = vec![
            ("cast", vec![s("1.5"), s("bigint")], "call func cast error: not supported type conversion, got error cannot convert string(1.5) to int"),
            ("cast", vec![s("abc"), s("float")], "call func cast error: not supported type conversion, got error cannot convert string(abc) to float64"),
            ("cast", vec![s("yes"), s("boolean")], "call func cast error: not supported type conversion, got error strconv.ParseBool: parsing \"yes\": invalid syntax"),
            ("cast", vec![i(1), s("bytea")], "call func cast error: cannot convert int64(1) to bytea"),
            ("cast", vec![i(1), s("int")], "call func cast error: unknow type, only support bigint, float, string, boolean and datetime"),
            ("cast", vec![i(1), i(2)], "call func cast error: expect string type for type parameter"),
            ("cast", vec![s("soon"), s("datetime")], "call func cast error: Can't parse string as time: soon"),
            ("encode", vec![i(1), s("base64")], "call func encode error: Only string type can be encoded."),
            ("encode", vec![s("a"), s("hex")], "call func encode error: Only base64 encoding is supported."),
            ("decode", vec![s("!!"), s("base64")], "call func decode error: fail to decode base64 string"),
            ("decode", vec![s("a"), s("hex")], "call func decode error: Only base64 decoding is supported."),
            ("trunc", vec![fl(1.0), fl(2.0)], "call func trunc error: The 2nd parameter must be int value."),
            ("chr", vec![s("ab")], "call func chr error: Parameter length cannot larger than 1."),
            ("chr", vec![b(true)], "call func chr error: Only bigint, float and string type can be convert to char type."),
            ("hex2dec", vec![i(1)], "call func hex2dec error: invalid input type: 1 please input hex string"),
            ("hex2dec", vec![s("0xzz")], "call func hex2dec error: invalid hexadecimal value: zz"),
            ("dec2hex", vec![s("a")], "call func dec2hex error: cannot convert string(a) to int"),
            ("to_json", vec![fl(f64::NAN)], "call func to_json error: fail to convert NaN to json"),
            ("parse_json", vec![s("{bad")], "call func parse_json error: fail to parse json"),
            ("parse_json", vec![i(1)], "call func parse_json error: fail to convert 1 to string"),
            ("to_seconds", vec![b(true)], "call func to_seconds error: unsupported type to convert to timestamp true"),
        ];
        for (name, args, want) in cases {
            match call(name, &args) {
                Err(e) => assert!(e.starts_with(want), "{name}: {e} !~ {want}"),
                Ok(v) => panic!("{name}({args:?}) returned {v:?}, wanted error {want}"),
            }
        }
    }

    #[test]
    fn go_int_parsing() {
        assert_eq!(parse_go_int("010"), Some(8));
        assert_eq!(parse_go_int("0b101"), Some(5));
        assert_eq!(parse_go_int("0x_ff"), Some(255));
        assert_eq!(parse_go_int("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_go_int("9223372036854775808"), None);
        assert_eq!(parse_go_int("1_000"), None);
        assert_eq!(parse_go_int("--1"), None);
        assert_eq!(parse_go_int(""), None);
    }
}
