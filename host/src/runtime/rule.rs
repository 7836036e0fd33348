//! One running rule: subscriptions to stream hubs, the compiled query
//! (`oort_sql::engine::Query`) driven by events and clock ticks, and the sink
//! nodes its emissions go to. The rule task is the only owner of the query
//! state; status readers take a short lock on it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oort_core::now_ms;
use oort_sql::ast::StreamKind;
use oort_sql::engine::{Output, Query, QueryPlan};
use parking_lot::Mutex;
use serde_json::{Map, Value as Json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::hub::{Delivery, Hub, HubMsg};
use super::lookup::LookupNode;
use super::metrics::NodeMetrics;
use super::sink::SinkNode;
use super::tracker::{TrackCfg, Tracker};

/// Lifecycle state, named as eKuiper names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleState {
    Stopped,
    Running,
    /// Ended with an error (shown as `stopped by error` + message).
    Failed(String),
}

/// Shared, readable status of a rule (whether or not it runs).
#[derive(Default)]
pub struct RuleStatus {
    inner: Mutex<StatusInner>,
}

#[derive(Default)]
struct StatusInner {
    state: Option<RuleState>,
    last_start: i64,
    last_stop: i64,
}

impl RuleStatus {
    pub fn set_running(&self) {
        let mut g = self.inner.lock();
        g.state = Some(RuleState::Running);
        g.last_start = now_ms();
    }
    pub fn set_stopped(&self, err: Option<String>) {
        let mut g = self.inner.lock();
        g.state = Some(match err {
            Some(e) => RuleState::Failed(e),
            None => RuleState::Stopped,
        });
        g.last_stop = now_ms();
    }
    pub fn state(&self) -> RuleState {
        self.inner
            .lock()
            .state
            .clone()
            .unwrap_or(RuleState::Stopped)
    }
    /// `running`, `stopped`, or `stopped by error`.
    pub fn state_name(&self) -> &'static str {
        match self.state() {
            RuleState::Running => "running",
            RuleState::Stopped => "stopped",
            RuleState::Failed(_) => "stopped by error",
        }
    }
    pub fn message(&self) -> String {
        match self.state() {
            RuleState::Failed(m) => m,
            _ => String::new(),
        }
    }
    pub fn times(&self) -> (i64, i64) {
        let g = self.inner.lock();
        (g.last_start, g.last_stop)
    }
}

/// A rule's source input: which hub and whether it is a table, or the
/// lookup node of a lookup table (which has no hub: it is not read).
pub struct Input {
    pub stream: String,
    pub kind: StreamKind,
    pub hub: Option<Arc<Hub>>,
    pub lookup: Option<Arc<LookupNode>>,
    /// Per-rule counters for this source node.
    pub metrics: Arc<NodeMetrics>,
    /// A scan table that loads (its source ends, a file): stream events
    /// wait for its first rows (at most [`TABLE_LOAD_WAIT`]). A table fed
    /// as it goes is joined as it is when each event arrives.
    pub loads: bool,
}

/// Handle kept by the manager while the rule runs.
pub struct RunningRule {
    pub cancel: CancellationToken,
    /// Server shutdown: the rule takes what its queue holds through the
    /// query and its sinks, then stops (its sources were stopped first).
    pub drain: CancellationToken,
    pub inputs: Vec<Input>,
    pub sinks: Vec<Arc<SinkNodeInfo>>,
    pub query: Arc<Mutex<Query>>,
    pub op_names: Vec<String>,
    pub done: tokio::sync::watch::Receiver<bool>,
    /// The operators' counters as last read: what the status shows while
    /// the query is busy (a `delay()`, a slow lookup).
    pub last_ops: Mutex<Vec<(String, oort_sql::engine::OpMetrics)>>,
}

/// A node of a running rule, as metrics name it: its type (`source`, `op`,
/// `sink`, `lookup`), its name within the type (the stream, `2_project`,
/// `mqtt_0`) and eKuiper's key prefix (`source_demo_0`).
pub struct NodeRef {
    pub kind: &'static str,
    pub op: String,
    pub prefix: String,
}

