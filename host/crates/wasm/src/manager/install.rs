//! Installing and upgrading: fetch and unpack a package, compile it (on
//! baseline code first when it is large, optimised later), check its
//! contract, then commit it into place and register its factory.

use super::*;

impl PluginManager {
    /// Compiles and checks a package; nothing is written.
    pub(super) async fn prepare(
        &self,
        kind: PluginKind,
        name: &str,
        unpacked: Unpacked,
        origin: Origin,
        stages: &mut Stages,
    ) -> Result<Prepared, PluginError> {
        let Origin {
            file,
            package_sha256,
            request_grants,
            builtin,
            artifacts,
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
        stages.ok(Stage::Manifest, || match (&manifest, &conf_keys) {
            (Some(m), ck) => format!(
                "{name}.json: version {}, kind {}{}",
                m.version,
                m.kind,
                match ck {
                    Some(serde_json::Value::Object(o)) => format!(
                        "; {name}.yaml: conf keys {}",
                        o.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                    Some(_) => format!("; {name}.yaml"),
                    None => String::new(),
                }
            ),
            (None, _) => {
                "no manifest (a bare component): describe() gives the name, version and permissions"
                    .into()
            }
        });
        grants::validate(&request_grants).map_err(|e| bad(format!("grants: {e}")))?;
        let permit = self.inner.compiles.acquire().await.map_err(internal)?;
        // Shipped plugins are compiled optimised at once, whatever their
        // size: it happens at a start (no request waits), once, and the
        // code is then kept beside them for every later data dir; tiering
        // would compile them again in the background on every new data dir.
        let tiered = !builtin
            && self
                .inner
                .cfg
                .tiered_min_bytes
                .is_some_and(|min| unpacked.wasm.len() >= min);
        let mut compiled = None;
        let shared = artifacts.as_ref().map(|d| {
            d.join(format!(
                "{}-{}.cwasm",
                sha256_hex(&unpacked.wasm),
                self.inner.runtime.engine_key
            ))
        });
        if let Some(path) = shared.as_ref().filter(|p| builtin::trusted_artifact(p)) {
            match std::fs::read(path) {
                Ok(c) if self.inner.runtime.load_precompiled(&c).is_ok() => {
                    compiled = Some((self.inner.runtime.clone(), c));
                }
                _ => {
                    tracing::debug!(path = %path.display(), "shipped plugin artifact not usable; compiling")
                }
            }
        }
        if tiered && compiled.is_none() {
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
                if let Some(path) = &shared {
                    builtin::keep_artifact(path, &cwasm);
                }
                (rt, cwasm)
            }
        };
        drop(permit);
        let component: Component = rt
            .load_precompiled(&cwasm)
            .map_err(|e| internal(format!("{e:#}")))?;
        stages.ok(Stage::Compile, || {
            format!(
                "{} bytes of component, {} code",
                unpacked.wasm.len(),
                rt.tier.as_str()
            )
        });
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
        stages.ok(Stage::Contract, || {
            format!(
                "exports {}; every import is one the host links",
                probe.contract.export(kind)
            )
        });
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
        stages.ok(Stage::Describe, || {
            format!(
                "{} {}: {:?}{}",
                described.name,
                described.version,
                described.description,
                if described.properties_schema.is_some() {
                    ", with a properties schema"
                } else {
                    ""
                }
            )
        });
        grants::validate(&requested).map_err(|e| bad(format!("requested permissions: {e}")))?;
        stages.ok(Stage::Permissions, || {
            if requested.is_empty() {
                "none requested".to_string()
            } else {
                format!(
                    "requested (granted only by the operator): outbound {:?}, dirs {:?}, env {:?}",
                    requested.outbound, requested.dirs, requested.env
                )
            }
        });
        let operator = self.operator_grants(name, &request_grants);
        let eff = self.effective(kind, name, &requested, &operator, builtin);
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
            world: loaded.contract.world(kind).to_string(),
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
            calls: None,
        };
        Ok(Prepared {
            info,
            loaded: Arc::new(loaded),
            cwasm,
            unpacked,
        })
    }

    /// Writes a prepared plugin to staging, then moves it into place and registers it.
    pub(super) fn commit(&self, p: Prepared, staging: &Path) -> Result<PluginInfo, PluginError> {
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
    pub(super) fn baseline_runtime(&self) -> Result<Arc<Runtime>, String> {
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
    pub(super) fn optimize_later(
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

    pub(super) fn staging(&self) -> Result<tempfile::TempDir, PluginError> {
        tempfile::Builder::new()
            .prefix("install-")
            .tempdir_in(self.inner.root.join(".tmp"))
            .map_err(internal)
    }

    /// Downloads, checks and compiles without holding the manager lock (so
    /// several installs run at once), then commits under it.
    pub(super) async fn install_from_uri(
        &self,
        req: InstallRequest,
        builtin: bool,
        upgrade: bool,
    ) -> Result<PluginInfo, PluginError> {
        let bytes = package::fetch(&req.file, &self.inner.cfg)
            .await
            .map_err(PluginError::BadRequest)?;
        self.install_bytes(req, bytes, builtin, upgrade).await
    }

    /// Installs a package uploaded in the request body (`PUT
    /// /plugins/{kind}/{name}/package`): a new plugin, or an upgrade of an
    /// installed one that keeps its operator grants. Returns the plugin and
    /// whether it was an upgrade.
    pub async fn install_upload(
        &self,
        kind: PluginKind,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<(PluginInfo, bool), PluginError> {
        check_name(name)?;
        if bytes.len() as u64 > self.inner.cfg.max_download_bytes {
            return Err(PluginError::BadRequest(format!(
                "the package is {} bytes, more than the {} accepted",
                bytes.len(),
                self.inner.cfg.max_download_bytes
            )));
        }
        let _claim = self.reserve(kind, name)?;
        let existing = self.get(kind, name);
        if existing.is_none() && self.name_taken_by_builtin(kind, name) {
            return Err(PluginError::BadRequest(format!(
                "{kind} {name} is a built-in connector; choose another name"
            )));
        }
        let req = InstallRequest {
            kind,
            name: name.to_string(),
            file: format!("upload:{name}"),
            sha256: None,
            grants: existing.as_ref().map(|i| i.operator_grants.clone()),
        };
        let upgrade = existing.is_some();
        let info = self.install_bytes(req, bytes, false, upgrade).await?;
        Ok((info, upgrade))
    }

    /// The install or upgrade of a package's bytes (after its download).
    async fn install_bytes(
        &self,
        req: InstallRequest,
        bytes: Vec<u8>,
        builtin: bool,
        upgrade: bool,
    ) -> Result<PluginInfo, PluginError> {
        let staging = self.staging()?;
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
                    artifacts: None,
                },
                &mut Stages::default(),
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
    pub(super) fn reserve(&self, kind: PluginKind, name: &str) -> Result<Reservation, PluginError> {
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

    pub(super) fn name_taken_by_builtin(&self, kind: PluginKind, name: &str) -> bool {
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
}
