//! The `httppull` source against a local HTTP server started by each test.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use oort_core::{ConnStatus, ConnectorEnv, Props, SourceContext, SourceFactory, SourceMsg};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::HttpPullSourceFactory;

#[derive(Default)]
struct Peer {
    queries: Mutex<Vec<String>>,
    n: AtomicUsize,
}

async fn handle(
    State(p): State<Arc<Peer>>,
    Path(path): Path<String>,
    RawQuery(q): RawQuery,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if path == "gz" {
        let z = oort_core::compression::Compression::Gzip
            .compress(br#"{"z":1}"#)
            .unwrap();
        return ([(axum::http::header::CONTENT_ENCODING, "gzip")], z).into_response();
    }
    answer(&p, &path, q).into_response()
}

fn answer(p: &Peer, path: &str, q: Option<String>) -> (StatusCode, String) {
    let n = p.n.fetch_add(1, Ordering::SeqCst) + 1;
    p.queries.lock().push(q.clone().unwrap_or_default());
    match path {
        // The cursor moves on with each answer.
        "data" => {
            let cursor: i64 = q
                .unwrap_or_default()
                .split('&')
                .find_map(|kv| kv.strip_prefix("cursor="))
                .and_then(|c| c.parse().ok())
                .unwrap_or(-1);
            (
                StatusCode::OK,
                format!(r#"{{"cursor":{},"v":{n}}}"#, cursor + 10),
            )
        }
        "same" => (StatusCode::OK, r#"{"v":1}"#.into()),
        // Down for the second pull only.
        "flaky" if n == 2 => (StatusCode::SERVICE_UNAVAILABLE, "busy".into()),
        _ => (StatusCode::OK, format!(r#"{{"n":{n}}}"#)),
    }
}

async fn peer() -> (String, Arc<Peer>) {
    let p = Arc::new(Peer::default());
    let app = Router::new()
        .route("/{*path}", get(handle))
        .with_state(p.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    (format!("http://{addr}"), p)
}

struct Running {
    rx: mpsc::Receiver<SourceMsg>,
    cancel: CancellationToken,
    conn: oort_core::ConnState,
}

fn start(ds: &str, p: serde_json::Value) -> Running {
    let props: Props = p.as_object().cloned().unwrap();
    let mut src = HttpPullSourceFactory
        .create(&ConnectorEnv::default(), ds, &props)
        .unwrap();
    let (tx, rx) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let ctx = SourceContext::new("s", cancel.clone(), tx);
    let conn = ctx.conn.clone();
    tokio::spawn(async move { src.run(ctx).await });
    Running { rx, cancel, conn }
}

impl Running {
    /// The next message that is not an offset.
    async fn next(&mut self) -> SourceMsg {
        loop {
            match self.rx.recv().await.expect("source ended") {
                SourceMsg::Offset(_) => continue,
                m => return m,
            }
        }
    }

    async fn next_body(&mut self) -> serde_json::Value {
        match self.next().await {
            SourceMsg::Bytes { payload, .. } => serde_json::from_slice(&payload).unwrap(),
            other => panic!("expected a body, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn states_and_pull_times_render_into_the_url() {
    let (base, p) = peer().await;
    let mut s = start(
        "/data?cursor={{.cursor}}&from={{.LastPullTime}}&to={{.PullTime}}",
        serde_json::json!({"url": base, "interval": 20, "states": {"cursor": 0}}),
    );
    assert_eq!(s.next_body().await["cursor"], 10);
    assert_eq!(s.next_body().await["cursor"], 20);
    assert_eq!(s.next_body().await["cursor"], 30);
    s.cancel.cancel();
    let qs = p.queries.lock().clone();
    let field = |q: &str, k: &str| -> i64 {
        q.split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    assert_eq!(field(&qs[0], "cursor"), 0);
    assert_eq!(
        field(&qs[1], "cursor"),
        10,
        "the state took the response's value"
    );
    // Each pull's window starts where the previous one ended.
    assert_eq!(field(&qs[1], "from"), field(&qs[0], "to"));
    assert_eq!(field(&qs[2], "from"), field(&qs[1], "to"));
    assert!(field(&qs[0], "to") - field(&qs[0], "from") >= 19);
}

#[tokio::test]
async fn incremental_skips_unchanged_responses() {
    let (base, p) = peer().await;
    let mut s = start(
        "/same",
        serde_json::json!({"url": base, "interval": 10, "incremental": true}),
    );
    assert_eq!(s.next_body().await["v"], 1);
    // Wait for three more pulls: none of them is emitted.
    while p.n.load(Ordering::SeqCst) < 4 {
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    s.cancel.cancel();
    while let Some(m) = s.rx.recv().await {
        assert!(matches!(m, SourceMsg::Offset(_)), "emitted again: {m:?}");
    }
}

#[tokio::test]
async fn a_failed_pull_is_an_exception_and_the_next_one_recovers() {
    let (base, _p) = peer().await;
    let mut s = start("/flaky", serde_json::json!({"url": base, "interval": 20}));
    assert_eq!(s.next_body().await["n"], 1);
    match s.next().await {
        SourceMsg::Error(m) => assert!(m.contains("503"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.conn.snapshot().status, ConnStatus::Disconnected);
    assert_eq!(s.next_body().await["n"], 3);
    assert_eq!(s.conn.snapshot().status, ConnStatus::Connected);
    s.cancel.cancel();
}

#[test]
fn bad_properties_are_refused_naming_them() {
    let env = ConnectorEnv::default();
    for (v, needle) in [
        (
            serde_json::json!({"url": "http://h", "interval": 0}),
            "interval",
        ),
        (
            serde_json::json!({"url": "http://h", "compression": "lz4"}),
            "compression",
        ),
        (serde_json::json!({"url": "ftp://h"}), "url"),
        (
            serde_json::json!({"url": "http://h", "method": "post", "body": "{{.x"}),
            "body",
        ),
        (
            serde_json::json!({"url": "http://h", "body": "{}"}),
            "bodyType is none",
        ),
    ] {
        let p: Props = v.as_object().cloned().unwrap();
        match HttpPullSourceFactory.create(&env, "", &p) {
            Err(e) => assert!(e.to_string().contains(needle), "{v}: {e}"),
            Ok(_) => panic!("{v}: accepted"),
        }
    }
}

#[tokio::test]
async fn compressed_responses_are_decompressed() {
    let (base, _p) = peer().await;
    let mut s = start(
        "/gz",
        serde_json::json!({"url": base, "interval": 20, "compression": "gzip"}),
    );
    assert_eq!(s.next_body().await["z"], 1);
    s.cancel.cancel();
    // A plain response while compression is set: an exception.
    let mut s = start(
        "/plain",
        serde_json::json!({"url": base, "interval": 20, "compression": "gzip"}),
    );
    match s.next().await {
        SourceMsg::Error(m) => assert!(m.contains("Content-Encoding"), "{m}"),
        other => panic!("{other:?}"),
    }
    s.cancel.cancel();
}
