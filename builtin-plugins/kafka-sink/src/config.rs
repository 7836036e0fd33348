//! The sink's properties (eKuiper's names).

use kafka_common::{brokers, security, Security};
use kafka_protocol::records::Compression;
use oort_plugin_sdk::{prop, Error, Props};
use serde_json::Value;

/// Largest `batchBytes` accepted (Kafka's own `message.max.bytes` is far below).
const MAX_BATCH_BYTES: i64 = 64 << 20;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Headers {
    None,
    /// Fixed names: (name, value, the metadata key a rendered template
    /// value comes under, `headers.<name>`, built once here).
    Map(Vec<(String, String, String)>),
    /// A JSON object text (usually a template, rendered per message).
    Json(String),
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) brokers: Vec<String>,
    pub(crate) security: Security,
    pub(crate) topic: String,
    pub(crate) key: Option<String>,
    pub(crate) headers: Headers,
    pub(crate) acks: i16,
    pub(crate) attempts: u32,
    pub(crate) compression: Compression,
    pub(crate) batch_bytes: usize,
}

pub(crate) fn config(props: &Props) -> Result<Config, Error> {
    let security = security(props)?;
    let brokers = brokers(props)?;
    let topic = prop::<String>(props, "topic")?
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| Error::config("topic is required"))?;
    let acks = prop::<i64>(props, "requiredACKs")?.unwrap_or(1);
    if !matches!(acks, -1..=1) {
        return Err(Error::config(format!(
            "requiredACKs {acks}: use -1 (all replicas), 1 (the leader) or 0 (no acknowledgement)"
        )));
    }
    let attempts = prop::<i64>(props, "maxAttempts")?.unwrap_or(1);
    if !(1..=100).contains(&attempts) {
        return Err(Error::config(format!(
            "maxAttempts {attempts}: use 1 to 100"
        )));
    }
    let compression = match prop::<String>(props, "compression")?
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "" | "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        c @ ("lz4" | "zstd") => {
            return Err(Error::config(format!(
                "compression {c}: not supported by Oort's kafka plugin yet; use gzip or snappy"
            )))
        }
        c => {
            return Err(Error::config(format!(
                "compression {c:?}: use none, gzip or snappy"
            )))
        }
    };
    let batch_bytes = prop::<i64>(props, "batchBytes")?.unwrap_or(1_048_576);
    if !(1024..=MAX_BATCH_BYTES).contains(&batch_bytes) {
        return Err(Error::config(format!(
            "batchBytes {batch_bytes}: use 1024 to {MAX_BATCH_BYTES}"
        )));
    }
    let headers = match props
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("headers"))
    {
        None | Some((_, Value::Null)) => Headers::None,
        Some((_, Value::Object(m))) => {
            let mut out = Vec::with_capacity(m.len());
            for (k, v) in m {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(_) | Value::Bool(_) => v.to_string(),
                    _ => {
                        return Err(Error::config(format!(
                            "headers.{k}: a header value must be a string"
                        )))
                    }
                };
                out.push((k.clone(), v, format!("headers.{k}")));
            }
            Headers::Map(out)
        }
        Some((_, Value::String(s))) if s.trim().is_empty() => Headers::None,
        Some((_, Value::String(s))) => {
            if !s.contains("{{") {
                parse_headers_json(s)
                    .map_err(|e| Error::config(format!("headers: {}", e.message)))?;
            }
            Headers::Json(s.clone())
        }
        Some((_, v)) => {
            return Err(Error::config(format!(
                "headers must be a map of strings or a JSON-object text, not {v}"
            )))
        }
    };
    Ok(Config {
        brokers,
        security,
        topic,
        key: prop::<String>(props, "key")?.filter(|k| !k.is_empty()),
        headers,
        acks: acks as i16,
        attempts: attempts as u32,
        compression,
        batch_bytes: batch_bytes as usize,
    })
}

pub(crate) fn parse_headers_json(s: &str) -> Result<Vec<(String, String)>, Error> {
    let v: serde_json::Map<String, Value> = serde_json::from_str(s).map_err(|e| {
        Error::invalid_data(format!(
            "headers {s:?} is not a JSON object of strings: {e}"
        ))
    })?;
    Ok(v.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(v: Value) -> Props {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn properties_are_checked_by_name() {
        let ok = props(serde_json::json!({"brokers": "127.0.0.1:9092", "topic": "t"}));
        let c = config(&ok).unwrap();
        assert_eq!(c.acks, 1);
        assert_eq!(c.attempts, 1);
        assert_eq!(c.batch_bytes, 1_048_576);
        for (k, v, want) in [
            ("topic", serde_json::json!(""), "topic is required"),
            ("requiredACKs", serde_json::json!(2), "requiredACKs"),
            ("compression", serde_json::json!("lz4"), "compression lz4"),
            ("compression", serde_json::json!("brotli"), "compression"),
            ("batchBytes", serde_json::json!(10), "batchBytes"),
            ("maxAttempts", serde_json::json!(0), "maxAttempts"),
            ("headers", serde_json::json!("{not json"), "headers"),
            ("headers", serde_json::json!([1]), "headers"),
        ] {
            let mut p = ok.clone();
            p.insert(k.into(), v);
            let e = config(&p).unwrap_err();
            assert!(e.message.contains(want), "{k}: {}", e.message);
        }
    }

    #[test]
    fn headers_take_a_map_or_json_text() {
        let p = props(serde_json::json!({"brokers": "h:1", "topic": "t",
            "headers": {"a": "x", "b": "{{.v}}"}}));
        assert_eq!(
            config(&p).unwrap().headers,
            Headers::Map(vec![
                ("a".into(), "x".into(), "headers.a".into()),
                ("b".into(), "{{.v}}".into(), "headers.b".into())
            ])
        );
        let p = props(serde_json::json!({"brokers": "h:1", "topic": "t",
            "headers": "{\"a\": \"{{.v}}\"}"}));
        assert!(matches!(config(&p).unwrap().headers, Headers::Json(_)));
    }
}
