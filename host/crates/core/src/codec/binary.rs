//! FORMAT `binary`: the whole payload is one row with the field `self`
//! (`Value::Bytes`); encoding writes the `self` field of a row back out.

use std::sync::Arc;

use bytes::Bytes;

use super::{CodecError, Decoder, Encoder};
use crate::value::{Row, Schema, Value};

/// The field name eKuiper gives a binary payload.
pub const SELF_FIELD: &str = "self";

/// Decodes any payload into `{self: bytes}`; all rows share one schema.
#[derive(Debug)]
pub struct BinaryDecoder {
    schema: Arc<Schema>,
}

impl BinaryDecoder {
    pub fn new() -> BinaryDecoder {
        BinaryDecoder {
            schema: Arc::new(Schema::from_strs(&[SELF_FIELD])),
        }
    }
}

impl Default for BinaryDecoder {
    fn default() -> Self {
        BinaryDecoder::new()
    }
}

impl Decoder for BinaryDecoder {
    fn decode(&mut self, payload: &[u8], out: &mut Vec<Row>) -> Result<(), CodecError> {
        out.push(Row::new(
            self.schema.clone(),
            vec![Value::Bytes(Arc::from(payload))],
        ));
        Ok(())
    }
}

/// Encodes the `self` field of a row object (bytes, or a string's bytes).
#[derive(Debug, Default, Clone, Copy)]
pub struct BinaryEncoder;

impl Encoder for BinaryEncoder {
    fn encode(&self, data: &Value) -> Result<Bytes, CodecError> {
        let Value::Object(m) = data else {
            return Err(CodecError::Encode(format!(
                "unsupported type {}, must be a map",
                data.type_name()
            )));
        };
        match m.get(SELF_FIELD) {
            Some(Value::Bytes(b)) => Ok(Bytes::copy_from_slice(b)),
            Some(Value::Str(s)) => Ok(Bytes::copy_from_slice(s.as_bytes())),
            Some(other) => Err(CodecError::Encode(format!(
                "field {SELF_FIELD} is {}, not bytes",
                other.type_name()
            ))),
            None => Err(CodecError::Encode(format!("field {SELF_FIELD} not exist"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Map;

    #[test]
    fn round_trips_the_self_field() {
        let mut d = BinaryDecoder::new();
        let mut rows = Vec::new();
        d.decode(&[0, 159, 1], &mut rows).unwrap();
        d.decode(b"x", &mut rows).unwrap();
        assert!(Arc::ptr_eq(&rows[0].schema, &rows[1].schema));
        assert_eq!(
            rows[0].get("self"),
            Some(&Value::Bytes(Arc::from(&[0u8, 159, 1][..])))
        );
        let out = BinaryEncoder.encode(&rows[0].to_value()).unwrap();
        assert_eq!(&out[..], &[0, 159, 1]);
        assert!(BinaryEncoder
            .encode(&Value::Object(Arc::new(Map::new())))
            .is_err());
        assert!(BinaryEncoder.encode(&Value::Int(1)).is_err());
    }
}
