//! Running plugins through the registry factories: the `random` source, a
//! sink writing to a granted TCP address, and hostile plugins (endless loop,
//! memory hog, socket/file/env access without a grant).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use oort_core::{ConnectorError, Registry, SinkContext, SinkItem, SourceContext, SourceMsg, Value};
use oort_wasm::{Grants, InstallRequest, PluginKind, PluginManager};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

async fn install_bare(m: &PluginManager, kind: PluginKind, name: &str, grants: Option<Grants>) {
    let info = m
        .install(InstallRequest {
            kind,
            name: name.into(),
            file: file_uri(&test_plugin(name)),
            sha256: None,
            grants,
        })
        .await
        .unwrap_or_else(|e| panic!("install {name}: {e}"));
    assert_eq!(info.state, "installed");
}

struct Running {
    rx: Msgs,
    cancel: CancellationToken,
    handle: JoinHandle<Result<(), ConnectorError>>,
}

fn start(reg: &Registry, kind: &str, rule: &str, p: serde_json::Value) -> Running {
    let f = reg.source(kind).expect("factory registered");
    let mut src = f
        .create(&oort_core::ConnectorEnv::default(), "demo", &props(p))
        .expect("create");
    let (tx, rx) = mpsc::channel(256);
    let cancel = CancellationToken::new();
    let ctx = SourceContext::new(rule, cancel.clone(), tx);
    let handle = tokio::spawn(async move { src.run(ctx).await });
    Running {
        rx: Msgs::new(rx),
        cancel,
        handle,
    }
}

async fn next_payload(r: &mut Running) -> serde_json::Value {
    let msg = tokio::time::timeout(Duration::from_secs(5), r.rx.recv())
        .await
        .expect("a message in time")
        .expect("channel open");
    match msg {
        SourceMsg::Bytes { payload, .. } => serde_json::from_slice(&payload).expect("JSON payload"),
        other => panic!("unexpected {other:?}"),
    }
}

async fn finished(r: Running, within: Duration) -> Result<(), ConnectorError> {
    tokio::time::timeout(within, r.handle)
        .await
        .expect("source stopped in time")
        .expect("task not panicked")
}

