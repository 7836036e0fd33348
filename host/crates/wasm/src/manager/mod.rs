//! `PluginManager`: install / upgrade / delete / list plugins, persist them
//! under `<data_dir>/plugins`, keep precompiled components in a cache keyed
//! by sha256 and engine version, and register one factory per plugin in the
//! shared `Registry`. Install work happens in a staging dir under the data
//! dir and is moved into place only when everything checked out.
//!
//! Disk layout:
//! ```text
//! <data_dir>/plugins/.tmp/                       staging (removed on failure)
//! <data_dir>/plugins/cache/<sha256>-<engine>.cwasm
//! <data_dir>/plugins/{sources,sinks}/<name>/{<name>.wasm,<name>.json?,<name>.yaml?,info.json}
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oort_core::{ConnectorInfo, Registry};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use wasmtime::component::Component;

use crate::bindings::WitPermissions;
use crate::config::{Grants, WasmConfig};
use crate::grants;
use crate::manifest::{Limits, Manifest, PluginKind};
use crate::package::{self, sha256_hex, Unpacked};
use crate::plugin::{CallLimits, LoadedPlugin, PluginSlot};
use crate::runtime::{Runtime, Tier};
use crate::sink::WasmSinkFactory;
use crate::source::WasmSourceFactory;

mod builtin;
mod check;
mod install;

use check::Stages;
pub use check::{CheckInput, CheckReport, CheckStep, Stage};

/// Errors of the plugin API; the variant is the HTTP status class.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PluginError {
    /// The request or the package is wrong (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    /// No such plugin (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// Disk or engine failure (HTTP 500).
    #[error("{0}")]
    Internal(String),
}

/// `POST /plugins/{sources,sinks}` body (plus the kind from the URL).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstallRequest {
    #[serde(skip, default = "default_kind")]
    pub kind: PluginKind,
    pub name: String,
    /// `file:///abs/path`, `http://...` or `https://...` of a zip or a bare `.wasm`.
    pub file: String,
    /// Hex sha256 of the downloaded file; must match when given.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Capabilities the operator grants to this plugin.
    #[serde(default)]
    pub grants: Option<Grants>,
}

fn default_kind() -> PluginKind {
    PluginKind::Source
}

/// What a plugin's factory declares: its description and property schema:
/// `properties-schema` from `describe` when it gives types, else the
/// manifest's `properties` (eKuiper's typed field list), else the untyped
/// `describe` schema (names and hints only). A plugin source never ends on
/// its own and may hold a connection.
pub fn connector_info(info: &PluginInfo) -> ConnectorInfo {
    let described = info
        .properties_schema
        .as_deref()
        .and_then(oort_core::schema::parse_plugin_schema);
    let manifest = match &info.properties {
        serde_json::Value::Null => None,
        v => oort_core::schema::parse_plugin_schema(&v.to_string()),
    };
    let typed = |v: &Vec<oort_core::schema::PropSpec>| v.iter().any(|p| p.typ != "any");
    let properties = match (described, manifest) {
        (Some(d), _) if typed(&d) => d,
        (_, Some(m)) => m,
        (d, None) => d.unwrap_or_default(),
    };
    ConnectorInfo {
        holds_connection: true,
        properties,
        ..ConnectorInfo::new(&info.description)
    }
}

/// What `GET /plugins/{kind}/{name}` shows; also persisted as `info.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginInfo {
    pub name: String,
    pub kind: PluginKind,
    pub version: String,
    /// sha256 of the component (`.wasm`).
    pub sha256: String,
    /// sha256 of the installed file (zip or `.wasm`).
    pub package_sha256: String,
    /// The WIT world the component targets, e.g. `oort:connector/source-plugin@0.1.0`.
    pub world: String,
    pub description: String,
    /// What the manifest (or `describe`) asks for.
    pub permissions_requested: Grants,
    /// The effective set: requested ∩ granted.
    pub permissions_granted: Grants,
    /// What the operator granted in the install request (server config grants are added at load).
    pub operator_grants: Grants,
    /// Install time, Unix milliseconds.
    pub installed_at: i64,
    /// `installed`, or `error: <message>` when it could not be loaded at start-up.
    pub state: String,
    /// The URI it was installed from.
    pub file: String,
    /// Shipped with Oort (`load_builtin`).
    pub builtin: bool,
    /// Property metadata from the manifest, for UIs.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub properties: serde_json::Value,
    /// `properties-schema` from `describe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties_schema: Option<String>,
    /// Default conf keys from `<name>.yaml` (`{"default": {...}, "other": {...}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conf_keys: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// Whether the compiled component is in memory (shown by `get`, not
    /// persisted). Installed plugins load on first use after a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded: Option<bool>,
    /// `baseline` (Winch, right after installing a large component) or
    /// `optimized` (Cranelift) when loaded; shown by `get`, not persisted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compiled: Option<String>,
    /// Log lines dropped by the per-plugin log rate limit since it was
    /// loaded; shown by `get` when loaded, not persisted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_lines_dropped: Option<u64>,
    /// Live instances (rules, streams, validations) when loaded; shown by
    /// `get`, not persisted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<usize>,
    /// Export calls of its instances since it was loaded (count, time,
    /// failures, deadline interruptions); shown by `get`, not persisted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<crate::stats::CallCounts>,
}

