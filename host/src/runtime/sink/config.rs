//! The common sink properties of eKuiper (`internal/topo/node/props.go`,
//! `pkg/model/conf.go`), parsed by the one props parser of the connectors
//! (`oort_connectors::util::parse_config`): keys match case-insensitively,
//! scalars may be written as strings, a bad value names the property.

use std::time::Duration;

use oort_connectors::util::{de, parse_config};
use oort_core::schema::{closest, unknown_key_message};
use oort_core::{ConnectorError, ConnectorInfo, Props};
use serde::Deserialize;

/// eKuiper's common sink properties. Field names are the lower-cased keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SinkCommon {
    #[serde(rename = "sendsingle", deserialize_with = "de::bool_lenient")]
    pub send_single: bool,
    #[serde(rename = "omitifempty", deserialize_with = "de::bool_lenient")]
    pub omit_if_empty: bool,
    #[serde(deserialize_with = "de::string_lenient")]
    pub format: String,
    #[serde(rename = "schemaid", deserialize_with = "de::string_lenient")]
    pub schema_id: String,
    /// The message `schemaId` names (resolved by the manager from the
    /// schema registry, for `format: protobuf`).
    #[serde(skip)]
    pub proto: Option<prost_reflect::MessageDescriptor>,
    #[serde(deserialize_with = "de::string_lenient")]
    pub delimiter: String,
    #[serde(rename = "hasheader", deserialize_with = "de::bool_lenient")]
    pub has_header: bool,
    #[serde(deserialize_with = "de::string_list")]
    pub fields: Vec<String>,
    #[serde(rename = "excludefields", deserialize_with = "de::string_list")]
    pub exclude_fields: Vec<String>,
    #[serde(rename = "datafield", deserialize_with = "de::string_lenient")]
    pub data_field: String,
    #[serde(rename = "tabledatafield", deserialize_with = "de::string_lenient")]
    pub table_data_field: String,
    #[serde(rename = "datatemplate", deserialize_with = "de::string_lenient")]
    pub data_template: String,
    #[serde(rename = "batchsize", deserialize_with = "de::u64_lenient")]
    pub batch_size: u64,
    #[serde(rename = "lingerinterval", deserialize_with = "de::duration")]
    pub linger_interval: Duration,
    #[serde(rename = "bufferlength", deserialize_with = "de::u64_lenient")]
    pub buffer_length: u64,
    #[serde(deserialize_with = "de::u64_lenient")]
    pub concurrency: u64,
    #[serde(rename = "runasync", deserialize_with = "de::bool_lenient")]
    pub run_async: bool,
    #[serde(deserialize_with = "de::string_lenient")]
    pub compression: String,
    #[serde(rename = "compressionprops")]
    pub compression_props: Option<Props>,
    #[serde(deserialize_with = "de::string_lenient")]
    pub encryption: String,
    #[serde(rename = "encprops")]
    pub enc_props: Option<Props>,
    #[serde(rename = "retrycount", deserialize_with = "de::u64_lenient")]
    pub retry_count: u64,
    #[serde(rename = "retryinterval", deserialize_with = "de::duration")]
    pub retry_interval: Duration,
    #[serde(rename = "enablecache", deserialize_with = "de::bool_lenient")]
    pub enable_cache: bool,
    #[serde(rename = "memorycachethreshold", deserialize_with = "de::i64_lenient")]
    pub memory_cache_threshold: i64,
    #[serde(rename = "maxdiskcache", deserialize_with = "de::i64_lenient")]
    pub max_disk_cache: i64,
    #[serde(rename = "bufferpagesize", deserialize_with = "de::i64_lenient")]
    pub buffer_page_size: i64,
    #[serde(rename = "resendinterval", deserialize_with = "de::duration")]
    pub resend_interval: Duration,
    #[serde(rename = "cleancacheatstop", deserialize_with = "de::bool_lenient")]
    pub clean_cache_at_stop: bool,
    #[serde(rename = "resendalterqueue", deserialize_with = "de::bool_lenient")]
    pub resend_alter_queue: bool,
    #[serde(rename = "resendpriority", deserialize_with = "de::i64_lenient")]
    pub resend_priority: i64,
    #[serde(
        rename = "resendindicatorfield",
        deserialize_with = "de::string_lenient"
    )]
    pub resend_indicator_field: String,
    #[serde(rename = "resenddestination", deserialize_with = "de::string_lenient")]
    pub resend_destination: String,
    #[serde(rename = "resourceid", deserialize_with = "de::string_lenient")]
    pub resource_id: String,
}

