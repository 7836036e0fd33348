//! Strict validation (`STRICT_VALIDATION="true"` on a typed stream): the
//! columns a rule uses are checked against their declared types and
//! converted within the same kind (float -> bigint, bigint -> float...).
//! Failures read like eKuiper's preprocessor
//! (`field size type mismatch: cannot convert string(red) to int64`).

use std::sync::Arc;

use base64::Engine;
use oort_core::{Event, Map, Row, Schema, SharedEvent, Value};

use super::ops::go_fmt;
use crate::ast::{Column, DataType};

/// Go type names as eKuiper's mock/test sources produce them.
fn conv_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float64",
        Value::Str(_) => "string",
        Value::Bytes(_) => "[]uint8",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
        Value::Datetime(_) => "time.Time",
    }
}

fn cannot(v: &Value, to: &str) -> String {
    format!("cannot convert {}({}) to {to}", conv_type(v), go_fmt(v))
}

/// One checked column.
#[derive(Debug)]
struct Field {
    name: Arc<str>,
    ty: DataType,
    default: Option<Value>,
}

/// The checks of one source: only the columns the rule uses.
#[derive(Debug)]
pub(crate) struct Validator {
    fields: Vec<Field>,
}

impl Validator {
    /// `used` selects the declared columns to check (all when `None`).
    pub fn new(columns: &[Column], used: Option<&[String]>) -> Option<Validator> {
        let fields: Vec<Field> = columns
            .iter()
            .filter(|c| used.is_none_or(|u| u.iter().any(|n| n == &c.name)))
            .map(|c| Field {
                name: Arc::from(c.name.as_str()),
                ty: c.ty.clone(),
                default: c.default.as_ref().map(super::plan::lit_value),
            })
            .collect();
        (!fields.is_empty()).then_some(Validator { fields })
    }

    /// Checks and converts one event; returns a new event only when a value
    /// had to change.
    pub fn apply(&self, ev: &SharedEvent) -> Result<Option<SharedEvent>, String> {
        let mut changes: Vec<(usize, Value)> = Vec::new();
        let mut added: Vec<(Arc<str>, Value)> = Vec::new();
        for f in &self.fields {
            match ev.row.schema.slot(&f.name) {
                Some(i) => {
                    let v = ev.row.values.get(i).unwrap_or(&Value::Null);
                    match convert(&f.ty, v) {
                        Ok(Some(nv)) => changes.push((i, nv)),
                        Ok(None) => {}
                        Err(e) => return Err(format!("field {} type mismatch: {e}", f.name)),
                    }
                }
                None => match &f.default {
                    Some(d) => {
                        let v = convert(&f.ty, d)
                            .map_err(|e| format!("field {} type mismatch: {e}", f.name))?
                            .unwrap_or_else(|| d.clone());
                        added.push((f.name.clone(), v));
                    }
                    None => return Err(format!("field {} is not found", f.name)),
                },
            }
        }
        if changes.is_empty() && added.is_empty() {
            return Ok(None);
        }
        let mut values = ev.row.values.clone();
        for (i, v) in changes {
            if let Some(slot) = values.get_mut(i) {
                *slot = v;
            }
        }
        let schema = if added.is_empty() {
            ev.row.schema.clone()
        } else {
            let mut names = ev.row.schema.names().to_vec();
            for (n, v) in added {
                names.push(n);
                values.push(v);
            }
            Arc::new(Schema::new(names))
        };
        Ok(Some(Arc::new(Event {
            row: Row::new(schema, values),
            meta: ev.meta.clone(),
            seq: ev.seq,
            ts: ev.ts,
        })))
    }
}

fn parse_time(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| d.timestamp_millis())
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
                .ok()
                .map(|d| d.and_utc().timestamp_millis())
        })
        .or_else(|| s.parse::<i64>().ok())
}

