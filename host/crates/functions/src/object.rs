//! Object functions (`keys`, `values`, `object`, `zip`, `items`,
//! `object_concat`, `object_construct`, `erase`, `object_size`,
//! `object_pick`, `obj_to_kvpair_array`). Objects keep sorted keys, so
//! `keys`/`values`/`items` come out in key order.

use std::sync::Arc;

use oort_core::{Map, Value};

use crate::util::{any_null, arg, go_v, varray, FnResult};
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
    f!("keys", 1, Some(1), keys),
    f!("values", 1, Some(1), values),
    f!("object", 2, Some(2), object),
    f!("zip", 1, Some(1), zip),
    f!("items", 1, Some(1), items),
    f!("object_concat", 2, None, object_concat),
    f!("object_construct", 0, None, object_construct),
    f!("erase", 2, Some(2), erase),
    f!("object_size", 1, Some(1), object_size),
    f!("object_pick", 2, None, object_pick),
    f!("obj_to_kvpair_array", 1, Some(1), obj_to_kvpair_array),
];

fn obj(m: Map) -> Value {
    Value::Object(Arc::new(m))
}

/// The single object argument, nil passes through as `Ok(None)`.
fn object_arg<'a>(
    name: &'static str,
    args: &'a [Value],
    msg: &str,
) -> Result<Option<&'a Map>, FnError> {
    match arg(args, 0) {
        Value::Null => Ok(None),
        Value::Object(m) => Ok(Some(m)),
        other => Err(FnError::call(name, format!("{msg}{}", go_v(other)))),
    }
}

fn keys(args: &[Value]) -> FnResult {
    let Some(m) = object_arg(
        "keys",
        args,
        "the argument should be map[string]interface{}, got ",
    )?
    else {
        return Ok(Value::Null);
    };
    Ok(varray(m.keys().map(|k| Value::Str(k.clone())).collect()))
}

fn values(args: &[Value]) -> FnResult {
    let Some(m) = object_arg(
        "values",
        args,
        "the argument should be map[string]interface{}, got ",
    )?
    else {
        return Ok(Value::Null);
    };
    Ok(varray(m.values().cloned().collect()))
}

/// `object(["a","b"], [1, 2])` → `{"a":1,"b":2}`.
fn object(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let Value::Array(ks) = arg(args, 0) else {
        return Err(FnError::call("object", "first argument should be []string"));
    };
    let Value::Array(vs) = arg(args, 1) else {
        return Err(FnError::call(
            "object",
            "second argument should be []interface{}",
        ));
    };
    if ks.len() != vs.len() {
        return Err(FnError::call(
            "object",
            "the length of the arguments should be same",
        ));
    }
    if ks.is_empty() {
        return Ok(Value::Null);
    }
    let mut m = Map::new();
    for (k, v) in ks.iter().zip(vs.iter()) {
        let Value::Str(k) = k else {
            return Err(FnError::call("object", "first argument should be []string"));
        };
        m.insert(k.clone(), v.clone());
    }
    Ok(obj(m))
}

/// `zip([["a", 1], ["b", 2]])` → `{"a":1,"b":2}`.
fn zip(args: &[Value]) -> FnResult {
    let list = match arg(args, 0) {
        Value::Null => return Ok(Value::Null),
        Value::Array(l) => l,
        _ => {
            return Err(FnError::call(
                "zip",
                "each argument should be [][2]interface{}",
            ))
        }
    };
    if list.is_empty() {
        return Ok(Value::Null);
    }
    let mut m = Map::new();
    for item in list.iter() {
        match item {
            Value::Null => {}
            Value::Array(pair) if pair.len() == 2 => {
                let Value::Str(k) = &pair[0] else {
                    return Err(FnError::call(
                        "zip",
                        "the first element in the list item should be string",
                    ));
                };
                m.insert(k.clone(), pair[1].clone());
            }
            _ => {
                return Err(FnError::call(
                    "zip",
                    "each argument should be [][2]interface{}",
                ))
            }
        }
    }
    Ok(obj(m))
}

/// `items({"a":1})` → `[["a", 1]]`.
fn items(args: &[Value]) -> FnResult {
    let Some(m) = object_arg(
        "items",
        args,
        "first argument should be map[string]interface{}, got ",
    )?
    else {
        return Ok(Value::Null);
    };
    if m.is_empty() {
        return Ok(Value::Null);
    }
    Ok(varray(
        m.iter()
            .map(|(k, v)| varray(vec![Value::Str(k.clone()), v.clone()]))
            .collect(),
    ))
}

/// Merges objects left to right (later keys win), skipping nils.
fn object_concat(args: &[Value]) -> FnResult {
    let mut m = Map::new();
    for a in args {
        match a {
            Value::Null => {}
            Value::Object(o) => m.extend(o.iter().map(|(k, v)| (k.clone(), v.clone()))),
            other => {
                return Err(FnError::call(
                    "object_concat",
                    format!(
                        "the argument should be map[string]interface{{}}, got {}",
                        go_v(other)
                    ),
                ))
            }
        }
    }
    Ok(obj(m))
}

