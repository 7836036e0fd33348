//! Go's `fmt` on our values: `%v` printing (what a template prints for a
//! value, what eKuiper's functions print through `cast`) and `Sprintf` with
//! Go's verbs, flags, width and precision. Values have Go's types as eKuiper
//! sees them: `Int` is `int64`, `Float` `float64`, `Array` `[]interface {}`,
//! `Object` `map[string]interface {}` (printed with sorted keys,
//! `map[a:1 b:2]`), `Null` a nil interface (`<nil>`). The one Go formatter of
//! the project: the template engine and the SQL functions both use it.

use std::fmt::Write;

use crate::value::Value;

/// Appends `v` as `fmt.Sprint(v)` prints it (datetimes as unix ms).
pub fn write_v(out: &mut String, v: &Value) {
    write_v_with(out, v, &|out: &mut String, ms: i64| {
        let mut b = itoa::Buffer::new();
        out.push_str(b.format(ms));
    })
}

/// [`write_v`] with the caller's printing of datetimes (at any depth).
pub fn write_v_with(out: &mut String, v: &Value, datetime: &dyn Fn(&mut String, i64)) {
    match v {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let mut b = itoa::Buffer::new();
            out.push_str(b.format(*i));
        }
        Value::Float(f) => write_float_g(out, *f, None, false),
        Value::Str(s) => out.push_str(s),
        Value::Bytes(b) => {
            out.push('[');
            for (i, x) in b.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                let _ = write!(out, "{x}");
            }
            out.push(']');
        }
        Value::Datetime(ms) => datetime(out, *ms),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_v_with(out, x, datetime);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push_str("map[");
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_v_with(out, x, datetime);
            }
            out.push(']');
        }
    }
}

/// `fmt.Sprint(args...)`: a space between operands when neither is a string.
pub fn sprint(out: &mut String, args: &[Value]) {
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::Str(_)) && !matches!(args[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        write_v(out, a);
    }
}

/// `fmt.Sprintln(args...)`: always a space between operands, then a newline.
pub fn sprintln(out: &mut String, args: &[Value]) {
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_v(out, a);
    }
    out.push('\n');
}

/// Go's type name of a value (`%T`, error messages).
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        other => other.type_name(),
    }
}

/// Digits past this many after the point of an f64 are always zero (its
/// exact decimal expansion ends within 1,074 places), and Rust's formatter
/// refuses precisions over 65,535: larger ones are printed up to here, then
/// padded with zeros.
const EXACT: usize = 1100;

fn zeros(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n('0', n));
}

/// Shortest decimal digits of a finite non-zero `abs` and the exponent of the
/// first digit (`1.5e3` -> ("15", 3)), or rounded to `sig` significant digits.
fn digits(abs: f64, sig: Option<usize>) -> (String, i32) {
    let s = match sig {
        None => format!("{abs:e}"),
        Some(p) => format!("{:.*e}", p.saturating_sub(1).min(EXACT), abs),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let mut d: String = mant.chars().filter(|c| *c != '.').collect();
    while d.len() > 1 && d.ends_with('0') {
        d.pop();
    }
    (d, exp.parse().unwrap_or(0))
}

fn push_exp(out: &mut String, e: i32) {
    out.push(if e < 0 { '-' } else { '+' });
    let a = e.unsigned_abs();
    if a < 10 {
        out.push('0');
    }
    let _ = write!(out, "{a}");
}

/// `%g` / `%v` for a float64 (`prec` None: `strconv.FormatFloat(f, 'g', -1, 64)`): shortest digits (or `prec` significant
/// digits), in exponent form when the exponent is < -4 or >= the precision
/// (6 for the shortest form, so `1e+06`), as `strconv.FormatFloat(f, 'g')`.
pub fn write_float_g(out: &mut String, f: f64, prec: Option<usize>, upper: bool) {
    if let Some(s) = special(f) {
        out.push_str(s);
        return;
    }
    if f == 0.0 {
        out.push_str(if f.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    if f < 0.0 {
        out.push('-');
    }
    let prec = prec.map(|p| p.max(1));
    let (d, exp) = digits(f.abs(), prec);
    let eprec = match prec {
        None => 6,
        Some(p) => {
            let nd = d.len() as i32;
            if (p as i32) > nd && nd > exp {
                nd
            } else {
                p as i32
            }
        }
    };
    if exp < -4 || exp >= eprec {
        out.push_str(&d[..1]);
        if d.len() > 1 {
            out.push('.');
            out.push_str(&d[1..]);
        }
        out.push(if upper { 'E' } else { 'e' });
        push_exp(out, exp);
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&d);
    } else {
        let int_len = exp as usize + 1;
        if d.len() <= int_len {
            out.push_str(&d);
            for _ in d.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&d[..int_len]);
            out.push('.');
            out.push_str(&d[int_len..]);
        }
    }
}

fn special(f: f64) -> Option<&'static str> {
    if f.is_nan() {
        Some("NaN")
    } else if f == f64::INFINITY {
        Some("+Inf")
    } else if f == f64::NEG_INFINITY {
        Some("-Inf")
    } else {
        None
    }
}

