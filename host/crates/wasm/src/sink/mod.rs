//! `SinkFactory`/`Sink` for installed sink plugins: validate at creation,
//! one instance per connected sink, batches written with partial accept
//! (`invalid-data` drops one message and goes on, `unavailable` resends the
//! unaccepted rest a few times before the runtime's own retry, `config` and
//! `unauthorized` stop the rule). Guest calls run on the guest pool, in
//! one writer task per instance that takes batches from a channel: the
//! rule's sink task hands over up to a few batches without waiting for
//! each (`Sink::pipelined`) and a batch counts written once `write`
//! returned for it. Small batches that queued up while the plugin was busy
//! go to the next `write` together (`write.rs`), each with its own result.
//!
//! Dynamic properties: a property whose value is a `{{...}}` template (say
//! `"table": "t_{{.site}}"`) is rendered by the host against each result
//! row and handed to the plugin in that message's metadata under the
//! property's name; the plugin still gets the template text in its
//! properties at `open`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use oort_core::template::PropTemplate;
use oort_core::{
    ConnectorEnv, ConnectorError, ConnectorInfo, Consumes, Props, Sink, SinkContext, SinkFactory,
    SinkItem, Value,
};

use std::collections::VecDeque;

use tokio::sync::{mpsc, oneshot};

use crate::isolation::{on_guest_pool, spawn_on_guest_pool, GuestTask};
use crate::plugin::{LoadedPlugin, PluginSlot, SinkInstance};

mod write;
use write::{write_group, Meta, WriteJob, GROUP_BYTES, GROUP_MESSAGES};

pub struct WasmSinkFactory {
    name: String,
    slot: Arc<PluginSlot>,
}

impl WasmSinkFactory {
    pub fn new(name: &str, slot: Arc<PluginSlot>) -> Self {
        WasmSinkFactory {
            name: name.to_string(),
            slot,
        }
    }
}

impl SinkFactory for WasmSinkFactory {
    fn kind(&self) -> &str {
        &self.name
    }

    /// Plugins see bytes and metadata only.
    fn consumes(&self) -> Consumes {
        Consumes::Payload
    }

    fn info(&self) -> ConnectorInfo {
        self.slot.info()
    }

    /// Rows go with the payloads when a property (or a map property's
    /// value) is a template.
    fn needs_rows(&self, props: &Props) -> bool {
        dynamic_props(props, &self.info()).is_ok_and(|d| !d.is_empty())
    }

    /// Every template property is rendered per message for a plugin (into
    /// the message's metadata), whatever its schema says.
    fn check_templates(&self, _props: &Props) -> Result<(), ConnectorError> {
        Ok(())
    }

    /// The plugin gets its own properties only: nothing of the context
    /// (no host path) crosses into the sandbox.
    fn create(&self, _env: &ConnectorEnv, props: &Props) -> Result<Box<dyn Sink>, ConnectorError> {
        let plugin = self.slot.require("sink", &self.name)?;
        let props_json = serde_json::Value::Object(props.clone()).to_string();
        let dynamic = dynamic_props(props, &self.info())?;
        plugin.validate_blocking(props_json.clone())?;
        Ok(Box::new(WasmSink {
            plugin,
            props_json,
            dynamic,
            writer: None,
        }))
    }
}

/// The properties rendered per message: a top-level `{{...}}` value under
/// its name, and one inside a map property that the plugin's manifest
/// marks `"dynamic": true` under `name.key` (the kafka sink's `"headers":
/// {"h": "{{.col}}"}`; a map the plugin renders itself, such as influx's
/// `tags`, is left alone).
fn dynamic_props(
    props: &Props,
    info: &ConnectorInfo,
) -> Result<Vec<(String, PropTemplate)>, ConnectorError> {
    let mut out = Vec::new();
    for (k, v) in oort_core::dynamic_sink_props(props) {
        out.push((k.clone(), PropTemplate::parse(k, v)?));
    }
    for (k, v) in props {
        let Some(map) = v.as_object() else { continue };
        let rendered = info
            .properties
            .iter()
            .any(|p| p.dynamic && p.name.eq_ignore_ascii_case(k));
        if !rendered || oort_core::is_common_sink_key(k) {
            continue;
        }
        for (field, fv) in map {
            if let Some(t) = fv.as_str().filter(|t| t.contains("{{")) {
                let name = format!("{k}.{field}");
                out.push((name.clone(), PropTemplate::parse(&name, t)?));
            }
        }
    }
    Ok(out)
}

