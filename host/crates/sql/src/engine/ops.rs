//! Value-level operators with eKuiper's typing rules (integer arithmetic
//! stays integer, nil compares false, type errors read
//! `invalid operation string(a) >= int64(3)`), Go-style value printing for
//! error messages, LIKE patterns and the ORDER BY ordering.

use std::cmp::Ordering;
use std::fmt::Write;

use oort_core::Value;
use regex::Regex;

use crate::ast::BinaryOp;

/// Go's `%T` of a value as eKuiper would see it.
pub(crate) fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int64",
        Value::Float(_) => "float64",
        Value::Str(_) => "string",
        Value::Bytes(_) => "[]uint8",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
        Value::Datetime(_) => "time.Time",
    }
}

/// Go's `%v` of a float64 (shortest digits, exponent form outside 1e-4..1e6).
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let sci = format!("{f:e}");
    let (mant, exp) = match sci.split_once('e') {
        Some((m, e)) => (m.to_string(), e.parse::<i32>().unwrap_or(0)),
        None => (sci.clone(), 0),
    };
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// Go's `%v` of a value.
pub(crate) fn go_fmt(v: &Value) -> String {
    let mut s = String::new();
    go_fmt_into(v, &mut s);
    s
}

fn go_fmt_into(v: &Value, s: &mut String) {
    match v {
        Value::Null => s.push_str("<nil>"),
        Value::Bool(b) => {
            let _ = write!(s, "{b}");
        }
        Value::Int(i) => {
            let _ = write!(s, "{i}");
        }
        Value::Float(f) => s.push_str(&go_float(*f)),
        Value::Str(x) => s.push_str(x),
        Value::Bytes(b) => {
            s.push('[');
            for (i, x) in b.iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                let _ = write!(s, "{x}");
            }
            s.push(']');
        }
        Value::Array(a) => {
            s.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                go_fmt_into(x, s);
            }
            s.push(']');
        }
        Value::Object(o) => {
            s.push_str("map[");
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                s.push_str(k);
                s.push(':');
                go_fmt_into(x, s);
            }
            s.push(']');
        }
        Value::Datetime(t) => {
            let _ = write!(s, "{t}");
        }
    }
}

/// `type(value)` as eKuiper prints operands in errors.
pub(crate) fn go_desc(v: &Value) -> String {
    format!("{}({})", go_type(v), go_fmt(v))
}

pub(crate) fn op_token(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "+",
        BinaryOp::Sub => "-",
        BinaryOp::Mul => "*",
        BinaryOp::Div => "/",
        BinaryOp::Mod => "%",
        BinaryOp::BitAnd => "&",
        BinaryOp::BitOr => "|",
        BinaryOp::BitXor => "^",
        BinaryOp::Eq => "=",
        BinaryOp::NotEq => "!=",
        BinaryOp::Lt => "<",
        BinaryOp::LtEq => "<=",
        BinaryOp::Gt => ">",
        BinaryOp::GtEq => ">=",
        BinaryOp::And => "AND",
        BinaryOp::Or => "OR",
    }
}

fn invalid(l: &Value, op: BinaryOp, r: &Value) -> String {
    format!(
        "invalid operation {} {} {}",
        go_desc(l),
        op_token(op),
        go_desc(r)
    )
}

fn cmp_result(op: BinaryOp, o: Option<Ordering>) -> Option<bool> {
    let o = o?;
    Some(match op {
        BinaryOp::Eq => o == Ordering::Equal,
        BinaryOp::NotEq => o != Ordering::Equal,
        BinaryOp::Lt => o == Ordering::Less,
        BinaryOp::LtEq => o != Ordering::Greater,
        BinaryOp::Gt => o == Ordering::Greater,
        BinaryOp::GtEq => o != Ordering::Less,
        _ => return None,
    })
}

fn is_cmp(op: BinaryOp) -> bool {
    matches!(
        op,
        BinaryOp::Eq
            | BinaryOp::NotEq
            | BinaryOp::Lt
            | BinaryOp::LtEq
            | BinaryOp::Gt
            | BinaryOp::GtEq
    )
}