#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    space: bool,
    zero: bool,
    sharp: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// Go's bound on a width or precision (`fmt`'s `tooLarge`): a larger
/// literal ends the format (`%!(NOVERB)`), a larger `*` argument is
/// `%!(BADWIDTH)`/`%!(BADPREC)`. It also bounds what one verb can print.
const MAX_WIDTH: usize = 1_000_000;

/// A width or precision as written.
enum Num {
    None,
    Lit(usize),
    Star(i64),
    /// A `*` whose argument is no int or out of range.
    Bad,
    /// A literal beyond [`MAX_WIDTH`].
    Crazy,
}

/// `fmt.Sprintf(format, args...)`, with Go's in-band errors
/// (`%!d(string=x)`, `%!d(MISSING)`, `%!(EXTRA int64=1)`).
pub fn sprintf(out: &mut String, format: &str, args: &[Value]) -> Result<(), String> {
    let mut next = 0usize;
    let mut chars = format.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&(_, f)) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                '#' => spec.sharp = true,
                _ => break,
            }
            chars.next();
        }
        let num = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
                   next: &mut usize|
         -> Num {
            if let Some(&(_, '*')) = chars.peek() {
                chars.next();
                let v = match args.get(*next) {
                    Some(Value::Int(i)) if i.unsigned_abs() <= MAX_WIDTH as u64 => Num::Star(*i),
                    _ => Num::Bad,
                };
                *next += 1;
                return v;
            }
            let mut n: Option<usize> = None;
            while let Some(&(_, d)) = chars.peek() {
                let Some(dv) = d.to_digit(10) else { break };
                let v = n.unwrap_or(0);
                if v > MAX_WIDTH {
                    return Num::Crazy;
                }
                n = Some(v * 10 + dv as usize);
                chars.next();
            }
            n.map_or(Num::None, Num::Lit)
        };
        match num(&mut chars, &mut next) {
            Num::None => {}
            Num::Lit(w) => spec.width = Some(w),
            Num::Star(w) => {
                // Go: a negative width from `*` means left-justify.
                spec.minus |= w < 0;
                spec.width = Some(w.unsigned_abs() as usize);
            }
            Num::Bad => out.push_str("%!(BADWIDTH)"),
            Num::Crazy => {
                out.push_str("%!(NOVERB)");
                break;
            }
        }
        if let Some(&(_, '.')) = chars.peek() {
            chars.next();
            match num(&mut chars, &mut next) {
                Num::None => spec.prec = Some(0),
                Num::Lit(p) => spec.prec = Some(p),
                Num::Star(p) if p >= 0 => spec.prec = Some(p as usize),
                Num::Star(_) => {}
                Num::Bad => out.push_str("%!(BADPREC)"),
                Num::Crazy => {
                    out.push_str("%!(NOVERB)");
                    break;
                }
            }
        }
        let Some((_, verb)) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        next += 1;
        let mut s = String::new();
        format_one(&mut s, verb, &spec, arg)?;
        pad(out, &s, &spec, verb, arg);
    }
    if next < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[next..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            match a {
                Value::Null => out.push_str("<nil>"),
                a => {
                    out.push_str(type_name(a));
                    out.push('=');
                    write_v(out, a);
                }
            }
        }
        out.push(')');
    }
    Ok(())
}

fn is_num_verb(verb: char, v: &Value) -> bool {
    matches!(v, Value::Int(_) | Value::Float(_)) && verb != 'c' && verb != 'q' && verb != 'U'
}