impl NodeRef {
    fn new(kind: &'static str, op: &str) -> NodeRef {
        NodeRef {
            kind,
            op: op.to_string(),
            prefix: format!("{kind}_{op}_0"),
        }
    }
}

/// Longest wait of a status read for the running query.
const STATUS_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

pub struct SinkNodeInfo {
    pub kind: String,
    pub index: usize,
    pub metrics: Arc<NodeMetrics>,
    pub conn: oort_core::ConnState,
}

impl RunningRule {
    /// Metrics in eKuiper's key order: sources, ops, sinks, as
    /// `<prefix>_<metric>` keys (`source_demo_0_records_in_total`).
    pub fn write_metrics(&self, out: &mut Map<String, Json>) {
        self.visit_metrics(&mut |node, metric, v| {
            out.insert(format!("{}_{metric}", node.prefix), v);
        });
    }

    /// Each metric of each node, in eKuiper's order (sources, ops, sinks),
    /// with the node it belongs to.
    pub fn visit_metrics(&self, f: &mut dyn FnMut(&NodeRef, &str, Json)) {
        for inp in &self.inputs {
            let Some(hub) = &inp.hub else { continue };
            let node = NodeRef::new("source", &inp.stream);
            inp.metrics
                .visit(Some(&hub.conn), &mut |m, v| f(&node, m, v));
            // Oort extension: the source offset committed by checkpoints
            // (rewindable plugin sources; `qos` >= 1 rules).
            if let Some(o) = hub.committed_offset() {
                f(&node, "committed_offset", o.into());
            }
        }
        // Oort extension: each lookup table's cache and connector counters.
        for inp in &self.inputs {
            let Some(l) = &inp.lookup else { continue };
            let node = NodeRef::new("lookup", &inp.stream);
            let n = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
            f(&node, "cache_hits_total", n(&l.stats.hits).into());
            f(&node, "lookups_total", n(&l.stats.misses).into());
            f(&node, "exceptions_total", n(&l.stats.errors).into());
            f(&node, "dropped_total", l.dropped().into());
        }
        let ops = match self.query.try_lock_for(STATUS_WAIT) {
            Some(q) => {
                let m = q.metrics();
                drop(q);
                *self.last_ops.lock() = m.clone();
                m
            }
            None => self.last_ops.lock().clone(),
        };
        for (name, m) in ops {
            let node = NodeRef {
                kind: "op",
                op: name.strip_prefix("op_").unwrap_or(&name).to_string(),
                prefix: format!("{name}_0"),
            };
            f(&node, "records_in_total", m.records_in.into());
            f(&node, "records_out_total", m.records_out.into());
            f(&node, "messages_processed_total", m.records_in.into());
            f(&node, "process_latency_us", m.process_latency_us.into());
            f(&node, "buffer_length", 0.into());
            f(&node, "last_invocation", m.last_invocation.into());
            f(&node, "exceptions_total", m.exceptions.into());
            f(&node, "last_exception", m.last_exception.clone().into());
            f(&node, "last_exception_time", m.last_exception_time.into());
        }
        for s in &self.sinks {
            let node = NodeRef::new("sink", &format!("{}_{}", s.kind, s.index));
            s.metrics.visit_sink(&s.conn, &mut |m, v| f(&node, m, v));
        }
    }

    /// The latency histogram of each sink node: its deliveries. (Sources
    /// and operators keep none: their work per batch is microseconds, which
    /// the `process_latency_us` gauge shows; a histogram for them would
    /// double the size of `/metrics`.)
    pub fn visit_latency(&self, f: &mut dyn FnMut(&NodeRef, super::metrics::LatencySnapshot)) {
        for s in &self.sinks {
            let node = NodeRef::new("sink", &format!("{}_{}", s.kind, s.index));
            f(&node, s.metrics.latency.snapshot());
        }
    }