fn float_op(op: BinaryOp, a: f64, b: f64, l: &Value, r: &Value) -> Result<Value, String> {
    if is_cmp(op) {
        // NaN compares false (NotEq true), like Go.
        return Ok(Value::Bool(match op {
            BinaryOp::Eq => a == b,
            BinaryOp::NotEq => a != b,
            BinaryOp::Lt => a < b,
            BinaryOp::LtEq => a <= b,
            BinaryOp::Gt => a > b,
            _ => a >= b,
        }));
    }
    Ok(Value::Float(match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => {
            if b == 0.0 {
                return Err("divided by zero".into());
            }
            a / b
        }
        BinaryOp::Mod => {
            if b == 0.0 {
                return Err("divided by zero".into());
            }
            a % b
        }
        _ => return Err(invalid(l, op, r)),
    }))
}

fn int_op(op: BinaryOp, a: i64, b: i64, l: &Value, r: &Value) -> Result<Value, String> {
    if let Some(b) = cmp_result(op, Some(a.cmp(&b))) {
        return Ok(Value::Bool(b));
    }
    Ok(Value::Int(match op {
        BinaryOp::Add => a.wrapping_add(b),
        BinaryOp::Sub => a.wrapping_sub(b),
        BinaryOp::Mul => a.wrapping_mul(b),
        BinaryOp::Div => {
            if b == 0 {
                return Err("divided by zero".into());
            }
            a.wrapping_div(b)
        }
        BinaryOp::Mod => {
            if b == 0 {
                return Err("divided by zero".into());
            }
            a.wrapping_rem(b)
        }
        BinaryOp::BitAnd => a & b,
        BinaryOp::BitOr => a | b,
        BinaryOp::BitXor => a ^ b,
        _ => return Err(invalid(l, op, r)),
    }))
}

/// Converts a comparison operand to unix ms for datetime comparisons.
fn to_time(v: &Value) -> Option<i64> {
    match v {
        Value::Datetime(t) | Value::Int(t) => Some(*t),
        Value::Float(f) => Some(*f as i64),
        Value::Str(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.timestamp_millis())
            .or_else(|| {
                chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
                    .ok()
                    .map(|d| d.and_utc().timestamp_millis())
            }),
        _ => None,
    }
}

/// eKuiper's binary operation on two evaluated operands (both sides already
/// evaluated; AND/OR short-circuits are the caller's job).
pub(crate) fn binary(op: BinaryOp, l: &Value, r: &Value) -> Result<Value, String> {
    if l.is_null() || r.is_null() {
        return Ok(match op {
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => {
                Value::Null
            }
            _ => Value::Bool(false),
        });
    }
    match (l, r) {
        (Value::Bool(a), Value::Bool(b)) => Ok(Value::Bool(match op {
            BinaryOp::And | BinaryOp::BitAnd => *a && *b,
            BinaryOp::Or | BinaryOp::BitOr => *a || *b,
            BinaryOp::BitXor => a != b,
            BinaryOp::Eq => a == b,
            BinaryOp::NotEq => a != b,
            _ => return Err(invalid(l, op, r)),
        })),
        (Value::Int(a), Value::Int(b)) => int_op(op, *a, *b, l, r),
        (Value::Int(a), Value::Float(b)) => float_op(op, *a as f64, *b, l, r),
        (Value::Float(a), Value::Int(b)) => float_op(op, *a, *b as f64, l, r),
        (Value::Float(a), Value::Float(b)) => float_op(op, *a, *b, l, r),
        (Value::Str(a), Value::Str(b)) => match cmp_result(op, Some(a.as_ref().cmp(b.as_ref()))) {
            Some(x) => Ok(Value::Bool(x)),
            None => Err(invalid(l, op, r)),
        },
        (Value::Datetime(a), _) => match to_time(r).and_then(|b| cmp_result(op, Some(a.cmp(&b)))) {
            Some(x) => Ok(Value::Bool(x)),
            None => Err(invalid(l, op, r)),
        },
        _ => Err(invalid(l, op, r)),
    }
}

