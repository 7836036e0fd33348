//! The cache stage of a sink node (`enableCache`): what the deliver stage
//! could not deliver after its retries goes to a resend queue ([`queue`]:
//! memory, then pages on disk under `<data-dir>/sinkcache/<rule>/<node>`)
//! and is resent, oldest first, when the sink takes writes again.
//!
//! Order: without `resendAlterQueue`, once the queue holds anything, new
//! results are queued behind it, so the peer receives everything in the
//! order it was produced. With `resendAlterQueue`, new results go straight
//! to the sink and the queue is resent beside them; `resendPriority` picks
//! who goes first when both are ready: `1` the queue, `-1` new results (the
//! queue is resent only when no new result waits), `0` either.
//!
//! Pace: a resend is tried `resendInterval` after the previous one (0: at
//! once). A resend that fails waits longer each time (200 ms doubling to
//! 2 s, never less than `resendInterval`).
//!
//! Durability: checkpoints (rule `qos` >= 1) persist the queue before they
//! are confirmed, so a checkpoint passes only data that was delivered or
//! is durably cached; a graceful stop persists it (or removes it with
//! `cleanCacheAtStop`). A full queue drops its oldest items: they are
//! counted in the node's `records_dropped_total` and logged.

mod page;
mod queue;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use oort_connectors::util::Backoff;
use oort_core::{ConnectorError, Sink, SinkContext, SinkItem};
use tokio::time::Instant;

use queue::io;
pub use queue::{CacheConfig, CacheError, ResendCache};

use super::config::SinkCommon;
use super::metrics::NodeMetrics;
use oort_core::RateLimitedLog;

/// Items per resend `collect`.
const RESEND_CHUNK: usize = 256;
/// Backoff of failing resends.
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// The cache directory of one sink node: `<data-dir>/sinkcache/<rule>/<kind>_<index>`,
/// the rule id made safe as a file name.
pub fn node_dir(data_dir: &Path, rule_id: &str, kind: &str, index: usize) -> PathBuf {
    rule_dir(data_dir, rule_id).join(format!("{}_{index}", safe_name(kind)))
}

/// Every cache of one rule (removed with the rule).
pub fn rule_dir(data_dir: &Path, rule_id: &str) -> PathBuf {
    data_dir.join("sinkcache").join(safe_name(rule_id))
}

/// Letters, digits, `-` and `_` kept; anything else as `%XX` per byte, so
/// distinct ids give distinct names and none can leave the directory.
fn safe_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The cache settings of [`SinkCommon`] as the queue takes them.
pub fn queue_config(common: &SinkCommon, dir: PathBuf) -> CacheConfig {
    CacheConfig {
        memory_threshold: common.memory_cache_threshold.max(0) as usize,
        max_disk: common.max_disk_cache.max(0) as usize,
        page_size: common.buffer_page_size.max(0) as usize,
        clean_at_stop: common.clean_cache_at_stop,
        dir,
    }
}

/// What the node does with the queue next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResendPriority {
    /// `resendPriority: 1`.
    Queue,
    /// `0`.
    Either,
    /// `-1`.
    NewResults,
}

pub struct CacheStage {
    queue: ResendCache,
    label: String,
    interval: Duration,
    pub alter_queue: bool,
    pub priority: ResendPriority,
    /// `resendIndicatorField`: set to true on the rows resent on the
    /// alternate queue.
    indicator: Option<std::sync::Arc<str>>,
    /// No resend before this.
    next_try: Option<Instant>,
    backoff: Backoff,
    /// `queue.dropped()` already added to the node's metrics.
    drops_counted: u64,
    drops_log: RateLimitedLog,
    errors_log: RateLimitedLog,
}

