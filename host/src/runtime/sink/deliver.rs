//! The deliver stage: one `collect` per batch, `retryCount` retries
//! `retryInterval` apart for `Unavailable` errors (eKuiper 1.x's meaning:
//! retries after the first failure, a fixed interval between them).
//!
//! An undelivered batch is never counted as written: it is counted in
//! `records_dropped_total` and logged (at most every 10 s per node). With
//! checkpoints (rule `qos` >= 1) a batch is not dropped for being
//! unavailable: the stage keeps retrying every `retryInterval` until it is
//! delivered or the rule stops, so the checkpoint never passes it.
//! With the resend cache (`enableCache`) an unavailable batch is not
//! dropped after the retries: it is handed back ([`Delivery::Failed`]) for
//! the cache stage to keep, and no longer retried here.
//! A batch the sink rejects as invalid (`InvalidData`, `Config`) can never be
//! delivered: it is dropped, counted, and passes the checkpoint.
//!
//! Pipelined sinks ([`Sink::pipelined`], MQTT at QoS >= 1, plugin sinks)
//! without the resend cache get up to [`Sink::pipeline_depth`] batches in
//! flight ([`Deliver::send`]): a batch is counted written when it settles; one
//! that fails to settle goes through the path above as if its first
//! `collect` had failed (resent, retried, dropped or fatal), before any
//! later batch is settled, so the order of what is delivered holds.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oort_connectors::util::{sleep_or_cancel, Backoff};
use oort_core::{ConnectorError, RateLimitedLog, Sink, SinkContext, SinkItem};
use tokio::sync::{mpsc, oneshot};

use super::metrics::NodeMetrics;

/// What became of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    Dropped,
    /// Not delivered (the sink is unavailable or the rule stops): for the
    /// cache. Only with [`Deliver::cache`].
    Failed,
}

/// Settled hand-offs' vectors kept for reuse: one more than a pipeline
/// usually has in flight when the next hand-off comes.
const SPARES: usize = 4;
/// A hand-off vector with room for more items than this is freed, not kept.
const SPARE_CAPACITY: usize = 4096;

pub struct Deliver {
    pub label: String,
    pub retry_count: u64,
    pub retry_interval: Duration,
    /// Checkpoints on: never drop for unavailability.
    pub keep_trying: bool,
    /// The resend cache takes what is not delivered.
    pub cache: bool,
    drops: RateLimitedLog,
    /// Pipelined batches handed off and not settled yet, oldest first.
    in_flight: VecDeque<InFlight>,
    /// Reused: tickets of one hand-off, and its batch ends.
    tickets: Vec<u64>,
    ends: Vec<usize>,
    /// Vectors of hand-offs whose batches all settled, emptied (at most
    /// [`SPARES`]): a hand-off swaps its items into one and the caller keeps
    /// that one's capacity, so a steady pipeline allocates no vector per
    /// round (see `oort_core::VecPool`, which does the same across tasks;
    /// these stay in this task and keep their `Arc` too).
    spares: Vec<Arc<Vec<SinkItem>>>,
}

/// A batch a pipelined sink was handed ([`Sink::send_many`]): a range of
/// the items handed off with it.
struct InFlight {
    ticket: u64,
    items: Arc<Vec<SinkItem>>,
    range: std::ops::Range<usize>,
    start: Instant,
}

impl InFlight {
    fn items(&self) -> &[SinkItem] {
        &self.items[self.range.clone()]
    }
}

impl Deliver {
    pub fn new(
        label: String,
        retry_count: u64,
        retry_interval: Duration,
        keep_trying: bool,
    ) -> Self {
        Deliver {
            label,
            retry_count,
            retry_interval,
            keep_trying,
            cache: false,
            drops: RateLimitedLog::new(Duration::from_secs(10)),
            in_flight: VecDeque::new(),
            tickets: Vec::new(),
            ends: Vec::new(),
            spares: Vec::new(),
        }
    }

