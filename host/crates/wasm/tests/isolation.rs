//! The hostile-plugin suite at the plugin host's level: directory grants
//! that try to leave through `..` or symlinks, a busy loop in each export,
//! a log flood, memory and table growth, the instance limit. Each attack
//! runs beside a healthy neighbour source while a probe task measures how
//! late this test's own runtime (standing in for the REST runtime) wakes up;
//! a test fails when the probe's p99 passes 500 ms or the neighbour goes
//! quiet for 500 ms.
//!
//! The tests take turns (`serial`): what they measure is how one plugin's
//! attack treats its neighbours, and on a 2-core machine a second test's
//! busy loop or component compilation would be a second attacker that the
//! test did not mean to run.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use oort_core::{ConnectorError, Registry, SinkContext, SinkItem, SourceContext, SourceMsg, Value};
use oort_wasm::isolation::StoreCaps;
use oort_wasm::{Grants, InstallRequest, PluginKind, PluginManager, WasmConfig};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const STALL: Duration = Duration::from_millis(500);

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Held for a whole test: one attack at a time in this binary.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

async fn install(m: &PluginManager, kind: PluginKind, name: &str, grants: Option<Grants>) {
    m.install(InstallRequest {
        kind,
        name: name.into(),
        file: file_uri(&test_plugin(name)),
        sha256: None,
        grants,
    })
    .await
    .unwrap_or_else(|e| panic!("install {name}: {e}"));
}

/// Installs `name` from a zip whose manifest asks for `dirs`.
async fn install_asking_dirs(
    m: &PluginManager,
    dir: &Path,
    name: &str,
    dirs: &[String],
    grant: &[String],
) -> oort_wasm::PluginInfo {
    let wasm = std::fs::read(test_plugin(name)).unwrap();
    let manifest = serde_json::json!({
        "version": "0.1.0", "kind": "source", "permissions": {"dirs": dirs}
    })
    .to_string();
    let zip = zip_of(&[
        (&format!("{name}.wasm"), &wasm),
        (&format!("{name}.json"), manifest.as_bytes()),
    ]);
    let path = dir.join(format!("{name}.zip"));
    std::fs::write(&path, zip).unwrap();
    m.install(InstallRequest {
        kind: PluginKind::Source,
        name: name.into(),
        file: file_uri(&path),
        sha256: None,
        grants: Some(Grants {
            dirs: grant.to_vec(),
            ..Grants::default()
        }),
    })
    .await
    .unwrap_or_else(|e| panic!("install {name}: {e}"))
}

struct Running {
    rx: Msgs,
    cancel: CancellationToken,
    handle: JoinHandle<Result<(), ConnectorError>>,
}

fn start(reg: &Registry, kind: &str, id: &str, p: serde_json::Value) -> Running {
    let f = reg.source(kind).expect("factory registered");
    let mut src = f
        .create(&oort_core::ConnectorEnv::default(), "demo", &props(p))
        .expect("create");
    let (tx, rx) = mpsc::channel(1024);
    let cancel = CancellationToken::new();
    let ctx = SourceContext::new(id, cancel.clone(), tx);
    let handle = tokio::spawn(async move { src.run(ctx).await });
    Running {
        rx: Msgs::new(rx),
        cancel,
        handle,
    }
}

/// The first payload a source emits, or what ended it.
async fn first(r: &mut Running) -> Result<Vec<u8>, String> {
    match tokio::time::timeout(Duration::from_secs(10), r.rx.recv()).await {
        Ok(Some(SourceMsg::Bytes { payload, .. })) => Ok(payload.to_vec()),
        Ok(Some(other)) => Err(format!("{other:?}")),
        Ok(None) => Err(match (&mut r.handle).await {
            Ok(Err(e)) => e.to_string(),
            other => format!("{other:?}"),
        }),
        Err(_) => Err("nothing within 10 s".into()),
    }
}

/// The healthy neighbour: a counter source, counting what it emits and
/// remembering the longest gap between two messages.
struct Neighbour {
    count: Arc<AtomicU64>,
    longest_gap_ms: Arc<AtomicU64>,
    cancel: CancellationToken,
}

