//! FORMAT `json`: payload -> rows straight from serde_json into [`Value`]
//! (no `serde_json::Value` in between), and [`Value`] -> bytes by hand.
//!
//! The decoder keeps the schema of the last object it saw and reuses it while
//! the next object has the same keys in the same order, comparing keys as they
//! are read without allocating, so rows of one producer share one schema.
//! The encoder prints like Go's `encoding/json`: map keys in order, whole
//! floats without a fraction, `<`, `>`, `&` escaped.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::text::{write_int, write_json_float};
use super::{CodecError, Decoder, Encoder};
use crate::value::{Map, Row, Schema, Value};

/// Decodes a JSON object into one row, or an array of objects into several.
#[derive(Debug, Default)]
pub struct JsonDecoder {
    cache: Option<Arc<Schema>>,
    /// Every number is a float, as eKuiper decodes schemaless streams.
    floats: bool,
}

impl JsonDecoder {
    /// Whole numbers stay integers (typed streams, where the schema then
    /// converts; eKuiper's `useInt64ForWholeNumber`).
    pub fn new() -> JsonDecoder {
        JsonDecoder {
            cache: None,
            floats: false,
        }
    }

    /// Every JSON number is a float, nested ones too: eKuiper's decoding of
    /// schemaless streams (`7 / 2` on such columns is 3.5).
    pub fn schemaless() -> JsonDecoder {
        JsonDecoder {
            cache: None,
            floats: true,
        }
    }
}

impl Decoder for JsonDecoder {
    fn decode(&mut self, payload: &[u8], out: &mut Vec<Row>) -> Result<(), CodecError> {
        let before = out.len();
        let mut de = serde_json::Deserializer::from_slice(payload);
        let r = TopSeed {
            cache: &mut self.cache,
            out,
            floats: self.floats,
        }
        .deserialize(&mut de)
        .and_then(|_| de.end());
        if let Err(e) = r {
            out.truncate(before);
            return Err(CodecError::Decode(e.to_string()));
        }
        Ok(())
    }
}

/// Parses any JSON document into a [`Value`] (objects become sorted maps).
pub fn decode_value(payload: &[u8]) -> Result<Value, CodecError> {
    let mut de = serde_json::Deserializer::from_slice(payload);
    let v = ValueSeed
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|_| v))
        .map_err(|e| CodecError::Decode(e.to_string()))?;
    Ok(v)
}

/// A row decoded with whole numbers kept as integers, as a schemaless
/// stream reads JSON: every integer (nested ones too) becomes a float.
pub fn floats(row: Row) -> Row {
    fn conv(v: Value) -> Value {
        match v {
            Value::Int(i) => Value::Float(i as f64),
            Value::Array(a) => Value::Array(Arc::new(
                Arc::unwrap_or_clone(a).into_iter().map(conv).collect(),
            )),
            Value::Object(m) => Value::Object(Arc::new(
                Arc::unwrap_or_clone(m)
                    .into_iter()
                    .map(|(k, x)| (k, conv(x)))
                    .collect(),
            )),
            other => other,
        }
    }
    Row {
        schema: row.schema,
        values: row.values.into_iter().map(conv).collect(),
    }
}

/// Top level: an object (one row) or an array of objects (one row each).
struct TopSeed<'a> {
    cache: &'a mut Option<Arc<Schema>>,
    out: &'a mut Vec<Row>,
    floats: bool,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object or an array of objects")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let row = visit_row(self.cache, map, self.floats)?;
        self.out.push(row);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(row) = seq.next_element_seed(RowSeed {
            cache: &mut *self.cache,
            floats: self.floats,
        })? {
            self.out.push(row);
        }
        Ok(())
    }
}

/// One array element that must be an object.
struct RowSeed<'a> {
    cache: &'a mut Option<Arc<Schema>>,
    floats: bool,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = Row;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Row, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = Row;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of JSON objects")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Row, A::Error> {
        visit_row(self.cache, map, self.floats)
    }
}

