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
