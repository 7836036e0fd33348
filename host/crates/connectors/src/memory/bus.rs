//! The in-process pub/sub bus behind the `memory` source and sink.
//!
//! Subscribers register a topic filter (`+` one level, `#` the rest) and get a
//! bounded channel of row batches. Publishing awaits channel space, so a slow
//! subscriber slows its publishers down instead of losing rows. Publishers
//! cache the matching senders per topic and refresh them when the set of
//! subscriptions changes (tracked by a generation counter).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ahash::AHashMap;
use oort_core::{ConnectorEnv, Row};
use parking_lot::RwLock;
use tokio::sync::mpsc;

/// One published batch.
#[derive(Debug, Clone)]
pub struct BusMsg {
    pub topic: Arc<str>,
    pub rows: Vec<Row>,
    /// From an updatable sink (`rowkindField`): how each row (same index)
    /// changes a keyed table. Streams read the rows and ignore this.
    pub changes: Option<Arc<[Change]>>,
}

/// What an updatable memory sink's row does to a keyed table (eKuiper's
/// rowkinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Insert,
    Update,
    Upsert,
    Delete,
}

impl RowKind {
    /// `insert`, `update`, `upsert` or `delete`, as eKuiper spells them.
    pub fn parse(s: &str) -> Option<RowKind> {
        match s {
            "insert" => Some(RowKind::Insert),
            "update" => Some(RowKind::Update),
            "upsert" => Some(RowKind::Upsert),
            "delete" => Some(RowKind::Delete),
            _ => None,
        }
    }
}

/// One row's change: its kind and the value of the sink's `keyField`.
#[derive(Debug, Clone)]
pub struct Change {
    pub kind: RowKind,
    pub key: oort_core::Value,
}

/// A parsed subscription filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicFilter {
    text: String,
    levels: Option<Vec<Level>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    Exact(String),
    Plus,
    Hash,
}

