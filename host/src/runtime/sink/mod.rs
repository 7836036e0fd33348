//! The sink pipeline of one rule action, one module per stage, in eKuiper's
//! order (`internal/topo/planner/planner_sink.go`):
//!
//! batch (`batchSize`, `lingerInterval`: this module) -> transform
//! ([`transform`]: `dataTemplate`, then `dataField`, then
//! `fields`/`excludeFields`; [`template`]) -> encode (`format`, [`encode`])
//! -> compress and encrypt ([`compress`]) -> deliver (retries, drops:
//! [`deliver`]) -> the connector's `collect`, with the resend cache
//! ([`cache`], `enableCache`) keeping what could not be delivered;
//! checkpoint progress in [`progress`]. Common properties are parsed in
//! [`config`].

pub mod cache;
pub mod compress;
pub mod config;
pub mod deliver;
pub mod encode;
pub mod progress;
pub mod template;
pub mod transform;

use std::path::PathBuf;
use std::sync::Arc;

use oort_core::{ConnectorError, Consumes, Props, Row, Sink, SinkContext, SinkFactory, SinkItem};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::metrics;
use super::metrics::NodeMetrics;
use cache::{CacheStage, ResendPriority};
pub use config::SinkCommon;
use deliver::{Deliver, Delivery, Pool};
use encode::Stages;
use progress::checkpoint_wanted;
pub use progress::SinkProgress;

/// A running sink node.
pub struct SinkNode {
    pub kind: String,
    pub index: usize,
    pub tx: mpsc::Sender<Arc<Vec<Row>>>,
    pub metrics: Arc<NodeMetrics>,
    pub conn: oort_core::ConnState,
    /// Ends after the input channel closed and everything queued was written.
    pub task: tokio::task::JoinHandle<()>,
    /// Only result rows meeting this condition reach the sink (a graph's
    /// `switch` case).
    pub route: Option<oort_sql::engine::RowFilter>,
}

pub struct SinkSpec {
    pub rule_id: String,
    pub kind: String,
    pub index: usize,
    /// One instance per writer (`concurrency`; at least one).
    pub sinks: Vec<Box<dyn Sink>>,
    /// The factory's declaration.
    pub consumes: Consumes,
    /// A connector property is a `{{...}}` template (it needs the row).
    pub dynamic_props: bool,
    pub common: SinkCommon,
    /// Confirms delivered emissions (checkpoints, delivery acknowledgements).
    pub progress: Option<Arc<SinkProgress>>,
    /// Rules with checkpoints (`qos` >= 1): a batch that cannot be
    /// delivered is retried until it is (or cached), never dropped.
    pub hold: bool,
    /// The resend cache's directory, when `enableCache` is on
    /// ([`cache::node_dir`]).
    pub cache_dir: Option<PathBuf>,
}

/// Validates the common props against the sink's declaration and builds
/// every stage; no IO. Warns about keys that look like misspelt common ones.
pub fn prepare(
    rule_id: &str,
    kind: &str,
    props: &Props,
    common: &SinkCommon,
    factory: &dyn SinkFactory,
) -> Result<(), ConnectorError> {
    config::warn_unknown(rule_id, kind, props, &factory.info());
    factory.check_templates(props)?;
    Stages::new(common, factory.consumes(), factory.needs_rows(props)).map(|_| ())
}

/// Starts the sink task. Errors that stop the rule are sent on `fatal`.
pub fn start(
    spec: SinkSpec,
    cancel: CancellationToken,
    fatal: mpsc::Sender<String>,
) -> Result<SinkNode, ConnectorError> {
    let stages = Stages::new(&spec.common, spec.consumes, spec.dynamic_props)?;
    let (tx, rx) = mpsc::channel::<Arc<Vec<Row>>>(spec.common.buffer_length.max(1) as usize);
    let metrics = Arc::new(NodeMetrics::default());
    let ctx = SinkContext::new(
        format!("{}_{}_{}", spec.rule_id, spec.kind, spec.index),
        cancel,
    )
    .with_node(&spec.rule_id, format!("sink_{}_{}", spec.kind, spec.index));
    let conn = ctx.conn.clone();
    let kind = spec.kind.clone();
    let index = spec.index;
    let task = tokio::spawn(run(spec, stages, rx, ctx, metrics.clone(), fatal));
    Ok(SinkNode {
        kind,
        index,
        tx,
        metrics,
        conn,
        task,
        route: None,
    })
}

