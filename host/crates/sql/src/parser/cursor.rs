//! The token cursor shared by the statement, SELECT and expression parsers:
//! look-ahead, keyword matching (case-insensitive, bare words only) and the
//! construction of positioned `found ..., expected ...` errors.

use sqlparser::tokenizer::Token;

use super::lexer::{describe, tokenize, Lexeme};
use crate::ast::{Expr, Pos};
use crate::SqlError;

pub(crate) type PResult<T> = Result<T, SqlError>;

/// Deepest nesting of expressions / types accepted before giving up (keeps
/// hostile input from exhausting the stack).
pub(crate) const MAX_DEPTH: usize = 64;

/// Highest expression tree accepted, counted on the built tree (a leaf is
/// 1), so operator chains (`a+a+...`), access chains (`a->b->...`,
/// `a[0][0]...`) and `x AND x AND ...` count as well as brackets. Every later
/// pass over an expression (planning, evaluation, display, drop) recurses
/// over the tree; this bound keeps all of them far from the stack's end.
pub const MAX_EXPR_DEPTH: usize = 100;

/// Words that cannot be used as bare identifiers (eKuiper's reserved words
/// plus the few we add: IS, NULL).
const RESERVED: &[&str] = &[
    "SELECT",
    "FROM",
    "JOIN",
    "LEFT",
    "RIGHT",
    "FULL",
    "CROSS",
    "INNER",
    "ON",
    "WHERE",
    "GROUP",
    "ORDER",
    "HAVING",
    "BY",
    "ASC",
    "DESC",
    "AND",
    "OR",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "IN",
    "NOT",
    "BETWEEN",
    "LIKE",
    "OVER",
    "PARTITION",
    "FILTER",
    "LIMIT",
    "AS",
    "IS",
    "NULL",
    "TRUE",
    "FALSE",
    "EXCEPT",
    "REPLACE",
    "INVISIBLE",
];

pub(crate) struct Cursor {
    toks: Vec<Lexeme>,
    idx: usize,
    pub depth: usize,
}

impl Cursor {
    pub fn new(sql: &str) -> PResult<Self> {
        Ok(Cursor {
            toks: tokenize(sql)?,
            idx: 0,
            depth: 0,
        })
    }

    fn lexeme(&self, n: usize) -> Option<&Lexeme> {
        self.toks.get(self.idx + n).or_else(|| self.toks.last())
    }

    /// The current token (`EOF` at the end).
    pub fn peek(&self) -> &Token {
        self.peek_nth(0)
    }

    /// The token `n` places ahead of the current one.
    pub fn peek_nth(&self, n: usize) -> &Token {
        self.lexeme(n).map(|l| &l.tok).unwrap_or(&Token::EOF)
    }

    /// Position of the current token.
    pub fn pos(&self) -> Pos {
        self.lexeme(0).map(|l| l.pos).unwrap_or_default()
    }