/// Every common key as eKuiper spells it (for messages and "did you mean").
pub use oort_core::COMMON_SINK_KEYS as COMMON_KEYS;

/// Default `retryCount`: Oort retries a transient failure a few times
/// before the batch counts as dropped (eKuiper 1.x: 0).
pub const DEFAULT_RETRY_COUNT: u64 = 3;
/// Default `retryInterval` (eKuiper 1.x: 1000 ms).
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_millis(200);
/// The longest interval accepted for `lingerInterval`, `retryInterval`, `resendInterval`.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);
pub const MAX_BUFFER_LENGTH: u64 = 1_000_000;
pub const MAX_BATCH_SIZE: u64 = 1_000_000;
pub const MAX_CONCURRENCY: u64 = 64;
pub const MAX_RETRY_COUNT: u64 = 1_000_000;
pub const MAX_MEMORY_CACHE: i64 = 10_000_000;
pub const MAX_DISK_CACHE: i64 = 1_000_000_000;
pub const MAX_PAGE_SIZE: i64 = 1_000_000;

impl Default for SinkCommon {
    fn default() -> Self {
        SinkCommon {
            send_single: false,
            omit_if_empty: false,
            format: "json".into(),
            schema_id: String::new(),
            proto: None,
            delimiter: String::new(),
            has_header: false,
            fields: Vec::new(),
            exclude_fields: Vec::new(),
            data_field: String::new(),
            table_data_field: String::new(),
            data_template: String::new(),
            batch_size: 0,
            linger_interval: Duration::ZERO,
            buffer_length: 1024,
            concurrency: 1,
            run_async: false,
            compression: String::new(),
            compression_props: None,
            encryption: String::new(),
            enc_props: None,
            retry_count: DEFAULT_RETRY_COUNT,
            retry_interval: DEFAULT_RETRY_INTERVAL,
            enable_cache: false,
            memory_cache_threshold: 1024,
            max_disk_cache: 1_024_000,
            buffer_page_size: 256,
            resend_interval: Duration::ZERO,
            clean_cache_at_stop: false,
            resend_alter_queue: false,
            resend_priority: 0,
            resend_indicator_field: String::new(),
            resend_destination: String::new(),
            resource_id: String::new(),
        }
    }
}

fn bad(key: &str, msg: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Config(format!("invalid property {key}: {msg}"))
}

/// True when `props` has `key` (case-insensitively) with a non-null value.
pub fn has_key(props: &Props, key: &str) -> bool {
    props
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case(key) && !v.is_null())
}

