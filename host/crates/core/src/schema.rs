//! What a connector declares about itself on its factory: its traits (does
//! it end, does it hold a network connection), its default conf keys, and
//! the schema of its properties. The host reads nothing else about a
//! connector: no connector name is listed anywhere outside its folder.
//! `GET /metadata/sources/{type}` and `/metadata/sinks/{type}` serve the
//! schema in eKuiper's UI-metadata shape; unknown property keys are
//! reported with the closest declared one.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use crate::connector::Props;

/// One property of a connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropSpec {
    pub name: String,
    /// eKuiper's field types: `string`, `int`, `float`, `bool`, `object`,
    /// `list_string`, `list_object`, `duration` (a Go duration or
    /// milliseconds), `any`.
    #[serde(rename = "type", default = "any_type")]
    pub typ: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Json>,
    #[serde(default = "yes")]
    pub optional: bool,
    /// The accepted values, when they are a fixed set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<Json>,
    /// eKuiper's plugin JSON writes it `{"en_US": "..."}`: read as that text.
    #[serde(default, deserialize_with = "hint_text")]
    pub hint: String,
    /// Part of the connection (set on a connection profile, not per rule).
    #[serde(default, rename = "connectionRelated")]
    pub connection_related: bool,
    /// A sink property rendered per row when it holds a template
    /// (`{{.field}}`, eKuiper's dynamic properties); a template anywhere
    /// else is refused ([`crate::SinkFactory::check_templates`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dynamic: bool,
}

/// A hint as text, from a string or eKuiper's `{"en_US": "...", ...}`.
fn hint_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Json::deserialize(d)? {
        Json::String(s) => s,
        Json::Object(m) => m
            .get("en_US")
            .or_else(|| m.values().next())
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string(),
        Json::Null => String::new(),
        other => other.to_string(),
    })
}

fn any_type() -> String {
    "any".into()
}

fn yes() -> bool {
    true
}

impl PropSpec {
    /// An optional property of type `typ` with no default.
    pub fn new(name: &str, typ: &str, hint: &str) -> Self {
        PropSpec {
            name: name.into(),
            typ: typ.into(),
            default: None,
            optional: true,
            values: Vec::new(),
            hint: hint.into(),
            connection_related: false,
            dynamic: false,
        }
    }

    pub fn default(mut self, v: Json) -> Self {
        self.default = Some(v);
        self
    }

    pub fn required(mut self) -> Self {
        self.optional = false;
        self
    }

    pub fn values(mut self, vs: &[&str]) -> Self {
        self.values = vs.iter().map(|v| Json::String((*v).into())).collect();
        self
    }

    pub fn connection(mut self) -> Self {
        self.connection_related = true;
        self
    }

    /// Marks a sink property rendered per row when it is a template.
    pub fn dynamic(mut self) -> Self {
        self.dynamic = true;
        self
    }
}

/// A connector's declaration (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct ConnectorInfo {
    /// One sentence for UIs and `GET /metadata/...`.
    pub about: String,
    /// A bounded source ends (a file, a non-looping simulator): each rule
    /// replays it from the start unless the stream is `SHARED`. Unbounded
    /// sources serve every rule on a stream from one instance.
    pub bounded: bool,
    /// It opens a network connection: its type is offered for connection
    /// profiles (`/connections`, `connectionSelector`).
    pub holds_connection: bool,
    /// The YAML written to its conf-key file on first start (eKuiper's
    /// `etc/sources/<type>.yaml`), `default:` section included.
    pub default_conf: Option<&'static str>,
    /// Where that file lives under `etc/` when not `<sources|sinks>/<type>.yaml`
    /// (eKuiper keeps MQTT sources in `mqtt_source.yaml`).
    pub conf_file: Option<&'static str>,
    /// How to fill DATASOURCE (sources), for UIs.
    pub datasource_hint: Option<&'static str>,
    /// Every property it reads, in the order a form shows them. Empty means
    /// undeclared (a plugin without a schema): nothing is checked.
    pub properties: Vec<PropSpec>,
}

impl ConnectorInfo {
    pub fn new(about: &str) -> Self {
        ConnectorInfo {
            about: about.into(),
            ..ConnectorInfo::default()
        }
    }