struct Entry {
    info: PluginInfo,
    slot: Option<Arc<PluginSlot>>,
}

struct Inner {
    root: PathBuf,
    registry: Registry,
    runtime: Arc<Runtime>,
    /// The baseline (Winch) engine, created on first need.
    baseline: parking_lot::Mutex<Option<Arc<Runtime>>>,
    cfg: WasmConfig,
    plugins: RwLock<BTreeMap<(PluginKind, String), Entry>>,
    /// Serialises the short commit step of install/upgrade/delete; the
    /// download, unpack and compilation run outside it, concurrently.
    ops: tokio::sync::Mutex<()>,
    /// Plugins with an install or upgrade under way (one at a time per name).
    pending: parking_lot::Mutex<std::collections::BTreeSet<(PluginKind, String)>>,
    /// Bounds concurrent compilations (each one already uses every core).
    compiles: tokio::sync::Semaphore,
}

/// Claims a plugin name for one install or upgrade; released on drop.
struct Reservation {
    inner: Arc<Inner>,
    key: (PluginKind, String),
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.inner.pending.lock().remove(&self.key);
    }
}

/// Concurrent compilations allowed; more only queue up and use memory.
const MAX_CONCURRENT_COMPILES: usize = 2;

/// The plugin manager. Cheap to clone.
#[derive(Clone)]
pub struct PluginManager {
    inner: Arc<Inner>,
}

fn internal(e: impl std::fmt::Display) -> PluginError {
    PluginError::Internal(e.to_string())
}

fn now_ms() -> i64 {
    oort_core::now_ms()
}

/// Plugin names: a letter, then letters, digits, `_` or `-` (max 64).
pub fn check_name(name: &str) -> Result<(), PluginError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(PluginError::BadRequest(format!(
            "invalid plugin name {name:?}: use a letter followed by letters, digits, '_' or '-' (max 64)"
        )))
    }
}

fn from_wit_permissions(p: WitPermissions) -> Grants {
    Grants {
        outbound: p.outbound,
        dirs: p.dirs,
        env: p.env,
    }
}

/// Where a package came from and what the operator granted.
struct Origin {
    file: String,
    package_sha256: String,
    request_grants: Grants,
    builtin: bool,
    /// A shipped plugin's artifact directory (see `builtin::artifact_dir`):
    /// its compiled code is read from there when present, written there
    /// after compiling.
    artifacts: Option<PathBuf>,
}

/// The result of checking a package: everything needed to commit it.
struct Prepared {
    info: PluginInfo,
    loaded: Arc<LoadedPlugin>,
    cwasm: Vec<u8>,
    unpacked: Unpacked,
}

