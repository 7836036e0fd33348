//! The application layer used by the REST server and the CLI: streams,
//! tables and rules (definitions in the store, runtime state in memory),
//! rule lifecycle, boot-time restore.

pub mod graph;
mod launch;
#[cfg(test)]
mod launch_tests;
mod query;
pub use query::RuleMetric;
mod restart;
pub mod rule_def;
pub mod ruleset;
mod streams;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oort_core::codec::DecodeOptions;
use oort_core::{ConnectorEnv, ConnectorError, Props, Registry, Sink, SinkFactory};
use oort_sql::ast::{Select, StreamDef, StreamKind};
use oort_sql::engine::{self, Catalog, QueryOptions, QueryPlan};
use parking_lot::{Mutex, RwLock};
use serde_json::{json, Map, Value as Json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::confkeys::ConfKeys;
use crate::error::{code, AppError, AppResult};
use crate::runtime::hub::{self, Hub, HubSpec, RuleQueue, Subscriber};
use crate::runtime::lookup::{LookupConf, LookupNode};
use crate::runtime::metrics::NodeMetrics;
use crate::runtime::rule::{self as rt, Input, RuleStatus, RunningRule};
use crate::runtime::sink::{self, SinkCommon, SinkProgress, SinkSpec};
use crate::store::{ns, Op, Store};
use rule_def::RuleDef;

use query::rule_sources;
pub use streams::{StmtResult, StreamEntry};

/// Distinguishes successive runs of the same rule in hub subscriptions.
static RUN_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

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
    /// The connector context every factory gets.
    pub env: ConnectorEnv,
    pub store: Store,
    pub conf: ConfKeys,
    pub registry: Registry,
    /// Protobuf schemas (`SCHEMAID`, `schemaId`).
    pub schemas: crate::schemas::Schemas,
    streams: RwLock<BTreeMap<String, StreamEntry>>,
    tables: RwLock<BTreeMap<String, StreamEntry>>,
    rules: tokio::sync::Mutex<BTreeMap<String, RuleEntry>>,
    hubs: Mutex<HashMap<String, Arc<Hub>>>,
    /// What running queries ask of the server (keyed state, `delay`).
    rule_host: oort_sql::engine::HostRef,
    /// Streams graph rules define inline, by name: the owning rule and the
    /// definition. Not listed with the streams; gone with the rule.
    inline: RwLock<BTreeMap<String, (String, StreamEntry)>>,
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
        if let Some(s) = self.tables.read().get(name) {
            return Some(s.def.clone());
        }
        self.inline.read().get(name).map(|(_, s)| s.def.clone())
    }
}

/// Everything checked (and, to launch, built) for a rule before it runs.
struct Prepared {
    plan: QueryPlan,
    sources: Vec<String>,
    sinks: Vec<PreparedSink>,
}

/// A lookup table's connector, resolved props and cache settings.
pub(crate) struct LookupSpec {
    pub typ: String,
    pub factory: Arc<dyn oort_core::LookupFactory>,
    pub datasource: String,
    pub props: Props,
    pub conf: LookupConf,
    /// Unknown keys in the `lookup` property.
    pub warnings: Vec<String>,
}

/// One action of a rule, resolved and checked.
struct PreparedSink {
    kind: String,
    props: Props,
    common: SinkCommon,
    factory: Arc<dyn SinkFactory>,
    /// The instances (`concurrency` of them) when built for a launch.
    built: Vec<Box<dyn Sink>>,
}

impl Manager {
    /// A manager whose connectors get a context rooted at `data_dir`.
    pub fn open(data_dir: &Path, registry: Registry) -> anyhow::Result<Manager> {
        Self::open_in(ConnectorEnv::with_data_dir(data_dir), registry)
    }

    /// A manager over the data dir of `env`, its connectors getting `env`.
    pub fn open_in(env: ConnectorEnv, registry: Registry) -> anyhow::Result<Manager> {
        Self::open_with(
            env,
            registry,
            &crate::runtime::keyed_state::ExtState::Sqlite,
        )
    }