    /// Shares `items` for a hand-off, leaving in their place an empty
    /// vector with the capacity of a settled hand-off's (when there is one).
    fn share(&mut self, items: &mut Vec<SinkItem>) -> Arc<Vec<SinkItem>> {
        if let Some(mut shared) = self.spares.pop() {
            if let Some(v) = Arc::get_mut(&mut shared) {
                std::mem::swap(v, items);
                return shared;
            }
        }
        Arc::new(std::mem::take(items))
    }

    /// Keeps the vector of a hand-off whose batches all settled.
    fn recycle(&mut self, mut items: Arc<Vec<SinkItem>>) {
        if self.spares.len() < SPARES {
            if let Some(v) = Arc::get_mut(&mut items) {
                if v.capacity() > SPARE_CAPACITY {
                    return;
                }
                v.clear();
                self.spares.push(items);
            }
        }
    }

    fn dropped(&mut self, metrics: &NodeMetrics, n: usize, why: &str) -> Delivery {
        metrics.inc_dropped(n as u64);
        let label = &self.label;
        self.drops.hit(|held| {
            tracing::warn!(
                sink = %label,
                "{n} item(s) not delivered and dropped: {why} ({held} more drop(s) not logged since the last message)"
            )
        });
        Delivery::Dropped
    }

    /// Writes `items`. Returns Err(message) only for errors that must stop the rule.
    pub async fn deliver(
        &mut self,
        sink: &mut dyn Sink,
        ctx: &SinkContext,
        items: &[SinkItem],
        metrics: &NodeMetrics,
    ) -> Result<Delivery, String> {
        self.deliver_after(sink, ctx, items, metrics, None).await
    }

    /// [`Self::deliver`], where `failed` is the outcome of a first try made
    /// elsewhere (a pipelined send).
    async fn deliver_after(
        &mut self,
        sink: &mut dyn Sink,
        ctx: &SinkContext,
        items: &[SinkItem],
        metrics: &NodeMetrics,
        mut failed: Option<ConnectorError>,
    ) -> Result<Delivery, String> {
        let mut failures: u64 = 0;
        loop {
            let r = match failed.take() {
                Some(e) => Err(e),
                None => sink.collect(ctx, items).await,
            };
            match r {
                Ok(()) => {
                    metrics.inc_out(items.len() as u64);
                    return Ok(Delivery::Delivered);
                }
                Err(ConnectorError::Unavailable(m)) => {
                    metrics.exception(m.clone());
                    failures += 1;
                    if failures > self.retry_count && self.cache {
                        return Ok(Delivery::Failed);
                    }
                    if failures > self.retry_count && !self.keep_trying {
                        return Ok(self.dropped(
                            metrics,
                            items.len(),
                            &format!("{m} (after {} retries)", self.retry_count),
                        ));
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(self.retry_interval) => {},
                        _ = ctx.cancel.cancelled() => {
                            if self.cache {
                                return Ok(Delivery::Failed);
                            }
                            return Ok(self.dropped(metrics, items.len(), "the rule stopped before the sink was back"));
                        }
                    }
                }
                Err(ConnectorError::InvalidData(m)) | Err(ConnectorError::Config(m)) => {
                    metrics.exception(m.clone());
                    return Ok(self.dropped(metrics, items.len(), &m));
                }
                Err(ConnectorError::Fatal(m)) => {
                    metrics.exception(m.clone());
                    return Err(format!("sink {}: {m}", self.label));
                }
            }
        }
    }
}

impl Deliver {
    /// True when pipelined batches wait to be settled.
    pub fn in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Pipelined write: hands `items` to the sink and returns once it has
    /// them, settling the oldest batches first while [`Sink::pipeline_depth`]
    /// are in flight; `items` is left empty (with capacity to reuse).
    /// Err(message) only for errors that must stop the rule.
    pub async fn send(
        &mut self,
        sink: &mut dyn Sink,
        ctx: &SinkContext,
        items: &mut Vec<SinkItem>,
        metrics: &NodeMetrics,
        start: Instant,
    ) -> Result<(), String> {
        let n = items.len();
        self.send_many(sink, ctx, items, &[n], metrics, start).await
    }

