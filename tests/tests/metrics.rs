//! `GET /metrics`: rule and node metrics in Prometheus' text format, read
//! back with a Prometheus text-format parser (`prometheus-parse`).

use oort_tests::{mqtt, unique, Server};
use serde_json::json;

fn scrape(s: &Server) -> prometheus_parse::Scrape {
    scrape_at(s, "/metrics")
}

fn scrape_at(s: &Server, path: &str) -> prometheus_parse::Scrape {
    let r = s.get(path);
    assert_eq!(r.status, 200, "{}", r.body);
    let lines = r.body.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).expect("a valid Prometheus text document")
}

fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

#[test]
fn rule_and_node_metrics_in_prometheus_text_format() {
    let s = Server::start();
    let topic = unique("prom");
    s.create_stream(&format!(
        "CREATE STREAM s () WITH (DATASOURCE=\"{topic}\", TYPE=\"mqtt\")"
    ));
    s.create_rule(
        &json!({"id": "hot", "sql": "SELECT * FROM s WHERE temp > 20",
        "actions": [{"nop": {}}]}),
    );
    s.create_rule(&json!({"id": "idle", "sql": "SELECT * FROM s",
        "actions": [{"nop": {}}], "triggered": false}));
    s.wait_status("hot", "subscribed", |st| {
        st["source_s_0_connection_status"] == 1
    });
    let msgs: Vec<String> = (0..10)
        .map(|i| json!({"temp": 15 + i}).to_string())
        .collect();
    mqtt::publish(&topic, &msgs);
    s.wait_status("hot", "all in", |st| {
        st["sink_nop_0_0_records_in_total"] == 4
    });
    let m = scrape(&s);
    let node = |_t: &'static str, op: &'static str| [("rule", "hot"), ("op", op)];
    assert_eq!(
        value(&m, "kuiper_source_records_in_total", &node("source", "s")),
        Some(10.0)
    );
    assert_eq!(
        value(&m, "kuiper_sink_records_in_total", &node("sink", "nop_0")),
        Some(4.0)
    );
    assert_eq!(
        value(&m, "kuiper_source_connection_status", &node("source", "s")),
        Some(1.0)
    );
    // Operators are in the full scrape only.
    let op_in = |m: &prometheus_parse::Scrape| {
        m.samples.iter().any(|x| {
            x.metric == "kuiper_op_records_in_total" && x.labels.get("rule") == Some("hot")
        })
    };
    assert!(!op_in(&m), "operators in the default scrape");
    let full = scrape_at(&s, "/metrics?detail=full");
    assert!(op_in(&full), "no operators with detail=full");
    assert_eq!(
        value(
            &full,
            "kuiper_source_records_in_total",
            &node("source", "s")
        ),
        Some(10.0)
    );
    let bad = s.get("/metrics?detail=everything");
    assert!(
        bad.status == 400
            && bad.body.contains("everything")
            && bad.body.contains("use rules or full"),
        "{} {}",
        bad.status,
        bad.body
    );
    assert_eq!(
        value(&m, "kuiper_rule_status", &[("rule", "hot")]),
        Some(1.0)
    );
    assert_eq!(
        value(&m, "kuiper_rule_status", &[("rule", "idle")]),
        Some(0.0)
    );
    assert!(value(&m, "process_resident_memory_bytes", &[]).unwrap_or(0.0) > 1e6);
    assert!(value(&m, "process_cpu_seconds_total", &[]).is_some());
    // Counters are typed as such; integers print as integers; timestamps
    // stay in the rule status.
    let r = s.get("/metrics").body;
    assert!(
        r.contains("kuiper_source_records_in_total{rule=\"hot\",op=\"s\"} 10\n"),
        "{r}"
    );
    assert!(!r.contains("last_invocation"), "{r}");
    // Prometheus asks for gzip: it gets it.
    let resp = reqwest::blocking::Client::new()
        .get(format!("{}/metrics", s.base))
        .header("Accept-Encoding", "gzip")
        .send()
        .expect("GET /metrics");
    assert_eq!(
        resp.headers()
            .get("content-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("gzip")
    );
    let packed = resp.bytes().expect("body");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&packed[..]), &mut text)
        .expect("a gzip body");
    assert!(
        packed.len() < text.len(),
        "{} >= {}",
        packed.len(),
        text.len()
    );
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let m2 = prometheus_parse::Scrape::parse(lines).expect("parsed");
    assert_eq!(
        value(&m2, "kuiper_source_records_in_total", &node("source", "s")),
        Some(10.0)
    );
    assert!(
        r.contains("# TYPE kuiper_source_records_in_total counter"),
        "{r}"
    );
    assert!(r.contains("# TYPE kuiper_rule_status gauge"), "{r}");
    // Every delivery's duration, as a histogram per sink node (full only).
    assert!(!r.contains("_process_latency_seconds"), "{r}");
    let r = s.get("/metrics?detail=full").body;
    let m = full;
    assert!(!r.contains("kuiper_source_process_latency_seconds"), "{r}");
    {
        let (name, op) = ("kuiper_sink_process_latency_seconds", "nop_0");
        assert!(r.contains(&format!("# TYPE {name} histogram")), "{r}");
        let h = histogram(&m, name, &[("rule", "hot"), ("op", op)]);
        assert_eq!(h.len(), 9, "{name}: 8 bounds and +Inf: {h:?}");
        assert!(
            h.windows(2)
                .all(|w| w[0].count <= w[1].count && w[0].less_than < w[1].less_than),
            "{name}: cumulative: {h:?}"
        );
        let last = h.last().expect("buckets");
        assert!(last.less_than.is_infinite(), "{h:?}");
        assert!(last.count >= 1.0, "{name}: at least one processing: {h:?}");
        let count = value(&m, &format!("{name}_count"), &[("rule", "hot"), ("op", op)]);
        assert_eq!(count, Some(last.count), "{name}: _count is the +Inf bucket");
    }
}