impl TopicFilter {
    /// Parses and validates a filter (`#` only as the whole last level, `+`
    /// only as a whole level).
    pub fn parse(filter: &str) -> Result<TopicFilter, String> {
        if filter.is_empty() {
            return Err("topic must not be empty".into());
        }
        if !filter.contains(['+', '#']) {
            return Ok(TopicFilter {
                text: filter.to_string(),
                levels: None,
            });
        }
        let parts: Vec<&str> = filter.split('/').collect();
        let mut levels = Vec::with_capacity(parts.len());
        for (i, p) in parts.iter().enumerate() {
            let l = match *p {
                "#" if i + 1 == parts.len() => Level::Hash,
                "#" => return Err(format!("invalid topic {filter}: # must be the last level")),
                "+" => Level::Plus,
                s if s.contains(['+', '#']) => {
                    return Err(format!(
                        "invalid topic {filter}: wildcards must take a whole level"
                    ))
                }
                s => Level::Exact(s.to_string()),
            };
            levels.push(l);
        }
        Ok(TopicFilter {
            text: filter.to_string(),
            levels: Some(levels),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when `topic` (no wildcards) matches this filter.
    pub fn matches(&self, topic: &str) -> bool {
        let Some(levels) = &self.levels else {
            return self.text == topic;
        };
        let mut parts = topic.split('/');
        for l in levels {
            match l {
                Level::Hash => return true,
                Level::Plus => {
                    if parts.next().is_none() {
                        return false;
                    }
                }
                Level::Exact(e) => {
                    if parts.next() != Some(e.as_str()) {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }
}

struct SubEntry {
    id: u64,
    filter: TopicFilter,
    tx: mpsc::Sender<BusMsg>,
}

/// The bus. One per connector context: [`bus`].
pub struct MemoryBus {
    subs: RwLock<Vec<SubEntry>>,
    generation: AtomicU64,
    next_id: AtomicU64,
}

/// The bus shared by all memory sources and sinks of a connector context.
pub fn bus(env: &ConnectorEnv) -> Arc<MemoryBus> {
    env.pool::<MemoryBus>()
}

impl Default for MemoryBus {
    fn default() -> Self {
        MemoryBus {
            subs: RwLock::new(Vec::new()),
            generation: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
        }
    }
}

impl MemoryBus {
    pub fn new() -> Arc<MemoryBus> {
        Arc::new(MemoryBus::default())
    }

    /// Subscribes with a channel of `capacity` batches (at least 1).
    pub fn subscribe(
        self: &Arc<Self>,
        filter: &str,
        capacity: usize,
    ) -> Result<Subscription, String> {
        let filter = TopicFilter::parse(filter)?;
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.subs.write().push(SubEntry { id, filter, tx });
        self.generation.fetch_add(1, Ordering::Release);
        Ok(Subscription {
            bus: self.clone(),
            id,
            rx,
        })
    }

    fn unsubscribe(&self, id: u64) {
        self.subs.write().retain(|s| s.id != id);
        self.generation.fetch_add(1, Ordering::Release);
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn senders_for(&self, topic: &str) -> Vec<mpsc::Sender<BusMsg>> {
        self.subs
            .read()
            .iter()
            .filter(|s| s.filter.matches(topic))
            .map(|s| s.tx.clone())
            .collect()
    }

    /// Number of live subscriptions (for tests and status).
    pub fn subscription_count(&self) -> usize {
        self.subs.read().len()
    }

    /// Publishes one batch without a sender cache; returns how many
    /// subscribers got it. Prefer a [`Publisher`] on hot paths.
    pub async fn publish(self: &Arc<Self>, topic: &str, rows: Vec<Row>) -> usize {
        Publisher::new(self.clone()).publish(topic, rows).await
    }
}

/// A live subscription; dropping it unsubscribes.
pub struct Subscription {
    bus: Arc<MemoryBus>,
    id: u64,
    rx: mpsc::Receiver<BusMsg>,
}

impl Subscription {
    pub async fn recv(&mut self) -> Option<BusMsg> {
        self.rx.recv().await
    }

    pub fn try_recv(&mut self) -> Option<BusMsg> {
        self.rx.try_recv().ok()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.bus.unsubscribe(self.id);
    }
}

struct Route {
    generation: u64,
    topic: Arc<str>,
    senders: Vec<mpsc::Sender<BusMsg>>,
}

/// Publishes on the bus with a per-topic cache of matching subscribers.
pub struct Publisher {
    bus: Arc<MemoryBus>,
    routes: AHashMap<String, Route>,
}

/// Cached topics per publisher before the cache is reset (templated topics).
const MAX_ROUTES: usize = 1024;

impl Publisher {
    pub fn new(bus: Arc<MemoryBus>) -> Publisher {
        Publisher {
            bus,
            routes: AHashMap::new(),
        }
    }

    /// Sends `rows` to every subscriber whose filter matches `topic`, waiting
    /// for channel space. Returns how many subscribers got the batch.
    pub async fn publish(&mut self, topic: &str, rows: Vec<Row>) -> usize {
        self.publish_changes(topic, rows, None).await
    }

    /// [`Self::publish`] with the rows' [`Change`]s (an updatable sink).
    pub async fn publish_changes(
        &mut self,
        topic: &str,
        rows: Vec<Row>,
        changes: Option<Arc<[Change]>>,
    ) -> usize {
        let generation = self.bus.generation();
        let fresh = self
            .routes
            .get(topic)
            .is_some_and(|r| r.generation == generation);
        if !fresh {
            if self.routes.len() >= MAX_ROUTES {
                self.routes.clear();
            }
            let senders = self.bus.senders_for(topic);
            self.routes.insert(
                topic.to_string(),
                Route {
                    generation,
                    topic: Arc::from(topic),
                    senders,
                },
            );
        }
        let Some(route) = self.routes.get(topic) else {
            return 0;
        };
        let n = route.senders.len();
        if n == 0 {
            return 0;
        }
        let mut delivered = 0;
        let mut rows = Some(rows);
        for (i, tx) in route.senders.iter().enumerate() {
            let batch = if i + 1 == n {
                rows.take().unwrap_or_default()
            } else {
                rows.clone().unwrap_or_default()
            };
            let msg = BusMsg {
                topic: route.topic.clone(),
                rows: batch,
                changes: changes.clone(),
            };
            if tx.send(msg).await.is_ok() {
                delivered += 1;
            }
        }
        delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oort_core::{Schema, Value};

    fn rows(vals: &[i64]) -> Vec<Row> {
        let s = Arc::new(Schema::from_strs(&["v"]));
        vals.iter()
            .map(|v| Row::new(s.clone(), vec![Value::Int(*v)]))
            .collect()
    }

    #[test]
    fn filters_match_like_mqtt() {
        let f = TopicFilter::parse("a/+/c").unwrap();
        assert!(f.matches("a/b/c"));
        assert!(!f.matches("a/b/c/d"));
        assert!(!f.matches("a/b"));
        let f = TopicFilter::parse("a/#").unwrap();
        assert!(f.matches("a"));
        assert!(f.matches("a/b/c"));
        assert!(!f.matches("b/a"));
        let f = TopicFilter::parse("exact").unwrap();
        assert!(f.matches("exact"));
        assert!(!f.matches("exact/x"));
        assert!(TopicFilter::parse("a/#/b").is_err());
        assert!(TopicFilter::parse("a/b+").is_err());
        assert!(TopicFilter::parse("").is_err());
    }

    #[tokio::test]
    async fn publish_reaches_matching_subscribers_and_tracks_changes() {
        let bus = MemoryBus::new();
        let mut p = Publisher::new(bus.clone());
        assert_eq!(p.publish("t/x", rows(&[1])).await, 0);
        let mut a = bus.subscribe("t/+", 4).unwrap();
        let mut b = bus.subscribe("t/x", 4).unwrap();
        let mut c = bus.subscribe("other", 4).unwrap();
        assert_eq!(p.publish("t/x", rows(&[1, 2])).await, 2);
        let m = a.recv().await.unwrap();
        assert_eq!(&*m.topic, "t/x");
        assert_eq!(m.rows.len(), 2);
        assert_eq!(
            b.recv().await.unwrap().rows[1].get("v"),
            Some(&Value::Int(2))
        );
        assert!(c.try_recv().is_none());
        drop(b);
        assert_eq!(bus.subscription_count(), 2);
        assert_eq!(p.publish("t/x", rows(&[3])).await, 1);
        assert_eq!(
            a.recv().await.unwrap().rows[0].get("v"),
            Some(&Value::Int(3))
        );
    }

    #[tokio::test]
    async fn full_subscriber_applies_backpressure_without_loss() {
        let bus = MemoryBus::new();
        let mut sub = bus.subscribe("bp", 1).unwrap();
        let pbus = bus.clone();
        let producer = tokio::spawn(async move {
            let mut p = Publisher::new(pbus);
            for i in 0..100 {
                p.publish("bp", rows(&[i])).await;
            }
        });
        let mut got = Vec::new();
        while got.len() < 100 {
            let m = sub.recv().await.unwrap();
            got.push(m.rows[0].get("v").and_then(Value::as_i64).unwrap());
        }
        producer.await.unwrap();
        assert_eq!(got, (0..100).collect::<Vec<i64>>());
    }
}
