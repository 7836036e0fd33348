//! Reading a document: the v1 JSON and v2 YAML forms into raw sections,
//! then every item checked (names, SQL, rule JSON, plugin entries) before
//! a [`Document`] is returned, or a [`Report`] naming each bad item.

use super::*;

/// Reads and checks a v1 JSON document.
pub fn parse_json(text: &str) -> Result<Document, DocError> {
    let v: Json = serde_json::from_str(text)
        .map_err(|e| DocError::Syntax(format!("configuration unmarshal with error {e}")))?;
    let raw = sections_of(v, false)?;
    check(raw)
}

/// Reads and checks a v2 YAML document.
pub fn parse_yaml(text: &str) -> Result<Document, DocError> {
    let y: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)
        .map_err(|e| DocError::Syntax(format!("configuration unmarshal with error {e}")))?;
    let v: Json = serde_json::to_value(y)
        .map_err(|e| DocError::Syntax(format!("configuration unmarshal with error {e}")))?;
    if v.is_null() {
        return check(Vec::new());
    }
    let mut raw = sections_of(v, true)?;
    let mut report = Report::default();
    // Conf keys are flat (`sources.mqtt.name: {props}`): group them by type.
    for (section, items) in raw.iter_mut() {
        let Some(kind) = section.conf_kind() else {
            continue;
        };
        let mut grouped: BTreeMap<String, Map<String, Json>> = BTreeMap::new();
        for (key, props) in std::mem::take(items) {
            let parts: Vec<&str> = key.split('.').collect();
            match parts.as_slice() {
                [k, typ, name] if *k == kind && !typ.is_empty() && !name.is_empty() => {
                    grouped
                        .entry(typ.to_string())
                        .or_default()
                        .insert(name.to_string(), props);
                }
                _ => report.add(
                    *section,
                    key.clone(),
                    format!("{key} isn't valid conf key: expected {kind}.<type>.<name>"),
                ),
            }
        }
        *items = grouped
            .into_iter()
            .map(|(t, m)| (t, Json::Object(m)))
            .collect();
    }
    match check(raw) {
        Ok(d) if report.is_empty() => Ok(d),
        Ok(_) => Err(DocError::Invalid(report)),
        Err(DocError::Invalid(r)) => {
            report.merge(r);
            Err(DocError::Invalid(report))
        }
        Err(e) => Err(e),
    }
}

type RawSections = Vec<(Section, Vec<(String, Json)>)>;

fn sections_of(v: Json, yaml: bool) -> Result<RawSections, DocError> {
    let form = if yaml { "YAML" } else { "JSON" };
    let Json::Object(top) = v else {
        return Err(DocError::Syntax(format!(
            "configuration unmarshal with error: the {form} document must be an object of sections"
        )));
    };
    let mut unknown = Vec::new();
    let mut out: RawSections = Vec::new();
    for (k, val) in top {
        let Some(s) = Section::from_key(&k) else {
            unknown.push(k);
            continue;
        };
        let items = match val {
            Json::Null => Vec::new(),
            Json::Object(m) => m.into_iter().collect(),
            other => {
                return Err(DocError::Syntax(format!(
                    "section {k} must be a map from names to values, not {}",
                    json_kind(&other)
                )))
            }
        };
        match out.iter_mut().find(|(x, _)| *x == s) {
            Some((_, v)) => v.extend(items),
            None => out.push((s, items)),
        }
    }
    if !unknown.is_empty() {
        let expected: Vec<&str> = Section::ALL
            .iter()
            .map(|s| if yaml { s.yaml_key() } else { s.key() })
            .collect();
        return Err(DocError::Syntax(format!(
            "unknown section(s) {}: expected {}",
            unknown.join(", "),
            expected.join(", ")
        )));
    }
    Ok(out)
}

fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// A value given as text: a string as is, an object serialised.
fn text_of(v: &Json, field: Option<&str>) -> Result<String, String> {
    match v {
        Json::String(s) => Ok(s.clone()),
        Json::Object(m) => match field {
            Some(f) => match get_ci(m, f) {
                Some(Json::String(s)) => Ok(s.clone()),
                _ => Err(format!(
                    "expected a string or an object with a string field {f:?}"
                )),
            },
            None => Ok(Json::Object(m.clone()).to_string()),
        },
        other => Err(format!("expected a string, got {}", json_kind(other))),
    }
}

/// A value holding an object, given as JSON text (v1) or inline (v2).
fn object_of(v: &Json) -> Result<Map<String, Json>, String> {
    match v {
        Json::String(s) => match serde_json::from_str::<Json>(s) {
            Ok(Json::Object(m)) => Ok(m),
            Ok(other) => Err(format!("expected a JSON object, got {}", json_kind(&other))),
            Err(e) => Err(format!("invalid JSON: {e}")),
        },
        Json::Object(m) => Ok(m.clone()),
        other => Err(format!("expected a JSON object, got {}", json_kind(other))),
    }
}

fn get_ci<'a>(m: &'a Map<String, Json>, key: &str) -> Option<&'a Json> {
    m.get(key).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn check_stream(name: &str, sql: &str, kind: StreamKind) -> Result<(), String> {
    validate_id(name)?;
    let def = streams::parse_def(sql).map_err(|e| e.to_string())?;
    if def.kind != kind {
        return Err(format!(
            "expected a CREATE {} statement",
            kind.to_string().to_uppercase()
        ));
    }
    if def.name != name {
        return Err(format!(
            "the statement creates {:?} but is listed as {name:?}",
            def.name
        ));
    }
    Ok(())
}

