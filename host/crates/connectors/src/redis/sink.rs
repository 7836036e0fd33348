//! `redis` sink, as eKuiper's: each row is stored under a key, either the
//! whole row as JSON under `key` or under the value of its `field`
//! (`keyType: single`), or each of its fields under its own name
//! (`keyType: multiple`, values as text); `dataType: string` SETs (with
//! `expiration`), `list` LPUSHes. With `rowkindField`, a row whose field
//! says `delete` DELetes the key (LPOPs a list). One pipeline per batch:
//! a batch costs one round trip.

use async_trait::async_trait;
use oort_core::codec::json::write_value;
use oort_core::codec::text::value_to_text;
use oort_core::{
    ConnectorEnv, ConnectorError, ConnectorInfo, Consumes, PropSpec, Props, Sink, SinkContext,
    SinkFactory, SinkItem, Value,
};
use serde::Deserialize;
use serde_json::json;

use crate::util::parse_config;

const KIND: &str = "redis";

fn default_key_type() -> String {
    "single".into()
}
fn default_data_type() -> String {
    "string".into()
}

#[derive(Debug, Deserialize)]
struct Conf {
    #[serde(default)]
    key: String,
    #[serde(default)]
    field: String,
    #[serde(rename = "keytype", default = "default_key_type")]
    key_type: String,
    #[serde(rename = "datatype", default = "default_data_type")]
    data_type: String,
    /// ms (or a Go duration); -1 keeps the key's TTL, 0 none.
    #[serde(default, deserialize_with = "opt_expiration")]
    expiration: Option<i64>,
    #[serde(rename = "rowkindfield", default)]
    rowkind_field: String,
}

fn opt_expiration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    let v = serde_json::Value::deserialize(d)?;
    match &v {
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("{n} is not a whole number of ms"))),
        serde_json::Value::String(s) if s.trim() == "-1" => Ok(Some(-1)),
        _ => oort_core::duration::duration_from_json(&v)
            .map(|d| Some(d.as_millis() as i64))
            .map_err(D::Error::custom),
    }
}

/// Factory of `redis` sinks.
pub struct RedisSinkFactory;

impl SinkFactory for RedisSinkFactory {
    fn kind(&self) -> &str {
        KIND
    }

    fn info(&self) -> ConnectorInfo {
        ConnectorInfo {
            holds_connection: true,
            properties: super::connection_props("addr", "host:port of the Redis server")
                .into_iter()
                .chain([
                PropSpec::new("key", "string", "keyType single: the fixed key"),
                PropSpec::new(
                    "field",
                    "string",
                    "keyType single: the row field whose value is the key (wins over key)",
                ),
                PropSpec::new(
                    "keyType",
                    "string",
                    "single: the row as JSON under one key; multiple: each field under its name",
                )
                .default(json!("single"))
                .values(&["single", "multiple"]),
                PropSpec::new("dataType", "string", "string: SET; list: LPUSH")
                    .default(json!("string"))
                    .values(&["string", "list"]),
                PropSpec::new(
                    "expiration",
                    "duration",
                    "string keys: time to live (ms or Go duration); -1 keeps the TTL, 0 none",
                )
                .default(json!(-1)),
                PropSpec::new(
                    "rowkindField",
                    "string",
                    "The row field saying insert, update, upsert or delete",
                ),
            ])
            .collect(),
            ..ConnectorInfo::new("Sets keys or pushes to lists in Redis")
        }
    }

    fn consumes(&self) -> Consumes {
        Consumes::Rows
    }

    fn ping(&self, _env: &ConnectorEnv, props: &Props) -> Option<oort_core::PingFuture> {
        Some(super::ping(KIND, "addr", props))
    }

