//! Go-compatible printing of numbers and values, shared by the encoders and by
//! connectors that render values into text (topics, file names, CSV cells).
//!
//! eKuiper prints through Go's `encoding/json` and `strconv`, so a whole float
//! prints without a fraction (`25.0` -> `25`) and very large or small floats
//! switch to an exponent at the same thresholds Go uses.

use crate::value::Value;

/// Shortest round-trip digits of a finite, non-zero, positive float:
/// the value is `0.d1d2d3… × 10^point`.
struct Digits {
    buf: [u8; 32],
    len: usize,
    point: i32,
}

impl Digits {
    fn of(abs: f64) -> Digits {
        let mut rb = ryu::Buffer::new();
        let s = rb.format_finite(abs).as_bytes();
        let (mant, exp) = match s.iter().position(|&b| b == b'e') {
            Some(i) => {
                let e = std::str::from_utf8(&s[i + 1..])
                    .ok()
                    .and_then(|t| t.parse::<i32>().ok())
                    .unwrap_or(0);
                (&s[..i], e)
            }
            None => (s, 0),
        };
        let mut d = Digits {
            buf: [0; 32],
            len: 0,
            point: 0,
        };
        let mut int_len = 0i32;
        let mut seen_point = false;
        for &b in mant {
            if b == b'.' {
                seen_point = true;
                continue;
            }
            if !seen_point {
                int_len += 1;
            }
            if d.len < d.buf.len() {
                d.buf[d.len] = b;
                d.len += 1;
            }
        }
        d.point = int_len + exp;
        // Strip leading zeros (e.g. "0.001") and trailing zeros (e.g. "25.0").
        let mut start = 0;
        while start + 1 < d.len && d.buf[start] == b'0' {
            start += 1;
            d.point -= 1;
        }
        if start > 0 {
            d.buf.copy_within(start..d.len, 0);
            d.len -= start;
        }
        while d.len > 1 && d.buf[d.len - 1] == b'0' {
            d.len -= 1;
        }
        d
    }

    fn digits(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Go's `'f'` format with the shortest precision.
    fn write_fixed(&self, out: &mut Vec<u8>) {
        let d = self.digits();
        let p = self.point;
        if p <= 0 {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-p) as usize));
            out.extend_from_slice(d);
        } else if p as usize >= d.len() {
            out.extend_from_slice(d);
            out.extend(std::iter::repeat_n(b'0', p as usize - d.len()));
        } else {
            out.extend_from_slice(&d[..p as usize]);
            out.push(b'.');
            out.extend_from_slice(&d[p as usize..]);
        }
    }

    /// Go's `'e'` format with the shortest precision. `pad_negative` keeps the
    /// two-digit exponent for negative exponents (`1e-05`); Go's JSON encoder
    /// trims it (`1e-7`).
    fn write_exp(&self, out: &mut Vec<u8>, pad_negative: bool) {
        let d = self.digits();
        let Some(&first) = d.first() else {
            out.push(b'0');
            return;
        };
        out.push(first);
        if d.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&d[1..]);
        }
        out.push(b'e');
        let e = self.point - 1;
        if e < 0 {
            out.push(b'-');
        } else {
            out.push(b'+');
        }
        let a = e.unsigned_abs();
        if a < 10 && (e >= 0 || pad_negative) {
            out.push(b'0');
        }
        let mut ib = itoa::Buffer::new();
        out.extend_from_slice(ib.format(a).as_bytes());
    }
}

/// Where a float switches to exponent notation.
#[derive(Clone, Copy)]
enum FloatStyle {
    /// `encoding/json`: exponent below 1e-6 or from 1e21 on; `1e-7`, `1e+21`.
    Json,
    /// `fmt`'s `%v`: exponent below 1e-4 or from 1e21 on; `1e-05`, `1e+21`.
    Verb,
    /// `strconv.FormatFloat(f, 'f', -1, 64)`: never an exponent.
    Fixed,
}

fn write_float_style(out: &mut Vec<u8>, f: f64, style: FloatStyle) {
    if f.is_nan() {
        out.extend_from_slice(b"NaN");
        return;
    }
    if f.is_infinite() {
        out.extend_from_slice(if f > 0.0 { b"+Inf" } else { b"-Inf" });
        return;
    }
    if f.is_sign_negative() {
        out.push(b'-');
    }
    let abs = f.abs();
    if abs == 0.0 {
        out.push(b'0');
        return;
    }
    // Whole numbers that fit exactly print as integers: the common fast path.
    if abs < 1e15 && abs.fract() == 0.0 {
        let mut ib = itoa::Buffer::new();
        out.extend_from_slice(ib.format(abs as u64).as_bytes());
        return;
    }
    // In [1e-4, 1e15) every style prints fixed notation, which is what ryu
    // prints there too (shortest digits, and never a bare ".0": whole numbers
    // took the path above).
    if (1e-4..1e15).contains(&abs) {
        let mut rb = ryu::Buffer::new();
        out.extend_from_slice(rb.format_finite(abs).as_bytes());
        return;
    }
    let d = Digits::of(abs);
    let exp = d.point - 1;
    match style {
        FloatStyle::Json if !(1e-6..1e21).contains(&abs) => d.write_exp(out, false),
        FloatStyle::Verb if !(-4..21).contains(&exp) => d.write_exp(out, true),
        _ => d.write_fixed(out),
    }
}