async fn run(
    mut spec: SinkSpec,
    mut stages: Stages,
    mut rx: mpsc::Receiver<Arc<Vec<Row>>>,
    ctx: SinkContext,
    metrics: Arc<NodeMetrics>,
    fatal: mpsc::Sender<String>,
) {
    let batch_size = spec.common.batch_size as usize;
    let linger = spec.common.linger_interval;
    let batching = batch_size > 0 || !linger.is_zero();
    let mut pending = Pending::default();
    // When lingering rows must be written even if no batch fills.
    let mut due: Option<tokio::time::Instant> = None;
    let mut items: Vec<SinkItem> = Vec::with_capacity(64);
    // Where each batch of `items` ends, when several are written at once.
    let mut ends: Vec<usize> = Vec::new();
    let mut emissions: Vec<Arc<Vec<Row>>> = Vec::with_capacity(RECV_MANY);
    let progress = spec.progress.clone();
    // Emissions taken from the input queue.
    let mut received: u64 = 0;
    let label = format!("{}_{}", spec.kind, spec.index);
    let mut cache = None;
    if let Some(dir) = spec.cache_dir.take() {
        match CacheStage::open(&spec.common, dir, label.clone(), &metrics) {
            Ok(c) => cache = Some(c),
            Err(e) => {
                let _ = fatal.send(format!("sink {label}: {e}")).await;
                return;
            }
        }
    }
    let make_deliver = || {
        let mut d = Deliver::new(
            label.clone(),
            spec.common.retry_count,
            spec.common.retry_interval,
            // With the cache, what is not delivered is cached, not retried forever.
            spec.hold && cache.is_none(),
        );
        d.cache = cache.is_some();
        d
    };
    let mut sinks = std::mem::take(&mut spec.sinks);
    let out = if sinks.len() > 1 {
        Out::Pool(Pool::start(sinks, &ctx, &metrics, make_deliver, &fatal))
    } else {
        let Some(mut sink) = sinks.pop() else {
            let _ = fatal.send(format!("sink {label}: no sink instance")).await;
            return;
        };
        match deliver::connect(sink.as_mut(), &ctx, &metrics, &label).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(m) => {
                let _ = fatal.send(m).await;
                return;
            }
        }
        Out::Inline(sink, make_deliver())
    };
    let mut w = Writer {
        out,
        cache,
        ctx: &ctx,
        metrics: &metrics,
    };
    let ended = loop {
        emissions.clear();
        let (resend_at, queue_first) = match &w.cache {
            Some(c) => {
                let alter = c.alter_queue;
                let new_first = alter && c.priority == ResendPriority::NewResults;
                (
                    c.due().filter(|_| !new_first || rx.is_empty()),
                    alter && c.priority == ResendPriority::Queue,
                )
            }
            None => (None, false),
        };
        let got = if queue_first && resend_at.is_some_and(|t| t <= tokio::time::Instant::now()) {
            Got::Resend
        } else {
            tokio::select! {
                n = rx.recv_many(&mut emissions, RECV_MANY) => Got::Emissions(n),
                _ = sleep_opt(due) => Got::Linger,
                _ = sleep_opt(resend_at) => Got::Resend,
                _ = checkpoint_wanted(&progress) => Got::Checkpoint,
                // While no input comes, pipelined batches settle (their rows
                // count as written then), without holding up the next input.
                r = w.wait_settle(), if w.in_flight() => Got::Settled(r),
                _ = ctx.cancel.cancelled() => Got::Cancelled,
            }
        };
        if let Got::Emissions(n) = got {
            received += n as u64;
        }
        let step = match got {
            Got::Cancelled => break Ok(false),
            Got::Emissions(0) => break Ok(true),
            Got::Checkpoint => Ok(()),
            Got::Resend => w.resend().await,
            Got::Settled(r) => w.end_settle(r).await,
            Got::Linger => {
                due = None;
                let n = pending.len();
                w.write_pending(&mut stages, &mut pending, n, &mut items)
                    .await
            }
            Got::Emissions(_) if batching => {
                for e in emissions.drain(..) {
                    w.metrics.inc_in(1);
                    // Rows past the full batches wait: the linger starts
                    // with the first of them.
                    let waiting = match batch_size {
                        0 => pending.len(),
                        n => pending.len() % n,
                    };
                    if waiting == 0 && !e.is_empty() && !linger.is_zero() {
                        due = Some(tokio::time::Instant::now() + linger);
                    }
                    pending.push(e);
                }
                // Every batch this pass filled, shaped and handed off together.
                let full = match batch_size {
                    0 => 0,
                    n => pending.len() / n,
                };
                let r = if full > 0 {
                    w.write_full(
                        &mut stages,
                        &mut pending,
                        batch_size,
                        full,
                        &mut items,
                        &mut ends,
                    )
                    .await
                } else {
                    Ok(())
                };
                if pending.is_empty() {
                    due = None;
                }
                r
            }
            Got::Emissions(_) => {
                // Not batched: what was queued, in writes of at most MAX_UNBATCHED items.
                let mut r = Ok(());
                let start = std::time::Instant::now();
                for e in emissions.drain(..) {
                    w.metrics.inc_in(1);
                    if let Err(err) = stages.shape(&[&e[..]], &mut items) {
                        w.metrics.exception(err);
                        w.metrics.inc_dropped(stages.take_failed());
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
            if p.wanted()
                .is_some_and(|want| want > received - pending.parts.len() as u64)
                && !pending.is_empty()
            {
                // A partial batch that the rule waits for goes out now: the
                // source may not send more before it is acknowledged.
                due = None;
                let n = pending.len();
                if let Err(msg) = w
                    .write_pending(&mut stages, &mut pending, n, &mut items)
                    .await
                {
                    break Err(msg);
                }
            }
            // Emissions whose rows have all been delivered (with checkpoints
            // the deliver stage does not drop for unavailability), confirmed
            // as they go while a request is open (under a steady flow the
            // request moves on before all of it is written), but without
            // stopping to wait for pipelined batches: those are settled when
            // the input goes idle, and confirmed then.
            let written = received - pending.parts.len() as u64;
            if p.wanted().is_some() && written > p.done() && (w.settled() || rx.is_empty()) {
                // Delivered and flushed, or durably cached.
                match w.flush().await {
                    Ok(()) => {
                        if w.persist_cache().is_ok() {
                            p.confirm(written)
                        }
                    }
                    Err(e) => w.metrics.exception(format!("flush: {e}")),
                }
            }
        }
    };
    match ended {
        // The input ended (the rule is draining): write what still lingers,
        // and confirm everything once it is out.
        Ok(true) => {
            let n = pending.len();
            let r = match n {
                0 => Ok(()),
                n => {
                    w.write_pending(&mut stages, &mut pending, n, &mut items)
                        .await
                }
            };
            let r = match r {
                Ok(()) => w.flush().await,
                Err(msg) => Err(msg),
            };
            match r {
                Ok(()) => {
                    if let Some(p) = &progress {
                        if w.persist_cache().is_ok() {
                            p.confirm(received);
                        }
                    }
                }
                Err(msg) => {
                    let _ = fatal.send(msg).await;
                }
            }
        }
        // Stopped: with the cache, what was not written yet is kept for
        // the next start.
        Ok(false) if w.cache.is_some() => {
            let n = pending.len();
            let shaped = stages.shape(&pending.front(n), &mut items);
            pending.consume(n);
            if let Err(e) = shaped {
                w.metrics.exception(e);
                w.metrics.inc_dropped(stages.take_failed());
            }
            while let Ok(e) = rx.try_recv() {
                w.metrics.inc_in(1);
                if let Err(err) = stages.shape(&[&e[..]], &mut items) {
                    w.metrics.exception(err);
                    w.metrics.inc_dropped(stages.take_failed());
                }
            }
            w.keep(&mut items);
        }
        Err(msg) => {
            let _ = fatal.send(msg).await;
        }
        _ => {}
    }
    w.finish().await;
}

/// Sleeps until `at`; never wakes without one.
async fn sleep_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Most emissions taken from the input queue at once.
const RECV_MANY: usize = 512;

/// Without `batchSize`/`lingerInterval`, one `collect` gets what was queued,
/// up to this many items.
const MAX_UNBATCHED: usize = 512;

enum Got {
    Emissions(usize),
    Linger,
    Resend,
    Checkpoint,
    /// The oldest pipelined batch settled with this.
    Settled(Result<(), ConnectorError>),
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

/// Where batches go: the node's one sink, or a pool of writers.
enum Out {
    Inline(Box<dyn Sink>, Deliver),
    Pool(Pool),
}

/// The write side of a sink node: one `collect` per call, with metrics.
struct Writer<'a> {
    out: Out,
    cache: Option<CacheStage>,
    ctx: &'a SinkContext,
    metrics: &'a NodeMetrics,
}

impl Writer<'_> {
    async fn flush(&mut self) -> Result<(), String> {
        match &mut self.out {
            Out::Inline(sink, deliver) => {
                deliver
                    .settle_all(sink.as_mut(), self.ctx, self.metrics)
                    .await?;
                sink.flush(self.ctx).await.map_err(|e| e.to_string())
            }
            Out::Pool(p) => p.flush().await,
        }
    }

    /// True when no pipelined batch waits to be settled (a flush is then
    /// cheap).
    fn settled(&self) -> bool {
        match &self.out {
            Out::Inline(_, deliver) => !deliver.in_flight(),
            Out::Pool(_) => false,
        }
    }

    /// True when pipelined batches wait to be settled.
    fn in_flight(&self) -> bool {
        match &self.out {
            Out::Inline(_, deliver) => deliver.in_flight(),
            Out::Pool(_) => false,
        }
    }

    /// Waits for the oldest pipelined batch to settle; cancel-safe, and
    /// never ready when none is in flight.
    async fn wait_settle(&mut self) -> Result<(), ConnectorError> {
        match &mut self.out {
            Out::Inline(sink, deliver) => {
                match deliver.wait_oldest(sink.as_mut(), self.ctx).await {
                    Some(r) => r,
                    None => std::future::pending().await,
                }
            }
            Out::Pool(_) => std::future::pending().await,
        }
    }

    /// Ends the oldest pipelined batch with `r` (from [`Self::wait_settle`]).
    async fn end_settle(&mut self, r: Result<(), ConnectorError>) -> Result<(), String> {
        match &mut self.out {
            Out::Inline(sink, deliver) => {
                deliver
                    .settled(sink.as_mut(), self.ctx, self.metrics, r)
                    .await
            }
            Out::Pool(_) => Ok(()),
        }
    }

    /// Persists the resend cache (checkpoints); Ok without one.
    fn persist_cache(&mut self) -> Result<(), String> {
        match &mut self.cache {
            Some(c) => c.persist(self.metrics),
            None => Ok(()),
        }
    }

    /// Puts `items` in the resend cache (the node stops).
    fn keep(&mut self, items: &mut Vec<SinkItem>) {
        if let Some(c) = &mut self.cache {
            c.push(items, self.metrics);
        }
        items.clear();
    }

    /// One resend from the cache.
    async fn resend(&mut self) -> Result<(), String> {
        match (&mut self.out, &mut self.cache) {
            (Out::Inline(sink, _), Some(c)) => {
                c.resend(sink.as_mut(), self.ctx, self.metrics).await
            }
            _ => Ok(()),
        }
    }

    async fn finish(self) {
        if let Some(c) = self.cache {
            c.close(self.metrics);
        }
        match self.out {
            Out::Inline(mut sink, mut deliver) => {
                if let Err(e) = deliver
                    .settle_all(sink.as_mut(), self.ctx, self.metrics)
                    .await
                {
                    self.metrics.exception(e);
                }
                let _ = sink.close(self.ctx).await;
            }
            Out::Pool(p) => p.finish().await,
        }
    }

    /// Shapes the first `n` pending rows into one batch and writes it.
    async fn write_pending(
        &mut self,
        stages: &mut Stages,
        pending: &mut Pending,
        n: usize,
        items: &mut Vec<SinkItem>,
    ) -> Result<(), String> {
        let start = std::time::Instant::now();
        let shaped = stages.shape(&pending.front(n), items);
        pending.consume(n);
        if let Err(e) = shaped {
            self.metrics.exception(e);
            self.metrics.inc_dropped(stages.take_failed());
        }
        self.write(items, usize::MAX, start).await
    }

    /// Shapes `count` batches of `size` pending rows and writes them: handed
    /// off together to a pipelined sink, one `collect` each otherwise.
    async fn write_full(
        &mut self,
        stages: &mut Stages,
        pending: &mut Pending,
        size: usize,
        count: usize,
        items: &mut Vec<SinkItem>,
        ends: &mut Vec<usize>,
    ) -> Result<(), String> {
        let start = std::time::Instant::now();
        ends.clear();
        let n = size * count;
        let shaped = stages.shape_batches(&pending.front(n), size, items, ends);
        pending.consume(n);
        if let Err(e) = shaped {
            self.metrics.exception(e);
            self.metrics.inc_dropped(stages.take_failed());
        }
        match &mut self.out {
            Out::Inline(sink, deliver) if self.cache.is_none() && sink.pipelined() => {
                if ends.is_empty() {
                    return Ok(());
                }
                deliver
                    .send_many(sink.as_mut(), self.ctx, items, ends, self.metrics, start)
                    .await
            }
            _ => {
                let mut from = 0;
                for &end in ends.iter() {
                    self.write(items, end - from, start).await?;
                    from = end;
                }
                Ok(())
            }
        }
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
        match &mut self.out {
            Out::Inline(sink, deliver) if self.cache.is_none() && sink.pipelined() => {
                if n == items.len() {
                    return deliver
                        .send(sink.as_mut(), self.ctx, items, self.metrics, start)
                        .await;
                }
                let mut batch: Vec<SinkItem> = items.drain(..n).collect();
                deliver
                    .send(sink.as_mut(), self.ctx, &mut batch, self.metrics, start)
                    .await
            }
            Out::Inline(sink, deliver) => {
                if let Some(c) = &mut self.cache {
                    if c.takes_new_results() {
                        // Behind what is cached, to keep the order.
                        c.push(&items[..n], self.metrics);
                        items.drain(..n);
                        return Ok(());
                    }
                }
                let r = deliver
                    .deliver(sink.as_mut(), self.ctx, &items[..n], self.metrics)
                    .await;
                if let (Ok(Delivery::Failed), Some(c)) = (&r, &mut self.cache) {
                    c.push(&items[..n], self.metrics);
                }
                items.drain(..n);
                if let Ok(Delivery::Delivered) = r {
                    self.metrics
                        .delivered(oort_core::now_ms(), start.elapsed().as_micros() as u64);
                }
                r.map(|_| ())
            }
            Out::Pool(p) => p.dispatch(items.drain(..n).collect(), start).await,
        }
    }
}

#[cfg(test)]
mod tests;
