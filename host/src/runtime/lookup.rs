//! Lookup tables at run time. A rule's lookup join asks its [`LookupNode`]
//! for the rows of one key; the node answers from its cache (eKuiper's
//! `lookup` conf: `cache`, `cacheTtl`, `cacheMissingKey`, and Oort's bound
//! `cacheSize`) or asks the connector. The join runs inside the query, which
//! is synchronous, so a connector call is waited for on the rule's task
//! (`block_in_place`: the runtime's other tasks move to other threads) and
//! bounded by [`LOOKUP_TIMEOUT`].

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lru::LruCache;
use oort_connectors::util::{de, parse_config};
use oort_core::key::Key;
use oort_core::schema::{closest, unknown_key_message};
use oort_core::{Clock, ConnectorError, Event, LookupSource, Props, SharedEvent, Value};
use oort_sql::engine::LookupRows;
use parking_lot::Mutex;
use serde::Deserialize;

/// Longest wait for one lookup (the rule's events wait meanwhile).
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Keys a cache holds unless `cacheSize` says otherwise.
pub const DEFAULT_CACHE_SIZE: usize = 100_000;
/// Largest `cacheSize`.
pub const MAX_CACHE_SIZE: usize = 10_000_000;

/// The keys of a table's `lookup` property.
const KNOWN: [&str; 4] = ["cache", "cacheTtl", "cacheMissingKey", "cacheSize"];

/// The `lookup` property of a lookup table's conf key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LookupConf {
    #[serde(default, deserialize_with = "de::bool_lenient")]
    pub cache: bool,
    /// Zero: entries do not expire.
    #[serde(rename = "cachettl", default, deserialize_with = "de::duration")]
    pub cache_ttl: Duration,
    /// Also cache "no rows" answers.
    #[serde(
        rename = "cachemissingkey",
        default,
        deserialize_with = "de::bool_lenient"
    )]
    pub cache_missing_key: bool,
    #[serde(
        rename = "cachesize",
        default = "default_cache_size",
        deserialize_with = "de::u64_lenient"
    )]
    pub cache_size: u64,
}

fn default_cache_size() -> u64 {
    DEFAULT_CACHE_SIZE as u64
}

impl Default for LookupConf {
    fn default() -> Self {
        LookupConf {
            cache: false,
            cache_ttl: Duration::ZERO,
            cache_missing_key: false,
            cache_size: default_cache_size(),
        }
    }
}

impl LookupConf {
    /// Takes the `lookup` property out of a table's props (the connector
    /// does not see it) and reads it; returns it with the names of unknown
    /// keys in it, each with a warning text.
    pub fn take(props: &mut Props) -> Result<(LookupConf, Vec<String>), ConnectorError> {
        let key = props
            .keys()
            .find(|k| k.eq_ignore_ascii_case("lookup"))
            .cloned();
        let Some(v) = key.and_then(|k| props.remove(&k)) else {
            return Ok((LookupConf::default(), Vec::new()));
        };
        let obj = match v {
            serde_json::Value::Object(o) => o,
            serde_json::Value::Null => return Ok((LookupConf::default(), Vec::new())),
            other => {
                return Err(ConnectorError::Config(format!(
                    "invalid property lookup: expected an object with {}, got {other}",
                    KNOWN.join(", ")
                )))
            }
        };
        let conf: LookupConf = parse_config("lookup", &obj)?;
        if conf.cache_size == 0 || conf.cache_size > MAX_CACHE_SIZE as u64 {
            return Err(ConnectorError::Config(format!(
                "lookup: invalid property cacheSize {}: expected 1 to {MAX_CACHE_SIZE}",
                conf.cache_size
            )));
        }
        let warnings = obj
            .keys()
            .filter(|k| !KNOWN.iter().any(|n| n.eq_ignore_ascii_case(k)))
            .map(|k| unknown_key_message("lookup property", k, closest(k, &KNOWN)))
            .collect();
        Ok((conf, warnings))
    }
}

/// Counters of one lookup node (shown in the rule status).
#[derive(Debug, Default)]
pub struct LookupStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub errors: AtomicU64,
}

#[derive(Debug)]
struct Entry {
    rows: Arc<[SharedEvent]>,
    /// Unix ms (the context's clock).
    expires: Option<i64>,
}

/// One lookup table of one rule run: the connector and the cache.
pub struct LookupNode {
    pub table: String,
    source: Arc<dyn LookupSource>,
    conf: LookupConf,
    cache: Option<Mutex<LruCache<Key, Entry>>>,
    clock: Arc<dyn Clock>,
    pub stats: Arc<LookupStats>,
}

impl std::fmt::Debug for LookupNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupNode")
            .field("table", &self.table)
            .field("conf", &self.conf)
            .finish_non_exhaustive()
    }
}

impl LookupNode {
    /// Rows the table's connector could not keep (see
    /// [`LookupSource::dropped`]).
    pub fn dropped(&self) -> u64 {
        self.source.dropped()
    }

