//! Tokenization: runs sqlparser's tokenizer with [`OortDialect`], drops
//! whitespace and comments, decodes string escapes the way eKuiper (Go) does,
//! and records each token's 1-based line/column for error messages.

use sqlparser::tokenizer::{Token, Tokenizer};

use super::dialect::OortDialect;
use crate::ast::Pos;
use crate::SqlError;

/// One significant token with its position.
#[derive(Debug, Clone)]
pub(crate) struct Lexeme {
    pub tok: Token,
    pub pos: Pos,
}

/// Tokenizes `sql`. The result always ends with a `Token::EOF` lexeme.
pub(crate) fn tokenize(sql: &str) -> Result<Vec<Lexeme>, SqlError> {
    let dialect = OortDialect;
    let raw = Tokenizer::new(&dialect, sql)
        .with_unescape(false)
        .tokenize_with_location()
        .map_err(|e| {
            SqlError::parse(
                e.message,
                Some(Pos {
                    line: e.location.line,
                    column: e.location.column,
                }),
            )
        })?;
    let mut out = Vec::with_capacity(raw.len() + 1);
    let mut end = Pos { line: 1, column: 1 };
    for t in raw {
        let pos = Pos {
            line: t.span.start.line,
            column: t.span.start.column,
        };
        end = Pos {
            line: t.span.end.line,
            column: t.span.end.column,
        };
        let tok = match t.token {
            Token::Whitespace(_) => continue,
            Token::SingleQuotedString(s) => Token::SingleQuotedString(
                unescape(&s, '\'').map_err(|m| SqlError::parse(m, Some(pos)))?,
            ),
            Token::DoubleQuotedString(s) => Token::DoubleQuotedString(
                unescape(&s, '"').map_err(|m| SqlError::parse(m, Some(pos)))?,
            ),
            other => other,
        };
        out.push(Lexeme { tok, pos });
    }
    out.push(Lexeme {
        tok: Token::EOF,
        pos: end,
    });
    Ok(out)
}

/// Decodes the body of a quoted string as kept verbatim by the tokenizer.
///
/// Escapes follow Go string literals (`\n \t \r \a \b \f \v \\ \' \" \xHH
/// \uHHHH \UHHHHHHHH \ooo`), as eKuiper unquotes strings with Go's rules. A
/// doubled quote character stands for one quote. Unlike Go, an unknown escape
/// such as `\d` is kept as written (backslash included), which is friendlier
/// for regular expressions and never changes a string eKuiper accepts.
fn unescape(raw: &str, quote: char) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == quote {
            // The tokenizer only lets a quote through when it was doubled.
            if chars.peek() == Some(&quote) {
                chars.next();
            }
            out.push(quote);
            continue;
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = chars.next() else {
            out.push('\\');
            break;
        };
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            '\\' => out.push('\\'),
            '\'' => out.push('\''),
            '"' => out.push('"'),
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let digits: String = chars.by_ref().take(n).collect();
                let code = (digits.len() == n)
                    .then(|| u32::from_str_radix(&digits, 16).ok())
                    .flatten()
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("invalid escape sequence \\{e}{digits} in string"))?;
                out.push(code);
            }
            '0'..='7' => {
                let mut digits = String::from(e);
                for _ in 0..2 {
                    match chars.next() {
                        Some(d @ '0'..='7') => digits.push(d),
                        _ => {
                            return Err(format!(
                                "invalid octal escape sequence \\{digits} in string"
                            ))
                        }
                    }
                }
                let code = u32::from_str_radix(&digits, 8)
                    .ok()
                    .filter(|v| *v <= 0xff)
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("invalid octal escape sequence \\{digits} in string"))?;
                out.push(code);
            }
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}

/// How a token is shown in "found ..." messages.
pub(crate) fn describe(tok: &Token) -> String {
    match tok {
        Token::EOF => "EOF".to_string(),
        Token::Word(w) => w.value.clone(),
        Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => s.clone(),
        Token::Number(n, _) => n.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(sql: &str) -> Vec<Token> {
        tokenize(sql).unwrap().into_iter().map(|l| l.tok).collect()
    }

    #[test]
    fn double_quotes_are_strings_and_backticks_identifiers() {
        let t = toks(r#"`from` = "red""#);
        match &t[0] {
            Token::Word(w) => {
                assert_eq!(w.value, "from");
                assert_eq!(w.quote_style, Some('`'));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(t[1], Token::Eq);
        assert_eq!(t[2], Token::DoubleQuotedString("red".into()));
        assert_eq!(t[3], Token::EOF);
    }

    #[test]
    fn comments_are_dropped_and_arrow_and_brackets_kept() {
        let t = toks("a /* hi */ -> b[1:2]");
        assert_eq!(t.len(), 9);
        assert_eq!(t[1], Token::Arrow);
        assert_eq!(t[3], Token::LBracket);
        assert_eq!(t[5], Token::Colon);
        assert_eq!(t[7], Token::RBracket);
    }

    #[test]
    fn string_escapes_follow_go() {
        assert_eq!(unescape(r#"a\"b\n\t\\"#, '"').unwrap(), "a\"b\n\t\\");
        assert_eq!(unescape(r"it\'s", '\'').unwrap(), "it's");
        assert_eq!(unescape("it''s", '\'').unwrap(), "it's");
        assert_eq!(unescape(r"\x41\u00e9\101", '"').unwrap(), "AéA");
        assert_eq!(unescape(r"^\d+$", '"').unwrap(), r"^\d+$");
        assert!(unescape(r"\xZZ", '"').is_err());
        assert!(unescape(r"\9", '"').is_ok());
        assert!(unescape(r"\08", '"').is_err());
    }

    #[test]
    fn positions_are_one_based() {
        let l = tokenize("SELECT\n  a").unwrap();
        assert_eq!(l[0].pos, Pos { line: 1, column: 1 });
        assert_eq!(l[1].pos, Pos { line: 2, column: 3 });
    }
}
