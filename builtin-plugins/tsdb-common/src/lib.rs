//! Shared by the time-series sinks: eKuiper's InfluxDB write options
//! (`measurement`, `tags`, `fields`, `tsFieldName`, `precision`) and the
//! encoding of result rows into line protocol (`influx`, `influx2`), the
//! TDengine insert statements (`tdengine`, in [`taos`]), the `{{.column}}`
//! templates both use, and the batch writer. Each message is one JSON row
//! (with `sendSingle`) or a JSON array of rows.

pub mod taos;

use oort_plugin_sdk::serde_json::{Map, Value};
use oort_plugin_sdk::{prop, Error, Message, Props, WriteFailure};

/// Timestamp precision of the written points and of `tsFieldName` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Ns,
    Us,
    Ms,
    S,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Ns => "ns",
            Precision::Us => "us",
            Precision::Ms => "ms",
            Precision::S => "s",
        }
    }

    fn now(self) -> i64 {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let v = match self {
            Precision::Ns => d.as_nanos(),
            Precision::Us => d.as_micros(),
            Precision::Ms => d.as_millis(),
            Precision::S => u128::from(d.as_secs()),
        };
        i64::try_from(v).unwrap_or(i64::MAX)
    }
}

/// One part of a tag value: literal text or a row field (`{{.name}}`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(String),
}

/// A property value that eKuiper takes as a Go template: this renders the
/// form these properties use, text with `{{.field}}` references, and
/// refuses the rest at validation (naming it) rather than writing something
/// else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Part>);

impl Template {
    /// Parses the value of property `key` (for messages).
    pub fn parse(key: &str, s: &str) -> Result<Template, Error> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(i) = rest.find("{{") {
            if i > 0 {
                parts.push(Part::Text(rest[..i].to_string()));
            }
            let after = &rest[i + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| Error::config(format!("{key}: unclosed {{{{ in {s:?}")))?;
            let action = after[..end].trim();
            let field = action.strip_prefix('.').filter(|f| {
                !f.is_empty()
                    && f.chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
            });
            match field {
                Some(f) => parts.push(Part::Field(f.to_string())),
                None => {
                    return Err(Error::config(format!(
                    "{key}: the template action {{{{{action}}}}} is not supported by this plugin; \
                         use text and {{{{.field}}}} references"
                )))
                }
            }
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template(parts))
    }

    /// The value for `row`; a missing field renders as Go does, `<no value>`.
    pub fn render(&self, row: &Map<String, Value>) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Field(f) => match row.get(f) {
                    None => out.push_str("<no value>"),
                    Some(Value::String(s)) => out.push_str(s),
                    Some(Value::Null) => out.push_str("<nil>"),
                    Some(v) => out.push_str(&v.to_string()),
                },
            }
        }
        out
    }
}

/// The write options both sinks share.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    pub measurement: String,
    pub precision: Precision,
    tags: Vec<(String, Template)>,
    fields: Vec<String>,
    ts_field: Option<String>,
}

/// eKuiper's TLS properties: the plugin's HTTPS goes through the host, which
/// verifies servers with its own roots; these cannot be honoured.
const TLS_PROPS: [&str; 5] = [
    "certificationPath",
    "privateKeyPath",
    "rootCaPath",
    "tlsMinVersion",
    "renegotiationSupport",
];

/// Refuses what the plugin knows and cannot honour.
pub fn refuse_unsupported(props: &Props) -> Result<(), Error> {
    for k in TLS_PROPS {
        if props.get(k).is_some_and(|v| !v.is_null() && v != "") {
            return Err(Error::config(format!(
                "{k} is not supported: HTTPS requests go through Oort, which verifies servers with the system's roots"
            )));
        }
    }
    if prop::<bool>(props, "insecureSkipVerify")?.unwrap_or(false) {
        return Err(Error::config(
            "insecureSkipVerify is not supported: HTTPS requests go through Oort, which always verifies servers",
        ));
    }
    Ok(())
}

/// A required non-empty string property.
pub fn required(props: &Props, key: &str) -> Result<String, Error> {
    match prop::<String>(props, key)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(Error::config(format!("{key} is required"))),
    }
}

/// `addr`: an http(s) base URL, without a trailing slash.
pub fn addr(props: &Props) -> Result<String, Error> {
    let a = required(props, "addr")?;
    if !(a.starts_with("http://") || a.starts_with("https://")) {
        return Err(Error::config(format!(
            "addr must be an http:// or https:// URL, got {a:?}"
        )));
    }
    Ok(a.trim_end_matches('/').to_string())
}