fn builtin_manager(dir: &std::path::Path) -> (PluginManager, Registry) {
    let (m, reg) = manager(dir, test_config());
    m.load_builtin(&builtin_dist()).expect("builtins");
    (m, reg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_source_emits_randomised_pattern() {
    let data = tempfile::tempdir().unwrap();
    let (_m, reg) = builtin_manager(data.path());
    let f = reg.source("random").unwrap();
    // validate runs in the plugin at creation time.
    let e = f
        .create(
            &oort_core::ConnectorEnv::default(),
            "",
            &props(serde_json::json!({"interval": -5})),
        )
        .err()
        .expect("refused");
    assert!(
        matches!(e, ConnectorError::Config(ref m) if m.contains("interval must be positive")),
        "{e:?}"
    );
    let e = f
        .create(
            &oort_core::ConnectorEnv::default(),
            "",
            &props(serde_json::json!({"pattern": 3})),
        )
        .err()
        .expect("refused");
    assert!(
        matches!(e, ConnectorError::Config(ref m) if m.contains("pattern")),
        "{e:?}"
    );

    let mut r = start(
        &reg,
        "random",
        "rule_random",
        serde_json::json!({"interval": 10, "seed": 5, "pattern": {"count": 50, "temp": 1.5, "name": "x"}}),
    );
    let t0 = Instant::now();
    let mut counts = Vec::new();
    for _ in 0..20 {
        let v = next_payload(&mut r).await;
        let c = v["count"].as_i64().expect("count is an integer");
        assert!((50..55).contains(&c), "{v}");
        let t = v["temp"].as_f64().expect("temp is a number");
        assert!((1.5..6.5).contains(&t), "{v}");
        assert_eq!(v["name"], "x");
        counts.push(c);
    }
    // 20 messages at 10 ms intervals: well under a second, and not all equal.
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert!(counts.iter().any(|c| *c != counts[0]), "{counts:?}");
    r.cancel.cancel();
    finished(r, Duration::from_secs(3))
        .await
        .expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_source_deduplicates() {
    let data = tempfile::tempdir().unwrap();
    let (_m, reg) = builtin_manager(data.path());
    // seed 3 => only 3 distinct messages; dedup over 3 => at most 3 ever.
    let mut r = start(
        &reg,
        "random",
        "rule_dedup",
        serde_json::json!({"interval": 5, "seed": 3, "pattern": {"v": 0}, "deduplicate": 3}),
    );
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(800);
    while Instant::now() < deadline {
        if let Ok(Some(SourceMsg::Bytes { payload, .. })) =
            tokio::time::timeout(Duration::from_millis(100), r.rx.recv()).await
        {
            seen.push(String::from_utf8(payload.to_vec()).unwrap());
        }
    }
    assert!(!seen.is_empty());
    assert!(seen.len() <= 3, "{seen:?}");
    let mut uniq = seen.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), seen.len(), "{seen:?}");
    r.cancel.cancel();
    finished(r, Duration::from_secs(3)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_loop_is_stopped_by_its_deadline_and_only_its_rule_stops() {
    let data = tempfile::tempdir().unwrap();
    let (m, reg) = builtin_manager(data.path());
    install_bare(&m, PluginKind::Source, "spin", None).await;
    let mut healthy = start(
        &reg,
        "random",
        "rule_ok",
        serde_json::json!({"interval": 20}),
    );
    next_payload(&mut healthy).await;
    let t0 = Instant::now();
    let spin = start(&reg, "spin", "rule_spin", serde_json::json!({}));
    let err = finished(spin, Duration::from_secs(10))
        .await
        .expect_err("spin must fail");
    let elapsed = t0.elapsed();
    match &err {
        ConnectorError::Fatal(msg) => {
            assert!(msg.contains("plugin spin"), "{msg}");
            assert!(msg.contains("deadline"), "{msg}");
        }
        other => panic!("expected Fatal, got {other:?}"),
    }
    // call timeout 500 ms + read wait 50 ms, checked every 10 ms tick.
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    // The other rule keeps running.
    for _ in 0..3 {
        next_payload(&mut healthy).await;
    }
    healthy.cancel.cancel();
    finished(healthy, Duration::from_secs(3)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocation_past_the_limit_traps_cleanly() {
    let data = tempfile::tempdir().unwrap();
    let (m, reg) = manager(data.path(), test_config());
    install_bare(&m, PluginKind::Source, "hog", None).await;
    let r = start(&reg, "hog", "rule_hog", serde_json::json!({}));
    let err = finished(r, Duration::from_secs(10))
        .await
        .expect_err("hog must fail");
    match &err {
        ConnectorError::Fatal(msg) => {
            assert!(msg.contains("plugin hog"), "{msg}");
            assert!(msg.contains("memory limit"), "{msg}");
        }
        other => panic!("expected Fatal, got {other:?}"),
    }
    // The plugin can still be instantiated afterwards (a fresh instance).
    let r = start(&reg, "hog", "rule_hog2", serde_json::json!({}));
    assert!(finished(r, Duration::from_secs(10)).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_file_and_env_are_refused_without_a_grant() {
    let log = captured_log();
    let data = tempfile::tempdir().unwrap();
    let (m, reg) = manager(data.path(), test_config());
    // Even if the operator grants everything, the plugin declared nothing.
    install_bare(
        &m,
        PluginKind::Source,
        "sneaky",
        Some(Grants {
            outbound: vec!["tcp://*:*".into()],
            dirs: vec!["/etc".into()],
            env: vec!["HOME".into()],
        }),
    )
    .await;
    assert!(m
        .get(PluginKind::Source, "sneaky")
        .unwrap()
        .permissions_granted
        .is_empty());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let cases = [
        (
            serde_json::json!({"action": "socket", "address": addr}),
            "socket to",
        ),
        (
            serde_json::json!({"action": "file", "path": "/etc/hostname"}),
            "file /etc/hostname refused",
        ),
        (
            serde_json::json!({"action": "env", "name": "HOME"}),
            "env HOME refused",
        ),
    ];
    for (p, expect) in cases {
        let r = start(&reg, "sneaky", "rule_sneaky", p.clone());
        let err = finished(r, Duration::from_secs(5))
            .await
            .expect_err("must be refused");
        match &err {
            ConnectorError::Config(msg) => assert!(msg.contains(expect), "{p}: {msg}"),
            other => panic!("{p}: expected Config, got {other:?}"),
        }
    }
    // Nothing ever connected.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), listener.accept())
            .await
            .is_err()
    );
    // The refused connect was logged with the plugin and the address, even
    // though this plugin has no outbound grant at all.
    let text = String::from_utf8_lossy(&log.lock().unwrap()).to_string();
    assert!(
        text.lines().any(|l| l.contains("network access denied")
            && l.contains("sneaky")
            && l.contains(&addr)
            && l.contains("TcpConnect")),
        "no denial logged for {addr}:\n{text}"
    );
}

/// A sink item carrying `s` as its encoded payload.
fn line_item(s: &str) -> SinkItem {
    SinkItem {
        data: Value::Null,
        payload: bytes::Bytes::from(s.to_string()),
    }
}

/// The lines a test sink wrote to `sock`, up to its closing.
async fn lines_until_closed(sock: tokio::net::TcpStream) -> Vec<String> {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(sock).lines();
    let mut got = Vec::new();
    while let Ok(Ok(Some(l))) =
        tokio::time::timeout(Duration::from_secs(2), lines.next_line()).await
    {
        got.push(l);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_writes_batches_to_a_granted_address() {
    let data = tempfile::tempdir().unwrap();
    let (m, reg) = manager(data.path(), test_config());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let grant = format!("tcp://127.0.0.1:{port}");
    install_bare(
        &m,
        PluginKind::Sink,
        "tcpsink",
        Some(Grants {
            outbound: vec![grant.clone()],
            ..Grants::default()
        }),
    )
    .await;
    let info = m.get(PluginKind::Sink, "tcpsink").unwrap();
    assert_eq!(
        info.permissions_requested.outbound,
        vec!["tcp://127.0.0.1:*".to_string()]
    );
    assert_eq!(info.permissions_granted.outbound, vec![grant]);

    let f = reg.sink("tcpsink").unwrap();
    let e = f
        .create(
            &oort_core::ConnectorEnv::default(),
            &props(serde_json::json!({})),
        )
        .err()
        .expect("validate refuses");
    assert!(
        matches!(e, ConnectorError::Config(ref s) if s.contains("address is required")),
        "{e:?}"
    );
    let mut sink = f
        .create(
            &oort_core::ConnectorEnv::default(),
            &props(serde_json::json!({"address": format!("127.0.0.1:{port}"), "format": "json"})),
        )
        .expect("create");
    let ctx = SinkContext::new("rule_sink", CancellationToken::new());
    sink.connect(&ctx).await.expect("connect");
    let (sock, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
        .await
        .unwrap()
        .unwrap();
    let item = line_item;
    sink.collect(&ctx, &[item("{\"a\":1}"), item("{\"a\":2}")])
        .await
        .expect("write");
    let e = sink
        .collect(&ctx, &[item("{\"a\":3}"), item("bad"), item("{\"a\":4}")])
        .await
        .expect_err("partial");
    assert!(
        matches!(e, ConnectorError::InvalidData(ref s) if s.contains("1 message(s) dropped")),
        "{e:?}"
    );
    sink.close(&ctx).await.expect("close");
    let got = lines_until_closed(sock).await;
    assert_eq!(
        got,
        vec!["{\"a\":1}", "{\"a\":2}", "{\"a\":3}", "{\"a\":4}"]
    );

    // Another port is not granted: the connection is refused inside the sandbox.
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut sink = f
        .create(
            &oort_core::ConnectorEnv::default(),
            &props(serde_json::json!({"address": other.local_addr().unwrap().to_string()})),
        )
        .unwrap();
    let e = sink.connect(&ctx).await.expect_err("denied");
    assert!(
        matches!(e, ConnectorError::Unavailable(ref s) if s.contains("plugin tcpsink")),
        "{e:?}"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), other.accept())
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_start_is_fast_from_the_cached_instance_pre() {
    let data = tempfile::tempdir().unwrap();
    let (m, _reg) = builtin_manager(data.path());
    let p: Arc<_> = m.loaded(PluginKind::Source, "random").unwrap();
    // Warm up, then time a batch of instantiations.
    p.instantiate_source("warm", None).await.unwrap();
    let n = 200;
    let t0 = Instant::now();
    for _ in 0..n {
        let _i = p.instantiate_source("bench", None).await.unwrap();
    }
    let per = t0.elapsed() / n;
    eprintln!("instantiate from InstancePre (debug build): {per:?} per instance");
    // Generous bound for an unoptimised test build on a shared 2-core box.
    assert!(per < Duration::from_millis(20), "{per:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_code_is_interrupted_by_its_deadline_too() {
    use oort_wasm::plugin::{CallLimits, LoadedPlugin};
    use oort_wasm::runtime::{Runtime, Tier};
    // Large components run Winch code until Cranelift's is ready: a loop
    // there must be stopped the same way.
    let cfg = test_config();
    let rt = Runtime::with_tier(false, cfg.memory_limit_bytes, Tier::Baseline).unwrap();
    let wasm = std::fs::read(test_plugin("spin")).unwrap();
    let cwasm = rt.precompile(&wasm).unwrap();
    let c = rt.load_precompiled(&cwasm).unwrap();
    let p = LoadedPlugin::new(
        rt.clone(),
        &c,
        PluginKind::Source,
        "spin",
        "0.1.0",
        oort_wasm::Grants::default(),
        CallLimits::new(&cfg, None),
    )
    .unwrap();
    assert_eq!(p.tier(), Tier::Baseline);
    let mut inst = p.instantiate_source("t", None).await.unwrap();
    inst.open(&p.context("t", "source_t", 0), "{}", None)
        .await
        .unwrap();
    let t0 = Instant::now();
    let err = inst
        .read(1, Duration::from_millis(50))
        .await
        .expect_err("spin must be stopped");
    assert!(err.to_string().contains("deadline"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_code_runs_a_plugin() {
    use oort_wasm::plugin::{CallLimits, LoadedPlugin};
    use oort_wasm::runtime::{Runtime, Tier};
    let cfg = test_config();
    let rt = Runtime::with_tier(false, cfg.memory_limit_bytes, Tier::Baseline).unwrap();
    let wasm = std::fs::read(builtin_dist().join("random.wasm")).unwrap();
    let c = rt.load_precompiled(&rt.precompile(&wasm).unwrap()).unwrap();
    let p = LoadedPlugin::new(
        rt.clone(),
        &c,
        PluginKind::Source,
        "random",
        "0.1.0",
        oort_wasm::Grants::default(),
        CallLimits::new(&cfg, None),
    )
    .unwrap();
    let mut inst = p.instantiate_source("t", None).await.unwrap();
    inst.open(
        &p.context("t", "source_t", 0),
        r#"{"interval": 0, "pattern": {"a": 1}}"#,
        None,
    )
    .await
    .unwrap();
    let got = inst.read(4, Duration::from_millis(100)).await.unwrap();
    let v = got.payloads().unwrap_or_else(|| panic!("{got:?}"));
    assert_eq!(v.len(), 4);
    let j: serde_json::Value = serde_json::from_slice(&v[0]).unwrap();
    assert_eq!(j["a"], 1, "{j}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_batches_queued_behind_a_busy_plugin_share_a_write_each_with_its_own_result() {
    let data = tempfile::tempdir().unwrap();
    // The held first write must stay within the call deadline.
    let cfg = oort_wasm::WasmConfig {
        call_timeout: Duration::from_secs(5),
        ..test_config()
    };
    let (m, reg) = manager(data.path(), cfg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    install_bare(
        &m,
        PluginKind::Sink,
        "tcpsink",
        Some(Grants {
            outbound: vec![format!("tcp://127.0.0.1:{port}")],
            ..Grants::default()
        }),
    )
    .await;
    let f = reg.sink("tcpsink").unwrap();
    // The first write waits 1 s: every batch below is queued by then.
    let mut sink = f
        .create(
            &oort_core::ConnectorEnv::default(),
            &props(serde_json::json!({
                "address": format!("127.0.0.1:{port}"),
                "markCalls": true,
                "holdFirstWriteMs": 1000
            })),
        )
        .expect("create");
    let ctx = SinkContext::new("rule_group", CancellationToken::new());
    sink.connect(&ctx).await.expect("connect");
    let (sock, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
        .await
        .unwrap()
        .unwrap();
    let item = line_item;
    // Eight batches of one message, the sixth refused by the plugin.
    let mut tickets = Vec::new();
    for p in ["1", "2", "3", "4", "5", "bad", "7", "8"] {
        tickets.push(sink.send(&ctx, &[item(p)]).await.expect("handed over"));
    }
    let mut results = Vec::new();
    for t in tickets {
        results.push(sink.settle(&ctx, t).await);
    }
    for (i, r) in results.iter().enumerate() {
        if i == 5 {
            assert!(
                matches!(r, Err(ConnectorError::InvalidData(m)) if m.contains("1 message(s) dropped")),
                "{r:?}"
            );
        } else {
            assert!(r.is_ok(), "batch {i}: {r:?}");
        }
    }
    sink.close(&ctx).await.expect("close");
    let got = lines_until_closed(sock).await;
    let written: Vec<&str> = got
        .iter()
        .map(|s| s.as_str())
        .filter(|l| *l != "--")
        .collect();
    assert_eq!(written, ["1", "2", "3", "4", "5", "7", "8"], "{got:?}");
    // One call for the first batch (or the first two), one for the queued
    // rest up to the refused message, one for what follows it: 8 batches,
    // at most 4 calls.
    let calls = got.iter().filter(|l| *l == "--").count();
    assert!((2..=4).contains(&calls), "{calls} calls: {got:?}");
}