impl SinkCommon {
    /// Parses and range-checks the common properties of one action. Refuses
    /// (naming the property) what is out of range and what Oort knows but
    /// does not honour; the rest of `props` belongs to the connector.
    pub fn from_props(props: &Props) -> Result<SinkCommon, ConnectorError> {
        let mut c: SinkCommon = parse_config("sink", props)?;
        if c.format.trim().is_empty() {
            c.format = "json".into();
        }
        if c.data_field.is_empty() {
            c.data_field = std::mem::take(&mut c.table_data_field);
        }
        if !c.fields.is_empty() && !c.exclude_fields.is_empty() {
            return Err(ConnectorError::config(
                "fields and excludeFields cannot be set together",
            ));
        }
        if !(1..=MAX_BUFFER_LENGTH).contains(&c.buffer_length) {
            return Err(bad(
                "bufferLength",
                format!(
                    "must be between 1 and {MAX_BUFFER_LENGTH}, got {}",
                    c.buffer_length
                ),
            ));
        }
        if c.batch_size > MAX_BATCH_SIZE {
            return Err(bad(
                "batchSize",
                format!("must be at most {MAX_BATCH_SIZE}, got {}", c.batch_size),
            ));
        }
        if !(1..=MAX_CONCURRENCY).contains(&c.concurrency) {
            return Err(bad(
                "concurrency",
                format!(
                    "must be between 1 and {MAX_CONCURRENCY}, got {}",
                    c.concurrency
                ),
            ));
        }
        if c.retry_count > MAX_RETRY_COUNT {
            return Err(bad(
                "retryCount",
                format!("must be at most {MAX_RETRY_COUNT}, got {}", c.retry_count),
            ));
        }
        for (key, d) in [
            ("lingerInterval", c.linger_interval),
            ("retryInterval", c.retry_interval),
            ("resendInterval", c.resend_interval),
        ] {
            if d > MAX_INTERVAL {
                return Err(bad(key, format!("must be at most 1h, got {d:?}")));
            }
        }
        // Known but not honoured: refused rather than ignored.
        if c.run_async {
            return Err(bad(
                "runAsync",
                "asynchronous sends are not supported (eKuiper deprecated runAsync: it loses the order of results); use concurrency for parallel writers",
            ));
        }
        if c.memory_cache_threshold < 0 {
            return Err(bad("memoryCacheThreshold", "must not be negative"));
        }
        if c.memory_cache_threshold > MAX_MEMORY_CACHE {
            return Err(bad(
                "memoryCacheThreshold",
                format!(
                    "must be at most {MAX_MEMORY_CACHE}, got {}",
                    c.memory_cache_threshold
                ),
            ));
        }
        if c.max_disk_cache < 0 {
            return Err(bad("maxDiskCache", "must not be negative"));
        }
        if c.max_disk_cache > MAX_DISK_CACHE {
            return Err(bad(
                "maxDiskCache",
                format!("must be at most {MAX_DISK_CACHE}, got {}", c.max_disk_cache),
            ));
        }
        if c.buffer_page_size <= 0 {
            return Err(bad("bufferPageSize", "must be greater than 0"));
        }
        if c.buffer_page_size > MAX_PAGE_SIZE {
            return Err(bad(
                "bufferPageSize",
                format!(
                    "must be at most {MAX_PAGE_SIZE}, got {}",
                    c.buffer_page_size
                ),
            ));
        }
        if c.enable_cache {
            if c.concurrency > 1 {
                return Err(bad(
                    "enableCache",
                    "the resend cache keeps results in order and cannot be combined with concurrency > 1",
                ));
            }
            let cfg = super::cache::queue_config(&c, std::path::PathBuf::new());
            if let Err(super::cache::CacheError::InvalidConfig { property, reason }) =
                cfg.validate()
            {
                return Err(bad(property, reason));
            }
        }
        // Set on resent rows of the alternate queue (as in eKuiper); the cache
        // holds encoded payloads, so only JSON that is still plain rows can
        // take the field.
        if !c.resend_indicator_field.trim().is_empty() {
            let reason = if !(c.enable_cache && c.resend_alter_queue) {
                Some("only used with enableCache: true and resendAlterQueue: true")
            } else if !(c.format.is_empty() || c.format.eq_ignore_ascii_case("json")) {
                Some("needs format json (the field is added to the resent JSON rows)")
            } else if !c.data_template.is_empty() {
                Some("cannot be combined with dataTemplate (the resent payload is no longer rows)")
            } else if !c.compression.is_empty() || !c.encryption.is_empty() {
                Some("cannot be combined with compression or encryption")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(bad("resendIndicatorField", reason));
            }
        }
        // Used by the alternate queue only (as in eKuiper); whether the sink
        // type honours it is checked against its factory.
        if !c.resend_destination.trim().is_empty() {
            if !(c.enable_cache && c.resend_alter_queue) {
                return Err(bad(
                    "resendDestination",
                    "only used with enableCache: true and resendAlterQueue: true",
                ));
            }
            if c.resend_destination.contains("{{") {
                return Err(bad(
                    "resendDestination",
                    "templates are not supported here; give a fixed destination",
                ));
            }
        }
        if !(-1..=1).contains(&c.resend_priority) {
            return Err(bad("resendPriority", "must be -1, 0 or 1"));
        }
        Ok(c)
    }

    /// eKuiper's `HasCompress`: a connector that declares `compression`
    /// among its own properties (the Kafka sink's record-batch codec)
    /// compresses by itself, so the payload stage leaves the payload alone
    /// and the connector gets the property.
    pub fn yield_to(&mut self, info: &ConnectorInfo) {
        if info
            .properties
            .iter()
            .any(|p| p.name.eq_ignore_ascii_case("compression"))
        {
            self.compression.clear();
            self.compression_props = None;
        }
    }

    /// The `fields`/`excludeFields`/`dataField`/`dataTemplate` transforms are all off.
    pub fn plain(&self) -> bool {
        self.fields.is_empty()
            && self.exclude_fields.is_empty()
            && self.data_field.is_empty()
            && self.data_template.is_empty()
    }
}

