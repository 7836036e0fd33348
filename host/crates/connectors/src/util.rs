//! Helpers shared by the connectors: props -> config structs (case-insensitive
//! keys, lenient scalars, errors naming the property), dynamic (template)
//! properties, data-dir path resolution, value -> rows conversion, backoff.

use std::sync::Arc;
use std::time::Duration;

use oort_core::{ConnectorError, Props, Row, Schema, Value};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

/// Deserialises props into a config struct whose serde field names are lower
/// case: keys are matched case-insensitively (`clientId` = `clientid`), as Go's
/// JSON decoding does for eKuiper. Unknown keys are ignored; a bad value fails
/// with [`ConnectorError::Config`] naming the property as the user wrote it.
pub fn parse_config<T: DeserializeOwned>(kind: &str, props: &Props) -> Result<T, ConnectorError> {
    let mut lower = serde_json::Map::with_capacity(props.len());
    for (k, v) in props {
        if !v.is_null() {
            lower.insert(k.to_ascii_lowercase(), v.clone());
        }
    }
    serde_path_to_error::deserialize(serde_json::Value::Object(lower)).map_err(|e| {
        let path = e.path().to_string();
        let first = path.split(['.', '[']).next().unwrap_or("");
        let shown = props
            .keys()
            .find(|k| k.eq_ignore_ascii_case(first))
            .map(|orig| format!("{orig}{}", &path[first.len()..]))
            .unwrap_or(path);
        ConnectorError::Config(format!("{kind}: invalid property {shown}: {}", e.inner()))
    })
}

/// Lenient deserialisers for scalar props that users write as strings or numbers.
pub mod de {
    use std::time::Duration;

    use serde::de::Error;
    use serde::{Deserialize, Deserializer};
    use serde_json::Value as Json;

    /// `true`, `"true"`, `1`: a boolean.
    pub fn bool_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        match Json::deserialize(d)? {
            Json::Bool(b) => Ok(b),
            Json::Null => Ok(false),
            Json::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" | "" => Ok(false),
                _ => Err(D::Error::custom(format!("expected a boolean, got {s:?}"))),
            },
            Json::Number(n) => Ok(n.as_f64().unwrap_or(0.0) != 0.0),
            other => Err(D::Error::custom(format!("expected a boolean, got {other}"))),
        }
    }

    /// `5`, `"5"`: a non-negative integer.
    pub fn u64_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match Json::deserialize(d)? {
            Json::Number(n) => n
                .as_u64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                        .map(|f| f as u64)
                })
                .ok_or_else(|| {
                    D::Error::custom(format!("expected a non-negative integer, got {n}"))
                }),
            Json::String(s) => s.trim().parse::<u64>().map_err(|_| {
                D::Error::custom(format!("expected a non-negative integer, got {s:?}"))
            }),
            other => Err(D::Error::custom(format!(
                "expected a non-negative integer, got {other}"
            ))),
        }
    }

    /// [`u64_lenient`] for a property whose absence means something.
    pub fn opt_u64_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        u64_lenient(d).map(Some)
    }

    /// `5`, `"5"`, `-1`: an integer.
    pub fn i64_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        match Json::deserialize(d)? {
            Json::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .ok_or_else(|| D::Error::custom(format!("expected an integer, got {n}"))),
            Json::String(s) => s
                .trim()
                .parse::<i64>()
                .map_err(|_| D::Error::custom(format!("expected an integer, got {s:?}"))),
            other => Err(D::Error::custom(format!(
                "expected an integer, got {other}"
            ))),
        }
    }

    /// `"3.1.1"`, `4`: a string (numbers printed).
    pub fn string_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        match Json::deserialize(d)? {
            Json::String(s) => Ok(s),
            Json::Number(n) => Ok(n.to_string()),
            Json::Bool(b) => Ok(b.to_string()),
            Json::Null => Ok(String::new()),
            other => Err(D::Error::custom(format!("expected a string, got {other}"))),
        }
    }

    /// `["a","b"]` or `"a,b"`: a list of strings.
    pub fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        match Json::deserialize(d)? {
            Json::Array(a) => a
                .into_iter()
                .map(|v| match v {
                    Json::String(s) => Ok(s),
                    Json::Number(n) => Ok(n.to_string()),
                    other => Err(D::Error::custom(format!("expected a string, got {other}"))),
                })
                .collect(),
            Json::String(s) if s.trim().is_empty() => Ok(Vec::new()),
            Json::String(s) => Ok(s.split(',').map(|p| p.trim().to_string()).collect()),
            Json::Null => Ok(Vec::new()),
            other => Err(D::Error::custom(format!(
                "expected a list of strings, got {other}"
            ))),
        }
    }

    /// An eKuiper duration: milliseconds as a number, or `"1s"`, `"500ms"`.
    pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = Json::deserialize(d)?;
        if let Json::Number(n) = &v {
            if n.as_f64().is_some_and(|f| f < 0.0) {
                return Err(D::Error::custom(format!("must not be negative, got {n}")));
            }
        }
        oort_core::duration::duration_from_json(&v).map_err(D::Error::custom)
    }
}