    /// [`Self::send`] for consecutive batches (`items` cut at `ends`),
    /// handed off a few at a time ([`Sink::send_many`]): half the pipeline
    /// depth per hand-off, so the sink still has batches while the next
    /// ones are handed over.
    pub async fn send_many(
        &mut self,
        sink: &mut dyn Sink,
        ctx: &SinkContext,
        items: &mut Vec<SinkItem>,
        ends: &[usize],
        metrics: &NodeMetrics,
        start: Instant,
    ) -> Result<(), String> {
        let items = self.share(items);
        let depth = sink.pipeline_depth().max(1);
        let step = (depth / 2).max(1);
        let begin = |b: usize| if b == 0 { 0 } else { ends[b - 1] };
        let mut handed = 0;
        while handed < ends.len() {
            let k = step.min(ends.len() - handed);
            while self.in_flight.len() + k > depth {
                self.settle_one(sink, ctx, metrics).await?;
            }
            let from = begin(handed);
            let to = ends[handed + k - 1];
            let mut rel = std::mem::take(&mut self.ends);
            rel.clear();
            rel.extend(ends[handed..handed + k].iter().map(|e| e - from));
            let mut tickets = std::mem::take(&mut self.tickets);
            tickets.clear();
            let r = sink
                .send_many(ctx, &items[from..to], &rel, &mut tickets)
                .await;
            for &ticket in tickets.iter().take(k) {
                self.in_flight.push_back(InFlight {
                    ticket,
                    items: items.clone(),
                    range: begin(handed)..ends[handed],
                    start,
                });
                handed += 1;
            }
            self.ends = rel;
            self.tickets = tickets;
            if let Err(e) = r {
                // Not handed off: what is in flight settles first (order),
                // then the rest goes the synchronous way, `e` counting as
                // the first try of the first of them.
                self.settle_all(sink, ctx, metrics).await?;
                let mut first_try = Some(e);
                for b in handed..ends.len() {
                    let batch = &items[begin(b)..ends[b]];
                    self.resend(sink, ctx, batch, metrics, start, first_try.take())
                        .await?;
                }
                self.recycle(items);
                return Ok(());
            }
        }
        self.recycle(items);
        Ok(())
    }

    /// Settles every batch in flight, oldest first.
    pub async fn settle_all(
        &mut self,
        sink: &mut dyn Sink,
        ctx: &SinkContext,
        metrics: &NodeMetrics,
    ) -> Result<(), String> {
        while self.in_flight() {
            self.settle_one(sink, ctx, metrics).await?;
        }
        Ok(())
    }

    async fn settle_one(
        &mut self,
        sink: &mut dyn Sink,
        ctx: &SinkContext,
        metrics: &NodeMetrics,
    ) -> Result<(), String> {
        match self.wait_oldest(sink, ctx).await {
            Some(r) => self.settled(sink, ctx, metrics, r).await,
            None => Ok(()),
        }
    }

    /// Waits for the oldest batch in flight to settle (None when none is).
    /// Cancel-safe: nothing changes here until [`Self::settled`] is given
    /// the result.
    pub async fn wait_oldest(
        &self,
        sink: &mut dyn Sink,
        ctx: &SinkContext,
    ) -> Option<Result<(), ConnectorError>> {
        let ticket = self.in_flight.front()?.ticket;
        Some(sink.settle(ctx, ticket).await)
    }

    /// Ends the oldest batch in flight with what [`Self::wait_oldest`]
    /// gave: counted written, or resent (retried, dropped) as for `collect`.
    pub async fn settled(
        &mut self,
        sink: &mut dyn Sink,
        ctx: &SinkContext,
        metrics: &NodeMetrics,
        r: Result<(), ConnectorError>,
    ) -> Result<(), String> {
        let Some(f) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let r = match r {
            Ok(()) => {
                metrics.inc_out(f.range.len() as u64);
                metrics.delivered(oort_core::now_ms(), f.start.elapsed().as_micros() as u64);
                Ok(())
            }
            Err(e) => {
                self.resend(sink, ctx, f.items(), metrics, f.start, Some(e))
                    .await
            }
        };
        self.recycle(f.items);
        r
    }

