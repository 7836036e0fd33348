//! EdgeX v3 messages: the message-bus envelope, events (and add-event
//! requests) and their readings, read into rows and written from rows.
//! Field names and value types follow EdgeX's `dtos.Event`,
//! `dtos.BaseReading` and `types.MessageEnvelope`.

use std::sync::Arc;

use base64::Engine;
use oort_core::{Map, Meta, Row, Value};
use serde_json::{json, Value as Json};

/// What the bus carries: events (application services) or add-event
/// requests (device services, core data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Event,
    Request,
}

/// One received event: its row (a field per reading), its metadata, and
/// the readings that could not be read.
#[derive(Debug)]
pub struct Received {
    pub row: Row,
    pub meta: Meta,
    pub errors: Vec<String>,
}

fn s(v: &str) -> Value {
    Value::Str(Arc::from(v))
}

/// Reads an envelope (its `payload` base64 text, as EdgeX 3.0 writes it,
/// or a JSON object, as 3.1 can) or a bare event.
pub fn read(bytes: &[u8], kind: MessageType) -> Result<Received, String> {
    let top: Json = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let (body, correlation) = match top.get("payload") {
        Some(Json::String(b64)) => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("envelope payload is not base64: {e}"))?;
            let body: Json = serde_json::from_slice(&raw)
                .map_err(|e| format!("envelope payload is not JSON: {e}"))?;
            (body, top.get("correlationID").cloned())
        }
        Some(obj @ Json::Object(_)) => (obj.clone(), top.get("correlationID").cloned()),
        Some(other) => return Err(format!("envelope payload is {other}")),
        None => (top, None),
    };
    let event = match kind {
        MessageType::Event => body,
        MessageType::Request => body
            .get("event")
            .cloned()
            .ok_or("an add-event request without event (is messageType right?)")?,
    };
    let readings = event
        .get("readings")
        .and_then(Json::as_array)
        .ok_or("an event without readings (is messageType right?)")?;
    let mut fields = Map::new();
    let mut meta = Meta::new();
    let mut errors = Vec::new();
    for r in readings {
        let Some(name) = r.get("resourceName").and_then(Json::as_str) else {
            errors.push("a reading without resourceName".into());
            continue;
        };
        match reading_value(r) {
            Ok(v) => {
                fields.insert(Arc::from(name), v);
            }
            Err(e) => errors.push(format!("reading {name}: {e}")),
        }
        let mut rm = Map::new();
        for k in [
            "id",
            "deviceName",
            "profileName",
            "origin",
            "valueType",
            "mediaType",
            "units",
        ] {
            if let Some(v) = r.get(k).filter(|v| !v.is_null() && v != &&json!("")) {
                rm.insert(Arc::from(k), Value::from_json(v));
            }
        }
        meta.insert(Arc::from(name), Value::Object(Arc::new(rm)));
    }
    for k in [
        "id",
        "deviceName",
        "profileName",
        "sourceName",
        "origin",
        "tags",
    ] {
        if let Some(v) = event.get(k).filter(|v| !v.is_null()) {
            meta.insert(Arc::from(k), Value::from_json(v));
        }
    }
    if let Some(c) = correlation.filter(|c| !c.is_null()) {
        meta.insert(Arc::from("correlationid"), Value::from_json(&c));
    }
    Ok(Received {
        row: Row::from_map(&fields),
        meta,
        errors,
    })
}

/// A reading's value by its `valueType`.
fn reading_value(r: &Json) -> Result<Value, String> {
    let t = r.get("valueType").and_then(Json::as_str).unwrap_or("");
    let text = || r.get("value").and_then(Json::as_str).unwrap_or("");
    let num = |x: &str| -> Result<Value, String> {
        if let Ok(i) = x.parse::<i64>() {
            return Ok(Value::Int(i));
        }
        x.parse::<f64>()
            .map(Value::Float)
            .map_err(|_| format!("{x:?} is not a {t}"))
    };
    let array = |x: &str| -> Result<Value, String> {
        let j: Json = serde_json::from_str(x).map_err(|_| format!("{x:?} is not a {t}"))?;
        if !j.is_array() {
            return Err(format!("{x:?} is not a {t}"));
        }
        Ok(Value::from_json(&j))
    };
    match t {
        "Bool" => text()
            .parse::<bool>()
            .map(Value::Bool)
            .map_err(|_| format!("{:?} is not a Bool", text())),
        "Int8" | "Int16" | "Int32" | "Int64" | "Uint8" | "Uint16" | "Uint32" | "Uint64" => {
            num(text())
        }
        "Float32" | "Float64" => text()
            .parse::<f64>()
            .map(Value::Float)
            .map_err(|_| format!("{:?} is not a {t}", text())),
        "String" => Ok(s(text())),
        "BoolArray" | "Int8Array" | "Int16Array" | "Int32Array" | "Int64Array" | "Uint8Array"
        | "Uint16Array" | "Uint32Array" | "Uint64Array" | "Float32Array" | "Float64Array"
        | "StringArray" => array(text()),
        "Binary" => {
            let b = r.get("binaryValue").and_then(Json::as_str).unwrap_or("");
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .map(|v| Value::Bytes(v.into()))
                .map_err(|e| format!("binaryValue is not base64: {e}"))
        }
        "Object" => Ok(r
            .get("objectValue")
            .map(Value::from_json)
            .unwrap_or(Value::Null)),
        other => Err(format!("value type {other:?} is not an EdgeX v3 type")),
    }
}