/// `object_construct(k1, v1, k2, v2, …)`; pairs with a nil key are skipped.
fn object_construct(args: &[Value]) -> FnResult {
    if !args.len().is_multiple_of(2) {
        return Err(FnError::call(
            "object_construct",
            "the args must be key value pairs",
        ));
    }
    let mut m = Map::new();
    for pair in args.chunks_exact(2) {
        match &pair[0] {
            Value::Null => {}
            Value::Str(k) => {
                m.insert(k.clone(), pair[1].clone());
            }
            Value::Bytes(b) => {
                m.insert(
                    Arc::from(String::from_utf8_lossy(b).as_ref()),
                    pair[1].clone(),
                );
            }
            other => {
                return Err(FnError::call(
                    "object_construct",
                    format!("key {} is not a string", go_v(other)),
                ))
            }
        }
    }
    Ok(obj(m))
}

/// `erase(obj, "k")` or `erase(obj, ["k1", "k2"])`: the object without those keys.
fn erase(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let Value::Object(m) = arg(args, 0) else {
        return Err(FnError::call(
            "erase",
            format!(
                "the first argument should be map[string]interface{{}}, got {}",
                go_v(arg(args, 0))
            ),
        ));
    };
    let mut out = (**m).clone();
    match arg(args, 1) {
        Value::Str(k) => {
            out.remove(&**k);
        }
        Value::Array(ks) => {
            for k in ks.iter() {
                match k {
                    Value::Str(k) => {
                        out.remove(&**k);
                    }
                    other => {
                        out.remove(crate::util::to_string_all(other).as_str());
                    }
                }
            }
        }
        _ => {
            return Err(FnError::call(
                "erase",
                "the argument should be slice or string",
            ))
        }
    }
    Ok(obj(out))
}

fn object_size(args: &[Value]) -> FnResult {
    match arg(args, 0) {
        Value::Null => Ok(Value::Int(0)),
        Value::Object(m) => Ok(Value::Int(m.len() as i64)),
        other => Err(FnError::call(
            "object_size",
            format!(
                "the first argument should be map[string]any, got {}",
                go_v(other)
            ),
        )),
    }
}

/// Copies `path` (dot-separated, e.g. `a.b`) from `src` into `dst`, creating
/// the intermediate objects.
fn pick(dst: &mut Map, src: &Map, path: &str) {
    let Some((head, rest)) = path.split_once('.') else {
        if let Some((k, v)) = src.get_key_value(path) {
            dst.insert(k.clone(), v.clone());
        }
        return;
    };
    let Some((k, Value::Object(inner))) = src.get_key_value(head) else {
        return;
    };
    let mut sub = match dst.get(head) {
        Some(Value::Object(existing)) => (**existing).clone(),
        _ => Map::new(),
    };
    pick(&mut sub, inner, rest);
    if !sub.is_empty() {
        dst.insert(k.clone(), obj(sub));
    }
}

/// `object_pick(obj, "a", "b.c")` or `object_pick(obj, ["a", "b.c"])`.
fn object_pick(args: &[Value]) -> FnResult {
    let m = match arg(args, 0) {
        Value::Null => return Ok(Value::Null),
        Value::Object(m) => m,
        other => {
            return Err(FnError::call(
                "object_pick",
                format!("the first argument should be a map, got {}", go_v(other)),
            ))
        }
    };
    let mut out = Map::new();
    let keys: &[Value] = match arg(args, 1) {
        Value::Array(ks) => ks,
        _ => args.get(1..).unwrap_or(&[]),
    };
    for k in keys {
        if let Value::Str(k) = k {
            pick(&mut out, m, k);
        }
    }
    Ok(obj(out))
}

