//! Per-node counters shown by `GET /rules/{id}/status`, named like eKuiper's
//! (`source_demo_0_records_in_total`, `sink_mqtt_0_0_exceptions_total`...).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use oort_core::{ConnState, ConnStatus};
use parking_lot::Mutex;
use serde_json::{Map, Value as Json};

#[derive(Default, Debug)]
pub struct NodeMetrics {
    pub records_in: AtomicU64,
    pub records_out: AtomicU64,
    /// Sinks: items that could not be delivered (never counted in `records_out`).
    pub records_dropped: AtomicU64,
    pub exceptions: AtomicU64,
    pub process_latency_us: AtomicU64,
    pub last_invocation: AtomicI64,
    pub buffer_length: AtomicU64,
    /// Sinks with `enableCache`: items waiting in the resend cache.
    pub cached: AtomicU64,
    last_exception: Mutex<(String, i64)>,
}

impl NodeMetrics {
    pub fn inc_in(&self, n: u64) {
        self.records_in.fetch_add(n, Ordering::Relaxed);
    }
    pub fn inc_out(&self, n: u64) {
        self.records_out.fetch_add(n, Ordering::Relaxed);
    }
    pub fn inc_dropped(&self, n: u64) {
        self.records_dropped.fetch_add(n, Ordering::Relaxed);
    }
    pub fn set_cached(&self, n: u64) {
        self.cached.store(n, Ordering::Relaxed);
    }
    pub fn exception(&self, msg: impl Into<String>) {
        self.exceptions.fetch_add(1, Ordering::Relaxed);
        *self.last_exception.lock() = (msg.into(), oort_core::now_ms());
    }
    pub fn invoked(&self, now_ms: i64, latency_us: u64) {
        self.last_invocation.store(now_ms, Ordering::Relaxed);
        self.process_latency_us.store(latency_us, Ordering::Relaxed);
    }
    pub fn last_exception(&self) -> (String, i64) {
        self.last_exception.lock().clone()
    }

    /// Appends a sink node's metrics: [`NodeMetrics::write`] plus
    /// `<prefix>_records_dropped_total` and `<prefix>_cache_length` (Oort
    /// extensions: items dropped, items waiting in the resend cache).
    pub fn write_sink(&self, prefix: &str, out: &mut Map<String, Json>, conn: &ConnState) {
        self.write(prefix, out, Some(conn));
        out.insert(
            format!("{prefix}_records_dropped_total"),
            self.records_dropped.load(Ordering::Relaxed).into(),
        );
        out.insert(
            format!("{prefix}_cache_length"),
            self.cached.load(Ordering::Relaxed).into(),
        );
    }

    /// Appends this node's metrics under `<prefix>_<metric>`.
    pub fn write(&self, prefix: &str, out: &mut Map<String, Json>, conn: Option<&ConnState>) {
        let (le, let_) = self.last_exception();
        let rin = self.records_in.load(Ordering::Relaxed);
        out.insert(format!("{prefix}_records_in_total"), rin.into());
        out.insert(
            format!("{prefix}_records_out_total"),
            self.records_out.load(Ordering::Relaxed).into(),
        );
        out.insert(format!("{prefix}_messages_processed_total"), rin.into());
        out.insert(
            format!("{prefix}_process_latency_us"),
            self.process_latency_us.load(Ordering::Relaxed).into(),
        );
        out.insert(
            format!("{prefix}_buffer_length"),
            self.buffer_length.load(Ordering::Relaxed).into(),
        );
        out.insert(
            format!("{prefix}_last_invocation"),
            self.last_invocation.load(Ordering::Relaxed).into(),
        );
        out.insert(
            format!("{prefix}_exceptions_total"),
            self.exceptions.load(Ordering::Relaxed).into(),
        );
        out.insert(format!("{prefix}_last_exception"), le.into());
        out.insert(format!("{prefix}_last_exception_time"), let_.into());
        if let Some(c) = conn {
            write_conn(prefix, c, out);
        }
    }
}

pub fn write_conn(prefix: &str, c: &ConnState, out: &mut Map<String, Json>) {
    let s = c.snapshot();
    let code = match s.status {
        ConnStatus::Connected => 1,
        ConnStatus::Connecting => 0,
        ConnStatus::Disconnected => -1,
    };
    out.insert(format!("{prefix}_connection_status"), code.into());
    out.insert(
        format!("{prefix}_connection_last_connected_time"),
        s.last_connected_ms.into(),
    );
    out.insert(
        format!("{prefix}_connection_last_disconnected_time"),
        s.last_disconnected_ms.into(),
    );
    out.insert(
        format!("{prefix}_connection_last_disconnected_message"),
        s.last_disconnected_message.into(),
    );
    out.insert(
        format!("{prefix}_connection_last_try_time"),
        s.last_try_ms.into(),
    );
}
