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
    /// Set for rules with checkpoints (`qos` >= 1).
    pub progress: Option<Arc<SinkProgress>>,
}

/// How far a sink node has written, for checkpoints: the rule counts the
/// emissions it sends; a checkpoint asks the node to confirm the first
/// `want` of them; the node confirms (after [`Sink::flush`]) once they are
/// all written.
#[derive(Default)]
pub struct SinkProgress {
    want: std::sync::atomic::AtomicU64,
    done: std::sync::atomic::AtomicU64,
    wake: tokio::sync::Notify,
    /// Woken when `done` moves (shared by the rule's sinks).
    pub rule: Arc<tokio::sync::Notify>,
}

impl SinkProgress {
    pub fn new(rule: Arc<tokio::sync::Notify>) -> SinkProgress {
        SinkProgress {
            rule,
            ..SinkProgress::default()
        }
    }

    /// Asks for the first `sent` emissions to be confirmed.
    pub fn request(&self, sent: u64) {
        self.want
            .fetch_max(sent, std::sync::atomic::Ordering::AcqRel);
        self.wake.notify_one();
    }

    /// Emissions written and flushed.
    pub fn done(&self) -> u64 {
        self.done.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Waits for a checkpoint request (never, without checkpoints).
async fn checkpoint_wanted(p: &Option<Arc<SinkProgress>>) {
    match p {
        Some(p) => p.wake.notified().await,
        None => std::future::pending().await,
    }
}

/// Prepared transform + encode step.
struct Shaper {
    common: SinkCommon,
    encoder: Box<dyn Encoder>,
    template: Option<Template>,
    wants_bytes: bool,
    /// The sink reads payloads only and no transform applies: rows are
    /// encoded straight into payloads, `SinkItem::data` stays `Null`.
    direct: bool,
    /// Reused row buffer for array payloads whose rows span emissions.
    scratch: Vec<Row>,
    /// Size of the last one-buffer encoding, to size the next one.
    last_len: usize,
    /// That buffer, taken back for the next batch once the sink dropped its
    /// payloads (saves a large allocation per batch).
    spare: Option<Bytes>,
    /// Reused payload end offsets in that buffer.
    ends: Vec<usize>,
}

impl Shaper {
    /// Shapes the rows of `parts` (consecutive slices of one batch) into
    /// items: one per row with `sendSingle`, else one for all of them.
    fn shape(&mut self, parts: &[&[Row]], out: &mut Vec<SinkItem>) -> Result<(), String> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if self.common.omit_if_empty && total == 0 {
            return Ok(());
        }
        let rows = parts.iter().flat_map(|p| p.iter());
        if self.direct {
            return if self.common.send_single {
                self.encode_each(rows, out)
            } else {
                let payload = match parts {
                    [] => self.encoder.encode_rows(&[]),
                    [one] => self.encoder.encode_rows(one),
                    _ => {
                        self.scratch.clear();
                        self.scratch.extend(rows.cloned());
                        let r = self.encoder.encode_rows(&self.scratch);
                        self.scratch.clear();
                        r
                    }
                };
                out.push(SinkItem {
                    data: Value::Null,
                    payload: payload.map_err(|e| e.to_string())?,
                });
                Ok(())
            };
        }
        if self.common.send_single {
            for r in rows {
                let v = self.transform(Value::Object(Arc::new(r.to_map())));
                out.push(self.encode(v)?);
            }
        } else {
            let arr: Vec<Value> = rows.map(|r| Value::Object(Arc::new(r.to_map()))).collect();
            let v = self.transform(Value::Array(Arc::new(arr)));
            out.push(self.encode(v)?);
        }
        Ok(())
    }

    /// One payload per row, all encoded into one buffer and handed out as
    /// slices of it: no allocation per row, and the buffer itself is reused
    /// once the sink has dropped the previous batch's payloads.
    fn encode_each<'a>(
        &mut self,
        mut rows: impl Iterator<Item = &'a Row>,
        out: &mut Vec<SinkItem>,
    ) -> Result<(), String> {
        let mut buf = self
            .spare
            .take()
            .and_then(|b| b.try_into_mut().ok())
            .map(Vec::from)
            .unwrap_or_default();
        buf.clear();
        buf.reserve(self.last_len.max(64));
        self.ends.clear();
        let failed = self
            .encoder
            .append_each_row(&mut rows, &mut buf, &mut self.ends)
            .err()
            .map(|e| e.to_string());
        self.last_len = buf.len();
        let buf = Bytes::from(buf);
        let mut start = 0;
        for &end in &self.ends {
            out.push(SinkItem {
                data: Value::Null,
                payload: buf.slice(start..end),
            });
            start = end;
        }
        self.spare = Some(buf);
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
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
    make_shaper(common.clone(), true, true).map(|_| ())
}

fn make_shaper(
    common: SinkCommon,
    wants_bytes: bool,
    wants_data: bool,
) -> Result<Shaper, ConnectorError> {
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
    let direct = wants_bytes
        && !wants_data
        && template.is_none()
        && common.data_field.is_none()
        && common.fields.is_none()
        && common.exclude_fields.is_none();
    Ok(Shaper {
        common,
        encoder,
        template,
        wants_bytes,
        direct,
        scratch: Vec::new(),
        last_len: 0,
        spare: None,
        ends: Vec::new(),
    })
}

/// Starts the sink task. Errors that stop the rule are sent on `fatal`.
pub fn start(
    spec: SinkSpec,
    cancel: CancellationToken,
    fatal: mpsc::Sender<String>,
) -> Result<SinkNode, ConnectorError> {
    let shaper = make_shaper(
        spec.common.clone(),
        spec.wants_bytes,
        spec.sink.wants_data(),
    )?;
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
    mut shaper: Shaper,
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
    let batching = batch_size > 0 || !linger.is_zero();
    let mut pending = Pending::default();
    // When lingering rows must be written even if no batch fills.
    let mut due: Option<tokio::time::Instant> = None;
    let mut items: Vec<SinkItem> = Vec::with_capacity(64);
    let mut emissions: Vec<Arc<Vec<Row>>> = Vec::with_capacity(RECV_MANY);
    let progress = spec.progress.clone();
    // Emissions taken from the input queue.
    let mut received: u64 = 0;
    let mut w = Writer {
        spec: &mut spec,
        ctx: &ctx,
        metrics: &metrics,
    };
    let ended = loop {
        emissions.clear();
        let got = match due {
            Some(at) => tokio::select! {
                n = rx.recv_many(&mut emissions, RECV_MANY) => Got::Emissions(n),
                _ = tokio::time::sleep_until(at) => Got::Linger,
                _ = checkpoint_wanted(&progress) => Got::Checkpoint,
                _ = ctx.cancel.cancelled() => Got::Cancelled,
            },
            None => tokio::select! {
                n = rx.recv_many(&mut emissions, RECV_MANY) => Got::Emissions(n),
                _ = checkpoint_wanted(&progress) => Got::Checkpoint,
                _ = ctx.cancel.cancelled() => Got::Cancelled,
            },
        };
        if let Got::Emissions(n) = got {
            received += n as u64;
        }
        let step = match got {
            Got::Cancelled => break Ok(false),
            Got::Emissions(0) => break Ok(true),
            Got::Checkpoint => Ok(()),
            Got::Linger => {
                due = None;
                let n = pending.len();
                w.write_pending(&mut shaper, &mut pending, n, &mut items)
                    .await
            }
            Got::Emissions(_) if batching => {
                let mut r = Ok(());
                for e in emissions.drain(..) {
                    w.metrics.inc_in(e.len() as u64);
                    if pending.is_empty() && !e.is_empty() && !linger.is_zero() {
                        due = Some(tokio::time::Instant::now() + linger);
                    }
                    pending.push(e);
                    while batch_size > 0 && pending.len() >= batch_size {
                        r = w
                            .write_pending(&mut shaper, &mut pending, batch_size, &mut items)
                            .await;
                        if r.is_err() {
                            break;
                        }
                    }
                    if pending.is_empty() {
                        due = None;
                    }
                    if r.is_err() {
                        break;
                    }
                }
                r
            }
            Got::Emissions(_) => {
                // Not batched: what was queued, in writes of at most MAX_UNBATCHED items.
                let mut r = Ok(());
                let start = std::time::Instant::now();
                for e in emissions.drain(..) {
                    w.metrics.inc_in(e.len().max(1) as u64);
                    if let Err(err) = shaper.shape(&[&e[..]], &mut items) {
                        w.metrics.exception(err);
                    }
                    while r.is_ok() && items.len() >= MAX_UNBATCHED {
                        r = w.write(&mut items, MAX_UNBATCHED, start).await;
                    }
                    if r.is_err() {
                        break;
                    }
                }
                match r {
                    Ok(()) => w.write(&mut items, usize::MAX, start).await,
                    e => e,
                }
            }
        };
        if let Err(msg) = step {
            break Err(msg);
        }
        if let Some(p) = &progress {
            // Emissions whose rows have all been written.
            let written = received - pending.parts.len() as u64;
            let want = p.want.load(std::sync::atomic::Ordering::Acquire);
            if want > p.done() && written >= want {
                match w.spec.sink.flush(w.ctx).await {
                    Ok(()) => {
                        p.done.store(written, std::sync::atomic::Ordering::Release);
                        p.rule.notify_one();
                    }
                    Err(e) => w.metrics.exception(format!("flush: {e}")),
                }
            }
        }
    };
    match ended {
        // The input ended (the rule is draining): write what still lingers.
        Ok(true) if !pending.is_empty() => {
            let n = pending.len();
            if let Err(msg) = w
                .write_pending(&mut shaper, &mut pending, n, &mut items)
                .await
            {
                let _ = fatal.send(msg).await;
            }
        }
        Err(msg) => {
            let _ = fatal.send(msg).await;
        }
        _ => {}
    }
    let _ = spec.sink.close(&ctx).await;
}

/// Most emissions taken from the input queue at once.
const RECV_MANY: usize = 64;

/// Without `batchSize`/`lingerInterval`, one `collect` gets what was queued,
/// up to this many items.
const MAX_UNBATCHED: usize = 512;

enum Got {
    Emissions(usize),
    Linger,
    Checkpoint,
    Cancelled,
}

/// Rows waiting for a batch to fill, kept as the emissions they came in
/// (shared, not copied).
#[derive(Default)]
struct Pending {
    parts: std::collections::VecDeque<(Arc<Vec<Row>>, usize)>,
    len: usize,
}

impl Pending {
    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn push(&mut self, e: Arc<Vec<Row>>) {
        if !e.is_empty() {
            self.len += e.len();
            self.parts.push_back((e, 0));
        }
    }

