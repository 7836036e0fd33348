//! FORMAT `protobuf`: a message type of a registered `.proto` schema
//! (`SCHEMAID="schema.Message"`) decoded into a row and encoded from one,
//! through `prost-reflect`'s dynamic messages. Schemas are compiled from
//! their text by `protox` (no `protoc` needed).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use prost_reflect::prost::Message as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor,
    ReflectMessage, Value as PValue,
};

use super::{CodecError, Decoder, Encoder};
use crate::value::{Map, Row, Value};

/// A compiled schema file.
#[derive(Debug, Clone)]
pub struct ProtoSchema {
    pool: DescriptorPool,
}

impl ProtoSchema {
    /// Compiles `file` (a `.proto` in `dir`, which also holds its imports).
    pub fn compile(dir: &Path, file: &str) -> Result<ProtoSchema, String> {
        let fds = protox::compile([file], [dir]).map_err(|e| e.to_string())?;
        let pool = DescriptorPool::from_file_descriptor_set(fds).map_err(|e| e.to_string())?;
        Ok(ProtoSchema { pool })
    }

    /// The message `name` (full name, or the simple name when it is unique).
    pub fn message(&self, name: &str) -> Option<MessageDescriptor> {
        self.pool.get_message_by_name(name).or_else(|| {
            let mut found = self.pool.all_messages().filter(|m| m.name() == name);
            let first = found.next()?;
            found.next().is_none().then_some(first)
        })
    }

    /// The messages' full names, for error texts.
    pub fn message_names(&self) -> Vec<String> {
        self.pool
            .all_messages()
            .map(|m| m.full_name().to_string())
            .collect()
    }
}

/// Decodes payloads of one message type: a row of every field, in the
/// message's order.
pub struct ProtobufDecoder {
    desc: MessageDescriptor,
    schema: Arc<crate::value::Schema>,
}

impl ProtobufDecoder {
    pub fn new(desc: MessageDescriptor) -> Self {
        let names = desc.fields().map(|f| Arc::from(f.name())).collect();
        ProtobufDecoder {
            desc,
            schema: Arc::new(crate::value::Schema::new(names)),
        }
    }
}

impl Decoder for ProtobufDecoder {
    fn decode(&mut self, payload: &[u8], out: &mut Vec<Row>) -> Result<(), CodecError> {
        let m = DynamicMessage::decode(self.desc.clone(), payload)
            .map_err(|e| CodecError::Decode(format!("protobuf {}: {e}", self.desc.full_name())))?;
        let values = self.desc.fields().map(|f| field_of(&m, &f)).collect();
        out.push(Row::new(self.schema.clone(), values));
        Ok(())
    }
}

/// A field's value: absent scalars are their defaults, as proto3 reads
/// them; an absent message (or optional field) is NULL.
fn field_of(m: &DynamicMessage, f: &FieldDescriptor) -> Value {
    if f.supports_presence() && !m.has_field(f) {
        Value::Null
    } else {
        to_value(&m.get_field(f))
    }
}

/// Every field of a nested message, by name.
fn message_to_map(m: &DynamicMessage) -> Map {
    m.descriptor()
        .fields()
        .map(|f| (Arc::from(f.name()), field_of(m, &f)))
        .collect()
}

fn to_value(v: &PValue) -> Value {
    match v {
        PValue::Bool(b) => Value::Bool(*b),
        PValue::I32(i) => Value::Int((*i).into()),
        PValue::I64(i) => Value::Int(*i),
        PValue::U32(u) => Value::Int((*u).into()),
        PValue::U64(u) => i64::try_from(*u).map_or(Value::Float(*u as f64), Value::Int),
        PValue::F32(f) => Value::Float((*f).into()),
        PValue::F64(f) => Value::Float(*f),
        PValue::String(s) => Value::Str(Arc::from(s.as_str())),
        PValue::Bytes(b) => Value::Bytes(Arc::from(&b[..])),
        PValue::EnumNumber(n) => Value::Int((*n).into()),
        PValue::Message(m) => Value::Object(Arc::new(message_to_map(m))),
        PValue::List(l) => Value::Array(Arc::new(l.iter().map(to_value).collect())),
        PValue::Map(m) => {
            let mut o = Map::new();
            for (k, v) in m {
                let key = match k {
                    MapKey::Bool(b) => b.to_string(),
                    MapKey::I32(i) => i.to_string(),
                    MapKey::I64(i) => i.to_string(),
                    MapKey::U32(u) => u.to_string(),
                    MapKey::U64(u) => u.to_string(),
                    MapKey::String(s) => s.clone(),
                };
                o.insert(Arc::from(key.as_str()), to_value(v));
            }
            Value::Object(Arc::new(o))
        }
    }
}

