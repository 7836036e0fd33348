//! The query engine: compiles a SELECT once ([`compile`] -> [`QueryPlan`])
//! and runs it as a stateful [`Query`] per rule, event by event and tick by
//! tick, producing [`Output`]s.
//!
//! Pipeline of one event (eKuiper's operator order):
//! strict validation -> analytic functions -> [table joins] -> WHERE (when it
//! runs per row) -> [FILTER] -> window -> [stream joins] -> WHERE (when it
//! runs on window content) -> GROUP BY / aggregates -> HAVING -> ORDER BY ->
//! projection -> LIMIT.
//!
//! Submodules: [`plan`] (planner), [`expr`] (compiled expressions), [`ops`]
//! (operators on values), [`analytic`], [`window`], [`agg`], [`join`],
//! [`project`], [`validate`] (strict validation), [`display`] (eKuiper's
//! expression printing for error texts), [`tuple`] (rows in flight).

mod agg;
mod analytic;
mod display;
mod explain;
mod expr;
mod join;
mod ops;
mod plan;
mod project;
mod row_filter;
mod slide_inc;
mod state_window;
mod tuple;
mod validate;
mod window;
mod windowing;

pub use explain::explain;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use oort_core::{Event, Row, SharedEvent, Value};

use crate::ast::{Select, StreamDef, StreamKind};
use crate::SqlError;
use analytic::{AnalyticState, ChangedColsState};
use expr::Ctx;
use plan::Plan;
use project::ProjCache;
use tuple::{Hits, Tuple, WinRange};
use window::{Content, WinState};

pub use row_filter::RowFilter;

/// Where the planner finds stream and table definitions.
pub trait Catalog {
    fn lookup(&self, name: &str) -> Option<StreamDef>;
}

/// Rule options that change how a query runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryOptions {
    /// Keep nil-valued fields in the output (`sendNilField`).
    pub send_nil_field: bool,
    /// Emit runtime errors as [`Output::Error`] (`sendError`).
    pub send_error: bool,
    /// Windows and ordering by the streams' TIMESTAMP field (`isEventTime`).
    pub is_event_time: bool,
    /// Watermark lag behind the largest event time seen (`lateTolerance`).
    pub late_tolerance_ms: i64,
    pub rule_id: String,
    /// Each output row carries its event's metadata under [`META_KEY`]
    /// (`sendMetaToSink`; rules without windows or joins).
    pub send_meta: bool,
    /// What the query asks of its host while it runs (`get_keyed_state`,
    /// `delay`); `None`: keyed state is absent and `delay` sleeps the thread.
    pub host: Option<HostRef>,
}

/// The column of an event's metadata in rows of a `sendMetaToSink` rule.
pub const META_KEY: &str = "__meta";

/// Services a running query asks of the server that runs it.
pub trait RuleHost: Send + Sync + std::fmt::Debug {
    /// eKuiper's external keyed state: the value stored under `key`
    /// (`None` when there is none). Runs on the rule's task.
    fn keyed_state(&self, key: &str) -> Result<Option<Value>, String>;
    /// Holds the rule for `ms` milliseconds (`delay()`); the host lets its
    /// other work go on meanwhile.
    fn sleep(&self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// A shared [`RuleHost`]; options compare equal when they share one.
#[derive(Clone, Debug)]
pub struct HostRef(pub Arc<dyn RuleHost>);

impl PartialEq for HostRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for HostRef {}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            send_nil_field: false,
            send_error: false,
            is_event_time: false,
            late_tolerance_ms: 1000,
            rule_id: String::new(),
            send_meta: false,
            host: None,
        }
    }
}

/// One FROM/JOIN source of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRef {
    pub name: String,
    pub kind: StreamKind,
    /// A lookup table: not read, looked up per row through the
    /// [`LookupRows`] given to [`Query::set_lookup`].
    pub lookup: bool,
}

