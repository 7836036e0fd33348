//! Mathematical functions (`abs` … `degrees`, `conv`). Integer inputs stay
//! integers where eKuiper keeps them (`abs`, `sign`, `bit*`); everything else
//! returns a float. A NaN result becomes nil, as in eKuiper.

use oort_core::Value;

use crate::util::{any_null, arg, f64_arg, go_v, int_samekind, int_strict, vstring, FnResult};
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
    f!("abs", 1, Some(1), abs),
    f!("acos", 1, Some(1), acos),
    f!("asin", 1, Some(1), asin),
    f!("atan", 1, Some(1), atan),
    f!("atan2", 2, Some(2), atan2),
    f!("bitand", 2, Some(2), bitand),
    f!("bitor", 2, Some(2), bitor),
    f!("bitxor", 2, Some(2), bitxor),
    f!("bitnot", 1, Some(1), bitnot),
    f!("ceil", 1, Some(1), ceiling),
    f!("ceiling", 1, Some(1), ceiling),
    f!("cos", 1, Some(1), cos),
    f!("cosh", 1, Some(1), cosh),
    f!("exp", 1, Some(1), exp),
    f!("floor", 1, Some(1), floor),
    f!("ln", 1, Some(1), ln),
    f!("log", 1, Some(2), log),
    f!("mod", 2, Some(2), modulo),
    f!("pi", 0, Some(0), pi),
    f!("power", 2, Some(2), power),
    f!("pow", 2, Some(2), power),
    f!("rand", 0, Some(0), rand_fn),
    f!("round", 1, Some(2), round),
    f!("sign", 1, Some(1), sign),
    f!("sin", 1, Some(1), sin),
    f!("sinh", 1, Some(1), sinh),
    f!("sqrt", 1, Some(1), sqrt),
    f!("tan", 1, Some(1), tan),
    f!("tanh", 1, Some(1), tanh),
    f!("cot", 1, Some(1), cot),
    f!("radians", 1, Some(1), radians),
    f!("degrees", 1, Some(1), degrees),
    f!("conv", 3, Some(3), conv),
];

#[inline]
fn nan_nil(r: f64) -> Value {
    if r.is_nan() {
        Value::Null
    } else {
        Value::Float(r)
    }
}

#[inline]
fn unary(name: &'static str, args: &[Value], op: fn(f64) -> f64) -> FnResult {
    let a = arg(args, 0);
    if a.is_null() {
        return Ok(Value::Null);
    }
    Ok(nan_nil(op(f64_arg(name, a)?)))
}

fn abs(args: &[Value]) -> FnResult {
    match arg(args, 0) {
        Value::Null => Ok(Value::Null),
        Value::Int(i) => Ok(i
            .checked_abs()
            .map_or(Value::Float((*i as f64).abs()), Value::Int)),
        Value::Float(f) => Ok(Value::Float(f.abs())),
        _ => Err(FnError::call(
            "abs",
            "only float64 & int type are supported",
        )),
    }
}

fn acos(args: &[Value]) -> FnResult {
    unary("acos", args, f64::acos)
}
fn asin(args: &[Value]) -> FnResult {
    unary("asin", args, f64::asin)
}
fn atan(args: &[Value]) -> FnResult {
    unary("atan", args, f64::atan)
}
fn cos(args: &[Value]) -> FnResult {
    unary("cos", args, f64::cos)
}
fn cosh(args: &[Value]) -> FnResult {
    unary("cosh", args, f64::cosh)
}
fn exp(args: &[Value]) -> FnResult {
    unary("exp", args, f64::exp)
}
fn sin(args: &[Value]) -> FnResult {
    unary("sin", args, f64::sin)
}
fn sinh(args: &[Value]) -> FnResult {
    unary("sinh", args, f64::sinh)
}
fn tan(args: &[Value]) -> FnResult {
    unary("tan", args, f64::tan)
}
fn tanh(args: &[Value]) -> FnResult {
    unary("tanh", args, f64::tanh)
}
fn radians(args: &[Value]) -> FnResult {
    unary("radians", args, f64::to_radians)
}
fn degrees(args: &[Value]) -> FnResult {
    unary("degrees", args, f64::to_degrees)
}
fn ceiling(args: &[Value]) -> FnResult {
    unary("ceiling", args, f64::ceil)
}
fn floor(args: &[Value]) -> FnResult {
    unary("floor", args, f64::floor)
}

