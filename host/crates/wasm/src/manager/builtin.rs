//! The plugins shipped with Oort (`builtin-plugins/dist`): installed or
//! upgraded at start from a directory, their kind detected from the
//! manifest or the component.

use super::*;

impl PluginManager {
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

    pub(super) fn load_one_builtin(
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
                    &mut Stages::default(),
                )
                .await?;
            me.commit(p, staging.path())
        };
        block_on(work)?;
        Ok(true)
    }

    pub(super) fn detect_kind(&self, wasm: &[u8]) -> Result<PluginKind, PluginError> {
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
