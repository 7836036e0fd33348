//! What a plugin's instances did: export calls, time, failures and
//! deadline interruptions per plugin ([`CallStats`], shown by `GET
//! /plugins/...` and `/metrics`) and per instance (the rule status), and the
//! store limiter that enforces the memory and table caps while noting the
//! memory high-water mark.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::StoreLimits;

use crate::runtime::CallFailure;

/// Export calls of one plugin's instances since it was loaded.
#[derive(Debug, Default)]
pub struct CallStats {
    calls: AtomicU64,
    guest_ns: AtomicU64,
    failures: AtomicU64,
    interruptions: AtomicU64,
    /// The largest linear memory any instance reached, bytes.
    memory_peak: AtomicU64,
}

/// A copy of [`CallStats`] (`GET /plugins/...` as `calls`, `/metrics`).
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CallCounts {
    /// Export calls made (`read`, `write`, `flush`, ...).
    pub calls: u64,
    /// Time spent in them (in the guest and in the host functions it
    /// called), milliseconds.
    pub guest_ms: f64,
    /// Calls that trapped or timed out (each discards its instance).
    pub failures: u64,
    /// Of those, calls stopped at their deadline (epoch interruption or
    /// the outer timeout).
    pub interruptions: u64,
    /// The largest linear memory an instance of the plugin reached, bytes
    /// (its high-water mark against the memory limit).
    #[serde(default)]
    pub memory_peak_bytes: u64,
}

impl CallStats {
    /// Counts one call that took `took`; `failure` when it failed.
    pub fn record(&self, took: Duration, failure: Option<&CallFailure>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.guest_ns.fetch_add(
            took.as_nanos().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
        if let Some(f) = failure {
            self.failures.fetch_add(1, Ordering::Relaxed);
            if f.is_deadline() {
                self.interruptions.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn counts(&self) -> CallCounts {
        CallCounts {
            calls: self.calls.load(Ordering::Relaxed),
            guest_ms: self.guest_ns.load(Ordering::Relaxed) as f64 / 1e6,
            failures: self.failures.load(Ordering::Relaxed),
            interruptions: self.interruptions.load(Ordering::Relaxed),
            memory_peak_bytes: self.memory_peak.load(Ordering::Relaxed),
        }
    }
}

/// A store's caps ([`StoreLimits`]), noting the plugin's memory high-water
/// mark as its instances grow their memory.
pub struct Limits {
    pub(crate) caps: StoreLimits,
    pub(crate) stats: Arc<CallStats>,
    /// This store's largest linear memory, bytes.
    pub(crate) peak: u64,
}

impl wasmtime::ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = self.caps.memory_growing(current, desired, maximum)?;
        if ok {
            self.peak = self.peak.max(desired as u64);
            self.stats
                .memory_peak
                .fetch_max(desired as u64, Ordering::Relaxed);
        }
        Ok(ok)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.caps.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.caps.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.caps.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.caps.instances()
    }

    fn tables(&self) -> usize {
        self.caps.tables()
    }

    fn memories(&self) -> usize {
        self.caps.memories()
    }
}
