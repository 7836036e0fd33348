//! Data import/export (eKuiper's `/data/import`, `/data/export`, the v2 YAML
//! form and the legacy ruleset): the whole document is read and checked
//! before anything changes; then (full import) everything is reset and the
//! document applied in order: plugins (concurrently, bounded), conf keys and
//! connections, streams, tables, rules (started when `triggered`). Every
//! item that fails is named in the [`Report`]; streams and rules that fail
//! because a plugin did not install say which plugin and why. Export writes
//! everything, or only what some rules need.
//!
//! [`Ruleset`] serialises imports (one at a time) and keeps the status of the
//! last one (also in the store, so it survives the restart after `stop=1`).

pub mod boot;
pub mod doc;
mod export;
mod plugins;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::FutureExt;
use oort_sql::ast::StreamKind;
use oort_wasm::{InstallRequest, PluginKind, PluginManager};
use serde_json::{json, Map, Value as Json};
use tokio_util::sync::CancellationToken;

pub use doc::{parse_json, parse_yaml, DocError, Document, PluginEntry, Report, Section};

use super::rule_def::RuleDef;
use super::{rule_sources, streams, Manager};
use crate::error::{AppError, AppResult};
use crate::store::{ns, Op};

/// Store namespace holding the status of the last import.
const STATUS_NS: &str = "import_status";
/// Plugins installed at the same time during an import.
pub const PLUGIN_CONCURRENCY: usize = 4;

/// How a document is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// `POST /data/import`: reset everything, then apply.
    Full,
    /// `?partial=1`: keep what exists; streams/tables/conf keys replaced,
    /// rules upserted (version-gated), plugins installed only if absent.
    Partial,
    /// `POST /v2/data/import`: like partial, but an existing rule is replaced
    /// (deleted, then created) as eKuiper's YAML import does.
    Yaml,
    /// `POST /ruleset/import`: streams/tables replaced, rules created only if new.
    Legacy,
    /// `oort serve --ruleset`: like partial, but a stream, table or rule
    /// identical to the stored one is left alone (a running rule is not
    /// restarted), so applying the same document at every start converges.
    Converge,
}

/// Live progress of an import (read by `GET /async/task/{id}`).
#[derive(Debug, Default)]
pub struct Progress {
    phase: parking_lot::Mutex<&'static str>,
    pub plugins_total: AtomicUsize,
    pub plugins_installed: AtomicUsize,
    pub plugins_skipped: AtomicUsize,
    pub plugins_failed: AtomicUsize,
    pub items_total: AtomicUsize,
    pub items_applied: AtomicUsize,
    pub items_failed: AtomicUsize,
}

impl Progress {
    pub fn set_phase(&self, p: &'static str) {
        *self.phase.lock() = p;
    }

    pub fn phase(&self) -> &'static str {
        *self.phase.lock()
    }

    fn item(&self, ok: bool) {
        if ok {
            self.items_applied.fetch_add(1, Ordering::Relaxed);
        } else {
            self.items_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn to_json(&self) -> Json {
        let g = |a: &AtomicUsize| a.load(Ordering::Relaxed);
        json!({
            "phase": self.phase(),
            "plugins": {
                "total": g(&self.plugins_total),
                "installed": g(&self.plugins_installed),
                "skipped": g(&self.plugins_skipped),
                "failed": g(&self.plugins_failed),
            },
            "items": {
                "total": g(&self.items_total),
                "applied": g(&self.items_applied),
                "failed": g(&self.items_failed),
            },
        })
    }
}

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Per-item errors (empty when everything was applied).
    pub report: Report,
    /// Items applied per section.
    pub applied: BTreeMap<Section, usize>,
    /// Items left alone because they were already as the document says
    /// ([`ImportMode::Converge`]); also counted in `applied`.
    pub unchanged: BTreeMap<Section, usize>,
    /// The import stopped early because it was cancelled.
    pub cancelled: bool,
}

impl Outcome {
    fn applied(&mut self, s: Section) {
        *self.applied.entry(s).or_default() += 1;
    }
    fn applied_as(&mut self, s: Section, changed: bool) {
        self.applied(s);
        if !changed {
            *self.unchanged.entry(s).or_default() += 1;
        }
    }
    pub fn count(&self, s: Section) -> usize {
        self.applied.get(&s).copied().unwrap_or(0)
    }
}

