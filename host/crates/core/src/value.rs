//! The one data model every seam speaks: [`Value`], [`Schema`], [`Row`].
//!
//! A row is a flat record: an `Arc<Schema>` (field names, resolved once) plus a
//! `Vec<Value>` of the same length. Rows decoded from the same producer share one
//! schema, so a compiled field reference can keep a slot hint and read a value
//! without hashing (see [`Row::get_hinted`]). Nested objects are [`Map`]s, which
//! keep keys sorted like eKuiper's (Go) JSON encoding does.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ahash::AHashMap;

/// A nested object: keys sorted, as eKuiper prints them.
pub type Map = BTreeMap<Arc<str>, Value>;

/// A dynamically typed value.
#[derive(Clone, Debug, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Arc<str>),
    Bytes(Arc<[u8]>),
    Array(Arc<Vec<Value>>),
    Object(Arc<Map>),
    /// A point in time, unix milliseconds (SQL `DATETIME`).
    Datetime(i64),
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Str(Arc::from(s))
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The eKuiper type name used in error messages (`int64`, `string`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int64",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Bytes(_) => "[]uint8",
            Value::Array(_) => "[]interface {}",
            Value::Object(_) => "map[string]interface {}",
            Value::Datetime(_) => "time.Time",
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Datetime(t) => Some(*t as f64),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Float(f) => Some(*f as i64),
            Value::Datetime(t) => Some(*t),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Truthiness used by WHERE/HAVING: only `true` passes.
    pub fn is_true(&self) -> bool {
        matches!(self, Value::Bool(true))
    }

    /// Converts from JSON. Integers stay integers; other numbers become floats.
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Int(i)
                } else {
                    Value::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            serde_json::Value::String(s) => Value::Str(Arc::from(s.as_str())),
            serde_json::Value::Array(a) => {
                Value::Array(Arc::new(a.iter().map(Value::from_json).collect()))
            }
            serde_json::Value::Object(o) => Value::Object(Arc::new(
                o.iter()
                    .map(|(k, v)| (Arc::from(k.as_str()), Value::from_json(v)))
                    .collect(),
            )),
        }
    }

    /// Converts to JSON (bytes as base64, datetimes as unix ms, NaN as null).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) => serde_json::Value::String(s.to_string()),
            Value::Bytes(b) => {
                use base64::Engine;
                serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(b))
            }
            Value::Array(a) => serde_json::Value::Array(a.iter().map(Value::to_json).collect()),
            Value::Object(o) => serde_json::Value::Object(
                o.iter()
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect(),
            ),
            Value::Datetime(t) => serde_json::Value::from(*t),
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Int(a), Value::Float(b)) | (Value::Float(b), Value::Int(a)) => {
                (*a as f64) == *b
            }
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::Array(a), Value::Array(b)) => a == b,
            (Value::Object(a), Value::Object(b)) => a == b,
            (Value::Datetime(a), Value::Datetime(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str(""),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => f.write_str(s),
            other => write!(f, "{}", other.to_json()),
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::str(v)
    }
}

/// Field names of a row, in order, with a name → slot index.
#[derive(Debug, Default)]
pub struct Schema {
    names: Vec<Arc<str>>,
    index: AHashMap<Arc<str>, usize>,
}

