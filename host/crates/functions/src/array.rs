//! Array functions (`cardinality`, `array_*`, `element_at`, `sequence`,
//! `repeat`, `kvpair_array_to_obj`). Indexes are 0-based; negative indexes
//! count from the end. Element equality is `Value`'s (`1 == 1.0`).

use std::cmp::Ordering;
use std::sync::Arc;

use ahash::AHashSet;
use oort_core::{Map, Value};

use crate::agg::Extreme;
use crate::util::{
    any_null, arg, go_v, int_strict, scalar_key, to_string_all, varray, vstring, FnResult,
    MAX_GENERATED,
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
    f!("cardinality", 1, Some(1), cardinality),
    f!("array_create", 0, None, array_create),
    f!("array_position", 2, Some(2), array_position),
    f!("element_at", 2, Some(2), element_at),
    f!("array_contains", 2, Some(2), array_contains),
    f!("array_remove", 2, Some(2), array_remove),
    f!("array_last_position", 2, Some(2), array_last_position),
    f!("array_contains_any", 2, Some(2), array_contains_any),
    f!("array_intersect", 2, Some(2), array_intersect),
    f!("array_union", 2, Some(2), array_union),
    f!("array_max", 1, Some(1), array_max),
    f!("array_min", 1, Some(1), array_min),
    f!("array_except", 2, Some(2), array_except),
    f!("repeat", 2, Some(2), repeat),
    f!("sequence", 2, Some(3), sequence),
    f!("array_cardinality", 1, Some(1), array_cardinality),
    f!("array_flatten", 1, Some(1), array_flatten),
    f!("array_distinct", 1, Some(1), array_distinct),
    f!("array_map", 2, Some(2), array_map),
    f!("array_join", 2, Some(3), array_join),
    f!("array_shuffle", 1, Some(1), array_shuffle),
    f!("array_sort", 1, Some(1), array_sort),
    f!("array_concat", 1, None, array_concat),
    f!("kvpair_array_to_obj", 1, Some(1), kvpair_array_to_obj),
];

const FIRST_NOT_ARRAY: &str = "first argument should be array of interface{}";
const SECOND_NOT_ARRAY: &str = "second argument should be array of interface{}";

fn first_array<'a>(name: &'static str, v: &'a Value) -> Result<&'a [Value], FnError> {
    match v {
        Value::Array(a) => Ok(a),
        _ => Err(FnError::call(name, FIRST_NOT_ARRAY)),
    }
}

fn second_array<'a>(name: &'static str, v: &'a Value) -> Result<&'a [Value], FnError> {
    match v {
        Value::Array(a) => Ok(a),
        _ => Err(FnError::call(name, SECOND_NOT_ARRAY)),
    }
}

fn cardinality(args: &[Value]) -> FnResult {
    Ok(Value::Int(match arg(args, 0) {
        Value::Array(a) => a.len() as i64,
        _ => 0,
    }))
}

/// The non-nil arguments as an array; nil when every argument is nil.
fn array_create(args: &[Value]) -> FnResult {
    let v: Vec<Value> = args.iter().filter(|a| !a.is_null()).cloned().collect();
    Ok(if v.is_empty() { Value::Null } else { varray(v) })
}

fn array_position(args: &[Value]) -> FnResult {
    match arg(args, 0) {
        Value::Null => Ok(Value::Int(-1)),
        a => {
            let a = first_array("array_position", a)?;
            let x = arg(args, 1);
            Ok(Value::Int(
                a.iter().position(|e| e == x).map_or(-1, |p| p as i64),
            ))
        }
    }
}

fn array_last_position(args: &[Value]) -> FnResult {
    match arg(args, 0) {
        Value::Null => Ok(Value::Int(-1)),
        a => {
            let a = first_array("array_last_position", a)?;
            let x = arg(args, 1);
            Ok(Value::Int(
                a.iter().rposition(|e| e == x).map_or(-1, |p| p as i64),
            ))
        }
    }
}

fn element_at(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    match arg(args, 0) {
        Value::Array(a) => {
            let idx = int_strict("element_at", arg(args, 1))?;
            let len = a.len() as i64;
            if idx >= len || idx < -len {
                return Err(FnError::call("element_at", "index out of range"));
            }
            let pos = if idx >= 0 { idx } else { len + idx };
            Ok(a[pos as usize].clone())
        }
        Value::Object(m) => match arg(args, 1) {
            Value::Str(k) => Ok(m.get(&**k).cloned().unwrap_or(Value::Null)),
            _ => Err(FnError::call(
                "element_at",
                "second argument should be string",
            )),
        },
        _ => Err(FnError::call(
            "element_at",
            "first argument should be []interface{} or map[string]interface{}",
        )),
    }
}

