//! FORMAT `delimited`: one payload is one line of values split by a delimiter
//! (default `,`). Decoded values stay strings; names come from the declared
//! columns or are `col0, col1, ...`. Encoding writes the values of a row (or
//! one line per row of an array) in `fields` order or sorted key order, with an
//! optional header line.

use std::sync::Arc;

use bytes::Bytes;

use super::text::write_value_text;
use super::{CodecError, Decoder, Encoder};
use crate::value::{Map, Row, Schema, Value};

/// Splits a line into string fields.
#[derive(Debug)]
pub struct DelimitedDecoder {
    delimiter: String,
    columns: Vec<String>,
    cache: Option<Arc<Schema>>,
}

impl DelimitedDecoder {
    pub fn new(delimiter: String, columns: Vec<String>) -> DelimitedDecoder {
        let delimiter = if delimiter.is_empty() {
            ",".to_string()
        } else {
            delimiter
        };
        DelimitedDecoder {
            delimiter,
            columns,
            cache: None,
        }
    }

    fn schema_for(&mut self, n: usize) -> Arc<Schema> {
        if let Some(s) = &self.cache {
            if s.len() == n {
                return s.clone();
            }
        }
        let names: Vec<Arc<str>> = if self.columns.is_empty() {
            (0..n)
                .map(|i| Arc::from(format!("col{i}").as_str()))
                .collect()
        } else {
            self.columns[..n]
                .iter()
                .map(|c| Arc::from(c.as_str()))
                .collect()
        };
        let s = Arc::new(Schema::new(names));
        self.cache = Some(s.clone());
        s
    }
}

impl Decoder for DelimitedDecoder {
    fn decode(&mut self, payload: &[u8], out: &mut Vec<Row>) -> Result<(), CodecError> {
        let text = std::str::from_utf8(payload)
            .map_err(|e| CodecError::Decode(format!("delimited payload is not UTF-8: {e}")))?;
        let text = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(text);
        let mut values: Vec<Value> = text
            .split(self.delimiter.as_str())
            .map(Value::str)
            .collect();
        if !self.columns.is_empty() && values.len() > self.columns.len() {
            values.truncate(self.columns.len());
        }
        let schema = self.schema_for(values.len());
        out.push(Row::new(schema, values));
        Ok(())
    }
}

/// Joins the values of a row (or rows) with the delimiter.
#[derive(Debug, Clone)]
pub struct DelimitedEncoder {
    delimiter: String,
    has_header: bool,
    fields: Vec<String>,
}

impl DelimitedEncoder {
    pub fn new(delimiter: String, has_header: bool, fields: Vec<String>) -> DelimitedEncoder {
        let delimiter = if delimiter.is_empty() {
            ",".to_string()
        } else {
            delimiter
        };
        DelimitedEncoder {
            delimiter,
            has_header,
            fields,
        }
    }

    fn columns<'a>(&'a self, m: &'a Map) -> Vec<&'a str> {
        if self.fields.is_empty() {
            m.keys().map(|k| k.as_ref()).collect()
        } else {
            self.fields.iter().map(String::as_str).collect()
        }
    }

    fn write_header(&self, out: &mut Vec<u8>, cols: &[&str]) {
        for (i, c) in cols.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(self.delimiter.as_bytes());
            }
            out.extend_from_slice(c.as_bytes());
        }
        out.push(b'\n');
    }

    fn write_line(&self, out: &mut Vec<u8>, cols: &[&str], m: &Map) {
        for (i, c) in cols.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(self.delimiter.as_bytes());
            }
            if let Some(v) = m.get(*c) {
                write_value_text(out, v, false);
            }
        }
    }
}

impl Encoder for DelimitedEncoder {
    fn encode(&self, data: &Value) -> Result<Bytes, CodecError> {
        let mut out = Vec::with_capacity(64);
        match data {
            Value::Object(m) => {
                let cols = self.columns(m);
                if self.has_header && !cols.is_empty() {
                    self.write_header(&mut out, &cols);
                }
                self.write_line(&mut out, &cols, m);
            }
            Value::Array(rows) => {
                let mut cols: Option<Vec<&str>> = None;
                for (i, r) in rows.iter().enumerate() {
                    let Value::Object(m) = r else {
                        return Err(CodecError::Encode(format!(
                            "unsupported type {}, must be a map",
                            r.type_name()
                        )));
                    };
                    let cs = cols.get_or_insert_with(|| self.columns(m));
                    if i == 0 && self.has_header && !cs.is_empty() {
                        self.write_header(&mut out, cs);
                    }
                    if i > 0 {
                        out.push(b'\n');
                    }
                    self.write_line(&mut out, cs, m);
                }
            }
            other => {
                return Err(CodecError::Encode(format!(
                    "unsupported type {}, must be a map",
                    other.type_name()
                )))
            }
        }
        Ok(Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::json::decode_value;

    #[test]
    fn decodes_with_default_and_declared_names() {
        let mut d = DelimitedDecoder::new(",".into(), vec![]);
        let mut rows = Vec::new();
        d.decode(b"1,abc,2.5\n", &mut rows).unwrap();
        d.decode(b"2,def,3", &mut rows).unwrap();
        assert_eq!(rows[0].get("col0"), Some(&Value::str("1")));
        assert_eq!(rows[0].get("col2"), Some(&Value::str("2.5")));
        assert!(Arc::ptr_eq(&rows[0].schema, &rows[1].schema));
        let mut d = DelimitedDecoder::new("||".into(), vec!["id".into(), "name".into()]);
        rows.clear();
        d.decode(b"7||x||extra", &mut rows).unwrap();
        assert_eq!(rows[0].schema.len(), 2);
        assert_eq!(rows[0].get("name"), Some(&Value::str("x")));
        d.decode(b"8", &mut rows).unwrap();
        assert_eq!(rows[1].schema.len(), 1);
        assert_eq!(rows[1].get("id"), Some(&Value::str("8")));
        assert!(d.decode(&[0xff, 0xfe], &mut rows).is_err());
    }

    #[test]
    fn encodes_rows_with_optional_header() {
        let row = decode_value(br#"{"b":"x","a":1,"c":2.0,"n":null}"#).unwrap();
        let e = DelimitedEncoder::new(",".into(), false, vec![]);
        assert_eq!(&e.encode(&row).unwrap()[..], b"1,x,2,");
        let e = DelimitedEncoder::new(";".into(), true, vec!["b".into(), "a".into()]);
        assert_eq!(&e.encode(&row).unwrap()[..], b"b;a\nx;1");
        let arr = decode_value(br#"[{"a":1,"b":2},{"a":3,"b":4}]"#).unwrap();
        let e = DelimitedEncoder::new(",".into(), true, vec![]);
        assert_eq!(&e.encode(&arr).unwrap()[..], b"a,b\n1,2\n3,4");
        assert!(e.encode(&Value::Int(3)).is_err());
    }
}