    /// [`Manager::open_in`] with `get_keyed_state` reading from `ext`.
    pub fn open_with(
        env: ConnectorEnv,
        registry: Registry,
        ext: &crate::runtime::keyed_state::ExtState,
    ) -> anyhow::Result<Manager> {
        let data_dir = env
            .data_dir()
            .ok_or_else(|| anyhow::anyhow!("the connector context has no data dir"))?
            .to_path_buf();
        let store = Store::open(&data_dir)?;
        let conf = ConfKeys::init(&data_dir, store.clone(), &registry)?;
        let schemas = crate::schemas::Schemas::open(&data_dir)?;
        let rule_host = crate::runtime::keyed_state::ServerHost::new(&data_dir, ext)
            .map_err(anyhow::Error::msg)?;
        let inner = Arc::new(Inner {
            rule_host: oort_sql::engine::HostRef(Arc::new(rule_host)),
            inline: RwLock::new(BTreeMap::new()),
            data_dir,
            env,
            store,
            conf,
            registry,
            schemas,
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

    /// The protobuf schema registry.
    pub fn schemas(&self) -> &crate::schemas::Schemas {
        &self.inner.schemas
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// The connector context (data dir, pools, shared links, clock).
    pub fn env(&self) -> &ConnectorEnv {
        &self.inner.env
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

    /// Stops every rule for a server shutdown (definitions and `triggered`
    /// stay), losing nothing a source already acknowledged: sources first
    /// (they take nothing more; the broker keeps what was not
    /// acknowledged), then each rule takes what its queue holds through its
    /// query and sinks (open windows are not fired early), sources that
    /// acknowledge on delivery acknowledge what the rules delivered, then
    /// the rules stop.
    pub async fn shutdown(&self) {
        let hubs: Vec<Arc<crate::runtime::hub::Hub>> =
            self.inner.hubs.lock().values().cloned().collect();
        for h in &hubs {
            h.stop();
        }
        let ended = futures::future::join_all(hubs.iter().map(|h| h.ended()));
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), ended).await;
        let mut draining = Vec::new();
        for r in self.inner.rules.lock().await.values() {
            if let Some(run) = &r.running {
                run.drain.cancel();
                draining.push(run.done.clone());
            }
        }
        // All rules drain at once, within one deadline: a sink that cannot
        // write gives up after its drain wait (10 s), and the rules still
        // running then are stopped below.
        let all = futures::future::join_all(draining.into_iter().map(|mut d| async move {
            let _ = d.wait_for(|d| *d).await;
        }));
        let _ = tokio::time::timeout(std::time::Duration::from_secs(12), all).await;
        // The drained rules have reported what they delivered: sources that
        // acknowledge on delivery write those acknowledgements and end.
        for h in &hubs {
            h.finish_handing();
        }
        let sources = futures::future::join_all(hubs.iter().map(|h| h.source_ended()));
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), sources).await;
        let ids: Vec<String> = self.inner.rules.lock().await.keys().cloned().collect();
        for id in ids {
            self.halt(&id, false).await;
        }
    }

    // ---------- rules ----------

    /// Whether rule `id` exists and runs.
    async fn is_running(&self, id: &str) -> bool {
        self.inner
            .rules
            .lock()
            .await
            .get(id)
            .is_some_and(|r| r.running.is_some())
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
        let was_running = self.is_running(id).await;
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
        if let Some(r) = &running {
            let strategy = def.options().map(|o| o.restart).unwrap_or_default();
            self.supervise(&id, r, status.clone(), strategy, None);
        }
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
        self.drop_inline(id);
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
        if let Some((run, status, strategy)) = self.launch_rule(id).await? {
            self.supervise(id, &run, status, strategy, None);
        }
        Ok(())
    }

    /// Starts rule `id` unless it runs; returns the new run, its status and
    /// its restart strategy (to be supervised by the caller).
    async fn launch_rule(
        &self,
        id: &str,
    ) -> AppResult<Option<(Arc<RunningRule>, Arc<RuleStatus>, rule_def::RestartStrategy)>> {
        let (def, json, status, before) = {
            let rules = self.inner.rules.lock().await;
            let entry = rules
                .get(id)
                .ok_or_else(|| AppError::not_found(format!("Rule {id} is not found.")))?;
            if entry.running.is_some() && entry.status.state_name() == "running" {
                return Ok(None);
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
        let strategy = def.options().map(|o| o.restart).unwrap_or_default();
        let r = self.launch_guarded(&def, status.clone())?;
        let mut rules = self.inner.rules.lock().await;
        match rules.get_mut(id) {
            // Still the same definition and nobody started it meanwhile.
            Some(entry)
                if entry.json == json
                    && entry.running.as_ref().map(|r| Arc::as_ptr(r) as usize) == before =>
            {
                entry.running = Some(r.clone());
                entry.triggered = true;
            }
            // Deleted, replaced or started by another request while this one
            // launched: this run is not wanted.
            _ => {
                r.cancel.cancel();
                return Ok(None);
            }
        }
        drop(rules);
        self.set_triggered(id, true).await?;
        Ok(Some((r, status, strategy)))
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
