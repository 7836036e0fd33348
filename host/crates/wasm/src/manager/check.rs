//! `oort plugin check`: the checks an install runs (package, manifest,
//! compile, contract, describe, permissions), then `validate` with sample
//! properties, reported stage by stage instead of stopping at the first
//! error message. Runs on a manager opened over a throwaway data dir, so
//! nothing is installed anywhere.

use serde::Serialize;

use super::*;

/// The stages of a check, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The plugin name (syntax, not a native connector's name).
    Name,
    /// A zip package or a bare component, unpacked within the limits.
    Package,
    /// Source or sink.
    Kind,
    /// `<name>.json` and `<name>.yaml`.
    Manifest,
    /// The component compiles with the host's engine.
    Compile,
    /// It exports the interface of its kind at the host's contract version
    /// and imports only what the host links.
    Contract,
    /// `describe` answers, and agrees with the name and the manifest.
    Describe,
    /// The permissions it asks for are well-formed.
    Permissions,
    /// `validate` accepts a sample of properties.
    Validate,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Name => "name",
            Stage::Package => "package",
            Stage::Kind => "kind",
            Stage::Manifest => "manifest",
            Stage::Compile => "compile",
            Stage::Contract => "contract",
            Stage::Describe => "describe",
            Stage::Permissions => "permissions",
            Stage::Validate => "validate",
        }
    }
}

/// The stages `prepare` runs, in order: the first one not passed is the one
/// that failed.
const PREPARE_STAGES: [Stage; 5] = [
    Stage::Manifest,
    Stage::Compile,
    Stage::Contract,
    Stage::Describe,
    Stage::Permissions,
];

/// One line of a report.
#[derive(Debug, Clone, Serialize)]
pub struct CheckStep {
    pub stage: Stage,
    pub ok: bool,
    pub detail: String,
}

/// The stages passed so far (install passes a throwaway one).
#[derive(Debug, Default)]
pub struct Stages {
    pub steps: Vec<CheckStep>,
}

impl Stages {
    /// Records a passed stage; the detail is built only when kept.
    pub(super) fn ok(&mut self, stage: Stage, detail: impl FnOnce() -> String) {
        self.steps.push(CheckStep {
            stage,
            ok: true,
            detail: detail(),
        });
    }

    fn fail(&mut self, stage: Stage, detail: String) {
        self.steps.push(CheckStep {
            stage,
            ok: false,
            detail,
        });
    }

    fn passed(&self, stage: Stage) -> bool {
        self.steps.iter().any(|s| s.stage == stage && s.ok)
    }
}

/// What to check.
#[derive(Debug, Clone)]
pub struct CheckInput {
    pub name: String,
    /// Known from the command line; else from the manifest, else from the
    /// component's exports.
    pub kind: Option<PluginKind>,
    /// A zip package or a bare `.wasm`.
    pub bytes: Vec<u8>,
    /// Sample properties (label, JSON object) for `validate`; when empty,
    /// each conf key of `<name>.yaml`, else `{}`.
    pub samples: Vec<(String, String)>,
    /// The DATASOURCE a source's samples are validated with.
    pub datasource: String,
}

/// The outcome: every stage run, and what an install would show.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub name: String,
    pub kind: Option<PluginKind>,
    pub passed: bool,
    pub steps: Vec<CheckStep>,
}

impl PluginManager {
    /// Runs the install checks on a package without installing it, then
    /// `validate` with each sample. Never fails: failures are report lines.
    pub async fn check(&self, input: CheckInput) -> CheckReport {
        let mut stages = Stages::default();
        let kind = self.check_stages(&input, &mut stages).await;
        CheckReport {
            name: input.name,
            kind,
            passed: stages.steps.iter().all(|s| s.ok),
            steps: stages.steps,
        }
    }

