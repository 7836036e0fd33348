//! Miscellaneous functions: `isnull`, `coalesce`, `newuuid`, `tstamp`,
//! `bypass`.

use oort_core::{now_ms, Value};

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