    /// Consumes and returns the current token (stays on `EOF`).
    pub fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.idx < self.toks.len().saturating_sub(1) {
            self.idx += 1;
        }
        t
    }

    pub fn at_eof(&self) -> bool {
        matches!(self.peek(), Token::EOF)
    }

    /// True when the current token is `tok`.
    pub fn is(&self, tok: &Token) -> bool {
        self.peek() == tok
    }

    /// Consumes `tok` if it is current.
    pub fn eat(&mut self, tok: &Token) -> bool {
        if self.is(tok) {
            self.next();
            true
        } else {
            false
        }
    }

    /// Consumes `tok` or fails with `found X, expected <what>.`
    pub fn expect(&mut self, tok: &Token, what: &str) -> PResult<()> {
        if self.eat(tok) {
            Ok(())
        } else {
            Err(self.expected(what))
        }
    }

    /// True when the token `n` ahead is the bare (unquoted) word `kw`, any case.
    pub fn is_kw_nth(&self, n: usize, kw: &str) -> bool {
        is_kw(self.peek_nth(n), kw)
    }

    pub fn is_kw(&self, kw: &str) -> bool {
        self.is_kw_nth(0, kw)
    }

    pub fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.next();
            true
        } else {
            false
        }
    }

    pub fn expect_kw(&mut self, kw: &str, what: &str) -> PResult<()> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.expected(what))
        }
    }

    /// Consumes an identifier: a backquoted name or a bare non-reserved word.
    pub fn ident(&mut self, what: &str) -> PResult<String> {
        match self.peek() {
            Token::Word(w) if w.quote_style.is_some() || !is_reserved(&w.value) => {
                let v = w.value.clone();
                self.next();
                Ok(v)
            }
            _ => Err(self.expected(what)),
        }
    }

    /// Consumes any word, reserved or not (for names in positions where no
    /// keyword can follow, e.g. after `->`).
    pub fn any_word(&mut self, what: &str) -> PResult<String> {
        match self.peek() {
            Token::Word(w) => {
                let v = w.value.clone();
                self.next();
                Ok(v)
            }
            _ => Err(self.expected(what)),
        }
    }

    /// Accepts an optional `;` and then requires the end of the input.
    pub fn finish(&mut self) -> PResult<()> {
        self.eat(&Token::SemiColon);
        if self.at_eof() {
            Ok(())
        } else {
            Err(self.expected("EOF"))
        }
    }

    /// `found "<current>", expected <what>.` at the current position.
    pub fn expected(&self, what: &str) -> SqlError {
        SqlError::parse(
            format!("{}, expected {what}.", self.found()),
            Some(self.pos()),
        )
    }

    /// Like [`Cursor::expected`] but shows the found word upper-cased (eKuiper
    /// does so for statement keywords: `found "STWREAM", expected ...`).
    pub fn expected_upper(&self, what: &str) -> SqlError {
        let found = match self.peek() {
            Token::EOF => "found EOF".to_string(),
            t => format!("found {:?}", describe(t).to_uppercase()),
        };
        SqlError::parse(format!("{found}, expected {what}."), Some(self.pos()))
    }

    /// `found "<current>"` (or `found EOF`).
    pub fn found(&self) -> String {
        match self.peek() {
            Token::EOF => "found EOF".to_string(),
            t => format!("found {:?}", describe(t)),
        }
    }

    /// An error with a free-form message at `pos`.
    pub fn error_at(&self, message: impl Into<String>, pos: Pos) -> SqlError {
        SqlError::parse(message, Some(pos))
    }

    /// Enters one nesting level; fails past [`MAX_DEPTH`].
    pub fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(SqlError::parse(
                format!("statement nested too deeply (more than {MAX_DEPTH} levels)"),
                Some(self.pos()),
            ));
        }
        Ok(())
    }

    pub fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Checks an expression tree's height against [`MAX_EXPR_DEPTH`].
    pub fn check_height(&self, height: usize, start: Pos) -> PResult<()> {
        if height > MAX_EXPR_DEPTH {
            return Err(SqlError::parse(
                format!(
                    "expression nested too deeply (more than {MAX_EXPR_DEPTH} levels: \
                     long operator or access chains count, one level per operator)"
                ),
                Some(start),
            ));
        }
        Ok(())
    }

    /// Height of `node` given `first_height`, the height of its first child
    /// (already measured): avoids re-measuring a growing left chain at each step.
    pub fn height_after(&self, first_height: usize, node: &Expr, start: Pos) -> PResult<usize> {
        let mut h = first_height;
        let mut first = true;
        node.for_each_child(|c| {
            if first {
                first = false;
            } else {
                h = h.max(c.depth());
            }
        });
        let h = h + 1;
        self.check_height(h, start)?;
        Ok(h)
    }
}

/// True when `tok` is the bare word `kw` (case-insensitive).
pub(crate) fn is_kw(tok: &Token, kw: &str) -> bool {
    matches!(tok, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(kw))
}

/// True for eKuiper's reserved words (case-insensitive).
pub(crate) fn is_reserved(word: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(word))
}