fn atan2(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let y = f64_arg("atan2", arg(args, 0))?;
    let x = f64_arg("atan2", arg(args, 1))?;
    Ok(nan_nil(y.atan2(x)))
}

fn int_operand(name: &'static str, v: &Value, which: &str) -> Result<i64, FnError> {
    int_strict(name, v).map_err(|_| {
        FnError::call(
            name,
            format!("Expect int type for {which} but got {}", go_v(v)),
        )
    })
}

fn bit2(name: &'static str, args: &[Value], op: fn(i64, i64) -> i64) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let a = int_operand(name, arg(args, 0), "the first operand")?;
    let b = int_operand(name, arg(args, 1), "the second operand")?;
    Ok(Value::Int(op(a, b)))
}

fn bitand(args: &[Value]) -> FnResult {
    bit2("bitand", args, |a, b| a & b)
}
fn bitor(args: &[Value]) -> FnResult {
    bit2("bitor", args, |a, b| a | b)
}
fn bitxor(args: &[Value]) -> FnResult {
    bit2("bitxor", args, |a, b| a ^ b)
}
fn bitnot(args: &[Value]) -> FnResult {
    let a = arg(args, 0);
    if a.is_null() {
        return Ok(Value::Null);
    }
    Ok(Value::Int(!int_operand("bitnot", a, "operand")?))
}

fn ln(args: &[Value]) -> FnResult {
    let a = arg(args, 0);
    if a.is_null() {
        return Ok(Value::Null);
    }
    let v = f64_arg("ln", a)?;
    let r = v.ln();
    if r.is_nan() {
        return Err(FnError::call(
            "ln",
            format!(
                "The argument must be a strictly positive number but got {}",
                go_v(a)
            ),
        ));
    }
    Ok(Value::Float(r))
}

/// `log(x)` is base 10; `log(b, x)` is the logarithm of `x` in base `b`.
fn log(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let first = arg(args, 0);
    let v = f64_arg("log", first)?;
    let r = if args.len() < 2 {
        v.log10()
    } else {
        f64_arg("log", arg(args, 1))?.ln() / v.ln()
    };
    if r.is_nan() {
        return Err(FnError::call(
            "log",
            format!(
                "The argument must be a strictly positive number but got {}",
                go_v(first)
            ),
        ));
    }
    Ok(Value::Float(r))
}

fn modulo(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let a = f64_arg("mod", arg(args, 0))?;
    let b = f64_arg("mod", arg(args, 1))?;
    // f64 `%` is C's fmod, like Go's math.Mod (sign of the dividend).
    Ok(nan_nil(a % b))
}

fn pi(_: &[Value]) -> FnResult {
    Ok(Value::Float(std::f64::consts::PI))
}

fn power(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let a = f64_arg("power", arg(args, 0))?;
    let b = f64_arg("power", arg(args, 1))?;
    Ok(nan_nil(a.powf(b)))
}

fn rand_fn(_: &[Value]) -> FnResult {
    Ok(Value::Float(rand::random::<f64>()))
}

/// Rounds half away from zero to `precision` decimal places (may be negative).
pub(crate) fn round_to(v: f64, precision: i64) -> f64 {
    if !v.is_finite() {
        return v;
    }
    let p = precision.clamp(-400, 400) as i32;
    let factor = 10f64.powi(p);
    if factor == 0.0 {
        return 0.0;
    }
    let scaled = v * factor;
    if !scaled.is_finite() || !factor.is_finite() {
        // More precision than an f64 holds: the value is already "rounded".
        return v;
    }
    scaled.round() / factor
}

fn round(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let precision = if args.len() > 1 {
        int_samekind("round", arg(args, 1)).map_err(|e| {
            FnError::call(
                "round",
                format!("The second argument must be an integer: {}", e.message()),
            )
        })?
    } else {
        0
    };
    let v = f64_arg("round", arg(args, 0))?;
    Ok(Value::Float(round_to(v, precision)))
}

fn sign(args: &[Value]) -> FnResult {
    let a = arg(args, 0);
    if a.is_null() {
        return Ok(Value::Null);
    }
    let v = f64_arg("sign", a)?;
    Ok(Value::Int(if v > 0.0 {
        1
    } else if v < 0.0 {
        -1
    } else {
        0
    }))
}

