//! String functions (`concat` … `upper`, `format`). Non-string arguments are
//! read with eKuiper's `ToStringAlways` (Go `%v`). Positions (`indexof`,
//! `substring`) count characters, not bytes, so multi-byte text never splits.

use std::fmt::Write as _;

use oort_core::Value;

use crate::util::{
    any_null, arg, f64_arg, int_strict, text, vstr, vstring, with_regex, FnResult, MAX_GENERATED,
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
    f!("concat", 1, None, concat),
    f!("endswith", 2, Some(2), endswith),
    f!("indexof", 2, Some(2), indexof),
    f!("length", 1, Some(1), length),
    f!("lower", 1, Some(1), lower),
    f!("lpad", 2, Some(2), lpad),
    f!("ltrim", 1, Some(1), ltrim),
    f!("numbytes", 1, Some(1), numbytes),
    f!("regexp_matches", 2, Some(2), regexp_matches),
    f!("regexp_replace", 3, Some(3), regexp_replace),
    f!("regexp_substr", 2, Some(2), regexp_substr),
    f!("reverse", 1, Some(1), reverse),
    f!("rpad", 2, Some(2), rpad),
    f!("rtrim", 1, Some(1), rtrim),
    f!("substring", 2, Some(3), substring),
    f!("startswith", 2, Some(2), startswith),
    f!("split_value", 3, Some(3), split_value),
    f!("trim", 1, Some(1), trim),
    f!("upper", 1, Some(1), upper),
    f!("format", 2, Some(3), format),
];

fn concat(args: &[Value]) -> FnResult {
    let mut out = String::new();
    for a in args {
        out.push_str(&text(a));
    }
    Ok(vstring(out))
}

fn endswith(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Bool(false));
    }
    Ok(Value::Bool(
        text(arg(args, 0)).ends_with(&*text(arg(args, 1))),
    ))
}

fn startswith(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Bool(false));
    }
    Ok(Value::Bool(
        text(arg(args, 0)).starts_with(&*text(arg(args, 1))),
    ))
}

fn indexof(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Int(-1));
    }
    let hay = text(arg(args, 0));
    let needle = text(arg(args, 1));
    Ok(Value::Int(match hay.find(&*needle) {
        Some(byte) => hay[..byte].chars().count() as i64,
        None => -1,
    }))
}

fn length(args: &[Value]) -> FnResult {
    Ok(Value::Int(match arg(args, 0) {
        Value::Null => 0,
        Value::Array(a) => a.len() as i64,
        Value::Object(o) => o.len() as i64,
        Value::Bytes(b) => b.len() as i64,
        other => text(other).chars().count() as i64,
    }))
}

fn numbytes(args: &[Value]) -> FnResult {
    Ok(Value::Int(match arg(args, 0) {
        Value::Null => 0,
        Value::Bytes(b) => b.len() as i64,
        other => text(other).len() as i64,
    }))
}

#[inline]
fn map_text(args: &[Value], op: impl FnOnce(&str) -> String) -> FnResult {
    let a = arg(args, 0);
    if a.is_null() {
        return Ok(Value::Null);
    }
    Ok(vstring(op(&text(a))))
}

/// Applies a sub-slicing operation; an unchanged string argument is returned
/// as is (shared, no allocation).
#[inline]
fn slice_text(args: &[Value], op: fn(&str) -> &str) -> FnResult {
    let a = arg(args, 0);
    if let Value::Str(s) = a {
        let r = op(s);
        return Ok(if r.len() == s.len() {
            a.clone()
        } else {
            vstr(r)
        });
    }
    map_text(args, |s| op(s).to_string())
}

/// Case mapping that reuses the argument when nothing changes.
#[inline]
fn case_text(args: &[Value], upper: bool) -> FnResult {
    let a = arg(args, 0);
    if let Value::Str(s) = a {
        let unchanged = if upper {
            !s.chars().any(|c| c.is_lowercase())
        } else {
            !s.chars().any(|c| c.is_uppercase())
        };
        if unchanged && s.is_ascii() {
            return Ok(a.clone());
        }
    }
    map_text(
        args,
        if upper {
            str::to_uppercase
        } else {
            str::to_lowercase
        },
    )
}

fn lower(args: &[Value]) -> FnResult {
    case_text(args, false)
}
fn upper(args: &[Value]) -> FnResult {
    case_text(args, true)
}
fn trim(args: &[Value]) -> FnResult {
    slice_text(args, str::trim)
}
fn ltrim(args: &[Value]) -> FnResult {
    slice_text(args, str::trim_start)
}
fn rtrim(args: &[Value]) -> FnResult {
    slice_text(args, str::trim_end)
}
fn reverse(args: &[Value]) -> FnResult {
    map_text(args, |s| s.chars().rev().collect())
}

