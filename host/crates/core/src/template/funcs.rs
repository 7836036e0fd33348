//! The functions a template can call: Go's builtins (`and`, `or`, `not`,
//! `eq`..., `len`, `index`, `slice`, `print*`, `html`, `js`, `urlquery`) and
//! the helpers eKuiper registers (`json`, `base64`, and a subset of the Sprig
//! library it installs; `helpers.rs`). A name eKuiper knows but Oort does not
//! implement is refused at compile time, naming it.

use std::cmp::Ordering;
use std::sync::Arc;

use super::helpers;
use super::TemplateError;
use crate::gofmt;
use crate::value::Value;

pub(super) type Plain = fn(&[Value]) -> Result<Value, String>;

#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    /// `and`/`or`: arguments evaluated lazily, an argument returned.
    And,
    Or,
    Plain(Plain),
}

#[derive(Debug)]
pub(super) struct FuncDef {
    pub name: &'static str,
    pub min: usize,
    /// `usize::MAX` for variadic functions.
    pub max: usize,
    pub kind: Kind,
}

pub(super) type Func = &'static FuncDef;

impl FuncDef {
    pub fn name(&self) -> &'static str {
        self.name
    }
}

const V: usize = usize::MAX;

/// A plain function's table entry: name, arity range, implementation.
macro_rules! f {
    ($name:literal, $min:expr, $max:expr, $f:expr) => {
        $crate::template::funcs::FuncDef {
            name: $name,
            min: $min,
            max: $max,
            kind: $crate::template::funcs::Kind::Plain($f),
        }
    };
}
pub(super) use f;

static FUNCS: &[FuncDef] = &[
    FuncDef {
        name: "and",
        min: 1,
        max: V,
        kind: Kind::And,
    },
    FuncDef {
        name: "or",
        min: 1,
        max: V,
        kind: Kind::Or,
    },
    f!("not", 1, 1, |a| Ok(Value::Bool(!truth(&a[0])))),
    f!("eq", 2, V, eq),
    f!("ne", 2, 2, |a| eq(a).map(|v| Value::Bool(!v.is_true()))),
    f!("lt", 2, 2, |a| cmp(a, |o| o == Ordering::Less)),
    f!("le", 2, 2, |a| cmp(a, |o| o != Ordering::Greater)),
    f!("gt", 2, 2, |a| cmp(a, |o| o == Ordering::Greater)),
    f!("ge", 2, 2, |a| cmp(a, |o| o != Ordering::Less)),
    f!("len", 1, 1, len),
    f!("index", 1, V, index),
    f!("print", 0, V, |a| {
        let mut s = String::new();
        gofmt::sprint(&mut s, a);
        Ok(Value::str(&s))
    }),
    f!("println", 0, V, |a| {
        let mut s = String::new();
        gofmt::sprintln(&mut s, a);
        Ok(Value::str(&s))
    }),
    f!("printf", 1, V, |a| {
        let Value::Str(fmt) = &a[0] else {
            return Err(wrong_type("printf", &a[0], "string"));
        };
        let mut s = String::new();
        gofmt::sprintf(&mut s, fmt, &a[1..])?;
        Ok(Value::str(&s))
    }),
    f!("html", 0, V, |a| Ok(Value::str(&html_escape(&eval_args(
        a
    ))))),
    f!("js", 0, V, |a| Ok(Value::str(&js_escape(&eval_args(a))))),
    f!("urlquery", 0, V, |a| Ok(Value::str(&query_escape(
        &eval_args(a)
    )))),
];