    /// The first `n` rows (at most all), as consecutive slices.
    fn front(&self, n: usize) -> Vec<&[Row]> {
        let mut left = n.min(self.len);
        let mut out = Vec::new();
        for (e, at) in &self.parts {
            if left == 0 {
                break;
            }
            let rows = &e[*at..];
            let k = rows.len().min(left);
            out.push(&rows[..k]);
            left -= k;
        }
        out
    }

    /// Drops the first `n` rows.
    fn consume(&mut self, mut n: usize) {
        while n > 0 {
            let Some((e, at)) = self.parts.front_mut() else {
                break;
            };
            let avail = e.len() - *at;
            if avail <= n {
                n -= avail;
                self.len -= avail;
                self.parts.pop_front();
            } else {
                *at += n;
                self.len -= n;
                n = 0;
            }
        }
    }
}

/// The write side of a sink node: one `collect` per call, with metrics.
struct Writer<'a> {
    spec: &'a mut SinkSpec,
    ctx: &'a SinkContext,
    metrics: &'a NodeMetrics,
}

impl Writer<'_> {
    /// Shapes the first `n` pending rows into one batch and writes it.
    async fn write_pending(
        &mut self,
        shaper: &mut Shaper,
        pending: &mut Pending,
        n: usize,
        items: &mut Vec<SinkItem>,
    ) -> Result<(), String> {
        let start = std::time::Instant::now();
        let shaped = shaper.shape(&pending.front(n), items);
        pending.consume(n);
        if let Err(e) = shaped {
            self.metrics.exception(e);
        }
        self.write(items, usize::MAX, start).await
    }

    /// Writes the first `n` of `items` (at most all; nothing when empty) in
    /// one `collect`, then removes them.
    async fn write(
        &mut self,
        items: &mut Vec<SinkItem>,
        n: usize,
        start: std::time::Instant,
    ) -> Result<(), String> {
        let n = n.min(items.len());
        if n == 0 {
            return Ok(());
        }
        let r = deliver(self.spec, self.ctx, &items[..n], self.metrics).await;
        items.drain(..n);
        if r.is_ok() {
            self.metrics
                .invoked(oort_core::now_ms(), start.elapsed().as_micros() as u64);
        }
        r
    }
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
    use async_trait::async_trait;
    use oort_core::Schema;
    use parking_lot::Mutex;
    use tokio::sync::oneshot;

    /// Records every `collect`; `connect` waits for the gate, so a test can
    /// queue emissions before the node reads any.
    struct Recorder {
        writes: Arc<Mutex<Vec<Vec<SinkItem>>>>,
        gate: Option<oneshot::Receiver<()>>,
        data: bool,
    }

    #[async_trait]
    impl Sink for Recorder {
        async fn connect(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
            if let Some(g) = self.gate.take() {
                let _ = g.await;
            }
            ctx.conn.connected();
            Ok(())
        }
        async fn collect(
            &mut self,
            _ctx: &SinkContext,
            items: &[SinkItem],
        ) -> Result<(), ConnectorError> {
            // Copies, so the node may reuse its encode buffer (as with real sinks).
            let copies = items
                .iter()
                .map(|it| SinkItem {
                    data: it.data.clone(),
                    payload: Bytes::copy_from_slice(&it.payload),
                })
                .collect();
            self.writes.lock().push(copies);
            Ok(())
        }
        fn wants_data(&self) -> bool {
            self.data
        }
    }

    fn rows(from: i64, n: usize) -> Arc<Vec<Row>> {
        let schema = Arc::new(Schema::from_strs(&["id", "t"]));
        Arc::new(
            (0..n as i64)
                .map(|i| Row::new(schema.clone(), vec![Value::Int(from + i), Value::str("x")]))
                .collect(),
        )
    }

    struct Node {
        tx: Option<mpsc::Sender<Arc<Vec<Row>>>>,
        gate: Option<oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<()>,
        writes: Arc<Mutex<Vec<Vec<SinkItem>>>>,
        progress: Arc<SinkProgress>,
    }

    impl Node {
        fn new(props: serde_json::Value, wants_data: bool) -> Node {
            let props = props.as_object().cloned().unwrap_or_default();
            let (gate_tx, gate_rx) = oneshot::channel();
            let writes = Arc::new(Mutex::new(Vec::new()));
            let progress = Arc::new(SinkProgress::new(Arc::default()));
            let spec = SinkSpec {
                rule_id: "t".into(),
                kind: "rec".into(),
                index: 0,
                sink: Box::new(Recorder {
                    writes: writes.clone(),
                    gate: Some(gate_rx),
                    data: wants_data,
                }),
                wants_bytes: true,
                common: SinkCommon::from_props(&props).unwrap(),
                progress: Some(progress.clone()),
            };
            let (fatal_tx, _) = mpsc::channel(4);
            let n = start(spec, CancellationToken::new(), fatal_tx).unwrap();
            Node {
                tx: Some(n.tx),
                gate: Some(gate_tx),
                task: n.task,
                writes,
                progress,
            }
        }
        async fn send(&self, e: Arc<Vec<Row>>) {
            if let Some(tx) = &self.tx {
                tx.send(e).await.unwrap();
            }
        }
        fn open(&mut self) {
            if let Some(g) = self.gate.take() {
                let _ = g.send(());
            }
        }
        /// Opens the gate, closes the input and waits for the node to end.
        async fn finish(mut self) -> Vec<Vec<SinkItem>> {
            self.open();
            self.tx = None;
            self.task.await.unwrap();
            let w = self.writes.lock().clone();
            w
        }
        fn sizes(&self) -> Vec<usize> {
            self.writes.lock().iter().map(Vec::len).collect()
        }
    }

    fn sizes(w: &[Vec<SinkItem>]) -> Vec<usize> {
        w.iter().map(Vec::len).collect()
    }

    fn text(it: &SinkItem) -> String {
        String::from_utf8_lossy(&it.payload).into_owned()
    }

    /// Waits until the node confirms `n` emissions (or a second passes).
    async fn confirmed(node: &Node, n: u64) -> u64 {
        let until = tokio::time::Instant::now() + Duration::from_secs(1);
        while node.progress.done() < n && tokio::time::Instant::now() < until {
            let _ = tokio::time::timeout(Duration::from_millis(20), node.progress.rule.notified())
                .await;
        }
        node.progress.done()
    }

    #[tokio::test]
    async fn a_checkpoint_is_confirmed_only_when_its_rows_are_written() {
        let mut node = Node::new(
            serde_json::json!({"batchSize": 3, "sendSingle": true}),
            false,
        );
        node.open();
        for i in 0..5 {
            node.send(rows(i, 1)).await;
        }
        // Rows 3 and 4 wait for a batch: emissions 1..=3 are written, 4 and 5 are not.
        node.progress.request(3);
        assert_eq!(confirmed(&node, 3).await, 3);
        node.progress.request(5);
        assert_eq!(
            confirmed(&node, 5).await,
            3,
            "rows still waiting for a batch"
        );
        node.send(rows(5, 1)).await;
        assert_eq!(confirmed(&node, 5).await, 6);
        assert_eq!(node.sizes(), vec![3, 3]);
    }

    #[tokio::test]
    async fn each_write_gets_exactly_batch_size_rows() {
        let node = Node::new(
            serde_json::json!({"batchSize": 3, "sendSingle": true}),
            false,
        );
        for i in 0..7 {
            node.send(rows(i, 1)).await;
        }
        node.send(rows(7, 4)).await;
        let w = node.finish().await;
        // The last two rows are written when the input ends.
        assert_eq!(sizes(&w), vec![3, 3, 3, 2]);
        let ids: Vec<String> = w.iter().flatten().map(text).collect();
        let want: Vec<String> = (0..11)
            .map(|i| format!(r#"{{"id":{i},"t":"x"}}"#))
            .collect();
        assert_eq!(ids, want);
    }

    #[tokio::test]
    async fn a_batch_without_send_single_is_one_array_message() {
        let node = Node::new(serde_json::json!({"batchSize": 2}), true);
        for i in 0..5 {
            node.send(rows(i, 1)).await;
        }
        let w = node.finish().await;
        assert_eq!(sizes(&w), vec![1, 1, 1]);
        assert_eq!(text(&w[0][0]), r#"[{"id":0,"t":"x"},{"id":1,"t":"x"}]"#);
        assert_eq!(text(&w[2][0]), r#"[{"id":4,"t":"x"}]"#);
        assert!(matches!(&w[0][0].data, Value::Array(a) if a.len() == 2));
    }

    #[tokio::test]
    async fn linger_writes_what_accumulated() {
        for props in [
            serde_json::json!({"batchSize": 100, "lingerInterval": 40, "sendSingle": true}),
            serde_json::json!({"lingerInterval": "40ms", "sendSingle": true}),
        ] {
            let mut node = Node::new(props.clone(), false);
            node.open();
            for i in 0..3 {
                node.send(rows(i, 1)).await;
            }
            let t = std::time::Instant::now();
            while node.sizes().is_empty() && t.elapsed() < Duration::from_secs(5) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(node.sizes(), vec![3], "{props}");
            node.send(rows(3, 2)).await;
            let t = std::time::Instant::now();
            while node.sizes().len() < 2 && t.elapsed() < Duration::from_secs(5) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(node.sizes(), vec![3, 2], "{props}");
            assert_eq!(sizes(&node.finish().await), vec![3, 2], "{props}");
        }
    }

    #[tokio::test]
    async fn unbatched_writes_take_what_is_queued_up_to_a_cap() {
        let node = Node::new(serde_json::json!({}), true);
        for i in 0..5 {
            node.send(rows(i, 1)).await;
        }
        assert_eq!(sizes(&node.finish().await), vec![5]);

        let node = Node::new(serde_json::json!({"sendSingle": true}), false);
        node.send(rows(0, 400)).await;
        node.send(rows(400, 400)).await;
        let w = node.finish().await;
        assert_eq!(sizes(&w), vec![MAX_UNBATCHED, 800 - MAX_UNBATCHED]);
        assert_eq!(
            text(&w[1][0]),
            format!(r#"{{"id":{MAX_UNBATCHED},"t":"x"}}"#)
        );
    }

    #[test]
    fn encode_buffer_is_reused_once_payloads_are_dropped() {
        let props = serde_json::json!({"sendSingle": true});
        let common = SinkCommon::from_props(props.as_object().unwrap()).unwrap();
        let mut sh = make_shaper(common, true, false).unwrap();
        let batch = rows(0, 8);
        let mut items = Vec::new();
        sh.shape(&[&batch[..]], &mut items).unwrap();
        let first = items[0].payload.as_ptr();
        let kept = items[0].payload.clone();
        items.clear();
        // A payload still held elsewhere: a fresh buffer, the old bytes intact.
        sh.shape(&[&batch[..]], &mut items).unwrap();
        assert_ne!(items[0].payload.as_ptr(), first);
        assert_eq!(&kept[..], br#"{"id":0,"t":"x"}"#);
        drop(kept);
        let second = items[0].payload.as_ptr();
        items.clear();
        sh.shape(&[&batch[1..]], &mut items).unwrap();
        assert_eq!(items[0].payload.as_ptr(), second);
        assert_eq!(&items[0].payload[..], br#"{"id":1,"t":"x"}"#);
        assert_eq!(items.len(), 7);
    }

    #[tokio::test]
    async fn payload_only_sinks_get_the_same_bytes_without_data() {
        for props in [
            serde_json::json!({"sendSingle": true, "batchSize": 2}),
            serde_json::json!({"batchSize": 3}),
            serde_json::json!({}),
            serde_json::json!({"sendSingle": true, "fields": ["t"]}),
            serde_json::json!({"format": "delimited", "sendSingle": true}),
        ] {
            let mut got = Vec::new();
            for wants_data in [true, false] {
                let node = Node::new(props.clone(), wants_data);
                node.send(rows(0, 1)).await;
                node.send(rows(1, 3)).await;
                let w = node.finish().await;
                let direct = !wants_data && props.get("fields").is_none();
                for it in w.iter().flatten() {
                    assert_eq!(matches!(it.data, Value::Null), direct, "{props}");
                }
                got.push(w.iter().flatten().map(text).collect::<Vec<_>>());
            }
            assert_eq!(got[0], got[1], "{props}");
            assert!(!got[0].is_empty());
        }
    }

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