fn pad_count(name: &'static str, v: &Value) -> Result<usize, FnError> {
    let n = int_strict(name, v)?;
    if n < 0 {
        return Err(FnError::call(name, format!("negative pad length {n}")));
    }
    let n = n as usize;
    if n > MAX_GENERATED {
        return Err(FnError::call(name, format!("pad length {n} is too large")));
    }
    Ok(n)
}

fn lpad(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let n = pad_count("lpad", arg(args, 1))?;
    let s = text(arg(args, 0));
    let mut out = String::with_capacity(n + s.len());
    out.extend(std::iter::repeat_n(' ', n));
    out.push_str(&s);
    Ok(vstring(out))
}

fn rpad(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let n = pad_count("rpad", arg(args, 1))?;
    let s = text(arg(args, 0));
    let mut out = String::with_capacity(n + s.len());
    out.push_str(&s);
    out.extend(std::iter::repeat_n(' ', n));
    Ok(vstring(out))
}

fn regexp_matches(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Bool(false));
    }
    let s = text(arg(args, 0));
    let pat = text(arg(args, 1));
    with_regex("regexp_matches", &pat, |re| Value::Bool(re.is_match(&s)))
}

fn regexp_replace(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let s = text(arg(args, 0));
    let pat = text(arg(args, 1));
    let rep = text(arg(args, 2));
    with_regex("regexp_replace", &pat, |re| {
        vstr(&re.replace_all(&s, rep.as_ref()))
    })
}

fn regexp_substr(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let s = text(arg(args, 0));
    let pat = text(arg(args, 1));
    with_regex("regexp_substr", &pat, |re| {
        vstr(re.find(&s).map_or("", |m| m.as_str()))
    })
}

/// Byte offset of the `n`-th character of `s` (or `s.len()` past the end).
fn char_offset(s: &str, n: usize) -> usize {
    s.char_indices().nth(n).map_or(s.len(), |(b, _)| b)
}

fn substring(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let s = text(arg(args, 0));
    let start = int_strict("substring", arg(args, 1))?;
    if start < 0 {
        return Err(FnError::call(
            "substring",
            "start index must be a positive number",
        ));
    }
    let from = char_offset(&s, start as usize);
    if args.len() > 2 {
        let end = int_strict("substring", arg(args, 2))?;
        if end < 0 {
            return Err(FnError::call(
                "substring",
                "end index must be a positive number",
            ));
        }
        if start > end {
            return Err(FnError::call(
                "substring",
                "start index must be smaller than end index",
            ));
        }
        let to = char_offset(&s, end as usize);
        return Ok(vstr(&s[from..to]));
    }
    Ok(vstr(&s[from..]))
}

fn split_value(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let s = text(arg(args, 0));
    let sep = text(arg(args, 1));
    let idx = int_strict("split_value", arg(args, 2))?;
    // Go's strings.Split: an empty separator splits into characters.
    let parts: Vec<&str> = if sep.is_empty() {
        s.char_indices()
            .map(|(b, c)| &s[b..b + c.len_utf8()])
            .collect()
    } else {
        s.split(&*sep).collect()
    };
    let len = parts.len() as i64;
    let pos = if idx < 0 { len + idx } else { idx };
    if pos < 0 || pos >= len {
        return Err(FnError::call(
            "split_value",
            format!("{idx} out of index array (size = {len})"),
        ));
    }
    Ok(vstr(parts[pos as usize]))
}

/// `format(x, decimals[, locale])`: fixed decimals; with a locale such as
/// `en_US` or `de_DE` the integer part is grouped by thousands with that
/// locale's separators.
fn format(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let x = f64_arg("format", arg(args, 0))?;
    let d = int_strict("format", arg(args, 1))?;
    if d < 0 {
        return Err(FnError::call(
            "format",
            "the decimal places must greater or equal than 0",
        ));
    }
    let d = d.min(100) as usize;
    let plain = format!("{x:.d$}");
    if args.len() < 3 {
        return Ok(vstring(plain));
    }
    let loc = text(arg(args, 2));
    let Some((group, decimal)) = locale_separators(&loc) else {
        return Err(FnError::call(
            "format",
            format!("not support for the specific locale:{loc}"),
        ));
    };
    let (sign, digits) = match plain.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", plain.as_str()),
    };
    let (int_part, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let mut out = String::with_capacity(plain.len() + 8);
    out.push_str(sign);
    let n = int_part.len();
    for (i, c) in int_part.chars().enumerate() {
        if i > 0 && (n - i) % 3 == 0 {
            out.push_str(group);
        }
        out.push(c);
    }
    if let Some(f) = frac {
        let _ = write!(out, "{decimal}{f}");
    }
    Ok(vstring(out))
}