/// Sleeps unless cancelled first; returns true when cancelled.
pub async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = cancel.cancelled() => true,
    }
}

pub use oort_core::backoff::Backoff;

/// Converts sink data (a row object or an array of them) into rows, reusing
/// `cache` as the schema while the objects' keys stay the same. Elements that
/// are not objects are skipped and counted in the returned number.
pub fn rows_from_value(v: &Value, cache: &mut Option<Arc<Schema>>, out: &mut Vec<Row>) -> usize {
    match v {
        Value::Object(m) => {
            out.push(row_from_map(m, cache));
            0
        }
        Value::Array(a) => {
            let mut skipped = 0;
            for x in a.iter() {
                match x {
                    Value::Object(m) => out.push(row_from_map(m, cache)),
                    _ => skipped += 1,
                }
            }
            skipped
        }
        _ => 1,
    }
}

/// One object as a row; keys in map order.
pub fn row_from_map(m: &oort_core::Map, cache: &mut Option<Arc<Schema>>) -> Row {
    let same = cache
        .as_ref()
        .is_some_and(|s| s.len() == m.len() && s.names().iter().zip(m.keys()).all(|(a, b)| a == b));
    let values: Vec<Value> = m.values().cloned().collect();
    if same {
        if let Some(s) = cache {
            return Row::new(s.clone(), values);
        }
    }
    let schema = Arc::new(Schema::new(m.keys().cloned().collect()));
    *cache = Some(schema.clone());
    Row::new(schema, values)
}

/// One JSON object as a row, keys in the object's order (props keep the order
/// they were written in), reusing `cache` when the keys match.
pub fn row_from_json(
    o: &serde_json::Map<String, serde_json::Value>,
    cache: &mut Option<Arc<Schema>>,
) -> Row {
    let same = cache.as_ref().is_some_and(|s| {
        s.len() == o.len()
            && s.names()
                .iter()
                .zip(o.keys())
                .all(|(a, b)| a.as_ref() == b.as_str())
    });
    let values: Vec<Value> = o.values().map(Value::from_json).collect();
    if same {
        if let Some(s) = cache {
            return Row::new(s.clone(), values);
        }
    }
    let schema = Arc::new(Schema::new(
        o.keys().map(|k| Arc::from(k.as_str())).collect(),
    ));
    *cache = Some(schema.clone());
    Row::new(schema, values)
}

pub use oort_core::template::PropTemplate;

#[cfg(test)]
mod tests {
    use super::*;
    use oort_core::codec::json::decode_value;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    struct Conf {
        #[serde(default, rename = "clientid")]
        client_id: String,
        #[serde(default, deserialize_with = "de::u64_lenient")]
        qos: u64,
        #[serde(default, deserialize_with = "de::bool_lenient")]
        retained: bool,
        #[serde(default = "one_sec", deserialize_with = "de::duration")]
        interval: Duration,
    }

    fn one_sec() -> Duration {
        Duration::from_secs(1)
    }