/// `{"a":1}` → `[{"key":"a","value":1}]`.
fn obj_to_kvpair_array(args: &[Value]) -> FnResult {
    let Some(m) = object_arg(
        "obj_to_kvpair_array",
        args,
        "the first argument should be map[string]interface{}, got ",
    )?
    else {
        return Ok(Value::Null);
    };
    let key: Arc<str> = Arc::from("key");
    let value: Arc<str> = Arc::from("value");
    Ok(varray(
        m.iter()
            .map(|(k, v)| {
                let mut pair = Map::new();
                pair.insert(key.clone(), Value::Str(k.clone()));
                pair.insert(value.clone(), v.clone());
                obj(pair)
            })
            .collect(),
    ))
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
    fn s(v: &str) -> Value {
        Value::str(v)
    }
    fn a(v: Vec<Value>) -> Value {
        Value::Array(Arc::new(v))
    }
    fn o(kv: &[(&str, Value)]) -> Value {
        let m: Map = kv.iter().map(|(k, v)| (Arc::from(*k), v.clone())).collect();
        Value::Object(Arc::new(m))
    }
    const N: Value = Value::Null;

    #[test]
    fn table() {
        let x = o(&[
            ("b", i(2)),
            ("a", i(1)),
            ("c", o(&[("d", i(4)), ("e", i(5))])),
        ]);
        let cases: Vec<(&str, Vec<Value>, Value)> = vec![
            ("keys", vec![x.clone()], a(vec![s("a"), s("b"), s("c")])),
            ("keys", vec![N], N),
            (
                "values",
                vec![o(&[("b", i(2)), ("a", i(1))])],
                a(vec![i(1), i(2)]),
            ),
            ("values", vec![N], N),
            (
                "object",
                vec![a(vec![s("a"), s("b")]), a(vec![i(1), i(2)])],
                o(&[("a", i(1)), ("b", i(2))]),
            ),
            ("object", vec![a(vec![]), a(vec![])], N),
            ("object", vec![N, a(vec![])], N),
            (
                "zip",
                vec![a(vec![a(vec![s("a"), i(1)]), N, a(vec![s("b"), i(2)])])],
                o(&[("a", i(1)), ("b", i(2))]),
            ),
            ("zip", vec![N], N),
            (
                "items",
                vec![o(&[("a", i(1))])],
                a(vec![a(vec![s("a"), i(1)])]),
            ),
            ("items", vec![N], N),
            (
                "object_concat",
                vec![o(&[("a", i(1)), ("b", i(1))]), N, o(&[("b", i(2))])],
                o(&[("a", i(1)), ("b", i(2))]),
            ),
            (
                "object_construct",
                vec![s("a"), i(1), N, i(2), s("c"), N],
                o(&[("a", i(1)), ("c", N)]),
            ),
            (
                "erase",
                vec![x.clone(), s("c")],
                o(&[("a", i(1)), ("b", i(2))]),
            ),
            (
                "erase",
                vec![x.clone(), a(vec![s("a"), s("c"), s("zz")])],
                o(&[("b", i(2))]),
            ),
            ("erase", vec![N, s("a")], N),
            ("object_size", vec![x.clone()], i(3)),
            ("object_size", vec![N], i(0)),
            (
                "object_pick",
                vec![x.clone(), s("a"), s("c.d"), s("zz")],
                o(&[("a", i(1)), ("c", o(&[("d", i(4))]))]),
            ),
            (
                "object_pick",
                vec![x.clone(), a(vec![s("b"), s("c.e"), s("c.d")])],
                o(&[("b", i(2)), ("c", o(&[("d", i(4)), ("e", i(5))]))]),
            ),
            ("object_pick", vec![N, s("a")], N),
            (
                "obj_to_kvpair_array",
                vec![o(&[("a", i(1))])],
                a(vec![o(&[("key", s("a")), ("value", i(1))])]),
            ),
            ("obj_to_kvpair_array", vec![N], N),
        ];
        for (name, args, want) in cases {
            assert_eq!(call(name, &args), Ok(want), "{name}({args:?})");
        }
    }

    #[test]
    fn errors() {
        let cases: Vec<(&str, Vec<Value>, &str)> = vec![
            ("keys", vec![i(1)], "call func keys error: the argument should be map[string]interface{}, got 1"),
            ("values", vec![s("x")], "call func values error: the argument should be map[string]interface{}, got x"),
            ("object", vec![a(vec![s("a")]), a(vec![])], "call func object error: the length of the arguments should be same"),
            ("object", vec![a(vec![i(1)]), a(vec![i(1)])], "call func object error: first argument should be []string"),
            ("zip", vec![a(vec![a(vec![i(1), i(2)])])], "call func zip error: the first element in the list item should be string"),
            ("zip", vec![a(vec![a(vec![s("a")])])], "call func zip error: each argument should be [][2]interface{}"),
            ("object_concat", vec![o(&[]), i(1)], "call func object_concat error: the argument should be map[string]interface{}, got 1"),
            ("object_construct", vec![s("a")], "call func object_construct error: the args must be key value pairs"),
            ("object_construct", vec![i(1), i(2)], "call func object_construct error: key 1 is not a string"),
            ("erase", vec![i(1), s("a")], "call func erase error: the first argument should be map[string]interface{}, got 1"),
            ("erase", vec![o(&[]), i(1)], "call func erase error: the argument should be slice or string"),
            ("object_size", vec![i(1)], "call func object_size error: the first argument should be map[string]any, got 1"),
            ("object_pick", vec![i(1), s("a")], "call func object_pick error: the first argument should be a map, got 1"),
        ];
        for (name, args, want) in cases {
            assert_eq!(call(name, &args), Err(want.to_string()), "{name}({args:?})");
        }
    }
}