/// Reads one object as a row, reusing `cache` when the keys match it.
fn visit_row<'de, A: MapAccess<'de>>(
    cache: &mut Option<Arc<Schema>>,
    mut map: A,
    floats: bool,
) -> Result<Row, A::Error> {
    let cached: &[Arc<str>] = cache.as_ref().map(|s| s.names()).unwrap_or(&[]);
    let mut values: Vec<Value> = Vec::with_capacity(cached.len().max(map.size_hint().unwrap_or(4)));
    // `fresh` holds names only once a key differs from the cached schema.
    let mut fresh: Option<Vec<Arc<str>>> = None;
    let mut i = 0usize;
    loop {
        let expect = if fresh.is_none() { cached.get(i) } else { None };
        let Some(key) = map.next_key_seed(KeySeed { expect })? else {
            break;
        };
        if let Key::New(k) = key {
            let names = fresh.get_or_insert_with(|| {
                let mut v = Vec::with_capacity(i + 8);
                v.extend(cached[..i].iter().cloned());
                v
            });
            names.push(k);
        }
        // `Key::Same` only happens while no key has differed (`fresh` is None).
        values.push(if floats {
            map.next_value_seed(FloatSeed)?
        } else {
            map.next_value_seed(ValueSeed)?
        });
        i += 1;
    }
    match fresh {
        None if i == cached.len() && cache.is_some() => {
            let schema = cache.as_ref().map(Arc::clone).unwrap_or_default();
            Ok(Row::new(schema, values))
        }
        fresh => {
            let names = fresh.unwrap_or_else(|| cached[..i].to_vec());
            let (schema, values) = build_schema(names, values);
            let schema = Arc::new(schema);
            *cache = Some(schema.clone());
            Ok(Row::new(schema, values))
        }
    }
}

/// Builds a schema; on duplicate keys the last value wins (as in Go) at the
/// position of the first occurrence.
fn build_schema(names: Vec<Arc<str>>, values: Vec<Value>) -> (Schema, Vec<Value>) {
    let schema = Schema::new(names);
    let distinct = schema
        .names()
        .iter()
        .enumerate()
        .all(|(i, n)| schema.slot(n) == Some(i));
    if distinct {
        return (schema, values);
    }
    let mut keep_names: Vec<Arc<str>> = Vec::with_capacity(values.len());
    let mut keep_values: Vec<Value> = Vec::with_capacity(values.len());
    for (n, v) in schema.names().iter().zip(values) {
        match keep_names.iter().position(|k| k == n) {
            Some(p) => keep_values[p] = v,
            None => {
                keep_names.push(n.clone());
                keep_values.push(v);
            }
        }
    }
    (Schema::new(keep_names), keep_values)
}

enum Key {
    /// Equal to the expected cached name.
    Same,
    New(Arc<str>),
}

struct KeySeed<'a> {
    expect: Option<&'a Arc<str>>,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
        match self.expect {
            Some(e) if e.as_ref() == s => Ok(Key::Same),
            _ => Ok(Key::New(Arc::from(s))),
        }
    }
}

/// A map key of a nested object.
struct ArcStrSeed;

impl<'de> DeserializeSeed<'de> for ArcStrSeed {
    type Value = Arc<str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Arc<str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for ArcStrSeed {
    type Value = Arc<str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Arc<str>, E> {
        Ok(Arc::from(s))
    }
}

/// Any JSON value as a [`Value`]: integers stay `Int`, objects become [`Map`]s.
pub struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor::<false>)
    }
}

/// Any JSON value as a [`Value`] with every number a `Float` (nested ones
/// too): schemaless stream decoding.
pub struct FloatSeed;

impl<'de> DeserializeSeed<'de> for FloatSeed {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor::<true>)
    }
}

/// `FLOATS`: integers become floats.
struct ValueVisitor<const FLOATS: bool>;