/// Total order used by ORDER BY (which puts NULLs last itself and refuses
/// mixed kinds first) and the array functions: nil first, then numbers,
/// strings, bools, datetimes; a datetime against a number (ms) compares
/// as instants; other values of different kinds order by kind.
pub(crate) fn order_cmp(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Int(_) | Value::Float(_) => 1,
            Value::Str(_) => 2,
            Value::Bool(_) => 3,
            Value::Datetime(_) => 4,
            Value::Bytes(_) => 5,
            Value::Array(_) => 6,
            Value::Object(_) => 7,
        }
    }
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            let x = a.as_f64().unwrap_or(0.0);
            let y = b.as_f64().unwrap_or(0.0);
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        (Value::Str(x), Value::Str(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Datetime(x), Value::Datetime(y)) => x.cmp(y),
        (Value::Datetime(x), Value::Int(y)) | (Value::Int(x), Value::Datetime(y)) => x.cmp(y),
        (Value::Bytes(x), Value::Bytes(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Translates a LIKE pattern (`%`, `_`, `\` escapes) into an anchored regex.
pub(crate) fn like_regex(pattern: &str) -> Result<Regex, String> {
    let mut re = String::with_capacity(pattern.len() + 8);
    re.push_str("(?s)^");
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => re.push_str(".*"),
            '_' => re.push('.'),
            '\\' => {
                if let Some(n) = chars.next() {
                    re.push_str(&regex::escape(&n.to_string()));
                }
            }
            other => re.push_str(&regex::escape(&other.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).map_err(|e| format!("invalid LIKE pattern {pattern}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    #[test]
    fn integer_arithmetic_stays_integer() {
        assert_eq!(
            binary(BinaryOp::Div, &Value::Int(3), &Value::Int(6)),
            Ok(Value::Int(0))
        );
        assert_eq!(
            binary(BinaryOp::Div, &Value::Int(6), &Value::Int(2)),
            Ok(Value::Int(3))
        );
        assert_eq!(
            binary(BinaryOp::Add, &Value::Int(1), &Value::Float(0.5)),
            Ok(Value::Float(1.5))
        );
        assert_eq!(
            binary(BinaryOp::Mod, &Value::Int(7), &Value::Int(3)),
            Ok(Value::Int(1))
        );
        assert_eq!(
            binary(BinaryOp::Div, &Value::Int(1), &Value::Int(0)),
            Err("divided by zero".to_string())
        );
        assert_eq!(
            binary(BinaryOp::Div, &Value::Int(i64::MIN), &Value::Int(-1)),
            Ok(Value::Int(i64::MIN))
        );
    }

    #[test]
    fn nil_rules() {
        assert_eq!(
            binary(BinaryOp::Gt, &Value::Null, &Value::Int(1)),
            Ok(Value::Bool(false))
        );
        assert_eq!(
            binary(BinaryOp::Mul, &Value::Null, &Value::Int(1)),
            Ok(Value::Null)
        );
        assert_eq!(
            binary(BinaryOp::Eq, &Value::Null, &Value::Null),
            Ok(Value::Bool(false))
        );
    }

    #[test]
    fn type_errors_read_like_ekuiper() {
        assert_eq!(
            binary(BinaryOp::GtEq, &s("string"), &Value::Int(3)),
            Err("invalid operation string(string) >= int64(3)".to_string())
        );
        assert_eq!(
            binary(BinaryOp::Mul, &s("string"), &Value::Int(5)),
            Err("invalid operation string(string) * int64(5)".to_string())
        );
        assert_eq!(
            binary(BinaryOp::Add, &s("a"), &s("b")),
            Err("invalid operation string(a) + string(b)".to_string())
        );
        assert_eq!(
            binary(BinaryOp::Lt, &s("a"), &s("b")),
            Ok(Value::Bool(true))
        );
    }

    #[test]
    fn go_formatting() {
        assert_eq!(go_float(25.5), "25.5");
        assert_eq!(go_float(3.0), "3");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(1234567.0), "1.234567e+06");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_fmt(&Value::Null), "<nil>");
        assert_eq!(
            go_fmt(&Value::Array(std::sync::Arc::new(vec![
                Value::Int(1),
                s("x")
            ]))),
            "[1 x]"
        );
    }

    #[test]
    fn like_patterns() {
        let re = like_regex("a%b_").unwrap();
        assert!(re.is_match("axxxbc"));
        assert!(!re.is_match("axxxb"));
        let re = like_regex("50\\%").unwrap();
        assert!(re.is_match("50%"));
        assert!(!re.is_match("500"));
        let re = like_regex("a.c").unwrap();
        assert!(!re.is_match("abc"));
    }

    #[test]
    fn ordering() {
        let mut v = vec![
            s("b"),
            Value::Int(2),
            Value::Null,
            Value::Float(1.5),
            s("a"),
        ];
        v.sort_by(order_cmp);
        assert_eq!(
            v,
            vec![
                Value::Null,
                Value::Float(1.5),
                Value::Int(2),
                s("a"),
                s("b")
            ]
        );
    }
}