impl WriteOptions {
    /// Reads the write options; `measurement_required` as the sink says.
    pub fn parse(props: &Props, measurement_required: bool) -> Result<WriteOptions, Error> {
        let measurement = if measurement_required {
            required(props, "measurement")?
        } else {
            prop::<String>(props, "measurement")?.unwrap_or_default()
        };
        let precision = match prop::<String>(props, "precision")?.as_deref() {
            None | Some("ms") => Precision::Ms,
            Some("s") => Precision::S,
            Some("us") => Precision::Us,
            Some("ns") => Precision::Ns,
            Some(p) => {
                return Err(Error::config(format!(
                    "precision {p} is not supported (ns, us, ms or s)"
                )))
            }
        };
        let mut tags = Vec::new();
        for (k, v) in prop::<Map<String, Value>>(props, "tags")?.unwrap_or_default() {
            let Value::String(s) = v else {
                return Err(Error::config(format!("tags.{k} must be a string, got {v}")));
            };
            tags.push((k.clone(), Template::parse(&format!("tags.{k}"), &s)?));
        }
        tags.sort_by(|a, b| a.0.cmp(&b.0));
        let fields = prop::<Vec<String>>(props, "fields")?.unwrap_or_default();
        let ts_field = prop::<String>(props, "tsFieldName")?.filter(|s| !s.is_empty());
        Ok(WriteOptions {
            measurement,
            precision,
            tags,
            fields,
            ts_field,
        })
    }

    /// The line-protocol lines of one message (a row or an array of rows).
    pub fn lines(&self, payload: &[u8], out: &mut String) -> Result<usize, Error> {
        each_row(payload, |row| self.point(row, out))
    }

    /// One point: `measurement,tag=v field=v ts\n`.
    fn point(&self, row: &Map<String, Value>, out: &mut String) -> Result<(), Error> {
        let ts = match &self.ts_field {
            None => self.precision.now(),
            Some(f) => match row.get(f) {
                None => return Err(Error::invalid_data(format!("time field {f} not found"))),
                Some(v) => v.as_i64().ok_or_else(|| {
                    Error::invalid_data(format!(
                        "time field {f} can not convert to timestamp(int64): {v}"
                    ))
                })?,
            },
        };
        let start = out.len();
        escape(&self.measurement, &[',', ' '], out);
        for (k, t) in &self.tags {
            let v = t.render(row);
            if v.is_empty() {
                continue; // line protocol has no empty tag values
            }
            out.push(',');
            escape(k, &[',', '=', ' '], out);
            out.push('=');
            escape(&v, &[',', '=', ' '], out);
        }
        out.push(' ');
        let mut n = 0;
        let mut field = |k: &str, v: &Value, out: &mut String| {
            if v.is_null() {
                return;
            }
            if n > 0 {
                out.push(',');
            }
            n += 1;
            escape(k, &[',', '=', ' '], out);
            out.push('=');
            match v {
                Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                Value::Number(x) if x.is_i64() || x.is_u64() => {
                    out.push_str(&x.to_string());
                    out.push('i');
                }
                Value::Number(x) => out.push_str(&x.to_string()),
                Value::String(s) => quote(s, out),
                other => quote(&other.to_string(), out),
            }
        };
        if self.fields.is_empty() {
            for (k, v) in row {
                field(k, v, out);
            }
        } else {
            for f in &self.fields {
                if let Some(v) = row.get(f) {
                    field(f, v, out);
                }
            }
        }
        if n == 0 {
            out.truncate(start);
            return Err(Error::invalid_data("the row has no field to write"));
        }
        out.push(' ');
        out.push_str(&ts.to_string());
        out.push('\n');
        Ok(())
    }
}

/// Calls `f` with each row of a message (a JSON object, or an array of them).
pub fn each_row(
    payload: &[u8],
    mut f: impl FnMut(&Map<String, Value>) -> Result<(), Error>,
) -> Result<usize, Error> {
    let v: Value = oort_plugin_sdk::serde_json::from_slice(payload)
        .map_err(|e| Error::invalid_data(format!("the message is not JSON: {e}")))?;
    match v {
        Value::Object(row) => {
            f(&row)?;
            Ok(1)
        }
        Value::Array(rows) => {
            let mut n = 0;
            for r in rows {
                let Value::Object(row) = r else {
                    return Err(Error::invalid_data("a row is not a JSON object"));
                };
                f(&row)?;
                n += 1;
            }
            Ok(n)
        }
        _ => Err(Error::invalid_data(
            "the message is neither a JSON object nor an array of objects",
        )),
    }
}