    /// eKuiper's topo document: `{"sources":[..],"edges":{..}}`.
    pub fn topo(&self) -> Json {
        let sources: Vec<String> = self
            .inputs
            .iter()
            .filter(|i| i.hub.is_some())
            .map(|i| format!("source_{}", i.stream))
            .collect();
        let sinks: Vec<String> = self
            .sinks
            .iter()
            .map(|s| format!("sink_{}_{}", s.kind, s.index))
            .collect();
        let mut edges = Map::new();
        let first = self.op_names.first().cloned();
        for s in &sources {
            let next = match &first {
                Some(op) => vec![Json::from(op.clone())],
                None => sinks.iter().map(|x| Json::from(x.clone())).collect(),
            };
            edges.insert(s.clone(), Json::Array(next));
        }
        for w in self.op_names.windows(2) {
            edges.insert(w[0].clone(), Json::Array(vec![Json::from(w[1].clone())]));
        }
        if let Some(last) = self.op_names.last() {
            edges.insert(
                last.clone(),
                Json::Array(sinks.iter().map(|x| Json::from(x.clone())).collect()),
            );
        }
        serde_json::json!({ "sources": sources, "edges": edges })
    }
}

/// Starts the rule task. `rx` receives every subscribed hub's messages.
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    rule_id: String,
    plan: &QueryPlan,
    inputs: Vec<Input>,
    rx: mpsc::Receiver<Delivery>,
    sinks: Vec<SinkNode>,
    fatal_rx: mpsc::Receiver<String>,
    cancel: CancellationToken,
    status: Arc<RuleStatus>,
    track: TrackCfg,
) -> RunningRule {
    let mut q = plan.instantiate();
    for (i, inp) in inputs.iter().enumerate() {
        if let Some(l) = &inp.lookup {
            q.set_lookup(i, l.clone());
        }
    }
    let query = Arc::new(Mutex::new(q));
    let op_names = plan.op_names();
    let sink_infos: Vec<Arc<SinkNodeInfo>> = sinks
        .iter()
        .map(|s| {
            Arc::new(SinkNodeInfo {
                kind: s.kind.clone(),
                index: s.index,
                metrics: s.metrics.clone(),
                conn: s.conn.clone(),
            })
        })
        .collect();
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    // Lookup tables send nothing: they count as neither stream nor table.
    let input_meta: Vec<(Option<StreamKind>, Arc<NodeMetrics>)> = inputs
        .iter()
        .map(|i| (i.hub.as_ref().map(|_| i.kind), i.metrics.clone()))
        .collect();
    let loading: Vec<usize> = inputs
        .iter()
        .enumerate()
        .filter(|(_, i)| i.loads && i.hub.is_some())
        .map(|(n, _)| n)
        .collect();
    let tracker = Tracker::new(track, &inputs);
    let mut sink_txs = Vec::new();
    let mut sink_tasks = Vec::new();
    for s in sinks {
        sink_txs.push(RoutedSink {
            tx: s.tx,
            route: s.route,
            metrics: s.metrics,
        });
        sink_tasks.push(s.task);
    }
    let drain = CancellationToken::new();
    let task = RuleTask {
        drain: drain.clone(),
        rule_id,
        query: query.clone(),
        inputs: input_meta,
        loading,
        sinks: sink_txs,
        sink_tasks,
        cancel: cancel.clone(),
        status,
        tracker,
    };
    tokio::spawn(async move {
        task.run(rx, fatal_rx).await;
        let _ = done_tx.send(true);
    });
    RunningRule {
        cancel,
        drain,
        inputs,
        sinks: sink_infos,
        query,
        op_names,
        done: done_rx,
        last_ops: Mutex::new(Vec::new()),
    }
}

/// A sink's input queue, with the route (a graph's `switch` case) a
/// result row must meet to enter it.
struct RoutedSink {
    tx: mpsc::Sender<Arc<Vec<oort_core::Row>>>,
    route: Option<oort_sql::engine::RowFilter>,
    metrics: Arc<NodeMetrics>,
}