    pub fn new(
        table: &str,
        source: Arc<dyn LookupSource>,
        conf: LookupConf,
        clock: Arc<dyn Clock>,
    ) -> LookupNode {
        let cache = conf.cache.then(|| {
            let size = usize::try_from(conf.cache_size)
                .ok()
                .and_then(NonZeroUsize::new)
                .unwrap_or(NonZeroUsize::MIN);
            Mutex::new(LruCache::new(size))
        });
        LookupNode {
            table: table.to_string(),
            source,
            conf,
            cache,
            clock,
            stats: Arc::default(),
        }
    }

    fn cached(&self, key: &Key) -> Option<Arc<[SharedEvent]>> {
        let mut c = self.cache.as_ref()?.lock();
        let e = c.get(key)?;
        if e.expires.is_some_and(|x| self.clock.now_ms() >= x) {
            c.pop(key);
            return None;
        }
        Some(e.rows.clone())
    }

    fn remember(&self, key: Key, rows: &Arc<[SharedEvent]>) {
        let Some(c) = &self.cache else { return };
        if rows.is_empty() && !self.conf.cache_missing_key {
            return;
        }
        let ttl = i64::try_from(self.conf.cache_ttl.as_millis()).unwrap_or(i64::MAX);
        let expires = (ttl > 0).then(|| self.clock.now_ms().saturating_add(ttl));
        c.lock().put(
            key,
            Entry {
                rows: rows.clone(),
                expires,
            },
        );
    }

