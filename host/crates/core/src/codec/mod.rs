//! FORMAT decoding (source bytes -> rows) and encoding (rows -> sink bytes).
//! Owned by the runtime, so plugins and native connectors see bytes only.

use bytes::Bytes;

use crate::value::{Row, Value};

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("unsupported format {0:?}: expected json, binary or delimited")]
    UnknownFormat(String),
    #[error("decode error: {0}")]
    Decode(String),
    #[error("encode error: {0}")]
    Encode(String),
}

/// Options from the stream definition that shape decoding.
#[derive(Debug, Clone, Default)]
pub struct DecodeOptions {
    /// `DELIMITER` for `delimited` (default `,`).
    pub delimiter: Option<String>,
    /// Declared columns (empty = schemaless); `delimited` without a header uses them.
    pub columns: Vec<String>,
}

/// Turns one payload into zero or more rows. Stateful so it can reuse schemas.
pub trait Decoder: Send {
    fn decode(&mut self, payload: &[u8], out: &mut Vec<Row>) -> Result<(), CodecError>;
}

/// Turns sink data (a row object or an array of them) into bytes.
pub trait Encoder: Send + Sync {
    fn encode(&self, data: &Value) -> Result<Bytes, CodecError>;
}