/// Converts `v` to `ty`; `Ok(None)` when it already has the right type.
fn convert(ty: &DataType, v: &Value) -> Result<Option<Value>, String> {
    Ok(match (ty, v) {
        (DataType::Bigint, Value::Int(_)) => None,
        (DataType::Bigint, Value::Float(f)) => Some(Value::Int(*f as i64)),
        (DataType::Bigint, other) => return Err(cannot(other, "int64")),
        (DataType::Float, Value::Float(_)) => None,
        (DataType::Float, Value::Int(i)) => Some(Value::Float(*i as f64)),
        (DataType::Float, other) => return Err(cannot(other, "float64")),
        (DataType::Boolean, Value::Bool(_)) => None,
        (DataType::Boolean, other) => return Err(cannot(other, "bool")),
        (DataType::String, Value::Str(_)) => None,
        (DataType::String, Value::Bytes(b)) => Some(Value::str(&String::from_utf8_lossy(b))),
        (DataType::String, other) => return Err(cannot(other, "string")),
        (DataType::Datetime, Value::Datetime(_)) => None,
        (DataType::Datetime, Value::Int(i)) => Some(Value::Datetime(*i)),
        (DataType::Datetime, Value::Float(f)) => Some(Value::Datetime(*f as i64)),
        (DataType::Datetime, Value::Str(s)) => match parse_time(s) {
            Some(t) => Some(Value::Datetime(t)),
            None => return Err(cannot(v, "datetime")),
        },
        (DataType::Datetime, other) => return Err(cannot(other, "datetime")),
        (DataType::Bytea, Value::Bytes(_)) => None,
        (DataType::Bytea, Value::Str(s)) => {
            match base64::engine::general_purpose::STANDARD.decode(s.as_bytes()) {
                Ok(b) => Some(Value::Bytes(Arc::from(b))),
                Err(_) => return Err(cannot(v, "bytes")),
            }
        }
        (DataType::Bytea, other) => return Err(cannot(other, "bytes")),
        (DataType::Array(_), Value::Null) => None,
        (DataType::Array(item), Value::Array(a)) => {
            let mut out: Option<Vec<Value>> = None;
            for (i, e) in a.iter().enumerate() {
                if e.is_null() {
                    continue;
                }
                match convert(item, e) {
                    Ok(Some(nv)) => {
                        let o = out.get_or_insert_with(|| a.as_ref().clone());
                        if let Some(slot) = o.get_mut(i) {
                            *slot = nv;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => return Err(format!("array element type mismatch: {e}")),
                }
            }
            out.map(|o| Value::Array(Arc::new(o)))
        }
        (DataType::Array(_), other) => {
            return Err(format!("expect array but got {}", go_fmt(other)))
        }
        (DataType::Struct(_), Value::Null) => None,
        (DataType::Struct(cols), Value::Object(o)) => convert_struct(cols, o)?,
        (DataType::Struct(cols), Value::Str(s)) => {
            let j: serde_json::Value = serde_json::from_str(s).map_err(|_| {
                format!("invalid data type for {s}, expect map but found string({s})")
            })?;
            match Value::from_json(&j) {
                Value::Object(o) => {
                    Some(convert_struct(cols, &o)?.unwrap_or(Value::Object(o.clone())))
                }
                _ => return Err(format!("expect map but found string({s})")),
            }
        }
        (DataType::Struct(_), other) => {
            return Err(format!(
                "expect struct but found {}({})",
                conv_type(other),
                go_fmt(other)
            ))
        }
    })
}

fn convert_struct(cols: &[Column], o: &Arc<Map>) -> Result<Option<Value>, String> {
    let mut out: Option<Map> = None;
    for c in cols {
        match o.get(c.name.as_str()) {
            Some(v) => match convert(&c.ty, v) {
                Ok(Some(nv)) => {
                    out.get_or_insert_with(|| o.as_ref().clone())
                        .insert(Arc::from(c.name.as_str()), nv);
                }
                Ok(None) => {}
                Err(e) => return Err(format!("field {} type mismatch: {e}", c.name)),
            },
            None => match &c.default {
                Some(d) => {
                    out.get_or_insert_with(|| o.as_ref().clone())
                        .insert(Arc::from(c.name.as_str()), super::plan::lit_value(d));
                }
                None => return Err(format!("field {} is not found", c.name)),
            },
        }
    }
    Ok(out.map(|m| Value::Object(Arc::new(m))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::Literal;

    fn col(name: &str, ty: DataType) -> Column {
        Column {
            name: name.into(),
            ty,
            default: None,
        }
    }

    fn ev(names: &[&str], vals: Vec<Value>) -> SharedEvent {
        Arc::new(Event {
            row: Row::new(Arc::new(Schema::from_strs(names)), vals),
            meta: None,
            seq: 0,
            ts: 1,
        })
    }

    #[test]
    fn checks_only_used_columns() {
        let cols = vec![
            col("color", DataType::String),
            col("size", DataType::Bigint),
        ];
        let v = Validator::new(&cols, Some(&["size".to_string()])).expect("one field");
        let e = ev(&["color", "size"], vec![Value::Int(7), Value::Int(4)]);
        assert!(matches!(v.apply(&e), Ok(None)));
        let bad = ev(&["color", "size"], vec![Value::str("x"), Value::str("red")]);
        assert_eq!(
            v.apply(&bad).err(),
            Some("field size type mismatch: cannot convert string(red) to int64".to_string())
        );
        let all = Validator::new(&cols, None).expect("two fields");
        assert_eq!(
            all.apply(&e).err(),
            Some("field color type mismatch: cannot convert int(7) to string".to_string())
        );
    }

    #[test]
    fn converts_within_kind_and_applies_defaults() {
        let mut cols = vec![col("size", DataType::Bigint), col("temp", DataType::Float)];
        cols.push(Column {
            name: "unit".into(),
            ty: DataType::String,
            default: Some(Literal::Str("C".into())),
        });
        let v = Validator::new(&cols, None).expect("fields");
        let e = ev(&["size", "temp"], vec![Value::Float(6.0), Value::Int(20)]);
        let out = v.apply(&e).expect("valid").expect("converted");
        assert_eq!(out.row.get("size"), Some(&Value::Int(6)));
        assert!(matches!(out.row.get("temp"), Some(Value::Float(f)) if *f == 20.0));
        assert_eq!(out.row.get("unit"), Some(&Value::str("C")));
        let missing = ev(&["temp"], vec![Value::Float(1.0)]);
        assert_eq!(
            v.apply(&missing).err(),
            Some("field size is not found".to_string())
        );
    }
}
