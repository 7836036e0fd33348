//! The application layer used by the REST server and the CLI: streams,
//! tables and rules (definitions in the store, runtime state in memory),
//! rule lifecycle, boot-time restore.

#[cfg(test)]
mod launch_tests;
pub mod rule_def;
pub mod ruleset;
mod streams;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oort_core::codec::DecodeOptions;
use oort_core::{Props, Registry};
use oort_sql::ast::{Select, StreamDef, StreamKind};
use oort_sql::engine::{self, Catalog, QueryOptions, QueryPlan};
use parking_lot::{Mutex, RwLock};
use serde_json::{json, Map, Value as Json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::confkeys::ConfKeys;
use crate::error::{code, AppError, AppResult};
use crate::runtime::hub::{self, Hub, HubSpec, RuleQueue, Subscriber};
use crate::runtime::metrics::NodeMetrics;
use crate::runtime::rule::{self as rt, Input, RuleStatus, RunningRule};
use crate::runtime::sink::{self, SinkCommon, SinkProgress, SinkSpec};
use crate::store::{ns, Op, Store};
use rule_def::RuleDef;

pub use streams::{StmtResult, StreamEntry};

/// Connector types whose one instance can serve every rule on a stream.
/// Bounded sources (file, simulator) replay per rule unless `SHARED="true"`.
/// Distinguishes successive runs of the same rule in hub subscriptions.
static RUN_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn shareable_by_default(typ: &str) -> bool {
    !matches!(typ, "file" | "simulator")
}

struct RuleEntry {
    /// The rule JSON as posted (returned verbatim by GET /rules/{id}).
    json: String,
    def: RuleDef,
    triggered: bool,
    /// Streams and tables named in FROM/JOIN.
    sources: Vec<String>,
    status: Arc<RuleStatus>,
    running: Option<Arc<RunningRule>>,
    /// Why a stored rule could not be loaded at boot (it is listed, failed,
    /// and cannot start until it is replaced).
    broken: Option<String>,
}

pub(crate) struct Inner {
    pub data_dir: PathBuf,
    pub store: Store,
    pub conf: ConfKeys,
    pub registry: Registry,
    streams: RwLock<BTreeMap<String, StreamEntry>>,
    tables: RwLock<BTreeMap<String, StreamEntry>>,
    rules: tokio::sync::Mutex<BTreeMap<String, RuleEntry>>,
    hubs: Mutex<HashMap<String, Arc<Hub>>>,
}

/// Cheap to clone handle to the engine state.
#[derive(Clone)]
pub struct Manager {
    inner: Arc<Inner>,
}

impl Catalog for Inner {
    fn lookup(&self, name: &str) -> Option<StreamDef> {
        if let Some(s) = self.streams.read().get(name) {
            return Some(s.def.clone());
        }
        self.tables.read().get(name).map(|s| s.def.clone())
    }
}

/// Everything built for a rule before it runs (also used by validate).
struct Prepared {
    plan: QueryPlan,
    sources: Vec<String>,
    sinks: Vec<(String, Props, SinkCommon)>,
}

impl Manager {
    pub fn open(data_dir: &Path, registry: Registry) -> anyhow::Result<Manager> {
        let store = Store::open(data_dir)?;
        let conf = ConfKeys::init(data_dir, store.clone())?;
        let inner = Arc::new(Inner {
            data_dir: data_dir.to_path_buf(),
            store,
            conf,
            registry,
            streams: RwLock::new(BTreeMap::new()),
            tables: RwLock::new(BTreeMap::new()),
            rules: tokio::sync::Mutex::new(BTreeMap::new()),
            hubs: Mutex::new(HashMap::new()),
        });
        Ok(Manager { inner })
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub fn conf(&self) -> &ConfKeys {
        &self.inner.conf
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// Loads streams, tables and rules from the store and starts the rules
    /// that were running. A rule that cannot start is kept, marked failed.
    pub async fn restore(&self) -> AppResult<()> {
        for (kind, nsname) in [
            (StreamKind::Stream, ns::STREAMS),
            (StreamKind::Table, ns::TABLES),
        ] {
            for (name, sql) in self.inner.store.list(nsname)? {
                match streams::parse_def(&sql) {
                    Ok(def) => {
                        let map = match kind {
                            StreamKind::Stream => &self.inner.streams,
                            StreamKind::Table => &self.inner.tables,
                        };
                        map.write().insert(name, StreamEntry { def, sql });
                    }
                    Err(e) => {
                        tracing::error!(%name, error = %e, "stored {kind} does not parse; skipped")
                    }
                }
            }
        }
        let stored = self.inner.store.list(ns::RULES)?;
        let states: HashMap<String, String> =
            self.inner.store.list(ns::RULE_STATE)?.into_iter().collect();
        let mut to_start = Vec::new();
        {
            let mut rules = self.inner.rules.lock().await;
            for (id, json) in stored {
                let def = match RuleDef::parse(&json, Some(&id)) {
                    Ok(d) => d,
                    Err(e) => {
                        // Kept and shown as failed, so the user sees why.
                        tracing::error!(rule = %id, error = %e, "stored rule is invalid; not started");
                        let status = Arc::new(RuleStatus::default());
                        status.set_stopped(Some(e.to_string()));
                        rules.insert(
                            id.clone(),
                            RuleEntry {
                                json,
                                def: RuleDef {
                                    id,
                                    ..RuleDef::default()
                                },
                                triggered: false,
                                sources: Vec::new(),
                                status,
                                running: None,
                                broken: Some(e.to_string()),
                            },
                        );
                        continue;
                    }
                };
                let triggered = states
                    .get(&id)
                    .map(|s| s == "true")
                    .unwrap_or_else(|| def.triggered());
                let sources = rule_sources(&def);
                if triggered {
                    to_start.push(id.clone());
                }
                rules.insert(
                    id,
                    RuleEntry {
                        json,
                        def,
                        triggered,
                        sources,
                        status: Arc::new(RuleStatus::default()),
                        running: None,
                        broken: None,
                    },
                );
            }
        }
        // Each start is guarded (`launch_guarded`): a rule that fails, even
        // by a panic, is marked failed with its message and the others start.
        for id in to_start {
            if let Err(e) = self.start_rule(&id).await {
                tracing::warn!(rule = %id, error = %e, "rule could not restart at boot");
            }
        }
        Ok(())
    }

    /// Drops the in-memory state and loads it again from the store (after a
    /// data import was rolled back, so memory and store agree again).
    pub(crate) async fn reload(&self) -> AppResult<()> {
        self.shutdown().await;
        self.inner.rules.lock().await.clear();
        self.inner.streams.write().clear();
        self.inner.tables.write().clear();
        self.restore().await
    }

    /// Stops every rule (server shutdown); definitions and `triggered` stay.
    pub async fn shutdown(&self) {
        let ids: Vec<String> = self.inner.rules.lock().await.keys().cloned().collect();
        for id in ids {
            self.halt(&id, false).await;
        }
    }

    // ---------- rules ----------

    fn prepare(&self, def: &RuleDef) -> AppResult<Prepared> {
        self.prepare_with(def, true)
    }

    /// [`Manager::prepare`]; `create_sinks: false` skips the trial creation
    /// of each sink, for a caller that creates them right after with the same
    /// error (a plugin sink's `validate` then runs once, not twice).
    fn prepare_with(&self, def: &RuleDef, create_sinks: bool) -> AppResult<Prepared> {
        let sql = def.sql.as_deref().unwrap_or_default();
        let select: Select = oort_sql::parser::parse_select(sql)
            .map_err(|e| AppError::from(e).context("invalid rule json"))?;
        let opts = def.options().map_err(|e| AppError::bad(e.to_string()))?;
        let qopts = QueryOptions {
            send_nil_field: opts.send_nil_field,
            send_error: opts.send_error,
            is_event_time: opts.is_event_time,
            late_tolerance_ms: opts.late_tolerance.as_millis() as i64,
            rule_id: def.id.clone(),
        };
        let plan = engine::compile(&select, self.inner.as_ref(), &qopts)?;
        let sources: Vec<String> = plan.sources().iter().map(|s| s.name.clone()).collect();
        // Validate each source's connector and props without IO.
        for name in &sources {
            let entry = self
                .stream_entry(name)
                .ok_or_else(|| AppError::bad(format!("stream {name} not found")))?;
            let spec = self.hub_spec(name, &entry)?;
            spec.factory
                .create(&spec.datasource, &spec.props)
                .map_err(|e| AppError::bad(format!("stream {name}: {e}")))?;
        }
        let mut sinks = Vec::new();
        for (i, a) in def
            .actions()
            .map_err(|e| AppError::bad(e.to_string()))?
            .into_iter()
            .enumerate()
        {
            let factory = self.inner.registry.sink(&a.kind).ok_or_else(|| {
                AppError::bad(format!(
                    "sink type {} not found; available: {}",
                    a.kind,
                    self.inner.registry.sink_kinds().join(", ")
                ))
            })?;
            let mut props = crate::connections::resolve_sink(&self.inner.conf, &a.kind, &a.props)?;
            props.insert(
                "__data_dir".into(),
                Json::String(self.inner.data_dir.display().to_string()),
            );
            let delimited = props
                .get("format")
                .and_then(Json::as_str)
                .is_some_and(|f| f.eq_ignore_ascii_case("delimited"));
            if delimited && props.get("delimiter").and_then(Json::as_str) == Some("") {
                return Err(AppError::bad(format!(
                    "action {i} ({}): delimiter must not be empty for format delimited",
                    a.kind
                )));
            }
            let mut common = SinkCommon::from_props(&props)
                .map_err(|e| AppError::bad(format!("action {} ({}): {e}", i, a.kind)))?;
            if !sink::config::has_key(&props, "bufferLength") {
                common.buffer_length =
                    (opts.buffer_length as u64).clamp(1, sink::config::MAX_BUFFER_LENGTH);
            }
            sink::prepare(&def.id, &a.kind, &props, &common, factory.consumes())
                .map_err(|e| AppError::bad(format!("action {} ({}): {e}", i, a.kind)))?;
            if !common.resend_destination.trim().is_empty() && !factory.resend_destination() {
                return Err(AppError::bad(format!(
                    "action {i} ({}): resendDestination is not supported by the {} sink",
                    a.kind, a.kind
                )));
            }
            if create_sinks {
                factory
                    .create(&props)
                    .map_err(|e| AppError::bad(format!("action {} ({}): {e}", i, a.kind)))?;
            }
            sinks.push((a.kind, props, common));
        }
        Ok(Prepared {
            plan,
            sources,
            sinks,
        })
    }

    fn stream_entry(&self, name: &str) -> Option<StreamEntry> {
        if let Some(s) = self.inner.streams.read().get(name) {
            return Some(s.clone());
        }
        self.inner.tables.read().get(name).cloned()
    }

    fn hub_spec(&self, name: &str, entry: &StreamEntry) -> AppResult<HubSpec> {
        let o = &entry.def.options;
        let typ = streams::source_type(&entry.def);
        let factory = self.inner.registry.source(&typ).ok_or_else(|| {
            AppError::bad(format!(
                "source type {typ} not found for stream {name}; available: {}",
                self.inner.registry.source_kinds().join(", ")
            ))
        })?;
        let mut props = crate::connections::resolve_source(
            &self.inner.conf,
            &typ,
            o.conf_key.as_deref(),
            o.extra.as_deref(),
        )
        .map_err(|e| AppError::bad(format!("stream {name}: {e}")))?;
        let format = o.format.clone().unwrap_or_else(|| "json".into());
        props.insert("format".into(), Json::String(format.clone()));
        if let Some(d) = &o.delimiter {
            props.insert("delimiter".into(), Json::String(d.clone()));
        }
        if let Some(k) = &o.key {
            props.insert("key".into(), Json::String(k.clone()));
        }
        props.insert(
            "__data_dir".into(),
            Json::String(self.inner.data_dir.display().to_string()),
        );
        Ok(HubSpec {
            name: name.to_string(),
            factory,
            datasource: o.datasource.clone().unwrap_or_default(),
            props,
            format,
            decode: DecodeOptions {
                delimiter: o.delimiter.clone(),
                columns: entry.def.columns.iter().map(|c| c.name.clone()).collect(),
            },
            checkpoint: None,
        })
    }

    /// Gets (or starts) the hub of a stream for one rule run; returns it and its key.
    fn hub_for(&self, run_key: &str, name: &str) -> AppResult<(String, Arc<Hub>)> {
        let entry = self
            .stream_entry(name)
            .ok_or_else(|| AppError::bad(format!("stream {name} not found")))?;
        let typ = streams::source_type(&entry.def);
        let shared = entry.def.options.shared || shareable_by_default(&typ);
        let key = if shared {
            name.to_string()
        } else {
            format!("{name}#{run_key}")
        };
        if let Some(h) = self.inner.hubs.lock().get(&key) {
            return Ok((key, h.clone()));
        }
        // Starting a hub creates its source, which may call into a plugin
        // (`validate`): not under the hubs lock.
        let mut spec = self.hub_spec(name, &entry)?;
        if shared {
            spec.checkpoint = Some(self.checkpoint_spec(name));
        }
        let h = hub::start(spec).map_err(|e| AppError::bad(format!("stream {name}: {e}")))?;
        let mut hubs = self.inner.hubs.lock();
        if let Some(other) = hubs.get(&key) {
            // Another run started the same shared hub meanwhile: use that one.
            h.stop();
            return Ok((key, other.clone()));
        }
        hubs.insert(key.clone(), h.clone());
        Ok((key, h))
    }

    /// Offsets of a shared hub: stored by stream name, read back at start.
    fn checkpoint_spec(&self, name: &str) -> hub::CheckpointSpec {
        let resume = match self.inner.store.get(ns::CHECKPOINTS, name) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(stream = %name, error = %e, "cannot read the stored offset; starting afresh");
                None
            }
        };
        let weak = Arc::downgrade(&self.inner);
        let persist: hub::PersistOffset = Arc::new(move |key: &str, offset: &str| {
            if let Some(inner) = weak.upgrade() {
                if let Err(e) = inner.store.put_deferred(ns::CHECKPOINTS, key, offset) {
                    tracing::warn!(stream = %key, error = %e, "cannot store the committed offset");
                }
            }
        });
        hub::CheckpointSpec {
            key: name.to_string(),
            resume,
            persist,
        }
    }

    /// Unsubscribes one rule run from its hubs; stops hubs nobody uses any more.
    fn release_hubs(inner: &Inner, run_key: &str, hub_keys: &[String]) {
        let mut hubs = inner.hubs.lock();
        for key in hub_keys {
            if let Some(h) = hubs.get(key) {
                if h.unsubscribe(run_key) {
                    h.stop();
                    hubs.remove(key);
                }
            }
        }
    }

    /// Validates a rule JSON without creating it (`POST /rules/validate`).
    pub fn validate_rule(&self, body: &str) -> AppResult<Json> {
        let def = RuleDef::parse(body, None).map_err(|e| AppError::bad(e.to_string()))?;
        let p = self.prepare(&def)?;
        Ok(json!({"sources": p.sources, "valid": true}))
    }

    pub async fn create_rule(&self, body: &str) -> AppResult<String> {
        let def = RuleDef::parse(body, None).map_err(|e| AppError::bad(e.to_string()))?;
        let id = def.id.clone();
        {
            let rules = self.inner.rules.lock().await;
            if rules.contains_key(&id) {
                return Err(AppError::bad(format!("rule {id} already exists")));
            }
        }
        // A triggered rule is prepared by its launch, before it is stored.
        if !def.triggered() {
            self.prepare(&def)?;
        }
        self.inner.store.check_writable()?;
        self.put_rule(def, body.to_string()).await?;
        Ok(id)
    }

    /// Upsert (`PUT /rules/{id}`): on failure the old rule keeps running.
    pub async fn update_rule(&self, id: &str, body: &str) -> AppResult<()> {
        let def = RuleDef::parse(body, Some(id)).map_err(|e| AppError::bad(e.to_string()))?;
        {
            let rules = self.inner.rules.lock().await;
            if let Some(old) = rules.get(id) {
                check_version(old.def.version.as_deref(), def.version.as_deref(), id)?;
            }
        }
        self.prepare(&def)?;
        self.inner.store.check_writable()?;
        let was_running = self
            .inner
            .rules
            .lock()
            .await
            .get(id)
            .is_some_and(|r| r.running.is_some());
        self.halt(id, false).await;
        if let Err(e) = self.put_rule(def, body.to_string()).await {
            // The new definition was not stored: the old one runs again.
            if was_running {
                if let Err(e2) = self.start_rule(id).await {
                    tracing::warn!(rule = %id, error = %e2, "the previous definition did not restart");
                }
            }
            return Err(e);
        }
        Ok(())
    }

    /// Stores a validated rule, started first when `triggered`: a rule that
    /// cannot start is refused and nothing is stored, so nothing stored fails
    /// at the next boot for a reason known now.
    async fn put_rule(&self, def: RuleDef, json: String) -> AppResult<()> {
        let id = def.id.clone();
        let triggered = def.triggered();
        let status = {
            let rules = self.inner.rules.lock().await;
            rules.get(&id).map(|r| r.status.clone()).unwrap_or_default()
        };
        let running = if triggered {
            Some(self.launch_guarded(&def, status.clone())?)
        } else {
            None
        };
        let stored = self.inner.store.apply(&[
            Op::Put {
                ns: ns::RULES.into(),
                key: id.clone(),
                value: json.clone(),
            },
            Op::Put {
                ns: ns::RULE_STATE.into(),
                key: id.clone(),
                value: triggered.to_string(),
            },
        ]);
        if let Err(e) = stored {
            if let Some(r) = &running {
                r.cancel.cancel();
                status.set_stopped(Some(e.to_string()));
            }
            return Err(e.into());
        }
        let sources = rule_sources(&def);
        let mut rules = self.inner.rules.lock().await;
        let old = rules.insert(
            id.clone(),
            RuleEntry {
                json,
                def,
                triggered,
                sources,
                status,
                running,
                broken: None,
            },
        );
        // A concurrent create of the same id lost the race: stop its run.
        if let Some(r) = old.and_then(|o| o.running) {
            r.cancel.cancel();
        }
        Ok(())
    }

    pub async fn delete_rule(&self, id: &str) -> AppResult<()> {
        if !self.inner.rules.lock().await.contains_key(id) {
            return Err(AppError::bad(format!("Rule {id} is not found.")));
        }
        self.inner.store.check_writable()?;
        self.halt(id, false).await;
        self.inner.store.apply(&[
            Op::Delete {
                ns: ns::RULES.into(),
                key: id.into(),
            },
            Op::Delete {
                ns: ns::RULE_STATE.into(),
                key: id.into(),
            },
        ])?;
        self.inner.rules.lock().await.remove(id);
        // What its sinks had cached goes with the rule.
        let cache = sink::cache::rule_dir(&self.inner.data_dir, id);
        if let Err(e) = std::fs::remove_dir_all(&cache) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(rule = id, dir = %cache.display(), "sink cache not removed: {e}");
            }
        }
        Ok(())
    }

    async fn set_triggered(&self, id: &str, t: bool) -> AppResult<()> {
        let stored = self.inner.store.get(ns::RULE_STATE, id)?;
        if stored.as_deref() != Some(if t { "true" } else { "false" }) {
            self.inner.store.put(ns::RULE_STATE, id, &t.to_string())?;
        }
        if let Some(r) = self.inner.rules.lock().await.get_mut(id) {
            r.triggered = t;
        }
        Ok(())
    }

    pub async fn start_rule(&self, id: &str) -> AppResult<()> {
        let (def, json, status, before) = {
            let rules = self.inner.rules.lock().await;
            let entry = rules
                .get(id)
                .ok_or_else(|| AppError::not_found(format!("Rule {id} is not found.")))?;
            if entry.running.is_some() && entry.status.state_name() == "running" {
                return Ok(());
            }
            if let Some(why) = &entry.broken {
                return Err(AppError::bad(format!(
                    "rule {id} is invalid and cannot start until it is replaced: {why}"
                )));
            }
            if !entry.triggered {
                self.inner.store.check_writable()?;
            }
            let before = entry.running.as_ref().map(|r| Arc::as_ptr(r) as usize);
            (
                entry.def.clone(),
                entry.json.clone(),
                entry.status.clone(),
                before,
            )
        };
        // Launching validates and creates connectors, which calls into
        // plugins (slow or hostile ones included): never under the rules lock.
        let r = self.launch_guarded(&def, status)?;
        let mut rules = self.inner.rules.lock().await;
        match rules.get_mut(id) {
            // Still the same definition and nobody started it meanwhile.
            Some(entry)
                if entry.json == json
                    && entry.running.as_ref().map(|r| Arc::as_ptr(r) as usize) == before =>
            {
                entry.running = Some(r);
                entry.triggered = true;
            }
            // Deleted, replaced or started by another request while this one
            // launched: this run is not wanted.
            _ => {
                r.cancel.cancel();
                return Ok(());
            }
        }
        drop(rules);
        self.set_triggered(id, true).await?;
        Ok(())
    }

    /// [`Self::launch`], with a panic turned into an error: whatever goes
    /// wrong, only this rule fails (marked stopped with the message).
    fn launch_guarded(
        &self,
        def: &RuleDef,
        status: Arc<RuleStatus>,
    ) -> AppResult<Arc<RunningRule>> {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.launch(def, status.clone())
        }))
        .unwrap_or_else(|p| {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(rule = %def.id, panic = %what, "rule start panicked");
            Err(AppError::Internal(format!(
                "rule {} could not start: internal error: {what}",
                def.id
            )))
        });
        if let Err(e) = &r {
            status.set_stopped(Some(e.to_string()));
        }
        r
    }

    fn launch(&self, def: &RuleDef, status: Arc<RuleStatus>) -> AppResult<Arc<RunningRule>> {
        // Every sink is created below, with the same error as prepare's.
        let p = self.prepare_with(def, false)?;
        let cancel = CancellationToken::new();
        // Whatever was started is stopped again if this returns early or panics.
        let cancel_on_failure = cancel.clone().drop_guard();
        let opts = def.options().map_err(|e| AppError::bad(e.to_string()))?;
        let (queue, rx) = RuleQueue::new(opts.buffer_length);
        let (fatal_tx, fatal_rx) = mpsc::channel::<String>(4);
        let checkpoints = opts.qos >= 1;
        let sink_wake = Arc::new(tokio::sync::Notify::new());
        let mut progress = Vec::new();
        let mut sinks = Vec::new();
        for (i, (kind, props, common)) in p.sinks.into_iter().enumerate() {
            let factory = self
                .inner
                .registry
                .sink(&kind)
                .ok_or_else(|| AppError::bad(format!("sink type {kind} not found")))?;
            let mut instances = Vec::new();
            for _ in 0..common.concurrency.max(1) {
                instances.push(
                    factory
                        .create(&props)
                        .map_err(|e| AppError::bad(format!("action {i} ({kind}): {e}")))?,
                );
            }
            let cache_dir = common
                .enable_cache
                .then(|| sink::cache::node_dir(&self.inner.data_dir, &def.id, &kind, i));
            let node = sink::start(
                SinkSpec {
                    rule_id: def.id.clone(),
                    kind: kind.clone(),
                    index: i,
                    sinks: instances,
                    consumes: factory.consumes(),
                    dynamic_props: sink::has_dynamic_props(&props),
                    common,
                    progress: checkpoints.then(|| {
                        let p = Arc::new(SinkProgress::new(sink_wake.clone()));
                        progress.push(p.clone());
                        p
                    }),
                    cache_dir,
                },
                cancel.child_token(),
                fatal_tx.clone(),
            )
            .map_err(|e| AppError::bad(format!("action {i} ({kind}): {e}")))?;
            sinks.push(node);
        }
        let mut inputs = Vec::new();
        let run_key = format!(
            "{}#{}",
            def.id,
            RUN_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut hub_keys = Vec::new();
        let plan_sources = p.plan.sources().to_vec();
        for (idx, s) in plan_sources.iter().enumerate() {
            let (key, hub) = match self.hub_for(&run_key, &s.name) {
                Ok(h) => h,
                Err(e) => {
                    cancel.cancel();
                    Self::release_hubs(&self.inner, &run_key, &hub_keys);
                    return Err(e);
                }
            };
            hub.subscribe(Subscriber {
                rule_id: run_key.clone(),
                index: idx,
                queue: queue.clone(),
                checkpoint: checkpoints && s.kind == StreamKind::Stream,
            });
            hub_keys.push(key);
            inputs.push(Input {
                stream: s.name.clone(),
                kind: s.kind,
                hub,
                metrics: Arc::new(NodeMetrics::default()),
            });
        }
        drop(queue);
        cancel_on_failure.disarm();
        status.set_running();
        let running = Arc::new(rt::spawn(
            def.id.clone(),
            &p.plan,
            inputs,
            rx,
            sinks,
            fatal_rx,
            cancel,
            status,
            checkpoints.then(|| rt::CheckpointCfg {
                interval: opts.checkpoint_interval,
                run_key: run_key.clone(),
                sinks: progress,
                wake: sink_wake,
            }),
        ));
        // When the run ends (stopped, error, end of input), release its hubs.
        let weak = Arc::downgrade(&self.inner);
        let mut done = running.done.clone();
        tokio::spawn(async move {
            let _ = done.wait_for(|d| *d).await;
            if let Some(inner) = weak.upgrade() {
                Self::release_hubs(&inner, &run_key, &hub_keys);
            }
        });
        Ok(running)
    }

    /// Stops a running rule. `persist` records `triggered=false`.
    async fn halt(&self, id: &str, persist: bool) {
        let running = {
            let mut rules = self.inner.rules.lock().await;
            rules.get_mut(id).and_then(|r| r.running.take())
        };
        if let Some(r) = running {
            r.cancel.cancel();
            let mut done = r.done.clone();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), done.wait_for(|d| *d))
                .await;
        }
        if let Some(r) = self.inner.rules.lock().await.get(id) {
            if r.status.state_name() == "running" {
                r.status.set_stopped(None);
            }
        }
        if persist {
            let _ = self.set_triggered(id, false).await;
        }
    }

    pub async fn stop_rule(&self, id: &str) -> AppResult<()> {
        if !self.inner.rules.lock().await.contains_key(id) {
            return Err(AppError::not_found(format!("Rule {id} is not found.")));
        }
        self.inner.store.check_writable()?;
        self.halt(id, true).await;
        Ok(())
    }

    pub async fn restart_rule(&self, id: &str) -> AppResult<()> {
        if !self.inner.rules.lock().await.contains_key(id) {
            return Err(AppError::not_found(format!("Rule {id} is not found.")));
        }
        self.halt(id, false).await;
        self.start_rule(id).await
    }

    /// `GET /rules`: id, name, status, sorted by id.
    pub async fn list_rules(&self) -> Vec<Json> {
        let rules = self.inner.rules.lock().await;
        rules
            .iter()
            .map(|(id, r)| {
                let status = match r.status.state() {
                    rt::RuleState::Failed(m) => format!("stopped: {m}"),
                    _ => r.status.state_name().to_string(),
                };
                json!({
                    "id": id,
                    "name": r.def.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| id.clone()),
                    "status": status,
                    "version": r.def.version.clone().unwrap_or_default(),
                    "trace": false,
                    "tags": r.def.tags,
                })
            })
            .collect()
    }

    pub async fn rule_json(&self, id: &str) -> AppResult<String> {
        self.inner
            .rules
            .lock()
            .await
            .get(id)
            .map(|r| r.json.clone())
            .ok_or_else(|| AppError::not_found(format!("Rule {id} is not found.")))
    }

    pub async fn rule_status(&self, id: &str) -> AppResult<Map<String, Json>> {
        let rules = self.inner.rules.lock().await;
        let r = rules
            .get(id)
            .ok_or_else(|| AppError::not_found(format!("Rule {id} is not found.")))?;
        let (start, stop) = r.status.times();
        let mut m = Map::new();
        m.insert("status".into(), r.status.state_name().into());
        m.insert("message".into(), r.status.message().into());
        m.insert("lastStartTimestamp".into(), start.into());
        m.insert("lastStopTimestamp".into(), stop.into());
        m.insert("nextStartTimestamp".into(), 0.into());
        if let Some(run) = &r.running {
            run.write_metrics(&mut m);
        }
        Ok(m)
    }

    pub async fn all_status(&self) -> Json {
        let rules = self.inner.rules.lock().await;
        let mut m = Map::new();
        for (id, r) in rules.iter() {
            let mut exceptions = 0u64;
            let mut last = String::new();
            if let Some(run) = &r.running {
                let mut mm = Map::new();
                run.write_metrics(&mut mm);
                for (k, v) in &mm {
                    if k.ends_with("_exceptions_total") {
                        exceptions += v.as_u64().unwrap_or(0);
                    }
                    if k.ends_with("_last_exception") && v.as_str().is_some_and(|s| !s.is_empty()) {
                        last = v.as_str().unwrap_or_default().to_string();
                    }
                }
            }
            m.insert(
                id.clone(),
                json!({"status": r.status.state_name(), "last_exception": last, "exceptions_total": exceptions}),
            );
        }
        Json::Object(m)
    }

    pub async fn rule_topo(&self, id: &str) -> AppResult<Json> {
        let rules = self.inner.rules.lock().await;
        let r = rules
            .get(id)
            .ok_or_else(|| AppError::not_found(format!("Rule {id} is not found.")))?;
        match &r.running {
            Some(run) => Ok(run.topo()),
            None => {
                // Not running: plan it to show the topology it would have.
                drop(rules);
                let def = {
                    let rules = self.inner.rules.lock().await;
                    rules.get(id).map(|r| r.def.clone())
                };
                let def =
                    def.ok_or_else(|| AppError::not_found(format!("Rule {id} is not found.")))?;
                let p = self.prepare(&def)?;
                let sources: Vec<String> =
                    p.sources.iter().map(|s| format!("source_{s}")).collect();
                let ops = p.plan.op_names();
                let sinks: Vec<String> = p
                    .sinks
                    .iter()
                    .enumerate()
                    .map(|(i, (k, _, _))| format!("sink_{k}_{i}"))
                    .collect();
                Ok(topo_json(&sources, &ops, &sinks))
            }
        }
    }

    /// Rules whose streams (`source == true`) or actions use connector type `typ`.
    pub async fn rules_using_connector(&self, source: bool, typ: &str) -> Vec<String> {
        let rules = self.inner.rules.lock().await;
        rules
            .iter()
            .filter(|(_, r)| {
                if source {
                    r.sources.iter().any(|s| {
                        self.stream_entry(s)
                            .is_some_and(|e| streams::source_type(&e.def) == typ)
                    })
                } else {
                    r.def.actions.iter().any(|a| a.keys().any(|k| k == typ))
                }
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Restarts a rule only when it is running (plugin upgrades).
    pub async fn restart_if_running(&self, id: &str) -> AppResult<()> {
        let running = self
            .inner
            .rules
            .lock()
            .await
            .get(id)
            .is_some_and(|r| r.running.is_some());
        if running {
            self.restart_rule(id).await?;
        }
        Ok(())
    }

    /// Running rules' uses of connection profiles: `(rule id, "stream <name>"
    /// or "action <i> (<type>)", canonical selector)`.
    pub async fn running_selectors(&self) -> Vec<(String, String, String)> {
        let running: Vec<(String, RuleDef, Vec<String>)> = {
            let rules = self.inner.rules.lock().await;
            rules
                .iter()
                // A rule stopped by an error keeps its task handle but
                // holds no connection.
                .filter(|(_, r)| {
                    r.running.is_some()
                        && r.status.state() == crate::runtime::rule::RuleState::Running
                })
                .map(|(id, r)| (id.clone(), r.def.clone(), r.sources.clone()))
                .collect()
        };
        let mut out = Vec::new();
        for (id, def, sources) in running {
            for name in sources {
                let Some(entry) = self.stream_entry(&name) else {
                    continue;
                };
                if let Ok(spec) = self.hub_spec(&name, &entry) {
                    if let Some(sel) = crate::connections::selector_in(&spec.props) {
                        out.push((id.clone(), format!("stream {name}"), sel));
                    }
                }
            }
            for (i, a) in def.actions().unwrap_or_default().into_iter().enumerate() {
                if let Ok(props) =
                    crate::connections::resolve_sink(&self.inner.conf, &a.kind, &a.props)
                {
                    if let Some(sel) = crate::connections::selector_in(&props) {
                        out.push((id.clone(), format!("action {i} ({})", a.kind), sel));
                    }
                }
            }
        }
        out
    }

    /// Rules that read a stream or table.
    async fn rules_using(&self, name: &str) -> Vec<String> {
        self.inner
            .rules
            .lock()
            .await
            .iter()
            .filter(|(_, r)| r.sources.iter().any(|s| s == name))
            .map(|(id, _)| id.clone())
            .collect()
    }
}

fn topo_json(sources: &[String], ops: &[String], sinks: &[String]) -> Json {
    let mut edges = Map::new();
    let first: Vec<Json> = match ops.first() {
        Some(o) => vec![o.clone().into()],
        None => sinks.iter().map(|s| s.clone().into()).collect(),
    };
    for s in sources {
        edges.insert(s.clone(), Json::Array(first.clone()));
    }
    for w in ops.windows(2) {
        edges.insert(w[0].clone(), Json::Array(vec![w[1].clone().into()]));
    }
    if let Some(l) = ops.last() {
        edges.insert(
            l.clone(),
            Json::Array(sinks.iter().map(|s| s.clone().into()).collect()),
        );
    }
    json!({"sources": sources, "edges": edges})
}

fn rule_sources(def: &RuleDef) -> Vec<String> {
    let Some(sql) = def.sql.as_deref() else {
        return Vec::new();
    };
    match oort_sql::parser::parse_select(sql) {
        Ok(s) => {
            let mut v = vec![s.from.name.clone()];
            v.extend(s.joins.iter().map(|j| j.source.name.clone()));
            v
        }
        Err(_) => Vec::new(),
    }
}

/// eKuiper's version gate: accepted when both empty or new > old (string order).
fn check_version(old: Option<&str>, new: Option<&str>, id: &str) -> AppResult<()> {
    let o = old.unwrap_or("");
    let n = new.unwrap_or("");
    if (o.is_empty() && n.is_empty()) || n > o {
        return Ok(());
    }
    Err(AppError::bad_code(
        code::RULE,
        format!("rule {id} already exists with version ({o}), new version ({n}) is lower"),
    ))
}