impl<'de, const FLOATS: bool> Visitor<'de> for ValueVisitor<FLOATS> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(if FLOATS {
            Value::Float(v as f64)
        } else {
            Value::Int(v)
        })
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(match i64::try_from(v) {
            Ok(i) if !FLOATS => Value::Int(i),
            _ => Value::Float(v as f64),
        })
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(Arc::from(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(4));
        if FLOATS {
            while let Some(x) = seq.next_element_seed(FloatSeed)? {
                v.push(x);
            }
        } else {
            while let Some(x) = seq.next_element_seed(ValueSeed)? {
                v.push(x);
            }
        }
        Ok(Value::Array(Arc::new(v)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut m = Map::new();
        while let Some(k) = map.next_key_seed(ArcStrSeed)? {
            let v = if FLOATS {
                map.next_value_seed(FloatSeed)?
            } else {
                map.next_value_seed(ValueSeed)?
            };
            m.insert(k, v);
        }
        Ok(Value::Object(Arc::new(m)))
    }
}

/// Encodes a row object or an array of rows as JSON.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonEncoder;

impl Encoder for JsonEncoder {
    fn encode(&self, data: &Value) -> Result<Bytes, CodecError> {
        let mut out = Vec::with_capacity(128);
        write_value(&mut out, data);
        Ok(Bytes::from(out))
    }

    fn encode_row(&self, row: &Row) -> Result<Bytes, CodecError> {
        let mut out = Vec::with_capacity(128);
        write_row(&mut out, row);
        Ok(Bytes::from(out))
    }

    fn append_row(&self, row: &Row, out: &mut Vec<u8>) -> Result<(), CodecError> {
        write_row(out, row);
        Ok(())
    }

    fn append_each_row(
        &self,
        rows: &mut dyn Iterator<Item = &Row>,
        out: &mut Vec<u8>,
        ends: &mut Vec<usize>,
    ) -> Result<(), CodecError> {
        let mut layout: Option<RowLayout> = None;
        for r in rows {
            RowLayout::for_row(&mut layout, r).write(out, r);
            ends.push(out.len());
        }
        Ok(())
    }

    fn encode_rows(&self, rows: &[Row]) -> Result<Bytes, CodecError> {
        let mut out = Vec::with_capacity(128 * rows.len().max(1));
        let mut layout: Option<RowLayout> = None;
        out.push(b'[');
        for (i, r) in rows.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            RowLayout::for_row(&mut layout, r).write(&mut out, r);
        }
        out.push(b']');
        Ok(Bytes::from(out))
    }
}

/// How rows of one schema print as JSON objects: keys in sorted order (the
/// first slot of a duplicated name), each already escaped with its `:` (and
/// the `,` before all but the first), so a batch of rows sharing a schema
/// sorts and escapes the keys once.
struct RowLayout {
    schema: Arc<Schema>,
    /// `"a":,"b":,"c":` one after another.
    keys: Vec<u8>,
    /// Per key: where its text ends in `keys`, and the value slot.
    parts: Vec<(usize, usize)>,
    /// How many slots the layout covers (names and values of the row).
    width: usize,
}

impl RowLayout {
    fn new(row: &Row) -> RowLayout {
        let names = row.schema.names();
        let n = names.len().min(row.values.len());
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|a, b| names[*a].cmp(&names[*b]));
        let mut keys = Vec::with_capacity(n * 12);
        let mut parts = Vec::with_capacity(n);
        let mut prev: Option<&str> = None;
        for i in order {
            let k = names[i].as_ref();
            if prev == Some(k) {
                continue;
            }
            prev = Some(k);
            if !parts.is_empty() {
                keys.push(b',');
            }
            write_str(&mut keys, k);
            keys.push(b':');
            parts.push((keys.len(), i));
        }
        RowLayout {
            schema: row.schema.clone(),
            keys,
            parts,
            width: n,
        }
    }

    /// The layout cached in `slot` if it is for `row`'s schema, else a new one.
    fn for_row<'s>(slot: &'s mut Option<RowLayout>, row: &Row) -> &'s RowLayout {
        let stale = slot.as_ref().is_none_or(|l| {
            !Arc::ptr_eq(&l.schema, &row.schema)
                || l.width != row.schema.names().len().min(row.values.len())
        });
        if stale {
            *slot = Some(RowLayout::new(row));
        }
        slot.get_or_insert_with(|| RowLayout::new(row))
    }

    fn write(&self, out: &mut Vec<u8>, row: &Row) {
        out.push(b'{');
        let mut start = 0;
        for &(end, slot) in &self.parts {
            out.extend_from_slice(&self.keys[start..end]);
            write_value(out, row.values.get(slot).unwrap_or(&Value::Null));
            start = end;
        }
        out.push(b'}');
    }
}

/// Appends `v` as JSON (bytes as base64, datetimes as unix ms, NaN as null).
pub fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => write_int(out, *i),
        Value::Float(f) => write_json_float(out, *f),
        Value::Str(s) => write_str(out, s),
        Value::Bytes(b) => {
            use base64::Engine;
            out.push(b'"');
            let s = base64::engine::general_purpose::STANDARD.encode(b);
            out.extend_from_slice(s.as_bytes());
            out.push(b'"');
        }
        Value::Datetime(t) => write_int(out, *t),
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, x);
            }
            out.push(b']');
        }
        Value::Object(m) => write_map(out, m),
    }
}

