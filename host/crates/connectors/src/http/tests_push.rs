//! The `httppush` source and its shared data server.

use oort_core::{ConnectorEnv, Props, SourceContext, SourceFactory, SourceMsg};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::push::listening;
use super::HttpPushSourceFactory;

/// A context whose data server takes a free port.
fn env() -> ConnectorEnv {
    ConnectorEnv::builder()
        .setting("source.httpServerIp", "127.0.0.1")
        .setting("source.httpServerPort", "0")
        .build()
}

struct Running {
    rx: mpsc::Receiver<SourceMsg>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), oort_core::ConnectorError>>,
}

async fn start(env: &ConnectorEnv, path: &str, p: serde_json::Value) -> Running {
    let props: Props = p.as_object().cloned().unwrap();
    let mut src = HttpPushSourceFactory.create(env, path, &props).unwrap();
    let (tx, rx) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let ctx = SourceContext::new("s", cancel.clone(), tx);
    let conn = ctx.conn.clone();
    let task = tokio::spawn(async move { src.run(ctx).await });
    while conn.snapshot().status != oort_core::ConnStatus::Connected {
        tokio::task::yield_now().await;
    }
    Running { rx, cancel, task }
}

async fn body(r: &mut Running) -> Vec<u8> {
    match r.rx.recv().await {
        Some(SourceMsg::Bytes { payload, .. }) => payload.to_vec(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_reach_every_stream_on_their_path() {
    let env = env();
    let mut a = start(&env, "/dev", serde_json::json!({})).await;
    let mut b = start(&env, "/dev", serde_json::json!({"method": "post"})).await;
    let mut c = start(&env, "/put", serde_json::json!({"method": "PUT"})).await;
    let addr = listening(&env).expect("listening");
    let http = reqwest::Client::new();
    let r = http
        .post(format!("http://{addr}/dev"))
        .body(r#"{"t":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(body(&mut a).await, br#"{"t":1}"#);
    assert_eq!(body(&mut b).await, br#"{"t":1}"#);
    let r = http
        .put(format!("http://{addr}/put"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(body(&mut c).await, b"x");
    let code = |u: &str, m: reqwest::Method| {
        let http = http.clone();
        let u = format!("http://{addr}{u}");
        async move { http.request(m, u).body("{}").send().await.unwrap().status() }
    };
    assert_eq!(code("/nope", reqwest::Method::POST).await, 404);
    assert_eq!(code("/dev", reqwest::Method::PUT).await, 405);
    // A body past the limit gets 413 every time: the server reads and
    // discards the rest of it before it closes (no reset hides the answer).
    let big = bytes::Bytes::from(vec![b'x'; 17 * 1024 * 1024]);
    for _ in 0..3 {
        let r = http
            .post(format!("http://{addr}/dev"))
            .body(big.clone())
            .send()
            .await
            .expect("the 413, not a connection reset");
        assert_eq!(r.status(), 413);
        assert_eq!(r.headers()["connection"], "close");
    }
    // A client that waits for `100 Continue` before it uploads is refused
    // first when the path is unknown or the declared length too large, and
    // told to go on otherwise.
    for (path, len, want) in [
        ("/nope", 10, "HTTP/1.1 404 Not Found\r\n"),
        (
            "/dev",
            17 * 1024 * 1024,
            "HTTP/1.1 413 Payload Too Large\r\n",
        ),
        ("/dev", 10, "HTTP/1.1 100 Continue\r\n"),
    ] {
        let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\nExpect: 100-continue\r\n\r\n"
        );
        raw.write_all(head.as_bytes()).await.unwrap();
        assert_eq!(
            crate::linger::status_line(&mut raw).await,
            want,
            "{path} {len}"
        );
    }
    // A chunked body has no declared length: it is cut at the limit.
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    raw.write_all(b"POST /dev HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = [
        format!("{:x}\r\n", 1 << 20).into_bytes(),
        vec![b'x'; 1 << 20],
        b"\r\n".to_vec(),
    ]
    .concat();
    for _ in 0..17 {
        raw.write_all(&chunk).await.unwrap();
    }
    raw.write_all(b"0\r\n\r\n").await.unwrap();
    assert_eq!(
        crate::linger::status_line(&mut raw).await,
        "HTTP/1.1 413 Payload Too Large\r\n"
    );

    // The server stops with its last stream, and frees the port.
    for r in [a, b, c] {
        r.cancel.cancel();
        r.task.await.unwrap().unwrap();
    }
    assert!(listening(&env).is_none());
}

#[test]
fn bad_properties_are_refused() {
    let env = env();
    for (ds, v, needle) in [
        ("dev", serde_json::json!({}), "DATASOURCE"),
        ("/dev?x=1", serde_json::json!({}), "DATASOURCE"),
        ("/dev", serde_json::json!({"method": "GET"}), "method"),
        (
            "/dev",
            serde_json::json!({"bufferLength": "x"}),
            "bufferLength",
        ),
    ] {
        let p: Props = v.as_object().cloned().unwrap();
        match HttpPushSourceFactory.create(&env, ds, &p) {
            Err(e) => assert!(e.to_string().contains(needle), "{ds} {v}: {e}"),
            Ok(_) => panic!("{ds} {v}: accepted"),
        }
    }
}

/// A context whose data server takes a free port and speaks HTTPS with the
/// test CA's `localhost` certificate in `dir`.
fn tls_env(dir: &std::path::Path) -> ConnectorEnv {
    ConnectorEnv::builder()
        .setting("source.httpServerIp", "127.0.0.1")
        .setting("source.httpServerPort", "0")
        .setting(
            "source.httpServerTls.certfile",
            &dir.join("server.pem").display().to_string(),
        )
        .setting(
            "source.httpServerTls.keyfile",
            &dir.join("server.key").display().to_string(),
        )
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_server_speaks_https_with_source_http_server_tls() {
    let dir = tempfile::tempdir().unwrap();
    crate::mqtt::tests_wire::certificates(dir.path());
    let env = tls_env(dir.path());
    let mut a = start(&env, "/secure", serde_json::json!({})).await;
    let port = listening(&env).expect("listening").port();
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(dir.path().join("ca.pem")).unwrap()).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let r = https
        .post(format!("https://localhost:{port}/secure"))
        .body(r#"{"tls":true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(body(&mut a).await, br#"{"tls":true}"#);
    // Plain HTTP gets no answer; the server goes on serving HTTPS.
    assert!(reqwest::Client::new()
        .post(format!("http://localhost:{port}/secure"))
        .body("x")
        .send()
        .await
        .is_err());
    let r = https
        .post(format!("https://localhost:{port}/secure"))
        .body("2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(body(&mut a).await, b"2");
    a.cancel.cancel();
    a.task.await.unwrap().unwrap();

    // Only one of the two files: refused when the stream starts.
    let half = ConnectorEnv::builder()
        .setting("source.httpServerIp", "127.0.0.1")
        .setting("source.httpServerPort", "0")
        .setting("source.httpServerTls.certfile", "/x.pem")
        .build();
    let mut src = HttpPushSourceFactory
        .create(&half, "/p", &Props::new())
        .unwrap();
    let (tx, _rx) = mpsc::channel(1);
    let e = src
        .run(SourceContext::new("s", CancellationToken::new(), tx))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("keyfile"), "{e}");
}

/// The `rest` sink over HTTPS with `rootCaPath` (the connectors' one TLS
/// configuration), against the TLS data server; a wrong CA is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_sink_checks_the_server_certificate_with_root_ca_path() {
    use oort_core::{SinkContext, SinkFactory, SinkItem};
    let dir = tempfile::tempdir().unwrap();
    crate::mqtt::tests_wire::certificates(dir.path());
    let env = tls_env(dir.path());
    let mut a = start(&env, "/in", serde_json::json!({})).await;
    let port = listening(&env).expect("listening").port();
    let ctx = SinkContext::new("r", CancellationToken::new());
    let item = SinkItem {
        data: oort_core::Value::Null,
        payload: bytes::Bytes::from_static(br#"{"a":1}"#),
    };
    let sink = |ca: &str| {
        let p: Props = serde_json::json!({"url": format!("https://localhost:{port}/in"),
            "rootCaPath": dir.path().join(ca), "method": "post", "sendSingle": true})
        .as_object()
        .cloned()
        .unwrap();
        super::RestSinkFactory
            .create(&ConnectorEnv::default(), &p)
            .unwrap()
    };
    let mut good = sink("ca.pem");
    good.connect(&ctx).await.unwrap();
    good.collect(&ctx, std::slice::from_ref(&item))
        .await
        .unwrap();
    assert_eq!(body(&mut a).await, br#"{"a":1}"#);
    let mut wrong = sink("client.pem");
    wrong.connect(&ctx).await.unwrap();
    let e = wrong.collect(&ctx, &[item]).await.unwrap_err();
    assert!(
        matches!(e, oort_core::ConnectorError::Unavailable(_)),
        "{e}"
    );
}
