//! `GET /metrics`: rules, their nodes and the process in Prometheus' text
//! format, under eKuiper's names: the rule status's numeric metrics that a
//! dashboard watches ([`EXPORTED`]) become `kuiper_<type>_<metric>{rule, op}`
//! (`type`: `source`, `op`, `sink`, or Oort's `lookup`; `op`: the node
//! within its type, e.g. the stream, `2_project`, `mqtt_0`), counters for
//! `*_total`, gauges otherwise; `kuiper_rule_status{rule}` is 1 running, 0 stopped, -1
//! stopped by an error; `process_resident_memory_bytes` and
//! `process_cpu_seconds_total` describe the server. `detail` (the
//! `metrics.detail` setting, or `?detail=` on the request) picks how much
//! of each rule: `rules` (default) its state and its source, lookup and sink
//! nodes, `full` also its operators and the sinks' latency histograms.
//! Built per scrape from
//! the counters the status reads (nothing is kept between scrapes) into one
//! flat snapshot that the `prometheus-client` crate's encoder walks.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde_json::Value as Json;

use super::AppState;
use crate::config::MetricsDetail;
use crate::manager::RuleMetric;
use crate::runtime::metrics::LatencySnapshot;

/// The text format's content type (version 0.0.4).
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The node metrics exported, by the status's name: what a dashboard
/// watches (eKuiper's numeric metrics, Oort's sink counters, connection
/// state). Timestamps and duplicates (`messages_processed_total`) stay in
/// `GET /rules/{id}/status`, which keeps a scrape of 1,000 rules small.
const EXPORTED: &[&str] = &[
    "records_in_total",
    "records_out_total",
    "exceptions_total",
    "process_latency_us",
    "buffer_length",
    "records_dropped_total",
    "cache_length",
    "connection_status",
    "cache_hits_total",
    "lookups_total",
    "dropped_total",
];

/// Whose sample: a node of a rule (index into `Snapshot::nodes`), a rule,
/// or the process.
#[derive(Debug, Clone, Copy)]
enum Owner {
    Node(usize),
    Rule(usize),
    /// Index into `Snapshot::plugins`.
    Plugin(usize),
    Process,
}

#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

#[derive(Debug, Default)]
struct Family {
    counter: bool,
    samples: Vec<(Owner, Num)>,
}

/// One scrape's values, encoded by [`Collector::encode`] without any
/// per-sample map.
#[derive(Debug, Default)]
struct Snapshot {
    rules: Vec<String>,
    /// (rule index, op)
    nodes: Vec<(usize, String)>,
    /// (kind, plugin name)
    plugins: Vec<(String, String)>,
    /// By family name (a counter's without `_total`: the encoder adds it).
    families: BTreeMap<String, Family>,
    /// Latency histograms by family name: (node index, histogram).
    histograms: BTreeMap<String, Vec<(usize, LatencySnapshot)>>,
}

impl Snapshot {
    /// The index of node `op` of rule `r`, added if new (a rule's nodes are
    /// visited together, so the search is short).
    fn node(&mut self, r: usize, op: &str) -> usize {
        let found = self
            .nodes
            .iter()
            .rev()
            .take_while(|(nr, _)| *nr == r)
            .position(|(_, o)| o == op);
        match found {
            Some(back) => self.nodes.len() - 1 - back,
            None => {
                self.nodes.push((r, op.to_string()));
                self.nodes.len() - 1
            }
        }
    }

    fn put(&mut self, name: &str, owner: Owner, v: Num) {
        let (base, counter) = match name.strip_suffix("_total") {
            Some(b) => (b, true),
            None => (name, false),
        };
        let fam = match self.families.get_mut(base) {
            Some(f) => f,
            None => self.families.entry(base.to_string()).or_insert(Family {
                counter,
                samples: Vec::new(),
            }),
        };
        fam.samples.push((owner, v));
    }
}

fn num(v: &Json) -> Option<Num> {
    match v {
        Json::Number(n) => n
            .as_i64()
            .map(Num::Int)
            .or_else(|| n.as_f64().map(Num::Float)),
        _ => None,
    }
}