fn neighbour(reg: &Registry) -> Neighbour {
    let mut r = start(
        reg,
        "counter",
        "neighbour",
        serde_json::json!({"interval": 5}),
    );
    let count = Arc::new(AtomicU64::new(0));
    let gap = Arc::new(AtomicU64::new(0));
    let (c, g) = (count.clone(), gap.clone());
    tokio::spawn(async move {
        let mut last = Instant::now();
        while let Some(m) = r.rx.recv().await {
            if matches!(m, SourceMsg::Bytes { .. }) {
                c.fetch_add(1, Ordering::Relaxed);
                let now = Instant::now();
                g.fetch_max(
                    now.duration_since(last).as_millis() as u64,
                    Ordering::Relaxed,
                );
                last = now;
            }
        }
    });
    Neighbour {
        count,
        longest_gap_ms: gap,
        cancel: r.cancel,
    }
}

/// Wakes every 10 ms on the test's runtime and records how late it was.
struct Probe {
    stop: CancellationToken,
    task: JoinHandle<Vec<Duration>>,
}

fn probe() -> Probe {
    let stop = CancellationToken::new();
    let s = stop.clone();
    let task = tokio::spawn(async move {
        let mut late = Vec::new();
        while !s.is_cancelled() {
            let t = Instant::now();
            tokio::time::sleep(Duration::from_millis(10)).await;
            late.push(t.elapsed().saturating_sub(Duration::from_millis(10)));
        }
        late
    });
    Probe { stop, task }
}

impl Probe {
    async fn p99(self) -> Duration {
        self.stop.cancel();
        let mut v = self.task.await.unwrap();
        v.sort();
        v[(v.len() * 99 / 100).min(v.len() - 1)]
    }
}

