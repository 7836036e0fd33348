//! The helper functions eKuiper registers for data templates, with eKuiper's
//! semantics: its own `json` (= Sprig's `toJson`) and `base64`, and the Sprig
//! functions users reach for in sink templates (arithmetic, strings, defaults,
//! lists and dicts). eKuiper installs all of Sprig; the names Oort does not
//! implement are listed in `funcs::UNSUPPORTED` and refused at compile time.
//!
//! Sprig converts numbers with `spf13/cast` (`toInt64` truncates floats,
//! parses strings, nil is 0); the same conversions are reproduced here.

use std::sync::Arc;

use base64::Engine;

use super::funcs::{f as h, slice_of, truth, wrong_type, FuncDef};
use crate::codec::json::write_value;
use crate::codec::text::float_to_fixed_string;
use crate::gofmt;
use crate::value::{Map, Value};

const V: usize = usize::MAX;

pub(super) static HELPERS: &[FuncDef] = &[
    h!("json", 1, 1, |a| Ok(Value::str(&to_json(&a[0])))),
    h!("toJson", 1, 1, |a| Ok(Value::str(&to_json(&a[0])))),
    h!("base64", 1, 1, base64_ekuiper),
    h!("b64enc", 1, 1, |a| {
        let s = string_arg("b64enc", &a[0])?;
        Ok(Value::str(&b64().encode(s.as_bytes())))
    }),
    h!("b64dec", 1, 1, |a| {
        let s = string_arg("b64dec", &a[0])?;
        Ok(Value::str(&match b64().decode(s.as_bytes()) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => format!(
                "illegal base64 data at input byte {}",
                b64_error_offset(&e, s)
            ),
        }))
    }),
    // Arithmetic: int64 results, operands through cast.ToInt64.
    h!("add", 0, V, |a| Ok(Value::Int(
        a.iter().fold(0i64, |s, x| s.wrapping_add(to_i64(x)))
    ))),
    h!("add1", 1, 1, |a| Ok(Value::Int(
        to_i64(&a[0]).wrapping_add(1)
    ))),
    h!("sub", 2, 2, |a| Ok(Value::Int(
        to_i64(&a[0]).wrapping_sub(to_i64(&a[1]))
    ))),
    h!("mul", 1, V, |a| Ok(Value::Int(
        a.iter().fold(1i64, |s, x| s.wrapping_mul(to_i64(x)))
    ))),
    h!("div", 2, 2, |a| {
        let d = to_i64(&a[1]);
        if d == 0 {
            return Err("error calling div: runtime error: integer divide by zero".into());
        }
        Ok(Value::Int(to_i64(&a[0]).wrapping_div(d)))
    }),
    h!("mod", 2, 2, |a| {
        let d = to_i64(&a[1]);
        if d == 0 {
            return Err("error calling mod: runtime error: integer divide by zero".into());
        }
        Ok(Value::Int(to_i64(&a[0]).wrapping_rem(d)))
    }),
    h!("max", 1, V, |a| Ok(Value::Int(
        a.iter().map(to_i64).max().unwrap_or(0)
    ))),
    h!("min", 1, V, |a| Ok(Value::Int(
        a.iter().map(to_i64).min().unwrap_or(0)
    ))),
    h!("floor", 1, 1, |a| Ok(Value::Float(to_f64(&a[0]).floor()))),
    h!("ceil", 1, 1, |a| Ok(Value::Float(to_f64(&a[0]).ceil()))),
    h!("round", 2, 3, |a| {
        let places = int_arg("round", &a[1])? as f64;
        let on = match a.get(2) {
            Some(Value::Float(f)) => *f,
            Some(Value::Int(i)) => *i as f64,
            Some(v) => return Err(wrong_type("round", v, "float64")),
            None => 0.5,
        };
        let pow = 10f64.powf(places);
        let digit = pow * to_f64(&a[0]);
        let r = if digit.fract() >= on {
            digit.ceil()
        } else {
            digit.floor()
        };
        Ok(Value::Float(r / pow))
    }),
    // Conversions.
    h!("int", 1, 1, |a| Ok(Value::Int(to_i64(&a[0])))),
    h!("int64", 1, 1, |a| Ok(Value::Int(to_i64(&a[0])))),
    h!("float64", 1, 1, |a| Ok(Value::Float(to_f64(&a[0])))),
    h!("atoi", 1, 1, |a| {
        let s = string_arg("atoi", &a[0])?;
        Ok(Value::Int(s.parse::<i64>().unwrap_or(0)))
    }),
    h!("toString", 1, 1, |a| Ok(Value::str(&strval(&a[0])))),
    // Strings.
    h!("upper", 1, 1, |a| Ok(Value::str(
        &string_arg("upper", &a[0])?.to_uppercase()
    ))),
    h!("lower", 1, 1, |a| Ok(Value::str(
        &string_arg("lower", &a[0])?.to_lowercase()
    ))),
    h!("title", 1, 1, |a| Ok(Value::str(&title(string_arg(
        "title", &a[0]
    )?)))),
    h!("trim", 1, 1, |a| Ok(Value::str(
        string_arg("trim", &a[0])?.trim()
    ))),
    h!("trimAll", 2, 2, |a| {
        let cut = string_arg("trimAll", &a[0])?;
        let s = string_arg("trimAll", &a[1])?;
        Ok(Value::str(s.trim_matches(|c| cut.contains(c))))
    }),
    h!("trimall", 2, 2, |a| {
        let cut = string_arg("trimall", &a[0])?;
        let s = string_arg("trimall", &a[1])?;
        Ok(Value::str(s.trim_matches(|c| cut.contains(c))))
    }),
    h!("trimPrefix", 2, 2, |a| {
        let p = string_arg("trimPrefix", &a[0])?;
        let s = string_arg("trimPrefix", &a[1])?;
        Ok(Value::str(s.strip_prefix(p).unwrap_or(s)))
    }),
    h!("trimSuffix", 2, 2, |a| {
        let p = string_arg("trimSuffix", &a[0])?;
        let s = string_arg("trimSuffix", &a[1])?;
        Ok(Value::str(s.strip_suffix(p).unwrap_or(s)))
    }),
    h!("contains", 2, 2, |a| {
        let sub = string_arg("contains", &a[0])?;
        Ok(Value::Bool(string_arg("contains", &a[1])?.contains(sub)))
    }),
    h!("hasPrefix", 2, 2, |a| {
        let p = string_arg("hasPrefix", &a[0])?;
        Ok(Value::Bool(string_arg("hasPrefix", &a[1])?.starts_with(p)))
    }),
    h!("hasSuffix", 2, 2, |a| {
        let p = string_arg("hasSuffix", &a[0])?;
        Ok(Value::Bool(string_arg("hasSuffix", &a[1])?.ends_with(p)))
    }),
    h!("replace", 3, 3, |a| {
        let old = string_arg("replace", &a[0])?;
        let new = string_arg("replace", &a[1])?;
        let s = string_arg("replace", &a[2])?;
        Ok(Value::str(&go_replace(s, old, new)))
    }),
    h!("repeat", 2, 2, |a| {
        let n = int_arg("repeat", &a[0])?;
        if n < 0 {
            return Err("error calling repeat: strings: negative Repeat count".into());
        }
        Ok(Value::str(&string_arg("repeat", &a[1])?.repeat(n as usize)))
    }),
    h!("substr", 3, 3, |a| {
        let start = int_arg("substr", &a[0])?;
        let end = int_arg("substr", &a[1])?;
        let s = string_arg("substr", &a[2])?;
        let n = s.len() as i64;
        let (i, j) = if start < 0 {
            (0, end)
        } else if end < 0 || end > n {
            (start, n)
        } else {
            (start, end)
        };
        byte_range("substr", s, i, j)
    }),
    h!("trunc", 2, 2, |a| {
        let c = int_arg("trunc", &a[0])?;
        let s = string_arg("trunc", &a[1])?;
        let n = s.len() as i64;
        if c < 0 && n + c > 0 {
            byte_range("trunc", s, n + c, n)
        } else if c >= 0 && n > c {
            byte_range("trunc", s, 0, c)
        } else {
            Ok(Value::str(s))
        }
    }),
    h!("nospace", 1, 1, |a| Ok(Value::str(
        &string_arg("nospace", &a[0])?
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
    ))),
    h!("quote", 0, V, |a| {
        let mut out = String::new();
        for v in a.iter().filter(|v| !v.is_null()) {
            if !out.is_empty() {
                out.push(' ');
            }
            gofmt::quote(&mut out, &strval(v));
        }
        Ok(Value::str(&out))
    }),
    h!("squote", 0, V, |a| {
        let parts: Vec<String> = a
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| format!("'{}'", strval(v)))
            .collect();
        Ok(Value::str(&parts.join(" ")))
    }),
    h!("cat", 0, V, |a| {
        let parts: Vec<String> = a.iter().filter(|v| !v.is_null()).map(strval).collect();
        Ok(Value::str(&parts.join(" ")))
    }),
    h!("indent", 2, 2, |a| {
        let n = int_arg("indent", &a[0])?;
        Ok(Value::str(&indent(n, string_arg("indent", &a[1])?)))
    }),
    h!("nindent", 2, 2, |a| {
        let n = int_arg("nindent", &a[0])?;
        Ok(Value::str(&format!(
            "\n{}",
            indent(n, string_arg("nindent", &a[1])?)
        )))
    }),
    h!("join", 2, 2, |a| {
        let sep = string_arg("join", &a[0])?;
        Ok(Value::str(&strslice(&a[1]).join(sep)))
    }),
    h!("splitList", 2, 2, |a| {
        let sep = string_arg("splitList", &a[0])?;
        let s = string_arg("splitList", &a[1])?;
        let parts: Vec<Value> = if sep.is_empty() {
            s.chars()
                .map(|c| Value::str(c.encode_utf8(&mut [0; 4])))
                .collect()
        } else {
            s.split(sep).map(Value::str).collect()
        };
        Ok(Value::Array(Arc::new(parts)))
    }),
    // Defaults and conditions.
    h!("default", 1, V, |a| Ok(match a.get(1) {
        Some(v) if !empty(v) => v.clone(),
        _ => a[0].clone(),
    })),
    h!("empty", 1, 1, |a| Ok(Value::Bool(empty(&a[0])))),
    h!("coalesce", 0, V, |a| Ok(a
        .iter()
        .find(|v| !empty(v))
        .cloned()
        .unwrap_or(Value::Null))),
    h!("ternary", 3, 3, |a| match &a[2] {
        Value::Bool(b) => Ok(if *b { a[0].clone() } else { a[1].clone() }),
        v => Err(wrong_type("ternary", v, "bool")),
    }),
    // Lists and dicts.
    h!("list", 0, V, |a| Ok(Value::Array(Arc::new(a.to_vec())))),
    h!("dict", 0, V, |a| {
        let mut m = Map::new();
        for pair in a.chunks(2) {
            let k: Arc<str> = Arc::from(strval(&pair[0]).as_str());
            m.insert(k, pair.get(1).cloned().unwrap_or_else(|| Value::str("")));
        }
        Ok(Value::Object(Arc::new(m)))
    }),
    h!("hasKey", 2, 2, |a| {
        let m = map_arg("hasKey", &a[0])?;
        Ok(Value::Bool(m.contains_key(string_arg("hasKey", &a[1])?)))
    }),
    h!("get", 2, 2, |a| {
        let m = map_arg("get", &a[0])?;
        Ok(m.get(string_arg("get", &a[1])?)
            .cloned()
            .unwrap_or_else(|| Value::str("")))
    }),
    h!("first", 1, 1, |a| match &a[0] {
        Value::Array(x) => Ok(x.first().cloned().unwrap_or(Value::Null)),
        v => Err(format!(
            "error calling first: Cannot find first on type {}",
            kind(v)
        )),
    }),
    h!("last", 1, 1, |a| match &a[0] {
        Value::Array(x) => Ok(x.last().cloned().unwrap_or(Value::Null)),
        v => Err(format!(
            "error calling last: Cannot find last on type {}",
            kind(v)
        )),
    }),
    h!("slice", 1, 3, |a| match &a[0] {
        Value::Array(x) if x.is_empty() => Ok(Value::Null),
        Value::Array(_) => {
            let idx: Vec<Value> = a[1..].iter().map(|v| Value::Int(to_i64(v))).collect();
            let mut args = vec![a[0].clone()];
            args.extend(idx);
            slice_of("slice", &args)
        }
        v => Err(format!(
            "error calling slice: list should be type of slice or array but {}",
            kind(v)
        )),
    }),
];

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Where Go's decoder would report a bad base64 input.
fn b64_error_offset(e: &base64::DecodeError, s: &str) -> usize {
    match e {
        base64::DecodeError::InvalidByte(i, _) | base64::DecodeError::InvalidLastSymbol(i, _) => *i,
        _ => s.trim_end_matches('=').len(),
    }
}