/// Appends a map as a JSON object, keys in map (sorted) order.
pub fn write_map(out: &mut Vec<u8>, m: &Map) {
    out.push(b'{');
    for (i, (k, x)) in m.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, k);
        out.push(b':');
        write_value(out, x);
    }
    out.push(b'}');
}

/// Appends a row as a JSON object with its keys sorted (as Go prints maps).
pub fn write_row(out: &mut Vec<u8>, row: &Row) {
    let names = row.schema.names();
    let n = names.len().min(row.values.len());
    if names[..n].windows(2).all(|w| w[0] < w[1]) {
        // Already sorted, no duplicates (the common case): no index to build.
        out.push(b'{');
        for (i, (k, v)) in names[..n].iter().zip(&row.values).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, k);
            out.push(b':');
            write_value(out, v);
        }
        out.push(b'}');
        return;
    }
    // Slot indexes in key order (stable: a duplicate name keeps its first slot
    // first); on the stack for rows of ordinary width.
    let mut small = [0usize; 32];
    let mut large = Vec::new();
    let order: &mut [usize] = if n <= small.len() {
        for (i, o) in small[..n].iter_mut().enumerate() {
            *o = i;
        }
        &mut small[..n]
    } else {
        large.extend(0..n);
        &mut large
    };
    order.sort_by(|a, b| names[*a].cmp(&names[*b]));
    out.push(b'{');
    let mut first = true;
    let mut prev: Option<&str> = None;
    for &i in order.iter() {
        let k = names[i].as_ref();
        if prev == Some(k) {
            continue; // duplicate name: the first slot is the row's value
        }
        prev = Some(k);
        if !first {
            out.push(b',');
        }
        first = false;
        write_str(out, k);
        out.push(b':');
        write_value(out, &row.values[i]);
    }
    out.push(b'}');
}