/// Why an import did not run.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The document is unreadable or has invalid items; nothing changed.
    #[error(transparent)]
    Doc(#[from] DocError),
    /// A server fault (store, reset) part-way.
    #[error("{0}")]
    Failed(#[from] AppError),
}

/// Serialises imports and remembers the status of the last one.
pub struct Ruleset {
    lock: tokio::sync::Mutex<()>,
    status: parking_lot::Mutex<Report>,
    /// Set when the last import never finished (the server stopped during it).
    interrupted: parking_lot::Mutex<Option<String>>,
    /// The start-up ruleset's state ([`boot`]), shown as `ruleset`.
    boot: parking_lot::Mutex<Option<Json>>,
}

/// Store key (in [`STATUS_NS`]) present while an import runs: written outside
/// the import's transaction, so after a crash it says the import was cut short.
const RUNNING_KEY: &str = "running";

/// Text formats of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

impl Ruleset {
    /// Loads the status of the last import from the store.
    pub fn new(mgr: &Manager) -> Ruleset {
        let status = mgr
            .inner
            .store
            .get(STATUS_NS, "last")
            .ok()
            .flatten()
            .and_then(|t| report_from_json(&t))
            .unwrap_or_default();
        let interrupted = mgr
            .inner
            .store
            .get(STATUS_NS, RUNNING_KEY)
            .ok()
            .flatten()
            .map(|started| {
                format!(
                    "the import started at {started} was interrupted (the server stopped before \
                     it finished); nothing of it was applied"
                )
            });
        Ruleset {
            lock: tokio::sync::Mutex::new(()),
            status: parking_lot::Mutex::new(status),
            interrupted: parking_lot::Mutex::new(interrupted),
            boot: parking_lot::Mutex::new(None),
        }
    }

    /// `GET /data/import/status`: the per-item object of the last import,
    /// plus `"interrupted": "<message>"` when it never finished.
    pub fn status(&self) -> Json {
        let mut j = self.status.lock().to_json();
        if let (Some(msg), Json::Object(m)) = (self.interrupted.lock().clone(), &mut j) {
            m.insert("interrupted".into(), Json::String(msg));
        }
        if let (Some(b), Json::Object(m)) = (self.boot.lock().clone(), &mut j) {
            m.insert("ruleset".into(), b);
        }
        j
    }

    /// Records the start-up ruleset's state (see [`boot`]).
    pub fn set_boot(&self, state: Json) {
        *self.boot.lock() = Some(state);
    }

    /// Parses, checks and applies a document. Concurrent calls run one after the other.
    #[allow(clippy::too_many_arguments)]
    pub async fn import(
        &self,
        mgr: &Manager,
        plugins: Option<&PluginManager>,
        text: &str,
        format: Format,
        mode: ImportMode,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> Result<Outcome, ImportError> {
        progress.set_phase("waiting");
        let _g = self.lock.lock().await;
        if cancel.is_cancelled() {
            progress.set_phase("done");
            return Ok(Outcome {
                cancelled: true,
                ..Outcome::default()
            });
        }
        progress.set_phase("checking");
        let parsed = match format {
            Format::Json => parse_json(text),
            Format::Yaml => parse_yaml(text),
        };
        let doc = match parsed {
            Ok(d) => d,
            Err(e) => {
                if let DocError::Invalid(r) = &e {
                    self.set_status(mgr, r.clone());
                }
                progress.set_phase("done");
                return Err(e.into());
            }
        };
        let started = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        mgr.inner
            .store
            .put(STATUS_NS, RUNNING_KEY, &started)
            .map_err(AppError::from)?;
        let r = mgr
            .apply_document(plugins, &doc, mode, progress, cancel)
            .await;
        if let Err(e) = mgr.inner.store.delete(STATUS_NS, RUNNING_KEY) {
            tracing::warn!(error = %e, "import: in-progress marker not cleared");
        }
        *self.interrupted.lock() = None;
        progress.set_phase("done");
        let outcome = r?;
        self.set_status(mgr, outcome.report.clone());
        Ok(outcome)
    }

    fn set_status(&self, mgr: &Manager, r: Report) {
        if let Err(e) = mgr
            .inner
            .store
            .put(STATUS_NS, "last", &r.to_json().to_string())
        {
            tracing::warn!(error = %e, "import status not persisted");
        }
        *self.status.lock() = r;
    }
}

fn report_from_json(text: &str) -> Option<Report> {
    let Json::Object(m) = serde_json::from_str::<Json>(text).ok()? else {
        return None;
    };
    let mut r = Report::default();
    for (k, v) in m {
        let (Some(s), Json::Object(items)) = (Section::from_key(&k), v) else {
            continue;
        };
        for (name, msg) in items {
            if let Json::String(msg) = msg {
                r.add(s, name, msg);
            }
        }
    }
    Some(r)
}

/// Plugins that failed in this import, and streams that failed, for messages.
#[derive(Default)]
struct Failures {
    plugins: HashMap<(PluginKind, String), String>,
    streams: HashMap<String, String>,
}

impl Manager {
    /// Deletes every rule, stream, table and stored conf key. Installed
    /// plugins are replaced or pruned by the import itself (see
    /// [`Manager::prune_plugins`]), after the metadata is committed.
    async fn reset_all(&self) -> AppResult<()> {
        let ids: Vec<String> = self.inner.rules.lock().await.keys().cloned().collect();
        for id in ids {
            match self.delete_rule(&id).await {
                Ok(()) | Err(AppError::NotFound(_)) => {}
                Err(e) => return Err(e.context(&format!("reset: rule {id}"))),
            }
        }
        for kind in [StreamKind::Stream, StreamKind::Table] {
            for name in self.list(kind) {
                match self.drop_stream(kind, &name, true).await {
                    Ok(()) | Err(AppError::NotFound(_)) => {}
                    Err(e) => return Err(e.context(&format!("reset: {kind} {name}"))),
                }
            }
        }
        let conf = self.inner.store.list_prefix(&format!("{}:", ns::CONF))?;
        let ops: Vec<Op> = conf
            .into_iter()
            .map(|(ns, key, _)| Op::Delete { ns, key })
            .collect();
        self.inner.store.apply(&ops)?;
        Ok(())
    }

    /// Applies a checked document. Per-item failures go to the report; only
    /// a server fault during the reset is an `Err`.
    pub async fn apply_document(
        &self,
        plugins: Option<&PluginManager>,
        doc: &Document,
        mode: ImportMode,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> AppResult<Outcome> {
        progress
            .plugins_total
            .store(doc.plugin_count(), Ordering::Relaxed);
        progress
            .items_total
            .store(doc.item_count(), Ordering::Relaxed);
        // Every metadata write from here on is one SQLite transaction owned
        // by this task: a crash before the end leaves the store as it was
        // before the import, and other writers get a 409 meanwhile.
        let batch = self.inner.store.begin()?;
        let applied = batch
            .scope(
                AssertUnwindSafe(self.apply_in_batch(plugins, doc, mode, progress, cancel))
                    .catch_unwind(),
            )
            .await;
        match applied {
            Ok(Ok(out)) if !out.cancelled => {
                batch.commit()?;
                if mode == ImportMode::Full {
                    self.prune_plugins(plugins, doc).await;
                }
                Ok(out)
            }
            other => {
                // Cancelled, failed or panicked: nothing of it stays. The
                // store rolls back; the engine reloads what the store holds.
                if let Err(e) = batch.rollback() {
                    tracing::error!(error = %e, "import: rollback failed");
                }
                progress.set_phase("rolling back");
                if let Err(e) = self.reload().await {
                    tracing::error!(error = %e, "import: reload after rollback failed");
                }
                match other {
                    Ok(r) => r,
                    Err(p) => {
                        let what = p
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| p.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown panic".into());
                        tracing::error!(panic = %what, "import panicked; rolled back");
                        Err(AppError::Internal(format!(
                            "import failed with an internal error ({what}); nothing was changed"
                        )))
                    }
                }
            }
        }
    }

    /// The part of [`Self::apply_document`] inside the batch.
    async fn apply_in_batch(
        &self,
        plugins: Option<&PluginManager>,
        doc: &Document,
        mode: ImportMode,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> AppResult<Outcome> {
        let mut out = Outcome::default();
        if mode == ImportMode::Full {
            progress.set_phase("resetting");
            self.reset_all().await?;
        }
        let mut failures = Failures::default();

        progress.set_phase("plugins");
        self.import_plugins(
            plugins,
            doc,
            mode,
            progress,
            cancel,
            &mut out,
            &mut failures,
        )
        .await;
        if out.cancelled {
            return Ok(out);
        }

        progress.set_phase("confKeys");
        for section in [
            Section::SourceConfig,
            Section::SinkConfig,
            Section::ConnectionConfig,
        ] {
            let (Some(conf), Some(kind)) = (doc.conf(section), section.conf_kind()) else {
                continue;
            };
            for (typ, keys) in conf {
                let mut errs = Vec::new();
                for (k, props) in keys {
                    match self
                        .inner
                        .conf
                        .put(kind, typ, k, &Json::Object(props.clone()))
                    {
                        Ok(()) => {
                            progress.item(true);
                            out.applied(section);
                        }
                        Err(e) => {
                            progress.item(false);
                            errs.push(format!("{k}: {e}"));
                        }
                    }
                }
                if !errs.is_empty() {
                    out.report.add(section, typ.clone(), errs.join("; "));
                }
            }
        }

        progress.set_phase("schemas");
        self.import_schemas(doc, mode, progress, &mut out);

        for (kind, section, phase, map) in [
            (
                StreamKind::Stream,
                Section::Streams,
                "streams",
                &doc.streams,
            ),
            (StreamKind::Table, Section::Tables, "tables", &doc.tables),
        ] {
            progress.set_phase(phase);
            for (name, sql) in map {
                if cancel.is_cancelled() {
                    out.cancelled = true;
                    return Ok(out);
                }
                match self.import_stream(kind, name, sql, mode).await {
                    Ok(changed) => {
                        progress.item(true);
                        out.applied_as(section, changed);
                    }
                    Err(e) => {
                        progress.item(false);
                        let mut msg = e.to_string();
                        if let Ok(def) = streams::parse_def(sql) {
                            let typ = streams::source_type(&def);
                            if let Some(pe) =
                                failures.plugins.get(&(PluginKind::Source, typ.clone()))
                            {
                                msg =
                                    format!("source plugin {typ} failed to install ({pe}); {msg}");
                            }
                        }
                        failures.streams.insert(name.clone(), msg.clone());
                        out.report.add(section, name.clone(), msg);
                    }
                }
            }
        }

        progress.set_phase("rules");
        for (id, text) in &doc.rules {
            if cancel.is_cancelled() {
                out.cancelled = true;
                return Ok(out);
            }
            match self.import_rule(id, text, mode).await {
                Ok(changed) => {
                    progress.item(true);
                    out.applied_as(Section::Rules, changed);
                }
                Err(e) => {
                    progress.item(false);
                    let msg = match self.rule_failure_cause(id, text, &failures) {
                        Some(cause) => format!("{cause}; {e}"),
                        None => e.to_string(),
                    };
                    out.report.add(Section::Rules, id.clone(), msg);
                }
            }
        }

        for (section, items) in &doc.unsupported {
            if let Some(why) = section.unsupported_reason() {
                for key in items.keys() {
                    out.report.add(*section, key.clone(), why);
                }
            }
        }
        Ok(out)
    }

    /// The document's `Schema` section, before the streams that use it:
    /// a schema not registered yet is registered; an existing one is kept
    /// by a partial import and replaced by a full one (schemas not in the
    /// document stay). Schema files are not in the import's transaction:
    /// an import rolled back keeps the schemas it registered.
    fn import_schemas(
        &self,
        doc: &Document,
        mode: ImportMode,
        progress: &Progress,
        out: &mut Outcome,
    ) {
        let Some(items) = doc.unsupported.get(&Section::Schema) else {
            return;
        };
        for (key, v) in items {
            let entry = match v {
                Json::String(t) => serde_json::from_str::<Json>(t).unwrap_or(Json::Null),
                other => other.clone(),
            };
            let r = (|| -> Result<(), String> {
                let typ = entry
                    .get("type")
                    .and_then(Json::as_str)
                    .unwrap_or("protobuf");
                if typ != "protobuf" {
                    return Err(format!(
                        "schema type {typ} is not supported (custom schemas run Go plugins)"
                    ));
                }
                let name = entry
                    .get("name")
                    .and_then(Json::as_str)
                    .or_else(|| key.strip_prefix("protobuf_"))
                    .ok_or("the entry has no name")?;
                let content = entry
                    .get("content")
                    .and_then(Json::as_str)
                    .filter(|c| !c.trim().is_empty())
                    .ok_or("the entry has no content (schema file URLs are not supported)")?;
                let exists = self.inner.schemas.list().iter().any(|n| n == name);
                match (exists, mode) {
                    (true, ImportMode::Full) => self.inner.schemas.put(name, content, true),
                    (true, _) => Ok(()),
                    (false, _) => self.inner.schemas.put(name, content, false),
                }
                .map_err(|e| e.to_string())
            })();
            match r {
                Ok(()) => {
                    progress.item(true);
                    out.applied(Section::Schema);
                }
                Err(e) => {
                    progress.item(false);
                    out.report.add(Section::Schema, key.clone(), e);
                }
            }
        }
    }

    async fn import_stream(
        &self,
        kind: StreamKind,
        name: &str,
        sql: &str,
        mode: ImportMode,
    ) -> AppResult<bool> {
        if mode == ImportMode::Converge
            && self
                .map(kind)
                .read()
                .get(name)
                .is_some_and(|e| e.sql == sql)
        {
            return Ok(false);
        }
        let def = streams::parse_def(sql)?;
        let replace = mode != ImportMode::Full;
        if replace {
            let other = match kind {
                StreamKind::Stream => &self.inner.tables,
                StreamKind::Table => &self.inner.streams,
            };
            if other.read().contains_key(name) {
                let word = if kind == StreamKind::Stream {
                    "table"
                } else {
                    "stream"
                };
                return Err(AppError::bad(format!(
                    "a {word} named {name} already exists"
                )));
            }
        }
        self.create_stream(def, sql, replace).await.map(|()| true)
    }

    /// Creates or replaces a rule as `mode` says; `Ok(false)` when it was
    /// left alone (converging, and stored exactly as the document has it).
    async fn import_rule(&self, id: &str, text: &str, mode: ImportMode) -> AppResult<bool> {
        let (exists, same) = match self.inner.rules.lock().await.get(id) {
            Some(r) => (true, boot::same_rule(&r.json, text)),
            None => (false, false),
        };
        match mode {
            ImportMode::Full | ImportMode::Partial => {}
            ImportMode::Converge => {
                if same {
                    return Ok(false);
                }
            }
            ImportMode::Yaml => {
                if exists {
                    // Check the new one first so a bad rule does not remove the old.
                    let def =
                        RuleDef::parse(text, Some(id)).map_err(|e| AppError::bad(e.to_string()))?;
                    self.prepare(&def)?;
                    self.delete_rule(id).await?;
                }
            }
            ImportMode::Legacy => {
                if exists {
                    return Err(AppError::bad(format!("rule {id} already exists")));
                }
            }
        }
        // Upsert keyed by the map key (the JSON may omit its id).
        self.update_rule(id, text).await.map(|()| true)
    }

    fn rule_failure_cause(&self, id: &str, text: &str, f: &Failures) -> Option<String> {
        let def = RuleDef::parse(text, Some(id)).ok()?;
        for s in rule_sources(&def) {
            if let Some(e) = f.streams.get(&s) {
                return Some(format!("stream {s} was not imported ({e})"));
            }
            if let Some(entry) = self.stream_entry(&s) {
                let typ = streams::source_type(&entry.def);
                if let Some(pe) = f.plugins.get(&(PluginKind::Source, typ.clone())) {
                    return Some(format!("source plugin {typ} failed to install ({pe})"));
                }
            }
        }
        for a in def.actions().ok()? {
            if let Some(pe) = f.plugins.get(&(PluginKind::Sink, a.kind.clone())) {
                return Some(format!("sink plugin {} failed to install ({pe})", a.kind));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::plugins::explain_foreign;
    use super::*;
    use std::io::Write;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (n, d) in entries {
            w.start_file(*n, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(d).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn entry(name: &str) -> PluginEntry {
        PluginEntry {
            name: name.into(),
            file: format!("file:///p/{name}.zip"),
            sha256: None,
            grants: None,
        }
    }

    /// A cancelled full import has already reset everything when it stops:
    /// the rollback must bring back the store and the engine as they were.
    #[tokio::test]
    async fn a_cancelled_full_import_leaves_store_and_engine_as_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let registry = oort_core::Registry::default();
        oort_connectors::builtin(&registry);
        let mgr = Manager::open(dir.path(), registry).unwrap();
        mgr.exec_stream_sql(r#"CREATE STREAM old () WITH (DATASOURCE="o", TYPE="memory")"#)
            .await
            .unwrap();
        mgr.create_rule(r#"{"id":"keep","sql":"SELECT * FROM old","actions":[{"nop":{}}]}"#)
            .await
            .unwrap();
        let doc = parse_json(
            &json!({"streams": {"new": "CREATE STREAM new () WITH (DATASOURCE=\"n\", TYPE=\"memory\")"}})
                .to_string(),
        )
        .unwrap();
        let cancel = CancellationToken::new();
        cancel.cancel();
        let out = mgr
            .apply_document(None, &doc, ImportMode::Full, &Progress::default(), &cancel)
            .await
            .unwrap();
        assert!(out.cancelled);
        assert_eq!(mgr.list(StreamKind::Stream), vec!["old".to_string()]);
        let rules = mgr.list_rules().await;
        assert_eq!(rules.len(), 1, "{rules:?}");
        assert_eq!(rules[0]["status"], "running", "{rules:?}");
        assert!(mgr.inner.store.get(ns::STREAMS, "new").unwrap().is_none());
        assert!(mgr.inner.store.get(ns::RULES, "keep").unwrap().is_some());
        assert!(!mgr.inner.store.batch_open());
    }

    #[test]
    fn foreign_packages_are_explained() {
        let go = zip_of(&[("video.so", b"\x7fELF"), ("video.json", b"{}")]);
        let m = explain_foreign(
            Section::NativePlugins,
            &entry("video"),
            Some(PluginKind::Source),
            &go,
            "no video.wasm",
        );
        assert!(
            m.starts_with("file:///p/video.zip holds a Go plugin (video.so)"),
            "{m}"
        );
        assert!(
            m.ends_with("list it under wasmPlugins as sources_video"),
            "{m}"
        );

        let portable = zip_of(&[("mirror", b"#!/bin/sh"), ("mirror.json", b"{}")]);
        let m = explain_foreign(
            Section::PortablePlugins,
            &entry("mirror"),
            None,
            &portable,
            "x",
        );
        assert!(m.contains("portable plugin (an executable"), "{m}");
        assert!(m.ends_with("as sources_mirror or sinks_mirror"), "{m}");

        let m = explain_foreign(
            Section::NativePlugins,
            &entry("x"),
            Some(PluginKind::Sink),
            b"\x7fELF..",
            "y",
        );
        assert!(m.contains("native executable or shared library"), "{m}");
        let m = explain_foreign(
            Section::NativePlugins,
            &entry("x"),
            Some(PluginKind::Sink),
            b"garbage",
            "not a zip",
        );
        assert!(
            m.contains("is not a WebAssembly component package (not a zip)"),
            "{m}"
        );
    }

    #[test]
    fn status_survives_a_store_round_trip() {
        let mut r = Report::default();
        r.add(Section::WasmPlugins, "sources_random", "sha256 mismatch");
        r.add(Section::Streams, "demo", "bad");
        let back = report_from_json(&r.to_json().to_string()).unwrap();
        assert_eq!(back, r);
        assert!(report_from_json("[1]").is_none());
    }

    #[test]
    fn progress_counts_items() {
        let p = Progress::default();
        p.set_phase("rules");
        p.items_total.store(3, Ordering::Relaxed);
        p.item(true);
        p.item(true);
        p.item(false);
        let j = p.to_json();
        assert_eq!(j["phase"], "rules");
        assert_eq!(j["items"], json!({"total": 3, "applied": 2, "failed": 1}));
    }
}
