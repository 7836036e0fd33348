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
    /// Sinks: every delivery's duration (the status shows the last one).
    pub latency: LatencyHistogram,
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
    /// A sink's delivery: [`NodeMetrics::invoked`] and the latency histogram.
    pub fn delivered(&self, now_ms: i64, latency_us: u64) {
        self.invoked(now_ms, latency_us);
        self.latency.record(latency_us);
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

/// Upper bounds, in microseconds, of the latency histogram's buckets
/// (1 ms to 5 s, two per decade: a delivery's range); above the last is
/// `+Inf`. Eleven lines per node in `/metrics` with `_sum` and `_count`.
pub const LATENCY_BOUNDS_US: [u64; 8] = [
    1_000, 5_000, 10_000, 50_000, 100_000, 500_000, 1_000_000, 5_000_000,
];

/// How long a node's processings took, in fixed buckets: three relaxed
/// atomic adds per processing (a processing is a batch), nothing allocated.
#[derive(Default, Debug)]
pub struct LatencyHistogram {
    /// Per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; LATENCY_BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
}

/// A [`LatencyHistogram`] read once, in Prometheus' units (seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct LatencySnapshot {
    /// (upper bound in seconds, count in that bucket alone), the last bound
    /// `f64::INFINITY`.
    pub buckets: [(f64, u64); LATENCY_BOUNDS_US.len() + 1],
    pub sum_seconds: f64,
    pub count: u64,
}

impl LatencyHistogram {
    pub fn record(&self, us: u64) {
        let i = LATENCY_BOUNDS_US.partition_point(|&b| b < us);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> LatencySnapshot {
        let mut buckets = [(f64::INFINITY, 0u64); LATENCY_BOUNDS_US.len() + 1];
        let mut count = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            let n = b.load(Ordering::Relaxed);
            count += n;
            let bound = LATENCY_BOUNDS_US
                .get(i)
                .map_or(f64::INFINITY, |&us| us as f64 / 1e6);
            buckets[i] = (bound, n);
        }
        LatencySnapshot {
            buckets,
            sum_seconds: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
            count,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_the_bucket_whose_bound_it_does_not_exceed() {
        let h = LatencyHistogram::default();
        for us in [0, 1_000, 1_001, 4_999, 5_000, 5_000_001, u64::MAX / 4] {
            h.record(us);
        }
        let s = h.snapshot();
        let counts: Vec<u64> = s.buckets.iter().map(|b| b.1).collect();
        // <=1 ms: 0 and 1,000 us; <=5 ms: 1,001, 4,999 and 5,000; +Inf: the rest.
        assert_eq!(counts, [2, 3, 0, 0, 0, 0, 0, 0, 2]);
        assert_eq!(s.count, 7);
        assert_eq!(s.buckets[0].0, 0.001);
        assert_eq!(s.buckets[7].0, 5.0);
        assert!(s.buckets[8].0.is_infinite());
    }

    #[test]
    fn each_delivery_is_recorded() {
        let m = NodeMetrics::default();
        m.delivered(1, 250);
        m.delivered(2, 2_000_000);
        let s = m.latency.snapshot();
        assert_eq!(s.count, 2);
        assert!((s.sum_seconds - 2.00025).abs() < 1e-9);
        assert_eq!(m.process_latency_us.load(Ordering::Relaxed), 2_000_000);
    }
}