fn array_contains(args: &[Value]) -> FnResult {
    match arg(args, 0) {
        Value::Null => Ok(Value::Bool(false)),
        a => {
            let a = first_array("array_contains", a)?;
            let x = arg(args, 1);
            Ok(Value::Bool(a.iter().any(|e| e == x)))
        }
    }
}

fn array_remove(args: &[Value]) -> FnResult {
    match arg(args, 0) {
        Value::Null => Ok(Value::Null),
        a => {
            let a = first_array("array_remove", a)?;
            let x = arg(args, 1);
            Ok(varray(a.iter().filter(|e| *e != x).cloned().collect()))
        }
    }
}

fn array_contains_any(args: &[Value]) -> FnResult {
    match arg(args, 0) {
        Value::Null => Ok(Value::Bool(false)),
        a => {
            let a = first_array("array_contains_any", a)?;
            let b = second_array("array_contains_any", arg(args, 1))?;
            Ok(Value::Bool(a.iter().any(|x| b.contains(x))))
        }
    }
}

/// Pushes `v` unless an equal value was already kept.
fn push_unique(out: &mut Vec<Value>, seen: &mut AHashSet<String>, v: &Value) {
    // Keyed on type + text so that structurally equal arrays/objects also match.
    let key = format!("{}:{}", v.type_name(), go_v(v));
    if seen.insert(key) {
        out.push(v.clone());
    }
}

fn array_intersect(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let a = first_array("array_intersect", arg(args, 0))?;
    let b = second_array("array_intersect", arg(args, 1))?;
    let mut out = Vec::new();
    let mut seen = AHashSet::new();
    for x in b {
        if a.contains(x) {
            push_unique(&mut out, &mut seen, x);
        }
    }
    Ok(varray(out))
}

fn array_union(args: &[Value]) -> FnResult {
    let mut out = Vec::new();
    let mut seen = AHashSet::new();
    for (i, v) in args.iter().take(2).enumerate() {
        match v {
            Value::Null => {}
            Value::Array(a) => a.iter().for_each(|x| push_unique(&mut out, &mut seen, x)),
            _ => {
                let msg = if i == 0 {
                    FIRST_NOT_ARRAY
                } else {
                    SECOND_NOT_ARRAY
                };
                return Err(FnError::call("array_union", msg));
            }
        }
    }
    Ok(varray(out))
}

fn array_except(args: &[Value]) -> FnResult {
    let a = match arg(args, 0) {
        Value::Null => return Ok(Value::Null),
        a => first_array("array_except", a)?,
    };
    let b: &[Value] = match arg(args, 1) {
        Value::Null => &[],
        b => second_array("array_except", b)?,
    };
    let mut out = Vec::new();
    let mut seen = AHashSet::new();
    for x in a {
        if !b.contains(x) {
            push_unique(&mut out, &mut seen, x);
        }
    }
    Ok(varray(out))
}

fn extreme(name: &'static str, args: &[Value], max: bool) -> FnResult {
    let a = arg(args, 0);
    if a.is_null() {
        return Ok(Value::Null);
    }
    let mut e = Extreme::new(name, max);
    for x in first_array(name, a)? {
        e.push(x)?;
    }
    Ok(e.value())
}

fn array_max(args: &[Value]) -> FnResult {
    extreme("array_max", args, true)
}
fn array_min(args: &[Value]) -> FnResult {
    extreme("array_min", args, false)
}

fn generated_len(name: &'static str, n: i64) -> Result<usize, FnError> {
    if n < 0 {
        return Err(FnError::call(name, format!("invalid count {n}")));
    }
    if n as u64 > MAX_GENERATED as u64 {
        return Err(FnError::call(name, format!("{n} elements are too many")));
    }
    Ok(n as usize)
}

/// `repeat(value, count)`: an array of `count` copies of `value`.
fn repeat(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let Value::Int(n) = arg(args, 1) else {
        return Err(FnError::call("repeat", "second argument should be int"));
    };
    let n = generated_len("repeat", *n)?;
    Ok(varray(vec![arg(args, 0).clone(); n]))
}

