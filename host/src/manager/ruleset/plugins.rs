//! The plugin part of an import: installing the document's plugins
//! (concurrently, bounded), explaining packages built for another host,
//! and pruning what a full import left unused.

use super::*;

struct PluginJob {
    section: Section,
    key: String,
    entry: PluginEntry,
    /// Known from the key (`sources_`/`sinks_`); `None` for portable entries.
    kind: Option<PluginKind>,
    /// Full import: an installed plugin of the same name is replaced in
    /// place (upgrade) instead of kept.
    replace: bool,
}

struct JobResult {
    section: Section,
    key: String,
    kind: Option<PluginKind>,
    name: String,
    result: Result<bool, String>,
}

const REBUILD_HINT: &str =
    "Oort runs WebAssembly components only, not Go .so plugins or plugin executables: \
rebuild the connector as a WebAssembly component (see docs/plugins/) and list it under wasmPlugins";

/// Names of the entries of a zip (empty when it is not one).
fn zip_names(bytes: &[u8]) -> Vec<String> {
    match zip::ZipArchive::new(std::io::Cursor::new(bytes)) {
        Ok(z) => z.file_names().map(str::to_string).collect(),
        Err(_) => Vec::new(),
    }
}

/// Why a native/portable package cannot run, and what to do.
pub(super) fn explain_foreign(
    section: Section,
    entry: &PluginEntry,
    kind: Option<PluginKind>,
    bytes: &[u8],
    why: &str,
) -> String {
    let names = zip_names(bytes);
    let so: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| n.ends_with(".so"))
        .collect();
    let what = if !so.is_empty() {
        format!("holds a Go plugin ({})", so.join(", "))
    } else if bytes.starts_with(b"\x7fELF") {
        "is a native executable or shared library".to_string()
    } else if section == Section::PortablePlugins {
        "holds a portable plugin (an executable run as a separate process)".to_string()
    } else {
        format!("is not a WebAssembly component package ({why})")
    };
    let key = match kind {
        Some(k) => format!("{}_{}", k.plural(), entry.name),
        None => format!("sources_{0} or sinks_{0}", entry.name),
    };
    format!("{} {what}. {REBUILD_HINT} as {key}", entry.file)
}

async fn install_job(pm: PluginManager, job: PluginJob) -> JobResult {
    let PluginJob {
        section,
        key,
        entry,
        mut kind,
        replace,
    } = job;
    let name = entry.name.clone();
    let result = async {
        if section == Section::NativePlugins && key.starts_with("functions_") {
            return Err(format!(
                "Go function plugins cannot run in Oort (it has no function plugins); \
                 the SQL functions of {name} are unavailable"
            ));
        }
        let foreign = section != Section::WasmPlugins;
        if foreign {
            // Honoured only when the package holds a component.
            let cfg = oort_wasm::WasmConfig::default();
            let bytes = oort_wasm::package::fetch(&entry.file, &cfg).await?;
            match oort_wasm::package::unpack(&bytes, &name, &cfg) {
                Ok(u) => {
                    if kind.is_none() {
                        kind = u
                            .manifest
                            .as_deref()
                            .and_then(|m| serde_json::from_slice::<Json>(m).ok())
                            .and_then(|v| v.get("kind").and_then(Json::as_str).and_then(PluginKind::parse));
                    }
                }
                Err(e) => return Err(explain_foreign(section, &entry, kind, &bytes, &e)),
            }
        }
        let k = kind.ok_or_else(|| {
            format!("cannot tell whether {name} is a source or a sink: its manifest {name}.json has no kind")
        })?;
        let req = InstallRequest {
            kind: k,
            name: name.clone(),
            file: entry.file.clone(),
            sha256: entry.sha256.clone(),
            grants: entry.grants.clone(),
        };
        match pm.get(k, &name) {
            None => pm.install(req).await,
            Some(cur) => {
                let same = entry
                    .sha256
                    .as_deref()
                    .is_some_and(|s| s.trim().eq_ignore_ascii_case(&cur.package_sha256))
                    && entry.file == cur.file
                    && entry.grants.clone().unwrap_or_default() == cur.operator_grants;
                if !replace || cur.builtin || same {
                    return Ok(false);
                }
                // Replaced in place: the plugin never disappears, so a crash
                // during the import cannot strand the rules it had.
                pm.upgrade(req).await
            }
        }
        .map(|_| true)
        .map_err(|e| e.to_string())
    }
    .await;
    JobResult {
        section,
        key,
        kind,
        name,
        result,
    }
}

