//! Connection profiles: named property sets of a connection type that
//! sources and sinks select with `connectionSelector`, as in eKuiper.
//!
//! Profiles come from `<data-dir>/etc/connections/connection.yaml`
//! (`type -> id -> props`, read on every resolution) and from the store
//! (`conf:connections.<type>`, key = id; created by `POST /connections` or an
//! import), which overrides a file profile of the same type and id.
//!
//! A selector is `<id>` or `<type>.<id>`. Resolution for a source:
//! `default` section -> profile -> CONF_KEY section -> EXTRA (the caller adds
//! the statement options); for a sink: `default` -> profile -> `resourceId`
//! section -> action props. The resolved props keep `connectionSelector`,
//! rewritten to the canonical `<type>.<id>`, so a connector can key one
//! shared physical connection on it. Without a selector resolution is the
//! plain conf-key one.

use std::collections::BTreeMap;

use oort_core::Props;
use serde_json::Value as Json;

use crate::confkeys::{ConfError, ConfKeys};
use crate::error::{code, AppError};

/// The property naming a connection profile.
pub const SELECTOR: &str = "connectionSelector";

/// Conf kind under which profiles are stored (`conf:connections.<type>`).
pub const KIND: &str = "connections";

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("connection {0} not found")]
    NotFound(String),
    #[error("connection selector {selector:?} names profiles of several types ({types}): write it as <type>.{selector}")]
    Ambiguous { selector: String, types: String },
    #[error("invalid connectionSelector: {0}")]
    BadSelector(String),
    #[error(transparent)]
    Conf(#[from] ConfError),
}

impl From<ConnError> for AppError {
    fn from(e: ConnError) -> Self {
        match e {
            ConnError::Conf(c) => c.into(),
            other => AppError::bad_code(code::CONF_KEY, other.to_string()),
        }
    }
}

/// One connection profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub id: String,
    pub typ: String,
    pub props: Props,
    /// Stored through the REST API or an import.
    pub stored: bool,
    /// Present in `connection.yaml` (possibly overridden by a stored one).
    pub in_file: bool,
}

impl Profile {
    /// `<type>.<id>`: the form resolution writes into `connectionSelector`.
    pub fn selector(&self) -> String {
        format!("{}.{}", self.typ, self.id)
    }
}

/// Every profile, sorted by id then type.
pub fn list(conf: &ConfKeys) -> Result<Vec<Profile>, ConnError> {
    let mut out = Vec::new();
    for typ in conf.connection_types()? {
        let file = conf.file_keys(KIND, &typ)?;
        let stored = conf.stored_keys(KIND, &typ)?;
        let mut merged: BTreeMap<String, Json> = file.clone().into_iter().collect();
        merged.extend(stored.clone());
        for (id, props) in merged {
            let Json::Object(props) = props else { continue };
            out.push(Profile {
                stored: stored.contains_key(&id),
                in_file: file.contains_key(&id),
                id,
                typ: typ.clone(),
                props,
            });
        }
    }
    out.sort_by(|a, b| (&a.id, &a.typ).cmp(&(&b.id, &b.typ)));
    Ok(out)
}

