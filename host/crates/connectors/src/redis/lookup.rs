//! The `redis` lookup table, as eKuiper's: DATASOURCE is the database
//! number, the one lookup key's value is the Redis key (written as the
//! `redis` sink writes it), and its value holds the row: a JSON object
//! (`dataType: string`, GET) or a list of them (`dataType: list`, LRANGE).
//! A missing key is no rows. One connection per table per rule run, opened
//! at the first lookup and again after it breaks.

use std::sync::Arc;

use async_trait::async_trait;
use oort_core::codec::json::decode_value;
use oort_core::codec::text::value_to_text;
use oort_core::{
    ConnectorEnv, ConnectorError, ConnectorInfo, LookupFactory, LookupSource, PingFuture, PropSpec,
    Props, Row, Value,
};
use serde::Deserialize;
use serde_json::json;

use super::{classify, Link};
use crate::util::parse_config;

const KIND: &str = "redis";

fn default_data_type() -> String {
    "string".into()
}

#[derive(Debug, Deserialize)]
struct Conf {
    #[serde(rename = "datatype", default = "default_data_type")]
    data_type: String,
}

/// How rows are stored under a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataType {
    String,
    List,
}

/// Factory of `redis` lookup tables.
pub struct RedisLookupFactory;

impl RedisLookupFactory {
    /// The link (db from DATASOURCE, `0` when empty) and the data type.
    fn parse(datasource: &str, props: &Props) -> Result<(Link, DataType), ConnectorError> {
        let c: Conf = parse_config(KIND, props)?;
        let data_type = match c.data_type.trim().to_ascii_lowercase().as_str() {
            "string" => DataType::String,
            "list" => DataType::List,
            other => {
                return Err(ConnectorError::Config(format!(
                    "redis: invalid property dataType {other:?}: expected string or list"
                )))
            }
        };
        let ds = datasource.trim();
        let db: i64 = if ds.is_empty() {
            0
        } else {
            ds.parse().map_err(|_| {
                ConnectorError::Config(format!(
                    "redis: DATASOURCE {ds:?} is not a database number (0 to 15)"
                ))
            })?
        };
        let mut p = props.clone();
        p.retain(|k, _| !k.eq_ignore_ascii_case("db"));
        p.insert("db".into(), json!(db));
        Ok((Link::open(KIND, "addr", &p)?, data_type))
    }
}

impl LookupFactory for RedisLookupFactory {
    fn kind(&self) -> &str {
        KIND
    }

    fn info(&self) -> ConnectorInfo {
        ConnectorInfo {
            holds_connection: true,
            datasource_hint: Some("The database number, 0 to 15"),
            default_conf: Some(DEFAULT_CONF),
            properties: super::connection_props("addr", "host:port of the Redis server")
                .into_iter()
                .filter(|p| p.name != "db")
                .chain([PropSpec::new(
                    "dataType",
                    "string",
                    "string: each key holds a JSON object (GET); list: a list of them (LRANGE)",
                )
                .default(json!("string"))
                .values(&["string", "list"])])
                .collect(),
            ..ConnectorInfo::new("Looks up rows stored in Redis under the join key")
        }
    }

    fn validate(
        &self,
        _env: &ConnectorEnv,
        datasource: &str,
        props: &Props,
    ) -> Result<(), ConnectorError> {
        Self::parse(datasource, props).map(drop)
    }

    fn create(
        &self,
        _env: &ConnectorEnv,
        datasource: &str,
        props: &Props,
    ) -> Result<Arc<dyn LookupSource>, ConnectorError> {
        let (link, data_type) = Self::parse(datasource, props)?;
        Ok(Arc::new(RedisLookup {
            link: tokio::sync::Mutex::new(link),
            data_type,
        }))
    }

    fn ping(&self, _env: &ConnectorEnv, props: &Props) -> Option<PingFuture> {
        Some(super::ping(KIND, "addr", props))
    }
}

/// The default conf key of `redis` tables (`etc/sources/redis.yaml`).
const DEFAULT_CONF: &str = "\
default:
  addr: 127.0.0.1:6379
  dataType: string
  # the cache of lookup results (see docs/lookup-tables.md)
  lookup:
    cache: false
    cacheTtl: 10m
    cacheMissingKey: false
";

/// A rule run's `redis` lookup table.
pub struct RedisLookup {
    link: tokio::sync::Mutex<Link>,
    data_type: DataType,
}

/// A stored JSON object as a row.
fn to_row(addr: &str, key: &str, text: &[u8]) -> Result<Row, ConnectorError> {
    match decode_value(text) {
        Ok(Value::Object(m)) => Ok(Row::from_map(&m)),
        _ => Err(ConnectorError::InvalidData(format!(
            "redis {addr}: the value of key {key:?} is not a JSON object"
        ))),
    }
}

#[async_trait]
impl LookupSource for RedisLookup {
    async fn lookup(
        &self,
        keys: &[Arc<str>],
        values: &[Value],
    ) -> Result<Vec<Row>, ConnectorError> {
        let [value] = values else {
            return Err(ConnectorError::Config(format!(
                "redis lookup takes one key, the join has {} ({})",
                keys.len(),
                keys.iter()
                    .map(|k| k.as_ref())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let key = value_to_text(value, false);
        let (mut conn, addr) = {
            let mut link = self.link.lock().await;
            (link.connection().await?, link.addr.clone())
        };
        let answer = match self.data_type {
            DataType::String => redis::cmd("GET")
                .arg(&key)
                .query_async::<Option<Vec<u8>>>(&mut conn)
                .await
                .map(|v| v.into_iter().collect::<Vec<_>>()),
            DataType::List => {
                redis::cmd("LRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query_async::<Vec<Vec<u8>>>(&mut conn)
                    .await
            }
        };
        match answer {
            Ok(items) => items.iter().map(|t| to_row(&addr, &key, t)).collect(),
            Err(e) => {
                let e = classify(&addr, &e);
                if matches!(e, ConnectorError::Unavailable(_)) {
                    self.link.lock().await.conn = None;
                }
                Err(e)
            }
        }
    }
}