impl PluginManager {
    /// Opens `<data_dir>/plugins`, loads every installed plugin (from the
    /// precompiled cache when valid) and registers its factory.
    pub fn open(data_dir: &Path, registry: Registry, cfg: WasmConfig) -> Result<Self, PluginError> {
        let root = data_dir.join("plugins");
        for d in [".tmp", "cache", "sources", "sinks"] {
            std::fs::create_dir_all(root.join(d))
                .map_err(|e| internal(format!("cannot create {d}: {e}")))?;
        }
        // Leftovers of an install interrupted by a crash.
        if let Ok(rd) = std::fs::read_dir(root.join(".tmp")) {
            for e in rd.flatten() {
                let _ =
                    std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
            }
        }
        let runtime = Runtime::new(cfg.pooling, cfg.memory_limit_bytes)
            .map_err(|e| internal(format!("cannot start the WebAssembly engine: {e:#}")))?;
        crate::isolation::init_guest_pool(cfg.guest_threads)
            .map_err(|e| internal(format!("cannot start the plugin thread pool: {e}")))?;
        let mgr = PluginManager {
            inner: Arc::new(Inner {
                root,
                registry,
                runtime,
                baseline: parking_lot::Mutex::new(None),
                cfg,
                plugins: RwLock::new(BTreeMap::new()),
                ops: tokio::sync::Mutex::new(()),
                pending: parking_lot::Mutex::new(Default::default()),
                compiles: tokio::sync::Semaphore::new(MAX_CONCURRENT_COMPILES),
            }),
        };
        mgr.clean_cache();
        for kind in [PluginKind::Source, PluginKind::Sink] {
            let dir = mgr.inner.root.join(kind.plural());
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut names: Vec<String> = rd
                .flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect();
            names.sort();
            for name in names {
                mgr.load_installed(kind, &name);
            }
        }
        Ok(mgr)
    }

    fn plugin_dir(&self, kind: PluginKind, name: &str) -> PathBuf {
        self.inner.root.join(kind.plural()).join(name)
    }

    fn cache_path(&self, sha: &str) -> PathBuf {
        self.inner
            .root
            .join("cache")
            .join(format!("{sha}-{}.cwasm", self.inner.runtime.engine_key))
    }

