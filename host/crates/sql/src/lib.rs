//! `oort-sql`: turns SQL text into a compiled, stateful query that the runtime
//! drives event by event. Knows nothing about IO, tokio or HTTP.
//!
//! - [`ast`]: our syntax tree.
//! - [`parser`]: eKuiper's dialect on top of `sqlparser` -> [`ast`].
//! - functions live in the `oort-functions` crate.
//! - [`plan`] / [`engine`]: name resolution, compiled expressions, windows,
//!   joins, aggregation, projection.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod ast;
pub mod engine;
pub mod error;
pub mod parser;

pub use error::SqlError;
