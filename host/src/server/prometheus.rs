//! `GET /metrics`: rules, their nodes and the process in Prometheus' text
//! format, under eKuiper's names: each numeric metric of the rule status
//! becomes `kuiper_<type>_<metric>{rule, type, op, instance}` (`type`:
//! `source`, `op`, `sink`, or Oort's `lookup`; `op`: the node within its
//! type, e.g. the stream, `2_project`, `mqtt_0`), counters for `*_total`,
//! gauges otherwise; `kuiper_rule_status{rule}` is 1 running, 0 stopped, -1
//! stopped by an error; `process_resident_memory_bytes` and
//! `process_cpu_seconds_total` describe the server. Built per scrape from
//! the counters the status reads (nothing is kept between scrapes); encoded
//! by the `prometheus-client` crate.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::AppState;
use crate::manager::RuleMetric;

type Labels = Vec<(&'static str, String)>;
type FCounter = Family<Labels, Counter<f64, AtomicU64>>;
type FGauge = Family<Labels, Gauge<f64, AtomicU64>>;

/// The text format's content type (version 0.0.4).
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Default)]
struct Families {
    counters: BTreeMap<String, FCounter>,
    gauges: BTreeMap<String, FGauge>,
}

impl Families {
    fn put(&mut self, name: &str, labels: Labels, v: f64) {
        match name.strip_suffix("_total") {
            // The encoder writes a counter's `_total` suffix itself.
            Some(base) => {
                self.counters
                    .entry(base.to_string())
                    .or_default()
                    .get_or_create(&labels)
                    .inc_by(v.max(0.0));
            }
            None => {
                self.gauges
                    .entry(name.to_string())
                    .or_default()
                    .get_or_create(&labels)
                    .set(v);
            }
        }
    }

    fn register(self, reg: &mut Registry) {
        for (name, f) in self.counters {
            let h = help(&name);
            reg.register(name, h, f);
        }
        for (name, f) in self.gauges {
            let h = help(&name);
            reg.register(name, h, f);
        }
    }
}

/// The HELP line of a family (its name without `_total`).
fn help(name: &str) -> String {
    const KNOWN: &[(&str, &str)] = &[
        (
            "rule_status",
            "Rule state: 1 running, 0 stopped, -1 stopped by an error",
        ),
        ("records_in", "Records the node read"),
        (
            "records_out",
            "Records the node passed on (sinks: delivered)",
        ),
        (
            "messages_processed",
            "Records the node processed (as records in)",
        ),
        (
            "records_dropped",
            "Records the sink could not deliver and dropped",
        ),
        (
            "exceptions",
            "Errors the node met without stopping the rule",
        ),
        (
            "process_latency_us",
            "Duration of the node's last processing, microseconds",
        ),
        ("buffer_length", "Records waiting in the node's input queue"),
        ("cache_length", "Records waiting in the sink's resend cache"),
        (
            "last_exception_time",
            "Time of the node's last error, unix ms",
        ),
        (
            "last_invocation",
            "Time of the node's last processing, unix ms",
        ),
        (
            "connection_status",
            "Connection: 1 connected, 0 connecting, -1 disconnected",
        ),
        (
            "connection_last_connected_time",
            "Time the connection last came up, unix ms",
        ),
        (
            "connection_last_disconnected_time",
            "Time the connection was last lost, unix ms",
        ),
        (
            "connection_last_try_time",
            "Time of the last connection attempt, unix ms",
        ),
        ("cache_hits", "Lookups answered by the lookup table's cache"),
        ("lookups", "Lookups sent to the lookup table's connector"),
        (
            "dropped",
            "Keys the lookup table refused because it was full",
        ),
        (
            "process_resident_memory_bytes",
            "Resident memory of the server process, bytes",
        ),
        (
            "process_cpu_seconds",
            "CPU time the server process used, seconds",
        ),
    ];
    KNOWN
        .iter()
        .find(|(k, _)| name.ends_with(k))
        .map(|(_, h)| h.to_string())
        .unwrap_or_else(|| format!("Rule metric {name}"))
}

/// CPU seconds this process used (user + system).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every mainstream Linux configuration.
    Some(ticks as f64 / 100.0)
}

/// Renders the text document.
pub async fn render(state: &AppState) -> Result<String, std::fmt::Error> {
    let mut fams = Families::default();
    state
        .mgr
        .visit_metrics(&mut |rule, m| match m {
            RuleMetric::State(code) => {
                fams.put(
                    "kuiper_rule_status",
                    vec![("rule", rule.to_string())],
                    code as f64,
                );
            }
            RuleMetric::Node(node, metric, v) => {
                let Some(x) = v.as_f64() else { return };
                let labels = vec![
                    ("rule", rule.to_string()),
                    ("type", node.kind.to_string()),
                    ("op", node.op.clone()),
                    ("instance", "0".to_string()),
                ];
                fams.put(&format!("kuiper_{}_{metric}", node.kind), labels, x);
            }
        })
        .await;
    if let Some(b) = crate::cli::rss_bytes() {
        fams.put("process_resident_memory_bytes", Vec::new(), b as f64);
    }
    if let Some(s) = cpu_seconds() {
        fams.put("process_cpu_seconds_total", Vec::new(), s);
    }
    let mut reg = Registry::default();
    fams.register(&mut reg);
    let mut out = String::with_capacity(64 * 1024);
    prometheus_client::encoding::prometheus_text::encode(&mut out, &reg)?;
    Ok(out)
}

pub async fn metrics(State(s): State<AppState>) -> Response {
    match render(&s).await {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("metrics could not be encoded: {e}"),
        )
            .into_response(),
    }
}
