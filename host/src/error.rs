//! The application error shared by the manager, the REST server and the CLI.
//! Mapped to eKuiper's wire shape `{"error":<code>,"message":"..."}`: code 1002
//! is "not found" (HTTP 404), other client errors are HTTP 400.

/// eKuiper error codes (`pkg/errorx`).
pub mod code {
    pub const UNDEFINED: u32 = 1000;
    pub const GENERAL: u32 = 1001;
    pub const NOT_FOUND: u32 = 1002;
    pub const IO: u32 = 1003;
    pub const PARSER: u32 = 2001;
    pub const PLAN: u32 = 2101;
    pub const EXECUTOR: u32 = 2201;
    pub const STREAM_TABLE: u32 = 3000;
    pub const RULE: u32 = 4000;
    pub const CONF_KEY: u32 = 5000;
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    BadRequest { code: u32, message: String },
    /// A server fault (store IO...). Still reported with a clear message.
    #[error("{0}")]
    Internal(String),
    /// The change cannot be made now (a data import holds the store): HTTP 409.
    #[error("{0}")]
    Conflict(String),
}

impl AppError {
    pub fn bad(message: impl Into<String>) -> AppError {
        AppError::BadRequest {
            code: code::UNDEFINED,
            message: message.into(),
        }
    }
    pub fn bad_code(code: u32, message: impl Into<String>) -> AppError {
        AppError::BadRequest {
            code,
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> AppError {
        AppError::NotFound(message.into())
    }
    pub fn code(&self) -> u32 {
        match self {
            AppError::NotFound(_) => code::NOT_FOUND,
            AppError::BadRequest { code, .. } => *code,
            AppError::Internal(_) => code::IO,
            AppError::Conflict(_) => code::GENERAL,
        }
    }
    /// Prefixes the message, keeping the kind ("create rule error: ...").
    pub fn context(self, prefix: &str) -> AppError {
        match self {
            AppError::NotFound(m) => AppError::NotFound(format!("{prefix}: {m}")),
            AppError::BadRequest { code, message } => AppError::BadRequest {
                code,
                message: format!("{prefix}: {message}"),
            },
            AppError::Internal(m) => AppError::Internal(format!("{prefix}: {m}")),
            AppError::Conflict(m) => AppError::Conflict(format!("{prefix}: {m}")),
        }
    }
}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Busy => AppError::Conflict(e.to_string()),
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<crate::confkeys::ConfError> for AppError {
    fn from(e: crate::confkeys::ConfError) -> Self {
        match e {
            crate::confkeys::ConfError::Store(s) => AppError::from(s),
            other => AppError::bad_code(code::CONF_KEY, other.to_string()),
        }
    }
}

impl From<oort_sql::SqlError> for AppError {
    fn from(e: oort_sql::SqlError) -> Self {
        let c = match e {
            oort_sql::SqlError::Parse { .. } => code::PARSER,
            oort_sql::SqlError::Plan(_) => code::PLAN,
        };
        AppError::bad_code(c, e.to_string())
    }
}

pub type AppResult<T> = Result<T, AppError>;
