//! The sink pipeline of one rule action: batch -> transform (`dataField`,
//! `fields`/`excludeFields`, `dataTemplate`) -> encode (`format`) -> the
//! connector's `collect`, with retries for `Unavailable` errors and eKuiper's
//! common sink properties.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use oort_core::codec::{self, EncodeOptions, Encoder};
use oort_core::{ConnectorError, Map, Props, Row, Sink, SinkContext, SinkItem, Value};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::metrics::NodeMetrics;

/// eKuiper's common sink properties (§5.4 of the compat notes).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SinkCommon {
    pub send_single: bool,
    pub omit_if_empty: bool,
    pub format: String,
    pub delimiter: Option<String>,
    pub has_header: bool,
    pub fields: Option<Vec<String>>,
    pub exclude_fields: Option<Vec<String>>,
    #[serde(alias = "tableDataField")]
    pub data_field: Option<String>,
    pub data_template: Option<String>,
    pub batch_size: usize,
    #[serde(deserialize_with = "de_duration_ms")]
    pub linger_interval: u64,
    pub buffer_length: usize,
    pub concurrency: usize,
    pub resource_id: Option<String>,
}

impl Default for SinkCommon {
    fn default() -> Self {
        SinkCommon {
            send_single: false,
            omit_if_empty: false,
            format: "json".into(),
            delimiter: None,
            has_header: false,
            fields: None,
            exclude_fields: None,
            data_field: None,
            data_template: None,
            batch_size: 0,
            linger_interval: 0,
            buffer_length: 1024,
            concurrency: 1,
            resource_id: None,
        }
    }
}

fn de_duration_ms<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    oort_core::duration::duration_from_json(&v)
        .map(|d| d.as_millis() as u64)
        .map_err(serde::de::Error::custom)
}

impl SinkCommon {
    pub fn from_props(props: &Props) -> Result<SinkCommon, ConnectorError> {
        let c: SinkCommon = oort_core::parse_props(props)?;
        if c.fields.is_some() && c.exclude_fields.is_some() {
            return Err(ConnectorError::config(
                "fields and excludeFields cannot be set together",
            ));
        }
        if c.buffer_length == 0 {
            return Err(ConnectorError::config(
                "bufferLength must be greater than 0",
            ));
        }
        Ok(c)
    }
}

/// A compiled `dataTemplate` (Go template syntax translated to Handlebars).
pub struct Template {
    hb: handlebars::Handlebars<'static>,
}

impl Template {
    pub fn compile(go_template: &str) -> Result<Template, ConnectorError> {
        let mut hb = handlebars::Handlebars::new();
        hb.register_escape_fn(handlebars::no_escape);
        hb.register_helper("json", Box::new(json_helper));
        hb.register_template_string("t", translate_go_template(go_template))
            .map_err(|e| ConnectorError::config(format!("invalid dataTemplate: {e}")))?;
        Ok(Template { hb })
    }

    pub fn render(&self, data: &Value) -> Result<String, String> {
        self.hb
            .render("t", &data.to_json())
            .map_err(|e| format!("dataTemplate: {e}"))
    }
}

fn json_helper(
    h: &handlebars::Helper,
    _: &handlebars::Handlebars,
    _: &handlebars::Context,
    _: &mut handlebars::RenderContext,
    out: &mut dyn handlebars::Output,
) -> handlebars::HelperResult {
    let v = h
        .param(0)
        .map(|p| p.value().to_string())
        .unwrap_or_default();
    out.write(&v)?;
    Ok(())
}