    /// A batch the pipeline could not hand off or settle: delivered the
    /// synchronous way, `failed` (if any) counting as its first try.
    async fn resend(
        &mut self,
        sink: &mut dyn Sink,
        ctx: &SinkContext,
        items: &[SinkItem],
        metrics: &NodeMetrics,
        start: Instant,
        failed: Option<ConnectorError>,
    ) -> Result<(), String> {
        if self
            .deliver_after(sink, ctx, items, metrics, failed)
            .await?
            == Delivery::Delivered
        {
            metrics.delivered(oort_core::now_ms(), start.elapsed().as_micros() as u64);
        }
        Ok(())
    }
}

/// Connects, retrying while the peer is unavailable. `Ok(false)`: cancelled;
/// `Err`: a failure that stops the rule.
pub async fn connect(
    sink: &mut dyn Sink,
    ctx: &SinkContext,
    metrics: &NodeMetrics,
    label: &str,
) -> Result<bool, String> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        match sink.connect(ctx).await {
            Ok(()) => return Ok(true),
            Err(ConnectorError::Unavailable(m)) => {
                metrics.exception(m.clone());
                ctx.conn.disconnected(m);
                if sleep_or_cancel(backoff.next_delay(), &ctx.cancel).await {
                    return Ok(false);
                }
            }
            Err(e) => {
                metrics.exception(e.to_string());
                return Err(format!("sink {label}: {e}"));
            }
        }
    }
}

enum Job {
    Write(Vec<SinkItem>, Instant),
    /// Answered once every earlier write of this writer is done and the
    /// sink has flushed.
    Flush(oneshot::Sender<Result<(), String>>),
}

