//! Node tests: batching, linger, checkpoints, what each kind of sink gets, drops.

use super::*;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use oort_core::{Schema, Value};
use parking_lot::Mutex;
use tokio::sync::oneshot;

/// Records every `collect`; `connect` waits for the gate, so a test can
/// queue emissions before the node reads any.
struct Recorder {
    writes: Arc<Mutex<Vec<Vec<SinkItem>>>>,
    gate: Option<oneshot::Receiver<()>>,
    /// Calls that fail with `Unavailable` first.
    down: usize,
}

#[async_trait]
impl Sink for Recorder {
    async fn connect(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        if let Some(g) = self.gate.take() {
            let _ = g.await;
        }
        ctx.conn.connected();
        Ok(())
    }
    async fn collect(
        &mut self,
        _ctx: &SinkContext,
        items: &[SinkItem],
    ) -> Result<(), ConnectorError> {
        // Copies, so the node may reuse its encode buffer (as with real sinks).
        let copies = items
            .iter()
            .map(|it| SinkItem {
                data: it.data.clone(),
                payload: Bytes::copy_from_slice(&it.payload),
            })
            .collect();
        if self.down > 0 {
            self.down -= 1;
            return Err(ConnectorError::unavailable("peer down"));
        }
        self.writes.lock().push(copies);
        Ok(())
    }
}

fn rows(from: i64, n: usize) -> Arc<Vec<Row>> {
    let schema = Arc::new(Schema::from_strs(&["id", "t"]));
    Arc::new(
        (0..n as i64)
            .map(|i| Row::new(schema.clone(), vec![Value::Int(from + i), Value::str("x")]))
            .collect(),
    )
}

struct Node {
    tx: Option<mpsc::Sender<Arc<Vec<Row>>>>,
    gate: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    writes: Arc<Mutex<Vec<Vec<SinkItem>>>>,
    progress: Arc<SinkProgress>,
    metrics: Arc<NodeMetrics>,
}

impl Node {
    fn new(props: serde_json::Value, consumes: Consumes) -> Node {
        Node::with(props, consumes, 0, true)
    }

    fn with(props: serde_json::Value, consumes: Consumes, down: usize, checkpoints: bool) -> Node {
        let props = props.as_object().cloned().unwrap_or_default();
        let (gate_tx, gate_rx) = oneshot::channel();
        let writes = Arc::new(Mutex::new(Vec::new()));
        let progress = Arc::new(SinkProgress::new(Arc::default()));
        let spec = SinkSpec {
            rule_id: "t".into(),
            kind: "rec".into(),
            index: 0,
            sinks: vec![Box::new(Recorder {
                writes: writes.clone(),
                gate: Some(gate_rx),
                down,
            })],
            consumes,
            dynamic_props: false,
            common: SinkCommon::from_props(&props).unwrap(),
            progress: checkpoints.then(|| progress.clone()),
            hold: checkpoints,
            cache_dir: None,
        };
        let (fatal_tx, _) = mpsc::channel(4);
        let n = start(spec, CancellationToken::new(), fatal_tx).unwrap();
        Node {
            tx: Some(n.tx),
            gate: Some(gate_tx),
            task: n.task,
            writes,
            progress,
            metrics: n.metrics,
        }
    }
    async fn send(&self, e: Arc<Vec<Row>>) {
        if let Some(tx) = &self.tx {
            tx.send(e).await.unwrap();
        }
    }
    fn open(&mut self) {
        if let Some(g) = self.gate.take() {
            let _ = g.send(());
        }
    }
    /// Opens the gate, closes the input and waits for the node to end.
    async fn finish(mut self) -> Vec<Vec<SinkItem>> {
        self.open();
        self.tx = None;
        self.task.await.unwrap();
        let w = self.writes.lock().clone();
        w
    }
    fn sizes(&self) -> Vec<usize> {
        self.writes.lock().iter().map(Vec::len).collect()
    }
}

fn sizes(w: &[Vec<SinkItem>]) -> Vec<usize> {
    w.iter().map(Vec::len).collect()
}

fn text(it: &SinkItem) -> String {
    String::from_utf8_lossy(&it.payload).into_owned()
}

/// Waits until the node confirms `n` emissions (or a second passes).
async fn confirmed(node: &Node, n: u64) -> u64 {
    let until = tokio::time::Instant::now() + Duration::from_secs(1);
    while node.progress.done() < n && tokio::time::Instant::now() < until {
        let _ =
            tokio::time::timeout(Duration::from_millis(20), node.progress.rule.notified()).await;
    }
    node.progress.done()
}