/// Translates the common Go `text/template` forms eKuiper users write into
/// Handlebars: `{{.a}}` -> `{{a}}`, `{{.a.b}}` -> `{{a.b}}`, `{{.}}` -> `{{this}}`,
/// `{{json .}}` -> `{{json this}}`, `{{index . 0 "a"}}` -> `{{this.[0].a}}`.
pub fn translate_go_template(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let mut rest = t;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = after[..end]
            .trim()
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim();
        out.push_str("{{");
        out.push_str(&translate_action(inner));
        out.push_str("}}");
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn translate_action(inner: &str) -> String {
    let words: Vec<&str> = inner.split_whitespace().collect();
    if words.first() == Some(&"index") && words.len() >= 3 {
        let mut path = String::from("this");
        for w in &words[2..] {
            let w = w.trim_matches('"');
            if w.chars().all(|c| c.is_ascii_digit()) {
                path.push_str(&format!(".[{w}]"));
            } else {
                path.push('.');
                path.push_str(w);
            }
        }
        return path;
    }
    words
        .iter()
        .map(|w| {
            if *w == "." {
                "this".to_string()
            } else if let Some(p) = w.strip_prefix('.') {
                p.to_string()
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A running sink node.
pub struct SinkNode {
    pub kind: String,
    pub index: usize,
    pub tx: mpsc::Sender<Arc<Vec<Row>>>,
    pub metrics: Arc<NodeMetrics>,
    pub conn: oort_core::ConnState,
    /// Ends after the input channel closed and everything queued was written.
    pub task: tokio::task::JoinHandle<()>,
}

pub struct SinkSpec {
    pub rule_id: String,
    pub kind: String,
    pub index: usize,
    pub sink: Box<dyn Sink>,
    pub wants_bytes: bool,
    pub common: SinkCommon,
}

/// Prepared transform + encode step.
struct Shaper {
    common: SinkCommon,
    encoder: Box<dyn Encoder>,
    template: Option<Template>,
    wants_bytes: bool,
}

impl Shaper {
    fn shape(&self, rows: &[Row], out: &mut Vec<SinkItem>) -> Result<(), String> {
        if self.common.omit_if_empty && rows.is_empty() {
            return Ok(());
        }
        if self.common.send_single {
            for r in rows {
                let v = self.transform(Value::Object(Arc::new(r.to_map())));
                out.push(self.encode(v)?);
            }
        } else {
            let arr: Vec<Value> = rows
                .iter()
                .map(|r| Value::Object(Arc::new(r.to_map())))
                .collect();
            let v = self.transform(Value::Array(Arc::new(arr)));
            out.push(self.encode(v)?);
        }
        Ok(())
    }

    fn transform(&self, v: Value) -> Value {
        let v = match &self.common.data_field {
            Some(f) => pick_data_field(&v, f),
            None => v,
        };
        if self.common.fields.is_none() && self.common.exclude_fields.is_none() {
            return v;
        }
        match v {
            Value::Object(m) => Value::Object(Arc::new(self.select_fields(&m))),
            Value::Array(a) => Value::Array(Arc::new(
                a.iter()
                    .map(|x| match x {
                        Value::Object(m) => Value::Object(Arc::new(self.select_fields(m))),
                        other => other.clone(),
                    })
                    .collect(),
            )),
            other => other,
        }
    }

    fn select_fields(&self, m: &Map) -> Map {
        if let Some(fields) = &self.common.fields {
            let mut o = Map::new();
            for f in fields {
                if let Some((k, v)) = m.get_key_value(f.as_str()) {
                    o.insert(k.clone(), v.clone());
                }
            }
            o
        } else if let Some(ex) = &self.common.exclude_fields {
            m.iter()
                .filter(|(k, _)| !ex.iter().any(|e| e.as_str() == k.as_ref()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        } else {
            m.clone()
        }
    }

    fn encode(&self, data: Value) -> Result<SinkItem, String> {
        if let Some(t) = &self.template {
            let text = t.render(&data)?;
            // A template that renders JSON is parsed back so memory/log sinks see structure.
            let data = serde_json::from_str::<serde_json::Value>(&text)
                .map(|j| Value::from_json(&j))
                .unwrap_or_else(|_| Value::str(&text));
            return Ok(SinkItem {
                data,
                payload: Bytes::from(text),
            });
        }
        let payload = if self.wants_bytes {
            self.encoder.encode(&data).map_err(|e| e.to_string())?
        } else {
            Bytes::new()
        };
        Ok(SinkItem { data, payload })
    }
}

fn pick_data_field(v: &Value, field: &str) -> Value {
    let get = |m: &Map| m.get(field).cloned().unwrap_or(Value::Null);
    match v {
        Value::Object(m) => get(m),
        Value::Array(a) => match a.first() {
            // eKuiper picks the field of the first row when not sendSingle.
            Some(Value::Object(m)) => get(m),
            _ => Value::Null,
        },
        other => other.clone(),
    }
}

/// Validates the common props and builds the encoder/template; no IO.
pub fn prepare(common: &SinkCommon) -> Result<(), ConnectorError> {
    make_shaper(common.clone(), true).map(|_| ())
}

fn make_shaper(common: SinkCommon, wants_bytes: bool) -> Result<Shaper, ConnectorError> {
    let encoder = codec::encoder(
        &common.format.to_ascii_lowercase(),
        &EncodeOptions {
            delimiter: common.delimiter.clone(),
            has_header: common.has_header,
            ..Default::default()
        },
    )
    .map_err(|e| ConnectorError::config(e.to_string()))?;
    let template = match common.data_template.as_deref() {
        Some(t) if !t.is_empty() => Some(Template::compile(t)?),
        _ => None,
    };
    Ok(Shaper {
        common,
        encoder,
        template,
        wants_bytes,
    })
}

/// Starts the sink task. Errors that stop the rule are sent on `fatal`.
pub fn start(
    spec: SinkSpec,
    cancel: CancellationToken,
    fatal: mpsc::Sender<String>,
) -> Result<SinkNode, ConnectorError> {
    let shaper = make_shaper(spec.common.clone(), spec.wants_bytes)?;
    let (tx, rx) = mpsc::channel::<Arc<Vec<Row>>>(spec.common.buffer_length.max(1));
    let metrics = Arc::new(NodeMetrics::default());
    let mut ctx = SinkContext::new(
        format!("{}_{}_{}", spec.rule_id, spec.kind, spec.index),
        cancel,
    );
    let conn = ctx.conn.clone();
    ctx.conn = conn.clone();
    let kind = spec.kind.clone();
    let index = spec.index;
    let task = tokio::spawn(run(spec, shaper, rx, ctx, metrics.clone(), fatal));
    Ok(SinkNode {
        kind,
        index,
        tx,
        metrics,
        conn,
        task,
    })
}

async fn run(
    mut spec: SinkSpec,
    shaper: Shaper,
    mut rx: mpsc::Receiver<Arc<Vec<Row>>>,
    ctx: SinkContext,
    metrics: Arc<NodeMetrics>,
    fatal: mpsc::Sender<String>,
) {
    // Connect with retries while the remote is unavailable.
    let mut backoff = Duration::from_millis(200);
    loop {
        match spec.sink.connect(&ctx).await {
            Ok(()) => break,
            Err(ConnectorError::Unavailable(m)) => {
                metrics.exception(m.clone());
                ctx.conn.disconnected(m);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {},
                    _ = ctx.cancel.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
            Err(e) => {
                metrics.exception(e.to_string());
                let _ = fatal
                    .send(format!("sink {}_{}: {e}", spec.kind, spec.index))
                    .await;
                return;
            }
        }
    }
    let batch_size = spec.common.batch_size;
    let linger = Duration::from_millis(spec.common.linger_interval);
    let mut pending: Vec<Row> = Vec::new();
    let mut items: Vec<SinkItem> = Vec::with_capacity(64);
    let mut emissions: Vec<Arc<Vec<Row>>> = Vec::with_capacity(64);
    loop {
        emissions.clear();
        let n = if batch_size > 0 && !pending.is_empty() && !linger.is_zero() {
            tokio::select! {
                n = rx.recv_many(&mut emissions, 64) => n,
                _ = tokio::time::sleep(linger) => usize::MAX,
                _ = ctx.cancel.cancelled() => 0,
            }
        } else {
            tokio::select! {
                n = rx.recv_many(&mut emissions, 64) => n,
                _ = ctx.cancel.cancelled() => 0,
            }
        };
        if n == 0 {
            break;
        }
        items.clear();
        let start = std::time::Instant::now();
        if batch_size > 0 {
            for e in &emissions {
                metrics.inc_in(e.len() as u64);
                pending.extend(e.iter().cloned());
            }
            let linger_fired = n == usize::MAX;
            while pending.len() >= batch_size || (linger_fired && !pending.is_empty()) {
                let take = pending.len().min(batch_size);
                let chunk: Vec<Row> = pending.drain(..take).collect();
                if let Err(e) = shaper.shape(&chunk, &mut items) {
                    metrics.exception(e);
                }
            }
        } else {
            for e in &emissions {
                metrics.inc_in(e.len().max(1) as u64);
                if let Err(err) = shaper.shape(e, &mut items) {
                    metrics.exception(err);
                }
            }
        }
        if items.is_empty() {
            continue;
        }
        if let Err(msg) = deliver(&mut spec, &ctx, &items, &metrics).await {
            let _ = fatal.send(msg).await;
            break;
        }
        metrics.invoked(oort_core::now_ms(), start.elapsed().as_micros() as u64);
    }
    let _ = spec.sink.close(&ctx).await;
}

/// Writes items; retries `Unavailable` a few times, counts other errors.
/// Returns Err(message) only for errors that must stop the rule.
async fn deliver(
    spec: &mut SinkSpec,
    ctx: &SinkContext,
    items: &[SinkItem],
    metrics: &NodeMetrics,
) -> Result<(), String> {
    let mut delay = Duration::from_millis(100);
    for attempt in 0..4 {
        match spec.sink.collect(ctx, items).await {
            Ok(()) => {
                metrics.inc_out(items.len() as u64);
                return Ok(());
            }
            Err(ConnectorError::Unavailable(m)) => {
                metrics.exception(m.clone());
                if attempt == 3 {
                    return Ok(()); // dropped after retries; counted above
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {},
                    _ = ctx.cancel.cancelled() => return Ok(()),
                }
                delay *= 2;
            }
            Err(ConnectorError::InvalidData(m)) | Err(ConnectorError::Config(m)) => {
                metrics.exception(m);
                return Ok(());
            }
            Err(ConnectorError::Fatal(m)) => {
                metrics.exception(m.clone());
                return Err(format!("sink {}_{}: {m}", spec.kind, spec.index));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_templates_translate() {
        assert_eq!(translate_go_template("{{.a}}-{{ .b.c }}"), "{{a}}-{{b.c}}");
        assert_eq!(translate_go_template("{{json .}}"), "{{json this}}");
        assert_eq!(
            translate_go_template(r#"{{index . 0 "topic"}}"#),
            "{{this.[0].topic}}"
        );
        let t = Template::compile(r#"{"v":{{.a}},"t":"{{.name}}"}"#).unwrap();
        let data = Value::from_json(&serde_json::json!({"a": 1, "name": "x"}));
        assert_eq!(t.render(&data).unwrap(), r#"{"v":1,"t":"x"}"#);
    }
}
