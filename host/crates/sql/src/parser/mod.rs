//! eKuiper's SQL dialect -> [`crate::ast`].
//!
//! Tokenizing is done by `sqlparser` with our own [`OortDialect`] (double
//! quotes are string literals, backticks quote identifiers, `->`, `[i]`,
//! `[a:b]`, `/* */` comments, case-insensitive keywords). The grammar is
//! eKuiper's rather than standard SQL (`CREATE STREAM ... WITH (...)`, windows
//! in GROUP BY with `FILTER`/`OVER`, `INVISIBLE`, `* EXCEPT(...) REPLACE(...)`),
//! so it is hand-parsed over those tokens by a small recursive-descent /
//! precedence-climbing parser:
//!
//! - `lexer`: tokens + positions, Go-style string unescaping;
//! - `cursor`: look-ahead and `found ..., expected ...` errors;
//! - `expr`: expressions; `window`: window functions;
//! - `select`: SELECT; `ddl`: stream/table statements and WITH options.
//!
//! Errors are [`SqlError::Parse`] with a 1-based line/column when known. No
//! input makes the parser panic; parser recursion is capped, and so is the
//! height of every expression tree it builds ([`MAX_EXPR_DEPTH`]), so later
//! passes over the tree stay far from the end of the stack.

mod cursor;
mod ddl;
mod dialect;
mod expr;
mod lexer;
mod select;
mod window;

#[cfg(test)]
mod tests;

pub use cursor::MAX_EXPR_DEPTH;
pub use ddl::{FORMATS, OPTION_KEYS};
pub use dialect::OortDialect;
pub use window::{MAX_COUNT_WINDOW, MAX_WINDOW_MS};

use crate::ast::{Expr, Select, Statement};
use crate::SqlError;
use cursor::Cursor;

/// Parses one statement (an optional trailing `;` is accepted).
pub fn parse_statement(sql: &str) -> Result<Statement, SqlError> {
    let mut c = Cursor::new(sql)?;
    let first = match c.peek() {
        sqlparser::tokenizer::Token::Word(w) if w.quote_style.is_none() => {
            w.value.to_ascii_uppercase()
        }
        _ => String::new(),
    };
    let stmt = match first.as_str() {
        "SELECT" => Statement::Select(Box::new(c.parse_select_body()?)),
        "CREATE" => c.parse_create()?,
        "DROP" | "DESCRIBE" | "EXPLAIN" => c.parse_named_stmt()?,
        "SHOW" => c.parse_show()?,
        _ => return Err(c.expected("SELECT, CREATE, DROP, DESCRIBE, EXPLAIN or SHOW")),
    };
    c.finish()?;
    Ok(stmt)
}

/// Parses a SELECT statement; any other statement is an error.
pub fn parse_select(sql: &str) -> Result<Select, SqlError> {
    let mut c = Cursor::new(sql)?;
    let select = c.parse_select_body()?;
    c.finish()?;
    Ok(select)
}

/// Parses a standalone expression (e.g. a rule condition).
pub fn parse_expr(sql: &str) -> Result<Expr, SqlError> {
    let mut c = Cursor::new(sql)?;
    let e = c.parse_expr()?;
    if !c.at_eof() {
        return Err(c.expected("EOF"));
    }
    Ok(e)
}
