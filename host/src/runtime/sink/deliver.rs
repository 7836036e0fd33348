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

use std::sync::Arc;
use std::time::{Duration, Instant};

use oort_connectors::util::{sleep_or_cancel, Backoff};
use oort_core::{ConnectorError, Sink, SinkContext, SinkItem};
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

/// Logs at most once per interval, counting what it held back.
pub struct RateLimitedLog {
    every: Duration,
    last: Option<Instant>,
    held: u64,
}

impl RateLimitedLog {
    pub fn new(every: Duration) -> RateLimitedLog {
        RateLimitedLog {
            every,
            last: None,
            held: 0,
        }
    }

    /// Calls `log(held_back)` when the interval has passed since the last log.
    pub fn hit(&mut self, log: impl FnOnce(u64)) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.every)
        {
            self.held += 1;
            return;
        }
        log(self.held);
        self.held = 0;
        self.last = Some(now);
    }
}

pub struct Deliver {
    pub label: String,
    pub retry_count: u64,
    pub retry_interval: Duration,
    /// Checkpoints on: never drop for unavailability.
    pub keep_trying: bool,
    /// The resend cache takes what is not delivered.
    pub cache: bool,
    drops: RateLimitedLog,
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
        let mut failures: u64 = 0;
        loop {
            match sink.collect(ctx, items).await {
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
        for sink in sinks {
            let (tx, rx) = mpsc::channel(2);
            txs.push(tx);
            tasks.push(tokio::spawn(writer(
                sink,
                rx,
                ctx.clone(),
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
                        metrics.invoked(oort_core::now_ms(), start.elapsed().as_micros() as u64)
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

    #[test]
    fn drop_log_is_rate_limited() {
        let mut l = RateLimitedLog::new(Duration::from_secs(3600));
        let mut logged = Vec::new();
        for _ in 0..5 {
            l.hit(|held| logged.push(held));
        }
        assert_eq!(logged, vec![0]);
        assert_eq!(l.held, 4);
    }
}