pub struct WasmSink {
    plugin: Arc<LoadedPlugin>,
    props_json: String,
    /// Properties rendered per message into its metadata.
    dynamic: Vec<(String, PropTemplate)>,
    writer: Option<Writer>,
}

/// Renders the dynamic properties of each item. An item whose properties
/// cannot be rendered is left out (its index and the error returned).
fn render_dynamic(
    dynamic: &[(String, PropTemplate)],
    items: &[SinkItem],
) -> (Vec<usize>, Vec<Meta>, Vec<String>) {
    let mut keep = Vec::with_capacity(items.len());
    let mut metas = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    'items: for (i, it) in items.iter().enumerate() {
        let mut meta = Vec::with_capacity(dynamic.len());
        for (k, t) in dynamic {
            match t.render(&it.data) {
                Ok(v) => meta.push((k.clone(), v)),
                Err(e) => {
                    errors.push(e.to_string());
                    continue 'items;
                }
            }
        }
        keep.push(i);
        metas.push(meta);
    }
    (keep, metas, errors)
}

/// An item the runtime did not encode (a caller that built items itself):
/// its data as JSON.
fn needs_json(item: &SinkItem) -> bool {
    item.payload.is_empty() && !matches!(item.data, Value::Null)
}

/// The bytes an item hands the plugin (shared, not copied).
fn payload(it: &SinkItem) -> Bytes {
    if needs_json(it) {
        Bytes::from(serde_json::to_vec(&it.data.to_json()).unwrap_or_default())
    } else {
        it.payload.clone()
    }
}

/// The writer's job for the batches of `items` cut at `ends`: payloads
/// shared, not copied; dynamic properties rendered per item (an item whose
/// properties fail is left out, its error kept with its batch).
fn job(
    dynamic: &[(String, PropTemplate)],
    first: u64,
    items: &[SinkItem],
    ends: &[usize],
) -> WriteJob {
    let mut payloads = Vec::with_capacity(items.len());
    let mut metas = Vec::new();
    let mut batches = Vec::with_capacity(ends.len());
    let mut start = 0;
    for &end in ends {
        let batch = &items[start..end];
        let mut bad = Vec::new();
        if dynamic.is_empty() {
            payloads.extend(batch.iter().map(payload));
        } else {
            let (keep, m, b) = render_dynamic(dynamic, batch);
            payloads.extend(keep.iter().map(|&i| payload(&batch[i])));
            metas.extend(m);
            bad = b;
        }
        batches.push((payloads.len(), bad));
        start = end;
    }
    WriteJob {
        first,
        payloads,
        metas,
        batches,
    }
}

/// Instantiates and opens a sink instance (on the guest pool).
async fn open_instance(
    plugin: &Arc<LoadedPlugin>,
    props_json: &str,
    ctx: &SinkContext,
) -> Result<SinkInstance, ConnectorError> {
    let (rule, op) = if ctx.rule.is_empty() {
        (ctx.id.clone(), format!("sink_{}", plugin.name))
    } else {
        (ctx.rule.clone(), ctx.op.clone())
    };
    let mut inst = plugin
        .instantiate_sink(&ctx.id, Some(ctx.cancel.clone()))
        .await?;
    let wctx = plugin.context(&rule, &op, ctx.instance);
    inst.open(&wctx, props_json).await.map(|()| inst)
}

enum Job {
    Write(WriteJob),
    Flush(oneshot::Sender<Result<(), ConnectorError>>),
    Close(oneshot::Sender<Result<(), ConnectorError>>),
}

/// The results of a job's batches, from the ticket of its first.
type Done = (u64, Vec<Result<(), ConnectorError>>);