impl Manager {
    /// After a full import: uninstalls the plugins that were installed
    /// before, are not named by the document and are used by nothing now.
    pub(super) async fn prune_plugins(&self, plugins: Option<&PluginManager>, doc: &Document) {
        let Some(pm) = plugins else { return };
        let named: BTreeSet<(PluginKind, String)> = doc
            .wasm_plugins
            .iter()
            .chain(doc.native_plugins.iter())
            .chain(doc.portable_plugins.iter())
            .flat_map(|(key, e)| {
                let kind = doc::split_plugin_key(key).and_then(|(t, _)| PluginKind::parse(t));
                let kinds = match kind {
                    Some(k) => vec![k],
                    None => vec![PluginKind::Source, PluginKind::Sink],
                };
                kinds.into_iter().map(move |k| (k, e.name.clone()))
            })
            .collect();
        for kind in [PluginKind::Source, PluginKind::Sink] {
            for name in pm.list(kind) {
                let Some(info) = pm.get(kind, &name) else {
                    continue;
                };
                if info.builtin || named.contains(&(kind, name.clone())) {
                    continue;
                }
                let users = match kind {
                    PluginKind::Source => self
                        .inner
                        .streams
                        .read()
                        .iter()
                        .chain(self.inner.tables.read().iter())
                        .filter(|(_, e)| streams::source_type(&e.def) == name)
                        .map(|(n, _)| n.clone())
                        .collect::<Vec<_>>(),
                    PluginKind::Sink => self.rules_using_connector(false, &name).await,
                };
                if !users.is_empty() {
                    tracing::info!(plugin = %name, "import: plugin not in the document kept, still used by {}", users.join(", "));
                    continue;
                }
                if let Err(e) = pm.delete(kind, &name) {
                    tracing::warn!(plugin = %name, error = %e, "import: could not uninstall a plugin the document does not name");
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn import_plugins(
        &self,
        plugins: Option<&PluginManager>,
        doc: &Document,
        mode: ImportMode,
        progress: &Progress,
        cancel: &CancellationToken,
        out: &mut Outcome,
        failures: &mut Failures,
    ) {
        let mut jobs = Vec::new();
        for (section, map) in [
            (Section::WasmPlugins, &doc.wasm_plugins),
            (Section::NativePlugins, &doc.native_plugins),
            (Section::PortablePlugins, &doc.portable_plugins),
        ] {
            for (key, entry) in map {
                let kind = match section {
                    Section::PortablePlugins => None,
                    _ => doc::split_plugin_key(key).and_then(|(t, _)| PluginKind::parse(t)),
                };
                jobs.push(PluginJob {
                    section,
                    key: key.clone(),
                    entry: entry.clone(),
                    kind,
                    replace: mode == ImportMode::Full,
                });
            }
        }
        if jobs.is_empty() {
            return;
        }
        let Some(pm) = plugins else {
            for j in jobs {
                progress.plugins_failed.fetch_add(1, Ordering::Relaxed);
                let msg = "the WebAssembly plugin host is not available on this server".to_string();
                if let Some(k) = j.kind {
                    failures
                        .plugins
                        .insert((k, j.entry.name.clone()), msg.clone());
                }
                out.report.add(j.section, j.key, msg);
            }
            return;
        };
        let sem = Arc::new(tokio::sync::Semaphore::new(PLUGIN_CONCURRENCY));
        let mut set = tokio::task::JoinSet::new();
        for job in jobs {
            let pm = pm.clone();
            let sem = sem.clone();
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                install_job(pm, job).await
            });
        }
        loop {
            let next = tokio::select! {
                n = set.join_next() => n,
                _ = cancel.cancelled() => {
                    set.abort_all();
                    out.cancelled = true;
                    return;
                }
            };
            let Some(joined) = next else { break };
            let r = match joined {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "plugin install task failed");
                    progress.plugins_failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            match r.result {
                Ok(true) => {
                    progress.plugins_installed.fetch_add(1, Ordering::Relaxed);
                }
                Ok(false) => {
                    progress.plugins_skipped.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    progress.plugins_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(plugin = %r.key, error = %e, "import: plugin not installed");
                    if let Some(k) = r.kind {
                        failures.plugins.insert((k, r.name.clone()), e.clone());
                    }
                    out.report.add(r.section, r.key, e);
                    continue;
                }
            }
            out.applied(r.section);
        }
    }
}