const NBSP: &str = "\u{a0}";
const APOS: &str = "\u{2019}";

/// Thousands and decimal separators of a `lang_REGION` locale, or `None`
/// when the locale is malformed or has no region.
fn locale_separators(locale: &str) -> Option<(&'static str, &'static str)> {
    let mut parts = locale.split(['_', '-']);
    let lang = parts.next()?.to_ascii_lowercase();
    let region = parts.next()?.to_ascii_uppercase();
    if parts.next().is_some()
        || !(2..=3).contains(&lang.len())
        || !lang.bytes().all(|b| b.is_ascii_lowercase())
        || !(region.len() == 2 && region.bytes().all(|b| b.is_ascii_uppercase())
            || region.len() == 3 && region.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    const COMMA_DOT: (&str, &str) = (",", ".");
    const DOT_COMMA: (&str, &str) = (".", ",");
    const SPACE_COMMA: (&str, &str) = (NBSP, ",");
    let seps = match (lang.as_str(), region.as_str()) {
        ("de" | "it" | "rm", "CH") => (APOS, "."),
        ("de", "AT") | ("en", "ZA") | ("es", "CR") | ("pt", "PT") => SPACE_COMMA,
        ("fr", "LU") => DOT_COMMA,
        ("ar", "DZ" | "LB" | "LY" | "MA" | "TN") => DOT_COMMA,
        ("es", "DO" | "GT" | "HN" | "MX" | "NI" | "PA" | "PE" | "PR" | "SV" | "US") => COMMA_DOT,
        (
            "de" | "es" | "it" | "nl" | "pt" | "da" | "el" | "id" | "tr" | "vi" | "ro" | "sl"
            | "sr" | "hr" | "mk" | "is" | "fo" | "gl" | "ca" | "eu",
            _,
        ) => DOT_COMMA,
        (
            "fr" | "ru" | "uk" | "be" | "bg" | "cs" | "sk" | "pl" | "fi" | "sv" | "nb" | "nn"
            | "et" | "lt" | "lv" | "hu" | "sq" | "kk",
            _,
        ) => SPACE_COMMA,
        _ => COMMA_DOT,
    };
    Some(seps)
}

#[cfg(test)]
mod tests {
    use crate::scalar;
    use oort_core::Value;
    use std::sync::Arc;

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
    const N: Value = Value::Null;

    #[test]
    fn table() {
        let arr = Value::Array(Arc::new(vec![i(1), i(2), i(3)]));
        let cases: Vec<(&str, Vec<Value>, Value)> = vec![
            ("concat", vec![s("1"), N, s("2")], s("12")),
            (
                "concat",
                vec![s("a"), i(1), fl(2.5), b(true)],
                s("a12.5true"),
            ),
            ("endswith", vec![s("hello"), s("lo")], b(true)),
            ("endswith", vec![s("hello"), s("he")], b(false)),
            ("endswith", vec![N, s("he")], b(false)),
            ("startswith", vec![s("hello"), s("he")], b(true)),
            ("startswith", vec![s("hello"), N], b(false)),
            ("indexof", vec![s("mya"), s("a")], i(2)),
            ("indexof", vec![s("héllo"), s("l")], i(2)),
            ("indexof", vec![s("mya"), s("z")], i(-1)),
            ("indexof", vec![N, s("a")], i(-1)),
            ("length", vec![s("héllo")], i(5)),
            ("length", vec![arr.clone()], i(3)),
            ("length", vec![N], i(0)),
            ("lower", vec![s("HeLLo")], s("hello")),
            ("lower", vec![N], N),
            ("upper", vec![s("red")], s("RED")),
            ("upper", vec![N], N),
            ("lpad", vec![s("a"), i(2)], s("  a")),
            ("lpad", vec![N, i(2)], N),
            ("rpad", vec![s("a"), i(2)], s("a  ")),
            ("ltrim", vec![s("  a ")], s("a ")),
            ("rtrim", vec![s("  a ")], s("  a")),
            ("trim", vec![s("\t a \n")], s("a")),
            ("trim", vec![N], N),
            ("numbytes", vec![s("héllo")], i(6)),
            ("numbytes", vec![N], i(0)),
            ("regexp_matches", vec![s("abc123"), s("[0-9]+")], b(true)),
            ("regexp_matches", vec![s("abc"), s("^[0-9]+$")], b(false)),
            ("regexp_matches", vec![N, s("a")], b(false)),
            (
                "regexp_replace",
                vec![s("a1b22"), s("[0-9]+"), s("#")],
                s("a#b#"),
            ),
            (
                "regexp_replace",
                vec![s("john smith"), s("(\\w+) (\\w+)"), s("$2 $1")],
                s("smith john"),
            ),
            ("regexp_replace", vec![N, s("a"), s("b")], N),
            ("regexp_substr", vec![s("abc123def"), s("[0-9]+")], s("123")),
            ("regexp_substr", vec![s("abc"), s("[0-9]+")], s("")),
            ("reverse", vec![s("abé")], s("éba")),
            ("reverse", vec![N], N),
            ("substring", vec![s("hello"), i(1)], s("ello")),
            ("substring", vec![s("hello"), i(1), i(3)], s("el")),
            ("substring", vec![s("hello"), i(9)], s("")),
            ("substring", vec![s("hello"), i(2), i(99)], s("llo")),
            ("substring", vec![s("héllo"), i(1), i(2)], s("é")),
            ("substring", vec![N, i(1)], N),
            ("split_value", vec![s("a/b/c"), s("/"), i(0)], s("a")),
            ("split_value", vec![s("a/b/c"), s("/"), i(-1)], s("c")),
            ("split_value", vec![s("abc"), s(""), i(1)], s("b")),
            ("split_value", vec![N, s("/"), i(0)], N),
            ("format", vec![fl(12332.123456), i(4)], s("12332.1235")),
            ("format", vec![fl(12332.1), i(4)], s("12332.1000")),
            ("format", vec![fl(12332.2), i(0)], s("12332")),
            ("format", vec![i(5), i(2)], s("5.00")),
            (
                "format",
                vec![fl(12332.2), i(2), s("en_US")],
                s("12,332.20"),
            ),
            (
                "format",
                vec![fl(12332.2), i(2), s("de_DE")],
                s("12.332,20"),
            ),
            (
                "format",
                vec![fl(-123456.7899), i(2), s("de_CH")],
                s("-123\u{2019}456.79"),
            ),
            (
                "format",
                vec![fl(12332.2), i(2), s("fr_FR")],
                s("12\u{a0}332,20"),
            ),
            ("format", vec![fl(12332.2), i(0), s("ar_DZ")], s("12.332")),
            ("format", vec![fl(332.5), i(1), s("en_US")], s("332.5")),
            ("format", vec![N, i(2)], N),
        ];
        for (name, args, want) in cases {
            assert_eq!(call(name, &args), Ok(want), "{name}({args:?})");
        }
    }

    #[test]
    fn unchanged_strings_are_shared_not_copied() {
        let red: Arc<str> = Arc::from("RED");
        for (name, arg) in [("upper", red.clone()), ("trim", red.clone())] {
            let Ok(Value::Str(out)) = call(name, &[Value::Str(arg.clone())]) else {
                panic!("{name}")
            };
            assert!(Arc::ptr_eq(&out, &arg), "{name} copied its input");
        }
        let Ok(Value::Str(out)) = call("lower", &[Value::Str(red.clone())]) else {
            panic!()
        };
        assert_eq!(&*out, "red");
    }

    #[test]
    fn errors() {
        let cases: Vec<(&str, Vec<Value>, &str)> = vec![
            (
                "lpad",
                vec![s("a"), i(-1)],
                "call func lpad error: negative pad length -1",
            ),
            (
                "rpad",
                vec![s("a"), s("x")],
                "call func rpad error: cannot convert string(x) to int",
            ),
            (
                "regexp_matches",
                vec![s("a"), s("[a")],
                "call func regexp_matches error: error parsing regexp",
            ),
            (
                "substring",
                vec![s("abc"), i(-1)],
                "call func substring error: start index must be a positive number",
            ),
            (
                "substring",
                vec![s("abc"), i(2), i(1)],
                "call func substring error: start index must be smaller than end index",
            ),
            (
                "split_value",
                vec![s("a/b/c"), s("/"), i(3)],
                "call func split_value error: 3 out of index array (size = 3)",
            ),
            (
                "split_value",
                vec![s("a/b/c"), s("/"), i(-4)],
                "call func split_value error: -4 out of index array (size = 3)",
            ),
            (
                "format",
                vec![fl(1.0), i(-1)],
                "call func format error: the decimal places must greater or equal than 0",
            ),
            (
                "format",
                vec![fl(1.0), i(2), s("not_exist_locale")],
                "call func format error: not support for the specific locale:not_exist_locale",
            ),
            (
                "format",
                vec![fl(1.0), i(2), s("ff")],
                "call func format error: not support for the specific locale:ff",
            ),
            (
                "format",
                vec![s("x"), i(2)],
                "call func format error: cannot convert string(x) to float64",
            ),
        ];
        for (name, args, want) in cases {
            let got = call(name, &args);
            match got {
                Err(e) => assert!(e.starts_with(want), "{name}: {e} !~ {want}"),
                Ok(v) => panic!("{name}({args:?}) returned {v:?}, wanted error {want}"),
            }
        }
    }
}