/// `concurrency` > 1: that many writers, each with its own sink instance
/// and its own queue. A batch goes to the first writer with room (round
/// robin when all are busy), so batches may be delivered out of order, as
/// with eKuiper's concurrent sinks.
pub struct Pool {
    txs: Vec<mpsc::Sender<Job>>,
    next: usize,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Pool {
    pub fn start(
        sinks: Vec<Box<dyn Sink>>,
        ctx: &SinkContext,
        metrics: &Arc<NodeMetrics>,
        make_deliver: impl Fn() -> Deliver,
        fatal: &mpsc::Sender<String>,
    ) -> Pool {
        let mut txs = Vec::new();
        let mut tasks = Vec::new();
        for (i, sink) in sinks.into_iter().enumerate() {
            let (tx, rx) = mpsc::channel(2);
            txs.push(tx);
            let mut wctx = ctx.clone();
            wctx.instance = i as u32;
            tasks.push(tokio::spawn(writer(
                sink,
                rx,
                wctx,
                metrics.clone(),
                make_deliver(),
                fatal.clone(),
            )));
        }
        Pool {
            txs,
            next: 0,
            tasks,
        }
    }

    pub async fn dispatch(&mut self, items: Vec<SinkItem>, start: Instant) -> Result<(), String> {
        let n = self.txs.len();
        let gone = || "a sink writer stopped".to_string();
        let mut job = Job::Write(items, start);
        for k in 0..n {
            let i = (self.next + k) % n;
            match self.txs[i].try_send(job) {
                Ok(()) => {
                    self.next = i + 1;
                    return Ok(());
                }
                Err(mpsc::error::TrySendError::Full(j)) => job = j,
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(gone()),
            }
        }
        let i = self.next % n;
        self.next = i + 1;
        self.txs[i].send(job).await.map_err(|_| gone())
    }

    /// Waits until every writer has done its queued writes and flushed.
    pub async fn flush(&self) -> Result<(), String> {
        let mut waits = Vec::new();
        for tx in &self.txs {
            let (otx, orx) = oneshot::channel();
            tx.send(Job::Flush(otx))
                .await
                .map_err(|_| "a sink writer stopped".to_string())?;
            waits.push(orx);
        }
        for w in waits {
            w.await.map_err(|_| "a sink writer stopped".to_string())??;
        }
        Ok(())
    }

    /// Ends the writers after their queued writes.
    pub async fn finish(self) {
        drop(self.txs);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

async fn writer(
    mut sink: Box<dyn Sink>,
    mut rx: mpsc::Receiver<Job>,
    ctx: SinkContext,
    metrics: Arc<NodeMetrics>,
    mut deliver: Deliver,
    fatal: mpsc::Sender<String>,
) {
    match connect(sink.as_mut(), &ctx, &metrics, &deliver.label).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(m) => {
            let _ = fatal.send(m).await;
            return;
        }
    }
    while let Some(job) = rx.recv().await {
        match job {
            Job::Write(items, start) => {
                match deliver.deliver(sink.as_mut(), &ctx, &items, &metrics).await {
                    Ok(Delivery::Delivered) => {
                        metrics.delivered(oort_core::now_ms(), start.elapsed().as_micros() as u64)
                    }
                    Ok(Delivery::Dropped) | Ok(Delivery::Failed) => {}
                    Err(m) => {
                        let _ = fatal.send(m).await;
                        break;
                    }
                }
            }
            Job::Flush(tx) => {
                let _ = tx.send(sink.flush(&ctx).await.map_err(|e| e.to_string()));
            }
        }
    }
    let _ = sink.close(&ctx).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use bytes::Bytes;
    use oort_core::Value;
    use std::sync::atomic::Ordering;
    use tokio_util::sync::CancellationToken;

    /// Fails with `Unavailable` the first `down` calls.
    struct Flaky {
        down: u32,
        calls: u32,
    }

    #[async_trait]
    impl Sink for Flaky {
        async fn connect(&mut self, _: &SinkContext) -> Result<(), ConnectorError> {
            Ok(())
        }
        async fn collect(&mut self, _: &SinkContext, _: &[SinkItem]) -> Result<(), ConnectorError> {
            self.calls += 1;
            if self.calls <= self.down {
                Err(ConnectorError::unavailable("peer down"))
            } else {
                Ok(())
            }
        }
    }

    fn items(n: usize) -> Vec<SinkItem> {
        (0..n)
            .map(|_| SinkItem {
                data: Value::Null,
                payload: Bytes::from_static(b"x"),
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn retries_then_counts_the_batch_dropped_not_written() {
        let ctx = SinkContext::new("t", CancellationToken::new());
        let m = NodeMetrics::default();
        let mut d = Deliver::new("t".into(), 2, Duration::from_secs(1), false);
        let mut sink = Flaky { down: 3, calls: 0 };
        let started = tokio::time::Instant::now();
        let r = d.deliver(&mut sink, &ctx, &items(4), &m).await.unwrap();
        assert_eq!(r, Delivery::Dropped);
        assert_eq!(sink.calls, 3, "the first try and retryCount retries");
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(2),
            "retryInterval apart"
        );
        assert_eq!(m.records_out.load(Ordering::Relaxed), 0);
        assert_eq!(m.records_dropped.load(Ordering::Relaxed), 4);
        // Back within the retries: delivered.
        let mut sink = Flaky { down: 2, calls: 0 };
        let r = d.deliver(&mut sink, &ctx, &items(4), &m).await.unwrap();
        assert_eq!(r, Delivery::Delivered);
        assert_eq!(m.records_out.load(Ordering::Relaxed), 4);
        assert_eq!(m.records_dropped.load(Ordering::Relaxed), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn with_checkpoints_a_batch_is_retried_until_delivered() {
        let ctx = SinkContext::new("t", CancellationToken::new());
        let m = NodeMetrics::default();
        let mut d = Deliver::new("t".into(), 1, Duration::from_millis(100), true);
        let mut sink = Flaky { down: 50, calls: 0 };
        let r = d.deliver(&mut sink, &ctx, &items(1), &m).await.unwrap();
        assert_eq!(r, Delivery::Delivered);
        assert_eq!(sink.calls, 51);
        assert_eq!(m.records_dropped.load(Ordering::Relaxed), 0);
    }

    /// A pipelined sink: `send` hands a batch off, `settle` confirms it
    /// (failing once for the tickets in `fail`), `collect` delivers at once
    /// (failing while `down`). `delivered` lists batches (their first
    /// payload) in the order they were confirmed.
    #[derive(Default)]
    struct Piped {
        handed: std::collections::HashMap<u64, String>,
        tickets: u64,
        fail: Vec<u64>,
        down: bool,
        settles: u32,
        delivered: Vec<String>,
        /// Batches (by label) whose `send` fails once.
        refuse: Vec<String>,
        most_in_flight: usize,
    }

    fn label(items: &[SinkItem]) -> String {
        String::from_utf8_lossy(&items[0].payload).to_string()
    }

    #[async_trait]
    impl Sink for Piped {
        async fn connect(&mut self, _: &SinkContext) -> Result<(), ConnectorError> {
            Ok(())
        }
        async fn collect(
            &mut self,
            _: &SinkContext,
            it: &[SinkItem],
        ) -> Result<(), ConnectorError> {
            if self.down {
                return Err(ConnectorError::unavailable("down"));
            }
            self.delivered.push(label(it));
            Ok(())
        }
        fn pipelined(&self) -> bool {
            true
        }
        async fn send(&mut self, _: &SinkContext, it: &[SinkItem]) -> Result<u64, ConnectorError> {
            if let Some(i) = self.refuse.iter().position(|r| *r == label(it)) {
                self.refuse.remove(i);
                return Err(ConnectorError::unavailable("not handed off"));
            }
            self.tickets += 1;
            self.handed.insert(self.tickets, label(it));
            self.most_in_flight = self.most_in_flight.max(self.handed.len());
            Ok(self.tickets)
        }
        async fn settle(&mut self, _: &SinkContext, t: u64) -> Result<(), ConnectorError> {
            self.settles += 1;
            if let Some(i) = self.fail.iter().position(|f| *f == t) {
                self.fail.remove(i);
                return Err(ConnectorError::unavailable("connection lost"));
            }
            let l = self.handed.remove(&t).expect("settled once");
            self.delivered.push(l);
            Ok(())
        }
    }

    fn batch(l: &str, n: usize) -> Vec<SinkItem> {
        (0..n)
            .map(|_| SinkItem {
                data: Value::Null,
                payload: Bytes::from(l.to_string()),
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn pipelined_batches_settle_in_order_and_a_failed_one_is_resent_first() {
        let ctx = SinkContext::new("t", CancellationToken::new());
        let m = NodeMetrics::default();
        let mut d = Deliver::new("t".into(), 3, Duration::from_millis(100), false);
        let mut sink = Piped {
            fail: vec![2],
            ..Piped::default()
        };
        let t = Instant::now();
        for l in ["a", "b", "c", "d"] {
            d.send(&mut sink, &ctx, &mut batch(l, 2), &m, t)
                .await
                .unwrap();
        }
        // pipeline_depth (4) batches in flight, none waited for, none counted.
        assert_eq!(sink.settles, 0);
        assert_eq!(m.records_out.load(Ordering::Relaxed), 0);
        // A fifth settles the oldest first.
        d.send(&mut sink, &ctx, &mut batch("e", 2), &m, t)
            .await
            .unwrap();
        assert_eq!(sink.delivered, ["a"]);
        assert_eq!(m.records_out.load(Ordering::Relaxed), 2);
        // b fails to settle: resent (collect) before c is settled.
        d.settle_all(&mut sink, &ctx, &m).await.unwrap();
        assert_eq!(sink.delivered, ["a", "b", "c", "d", "e"]);
        assert_eq!(m.records_out.load(Ordering::Relaxed), 10);
        assert_eq!(m.records_dropped.load(Ordering::Relaxed), 0);
        assert!(!d.in_flight());
    }

    #[tokio::test(start_paused = true)]
    async fn a_pipelined_batch_that_never_settles_is_dropped_and_counted_not_written() {
        let ctx = SinkContext::new("t", CancellationToken::new());
        let m = NodeMetrics::default();
        let mut d = Deliver::new("t".into(), 1, Duration::from_millis(100), false);
        let mut sink = Piped {
            fail: vec![1],
            down: true,
            ..Piped::default()
        };
        let t = Instant::now();
        d.send(&mut sink, &ctx, &mut batch("a", 3), &m, t)
            .await
            .unwrap();
        d.send(&mut sink, &ctx, &mut batch("b", 1), &m, t)
            .await
            .unwrap();
        d.settle_all(&mut sink, &ctx, &m).await.unwrap();
        // a: the failed settle and one retry (collect, down): dropped.
        // b settled after a's fate was decided.
        assert_eq!(sink.delivered, ["b"]);
        assert_eq!(m.records_dropped.load(Ordering::Relaxed), 3);
        assert_eq!(m.records_out.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_settled_hand_off_lends_its_vector_to_the_next() {
        let ctx = SinkContext::new("t", CancellationToken::new());
        let m = NodeMetrics::default();
        let mut d = Deliver::new("t".into(), 3, Duration::from_millis(100), false);
        let mut sink = Piped::default();
        let mut items = batch("a", 64);
        let first = items.as_ptr();
        d.send(&mut sink, &ctx, &mut items, &m, Instant::now())
            .await
            .unwrap();
        assert!(items.is_empty());
        d.settle_all(&mut sink, &ctx, &m).await.unwrap();
        items.extend(batch("b", 64));
        d.send(&mut sink, &ctx, &mut items, &m, Instant::now())
            .await
            .unwrap();
        // The caller gets back the settled hand-off's vector, emptied.
        assert!(items.is_empty());
        assert_eq!(items.as_ptr(), first);
        assert!(items.capacity() >= 64);
        // Not while a batch cut from it is still in flight.
        items.extend(batch("c", 64));
        d.send(&mut sink, &ctx, &mut items, &m, Instant::now())
            .await
            .unwrap();
        assert_eq!(items.capacity(), 0);
        d.settle_all(&mut sink, &ctx, &m).await.unwrap();
        assert_eq!(sink.delivered, ["a", "b", "c"]);
        assert_eq!(m.records_out.load(Ordering::Relaxed), 192);
        // A vector too large to keep is freed.
        let mut big = batch("d", SPARE_CAPACITY + 1);
        let spares = d.spares.len();
        d.send(&mut sink, &ctx, &mut big, &m, Instant::now())
            .await
            .unwrap();
        d.settle_all(&mut sink, &ctx, &m).await.unwrap();
        assert!(d.spares.iter().all(|v| v.capacity() <= SPARE_CAPACITY));
        assert!(d.spares.len() <= spares);
    }

    /// Batches of one item each, labelled by the given letters.
    fn lettered(letters: &str) -> (Vec<SinkItem>, Vec<usize>) {
        let items: Vec<SinkItem> = letters
            .chars()
            .flat_map(|c| batch(&c.to_string(), 1))
            .collect();
        let ends = (1..=items.len()).collect();
        (items, ends)
    }

    #[tokio::test(start_paused = true)]
    async fn many_batches_are_handed_off_within_the_pipeline_depth_and_settle_in_order() {
        let ctx = SinkContext::new("t", CancellationToken::new());
        let m = NodeMetrics::default();
        let mut d = Deliver::new("t".into(), 3, Duration::from_millis(100), false);
        let mut sink = Piped::default();
        let (mut items, ends) = lettered("abcdefghij");
        d.send_many(&mut sink, &ctx, &mut items, &ends, &m, Instant::now())
            .await
            .unwrap();
        assert!(sink.most_in_flight <= 4, "{}", sink.most_in_flight);
        d.settle_all(&mut sink, &ctx, &m).await.unwrap();
        assert_eq!(sink.delivered.concat(), "abcdefghij");
        assert_eq!(m.records_out.load(Ordering::Relaxed), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn batches_not_handed_off_are_delivered_after_those_in_flight() {
        let ctx = SinkContext::new("t", CancellationToken::new());
        let m = NodeMetrics::default();
        let mut d = Deliver::new("t".into(), 3, Duration::from_millis(100), false);
        // The hand-off of e fails: a..d settle first, then e (its failed
        // hand-off counting as its first try), f and g the synchronous way.
        let mut sink = Piped {
            refuse: vec!["e".into()],
            ..Piped::default()
        };
        let (mut items, ends) = lettered("abcdefg");
        d.send_many(&mut sink, &ctx, &mut items, &ends, &m, Instant::now())
            .await
            .unwrap();
        assert!(!d.in_flight());
        assert_eq!(sink.delivered.concat(), "abcdefg");
        assert_eq!(m.records_out.load(Ordering::Relaxed), 7);
        assert_eq!(m.records_dropped.load(Ordering::Relaxed), 0);
    }
}