impl CacheStage {
    /// Opens the node's queue, taking over what a previous run left.
    pub fn open(
        common: &SinkCommon,
        dir: PathBuf,
        label: String,
        metrics: &NodeMetrics,
    ) -> Result<CacheStage, ConnectorError> {
        let cfg = queue_config(common, dir);
        let queue = ResendCache::open(cfg).map_err(|e| match e {
            CacheError::InvalidConfig { .. } => ConnectorError::Config(e.to_string()),
            e => ConnectorError::Fatal(e.to_string()),
        })?;
        if !queue.is_empty() {
            tracing::info!(sink = %label, items = queue.len(), "sink cache: resending what a previous run left");
        }
        let mut stage = CacheStage {
            queue,
            label,
            interval: common.resend_interval,
            alter_queue: common.resend_alter_queue,
            priority: match common.resend_priority {
                p if p > 0 => ResendPriority::Queue,
                p if p < 0 => ResendPriority::NewResults,
                _ => ResendPriority::Either,
            },
            indicator: Some(common.resend_indicator_field.trim())
                .filter(|f| !f.is_empty() && common.resend_alter_queue)
                .map(std::sync::Arc::from),
            next_try: None,
            backoff: Backoff::new(RETRY_MIN, RETRY_MAX.max(common.resend_interval)),
            drops_counted: 0,
            drops_log: RateLimitedLog::new(Duration::from_secs(10)),
            errors_log: RateLimitedLog::new(Duration::from_secs(10)),
        };
        stage.account(metrics);
        Ok(stage)
    }

    pub fn holds(&self) -> bool {
        !self.queue.is_empty()
    }

    /// New results go to the queue rather than to the sink (keeps the order).
    pub fn takes_new_results(&self) -> bool {
        self.holds() && !self.alter_queue
    }

    /// When the next resend may start (`None`: nothing to resend).
    pub fn due(&self) -> Option<Instant> {
        self.holds()
            .then(|| self.next_try.unwrap_or_else(Instant::now))
    }

    /// Queues items the sink did not take.
    pub fn push(&mut self, items: &[SinkItem], metrics: &NodeMetrics) {
        if items.is_empty() {
            return;
        }
        if let Err(e) = self.queue.push(items) {
            // The items are still held in memory; writing them out is
            // retried by the next push or persist.
            self.error(metrics, &e.to_string());
        }
        self.account(metrics);
    }

    /// Tries one resend of up to [`RESEND_CHUNK`] of the oldest items.
    /// Returns `Err` only for a failure that must stop the rule.
    pub async fn resend(
        &mut self,
        sink: &mut dyn Sink,
        ctx: &SinkContext,
        metrics: &NodeMetrics,
    ) -> Result<(), String> {
        let items = match self.queue.front(RESEND_CHUNK) {
            Ok(items) => items,
            Err(e) => {
                self.error(metrics, &e.to_string());
                self.failed();
                return Ok(());
            }
        };
        if items.is_empty() {
            // Only after an I/O error refilling the memory part: try later.
            self.failed();
            return Ok(());
        }
        let start = std::time::Instant::now();
        let sent = if self.alter_queue {
            match &self.indicator {
                Some(field) => {
                    let mut unmarked = 0;
                    let marked: Vec<SinkItem> = items
                        .iter()
                        .map(|it| {
                            let (it, ok) = mark(it, field);
                            unmarked += usize::from(!ok);
                            it
                        })
                        .collect();
                    if unmarked > 0 {
                        // Not silent: visible in the status and the log.
                        self.error(
                            metrics,
                            &format!("resendIndicatorField: {unmarked} resent payload(s) are not JSON rows (dataField picked a scalar?) and were sent unmarked"),
                        );
                    }
                    sink.collect_resend(ctx, &marked).await
                }
                None => sink.collect_resend(ctx, &items).await,
            }
        } else {
            sink.collect(ctx, &items).await
        };
        match sent {
            Ok(()) => {
                self.pop(items.len(), metrics);
                metrics.inc_out(items.len() as u64);
                metrics.delivered(oort_core::now_ms(), start.elapsed().as_micros() as u64);
                self.backoff.reset();
                self.next_try = (!self.interval.is_zero()).then(|| Instant::now() + self.interval);
            }
            Err(ConnectorError::Unavailable(m)) => {
                metrics.exception(m);
                self.failed();
            }
            Err(ConnectorError::InvalidData(m)) | Err(ConnectorError::Config(m)) => {
                metrics.exception(m.clone());
                self.pop(items.len(), metrics);
                metrics.inc_dropped(items.len() as u64);
                let (label, n) = (&self.label, items.len());
                self.drops_log.hit(|held| {
                    tracing::warn!(sink = %label, "{n} cached item(s) refused by the sink and dropped: {m} ({held} more not logged)")
                });
            }
            Err(ConnectorError::Fatal(m)) => {
                metrics.exception(m.clone());
                return Err(format!("sink {}: {m}", self.label));
            }
        }
        Ok(())
    }