/// Keys of `props` that neither the sink declares ([`ConnectorInfo`]) nor
/// are common properties, each with the closest known key. A sink that
/// declares no properties (a plugin without a schema) has its keys unknown
/// here: only a key within two edits of a common key is reported then.
pub fn near_misses(props: &Props, info: &ConnectorInfo) -> Vec<(String, Option<String>)> {
    if !info.properties.is_empty() {
        return info.unknown_keys(props, COMMON_KEYS);
    }
    props
        .keys()
        .filter(|k| !COMMON_KEYS.iter().any(|c| c.eq_ignore_ascii_case(k)))
        .filter_map(|k| Some((k.clone(), Some(closest(k, COMMON_KEYS)?.to_string()))))
        .collect()
}

/// Logs a warning for each unknown key (see [`near_misses`]).
pub fn warn_unknown(rule: &str, kind: &str, props: &Props, info: &ConnectorInfo) {
    for (k, c) in near_misses(props, info) {
        let msg = unknown_key_message("sink property", &k, c.as_deref());
        tracing::warn!(rule, sink = kind, "{msg}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(v: serde_json::Value) -> Props {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_connector_that_declares_compression_compresses_by_itself() {
        let p = props(serde_json::json!({"compression": "gzip"}));
        let mut c = SinkCommon::from_props(&p).unwrap();
        c.yield_to(&ConnectorInfo::default());
        assert_eq!(
            c.compression, "gzip",
            "a connector without it: the payload stage"
        );
        let info = ConnectorInfo {
            properties: vec![oort_core::PropSpec::new("compression", "string", "codec")],
            ..ConnectorInfo::default()
        };
        c.yield_to(&info);
        assert_eq!(c.compression, "", "the connector's own");
    }

    #[test]
    fn near_misses_is_cheap_on_long_keys() {
        // Found by fuzzing: a body of long keys took over a minute.
        let mut p = Props::new();
        for i in 0..64 {
            p.insert(
                format!("{i}{}", "x".repeat(200_000)),
                serde_json::Value::Null,
            );
        }
        p.insert("sendSingel".into(), serde_json::Value::Bool(true));
        let t = std::time::Instant::now();
        let got = near_misses(&p, &ConnectorInfo::default());
        assert_eq!(
            got,
            vec![("sendSingel".to_string(), Some("sendSingle".to_string()))]
        );
        // Not a timing test of speed, a guard against the quadratic path:
        // the old code needed minutes here.
        assert!(t.elapsed() < std::time::Duration::from_secs(20));
    }

    fn err(v: serde_json::Value) -> String {
        match SinkCommon::from_props(&props(v)) {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn keys_match_case_insensitively_and_take_strings() {
        let c = SinkCommon::from_props(&props(serde_json::json!({
            "SendSingle": true, "OMITIFEMPTY": "true", "batchsize": "10",
            "lingerInterval": "250ms", "bufferLength": "5", "Fields": "a, b",
            "retryCount": "2", "retryInterval": 50, "concurrency": "3",
            "tableDataField": "x", "Compression": "gzip"
        })))
        .unwrap();
        assert!(c.send_single && c.omit_if_empty);
        assert_eq!(c.batch_size, 10);
        assert_eq!(c.linger_interval, Duration::from_millis(250));
        assert_eq!(c.buffer_length, 5);
        assert_eq!(c.fields, vec!["a", "b"]);
        assert_eq!(c.retry_count, 2);
        assert_eq!(c.retry_interval, Duration::from_millis(50));
        assert_eq!(c.concurrency, 3);
        assert_eq!(c.data_field, "x");
        assert_eq!(c.compression, "gzip");
        let d = SinkCommon::from_props(&Props::new()).unwrap();
        assert!(!d.send_single);
        assert_eq!(d.format, "json");
        assert_eq!(d.retry_count, DEFAULT_RETRY_COUNT);
    }

    #[test]
    fn each_bad_value_is_refused_naming_the_property() {
        for (v, key) in [
            (serde_json::json!({"sendSingle": "maybe"}), "sendSingle"),
            (serde_json::json!({"SendSingle": "maybe"}), "SendSingle"),
            (serde_json::json!({"omitIfEmpty": [1]}), "omitIfEmpty"),
            (serde_json::json!({"batchSize": -1}), "batchSize"),
            (serde_json::json!({"batchSize": 1_000_001}), "batchSize"),
            (serde_json::json!({"bufferLength": 0}), "bufferLength"),
            (
                serde_json::json!({"bufferLength": 2305843009213693952u64}),
                "bufferLength",
            ),
            (serde_json::json!({"bufferLength": "lots"}), "bufferLength"),
            (serde_json::json!({"concurrency": 0}), "concurrency"),
            (serde_json::json!({"concurrency": 65}), "concurrency"),
            (
                serde_json::json!({"lingerInterval": "soon"}),
                "lingerInterval",
            ),
            (serde_json::json!({"lingerInterval": -5}), "lingerInterval"),
            (
                serde_json::json!({"lingerInterval": "2h"}),
                "lingerInterval",
            ),
            (serde_json::json!({"retryInterval": "2h"}), "retryInterval"),
            (serde_json::json!({"retryCount": -1}), "retryCount"),
            (serde_json::json!({"retryCount": 10_000_000}), "retryCount"),
            (serde_json::json!({"resendInterval": "x"}), "resendInterval"),
            (serde_json::json!({"fields": {"a": 1}}), "fields"),
            (serde_json::json!({"runAsync": true}), "runAsync"),
            (
                serde_json::json!({"enableCache": "true", "concurrency": 2}),
                "enableCache",
            ),
            (
                serde_json::json!({"enableCache": true, "maxDiskCache": 10, "bufferPageSize": 256}),
                "maxDiskCache",
            ),
            (
                serde_json::json!({"enableCache": true, "memoryCacheThreshold": 0}),
                "memoryCacheThreshold",
            ),
            (
                serde_json::json!({"memoryCacheThreshold": 20_000_000}),
                "memoryCacheThreshold",
            ),
            (
                serde_json::json!({"bufferPageSize": 2_000_000}),
                "bufferPageSize",
            ),
            (
                serde_json::json!({"enableCache": true, "resendDestination": "t/resend"}),
                "resendDestination",
            ),
            (
                serde_json::json!({"enableCache": true, "resendAlterQueue": true,
                    "resendDestination": "t/{{.a}}"}),
                "resendDestination",
            ),
            (
                serde_json::json!({"enableCache": true, "resendAlterQueue": true,
                    "resendIndicatorField": "resent", "compression": "gzip"}),
                "resendIndicatorField",
            ),
            (
                serde_json::json!({"enableCache": true, "resendAlterQueue": true,
                    "resendIndicatorField": "resent", "dataTemplate": "{{.a}}"}),
                "resendIndicatorField",
            ),
            (
                serde_json::json!({"resendIndicatorField": "resent"}),
                "resendIndicatorField",
            ),
            (serde_json::json!({"resendPriority": 2}), "resendPriority"),
            (serde_json::json!({"bufferPageSize": 0}), "bufferPageSize"),
            (serde_json::json!({"maxDiskCache": -1}), "maxDiskCache"),
            (
                serde_json::json!({"memoryCacheThreshold": -1}),
                "memoryCacheThreshold",
            ),
            (
                serde_json::json!({"compressionProps": 3}),
                "compressionProps",
            ),
        ] {
            let e = err(v.clone());
            assert!(e.contains(key), "{v}: {e}");
        }
        let e = err(serde_json::json!({"fields": ["a"], "excludeFields": ["b"]}));
        assert!(e.contains("excludeFields"), "{e}");
    }

    #[test]
    fn misspelt_keys_get_the_closest_common_key() {
        let p = props(serde_json::json!({
            "sendSingel": true, "topic": "x", "server": "tcp://h", "BatchSize": 1,
            "dataTemplat": "{{.}}", "qos": 1, "retaned": true
        }));
        // A sink without a schema: only near misses of common keys.
        let mut got = near_misses(&p, &ConnectorInfo::default());
        got.sort();
        let s = |a: &str, b: &str| (a.to_string(), Some(b.to_string()));
        assert_eq!(
            got,
            vec![
                s("dataTemplat", "dataTemplate"),
                s("sendSingel", "sendSingle")
            ]
        );
        // The MQTT sink's schema: its own keys are known, a typo of one is named.
        let mqtt = oort_core::SinkFactory::info(&oort_connectors::mqtt::MqttSinkFactory);
        let mut got = near_misses(&p, &mqtt);
        got.sort();
        assert_eq!(
            got,
            vec![
                s("dataTemplat", "dataTemplate"),
                s("retaned", "retained"),
                s("sendSingel", "sendSingle")
            ]
        );
    }
}
