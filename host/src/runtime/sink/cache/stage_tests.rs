//! The cache stage inside a running sink node: outages cached and resent in
//! order, the cache kept across a stop, the alternate queue, overflow drops,
//! checkpoints over cached data. Paused clock: backoffs pass instantly.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oort_core::{ConnectorError, Consumes, Row, Schema, Sink, SinkContext, SinkItem, Value};
use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::super::{start, SinkCommon, SinkProgress, SinkSpec};
use crate::runtime::metrics::NodeMetrics;

/// Takes writes while `up`, records their payloads.
struct Switch {
    up: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Sink for Switch {
    async fn connect(&mut self, _: &SinkContext) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn collect(&mut self, _: &SinkContext, items: &[SinkItem]) -> Result<(), ConnectorError> {
        if !self.up.load(Ordering::SeqCst) {
            return Err(ConnectorError::unavailable("peer down"));
        }
        let mut got = self.got.lock();
        for it in items {
            got.push(String::from_utf8_lossy(&it.payload).into_owned());
        }
        Ok(())
    }
}

struct Node {
    tx: mpsc::Sender<Arc<Vec<Row>>>,
    task: tokio::task::JoinHandle<()>,
    metrics: Arc<NodeMetrics>,
    cancel: CancellationToken,
    progress: Arc<SinkProgress>,
}

fn node(
    props: serde_json::Value,
    dir: &std::path::Path,
    up: &Arc<AtomicBool>,
    got: &Arc<Mutex<Vec<String>>>,
) -> Node {
    let props = props.as_object().cloned().unwrap_or_default();
    let progress = Arc::new(SinkProgress::new(Arc::new(Notify::new())));
    let cancel = CancellationToken::new();
    let spec = SinkSpec {
        rule_id: "r".into(),
        kind: "switch".into(),
        index: 0,
        sinks: vec![Box::new(Switch {
            up: up.clone(),
            got: got.clone(),
        })],
        consumes: Consumes::Payload,
        dynamic_props: false,
        common: SinkCommon::from_props(&props).expect("props"),
        progress: Some(progress.clone()),
        hold: true,
        cache_dir: Some(dir.to_path_buf()),
    };
    let (fatal_tx, _) = mpsc::channel(4);
    let n = start(spec, cancel.clone(), fatal_tx).expect("start");
    Node {
        tx: n.tx,
        task: n.task,
        metrics: n.metrics,
        cancel,
        progress,
    }
}

fn row(i: i64) -> Arc<Vec<Row>> {
    let schema = Arc::new(Schema::from_strs(&["id"]));
    Arc::new(vec![Row::new(schema, vec![Value::Int(i)])])
}

fn ids(from: i64, to: i64) -> Vec<String> {
    (from..to).map(|i| format!(r#"{{"id":{i}}}"#)).collect()
}

/// Waits (paused clock) until `cond` holds; panics after a simulated minute.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..6000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn load(a: &std::sync::atomic::AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

fn pages(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".pg"))
                .count()
        })
        .unwrap_or(0)
}

const SMALL: &str = r#"{"enableCache": true, "sendSingle": true, "retryCount": 0,
    "memoryCacheThreshold": 4, "bufferPageSize": 2, "maxDiskCache": 100}"#;

fn small() -> serde_json::Value {
    serde_json::from_str(SMALL).expect("json")
}

#[tokio::test(start_paused = true)]
async fn an_outage_is_cached_on_disk_and_resent_in_order() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let up = Arc::new(AtomicBool::new(false));
    let got = Arc::default();
    let n = node(small(), tmp.path(), &up, &got);
    for i in 0..10 {
        n.tx.send(row(i)).await.expect("send");
    }
    until("10 cached", || load(&n.metrics.cached) == 10).await;
    assert_eq!(
        load(&n.metrics.records_out),
        0,
        "nothing counted as written"
    );
    assert_eq!(load(&n.metrics.records_dropped), 0);
    assert!(pages(tmp.path()) >= 2, "spilled past memoryCacheThreshold");
    // New results queue behind the cache while the peer is down.
    up.store(true, Ordering::SeqCst);
    n.tx.send(row(10)).await.expect("send");
    n.tx.send(row(11)).await.expect("send");
    until("12 written", || got.lock().len() == 12).await;
    assert_eq!(*got.lock(), ids(0, 12), "in the order produced");
    assert_eq!(load(&n.metrics.records_out), 12);
    assert_eq!(load(&n.metrics.cached), 0);
    assert_eq!(load(&n.metrics.records_dropped), 0);
}

#[tokio::test(start_paused = true)]
async fn a_stop_keeps_the_cache_and_the_next_start_resends_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let up = Arc::new(AtomicBool::new(false));
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let n = node(small(), tmp.path(), &up, &got);
    for i in 0..7 {
        n.tx.send(row(i)).await.expect("send");
    }
    until("7 cached", || load(&n.metrics.cached) == 7).await;
    n.cancel.cancel();
    n.task.await.expect("node ends");
    assert!(got.lock().is_empty());
    assert!(pages(tmp.path()) > 0, "the cache is on disk after the stop");

    up.store(true, Ordering::SeqCst);
    let n = node(small(), tmp.path(), &up, &got);
    until("7 resent after the restart", || got.lock().len() == 7).await;
    assert_eq!(*got.lock(), ids(0, 7));
    until("cache empty", || load(&n.metrics.cached) == 0).await;
}

