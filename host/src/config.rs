//! Server settings: defaults, then an optional YAML file (`--config`), then
//! environment overrides `OORT__<SECTION>__<KEY>=value` (e.g.
//! `OORT__REST__ADDR=0.0.0.0:9081`), then command-line flags.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub data_dir: PathBuf,
    /// Names this instance among others sharing a broker (`--instance-id`);
    /// empty: derived from the data dir. See `docs/scale-out.md`.
    pub instance_id: String,
    /// A data document (file path, `file://`, `http(s)://`) applied at every
    /// start (`--ruleset`); empty: none. See `docs/scale-out.md`.
    pub ruleset: String,
    /// eKuiper's `basic.timezone`: the zone SQL time functions read and
    /// print local date-times in: `Local` (the system's), `UTC`, an IANA
    /// name (daylight saving included) or an offset such as `+08:00`.
    pub timezone: String,
    /// Threads of the async runtime that runs rules, connectors and the
    /// REST API; 0: one per core. Fewer than the cores leaves room for a
    /// broker or other services on the same box.
    pub worker_threads: usize,
    pub rest: RestConfig,
    pub log: LogConfig,
    pub rule: RuleDefaults,
    pub plugins: PluginsConfig,
    pub sink: SinkSettings,
    pub file: FileConfig,
    pub outbound: OutboundConfig,
    pub source: SourceSettings,
    pub store: StoreSettings,
    pub metrics: MetricsConfig,
}

/// eKuiper's `basic.prometheusPort`: `/metrics` also on its own listener.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of a listener serving only `GET /metrics`, without
    /// authentication (e.g. `0.0.0.0:20499`, eKuiper's port); empty: none
    /// (`/metrics` stays on the REST API either way).
    pub addr: String,
    /// What a scrape holds unless it asks (`GET /metrics?detail=`).
    pub detail: MetricsDetail,
}

/// How much of each rule `GET /metrics` exports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsDetail {
    /// Each rule's state and its source, lookup and sink nodes' series:
    /// what a dashboard of many rules watches (about 0.8 KB per rule).
    #[default]
    Rules,
    /// Also the operator nodes' series and the sinks' latency histograms
    /// (about 2 KB per rule).
    Full,
}

impl MetricsDetail {
    pub fn parse(s: &str) -> Option<MetricsDetail> {
        match s.to_ascii_lowercase().as_str() {
            "rules" => Some(MetricsDetail::Rules),
            "full" => Some(MetricsDetail::Full),
            _ => None,
        }
    }
}

/// eKuiper's `store` section: where `get_keyed_state` reads its external
/// state (`extStateType`). Oort's own state is always in the data dir's
/// SQLite store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// eKuiper's main store type: only `sqlite` (what Oort uses).
    #[serde(rename = "type")]
    pub kind: String,
    /// `sqlite` (table `keyed_state` of `<data-dir>/extState.db`) or
    /// `redis` (plain keys).
    #[serde(rename = "extStateType", alias = "ext_state_type")]
    pub ext_state_type: String,
    pub redis: StoreRedis,
}

/// The Redis server of `extStateType: redis`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreRedis {
    pub host: String,
    pub port: u16,
    pub password: String,
    /// Milliseconds to wait for an answer.
    pub timeout: u64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            kind: "sqlite".into(),
            ext_state_type: "sqlite".into(),
            redis: StoreRedis::default(),
        }
    }
}

impl Default for StoreRedis {
    fn default() -> Self {
        StoreRedis {
            host: "127.0.0.1".into(),
            port: 6379,
            password: String::new(),
            timeout: 1000,
        }
    }
}

impl StoreSettings {
    /// The keyed-state backend these settings name.
    pub fn ext_state(&self) -> Result<crate::runtime::keyed_state::ExtState, ConfigError> {
        use crate::runtime::keyed_state::ExtState;
        if !self.kind.eq_ignore_ascii_case("sqlite") {
            return Err(ConfigError::Invalid(format!(
                "store.type: {} is not supported: Oort keeps its state in SQLite (extStateType may be redis)",
                self.kind
            )));
        }
        match self.ext_state_type.to_ascii_lowercase().as_str() {
            "sqlite" => Ok(ExtState::Sqlite),
            "redis" => Ok(ExtState::Redis {
                host: self.redis.host.clone(),
                port: self.redis.port,
                password: self.redis.password.clone(),
                timeout: std::time::Duration::from_millis(self.redis.timeout.clamp(1, 60_000)),
            }),
            other => Err(ConfigError::Invalid(format!(
                "store.extStateType: {other} is not supported (use sqlite or redis)"
            ))),
        }
    }
}