/// `sequence(start, stop[, step])`: integers from `start` to `stop`
/// inclusive; the default step is 1 or -1 towards `stop`.
fn sequence(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let Value::Int(start) = arg(args, 0) else {
        return Err(FnError::call("sequence", "first argument should be int"));
    };
    let Value::Int(stop) = arg(args, 1) else {
        return Err(FnError::call("sequence", "second argument should be int"));
    };
    let step = if args.len() > 2 {
        match arg(args, 2) {
            Value::Int(0) => {
                return Err(FnError::call(
                    "sequence",
                    "invalid step: should not be zero",
                ))
            }
            Value::Int(s) => *s,
            _ => return Err(FnError::call("sequence", "third argument should be int")),
        }
    } else if start <= stop {
        1
    } else {
        -1
    };
    let (start, stop, step) = (i128::from(*start), i128::from(*stop), i128::from(step));
    let n = (stop - start) / step + 1;
    if n <= 0 {
        return Ok(varray(Vec::new()));
    }
    let n = generated_len("sequence", i64::try_from(n).unwrap_or(i64::MAX))?;
    Ok(varray(
        (0..n as i128)
            .map(|i| Value::Int((start + i * step) as i64))
            .collect(),
    ))
}

/// The number of non-nil elements.
fn array_cardinality(args: &[Value]) -> FnResult {
    match arg(args, 0) {
        Value::Null => Ok(Value::Int(0)),
        a => {
            let a = first_array("array_cardinality", a)?;
            Ok(Value::Int(a.iter().filter(|v| !v.is_null()).count() as i64))
        }
    }
}

/// Flattens one level of nesting.
fn array_flatten(args: &[Value]) -> FnResult {
    let a = match arg(args, 0) {
        Value::Null => return Ok(Value::Null),
        a => first_array("array_flatten", a)?,
    };
    let mut out = Vec::with_capacity(a.len());
    for v in a {
        match v {
            Value::Array(inner) => out.extend(inner.iter().cloned()),
            other => out.push(other.clone()),
        }
    }
    Ok(varray(out))
}

/// Drops repeated scalar elements (first one kept); arrays, objects and
/// bytes are never deduplicated, as in eKuiper.
fn array_distinct(args: &[Value]) -> FnResult {
    let a = match arg(args, 0) {
        Value::Null => return Ok(Value::Null),
        a => first_array("array_distinct", a)?,
    };
    let mut seen = AHashSet::with_capacity(a.len());
    let mut out = Vec::with_capacity(a.len());
    for v in a {
        match scalar_key(v) {
            Some(k) => {
                if seen.insert(k) {
                    out.push(v.clone());
                }
            }
            None => out.push(v.clone()),
        }
    }
    Ok(varray(out))
}

/// `array_map("upper", arr)`: applies a one-argument scalar function.
fn array_map(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let Value::Str(fname) = arg(args, 0) else {
        return Err(FnError::call(
            "array_map",
            "first argument should be string",
        ));
    };
    let a = second_array("array_map", arg(args, 1))?;
    let f = crate::scalar(fname).ok_or_else(|| {
        FnError::call("array_map", format!("unknown built-in function: {fname}."))
    })?;
    if f.min_args > 1 || f.max_args == Some(0) {
        return Err(FnError::call(
            "array_map",
            format!("validate {fname} arguments failed"),
        ));
    }
    let mut out = Vec::with_capacity(a.len());
    for v in a {
        out.push((f.call)(std::slice::from_ref(v))?);
    }
    Ok(varray(out))
}

/// `array_join(arr, delimiter[, null_replacement])`.
fn array_join(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let a = first_array("array_join", arg(args, 0))?;
    let Value::Str(delim) = arg(args, 1) else {
        return Err(FnError::call(
            "array_join",
            "second argument should be string",
        ));
    };
    let null_rep = match args.get(2) {
        None => "",
        Some(Value::Str(s)) => s,
        Some(_) => {
            return Err(FnError::call(
                "array_join",
                "third argument should be string",
            ))
        }
    };
    let mut out = String::new();
    let mut first = true;
    for v in a {
        let piece = match v {
            Value::Null if null_rep.is_empty() => continue,
            Value::Null => null_rep.to_string(),
            Value::Str(s) => s.to_string(),
            other => to_string_all(other),
        };
        if !first {
            out.push_str(delim);
        }
        first = false;
        out.push_str(&piece);
    }
    Ok(vstring(out))
}

