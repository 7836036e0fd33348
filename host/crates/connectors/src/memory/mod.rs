//! `memory` source and sink: rules talk to each other through the in-process
//! [`bus`] without encoding. The sink publishes result rows on `topic` (a
//! template); the source subscribes to DATASOURCE (`+`/`#` wildcards) and
//! emits the row batches as they come, with meta `{topic}`. With
//! `rowkindField` and `keyField` the sink is updatable: each row inserts,
//! updates or deletes a row of the memory lookup tables on its topic
//! ([`lookup`]).

pub mod bus;
pub mod lookup;

use std::sync::Arc;

use async_trait::async_trait;
use oort_core::{
    ConnectorEnv, ConnectorError, ConnectorInfo, Consumes, PropSpec, Props, Row, Schema, Sink,
    SinkContext, SinkFactory, SinkItem, Source, SourceContext, SourceFactory, SourceMsg, Value,
};
use serde::Deserialize;

pub use bus::{bus, BusMsg, Change, MemoryBus, Publisher, RowKind, Subscription, TopicFilter};
pub use lookup::MemoryLookupFactory;

use crate::util::{de, parse_config, rows_from_value, PropTemplate};

/// Rows merged into one emitted batch when several messages are queued.
const MAX_MERGED_ROWS: usize = 4096;

fn default_buffer() -> u64 {
    1024
}

#[derive(Debug, Deserialize)]
struct SourceConf {
    #[serde(
        rename = "bufferlength",
        default = "default_buffer",
        deserialize_with = "de::u64_lenient"
    )]
    buffer_length: u64,
}

/// Factory of `memory` sources.
pub struct MemorySourceFactory;

impl SourceFactory for MemorySourceFactory {
    fn kind(&self) -> &str {
        "memory"
    }

    fn info(&self) -> ConnectorInfo {
        ConnectorInfo {
            datasource_hint: Some("The topic to read (+ and # wildcards)"),
            properties: vec![PropSpec::new(
                "bufferLength",
                "int",
                "Batches queued for this source before the sink waits",
            )
            .default(serde_json::json!(1024))],
            ..ConnectorInfo::new("Reads the result rows other rules publish on a memory topic")
        }
    }

    fn create(
        &self,
        env: &ConnectorEnv,
        datasource: &str,
        props: &Props,
    ) -> Result<Box<dyn Source>, ConnectorError> {
        let conf: SourceConf = parse_config("memory", props)?;
        let topic = datasource.trim();
        if topic.is_empty() {
            return Err(ConnectorError::config(
                "memory: DATASOURCE (the topic) is required",
            ));
        }
        TopicFilter::parse(topic).map_err(|e| ConnectorError::Config(format!("memory: {e}")))?;
        Ok(Box::new(MemorySource {
            topic: topic.to_string(),
            capacity: conf.buffer_length.clamp(1, 1 << 20) as usize,
            bus: bus(env),
        }))
    }

    fn emits_rows(&self) -> bool {
        true
    }
}

/// A running `memory` source.
pub struct MemorySource {
    topic: String,
    capacity: usize,
    bus: Arc<MemoryBus>,
}

impl MemorySource {
    /// A source on a private bus (tests).
    pub fn with_bus(topic: &str, capacity: usize, bus: Arc<MemoryBus>) -> MemorySource {
        MemorySource {
            topic: topic.to_string(),
            capacity,
            bus,
        }
    }
}

