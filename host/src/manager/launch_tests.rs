//! How often a rule's sinks are validated and built on the way to running: a
//! plugin sink's creation runs its guest `validate`, so every extra trial
//! costs a guest call. Starting a rule builds each sink once and validates
//! nothing twice; a rule created stopped is validated, not built.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use oort_core::{
    ConnectorEnv, ConnectorError, ConnectorInfo, Props, Sink, SinkContext, SinkFactory, SinkItem,
};

use super::Manager;

#[derive(Default)]
struct Calls {
    created: AtomicUsize,
    validated: AtomicUsize,
    /// The props of the last `create`.
    props: parking_lot::Mutex<Props>,
}

struct Counting(Arc<Calls>);

struct Quiet;

#[async_trait]
impl Sink for Quiet {
    async fn connect(&mut self, _: &SinkContext) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn collect(&mut self, _: &SinkContext, _: &[SinkItem]) -> Result<(), ConnectorError> {
        Ok(())
    }
}

impl SinkFactory for Counting {
    fn kind(&self) -> &str {
        "counting"
    }
    fn info(&self) -> ConnectorInfo {
        ConnectorInfo::new("counts its calls")
    }
    fn validate(&self, _: &ConnectorEnv, props: &Props) -> Result<(), ConnectorError> {
        self.0.validated.fetch_add(1, Ordering::SeqCst);
        check(props)
    }
    fn create(&self, _: &ConnectorEnv, props: &Props) -> Result<Box<dyn Sink>, ConnectorError> {
        self.0.created.fetch_add(1, Ordering::SeqCst);
        *self.0.props.lock() = props.clone();
        check(props)?;
        Ok(Box::new(Quiet))
    }
}

fn check(props: &Props) -> Result<(), ConnectorError> {
    if props.contains_key("refuse") {
        return Err(ConnectorError::config("counting: refused"));
    }
    Ok(())
}

fn manager(dir: &std::path::Path) -> (Manager, Arc<Calls>) {
    let registry = oort_core::Registry::default();
    oort_connectors::builtin(&registry);
    let created = Arc::new(Calls::default());
    registry.add_sink(Arc::new(Counting(created.clone())));
    (Manager::open(dir, registry).expect("manager"), created)
}

#[tokio::test]
async fn creating_a_rule_creates_each_sink_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mgr, calls) = manager(dir.path());
    let counts = || {
        (
            calls.created.load(Ordering::SeqCst),
            calls.validated.load(Ordering::SeqCst),
        )
    };
    mgr.exec_stream_sql(r#"CREATE STREAM s () WITH (DATASOURCE="t", TYPE="memory")"#)
        .await
        .expect("stream");
    mgr.create_rule(r#"{"id":"r","sql":"SELECT * FROM s","actions":[{"counting":{}}]}"#)
        .await
        .expect("rule");
    assert_eq!(counts(), (1, 0), "built once, not validated besides");

    // Refused by the sink: a 400, once, and nothing stored.
    let e = mgr
        .create_rule(
            r#"{"id":"bad","sql":"SELECT * FROM s","actions":[{"counting":{"refuse":1}}]}"#,
        )
        .await
        .expect_err("refused");
    assert!(e.to_string().contains("counting: refused"), "{e}");
    assert_eq!(counts(), (2, 0));
    assert_eq!(mgr.list_rules().await.len(), 1);

    // A rule created stopped is validated, not built.
    mgr.create_rule(
        r#"{"id":"idle","sql":"SELECT * FROM s","actions":[{"counting":{}}],"triggered":false}"#,
    )
    .await
    .expect("stopped rule");
    assert_eq!(counts(), (2, 1));
}

#[tokio::test]
async fn a_sink_gets_its_own_properties_and_no_host_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mgr, calls) = manager(dir.path());
    mgr.exec_stream_sql(r#"CREATE STREAM s () WITH (DATASOURCE="t", TYPE="memory")"#)
        .await
        .expect("stream");
    mgr.create_rule(r#"{"id":"r","sql":"SELECT * FROM s","actions":[{"counting":{"table":"x"}}]}"#)
        .await
        .expect("rule");
    let props = calls.props.lock().clone();
    assert_eq!(props.get("table"), Some(&serde_json::json!("x")));
    let text = serde_json::Value::Object(props.clone()).to_string();
    let data_dir = dir.path().display().to_string();
    assert!(
        !text.contains(&data_dir) && !props.keys().any(|k| k.starts_with("__")),
        "{text}"
    );
    // The context carries the data dir instead.
    assert_eq!(mgr.env().data_dir(), Some(dir.path()));
}

#[tokio::test]
async fn unsupported_formats_are_refused_when_the_stream_is_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mgr, _) = manager(dir.path());
    for (format, needle) in [
        ("protobuf", "schema"),
        ("CUSTOM", "WebAssembly"),
        ("xml", "is invalid"),
    ] {
        let Err(e) = mgr
            .exec_stream_sql(&format!(
                r#"CREATE STREAM s () WITH (DATASOURCE="t", TYPE="mqtt", FORMAT="{format}")"#
            ))
            .await
        else {
            panic!("{format}: accepted");
        };
        assert!(e.to_string().contains(needle), "{format}: {e}");
    }
    // Even on a source that ignores FORMAT, an unsupported one is refused.
    let Err(e) = mgr
        .exec_stream_sql(
            r#"CREATE STREAM m () WITH (DATASOURCE="t", TYPE="memory", FORMAT="protobuf")"#,
        )
        .await
    else {
        panic!("memory protobuf: accepted");
    };
    assert!(e.to_string().contains("protobuf"), "{e}");
    assert!(
        mgr.list(oort_sql::ast::StreamKind::Stream).is_empty(),
        "nothing stored"
    );
}