/// Go's `strconv.FormatFloat(f, 'e', -1, 64)`, as EdgeX writes Float64.
pub fn go_float_e(f: f64) -> String {
    let r = format!("{f:e}");
    let (m, e) = r.split_once('e').unwrap_or((&r, "0"));
    let (sign, digits) = match e.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', e),
    };
    format!("{m}e{sign}{digits:0>2}")
}

/// A field's value as a reading: `(valueType, value)` or, for `Binary` and
/// `Object`, the extra keys; `None` for NULL (no reading).
fn reading_of(v: &Value) -> Option<(&'static str, Json)> {
    let t = |k: &'static str, v: String| Some((k, json!({ "value": v })));
    match v {
        Value::Null => None,
        Value::Bool(b) => t("Bool", b.to_string()),
        Value::Int(i) => t("Int64", i.to_string()),
        Value::Float(f) => t("Float64", go_float_e(*f)),
        Value::Str(x) => t("String", x.to_string()),
        Value::Datetime(ms) => t("Int64", ms.to_string()),
        Value::Bytes(b) => Some((
            "Binary",
            json!({
                "binaryValue": base64::engine::general_purpose::STANDARD.encode(b),
                "mediaType": "application/octet-stream",
            }),
        )),
        Value::Array(a) => {
            let kind = if a.iter().all(|x| matches!(x, Value::Bool(_))) {
                "BoolArray"
            } else if a.iter().all(|x| matches!(x, Value::Int(_))) {
                "Int64Array"
            } else if a
                .iter()
                .all(|x| matches!(x, Value::Int(_) | Value::Float(_)))
            {
                "Float64Array"
            } else if a.iter().all(|x| matches!(x, Value::Str(_))) {
                "StringArray"
            } else {
                return Some(("Object", json!({ "objectValue": v.to_json() })));
            };
            t(kind, v.to_json().to_string())
        }
        Value::Object(_) => Some(("Object", json!({ "objectValue": v.to_json() }))),
    }
}

/// The names an event is sent under.
#[derive(Debug, Clone)]
pub struct Names {
    pub device: String,
    pub profile: String,
    pub source: String,
}

/// An event of `row`'s fields (`skip` left out), as EdgeX's `dtos.Event`.
pub fn event(row: &Map, skip: Option<&str>, names: &Names, origin_ns: i64) -> Json {
    let mut readings = Vec::new();
    for (k, v) in row.iter() {
        if skip == Some(k.as_ref()) {
            continue;
        }
        let Some((vt, extra)) = reading_of(v) else {
            continue;
        };
        let mut r = json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "origin": origin_ns,
            "deviceName": names.device,
            "resourceName": k.as_ref(),
            "profileName": names.profile,
            "valueType": vt,
        });
        if let (Some(o), Json::Object(e)) = (r.as_object_mut(), extra) {
            o.extend(e);
        }
        readings.push(r);
    }
    json!({
        "apiVersion": "v3",
        "id": uuid::Uuid::new_v4().to_string(),
        "deviceName": names.device,
        "profileName": names.profile,
        "sourceName": names.source,
        "origin": origin_ns,
        "readings": readings,
    })
}

/// The body a bus message carries: the event, or an add-event request
/// wrapping it.
pub fn body(event: Json, kind: MessageType) -> Json {
    match kind {
        MessageType::Event => event,
        MessageType::Request => json!({
            "apiVersion": "v3",
            "requestId": uuid::Uuid::new_v4().to_string(),
            "event": event,
        }),
    }
}

/// The envelope of a body: its payload is the body's JSON in base64 (what
/// every EdgeX 3.x reader accepts).
pub fn wrap(body: &[u8], correlation: &str) -> Vec<u8> {
    let payload = base64::engine::general_purpose::STANDARD.encode(body);
    json!({
        "apiVersion": "v3",
        "receivedTopic": "",
        "correlationID": correlation,
        "requestID": "",
        "errorCode": 0,
        "payload": payload,
        "contentType": "application/json",
    })
    .to_string()
    .into_bytes()
}

/// The bus message of an event: [`body`] in an envelope ([`wrap`]).
pub fn envelope(event: Json, kind: MessageType) -> Vec<u8> {
    wrap(
        body(event, kind).to_string().as_bytes(),
        &uuid::Uuid::new_v4().to_string(),
    )
}