/// The writer task of one sink instance, on the guest pool: it owns the
/// instance and takes jobs in order, so the rule's sink task hands batches
/// over without a task per call and without waiting for each (the runtime
/// keeps a few in flight, [`Sink::pipelined`]). An instance that died is
/// opened again before the next write.
async fn writer(
    plugin: Arc<LoadedPlugin>,
    props_json: String,
    ctx: SinkContext,
    mut inst: Option<SinkInstance>,
    mut jobs: mpsc::Receiver<Job>,
    done: mpsc::UnboundedSender<Done>,
) {
    // A job taken while gathering a group, handled next.
    let mut held: Option<Job> = None;
    loop {
        let job = match held.take() {
            Some(j) => j,
            None => match jobs.try_recv() {
                Ok(j) => j,
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    match soon(|| jobs.try_recv().ok()).await {
                        Some(j) => j,
                        None => match jobs.recv().await {
                            Some(j) => j,
                            None => break,
                        },
                    }
                }
            },
        };
        match job {
            Job::Write(w) => {
                // Small batches that queued up while the plugin was busy
                // go in the same call, each with its own result.
                let mut size = (w.payloads.len(), w.bytes());
                let mut group = vec![w];
                while size.0 < GROUP_MESSAGES && size.1 < GROUP_BYTES {
                    match jobs.try_recv() {
                        Ok(Job::Write(next))
                            if size.0 + next.payloads.len() <= GROUP_MESSAGES
                                && size.1 + next.bytes() <= GROUP_BYTES =>
                        {
                            size = (size.0 + next.payloads.len(), size.1 + next.bytes());
                            group.push(next);
                        }
                        Ok(other) => {
                            held = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let mut results = write_jobs(&plugin, &props_json, &ctx, &mut inst, &group)
                    .await
                    .into_iter();
                for w in &group {
                    let rs = results.by_ref().take(w.batches.len()).collect();
                    if done.send((w.first, rs)).is_err() {
                        return;
                    }
                }
            }
            Job::Flush(tx) => {
                let r = match inst.as_mut() {
                    Some(i) if !i.is_dead() => i.flush().await,
                    _ => Ok(()),
                };
                let _ = tx.send(r);
            }
            Job::Close(tx) => {
                let r = match inst.take() {
                    Some(mut i) if !i.is_dead() => match i.flush().await {
                        Ok(()) => i.close().await,
                        Err(e) => Err(e),
                    },
                    _ => Ok(()),
                };
                let _ = tx.send(r);
                break;
            }
        }
    }
}

/// Batches the rule keeps in flight to a plugin sink ([`Sink::pipeline_depth`]).
const PIPELINE_DEPTH: usize = 32;

/// How long a writer, and a rule waiting for a batch to settle, keep
/// polling (yielding to their runtime's other tasks in between) before they
/// park. A wakeup across threads costs about 10 us on a small VM, several
/// times a plugin call: under a steady flow neither side parks.
const SPIN: Duration = Duration::from_micros(50);

/// `poll()` until it gives something or [`SPIN`] passed, yielding between
/// tries (other tasks of the runtime run; the thread does not park).
async fn soon<T>(mut poll: impl FnMut() -> Option<T>) -> Option<T> {
    let until = std::time::Instant::now() + SPIN;
    loop {
        tokio::task::yield_now().await;
        if let Some(v) = poll() {
            return Some(v);
        }
        if std::time::Instant::now() >= until {
            return None;
        }
    }
}

/// Writes a group of batches (opening the instance again first if it
/// died) and returns each batch's result.
async fn write_jobs(
    plugin: &Arc<LoadedPlugin>,
    props_json: &str,
    ctx: &SinkContext,
    inst: &mut Option<SinkInstance>,
    group: &[WriteJob],
) -> Vec<Result<(), ConnectorError>> {
    let all = |e: ConnectorError| {
        group
            .iter()
            .flat_map(|w| w.batches.iter().map(|_| Err(e.clone())))
            .collect()
    };
    if inst.as_ref().is_none_or(|i| i.is_dead()) {
        *inst = None;
        ctx.conn.connecting();
        match open_instance(plugin, props_json, ctx).await {
            Ok(i) => {
                ctx.conn.connected();
                *inst = Some(i);
            }
            Err(e) => {
                ctx.conn.disconnected(e.to_string());
                return all(e);
            }
        }
    }
    match inst.as_mut() {
        Some(i) => write_group(i, ctx, group).await,
        None => all(not_connected(&plugin.name)),
    }
}

/// The rule's side of a sink instance's writer.
struct Writer {
    jobs: mpsc::Sender<Job>,
    done: mpsc::UnboundedReceiver<Done>,
    /// Results received and not settled yet, by ticket: the rest of a job's
    /// results, or those read while settling another ticket (a resend
    /// through `collect` while later batches are in flight).
    ready: VecDeque<(u64, Result<(), ConnectorError>)>,
    next: u64,
    _task: GuestTask,
}

fn not_connected(name: &str) -> ConnectorError {
    ConnectorError::Fatal(format!("plugin {name}: sink not connected"))
}

fn writer_gone(name: &str) -> ConnectorError {
    ConnectorError::Fatal(format!("plugin {name}: the sink's writer stopped"))
}

/// Every guest call of a sink runs on the guest pool, in the instance's
/// writer task; batches are pipelined to it.
#[async_trait]
impl Sink for WasmSink {
    async fn connect(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        ctx.conn.connecting();
        self.writer = None;
        let plugin = self.plugin.clone();
        let props = self.props_json.clone();
        let wctx = ctx.clone();
        let r = on_guest_pool("sink open", async move {
            open_instance(&plugin, &props, &wctx).await
        })
        .await
        .and_then(|r| r);
        let inst = match r {
            Ok(inst) => inst,
            Err(e) => {
                ctx.conn.disconnected(e.to_string());
                return Err(e);
            }
        };
        let (jobs, jobs_rx) = mpsc::channel(PIPELINE_DEPTH + 2);
        let (done_tx, done) = mpsc::unbounded_channel();
        let task = spawn_on_guest_pool(writer(
            self.plugin.clone(),
            self.props_json.clone(),
            ctx.clone(),
            Some(inst),
            jobs_rx,
            done_tx,
        ))?;
        ctx.conn.connected();
        self.writer = Some(Writer {
            jobs,
            done,
            ready: VecDeque::new(),
            next: 0,
            _task: task,
        });
        Ok(())
    }

    async fn collect(
        &mut self,
        ctx: &SinkContext,
        items: &[SinkItem],
    ) -> Result<(), ConnectorError> {
        let ticket = self.send(ctx, items).await?;
        self.settle(ctx, ticket).await
    }

    fn pipelined(&self) -> bool {
        true
    }

    /// Enough single-message batches in flight for the writer to group
    /// them into one call while the rule goes on.
    fn pipeline_depth(&self) -> usize {
        PIPELINE_DEPTH
    }

    async fn send(&mut self, ctx: &SinkContext, items: &[SinkItem]) -> Result<u64, ConnectorError> {
        let mut tickets = Vec::with_capacity(1);
        self.send_many(ctx, items, &[items.len()], &mut tickets)
            .await?;
        tickets
            .first()
            .copied()
            .ok_or_else(|| writer_gone(&self.plugin.name))
    }

    /// Renders the dynamic properties here (the rule's thread) and hands
    /// the batches to the writer in one job.
    async fn send_many(
        &mut self,
        ctx: &SinkContext,
        items: &[SinkItem],
        ends: &[usize],
        tickets: &mut Vec<u64>,
    ) -> Result<(), ConnectorError> {
        if ends.is_empty() {
            return Ok(());
        }
        if self.writer.is_none() {
            self.connect(ctx).await?;
        }
        let name = &self.plugin.name;
        let w = self.writer.as_mut().ok_or_else(|| not_connected(name))?;
        let first = w.next;
        let job = job(&self.dynamic, first, items, ends);
        if w.jobs.send(Job::Write(job)).await.is_err() {
            self.writer = None;
            return Err(writer_gone(name));
        }
        let n = ends.len() as u64;
        w.next += n;
        tickets.extend(first..first + n);
        Ok(())
    }

    async fn settle(&mut self, _ctx: &SinkContext, ticket: u64) -> Result<(), ConnectorError> {
        let name = &self.plugin.name;
        let w = self.writer.as_mut().ok_or_else(|| not_connected(name))?;
        loop {
            if let Some(at) = w.ready.iter().position(|(t, _)| *t == ticket) {
                if let Some((_, r)) = w.ready.remove(at) {
                    return r;
                }
            }
            let next = match w.done.try_recv() {
                Ok(d) => Some(d),
                Err(_) => match soon(|| w.done.try_recv().ok()).await {
                    Some(d) => Some(d),
                    None => w.done.recv().await,
                },
            };
            match next {
                Some((first, rs)) => {
                    w.ready.extend((first..).zip(rs));
                }
                None => {
                    self.writer = None;
                    return Err(writer_gone(name));
                }
            }
        }
    }

    async fn flush(&mut self, _ctx: &SinkContext) -> Result<(), ConnectorError> {
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        let (tx, rx) = oneshot::channel();
        if w.jobs.send(Job::Flush(tx)).await.is_err() {
            return Ok(());
        }
        rx.await.unwrap_or(Ok(()))
    }

    async fn close(&mut self, _ctx: &SinkContext) -> Result<(), ConnectorError> {
        let Some(w) = self.writer.take() else {
            return Ok(());
        };
        let (tx, rx) = oneshot::channel();
        if w.jobs.send(Job::Close(tx)).await.is_err() {
            return Ok(());
        }
        rx.await.unwrap_or(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(site: &str) -> SinkItem {
        SinkItem {
            data: Value::from_json(&serde_json::json!({"site": site, "t": 1})),
            payload: Bytes::from_static(b"{}"),
        }
    }

    #[test]
    fn dynamic_properties_are_rendered_per_message_and_bad_ones_left_out() {
        let props = serde_json::json!({
            "table": "t_{{.site}}", "dataTemplate": "{{json .}}", "fixed": "x",
            "idx": "{{index . \"missing\" 0}}x"
        });
        let props = props.as_object().cloned().unwrap_or_default();
        let dynamic: Vec<(String, PropTemplate)> =
            dynamic_props(&props, &ConnectorInfo::default()).expect("templates");
        let mut keys: Vec<&str> = dynamic.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            ["idx", "table"],
            "common keys and literals are not dynamic"
        );
        let only_table: Vec<(String, PropTemplate)> = dynamic
            .iter()
            .filter(|(k, _)| k == "table")
            .cloned()
            .collect();
        let only_table = &only_table[..];
        let items = [item("a"), item("b")];
        let (keep, metas, bad) = render_dynamic(only_table, &items);
        assert_eq!(keep, [0, 1]);
        assert!(bad.is_empty());
        assert_eq!(metas[1], vec![("table".to_string(), "t_b".to_string())]);
        let (keep, _, bad) = render_dynamic(&dynamic, &items);
        assert!(keep.is_empty(), "an item whose property fails is left out");
        assert_eq!(bad.len(), 2);
        assert!(bad[0].contains("idx"), "{}", bad[0]);
    }

    #[test]
    fn a_map_propertys_template_values_are_rendered_under_name_dot_key() {
        let props = serde_json::json!({
            "headers": {"site": "s_{{.site}}", "fixed": "x"},
            "compressionProps": {"level": "{{.site}}"}
        });
        let props = props.as_object().cloned().unwrap_or_default();
        let none = dynamic_props(&props, &ConnectorInfo::default()).expect("templates");
        assert!(
            none.is_empty(),
            "a map the manifest does not mark is the plugin's own"
        );
        let mut headers = oort_core::PropSpec::new("headers", "object", "record headers");
        headers.dynamic = true;
        let info = ConnectorInfo {
            properties: vec![headers],
            ..ConnectorInfo::default()
        };
        let dynamic = dynamic_props(&props, &info).expect("templates");
        let keys: Vec<&str> = dynamic.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["headers.site"], "literals and common keys are not");
        let (keep, metas, _) = render_dynamic(&dynamic, &[item("b")]);
        assert_eq!(keep, [0]);
        assert_eq!(
            metas[0],
            vec![("headers.site".to_string(), "s_b".to_string())]
        );
    }
}