/// Runs `attack` beside a neighbour and a probe; fails on a stall.
async fn beside_neighbour<F: std::future::Future<Output = ()>>(
    reg: &Registry,
    what: &str,
    attack: F,
) {
    let n = neighbour(reg);
    let p = probe();
    let before = n.count.load(Ordering::Relaxed);
    attack.await;
    // The neighbour still moves after the attack.
    let t = Instant::now();
    while n.count.load(Ordering::Relaxed) < before + 20 {
        assert!(t.elapsed() < STALL, "{what}: the neighbour stopped moving");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let p99 = p.p99().await;
    assert!(p99 < STALL, "{what}: the runtime stalled (p99 {p99:?})");
    let gap = n.longest_gap_ms.load(Ordering::Relaxed);
    assert!(
        gap < STALL.as_millis() as u64,
        "{what}: the neighbour stalled for {gap} ms"
    );
    n.cancel.cancel();
}

fn cfg() -> WasmConfig {
    WasmConfig {
        // Long enough that "stopped at once" cannot be the deadline.
        call_timeout: Duration::from_secs(3),
        open_timeout: Duration::from_secs(3),
        ..test_config()
    }
}

async fn hostile_manager(dir: &Path, cfg: WasmConfig) -> (PluginManager, Registry) {
    let (m, reg) = manager(dir, cfg);
    install(&m, PluginKind::Source, "counter", None).await;
    install(&m, PluginKind::Source, "hostile", None).await;
    install(&m, PluginKind::Sink, "hostilesink", None).await;
    (m, reg)
}

/// A test tree: `srv/data` (with `ok.txt`, `in/` and `link` -> `../../etc`)
/// and `etc/secret.txt`, all under a resolved temporary directory.
fn tree() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    std::fs::create_dir_all(root.join("srv/data/in")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("srv/data/ok.txt"), b"{\"ok\":1}").unwrap();
    std::fs::write(root.join("etc/secret.txt"), b"{\"secret\":1}").unwrap();
    std::os::unix::fs::symlink(root.join("etc"), root.join("srv/data/link")).unwrap();
    (tmp, root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dot_dot_directory_request_does_not_leave_the_grant() {
    let _serial = serial().await;
    let (_t, root) = tree();
    let data = tempfile::tempdir().unwrap();
    let (m, reg) = manager(data.path(), test_config());
    let grant = vec![root.join("srv/data").display().to_string()];
    let asked = vec![format!("{}/srv/data/../../etc", root.display())];
    let info = install_asking_dirs(&m, data.path(), "sneaky", &asked, &grant).await;
    assert!(info.permissions_granted.dirs.is_empty(), "{info:?}");
    let secret = root.join("etc/secret.txt").display().to_string();
    let mut r = start(
        &reg,
        "sneaky",
        "dotdot",
        serde_json::json!({"action": "file", "path": secret}),
    );
    let e = first(&mut r).await.expect_err("the file outside was read");
    assert!(e.contains("refused"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_inside_the_grant_does_not_lead_out() {
    let _serial = serial().await;
    let (_t, root) = tree();
    let data = tempfile::tempdir().unwrap();
    let (m, reg) = manager(data.path(), test_config());
    let granted = root.join("srv/data").display().to_string();
    // Asking for the symlink itself: resolved, outside, denied.
    let asked = vec![format!("{granted}/link")];
    let info = install_asking_dirs(
        &m,
        data.path(),
        "sneaky",
        &asked,
        std::slice::from_ref(&granted),
    )
    .await;
    assert!(info.permissions_granted.dirs.is_empty(), "{info:?}");
    // Asking for the granted directory, then following the symlink in it.
    let info = m
        .upgrade(InstallRequest {
            kind: PluginKind::Source,
            name: "sneaky".into(),
            file: {
                let p = data.path().join("sneaky.zip");
                let wasm = std::fs::read(test_plugin("sneaky")).unwrap();
                let manifest = serde_json::json!({
                    "version": "0.1.0", "kind": "source", "permissions": {"dirs": [granted]}
                })
                .to_string();
                std::fs::write(
                    &p,
                    zip_of(&[("sneaky.wasm", &wasm), ("sneaky.json", manifest.as_bytes())]),
                )
                .unwrap();
                file_uri(&p)
            },
            sha256: None,
            grants: Some(Grants {
                dirs: vec![granted.clone()],
                ..Grants::default()
            }),
        })
        .await
        .unwrap();
    assert_eq!(info.permissions_granted.dirs, vec![granted.clone()]);
    // Inside: readable (the test can pass).
    let mut r = start(
        &reg,
        "sneaky",
        "inside",
        serde_json::json!({"action": "file", "path": format!("{granted}/ok.txt")}),
    );
    assert_eq!(first(&mut r).await.unwrap(), b"{\"ok\":1}");
    // Through the symlink: refused by the sandbox.
    let mut r = start(
        &reg,
        "sneaky",
        "through_link",
        serde_json::json!({"action": "file", "path": format!("{granted}/link/secret.txt")}),
    );
    let e = first(&mut r).await.expect_err("the symlink led out");
    assert!(e.contains("refused"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_directory_swapped_for_a_symlink_refuses_new_instances() {
    let _serial = serial().await;
    let (_t, root) = tree();
    let data = tempfile::tempdir().unwrap();
    let (m, reg) = manager(data.path(), test_config());
    let granted = root.join("srv/data").display().to_string();
    let inside = format!("{granted}/in");
    let info = install_asking_dirs(
        &m,
        data.path(),
        "sneaky",
        std::slice::from_ref(&inside),
        &[granted],
    )
    .await;
    assert_eq!(info.permissions_granted.dirs, vec![inside.clone()]);
    std::fs::remove_dir(&inside).unwrap();
    std::os::unix::fs::symlink(root.join("etc"), &inside).unwrap();
    // `create` validates in a new instance: refused there already.
    let e = reg
        .source("sneaky")
        .unwrap()
        .create(
            &oort_core::ConnectorEnv::default(),
            "demo",
            &props(serde_json::json!({"action": "file", "path": format!("{inside}/secret.txt")})),
        )
        .err()
        .expect("the swapped directory was opened");
    assert!(e.to_string().contains("now resolves to"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_loop_in_each_source_export_stalls_nobody() {
    let _serial = serial().await;
    let data = tempfile::tempdir().unwrap();
    let (_m, reg) = hostile_manager(data.path(), cfg()).await;
    // validate runs inside `create`, synchronously, as the rules manager calls it.
    beside_neighbour(&reg, "spin-validate", async {
        let f = reg.source("hostile").unwrap();
        let e = f
            .create(
                &oort_core::ConnectorEnv::default(),
                "demo",
                &props(serde_json::json!({"attack": "spin-validate"})),
            )
            .err()
            .expect("refused");
        assert!(e.to_string().contains("deadline"), "{e}");
    })
    .await;
    for attack in ["spin-open", "spin-read"] {
        beside_neighbour(&reg, attack, async {
            let r = start(
                &reg,
                "hostile",
                attack,
                serde_json::json!({"attack": attack}),
            );
            // Let it spin a while, then stop its rule: the call ends at once
            // (well before its 3 s deadline, with room for a loaded machine).
            tokio::time::sleep(Duration::from_millis(300)).await;
            let t = Instant::now();
            r.cancel.cancel();
            let out = tokio::time::timeout(Duration::from_secs(10), r.handle)
                .await
                .expect("stopped")
                .unwrap();
            assert!(
                t.elapsed() < Duration::from_millis(1500),
                "{attack}: stopping took {:?}",
                t.elapsed()
            );
            // A clean stop, although the plugin never returned.
            out.expect("a stopped rule ends cleanly");
        })
        .await;
    }
    // close is not interrupted by the stop (a rule ending lets it finish),
    // only by its deadline.
    beside_neighbour(&reg, "spin-close", async {
        let mut r = start(
            &reg,
            "hostile",
            "spin-close",
            serde_json::json!({"attack": "spin-close"}),
        );
        first(&mut r).await.unwrap();
        r.cancel.cancel();
        let out = tokio::time::timeout(Duration::from_secs(10), r.handle)
            .await
            .expect("stopped at the close deadline")
            .unwrap();
        out.expect("a close that fails is logged, the stop is clean");
    })
    .await;
}

fn sink_items(n: usize) -> Vec<SinkItem> {
    (0..n)
        .map(|i| SinkItem {
            data: Value::Null,
            payload: format!("{{\"i\":{i}}}").into_bytes().into(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_loop_in_each_sink_export_stalls_nobody() {
    let _serial = serial().await;
    let data = tempfile::tempdir().unwrap();
    let (_m, reg) = hostile_manager(data.path(), cfg()).await;
    let f = reg.sink("hostilesink").unwrap();
    for attack in ["spin-open", "spin-write"] {
        beside_neighbour(&reg, attack, async {
            let mut s = f
                .create(
                    &oort_core::ConnectorEnv::default(),
                    &props(serde_json::json!({"attack": attack})),
                )
                .unwrap();
            let cancel = CancellationToken::new();
            let ctx = SinkContext::new(attack, cancel.clone());
            let task = tokio::spawn(async move {
                let r = s.collect(&ctx, &sink_items(3)).await;
                let _ = s.close(&ctx).await;
                r
            });
            tokio::time::sleep(Duration::from_millis(300)).await;
            let t = Instant::now();
            cancel.cancel();
            let out = tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("stopped")
                .unwrap();
            assert!(
                t.elapsed() < Duration::from_millis(1500),
                "{attack}: stopping took {:?}",
                t.elapsed()
            );
            let e = out.expect_err("interrupted");
            assert!(
                e.to_string()
                    .contains("interrupted because its rule stopped"),
                "{e}"
            );
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_describe_fails_its_install_without_stalling() {
    let _serial = serial().await;
    let data = tempfile::tempdir().unwrap();
    let (m, reg) = hostile_manager(
        data.path(),
        WasmConfig {
            call_timeout: Duration::from_millis(800),
            ..test_config()
        },
    )
    .await;
    beside_neighbour(&reg, "spin-describe", async {
        let e = m
            .install(InstallRequest {
                kind: PluginKind::Source,
                name: "spindescribe".into(),
                file: file_uri(&test_plugin("spindescribe")),
                sha256: None,
                grants: None,
            })
            .await
            .expect_err("refused");
        assert!(e.to_string().contains("deadline"), "{e}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_write_refused_as_unauthorized_or_config_stops_the_rule() {
    let _serial = serial().await;
    let data = tempfile::tempdir().unwrap();
    let (_m, reg) = hostile_manager(data.path(), cfg()).await;
    let f = reg.sink("hostilesink").unwrap();
    for attack in ["unauthorized", "config"] {
        let mut s = f
            .create(
                &oort_core::ConnectorEnv::default(),
                &props(serde_json::json!({"attack": attack})),
            )
            .unwrap();
        let ctx = SinkContext::new(attack, CancellationToken::new());
        let e = s.collect(&ctx, &sink_items(2)).await.expect_err("refused");
        // Fatal: the runtime stops the rule with this message.
        assert!(
            matches!(e, ConnectorError::Fatal(ref m) if m.contains("plugin hostilesink") && m.contains("the rule stops")),
            "{attack}: {e:?}"
        );
    }
    // A sink that accepts keeps going (the test can pass).
    let mut s = f
        .create(
            &oort_core::ConnectorEnv::default(),
            &props(serde_json::json!({})),
        )
        .unwrap();
    let ctx = SinkContext::new("fine", CancellationToken::new());
    s.collect(&ctx, &sink_items(2)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_flood_is_rate_limited_and_counted() {
    let _serial = serial().await;
    let log = captured_log();
    let data = tempfile::tempdir().unwrap();
    let cfg = WasmConfig {
        caps: StoreCaps {
            log_lines_per_sec: 50,
            ..StoreCaps::default()
        },
        ..cfg()
    };
    let (m, reg) = hostile_manager(data.path(), cfg).await;
    let t0 = Instant::now();
    beside_neighbour(&reg, "flood", async {
        let mut r = start(
            &reg,
            "hostile",
            "flood",
            serde_json::json!({"attack": "flood"}),
        );
        for _ in 0..5 {
            first(&mut r).await.unwrap();
        }
        r.cancel.cancel();
        let _ = r.handle.await;
    })
    .await;
    let secs = t0.elapsed().as_secs_f64();
    let info = m.get(PluginKind::Source, "hostile").unwrap();
    // At least 5 reads x 3 lines x 300 written.
    let dropped = info.log_lines_dropped.expect("shown while loaded");
    assert!(dropped > 3_000, "{info:?}");
    let text = String::from_utf8_lossy(&log.lock().unwrap()).to_string();
    let kept = text.matches("flood line").count() as f64;
    // Burst of one second's worth plus the rate over the run.
    assert!(
        kept <= 50.0 * (secs + 1.0) + 1.0,
        "{kept} lines logged in {secs:.1} s"
    );
    assert!(
        text.contains("log rate limit of 50 lines/s reached"),
        "no summary line"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_growth_stops_only_its_own_source() {
    let _serial = serial().await;
    let data = tempfile::tempdir().unwrap();
    let (_m, reg) = hostile_manager(data.path(), cfg()).await;
    beside_neighbour(&reg, "grow", async {
        let mut r = start(
            &reg,
            "hostile",
            "grow",
            serde_json::json!({"attack": "grow"}),
        );
        let e = loop {
            match first(&mut r).await {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert!(e.contains("memory limit"), "{e}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_growth_stops_only_its_own_source() {
    let _serial = serial().await;
    let data = tempfile::tempdir().unwrap();
    let (_m, reg) = hostile_manager(data.path(), cfg()).await;
    beside_neighbour(&reg, "tables", async {
        let mut r = start(
            &reg,
            "hostile",
            "tables",
            serde_json::json!({"attack": "tables"}),
        );
        let mut reads = 0;
        let e = loop {
            match first(&mut r).await {
                Ok(_) => reads += 1,
                Err(e) => break e,
            }
        };
        // 16,384 slots per read against a cap of 20,000: the second read
        // passes the cap and traps (a refused grow would be "refused").
        assert!(e.contains("table limit"), "{e}");
        assert!(reads <= 1, "{reads} reads before the cap");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_and_instance_limits_are_enforced() {
    let _serial = serial().await;
    let data = tempfile::tempdir().unwrap();
    // A table cap below what any Rust component declares: instances fail.
    let (m, _reg) = manager(
        data.path(),
        WasmConfig {
            caps: StoreCaps {
                table_elements: 1,
                ..StoreCaps::default()
            },
            ..test_config()
        },
    );
    let e = m
        .install(InstallRequest {
            kind: PluginKind::Source,
            name: "counter".into(),
            file: file_uri(&test_plugin("counter")),
            sha256: None,
            grants: None,
        })
        .await
        .expect_err("table limit");
    assert!(e.to_string().contains("table"), "{e}");

    let data = tempfile::tempdir().unwrap();
    let (m, _reg) = manager(
        data.path(),
        WasmConfig {
            max_instances_per_plugin: 2,
            ..test_config()
        },
    );
    install(&m, PluginKind::Source, "counter", None).await;
    let p = m.loaded(PluginKind::Source, "counter").unwrap();
    let a = p.instantiate_source("a", None).await.unwrap();
    let _b = p.instantiate_source("b", None).await.unwrap();
    let e = p.instantiate_source("c", None).await.err().expect("limit");
    assert!(e.to_string().contains("instance limit reached"), "{e}");
    assert_eq!(p.live_instances(), 2);
    drop(a);
    p.instantiate_source("c", None).await.unwrap();
}