fn histogram(
    s: &prometheus_parse::Scrape,
    name: &str,
    labels: &[(&str, &str)],
) -> Vec<prometheus_parse::HistogramCount> {
    s.samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .and_then(|x| match &x.value {
            prometheus_parse::Value::Histogram(h) => Some(h.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no histogram {name} {labels:?}"))
}

/// `metrics.addr` (eKuiper's `basic.prometheusPort`): `/metrics` on its own
/// listener, without the REST API's token and without the rest of the API;
/// an address that cannot be bound stops the start naming the key.
#[test]
fn metrics_on_their_own_port_without_the_api() {
    let port = oort_tests::free_port();
    let s = Server::start_with(oort_tests::Opts {
        env: vec![
            ("OORT__METRICS__ADDR".into(), format!("127.0.0.1:{port}")),
            ("OORT__METRICS__DETAIL".into(), "full".into()),
            ("OORT__REST__TOKEN".into(), "s3cret".into()),
        ],
        token: Some("s3cret".into()),
        ..Default::default()
    });
    s.create_stream("CREATE STREAM pm () WITH (DATASOURCE=\"pm\", TYPE=\"memory\")");
    s.create_rule(&json!({"id": "pm_rule", "sql": "SELECT * FROM pm", "actions": [{"nop": {}}]}));
    let base = format!("http://127.0.0.1:{port}");
    let r = reqwest::blocking::get(format!("{base}/metrics")).expect("scrape");
    assert_eq!(r.status(), 200);
    let body = r.text().expect("body");
    let parsed = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("a valid Prometheus text document");
    assert!(
        value(&parsed, "kuiper_rule_status", &[("rule", "pm_rule")]).is_some(),
        "{body}"
    );
    assert!(value(&parsed, "process_resident_memory_bytes", &[]).is_some_and(|v| v > 0.0));
    // `metrics.detail: full` is every scrape's default; a scrape may still
    // ask for less.
    let histogram_type = "# TYPE kuiper_sink_process_latency_seconds histogram";
    assert!(body.contains(histogram_type), "{body}");
    let r = reqwest::blocking::get(format!("{base}/metrics?detail=rules")).expect("scrape");
    let body = r.text().expect("body");
    assert!(!body.contains(histogram_type), "{body}");
    assert!(body.contains("kuiper_rule_status"), "{body}");
    // Nothing else of the API there; the REST API still wants its token.
    let r = reqwest::blocking::get(format!("{base}/rules")).expect("get");
    assert_eq!(r.status(), 404);
    let r = reqwest::blocking::get(format!("{}/metrics", s.base)).expect("get");
    assert_eq!(r.status(), 401);

    // A taken address: the start fails and says which key.
    let out = std::process::Command::new(oort_tests::oort_bin())
        .args(["serve", "--data-dir"])
        .arg(tempfile::tempdir().expect("tempdir").path())
        .args([
            "--rest-addr",
            &format!("127.0.0.1:{}", oort_tests::free_port()),
        ])
        .env("OORT__METRICS__ADDR", format!("127.0.0.1:{port}"))
        .output()
        .expect("run oort");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("metrics.addr"), "{err}");
}