/// Server-wide source settings (eKuiper's `source` section).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceSettings {
    /// Address of the data server of `httppush` streams (eKuiper:
    /// `source.httpServerIp`, default there `0.0.0.0`; here loopback).
    #[serde(alias = "httpServerIp")]
    pub http_server_ip: String,
    /// Its port (eKuiper: `source.httpServerPort`).
    #[serde(alias = "httpServerPort")]
    pub http_server_port: u16,
    /// HTTPS (and `wss://`) for it (eKuiper: `source.httpServerTls`).
    #[serde(alias = "httpServerTls")]
    pub http_server_tls: Option<ServerTls>,
}

/// A server certificate and its key, PEM files (eKuiper's key names).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    pub certfile: PathBuf,
    pub keyfile: PathBuf,
}

impl Default for SourceSettings {
    fn default() -> Self {
        SourceSettings {
            http_server_ip: "127.0.0.1".into(),
            http_server_port: 10081,
            http_server_tls: None,
        }
    }
}

/// Server-wide sink settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkSettings {
    /// The AES key of the `encryption: aes` sink property: base64 of 16, 24
    /// or 32 bytes (eKuiper's `basic.aesKey`). Empty: encryption is refused.
    #[serde(rename = "aesKey")]
    pub aes_key: String,
}

/// Where the `file` source and sink may read and write besides the data dir.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// Absolute directories the `file` connectors may use (the data dir always).
    pub allowed_dirs: Vec<PathBuf>,
}

/// What plugin installs and data imports may fetch (see docs/security.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    /// URI schemes allowed: `file`, `http`, `https`.
    pub schemes: Vec<String>,
    /// Hosts, addresses or networks (CIDR) allowed even when internal
    /// (loopback, private, link-local); public hosts are always allowed.
    pub allowed_hosts: Vec<String>,
    /// Absolute directories `file://` URIs may point into (the data dir always).
    pub file_dirs: Vec<PathBuf>,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            schemes: vec!["file".into(), "http".into(), "https".into()],
            allowed_hosts: Vec::new(),
            file_dirs: Vec::new(),
        }
    }
}

impl OutboundConfig {
    /// The policy for a server whose (canonical) data dir is `data_dir`.
    pub fn policy(&self, data_dir: &Path) -> Result<oort_wasm::OutboundPolicy, ConfigError> {
        check_absolute("outbound.file_dirs", &self.file_dirs)?;
        let dirs = std::iter::once(data_dir.to_path_buf()).chain(self.file_dirs.iter().cloned());
        oort_wasm::OutboundPolicy::new(&self.schemes, &self.allowed_hosts, dirs)
            .map_err(ConfigError::Invalid)
    }
}

impl FileConfig {
    /// `file.allowed_dirs`, checked (absolute paths only).
    pub fn allowed_dirs(&self) -> Result<Vec<PathBuf>, ConfigError> {
        check_absolute("file.allowed_dirs", &self.allowed_dirs)?;
        Ok(self.allowed_dirs.clone())
    }
}

fn check_absolute(key: &str, dirs: &[PathBuf]) -> Result<(), ConfigError> {
    match dirs.iter().find(|d| !d.is_absolute()) {
        Some(d) => Err(ConfigError::Invalid(format!(
            "{key}: {} is not an absolute path",
            d.display()
        ))),
        None => Ok(()),
    }
}