fn pad(out: &mut String, s: &str, spec: &Spec, verb: char, v: &Value) {
    let len = s.chars().count();
    let width = spec.width.unwrap_or(0);
    if len >= width {
        out.push_str(s);
        return;
    }
    let fill = width - len;
    if spec.minus {
        out.push_str(s);
        push_fill(out, SPACES, fill);
    } else if spec.zero && is_num_verb(verb, v) && !s.ends_with("Inf") && s != "NaN" {
        let (sign, rest) = match s.as_bytes().first() {
            Some(b'-') | Some(b'+') | Some(b' ') => s.split_at(1),
            _ => ("", s),
        };
        out.push_str(sign);
        push_fill(out, ZEROS, fill);
        out.push_str(rest);
    } else if spec.zero && matches!(v, Value::Str(_)) {
        push_fill(out, ZEROS, fill);
        out.push_str(s);
    } else {
        push_fill(out, SPACES, fill);
        out.push_str(s);
    }
}

const SPACES: &str = "                                                                ";
const ZEROS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Appends `n` copies of the one ASCII character `chunk` is made of, a
/// chunk at a time (widths go up to ten million: Go's bound).
fn push_fill(out: &mut String, chunk: &str, mut n: usize) {
    out.reserve(n);
    while n > 0 {
        let k = n.min(chunk.len());
        out.push_str(&chunk[..k]);
        n -= k;
    }
}

fn bad_verb(out: &mut String, verb: char, v: &Value) {
    match v {
        Value::Null => {
            let _ = write!(out, "%!{verb}(<nil>)");
        }
        v => {
            let _ = write!(out, "%!{verb}({}=", type_name(v));
            write_v(out, v);
            out.push(')');
        }
    }
}

fn sign(out: &mut String, neg: bool, spec: &Spec) {
    if neg {
        out.push('-');
    } else if spec.plus {
        out.push('+');
    } else if spec.space {
        out.push(' ');
    }
}

fn format_one(out: &mut String, verb: char, spec: &Spec, v: &Value) -> Result<(), String> {
    // Slices and maps apply the verb to each element, as fmt does.
    match v {
        Value::Array(a) if verb != 'T' && !(verb == 'v' && spec.sharp) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                elem(out, verb, spec, x)?;
            }
            out.push(']');
            return Ok(());
        }
        Value::Object(m) if verb != 'T' && !(verb == 'v' && spec.sharp) => {
            out.push_str("map[");
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                let key = Value::Str(k.clone());
                let mut s = String::new();
                format_one(&mut s, verb, spec, &key)?;
                pad(out, &s, spec, verb, &key);
                out.push(':');
                elem(out, verb, spec, x)?;
            }
            out.push(']');
            return Ok(());
        }
        _ => {}
    }
    if spec.sharp && verb == 'v' {
        return Err("printf: %#v is not supported".into());
    }
    match (verb, v) {
        ('T', v) => out.push_str(type_name(v)),
        ('v', Value::Float(f)) => float_verb(out, 'g', spec, *f)?,
        ('v', Value::Int(i)) => int_verb(out, 'd', spec, *i)?,
        ('v', v) => write_v(out, v),
        ('t', Value::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
        ('d' | 'b' | 'o' | 'O' | 'x' | 'X' | 'c' | 'q' | 'U', Value::Int(i)) => {
            int_verb(out, verb, spec, *i)?
        }
        ('e' | 'E' | 'f' | 'F' | 'g' | 'G', Value::Float(f)) => float_verb(out, verb, spec, *f)?,
        ('s', Value::Str(s)) => match spec.prec {
            Some(p) => out.extend(s.chars().take(p)),
            None => out.push_str(s),
        },
        ('q', Value::Str(s)) => quote(out, s),
        ('x' | 'X', Value::Str(s)) => hex_bytes(out, s.as_bytes(), verb == 'X', spec),
        ('s', Value::Bytes(b)) => out.push_str(&String::from_utf8_lossy(b)),
        ('x' | 'X', Value::Bytes(b)) => hex_bytes(out, b, verb == 'X', spec),
        ('x' | 'X' | 'b', Value::Float(_)) => {
            return Err(format!("printf: %{verb} on a float is not supported"))
        }
        (_, v) => bad_verb(out, verb, v),
    }
    Ok(())
}

