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
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
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
                        artifacts: artifact_dir(&dir),
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
        match crate::bindings::Contract::detect(&names) {
            Some((kind, _)) => Ok(kind),
            None => Err(PluginError::BadRequest(format!(
                "wrong world or version: the component exports neither {} nor {}",
                crate::bindings::Contract::accepted_exports(PluginKind::Source),
                crate::bindings::Contract::accepted_exports(PluginKind::Sink)
            ))),
        }
    }
}

/// Where the compiled code of shipped plugins is kept beside them
/// (`<dir>/.compiled/<sha256>-<engine>.cwasm`), so that a first start with a
/// new data dir maps it instead of compiling every shipped plugin again.
/// Compiled code is native code, so the directory is used only when it is
/// owned by this user and writable by no one else; otherwise each data dir
/// compiles its own (as for installed plugins).
pub(super) fn artifact_dir(shipped: &Path) -> Option<PathBuf> {
    let d = shipped.join(".compiled");
    if !d.exists() {
        let _ = std::fs::create_dir(&d);
    }
    private_to_us(&d).then_some(d)
}

/// A shipped plugin's artifact may be loaded: a regular file owned by this
/// user, writable by no one else, in such a directory.
pub(super) fn trusted_artifact(path: &Path) -> bool {
    path.is_file() && private_to_us(path) && path.parent().is_some_and(private_to_us)
}

/// Writes an artifact (atomically); a read-only directory is not an error.
pub(super) fn keep_artifact(path: &Path, cwasm: &[u8]) {
    if path.exists() {
        return;
    }
    if let Err(e) = write_atomic(path, cwasm) {
        tracing::debug!(path = %path.display(), "shipped plugin artifact not kept: {e}");
    }
}

fn private_to_us(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return false;
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    let me = unsafe { libc::geteuid() };
    !m.file_type().is_symlink() && m.uid() == me && m.mode() & 0o022 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_are_trusted_only_when_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let shipped = dir.path().join("shipped");
        std::fs::create_dir(&shipped).unwrap();
        std::fs::set_permissions(&shipped, std::fs::Permissions::from_mode(0o755)).unwrap();
        let d = artifact_dir(&shipped).expect("created and private");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let a = d.join("x-e.cwasm");
        keep_artifact(&a, b"code");
        std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(trusted_artifact(&a));
        std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(!trusted_artifact(&a), "world-writable file");
        std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(!trusted_artifact(&a), "world-writable directory");
        assert!(artifact_dir(&shipped).is_none());
        let link = d.join("l.cwasm");
        std::os::unix::fs::symlink(&a, &link).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(!trusted_artifact(&link), "symlink");
    }
}