/// Names eKuiper accepts (Go builtins and the Sprig library) that Oort does
/// not implement: refused at compile time with a clear message.
const UNSUPPORTED: &[&str] = &[
    "call",
    "prop",
    "hello",
    "ago",
    "date",
    "date_in_zone",
    "date_modify",
    "dateInZone",
    "dateModify",
    "duration",
    "durationRound",
    "htmlDate",
    "htmlDateInZone",
    "must_date_modify",
    "mustDateModify",
    "mustToDate",
    "now",
    "toDate",
    "unixEpoch",
    "abbrev",
    "abbrevboth",
    "untitle",
    "initials",
    "randAlphaNum",
    "randAlpha",
    "randAscii",
    "randNumeric",
    "swapcase",
    "shuffle",
    "snakecase",
    "camelcase",
    "kebabcase",
    "wrap",
    "wrapWith",
    "plural",
    "sha1sum",
    "sha256sum",
    "sha512sum",
    "adler32sum",
    "seq",
    "toDecimal",
    "split",
    "splitn",
    "toStrings",
    "until",
    "untilStep",
    "randInt",
    "add1f",
    "addf",
    "subf",
    "divf",
    "mulf",
    "biggest",
    "maxf",
    "minf",
    "sortAlpha",
    "all",
    "any",
    "compact",
    "mustCompact",
    "fromJson",
    "toPrettyJson",
    "toRawJson",
    "mustFromJson",
    "mustToJson",
    "mustToPrettyJson",
    "mustToRawJson",
    "deepCopy",
    "mustDeepCopy",
    "typeOf",
    "typeIs",
    "typeIsLike",
    "kindOf",
    "kindIs",
    "deepEqual",
    "env",
    "expandenv",
    "getHostByName",
    "base",
    "dir",
    "clean",
    "ext",
    "isAbs",
    "osBase",
    "osClean",
    "osDir",
    "osExt",
    "osIsAbs",
    "b32enc",
    "b32dec",
    "tuple",
    "set",
    "unset",
    "pluck",
    "keys",
    "pick",
    "omit",
    "merge",
    "mergeOverwrite",
    "mustMerge",
    "mustMergeOverwrite",
    "values",
    "append",
    "mustAppend",
    "prepend",
    "mustPrepend",
    "mustFirst",
    "rest",
    "mustRest",
    "mustLast",
    "initial",
    "mustInitial",
    "reverse",
    "mustReverse",
    "uniq",
    "mustUniq",
    "without",
    "mustWithout",
    "has",
    "mustHas",
    "mustSlice",
    "concat",
    "dig",
    "chunk",
    "mustChunk",
    "bcrypt",
    "htpasswd",
    "genPrivateKey",
    "derivePassword",
    "buildCustomCert",
    "genCA",
    "genCAWithKey",
    "genSelfSignedCert",
    "genSelfSignedCertWithKey",
    "genSignedCert",
    "genSignedCertWithKey",
    "encryptAES",
    "decryptAES",
    "randBytes",
    "uuidv4",
    "semver",
    "semverCompare",
    "fail",
    "regexMatch",
    "mustRegexMatch",
    "regexFindAll",
    "mustRegexFindAll",
    "regexFind",
    "mustRegexFind",
    "regexReplaceAll",
    "mustRegexReplaceAll",
    "regexReplaceAllLiteral",
    "mustRegexReplaceAllLiteral",
    "regexSplit",
    "mustRegexSplit",
    "regexQuoteMeta",
    "urlParse",
    "urlJoin",
];

/// Finds a function by name; `Ok(None)` when Go would not know it either.
pub(super) fn lookup(name: &str) -> Result<Option<Func>, TemplateError> {
    // eKuiper's helpers override Go's builtins of the same name (`slice`).
    if let Some(f) = helpers::HELPERS.iter().find(|f| f.name == name) {
        return Ok(Some(f));
    }
    if let Some(f) = FUNCS.iter().find(|f| f.name == name) {
        return Ok(Some(f));
    }
    if UNSUPPORTED.contains(&name) {
        return Err(TemplateError(format!(
            "function {name:?} is not supported by Oort's templates (see docs/templates.md)"
        )));
    }
    Ok(None)
}

pub(super) fn check_arity(f: Func, n: usize) -> Result<(), TemplateError> {
    if n < f.min || n > f.max {
        let want = if f.max == V {
            format!("at least {}", f.min)
        } else if f.min == f.max {
            f.min.to_string()
        } else {
            format!("{} to {}", f.min, f.max)
        };
        return Err(TemplateError(format!(
            "wrong number of args for {}: want {want} got {n}",
            f.name
        )));
    }
    Ok(())
}

/// Go's template truth: false, 0, nil and empty strings, slices and maps are false.
pub(super) fn truth(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Float(f) => *f != 0.0,
        Value::Str(s) => !s.is_empty(),
        Value::Bytes(b) => !b.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
        Value::Datetime(_) => true,
    }
}

pub(super) fn wrong_type(func: &str, v: &Value, want: &str) -> String {
    match v {
        Value::Null => format!("{func}: invalid value; expected {want}"),
        v => format!(
            "{func}: wrong type for value; expected {want}; got {}",
            gofmt::type_name(v)
        ),
    }
}