fn encode_value(
    counter: bool,
    v: Num,
    enc: prometheus_client::encoding::MetricEncoder<'_>,
) -> Result<(), std::fmt::Error> {
    match (counter, v) {
        (true, Num::Int(i)) => ConstCounter::new(i.max(0) as u64).encode(enc),
        (true, Num::Float(f)) => ConstCounter::new(f.max(0.0)).encode(enc),
        (false, Num::Int(i)) => ConstGauge::new(i).encode(enc),
        (false, Num::Float(f)) => ConstGauge::new(f).encode(enc),
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, fam) in &self.families {
            let ty = if fam.counter {
                MetricType::Counter
            } else {
                MetricType::Gauge
            };
            let h = help(name);
            let mut me = encoder.encode_descriptor(name, &h, None, ty)?;
            for (owner, v) in &fam.samples {
                match *owner {
                    Owner::Node(i) => {
                        let (r, op) = &self.nodes[i];
                        let labels = [("rule", self.rules[*r].as_str()), ("op", op.as_str())];
                        encode_value(fam.counter, *v, me.encode_family(&labels)?)?;
                    }
                    Owner::Rule(r) => {
                        let labels = [("rule", self.rules[r].as_str())];
                        encode_value(fam.counter, *v, me.encode_family(&labels)?)?;
                    }
                    Owner::Plugin(i) => {
                        let (kind, name) = &self.plugins[i];
                        let labels = [("kind", kind.as_str()), ("plugin", name.as_str())];
                        encode_value(fam.counter, *v, me.encode_family(&labels)?)?;
                    }
                    Owner::Process => {
                        let labels: [(&str, &str); 0] = [];
                        encode_value(fam.counter, *v, me.encode_family(&labels)?)?;
                    }
                }
            }
        }
        for (name, hs) in &self.histograms {
            let mut me =
                encoder.encode_descriptor(name, &help(name), None, MetricType::Histogram)?;
            for (i, h) in hs {
                let (r, op) = &self.nodes[*i];
                let labels = [("rule", self.rules[*r].as_str()), ("op", op.as_str())];
                me.encode_family(&labels)?
                    .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                        h.sum_seconds,
                        h.count,
                        &h.buckets,
                        None,
                    )?;
            }
        }
        Ok(())
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
        (
            "process_latency_seconds",
            "Duration of the sink's deliveries (hand-over to acknowledgement, retries included), seconds",
        ),
        ("buffer_length", "Records waiting in the node's input queue"),
        ("cache_length", "Records waiting in the sink's resend cache"),
        (
            "connection_status",
            "Connection: 1 connected, 0 connecting, -1 disconnected",
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
        (
            "oort_plugin_calls",
            "Export calls of the plugin's instances since it was loaded",
        ),
        (
            "oort_plugin_call_seconds",
            "Time the plugin's export calls took, seconds",
        ),
        (
            "oort_plugin_call_failures",
            "Export calls that trapped or timed out (each discards its instance)",
        ),
        (
            "oort_plugin_interruptions",
            "Export calls stopped at their deadline",
        ),
        ("oort_plugin_instances", "Live instances of the plugin"),
        (
            "oort_plugin_memory_peak_bytes",
            "Largest linear memory an instance of the plugin reached, bytes",
        ),
        (
            "oort_plugin_log_lines_dropped",
            "Plugin log lines dropped by its log rate limit",
        ),
    ];
    // The longest known name the family's name ends with.
    KNOWN
        .iter()
        .filter(|(k, _)| name.ends_with(k))
        .max_by_key(|(k, _)| k.len())
        .map(|(_, h)| h.to_string())
        .unwrap_or_else(|| format!("Rule metric {name}"))
}