#[tokio::test]
async fn a_confirmation_request_writes_the_partial_batch_it_waits_for() {
    let mut node = Node::new(
        serde_json::json!({"batchSize": 3, "sendSingle": true}),
        Consumes::Payload,
    );
    node.open();
    for i in 0..5 {
        node.send(rows(i, 1)).await;
    }
    // Emissions 1..=3 made a batch; 4 and 5 wait for one.
    node.progress.request(3);
    assert_eq!(confirmed(&node, 3).await, 3);
    assert_eq!(node.sizes(), vec![3]);
    // A request for them sends them as they are: a source that waits for
    // their acknowledgement may not send the rows that would fill it.
    node.progress.request(5);
    assert_eq!(confirmed(&node, 5).await, 5);
    assert_eq!(node.sizes(), vec![3, 2]);
    node.send(rows(5, 1)).await;
    // Without a request the next batch fills as usual.
    assert_eq!(confirmed(&node, 6).await, 5, "row 6 waits for a batch");
    assert_eq!(sizes(&node.finish().await), vec![3, 2, 1]);
}

#[tokio::test]
async fn an_open_request_is_confirmed_as_far_as_written() {
    let mut node = Node::new(serde_json::json!({"sendSingle": true}), Consumes::Payload);
    node.open();
    // The rule asks for more than has reached the node (it keeps sending):
    // what is written is confirmed meanwhile, not only once all of it is.
    node.progress.request(10);
    for i in 0..4 {
        node.send(rows(i, 1)).await;
    }
    assert_eq!(confirmed(&node, 4).await, 4);
    for i in 4..10 {
        node.send(rows(i, 1)).await;
    }
    assert_eq!(confirmed(&node, 10).await, 10);
}

#[tokio::test]
async fn the_end_of_the_input_confirms_everything_written() {
    let node = Node::new(
        serde_json::json!({"batchSize": 3, "sendSingle": true}),
        Consumes::Payload,
    );
    let progress = node.progress.clone();
    for i in 0..4 {
        node.send(rows(i, 1)).await;
    }
    assert_eq!(sizes(&node.finish().await), vec![3, 1]);
    assert_eq!(progress.done(), 4);
}