fn array_shuffle(args: &[Value]) -> FnResult {
    use rand::seq::SliceRandom;
    let a = match arg(args, 0) {
        Value::Null => return Ok(Value::Null),
        a => first_array("array_shuffle", a)?,
    };
    let mut v = a.to_vec();
    v.shuffle(&mut rand::thread_rng());
    Ok(varray(v))
}

fn sort_rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Int(_) | Value::Float(_) | Value::Datetime(_) => 2,
        Value::Str(_) => 3,
        _ => 4,
    }
}

/// Total order used by `array_sort`: nil < bools < numbers < strings <
/// everything else (by text).
pub(crate) fn sort_cmp(a: &Value, b: &Value) -> Ordering {
    let (ra, rb) = (sort_rank(a), sort_rank(b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Str(x), Value::Str(y)) => x.cmp(y),
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => go_v(a).cmp(&go_v(b)),
        },
    }
}

fn array_sort(args: &[Value]) -> FnResult {
    let a = match arg(args, 0) {
        Value::Null => return Ok(Value::Null),
        Value::Array(a) => a,
        _ => {
            return Err(FnError::call(
                "array_sort",
                "array elements should be array",
            ))
        }
    };
    let mut v = a.to_vec();
    v.sort_by(sort_cmp);
    Ok(varray(v))
}

/// Concatenates the array arguments, skipping nils.
fn array_concat(args: &[Value]) -> FnResult {
    let mut out = Vec::new();
    let mut any = false;
    for a in args {
        match a {
            Value::Null => {}
            Value::Array(x) => {
                any = true;
                out.extend(x.iter().cloned());
            }
            _ => {
                return Err(FnError::call(
                    "array_concat",
                    "array elements should be array",
                ))
            }
        }
    }
    Ok(if any { varray(out) } else { Value::Null })
}

/// `[{"key":k,"value":v}, …]` → `{k: v, …}`.
fn kvpair_array_to_obj(args: &[Value]) -> FnResult {
    let a = match arg(args, 0) {
        Value::Null => return Ok(Value::Null),
        a => first_array("kvpair_array_to_obj", a)?,
    };
    let mut m = Map::new();
    for item in a {
        let Value::Object(pair) = item else {
            return Err(FnError::call(
                "kvpair_array_to_obj",
                "array item should be map[string]interface{}",
            ));
        };
        match (pair.len(), pair.get("key"), pair.get("value")) {
            (2, Some(Value::Str(k)), Some(v)) => {
                m.insert(k.clone(), v.clone());
            }
            _ => {
                return Err(FnError::call(
                    "kvpair_array_to_obj",
                    "array item should be key-value pair",
                ))
            }
        }
    }
    Ok(Value::Object(Arc::new(m)))
}

#[cfg(test)]
mod tests {
    use crate::scalar;
    use oort_core::{Map, Value};
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
    fn a(v: Vec<Value>) -> Value {
        Value::Array(Arc::new(v))
    }
    fn obj(kv: &[(&str, Value)]) -> Value {
        let m: Map = kv.iter().map(|(k, v)| (Arc::from(*k), v.clone())).collect();
        Value::Object(Arc::new(m))
    }
    const N: Value = Value::Null;