/// Escapes needed by Go's `encoding/json` (with HTML escaping on).
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[b'<' as usize] = b'u';
    t[b'>' as usize] = b'u';
    t[b'&' as usize] = b'u';
    // First byte of U+2028 / U+2029; checked further in write_str.
    t[0xE2] = b'E';
    t
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends a JSON string literal.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let e = ESCAPE[c as usize];
        if e == 0 {
            i += 1;
            continue;
        }
        if e == b'E' {
            // U+2028 and U+2029 are E2 80 A8 / E2 80 A9.
            if i + 2 < b.len() && b[i + 1] == 0x80 && (b[i + 2] == 0xA8 || b[i + 2] == 0xA9) {
                out.extend_from_slice(&b[start..i]);
                out.extend_from_slice(if b[i + 2] == 0xA8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 3;
                start = i;
            } else {
                i += 1;
            }
            continue;
        }
        out.extend_from_slice(&b[start..i]);
        if e == b'u' {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(c >> 4) as usize]);
            out.push(HEX[(c & 0xf) as usize]);
        } else {
            out.push(b'\\');
            out.push(e);
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_turns_every_integer_into_a_float() {
        let mut rows = Vec::new();
        JsonDecoder::new()
            .decode(br#"{"a":1,"b":2.5,"c":[1,{"d":2}],"e":"3"}"#, &mut rows)
            .unwrap();
        let r = floats(rows.remove(0));
        assert_eq!(
            r.to_json(),
            serde_json::json!({"a":1.0,"b":2.5,"c":[1.0,{"d":2.0}],"e":"3"})
        );
        assert!(matches!(r.get("a"), Some(Value::Float(_))));
    }

    fn decode(dec: &mut JsonDecoder, s: &str) -> Vec<Row> {
        let mut out = Vec::new();
        dec.decode(s.as_bytes(), &mut out).unwrap();
        out
    }

    fn enc(v: &Value) -> String {
        String::from_utf8(JsonEncoder.encode(v).unwrap().to_vec()).unwrap()
    }

    #[test]
    fn object_becomes_one_row_with_typed_values() {
        let mut d = JsonDecoder::new();
        let rows = decode(
            &mut d,
            r#"{"id":7,"temp":25.0,"name":"a\"b","ok":true,"n":null,"o":{"z":1,"a":[1,2.5]},"big":18446744073709551615}"#,
        );
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        let names: Vec<&str> = r.schema.names().iter().map(|n| n.as_ref()).collect();
        assert_eq!(names, ["id", "temp", "name", "ok", "n", "o", "big"]);
        assert!(matches!(r.get("id"), Some(Value::Int(7))));
        assert!(matches!(r.get("temp"), Some(Value::Float(f)) if *f == 25.0));
        assert_eq!(r.get("name"), Some(&Value::str("a\"b")));
        assert_eq!(r.get("ok"), Some(&Value::Bool(true)));
        assert_eq!(r.get("n"), Some(&Value::Null));
        assert!(matches!(r.get("big"), Some(Value::Float(_))));
        let Some(Value::Object(o)) = r.get("o") else {
            panic!("nested object expected");
        };
        assert_eq!(o.keys().map(|k| k.as_ref()).collect::<Vec<_>>(), ["a", "z"]);
        assert_eq!(
            o.get("a"),
            Some(&Value::Array(Arc::new(vec![
                Value::Int(1),
                Value::Float(2.5)
            ])))
        );
    }

    #[test]
    fn same_keys_share_one_schema_and_changes_make_a_new_one() {
        let mut d = JsonDecoder::new();
        let a = decode(&mut d, r#"{"x":1,"y":2}"#);
        let b = decode(&mut d, r#"{"x":3,"y":4}"#);
        assert!(Arc::ptr_eq(&a[0].schema, &b[0].schema));
        assert_eq!(b[0].get("y"), Some(&Value::Int(4)));
        // Different order, fewer keys, more keys: new schemas, right values.
        let c = decode(&mut d, r#"{"y":5,"x":6}"#);
        assert!(!Arc::ptr_eq(&b[0].schema, &c[0].schema));
        assert_eq!(c[0].get("x"), Some(&Value::Int(6)));
        let e = decode(&mut d, r#"{"y":7}"#);
        assert_eq!(e[0].schema.len(), 1);
        assert_eq!(e[0].get("y"), Some(&Value::Int(7)));
        let f = decode(&mut d, r#"{"y":7,"x":1,"z":"s"}"#);
        assert_eq!(f[0].schema.len(), 3);
        assert_eq!(f[0].get("z"), Some(&Value::str("s")));
        let g = decode(&mut d, r#"{"y":8,"x":2,"z":"t"}"#);
        assert!(Arc::ptr_eq(&f[0].schema, &g[0].schema));
    }

    #[test]
    fn array_of_objects_gives_rows_and_bad_input_errors() {
        let mut d = JsonDecoder::new();
        let rows = decode(&mut d, r#"[{"a":1},{"a":2},{"b":3}]"#);
        assert_eq!(rows.len(), 3);
        assert!(Arc::ptr_eq(&rows[0].schema, &rows[1].schema));
        assert_eq!(rows[2].get("b"), Some(&Value::Int(3)));
        assert!(decode(&mut d, "[]").is_empty());
        let mut out = Vec::new();
        assert!(d.decode(b"this is not json", &mut out).is_err());
        assert!(d.decode(b"42", &mut out).is_err());
        assert!(d.decode(br#"[{"a":1}, 3]"#, &mut out).is_err());
        assert!(d.decode(br#"{"a":1} x"#, &mut out).is_err());
        assert!(d.decode(br#"{"a":1"#, &mut out).is_err());
        assert!(out.is_empty(), "failed decodes leave no partial rows");
    }

    #[test]
    fn duplicate_keys_keep_the_last_value() {
        let mut d = JsonDecoder::new();
        let rows = decode(&mut d, r#"{"a":1,"b":2,"a":3}"#);
        assert_eq!(rows[0].schema.len(), 2);
        assert_eq!(rows[0].get("a"), Some(&Value::Int(3)));
        assert_eq!(rows[0].values, vec![Value::Int(3), Value::Int(2)]);
    }

    #[test]
    fn encodes_like_go() {
        let v =
            decode_value(br#"{"temp":25.0,"id":1,"s":"<a&b>\n\u2028","l":[1.5,null,true],"o":{}}"#)
                .unwrap();
        assert_eq!(
            enc(&v),
            r#"{"id":1,"l":[1.5,null,true],"o":{},"s":"\u003ca\u0026b\u003e\n\u2028","temp":25}"#
        );
        let arr = Value::Array(Arc::new(vec![v.clone(), Value::Null]));
        assert!(enc(&arr).starts_with(r#"[{"id":1,"#));
        assert_eq!(enc(&Value::Bytes(Arc::from(&b"hi"[..]))), r#""aGk=""#);
        assert_eq!(enc(&Value::str("\u{1}")), r#""\u0001""#);
        // Round trip through serde_json agrees on the data.
        let back: serde_json::Value =
            serde_json::from_slice(&JsonEncoder.encode(&v).unwrap()).unwrap();
        assert_eq!(back["s"], "<a&b>\n\u{2028}");
    }

    #[test]
    fn row_fast_paths_match_value_encoding() {
        let mut d = JsonDecoder::new();
        let rows = decode(
            &mut d,
            r#"[{"z":1.0,"a":{"k":[1]},"m":"s"},{"z":2,"a":null,"m":"t"}]"#,
        );
        for r in &rows {
            assert_eq!(
                JsonEncoder.encode_row(r).unwrap(),
                JsonEncoder.encode(&r.to_value()).unwrap()
            );
        }
        let arr = Value::Array(Arc::new(rows.iter().map(Row::to_value).collect()));
        assert_eq!(
            JsonEncoder.encode_rows(&rows).unwrap(),
            JsonEncoder.encode(&arr).unwrap()
        );
        assert_eq!(&JsonEncoder.encode_rows(&[]).unwrap()[..], b"[]");
    }

    #[test]
    fn sorted_and_duplicate_schemas_encode_like_the_map() {
        use crate::value::Schema;
        let sorted = Row::new(
            Arc::new(Schema::from_strs(&["a", "b", "c"])),
            vec![Value::Int(1), Value::str("x"), Value::Null],
        );
        let dup = Row::new(
            Arc::new(Schema::from_strs(&["b", "a", "b"])),
            vec![Value::Int(1), Value::Int(2), Value::Int(3)],
        );
        let sorted_dup = Row::new(
            Arc::new(Schema::from_strs(&["a", "a"])),
            vec![Value::Int(1), Value::Int(2)],
        );
        let wide_names: Vec<String> = (0..40).map(|i| format!("k{}", 39 - i)).collect();
        let wide_refs: Vec<&str> = wide_names.iter().map(String::as_str).collect();
        let wide = Row::new(
            Arc::new(Schema::from_strs(&wide_refs)),
            (0..40).map(Value::Int).collect(),
        );
        for r in [&sorted, &dup, &sorted_dup, &wide] {
            let want = JsonEncoder.encode(&r.to_value()).unwrap();
            assert_eq!(JsonEncoder.encode_row(r).unwrap(), want);
            let mut out = b"x".to_vec();
            JsonEncoder.append_row(r, &mut out).unwrap();
            assert_eq!(&out[1..], &want[..]);
        }
        // Rows of different schemas in one batch (the layout is per schema).
        let batch = [&sorted, &dup, &dup, &wide, &sorted_dup, &sorted];
        let mut out = Vec::new();
        let mut ends = Vec::new();
        JsonEncoder
            .append_each_row(&mut batch.iter().copied(), &mut out, &mut ends)
            .unwrap();
        let mut start = 0;
        for (r, end) in batch.iter().zip(&ends) {
            assert_eq!(&out[start..*end], &JsonEncoder.encode_row(r).unwrap()[..]);
            start = *end;
        }
        assert_eq!(ends.len(), batch.len());
        let owned: Vec<Row> = batch.iter().map(|r| (*r).clone()).collect();
        let arr = Value::Array(Arc::new(owned.iter().map(Row::to_value).collect()));
        assert_eq!(
            JsonEncoder.encode_rows(&owned).unwrap(),
            JsonEncoder.encode(&arr).unwrap()
        );
        assert_eq!(
            &JsonEncoder.encode_row(&dup).unwrap()[..],
            br#"{"a":2,"b":1}"#
        );
        assert_eq!(
            &JsonEncoder.encode_row(&sorted_dup).unwrap()[..],
            br#"{"a":1}"#
        );
    }

    #[test]
    fn row_writes_sorted_keys() {
        let mut d = JsonDecoder::new();
        let rows = decode(&mut d, r#"{"b":1,"a":"x"}"#);
        let mut out = Vec::new();
        write_row(&mut out, &rows[0]);
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"a":"x","b":1}"#);
    }
}