/// WebAssembly plugin host settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginsConfig {
    /// Where the built-in plugins (`*.wasm` / `*.zip`) are loaded from at start.
    /// Default: `plugins/` beside the binary, else the checkout's `builtin-plugins/dist`.
    pub builtin_dir: Option<PathBuf>,
    /// Linear-memory cap per plugin instance, MiB.
    pub memory_limit_mb: usize,
    /// Deadline of one plugin call, milliseconds.
    pub call_timeout_ms: u64,
    /// Capabilities granted per plugin name (intersected with what its manifest asks for).
    pub grants: std::collections::BTreeMap<String, oort_wasm::Grants>,
    /// Components of at least this many KiB install on baseline code (Winch)
    /// and switch to optimised code (Cranelift) when it is ready; 0 turns
    /// tiered compilation off (everything compiles with Cranelift first).
    pub tiered_min_kb: usize,
    /// Threads every plugin call runs on (apart from the REST and rule runtime).
    pub guest_threads: usize,
    /// Live instances of one plugin at a time (rules, streams, validations).
    pub max_instances_per_plugin: usize,
    /// Log lines per second a plugin may write (stdout, stderr, `host.log`),
    /// all its instances together; the rest is dropped and counted.
    pub log_lines_per_sec: u32,
    /// Elements of any one table of a plugin instance.
    pub table_elements_limit: usize,
    /// Tables, linear memories and core instances of one plugin instance.
    pub tables_limit: usize,
    pub memories_limit: usize,
    pub core_instances_limit: usize,
    /// Outbound HTTP of plugins (`wasi:http`, under their outbound grants):
    /// connect, first-byte and between-bytes timeouts, milliseconds.
    pub http_timeout_ms: u64,
    /// Largest HTTP response body a plugin may read, KiB.
    pub http_max_response_kb: u64,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        let d = oort_wasm::WasmConfig::default();
        PluginsConfig {
            builtin_dir: None,
            memory_limit_mb: d.memory_limit_bytes / (1024 * 1024),
            call_timeout_ms: d.call_timeout.as_millis() as u64,
            grants: Default::default(),
            tiered_min_kb: d.tiered_min_bytes.map_or(0, |b| b / 1024),
            guest_threads: d.guest_threads,
            max_instances_per_plugin: d.max_instances_per_plugin,
            log_lines_per_sec: d.caps.log_lines_per_sec,
            table_elements_limit: d.caps.table_elements,
            tables_limit: d.caps.tables,
            memories_limit: d.caps.memories,
            core_instances_limit: d.caps.core_instances,
            http_timeout_ms: d.caps.http.timeout.as_millis() as u64,
            http_max_response_kb: d.caps.http.max_response_bytes / 1024,
        }
    }
}

impl PluginsConfig {
    pub fn wasm_config(&self) -> oort_wasm::WasmConfig {
        oort_wasm::WasmConfig {
            memory_limit_bytes: self.memory_limit_mb.max(1) * 1024 * 1024,
            call_timeout: std::time::Duration::from_millis(self.call_timeout_ms.max(1)),
            grants: self.grants.clone(),
            tiered_min_bytes: (self.tiered_min_kb > 0).then(|| self.tiered_min_kb * 1024),
            guest_threads: self.guest_threads.max(1),
            max_instances_per_plugin: self.max_instances_per_plugin.max(1),
            caps: oort_wasm::isolation::StoreCaps {
                table_elements: self.table_elements_limit.max(1),
                tables: self.tables_limit.max(1),
                memories: self.memories_limit.max(1),
                core_instances: self.core_instances_limit.max(1),
                log_lines_per_sec: self.log_lines_per_sec.max(1),
                http: oort_wasm::http::HttpCaps {
                    timeout: std::time::Duration::from_millis(self.http_timeout_ms.max(1)),
                    max_response_bytes: self.http_max_response_kb.max(1) * 1024,
                },
            },
            ..Default::default()
        }
    }

    /// The directory of built-in plugins, if one exists.
    pub fn builtin_dir(&self) -> Option<PathBuf> {
        if let Some(d) = &self.builtin_dir {
            return Some(d.clone());
        }
        let beside = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("plugins")));
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../builtin-plugins/dist");
        [beside, Some(checkout)]
            .into_iter()
            .flatten()
            .find(|d| d.is_dir())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestConfig {
    /// Listen address of the REST API.
    pub addr: String,
    /// Largest accepted request body, bytes.
    pub body_limit: usize,
    /// A static bearer token required on every request (`Authorization:
    /// Bearer <token>`); empty: none. Also `OORT__REST__TOKEN`.
    pub token: String,
    /// eKuiper's JWT authentication (RS256, public keys in `<data_dir>/etc/mgmt`).
    pub jwt: bool,
    /// Serve without authentication on a non-loopback address (refused otherwise).
    pub insecure_no_auth: bool,
    /// Host names accepted in the `Host` header besides the bind address
    /// (and `localhost` when bound to loopback).
    pub allowed_hosts: Vec<String>,
    /// Origins (`https://ui.example:8080`) allowed to call the API from a
    /// browser; CORS is answered for these only. Empty: none.
    pub cors_origins: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `trace`, `debug`, `info`, `warn`, `error`, or a tracing filter.
    pub level: String,
    /// Emit JSON log lines instead of text.
    pub json: bool,
}