/// The rows of a lookup table by key, for lookup joins. The runtime
/// implements it over a lookup connector and its cache.
pub trait LookupRows: Send + Sync + std::fmt::Debug {
    /// The rows whose columns `keys` equal `values` (no NULL among them).
    /// Runs on the rule's task and may wait for the connector.
    fn lookup(&self, keys: &[Arc<str>], values: &[Value]) -> Result<Arc<[SharedEvent]>, String>;
}

/// One emission: the rows of one event (non-window rules) or of one window.
#[derive(Debug, Clone)]
pub enum Output {
    Rows(Vec<Row>),
    Error(String),
}

/// Counters of one operator, as eKuiper reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpMetrics {
    pub records_in: u64,
    pub records_out: u64,
    pub exceptions: u64,
    pub last_exception: String,
    /// Unix ms.
    pub last_exception_time: i64,
    /// Latest sampled processing time of one input, µs.
    pub process_latency_us: u64,
    /// Unix ms of the latest (sampled) invocation.
    pub last_invocation: i64,
}

/// A compiled query; immutable and shared by the rule's instances.
#[derive(Debug, Clone)]
pub struct QueryPlan {
    inner: Arc<Plan>,
}

/// Compiles `select`; unknown streams, functions, bad windows and the like
/// are [`SqlError::Plan`].
pub fn compile(
    select: &Select,
    catalog: &dyn Catalog,
    opts: &QueryOptions,
) -> Result<QueryPlan, SqlError> {
    let p = plan::build(select, catalog, opts)?;
    Ok(QueryPlan { inner: Arc::new(p) })
}

impl QueryPlan {
    /// FROM/JOIN sources, in order; `on_event`'s `source` indexes this.
    pub fn sources(&self) -> &[SourceRef] {
        &self.inner.sources
    }

    /// eKuiper-style operator names in plan order (`op_2_filter`, ...).
    pub fn op_names(&self) -> Vec<String> {
        self.inner.ops.names.clone()
    }

    /// Fresh state for one running rule.
    pub fn instantiate(&self) -> Query {
        let p = &self.inner;
        Query {
            plan: self.inner.clone(),
            st: State {
                metrics: vec![OpMetrics::default(); p.ops.names.len()],
                hits: Hits {
                    rule_start: now_ms(),
                    ..Hits::default()
                },
                analytic: p
                    .analytic
                    .iter()
                    .map(|_| AnalyticState::default())
                    .collect(),
                changed: (0..p.proj.changed_cols)
                    .map(|_| ChangedColsState::default())
                    .collect(),
                cache: ProjCache::default(),
                win: p
                    .window
                    .as_ref()
                    .map(|w| WinState::new(w, p.incremental, p.slide_incremental)),
                slide: p.slide_incremental.then(slide_inc::SlideInc::default),
                tables: p.srcs.iter().map(|_| VecDeque::new()).collect(),
                indexes: join::TableIndexes::default(),
                lookups: p.srcs.iter().map(|_| None).collect(),
                buf: Vec::new(),
                calls: 0,
                evt: EventTime::default(),
            },
        }
    }
}

/// Event-time bookkeeping (watermark, rows waiting for it).
#[derive(Debug, Default)]
struct EventTime {
    /// The largest event time seen per source (streams only count): the
    /// watermark is the smallest of them, less the late tolerance, as
    /// eKuiper computes it for rules that join several streams.
    stream_max: Vec<Option<i64>>,
    /// Non-window rules: rows held until the watermark passes them.
    pending: Vec<Tuple>,
    /// Emitted up to here; older rows are late.
    watermark: Option<i64>,
}

/// A running query. `Send`; driven by one task at a time.
#[derive(Debug)]
pub struct Query {
    plan: Arc<Plan>,
    st: State,
}

#[derive(Debug)]
struct State {
    metrics: Vec<OpMetrics>,
    hits: Hits,
    analytic: Vec<AnalyticState>,
    changed: Vec<ChangedColsState>,
    cache: ProjCache,
    win: Option<WinState>,
    /// The groups of an incremental sliding window.
    slide: Option<slide_inc::SlideInc>,
    /// Scan-table rows per source index.
    tables: Vec<VecDeque<SharedEvent>>,
    /// Hash indexes of scan tables joined on equi-keys.
    indexes: join::TableIndexes,
    /// Lookup tables per source index.
    lookups: Vec<Option<Arc<dyn LookupRows>>>,
    /// Scratch argument buffer.
    buf: Vec<Value>,
    calls: u64,
    evt: EventTime,
}