/// A sink that keeps what it is handed.
struct Keep(Arc<parking_lot::Mutex<Vec<serde_json::Value>>>);

struct KeepSink(Arc<parking_lot::Mutex<Vec<serde_json::Value>>>);

#[async_trait]
impl Sink for KeepSink {
    async fn connect(&mut self, _: &SinkContext) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn collect(&mut self, _: &SinkContext, items: &[SinkItem]) -> Result<(), ConnectorError> {
        let mut g = self.0.lock();
        for it in items {
            g.push(serde_json::from_slice(&it.payload).unwrap_or_default());
        }
        Ok(())
    }
}

impl SinkFactory for Keep {
    fn kind(&self) -> &str {
        "keep"
    }
    fn info(&self) -> ConnectorInfo {
        ConnectorInfo::new("keeps its items")
    }
    fn create(&self, _: &ConnectorEnv, _: &Props) -> Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(KeepSink(self.0.clone())))
    }
}

/// A stream joined with a scan table fed as it goes (memory) joins against
/// the table as it is when each event arrives: nothing waits for the
/// table's first rows (a file table loads first; that wait is bounded).
#[tokio::test(start_paused = true)]
async fn a_table_fed_as_it_goes_does_not_hold_stream_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = oort_core::Registry::default();
    oort_connectors::builtin(&registry);
    let kept = Arc::new(parking_lot::Mutex::new(Vec::new()));
    registry.add_sink(Arc::new(Keep(kept.clone())));
    let mgr = Manager::open(dir.path(), registry).expect("manager");
    mgr.exec_stream_sql(r#"CREATE STREAM s () WITH (DATASOURCE="tj/s", TYPE="memory")"#)
        .await
        .expect("stream");
    mgr.exec_stream_sql(r#"CREATE TABLE t () WITH (DATASOURCE="tj/t", TYPE="memory")"#)
        .await
        .expect("table");
    mgr.create_rule(
        r#"{"id":"j","sql":"SELECT s.id, t.name FROM s LEFT JOIN t ON s.id = t.id","actions":[{"keep":{"sendSingle":true}}]}"#,
    )
    .await
    .expect("rule");
    let bus = oort_connectors::memory::bus::bus(mgr.env());
    let row = |v: serde_json::Value| {
        let oort_core::Value::Object(m) = oort_core::Value::from_json(&v) else {
            panic!("object")
        };
        oort_core::Row::from_map(&m)
    };
    let ms = std::time::Duration::from_millis;
    // The rule's memory sources subscribe as it starts.
    for _ in 0..1000 {
        if bus.subscription_count() >= 2 {
            break;
        }
        tokio::time::sleep(ms(1)).await;
    }
    assert!(
        bus.subscription_count() >= 2,
        "the rule's sources subscribe"
    );
    let t0 = tokio::time::Instant::now();
    assert_eq!(
        bus.publish("tj/s", vec![row(serde_json::json!({"id": 1}))])
            .await,
        1
    );
    for _ in 0..10_000 {
        if !kept.lock().is_empty() {
            break;
        }
        tokio::time::sleep(ms(1)).await;
    }
    // Virtual time only moves while everything waits: a held event would
    // have cost the 2 s table wait.
    assert!(
        t0.elapsed() < std::time::Duration::from_millis(500),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(kept.lock()[0], serde_json::json!({"id": 1}));
    bus.publish(
        "tj/t",
        vec![row(serde_json::json!({"id": 1, "name": "pump"}))],
    )
    .await;
    // The table row is in once the next event joins it.
    for _ in 0..1000 {
        bus.publish("tj/s", vec![row(serde_json::json!({"id": 1}))])
            .await;
        tokio::time::sleep(ms(5)).await;
        if kept.lock().iter().any(|v| v["name"] == "pump") {
            return;
        }
    }
    panic!("the table row never joined: {:?}", kept.lock());
}