/// Encodes row objects as one message type.
pub struct ProtobufEncoder {
    desc: MessageDescriptor,
}

impl ProtobufEncoder {
    pub fn new(desc: MessageDescriptor) -> Self {
        ProtobufEncoder { desc }
    }
}

impl Encoder for ProtobufEncoder {
    fn encode(&self, data: &Value) -> Result<Bytes, CodecError> {
        let Value::Object(m) = data else {
            return Err(CodecError::Encode(format!(
                "protobuf {}: a result must be one row object (set sendSingle: true)",
                self.desc.full_name()
            )));
        };
        let msg = map_to_message(&self.desc, m).map_err(CodecError::Encode)?;
        Ok(Bytes::from(msg.encode_to_vec()))
    }
}

/// A message of `desc` from a row: fields by name (absent or NULL: unset);
/// row fields the message does not have are an error, as in eKuiper.
fn map_to_message(desc: &MessageDescriptor, m: &Map) -> Result<DynamicMessage, String> {
    let mut msg = DynamicMessage::new(desc.clone());
    for (k, v) in m.iter() {
        let Some(f) = desc.get_field_by_name(k) else {
            return Err(format!(
                "protobuf {}: the message has no field {k}",
                desc.full_name()
            ));
        };
        if v.is_null() {
            continue;
        }
        let pv = field_value(&f, v)
            .map_err(|e| format!("protobuf {}: field {k}: {e}", desc.full_name()))?;
        msg.set_field(&f, pv);
    }
    Ok(msg)
}

fn field_value(f: &FieldDescriptor, v: &Value) -> Result<PValue, String> {
    if f.is_map() {
        let Value::Object(o) = v else {
            return Err(format!("expected an object, got {}", v.type_name()));
        };
        let Kind::Message(entry) = f.kind() else {
            return Err("a map without entry type".into());
        };
        let key_f = entry.map_entry_key_field();
        let val_f = entry.map_entry_value_field();
        let mut out = HashMap::new();
        for (k, x) in o.iter() {
            let key = match key_f.kind() {
                Kind::String => MapKey::String(k.to_string()),
                Kind::Bool => MapKey::Bool(k.parse().map_err(|_| format!("bad map key {k}"))?),
                Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                    MapKey::I32(k.parse().map_err(|_| format!("bad map key {k}"))?)
                }
                Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                    MapKey::I64(k.parse().map_err(|_| format!("bad map key {k}"))?)
                }
                Kind::Uint32 | Kind::Fixed32 => {
                    MapKey::U32(k.parse().map_err(|_| format!("bad map key {k}"))?)
                }
                _ => MapKey::U64(k.parse().map_err(|_| format!("bad map key {k}"))?),
            };
            out.insert(key, scalar(&val_f.kind(), x)?);
        }
        return Ok(PValue::Map(out));
    }
    if f.is_list() {
        let Value::Array(a) = v else {
            return Err(format!("expected an array, got {}", v.type_name()));
        };
        let items = a
            .iter()
            .map(|x| scalar(&f.kind(), x))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(PValue::List(items));
    }
    scalar(&f.kind(), v)
}