/// Go's `json.Marshal` (sorted keys, HTML-escaped strings, Go's floats).
fn to_json(v: &Value) -> String {
    let mut out = Vec::with_capacity(64);
    write_value(&mut out, v);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `json .` straight to the output (the hot path of `{{json .}}`).
pub(super) fn write_json(out: &mut String, v: &Value) {
    let mut buf = std::mem::take(out).into_bytes();
    write_value(&mut buf, v);
    *out = String::from_utf8(buf)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
}

/// eKuiper's `base64`: scalars as their text, maps as JSON; nil and lists fail.
fn base64_ekuiper(a: &[Value]) -> Result<Value, String> {
    let text = match &a[0] {
        Value::Null => return Err("error calling base64: based64 error for nil".into()),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => float_to_fixed_string(*f),
        Value::Str(s) => s.to_string(),
        v @ Value::Object(_) => to_json(v),
        v => {
            return Err(format!(
                "error calling base64: Unsupported data type {} for base64 function.",
                kind(v)
            ))
        }
    };
    Ok(Value::str(&b64().encode(text.as_bytes())))
}

/// Go's `reflect.Kind` name of a value.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "invalid",
        Value::Bool(_) => "bool",
        Value::Int(_) | Value::Datetime(_) => "int64",
        Value::Float(_) => "float64",
        Value::Str(_) => "string",
        Value::Bytes(_) | Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

fn string_arg<'a>(func: &str, v: &'a Value) -> Result<&'a str, String> {
    match v {
        Value::Str(s) => Ok(s),
        v => Err(wrong_type(func, v, "string")),
    }
}