    async fn check_stages(&self, input: &CheckInput, st: &mut Stages) -> Option<PluginKind> {
        let name = input.name.as_str();
        if let Err(e) = check_name(name) {
            st.fail(Stage::Name, e.to_string());
            return None;
        }
        st.ok(Stage::Name, || name.to_string());
        let unpacked = match package::unpack(&input.bytes, name, &self.inner.cfg) {
            Ok(u) => u,
            Err(e) => {
                st.fail(Stage::Package, e);
                return None;
            }
        };
        st.ok(Stage::Package, || {
            let mut parts = vec![format!("{name}.wasm ({} bytes)", unpacked.wasm.len())];
            if unpacked.manifest.is_some() {
                parts.push(format!("{name}.json"));
            }
            if unpacked.yaml.is_some() {
                parts.push(format!("{name}.yaml"));
            }
            let what = if input.bytes.starts_with(b"PK") {
                "zip package"
            } else {
                "bare component"
            };
            format!("{what}: {}", parts.join(", "))
        });
        let kind = match self.check_kind(input, &unpacked) {
            Ok((k, how)) => {
                st.ok(Stage::Kind, || format!("{k} ({how})"));
                k
            }
            Err(e) => {
                st.fail(Stage::Kind, e);
                return None;
            }
        };
        if self.name_taken_by_builtin(kind, name) {
            st.fail(
                Stage::Name,
                format!("{kind} {name} is a native connector: an install would be refused; choose another name"),
            );
            return Some(kind);
        }
        let conf_keys = unpacked.yaml.clone();
        let origin = Origin {
            file: String::new(),
            package_sha256: sha256_hex(&input.bytes),
            request_grants: Grants::default(),
            builtin: false,
            artifacts: None,
        };
        let prepared = match self.prepare(kind, name, unpacked, origin, st).await {
            Ok(p) => p,
            Err(e) => {
                let stage = PREPARE_STAGES
                    .into_iter()
                    .find(|s| !st.passed(*s))
                    .unwrap_or(Stage::Permissions);
                st.fail(stage, e.to_string());
                return Some(kind);
            }
        };
        for (label, props) in samples(input, kind, conf_keys.as_deref()) {
            match props {
                Ok(json) => match prepared.loaded.validate(json.clone()).await {
                    Ok(()) => st.ok(Stage::Validate, || format!("{label}: accepted {json}")),
                    Err(e) => st.fail(Stage::Validate, format!("{label}: {json} refused: {e}")),
                },
                Err(e) => st.fail(Stage::Validate, format!("{label}: {e}")),
            }
        }
        Some(kind)
    }

    /// The kind, and how it was found.
    fn check_kind(
        &self,
        input: &CheckInput,
        unpacked: &Unpacked,
    ) -> Result<(PluginKind, &'static str), String> {
        if let Some(k) = input.kind {
            return Ok((k, "as asked"));
        }
        if let Some(m) = &unpacked.manifest {
            let declared = serde_json::from_slice::<serde_json::Value>(m)
                .ok()
                .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string));
            return match declared.as_deref().and_then(PluginKind::parse) {
                Some(k) => Ok((k, "from the manifest")),
                None => Err(format!(
                    "{}.json has no valid \"kind\" (\"source\" or \"sink\")",
                    input.name
                )),
            };
        }
        self.detect_kind(&unpacked.wasm)
            .map(|k| (k, "from the component's exports"))
            .map_err(|e| e.to_string())
    }
}

/// The properties to validate with: the caller's samples, else each conf
/// key of the package's YAML, else `{}`. A source's samples get the
/// `datasource` key as a stream would give it.
fn samples(
    input: &CheckInput,
    kind: PluginKind,
    yaml: Option<&[u8]>,
) -> Vec<(String, Result<String, String>)> {
    let mut raw: Vec<(String, Result<serde_json::Value, String>)> = Vec::new();
    if !input.samples.is_empty() {
        for (label, json) in &input.samples {
            raw.push((
                label.clone(),
                serde_json::from_str(json).map_err(|e| format!("not JSON: {e}")),
            ));
        }
    } else if let Some(Ok(serde_json::Value::Object(keys))) =
        yaml.map(serde_yaml_ng::from_slice::<serde_json::Value>)
    {
        // As a stream gets them: a named key over `default`.
        let default = keys.get("default").cloned();
        for (k, v) in keys {
            let v = match (&default, v) {
                (Some(serde_json::Value::Object(d)), serde_json::Value::Object(o))
                    if k != "default" =>
                {
                    let mut merged = d.clone();
                    merged.extend(o);
                    serde_json::Value::Object(merged)
                }
                (_, v) => v,
            };
            raw.push((format!("conf key {k}"), Ok(v)));
        }
    }
    if raw.is_empty() {
        raw.push(("no properties".into(), Ok(serde_json::json!({}))));
    }
    raw.into_iter()
        .map(|(label, v)| {
            let json = v.and_then(|v| match v {
                serde_json::Value::Object(mut o) => {
                    if kind == PluginKind::Source && !o.contains_key(crate::DATASOURCE_KEY) {
                        o.insert(
                            crate::DATASOURCE_KEY.into(),
                            serde_json::Value::String(input.datasource.clone()),
                        );
                    }
                    Ok(serde_json::Value::Object(o).to_string())
                }
                serde_json::Value::Null if kind == PluginKind::Source => Ok(serde_json::json!({
                    crate::DATASOURCE_KEY: input.datasource
                })
                .to_string()),
                serde_json::Value::Null => Ok("{}".to_string()),
                _ => Err("properties must be a JSON object".to_string()),
            });
            (label, json)
        })
        .collect()
}
