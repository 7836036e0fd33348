//! FORMAT decoding (source bytes -> rows) and encoding (rows -> sink bytes).
//! Owned by the runtime, so plugins and native connectors see bytes only.
//!
//! [`decoder`] and [`encoder`] pick an implementation by eKuiper FORMAT name:
//! `json` ([`json`]), `binary` ([`binary`]), `delimited` ([`delimited`]) and
//! `urlencoded` ([`urlencoded`]).
//! The text helpers in [`text`] (Go-compatible number and value printing) are
//! shared by the encoders and by connectors that render values into strings.

pub mod binary;
pub mod delimited;
pub mod json;
pub mod protobuf;
pub mod text;
pub mod urlencoded;

use bytes::Bytes;

use crate::value::{Row, Value};

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("unsupported format {0:?}: expected json, binary, delimited, urlencoded or protobuf")]
    UnknownFormat(String),
    /// A format eKuiper has that Oort does not support (yet), and why.
    #[error("format {0} is not supported: {1}")]
    Unsupported(&'static str, &'static str),
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
    /// `protobuf`: the message type `SCHEMAID` names.
    pub proto: Option<prost_reflect::MessageDescriptor>,
    /// `json`: keep whole numbers as integers (a typed stream, whose schema
    /// converts, or `useInt64ForWholeNumber`); otherwise every number is a
    /// float, as eKuiper decodes schemaless streams.
    pub keep_integers: bool,
}

/// Options from the sink's common properties that shape encoding.
#[derive(Debug, Clone, Default)]
pub struct EncodeOptions {
    /// `delimiter` for `delimited` (default `,`).
    pub delimiter: Option<String>,
    /// `hasHeader` for `delimited`: the payload starts with a header line.
    pub has_header: bool,
    /// `fields` for `delimited`: column order (default: the row's sorted keys).
    pub fields: Vec<String>,
    /// `protobuf`: the message type `schemaId` names.
    pub proto: Option<prost_reflect::MessageDescriptor>,
}

/// Turns one payload into zero or more rows. Stateful so it can reuse schemas.
pub trait Decoder: Send {
    fn decode(&mut self, payload: &[u8], out: &mut Vec<Row>) -> Result<(), CodecError>;
}

/// Turns sink data (a row object or an array of them) into bytes.
pub trait Encoder: Send + Sync {
    fn encode(&self, data: &Value) -> Result<Bytes, CodecError>;

    /// Encodes one row as a row object; same bytes as `encode(&row.to_value())`,
    /// which is what the default does. JSON overrides it to skip building the map.
    fn encode_row(&self, row: &Row) -> Result<Bytes, CodecError> {
        self.encode(&row.to_value())
    }

    /// Encodes rows as an array of row objects; same bytes as encoding the array value.
    fn encode_rows(&self, rows: &[Row]) -> Result<Bytes, CodecError> {
        let arr: Vec<Value> = rows.iter().map(Row::to_value).collect();
        self.encode(&Value::Array(std::sync::Arc::new(arr)))
    }

    /// Appends the bytes of [`Encoder::encode_row`] to `out`, so a caller can
    /// encode many rows into one buffer. On error `out` may hold a partial row.
    fn append_row(&self, row: &Row, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(&self.encode_row(row)?);
        Ok(())
    }

    /// Encodes each row as with [`Encoder::append_row`], one after another
    /// into `out`, pushing the end offset of each to `ends`; stops at the
    /// first error. Lets an encoder reuse per-schema work across a batch
    /// (JSON prepares the sorted, escaped keys once per schema).
    fn append_each_row(
        &self,
        rows: &mut dyn Iterator<Item = &Row>,
        out: &mut Vec<u8>,
        ends: &mut Vec<usize>,
    ) -> Result<(), CodecError> {
        for r in rows {
            self.append_row(r, out)?;
            ends.push(out.len());
        }
        Ok(())
    }
}

/// The delimiter to use: the configured one unless empty, else `,`.
fn delimiter_or_comma(d: &Option<String>) -> String {
    match d {
        Some(d) if !d.is_empty() => d.clone(),
        _ => ",".to_string(),
    }
}