    /// Makes the queue durable (checkpoints). Err: it is not, the
    /// checkpoint must not be confirmed.
    pub fn persist(&mut self, metrics: &NodeMetrics) -> Result<(), String> {
        let r = self.queue.persist().map_err(|e| e.to_string());
        if let Err(e) = &r {
            self.error(metrics, e);
        }
        r
    }

    /// Graceful stop: persists the queue (or removes it with `cleanCacheAtStop`).
    pub fn close(self, metrics: &NodeMetrics) {
        let (label, len) = (self.label.clone(), self.queue.len());
        match self.queue.close() {
            Ok(()) if len > 0 => {
                tracing::info!(sink = %label, items = len, "sink cache kept for the next start")
            }
            Ok(()) => {}
            Err(e) => {
                metrics.exception(e.to_string());
                tracing::error!(sink = %label, "sink cache could not be saved at stop: {e}");
            }
        }
    }

    fn pop(&mut self, n: usize, metrics: &NodeMetrics) {
        if let Err(e) = self.queue.pop(n) {
            self.error(metrics, &e.to_string());
        }
        self.account(metrics);
    }

    fn failed(&mut self) {
        let wait = self.backoff.next_delay().max(self.interval);
        self.next_try = Some(Instant::now() + wait);
    }

    /// Adds the queue's new drops to the node's metrics, logged rate-limited.
    fn account(&mut self, metrics: &NodeMetrics) {
        metrics.set_cached(self.queue.len());
        let dropped = self.queue.dropped();
        if dropped > self.drops_counted {
            let n = dropped - self.drops_counted;
            self.drops_counted = dropped;
            metrics.inc_dropped(n);
            let label = &self.label;
            self.drops_log.hit(|held| {
                tracing::warn!(sink = %label, "sink cache full or unreadable: {n} oldest item(s) dropped ({held} more drop(s) not logged)")
            });
        }
    }

    fn error(&mut self, metrics: &NodeMetrics, e: &str) {
        metrics.exception(format!("sink cache: {e}"));
        let label = &self.label;
        self.errors_log
            .hit(|held| tracing::error!(sink = %label, "sink cache: {e} ({held} more not logged)"));
    }
}

/// `item` with `field: true` in each of its rows (`resendIndicatorField`):
/// the JSON payload is decoded, marked and encoded again (object keys come
/// out sorted), and the row data dynamic properties read is marked too.
/// A payload that is not JSON rows is left as it is (`false`).
fn mark(item: &SinkItem, field: &std::sync::Arc<str>) -> (SinkItem, bool) {
    use oort_core::codec::json;
    use oort_core::Value;
    fn set(v: &mut Value, field: &std::sync::Arc<str>) -> bool {
        match v {
            Value::Object(m) => {
                std::sync::Arc::make_mut(m).insert(field.clone(), Value::Bool(true));
                true
            }
            Value::Array(rows) => {
                // Every row is marked, even after one that is no object.
                let mut all = true;
                for r in std::sync::Arc::make_mut(rows) {
                    all &= set(r, field);
                }
                all
            }
            _ => false,
        }
    }
    let mut out = item.clone();
    let mut ok = true;
    if !item.payload.is_empty() {
        ok = false;
        if let Ok(mut v) = json::decode_value(&item.payload) {
            if set(&mut v, field) {
                let mut buf = Vec::with_capacity(item.payload.len() + field.len() + 8);
                json::write_value(&mut buf, &v);
                out.payload = buf.into();
                ok = true;
            }
        }
    }
    set(&mut out.data, field);
    (out, ok)
}

#[cfg(test)]
mod stage_tests;