fn sqrt(args: &[Value]) -> FnResult {
    let a = arg(args, 0);
    if a.is_null() {
        return Ok(Value::Null);
    }
    let r = f64_arg("sqrt", a)?.sqrt();
    if r.is_nan() {
        return Err(FnError::call(
            "sqrt",
            format!("The argument must be a positive number but got {}", go_v(a)),
        ));
    }
    Ok(Value::Float(r))
}

fn cot(args: &[Value]) -> FnResult {
    let a = arg(args, 0);
    if a.is_null() {
        return Ok(Value::Null);
    }
    let r = 1.0 / f64_arg("cot", a)?.tan();
    if r.is_infinite() {
        return Err(FnError::call("cot", "out-of-range error"));
    }
    Ok(nan_nil(r))
}

/// `conv(str, from_base, to_base)`: MySQL-style base conversion. A negative
/// `from_base` reads the input as signed; a negative `to_base` prints a
/// signed result. Bases outside 2..=36 give nil.
fn conv(args: &[Value]) -> FnResult {
    if any_null(args) {
        return Ok(Value::Null);
    }
    let input = crate::util::text(arg(args, 0));
    let from = int_samekind("conv", arg(args, 1))?;
    let to = int_samekind("conv", arg(args, 2))?;
    let signed_in = from < 0;
    let signed_out = to < 0;
    let (from, to) = (from.unsigned_abs(), to.unsigned_abs());
    if !(2..=36).contains(&from) || !(2..=36).contains(&to) {
        return Ok(Value::Null);
    }
    let s = input.trim();
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let valid: String = body
        .chars()
        .take_while(|c| c.to_digit(36).is_some_and(|d| u64::from(d) < from))
        .collect();
    if valid.is_empty() {
        return Ok(crate::util::vstr("0"));
    }
    let mut val = u64::from_str_radix(&valid, from as u32)
        .map_err(|e| FnError::call("conv", e.to_string()))?;
    if signed_in {
        let limit = if neg {
            i64::MIN.unsigned_abs()
        } else {
            i64::MAX as u64
        };
        val = val.min(limit);
    }
    if neg {
        val = val.wrapping_neg();
    }
    let negative = (val as i64) < 0;
    let (val, prefix) = if signed_out && negative {
        (val.wrapping_neg(), "-")
    } else {
        (val, "")
    };
    Ok(vstring(format!("{prefix}{}", to_radix(val, to as u32))))
}

fn to_radix(mut v: u64, radix: u32) -> String {
    if v == 0 {
        return "0".to_string();
    }
    let mut digits = Vec::new();
    while v > 0 {
        let d = (v % u64::from(radix)) as u32;
        digits.push(
            std::char::from_digit(d, radix)
                .unwrap_or('0')
                .to_ascii_uppercase(),
        );
        v /= u64::from(radix);
    }
    digits.iter().rev().collect()
}

#[cfg(test)]
mod tests {
    use crate::scalar;
    use oort_core::Value;

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
    const N: Value = Value::Null;

