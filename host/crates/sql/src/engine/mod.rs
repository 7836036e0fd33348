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
mod expr;
mod join;
mod ops;
mod plan;
mod project;
mod tuple;
mod validate;
mod window;

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
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            send_nil_field: false,
            send_error: false,
            is_event_time: false,
            late_tolerance_ms: 1000,
            rule_id: String::new(),
        }
    }
}

/// One FROM/JOIN source of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRef {
    pub name: String,
    pub kind: StreamKind,
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
                hits: Hits::default(),
                analytic: p
                    .analytic
                    .iter()
                    .map(|_| AnalyticState::default())
                    .collect(),
                changed: (0..p.proj.changed_cols)
                    .map(|_| ChangedColsState::default())
                    .collect(),
                cache: ProjCache::default(),
                win: p.window.as_ref().map(|w| WinState::new(w, p.incremental)),
                tables: p.srcs.iter().map(|_| VecDeque::new()).collect(),
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
    max_ts: Option<i64>,
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
    /// Scan-table rows per source index.
    tables: Vec<VecDeque<SharedEvent>>,
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
    }
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
            self.event_time_in(plan, t, out);
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

    /// A row entering a processing-time window.
    fn window_in(&mut self, plan: &Plan, t: Tuple, out: &mut Vec<Output>) {
        let now = t.ts;
        if let Some(w) = &mut self.win {
            w.init(now);
            if w.deadline().is_some_and(|d| d <= now) {
                self.tick(plan, now, out);
            }
        }
        self.window_add(plan, t, out);
    }

    /// Filters a row and adds it to the window (both time modes).
    fn window_add(&mut self, plan: &Plan, t: Tuple, out: &mut Vec<Output>) {
        let Some(spec) = &plan.window else {
            return;
        };
        if !self.pre_filter(plan, &t, out) {
            return;
        }
        if let Some(f) = &spec.filter {
            let op = plan.ops.win_filter;
            self.count_in(op);
            let r = {
                let ctx = mk_ctx(plan, &self.hits, Some(&t), &[], None, false, 1, (0, 0));
                f.eval_cond(&ctx)
            };
            match r {
                Err(e) => {
                    self.exception(plan, op, format!("run Where error: {e}"), out);
                    return;
                }
                Ok(false) => return,
                Ok(true) => self.count_out(op),
            }
        }
        let wop = plan.ops.window;
        self.count_in(wop);
        let triggered = match &spec.trigger {
            None => true,
            Some(tr) => {
                let r = {
                    let ctx = mk_ctx(plan, &self.hits, Some(&t), &[], None, false, 1, (0, 0));
                    tr.eval_cond(&ctx)
                };
                let ok = r.unwrap_or(false);
                if ok {
                    let (c, tm) = spec.trigger_updates;
                    if c {
                        self.hits.count.set(self.hits.count.get() + 1);
                    }
                    if tm {
                        self.hits.time.set(t.ts);
                    }
                }
                ok
            }
        };
        let Some(w) = &mut self.win else {
            return;
        };
        let emission = if let Some(inc) = &mut w.inc {
            let r = {
                let ctx = mk_ctx(plan, &self.hits, Some(&t), &[], None, false, 1, (0, 0));
                inc.add(plan, &t, &ctx, &mut self.buf)
            };
            w.push_inc(t.ts);
            if let Err(e) = r {
                self.exception(plan, wop, format!("run Select error: {e}"), out);
            }
            None
        } else {
            w.push(t, triggered)
        };
        if let Some((content, range)) = emission {
            self.finish(plan, content, range, out);
        }
    }

    fn tick(&mut self, plan: &Plan, now: i64, out: &mut Vec<Output>) {
        let mut ems = Vec::new();
        if let Some(w) = &mut self.win {
            w.tick(now, &mut ems);
        }
        for (content, range) in ems {
            self.finish(plan, content, range, out);
        }
    }

    /// One window emission.
    fn finish(&mut self, plan: &Plan, content: Content, range: WinRange, out: &mut Vec<Output>) {
        self.count_out(plan.ops.window);
        let agg_hits = (self.hits.agg_count.get(), self.hits.agg_time.get());
        match content {
            Content::Rows(rows) => self.finish_rows(plan, rows, Some(range), agg_hits, out),
            Content::Groups(groups) => {
                self.count_in(plan.ops.aggregate);
                self.count_out(plan.ops.aggregate);
                let empty_accs;
                let mut gs: Vec<Group> = groups
                    .iter()
                    .map(|g| Group {
                        first: Some(&g.first),
                        aggs: agg::results(&g.accs),
                    })
                    .collect();
                if gs.is_empty() && plan.dims.is_empty() {
                    empty_accs = match agg::new_accs(plan) {
                        Ok(a) => a,
                        Err(e) => {
                            self.exception(plan, Some(plan.ops.project), e, out);
                            return;
                        }
                    };
                    gs.push(Group {
                        first: None,
                        aggs: agg::results(&empty_accs),
                    });
                }
                self.emit_groups(plan, gs, Some(range), agg_hits, out);
            }
        }
    }

    /// Aggregates over `rows` (indices into `all`).
    fn aggregate(
        &mut self,
        plan: &Plan,
        all: &[Tuple],
        rows: &[usize],
        win: Option<WinRange>,
    ) -> Result<Vec<Value>, String> {
        let mut accs = agg::new_accs(plan)?;
        for i in rows {
            let Some(t) = all.get(*i) else { continue };
            let ctx = mk_ctx(plan, &self.hits, Some(t), &[], win, false, 1, (0, 0));
            agg::feed(&plan.aggs, &mut accs, &ctx, &mut self.buf)?;
        }
        Ok(agg::results(&accs))
    }

    /// Rows of an emission (window content, or joined/aggregated rows of one
    /// event): join, WHERE, grouping, then HAVING/ORDER/projection.
    fn finish_rows(
        &mut self,
        plan: &Plan,
        mut rows: Vec<Tuple>,
        range: Option<WinRange>,
        agg_hits: (i64, i64),
        out: &mut Vec<Output>,
    ) {
        if !plan.joins.is_empty() && plan.window.is_some() {
            self.count_in(plan.ops.join);
            match join::join(plan, &rows, &self.tables, &self.hits, range) {
                Ok(j) => rows = j,
                Err(e) => {
                    self.exception(plan, plan.ops.join, e, out);
                    return;
                }
            }
            if rows.is_empty() {
                return;
            }
            self.count_out(plan.ops.join);
        }
        if let Some(f) = &plan.post_filter {
            let op = plan.ops.post_filter;
            self.count_in(op);
            let where_aggs = if plan.post_filter_has_agg {
                let all: Vec<usize> = (0..rows.len()).collect();
                match self.aggregate(plan, &rows, &all, range) {
                    Ok(a) => a,
                    Err(e) => {
                        self.exception(plan, op, format!("run Where error: {e}"), out);
                        return;
                    }
                }
            } else {
                Vec::new()
            };
            let mut keep = Vec::with_capacity(rows.len());
            for t in &rows {
                let ctx = mk_ctx(
                    plan,
                    &self.hits,
                    Some(t),
                    &where_aggs,
                    range,
                    false,
                    1,
                    agg_hits,
                );
                match f.eval_cond(&ctx) {
                    Ok(b) => keep.push(b),
                    Err(e) => {
                        self.exception(plan, op, format!("run Where error: {e}"), out);
                        return;
                    }
                }
            }
            let mut it = keep.into_iter();
            rows.retain(|_| it.next().unwrap_or(false));
            if rows.is_empty() {
                return;
            }
            self.count_out(op);
        }
        let grouped = !plan.dims.is_empty() || plan.is_agg;
        if grouped {
            let groups: Vec<Vec<usize>> = if plan.dims.is_empty() {
                vec![(0..rows.len()).collect()]
            } else {
                self.count_in(plan.ops.aggregate);
                let hits = &self.hits;
                let r = agg::group_rows(plan, &rows, |t| {
                    mk_ctx(plan, hits, Some(t), &[], range, false, 1, (0, 0))
                });
                match r {
                    Ok(g) => {
                        self.count_out(plan.ops.aggregate);
                        g
                    }
                    Err(e) => {
                        self.exception(
                            plan,
                            plan.ops.aggregate,
                            format!("run Group By error: {e}"),
                            out,
                        );
                        return;
                    }
                }
            };
            let mut gs = Vec::with_capacity(groups.len());
            for g in &groups {
                let aggs = if plan.aggs.is_empty() {
                    Vec::new()
                } else {
                    match self.aggregate(plan, &rows, g, range) {
                        Ok(a) => a,
                        Err(e) => {
                            self.exception(
                                plan,
                                Some(plan.ops.project),
                                format!("run Select error: {e}"),
                                out,
                            );
                            return;
                        }
                    }
                };
                gs.push(Group {
                    first: g.first().and_then(|i| rows.get(*i)),
                    aggs,
                });
            }
            self.emit_groups(plan, gs, range, agg_hits, out);
            return;
        }
        // One output row per input row.
        let aggs = if plan.aggs.is_empty() {
            Vec::new()
        } else {
            let all: Vec<usize> = (0..rows.len()).collect();
            match self.aggregate(plan, &rows, &all, range) {
                Ok(a) => a,
                Err(e) => {
                    self.exception(
                        plan,
                        Some(plan.ops.project),
                        format!("run Select error: {e}"),
                        out,
                    );
                    return;
                }
            }
        };
        if let Some(h) = &plan.having {
            let op = plan.ops.having;
            self.count_in(op);
            let r = {
                let ctx = mk_ctx(
                    plan,
                    &self.hits,
                    rows.first(),
                    &aggs,
                    range,
                    true,
                    1,
                    agg_hits,
                );
                h.eval_cond(&ctx)
            };
            match r {
                Err(e) => {
                    self.exception(plan, op, format!("run Having error: {e}"), out);
                    return;
                }
                Ok(false) => return,
                Ok(true) => {
                    self.count_out(op);
                    self.update_agg_hits(plan, range, rows.first());
                }
            }
        }
        let mut order: Vec<usize> = (0..rows.len()).collect();
        if !plan.order.is_empty() {
            let op = plan.ops.order;
            self.count_in(op);
            let mut keys = Vec::with_capacity(rows.len());
            for t in &rows {
                let ctx = mk_ctx(plan, &self.hits, Some(t), &aggs, range, false, 1, agg_hits);
                let mut k = Vec::with_capacity(plan.order.len());
                for (e, _) in &plan.order {
                    match e.eval(&ctx) {
                        Ok(v) => k.push(v),
                        Err(e) => {
                            self.exception(plan, op, format!("run Order By error: {e}"), out);
                            return;
                        }
                    }
                }
                keys.push(k);
            }
            sort_by_keys(plan, &mut order, &keys);
            self.count_out(op);
        }
        let op = Some(plan.ops.project);
        self.count_in(op);
        let mut out_rows = Vec::with_capacity(rows.len());
        for (n, i) in order.iter().enumerate() {
            if plan.limit.is_some_and(|l| n >= l) {
                break;
            }
            let Some(t) = rows.get(*i) else { continue };
            let r = {
                let ctx = mk_ctx(
                    plan,
                    &self.hits,
                    Some(t),
                    &aggs,
                    range,
                    false,
                    *i as i64 + 1,
                    agg_hits,
                );
                project::project(
                    plan,
                    &ctx,
                    &mut self.changed,
                    &mut self.cache,
                    &mut out_rows,
                )
            };
            if let Err(e) = r {
                self.exception(plan, op, e, out);
                return;
            }
        }
        self.count_out(op);
        if let Some(l) = plan.limit {
            out_rows.truncate(l);
        }
        if plan.proj.has_unnest {
            self.count_in(plan.ops.projectset);
            self.count_out(plan.ops.projectset);
            if plan.window.is_none() && plan.joins.is_empty() {
                for row in out_rows {
                    out.push(Output::Rows(vec![row]));
                }
                return;
            }
        }
        out.push(Output::Rows(out_rows));
    }

    fn update_agg_hits(&mut self, plan: &Plan, range: Option<WinRange>, first: Option<&Tuple>) {
        let (c, tm) = plan.having_updates;
        if c {
            self.hits.agg_count.set(self.hits.agg_count.get() + 1);
        }
        if tm {
            if let Some(t) = range.map(|r| r.trigger).or(first.map(|t| t.ts)) {
                self.hits.agg_time.set(t);
            }
        }
    }

    /// HAVING, ORDER BY, projection and LIMIT over groups.
    fn emit_groups(
        &mut self,
        plan: &Plan,
        gs: Vec<Group>,
        range: Option<WinRange>,
        agg_hits: (i64, i64),
        out: &mut Vec<Output>,
    ) {
        let mut gs = gs;
        if let Some(h) = &plan.having {
            let op = plan.ops.having;
            self.count_in(op);
            let mut keep = Vec::with_capacity(gs.len());
            for (i, g) in gs.iter().enumerate() {
                let ctx = mk_ctx(
                    plan,
                    &self.hits,
                    g.first,
                    &g.aggs,
                    range,
                    true,
                    i as i64 + 1,
                    agg_hits,
                );
                match h.eval_cond(&ctx) {
                    Ok(b) => keep.push(b),
                    Err(e) => {
                        self.exception(plan, op, format!("run Having error: {e}"), out);
                        return;
                    }
                }
            }
            let mut it = keep.into_iter();
            gs.retain(|_| it.next().unwrap_or(false));
            if gs.is_empty() {
                return;
            }
            self.count_out(op);
            let first = gs.first().and_then(|g| g.first);
            self.update_agg_hits(plan, range, first);
        }
        let mut order: Vec<usize> = (0..gs.len()).collect();
        if !plan.order.is_empty() {
            let op = plan.ops.order;
            self.count_in(op);
            let mut keys = Vec::with_capacity(gs.len());
            for (i, g) in gs.iter().enumerate() {
                let ctx = mk_ctx(
                    plan,
                    &self.hits,
                    g.first,
                    &g.aggs,
                    range,
                    true,
                    i as i64 + 1,
                    agg_hits,
                );
                let mut k = Vec::with_capacity(plan.order.len());
                for (e, _) in &plan.order {
                    match e.eval(&ctx) {
                        Ok(v) => k.push(v),
                        Err(e) => {
                            self.exception(plan, op, format!("run Order By error: {e}"), out);
                            return;
                        }
                    }
                }
                keys.push(k);
            }
            sort_by_keys(plan, &mut order, &keys);
            self.count_out(op);
        }
        let op = Some(plan.ops.project);
        self.count_in(op);
        let mut rows = Vec::with_capacity(gs.len());
        for (n, i) in order.iter().enumerate() {
            if plan.limit.is_some_and(|l| n >= l) {
                break;
            }
            let Some(g) = gs.get(*i) else { continue };
            let r = {
                let ctx = mk_ctx(
                    plan,
                    &self.hits,
                    g.first,
                    &g.aggs,
                    range,
                    true,
                    *i as i64 + 1,
                    agg_hits,
                );
                project::project(plan, &ctx, &mut self.changed, &mut self.cache, &mut rows)
            };
            if let Err(e) = r {
                self.exception(plan, op, e, out);
                return;
            }
        }
        self.count_out(op);
        if let Some(l) = plan.limit {
            rows.truncate(l);
        }
        if plan.proj.has_unnest {
            self.count_in(plan.ops.projectset);
            self.count_out(plan.ops.projectset);
        }
        out.push(Output::Rows(rows));
    }

    // ------------------------------------------------------------ event time

    /// A row of an event-time rule: rows wait for the watermark, late ones
    /// are dropped; windows fire as the watermark passes their ends.
    fn event_time_in(&mut self, plan: &Plan, t: Tuple, out: &mut Vec<Output>) {
        if self.evt.watermark.is_some_and(|w| t.ts < w) {
            // Late: an emitted window (or row) already covers this time.
            return;
        }
        let max = self.evt.max_ts.map_or(t.ts, |m| m.max(t.ts));
        self.evt.max_ts = Some(max);
        let wm = max.saturating_sub(plan.opts.late_tolerance_ms);
        let pos = self.evt.pending.partition_point(|x| x.ts <= t.ts);
        self.evt.pending.insert(pos, t);
        // Release rows up to the watermark in time order.
        let n = self.evt.pending.partition_point(|x| x.ts <= wm);
        let ready: Vec<Tuple> = self.evt.pending.drain(..n).collect();
        for r in ready {
            let ts = r.ts;
            self.evt.watermark = Some(ts);
            if plan.window.is_some() {
                if let Some(w) = &mut self.win {
                    w.init(ts);
                }
                self.tick(plan, ts, out);
                if let Some(r) = self.with_analytic(plan, r, out) {
                    self.window_add(plan, r, out);
                }
            } else if let Some(r) = self.with_analytic(plan, r, out) {
                self.row_in(plan, r, out);
            }
        }
        if self.win.as_ref().is_some_and(|w| w.is_inited()) {
            self.tick(plan, wm, out);
        }
        if self.evt.watermark.is_none_or(|w| w < wm) && plan.window.is_some() {
            self.evt.watermark = Some(wm);
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

fn sort_by_keys(plan: &Plan, order: &mut [usize], keys: &[Vec<Value>]) {
    order.sort_by(|a, b| {
        let (ka, kb) = (&keys[*a], &keys[*b]);
        for ((x, y), (_, desc)) in ka.iter().zip(kb.iter()).zip(&plan.order) {
            let o = ops::order_cmp(x, y);
            let o = if *desc { o.reverse() } else { o };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
}

#[cfg(test)]
mod depth_tests;
#[cfg(test)]
mod tests;