/// An `int` parameter: integers (Oort's int64 included) only.
fn int_arg(func: &str, v: &Value) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        v => Err(wrong_type(func, v, "int")),
    }
}

fn map_arg<'a>(func: &str, v: &'a Value) -> Result<&'a Map, String> {
    match v {
        Value::Object(m) => Ok(m),
        v => Err(wrong_type(func, v, "map[string]interface {}")),
    }
}

fn byte_range(func: &str, s: &str, i: i64, j: i64) -> Result<Value, String> {
    let (i, j) = (i.max(0) as usize, j.max(0) as usize);
    if i > j || j > s.len() {
        return Err(format!(
            "error calling {func}: runtime error: slice bounds out of range [{i}:{j}]"
        ));
    }
    Ok(match s.get(i..j) {
        Some(t) => Value::str(t),
        None => Value::str(&String::from_utf8_lossy(&s.as_bytes()[i..j])),
    })
}

/// `cast.ToInt64`: floats truncate, strings parse (base prefixes, a
/// trailing `.0`), booleans are 0/1, anything else 0.
pub(super) fn to_i64(v: &Value) -> i64 {
    match v {
        Value::Int(i) | Value::Datetime(i) => *i,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::Str(s) => parse_int_go(s).unwrap_or(0),
        _ => 0,
    }
}

