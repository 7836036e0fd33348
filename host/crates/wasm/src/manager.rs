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

/// What a plugin's factory declares: its description and property schema
/// (`properties-schema` from `describe`, else the manifest's `properties`);
/// a plugin source never ends on its own and may hold a connection.
pub fn connector_info(info: &PluginInfo) -> ConnectorInfo {
    let from_manifest = || match &info.properties {
        serde_json::Value::Null => None,
        v => oort_core::schema::parse_plugin_schema(&v.to_string()),
    };
    let properties = info
        .properties_schema
        .as_deref()
        .and_then(oort_core::schema::parse_plugin_schema)
        .or_else(from_manifest)
        .unwrap_or_default();
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

    fn effective(&self, name: &str, requested: &Grants, operator: &Grants) -> Grants {
        let (eff, denied) = grants::intersect(requested, operator);
        for d in denied {
            tracing::warn!(plugin = %name, "wasm plugin: permission requested but not granted: {d}");
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
        let eff = self.effective(&info.name, &info.permissions_requested, &operator);
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

    /// Compiles and checks a package; nothing is written.
    async fn prepare(
        &self,
        kind: PluginKind,
        name: &str,
        unpacked: Unpacked,
        origin: Origin,
    ) -> Result<Prepared, PluginError> {
        let Origin {
            file,
            package_sha256,
            request_grants,
            builtin,
        } = origin;
        let bad = PluginError::BadRequest;
        let manifest = match &unpacked.manifest {
            Some(b) => Some(Manifest::parse(b, name, kind).map_err(bad)?),
            None => None,
        };
        let conf_keys = match &unpacked.yaml {
            Some(y) => Some(
                serde_yaml_ng::from_slice::<serde_json::Value>(y)
                    .map_err(|e| bad(format!("{name}.yaml is not valid YAML: {e}")))?,
            ),
            None => None,
        };
        grants::validate(&request_grants).map_err(|e| bad(format!("grants: {e}")))?;
        let permit = self.inner.compiles.acquire().await.map_err(internal)?;
        let tiered = self
            .inner
            .cfg
            .tiered_min_bytes
            .is_some_and(|min| unpacked.wasm.len() >= min);
        let mut compiled = None;
        if tiered {
            // Large component: baseline code now, optimised code later.
            match self.baseline_runtime() {
                Ok(rt) => match precompile_blocking(&rt, unpacked.wasm.clone()).await? {
                    Ok(c) => compiled = Some((rt, c)),
                    Err(e) => {
                        tracing::info!(plugin = %name, "wasm plugin: baseline compiler declined ({e:#}); compiling with Cranelift")
                    }
                },
                Err(e) => {
                    tracing::warn!(plugin = %name, "wasm plugin: no baseline engine ({e}); compiling with Cranelift")
                }
            }
        }
        let (rt, cwasm) = match compiled {
            Some(c) => c,
            None => {
                let rt = self.inner.runtime.clone();
                let cwasm = precompile_blocking(&rt, unpacked.wasm.clone())
                    .await?
                    .map_err(|e| bad(format!("the component does not compile: {e:#}")))?;
                (rt, cwasm)
            }
        };
        drop(permit);
        let component: Component = rt
            .load_precompiled(&cwasm)
            .map_err(|e| internal(format!("{e:#}")))?;
        let limits = manifest.as_ref().and_then(|m| m.limits.clone());
        let call_limits = CallLimits::new(&self.inner.cfg, limits.as_ref());
        let version0 = manifest
            .as_ref()
            .map(|m| m.version.clone())
            .unwrap_or_default();
        // A first link without grants, to run `describe`.
        let probe = Arc::new(
            LoadedPlugin::new(
                rt.clone(),
                &component,
                kind,
                name,
                &version0,
                Grants::default(),
                call_limits.clone(),
            )
            .map_err(bad)?,
        );
        let described = probe
            .describe()
            .await
            .map_err(|e| bad(format!("describe failed: {e}")))?;
        if described.name != name {
            return Err(bad(format!(
                "name mismatch: the component describes itself as {:?}, installed as {name:?}",
                described.name
            )));
        }
        if let Some(m) = &manifest {
            if m.version != described.version {
                return Err(bad(format!(
                    "version mismatch: manifest says {}, the component says {}",
                    m.version, described.version
                )));
            }
        }
        let requested = match &manifest {
            Some(m) => m.permissions.clone(),
            None => from_wit_permissions(described.permissions.clone()),
        };
        grants::validate(&requested).map_err(|e| bad(format!("requested permissions: {e}")))?;
        let operator = self.operator_grants(name, &request_grants);
        let eff = self.effective(name, &requested, &operator);
        let loaded = LoadedPlugin::new(
            rt.clone(),
            &component,
            kind,
            name,
            &described.version,
            eff.clone(),
            call_limits,
        )
        .map_err(bad)?;
        let info = PluginInfo {
            name: name.to_string(),
            kind,
            version: described.version.clone(),
            sha256: sha256_hex(&unpacked.wasm),
            package_sha256,
            world: kind.world().to_string(),
            description: match &manifest {
                Some(m) if !m.description().is_empty() => m.description(),
                _ => described.description.clone(),
            },
            permissions_requested: requested,
            permissions_granted: eff,
            operator_grants: request_grants,
            installed_at: now_ms(),
            state: "installed".into(),
            file,
            builtin,
            properties: manifest
                .as_ref()
                .map(|m| m.properties.clone())
                .unwrap_or_default(),
            properties_schema: described.properties_schema.clone(),
            conf_keys,
            limits,
            loaded: None,
            compiled: None,
            log_lines_dropped: None,
            instances: None,
        };
        Ok(Prepared {
            info,
            loaded: Arc::new(loaded),
            cwasm,
            unpacked,
        })
    }

    /// Writes a prepared plugin to staging, then moves it into place and registers it.
    fn commit(&self, p: Prepared, staging: &Path) -> Result<PluginInfo, PluginError> {
        let name = p.info.name.clone();
        let kind = p.info.kind;
        let pkg = staging.join("pkg");
        std::fs::create_dir_all(&pkg).map_err(internal)?;
        std::fs::write(pkg.join(format!("{name}.wasm")), &p.unpacked.wasm).map_err(internal)?;
        if let Some(m) = &p.unpacked.manifest {
            std::fs::write(pkg.join(format!("{name}.json")), m).map_err(internal)?;
        }
        if let Some(y) = &p.unpacked.yaml {
            std::fs::write(pkg.join(format!("{name}.yaml")), y).map_err(internal)?;
        }
        let info_json = serde_json::to_vec_pretty(&p.info).map_err(internal)?;
        std::fs::write(pkg.join("info.json"), info_json).map_err(internal)?;
        let cache = self.cache_path(&p.info.sha256);
        let baseline = p.loaded.tier() == Tier::Baseline;
        if !baseline && !cache.exists() {
            let staged = staging.join("component.cwasm");
            std::fs::write(&staged, &p.cwasm).map_err(internal)?;
            std::fs::rename(&staged, &cache).map_err(internal)?;
        }
        let dest = self.plugin_dir(kind, &name);
        if dest.exists() {
            // Upgrade: the old version goes into staging and is removed with it.
            std::fs::rename(&dest, staging.join("old")).map_err(internal)?;
        }
        std::fs::rename(&pkg, &dest).map_err(internal)?;
        let mut map = self.inner.plugins.write();
        let key = (kind, name.clone());
        let loaded = p.loaded.clone();
        let slot = match map.get_mut(&key) {
            Some(Entry {
                slot: Some(slot),
                info,
            }) => {
                slot.set(Some(p.loaded));
                slot.set_info(connector_info(&p.info));
                *info = p.info.clone();
                slot.clone()
            }
            _ => {
                let slot = PluginSlot::new(p.loaded);
                self.register(kind, &name, slot.clone(), &p.info);
                map.insert(
                    key,
                    Entry {
                        info: p.info.clone(),
                        slot: Some(slot.clone()),
                    },
                );
                slot
            }
        };
        drop(map);
        let mut info = p.info;
        info.compiled = Some(loaded.tier().as_str().to_string());
        if baseline {
            self.optimize_later(p.unpacked.wasm, info.sha256.clone(), cache, loaded, slot);
        }
        Ok(info)
    }

    /// The baseline (Winch) engine, created on first use.
    fn baseline_runtime(&self) -> Result<Arc<Runtime>, String> {
        let mut g = self.inner.baseline.lock();
        if let Some(rt) = g.as_ref() {
            return Ok(rt.clone());
        }
        let rt = Runtime::with_tier(false, self.inner.cfg.memory_limit_bytes, Tier::Baseline)
            .map_err(|e| format!("{e:#}"))?;
        *g = Some(rt.clone());
        Ok(rt)
    }

    /// Compiles a plugin installed on baseline code with Cranelift in the
    /// background, caches the artifact and swaps the slot to it. Instances
    /// already running keep the baseline code until their rule restarts.
    /// Nothing happens if the plugin was upgraded or deleted meanwhile.
    fn optimize_later(
        &self,
        wasm: Vec<u8>,
        sha: String,
        cache: PathBuf,
        baseline: Arc<LoadedPlugin>,
        slot: Arc<PluginSlot>,
    ) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(plugin = %baseline.name, "wasm plugin: no async runtime to optimise in; staying on baseline code");
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        handle.spawn(async move {
            let name = baseline.name.clone();
            let started = std::time::Instant::now();
            let Some(inner) = weak.upgrade() else { return };
            let Ok(permit) = inner.compiles.acquire().await else {
                return;
            };
            let rt = inner.runtime.clone();
            let compiled = precompile_blocking(&rt, wasm).await;
            drop(permit);
            drop(inner);
            let cwasm = match compiled {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    tracing::warn!(plugin = %name, "wasm plugin: optimising compile failed, staying on baseline code: {e:#}");
                    return;
                }
                Err(e) => {
                    tracing::warn!(plugin = %name, "wasm plugin: optimising compile failed: {e}");
                    return;
                }
            };
            let optimized = rt
                .load_precompiled(&cwasm)
                .map_err(|e| format!("{e:#}"))
                .and_then(|c| {
                    LoadedPlugin::new(
                        rt.clone(),
                        &c,
                        baseline.kind,
                        &baseline.name,
                        &baseline.version,
                        baseline.effective_grants().clone(),
                        baseline.limits.clone(),
                    )
                });
            let optimized = match optimized {
                Ok(p) => Arc::new(p),
                Err(e) => {
                    tracing::warn!(plugin = %name, "wasm plugin: optimised code does not load, staying on baseline code: {e}");
                    return;
                }
            };
            // Cached before the swap, so a restart right after it finds the artifact.
            if let Err(e) = write_atomic(&cache, &cwasm) {
                tracing::warn!(plugin = %name, "wasm plugin: cannot cache the optimised code: {e}");
            }
            if !slot.replace_if(&baseline, optimized) {
                // Upgraded or deleted meanwhile: keep the artifact only if an
                // installed plugin still has this component.
                let used = weak.upgrade().is_some_and(|inner| {
                    inner.plugins.read().values().any(|e| e.info.sha256 == sha)
                });
                if !used {
                    let _ = std::fs::remove_file(&cache);
                }
                return;
            }
            tracing::info!(plugin = %name, ms = started.elapsed().as_millis() as u64, "wasm plugin: optimised code in use for new instances");
        });
    }

    fn staging(&self) -> Result<tempfile::TempDir, PluginError> {
        tempfile::Builder::new()
            .prefix("install-")
            .tempdir_in(self.inner.root.join(".tmp"))
            .map_err(internal)
    }

    /// Downloads, checks and compiles without holding the manager lock (so
    /// several installs run at once), then commits under it.
    async fn install_from_uri(
        &self,
        req: InstallRequest,
        builtin: bool,
        upgrade: bool,
    ) -> Result<PluginInfo, PluginError> {
        let staging = self.staging()?;
        let bytes = package::fetch(&req.file, &self.inner.cfg)
            .await
            .map_err(PluginError::BadRequest)?;
        let package_sha = sha256_hex(&bytes);
        if let Some(want) = &req.sha256 {
            if !want.trim().eq_ignore_ascii_case(&package_sha) {
                // The actual digest is not shown: it would tell the caller
                // something about a file they may not be able to read.
                return Err(PluginError::BadRequest(format!(
                    "sha256 mismatch for {}: the file's digest is not {}",
                    req.file,
                    want.trim()
                )));
            }
        }
        let unpacked =
            package::unpack(&bytes, &req.name, &self.inner.cfg).map_err(PluginError::BadRequest)?;
        drop(bytes);
        let grants = req.grants.clone().unwrap_or_default();
        let prepared = self
            .prepare(
                req.kind,
                &req.name,
                unpacked,
                Origin {
                    file: req.file.clone(),
                    package_sha256: package_sha,
                    request_grants: grants,
                    builtin,
                },
            )
            .await?;
        let _g = self.inner.ops.lock().await;
        let present = self
            .inner
            .plugins
            .read()
            .contains_key(&(req.kind, req.name.clone()));
        if present != upgrade {
            // Deleted (or installed) by someone else while this one compiled.
            return Err(if upgrade {
                PluginError::NotFound(format!(
                    "{} plugin {} was deleted during the upgrade",
                    req.kind, req.name
                ))
            } else {
                PluginError::BadRequest(format!(
                    "{} plugin {} is already installed; use PUT to upgrade it",
                    req.kind, req.name
                ))
            });
        }
        let info = self.commit(prepared, staging.path())?;
        tracing::info!(plugin = %info.name, kind = %info.kind, version = %info.version, "wasm plugin installed");
        Ok(info)
    }

    /// Claims `kind/name` for one install or upgrade.
    fn reserve(&self, kind: PluginKind, name: &str) -> Result<Reservation, PluginError> {
        let key = (kind, name.to_string());
        if !self.inner.pending.lock().insert(key.clone()) {
            return Err(PluginError::BadRequest(format!(
                "an install or upgrade of {kind} plugin {name} is already in progress"
            )));
        }
        Ok(Reservation {
            inner: self.inner.clone(),
            key,
        })
    }

    fn name_taken_by_builtin(&self, kind: PluginKind, name: &str) -> bool {
        let ours = self
            .inner
            .plugins
            .read()
            .contains_key(&(kind, name.to_string()));
        let exists = match kind {
            PluginKind::Source => self.inner.registry.source(name).is_some(),
            PluginKind::Sink => self.inner.registry.sink(name).is_some(),
        };
        exists && !ours
    }

    /// Installs a new plugin. Refused if the name is taken.
    pub async fn install(&self, req: InstallRequest) -> Result<PluginInfo, PluginError> {
        check_name(&req.name)?;
        let _claim = self.reserve(req.kind, &req.name)?;
        if self
            .inner
            .plugins
            .read()
            .contains_key(&(req.kind, req.name.clone()))
        {
            return Err(PluginError::BadRequest(format!(
                "{} plugin {} is already installed; use PUT to upgrade it",
                req.kind, req.name
            )));
        }
        if self.name_taken_by_builtin(req.kind, &req.name) {
            return Err(PluginError::BadRequest(format!(
                "{} {} is a built-in connector; choose another name",
                req.kind, req.name
            )));
        }
        self.install_from_uri(req, false, false).await
    }

    /// Replaces an installed plugin in place. New instances use the new
    /// version; running ones keep the old until their rule restarts.
    pub async fn upgrade(&self, req: InstallRequest) -> Result<PluginInfo, PluginError> {
        check_name(&req.name)?;
        let _claim = self.reserve(req.kind, &req.name)?;
        if !self
            .inner
            .plugins
            .read()
            .contains_key(&(req.kind, req.name.clone()))
        {
            return Err(PluginError::NotFound(format!(
                "{} plugin {} is not installed",
                req.kind, req.name
            )));
        }
        // An upgraded built-in becomes the operator's plugin: the shipped
        // file no longer replaces it at the next start.
        self.install_from_uri(req, false, true).await
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

    /// Installs (or upgrades, when the component changed) the plugins shipped
    /// in `dir`: each `<name>.wasm` (with `<name>.json`/`<name>.yaml` beside
    /// it, if present) and each `<name>.zip`, in `dir` itself (kind from the
    /// manifest or the component) and in `dir/sources`, `dir/sinks`. Returns
    /// the names loaded or updated; a plugin that fails is logged and skipped.
    pub fn load_builtin(&self, dir: &Path) -> Result<Vec<String>, PluginError> {
        let rd = std::fs::read_dir(dir)
            .map_err(|e| internal(format!("cannot read {}: {e}", dir.display())))?;
        let pick = |rd: std::fs::ReadDir| -> Vec<PathBuf> {
            let mut v: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    matches!(
                        p.extension().and_then(|x| x.to_str()),
                        Some("wasm") | Some("zip")
                    )
                })
                .collect();
            v.sort();
            v
        };
        let mut files: Vec<(PathBuf, Option<PluginKind>)> =
            pick(rd).into_iter().map(|p| (p, None)).collect();
        for kind in [PluginKind::Source, PluginKind::Sink] {
            if let Ok(rd) = std::fs::read_dir(dir.join(kind.plural())) {
                files.extend(pick(rd).into_iter().map(|p| (p, Some(kind))));
            }
        }
        let mut done = Vec::new();
        for (path, hint) in files {
            let Some(name) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            match self.load_one_builtin(&path, &name, hint) {
                Ok(true) => done.push(name),
                Ok(false) => {}
                Err(e) => tracing::error!(plugin = %name, "built-in wasm plugin not loaded: {e}"),
            }
        }
        Ok(done)
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

    fn load_one_builtin(
        &self,
        path: &Path,
        name: &str,
        hint: Option<PluginKind>,
    ) -> Result<bool, PluginError> {
        check_name(name)?;
        let bytes = std::fs::read(path).map_err(internal)?;
        let package_sha = sha256_hex(&bytes);
        let is_zip = path.extension().and_then(|x| x.to_str()) == Some("zip");
        let mut unpacked =
            package::unpack(&bytes, name, &self.inner.cfg).map_err(PluginError::BadRequest)?;
        if !is_zip {
            let dir = path.parent().unwrap_or(Path::new("."));
            unpacked.manifest = std::fs::read(dir.join(format!("{name}.json"))).ok();
            unpacked.yaml = std::fs::read(dir.join(format!("{name}.yaml"))).ok();
        }
        let kind = match &unpacked.manifest {
            Some(m) => serde_json::from_slice::<serde_json::Value>(m)
                .ok()
                .and_then(|v| {
                    v.get("kind")
                        .and_then(|k| k.as_str())
                        .and_then(PluginKind::parse)
                })
                .ok_or_else(|| {
                    PluginError::BadRequest(format!("{name}.json: missing or bad kind"))
                })?,
            None => match hint {
                Some(k) => k,
                None => self.detect_kind(&unpacked.wasm)?,
            },
        };
        if let Some(h) = hint {
            if h != kind {
                return Err(PluginError::BadRequest(format!(
                    "{name}: the manifest says {kind} but it is shipped under {}/",
                    h.plural()
                )));
            }
        }
        let sha = sha256_hex(&unpacked.wasm);
        if let Some(e) = self.get(kind, name) {
            if e.sha256 == sha && e.state == "installed" {
                return Ok(false);
            }
            if !e.builtin {
                tracing::warn!(plugin = %name, "an installed plugin shadows the built-in one; keeping the installed one");
                return Ok(false);
            }
        }
        if self.name_taken_by_builtin(kind, name) {
            return Err(PluginError::BadRequest(format!(
                "{kind} {name} is a native connector; built-in plugin skipped"
            )));
        }
        let file = format!("file://{}", path.display());
        let me = self.clone();
        let name = name.to_string();
        let work = async move {
            let _g = me.inner.ops.lock().await;
            let staging = me.staging()?;
            let p = me
                .prepare(
                    kind,
                    &name,
                    unpacked,
                    Origin {
                        file,
                        package_sha256: package_sha,
                        request_grants: Grants::default(),
                        builtin: true,
                    },
                )
                .await?;
            me.commit(p, staging.path())
        };
        block_on(work)?;
        Ok(true)
    }

    fn detect_kind(&self, wasm: &[u8]) -> Result<PluginKind, PluginError> {
        let rt = &self.inner.runtime;
        let cwasm = rt.precompile(wasm).map_err(|e| {
            PluginError::BadRequest(format!("the component does not compile: {e:#}"))
        })?;
        let c = rt
            .load_precompiled(&cwasm)
            .map_err(|e| internal(format!("{e:#}")))?;
        let ty = c.component_type();
        let names: Vec<String> = ty.exports(&rt.engine).map(|(n, _)| n.to_string()).collect();
        if names.iter().any(|n| n == PluginKind::Source.export()) {
            Ok(PluginKind::Source)
        } else if names.iter().any(|n| n == PluginKind::Sink.export()) {
            Ok(PluginKind::Sink)
        } else {
            Err(PluginError::BadRequest(format!(
                "wrong world or version: the component exports neither {} nor {}",
                PluginKind::Source.export(),
                PluginKind::Sink.export()
            )))
        }
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