/// How often processing latency is sampled (every N inputs).
const LATENCY_SAMPLE: u64 = 64;

/// A group ready for HAVING / ORDER BY / projection.
struct Group<'a> {
    first: Option<&'a Tuple>,
    aggs: Vec<Value>,
}

#[allow(clippy::too_many_arguments)]
fn mk_ctx<'a>(
    plan: &'a Plan,
    hits: &'a Hits,
    tuple: Option<&'a Tuple>,
    aggs: &'a [Value],
    win: Option<WinRange>,
    agg_ctx: bool,
    row_number: i64,
    agg_hits: (i64, i64),
) -> Ctx<'a> {
    Ctx {
        tuple,
        analytic: tuple.map(|t| &*t.analytic).unwrap_or(&[]),
        aggs,
        win,
        agg_ctx,
        row_number,
        hits,
        agg_hits,
        rule_id: &plan.opts.rule_id,
        host: plan.opts.host.as_ref().map(|h| &*h.0),
    }
}

/// Wall-clock milliseconds since the epoch (`rule_start()`).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Query {
    /// One event from source number `source` (an index into
    /// [`QueryPlan::sources`]); `ev.ts` is its processing time. Emissions
    /// are appended to `out`.
    pub fn on_event(&mut self, source: usize, ev: &SharedEvent, out: &mut Vec<Output>) {
        self.st.calls += 1;
        let sample = self.st.calls % LATENCY_SAMPLE == 1;
        let start = sample.then(Instant::now);
        self.st.on_event(&self.plan, source, ev, out);
        if let Some(s) = start {
            self.st.sampled(s);
        }
    }

    /// Connects lookup table `source` (see [`SourceRef::lookup`]); until
    /// then its joins fail with an error.
    pub fn set_lookup(&mut self, source: usize, rows: Arc<dyn LookupRows>) {
        if let Some(slot) = self.st.lookups.get_mut(source) {
            *slot = Some(rows);
        }
    }

    /// Rows of a scan table; keeps the latest RETAIN_SIZE rows.
    pub fn on_table_rows(&mut self, source: usize, rows: &[Row]) {
        self.st.on_table_rows(&self.plan, source, rows);
    }

    /// Processing-time clock tick (call at or after [`Query::next_deadline`]).
    pub fn on_tick(&mut self, now_ms: i64, out: &mut Vec<Output>) {
        if self.plan.opts.is_event_time {
            return;
        }
        self.st.tick(&self.plan, now_ms, out);
    }

    /// When the query next needs [`Query::on_tick`], if ever.
    pub fn next_deadline(&self) -> Option<i64> {
        if self.plan.opts.is_event_time {
            return None;
        }
        self.st.win.as_ref().and_then(|w| w.deadline())
    }

    /// The smallest arrival sequence number ([`oort_core::Event::seq`]) of
    /// the stream events this query still holds (window contents, rows
    /// waiting for the watermark): events before it are finished with.
    /// `None` when it holds none. Scan-table rows are not counted.
    pub fn min_retained_seq(&self) -> Option<u64> {
        let win = self.st.win.as_ref().and_then(|w| w.min_seq());
        let pending = self.st.evt.pending.iter().map(|t| t.min_seq()).min();
        win.into_iter().chain(pending).min()
    }

    /// Counters per operator name, in plan order.
    pub fn metrics(&self) -> Vec<(String, OpMetrics)> {
        self.plan
            .ops
            .names
            .iter()
            .cloned()
            .zip(self.st.metrics.iter().cloned())
            .collect()
    }
}

impl State {
    fn sampled(&mut self, start: Instant) {
        let us = start.elapsed().as_micros() as u64;
        let now = oort_core::now_ms();
        for m in &mut self.metrics {
            m.process_latency_us = us;
            m.last_invocation = now;
        }
    }