/// Appends a float as Go's `encoding/json` prints it; NaN and infinities,
/// which Go refuses to encode, become `null`.
pub fn write_json_float(out: &mut Vec<u8>, f: f64) {
    if !f.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    write_float_style(out, f, FloatStyle::Json);
}

/// A float as Go's `strconv.FormatFloat(f, 'f', -1, 64)` prints it.
pub fn float_to_fixed_string(f: f64) -> String {
    let mut out = Vec::with_capacity(24);
    write_float_style(&mut out, f, FloatStyle::Fixed);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends an integer in decimal.
#[inline]
pub fn write_int(out: &mut Vec<u8>, i: i64) {
    let mut ib = itoa::Buffer::new();
    out.extend_from_slice(ib.format(i).as_bytes());
}

/// Appends a value as eKuiper's `cast.ToString(v, CONVERT_ALL)` would: strings
/// as they are, numbers without exponent, nil as nothing; nested values as JSON.
/// `verb_floats` prints floats like `fmt`'s `%v` instead (templates).
pub fn write_value_text(out: &mut Vec<u8>, v: &Value, verb_floats: bool) {
    match v {
        Value::Null => {}
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(i) => write_int(out, *i),
        Value::Float(f) => write_float_style(
            out,
            *f,
            if verb_floats {
                FloatStyle::Verb
            } else {
                FloatStyle::Fixed
            },
        ),
        Value::Str(s) => out.extend_from_slice(s.as_bytes()),
        Value::Bytes(b) => out.extend_from_slice(b),
        Value::Datetime(t) => write_int(out, *t),
        Value::Array(_) | Value::Object(_) => super::json::write_value(out, v),
    }
}

/// [`write_value_text`] into a `String`.
pub fn value_to_text(v: &Value, verb_floats: bool) -> String {
    if let Value::Str(s) = v {
        return s.to_string();
    }
    let mut out = Vec::new();
    write_value_text(&mut out, v, verb_floats);
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(f: f64) -> String {
        let mut v = Vec::new();
        write_json_float(&mut v, f);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn json_floats_match_go() {
        assert_eq!(json(25.0), "25");
        assert_eq!(json(-25.0), "-25");
        assert_eq!(json(25.5), "25.5");
        assert_eq!(json(0.1), "0.1");
        assert_eq!(json(0.000001), "0.000001");
        assert_eq!(json(0.0000001), "1e-7");
        assert_eq!(json(1.5e-10), "1.5e-10");
        assert_eq!(json(1e21), "1e+21");
        assert_eq!(json(1.2345e22), "1.2345e+22");
        assert_eq!(json(1e20), "100000000000000000000");
        assert_eq!(json(123456789.125), "123456789.125");
        assert_eq!(json(1e16), "10000000000000000");
        assert_eq!(json(0.0), "0");
        assert_eq!(json(f64::NAN), "null");
        assert_eq!(json(1.0 / 3.0), "0.3333333333333333");
    }

    #[test]
    fn fixed_range_fast_path_agrees_with_digits() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut checked = 0;
        for i in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mant = (x >> 11) as f64 / (1u64 << 53) as f64;
            let f = mant * 10f64.powi((i % 20) - 4);
            if !(1e-4..1e15).contains(&f) || f.fract() == 0.0 {
                continue;
            }
            let mut slow = Vec::new();
            Digits::of(f).write_fixed(&mut slow);
            for style in [FloatStyle::Json, FloatStyle::Verb, FloatStyle::Fixed] {
                let mut fast = Vec::new();
                write_float_style(&mut fast, f, style);
                assert_eq!(fast, slow, "{f:e}");
            }
            checked += 1;
        }
        assert!(checked > 10_000);
        for f in [1e-4, 0.00012, 25.5, 999999999999999.9, 0.1 + 0.2] {
            let mut slow = Vec::new();
            Digits::of(f).write_fixed(&mut slow);
            assert_eq!(json(f).into_bytes(), slow, "{f}");
        }
    }

    #[test]
    fn verb_and_fixed_floats_match_go() {
        assert_eq!(float_to_fixed_string(1e21), "1000000000000000000000");
        assert_eq!(float_to_fixed_string(1e-7), "0.0000001");
    }

    #[test]
    fn value_text_like_cast_to_string() {
        assert_eq!(value_to_text(&Value::Null, false), "");
        assert_eq!(value_to_text(&Value::Float(21.0), false), "21");
        assert_eq!(value_to_text(&Value::Bool(true), false), "true");
        assert_eq!(value_to_text(&Value::str("x y"), false), "x y");
        assert_eq!(
            value_to_text(
                &Value::Array(std::sync::Arc::new(vec![Value::Int(1)])),
                false
            ),
            "[1]"
        );
    }
}