    #[test]
    fn table() {
        let arr = a(vec![i(1), i(2), i(3), i(2)]);
        let cases: Vec<(&str, Vec<Value>, Value)> = vec![
            ("cardinality", vec![arr.clone()], i(4)),
            ("cardinality", vec![s("x")], i(0)),
            ("cardinality", vec![N], i(0)),
            ("array_create", vec![i(1), N, s("a")], a(vec![i(1), s("a")])),
            ("array_create", vec![N], N),
            ("array_position", vec![arr.clone(), i(2)], i(1)),
            ("array_position", vec![arr.clone(), i(9)], i(-1)),
            ("array_position", vec![N, i(2)], i(-1)),
            ("array_last_position", vec![arr.clone(), i(2)], i(3)),
            ("array_last_position", vec![N, i(2)], i(-1)),
            ("element_at", vec![arr.clone(), i(0)], i(1)),
            ("element_at", vec![arr.clone(), i(-1)], i(2)),
            ("element_at", vec![obj(&[("k", i(7))]), s("k")], i(7)),
            ("element_at", vec![obj(&[("k", i(7))]), s("z")], N),
            ("element_at", vec![N, i(0)], N),
            ("array_contains", vec![arr.clone(), i(3)], b(true)),
            ("array_contains", vec![arr.clone(), fl(3.0)], b(true)),
            ("array_contains", vec![arr.clone(), s("3")], b(false)),
            ("array_contains", vec![N, i(3)], b(false)),
            ("array_remove", vec![arr.clone(), i(2)], a(vec![i(1), i(3)])),
            ("array_remove", vec![N, i(2)], N),
            (
                "array_contains_any",
                vec![arr.clone(), a(vec![i(9), i(3)])],
                b(true),
            ),
            (
                "array_contains_any",
                vec![arr.clone(), a(vec![i(9)])],
                b(false),
            ),
            (
                "array_intersect",
                vec![arr.clone(), a(vec![i(2), i(3), i(2), i(7)])],
                a(vec![i(2), i(3)]),
            ),
            ("array_intersect", vec![N, arr.clone()], N),
            (
                "array_union",
                vec![a(vec![i(1), i(2)]), a(vec![i(2), i(3)])],
                a(vec![i(1), i(2), i(3)]),
            ),
            ("array_union", vec![N, a(vec![i(1), i(1)])], a(vec![i(1)])),
            (
                "array_except",
                vec![arr.clone(), a(vec![i(2)])],
                a(vec![i(1), i(3)]),
            ),
            ("array_except", vec![N, arr.clone()], N),
            ("array_max", vec![arr.clone()], i(3)),
            ("array_max", vec![a(vec![N, fl(1.5), i(2), N])], i(2)),
            ("array_max", vec![a(vec![s("b"), s("c"), s("a")])], s("c")),
            ("array_max", vec![a(vec![])], N),
            ("array_max", vec![N], N),
            ("array_min", vec![arr.clone()], i(1)),
            ("array_min", vec![a(vec![fl(1.5), i(2)])], fl(1.5)),
            ("array_min", vec![N], N),
            (
                "repeat",
                vec![s("x"), i(3)],
                a(vec![s("x"), s("x"), s("x")]),
            ),
            ("repeat", vec![N, i(3)], N),
            (
                "sequence",
                vec![i(1), i(5)],
                a(vec![i(1), i(2), i(3), i(4), i(5)]),
            ),
            ("sequence", vec![i(3), i(1)], a(vec![i(3), i(2), i(1)])),
            (
                "sequence",
                vec![i(1), i(10), i(4)],
                a(vec![i(1), i(5), i(9)]),
            ),
            ("sequence", vec![i(1), i(5), i(-1)], a(vec![])),
            ("sequence", vec![N, i(5)], N),
            ("array_cardinality", vec![a(vec![i(1), N, i(2)])], i(2)),
            ("array_cardinality", vec![N], i(0)),
            (
                "array_flatten",
                vec![a(vec![a(vec![i(1), i(2)]), i(3), a(vec![a(vec![i(4)])])])],
                a(vec![i(1), i(2), i(3), a(vec![i(4)])]),
            ),
            ("array_flatten", vec![N], N),
            (
                "array_distinct",
                vec![a(vec![
                    i(1),
                    i(1),
                    fl(1.0),
                    s("a"),
                    s("a"),
                    N,
                    N,
                    a(vec![]),
                    a(vec![]),
                ])],
                a(vec![i(1), fl(1.0), s("a"), N, a(vec![]), a(vec![])]),
            ),
            ("array_distinct", vec![N], N),
            (
                "array_map",
                vec![s("upper"), a(vec![s("a"), s("b")])],
                a(vec![s("A"), s("B")]),
            ),
            ("array_map", vec![s("ABS"), a(vec![i(-1)])], a(vec![i(1)])),
            ("array_map", vec![N, a(vec![])], N),
            (
                "array_join",
                vec![a(vec![i(1), i(2), i(3)]), s(",")],
                s("1,2,3"),
            ),
            (
                "array_join",
                vec![a(vec![s("a"), N, fl(2.5), b(true)]), s("-")],
                s("a-2.5-true"),
            ),
            (
                "array_join",
                vec![a(vec![s("a"), N]), s("-"), s("?")],
                s("a-?"),
            ),
            ("array_join", vec![N, s(",")], N),
            (
                "array_sort",
                vec![a(vec![i(3), i(2), s("b"), s("a")])],
                a(vec![i(2), i(3), s("a"), s("b")]),
            ),
            (
                "array_sort",
                vec![a(vec![i(10), fl(9.5), i(1)])],
                a(vec![i(1), fl(9.5), i(10)]),
            ),
            ("array_sort", vec![N], N),
            (
                "array_concat",
                vec![a(vec![i(1)]), N, a(vec![i(2), i(3)])],
                a(vec![i(1), i(2), i(3)]),
            ),
            ("array_concat", vec![N], N),
            (
                "kvpair_array_to_obj",
                vec![a(vec![
                    obj(&[("key", s("k1")), ("value", i(1))]),
                    obj(&[("key", s("k2")), ("value", i(2))]),
                ])],
                obj(&[("k1", i(1)), ("k2", i(2))]),
            ),
            ("kvpair_array_to_obj", vec![N], N),
        ];
        for (name, args, want) in cases {
            assert_eq!(call(name, &args), Ok(want), "{name}({args:?})");
        }
    }

