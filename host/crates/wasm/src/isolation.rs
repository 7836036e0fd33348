//! What keeps one plugin from hurting its neighbours beyond the wasm limits:
//! the dedicated thread pool every guest call runs on, the per-plugin log
//! rate limit (with its count of dropped lines), and the store caps (tables,
//! table elements, memories, core instances) applied beside the memory cap.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use oort_core::ConnectorError;
use parking_lot::Mutex;

/// Per-store caps besides linear memory (wasmtime `StoreLimits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreCaps {
    /// Elements of any one table (function references a plugin can hold).
    pub table_elements: usize,
    /// Tables across the component's core instances.
    pub tables: usize,
    /// Linear memories across the component's core instances.
    pub memories: usize,
    /// Core module instances a component may create.
    pub core_instances: usize,
    /// Log lines (stdout, stderr and `host.log`) a plugin may write per
    /// second, all its instances together; the rest is dropped and counted.
    pub log_lines_per_sec: u32,
    /// Timeouts and the response-body cap of outbound HTTP (`wasi:http`).
    pub http: crate::http::HttpCaps,
}

impl Default for StoreCaps {
    fn default() -> Self {
        StoreCaps {
            table_elements: 20_000,
            tables: 32,
            memories: 32,
            core_instances: 64,
            log_lines_per_sec: 100,
            http: crate::http::HttpCaps::default(),
        }
    }
}

/// How often a plugin that keeps flooding gets one summary line.
const DROP_REPORT_EVERY: Duration = Duration::from_secs(10);

/// A token bucket of log lines per plugin (burst = one second's worth), the
/// number of lines dropped, and a rate-limited summary of the drops.
pub struct LogLimiter {
    plugin: Arc<str>,
    per_sec: f64,
    state: Mutex<Bucket>,
    dropped: AtomicU64,
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
    reported: Option<Instant>,
    reported_total: u64,
}

impl LogLimiter {
    pub fn new(plugin: Arc<str>, per_sec: u32) -> LogLimiter {
        let per_sec = f64::from(per_sec.max(1));
        LogLimiter {
            plugin,
            per_sec,
            state: Mutex::new(Bucket {
                tokens: per_sec,
                refilled: Instant::now(),
                reported: None,
                reported_total: 0,
            }),
            dropped: AtomicU64::new(0),
        }
    }

    /// True when one more line may be written now; false counts it dropped.
    pub fn admit(&self) -> bool {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> bool {
        let mut b = self.state.lock();
        let elapsed = now.saturating_duration_since(b.refilled).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_sec).min(self.per_sec);
        b.refilled = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return true;
        }
        let total = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if b.reported
            .is_none_or(|t| now.saturating_duration_since(t) >= DROP_REPORT_EVERY)
        {
            let since = total - b.reported_total;
            b.reported = Some(now);
            b.reported_total = total;
            tracing::warn!(
                plugin = %self.plugin,
                dropped = since,
                dropped_total = total,
                "wasm plugin: log rate limit of {} lines/s reached; lines dropped",
                self.per_sec
            );
        }
        false
    }

    /// Lines dropped since the plugin was loaded.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

static POOL: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

/// Guest threads used when nothing configured them before the first call.
pub const DEFAULT_GUEST_THREADS: usize = 2;

/// Creates the guest pool with `threads` workers if it does not exist yet
/// (the first plugin manager of the process decides). Returns the size in use.
pub fn init_guest_pool(threads: usize) -> std::io::Result<usize> {
    // Serialised, so a pool is only ever built once and never dropped (a
    // runtime must not be dropped inside another runtime's async context).
    static INIT: Mutex<()> = Mutex::new(());
    let _one = INIT.lock();
    if POOL.get().is_none() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("oort-wasm-guest")
            .enable_all()
            .build()?;
        if let Err(rt) = POOL.set(rt) {
            // Unreachable under INIT; never drop a runtime here regardless.
            std::mem::forget(rt);
        }
    }
    Ok(POOL.get().map_or(threads, |p| p.metrics().num_workers()))
}

fn pool() -> Result<&'static tokio::runtime::Runtime, ConnectorError> {
    if POOL.get().is_none() {
        init_guest_pool(DEFAULT_GUEST_THREADS).map_err(|e| {
            ConnectorError::Fatal(format!("cannot start the plugin thread pool: {e}"))
        })?;
    }
    POOL.get()
        .ok_or_else(|| ConnectorError::Fatal("the plugin thread pool is not running".into()))
}

/// Aborts the pool task when the caller stops waiting for it (a rule task
/// dropped mid-call): the guest stops at its next epoch yield.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `fut` (guest calls) on the dedicated guest pool and waits for it
/// from wherever the caller runs, without occupying the caller's threads.
pub async fn on_guest_pool<T, F>(what: &str, fut: F) -> Result<T, ConnectorError>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut h = AbortOnDrop(pool()?.spawn(fut));
    (&mut h.0)
        .await
        .map_err(|e| ConnectorError::Fatal(format!("{what}: the plugin call failed: {e}")))
}

/// A task running on the guest pool; aborted when dropped (its guest call
/// stops at the next epoch yield).
pub struct GuestTask(#[allow(dead_code)] AbortOnDrop<()>);

/// Starts `fut` on the guest pool for as long as the returned handle lives
/// (a sink instance's writer: one task per instance, fed by a channel,
/// instead of one task per call).
pub fn spawn_on_guest_pool<F>(fut: F) -> Result<GuestTask, ConnectorError>
where
    F: Future<Output = ()> + Send + 'static,
{
    Ok(GuestTask(AbortOnDrop(pool()?.spawn(fut))))
}

/// [`on_guest_pool`] for synchronous callers (factories' `create`). Inside a
/// multi-thread tokio runtime the waiting worker first hands its other tasks
/// to the rest of the runtime (`block_in_place`), so REST requests go on.
pub fn on_guest_pool_blocking<T, F>(what: &str, fut: F) -> Result<T, ConnectorError>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    pool()?.spawn(async move {
        let _ = tx.send(fut.await);
    });
    let wait = move || {
        rx.recv()
            .map_err(|_| ConnectorError::Fatal(format!("{what}: the plugin call was lost")))
    };
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_limiter_admits_its_rate_and_counts_the_rest() {
        let l = LogLimiter::new("t".into(), 10);
        let t0 = Instant::now();
        let admitted = (0..100).filter(|_| l.admit_at(t0)).count();
        assert_eq!(admitted, 10);
        assert_eq!(l.dropped(), 90);
        // Half a second later, five more lines fit.
        let t1 = t0 + Duration::from_millis(500);
        let admitted = (0..100).filter(|_| l.admit_at(t1)).count();
        assert_eq!(admitted, 5);
        assert_eq!(l.dropped(), 185);
    }

    #[test]
    fn blocking_calls_run_on_the_guest_threads() {
        let name = on_guest_pool_blocking("t", async {
            std::thread::current().name().map(str::to_string)
        })
        .unwrap();
        assert_eq!(name.as_deref(), Some("oort-wasm-guest"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_calls_run_on_the_guest_threads() {
        let name = on_guest_pool("t", async {
            std::thread::current().name().map(str::to_string)
        })
        .await
        .unwrap();
        assert_eq!(name.as_deref(), Some("oort-wasm-guest"));
    }
}
