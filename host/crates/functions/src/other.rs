//! Miscellaneous functions: `isnull`, `coalesce`, `newuuid`, `tstamp`,
//! `bypass`, `props`.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use oort_core::{now_ms, Value};

use crate::FnError;

use crate::util::{arg, vstring, FnResult};
use crate::ScalarFunc;

pub(crate) static FUNCS: &[ScalarFunc] = &[
    ScalarFunc {
        name: "isnull",
        min_args: 1,
        max_args: Some(1),
        call: isnull,
    },
    ScalarFunc {
        name: "coalesce",
        min_args: 1,
        max_args: None,
        call: coalesce,
    },
    ScalarFunc {
        name: "newuuid",
        min_args: 0,
        max_args: Some(0),
        call: newuuid,
    },
    ScalarFunc {
        name: "tstamp",
        min_args: 0,
        max_args: Some(0),
        call: tstamp,
    },
    ScalarFunc {
        name: "bypass",
        min_args: 1,
        max_args: None,
        call: bypass,
    },
    ScalarFunc {
        name: "props",
        min_args: 1,
        max_args: Some(1),
        call: props,
    },
];

fn isnull(args: &[Value]) -> FnResult {
    Ok(Value::Bool(arg(args, 0).is_null()))
}

/// The first non-nil argument, or nil.
fn coalesce(args: &[Value]) -> FnResult {
    Ok(args
        .iter()
        .find(|a| !a.is_null())
        .cloned()
        .unwrap_or(Value::Null))
}

/// A random (version 4) UUID string.
fn newuuid(_: &[Value]) -> FnResult {
    Ok(vstring(uuid::Uuid::new_v4().to_string()))
}

/// The current unix time in milliseconds.
fn tstamp(_: &[Value]) -> FnResult {
    Ok(Value::Int(now_ms()))
}

/// Returns its first argument unchanged.
fn bypass(args: &[Value]) -> FnResult {
    Ok(arg(args, 0).clone())
}

/// The environment prefixes of `props()` properties: eKuiper's, and ours.
const PROPS_PREFIXES: [&str; 2] = ["KUIPER_PROPS_", "OORT_PROPS_"];

/// The server's static properties: `KUIPER_PROPS_<NAME>` (or
/// `OORT_PROPS_<NAME>`) variables, by lowercased name, read once.
fn static_props() -> &'static HashMap<String, String> {
    static PROPS: OnceLock<HashMap<String, String>> = OnceLock::new();
    PROPS.get_or_init(|| {
        std::env::vars()
            .filter_map(|(k, v)| {
                PROPS_PREFIXES
                    .iter()
                    .find_map(|p| k.strip_prefix(p))
                    .map(|name| (name.to_ascii_lowercase(), v))
            })
            .collect()
    })
}

/// `props(name)`: a static property of the server as a string, as
/// eKuiper's: `et` (now, unix ms), `snowflake` (a new snowflake id), or an
/// environment property; an unknown name is an error.
fn props(args: &[Value]) -> FnResult {
    let name = match arg(args, 0) {
        Value::Null => return Ok(Value::Null),
        Value::Str(s) => s,
        other => {
            return Err(FnError::call(
                "props",
                format!("invalid input {other:?}: must be property name of string type"),
            ))
        }
    };
    match name.as_ref() {
        "et" => Ok(vstring(now_ms().to_string())),
        "snowflake" => Ok(vstring(snowflake(now_ms()).to_string())),
        key => static_props()
            .get(key)
            .map(|v| Value::str(v))
            .ok_or_else(|| {
                FnError::call(
                    "props",
                    format!(
                    "property {key} is not set (set KUIPER_PROPS_{} in the server's environment)",
                    key.to_ascii_uppercase()
                ),
                )
            }),
    }
}

/// Snowflake ids as eKuiper's generator makes them (Twitter's epoch, node
/// 1, 10 node bits, 12 sequence bits): unique and increasing in one process.
fn snowflake(now: i64) -> i64 {
    const EPOCH: i64 = 1_288_834_974_657;
    const NODE: i64 = 1;
    static LAST: Mutex<(i64, i64)> = Mutex::new((0, 0));
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    let (mut ms, mut step) = (now.max(last.0), 0);
    if ms == last.0 {
        step = (last.1 + 1) & 0xfff;
        if step == 0 {
            // 4,096 ids in one millisecond: borrow the next one.
            ms += 1;
        }
    }
    *last = (ms, step);
    ((ms - EPOCH) << 22) | (NODE << 12) | step
}

#[cfg(test)]
mod tests {
    use crate::scalar;
    use oort_core::Value;

    fn call(name: &str, args: &[Value]) -> Value {
        let f = scalar(name).unwrap_or_else(|| panic!("no function {name}"));
        (f.call)(args).unwrap()
    }

    #[test]
    fn table() {
        let n = Value::Null;
        assert_eq!(call("isnull", &[Value::Null]), Value::Bool(true));
        assert_eq!(call("isnull", &[Value::Int(0)]), Value::Bool(false));
        assert_eq!(
            call("coalesce", &[n.clone(), Value::Int(2), Value::Int(3)]),
            Value::Int(2)
        );
        assert_eq!(call("coalesce", &[n.clone(), n.clone()]), n);
        assert_eq!(
            call("bypass", &[Value::str("x"), Value::Int(1)]),
            Value::str("x")
        );
        assert_eq!(call("bypass", &[Value::Null]), n);
    }

    #[test]
    fn props_reads_the_environment_et_and_snowflake() {
        // Set before the first props() call of this test binary.
        std::env::set_var("KUIPER_PROPS_REGION", "eu-1");
        assert_eq!(call("props", &[Value::str("region")]), Value::str("eu-1"));
        let f = scalar("props").unwrap();
        let e = (f.call)(&[Value::str("nope")]).unwrap_err().to_string();
        assert!(e.contains("KUIPER_PROPS_NOPE"), "{e}");
        assert!((f.call)(&[Value::Int(1)]).is_err());
        assert_eq!(call("props", &[Value::Null]), Value::Null);
        let Value::Str(et) = call("props", &[Value::str("et")]) else {
            panic!()
        };
        assert!(et.parse::<i64>().unwrap() > 1_700_000_000_000);
        let ids: Vec<i64> = (0..5000)
            .map(|_| match call("props", &[Value::str("snowflake")]) {
                Value::Str(s) => s.parse().unwrap(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase");
        // Node 1 in bits 12..22.
        assert_eq!((ids[0] >> 12) & 0x3ff, 1);
    }

    #[test]
    fn generated_values() {
        let Value::Str(a) = call("newuuid", &[]) else {
            panic!()
        };
        let Value::Str(b) = call("newuuid", &[]) else {
            panic!()
        };
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
        assert_ne!(a, b);
        let Value::Int(t) = call("tstamp", &[]) else {
            panic!()
        };
        assert!(t > 1_700_000_000_000);
    }
}