fn escape(s: &str, special: &[char], out: &mut String) {
    for c in s.chars() {
        if special.contains(&c) || c == '\\' {
            out.push('\\');
        }
        match c {
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Encodes a batch and hands the body to `send` (one request). A message
/// that cannot be encoded ends the batch there: the messages before it are
/// sent, and it is reported as `invalid-data` (the host drops it, counts it,
/// and sends the rest again).
pub fn write_batch(
    batch: &[Message],
    mut encode: impl FnMut(&[u8], &mut String) -> Result<usize, Error>,
    send: impl FnOnce(Vec<u8>) -> Result<(), Error>,
) -> Result<(), WriteFailure> {
    let mut body = String::new();
    let mut bad = None;
    for (i, m) in batch.iter().enumerate() {
        let mark = body.len();
        if let Err(e) = encode(&m.payload, &mut body) {
            body.truncate(mark);
            bad = Some((i, e));
            break;
        }
    }
    if !body.is_empty() {
        send(body.into_bytes()).map_err(|error| WriteFailure { accepted: 0, error })?;
    }
    match bad {
        Some((i, error)) => Err(WriteFailure {
            accepted: u32::try_from(i).unwrap_or(u32::MAX),
            error,
        }),
        None => Ok(()),
    }
}

/// POSTs `body` with `headers` (a text body); a non-2xx answer is the
/// error its status maps to (`what` names the write in it). Returns the
/// answer's body.
#[cfg(target_arch = "wasm32")]
pub fn post(
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    what: &str,
) -> Result<Vec<u8>, Error> {
    let mut r = oort_plugin_sdk::http::Request::post(url, body)
        .header("Content-Type", "text/plain; charset=utf-8");
    for (k, v) in headers {
        r = r.header(k, v);
    }
    let resp = r.send()?;
    if resp.ok() {
        Ok(resp.body)
    } else {
        Err(resp.error(what))
    }
}

/// The `Authorization` value of HTTP Basic credentials.
pub fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// `k=v&k=v` with each value percent-encoded.
pub fn query(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oort_plugin_sdk::serde_json::json;

    fn opts(p: Value) -> Result<WriteOptions, Error> {
        WriteOptions::parse(p.as_object().unwrap(), true)
    }

    #[test]
    fn rows_become_points_with_escapes_types_and_sorted_tags() {
        let o = opts(
            json!({"measurement": "cpu load", "tsFieldName": "ts", "precision": "s",
            "tags": {"site": "s-{{.site}}", "a": "x,y"}}),
        )
        .unwrap();
        let mut out = String::new();
        let n = o
            .lines(
                br#"[{"ts": 1700000000, "site": "north", "v": 1.5, "n": 3, "ok": true, "s": "a \"q\"", "z": null},
                     {"ts": 1700000001, "site": "south", "v": 2}]"#,
                &mut out,
            )
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            out,
            "cpu\\ load,a=x\\,y,site=s-north ts=1700000000i,site=\"north\",v=1.5,n=3i,ok=true,s=\"a \\\"q\\\"\" 1700000000\n\
             cpu\\ load,a=x\\,y,site=s-south ts=1700000001i,site=\"south\",v=2i 1700000001\n"
        );
    }

    #[test]
    fn fields_select_and_missing_time_is_invalid_data() {
        let o = opts(json!({"measurement": "m", "fields": ["v"], "tsFieldName": "ts"})).unwrap();
        let mut out = String::new();
        o.lines(br#"{"ts": 5, "v": 1, "w": 2}"#, &mut out).unwrap();
        assert_eq!(out, "m v=1i 5\n");
        let e = o.lines(br#"{"v": 1}"#, &mut out).unwrap_err();
        assert!(e.message.contains("time field ts not found"), "{e:?}");
        let e = o.lines(br#"{"ts": 1, "w": 1}"#, &mut out).unwrap_err();
        assert!(e.message.contains("no field"), "{e:?}");
    }

    #[test]
    fn bad_options_are_refused_naming_them() {
        let e = opts(json!({"measurement": "m", "precision": "m"})).unwrap_err();
        assert!(e.message.contains("precision m"), "{e:?}");
        let e =
            opts(json!({"measurement": "m", "tags": {"t": "{{printf \"%d\" .x}}"}})).unwrap_err();
        assert!(
            e.message.contains("tags.t") && e.message.contains("not supported"),
            "{e:?}"
        );
        let e = opts(json!({"precision": "s"})).unwrap_err();
        assert!(e.message.contains("measurement is required"), "{e:?}");
        let p = json!({"rootCaPath": "/x"});
        let e = refuse_unsupported(p.as_object().unwrap()).unwrap_err();
        assert!(e.message.contains("rootCaPath"), "{e:?}");
        let p = json!({"insecureSkipVerify": false});
        assert!(refuse_unsupported(p.as_object().unwrap()).is_ok());
    }

    #[test]
    fn credentials_and_query() {
        assert_eq!(basic_auth("user", "pass"), "Basic dXNlcjpwYXNz");
        assert_eq!(
            query(&[("db", "my db&x"), ("precision", "ms")]),
            "db=my+db%26x&precision=ms"
        );
    }
}
