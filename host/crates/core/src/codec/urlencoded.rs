//! FORMAT `urlencoded`: `application/x-www-form-urlencoded` bodies, as
//! eKuiper's converter reads and writes them. Encoding takes a row object;
//! each value is printed as text (numbers without exponent, nested values as
//! JSON, null as nothing), an array adds the key once per element; keys come
//! out sorted and escaped as Go's `url.Values.Encode` does (space as `+`,
//! everything but letters, digits and `-_.~` as `%XX`). Decoding gives one
//! row of strings, a repeated key becoming an array of strings.

use std::sync::Arc;

use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

use super::text::write_value_text;
use super::{CodecError, Decoder, Encoder};
use crate::value::{Map, Row, Value};

/// What Go's `url.QueryEscape` escapes: all but `A-Za-z0-9-_.~` (space is
/// handled apart: `+`).
const GO_QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b' ');

fn escape_into(out: &mut Vec<u8>, s: &[u8]) {
    for chunk in percent_encoding::percent_encode(s, GO_QUERY) {
        for b in chunk.bytes() {
            out.push(if b == b' ' { b'+' } else { b });
        }
    }
}

/// Encodes row objects as form bodies.
#[derive(Debug, Default, Clone, Copy)]
pub struct UrlEncodedEncoder;

impl Encoder for UrlEncodedEncoder {
    fn encode(&self, data: &Value) -> Result<Bytes, CodecError> {
        let Value::Object(m) = data else {
            return Err(CodecError::Encode(format!(
                "unsupported type {}, must be a map (format urlencoded encodes one row: set sendSingle to true)",
                data.type_name()
            )));
        };
        let mut keys: Vec<&Arc<str>> = m.keys().collect();
        keys.sort();
        let mut out = Vec::with_capacity(16 * keys.len());
        let mut text = Vec::new();
        let mut pair = |out: &mut Vec<u8>, k: &str, v: &Value| {
            if !out.is_empty() {
                out.push(b'&');
            }
            escape_into(out, k.as_bytes());
            out.push(b'=');
            text.clear();
            write_value_text(&mut text, v, false);
            escape_into(out, &text);
        };
        for k in keys {
            match m.get(k) {
                Some(Value::Array(items)) => {
                    for v in items.iter() {
                        pair(&mut out, k, v);
                    }
                }
                Some(v) => pair(&mut out, k, v),
                None => {}
            }
        }
        Ok(Bytes::from(out))
    }
}

/// Decodes form bodies into one row of strings.
#[derive(Debug, Default)]
pub struct UrlEncodedDecoder;

impl Decoder for UrlEncodedDecoder {
    fn decode(&mut self, payload: &[u8], out: &mut Vec<Row>) -> Result<(), CodecError> {
        let mut m = Map::new();
        for (k, v) in form_urlencoded::parse(payload) {
            let v = Value::Str(Arc::from(v.as_ref()));
            match m.get_mut(k.as_ref()) {
                None => {
                    m.insert(Arc::from(k.as_ref()), v);
                }
                Some(Value::Array(items)) => Arc::make_mut(items).push(v),
                Some(prev) => {
                    let first = std::mem::replace(prev, Value::Null);
                    *prev = Value::Array(Arc::new(vec![first, v]));
                }
            }
        }
        out.push(Row::from_map(&m));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::json::decode_value;

    fn enc(json: &str) -> String {
        let v = decode_value(json.as_bytes()).unwrap();
        String::from_utf8(UrlEncodedEncoder.encode(&v).unwrap().to_vec()).unwrap()
    }

    #[test]
    fn encodes_like_go_url_values() {
        // Expected bytes from Go: url.Values{...}.Encode() with cast.ToString values.
        assert_eq!(
            enc(r#"{"b":"x y&z","a":1.5,"c":[1,"two"],"d":null,"e":true,"f":{"g":1}}"#),
            "a=1.5&b=x+y%26z&c=1&c=two&d=&e=true&f=%7B%22g%22%3A1%7D"
        );
        assert_eq!(enc(r#"{"k~-_.*":"é/"}"#), "k~-_.%2A=%C3%A9%2F");
        assert_eq!(enc("{}"), "");
        assert!(UrlEncodedEncoder
            .encode(&decode_value(b"[{\"a\":1}]").unwrap())
            .is_err());
    }

    #[test]
    fn decodes_strings_and_repeated_keys() {
        let mut rows = Vec::new();
        UrlEncodedDecoder
            .decode(b"a=1&b=x+y%26z&a=2&c=", &mut rows)
            .unwrap();
        let r = &rows[0];
        assert_eq!(
            r.get("a"),
            Some(&Value::Array(Arc::new(vec![
                Value::str("1"),
                Value::str("2")
            ])))
        );
        assert_eq!(r.get("b"), Some(&Value::str("x y&z")));
        assert_eq!(r.get("c"), Some(&Value::str("")));
    }
}
