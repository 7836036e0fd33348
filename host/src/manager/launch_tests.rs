//! How often a rule's sinks are created on the way to running: a plugin
//! sink's creation runs its guest `validate`, so every extra trial costs a
//! guest call.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use oort_core::{ConnectorError, Props, Sink, SinkContext, SinkFactory, SinkItem};

use super::Manager;

struct Counting(Arc<AtomicUsize>);

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
    fn create(&self, props: &Props) -> Result<Box<dyn Sink>, ConnectorError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        if props.contains_key("refuse") {
            return Err(ConnectorError::config("counting: refused"));
        }
        Ok(Box::new(Quiet))
    }
}

fn manager(dir: &std::path::Path) -> (Manager, Arc<AtomicUsize>) {
    let registry = oort_core::Registry::default();
    oort_connectors::builtin(&registry);
    let created = Arc::new(AtomicUsize::new(0));
    registry.add_sink(Arc::new(Counting(created.clone())));
    (Manager::open(dir, registry).expect("manager"), created)
}

#[tokio::test]
async fn creating_a_rule_creates_each_sink_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mgr, created) = manager(dir.path());
    mgr.exec_stream_sql(r#"CREATE STREAM s () WITH (DATASOURCE="t", TYPE="memory")"#)
        .await
        .expect("stream");
    mgr.create_rule(r#"{"id":"r","sql":"SELECT * FROM s","actions":[{"counting":{}}]}"#)
        .await
        .expect("rule");
    assert_eq!(created.load(Ordering::SeqCst), 1);

    // Refused by the sink: a 400, once, and nothing stored.
    let e = mgr
        .create_rule(
            r#"{"id":"bad","sql":"SELECT * FROM s","actions":[{"counting":{"refuse":1}}]}"#,
        )
        .await
        .expect_err("refused");
    assert!(e.to_string().contains("counting: refused"), "{e}");
    assert_eq!(created.load(Ordering::SeqCst), 2);
    assert_eq!(mgr.list_rules().await.len(), 1);

    // A rule created stopped is still checked by a trial creation.
    mgr.create_rule(
        r#"{"id":"idle","sql":"SELECT * FROM s","actions":[{"counting":{}}],"triggered":false}"#,
    )
    .await
    .expect("stopped rule");
    assert_eq!(created.load(Ordering::SeqCst), 3);
}
