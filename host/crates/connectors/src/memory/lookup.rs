//! The `memory` lookup table: the rows published on a memory topic, keyed
//! by the table's KEY column and kept in memory. An updatable memory sink
//! (`rowkindField`, `keyField`) inserts, updates and deletes rows; a plain
//! sink's rows are upserts. One table per (topic, KEY) is shared by every
//! rule run that uses it; it fills from the moment the first of them starts
//! and is dropped with the last, as in eKuiper.

use std::sync::{Arc, Weak};

use ahash::AHashMap;
use async_trait::async_trait;
use oort_core::key::Key;
use oort_core::lookup::matching;
use oort_core::{
    ConnectorEnv, ConnectorError, ConnectorInfo, LookupFactory, LookupSource, Props, Row, Value,
};
use parking_lot::{Mutex, RwLock};
use serde::Deserialize;

use super::bus::{bus, BusMsg, RowKind, Subscription, TopicFilter};
use crate::util::parse_config;

/// Rows a table holds at most; further new keys are dropped (and logged).
pub const MAX_TABLE_ROWS: usize = 1_000_000;
/// Batches queued from the bus before publishers wait for the table.
const QUEUE: usize = 1024;

#[derive(Debug, Deserialize)]
struct Conf {
    #[serde(default)]
    key: String,
}

/// The tables of one connector context, by (topic, key).
#[derive(Default)]
pub struct MemoryTables {
    tables: Mutex<AHashMap<(String, String), Weak<Table>>>,
}

/// One keyed table and the task feeding it from the bus.
pub struct Table {
    key: Arc<str>,
    rows: RwLock<AHashMap<Key, Row>>,
    feeder: Mutex<Option<tokio::task::AbortHandle>>,
    /// Rows it holds at most.
    cap: usize,
    /// New keys not kept because the table was full (since it was made).
    dropped: std::sync::atomic::AtomicU64,
    drop_log: Mutex<oort_core::RateLimitedLog>,
}

impl Drop for Table {
    fn drop(&mut self) {
        if let Some(h) = self.feeder.lock().take() {
            h.abort();
        }
    }
}

impl Table {
    fn new(key: &str, cap: usize) -> Table {
        Table {
            key: Arc::from(key),
            rows: RwLock::new(AHashMap::new()),
            feeder: Mutex::new(None),
            cap,
            dropped: Default::default(),
            drop_log: Mutex::new(oort_core::RateLimitedLog::new(
                std::time::Duration::from_secs(10),
            )),
        }
    }

    /// Applies one published batch.
    fn apply(&self, msg: &BusMsg) {
        let mut rows = self.rows.write();
        for (i, row) in msg.rows.iter().enumerate() {
            let change = msg.changes.as_ref().and_then(|c| c.get(i));
            if let Some(c) = change.filter(|c| c.kind == RowKind::Delete) {
                rows.remove(&Key::lookup(std::slice::from_ref(&c.key)));
                continue;
            }
            let Some(k) = row.get(&self.key).filter(|v| !v.is_null()) else {
                tracing::debug!(key = %self.key, "memory table: a row without its key is not kept");
                continue;
            };
            let k = Key::lookup(std::slice::from_ref(k));
            if rows.len() >= self.cap && !rows.contains_key(&k) {
                let total = self
                    .dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    + 1;
                self.drop_log.lock().hit(|_| {
                    tracing::warn!(
                        key = %self.key,
                        dropped = total,
                        cap = self.cap,
                        "memory table is full: new keys are not kept"
                    )
                });
                continue;
            }
            rows.insert(k, row.clone());
        }
    }

    /// Rows whose `keys` equal `values`: by the table key when it is among
    /// them, else by a scan.
    fn read(&self, keys: &[Arc<str>], values: &[Value]) -> Vec<Row> {
        let rows = self.rows.read();
        if let Some(i) = keys.iter().position(|k| *k == self.key) {
            let Some(v) = values.get(i) else {
                return Vec::new();
            };
            return match rows.get(&Key::lookup(std::slice::from_ref(v))) {
                Some(r) => matching(std::iter::once(r), keys, values),
                None => Vec::new(),
            };
        }
        matching(rows.values(), keys, values)
    }

