//! Conf keys: named property sets per connector type, as in eKuiper.
//! Files under `<data-dir>/etc/`: `sources/<type>.yaml`, `sinks/<type>.yaml`
//! (or the file a connector names, e.g. eKuiper's `mqtt_source.yaml`), first
//! written from the defaults each connector declares; each holds sections
//! (`default`, and any conf key). Keys stored through the REST API (namespace
//! `conf`, key `sources.<type>.<name>`) override file keys of the same name.
//! Resolution for a source: `default` <- CONF_KEY section <- EXTRA <- statement.
//! Connection profiles (kind `connections`) live in one file,
//! `connections/connection.yaml` (`type -> key -> props`), and in the store
//! under `connections.<type>`; [`crate::connections`] resolves selectors.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use std::collections::HashMap;

use oort_core::{Props, Registry};
use serde_json::Value as Json;

use crate::store::{ns, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    #[error("conf key {key:?} not found for {kind} {typ}")]
    NotFound {
        kind: String,
        typ: String,
        key: String,
    },
    #[error("invalid conf file {path}: {msg}")]
    File { path: String, msg: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Supplies conf keys shipped inside plugin packages (`<name>.yaml`), by
/// kind (`sources`/`sinks`) and type. They sit below file and stored keys.
pub type PackagedKeys =
    Arc<dyn Fn(&str, &str) -> Option<serde_json::Map<String, Json>> + Send + Sync>;

#[derive(Clone)]
pub struct ConfKeys {
    etc: PathBuf,
    /// Conf-key files of connectors that keep theirs elsewhere than
    /// `<kind>/<type>.yaml` ([`oort_core::ConnectorInfo::conf_file`]).
    files: Arc<HashMap<(String, String), PathBuf>>,
    store: Store,
    packaged: Arc<RwLock<Option<PackagedKeys>>>,
}

impl ConfKeys {
    /// Writes the default conf-key files the registered connectors ship
    /// ([`oort_core::ConnectorInfo::default_conf`]) when they are missing.
    pub fn init(data_dir: &Path, store: Store, registry: &Registry) -> std::io::Result<ConfKeys> {
        let etc = data_dir.join("etc");
        std::fs::create_dir_all(etc.join("sources"))?;
        std::fs::create_dir_all(etc.join("sinks"))?;
        std::fs::create_dir_all(etc.join("connections"))?;
        let mut files = HashMap::new();
        let infos = registry
            .source_kinds()
            .into_iter()
            .filter_map(|t| Some(("sources", registry.source(&t)?.info(), t)))
            .chain(
                registry
                    .sink_kinds()
                    .into_iter()
                    .filter_map(|t| Some(("sinks", registry.sink(&t)?.info(), t))),
            )
            // A lookup table's keys are its type's source keys (as in
            // eKuiper); a lookup-only type (`redis`) ships its own.
            .chain(
                registry
                    .lookup_kinds()
                    .into_iter()
                    .filter(|t| registry.source(t).is_none())
                    .filter_map(|t| Some(("sources", registry.lookup(&t)?.info(), t))),
            );
        for (kind, info, typ) in infos {
            let rel = match info.conf_file {
                Some(f) => {
                    files.insert((kind.to_string(), typ.clone()), etc.join(f));
                    PathBuf::from(f)
                }
                None => Path::new(kind).join(format!("{typ}.yaml")),
            };
            if let Some(text) = info.default_conf {
                let p = etc.join(rel);
                if !p.exists() {
                    std::fs::write(p, text)?;
                }
            }
        }
        Ok(ConfKeys {
            etc,
            files: Arc::new(files),
            store,
            packaged: Arc::new(RwLock::new(None)),
        })
    }

    fn file_for(&self, kind: &str, typ: &str) -> PathBuf {
        match self.files.get(&(kind.to_string(), typ.to_string())) {
            Some(p) => p.clone(),
            None => self.etc.join(kind).join(format!("{typ}.yaml")),
        }
    }

    /// `etc/connections/connection.yaml`: connection profiles by type.
    pub fn connection_file(&self) -> PathBuf {
        self.etc.join("connections").join("connection.yaml")
    }

    /// Reads a YAML file as a JSON object (missing file: empty).
    fn read_yaml(path: &Path) -> Result<serde_json::Map<String, Json>, ConfError> {
        let Ok(text) = std::fs::read_to_string(path) else {
            return Ok(serde_json::Map::new());
        };
        let bad = |msg: String| ConfError::File {
            path: path.display().to_string(),
            msg,
        };
        let y: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&text).map_err(|e| bad(e.to_string()))?;
        match serde_json::to_value(y).map_err(|e| bad(e.to_string()))? {
            Json::Object(m) => Ok(m),
            _ => Ok(serde_json::Map::new()),
        }
    }

    /// Sections of one type from the `etc` files.
    pub fn file_keys(
        &self,
        kind: &str,
        typ: &str,
    ) -> Result<serde_json::Map<String, Json>, ConfError> {
        if kind == "connections" {
            let mut all = Self::read_yaml(&self.connection_file())?;
            return Ok(match all.remove(typ) {
                Some(Json::Object(m)) => m,
                _ => serde_json::Map::new(),
            });
        }
        Self::read_yaml(&self.file_for(kind, typ))
    }

    /// Keys of one type stored through the REST API or an import.
    pub fn stored_keys(
        &self,
        kind: &str,
        typ: &str,
    ) -> Result<serde_json::Map<String, Json>, ConfError> {
        let mut out = serde_json::Map::new();
        for (key, value) in self.store.list(&format!("{}:{kind}.{typ}", ns::CONF))? {
            if let Ok(v) = serde_json::from_str::<Json>(&value) {
                out.insert(key, v);
            }
        }
        Ok(out)
    }

    /// Types that have connection profiles, in the file or stored.
    pub fn connection_types(&self) -> Result<Vec<String>, ConfError> {
        let mut types: std::collections::BTreeSet<String> =
            Self::read_yaml(&self.connection_file())?
                .into_iter()
                .filter(|(_, v)| v.is_object())
                .map(|(k, _)| k)
                .collect();
        let prefix = format!("{}:connections.", ns::CONF);
        for (nsname, _, _) in self.store.list_prefix(&prefix)? {
            if let Some(t) = nsname.strip_prefix(&prefix) {
                types.insert(t.to_string());
            }
        }
        Ok(types.into_iter().collect())
    }

    /// Sets where packaged (plugin) conf keys come from.
    pub fn set_packaged(&self, p: PackagedKeys) {
        *self.packaged.write() = Some(p);
    }

    /// All keys of one connector type: packaged keys, overlaid by file
    /// sections, overlaid by stored ones.
    pub fn keys(&self, kind: &str, typ: &str) -> Result<serde_json::Map<String, Json>, ConfError> {
        let mut out = serde_json::Map::new();
        if let Some(p) = self.packaged.read().as_ref() {
            if let Some(m) = p(kind, typ) {
                out.extend(m);
            }
        }
        out.extend(self.file_keys(kind, typ)?);
        out.extend(self.stored_keys(kind, typ)?);
        Ok(out)
    }

    /// Props for a connector: `default` overlaid by the named key (when given).
    pub fn resolve(&self, kind: &str, typ: &str, key: Option<&str>) -> Result<Props, ConfError> {
        let keys = self.keys(kind, typ)?;
        let mut props = Props::new();
        if let Some(Json::Object(d)) = keys.get("default") {
            props.extend(d.clone());
        }
        if let Some(k) = key.filter(|k| !k.is_empty()) {
            let found = keys
                .iter()
                .find(|(name, _)| name.as_str() == k || name.eq_ignore_ascii_case(k));
            match found {
                Some((_, Json::Object(m))) => props.extend(m.clone()),
                _ => {
                    return Err(ConfError::NotFound {
                        kind: kind.trim_end_matches('s').into(),
                        typ: typ.into(),
                        key: k.into(),
                    })
                }
            }
        }
        Ok(props)
    }

    pub fn put(&self, kind: &str, typ: &str, key: &str, props: &Json) -> Result<(), ConfError> {
        self.store.put(
            &format!("{}:{kind}.{typ}", ns::CONF),
            key,
            &props.to_string(),
        )?;
        Ok(())
    }

    pub fn delete(&self, kind: &str, typ: &str, key: &str) -> Result<(), ConfError> {
        self.store
            .delete(&format!("{}:{kind}.{typ}", ns::CONF), key)?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn builtin_registry() -> Registry {
        let r = Registry::default();
        oort_connectors::builtin(&r);
        r
    }

    #[test]
    fn default_then_conf_key_then_stored_override() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ck = ConfKeys::init(dir.path(), store, &builtin_registry()).unwrap();
        std::fs::write(
            dir.path().join("etc/mqtt_source.yaml"),
            "default:\n  qos: 1\n  server: tcp://127.0.0.1:1883\nremote:\n  server: tcp://10.0.0.1:1883\n",
        )
        .unwrap();
        let p = ck.resolve("sources", "mqtt", None).unwrap();
        assert_eq!(p["server"], "tcp://127.0.0.1:1883");
        let p = ck.resolve("sources", "mqtt", Some("remote")).unwrap();
        assert_eq!(p["server"], "tcp://10.0.0.1:1883");
        assert_eq!(p["qos"], 1);
        ck.put(
            "sources",
            "mqtt",
            "remote",
            &serde_json::json!({"server": "tcp://h:1"}),
        )
        .unwrap();
        let p = ck.resolve("sources", "mqtt", Some("remote")).unwrap();
        assert_eq!(p["server"], "tcp://h:1");
        let e = ck.resolve("sources", "mqtt", Some("nope")).unwrap_err();
        assert!(e.to_string().contains("nope"));
    }
}
