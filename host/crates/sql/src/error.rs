//! Errors of parsing and planning, with the position when known.

use crate::ast::Pos;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum SqlError {
    /// Syntax error. The message says what was found and what was expected.
    #[error("{message}{}", pos.map(|p| format!(" at line {}, column {}", p.line, p.column)).unwrap_or_default())]
    Parse { message: String, pos: Option<Pos> },
    /// The statement parsed but cannot be planned (unknown stream, bad window...).
    #[error("{0}")]
    Plan(String),
}

impl SqlError {
    pub fn parse(message: impl Into<String>, pos: Option<Pos>) -> Self {
        SqlError::Parse {
            message: message.into(),
            pos,
        }
    }
    pub fn plan(message: impl Into<String>) -> Self {
        SqlError::Plan(message.into())
    }
}