    fn metric(&mut self, op: Option<usize>) -> Option<&mut OpMetrics> {
        op.and_then(|i| self.metrics.get_mut(i))
    }

    fn count_in(&mut self, op: Option<usize>) {
        if let Some(m) = self.metric(op) {
            m.records_in += 1;
        }
    }

    fn count_out(&mut self, op: Option<usize>) {
        if let Some(m) = self.metric(op) {
            m.records_out += 1;
        }
    }

    /// Records a runtime error on `op` and emits it when `sendError` is on.
    fn exception(&mut self, plan: &Plan, op: Option<usize>, msg: String, out: &mut Vec<Output>) {
        let i = op.unwrap_or(0);
        if let Some(m) = self.metrics.get_mut(i) {
            m.exceptions += 1;
            m.last_exception = msg.clone();
            m.last_exception_time = oort_core::now_ms();
        }
        if plan.opts.send_error {
            out.push(Output::Error(msg));
        }
    }

    fn on_table_rows(&mut self, plan: &Plan, source: usize, rows: &[Row]) {
        let Some(src) = plan.srcs.get(source) else {
            return;
        };
        let retain = src.retain.max(1);
        for row in rows {
            let ev = Arc::new(Event {
                row: row.clone(),
                meta: None,
                seq: 0,
                ts: 0,
            });
            let ev = match &src.validator {
                Some(v) => match v.apply(&ev) {
                    Ok(Some(n)) => n,
                    Ok(None) => ev,
                    Err(e) => {
                        if let Some(m) = self.metrics.get_mut(0) {
                            m.exceptions += 1;
                            m.last_exception = format!("error in preprocessor: {e}");
                            m.last_exception_time = oort_core::now_ms();
                        }
                        continue;
                    }
                },
                None => ev,
            };
            if let Some(t) = self.tables.get_mut(source) {
                t.push_back(ev);
                while t.len() > retain {
                    t.pop_front();
                }
                self.indexes.changed(source);
            }
        }
    }

    fn on_event(&mut self, plan: &Plan, source: usize, ev: &SharedEvent, out: &mut Vec<Output>) {
        let Some(src) = plan.srcs.get(source) else {
            return;
        };
        if src.kind == StreamKind::Table {
            self.on_table_rows(plan, source, std::slice::from_ref(&ev.row));
            return;
        }
        let ev = match &src.validator {
            Some(v) => match v.apply(ev) {
                Ok(Some(n)) => n,
                Ok(None) => ev.clone(),
                Err(e) => {
                    self.exception(plan, None, format!("error in preprocessor: {e}"), out);
                    return;
                }
            },
            None => ev.clone(),
        };
        let mut t = Tuple::one(source, ev);
        if plan.opts.is_event_time {
            match event_ts(plan, source, &t) {
                Ok(ts) => t.ts = ts,
                Err(e) => {
                    self.exception(plan, None, e, out);
                    return;
                }
            }
            self.event_time_in(plan, source, t, out);
            return;
        }
        let Some(t) = self.with_analytic(plan, t, out) else {
            return;
        };
        if plan.window.is_some() {
            self.window_in(plan, t, out);
        } else {
            self.row_in(plan, t, out);
        }
    }

    /// Runs the analytic functions of one row (in arrival, or event-time,
    /// order); `None` when they failed (the error is reported).
    fn with_analytic(&mut self, plan: &Plan, mut t: Tuple, out: &mut Vec<Output>) -> Option<Tuple> {
        if plan.analytic.is_empty() {
            return Some(t);
        }
        match self.analytic(plan, &t) {
            Ok(v) => {
                t.analytic = v;
                Some(t)
            }
            Err(e) => {
                self.exception(plan, plan.ops.analytic, e, out);
                None
            }
        }
    }

