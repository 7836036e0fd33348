//! The `neuron` connectors against an NNG `pair` peer played by the test
//! (Neuron's side of the protocol), over TCP and IPC.

use std::time::Duration;

use bytes::Bytes;
use oort_core::codec::json::decode_value;
use oort_core::{
    ConnectorEnv, Props, SinkContext, SinkFactory, SinkItem, SourceContext, SourceFactory,
    SourceMsg,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::link::{check_greeting, greeting, read_message, write_message, PAIR};
use super::{NeuronSinkFactory, NeuronSourceFactory};

fn props(v: serde_json::Value) -> Props {
    v.as_object().cloned().unwrap()
}

/// Accepts one connection and greets as `protocol`.
async fn accept<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    protocol: u16,
) -> S {
    s.write_all(&greeting(protocol)).await.unwrap();
    let mut g = [0u8; 8];
    s.read_exact(&mut g).await.unwrap();
    check_greeting(&g).unwrap();
    s
}

fn item(json: &str) -> SinkItem {
    SinkItem {
        data: decode_value(json.as_bytes()).unwrap(),
        payload: Bytes::from(json.to_string()),
    }
}

#[tokio::test]
async fn source_and_sink_share_one_link_over_tcp() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("tcp://{}", l.local_addr().unwrap());
    let env = ConnectorEnv::default();
    let cancel = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let mut src = NeuronSourceFactory
        .create(&env, "", &props(serde_json::json!({ "url": url })))
        .unwrap();
    let sctx = SourceContext::new("s", cancel.clone(), tx);
    let task = tokio::spawn(async move { src.run(sctx).await });
    let mut sink = NeuronSinkFactory
        .create(
            &env,
            &props(serde_json::json!({"url": url, "nodeName": "{{.node}}", "groupName": "g1", "tags": ["t", "h"]})),
        )
        .unwrap();
    let ctx = SinkContext::new("k", cancel.clone());
    sink.connect(&ctx).await.unwrap();
    // One connection for both.
    let (s, _) = l.accept().await.unwrap();
    let mut peer = accept(s, PAIR).await;
    let event = br#"{"timestamp":1,"node_name":"n1","group_name":"g1","values":{"t":21.5}}"#;
    write_message(&mut peer, false, event).await.unwrap();
    match rx.recv().await.unwrap() {
        SourceMsg::Bytes { payload, .. } => assert_eq!(&payload[..], &event[..]),
        other => panic!("bytes expected, got {other:?}"),
    }
    sink.collect(
        &ctx,
        &[item(r#"{"node":"pump","t":21.5,"h":40,"other":1}"#)],
    )
    .await
    .unwrap();
    let got = read_message(&mut peer, false).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&got).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"node_name": "pump", "group_name": "g1",
            "tags": [{"tag_name": "t", "value": 21.5}, {"tag_name": "h", "value": 40}]})
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(50), l.accept())
            .await
            .is_err(),
        "a second connection was made"
    );
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn raw_payloads_over_ipc_and_a_redial_after_a_break() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("neuron.ipc");
    let l = tokio::net::UnixListener::bind(&path).unwrap();
    let url = format!("ipc://{}", path.display());
    let env = ConnectorEnv::default();
    let ctx = SinkContext::new("k", CancellationToken::new());
    let mut sink = NeuronSinkFactory
        .create(&env, &props(serde_json::json!({"url": url, "raw": true})))
        .unwrap();
    sink.connect(&ctx).await.unwrap();
    let (s, _) = l.accept().await.unwrap();
    let peer = accept(s, PAIR).await;
    sink.collect(&ctx, &[item(r#"{"a":1}"#)]).await.unwrap();
    let mut peer = peer;
    assert_eq!(
        &read_message(&mut peer, true).await.unwrap()[..],
        br#"{"a":1}"#
    );
    // Neuron goes away and comes back: a write that hit the dead socket
    // fails as unavailable (the runtime sends it again); once the link has
    // dialled again the write goes through.
    drop(peer);
    let redial = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let mut p = accept(s, PAIR).await;
        read_message(&mut p, true).await.unwrap()
    });
    let second = [item(r#"{"a":2}"#)];
    let mut failures = 0;
    while let Err(e) = sink.collect(&ctx, &second).await {
        assert!(
            matches!(e, oort_core::ConnectorError::Unavailable(_)),
            "{e}"
        );
        failures += 1;
        assert!(failures < 5, "never written: {e}");
    }
    assert_eq!(&redial.await.unwrap()[..], br#"{"a":2}"#);
}

#[tokio::test]
async fn a_peer_of_another_protocol_is_refused_and_shown() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("tcp://{}", l.local_addr().unwrap());
    let env = ConnectorEnv::default();
    let ctx = SinkContext::new("k", CancellationToken::new());
    let mut sink = NeuronSinkFactory
        .create(&env, &props(serde_json::json!({"url": url, "raw": true})))
        .unwrap();
    sink.connect(&ctx).await.unwrap();
    let (mut s, _) = l.accept().await.unwrap();
    // A push socket (80) greets: the link says why it is down.
    s.write_all(&greeting(80)).await.unwrap();
    let link = super::link::link(&env, &super::link::Addr::parse(&url).unwrap()).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let why = link.conn.snapshot().last_disconnected_message;
        if why.contains("protocol 80") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "status: {why:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Nothing is written to such a peer: the write fails as unavailable.
    let e = sink.collect(&ctx, &[item("{}")]).await.unwrap_err();
    assert!(
        matches!(e, oort_core::ConnectorError::Unavailable(_)),
        "{e}"
    );
}

#[test]
fn bad_properties_are_refused() {
    let env = ConnectorEnv::default();
    for (p, says) in [
        (serde_json::json!({"url": "nng://x"}), "url"),
        (serde_json::json!({"url": "tcp://h"}), "host:port"),
        (serde_json::json!({"url": "ipc://rel"}), "absolute"),
        (serde_json::json!({"groupName": "g"}), "nodeName"),
        (serde_json::json!({"raw": true, "tags": ["a"]}), "tags"),
    ] {
        let e = NeuronSinkFactory
            .validate(&env, &props(p.clone()))
            .err()
            .unwrap_or_else(|| panic!("{p} accepted"));
        assert!(e.to_string().contains(says), "{p}: {e}");
    }
    NeuronSinkFactory
        .validate(
            &env,
            &props(serde_json::json!({"nodeName": "n", "groupName": "g"})),
        )
        .unwrap();
    assert!(NeuronSourceFactory
        .validate(&env, "", &props(serde_json::json!({"url": "udp://x"})))
        .is_err());
}