    /// Asks the connector, waiting on this thread.
    fn fetch(&self, keys: &[Arc<str>], values: &[Value]) -> Result<Arc<[SharedEvent]>, String> {
        let handle = tokio::runtime::Handle::try_current()
            .ok()
            .filter(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
            .ok_or_else(|| "lookup tables need the multi-threaded runtime".to_string())?;
        let fut = tokio::time::timeout(LOOKUP_TIMEOUT, self.source.lookup(keys, values));
        let rows = match tokio::task::block_in_place(|| handle.block_on(fut)) {
            Ok(Ok(rows)) => rows,
            Ok(Err(e)) => return Err(format!("lookup table {}: {e}", self.table)),
            Err(_) => {
                return Err(format!(
                    "lookup table {}: no answer within {} s",
                    self.table,
                    LOOKUP_TIMEOUT.as_secs()
                ))
            }
        };
        let ts = oort_core::now_ms();
        Ok(rows
            .into_iter()
            .map(|row| {
                Arc::new(Event {
                    row,
                    meta: None,
                    ts,
                    seq: 0,
                })
            })
            .collect())
    }
}

impl LookupRows for LookupNode {
    fn lookup(&self, keys: &[Arc<str>], values: &[Value]) -> Result<Arc<[SharedEvent]>, String> {
        let key = self.cache.as_ref().map(|_| Key::lookup(values));
        if let Some(rows) = key.as_ref().and_then(|k| self.cached(k)) {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(rows);
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        match self.fetch(keys, values) {
            Ok(rows) => {
                if let Some(k) = key {
                    self.remember(k, &rows);
                }
                Ok(rows)
            }
            Err(e) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use oort_core::{Row, Schema};

    /// A table of `id -> {id, n}` rows counting the connector calls.
    #[derive(Default)]
    struct Counting {
        calls: AtomicU64,
    }

    #[async_trait]
    impl LookupSource for Counting {
        async fn lookup(
            &self,
            _keys: &[Arc<str>],
            values: &[Value],
        ) -> Result<Vec<Row>, ConnectorError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match values.first() {
                Some(Value::Int(i)) if *i >= 0 => Ok(vec![Row::new(
                    Arc::new(Schema::from_strs(&["id", "n"])),
                    vec![Value::Int(*i), Value::Int(i * 10)],
                )]),
                Some(Value::Int(_)) => Ok(Vec::new()),
                _ => Err(ConnectorError::unavailable("down")),
            }
        }
    }

    fn props(v: serde_json::Value) -> Props {
        v.as_object().cloned().unwrap()
    }

    /// A clock the test moves.
    #[derive(Default)]
    struct Manual(std::sync::atomic::AtomicI64);

    impl Clock for Manual {
        fn now_ms(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn node_with(conf: serde_json::Value, clock: Arc<dyn Clock>) -> (LookupNode, Arc<Counting>) {
        let mut p = props(serde_json::json!({ "lookup": conf }));
        let (conf, _) = LookupConf::take(&mut p).unwrap();
        let src = Arc::new(Counting::default());
        (LookupNode::new("t", src.clone(), conf, clock), src)
    }

    fn node(conf: serde_json::Value) -> (LookupNode, Arc<Counting>) {
        node_with(conf, Arc::new(Manual::default()))
    }

    fn key() -> [Arc<str>; 1] {
        [Arc::from("id")]
    }

    #[test]
    fn conf_is_read_leniently_and_refuses_bad_values() {
        let mut p = props(serde_json::json!({
            "addr": "x",
            "LOOKUP": {"Cache": "true", "cacheTtl": "2s", "cacheMissingKey": true, "cachSize": 3}
        }));
        let (c, warnings) = LookupConf::take(&mut p).unwrap();
        assert!(!p.contains_key("LOOKUP"), "the connector does not see it");
        assert!(c.cache && c.cache_missing_key);
        assert_eq!(c.cache_ttl, Duration::from_secs(2));
        assert_eq!(c.cache_size, DEFAULT_CACHE_SIZE as u64);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("cacheSize"), "{warnings:?}");
        // A number is milliseconds, as in eKuiper.
        let mut p = props(serde_json::json!({"lookup": {"cacheTtl": 600}}));
        assert_eq!(
            LookupConf::take(&mut p).unwrap().0.cache_ttl,
            Duration::from_millis(600)
        );
        for bad in [
            serde_json::json!({"lookup": {"cache": "maybe"}}),
            serde_json::json!({"lookup": {"cacheTtl": "soon"}}),
            serde_json::json!({"lookup": {"cacheSize": 0}}),
            serde_json::json!({"lookup": true}),
        ] {
            let e = LookupConf::take(&mut props(bad.clone())).unwrap_err();
            assert!(e.to_string().contains("lookup"), "{bad}: {e}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_cache_every_lookup_asks_the_connector() {
        let (n, src) = node(serde_json::json!({}));
        for _ in 0..3 {
            let rows = n.lookup(&key(), &[Value::Int(2)]).unwrap();
            assert_eq!(rows[0].row.get("n"), Some(&Value::Int(20)));
        }
        assert_eq!(src.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cache_hits_misses_and_missing_keys() {
        let (n, src) = node(serde_json::json!({"cache": true}));
        n.lookup(&key(), &[Value::Int(1)]).unwrap();
        // 1.0 is the same key as 1.
        n.lookup(&key(), &[Value::Float(1.0)]).unwrap();
        assert_eq!(src.calls.load(Ordering::SeqCst), 1);
        // A miss is not cached unless cacheMissingKey.
        assert!(n.lookup(&key(), &[Value::Int(-1)]).unwrap().is_empty());
        assert!(n.lookup(&key(), &[Value::Int(-1)]).unwrap().is_empty());
        assert_eq!(src.calls.load(Ordering::SeqCst), 3);
        let (m, src) = node(serde_json::json!({"cache": true, "cacheMissingKey": true}));
        m.lookup(&key(), &[Value::Int(-1)]).unwrap();
        m.lookup(&key(), &[Value::Int(-1)]).unwrap();
        assert_eq!(src.calls.load(Ordering::SeqCst), 1);
        // Errors are not cached and are counted.
        assert!(m.lookup(&key(), &[Value::str("x")]).is_err());
        assert!(m.lookup(&key(), &[Value::str("x")]).is_err());
        assert_eq!(src.calls.load(Ordering::SeqCst), 3);
        assert_eq!(m.stats.errors.load(Ordering::SeqCst), 2);
        assert_eq!(m.stats.hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cache_is_bounded_least_recently_used_first() {
        let (n, src) = node(serde_json::json!({"cache": true, "cacheSize": 2}));
        for i in [1, 2, 1, 3] {
            n.lookup(&key(), &[Value::Int(i)]).unwrap();
        }
        // 2 was the least recently used when 3 came: 1 is still cached.
        n.lookup(&key(), &[Value::Int(1)]).unwrap();
        assert_eq!(src.calls.load(Ordering::SeqCst), 3);
        n.lookup(&key(), &[Value::Int(2)]).unwrap();
        assert_eq!(src.calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn entries_expire_after_the_ttl() {
        let clock = Arc::new(Manual::default());
        let (n, src) = node_with(
            serde_json::json!({"cache": true, "cacheTtl": "1s"}),
            clock.clone(),
        );
        n.lookup(&key(), &[Value::Int(1)]).unwrap();
        clock.0.store(999, Ordering::SeqCst);
        n.lookup(&key(), &[Value::Int(1)]).unwrap();
        assert_eq!(src.calls.load(Ordering::SeqCst), 1);
        clock.0.store(1000, Ordering::SeqCst);
        n.lookup(&key(), &[Value::Int(1)]).unwrap();
        assert_eq!(src.calls.load(Ordering::SeqCst), 2);
        // Without a TTL an entry stays.
        let (m, src) = node_with(serde_json::json!({"cache": true}), clock.clone());
        m.lookup(&key(), &[Value::Int(1)]).unwrap();
        clock.0.store(i64::MAX / 2, Ordering::SeqCst);
        m.lookup(&key(), &[Value::Int(1)]).unwrap();
        assert_eq!(src.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_current_thread_runtime_is_refused_not_deadlocked() {
        let (n, _) = node(serde_json::json!({}));
        let e = n.lookup(&key(), &[Value::Int(1)]).unwrap_err();
        assert!(e.contains("multi-threaded"), "{e}");
    }
}