/// Finds the profile a selector names. A bare id found under several types
/// picks `prefer_typ` when it is one of them, else is ambiguous.
pub fn find(
    conf: &ConfKeys,
    selector: &str,
    prefer_typ: Option<&str>,
) -> Result<Profile, ConnError> {
    let sel = selector.trim();
    if sel.is_empty() {
        return Err(ConnError::BadSelector("empty".into()));
    }
    let all = list(conf)?;
    let same = |a: &str, b: &str| a == b || a.eq_ignore_ascii_case(b);
    if let Some((typ, id)) = sel.split_once('.') {
        return all
            .into_iter()
            .filter(|p| same(&p.typ, typ) && same(&p.id, id))
            .min_by_key(|p| (p.typ != typ, p.id != id))
            .ok_or_else(|| ConnError::NotFound(sel.to_string()));
    }
    let mut hits: Vec<Profile> = all.into_iter().filter(|p| same(&p.id, sel)).collect();
    if hits.iter().any(|p| p.id == sel) {
        hits.retain(|p| p.id == sel);
    }
    match hits.len() {
        0 => Err(ConnError::NotFound(sel.to_string())),
        1 => Ok(hits.remove(0)),
        _ => {
            if let Some(t) = prefer_typ {
                if let Some(pos) = hits.iter().position(|p| p.typ == t) {
                    return Ok(hits.remove(pos));
                }
            }
            Err(ConnError::Ambiguous {
                selector: sel.to_string(),
                types: hits
                    .iter()
                    .map(|p| p.typ.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    }
}

/// The `connectionSelector` of a props object (key matched case-insensitively).
pub fn selector_in(props: &Props) -> Option<String> {
    props
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(SELECTOR))
        .and_then(|(_, v)| v.as_str())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Sets `connectionSelector` (whatever case it was written in) to `value`.
fn set_selector(props: &mut Props, value: String) {
    props.retain(|k, _| !k.eq_ignore_ascii_case(SELECTOR));
    props.insert(SELECTOR.into(), Json::String(value));
}

/// The named section of a conf-key map (exact name, else case-insensitive).
fn section(
    keys: &serde_json::Map<String, Json>,
    kind: &str,
    typ: &str,
    key: &str,
) -> Result<Props, ConfError> {
    let found = keys.get(key).map(|v| (key, v)).or_else(|| {
        keys.iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(n, v)| (n.as_str(), v))
    });
    match found {
        Some((_, Json::Object(m))) => Ok(m.clone()),
        _ => Err(ConfError::NotFound {
            kind: kind.trim_end_matches('s').into(),
            typ: typ.into(),
            key: key.into(),
        }),
    }
}

fn object(v: Option<&Json>) -> Props {
    match v {
        Some(Json::Object(m)) => m.clone(),
        _ => Props::new(),
    }
}

/// Props of a stream's source before the statement options:
/// `default` -> profile -> CONF_KEY section -> EXTRA (a JSON object string;
/// anything else is ignored, as before).
pub fn resolve_source(
    conf: &ConfKeys,
    typ: &str,
    conf_key: Option<&str>,
    extra: Option<&str>,
) -> Result<Props, ConnError> {
    let keys = conf.keys("sources", typ)?;
    let default = object(keys.get("default"));
    let sect = match conf_key.filter(|k| !k.is_empty()) {
        Some(k) => section(&keys, "sources", typ, k)?,
        None => Props::new(),
    };
    let extra = match extra.map(serde_json::from_str::<Json>) {
        Some(Ok(Json::Object(m))) => m,
        _ => Props::new(),
    };
    let selector = selector_in(&extra)
        .or_else(|| selector_in(&sect))
        .or_else(|| selector_in(&default));
    let mut props = default;
    let canonical = match selector {
        Some(sel) => {
            let p = find(conf, &sel, Some(typ))?;
            props.extend(p.props.clone());
            Some(p.selector())
        }
        None => None,
    };
    props.extend(sect);
    props.extend(extra);
    if let Some(c) = canonical {
        set_selector(&mut props, c);
    }
    Ok(props)
}

/// Props of a sink action: without a selector, the `resourceId` section
/// (over `default`) under the action's props, as before; with one,
/// `default` -> profile -> `resourceId` section -> action props.
pub fn resolve_sink(conf: &ConfKeys, kind: &str, action: &Props) -> Result<Props, ConnError> {
    let rid = action
        .get("resourceId")
        .and_then(Json::as_str)
        .filter(|r| !r.is_empty());
    let keys = conf.keys("sinks", kind)?;
    let sect = match rid {
        Some(r) => section(&keys, "sinks", kind, r)?,
        None => Props::new(),
    };
    let default = object(keys.get("default"));
    let selector = selector_in(action)
        .or_else(|| selector_in(&sect))
        .or_else(|| rid.and_then(|_| selector_in(&default)));
    let Some(sel) = selector else {
        let mut props = match rid {
            Some(_) => {
                let mut base = default;
                base.extend(sect);
                base
            }
            None => Props::new(),
        };
        props.extend(action.clone());
        return Ok(props);
    };
    let p = find(conf, &sel, Some(kind))?;
    let mut props = default;
    props.extend(p.props.clone());
    props.extend(sect);
    props.extend(action.clone());
    set_selector(&mut props, p.selector());
    Ok(props)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::confkeys::tests::builtin_registry;
    use crate::store::Store;
    use serde_json::json;

    fn setup() -> (tempfile::TempDir, ConfKeys) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ck = ConfKeys::init(dir.path(), store, &builtin_registry()).unwrap();
        std::fs::write(
            dir.path().join("etc/mqtt_source.yaml"),
            "default:\n  qos: 1\n  server: tcp://default:1883\n\
             plain:\n  qos: 0\n  server: tcp://plain:1\n\
             demo_conf:\n  qos: 0\n  connectionSelector: mqtt.localConnection\n\
             override_conf:\n  connectionSelector: localConnection\n  username: other\n  server: tcp://elsewhere:1883\n",
        )
        .unwrap();
        std::fs::write(
            ck.connection_file(),
            "mqtt:\n  localConnection:\n    server: tcp://file:1883\n    username: ekuiper\n    qos: 2\n\
             nng:\n  shared:\n    url: tcp://n:1\n\
             mqtt2:\n  shared:\n    server: tcp://m:1\n",
        )
        .unwrap();
        (dir, ck)
    }

    fn p(v: Json) -> Props {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn source_order_default_profile_conf_key_extra() {
        let (_d, ck) = setup();
        let props = resolve_source(&ck, "mqtt", Some("demo_conf"), None).unwrap();
        assert_eq!(props["server"], "tcp://file:1883", "profile over default");
        assert_eq!(props["username"], "ekuiper");
        assert_eq!(props["qos"], 0, "conf key over profile");
        assert_eq!(props[SELECTOR], "mqtt.localConnection");
        let props = resolve_source(
            &ck,
            "mqtt",
            Some("demo_conf"),
            Some(r#"{"qos":1,"username":"x"}"#),
        )
        .unwrap();
        assert_eq!(
            (props["qos"].clone(), props["username"].clone()),
            (json!(1), json!("x"))
        );
        // The conf key overrides connection-level settings too.
        let props = resolve_source(&ck, "mqtt", Some("override_conf"), None).unwrap();
        assert_eq!(props["server"], "tcp://elsewhere:1883");
        assert_eq!(props["username"], "other");
        assert_eq!(
            props[SELECTOR], "mqtt.localConnection",
            "bare id made canonical"
        );
        // A selector in EXTRA alone.
        let props = resolve_source(
            &ck,
            "mqtt",
            None,
            Some(r#"{"connectionselector":"localConnection"}"#),
        )
        .unwrap();
        assert_eq!(props["server"], "tcp://file:1883");
        assert_eq!(props[SELECTOR], "mqtt.localConnection");
        assert!(!props.contains_key("connectionselector"));
    }

    #[test]
    fn without_selector_resolution_is_unchanged() {
        let (_d, ck) = setup();
        for (key, extra) in [
            (None, None),
            (Some("plain"), Some(r#"{"qos":2}"#)),
            (Some("PLAIN"), Some("not json")),
        ] {
            let mut old = ck.resolve("sources", "mqtt", key).unwrap();
            if let Some(Ok(Json::Object(m))) = extra.map(serde_json::from_str::<Json>) {
                old.extend(m);
            }
            assert_eq!(resolve_source(&ck, "mqtt", key, extra).unwrap(), old);
        }
        let e = resolve_source(&ck, "mqtt", Some("nope"), None).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        // Sinks: action only, or resourceId section under the action.
        let a = p(json!({"server": "tcp://a:1", "topic": "t"}));
        assert_eq!(resolve_sink(&ck, "mqtt", &a).unwrap(), a);
        ck.put(
            "sinks",
            "mqtt",
            "r1",
            &json!({"topic": "fromkey", "qos": 1}),
        )
        .unwrap();
        let a = p(json!({"resourceId": "r1", "qos": 2}));
        let got = resolve_sink(&ck, "mqtt", &a).unwrap();
        let mut want = ck.resolve("sinks", "mqtt", Some("r1")).unwrap();
        want.extend(a.clone());
        assert_eq!(got, want);
        assert_eq!(got["qos"], 2);
    }

    #[test]
    fn sink_order_default_profile_resource_action() {
        let (_d, ck) = setup();
        ck.put(
            "sinks",
            "mqtt",
            "r1",
            &json!({"connectionSelector": "localConnection", "qos": 1, "topic": "k"}),
        )
        .unwrap();
        let got = resolve_sink(&ck, "mqtt", &p(json!({"resourceId": "r1", "topic": "a"}))).unwrap();
        assert_eq!(got["server"], "tcp://file:1883");
        assert_eq!(got["qos"], 1, "resourceId section over profile");
        assert_eq!(got["topic"], "a", "action over resourceId section");
        assert_eq!(got[SELECTOR], "mqtt.localConnection");
        let got = resolve_sink(
            &ck,
            "mqtt",
            &p(json!({"connectionSelector": "mqtt.localConnection", "topic": "a"})),
        )
        .unwrap();
        assert_eq!(got["username"], "ekuiper");
        assert_eq!(got["qos"], 2, "profile value when nothing overrides it");
    }

    #[test]
    fn selector_forms_stored_override_and_errors() {
        let (_d, ck) = setup();
        assert_eq!(find(&ck, "localConnection", None).unwrap().typ, "mqtt");
        assert_eq!(
            find(&ck, "mqtt.localConnection", None).unwrap().id,
            "localConnection"
        );
        // A bare id under several types: the consumer's type decides, else ambiguous.
        assert_eq!(find(&ck, "shared", Some("nng")).unwrap().typ, "nng");
        let e = find(&ck, "shared", Some("mqtt")).unwrap_err();
        assert!(matches!(e, ConnError::Ambiguous { .. }), "{e}");
        assert_eq!(
            find(&ck, "mqtt2.shared", Some("mqtt")).unwrap().typ,
            "mqtt2"
        );
        for bad in ["nope", "mqtt.nope", "nng.localConnection"] {
            let e = find(&ck, bad, Some("mqtt")).unwrap_err();
            assert!(matches!(e, ConnError::NotFound(_)), "{bad}: {e}");
            let e = resolve_source(&ck, "mqtt", None, Some(&json!({SELECTOR: bad}).to_string()))
                .unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
        // Stored profiles override the file's and appear immediately.
        ck.put(
            KIND,
            "mqtt",
            "localConnection",
            &json!({"server": "tcp://stored:1"}),
        )
        .unwrap();
        ck.put(KIND, "mqtt", "c2", &json!({"server": "tcp://c2:1"}))
            .unwrap();
        let prof = find(&ck, "localConnection", None).unwrap();
        assert_eq!(prof.props["server"], "tcp://stored:1");
        assert!(prof.stored && prof.in_file);
        assert!(
            !prof.props.contains_key("username"),
            "a stored profile replaces the file one"
        );
        let props = resolve_sink(&ck, "mqtt", &p(json!({SELECTOR: "c2", "topic": "t"}))).unwrap();
        assert_eq!(props["server"], "tcp://c2:1");
        let ids: Vec<String> = list(&ck).unwrap().iter().map(Profile::selector).collect();
        assert_eq!(
            ids,
            [
                "mqtt.c2",
                "mqtt.localConnection",
                "mqtt2.shared",
                "nng.shared"
            ]
        );
    }
}
