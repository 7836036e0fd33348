//! Splits a template into text and action tokens, as Go's `text/template/parse`
//! lexer does: `{{`/`}}` delimiters, trim markers (`{{- ` and ` -}}`, the space
//! is required), comments (`{{/* ... */}}`), strings, raw strings, characters,
//! numbers, fields, variables, identifiers and punctuation.

use super::TemplateError;
use crate::value::Value;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    /// Literal text between actions (trim markers already applied).
    Text(String),
    /// Start of an action.
    Open,
    /// End of an action.
    Close,
    Ident(String),
    /// `.name` (without the dot).
    Field(String),
    /// `.` alone.
    Dot,
    /// `$` or `$name` (with the `$`).
    Var(String),
    Str(String),
    /// Numbers and character constants.
    Num(Value),
    LParen,
    RParen,
    Pipe,
    Declare,
    Assign,
    Comma,
}

/// A token and whether white space came right before it (`.a .b` vs `.a.b`).
#[derive(Debug, Clone)]
pub(super) struct Token {
    pub tok: Tok,
    pub spaced: bool,
}

const OPEN: &str = "{{";
const CLOSE: &str = "}}";

fn err(msg: impl Into<String>) -> TemplateError {
    TemplateError(msg.into())
}

pub(super) fn lex(src: &str) -> Result<Vec<Token>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = src;
    let mut trim_next_text = false;
    while !rest.is_empty() {
        let (text, after) = match rest.find(OPEN) {
            Some(i) => (&rest[..i], Some(&rest[i + OPEN.len()..])),
            None => (rest, None),
        };
        let mut text = text;
        if trim_next_text {
            text = text.trim_start_matches(is_space);
        }
        let Some(after) = after else {
            push_text(&mut out, text);
            break;
        };
        let left_trim = after.starts_with("- ")
            || after.starts_with("-\t")
            || after.starts_with("-\n")
            || after.starts_with("-\r");
        if left_trim {
            text = text.trim_end_matches(is_space);
        }
        push_text(&mut out, text);
        let mut body = if left_trim { &after[2..] } else { after };
        // Comments: `{{/* ... */}}`, optionally with trim markers.
        let trimmed_body = body.trim_start_matches(is_space);
        if trimmed_body.starts_with("/*") && (left_trim || body.starts_with("/*")) {
            let Some(end) = trimmed_body.find("*/") else {
                return Err(err("unclosed comment"));
            };
            let tail = &trimmed_body[end + 2..];
            let (right_trim, tail) = close_of_comment(tail)?;
            trim_next_text = right_trim;
            rest = tail;
            continue;
        }
        out.push(Token {
            tok: Tok::Open,
            spaced: false,
        });
        let (right_trim, tail) = lex_action(&mut body, &mut out)?;
        trim_next_text = right_trim;
        rest = tail;
    }
    Ok(out)
}

fn close_of_comment(tail: &str) -> Result<(bool, &str), TemplateError> {
    if let Some(t) = tail.strip_prefix(CLOSE) {
        return Ok((false, t));
    }
    let t = tail.trim_start_matches(is_space);
    if t.len() < tail.len() {
        if let Some(t) = t.strip_prefix("-}}") {
            return Ok((true, t));
        }
    }
    Err(err("comment ends before closing delimiter"))
}

fn push_text(out: &mut Vec<Token>, text: &str) {
    if text.is_empty() {
        return;
    }
    // Text around a comment is one piece.
    if let Some(Token {
        tok: Tok::Text(prev),
        ..
    }) = out.last_mut()
    {
        prev.push_str(text);
        return;
    }
    {
        out.push(Token {
            tok: Tok::Text(text.to_string()),
            spaced: false,
        });
    }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Lexes one action body up to its `}}`; returns whether it ended with a
/// right trim marker and the text after the action.
fn lex_action<'a>(
    body: &mut &'a str,
    out: &mut Vec<Token>,
) -> Result<(bool, &'a str), TemplateError> {
    let mut s: &'a str = body;
    let mut parens = 0i32;
    loop {
        let before = s.len();
        s = s.trim_start_matches(is_space);
        let spaced = s.len() < before;
        if spaced {
            if let Some(t) = s.strip_prefix("-}}") {
                if parens > 0 {
                    return Err(err("unclosed left paren"));
                }
                out.push(Token {
                    tok: Tok::Close,
                    spaced,
                });
                return Ok((true, t));
            }
        }
        if let Some(t) = s.strip_prefix(CLOSE) {
            if parens > 0 {
                return Err(err("unclosed left paren"));
            }
            out.push(Token {
                tok: Tok::Close,
                spaced,
            });
            return Ok((false, t));
        }
        let Some(c) = s.chars().next() else {
            return Err(err("unclosed action"));
        };
        let push = |out: &mut Vec<Token>, tok: Tok| out.push(Token { tok, spaced });
        match c {
            '|' => {
                push(out, Tok::Pipe);
                s = &s[1..];
            }
            '(' => {
                parens += 1;
                push(out, Tok::LParen);
                s = &s[1..];
            }
            ')' => {
                parens -= 1;
                if parens < 0 {
                    return Err(err("unexpected right paren"));
                }
                push(out, Tok::RParen);
                s = &s[1..];
            }
            ',' => {
                push(out, Tok::Comma);
                s = &s[1..];
            }
            ':' => {
                let Some(t) = s.strip_prefix(":=") else {
                    return Err(err("expected :="));
                };
                push(out, Tok::Declare);
                s = t;
            }
            '=' => {
                push(out, Tok::Assign);
                s = &s[1..];
            }
            '"' => {
                let (v, t) = lex_quoted(s)?;
                push(out, Tok::Str(v));
                s = t;
            }
            '`' => {
                let Some(end) = s[1..].find('`') else {
                    return Err(err("unterminated raw quoted string"));
                };
                push(out, Tok::Str(s[1..1 + end].to_string()));
                s = &s[end + 2..];
            }
            '\'' => {
                let (v, t) = lex_char(s)?;
                push(out, Tok::Num(Value::Int(v as i64)));
                s = t;
            }
            '$' => {
                let n = s[1..].find(|c: char| !is_alnum(c)).unwrap_or(s.len() - 1);
                push(out, Tok::Var(s[..1 + n].to_string()));
                s = &s[1 + n..];
            }
            '.' => {
                let next = s[1..].chars().next();
                if next.is_some_and(|c| c.is_ascii_digit()) {
                    let (v, t) = lex_number(s)?;
                    push(out, Tok::Num(v));
                    s = t;
                } else {
                    let n = s[1..].find(|c: char| !is_alnum(c)).unwrap_or(s.len() - 1);
                    if n == 0 {
                        push(out, Tok::Dot);
                    } else {
                        push(out, Tok::Field(s[1..1 + n].to_string()));
                    }
                    s = &s[1 + n..];
                }
            }
            '+' | '-' | '0'..='9' => {
                let (v, t) = lex_number(s)?;
                push(out, Tok::Num(v));
                s = t;
            }
            c if is_alnum(c) => {
                let n = s.find(|c: char| !is_alnum(c)).unwrap_or(s.len());
                push(out, Tok::Ident(s[..n].to_string()));
                s = &s[n..];
            }
            other => return Err(err(format!("unrecognized character in action: {other:?}"))),
        }
    }
}