/// Defaults applied to every rule's `options` (per-rule options win).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleDefaults {
    #[serde(rename = "bufferLength")]
    pub buffer_length: usize,
    #[serde(rename = "sendError")]
    pub send_error: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("oort-data"),
            instance_id: String::new(),
            ruleset: String::new(),
            timezone: "Local".into(),
            worker_threads: 0,
            rest: RestConfig::default(),
            log: LogConfig::default(),
            rule: RuleDefaults::default(),
            plugins: PluginsConfig::default(),
            sink: SinkSettings::default(),
            file: FileConfig::default(),
            outbound: OutboundConfig::default(),
            source: SourceSettings::default(),
            store: StoreSettings::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

impl Default for RestConfig {
    fn default() -> Self {
        RestConfig {
            addr: "127.0.0.1:9081".into(),
            body_limit: 16 * 1024 * 1024,
            token: String::new(),
            jwt: false,
            insecure_no_auth: false,
            allowed_hosts: Vec::new(),
            cors_origins: Vec::new(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            json: false,
        }
    }
}

impl Default for RuleDefaults {
    fn default() -> Self {
        RuleDefaults {
            buffer_length: 1024,
            send_error: false,
        }
    }
}

/// Most runtime threads `worker_threads` may ask for.
pub const MAX_WORKER_THREADS: usize = 256;

impl Config {
    /// The runtime's worker threads: None for one per core.
    pub fn worker_threads(&self) -> Result<Option<usize>, ConfigError> {
        match self.worker_threads {
            0 => Ok(None),
            n if n <= MAX_WORKER_THREADS => Ok(Some(n)),
            n => Err(ConfigError::Invalid(format!(
                "worker_threads: {n} is more than {MAX_WORKER_THREADS} (0: one per core)"
            ))),
        }
    }

    /// Loads defaults <- file <- environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with(file, std::env::vars())
    }

    /// [`Config::load`] with the environment given.
    fn load_with(
        file: Option<&Path>,
        vars: impl Iterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut doc = serde_yaml_ng::to_value(Config::default())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?;
            let user: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
                .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?;
            // An empty file is YAML null: nothing to merge (merging it
            // would replace every default and drop the env overrides).
            if !user.is_null() {
                merge(&mut doc, user);
            }
        }
        let defaults = doc.clone();
        for (k, v) in vars {
            if let Some(rest) = k.strip_prefix("OORT__") {
                let keys: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
                // A bad value names its variable and key, not just a type.
                let mut probe = defaults.clone();
                set_path(&mut probe, &keys, &v);
                if let Err(e) = serde_yaml_ng::from_value::<Config>(probe) {
                    return Err(ConfigError::Invalid(format!(
                        "environment variable {k}={v:?} (key {}): {e}",
                        keys.join(".")
                    )));
                }
                set_path(&mut doc, &keys, &v);
            }
        }
        serde_yaml_ng::from_value(doc).map_err(|e| ConfigError::Invalid(e.to_string()))
    }
}

