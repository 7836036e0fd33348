//! Plan-time checks of literal arguments, mirroring eKuiper's validators
//! (`abs("a")` → `Expect number - float or int type for parameter 1`,
//! `cast(x, "int")` → `Expect one of following value for the 2nd parameter…`).

use oort_core::Value;

use crate::{check_arity, FnError, CAST_TYPES};

/// What a literal in a given position may be.
#[derive(Clone, Copy)]
enum Want {
    Number,
    Int,
    Str,
}

/// Expected literal kinds of the leading parameters (`None`: anything).
fn params(name: &str) -> &'static [Option<Want>] {
    use Want::*;
    match name {
        "abs" | "acos" | "asin" | "atan" | "ceil" | "ceiling" | "cos" | "cosh" | "exp"
        | "floor" | "ln" | "sign" | "sin" | "sinh" | "sqrt" | "tan" | "tanh" | "cot"
        | "radians" | "degrees" | "avg" | "sum" | "stddev" | "stddevs" | "var" | "vars"
        | "median" | "log" => &[Some(Number)],
        "atan2" | "mod" | "power" | "pow" | "round" | "percentile_cont" | "percentile_disc" => {
            &[Some(Number), Some(Number)]
        }
        "trunc" => &[Some(Number), Some(Int)],
        "bitand" | "bitor" | "bitxor" => &[Some(Int), Some(Int)],
        "bitnot" | "from_unix_time" => &[Some(Int)],
        "lower" | "upper" | "trim" | "ltrim" | "rtrim" | "reverse" | "numbytes" | "md5"
        | "sha1" | "sha256" | "sha384" | "sha512" | "crc32" | "hex2dec" | "parse_json" => {
            &[Some(Str)]
        }
        "endswith" | "startswith" | "regexp_matches" | "regexp_substr" | "indexof" => {
            &[Some(Str), Some(Str)]
        }
        "regexp_replace" => &[Some(Str), Some(Str), Some(Str)],
        "split_value" => &[Some(Str), Some(Str), Some(Int)],
        "substring" => &[Some(Str), Some(Int), Some(Int)],
        "lpad" | "rpad" => &[Some(Str), Some(Int)],
        "format" => &[None, Some(Int), Some(Str)],
        "format_time" | "convert_tz" => &[None, Some(Str)],
        "compress" | "decompress" => &[Some(Str), Some(Str)],
        "from_days" => &[Some(Int)],
        "partition" => &[None, Some(Int)],
        _ => &[],
    }
}

fn literal_ok(want: Want, v: &Value) -> bool {
    match want {
        Want::Number => !matches!(v, Value::Str(_) | Value::Bool(_) | Value::Datetime(_)),
        Want::Int => !matches!(
            v,
            Value::Float(_) | Value::Str(_) | Value::Bool(_) | Value::Datetime(_)
        ),
        Want::Str => !matches!(
            v,
            Value::Int(_) | Value::Float(_) | Value::Bool(_) | Value::Datetime(_)
        ),
    }
}

fn want_text(w: Want) -> &'static str {
    match w {
        Want::Number => "number - float or int",
        Want::Int => "int",
        Want::Str => "string",
    }
}