/// `eq a b c...`: true when `a` equals any of the others. Integers and
/// floats compare by value (Oort keeps JSON integers as int64 where eKuiper
/// has float64 for every number, see docs/templates.md).
fn eq(a: &[Value]) -> Result<Value, String> {
    let x = &a[0];
    if matches!(x, Value::Array(_) | Value::Object(_)) {
        return Err("error calling eq: invalid type for comparison".into());
    }
    for y in &a[1..] {
        let t = match (x, y) {
            (Value::Null, Value::Null) => true,
            (Value::Null, _) | (_, Value::Null) => false,
            (Value::Bool(p), Value::Bool(q)) => p == q,
            (Value::Str(p), Value::Str(q)) => p == q,
            (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => x == y,
            (_, Value::Array(_) | Value::Object(_)) => {
                return Err("error calling eq: non-comparable types".into())
            }
            _ => return Err("error calling eq: incompatible types for comparison".into()),
        };
        if t {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

fn cmp(a: &[Value], want: fn(Ordering) -> bool) -> Result<Value, String> {
    let o = match (&a[0], &a[1]) {
        (Value::Int(p), Value::Int(q)) => p.cmp(q),
        (Value::Str(p), Value::Str(q)) => p.cmp(q),
        (x @ (Value::Int(_) | Value::Float(_)), y @ (Value::Int(_) | Value::Float(_))) => {
            let (p, q) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            match p.partial_cmp(&q) {
                Some(o) => o,
                None => return Ok(Value::Bool(false)),
            }
        }
        (Value::Null, _)
        | (_, Value::Null)
        | (Value::Bool(_), _)
        | (Value::Array(_), _)
        | (Value::Object(_), _) => return Err("invalid type for comparison".into()),
        _ => return Err("incompatible types for comparison".into()),
    };
    Ok(Value::Bool(want(o)))
}

fn len(a: &[Value]) -> Result<Value, String> {
    let n = match &a[0] {
        Value::Str(s) => s.len(),
        Value::Bytes(b) => b.len(),
        Value::Array(x) => x.len(),
        Value::Object(m) => m.len(),
        Value::Null => return Err("error calling len: len of nil pointer".into()),
        v => {
            return Err(format!(
                "error calling len: len of type {}",
                gofmt::type_name(v)
            ))
        }
    };
    Ok(Value::Int(n as i64))
}

fn int_index(v: &Value, len: usize, what: &str) -> Result<usize, String> {
    let Value::Int(i) = v else {
        return Err(format!(
            "error calling {what}: cannot index slice/array with type {}",
            gofmt::type_name(v)
        ));
    };
    if *i < 0 || *i as usize > len {
        return Err(format!("error calling {what}: index out of range: {i}"));
    }
    Ok(*i as usize)
}

fn index(a: &[Value]) -> Result<Value, String> {
    let mut item = a[0].clone();
    for ix in &a[1..] {
        item = match &item {
            Value::Array(x) => {
                let i = int_index(ix, x.len(), "index")?;
                match x.get(i) {
                    Some(v) => v.clone(),
                    None => return Err(format!("error calling index: index out of range: {i}")),
                }
            }
            Value::Str(s) => {
                let i = int_index(ix, s.len(), "index")?;
                match s.as_bytes().get(i) {
                    Some(b) => Value::Int(*b as i64),
                    None => return Err(format!("error calling index: index out of range: {i}")),
                }
            }
            Value::Object(m) => match ix {
                Value::Str(k) => m.get(k.as_ref()).cloned().unwrap_or(Value::Null),
                Value::Null => Value::Null,
                v => {
                    return Err(format!(
                        "error calling index: value has type {}; should be string",
                        gofmt::type_name(v)
                    ))
                }
            },
            Value::Null => return Err("error calling index: index of untyped nil".into()),
            v => {
                return Err(format!(
                    "error calling index: can't index item of type {}",
                    gofmt::type_name(v)
                ))
            }
        };
    }
    Ok(item)
}

/// Go's `slice x 1 2` on strings and arrays (eKuiper's Sprig `slice`
/// replaces it for arrays, see helpers.rs).
pub(super) fn slice_of(what: &str, a: &[Value]) -> Result<Value, String> {
    let (len, is_str) = match &a[0] {
        Value::Array(x) => (x.len(), false),
        Value::Str(s) => (s.len(), true),
        v => {
            return Err(format!(
                "error calling {what}: can't slice item of type {}",
                gofmt::type_name(v)
            ))
        }
    };
    let idx = &a[1..];
    if idx.len() > 2 {
        return Err(format!("error calling {what}: too many slice indexes"));
    }
    let i = match idx.first() {
        Some(v) => int_index(v, len, what)?,
        None => 0,
    };
    let j = match idx.get(1) {
        Some(v) => int_index(v, len, what)?,
        None => len,
    };
    if i > j {
        return Err(format!(
            "error calling {what}: invalid slice index: {i} > {j}"
        ));
    }
    Ok(match &a[0] {
        Value::Array(x) => Value::Array(Arc::new(x[i..j].to_vec())),
        Value::Str(s) => match s.get(i..j) {
            Some(t) => Value::str(t),
            None => Value::str(&String::from_utf8_lossy(&s.as_bytes()[i..j])),
        },
        _ => {
            debug_assert!(is_str);
            Value::Null
        }
    })
}

/// The text `html`, `js` and `urlquery` escape: the one string argument, or
/// `fmt.Sprint` of all of them (a nil argument prints `<no value>`).
fn eval_args(a: &[Value]) -> String {
    if let [Value::Str(s)] = a {
        return s.to_string();
    }
    let args: Vec<Value> = a
        .iter()
        .map(|v| match v {
            Value::Null => Value::str("<no value>"),
            v => v.clone(),
        })
        .collect();
    let mut s = String::new();
    gofmt::sprint(&mut s, &args);
    s
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => {
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
    }
    out
}