#[tokio::test(start_paused = true)]
async fn clean_cache_at_stop_removes_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let up = Arc::new(AtomicBool::new(false));
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut props = small();
    props["cleanCacheAtStop"] = true.into();
    let n = node(props.clone(), tmp.path(), &up, &got);
    for i in 0..7 {
        n.tx.send(row(i)).await.expect("send");
    }
    until("7 cached", || load(&n.metrics.cached) == 7).await;
    n.cancel.cancel();
    n.task.await.expect("node ends");
    assert!(!tmp.path().exists(), "removed at stop");
    up.store(true, Ordering::SeqCst);
    let n = node(props, tmp.path(), &up, &got);
    n.tx.send(row(100)).await.expect("send");
    until("the new row", || got.lock().len() == 1).await;
    assert_eq!(*got.lock(), ids(100, 101), "nothing of the previous run");
}

#[tokio::test(start_paused = true)]
async fn with_the_alternate_queue_new_results_do_not_wait_for_the_cache() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let up = Arc::new(AtomicBool::new(false));
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut props = small();
    props["resendAlterQueue"] = true.into();
    // Resends are far apart: what is written now was not resent.
    props["resendInterval"] = "1h".into();
    let n = node(props, tmp.path(), &up, &got);
    for i in 0..3 {
        n.tx.send(row(i)).await.expect("send");
    }
    until("3 cached", || load(&n.metrics.cached) == 3).await;
    up.store(true, Ordering::SeqCst);
    n.tx.send(row(3)).await.expect("send");
    n.tx.send(row(4)).await.expect("send");
    until("new results written", || got.lock().len() >= 2).await;
    assert_eq!(got.lock()[..2], ids(3, 5)[..]);
}

#[tokio::test(start_paused = true)]
async fn resent_rows_of_the_alternate_queue_carry_the_indicator_field() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let up = Arc::new(AtomicBool::new(false));
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut props = small();
    props["resendAlterQueue"] = true.into();
    props["resendIndicatorField"] = "resent".into();
    let n = node(props, tmp.path(), &up, &got);
    for i in 0..3 {
        n.tx.send(row(i)).await.expect("send");
    }
    until("3 cached", || load(&n.metrics.cached) == 3).await;
    up.store(true, Ordering::SeqCst);
    until("resent", || load(&n.metrics.cached) == 0).await;
    n.tx.send(row(3)).await.expect("send");
    until("all written", || got.lock().len() >= 4).await;
    let got = got.lock().clone();
    let resent: Vec<String> = (0..3)
        .map(|i| format!(r#"{{"id":{i},"resent":true}}"#))
        .collect();
    assert_eq!(got[..3], resent[..], "cached rows are marked");
    assert_eq!(got[3], ids(3, 4)[0], "a new row is not");
}

#[tokio::test(start_paused = true)]
async fn a_full_cache_drops_the_oldest_and_counts_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let up = Arc::new(AtomicBool::new(false));
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let props = serde_json::json!({"enableCache": true, "sendSingle": true, "retryCount": 0,
        "memoryCacheThreshold": 2, "bufferPageSize": 2, "maxDiskCache": 4});
    let n = node(props, tmp.path(), &up, &got);
    for i in 0..20 {
        n.tx.send(row(i)).await.expect("send");
    }
    until("all accounted for", || {
        load(&n.metrics.cached) + load(&n.metrics.records_dropped) == 20
    })
    .await;
    assert!(load(&n.metrics.records_dropped) > 0);
    let kept = load(&n.metrics.cached) as i64;
    up.store(true, Ordering::SeqCst);
    until("the rest resent", || got.lock().len() == kept as usize).await;
    // The newest survive, in order.
    assert_eq!(*got.lock(), ids(20 - kept, 20));
}

#[tokio::test(start_paused = true)]
async fn a_checkpoint_passes_cached_data_once_it_is_on_disk() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let up = Arc::new(AtomicBool::new(false));
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    // Everything fits in memory: only the checkpoint writes it out.
    let props = serde_json::json!({"enableCache": true, "sendSingle": true, "retryCount": 0});
    let n = node(props, tmp.path(), &up, &got);
    for i in 0..3 {
        n.tx.send(row(i)).await.expect("send");
    }
    until("3 cached", || load(&n.metrics.cached) == 3).await;
    assert_eq!(pages(tmp.path()), 0);
    n.progress.request(3);
    until("checkpoint confirmed", || n.progress.done() == 3).await;
    assert_eq!(pages(tmp.path()), 1, "persisted before the confirmation");
    assert!(got.lock().is_empty());
}