/// Plan-time validation of a call: its argument count ([`check_arity`]) and
/// its literal arguments. `consts` follows the [`crate::AggregateFunc::new`]
/// convention: one entry per argument, `Value::Null` for non-literals.
pub fn check_call(name: &str, consts: &[Value]) -> Result<(), FnError> {
    check_arity(name, consts.len())?;
    let lname = name.to_ascii_lowercase();
    let lname = lname.as_str();
    for (i, (want, v)) in params(lname).iter().zip(consts).enumerate() {
        if let Some(w) = want {
            if !v.is_null() && !literal_ok(*w, v) {
                return Err(FnError::validate(
                    lname,
                    format!("Expect {} type for parameter {}", want_text(*w), i + 1),
                ));
            }
        }
    }
    if lname == "concat" {
        if let Some(i) = consts
            .iter()
            .position(|v| !literal_ok(Want::Str, v) && !v.is_null())
        {
            return Err(FnError::validate(
                lname,
                format!("Expect string type for parameter {}", i + 1),
            ));
        }
    }
    if matches!(
        lname,
        "json_path_query" | "json_path_query_first" | "json_path_exists"
    ) {
        match consts.get(1) {
            Some(Value::Str(p)) => {
                crate::jsonpath::compile(p).map_err(|e| FnError::validate(lname, e))?;
            }
            _ => {
                return Err(FnError::validate(
                    lname,
                    "Expect string type for parameter 2",
                ))
            }
        }
    }
    let second = consts.get(1).filter(|v| !v.is_null());
    match (lname, second) {
        ("convert_tz", Some(Value::Str(z))) if crate::time::zone_code(z).is_none() => {
            return Err(FnError::validate(lname, format!("unknown time zone {z}")))
        }
        ("compress" | "decompress", Some(Value::Str(m)))
            if !matches!(oort_core::compression::Compression::parse(m), Ok(Some(_))) =>
        {
            return Err(FnError::validate(
                lname,
                format!("unsupported method {m}: use zlib, gzip, flate or zstd"),
            ))
        }
        ("cast", Some(v)) => match v {
            Value::Str(t) if CAST_TYPES.contains(&t.as_ref()) => {}
            Value::Str(_) => {
                return Err(FnError::validate(
                    lname,
                    "Expect one of following value for the 2nd parameter: bigint, float, string, boolean, datetime, bytea.",
                ))
            }
            _ => return Err(FnError::validate(lname, "Expect string type for parameter 2")),
        },
        ("encode" | "decode", Some(v)) => match v {
            Value::Str(m) if m.as_ref() == "base64" => {}
            Value::Str(_) => {
                return Err(FnError::validate(
                    lname,
                    "Only base64 is supported for the 2nd parameter.",
                ))
            }
            _ => return Err(FnError::validate(lname, "Expect string type for parameter 2")),
        },
        ("last_value" | "deduplicate", Some(v)) if !matches!(v, Value::Bool(_)) => {
            return Err(FnError::validate(lname, "Expect bool type for parameter 2"))
        }
        ("percentile_cont" | "percentile_disc", Some(_)) => {
            if let Some(f) = crate::aggregate(lname) {
                (f.new)(consts)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_call;
    use oort_core::Value;

    fn err(name: &str, consts: &[Value]) -> String {
        match check_call(name, consts) {
            Err(e) => e.to_string(),
            Ok(()) => panic!("{name}({consts:?}) validated"),
        }
    }

    #[test]
    fn json_paths_zones_and_methods_are_checked_when_planned() {
        let n = Value::Null;
        assert_eq!(
            check_call("json_path_query", &[n.clone(), Value::str("$.a[*]")]),
            Ok(())
        );
        assert_eq!(
            err("json_path_query", &[n.clone(), n.clone()]),
            "validate function json_path_query error: Expect string type for parameter 2"
        );
        assert_eq!(
            err("json_path_exists", &[n.clone(), Value::Int(44)]),
            "validate function json_path_exists error: Expect string type for parameter 2"
        );
        assert!(
            err("json_path_query_first", &[n.clone(), Value::str("$.a[")])
                .contains("invalid JSON path")
        );
        assert_eq!(
            check_call("convert_tz", &[n.clone(), Value::str("Europe/Paris")]),
            Ok(())
        );
        assert!(err("convert_tz", &[n.clone(), Value::str("Mars/Base")])
            .contains("unknown time zone Mars/Base"));
        assert!(err("compress", &[n.clone(), Value::str("lz4")]).contains("unsupported method lz4"));
        assert_eq!(check_call("decompress", &[n, Value::str("zstd")]), Ok(()));
    }

    #[test]
    fn literal_checks() {
        let n = Value::Null;
        assert_eq!(check_call("abs", &[Value::Int(1)]), Ok(()));
        assert_eq!(check_call("ABS", &[Value::Null]), Ok(()));
        assert_eq!(
            err("abs", &[Value::str("test")]),
            "validate function abs error: Expect number - float or int type for parameter 1"
        );
        assert_eq!(
            err("sin", &[Value::Bool(true)]),
            "validate function sin error: Expect number - float or int type for parameter 1"
        );
        assert_eq!(
            err("abs", &[Value::Int(1), Value::Int(2)]),
            "validate function abs error: Expect 1 arguments but found 2."
        );
        assert_eq!(
            err("bitand", &[Value::Float(1.0), Value::Int(1)]),
            "validate function bitand error: Expect int type for parameter 1"
        );
        assert_eq!(
            err("upper", &[Value::Int(1)]),
            "validate function upper error: Expect string type for parameter 1"
        );
        assert_eq!(
            err("concat", &[Value::str("a"), Value::Int(1)]),
            "validate function concat error: Expect string type for parameter 2"
        );
        assert_eq!(
            check_call("cast", &[n.clone(), Value::str("bigint")]),
            Ok(())
        );
        assert_eq!(
            err("cast", &[n.clone(), Value::str("int")]),
            "validate function cast error: Expect one of following value for the 2nd parameter: bigint, float, string, boolean, datetime, bytea."
        );
        assert_eq!(
            err("encode", &[n.clone(), Value::str("hex")]),
            "validate function encode error: Only base64 is supported for the 2nd parameter."
        );
        assert_eq!(
            err("last_value", &[n.clone(), Value::Int(1)]),
            "validate function last_value error: Expect bool type for parameter 2"
        );
        assert_eq!(
            check_call("deduplicate", &[n.clone(), Value::Bool(false)]),
            Ok(())
        );
        assert!(check_call("percentile_cont", &[n.clone(), Value::Float(2.0)]).is_err());
        assert_eq!(
            check_call("percentile_disc", &[n.clone(), Value::Float(0.5)]),
            Ok(())
        );
        assert_eq!(
            err("substring", &[n.clone(), Value::str("1")]),
            "validate function substring error: Expect int type for parameter 2"
        );
        assert_eq!(err("nope", &[]), "function nope not found");
    }
}