/// One value of a field kind, converting numbers as eKuiper's encoder does.
fn scalar(kind: &Kind, v: &Value) -> Result<PValue, String> {
    let int = || -> Result<i64, String> {
        match v {
            Value::Int(i) => Ok(*i),
            Value::Float(f) if f.fract() == 0.0 => Ok(*f as i64),
            Value::Bool(b) => Ok(i64::from(*b)),
            other => Err(format!("expected an integer, got {}", other.type_name())),
        }
    };
    let float = || -> Result<f64, String> {
        match v {
            Value::Int(i) => Ok(*i as f64),
            Value::Float(f) => Ok(*f),
            other => Err(format!("expected a number, got {}", other.type_name())),
        }
    };
    let range = |e: std::num::TryFromIntError| e.to_string();
    Ok(match kind {
        Kind::Double => PValue::F64(float()?),
        Kind::Float => PValue::F32(float()? as f32),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            PValue::I32(i32::try_from(int()?).map_err(range)?)
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => PValue::I64(int()?),
        Kind::Uint32 | Kind::Fixed32 => PValue::U32(u32::try_from(int()?).map_err(range)?),
        Kind::Uint64 | Kind::Fixed64 => PValue::U64(u64::try_from(int()?).map_err(range)?),
        Kind::Bool => match v {
            Value::Bool(b) => PValue::Bool(*b),
            other => return Err(format!("expected a bool, got {}", other.type_name())),
        },
        Kind::String => match v {
            Value::Str(s) => PValue::String(s.to_string()),
            other => return Err(format!("expected a string, got {}", other.type_name())),
        },
        Kind::Bytes => match v {
            Value::Bytes(b) => PValue::Bytes(Bytes::copy_from_slice(b)),
            Value::Str(s) => PValue::Bytes(Bytes::copy_from_slice(s.as_bytes())),
            other => return Err(format!("expected bytes, got {}", other.type_name())),
        },
        Kind::Enum(e) => match v {
            Value::Str(s) => PValue::EnumNumber(
                e.get_value_by_name(s)
                    .ok_or_else(|| format!("{s} is not a value of enum {}", e.name()))?
                    .number(),
            ),
            _ => PValue::EnumNumber(i32::try_from(int()?).map_err(range)?),
        },
        Kind::Message(d) => match v {
            Value::Object(m) => PValue::Message(map_to_message(d, m)?),
            other => return Err(format!("expected an object, got {}", other.type_name())),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROTO: &str = r#"
syntax = "proto3";
package demo;
message Reading {
  string device = 1;
  double temperature = 2;
  int64 count = 3;
  repeated int32 codes = 4;
  Place place = 5;
  map<string, string> labels = 6;
  Level level = 7;
  bytes raw = 8;
  bool ok = 9;
}
message Place { string room = 1; uint32 floor = 2; }
enum Level { LOW = 0; HIGH = 1; }
"#;

    fn schema() -> (tempfile::TempDir, ProtoSchema) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("demo.proto"), PROTO).unwrap();
        let s = ProtoSchema::compile(d.path(), "demo.proto").unwrap();
        (d, s)
    }

    #[test]
    fn rows_round_trip_through_a_message() {
        let (_d, s) = schema();
        let desc = s.message("Reading").unwrap();
        assert_eq!(
            s.message("demo.Reading").unwrap().full_name(),
            "demo.Reading"
        );
        assert!(s.message("Nope").is_none());
        let row = crate::codec::json::decode_value(
            br#"{"device":"d1","temperature":21.5,"count":3,"codes":[1,2],"place":{"room":"a","floor":2},"labels":{"k":"v"},"level":"HIGH","ok":true}"#,
        )
        .unwrap();
        let bytes = ProtobufEncoder::new(desc.clone()).encode(&row).unwrap();
        let mut out = Vec::new();
        ProtobufDecoder::new(desc.clone())
            .decode(&bytes, &mut out)
            .unwrap();
        let j = out[0].to_json();
        assert_eq!(j["device"], "d1");
        assert_eq!(j["temperature"], 21.5);
        assert_eq!(j["count"], 3);
        assert_eq!(j["codes"], serde_json::json!([1, 2]));
        assert_eq!(j["place"], serde_json::json!({"room": "a", "floor": 2}));
        assert_eq!(j["labels"], serde_json::json!({"k": "v"}));
        assert_eq!(j["level"], 1);
        assert_eq!(j["ok"], true);
        // Every declared field is there: proto3 defaults for absent scalars.
        let mut out = Vec::new();
        ProtobufDecoder::new(desc.clone())
            .decode(&[], &mut out)
            .unwrap();
        let j = out[0].to_json();
        assert_eq!(j["temperature"], 0.0);
        assert_eq!(j["device"], "");
        assert!(
            j.get("place").is_some_and(serde_json::Value::is_null),
            "{j}"
        );
    }

    #[test]
    fn what_does_not_fit_the_message_is_an_error() {
        let (_d, s) = schema();
        let e = ProtobufEncoder::new(s.message("Reading").unwrap());
        for (row, says) in [
            (r#"{"nope":1}"#, "no field nope"),
            (r#"{"count":"x"}"#, "count"),
            (r#"{"level":"MID"}"#, "MID"),
            (r#"[{"count":1}]"#, "sendSingle"),
        ] {
            let v = crate::codec::json::decode_value(row.as_bytes()).unwrap();
            let err = e.encode(&v).unwrap_err().to_string();
            assert!(err.contains(says), "{row}: {err}");
        }
        let mut out = Vec::new();
        assert!(ProtobufDecoder::new(s.message("Reading").unwrap())
            .decode(&[0xff, 0xff], &mut out)
            .is_err());
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("bad.proto"), "message {").unwrap();
        assert!(ProtoSchema::compile(d.path(), "bad.proto").is_err());
    }
}