impl Schema {
    pub fn new(names: Vec<Arc<str>>) -> Schema {
        let mut index = AHashMap::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            // First occurrence wins on duplicates.
            index.entry(n.clone()).or_insert(i);
        }
        Schema { names, index }
    }

    pub fn from_strs(names: &[&str]) -> Schema {
        Schema::new(names.iter().map(|n| Arc::from(*n)).collect())
    }

    pub fn names(&self) -> &[Arc<str>] {
        &self.names
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn slot(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// True when this schema's names equal `names`, in order.
    pub fn same_names<S: AsRef<str>>(&self, names: &[S]) -> bool {
        self.names.len() == names.len()
            && self
                .names
                .iter()
                .zip(names)
                .all(|(a, b)| a.as_ref() == b.as_ref())
    }
}

/// A flat record. Cheap to clone the schema; values are owned.
#[derive(Clone, Debug)]
pub struct Row {
    pub schema: Arc<Schema>,
    pub values: Vec<Value>,
}

impl Row {
    pub fn new(schema: Arc<Schema>, values: Vec<Value>) -> Row {
        debug_assert_eq!(schema.len(), values.len());
        Row { schema, values }
    }

    pub fn empty() -> Row {
        Row {
            schema: Arc::new(Schema::default()),
            values: Vec::new(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.schema.slot(name).and_then(|i| self.values.get(i))
    }

    /// Reads `name` using a slot hint that is updated on a miss, so that rows of
    /// the same shape are read by index without hashing.
    #[inline]
    pub fn get_hinted(&self, name: &str, hint: &SlotHint) -> Option<&Value> {
        let h = hint.0.load(Ordering::Relaxed);
        if let Some(n) = self.schema.names.get(h) {
            if n.as_ref() == name {
                return self.values.get(h);
            }
        }
        let i = self.schema.slot(name)?;
        hint.0.store(i, Ordering::Relaxed);
        self.values.get(i)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &Value)> {
        self.schema.names.iter().zip(self.values.iter())
    }

    /// The row as a sorted map (what sinks and templates see).
    pub fn to_map(&self) -> Map {
        let mut m = Map::new();
        for (k, v) in self.iter() {
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
        m
    }

    pub fn to_value(&self) -> Value {
        Value::Object(Arc::new(self.to_map()))
    }

    /// Builds a row from a map (keys in map order).
    pub fn from_map(m: &Map) -> Row {
        let names: Vec<Arc<str>> = m.keys().cloned().collect();
        let values: Vec<Value> = m.values().cloned().collect();
        Row::new(Arc::new(Schema::new(names)), values)
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut o = serde_json::Map::new();
        for (k, v) in self.iter() {
            o.insert(k.to_string(), v.to_json());
        }
        serde_json::Value::Object(o)
    }
}

/// A cached slot index for a field name (see [`Row::get_hinted`]).
#[derive(Debug, Default)]
pub struct SlotHint(AtomicUsize);

impl SlotHint {
    pub fn new(i: usize) -> SlotHint {
        SlotHint(AtomicUsize::new(i))
    }
}

impl Clone for SlotHint {
    fn clone(&self) -> Self {
        SlotHint(AtomicUsize::new(self.0.load(Ordering::Relaxed)))
    }
}

/// One decoded event, shared (`Arc`) by every rule reading the stream.
#[derive(Clone, Debug)]
pub struct Event {
    pub row: Row,
    pub meta: Option<Arc<crate::meta::Meta>>,
    /// Processing (or event) time, unix ms.
    pub ts: i64,
    /// Arrival sequence number, assigned by the stream hub (0 outside one).
    /// Increases with arrival order within a stream; checkpoints use it to
    /// tell which events a rule has finished with.
    pub seq: u64,
}

pub type SharedEvent = Arc<Event>;

/// Current wall-clock time, unix milliseconds.
pub fn now_ms() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hinted_lookup_follows_schema_changes() {
        let a = Row::new(
            Arc::new(Schema::from_strs(&["x", "temp"])),
            vec![Value::Int(1), Value::Float(21.5)],
        );
        let b = Row::new(
            Arc::new(Schema::from_strs(&["temp"])),
            vec![Value::Float(3.0)],
        );
        let hint = SlotHint::default();
        assert_eq!(a.get_hinted("temp", &hint), Some(&Value::Float(21.5)));
        assert_eq!(b.get_hinted("temp", &hint), Some(&Value::Float(3.0)));
        assert_eq!(a.get_hinted("temp", &hint), Some(&Value::Float(21.5)));
        assert_eq!(a.get_hinted("nope", &hint), None);
    }

    #[test]
    fn json_round_trip_keeps_ints() {
        let j: serde_json::Value =
            serde_json::from_str(r#"{"a":1,"b":1.5,"c":[true,null]}"#).expect("valid json");
        let v = Value::from_json(&j);
        assert_eq!(v.to_json(), j);
    }
}