#[tokio::test]
async fn each_write_gets_exactly_batch_size_rows() {
    let node = Node::new(
        serde_json::json!({"batchSize": 3, "sendSingle": true}),
        Consumes::Payload,
    );
    for i in 0..7 {
        node.send(rows(i, 1)).await;
    }
    node.send(rows(7, 4)).await;
    let w = node.finish().await;
    // The last two rows are written when the input ends.
    assert_eq!(sizes(&w), vec![3, 3, 3, 2]);
    let ids: Vec<String> = w.iter().flatten().map(text).collect();
    let want: Vec<String> = (0..11)
        .map(|i| format!(r#"{{"id":{i},"t":"x"}}"#))
        .collect();
    assert_eq!(ids, want);
}

#[tokio::test]
async fn a_batch_without_send_single_is_one_array_message() {
    let node = Node::new(serde_json::json!({"batchSize": 2}), Consumes::Both);
    for i in 0..5 {
        node.send(rows(i, 1)).await;
    }
    let w = node.finish().await;
    assert_eq!(sizes(&w), vec![1, 1, 1]);
    assert_eq!(text(&w[0][0]), r#"[{"id":0,"t":"x"},{"id":1,"t":"x"}]"#);
    assert_eq!(text(&w[2][0]), r#"[{"id":4,"t":"x"}]"#);
    assert!(matches!(&w[0][0].data, Value::Array(a) if a.len() == 2));
}

#[tokio::test]
async fn linger_writes_what_accumulated() {
    for props in [
        serde_json::json!({"batchSize": 100, "lingerInterval": 40, "sendSingle": true}),
        serde_json::json!({"lingerInterval": "40ms", "sendSingle": true}),
    ] {
        let mut node = Node::new(props.clone(), Consumes::Payload);
        node.open();
        for i in 0..3 {
            node.send(rows(i, 1)).await;
        }
        let t = std::time::Instant::now();
        while node.sizes().is_empty() && t.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(node.sizes(), vec![3], "{props}");
        node.send(rows(3, 2)).await;
        let t = std::time::Instant::now();
        while node.sizes().len() < 2 && t.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(node.sizes(), vec![3, 2], "{props}");
        assert_eq!(sizes(&node.finish().await), vec![3, 2], "{props}");
    }
}

#[tokio::test]
async fn unbatched_writes_take_what_is_queued_up_to_a_cap() {
    let node = Node::new(serde_json::json!({}), Consumes::Both);
    for i in 0..5 {
        node.send(rows(i, 1)).await;
    }
    assert_eq!(sizes(&node.finish().await), vec![5]);

    let node = Node::new(serde_json::json!({"sendSingle": true}), Consumes::Payload);
    node.send(rows(0, 400)).await;
    node.send(rows(400, 400)).await;
    let w = node.finish().await;
    assert_eq!(sizes(&w), vec![MAX_UNBATCHED, 800 - MAX_UNBATCHED]);
    assert_eq!(
        text(&w[1][0]),
        format!(r#"{{"id":{MAX_UNBATCHED},"t":"x"}}"#)
    );
}

#[tokio::test]
async fn payload_only_sinks_get_the_same_bytes_without_data() {
    for props in [
        serde_json::json!({"sendSingle": true, "batchSize": 2}),
        serde_json::json!({"batchSize": 3}),
        serde_json::json!({}),
        serde_json::json!({"sendSingle": true, "fields": ["t"]}),
        serde_json::json!({"format": "delimited", "sendSingle": true}),
    ] {
        let mut got = Vec::new();
        for consumes in [Consumes::Both, Consumes::Payload] {
            let node = Node::new(props.clone(), consumes);
            node.send(rows(0, 1)).await;
            node.send(rows(1, 3)).await;
            let w = node.finish().await;
            for it in w.iter().flatten() {
                assert_eq!(it.data.is_null(), consumes == Consumes::Payload, "{props}");
            }
            got.push(w.iter().flatten().map(text).collect::<Vec<_>>());
        }
        assert_eq!(got[0], got[1], "{props}");
        assert!(!got[0].is_empty());
    }
}

#[tokio::test]
async fn an_undelivered_batch_is_counted_dropped_not_written() {
    // Down for the first try and both retries: the first batch is dropped.
    let node = Node::with(
        serde_json::json!({"batchSize": 2, "retryCount": 2, "retryInterval": 1}),
        Consumes::Payload,
        3,
        false,
    );
    let metrics_of = node.metrics.clone();
    for i in 0..4 {
        node.send(rows(i, 1)).await;
    }
    let w = node.finish().await;
    assert_eq!(sizes(&w), vec![1], "the second batch is written");
    use std::sync::atomic::Ordering;
    assert_eq!(metrics_of.records_dropped.load(Ordering::Relaxed), 1);
    assert_eq!(metrics_of.records_out.load(Ordering::Relaxed), 1);
    assert!(metrics_of.exceptions.load(Ordering::Relaxed) >= 3);
}

#[tokio::test]
async fn with_checkpoints_an_unavailable_batch_is_retried_not_dropped() {
    let mut node = Node::with(
        serde_json::json!({"sendSingle": true, "retryCount": 0, "retryInterval": 1}),
        Consumes::Payload,
        5,
        true,
    );
    let metrics_of = node.metrics.clone();
    node.open();
    node.send(rows(0, 2)).await;
    node.progress.request(1);
    assert_eq!(confirmed(&node, 1).await, 1);
    let w = node.finish().await;
    assert_eq!(sizes(&w), vec![2]);
    use std::sync::atomic::Ordering;
    assert_eq!(metrics_of.records_dropped.load(Ordering::Relaxed), 0);
    assert_eq!(metrics_of.records_out.load(Ordering::Relaxed), 2);
}

/// Its `collect` returns only once `n` collects run at the same time.
struct Together {
    barrier: Arc<tokio::sync::Barrier>,
    rows: Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait]
impl Sink for Together {
    async fn connect(&mut self, _: &SinkContext) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn collect(&mut self, _: &SinkContext, items: &[SinkItem]) -> Result<(), ConnectorError> {
        self.barrier.wait().await;
        self.rows
            .fetch_add(items.len(), std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

#[tokio::test]
async fn concurrency_runs_that_many_writers_at_once() {
    let barrier = Arc::new(tokio::sync::Barrier::new(3));
    let rows_done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let props = serde_json::json!({"concurrency": 3, "batchSize": 1, "sendSingle": true});
    let spec = SinkSpec {
        rule_id: "t".into(),
        kind: "rec".into(),
        index: 0,
        sinks: (0..3)
            .map(|_| {
                Box::new(Together {
                    barrier: barrier.clone(),
                    rows: rows_done.clone(),
                }) as Box<dyn Sink>
            })
            .collect(),
        consumes: Consumes::Payload,
        dynamic_props: false,
        common: SinkCommon::from_props(props.as_object().unwrap()).unwrap(),
        progress: None,
        hold: false,
        cache_dir: None,
    };
    let (fatal_tx, _) = mpsc::channel(4);
    let n = start(spec, CancellationToken::new(), fatal_tx).unwrap();
    for i in 0..6 {
        n.tx.send(rows(i, 1)).await.unwrap();
    }
    drop(n.tx);
    // With fewer than three writers in parallel the barrier never opens.
    tokio::time::timeout(Duration::from_secs(10), n.task)
        .await
        .expect("three writers ran at once")
        .unwrap();
    assert_eq!(rows_done.load(std::sync::atomic::Ordering::Relaxed), 6);
    assert_eq!(
        n.metrics
            .records_out
            .load(std::sync::atomic::Ordering::Relaxed),
        6
    );
}

#[tokio::test]
async fn a_row_whose_template_fails_is_counted_dropped() {
    // `index` past the end fails at run time for odd ids only.
    let node = Node::new(
        serde_json::json!({"sendSingle": true,
            "dataTemplate": "{{if eq .id 1 3}}{{index .t 9}}{{else}}ok{{end}}"}),
        Consumes::Payload,
    );
    let metrics_of = node.metrics.clone();
    node.send(rows(0, 4)).await;
    let w = node.finish().await;
    let sent: Vec<String> = w.iter().flatten().map(text).collect();
    assert_eq!(sent, vec!["ok", "ok"]);
    use std::sync::atomic::Ordering;
    assert_eq!(metrics_of.records_dropped.load(Ordering::Relaxed), 2);
    assert_eq!(metrics_of.records_out.load(Ordering::Relaxed), 2);
}

/// A pipelined sink whose batches settle only once the test releases
/// their ticket; `sent` counts the batches handed to it.
struct Held {
    sent: tokio::sync::watch::Sender<u64>,
    released: tokio::sync::watch::Receiver<u64>,
}

#[async_trait]
impl Sink for Held {
    async fn connect(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        ctx.conn.connected();
        Ok(())
    }
    async fn collect(
        &mut self,
        ctx: &SinkContext,
        items: &[SinkItem],
    ) -> Result<(), ConnectorError> {
        let t = self.send(ctx, items).await?;
        self.settle(ctx, t).await
    }
    fn pipelined(&self) -> bool {
        true
    }
    async fn send(&mut self, _: &SinkContext, _: &[SinkItem]) -> Result<u64, ConnectorError> {
        let mut t = 0;
        self.sent.send_modify(|n| {
            *n += 1;
            t = *n;
        });
        Ok(t)
    }
    async fn settle(&mut self, _: &SinkContext, ticket: u64) -> Result<(), ConnectorError> {
        // Cancel-safe: waiting on a watch changes nothing.
        let _ = self.released.wait_for(|r| *r >= ticket).await;
        Ok(())
    }
}

#[tokio::test]
async fn an_unsettled_batch_does_not_hold_up_the_next_input() {
    use std::sync::atomic::Ordering;
    let (sent_tx, mut sent) = tokio::sync::watch::channel(0u64);
    let (release, released) = tokio::sync::watch::channel(0u64);
    let props = serde_json::json!({"sendSingle": true});
    let spec = SinkSpec {
        rule_id: "t".into(),
        kind: "held".into(),
        index: 0,
        sinks: vec![Box::new(Held {
            sent: sent_tx,
            released,
        })],
        consumes: Consumes::Payload,
        dynamic_props: false,
        common: SinkCommon::from_props(props.as_object().unwrap()).unwrap(),
        progress: None,
        hold: false,
        cache_dir: None,
    };
    let (fatal_tx, _) = mpsc::channel(4);
    let n = start(spec, CancellationToken::new(), fatal_tx).unwrap();
    let wait = Duration::from_secs(10);
    n.tx.send(rows(0, 1)).await.unwrap();
    tokio::time::timeout(wait, sent.wait_for(|s| *s >= 1))
        .await
        .expect("first batch handed over")
        .unwrap();
    // The node is idle with batch 1 unsettled: the next input still goes
    // out at once (it used to wait for batch 1 first).
    n.tx.send(rows(1, 1)).await.unwrap();
    tokio::time::timeout(wait, sent.wait_for(|s| *s >= 2))
        .await
        .expect("second batch handed over while the first is unsettled")
        .unwrap();
    assert_eq!(n.metrics.records_out.load(Ordering::Relaxed), 0);
    // Released while no input comes: both count as written.
    release.send_replace(2);
    let until = tokio::time::Instant::now() + wait;
    while n.metrics.records_out.load(Ordering::Relaxed) < 2 {
        assert!(
            tokio::time::Instant::now() < until,
            "settled batches not counted"
        );
        tokio::task::yield_now().await;
    }
    drop(n.tx);
    tokio::time::timeout(wait, n.task).await.unwrap().unwrap();
    assert_eq!(n.metrics.records_out.load(Ordering::Relaxed), 2);
}

/// A pipelined sink recording the batch sizes of each hand-off
/// ([`Sink::send_many`]); every batch settles at once.
struct Handoffs {
    calls: Arc<Mutex<Vec<Vec<usize>>>>,
    next: u64,
}

#[async_trait]
impl Sink for Handoffs {
    async fn connect(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        ctx.conn.connected();
        Ok(())
    }
    async fn collect(
        &mut self,
        ctx: &SinkContext,
        items: &[SinkItem],
    ) -> Result<(), ConnectorError> {
        let t = self.send(ctx, items).await?;
        self.settle(ctx, t).await
    }
    fn pipelined(&self) -> bool {
        true
    }
    fn pipeline_depth(&self) -> usize {
        8
    }
    async fn send(&mut self, ctx: &SinkContext, items: &[SinkItem]) -> Result<u64, ConnectorError> {
        let mut t = Vec::new();
        self.send_many(ctx, items, &[items.len()], &mut t).await?;
        Ok(t[0])
    }
    async fn send_many(
        &mut self,
        _: &SinkContext,
        _: &[SinkItem],
        ends: &[usize],
        tickets: &mut Vec<u64>,
    ) -> Result<(), ConnectorError> {
        let mut from = 0;
        let sizes = ends
            .iter()
            .map(|&e| {
                let n = e - from;
                from = e;
                n
            })
            .collect();
        self.calls.lock().push(sizes);
        for _ in ends {
            self.next += 1;
            tickets.push(self.next);
        }
        Ok(())
    }
}

#[tokio::test]
async fn the_full_batches_of_a_pass_reach_a_pipelined_sink_in_few_hand_offs() {
    use std::sync::atomic::Ordering;
    let calls = Arc::new(Mutex::new(Vec::new()));
    let props = serde_json::json!({"sendSingle": true, "batchSize": 2});
    let spec = SinkSpec {
        rule_id: "t".into(),
        kind: "handoffs".into(),
        index: 0,
        sinks: vec![Box::new(Handoffs {
            calls: calls.clone(),
            next: 0,
        })],
        consumes: Consumes::Payload,
        dynamic_props: false,
        common: SinkCommon::from_props(props.as_object().unwrap()).unwrap(),
        progress: None,
        hold: false,
        cache_dir: None,
    };
    let (fatal_tx, _) = mpsc::channel(4);
    let n = start(spec, CancellationToken::new(), fatal_tx).unwrap();
    // 21 rows in one emission: ten batches of 2, handed off four at a time
    // (half the pipeline depth of 8); the odd row waits and goes out alone
    // when the input ends.
    n.tx.send(rows(0, 21)).await.unwrap();
    drop(n.tx);
    tokio::time::timeout(Duration::from_secs(10), n.task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        *calls.lock(),
        vec![vec![2, 2, 2, 2], vec![2, 2, 2, 2], vec![2, 2], vec![1]]
    );
    assert_eq!(n.metrics.records_out.load(Ordering::Relaxed), 21);
}

#[tokio::test]
async fn a_row_that_fails_its_template_leaves_its_batch_short_not_shifted() {
    // Batches of 2 over ids 0..6; the template fails for ids 1 and 3.
    let node = Node::new(
        serde_json::json!({"sendSingle": true, "batchSize": 2,
            "dataTemplate": "{{if eq .id 1 3}}{{index .t 9}}{{else}}{{.id}}{{end}}"}),
        Consumes::Payload,
    );
    let metrics_of = node.metrics.clone();
    node.send(rows(0, 6)).await;
    let w = node.finish().await;
    let sent: Vec<Vec<String>> = w.iter().map(|b| b.iter().map(text).collect()).collect();
    assert_eq!(sent, vec![vec!["0"], vec!["2"], vec!["4", "5"]]);
    use std::sync::atomic::Ordering;
    assert_eq!(metrics_of.records_dropped.load(Ordering::Relaxed), 2);
    assert_eq!(metrics_of.records_out.load(Ordering::Relaxed), 4);
}
