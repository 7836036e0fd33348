//! The built-in `nats` source and sink plugins against the real NATS server
//! on 127.0.0.1:4222 (skipped, with a note, when no server listens there).

mod common;

use std::time::{Duration, Instant};

use common::*;
use oort_core::{ConnectorError, Props, SinkContext, SinkItem, SourceContext, SourceMsg, Value};
use oort_wasm::{Grants, PluginKind, WasmConfig};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const NATS: &str = "127.0.0.1:4222";

fn nats_up() -> bool {
    std::net::TcpStream::connect_timeout(&NATS.parse().unwrap(), Duration::from_millis(500)).is_ok()
}

fn props(v: serde_json::Value) -> Props {
    match v {
        serde_json::Value::Object(m) => m,
        _ => panic!("object"),
    }
}

fn granted_config() -> WasmConfig {
    let mut cfg = test_config();
    cfg.grants.insert(
        "nats".into(),
        Grants {
            outbound: vec![format!("tcp://{NATS}")],
            ..Grants::default()
        },
    );
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_source_and_sink_round_trip() {
    if !nats_up() {
        eprintln!("SKIP: no NATS server on {NATS}");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let (m, reg) = manager(data.path(), granted_config());
    let loaded = m.load_builtin(&builtin_dist()).unwrap();
    assert_eq!(
        loaded.iter().filter(|n| *n == "nats").count(),
        2,
        "{loaded:?}"
    );
    let src_info = m.get(PluginKind::Source, "nats").unwrap();
    assert_eq!(
        src_info.permissions_requested.outbound,
        vec!["tcp://*:*".to_string()]
    );
    assert_eq!(
        src_info.permissions_granted.outbound,
        vec![format!("tcp://{NATS}")]
    );
    assert!(m.get(PluginKind::Sink, "nats").is_some());

    let subject = format!("oort.test.{}", std::process::id());
    // Source: DATASOURCE is the subject.
    let f = reg.source("nats").unwrap();
    let e = f
        .create(
            &oort_core::ConnectorEnv::default(),
            "bad subject",
            &Props::new(),
        )
        .err()
        .expect("invalid subject");
    assert!(
        matches!(e, ConnectorError::Config(ref s) if s.contains("not a valid NATS subject")),
        "{e:?}"
    );
    let mut src = f
        .create(
            &oort_core::ConnectorEnv::default(),
            &subject,
            &props(serde_json::json!({"server": format!("nats://{NATS}")})),
        )
        .unwrap();
    let (tx, rx) = mpsc::channel(64);
    let mut rx = Msgs::new(rx);
    let cancel = CancellationToken::new();
    let ctx = SourceContext::new("rule_nats_in", cancel.clone(), tx);
    let conn = ctx.conn.clone();
    let h = tokio::spawn(async move { src.run(ctx).await });
    let t0 = Instant::now();
    while conn.snapshot().status != oort_core::ConnStatus::Connected {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "source never connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Sink: publish a batch to the same subject.
    let sf = reg.sink("nats").unwrap();
    let e = sf
        .create(&oort_core::ConnectorEnv::default(), &Props::new())
        .err()
        .expect("subject required");
    assert!(
        matches!(e, ConnectorError::Config(ref s) if s.contains("subject is required")),
        "{e:?}"
    );
    let mut sink = sf
        .create(
            &oort_core::ConnectorEnv::default(),
            &props(serde_json::json!({"subject": subject})),
        )
        .unwrap();
    let sctx = SinkContext::new("rule_nats_out", CancellationToken::new());
    sink.connect(&sctx).await.expect("sink connects");
    let items: Vec<SinkItem> = (0..3)
        .map(|i| SinkItem {
            data: Value::Null,
            payload: bytes::Bytes::from(format!("{{\"n\":{i}}}")),
        })
        .collect();
    sink.collect(&sctx, &items).await.expect("published");
    sink.close(&sctx).await.unwrap();

    for i in 0..3 {
        let msg = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        match msg {
            SourceMsg::Bytes { payload, meta } => {
                assert_eq!(&payload[..], format!("{{\"n\":{i}}}").as_bytes());
                let meta = meta.expect("meta");
                assert_eq!(
                    meta.get("subject").and_then(|v| v.as_str()),
                    Some(subject.as_str())
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), h)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_without_a_grant_is_refused_then_granted() {
    if !nats_up() {
        eprintln!("SKIP: no NATS server on {NATS}");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let (m, reg) = manager(data.path(), test_config());
    m.load_builtin(&builtin_dist()).unwrap();
    assert!(m
        .get(PluginKind::Sink, "nats")
        .unwrap()
        .permissions_granted
        .is_empty());
    let sf = reg.sink("nats").unwrap();
    let mut sink = sf
        .create(
            &oort_core::ConnectorEnv::default(),
            &props(serde_json::json!({"subject": "oort.denied"})),
        )
        .unwrap();
    let sctx = SinkContext::new("rule_denied", CancellationToken::new());
    let e = sink.connect(&sctx).await.expect_err("no grant, no socket");
    match &e {
        ConnectorError::Config(s) => {
            assert!(s.contains("plugin nats") && s.contains("connect"), "{s}")
        }
        other => panic!("expected Config (unauthorized), got {other:?}"),
    }
    // The operator grants it: new instances can connect.
    let info = m
        .set_grants(
            PluginKind::Sink,
            "nats",
            Grants {
                outbound: vec![format!("tcp://{NATS}")],
                ..Grants::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        info.permissions_granted.outbound,
        vec![format!("tcp://{NATS}")]
    );
    let mut sink = sf
        .create(
            &oort_core::ConnectorEnv::default(),
            &props(serde_json::json!({"subject": "oort.granted"})),
        )
        .unwrap();
    sink.connect(&sctx).await.expect("granted now");
    sink.close(&sctx).await.unwrap();
}
