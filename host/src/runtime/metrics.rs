//! Per-node counters shown by `GET /rules/{id}/status`, named like eKuiper's
//! (`source_demo_0_records_in_total`, `sink_mqtt_0_0_exceptions_total`...).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use oort_core::{ConnState, ConnStatus};
use parking_lot::Mutex;
use serde_json::Value as Json;

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

    /// A sink node's metrics: [`NodeMetrics::visit`] plus
    /// `records_dropped_total` and `cache_length` (Oort extensions: items
    /// dropped, items waiting in the resend cache).
    pub fn visit_sink(&self, conn: &ConnState, f: &mut dyn FnMut(&str, Json)) {
        self.visit(Some(conn), f);
        f(
            "records_dropped_total",
            self.records_dropped.load(Ordering::Relaxed).into(),
        );
        f("cache_length", self.cached.load(Ordering::Relaxed).into());
    }

    /// Each of this node's metrics, by eKuiper's metric name.
    pub fn visit(&self, conn: Option<&ConnState>, f: &mut dyn FnMut(&str, Json)) {
        let (le, let_) = self.last_exception();
        let rin = self.records_in.load(Ordering::Relaxed);
        f("records_in_total", rin.into());
        f(
            "records_out_total",
            self.records_out.load(Ordering::Relaxed).into(),
        );
        f("messages_processed_total", rin.into());
        f(
            "process_latency_us",
            self.process_latency_us.load(Ordering::Relaxed).into(),
        );
        f(
            "buffer_length",
            self.buffer_length.load(Ordering::Relaxed).into(),
        );
        f(
            "last_invocation",
            self.last_invocation.load(Ordering::Relaxed).into(),
        );
        f(
            "exceptions_total",
            self.exceptions.load(Ordering::Relaxed).into(),
        );
        f("last_exception", le.into());
        f("last_exception_time", let_.into());
        if let Some(c) = conn {
            visit_conn(c, f);
        }
    }
}

/// A connection's metrics (`connection_status`: 1 connected, 0 connecting,
/// -1 disconnected; times in ms).
pub fn visit_conn(c: &ConnState, f: &mut dyn FnMut(&str, Json)) {
    let s = c.snapshot();
    let code = match s.status {
        ConnStatus::Connected => 1,
        ConnStatus::Connecting => 0,
        ConnStatus::Disconnected => -1,
    };
    f("connection_status", code.into());
    f("connection_last_connected_time", s.last_connected_ms.into());
    f(
        "connection_last_disconnected_time",
        s.last_disconnected_ms.into(),
    );
    f(
        "connection_last_disconnected_message",
        s.last_disconnected_message.into(),
    );
    f("connection_last_try_time", s.last_try_ms.into());
    for (k, v) in &s.metrics {
        f(
            k,
            serde_json::Number::from_f64(*v).map_or(Json::Null, Json::Number),
        );
    }
}