fn merge(base: &mut serde_yaml_ng::Value, over: serde_yaml_ng::Value) {
    use serde_yaml_ng::Value;
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn set_path(doc: &mut serde_yaml_ng::Value, keys: &[String], raw: &str) {
    use serde_yaml_ng::Value;
    let Some((first, rest)) = keys.split_first() else {
        return;
    };
    let Value::Mapping(map) = doc else {
        return;
    };
    // Match keys case-insensitively against existing ones (bufferLength vs BUFFERLENGTH).
    let existing = map
        .keys()
        .find(|k| k.as_str().is_some_and(|s| s.eq_ignore_ascii_case(first)))
        .cloned();
    let key = existing.unwrap_or_else(|| Value::String(first.clone()));
    if rest.is_empty() {
        let v: Value = serde_yaml_ng::from_str(raw).unwrap_or_else(|_| Value::String(raw.into()));
        // Keep strings as strings where YAML would read e.g. an address oddly.
        let v = match (&v, map.get(&key)) {
            (Value::String(_), _) => v,
            (_, Some(Value::String(_))) => Value::String(raw.into()),
            _ => v,
        };
        map.insert(key, v);
    } else {
        let slot = map
            .entry(key)
            .or_insert_with(|| Value::Mapping(Default::default()));
        set_path(slot, rest, raw);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_threads_default_to_the_cores_and_are_bounded() {
        let vars = |k: &str, v: &str| vec![(k.to_string(), v.to_string())].into_iter();
        let c = Config::load_with(None, std::iter::empty()).unwrap();
        assert_eq!(c.worker_threads().unwrap(), None);
        let c = Config::load_with(None, vars("OORT__WORKER_THREADS", "1")).unwrap();
        assert_eq!(c.worker_threads().unwrap(), Some(1));
        let c = Config::load_with(None, vars("OORT__WORKER_THREADS", "100000")).unwrap();
        let e = c.worker_threads().unwrap_err().to_string();
        assert!(e.contains("worker_threads") && e.contains("256"), "{e}");
        assert!(Config::load_with(None, vars("OORT__WORKER_THREADS", "-1")).is_err());
    }

    /// The key listing of docs/configuration.md is a valid file.
    #[test]
    fn documented_config_file_parses() {
        let doc = include_str!("../../docs/configuration.md");
        let start = doc.find("# oort.yaml").expect("listing");
        let body = &doc[start..];
        let yaml = &body[..body.find("```").expect("end of listing")];
        let c: Config = serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.store.ext_state().unwrap(),
            crate::runtime::keyed_state::ExtState::Sqlite
        );
        let mut r = c.store.clone();
        r.ext_state_type = "Redis".into();
        assert!(matches!(
            r.ext_state().unwrap(),
            crate::runtime::keyed_state::ExtState::Redis { port: 6379, .. }
        ));
        r.ext_state_type = "fdb".into();
        assert!(r
            .ext_state()
            .unwrap_err()
            .to_string()
            .contains("extStateType"));
        r.ext_state_type = "sqlite".into();
        r.kind = "redis".into();
        assert!(r
            .ext_state()
            .unwrap_err()
            .to_string()
            .contains("store.type"));
    }

    #[test]
    fn defaults_then_file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("oort.yaml");
        std::fs::write(&f, "rest:\n  addr: 127.0.0.1:9999\nlog:\n  level: debug\n").unwrap();
        let c = Config::load(Some(&f)).unwrap();
        assert_eq!(c.rest.addr, "127.0.0.1:9999");
        assert_eq!(c.log.level, "debug");
        assert_eq!(c.rule.buffer_length, 1024);

        let mut doc = serde_yaml_ng::to_value(Config::default()).unwrap();
        set_path(&mut doc, &["rule".into(), "bufferlength".into()], "7");
        let c: Config = serde_yaml_ng::from_value(doc).unwrap();
        assert_eq!(c.rule.buffer_length, 7);
    }

    #[test]
    fn a_bad_environment_value_names_its_variable_and_key() {
        let vars = |k: &str, v: &str| vec![(k.to_string(), v.to_string())].into_iter();
        let e = Config::load_with(None, vars("OORT__REST__BODY_LIMIT", "abc"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("OORT__REST__BODY_LIMIT"), "{e}");
        assert!(e.contains("rest.body_limit"), "{e}");
        let c = Config::load_with(None, vars("OORT__STORE__EXTSTATETYPE", "redis")).unwrap();
        assert_eq!(c.store.ext_state_type, "redis");
        let c = Config::load_with(None, vars("OORT__REST__BODY_LIMIT", "1024")).unwrap();
        assert_eq!(c.rest.body_limit, 1024);
    }

    #[test]
    fn an_empty_file_keeps_defaults_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("oort.yaml");
        std::fs::write(&f, "").unwrap();
        let c = Config::load(Some(&f)).unwrap();
        assert_eq!(c.rest.addr, "127.0.0.1:9081");
        assert_eq!(c.outbound.schemes.len(), 3);
    }

    #[test]
    fn unknown_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("oort.yaml");
        std::fs::write(&f, "rest:\n  adr: x\n").unwrap();
        let e = Config::load(Some(&f)).unwrap_err().to_string();
        assert!(e.contains("adr"), "{e}");
    }
}