/// A Go interpreted string literal; returns the value and the rest.
fn lex_quoted(s: &str) -> Result<(String, &str), TemplateError> {
    let mut out = String::new();
    let mut chars = s[1..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[1 + i + 1..])),
            '\n' => break,
            '\\' => {
                let (_, e) = chars
                    .next()
                    .ok_or_else(|| err("unterminated quoted string"))?;
                out.push(unescape(e, &mut chars)?);
            }
            c => out.push(c),
        }
    }
    Err(err("unterminated quoted string"))
}

fn unescape(e: char, chars: &mut std::str::CharIndices<'_>) -> Result<char, TemplateError> {
    let hex = |chars: &mut std::str::CharIndices<'_>, n: usize| -> Result<char, TemplateError> {
        let mut v = 0u32;
        for _ in 0..n {
            let (_, d) = chars.next().ok_or_else(|| err("bad escape in string"))?;
            v = v * 16 + d.to_digit(16).ok_or_else(|| err("bad escape in string"))?;
        }
        char::from_u32(v).ok_or_else(|| err("bad escape in string"))
    };
    Ok(match e {
        'n' => '\n',
        't' => '\t',
        'r' => '\r',
        'a' => '\u{7}',
        'b' => '\u{8}',
        'f' => '\u{c}',
        'v' => '\u{b}',
        '\\' => '\\',
        '"' => '"',
        '\'' => '\'',
        'x' => hex(chars, 2)?,
        'u' => hex(chars, 4)?,
        'U' => hex(chars, 8)?,
        _ => return Err(err(format!("unsupported escape \\{e} in string"))),
    })
}

fn lex_char(s: &str) -> Result<(char, &str), TemplateError> {
    let mut chars = s[1..].char_indices();
    let c = match chars.next() {
        Some((_, '\\')) => {
            let (_, e) = chars
                .next()
                .ok_or_else(|| err("unterminated character constant"))?;
            unescape(e, &mut chars)?
        }
        Some((_, c)) => c,
        None => return Err(err("unterminated character constant")),
    };
    match chars.next() {
        Some((i, '\'')) => Ok((c, &s[1 + i + 1..])),
        _ => Err(err("unterminated character constant")),
    }
}

/// A Go number literal: ints (decimal, 0x, 0o, 0b, leading 0 octal) become
/// `Int`, anything with a fraction or exponent a `Float`.
fn lex_number(s: &str) -> Result<(Value, &str), TemplateError> {
    let n = s
        .char_indices()
        .skip(1)
        .find(|&(i, c)| {
            !(is_alnum(c)
                || c == '.'
                || ((c == '+' || c == '-')
                    && matches!(s.as_bytes()[i - 1], b'e' | b'E' | b'p' | b'P')))
        })
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    let text = &s[..n];
    let bad = || err(format!("bad number syntax: {text:?}"));
    let clean: String = text.chars().filter(|c| *c != '_').collect();
    let (neg, digits) = match clean.as_bytes().first() {
        Some(b'-') => (true, &clean[1..]),
        Some(b'+') => (false, &clean[1..]),
        _ => (false, clean.as_str()),
    };
    if digits.is_empty() {
        return Err(bad());
    }
    let lower = digits.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        if h.contains('p') || h.contains('.') {
            return Err(err(format!("hexadecimal float {text:?} is not supported")));
        }
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|b| b.is_ascii_digit())
    {
        i64::from_str_radix(&lower[1..], 8).ok()
    } else if lower.bytes().all(|b| b.is_ascii_digit()) {
        lower.parse::<i64>().ok()
    } else {
        None
    };
    if let Some(i) = int {
        return Ok((Value::Int(if neg { -i } else { i }), &s[n..]));
    }
    if lower.ends_with('i') {
        return Err(err(format!("complex number {text:?} is not supported")));
    }
    let f: f64 = lower.parse().map_err(|_| bad())?;
    Ok((Value::Float(if neg { -f } else { f }), &s[n..]))
}