#[async_trait]
impl Source for MemorySource {
    async fn run(&mut self, ctx: SourceContext) -> Result<(), ConnectorError> {
        let mut sub = self
            .bus
            .subscribe(&self.topic, self.capacity)
            .map_err(|e| ConnectorError::Config(format!("memory: {e}")))?;
        ctx.conn.connected();
        let mut meta: Option<(Arc<str>, Arc<oort_core::Meta>)> = None;
        let mut pending: Option<BusMsg> = None;
        loop {
            let msg = match pending.take() {
                Some(m) => m,
                None => tokio::select! {
                    m = sub.recv() => match m {
                        Some(m) => m,
                        None => return Ok(()),
                    },
                    _ = ctx.cancel.cancelled() => return Ok(()),
                },
            };
            let BusMsg {
                topic, mut rows, ..
            } = msg;
            // Merge batches already queued for the same topic into one emit.
            while rows.len() < MAX_MERGED_ROWS {
                match sub.try_recv() {
                    Some(next) if next.topic == topic => rows.extend(next.rows),
                    Some(next) => {
                        pending = Some(next);
                        break;
                    }
                    None => break,
                }
            }
            let m = match &meta {
                Some((t, m)) if Arc::ptr_eq(t, &topic) || *t == topic => m.clone(),
                _ => {
                    let mut m = oort_core::Meta::new();
                    m.insert(Arc::from("topic"), Value::Str(topic.clone()));
                    let m = Arc::new(m);
                    meta = Some((topic.clone(), m.clone()));
                    m
                }
            };
            if !ctx
                .emit(SourceMsg::Rows {
                    rows,
                    meta: Some(m),
                })
                .await
            {
                return Ok(());
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct SinkConf {
    #[serde(default)]
    topic: String,
    #[serde(rename = "rowkindfield", default)]
    rowkind_field: String,
    #[serde(rename = "keyfield", default)]
    key_field: String,
}

/// An updatable sink's fields: where each row's rowkind and key are.
#[derive(Debug, Clone)]
struct Updatable {
    rowkind_field: String,
    key_field: String,
}

impl Updatable {
    /// The change a row makes: its `rowkindField` (`upsert` when absent)
    /// and `keyField` (required).
    fn change(&self, row: &Row) -> Result<Change, String> {
        let kind = match row.get(&self.rowkind_field) {
            None | Some(Value::Null) => RowKind::Upsert,
            Some(Value::Str(s)) => RowKind::parse(s).ok_or_else(|| {
                format!("invalid rowkind {s:?}: expected insert, update, upsert or delete")
            })?,
            Some(other) => {
                return Err(format!(
                    "rowkind field {} is not a string: {}",
                    self.rowkind_field,
                    other.to_json()
                ))
            }
        };
        match row.get(&self.key_field) {
            Some(k) if !k.is_null() => Ok(Change {
                kind,
                key: k.clone(),
            }),
            _ => Err(format!("key field {} not found in the row", self.key_field)),
        }
    }
}

/// Factory of `memory` sinks.
pub struct MemorySinkFactory;

impl SinkFactory for MemorySinkFactory {
    fn kind(&self) -> &str {
        "memory"
    }

    fn info(&self) -> ConnectorInfo {
        ConnectorInfo {
            properties: vec![
                PropSpec::new(
                    "topic",
                    "string",
                    "The memory topic to publish on; may be a template ({{.field}})",
                )
                .required()
                .dynamic(),
                PropSpec::new(
                    "rowkindField",
                    "string",
                    "Updatable mode: the field holding each row's action (insert, update, upsert, delete; upsert when absent)",
                ),
                PropSpec::new(
                    "keyField",
                    "string",
                    "Updatable mode: the field holding each row's key (required with rowkindField)",
                ),
            ],
            ..ConnectorInfo::new("Publishes result rows on a memory topic for other rules")
        }
    }

    fn create(&self, env: &ConnectorEnv, props: &Props) -> Result<Box<dyn Sink>, ConnectorError> {
        let conf: SinkConf = parse_config("memory", props)?;
        if conf.topic.trim().is_empty() {
            return Err(ConnectorError::config("memory: property topic is required"));
        }
        let topic = PropTemplate::parse("topic", conf.topic.trim())?;
        if let Some(t) = topic.static_text() {
            if t.contains(['+', '#']) {
                return Err(ConnectorError::Config(format!(
                    "memory: property topic {t:?} must not contain wildcards"
                )));
            }
        }
        let updatable = match (conf.rowkind_field.trim(), conf.key_field.trim()) {
            ("", "") => None,
            ("", _) => {
                return Err(ConnectorError::config(
                    "memory: property keyField is only used with rowkindField (the updatable mode): set rowkindField too",
                ))
            }
            (_, "") => {
                return Err(ConnectorError::config(
                    "memory: property keyField is required when rowkindField is set",
                ))
            }
            (r, k) => Some(Updatable {
                rowkind_field: r.to_string(),
                key_field: k.to_string(),
            }),
        };
        let mut sink = MemorySink::with_bus(topic, bus(env));
        sink.updatable = updatable;
        Ok(Box::new(sink))
    }

    fn consumes(&self) -> Consumes {
        Consumes::Rows
    }
}

/// A running `memory` sink.
pub struct MemorySink {
    topic: PropTemplate,
    publisher: Publisher,
    schema: Option<Arc<Schema>>,
    updatable: Option<Updatable>,
}

impl MemorySink {
    fn with_bus(topic: PropTemplate, bus: Arc<MemoryBus>) -> MemorySink {
        MemorySink {
            topic,
            publisher: Publisher::new(bus),
            schema: None,
            updatable: None,
        }
    }

    /// Publishes `rows` (with their changes when updatable); a row without
    /// a valid change is not published: counted in `bad`, the first reason
    /// kept.
    async fn send(&mut self, topic: &str, mut rows: Vec<Row>, bad: &mut Bad) {
        let Some(u) = &self.updatable else {
            self.publisher.publish(topic, rows).await;
            return;
        };
        let mut changes = Vec::with_capacity(rows.len());
        rows.retain(|r| match u.change(r) {
            Ok(c) => {
                changes.push(c);
                true
            }
            Err(e) => {
                bad.count += 1;
                bad.first.get_or_insert(e);
                false
            }
        });
        if !rows.is_empty() {
            self.publisher
                .publish_changes(topic, rows, Some(changes.into()))
                .await;
        }
    }
}

/// Rows an updatable sink could not publish.
#[derive(Default)]
struct Bad {
    count: usize,
    first: Option<String>,
}

#[async_trait]
impl Sink for MemorySink {
    async fn connect(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        ctx.conn.connected();
        Ok(())
    }

    async fn collect(
        &mut self,
        _ctx: &SinkContext,
        items: &[SinkItem],
    ) -> Result<(), ConnectorError> {
        let mut batch: Vec<Row> = Vec::new();
        let mut skipped = 0usize;
        let mut bad_topic: Option<ConnectorError> = None;
        let mut bad = Bad::default();
        if let Some(topic) = self.topic.static_text() {
            let topic = topic.into_owned();
            for it in items {
                skipped += rows_from_value(&it.data, &mut self.schema, &mut batch);
            }
            if !batch.is_empty() {
                self.send(&topic, batch, &mut bad).await;
            }
        } else {
            // Group consecutive items that render to the same topic.
            let mut current: Option<String> = None;
            for it in items {
                let t = match self.topic.render(&it.data) {
                    Ok(t) => t,
                    Err(e) => {
                        // This item is not published; the others are.
                        skipped += 1;
                        bad_topic.get_or_insert(e);
                        continue;
                    }
                };
                if current.as_deref() != Some(t.as_str()) {
                    if let Some(prev) = current.take() {
                        if !batch.is_empty() {
                            self.send(&prev, std::mem::take(&mut batch), &mut bad).await;
                        }
                    }
                    current = Some(t);
                }
                skipped += rows_from_value(&it.data, &mut self.schema, &mut batch);
            }
            if let Some(t) = current {
                if !batch.is_empty() {
                    self.send(&t, batch, &mut bad).await;
                }
            }
        }
        if let Some(e) = bad_topic {
            return Err(e);
        }
        if let Some(e) = bad.first {
            return Err(ConnectorError::InvalidData(format!(
                "memory: {} row(s) not published: {e}",
                bad.count
            )));
        }
        if skipped > 0 {
            return Err(ConnectorError::InvalidData(format!(
                "memory: {skipped} item(s) were not row objects"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oort_core::codec::json::decode_value;
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    fn props(v: serde_json::Value) -> Props {
        v.as_object().cloned().unwrap()
    }

    fn item(json: &str) -> SinkItem {
        SinkItem {
            data: decode_value(json.as_bytes()).unwrap(),
            payload: bytes::Bytes::new(),
        }
    }

    #[test]
    fn factories_validate() {
        assert!(MemorySourceFactory
            .create(&ConnectorEnv::default(), "", &Props::new())
            .is_err());
        assert!(MemorySourceFactory
            .create(&ConnectorEnv::default(), "a/#/b", &Props::new())
            .is_err());
        let e = MemorySourceFactory
            .create(
                &ConnectorEnv::default(),
                "a",
                &props(serde_json::json!({"bufferLength": "x"})),
            )
            .err()
            .unwrap();
        assert!(e.to_string().contains("bufferLength"), "{e}");
        assert!(MemorySinkFactory
            .create(&ConnectorEnv::default(), &Props::new())
            .is_err());
        assert!(MemorySinkFactory
            .create(
                &ConnectorEnv::default(),
                &props(serde_json::json!({"topic": "a/+"}))
            )
            .is_err());
        assert!(MemorySinkFactory
            .create(
                &ConnectorEnv::default(),
                &props(serde_json::json!({"topic": "a/{{.id}}", "sendSingle": true}))
            )
            .is_ok());
        // Updatable mode: both fields, or neither.
        for (p, says) in [
            (
                serde_json::json!({"topic": "t", "keyField": "id"}),
                "rowkindField",
            ),
            (
                serde_json::json!({"topic": "t", "rowkindField": "a"}),
                "keyField is required",
            ),
        ] {
            let e = MemorySinkFactory
                .create(&ConnectorEnv::default(), &props(p))
                .err()
                .unwrap();
            assert!(e.to_string().contains(says), "{e}");
        }
        assert!(MemorySinkFactory
            .create(
                &ConnectorEnv::default(),
                &props(serde_json::json!({"topic": "t", "rowkindField": "a", "keyField": "id"}))
            )
            .is_ok());
        assert_eq!(MemorySinkFactory.consumes(), Consumes::Rows);
        assert!(MemorySourceFactory.emits_rows());
    }

    #[tokio::test]
    async fn sink_to_source_through_a_wildcard() {
        let bus = MemoryBus::new();
        let cancel = CancellationToken::new();
        let (tx, mut rx) = mpsc::channel(16);
        let ctx = SourceContext::new("r1", cancel.clone(), tx);
        let mut src = MemorySource::with_bus("dev/+", 8, bus.clone());
        let task = tokio::spawn(async move { src.run(ctx).await });
        while bus.subscription_count() == 0 {
            tokio::task::yield_now().await;
        }
        let mut sink = MemorySink::with_bus(
            PropTemplate::parse("topic", "dev/{{.id}}").unwrap(),
            bus.clone(),
        );
        let sctx = SinkContext::new("r0", cancel.clone());
        sink.connect(&sctx).await.unwrap();
        // `{{.id}}` on a batch (an array of rows) fails as in eKuiper: that
        // item is reported, the others are published.
        let e = sink
            .collect(
                &sctx,
                &[
                    item(r#"{"id":"a","v":1}"#),
                    item(r#"[{"id":"x","v":9}]"#),
                    item(r#"{"id":"b","v":2}"#),
                    item(r#"{"id":"b","v":3}"#),
                ],
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ConnectorError::InvalidData(m) if m.contains("topic")),
            "{e}"
        );
        let mut got = Vec::new();
        while got.len() < 3 {
            match rx.recv().await.unwrap() {
                SourceMsg::Rows { rows, meta } => {
                    let topic = meta.unwrap().get("topic").cloned().unwrap();
                    for r in rows {
                        got.push((topic.clone(), r.get("v").cloned().unwrap()));
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(
            got,
            vec![
                (Value::str("dev/a"), Value::Int(1)),
                (Value::str("dev/b"), Value::Int(2)),
                (Value::str("dev/b"), Value::Int(3)),
            ]
        );
        let e = sink.collect(&sctx, &[item("5")]).await.unwrap_err();
        assert!(matches!(e, ConnectorError::InvalidData(_)));
        cancel.cancel();
        task.await.unwrap().unwrap();
        assert_eq!(bus.subscription_count(), 0);
    }
}
