//! The `websocket` source and sink: server mode on the data server, client
//! mode against it (Oort's own endpoints are the peers).

use bytes::Bytes;
use oort_core::{
    ConnStatus, ConnectorEnv, ConnectorError, Props, SinkContext, SinkFactory, SinkItem,
    SourceContext, SourceFactory, SourceMsg,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::push::listening;
use super::{WebsocketSinkFactory, WebsocketSourceFactory};

fn env() -> ConnectorEnv {
    ConnectorEnv::builder()
        .setting("source.httpServerIp", "127.0.0.1")
        .setting("source.httpServerPort", "0")
        .build()
}

fn props(v: serde_json::Value) -> Props {
    v.as_object().cloned().unwrap()
}

fn item(s: &'static str) -> SinkItem {
    SinkItem {
        data: oort_core::Value::Null,
        payload: Bytes::from_static(s.as_bytes()),
    }
}

async fn source(
    env: &ConnectorEnv,
    ds: &str,
    p: serde_json::Value,
) -> (mpsc::Receiver<SourceMsg>, CancellationToken) {
    let mut src = WebsocketSourceFactory.create(env, ds, &props(p)).unwrap();
    let (tx, rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let ctx = SourceContext::new("s", cancel.clone(), tx);
    let conn = ctx.conn.clone();
    tokio::spawn(async move { src.run(ctx).await });
    while conn.snapshot().status != ConnStatus::Connected {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    (rx, cancel)
}

async fn next(rx: &mut mpsc::Receiver<SourceMsg>) -> Vec<u8> {
    match rx.recv().await {
        Some(SourceMsg::Bytes { payload, .. }) => payload.to_vec(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sink_feeds_a_server_source_and_a_server_sink_a_client_source() {
    let env = env();
    // Oort as the endpoint /in; another Oort sink as a client of it.
    let (mut rx, stop_in) = source(&env, "/in", serde_json::json!({})).await;
    let addr = listening(&env).expect("listening");
    let ctx = SinkContext::new("k", CancellationToken::new());
    let mut client_sink = WebsocketSinkFactory
        .create(
            &ConnectorEnv::default(),
            &props(serde_json::json!({"addr": addr.to_string(), "path": "/in"})),
        )
        .unwrap();
    client_sink.connect(&ctx).await.unwrap();
    client_sink
        .collect(&ctx, &[item(r#"{"a":1}"#), item(r#"{"a":2}"#)])
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, br#"{"a":1}"#);
    assert_eq!(next(&mut rx).await, br#"{"a":2}"#);

    // Oort as the endpoint /out for a sink; a client source reads it.
    let mut server_sink = WebsocketSinkFactory
        .create(&env, &props(serde_json::json!({"path": "/out"})))
        .unwrap();
    server_sink.connect(&ctx).await.unwrap();
    let e = server_sink
        .collect(&ctx, &[item("early")])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ConnectorError::Unavailable(m) if m.contains("no client")),
        "{e:?}"
    );
    let (mut out, stop_out) = source(
        &ConnectorEnv::default(),
        "/out",
        serde_json::json!({"addr": addr.to_string()}),
    )
    .await;
    // The client is connected once the server has it: retry until sent.
    loop {
        match server_sink.collect(&ctx, &[item("hello")]).await {
            Ok(()) => break,
            Err(ConnectorError::Unavailable(_)) => {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(next(&mut out).await, b"hello");
    stop_in.cancel();
    stop_out.cancel();
}

#[test]
fn unsupported_properties_are_refused() {
    for (v, needle) in [
        (serde_json::json!({"scheme": "wss"}), "server endpoint"),
        (
            serde_json::json!({"insecureSkipVerify": true}),
            "server endpoint",
        ),
        (
            serde_json::json!({"addr": "h:1", "rootCaPath": "/x.pem"}),
            "scheme wss",
        ),
        (
            serde_json::json!({"addr": "h:1", "scheme": "wss", "certificationPath": "/c.pem"}),
            "privateKeyPath",
        ),
        (
            serde_json::json!({"addr": "h:1", "scheme": "wsx"}),
            "scheme",
        ),
        (
            serde_json::json!({"checkConnection": true}),
            "checkConnection",
        ),
        (serde_json::json!({"path": "nope"}), "path"),
    ] {
        match WebsocketSinkFactory.create(&env(), &props(v.clone())) {
            Err(ConnectorError::Config(m)) => assert!(m.contains(needle), "{v}: {m}"),
            Err(e) => panic!("{v}: {e:?}"),
            Ok(_) => panic!("{v}: accepted"),
        }
    }
}

/// A `wss://` server on a free port (a certificate for localhost signed by
/// the test CA in `dir`); hands back what its first client sends.
async fn wss_server(dir: &std::path::Path) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
    use rumqttc::tokio_rustls::rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    use rumqttc::tokio_rustls::rustls::ServerConfig;
    use rumqttc::tokio_rustls::TlsAcceptor;
    let certs = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let provider =
        std::sync::Arc::new(rumqttc::tokio_rustls::rustls::crypto::ring::default_provider());
    let cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = TlsAcceptor::from(std::sync::Arc::new(cfg));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        use futures::StreamExt;
        loop {
            let (tcp, _) = l.accept().await.unwrap();
            // A client that refused our certificate ends its handshake: next.
            let Ok(tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let mut ws = tokio_tungstenite::accept_async(tls).await.unwrap();
            let mut got = Vec::new();
            while let Some(Ok(m)) = ws.next().await {
                if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
                    got.push(t.to_string());
                    if got.len() == 2 {
                        return got;
                    }
                }
            }
            return got;
        }
    });
    (port, task)
}

#[tokio::test]
async fn a_wss_client_sink_checks_the_server_certificate() {
    let dir = tempfile::tempdir().unwrap();
    crate::mqtt::tests_wire::certificates(dir.path());
    let (port, server) = wss_server(dir.path()).await;
    let ctx = SinkContext::new("r", CancellationToken::new());
    // A CA that did not sign the server's certificate: refused.
    let mut wrong = WebsocketSinkFactory
        .create(
            &env(),
            &props(serde_json::json!({"addr": format!("localhost:{port}"), "path": "/in", "scheme": "wss",
                "rootCaPath": dir.path().join("client.pem")})),
        )
        .unwrap();
    let e = wrong.connect(&ctx).await.unwrap_err();
    assert!(matches!(e, ConnectorError::Unavailable(_)), "{e}");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    // The right CA: the messages arrive over TLS.
    let mut sink = WebsocketSinkFactory
        .create(
            &env(),
            &props(serde_json::json!({"addr": format!("localhost:{port}"), "path": "/in", "scheme": "wss",
                "rootCaPath": dir.path().join("ca.pem")})),
        )
        .unwrap();
    sink.connect(&ctx).await.unwrap();
    sink.collect(&ctx, &[item("one"), item("two")])
        .await
        .unwrap();
    assert_eq!(server.await.unwrap(), ["one", "two"]);
}