/// An element of a slice or map: a nil prints `<nil>` whatever the verb.
fn elem(out: &mut String, verb: char, spec: &Spec, x: &Value) -> Result<(), String> {
    let mut s = String::new();
    if x.is_null() {
        s.push_str("<nil>");
    } else {
        format_one(&mut s, verb, spec, x)?;
    }
    pad(out, &s, spec, verb, x);
    Ok(())
}

fn hex_bytes(out: &mut String, b: &[u8], upper: bool, spec: &Spec) {
    let b = match spec.prec {
        Some(p) => &b[..p.min(b.len())],
        None => b,
    };
    for (i, x) in b.iter().enumerate() {
        if spec.space && i > 0 {
            out.push(' ');
        }
        if spec.sharp && (spec.space || i == 0) {
            out.push_str(if upper { "0X" } else { "0x" });
        }
        if upper {
            let _ = write!(out, "{x:02X}");
        } else {
            let _ = write!(out, "{x:02x}");
        }
    }
}

fn int_verb(out: &mut String, verb: char, spec: &Spec, i: i64) -> Result<(), String> {
    let neg = i < 0;
    let a = i.unsigned_abs();
    let digits = match verb {
        'd' => a.to_string(),
        'b' => format!("{a:b}"),
        'o' | 'O' => format!("{a:o}"),
        'x' => format!("{a:x}"),
        'X' => format!("{a:X}"),
        'c' => {
            out.push(char::from_u32(i as u32).unwrap_or('\u{FFFD}'));
            return Ok(());
        }
        'q' => {
            let c = char::from_u32(i as u32).unwrap_or('\u{FFFD}');
            out.push('\'');
            match c {
                '\'' => out.push_str("\\'"),
                c => escape_char(out, c, '\''),
            }
            out.push('\'');
            return Ok(());
        }
        'U' => {
            let _ = write!(out, "U+{:04X}", i);
            return Ok(());
        }
        _ => return Err(format!("printf: %{verb} is not supported")),
    };
    sign(out, neg, spec);
    if spec.sharp {
        match verb {
            'x' => out.push_str("0x"),
            'X' => out.push_str("0X"),
            'o' if digits != "0" => out.push('0'),
            'b' => out.push_str("0b"),
            _ => {}
        }
    }
    if verb == 'O' {
        out.push_str("0o");
    }
    if let Some(p) = spec.prec {
        for _ in digits.len()..p {
            out.push('0');
        }
        if p == 0 && a == 0 {
            return Ok(());
        }
    }
    out.push_str(&digits);
    Ok(())
}

fn float_verb(out: &mut String, verb: char, spec: &Spec, f: f64) -> Result<(), String> {
    if let Some(s) = special(f) {
        if f.is_nan() && (spec.plus || spec.space) {
            out.push(if spec.plus { '+' } else { ' ' });
            out.push_str("NaN");
        } else if f > 0.0 && !spec.plus {
            out.push_str(if spec.space { " Inf" } else { "Inf" });
        } else {
            out.push_str(s);
        }
        return Ok(());
    }
    let neg = f.is_sign_negative();
    sign(out, neg, spec);
    let a = f.abs();
    match verb {
        'f' | 'F' => {
            let p = spec.prec.unwrap_or(6);
            let q = p.min(EXACT);
            let _ = write!(out, "{a:.q$}");
            zeros(out, p - q);
        }
        'e' | 'E' => {
            let p = spec.prec.unwrap_or(6);
            let q = p.min(EXACT);
            let s = format!("{a:.q$e}");
            let (m, e) = s.split_once('e').unwrap_or((s.as_str(), "0"));
            out.push_str(m);
            zeros(out, p - q);
            out.push(verb);
            push_exp(out, e.parse().unwrap_or(0));
        }
        'g' | 'G' => {
            if spec.sharp {
                return Err("printf: %#g is not supported".into());
            }
            let mut s = String::new();
            write_float_g(&mut s, a, spec.prec, verb == 'G');
            out.push_str(&s);
        }
        _ => return Err(format!("printf: %{verb} is not supported")),
    }
    Ok(())
}

/// `strconv.Quote`: Go escapes, printable Unicode kept as it is.
pub fn quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            c => escape_char(out, c, '"'),
        }
    }
    out.push('"');
}