    fn props(v: serde_json::Value) -> Props {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn config_keys_are_case_insensitive_and_errors_name_the_prop() {
        let c: Conf = parse_config(
            "mqtt",
            &props(serde_json::json!({"clientId":"x","qos":"1","retained":"true","format":"json","interval":"500ms"})),
        )
        .unwrap();
        assert_eq!(c.client_id, "x");
        assert_eq!(c.qos, 1);
        assert!(c.retained);
        assert_eq!(c.interval, Duration::from_millis(500));
        let c: Conf = parse_config("mqtt", &props(serde_json::json!({"interval": 250}))).unwrap();
        assert_eq!(c.interval, Duration::from_millis(250));
        let e =
            parse_config::<Conf>("mqtt", &props(serde_json::json!({"qos":"high"}))).unwrap_err();
        assert!(
            matches!(&e, ConnectorError::Config(m) if m.contains("qos")),
            "{e}"
        );
        let e = parse_config::<Conf>("mqtt", &props(serde_json::json!({"Interval":"soon"})))
            .unwrap_err();
        assert!(
            matches!(&e, ConnectorError::Config(m) if m.contains("Interval")),
            "{e}"
        );
    }

    #[test]
    fn templates_render_fields() {
        let row = decode_value(br#"{"id":"d1","n":{"k":2.5},"x":3}"#).unwrap();
        let t = PropTemplate::parse("topic", "devices/{{.id}}/{{ .n.k }}/{{.missing}}").unwrap();
        assert!(t.static_text().is_none());
        assert_eq!(t.render(&row).unwrap(), "devices/d1/2.5/<no value>");
        let arr = Value::Array(Arc::new(vec![
            row.clone(),
            decode_value(br#"{"id":"d2"}"#).unwrap(),
        ]));
        // On a batch (an array of rows) a field is an error, as in eKuiper.
        let e = t.render(&arr).unwrap_err();
        assert!(
            matches!(&e, ConnectorError::InvalidData(m) if m.contains("topic")),
            "{e}"
        );
        let t = PropTemplate::parse("topic", r#"t/{{index . 1 "id"}}"#).unwrap();
        assert_eq!(t.render(&arr).unwrap(), "t/d2");
        let s = PropTemplate::parse("topic", "plain/topic").unwrap();
        assert_eq!(s.static_text().as_deref(), Some("plain/topic"));
        let e = PropTemplate::parse("topic", "a/{{.id").unwrap_err();
        assert!(
            matches!(&e, ConnectorError::Config(m) if m.contains("topic")),
            "{e}"
        );
    }

    #[test]
    fn templates_have_go_semantics() {
        let row = decode_value(br#"{"id":"d1","on":false,"n":3,"t":21.5}"#).unwrap();
        let t = PropTemplate::parse(
            "topic",
            r#"{{if .on}}on{{else}}off{{end}}/{{printf "%03d" .n}}/{{upper .id}}/{{.t}}"#,
        )
        .unwrap();
        assert_eq!(t.render(&row).unwrap(), "off/003/D1/21.5");
        // Unsupported forms are refused when the sink is created.
        let e = PropTemplate::parse("path", "{{now}}").unwrap_err();
        assert!(
            matches!(&e, ConnectorError::Config(m) if m.contains("path") && m.contains("now")),
            "{e}"
        );
        // A template with only a comment is a literal.
        let c = PropTemplate::parse("topic", "a/{{/* x */}}b").unwrap();
        assert_eq!(c.static_text().as_deref(), Some("a/b"));
    }

    #[test]
    fn value_rows_share_schema() {
        let arr = decode_value(br#"[{"a":1,"b":2},{"a":3,"b":4},5]"#).unwrap();
        let mut cache = None;
        let mut out = Vec::new();
        assert_eq!(rows_from_value(&arr, &mut cache, &mut out), 1);
        assert_eq!(out.len(), 2);
        assert!(Arc::ptr_eq(&out[0].schema, &out[1].schema));
        assert_eq!(out[1].get("b"), Some(&Value::Int(4)));
    }
}