/// Builds the decoder of a FORMAT (`json`, `binary`, `delimited`; case-insensitive).
/// eKuiper formats Oort knows but does not support, with the reason.
/// `protobuf` without a message type.
fn no_schema() -> CodecError {
    CodecError::Unsupported(
        "protobuf",
        "it needs SCHEMAID (streams) or schemaId (sinks) naming schema.Message of a schema registered with POST /schemas/protobuf",
    )
}

fn unsupported(f: &str) -> Option<CodecError> {
    if f.eq_ignore_ascii_case("custom") {
        Some(CodecError::Unsupported(
            "custom",
            "it runs a Go plugin, which Oort does not load; decode or encode in a WebAssembly plugin instead",
        ))
    } else {
        None
    }
}

pub fn decoder(format: &str, opts: &DecodeOptions) -> Result<Box<dyn Decoder>, CodecError> {
    let f = format.trim();
    if let Some(e) = unsupported(f) {
        return Err(e);
    }
    if f.eq_ignore_ascii_case("protobuf") {
        return match &opts.proto {
            Some(d) => Ok(Box::new(protobuf::ProtobufDecoder::new(d.clone()))),
            None => Err(no_schema()),
        };
    }
    if f.is_empty() || f.eq_ignore_ascii_case("json") {
        Ok(Box::new(if opts.keep_integers {
            json::JsonDecoder::new()
        } else {
            json::JsonDecoder::schemaless()
        }))
    } else if f.eq_ignore_ascii_case("binary") {
        Ok(Box::new(binary::BinaryDecoder::new()))
    } else if f.eq_ignore_ascii_case("urlencoded") {
        Ok(Box::new(urlencoded::UrlEncodedDecoder))
    } else if f.eq_ignore_ascii_case("delimited") {
        Ok(Box::new(delimited::DelimitedDecoder::new(
            delimiter_or_comma(&opts.delimiter),
            opts.columns.clone(),
        )))
    } else {
        Err(CodecError::UnknownFormat(format.to_string()))
    }
}

/// Builds the encoder of a FORMAT (`json`, `binary`, `delimited`; case-insensitive).
pub fn encoder(format: &str, opts: &EncodeOptions) -> Result<Box<dyn Encoder>, CodecError> {
    let f = format.trim();
    if let Some(e) = unsupported(f) {
        return Err(e);
    }
    if f.eq_ignore_ascii_case("protobuf") {
        return match &opts.proto {
            Some(d) => Ok(Box::new(protobuf::ProtobufEncoder::new(d.clone()))),
            None => Err(no_schema()),
        };
    }
    if f.is_empty() || f.eq_ignore_ascii_case("json") {
        Ok(Box::new(json::JsonEncoder))
    } else if f.eq_ignore_ascii_case("binary") {
        Ok(Box::new(binary::BinaryEncoder))
    } else if f.eq_ignore_ascii_case("urlencoded") {
        Ok(Box::new(urlencoded::UrlEncodedEncoder))
    } else if f.eq_ignore_ascii_case("delimited") {
        Ok(Box::new(delimited::DelimitedEncoder::new(
            delimiter_or_comma(&opts.delimiter),
            opts.has_header,
            opts.fields.clone(),
        )))
    } else {
        Err(CodecError::UnknownFormat(format.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factories_pick_by_name_and_reject_unknown() {
        let opts = DecodeOptions::default();
        let mut d = decoder("JSON", &opts).unwrap();
        let mut rows = Vec::new();
        d.decode(br#"{"a":1}"#, &mut rows).unwrap();
        assert_eq!(rows[0].get("a"), Some(&Value::Int(1)));
        assert!(matches!(
            decoder("Protobuf", &opts),
            Err(CodecError::Unsupported("protobuf", _))
        ));
        assert!(matches!(
            encoder("custom", &EncodeOptions::default()),
            Err(CodecError::Unsupported("custom", _))
        ));
        assert!(matches!(
            decoder("xml", &opts),
            Err(CodecError::UnknownFormat(f)) if f == "xml"
        ));
        let e = encoder("delimited", &EncodeOptions::default()).unwrap();
        let v = json::decode_value(br#"{"b":"x","a":1}"#).unwrap();
        assert_eq!(&e.encode(&v).unwrap()[..], b"1,x");
    }
}
