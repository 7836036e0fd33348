//! The package manifest `<name>.json`: parsing, required fields, and the
//! plugin kind (`source`/`sink`) as used in URLs (`sources`/`sinks`).

use serde::{Deserialize, Serialize};

use crate::config::Permissions;

/// Source or sink. Serialised as `"source"`/`"sink"`; URL segment `sources`/`sinks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    Source,
    Sink,
}

impl PluginKind {
    /// The plural used in REST paths and on disk.
    pub fn plural(self) -> &'static str {
        match self {
            PluginKind::Source => "sources",
            PluginKind::Sink => "sinks",
        }
    }

    /// Accepts `source`, `sources`, `sink`, `sinks` (any case).
    pub fn parse(s: &str) -> Option<PluginKind> {
        match s.to_ascii_lowercase().as_str() {
            "source" | "sources" => Some(PluginKind::Source),
            "sink" | "sinks" => Some(PluginKind::Sink),
            _ => None,
        }
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginKind::Source => "source",
            PluginKind::Sink => "sink",
        })
    }
}

/// Per-plugin limits a manifest may ask for (capped by the server's own).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub memory_mib: Option<u64>,
    pub call_timeout_ms: Option<u64>,
    pub open_timeout_ms: Option<u64>,
}

/// `<name>.json`. Required: `version`, `kind`. Everything else is optional;
/// unknown keys (eKuiper's `about`, `node`, ...) are kept for UIs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// If present, must equal the plugin name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub version: String,
    /// `source` or `sink` (plural forms accepted).
    pub kind: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub permissions: Permissions,
    /// Property metadata for UIs (eKuiper's `properties` list), passed through.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub properties: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Manifest {
    /// Parses and checks a manifest for plugin `name` of `kind`.
    pub fn parse(bytes: &[u8], name: &str, kind: PluginKind) -> Result<Manifest, String> {
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| format!("manifest {name}.json is invalid: {e}"))?;
        if let Some(n) = &m.name {
            if n != name {
                return Err(format!(
                    "name mismatch: manifest {name}.json names the plugin {n:?}"
                ));
            }
        }
        if m.version.trim().is_empty() {
            return Err(format!("manifest {name}.json: version must not be empty"));
        }
        match PluginKind::parse(&m.kind) {
            Some(k) if k == kind => {}
            Some(k) => {
                return Err(format!(
                    "manifest {name}.json declares kind {k}, but it is being installed as a {kind}"
                ))
            }
            None => {
                return Err(format!(
                    "manifest {name}.json: kind must be \"source\" or \"sink\""
                ))
            }
        }
        crate::grants::validate(&m.permissions)
            .map_err(|e| format!("manifest {name}.json: {e}"))?;
        Ok(m)
    }

    /// The description, falling back to eKuiper's `about.description.en_US`.
    pub fn description(&self) -> String {
        if !self.description.is_empty() {
            return self.description.clone();
        }
        self.extra
            .get("about")
            .and_then(|a| a.get("description"))
            .and_then(|d| d.get("en_US").or_else(|| d.get("en")))
            .and_then(|s| s.as_str())
            .unwrap_or_default()
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_requires_version_and_matching_kind_and_name() {
        let ok = br#"{"version":"1.0.0","kind":"sources","permissions":{"outbound":["tcp://127.0.0.1:4222"]},
                      "about":{"description":{"en_US":"hi"}}}"#;
        let m = Manifest::parse(ok, "x", PluginKind::Source).unwrap();
        assert_eq!(m.version, "1.0.0");
        assert_eq!(m.description(), "hi");
        assert_eq!(m.permissions.outbound.len(), 1);
        let e = Manifest::parse(br#"{"kind":"source"}"#, "x", PluginKind::Source).unwrap_err();
        assert!(e.contains("version"), "{e}");
        let e = Manifest::parse(br#"{"version":"1","kind":"sink"}"#, "x", PluginKind::Source)
            .unwrap_err();
        assert!(e.contains("declares kind sink"), "{e}");
        let e = Manifest::parse(
            br#"{"name":"y","version":"1","kind":"source"}"#,
            "x",
            PluginKind::Source,
        )
        .unwrap_err();
        assert!(e.contains("name mismatch"), "{e}");
        let e = Manifest::parse(
            br#"{"version":"1","kind":"source","permissions":{"outbound":["nope"]}}"#,
            "x",
            PluginKind::Source,
        )
        .unwrap_err();
        assert!(e.contains("scheme://"), "{e}");
    }
}