/// Renders the text document.
pub async fn render(state: &AppState, detail: MetricsDetail) -> Result<String, std::fmt::Error> {
    let full = detail == MetricsDetail::Full;
    let mut snap = Snapshot::default();
    state
        .mgr
        .visit_metrics(&mut |rule, m| {
            if snap.rules.last().map(String::as_str) != Some(rule) {
                snap.rules.push(rule.to_string());
            }
            let r = snap.rules.len() - 1;
            match m {
                RuleMetric::State(code) => {
                    snap.put("kuiper_rule_status", Owner::Rule(r), Num::Int(code));
                }
                RuleMetric::Node(node, metric, v) => {
                    // An operator's queue is the rule's own (its
                    // `buffer_length` is always 0): left out.
                    if !EXPORTED.contains(&metric)
                        || (node.kind == "op" && (!full || metric == "buffer_length"))
                    {
                        return;
                    }
                    let Some(x) = num(&v) else { return };
                    let n = snap.node(r, &node.op);
                    let name = format!("kuiper_{}_{metric}", node.kind);
                    snap.put(&name, Owner::Node(n), x);
                }
                RuleMetric::Latency(node, h) => {
                    if !full {
                        return;
                    }
                    let n = snap.node(r, &node.op);
                    let name = format!("kuiper_{}_process_latency_seconds", node.kind);
                    snap.histograms.entry(name).or_default().push((n, h));
                }
            }
        })
        .await;
    if let Some(pm) = &state.plugins {
        for kind in [oort_wasm::PluginKind::Source, oort_wasm::PluginKind::Sink] {
            for name in pm.list(kind) {
                let Some(info) = pm.get(kind, &name) else {
                    continue;
                };
                let Some(c) = info.calls else { continue };
                snap.plugins.push((kind.to_string(), name));
                let o = Owner::Plugin(snap.plugins.len() - 1);
                let n = |v: u64| Num::Int(v as i64);
                snap.put("oort_plugin_calls_total", o, n(c.calls));
                snap.put(
                    "oort_plugin_call_seconds_total",
                    o,
                    Num::Float(c.guest_ms / 1e3),
                );
                snap.put("oort_plugin_call_failures_total", o, n(c.failures));
                snap.put("oort_plugin_interruptions_total", o, n(c.interruptions));
                snap.put(
                    "oort_plugin_instances",
                    o,
                    n(info.instances.unwrap_or(0) as u64),
                );
                snap.put("oort_plugin_memory_peak_bytes", o, n(c.memory_peak_bytes));
                snap.put(
                    "oort_plugin_log_lines_dropped_total",
                    o,
                    n(info.log_lines_dropped.unwrap_or(0)),
                );
            }
        }
    }
    if let Some(b) = crate::cli::rss_bytes() {
        snap.put(
            "process_resident_memory_bytes",
            Owner::Process,
            Num::Int(b as i64),
        );
    }
    if let Some(s) = crate::cli::cpu_seconds() {
        snap.put("process_cpu_seconds_total", Owner::Process, Num::Float(s));
    }
    let mut reg = Registry::default();
    reg.register_collector(Box::new(snap));
    let mut out = String::with_capacity(256 * 1024);
    prometheus_client::encoding::prometheus_text::encode(&mut out, &reg)?;
    Ok(out)
}

/// Whether the scraper takes a gzip body (Prometheus asks for one).
fn accepts_gzip(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| {
            let mut parts = e.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

fn gzip(text: &str) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(text.len() / 8),
        flate2::Compression::fast(),
    );
    enc.write_all(text.as_bytes())?;
    enc.finish()
}

/// `GET /metrics` query.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// `rules`: each rule's state and its source, lookup and sink nodes;
    /// `full`: also operators and the sinks' latency histograms. Default:
    /// the `metrics.detail` setting (`rules`).
    detail: Option<String>,
}

#[utoipa::path(
    get,
    path = "/metrics",
    params(MetricsQuery),
    tag = "server",
    summary = "Rule, node and process metrics (Prometheus text format)",
    responses(
        (status = 200, description = "Prometheus' text exposition format (gzip when asked)", body = String, content_type = "text/plain"),
        super::openapi::BadRequest,
        (status = 500, description = "The metrics could not be encoded", body = String, content_type = "text/plain"),
    )
)]
pub async fn metrics(
    State(s): State<AppState>,
    Query(q): Query<MetricsQuery>,
    headers: axum::http::HeaderMap,
) -> Response {
    let detail = match q.detail.as_deref() {
        None => s.metrics_detail,
        Some(d) => match MetricsDetail::parse(d) {
            Some(d) => d,
            None => {
                return crate::error::AppError::bad(format!("detail {d:?}: use rules or full"))
                    .into_response()
            }
        },
    };
    match render(&s, detail).await {
        Ok(text) if accepts_gzip(&headers) => match gzip(&text) {
            Ok(body) => (
                [
                    (header::CONTENT_TYPE, CONTENT_TYPE),
                    (header::CONTENT_ENCODING, "gzip"),
                ],
                body,
            )
                .into_response(),
            Err(_) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        },
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("metrics could not be encoded: {e}"),
        )
            .into_response(),
    }
}