    #[test]
    fn table() {
        use std::f64::consts::PI;
        let cases: Vec<(&str, Vec<Value>, Value)> = vec![
            ("abs", vec![i(-1)], i(1)),
            ("abs", vec![fl(-1.1)], fl(1.1)),
            ("abs", vec![N], N),
            ("acos", vec![i(1)], fl(0.0)),
            ("acos", vec![i(2)], N),
            ("asin", vec![i(1)], fl(std::f64::consts::FRAC_PI_2)),
            ("atan", vec![i(1)], fl(std::f64::consts::FRAC_PI_4)),
            ("atan2", vec![i(1), i(1)], fl(std::f64::consts::FRAC_PI_4)),
            ("atan2", vec![N, i(1)], N),
            ("bitand", vec![i(5), i(3)], i(1)),
            ("bitor", vec![i(5), i(3)], i(7)),
            ("bitxor", vec![i(1), i(1)], i(0)),
            ("bitnot", vec![i(1)], i(-2)),
            ("bitand", vec![fl(4.0), i(4)], i(4)),
            ("bitnot", vec![N], N),
            ("ceil", vec![fl(1.6)], fl(2.0)),
            ("ceiling", vec![i(-1)], fl(-1.0)),
            ("cos", vec![i(0)], fl(1.0)),
            ("cosh", vec![i(0)], fl(1.0)),
            ("exp", vec![fl(1.2)], fl(3.3201169227365472)),
            ("floor", vec![fl(-1.5)], fl(-2.0)),
            ("ln", vec![i(1)], fl(0.0)),
            ("log", vec![i(10)], fl(1.0)),
            ("log", vec![i(2), i(8)], fl(3.0)),
            ("log", vec![N], N),
            ("mod", vec![i(10), i(3)], fl(1.0)),
            ("mod", vec![fl(-7.5), i(2)], fl(-1.5)),
            ("mod", vec![i(1), i(0)], N),
            ("pi", vec![], fl(PI)),
            ("power", vec![i(10), i(3)], fl(1000.0)),
            ("pow", vec![i(2), fl(0.5)], fl(std::f64::consts::SQRT_2)),
            ("round", vec![fl(10.2)], fl(10.0)),
            ("round", vec![fl(2.5)], fl(3.0)),
            ("round", vec![fl(-2.5)], fl(-3.0)),
            ("round", vec![fl(5.43219), i(3)], fl(5.432)),
            ("round", vec![i(1234), i(-2)], fl(1200.0)),
            ("round", vec![fl(1.5), i(400)], fl(1.5)),
            ("sign", vec![fl(10.2)], i(1)),
            ("sign", vec![i(-2)], i(-1)),
            ("sign", vec![i(0)], i(0)),
            ("sin", vec![i(0)], fl(0.0)),
            ("sinh", vec![i(0)], fl(0.0)),
            ("sqrt", vec![i(4)], fl(2.0)),
            ("tan", vec![i(0)], fl(0.0)),
            ("tanh", vec![i(1)], fl(0.7615941559557649)),
            ("cot", vec![fl(PI / 4.0)], fl(1.0000000000000002)),
            ("radians", vec![i(180)], fl(PI)),
            ("degrees", vec![fl(PI)], fl(180.0)),
            ("conv", vec![s("a"), i(16), i(2)], s("1010")),
            ("conv", vec![s("6E"), i(18), i(8)], s("172")),
            ("conv", vec![s("-17"), i(10), i(-18)], s("-H")),
            ("conv", vec![s("zz"), i(10), i(10)], s("0")),
            ("conv", vec![s("10"), i(40), i(10)], N),
        ];
        for (name, args, want) in cases {
            assert_eq!(call(name, &args), Ok(want), "{name}({args:?})");
        }
    }

    #[test]
    fn errors() {
        let cases: Vec<(&str, Vec<Value>, &str)> = vec![
            ("abs", vec![s("a")], "call func abs error: only float64 & int type are supported"),
            ("sin", vec![s("a")], "call func sin error: cannot convert string(a) to float64"),
            ("bitand", vec![fl(1.5), i(1)], "call func bitand error: Expect int type for the first operand but got 1.5"),
            ("bitor", vec![i(1), s("x")], "call func bitor error: Expect int type for the second operand but got x"),
            ("bitnot", vec![Value::Bool(true)], "call func bitnot error: Expect int type for operand but got true"),
            ("ln", vec![i(-1)], "call func ln error: The argument must be a strictly positive number but got -1"),
            ("log", vec![i(-10)], "call func log error: The argument must be a strictly positive number but got -10"),
            ("sqrt", vec![i(-4)], "call func sqrt error: The argument must be a positive number but got -4"),
            ("cot", vec![i(0)], "call func cot error: out-of-range error"),
            ("round", vec![fl(1.0), s("x")], "call func round error: The second argument must be an integer: cannot convert string(x) to int"),
            ("power", vec![Value::Bool(true), i(1)], "call func power error: cannot convert bool(true) to float64"),
        ];
        for (name, args, want) in cases {
            assert_eq!(call(name, &args), Err(want.to_string()), "{name}({args:?})");
        }
    }

    #[test]
    fn rand_is_in_unit_interval_and_abs_overflow_is_safe() {
        for _ in 0..100 {
            match call("rand", &[]) {
                Ok(Value::Float(f)) => assert!((0.0..1.0).contains(&f)),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(call("abs", &[i(i64::MIN)]), Ok(fl(-(i64::MIN as f64))));
    }
}