    /// Rows held (tests, status).
    pub fn len(&self) -> usize {
        self.rows.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The table of (`topic`, `key`), subscribed and fed from now on; shared
/// with the runs already using it.
pub fn table(env: &ConnectorEnv, topic: &str, key: &str) -> Result<Arc<Table>, ConnectorError> {
    let reg = env.pool::<MemoryTables>();
    let mut tables = reg.tables.lock();
    let id = (topic.to_string(), key.to_string());
    if let Some(t) = tables.get(&id).and_then(Weak::upgrade) {
        return Ok(t);
    }
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| ConnectorError::Fatal("memory: no runtime to feed the table".into()))?;
    // Subscribed before this returns: nothing published after is missed.
    let sub = bus(env)
        .subscribe(topic, QUEUE)
        .map_err(|e| ConnectorError::Config(format!("memory: {e}")))?;
    let t = Arc::new(Table::new(key, MAX_TABLE_ROWS));
    let task = handle.spawn(feed(Arc::downgrade(&t), sub));
    *t.feeder.lock() = Some(task.abort_handle());
    tables.retain(|_, w| w.strong_count() > 0);
    tables.insert(id, Arc::downgrade(&t));
    Ok(t)
}

async fn feed(table: Weak<Table>, mut sub: Subscription) {
    while let Some(msg) = sub.recv().await {
        let Some(t) = table.upgrade() else { return };
        t.apply(&msg);
    }
}

/// Factory of `memory` lookup tables.
pub struct MemoryLookupFactory;

impl MemoryLookupFactory {
    fn conf(datasource: &str, props: &Props) -> Result<(String, String), ConnectorError> {
        let c: Conf = parse_config("memory", props)?;
        let topic = datasource.trim();
        if topic.is_empty() {
            return Err(ConnectorError::config(
                "memory: DATASOURCE (the topic) is required",
            ));
        }
        TopicFilter::parse(topic).map_err(|e| ConnectorError::Config(format!("memory: {e}")))?;
        if c.key.trim().is_empty() {
            return Err(ConnectorError::config(
                "Option \"key\" is required for memory lookup table.",
            ));
        }
        Ok((topic.to_string(), c.key.trim().to_string()))
    }
}

impl LookupFactory for MemoryLookupFactory {
    fn kind(&self) -> &str {
        "memory"
    }

    fn info(&self) -> ConnectorInfo {
        ConnectorInfo {
            datasource_hint: Some(
                "The topic the table's rows are published on (+ and # wildcards)",
            ),
            ..ConnectorInfo::new(
                "Keeps the rows published on a memory topic, by the table's KEY, for lookups",
            )
        }
    }

    fn validate(
        &self,
        _env: &ConnectorEnv,
        datasource: &str,
        props: &Props,
    ) -> Result<(), ConnectorError> {
        Self::conf(datasource, props).map(drop)
    }

    fn create(
        &self,
        env: &ConnectorEnv,
        datasource: &str,
        props: &Props,
    ) -> Result<Arc<dyn LookupSource>, ConnectorError> {
        let (topic, key) = Self::conf(datasource, props)?;
        Ok(Arc::new(MemoryLookup {
            table: table(env, &topic, &key)?,
        }))
    }
}

/// A rule run's handle on a memory table.
pub struct MemoryLookup {
    table: Arc<Table>,
}

#[async_trait]
impl LookupSource for MemoryLookup {
    async fn lookup(
        &self,
        keys: &[Arc<str>],
        values: &[Value],
    ) -> Result<Vec<Row>, ConnectorError> {
        Ok(self.table.read(keys, values))
    }

