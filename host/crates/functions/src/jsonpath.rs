//! `json_path_query`, `json_path_query_first`, `json_path_exists`: JSONPath
//! over an object, an array or a JSON string, as eKuiper's functions.
//!
//! Paths are read by `serde_json_path` (RFC 9535, which keeps Goessner's
//! forms eKuiper documents: `$.a.b`, `$["a.b"]`, `[*]`, `..`, slices,
//! unions and filters `[? @.w > 1]` or `[?(@.w > 1)]`). As in eKuiper the
//! shape of the answer follows the shape of the path: a path of plain steps
//! (names and indexes) gives the one value it names, and a missing step is
//! an error; any wildcard, slice, union, filter or `..` gives the list of
//! matches (possibly empty). The path must be a string literal: it is
//! compiled when the rule is created (a bad path is refused then, where
//! eKuiper fails at run time) and cached per thread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use oort_core::Value;
use serde_json_path::JsonPath;

use crate::{FnError, ScalarFunc};

pub(crate) static FUNCS: &[ScalarFunc] = &[
    ScalarFunc {
        name: "json_path_query",
        min_args: 2,
        max_args: Some(2),
        call: query,
    },
    ScalarFunc {
        name: "json_path_query_first",
        min_args: 2,
        max_args: Some(2),
        call: query_first,
    },
    ScalarFunc {
        name: "json_path_exists",
        min_args: 2,
        max_args: Some(2),
        call: exists,
    },
];

/// Compiled paths kept per thread (a rule's calls reuse theirs).
const CACHE_MAX: usize = 256;

thread_local! {
    static CACHE: RefCell<HashMap<String, Arc<JsonPath>>> = RefCell::new(HashMap::new());
}

/// Compiles `path` (or takes it from the cache).
pub(crate) fn compile(path: &str) -> Result<Arc<JsonPath>, String> {
    if let Some(p) = CACHE.with(|c| c.borrow().get(path).cloned()) {
        return Ok(p);
    }
    let p =
        Arc::new(JsonPath::parse(path).map_err(|e| format!("invalid JSON path {path:?}: {e}"))?);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= CACHE_MAX {
            c.clear();
        }
        c.insert(path.to_string(), p.clone());
    });
    Ok(p)
}

/// True when every step of `path` names one member or index: no wildcard,
/// descendant, slice, union or filter (read outside quoted names).
pub(crate) fn is_plain(path: &str) -> bool {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut prev = '\0';
    for c in path.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '*' | '?' | ':' | ',' => return false,
            '.' if prev == '.' => return false,
            _ => {}
        }
        prev = c;
    }
    true
}

/// The document a call reads: an object or array as it is, a string as the
/// JSON it holds.
fn document(name: &'static str, v: &Value) -> Result<serde_json::Value, FnError> {
    match v {
        Value::Object(_) | Value::Array(_) => Ok(v.to_json()),
        Value::Str(s) => serde_json::from_str(s)
            .map_err(|_| FnError::call(name, format!("data '{s}' is not a valid json string"))),
        Value::Null => Err(FnError::call(name, "invalid data nil for jsonpath")),
        other => Err(FnError::call(
            name,
            format!("invalid data {} for jsonpath", other.to_json()),
        )),
    }
}

fn path_arg<'a>(name: &'static str, v: &'a Value) -> Result<&'a str, FnError> {
    match v {
        Value::Str(p) => Ok(p),
        _ => Err(FnError::call(name, "Expect string type for parameter 2")),
    }
}

/// The answer: one value for a plain path (an error when it names nothing),
/// the list of matches otherwise.
enum Answer {
    One(serde_json::Value),
    Many(Vec<serde_json::Value>),
}

fn run(name: &'static str, args: &[Value]) -> Result<Answer, FnError> {
    let (Some(doc), Some(path)) = (args.first(), args.get(1)) else {
        return Err(FnError::call(name, "Expect 2 arguments"));
    };
    let path = path_arg(name, path)?;
    let doc = document(name, doc)?;
    let compiled = compile(path).map_err(|e| FnError::call(name, e))?;
    let nodes = compiled.query(&doc);
    if is_plain(path) {
        match nodes.at_most_one() {
            Ok(Some(v)) => Ok(Answer::One(v.clone())),
            _ => Err(FnError::call(
                name,
                format!("path {path} names no value of the data"),
            )),
        }
    } else {
        Ok(Answer::Many(nodes.all().into_iter().cloned().collect()))
    }
}

fn query(args: &[Value]) -> Result<Value, FnError> {
    Ok(match run("json_path_query", args)? {
        Answer::One(v) => Value::from_json(&v),
        Answer::Many(vs) => Value::Array(Arc::new(vs.iter().map(Value::from_json).collect())),
    })
}