    fn analytic(&mut self, plan: &Plan, t: &Tuple) -> Result<Box<[Value]>, String> {
        self.count_in(plan.ops.analytic);
        let mut vals: Vec<Value> = Vec::with_capacity(plan.analytic.len());
        for (def, st) in plan.analytic.iter().zip(self.analytic.iter_mut()) {
            let v = {
                let mut ctx = mk_ctx(plan, &self.hits, Some(t), &[], None, false, 1, (0, 0));
                ctx.analytic = &vals;
                def.eval(st, &ctx)?
            };
            vals.push(v);
        }
        self.count_out(plan.ops.analytic);
        Ok(vals.into_boxed_slice())
    }

    /// Applies the per-row WHERE; true when the row passes.
    fn pre_filter(&mut self, plan: &Plan, t: &Tuple, out: &mut Vec<Output>) -> bool {
        let Some(f) = &plan.pre_filter else {
            return true;
        };
        let op = plan.ops.pre_filter;
        self.count_in(op);
        let r = {
            let ctx = mk_ctx(plan, &self.hits, Some(t), &[], None, false, 1, (0, 0));
            f.eval_cond(&ctx)
        };
        match r {
            Err(e) => {
                self.exception(plan, op, format!("run Where error: {e}"), out);
                false
            }
            Ok(false) => false,
            Ok(true) => {
                self.count_out(op);
                let (c, tm) = plan.pre_filter_updates;
                if c {
                    self.hits.count.set(self.hits.count.get() + 1);
                }
                if tm {
                    self.hits.time.set(t.ts);
                }
                true
            }
        }
    }

    /// A row of a window-less rule.
    fn row_in(&mut self, plan: &Plan, t: Tuple, out: &mut Vec<Output>) {
        if plan.joins.is_empty() {
            if !self.pre_filter(plan, &t, out) {
                return;
            }
            if plan.is_agg || plan.having.is_some() || plan.limit.is_some() {
                let agg_hits = (self.hits.agg_count.get(), self.hits.agg_time.get());
                self.finish_rows(plan, vec![t], None, agg_hits, out);
            } else {
                self.emit_row(plan, &t, out);
            }
            return;
        }
        self.count_in(plan.ops.join);
        let joined = match join::join(
            plan,
            std::slice::from_ref(&t),
            &self.tables,
            &self.indexes,
            &self.lookups,
            &self.hits,
            None,
        ) {
            Ok(j) => j,
            Err(e) => {
                self.exception(plan, plan.ops.join, e, out);
                return;
            }
        };
        if joined.is_empty() {
            return;
        }
        self.count_out(plan.ops.join);
        let mut kept = Vec::with_capacity(joined.len());
        for j in joined {
            if self.pre_filter(plan, &j, out) {
                kept.push(j);
            }
        }
        if kept.is_empty() {
            return;
        }
        let agg_hits = (self.hits.agg_count.get(), self.hits.agg_time.get());
        self.finish_rows(plan, kept, None, agg_hits, out);
    }

    /// Fast path: project one row of a window-less rule.
    fn emit_row(&mut self, plan: &Plan, t: &Tuple, out: &mut Vec<Output>) {
        let op = Some(plan.ops.project);
        self.count_in(op);
        let mut rows = Vec::with_capacity(1);
        let r = {
            let ctx = mk_ctx(plan, &self.hits, Some(t), &[], None, false, 1, (0, 0));
            project::project(plan, &ctx, &mut self.changed, &mut self.cache, &mut rows)
        };
        match r {
            Err(e) => self.exception(plan, op, e, out),
            Ok(()) => {
                self.count_out(op);
                if plan.proj.has_unnest {
                    self.count_in(plan.ops.projectset);
                    self.count_out(plan.ops.projectset);
                    for row in rows {
                        out.push(Output::Rows(vec![row]));
                    }
                } else {
                    out.push(Output::Rows(rows));
                }
            }
        }
    }
}

