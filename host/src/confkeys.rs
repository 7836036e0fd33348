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
//! eKuiper's environment overrides sit between the files and the stored
//! keys: `MQTT_SOURCE__<KEY>__<PROP>` (the file `mqtt_source.yaml`),
//! `<FILE>__<KEY>__<PROP>` (a source's `sources/<file>.yaml`, e.g.
//! `EDGEX__DEFAULT__PORT`), `CONNECTION__<TYPE>__<KEY>__<PROP>`
//! ([`EnvOverrides`]).

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
    env: Arc<EnvOverrides>,
}

/// One overridden property: conf key (lower case), property, value.
type Override = (String, String, Json);

/// eKuiper's environment overrides of conf-key files, read once at start:
/// the variable's parts, split at `__`, name the file, the section (conf
/// key) and the property, all lower-cased as eKuiper does; the value is
/// read as a YAML scalar (`1` a number, `true` a bool, else text).
#[derive(Default, Debug)]
pub struct EnvOverrides {
    /// Source type -> overrides of its file.
    sources: HashMap<String, Vec<Override>>,
    /// Connection type -> overrides of `connection.yaml`.
    connections: HashMap<String, Vec<Override>>,
}

impl EnvOverrides {
    /// Reads `vars`; `prefixes` maps a file's upper-case stem (`MQTT_SOURCE`,
    /// `EDGEX`) to its source type. Variables of other programs (no known
    /// prefix) are left alone; a known prefix with a bad shape or an unknown
    /// property is logged, naming the variable.
    pub fn read(
        vars: impl IntoIterator<Item = (String, String)>,
        prefixes: &HashMap<String, String>,
        registry: &Registry,
    ) -> EnvOverrides {
        let mut out = EnvOverrides::default();
        for (name, value) in vars {
            let parts: Vec<&str> = name.split("__").collect();
            if parts.len() < 2 {
                continue;
            }
            let v = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&value)
                .ok()
                .and_then(|y| serde_json::to_value(y).ok())
                .filter(|j| !j.is_null())
                .unwrap_or_else(|| Json::String(value.clone()));
            let head = parts[0].to_ascii_uppercase();
            if head == "KUIPER" {
                tracing::warn!(variable = %name, "eKuiper's global settings (KUIPER__...) are not read by Oort: use OORT__<SECTION>__<KEY> (docs/configuration.md)");
                continue;
            }
            if head == "CONNECTION" {
                if parts.len() != 4 {
                    tracing::warn!(variable = %name, "ignored: a connection override is CONNECTION__<TYPE>__<KEY>__<PROPERTY>");
                    continue;
                }
                let typ = parts[1].to_ascii_lowercase();
                out.connections.entry(typ).or_default().push((
                    parts[2].to_ascii_lowercase(),
                    parts[3].to_ascii_lowercase(),
                    v,
                ));
                tracing::info!(variable = %name, "connection profile property set from the environment");
                continue;
            }
            let Some(typ) = prefixes.get(&head) else {
                continue;
            };
            if parts.len() != 3 {
                tracing::warn!(variable = %name, "ignored: a conf-key override is <FILE>__<KEY>__<PROPERTY> (nested properties are not supported)");
                continue;
            }
            let prop = parts[2].to_ascii_lowercase();
            if let Some(info) = registry.source(typ).map(|f| f.info()) {
                let mut probe = Props::new();
                probe.insert(prop.clone(), Json::Null);
                for (k, near) in info.unknown_keys(&probe, &["format", "delimiter", "key"]) {
                    let hint = near
                        .map(|n| format!("; did you mean {n}?"))
                        .unwrap_or_default();
                    tracing::warn!(variable = %name, "{typ} source has no property {k}{hint}");
                }
            }
            out.sources.entry(typ.clone()).or_default().push((
                parts[1].to_ascii_lowercase(),
                prop,
                v,
            ));
            tracing::info!(variable = %name, "conf key property set from the environment");
        }
        out
    }

    /// Applies the overrides of one type to its sections: a section is
    /// matched without regard to case, else created.
    fn apply(list: Option<&Vec<Override>>, sections: &mut serde_json::Map<String, Json>) {
        for (key, prop, v) in list.into_iter().flatten() {
            let name = sections
                .keys()
                .find(|k| k.eq_ignore_ascii_case(key))
                .cloned()
                .unwrap_or_else(|| key.clone());
            let section = sections
                .entry(name)
                .or_insert_with(|| Json::Object(serde_json::Map::new()));
            if let Json::Object(m) = section {
                // The property keeps the file's spelling when it has one.
                let p = m
                    .keys()
                    .find(|k| k.eq_ignore_ascii_case(prop))
                    .cloned()
                    .unwrap_or_else(|| prop.clone());
                m.insert(p, v.clone());
            }
        }
    }
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
        let prefixes: HashMap<String, String> = registry
            .source_kinds()
            .into_iter()
            .chain(registry.lookup_kinds())
            .map(|t| {
                let stem = files
                    .get(&("sources".to_string(), t.clone()))
                    .and_then(|p| p.file_stem())
                    .map(|s| s.to_string_lossy().to_string())
                    .unwrap_or_else(|| t.clone());
                (stem.to_ascii_uppercase(), t)
            })
            .collect();
        let env = EnvOverrides::read(std::env::vars(), &prefixes, registry);
        Ok(ConfKeys {
            etc,
            files: Arc::new(files),
            store,
            packaged: Arc::new(RwLock::new(None)),
            env: Arc::new(env),
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
            let mut m = match all.remove(typ) {
                Some(Json::Object(m)) => m,
                _ => serde_json::Map::new(),
            };
            EnvOverrides::apply(self.env.connections.get(typ), &mut m);
            return Ok(m);
        }
        let mut m = Self::read_yaml(&self.file_for(kind, typ))?;
        if kind == "sources" {
            EnvOverrides::apply(self.env.sources.get(typ), &mut m);
        }
        Ok(m)
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

    #[test]
    fn environment_overrides_sit_between_files_and_stored_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut ck = ConfKeys::init(dir.path(), store, &builtin_registry()).unwrap();
        std::fs::write(
            dir.path().join("etc/mqtt_source.yaml"),
            "default:\n  qos: 1\n  server: tcp://127.0.0.1:1883\nDemoConf:\n  server: tcp://10.0.0.1:1883\n",
        )
        .unwrap();
        let prefixes: HashMap<String, String> = [
            ("MQTT_SOURCE".to_string(), "mqtt".to_string()),
            ("HTTPPULL".to_string(), "httppull".to_string()),
        ]
        .into();
        let vars = [
            ("MQTT_SOURCE__DEFAULT__SERVER", "tcp://broker:1883"),
            ("MQTT_SOURCE__DEMOCONF__QOS", "0"),
            ("MQTT_SOURCE__NEWKEY__SERVER", "tcp://new:1883"),
            ("HTTPPULL__DEFAULT__INTERVAL", "5000"),
            ("CONNECTION__MQTT__PLANT__SERVER", "tcp://plant:1883"),
            ("PATH", "/usr/bin"),
            ("OTHER__A__B", "c"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        ck.env = Arc::new(EnvOverrides::read(vars, &prefixes, &builtin_registry()));
        let p = ck.resolve("sources", "mqtt", None).unwrap();
        assert_eq!(p["server"], "tcp://broker:1883");
        assert_eq!(p["qos"], 1);
        // The section is matched whatever its case; the value is typed.
        let p = ck.resolve("sources", "mqtt", Some("DemoConf")).unwrap();
        assert_eq!(p["qos"], 0);
        assert_eq!(p["server"], "tcp://10.0.0.1:1883");
        let p = ck.resolve("sources", "mqtt", Some("newkey")).unwrap();
        assert_eq!(p["server"], "tcp://new:1883");
        let p = ck.resolve("sources", "httppull", None).unwrap();
        assert_eq!(p["interval"], 5000);
        assert_eq!(
            ck.file_keys("connections", "mqtt").unwrap()["plant"]["server"],
            "tcp://plant:1883"
        );
        // A key stored through the API wins over the environment.
        ck.put(
            "sources",
            "mqtt",
            "default",
            &serde_json::json!({"server": "tcp://api:1"}),
        )
        .unwrap();
        let p = ck.resolve("sources", "mqtt", None).unwrap();
        assert_eq!(p["server"], "tcp://api:1");
    }
}
