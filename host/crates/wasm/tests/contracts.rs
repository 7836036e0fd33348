//! Both contracts this host serves, side by side: `oort:connector@0.1.0`
//! (one record per message) and `@0.2.0` (packed batches). The same plugin
//! code built against each (the SDK's `export_*_v1!` and `export_*!`)
//! must deliver the same messages, metadata and event times both ways, and
//! the install records which contract a plugin exports.

mod common;

use std::time::Duration;

use common::*;
use oort_core::{ConnectorError, SourceContext, SourceMsg, Value};
use oort_wasm::plugin::{CallLimits, ListRef, LoadedPlugin, MessageRef};
use oort_wasm::{Contract, InstallRequest, PluginKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn load(kind: PluginKind, name: &str) -> std::sync::Arc<LoadedPlugin> {
    let cfg = test_config();
    let rt = oort_wasm::runtime::Runtime::new(false, cfg.memory_limit_bytes).unwrap();
    let wasm = std::fs::read(test_plugin(name)).unwrap();
    let c = rt.load_precompiled(&rt.precompile(&wasm).unwrap()).unwrap();
    std::sync::Arc::new(
        LoadedPlugin::new(
            rt.clone(),
            &c,
            kind,
            name,
            "0.1.0",
            oort_wasm::Grants::default(),
            CallLimits::new(&cfg, None),
        )
        .unwrap(),
    )
}

/// What the probe sink says it received for this batch.
async fn probe_sees(name: &str, batch: &[MessageRef<'_>]) -> serde_json::Value {
    let p = load(PluginKind::Sink, name);
    let mut inst = p.instantiate_sink("t", None).await.unwrap();
    inst.open(&p.context("r", "sink_probe_0", 0), "{}")
        .await
        .unwrap();
    let failure = match inst.write_refs(batch).await {
        Err(Ok(f)) => f,
        other => panic!("{name}: the probe refuses every batch: {other:?}"),
    };
    assert_eq!(failure.accepted, 0);
    let ConnectorError::InvalidData(m) = failure.error else {
        panic!("{name}: {:?}", failure.error)
    };
    let json = m
        .strip_prefix(&format!("plugin {name}: "))
        .unwrap_or_else(|| panic!("{m}"));
    serde_json::from_str(json).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_gets_the_same_messages_under_both_contracts() {
    assert_eq!(load(PluginKind::Sink, "probe").contract, Contract::V0_2);
    assert_eq!(load(PluginKind::Sink, "probe_v1").contract, Contract::V0_1);
    let t1 = vec![("table".to_string(), "t1".to_string())];
    let t2 = vec![
        ("table".to_string(), "t1".to_string()),
        ("site".to_string(), "é".to_string()),
    ];
    let batch = [
        MessageRef {
            payload: br#"{"a":1}"#,
            meta: ListRef(&t1),
            timestamp_ms: None,
        },
        MessageRef {
            payload: b"",
            meta: ListRef(&[]),
            timestamp_ms: Some(1_700_000_000_000),
        },
        MessageRef {
            payload: b"third",
            meta: ListRef(&t2),
            timestamp_ms: None,
        },
    ];
    let v2 = probe_sees("probe", &batch).await;
    let v1 = probe_sees("probe_v1", &batch).await;
    assert_eq!(v1, v2);
    assert_eq!(
        v2,
        serde_json::json!([
            {"payload": "{\"a\":1}", "meta": [["table", "t1"]], "ts": null},
            {"payload": "", "meta": [], "ts": 1_700_000_000_000u64},
            {"payload": "third", "meta": [["table", "t1"], ["site", "é"]], "ts": null},
        ])
    );
    // One message without metadata or time: 0.2.0's optional lists are empty.
    let one = [MessageRef {
        payload: b"x",
        meta: ListRef(&[]),
        timestamp_ms: None,
    }];
    assert_eq!(
        probe_sees("probe", &one).await,
        serde_json::json!([{"payload": "x", "meta": [], "ts": null}])
    );
}

/// Everything a source emitted until its end.
async fn feed(name: &str, messages: serde_json::Value) -> Vec<(String, Vec<(String, String)>)> {
    let data = tempfile::tempdir().unwrap();
    let (m, reg) = manager(data.path(), test_config());
    let info = m
        .install(InstallRequest {
            kind: PluginKind::Source,
            name: name.into(),
            file: file_uri(&test_plugin(name)),
            sha256: None,
            grants: None,
        })
        .await
        .unwrap_or_else(|e| panic!("install {name}: {e}"));
    let world = if name.ends_with("_v1") {
        "oort:connector/source-plugin@0.1.0"
    } else {
        "oort:connector/source-plugin@0.2.0"
    };
    assert_eq!(info.world, world);
    let f = reg.source(name).unwrap();
    let mut src = f
        .create(
            &oort_core::ConnectorEnv::default(),
            "demo",
            &props(serde_json::json!({ "messages": messages })),
        )
        .unwrap();
    let (tx, rx) = mpsc::channel(64);
    let mut rx = Msgs::new(rx);
    let ctx = SourceContext::new("s", CancellationToken::new(), tx);
    let run = tokio::spawn(async move { src.run(ctx).await });
    let mut out = Vec::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a message in time")
            .expect("channel open");
        match msg {
            SourceMsg::Bytes { payload, meta } => {
                let meta = meta
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| {
                                let v = match v {
                                    Value::Str(s) => s.to_string(),
                                    other => format!("{other:?}"),
                                };
                                (k.to_string(), v)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((String::from_utf8_lossy(&payload).into_owned(), meta));
            }
            SourceMsg::Eof => break,
            other => panic!("{other:?}"),
        }
    }
    run.await.unwrap().unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_delivers_the_same_messages_under_both_contracts() {
    let messages = serde_json::json!([
        {"payload": "{\"n\":1}", "meta": {"topic": "a/b"}},
        {"payload": "", "ts": 42},
        {"payload": "{\"n\":3}", "meta": {"topic": "a/b", "qos": "1"}, "ts": 7},
    ]);
    let v2 = feed("feeder", messages.clone()).await;
    let v1 = feed("feeder_v1", messages).await;
    assert_eq!(v1, v2);
    assert_eq!(v2.len(), 3);
    assert_eq!(v2[0].1, [("topic".to_string(), "a/b".to_string())]);
    assert_eq!(v2[1].0, "");
    assert_eq!(v2[1].1, [("timestamp".to_string(), "Int(42)".to_string())]);
    assert_eq!(v2[2].1.len(), 3, "{:?}", v2[2].1);
}

/// The plugin sink is pipelined: batches handed over with `send` are
/// written in order by the instance's writer, and each `settle` gets the
/// result of its own batch, also when an older ticket is settled last (a
/// resend through `collect` while later batches are in flight).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_sink_results_go_to_their_own_batches() {
    use oort_core::{SinkContext, SinkItem};
    let data = tempfile::tempdir().unwrap();
    let (m, reg) = manager(data.path(), test_config());
    m.install(InstallRequest {
        kind: PluginKind::Sink,
        name: "probe".into(),
        file: file_uri(&test_plugin("probe")),
        sha256: None,
        grants: None,
    })
    .await
    .unwrap();
    let f = reg.sink("probe").unwrap();
    let mut sink = f
        .create(
            &oort_core::ConnectorEnv::default(),
            &props(serde_json::json!({})),
        )
        .unwrap();
    assert!(sink.pipelined());
    let ctx = SinkContext::new("r", CancellationToken::new());
    sink.connect(&ctx).await.unwrap();
    let item = |p: &'static str| SinkItem {
        data: Value::Null,
        payload: bytes::Bytes::from_static(p.as_bytes()),
    };
    let mut tickets = Vec::new();
    for p in ["a", "b", "c"] {
        tickets.push(sink.send(&ctx, &[item(p)]).await.unwrap());
    }
    // Settled newest first: each error names its own batch's payload.
    for (t, p) in tickets.iter().zip(["a", "b", "c"]).rev() {
        let e = sink.settle(&ctx, *t).await.unwrap_err();
        assert!(
            e.to_string().contains(&format!("\"payload\":\"{p}\"")),
            "ticket {t}: {e}"
        );
    }
    // `collect` is a send and its own settle.
    let e = sink.collect(&ctx, &[item("d")]).await.unwrap_err();
    assert!(e.to_string().contains("\"payload\":\"d\""), "{e}");
    sink.close(&ctx).await.unwrap();
}