fn escape_char(out: &mut String, c: char, _quote: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        '\u{FFFD}' => out.push('\u{FFFD}'),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if c.is_control() || is_go_unprintable(c) => {
            if (c as u32) < 0x10000 {
                let _ = write!(out, "\\u{:04x}", c as u32);
            } else {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
        c => out.push(c),
    }
}

/// Non-graphic characters Go escapes beyond the control characters (an
/// approximation of `unicode.IsPrint`: format and separator characters).
fn is_go_unprintable(c: char) -> bool {
    matches!(c as u32, 0xAD | 0x2028 | 0x2029 | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0xFEFF)
        || (c.is_whitespace() && c != ' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(fmt: &str, args: &[Value]) -> String {
        let mut s = String::new();
        sprintf(&mut s, fmt, args).unwrap();
        s
    }

    #[test]
    fn floats_print_like_go() {
        let v = |x: f64| {
            let mut s = String::new();
            write_v(&mut s, &Value::Float(x));
            s
        };
        assert_eq!(v(25.5), "25.5");
        assert_eq!(v(25.0), "25");
        assert_eq!(v(1e6), "1e+06");
        assert_eq!(v(123456.0), "123456");
        assert_eq!(v(0.0001), "0.0001");
        assert_eq!(v(0.00001), "1e-05");
        assert_eq!(v(1.5e300), "1.5e+300");
    }

    #[test]
    fn verbs() {
        assert_eq!(
            f(
                "%d|%5d|%-5d|%05d",
                &[1.into(), 2.into(), 3.into(), (-4).into()]
            ),
            "1|    2|3    |-0004"
        );
        assert_eq!(
            f("%.2f %f %e", &[1.23456.into(), 1.5.into(), 1234.5.into()]),
            "1.23 1.500000 1.234500e+03"
        );
        assert_eq!(
            f("%s %q %v", &["a".into(), "b\n".into(), Value::Null]),
            "a \"b\\n\" <nil>"
        );
        assert_eq!(f("%d %s", &["x".into()]), "%!d(string=x) %!s(MISSING)");
        assert_eq!(
            f("%x %X %o %b", &[255.into(), 255.into(), 8.into(), 5.into()]),
            "ff FF 10 101"
        );
        assert_eq!(f("%t %v", &[true.into()]), "true %!v(MISSING)");
        assert_eq!(f("a", &[1.into()]), "a%!(EXTRA int64=1)");
        assert_eq!(f("%.3g %g", &[1.23456.into(), 1e21.into()]), "1.23 1e+21");
    }

    #[test]
    fn huge_width_or_precision_is_refused() {
        // Found by fuzzing: an overflowing width panicked, a huge one
        // allocated without bound. Go caps both at 1e6 (fmt's tooLarge).
        assert_eq!(
            f("%99999999999999999999d", &[1.into()]),
            "%!(NOVERB)%!(EXTRA int64=1)"
        );
        assert_eq!(
            f("%.99999999999999999999f", &[1.into()]),
            "%!(NOVERB)%!(EXTRA int64=1)"
        );
        assert_eq!(f("%*d|", &[2_000_000.into(), 1.into()]), "%!(BADWIDTH)1|");
        assert_eq!(f("%*d|", &[(-3).into(), 1.into()]), "1  |");
        assert_eq!(
            f("%.*f|%.*d", &[3.into(), 1.0.into(), "x".into(), 5.into()]),
            "1.000|%!(BADPREC)5"
        );
        assert_eq!(f("%1000000d", &[1.into()]).len(), 1_000_000);
        // Past Rust's formatter limit (65,535) the digits are exact zeros.
        let long = f("%.70000f", &[1.5.into()]);
        assert_eq!(long.len(), 70_002);
        assert!(long.starts_with("1.5000") && long.ends_with("000"));
        let e = f("%.70000e", &[1.5.into()]);
        assert!(
            e.starts_with("1.5000") && e.ends_with("0e+00"),
            "{}",
            &e[e.len() - 10..]
        );
        assert_eq!(f("%.70000g", &[0.1.into()]).len(), 55 + 2);
        assert_eq!(f("%.3f", &[2.0f64.powi(-1074).into()]), "0.000");
    }
}
