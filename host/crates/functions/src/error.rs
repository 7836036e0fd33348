//! The one error type of the function library, worded like eKuiper's so that
//! rule errors read the same (`validate function abs error: ...`,
//! `call func abs error: ...`).

/// An error raised while validating or calling a SQL function.
///
/// `Display` already carries eKuiper's prefix, so callers should not wrap the
/// message in another "call func" layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FnError {
    /// The name is neither a scalar nor an aggregate function of this library.
    #[error("function {0} not found")]
    NotFound(String),
    /// A plan-time problem: wrong number of arguments, bad constant argument.
    #[error("validate function {name} error: {msg}")]
    Validate { name: String, msg: String },
    /// A run-time problem while evaluating the function for one event.
    #[error("call func {name} error: {msg}")]
    Call { name: &'static str, msg: String },
}

impl FnError {
    /// A run-time error of function `name`.
    pub fn call(name: &'static str, msg: impl Into<String>) -> FnError {
        FnError::Call {
            name,
            msg: msg.into(),
        }
    }

    /// A plan-time error of function `name`.
    pub fn validate(name: &str, msg: impl Into<String>) -> FnError {
        FnError::Validate {
            name: name.to_string(),
            msg: msg.into(),
        }
    }

    /// The message without eKuiper's `call func`/`validate function` prefix.
    pub fn message(&self) -> String {
        match self {
            FnError::NotFound(n) => format!("function {n} not found"),
            FnError::Validate { msg, .. } | FnError::Call { msg, .. } => msg.clone(),
        }
    }
}