impl RoutedSink {
    async fn send(&self, rows: &Arc<Vec<oort_core::Row>>) {
        let rows = match &self.route {
            None => rows.clone(),
            Some(f) => {
                let mut kept = Vec::new();
                for r in rows.iter() {
                    match f.matches(r) {
                        Ok(true) => kept.push(r.clone()),
                        Ok(false) => {}
                        // Counted and shown in the sink's status; the row
                        // does not take this case (eKuiper's switch).
                        Err(e) => self
                            .metrics
                            .exception(format!("run switch case error: {e}")),
                    }
                }
                Arc::new(kept)
            }
        };
        let _ = self.tx.send(rows).await;
    }
}

struct RuleTask {
    rule_id: String,
    query: Arc<Mutex<Query>>,
    inputs: Vec<(Option<StreamKind>, Arc<NodeMetrics>)>,
    /// Inputs that are loading scan tables.
    loading: Vec<usize>,
    sinks: Vec<RoutedSink>,
    sink_tasks: Vec<tokio::task::JoinHandle<()>>,
    cancel: CancellationToken,
    drain: CancellationToken,
    status: Arc<RuleStatus>,
    /// Checkpoints and delivery acknowledgements, when the rule has either.
    tracker: Option<Tracker>,
}

impl RuleTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Delivery>, mut fatal_rx: mpsc::Receiver<String>) {
        let mut out: Vec<Output> = Vec::with_capacity(64);
        let mut live_streams = self
            .inputs
            .iter()
            .filter(|(k, _)| *k == Some(StreamKind::Stream))
            .count();
        let mut error: Option<String> = None;
        // Scan tables that load (files) do so before stream events are
        // joined against them: stream batches wait (bounded by
        // TABLE_LOAD_WAIT) until every such table delivered its first rows
        // or ended. Tables fed as they go are joined as they are.
        let mut tables_pending: Vec<usize> = self.loading.clone();
        let mut held: Vec<Delivery> = Vec::new();
        let load_deadline = Instant::now() + TABLE_LOAD_WAIT;
        while !tables_pending.is_empty() && Instant::now() < load_deadline {
            let left = load_deadline.saturating_duration_since(Instant::now());
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                _ = tokio::time::sleep(left) => break,
                m = rx.recv() => {
                    let Some(d) = m else { break };
                    if tables_pending.contains(&d.index) {
                        tables_pending.retain(|i| *i != d.index);
                        let _ = self.on_msg(d.index, d.msg, &mut out);
                    } else {
                        held.push(d);
                    }
                }
            }
        }
        let mut stop_early = false;
        for d in held {
            match self.on_msg(d.index, d.msg, &mut out) {
                Flow::Continue => {}
                Flow::StreamEnded => {
                    live_streams = live_streams.saturating_sub(1);
                    if live_streams == 0 {
                        self.query.lock().on_tick(now_ms(), &mut out);
                        stop_early = true;
                    }
                }
                Flow::Failed(e) => {
                    error = Some(e);
                    stop_early = true;
                }
            }
        }
        self.dispatch(&mut out).await;
        loop {
            if stop_early {
                break;
            }
            let deadline = self.query.lock().next_deadline();
            let sleep = async {
                match deadline {
                    Some(d) => {
                        let wait = (d - now_ms()).max(0) as u64;
                        tokio::time::sleep(Duration::from_millis(wait)).await
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break,
                _ = self.drain.cancelled() => {
                    // Shutdown, the sources stopped: what was taken from
                    // them (and acknowledged) goes through and out; open
                    // windows are not fired early.
                    while let Ok(d) = rx.try_recv() {
                        if let Flow::Failed(e) = self.on_msg(d.index, d.msg, &mut out) {
                            error = Some(e);
                            break;
                        }
                    }
                    self.dispatch(&mut out).await;
                    break;
                }
                Some(msg) = fatal_rx.recv() => { error = Some(msg); break; }
                m = rx.recv() => {
                    // The delivery's room in the queue is freed once the
                    // message went through the query.
                    let Some(d) = m else { break };
                    match self.on_msg(d.index, d.msg, &mut out) {
                        Flow::Continue => {}
                        Flow::StreamEnded => {
                            live_streams = live_streams.saturating_sub(1);
                            if live_streams == 0 {
                                // Bounded input done: stop after this tick.
                                self.query.lock().on_tick(now_ms(), &mut out);
                                self.dispatch(&mut out).await;
                                break;
                            }
                        }
                        Flow::Failed(e) => { error = Some(e); break; }
                    }
                }
                _ = sleep => {
                    self.query.lock().on_tick(now_ms(), &mut out);
                }
                _ = Tracker::checkpoint_due(&self.tracker) => {
                    // Emissions of this pass count in the checkpoint.
                    self.dispatch(&mut out).await;
                    if let Some(t) = self.tracker.as_mut() {
                        t.checkpoint(&self.query.lock());
                    }
                }
                _ = Tracker::progress(&self.tracker) => {}
            }
            self.dispatch(&mut out).await;
            if let Some(t) = self.tracker.as_mut() {
                t.passed();
                if t.waiting() {
                    t.confirm();
                }
            }
        }
        if let Some(e) = &error {
            tracing::warn!(rule = %self.rule_id, error = %e, "rule stopped by error");
        }
        if error.is_none() && !self.cancel.is_cancelled() {
            // The input ended (or the server drains): let the sinks write
            // what is queued, then stop.
            if let Some(t) = self.tracker.as_mut() {
                t.passed();
            }
            self.sinks.clear();
            for t in std::mem::take(&mut self.sink_tasks) {
                let _ = tokio::time::timeout(SINK_DRAIN_WAIT, t).await;
            }
            // What the sinks confirmed at their end is acknowledged.
            if let Some(t) = self.tracker.as_mut() {
                t.confirm();
            }
        }
        self.cancel.cancel();
        self.status.set_stopped(error);
    }

    fn on_msg(&mut self, idx: usize, msg: HubMsg, out: &mut Vec<Output>) -> Flow {
        let Some((kind, metrics)) = self.inputs.get(idx) else {
            return Flow::Continue;
        };
        match msg {
            HubMsg::Events(batch) => {
                if let (Some(t), Some(last)) = (self.tracker.as_mut(), batch.last()) {
                    t.took(idx, last.seq);
                }
                let start = Instant::now();
                metrics.inc_in(batch.len() as u64);
                let mut q = self.query.lock();
                if *kind == Some(StreamKind::Table) {
                    let rows: Vec<oort_core::Row> = batch.iter().map(|e| e.row.clone()).collect();
                    q.on_table_rows(idx, &rows);
                } else {
                    for ev in batch.iter() {
                        q.on_event(idx, ev, out);
                    }
                }
                metrics.inc_out(batch.len() as u64);
                metrics.invoked(now_ms(), start.elapsed().as_micros() as u64);
                Flow::Continue
            }
            HubMsg::Error(e) => {
                metrics.exception(e.to_string());
                Flow::Continue
            }
            HubMsg::End(None) => {
                if *kind == Some(StreamKind::Table) {
                    Flow::Continue
                } else {
                    Flow::StreamEnded
                }
            }
            HubMsg::End(Some(e)) => Flow::Failed(format!("source error: {e}")),
        }
    }

    async fn dispatch(&mut self, out: &mut Vec<Output>) {
        if out.is_empty() {
            return;
        }
        if let Some(t) = self.tracker.as_mut() {
            t.sent(out.len() as u64);
        }
        for o in out.drain(..) {
            let rows = match o {
                Output::Rows(rows) => Arc::new(rows),
                Output::Error(e) => {
                    // sendError: errors flow to sinks as {"error": "..."}.
                    let schema = Arc::new(oort_core::Schema::from_strs(&["error"]));
                    Arc::new(vec![oort_core::Row::new(
                        schema,
                        vec![oort_core::Value::str(&e)],
                    )])
                }
            };
            for s in &self.sinks {
                s.send(&rows).await;
            }
        }
    }
}

/// Longest wait for sinks to write what is queued when the input ends.
const SINK_DRAIN_WAIT: Duration = Duration::from_secs(10);

/// Longest wait for scan tables to load before stream events flow.
const TABLE_LOAD_WAIT: Duration = Duration::from_secs(2);

enum Flow {
    Continue,
    StreamEnded,
    Failed(String),
}