/// The event time of a row: its TIMESTAMP field, else its arrival time.
fn event_ts(plan: &Plan, source: usize, t: &Tuple) -> Result<i64, String> {
    let Some(field) = plan.srcs.get(source).and_then(|s| s.timestamp.as_ref()) else {
        return Ok(t.ts);
    };
    let v = t.part(source).and_then(|e| e.row.get(field));
    match v {
        Some(Value::Int(i)) | Some(Value::Datetime(i)) => Ok(*i),
        Some(Value::Float(f)) => Ok(*f as i64),
        Some(Value::Str(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|d| d.timestamp_millis())
            .or_else(|_| s.parse::<i64>().map_err(|_| ()))
            .map_err(|_| {
                format!("cannot convert timestamp field {field} to timestamp with error invalid time {s}")
            }),
        Some(other) => Err(format!(
            "cannot convert timestamp field {field} to timestamp with error unsupported type {}",
            ops::go_type(other)
        )),
        None => Err(format!("cannot find timestamp field {field} in tuple")),
    }
}

/// Sorts `order` (row indexes) by the rows' ORDER BY keys as eKuiper does:
/// NULLs last whatever the direction; numbers compare across integer and
/// float, strings byte-wise, date-times by instant (and against numbers
/// or strings, which read as times). The first non-NULL value of a key
/// fixes its type; a value of another type is the error `incompatible
/// types for comparison: <first> and <other>` (so is an object, array or
/// bytes key, which has no order), and nothing is sorted.
fn sort_by_keys(
    spec: &[(expr::CExpr, bool)],
    order: &mut [usize],
    keys: &[Vec<Value>],
) -> Result<(), String> {
    fn class(v: &Value) -> Option<u8> {
        match v {
            Value::Int(_) | Value::Float(_) => Some(1),
            Value::Str(_) => Some(2),
            Value::Bool(_) => Some(3),
            Value::Datetime(_) => Some(4),
            _ => None,
        }
    }
    for col in 0..spec.len() {
        let mut first: Option<(&Value, u8)> = None;
        for k in keys {
            let Some(v) = k.get(col).filter(|v| !v.is_null()) else {
                continue;
            };
            let bad = |a: &Value| {
                format!(
                    "incompatible types for comparison: {} and {}",
                    ops::go_type(a),
                    ops::go_type(v)
                )
            };
            match (first, class(v)) {
                (_, None) => return Err(bad(first.map_or(v, |(f, _)| f))),
                (None, Some(c)) => first = Some((v, c)),
                (Some((f, c0)), Some(c)) => {
                    let ok = c0 == c || matches!((c0, c), (4, 1 | 2) | (1 | 2, 4));
                    if !ok {
                        return Err(bad(f));
                    }
                }
            }
        }
    }
    order.sort_by(|a, b| {
        let (ka, kb) = (&keys[*a], &keys[*b]);
        for ((x, y), (_, desc)) in ka.iter().zip(kb.iter()).zip(spec) {
            let o = match (x.is_null(), y.is_null()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                (false, false) => {
                    let o = ops::order_cmp(x, y);
                    if *desc {
                        o.reverse()
                    } else {
                        o
                    }
                }
            };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    Ok(())
}

/// eKuiper's window function step (`row_number() OVER (PARTITION BY ...
/// ORDER BY ...)`): the items' new order (partitions by their key text,
/// then the ORDER BY within each) and each one's row number, both by new
/// position.
fn number_rows(
    spec: &[(expr::CExpr, bool)],
    parts: &[String],
    keys: &[Vec<Value>],
) -> Result<(Vec<usize>, Vec<i64>), String> {
    let mut idx: Vec<usize> = (0..parts.len()).collect();
    idx.sort_by(|a, b| parts[*a].cmp(&parts[*b]));
    let mut nums = Vec::with_capacity(idx.len());
    let mut start = 0;
    while start < idx.len() {
        let mut end = start + 1;
        while end < idx.len() && parts[idx[end]] == parts[idx[start]] {
            end += 1;
        }
        if !spec.is_empty() {
            sort_by_keys(spec, &mut idx[start..end], keys)?;
        }
        nums.extend((1..=(end - start) as i64).collect::<Vec<_>>());
        start = end;
    }
    Ok((idx, nums))
}

#[cfg(test)]
mod depth_tests;
#[cfg(test)]
mod lookup_tests;
#[cfg(test)]
mod tests;