    pub fn prop(&self, name: &str) -> Option<&PropSpec> {
        self.properties
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// Keys of `props` this connector does not declare (nor `also_known`,
    /// e.g. the common sink properties), each with the closest declared or
    /// known key when one is within two edits. Nothing when the connector
    /// declares no properties.
    pub fn unknown_keys(
        &self,
        props: &Props,
        also_known: &[&str],
    ) -> Vec<(String, Option<String>)> {
        if self.properties.is_empty() {
            return Vec::new();
        }
        let known: Vec<&str> = self
            .properties
            .iter()
            .map(|p| p.name.as_str())
            .chain(also_known.iter().copied())
            .collect();
        props
            .keys()
            .filter(|k| !known.iter().any(|n| n.eq_ignore_ascii_case(k)))
            .map(|k| (k.clone(), closest(k, &known).map(str::to_string)))
            .collect()
    }

    /// Checks each declared property of `props` against its type and
    /// choices, as leniently as the connectors read them (numbers and
    /// booleans may be strings); `Err` names the first property that does
    /// not fit. Undeclared keys are not checked here (see
    /// [`ConnectorInfo::unknown_keys`]).
    pub fn check_values(&self, props: &Props) -> Result<(), String> {
        for (k, v) in props {
            let Some(p) = self.prop(k) else { continue };
            if v.is_null() {
                continue;
            }
            let as_text = match v {
                Json::String(s) => Some(s.trim().to_string()),
                Json::Number(n) => Some(n.to_string()),
                Json::Bool(b) => Some(b.to_string()),
                _ => None,
            };
            let ok = match p.typ.as_str() {
                "int" => {
                    v.is_i64()
                        || v.is_u64()
                        || as_text.as_deref().is_some_and(|t| t.parse::<i64>().is_ok())
                }
                "float" => {
                    v.is_number() || as_text.as_deref().is_some_and(|t| t.parse::<f64>().is_ok())
                }
                "bool" => {
                    v.is_boolean()
                        || as_text.as_deref().is_some_and(|t| {
                            t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false")
                        })
                }
                "string" => v.is_string() || v.is_number() || v.is_boolean(),
                "duration" => {
                    crate::duration::duration_from_json(v).is_ok() || v.as_i64() == Some(-1)
                }
                "object" => v.is_object(),
                "list_string" => {
                    v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Json::is_string))
                }
                "list_object" => v.as_array().is_some_and(|a| a.iter().all(Json::is_object)),
                _ => true,
            };
            if !ok {
                return Err(format!(
                    "invalid property {}: {v} is not a valid {}",
                    p.name, p.typ
                ));
            }
            if !p.values.is_empty() {
                let t = as_text.unwrap_or_default();
                let allowed = p.values.iter().filter_map(|c| {
                    c.as_str()
                        .map(str::to_string)
                        .or_else(|| Some(c.to_string()))
                });
                if !allowed.clone().any(|c| c.eq_ignore_ascii_case(&t)) {
                    return Err(format!(
                        "invalid property {}: {v} is not one of {}",
                        p.name,
                        allowed.collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        }
        Ok(())
    }

    /// eKuiper's UI metadata for this connector (`GET /metadata/sources/{type}`
    /// or `/metadata/sinks/{type}`): sources list their fields under
    /// `properties.default`, sinks as a plain list.
    pub fn ui_metadata(&self, kind: &str, sink: bool, plugin: bool) -> Json {
        let fields: Vec<Json> = self
            .properties
            .iter()
            .map(|p| {
                let control = if !p.values.is_empty() {
                    "select"
                } else if p.typ == "bool" {
                    "radio"
                } else if p.typ == "object" || p.typ.starts_with("list_") {
                    "list"
                } else {
                    "text"
                };
                let mut f = json!({
                    "name": p.name,
                    "default": p.default.clone().unwrap_or(Json::Null),
                    "optional": p.optional,
                    "control": control,
                    "type": p.typ,
                    "hint": {"en_US": p.hint},
                    "label": {"en_US": p.name},
                });
                if !p.values.is_empty() {
                    f["values"] = Json::Array(p.values.clone());
                }
                if p.connection_related {
                    f["connection_related"] = Json::Bool(true);
                }
                f
            })
            .collect();
        let mut out = json!({
            "about": {
                "trial": false,
                "installed": true,
                "author": {"name": "Oort", "email": "", "company": "", "website": ""},
                "helpUrl": {"en_US": format!("docs/connectors/{kind}.md")},
                "description": {"en_US": self.about},
            },
            "type": if plugin { "wasm" } else { "internal" },
            "libs": [],
            "node": {
                "category": if sink { "sink" } else { "source" },
                "icon": "",
                "label": {"en_US": kind},
            },
        });
        if sink {
            out["properties"] = Json::Array(fields);
        } else {
            out["properties"] = json!({ "default": fields });
            if let Some(h) = self.datasource_hint {
                out["dataSource"] = json!({"hint": {"en_US": h}});
            }
        }
        out
    }
}

/// The warning logged for a property key nobody declares (`what`: "sink
/// property", "source property"...), naming the closest known key if any.
pub fn unknown_key_message(what: &str, key: &str, near: Option<&str>) -> String {
    match near {
        Some(c) => format!("unknown {what} {key:?} (ignored): did you mean {c:?}?"),
        None => format!("unknown {what} {key:?} (ignored)"),
    }
}

/// The entry of `known` closest to `key` (ignoring case), within two edits.
pub fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = key.to_ascii_lowercase();
    if lower.len() <= 3 {
        return None;
    }
    known
        .iter()
        // The distance is at least the length difference: a huge key costs nothing.
        .filter(|c| c.len().abs_diff(lower.len()) <= 2)
        .map(|c| (strsim::levenshtein(&lower, &c.to_ascii_lowercase()), *c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// A plugin's `properties-schema` as property specs: a JSON array of fields
/// (`{"name","type","default","optional","values","hint"}`), or the older
/// free-form object `{"name": "hint text"}`. `None` when it is neither.
pub fn parse_plugin_schema(text: &str) -> Option<Vec<PropSpec>> {
    match serde_json::from_str::<Json>(text).ok()? {
        Json::Array(items) => items
            .into_iter()
            .map(|i| serde_json::from_value::<PropSpec>(i).ok())
            .collect(),
        Json::Object(m) => Some(
            m.into_iter()
                .map(|(name, v)| {
                    let hint = match v {
                        Json::String(s) => s,
                        other => other.to_string(),
                    };
                    PropSpec::new(&name, "any", &hint)
                })
                .collect(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ConnectorInfo {
        ConnectorInfo {
            properties: vec![
                PropSpec::new("server", "string", "broker URL").required(),
                PropSpec::new("qos", "int", "").values(&["0", "1", "2"]),
            ],
            ..ConnectorInfo::new("test")
        }
    }

    #[test]
    fn plugin_field_lists_take_ekuipers_localised_hints() {
        let v = parse_plugin_schema(
            r#"[{"name":"a","type":"int","hint":{"en_US":"ms between reads"}},{"name":"b","hint":"text"}]"#,
        )
        .expect("a field list");
        assert_eq!(
            (v[0].typ.as_str(), v[0].hint.as_str()),
            ("int", "ms between reads")
        );
        assert_eq!((v[1].typ.as_str(), v[1].hint.as_str()), ("any", "text"));
    }

    #[test]
    fn unknown_keys_name_the_closest_known_one() {
        let p: Props = serde_json::from_value(json!(
            {"Server": 1, "qoss": 1, "format": "json", "zzzzzzzz": 1}
        ))
        .unwrap();
        let u = info().unknown_keys(&p, &["format"]);
        assert_eq!(
            u,
            vec![
                ("qoss".to_string(), Some("qos".to_string())),
                ("zzzzzzzz".to_string(), None)
            ]
        );
        assert!(ConnectorInfo::default().unknown_keys(&p, &[]).is_empty());
    }

    #[test]
    fn values_are_checked_against_types_and_choices() {
        let i = ConnectorInfo {
            properties: vec![
                PropSpec::new("qos", "int", "").values(&["0", "1", "2"]),
                PropSpec::new("retained", "bool", ""),
                PropSpec::new("timeout", "duration", ""),
                PropSpec::new("headers", "object", ""),
            ],
            ..ConnectorInfo::new("t")
        };
        let p = |v: serde_json::Value| -> Props { serde_json::from_value(v).unwrap() };
        for ok in [
            json!({"qos": 1, "retained": "true", "timeout": "5s", "headers": {}, "other": [1]}),
            json!({"QOS": "2", "retained": false, "timeout": 100}),
        ] {
            assert!(i.check_values(&p(ok.clone())).is_ok(), "{ok}");
        }
        for (bad, needle) in [
            (json!({"qos": "high"}), "qos"),
            (json!({"qos": 5}), "not one of 0, 1, 2"),
            (json!({"retained": "yes"}), "retained"),
            (json!({"timeout": "soon"}), "timeout"),
            (json!({"headers": "x"}), "headers"),
        ] {
            let e = i.check_values(&p(bad.clone())).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn ui_metadata_has_ekuipers_shape() {
        let src = info().ui_metadata("mqtt", false, false);
        assert_eq!(src["properties"]["default"][0]["name"], "server");
        assert_eq!(src["properties"]["default"][0]["optional"], false);
        assert_eq!(src["properties"]["default"][1]["control"], "select");
        assert_eq!(src["node"]["category"], "source");
        let sink = info().ui_metadata("mqtt", true, true);
        assert_eq!(sink["properties"][0]["hint"]["en_US"], "broker URL");
        assert_eq!(sink["type"], "wasm");
    }

    #[test]
    fn plugin_schemas_in_both_forms() {
        let a = parse_plugin_schema(r#"[{"name":"subject","type":"string","optional":false}]"#)
            .unwrap();
        assert_eq!((a[0].name.as_str(), a[0].optional), ("subject", false));
        let b = parse_plugin_schema(r#"{"interval":"int (ms)"}"#).unwrap();
        assert_eq!(
            (b[0].name.as_str(), b[0].hint.as_str()),
            ("interval", "int (ms)")
        );
        assert!(parse_plugin_schema("3").is_none());
        assert!(parse_plugin_schema(r#"[{"nam":"x"}]"#).is_none());
    }
}