fn check_rule(id: &str, text: &str) -> Result<(), String> {
    let def = RuleDef::parse(text, Some(id)).map_err(|e| e.to_string())?;
    if let Some(sql) = def.sql.as_deref() {
        oort_sql::parser::parse_select(sql).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn plugin_entry(v: &Json) -> Result<PluginEntry, String> {
    let m = object_of(v)?;
    let s = |k: &str| -> Result<Option<String>, String> {
        match get_ci(&m, k) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!(
                "field {k} must be a string, not {}",
                json_kind(other)
            )),
        }
    };
    let name = s("name")?
        .filter(|n| !n.is_empty())
        .ok_or("missing field name")?;
    let file = s("file")?
        .filter(|f| !f.is_empty())
        .ok_or("missing field file (a file://, http:// or https:// URI of the package)")?;
    if !(file.starts_with("file://") || file.starts_with("http://") || file.starts_with("https://"))
    {
        return Err(format!(
            "file {file:?} must be a file://, http:// or https:// URI"
        ));
    }
    let sha256 = s("sha256")?.filter(|x| !x.is_empty());
    let grants = match get_ci(&m, "grants") {
        None | Some(Json::Null) => None,
        Some(g) => Some(
            serde_json::from_value::<Grants>(g.clone())
                .map_err(|e| format!("invalid grants: {e}"))?,
        ),
    };
    Ok(PluginEntry {
        name,
        file,
        sha256,
        grants,
    })
}

/// Splits `sources_<name>` into the kind word and the name.
pub fn split_plugin_key(key: &str) -> Option<(&str, &str)> {
    key.split_once('_').filter(|(_, n)| !n.is_empty())
}

fn check_wasm_plugin(key: &str, v: &Json) -> Result<PluginEntry, String> {
    let (typ, name) = split_plugin_key(key)
        .ok_or_else(|| format!("key {key:?} must be sources_<name> or sinks_<name>"))?;
    if !matches!(typ, "sources" | "sinks") || PluginKind::parse(typ).is_none() {
        return Err(format!(
            "key {key:?} must be sources_<name> or sinks_<name> (Oort plugins are sources and sinks)"
        ));
    }
    let e = plugin_entry(v)?;
    if e.name != name {
        return Err(format!(
            "the entry names plugin {:?} but the key says {name:?}",
            e.name
        ));
    }
    oort_wasm::manager::check_name(name).map_err(|e| e.to_string())?;
    Ok(e)
}

fn check(raw: RawSections) -> Result<Document, DocError> {
    let mut doc = Document::default();
    let mut report = Report::default();
    for (section, items) in raw {
        for (key, v) in items {
            let r: Result<(), String> = match section {
                Section::Streams | Section::Tables => {
                    let kind = if section == Section::Streams {
                        StreamKind::Stream
                    } else {
                        StreamKind::Table
                    };
                    text_of(&v, Some("sql")).and_then(|sql| {
                        check_stream(&key, &sql, kind)?;
                        let map = if kind == StreamKind::Stream {
                            &mut doc.streams
                        } else {
                            &mut doc.tables
                        };
                        map.insert(key.clone(), sql);
                        Ok(())
                    })
                }
                Section::Rules => text_of(&v, None).and_then(|text| {
                    check_rule(&key, &text)?;
                    doc.rules.insert(key.clone(), text);
                    Ok(())
                }),
                Section::SourceConfig | Section::SinkConfig | Section::ConnectionConfig => {
                    object_of(&v).and_then(|keys| {
                        validate_id(&key)?;
                        let mut out = BTreeMap::new();
                        for (k, p) in keys {
                            validate_id(&k).map_err(|e| format!("conf key {k}: {e}"))?;
                            match p {
                                Json::Object(m) => {
                                    out.insert(k, m);
                                }
                                other => {
                                    return Err(format!(
                                        "conf key {k}: properties must be an object, not {}",
                                        json_kind(&other)
                                    ))
                                }
                            }
                        }
                        if let Some(c) = doc.conf_mut(section) {
                            c.insert(key.clone(), out);
                        }
                        Ok(())
                    })
                }
                Section::WasmPlugins => check_wasm_plugin(&key, &v).map(|e| {
                    doc.wasm_plugins.insert(key.clone(), e);
                }),
                Section::NativePlugins => match split_plugin_key(&key) {
                    Some(("sources" | "sinks" | "functions", name)) => {
                        plugin_entry(&v).and_then(|e| {
                            if e.name != name {
                                return Err(format!(
                                    "the entry names plugin {:?} but the key says {name:?}",
                                    e.name
                                ));
                            }
                            doc.native_plugins.insert(key.clone(), e);
                            Ok(())
                        })
                    }
                    _ => Err(format!(
                        "key {key:?} must be sources_<name>, sinks_<name> or functions_<name>"
                    )),
                },
                Section::PortablePlugins => plugin_entry(&v).and_then(|e| {
                    if e.name != key {
                        return Err(format!(
                            "the entry names plugin {:?} but the key says {key:?}",
                            e.name
                        ));
                    }
                    doc.portable_plugins.insert(key.clone(), e);
                    Ok(())
                }),
                Section::Service | Section::Schema | Section::Uploads | Section::Scripts => {
                    match &v {
                        Json::String(_) | Json::Object(_) => {
                            doc.unsupported
                                .entry(section)
                                .or_default()
                                .insert(key.clone(), v.clone());
                            Ok(())
                        }
                        other => Err(format!(
                            "expected a string or an object, got {}",
                            json_kind(other)
                        )),
                    }
                }
            };
            if let Err(e) = r {
                report.add(section, key, e);
            }
        }
    }
    for name in doc.tables.keys() {
        if doc.streams.contains_key(name) {
            report.add(
                Section::Tables,
                name.clone(),
                format!("{name} is listed both as a stream and as a table"),
            );
        }
    }
    if report.is_empty() {
        Ok(doc)
    } else {
        Err(DocError::Invalid(report))
    }
}