    fn create(&self, _env: &ConnectorEnv, props: &Props) -> Result<Box<dyn Sink>, ConnectorError> {
        let c: Conf = parse_config(KIND, props)?;
        let bad = |m: String| Err(ConnectorError::Config(format!("redis: {m}")));
        let multiple = match c.key_type.to_ascii_lowercase().as_str() {
            "single" => false,
            "multiple" => true,
            other => {
                return bad(format!(
                    "invalid property keyType {other:?}: expected single or multiple"
                ))
            }
        };
        let list = match c.data_type.to_ascii_lowercase().as_str() {
            "string" => false,
            "list" => true,
            other => {
                return bad(format!(
                    "invalid property dataType {other:?}: expected string or list"
                ))
            }
        };
        if !multiple && c.key.is_empty() && c.field.is_empty() {
            return bad("property key or field is required with keyType single".into());
        }
        let expiration = c.expiration.unwrap_or(-1);
        if expiration < -1 {
            return bad(format!(
                "invalid property expiration {expiration}: -1, 0 or a positive time"
            ));
        }
        if list && c.expiration.is_some_and(|e| e > 0) {
            return bad("property expiration applies to dataType string only".into());
        }
        let link = super::Link::open(KIND, "addr", props)?;
        Ok(Box::new(RedisSink {
            link,
            multiple,
            list,
            key: c.key,
            field: c.field,
            expiration,
            rowkind_field: c.rowkind_field,
        }))
    }
}

/// A running `redis` sink.
pub struct RedisSink {
    link: super::Link,
    multiple: bool,
    list: bool,
    key: String,
    field: String,
    expiration: i64,
    rowkind_field: String,
}

impl RedisSink {
    /// Adds the commands of one row; `Err` names what is wrong with it.
    fn add_row(&self, pipe: &mut redis::Pipeline, row: &Value) -> Result<(), String> {
        let Value::Object(m) = row else {
            return Err(format!("a result is {}, not a row", row.type_name()));
        };
        let delete = match self.rowkind_field.as_str() {
            "" => false,
            f => match m.get(f) {
                None => false,
                Some(Value::Str(k)) => match k.to_ascii_lowercase().as_str() {
                    "insert" | "update" | "upsert" => false,
                    "delete" => true,
                    other => return Err(format!("invalid rowkind {other:?} in field {f}")),
                },
                Some(v) => {
                    return Err(format!(
                        "rowkind field {f} is {}, not a string",
                        v.type_name()
                    ))
                }
            },
        };
        let mut pairs: Vec<(String, Vec<u8>)> = Vec::new();
        if self.multiple {
            for (k, v) in m.iter() {
                pairs.push((k.to_string(), value_to_text(v, false).into_bytes()));
            }
        } else {
            let key = if self.field.is_empty() {
                self.key.clone()
            } else {
                match m.get(self.field.as_str()) {
                    Some(Value::Null) | None => {
                        return Err(format!("field {} does not exist in the row", self.field))
                    }
                    Some(v) => value_to_text(v, false),
                }
            };
            let mut json = Vec::with_capacity(64);
            write_value(&mut json, row);
            pairs.push((key, json));
        }
        for (k, v) in pairs {
            match (delete, self.list) {
                (false, true) => {
                    pipe.lpush(k, v).ignore();
                }
                (false, false) => {
                    let c = pipe.cmd("SET").arg(k).arg(v);
                    match self.expiration {
                        -1 => c.arg("KEEPTTL"),
                        0 => c,
                        ms => c.arg("PX").arg(ms),
                    }
                    .ignore();
                }
                (true, true) => {
                    pipe.lpop(k, None).ignore();
                }
                (true, false) => {
                    pipe.del(k).ignore();
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Sink for RedisSink {
    async fn connect(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        self.link.connect(ctx).await
    }

    async fn collect(
        &mut self,
        ctx: &SinkContext,
        items: &[SinkItem],
    ) -> Result<(), ConnectorError> {
        let mut pipe = redis::pipe();
        let mut bad: Vec<String> = Vec::new();
        for it in items {
            match &it.data {
                Value::Array(rows) => {
                    for r in rows.iter() {
                        if let Err(e) = self.add_row(&mut pipe, r) {
                            bad.push(e);
                        }
                    }
                }
                row => {
                    if let Err(e) = self.add_row(&mut pipe, row) {
                        bad.push(e);
                    }
                }
            }
        }
        if !pipe.is_empty() {
            self.link.run(ctx, &pipe).await?;
        }
        match bad.first() {
            None => Ok(()),
            Some(first) => Err(ConnectorError::InvalidData(format!(
                "redis: {} row(s) not written: {first}",
                bad.len()
            ))),
        }
    }
}
