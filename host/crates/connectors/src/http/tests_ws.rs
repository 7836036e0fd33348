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
        (serde_json::json!({"addr": "h:1", "scheme": "wss"}), "wss"),
        (
            serde_json::json!({"insecureSkipVerify": true}),
            "insecureSkipVerify",
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