fn query_first(args: &[Value]) -> Result<Value, FnError> {
    match run("json_path_query_first", args)? {
        Answer::One(serde_json::Value::Array(a)) => {
            Ok(a.first().map(Value::from_json).unwrap_or(Value::Null))
        }
        Answer::One(v) => Err(FnError::call(
            "json_path_query_first",
            format!("query result ({v}) is not an array"),
        )),
        // eKuiper fails the rule on an empty match; Oort gives NULL.
        Answer::Many(vs) => Ok(vs.first().map(Value::from_json).unwrap_or(Value::Null)),
    }
}

fn exists(args: &[Value]) -> Result<Value, FnError> {
    Ok(Value::Bool(match run("json_path_exists", args) {
        Ok(Answer::One(v)) => !v.is_null(),
        Ok(Answer::Many(vs)) => !vs.is_empty(),
        Err(_) => false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oort_core::codec::json::decode_value;

    fn equipment() -> Value {
        decode_value(
            br#"{"rings":[{"name":"ring of despair","weight":0.1},{"name":"ring of strength","weight":2.4}],"arm_right":"Sword of flame","arm_left":"Shield of faith"}"#,
        )
        .unwrap()
    }

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    fn j(v: &Value) -> serde_json::Value {
        v.to_json()
    }

    #[test]
    fn the_answer_follows_the_shape_of_the_path() {
        let e = equipment();
        assert_eq!(
            query(&[e.clone(), s("$.arm_right")]).unwrap(),
            s("Sword of flame")
        );
        assert_eq!(
            j(&query(&[e.clone(), s("$.rings[*].weight")]).unwrap()),
            serde_json::json!([0.1, 2.4])
        );
        assert_eq!(
            j(&query_first(&[e.clone(), s("$.rings[*].weight")]).unwrap()),
            serde_json::json!(0.1)
        );
        for p in ["$.rings[? @.weight>1].name", "$.rings[?(@.weight>1)].name"] {
            assert_eq!(
                j(&query(&[e.clone(), s(p)]).unwrap()),
                serde_json::json!(["ring of strength"]),
                "{p}"
            );
        }
        assert_eq!(
            j(&query(&[e.clone(), s("$.rings[? @.weight>1]")]).unwrap()),
            serde_json::json!([{"name": "ring of strength", "weight": 2.4}])
        );
        // No match: an empty list, NULL for the first, false for exists.
        assert_eq!(
            j(&query(&[e.clone(), s("$.rings[? @.weight>5]")]).unwrap()),
            serde_json::json!([])
        );
        assert_eq!(
            query_first(&[e.clone(), s("$.rings[? @.weight>5]")]).unwrap(),
            Value::Null
        );
        assert_eq!(
            exists(&[e.clone(), s("$.rings[? @.weight>5]")]).unwrap(),
            Value::Bool(false)
        );
        assert_eq!(
            exists(&[e.clone(), s("$.rings")]).unwrap(),
            Value::Bool(true)
        );
        assert_eq!(
            exists(&[e.clone(), s("$.ring1")]).unwrap(),
            Value::Bool(false)
        );
        // A plain path that names nothing is an error; so is nil data.
        assert!(query(&[e.clone(), s("$.ring1")]).is_err());
        let nil = query(&[Value::Null, s("$.a")]).unwrap_err().to_string();
        assert!(nil.contains("invalid data nil for jsonpath"), "{nil}");
        // The first of a plain path must be a list.
        let not = query_first(&[e, s("$.arm_left")]).unwrap_err().to_string();
        assert!(not.contains("is not an array"), "{not}");
    }

    #[test]
    fn strings_are_read_as_json() {
        let doc = s(r#"{"rings":[0.1,2.4],"arm.left":"Shield of faith"}"#);
        assert_eq!(
            query(&[doc.clone(), s(r#"$["arm.left"]"#)]).unwrap(),
            s("Shield of faith")
        );
        assert_eq!(
            j(&query(&[doc, s("$.rings[1]")]).unwrap()),
            serde_json::json!(2.4)
        );
        let bad = query(&[s("{nope"), s("$.a")]).unwrap_err().to_string();
        assert!(bad.contains("is not a valid json string"), "{bad}");
        let arr = decode_value(br#"[{"result":{"throughput":30}},{"result":{"throughput":10}}]"#)
            .unwrap();
        assert_eq!(
            exists(&[arr.clone(), s("$[? @.result.throughput==30]")]).unwrap(),
            Value::Bool(true)
        );
        assert_eq!(
            exists(&[arr, s("$[? @.result.throughput<5]")]).unwrap(),
            Value::Bool(false)
        );
    }

    #[test]
    fn plain_paths_are_told_apart() {
        for p in ["$.a.b", "$[0]", r#"$["a.b"]"#, "$['x*y']", "$.a[2].c"] {
            assert!(is_plain(p), "{p}");
        }
        for p in [
            "$.a[*]",
            "$..a",
            "$.a[0:2]",
            "$.a[0,1]",
            "$.a[?@.x>1]",
            "$.*",
        ] {
            assert!(!is_plain(p), "{p}");
        }
    }
}
