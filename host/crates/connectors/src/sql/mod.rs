//! `sql` connectors for PostgreSQL, MySQL/MariaDB and SQLite, as eKuiper's
//! SQL plugin: the source ([`source`]: a query every `interval`, newer rows
//! by index fields), the sink ([`sink`]: insert, update, upsert or delete per
//! row) and the lookup table ([`lookup`]). [`db`] is the connection and the
//! drivers; the `url` says which (`postgres://`, `mysql://`, `sqlite:`).

mod columns;
pub mod db;
mod info;
pub mod lookup;
pub mod sink;
pub mod source;
#[cfg(test)]
mod tests;

use oort_core::{ConnectorEnv, ConnectorError, PingFuture, Props, Value};
use serde::de::DeserializeOwned;
use serde::Deserialize;

pub use lookup::SqlLookupFactory;
pub use sink::SqlSinkFactory;
pub use source::SqlSourceFactory;

use crate::util::parse_config;
use db::{Db, Dialect, Target};

const KIND: &str = "sql";

/// A nested configuration object (`internalSqlQueryCfg`...), its name and
/// its keys matched case-insensitively as the top-level properties are.
fn nested<T: DeserializeOwned>(props: &Props, name: &str) -> Result<Option<T>, ConnectorError> {
    let Some((key, v)) = props.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) else {
        return Ok(None);
    };
    match v {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Object(o) => {
            let lowered = lower_keys(o);
            parse_config(&format!("{KIND}: {key}"), &lowered).map(Some)
        }
        other => Err(ConnectorError::Config(format!(
            "{KIND}: invalid property {key}: expected an object, got {other}"
        ))),
    }
}

/// Keys lower-cased, in nested objects and arrays of objects too.
fn lower_keys(o: &Props) -> Props {
    fn lower(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(o) => serde_json::Value::Object(lower_keys(o)),
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(lower).collect()),
            other => other.clone(),
        }
    }
    o.iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), lower(v)))
        .collect()
}

/// The index settings of a query configuration: one (`indexField`...) or
/// several (`indexFields`).
#[derive(Debug, Deserialize, Default)]
struct IndexSpec {
    #[serde(rename = "indexfield", default)]
    index_field: String,
    #[serde(rename = "indexvalue", default)]
    index_value: Option<serde_json::Value>,
    #[serde(rename = "indexfieldtype", default)]
    index_field_type: String,
    #[serde(rename = "datetimeformat", default)]
    date_time_format: String,
    #[serde(rename = "indexfields", default)]
    index_fields: Vec<IndexSpec>,
}

/// One index field and its current value (a datetime is written in the
/// query with `format`, which `indexFieldType: DATETIME` allows).
#[derive(Debug, Clone)]
struct IndexField {
    field: String,
    value: Option<Value>,
    format: Option<String>,
}

impl IndexSpec {
    fn fields(&self) -> Result<Vec<IndexField>, ConnectorError> {
        let mut out = Vec::new();
        let one = |s: &IndexSpec| -> Result<Option<IndexField>, ConnectorError> {
            if s.index_field.trim().is_empty() {
                if s.index_value.is_some()
                    || !s.index_field_type.is_empty()
                    || !s.date_time_format.is_empty()
                {
                    return Err(ConnectorError::config(
                        "sql: indexValue, indexFieldType and dateTimeFormat need an indexField",
                    ));
                }
                return Ok(None);
            }
            let datetime = match s.index_field_type.trim() {
                "" => false,
                t if t.eq_ignore_ascii_case("DATETIME") => true,
                other => {
                    return Err(ConnectorError::Config(format!(
                        "sql: invalid property indexFieldType {other:?}: DATETIME is the only type to set"
                    )))
                }
            };
            let format = Some(s.date_time_format.trim().to_string()).filter(|f| !f.is_empty());
            if format.is_some() && !datetime {
                return Err(ConnectorError::config(
                    "sql: dateTimeFormat is used with indexFieldType DATETIME only",
                ));
            }
            Ok(Some(IndexField {
                field: s.index_field.trim().to_string(),
                value: s
                    .index_value
                    .as_ref()
                    .filter(|v| !v.is_null())
                    .map(Value::from_json),
                format,
            }))
        };
        if let Some(f) = one(self)? {
            out.push(f);
        }
        for s in &self.index_fields {
            if !s.index_fields.is_empty() {
                return Err(ConnectorError::config(
                    "sql: indexFields entries cannot have indexFields",
                ));
            }
            match one(s)? {
                Some(f) => out.push(f),
                None => {
                    return Err(ConnectorError::config(
                        "sql: each indexFields entry needs an indexField",
                    ))
                }
            }
        }
        Ok(out)
    }
}