    /// Removes cached artifacts built by another engine version.
    fn clean_cache(&self) {
        let suffix = format!("-{}.cwasm", self.inner.runtime.engine_key);
        if let Ok(rd) = std::fs::read_dir(self.inner.root.join("cache")) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if !n.ends_with(&suffix) {
                    tracing::info!(file = %n, "wasm plugin cache: removing artifact of another engine version");
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    /// Operator grants for a plugin: server config ∪ install request.
    fn operator_grants(&self, name: &str, request: &Grants) -> Grants {
        match self.inner.cfg.grants.get(name) {
            Some(g) => g.union(request),
            None => request.clone(),
        }
    }

    /// What the plugin gets: its request within the operator's grants.
    /// What it asked for and did not get is logged: a warning for a plugin
    /// the operator installed, information for a shipped one (every start
    /// of a server that uses no `kafka` would otherwise warn about it).
    fn effective(
        &self,
        kind: PluginKind,
        name: &str,
        requested: &Grants,
        operator: &Grants,
        builtin: bool,
    ) -> Grants {
        let (eff, denied) = grants::intersect(requested, operator);
        if !denied.is_empty() {
            let list = denied.join(", ");
            if builtin {
                tracing::info!(
                    plugin = %name,
                    %kind,
                    "wasm plugin: permissions requested but not granted (grant them under plugins.grants.{name}): {list}"
                );
            } else {
                tracing::warn!(
                    plugin = %name,
                    %kind,
                    "wasm plugin: permissions requested but not granted (grant them under plugins.grants.{name}): {list}"
                );
            }
        }
        eff
    }

    /// Loads one installed plugin at start-up; failures become its state.
    fn load_installed(&self, kind: PluginKind, name: &str) {
        let dir = self.plugin_dir(kind, name);
        let info_path = dir.join("info.json");
        let mut info: PluginInfo = match std::fs::read(&info_path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(i) => i,
            Err(e) => {
                tracing::error!(plugin = %name, "wasm plugin: cannot read {}: {e}", info_path.display());
                return;
            }
        };
        if self.cache_path(&info.sha256).is_file() {
            // The compiled artifact is there: register now, map it on first use.
            let operator = self.operator_grants(&info.name, &info.operator_grants);
            info.permissions_granted = grants::intersect(&info.permissions_requested, &operator).0;
            info.state = "installed".into();
            let weak = Arc::downgrade(&self.inner);
            let for_load = info.clone();
            let slot = PluginSlot::lazy(Box::new(move || {
                let inner = weak
                    .upgrade()
                    .ok_or_else(|| "the plugin manager has shut down".to_string())?;
                let mgr = PluginManager { inner };
                let dir = mgr.plugin_dir(for_load.kind, &for_load.name);
                let started = std::time::Instant::now();
                let loaded = mgr.load_component(&dir, &for_load)?;
                tracing::debug!(plugin = %for_load.name, ms = started.elapsed().as_millis() as u64, "wasm plugin loaded on first use");
                Ok(loaded)
            }));
            self.register(kind, name, slot.clone(), &info);
            self.inner.plugins.write().insert(
                (kind, name.to_string()),
                Entry {
                    info,
                    slot: Some(slot),
                },
            );
            return;
        }
        match self.load_component(&dir, &info) {
            Ok(loaded) => {
                info.permissions_granted = loaded.effective_grants().clone();
                info.state = "installed".into();
                let slot = PluginSlot::new(Arc::new(loaded));
                self.register(kind, name, slot.clone(), &info);
                self.inner.plugins.write().insert(
                    (kind, name.to_string()),
                    Entry {
                        info,
                        slot: Some(slot),
                    },
                );
            }
            Err(e) => {
                tracing::error!(plugin = %name, "wasm plugin: cannot load: {e}");
                info.state = format!("error: {e}");
                self.inner
                    .plugins
                    .write()
                    .insert((kind, name.to_string()), Entry { info, slot: None });
            }
        }
    }

    fn load_component(&self, dir: &Path, info: &PluginInfo) -> Result<LoadedPlugin, String> {
        let rt = &self.inner.runtime;
        let cache = self.cache_path(&info.sha256);
        let component = match rt
            .load_precompiled_file(&cache)
            .map_err(|e| format!("{e:#}"))
        {
            Ok(c) => c,
            Err(why) => {
                tracing::info!(plugin = %info.name, "wasm plugin: recompiling ({why})");
                let wasm = std::fs::read(dir.join(format!("{}.wasm", info.name)))
                    .map_err(|e| e.to_string())?;
                if sha256_hex(&wasm) != info.sha256 {
                    return Err("the installed .wasm does not match its recorded sha256".into());
                }
                let cwasm = rt.precompile(&wasm).map_err(|e| format!("{e:#}"))?;
                write_atomic(&cache, &cwasm).map_err(|e| e.to_string())?;
                drop(cwasm);
                // Mapped from the cache like at every later start: code
                // pages file-backed and resident only once used.
                rt.load_precompiled_file(&cache)
                    .map_err(|e| format!("{e:#}"))?
            }
        };
        let operator = self.operator_grants(&info.name, &info.operator_grants);
        let eff = self.effective(
            info.kind,
            &info.name,
            &info.permissions_requested,
            &operator,
            info.builtin,
        );
        LoadedPlugin::new(
            rt.clone(),
            &component,
            info.kind,
            &info.name,
            &info.version,
            eff,
            CallLimits::new(&self.inner.cfg, info.limits.as_ref()),
        )
    }

    fn register(&self, kind: PluginKind, name: &str, slot: Arc<PluginSlot>, info: &PluginInfo) {
        slot.set_info(connector_info(info));
        match kind {
            PluginKind::Source => self
                .inner
                .registry
                .add_source(Arc::new(WasmSourceFactory::new(name, slot))),
            PluginKind::Sink => self
                .inner
                .registry
                .add_sink(Arc::new(WasmSinkFactory::new(name, slot))),
        }
    }

    /// Uninstalls a plugin: unregisters it and removes its files.
    pub fn delete(&self, kind: PluginKind, name: &str) -> Result<(), PluginError> {
        if self
            .inner
            .pending
            .lock()
            .contains(&(kind, name.to_string()))
        {
            return Err(PluginError::BadRequest(format!(
                "{kind} plugin {name} is being upgraded; delete it when the upgrade has finished"
            )));
        }
        let entry = self
            .inner
            .plugins
            .write()
            .remove(&(kind, name.to_string()))
            .ok_or_else(|| {
                PluginError::NotFound(format!("{kind} plugin {name} is not installed"))
            })?;
        match kind {
            PluginKind::Source => self.inner.registry.remove_source(name),
            PluginKind::Sink => self.inner.registry.remove_sink(name),
        }
        if let Some(slot) = &entry.slot {
            slot.set(None);
        }
        let dir = self.plugin_dir(kind, name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| internal(format!("cannot remove {}: {e}", dir.display())))?;
        }
        let shared = self
            .inner
            .plugins
            .read()
            .values()
            .any(|e| e.info.sha256 == entry.info.sha256);
        if !shared {
            let _ = std::fs::remove_file(self.cache_path(&entry.info.sha256));
        }
        tracing::info!(plugin = %name, kind = %kind, "wasm plugin deleted");
        Ok(())
    }

    /// Names of installed plugins of one kind, sorted.
    /// The largest package accepted (download or upload), bytes.
    pub fn max_package_bytes(&self) -> usize {
        usize::try_from(self.inner.cfg.max_download_bytes).unwrap_or(usize::MAX)
    }

    pub fn list(&self, kind: PluginKind) -> Vec<String> {
        self.inner
            .plugins
            .read()
            .keys()
            .filter(|(k, _)| *k == kind)
            .map(|(_, n)| n.clone())
            .collect()
    }

    pub fn get(&self, kind: PluginKind, name: &str) -> Option<PluginInfo> {
        self.inner
            .plugins
            .read()
            .get(&(kind, name.to_string()))
            .map(|e| {
                let mut info = e.info.clone();
                if let Some(slot) = &e.slot {
                    if let Some(err) = slot.error() {
                        info.state = format!("error: {err}");
                    }
                    let cur = slot.peek();
                    info.loaded = Some(cur.is_some());
                    info.log_lines_dropped = cur.as_ref().map(|p| p.log_lines_dropped());
                    info.instances = cur.as_ref().map(|p| p.live_instances());
                    info.calls = cur.as_ref().map(|p| p.call_counts());
                    info.compiled = cur.map(|p| p.tier().as_str().to_string());
                } else {
                    info.loaded = Some(false);
                }
                info
            })
    }

    /// The loaded plugin (for benchmarks and tests).
    pub fn loaded(&self, kind: PluginKind, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.inner
            .plugins
            .read()
            .get(&(kind, name.to_string()))
            .and_then(|e| e.slot.as_ref().and_then(|s| s.get()))
    }

    /// Replaces the operator grants of an installed plugin (the server-config
    /// grants still apply on top). New instances get the new effective set.
    pub async fn set_grants(
        &self,
        kind: PluginKind,
        name: &str,
        grants: Grants,
    ) -> Result<PluginInfo, PluginError> {
        grants::validate(&grants).map_err(|e| PluginError::BadRequest(format!("grants: {e}")))?;
        let _g = self.inner.ops.lock().await;
        let (mut info, slot) = match self.inner.plugins.read().get(&(kind, name.to_string())) {
            Some(e) => (e.info.clone(), e.slot.clone()),
            None => {
                return Err(PluginError::NotFound(format!(
                    "{kind} plugin {name} is not installed"
                )))
            }
        };
        info.operator_grants = grants;
        let dir = self.plugin_dir(kind, name);
        let loaded = self.load_component(&dir, &info).map_err(internal)?;
        info.permissions_granted = loaded.effective_grants().clone();
        info.state = "installed".into();
        let bytes = serde_json::to_vec_pretty(&info).map_err(internal)?;
        write_atomic(&dir.join("info.json"), &bytes).map_err(internal)?;
        let loaded = Arc::new(loaded);
        let slot = match slot {
            Some(s) => {
                s.set(Some(loaded));
                s.set_info(connector_info(&info));
                s
            }
            None => {
                let s = PluginSlot::new(loaded);
                self.register(kind, name, s.clone(), &info);
                s
            }
        };
        if let Some(e) = self
            .inner
            .plugins
            .write()
            .get_mut(&(kind, name.to_string()))
        {
            e.info = info.clone();
            e.slot = Some(slot);
        }
        Ok(info)
    }
}

/// Runs a future to completion from synchronous code, inside or outside a runtime.
fn block_on<T: Send + 'static>(
    fut: impl std::future::Future<Output = Result<T, PluginError>> + Send + 'static,
) -> Result<T, PluginError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(internal)?;
            rt.block_on(fut)
        })
        .join()
        .unwrap_or_else(|_| Err(PluginError::Internal("plugin loader panicked".into())))
    })
}

/// Compiles on a blocking thread (seconds for a large component). The outer
/// error is a panicked compile task, the inner one the compiler's verdict.
async fn precompile_blocking(
    rt: &Arc<Runtime>,
    wasm: Vec<u8>,
) -> Result<wasmtime::Result<Vec<u8>>, PluginError> {
    let rt = rt.clone();
    tokio::task::spawn_blocking(move || rt.precompile(&wasm))
        .await
        .map_err(internal)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