    #[test]
    fn shuffle_keeps_elements() {
        let arr = a((0..20).map(i).collect());
        let Ok(Value::Array(out)) = call("array_shuffle", &[arr]) else {
            panic!()
        };
        let mut v: Vec<i64> = out.iter().map(|x| x.as_i64().unwrap()).collect();
        v.sort();
        assert_eq!(v, (0..20).collect::<Vec<_>>());
        assert_eq!(call("array_shuffle", &[N]), Ok(N));
    }

    #[test]
    fn errors() {
        let arr = a(vec![i(1)]);
        let cases: Vec<(&str, Vec<Value>, &str)> = vec![
            ("array_position", vec![s("x"), i(1)], "call func array_position error: first argument should be array of interface{}"),
            ("array_contains", vec![i(1), i(1)], "call func array_contains error: first argument should be array of interface{}"),
            ("array_contains_any", vec![arr.clone(), i(1)], "call func array_contains_any error: second argument should be array of interface{}"),
            ("element_at", vec![arr.clone(), i(1)], "call func element_at error: index out of range"),
            ("element_at", vec![arr.clone(), i(-2)], "call func element_at error: index out of range"),
            ("element_at", vec![s("x"), i(0)], "call func element_at error: first argument should be []interface{} or map[string]interface{}"),
            ("element_at", vec![obj(&[]), i(0)], "call func element_at error: second argument should be string"),
            ("array_max", vec![a(vec![i(1), s("a")])], "call func array_max error: requires int64 but found string(a)"),
            ("array_min", vec![a(vec![b(true)])], "call func array_min error: found invalid arg bool(true)"),
            ("array_max", vec![s("x")], "call func array_max error: first argument should be array of interface{}"),
            ("repeat", vec![s("x"), s("3")], "call func repeat error: second argument should be int"),
            ("repeat", vec![s("x"), i(-1)], "call func repeat error: invalid count -1"),
            ("sequence", vec![i(1), i(5), i(0)], "call func sequence error: invalid step: should not be zero"),
            ("sequence", vec![i(0), i(i64::MAX)], "call func sequence error: 9223372036854775807 elements are too many"),
            ("sequence", vec![fl(1.0), i(5)], "call func sequence error: first argument should be int"),
            ("array_map", vec![s("nope"), arr.clone()], "call func array_map error: unknown built-in function: nope."),
            ("array_map", vec![s("atan2"), arr.clone()], "call func array_map error: validate atan2 arguments failed"),
            ("array_join", vec![arr.clone(), i(1)], "call func array_join error: second argument should be string"),
            ("array_concat", vec![arr.clone(), i(1)], "call func array_concat error: array elements should be array"),
            ("kvpair_array_to_obj", vec![a(vec![obj(&[("key", s("k"))])])], "call func kvpair_array_to_obj error: array item should be key-value pair"),
            ("kvpair_array_to_obj", vec![a(vec![i(1)])], "call func kvpair_array_to_obj error: array item should be map[string]interface{}"),
        ];
        for (name, args, want) in cases {
            assert_eq!(call(name, &args), Err(want.to_string()), "{name}({args:?})");
        }
    }
}