impl IndexField {
    /// The value as a template sees it: a datetime in `dateTimeFormat`.
    fn template_value(&self, v: &Value) -> Result<Value, ConnectorError> {
        match (v, &self.format) {
            (Value::Datetime(ms), Some(f)) => oort_functions::format_time_ms(*ms, f)
                .map(|s| Value::Str(s.into()))
                .map_err(|e| ConnectorError::InvalidData(format!("sql: dateTimeFormat: {e}"))),
            (Value::Datetime(ms), None) => {
                let mut s = String::new();
                Dialect::Sqlite.literal(&Value::Datetime(*ms), &mut s);
                Ok(Value::Str(s.trim_matches('\'').into()))
            }
            _ => Ok(v.clone()),
        }
    }

    /// The value as a SQL literal of dialect `d`.
    fn literal(&self, d: Dialect, v: &Value, out: &mut String) -> Result<(), ConnectorError> {
        match v {
            Value::Datetime(_) => d.literal(&self.template_value(v)?, out),
            other => d.literal(other, out),
        }
        Ok(())
    }
}

/// The index values as an offset: `[{"field", "value", "datetime"}]`
/// (datetimes in ms).
fn index_offset(index: &[IndexField]) -> String {
    let v: Vec<serde_json::Value> = index
        .iter()
        .map(|f| {
            let (value, dt) = match &f.value {
                Some(Value::Datetime(ms)) => (serde_json::json!(ms), true),
                Some(v) => (v.to_json(), false),
                None => (serde_json::Value::Null, false),
            };
            serde_json::json!({"field": f.field, "value": value, "datetime": dt})
        })
        .collect();
    serde_json::Value::Array(v).to_string()
}

/// Index values from a stored offset (fields matched by name).
fn resume_index(index: &mut [IndexField], offset: &str) {
    let Ok(serde_json::Value::Array(a)) = serde_json::from_str::<serde_json::Value>(offset) else {
        tracing::warn!(
            "sql: stored offset is not an index list; starting from the configured values"
        );
        return;
    };
    for e in a {
        let Some(name) = e.get("field").and_then(|f| f.as_str()) else {
            continue;
        };
        let Some(f) = index.iter_mut().find(|f| f.field == name) else {
            continue;
        };
        let v = e.get("value").cloned().unwrap_or_default();
        if v.is_null() {
            continue;
        }
        let dt = e.get("datetime").and_then(|d| d.as_bool()) == Some(true);
        f.value = Some(match (dt, v.as_i64()) {
            (true, Some(ms)) => Value::Datetime(ms),
            _ => Value::from_json(&v),
        });
    }
}

/// The connectivity check of the `sql` connectors: connect and `SELECT 1`.
fn ping(env: ConnectorEnv, props: Props) -> PingFuture {
    Box::pin(async move {
        #[derive(Deserialize)]
        struct Url {
            #[serde(default)]
            url: String,
        }
        let u: Url = parse_config(KIND, &props)?;
        let t = Target::parse(KIND, &env, &u.url)?;
        let mut db = Db::open(&t).await?;
        db.query(&t, "SELECT 1").await.map(drop)
    })
}