fn parse_int_go(s: &str) -> Option<i64> {
    let s = match s.find('.') {
        Some(i) if s[i + 1..].bytes().all(|b| b == b'0') => &s[..i],
        _ => s,
    };
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let v = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()?
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()?
    } else if lower.len() > 1 && lower.starts_with('0') {
        i64::from_str_radix(&lower[1..], 8).ok()?
    } else {
        if !lower.bytes().all(|b| b.is_ascii_digit()) || lower.is_empty() {
            return None;
        }
        lower.parse::<i64>().ok()?
    };
    Some(if neg { -v } else { v })
}

/// `cast.ToFloat64`.
fn to_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) | Value::Datetime(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => s.parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// Sprig's `strval`: strings as they are, anything else `fmt.Sprintf("%v")`.
fn strval(v: &Value) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        v => {
            let mut s = String::new();
            gofmt::write_v(&mut s, v);
            s
        }
    }
}

fn strslice(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().filter(|x| !x.is_null()).map(strval).collect(),
        Value::Null => Vec::new(),
        v => vec![strval(v)],
    }
}

/// Sprig's `empty`: Go's template truth, negated.
fn empty(v: &Value) -> bool {
    !truth(v)
}

fn indent(n: i64, s: &str) -> String {
    let pad = " ".repeat(n.max(0) as usize);
    format!("{pad}{}", s.replace('\n', &format!("\n{pad}")))
}

/// `strings.Replace(s, old, new, -1)` (an empty `old` inserts between runes).
fn go_replace(s: &str, old: &str, new: &str) -> String {
    if old.is_empty() {
        let mut out = String::from(new);
        for c in s.chars() {
            out.push(c);
            out.push_str(new);
        }
        return out;
    }
    s.replace(old, new)
}

/// `strings.Title`: upper-cases the first letter of each word.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev: Option<char> = None;
    for c in s.chars() {
        let boundary = match prev {
            None => true,
            Some(p) if p.is_ascii() => !(p.is_ascii_alphanumeric() || p == '_'),
            Some(p) if p.is_alphanumeric() => false,
            Some(p) => p.is_whitespace(),
        };
        if boundary {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev = Some(c);
    }
    out
}