    fn dropped(&self) -> u64 {
        self.table
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::Publisher;
    use oort_core::Schema;

    fn row(id: i64, v: &str, action: &str) -> Row {
        Row::new(
            Arc::new(Schema::from_strs(&["id", "v", "action"])),
            vec![Value::Int(id), Value::str(v), Value::str(action)],
        )
    }

    fn props(v: serde_json::Value) -> Props {
        v.as_object().cloned().unwrap()
    }

    async fn wait_for(t: &Table, n: usize) {
        for _ in 0..1000 {
            if t.len() == n {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("table has {} rows, want {n}", t.len());
    }

    #[test]
    fn validate_needs_topic_and_key() {
        let env = ConnectorEnv::default();
        let f = MemoryLookupFactory;
        assert!(f
            .validate(&env, "", &props(serde_json::json!({"key": "id"})))
            .is_err());
        let e = f.validate(&env, "t", &Props::new()).unwrap_err();
        assert!(e.to_string().contains("key"), "{e}");
        assert!(f
            .validate(&env, "a/#/b", &props(serde_json::json!({"key": "id"})))
            .is_err());
        f.validate(&env, "t/#", &props(serde_json::json!({"key": "id"})))
            .unwrap();
    }

    #[test]
    fn a_full_table_counts_the_keys_it_does_not_keep() {
        let t = Arc::new(Table::new("id", 3));
        let msg = BusMsg {
            topic: Arc::from("t"),
            rows: (1..=5).map(|i| row(i, "v", "")).collect(),
            changes: None,
        };
        t.apply(&msg);
        assert_eq!(t.len(), 3);
        let l = MemoryLookup { table: t.clone() };
        assert_eq!(l.dropped(), 2);
        // Updating a kept key is not a drop.
        t.apply(&BusMsg {
            topic: Arc::from("t"),
            rows: vec![row(1, "w", "")],
            changes: None,
        });
        assert_eq!(l.dropped(), 2);
    }

    #[tokio::test]
    async fn rows_are_upserted_deleted_and_looked_up() {
        let env = ConnectorEnv::default();
        let src = MemoryLookupFactory
            .create(&env, "devices/#", &props(serde_json::json!({"key": "id"})))
            .unwrap();
        let same = table(&env, "devices/#", "id").unwrap();
        let mut p = Publisher::new(bus(&env));
        p.publish("devices/a", vec![row(1, "one", ""), row(2, "two", "")])
            .await;
        wait_for(&same, 2).await;
        let id: [Arc<str>; 1] = [Arc::from("id")];
        let got = src.lookup(&id, &[Value::Float(2.0)]).await.unwrap();
        assert_eq!(got[0].get("v"), Some(&Value::str("two")));
        // A lookup on another column scans.
        let v: [Arc<str>; 1] = [Arc::from("v")];
        assert_eq!(src.lookup(&v, &[Value::str("one")]).await.unwrap().len(), 1);
        // Both columns: the key finds the row, the other must match too.
        let both: [Arc<str>; 2] = [Arc::from("id"), Arc::from("v")];
        assert!(src
            .lookup(&both, &[Value::Int(1), Value::str("two")])
            .await
            .unwrap()
            .is_empty());
        let changes: Arc<[super::super::Change]> = vec![
            super::super::Change {
                kind: RowKind::Upsert,
                key: Value::Int(1),
            },
            super::super::Change {
                kind: RowKind::Delete,
                key: Value::Int(2),
            },
        ]
        .into();
        p.publish_changes(
            "devices/b",
            vec![row(1, "uno", "upsert"), row(2, "", "delete")],
            Some(changes),
        )
        .await;
        wait_for(&same, 1).await;
        let got = src.lookup(&id, &[Value::Int(1)]).await.unwrap();
        assert_eq!(got[0].get("v"), Some(&Value::str("uno")));
        assert!(src.lookup(&id, &[Value::Int(2)]).await.unwrap().is_empty());
        // The last user gone, the table and its subscription go too.
        drop(src);
        drop(same);
        let b = bus(&env);
        for _ in 0..1000 {
            if b.subscription_count() == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(b.subscription_count(), 0);
    }
}
