//! The `rest` sink against a local HTTP server started by each test.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes as Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::any;
use axum::Router;
use bytes::Bytes;
use oort_core::codec::json::decode_value;
use oort_core::{
    Clock, ConnectorEnv, ConnectorError, Props, Sink, SinkContext, SinkFactory, SinkItem,
};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::RestSinkFactory;

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Default)]
struct Peer {
    seen: Mutex<Vec<Seen>>,
    /// Answer 503 to the request with this number (1-based), once.
    fail_at: AtomicUsize,
    count: AtomicUsize,
    tokens: AtomicUsize,
}

async fn handle(
    State(p): State<Arc<Peer>>,
    method: Method,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> (StatusCode, String) {
    if path == "token" || path == "refresh" {
        let n = p.tokens.fetch_add(1, Ordering::SeqCst) + 1;
        return (
            StatusCode::OK,
            format!(r#"{{"token":"t{n}","via":"{path}"}}"#),
        );
    }
    let n = p.count.fetch_add(1, Ordering::SeqCst) + 1;
    p.seen.lock().push(Seen {
        method: method.to_string(),
        path: path.clone(),
        headers,
        body,
    });
    if p.fail_at.load(Ordering::SeqCst) == n {
        p.fail_at.store(0, Ordering::SeqCst);
        return (StatusCode::SERVICE_UNAVAILABLE, "busy".into());
    }
    match path.as_str() {
        "bad" => (StatusCode::BAD_REQUEST, "no such device".into()),
        "big" => (StatusCode::OK, "x".repeat(4096)),
        "code" => (
            StatusCode::OK,
            r#"{"code":500,"message":"rejected"}"#.into(),
        ),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            (StatusCode::OK, String::new())
        }
        _ => (StatusCode::OK, r#"{"code":200}"#.into()),
    }
}

async fn peer() -> (String, Arc<Peer>) {
    let p = Arc::new(Peer::default());
    let app = Router::new()
        .route("/{*path}", any(handle))
        .with_state(p.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    (format!("http://{addr}"), p)
}

fn props(v: serde_json::Value) -> Props {
    v.as_object().cloned().unwrap()
}

fn item(row: &str) -> SinkItem {
    SinkItem {
        data: decode_value(row.as_bytes()).unwrap(),
        payload: Bytes::from(row.to_string()),
    }
}

fn ctx() -> SinkContext {
    SinkContext::new("r", CancellationToken::new())
}

async fn sink(env: &ConnectorEnv, p: serde_json::Value) -> Box<dyn Sink> {
    let mut s = RestSinkFactory.create(env, &props(p)).unwrap();
    s.connect(&ctx()).await.unwrap();
    s
}

#[tokio::test]
async fn posts_each_item_with_templated_url_and_headers() {
    let (base, p) = peer().await;
    let mut s = sink(
        &ConnectorEnv::default(),
        serde_json::json!({"url": format!("{base}/dev/{{{{.id}}}}"), "method": "post",
            "headers": {"X-Dev": "d-{{.id}}", "X-Fixed": "1"}, "sendSingle": true}),
    )
    .await;
    s.collect(&ctx(), &[item(r#"{"id":1,"t":2.5}"#), item(r#"{"id":7}"#)])
        .await
        .unwrap();
    let seen = p.seen.lock().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("POST", "dev/1")
    );
    assert_eq!(seen[1].path, "dev/7");
    assert_eq!(&seen[0].body[..], br#"{"id":1,"t":2.5}"#);
    assert_eq!(seen[0].headers["content-type"], "application/json");
    assert_eq!(seen[1].headers["x-dev"], "d-7");
    assert_eq!(seen[1].headers["x-fixed"], "1");
}

#[tokio::test]
async fn server_errors_are_retried_without_resending_what_was_delivered() {
    let (base, p) = peer().await;
    let mut s = sink(
        &ConnectorEnv::default(),
        serde_json::json!({"url": format!("{base}/in"), "method": "POST"}),
    )
    .await;
    p.fail_at.store(2, Ordering::SeqCst);
    let batch = [item(r#"{"n":1}"#), item(r#"{"n":2}"#), item(r#"{"n":3}"#)];
    let e = s.collect(&ctx(), &batch).await.unwrap_err();
    assert!(
        matches!(&e, ConnectorError::Unavailable(m) if m.contains("503")),
        "{e:?}"
    );
    // The runtime retries the same batch: item 1 is not sent again.
    s.collect(&ctx(), &batch).await.unwrap();
    let bodies: Vec<Bytes> = p.seen.lock().iter().map(|r| r.body.clone()).collect();
    assert_eq!(
        bodies,
        [r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":2}"#, r#"{"n":3}"#]
            .map(|b| Bytes::from(b.to_string()))
    );
}

#[tokio::test]
async fn refused_items_fail_alone_and_body_codes_are_checked() {
    let (base, p) = peer().await;
    let env = ConnectorEnv::default();
    let mut s = sink(
        &env,
        serde_json::json!({"url": format!("{base}/{{{{.to}}}}"), "method": "PUT"}),
    )
    .await;
    let e = s
        .collect(&ctx(), &[item(r#"{"to":"bad"}"#), item(r#"{"to":"ok"}"#)])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ConnectorError::InvalidData(m) if m.contains("400") && m.contains("no such device")),
        "{e:?}"
    );
    assert_eq!(p.seen.lock().len(), 2, "the second item was still sent");

    let mut s = sink(
        &env,
        serde_json::json!({"url": format!("{base}/code"), "method": "POST", "responseType": "body"}),
    )
    .await;
    let e = s.collect(&ctx(), &[item("{}")]).await.unwrap_err();
    assert!(
        matches!(&e, ConnectorError::InvalidData(m) if m.contains("500")),
        "{e:?}"
    );
    // With responseType code the same answer is a success.
    let mut s = sink(
        &env,
        serde_json::json!({"url": format!("{base}/code"), "method": "POST"}),
    )
    .await;
    s.collect(&ctx(), &[item("{}")]).await.unwrap();
}

#[tokio::test]
async fn unreachable_and_slow_peers_are_unavailable() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = l.local_addr().unwrap();
    drop(l);
    let env = ConnectorEnv::default();
    let mut s = sink(
        &env,
        serde_json::json!({"url": format!("http://{closed}/x"), "method": "POST"}),
    )
    .await;
    let e = s.collect(&ctx(), &[item("{}")]).await.unwrap_err();
    assert!(
        matches!(&e, ConnectorError::Unavailable(m) if m.contains("cannot connect")),
        "{e:?}"
    );
    let (base, _p) = peer().await;
    let mut s = sink(
        &env,
        serde_json::json!({"url": format!("{base}/slow"), "method": "POST", "timeout": 200}),
    )
    .await;
    let e = s.collect(&ctx(), &[item("{}")]).await.unwrap_err();
    assert!(
        matches!(&e, ConnectorError::Unavailable(m) if m.contains("timed out")),
        "{e:?}"
    );
}

#[tokio::test]
async fn formdata_text_bodies_and_content_encoding() {
    let (base, p) = peer().await;
    let env = ConnectorEnv::default();
    let mut s = sink(
        &env,
        serde_json::json!({"url": format!("{base}/up"), "method": "POST", "bodyType": "formdata",
            "fileFieldName": "data", "formData": {"device": "{{.id}}", "k": "v"}}),
    )
    .await;
    s.collect(&ctx(), &[item(r#"{"id":"d1"}"#)]).await.unwrap();
    let r = p.seen.lock()[0].clone();
    let ct = r.headers["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("multipart/form-data; boundary="), "{ct}");
    let body = String::from_utf8(r.body.to_vec()).unwrap();
    assert!(
        body.contains("name=\"data\"; filename=") && body.contains(r#"{"id":"d1"}"#),
        "{body}"
    );
    assert!(body.contains("name=\"device\"\r\n\r\nd1\r\n"), "{body}");
    assert!(body.contains("name=\"k\"\r\n\r\nv\r\n"), "{body}");

    let mut s = sink(
        &env,
        serde_json::json!({"url": format!("{base}/t"), "method": "POST", "bodyType": "text",
            "compression": "gzip", "headers": {"Content-Type": "text/csv"}}),
    )
    .await;
    let csv = SinkItem {
        data: oort_core::Value::Null,
        payload: Bytes::from_static(b"a,b"),
    };
    s.collect(&ctx(), &[csv]).await.unwrap();
    let r = p.seen.lock()[1].clone();
    assert_eq!(r.headers["content-encoding"], "gzip");
    assert_eq!(
        r.headers["content-type"], "text/csv",
        "a header overrides bodyType's"
    );
}

struct Manual(AtomicI64);

impl Clock for Manual {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn oauth_token_in_headers_refreshed_at_half_life() {
    let (base, p) = peer().await;
    let clock = Arc::new(Manual(AtomicI64::new(1_000_000)));
    let env = ConnectorEnv::builder().clock(clock.clone()).build();
    let mut s = sink(
        &env,
        serde_json::json!({"url": format!("{base}/data"), "method": "POST",
            "headers": {"Authorization": "Bearer {{.token}}"},
            "oAuth": {"access": {"url": format!("{base}/token"), "body": "{}", "expire": "10"},
                      "refresh": {"url": format!("{base}/refresh"), "body": "{\"t\":\"{{.token}}\"}"}}}),
    )
    .await;
    s.collect(&ctx(), &[item("{}")]).await.unwrap();
    clock.0.fetch_add(4_000, Ordering::SeqCst);
    s.collect(&ctx(), &[item("{}")]).await.unwrap();
    // Past half of the 10 s life: refreshed before the next request.
    clock.0.fetch_add(2_000, Ordering::SeqCst);
    s.collect(&ctx(), &[item("{}")]).await.unwrap();
    let auth: Vec<String> = p
        .seen
        .lock()
        .iter()
        .map(|r| r.headers["authorization"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(auth, ["Bearer t1", "Bearer t1", "Bearer t2"]);
}

#[test]
fn bad_properties_are_refused_naming_them() {
    let env = ConnectorEnv::default();
    for (v, needle) in [
        (serde_json::json!({}), "url"),
        (
            serde_json::json!({"url": "http://h", "method": "post", "format": "delimited"}),
            "format",
        ),
        (
            serde_json::json!({"url": "http://h", "method": "post", "bodyType": "form"}),
            "format must be urlencoded",
        ),
        (
            serde_json::json!({"url": "http://h", "formData": {"a": "b"}}),
            "formData",
        ),
        (
            serde_json::json!({"url": "http://h", "method": "post", "fileFieldName": "f"}),
            "fileFieldName",
        ),
        (
            serde_json::json!({"url": "http://h", "resendDestination": "mqtt://x"}),
            "resendDestination",
        ),
    ] {
        match RestSinkFactory.create(&env, &props(v.clone())) {
            Err(ConnectorError::Config(m)) => assert!(m.contains(needle), "{v}: {m}"),
            Err(e) => panic!("{v}: {e:?}"),
            Ok(_) => panic!("{v}: accepted"),
        }
    }
}

#[tokio::test]
async fn response_bodies_are_bounded() {
    let (base, _p) = peer().await;
    let read = |limit: usize| {
        let url = format!("{base}/big");
        async move {
            let resp = reqwest::Client::new().get(&url).send().await.unwrap();
            super::client::check_response(
                "rest",
                "GET",
                &url,
                super::client::ResponseCheck::Code,
                resp,
                limit,
            )
            .await
        }
    };
    assert_eq!(read(4096).await.unwrap().len(), 4096);
    let e = read(1024).await.unwrap_err();
    assert!(
        matches!(&e, ConnectorError::InvalidData(m) if m.contains("larger than 1024")),
        "{e:?}"
    );
}
