//! Install, persistence, upgrade and delete through `PluginManager`, and
//! every malformed package refused with a message and no file left behind.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::*;
use oort_wasm::{Grants, InstallRequest, PluginError, PluginKind, PluginManager, WasmConfig};

fn req(kind: PluginKind, name: &str, file: String) -> InstallRequest {
    InstallRequest {
        kind,
        name: name.into(),
        file,
        sha256: None,
        grants: None,
    }
}

fn random_zip() -> Vec<u8> {
    let dist = builtin_dist();
    let wasm = std::fs::read(dist.join("random.wasm")).unwrap();
    let json = std::fs::read(dist.join("random.json")).unwrap();
    let yaml = std::fs::read(dist.join("random.yaml")).unwrap();
    zip_of(&[
        ("random.wasm", &wasm),
        ("random.json", &json),
        ("random.yaml", &yaml),
    ])
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    file_uri(&p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_zip_persist_upgrade_delete() {
    let data = tempfile::tempdir().unwrap();
    let pkgs = tempfile::tempdir().unwrap();
    let zip = random_zip();
    let uri = write(pkgs.path(), "random.zip", &zip);
    let sha = oort_wasm::package::sha256_hex(&zip);
    let (m, reg) = manager(data.path(), WasmConfig::default());

    let mut r = req(PluginKind::Source, "random", uri.clone());
    r.sha256 = Some(sha.to_uppercase());
    let info = m.install(r).await.expect("install");
    assert_eq!(info.name, "random");
    assert_eq!(info.kind, PluginKind::Source);
    assert_eq!(info.version, "0.1.0");
    assert_eq!(info.package_sha256, sha);
    assert_eq!(info.world, "oort:connector/source-plugin@0.2.0");
    assert_eq!(info.state, "installed");
    assert!(info.description.contains("random"), "{}", info.description);
    assert_eq!(
        info.conf_keys.as_ref().unwrap()["default"]["interval"],
        1000
    );
    assert!(info.permissions_granted.is_empty());
    assert!(reg.source("random").is_some());
    assert_eq!(m.list(PluginKind::Source), vec!["random".to_string()]);
    assert!(m.list(PluginKind::Sink).is_empty());

    // Installing again is refused; the name must be free.
    let e = m
        .install(req(PluginKind::Source, "random", uri.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(e, PluginError::BadRequest(ref s) if s.contains("already installed")),
        "{e}"
    );

    // Restart: loaded from the data dir, from the cache (no recompilation).
    let cache: Vec<_> = std::fs::read_dir(data.path().join("plugins/cache"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(cache.len(), 1);
    let cache_path = cache[0].path();
    let mtime = std::fs::metadata(&cache_path).unwrap().modified().unwrap();
    drop(m);
    let (m2, reg2) = manager(data.path(), WasmConfig::default());
    let again = m2.get(PluginKind::Source, "random").expect("persisted");
    assert_eq!(again.sha256, info.sha256);
    assert_eq!(again.state, "installed");
    // Registered at start-up, loaded on first use.
    assert_eq!(again.loaded, Some(false));
    assert_eq!(again.permissions_granted, info.permissions_granted);
    let f = reg2.source("random").expect("registered");
    f.create(
        &oort_core::ConnectorEnv::default(),
        "x",
        &serde_json::Map::new(),
    )
    .expect("first use loads it");
    assert_eq!(
        m2.get(PluginKind::Source, "random").unwrap().loaded,
        Some(true)
    );
    assert_eq!(
        std::fs::metadata(&cache_path).unwrap().modified().unwrap(),
        mtime
    );

    // A stale artifact of another engine version is dropped at start-up.
    let stale = data
        .path()
        .join("plugins/cache/deadbeef-0000000000000000.cwasm");
    std::fs::write(&stale, b"old").unwrap();
    // Upgrade in place (bare .wasm this time).
    let bare = write(
        pkgs.path(),
        "random.wasm",
        &std::fs::read(builtin_dist().join("random.wasm")).unwrap(),
    );
    let up = m2
        .upgrade(req(PluginKind::Source, "random", bare.clone()))
        .await
        .expect("upgrade");
    assert_ne!(up.package_sha256, info.package_sha256);
    assert_eq!(up.sha256, info.sha256);
    assert!(up.conf_keys.is_none());
    let e = m2
        .upgrade(req(PluginKind::Sink, "random", bare))
        .await
        .unwrap_err();
    assert!(matches!(e, PluginError::NotFound(_)), "{e}");
    drop(m2);
    let (m3, reg3) = manager(data.path(), WasmConfig::default());
    assert!(!stale.exists());
    m3.delete(PluginKind::Source, "random").expect("delete");
    assert!(reg3.source("random").is_none());
    assert!(m3.get(PluginKind::Source, "random").is_none());
    assert!(
        files_under(data.path()).is_empty(),
        "{:?}",
        files_under(data.path())
    );
    let e = m3.delete(PluginKind::Source, "random").unwrap_err();
    assert!(matches!(e, PluginError::NotFound(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_run_concurrently_one_per_name() {
    let data = tempfile::tempdir().unwrap();
    let pkgs = tempfile::tempdir().unwrap();
    let wasm = std::fs::read(builtin_dist().join("discard.wasm")).unwrap();
    let zip = random_zip();
    let random_uri = write(pkgs.path(), "random.zip", &zip);
    let discard_uri = write(pkgs.path(), "discard.wasm", &wasm);
    let (m, reg) = manager(data.path(), WasmConfig::default());
    // Two different plugins at once, and the same name twice at once.
    let (a, b, c) = tokio::join!(
        m.install(req(PluginKind::Source, "random", random_uri.clone())),
        m.install(req(PluginKind::Sink, "discard", discard_uri)),
        async {
            // Starts while the first `random` install is compiling.
            tokio::time::sleep(Duration::from_millis(20)).await;
            m.install(req(PluginKind::Source, "random", random_uri.clone()))
                .await
        },
    );
    a.expect("random installs");
    b.expect("discard installs");
    let e = c.expect_err("the same name twice at once");
    assert!(
        matches!(e, PluginError::BadRequest(ref s)
            if s.contains("already in progress") || s.contains("already installed")),
        "{e}"
    );
    assert!(reg.source("random").is_some() && reg.sink("discard").is_some());
    // Nothing half-written stays in staging.
    let tmp: Vec<_> = std::fs::read_dir(data.path().join("plugins/.tmp"))
        .unwrap()
        .collect();
    assert!(tmp.is_empty(), "{tmp:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_cache_shows_as_an_error_on_first_use() {
    let data = tempfile::tempdir().unwrap();
    let pkgs = tempfile::tempdir().unwrap();
    let uri = write(pkgs.path(), "random.zip", &random_zip());
    let (m, _reg) = manager(data.path(), WasmConfig::default());
    m.install(req(PluginKind::Source, "random", uri))
        .await
        .expect("install");
    drop(m);
    for e in std::fs::read_dir(data.path().join("plugins/cache"))
        .unwrap()
        .flatten()
    {
        std::fs::write(e.path(), b"not an artifact").unwrap();
    }
    let (m2, reg2) = manager(data.path(), WasmConfig::default());
    assert_eq!(
        m2.get(PluginKind::Source, "random").unwrap().state,
        "installed"
    );
    // The cached artifact is unreadable: the first use recompiles from the
    // installed .wasm rather than failing.
    reg2.source("random")
        .unwrap()
        .create(
            &oort_core::ConnectorEnv::default(),
            "x",
            &serde_json::Map::new(),
        )
        .expect("recompiled on first use");
    let info = m2.get(PluginKind::Source, "random").unwrap();
    assert_eq!(
        (info.state.as_str(), info.loaded),
        ("installed", Some(true))
    );
    // Now break the component itself: the error is the plugin's state.
    drop(m2);
    drop(reg2);
    std::fs::write(
        data.path().join("plugins/sources/random/random.wasm"),
        b"junk",
    )
    .unwrap();
    for e in std::fs::read_dir(data.path().join("plugins/cache"))
        .unwrap()
        .flatten()
    {
        std::fs::write(e.path(), b"not an artifact").unwrap();
    }
    let (m3, reg3) = manager(data.path(), WasmConfig::default());
    let e = reg3
        .source("random")
        .unwrap()
        .create(
            &oort_core::ConnectorEnv::default(),
            "x",
            &serde_json::Map::new(),
        )
        .err()
        .expect("cannot load");
    assert!(e.to_string().contains("random"), "{e}");
    let info = m3.get(PluginKind::Source, "random").unwrap();
    assert!(info.state.starts_with("error:"), "{}", info.state);
    assert!(info.state.contains("sha256"), "{}", info.state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_plugins_load_once() {
    let data = tempfile::tempdir().unwrap();
    let (m, reg) = manager(data.path(), WasmConfig::default());
    let loaded = m.load_builtin(&builtin_dist()).unwrap();
    assert!(loaded.contains(&"random".to_string()), "{loaded:?}");
    let info = m.get(PluginKind::Source, "random").unwrap();
    assert!(info.builtin);
    assert_eq!(info.conf_keys.as_ref().unwrap()["default"]["seed"], 1);
    assert!(reg.source("random").is_some());
    // Same component again: nothing to do.
    assert!(m.load_builtin(&builtin_dist()).unwrap().is_empty());
}

/// Serves one HTTP response slowly (a byte every 200 ms), or a big one.
async fn serve(body: Vec<u8>, slow: bool) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = l.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                let _ = s.write_all(head.as_bytes()).await;
                if slow {
                    for b in body {
                        if s.write_all(&[b]).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                } else {
                    let _ = s.write_all(&body).await;
                }
            });
        }
    });
    format!("http://{addr}/pkg.zip")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packages_are_refused_and_leave_nothing() {
    let data = tempfile::tempdir().unwrap();
    let pkgs = tempfile::tempdir().unwrap();
    let cfg = WasmConfig {
        max_download_bytes: 4 << 20,
        max_unpacked_bytes: 8 << 20,
        max_zip_entries: 8,
        download_timeout: Duration::from_secs(2),
        ..WasmConfig::default()
    };
    let (m, reg) = manager(data.path(), cfg);
    let dist = builtin_dist();
    let wasm = std::fs::read(dist.join("random.wasm")).unwrap();
    let json = std::fs::read(dist.join("random.json")).unwrap();
    let core_module = [0x00u8, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

    let symlink_zip = {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.add_symlink(
            "random.wasm",
            "/etc/passwd",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        w.start_file("random.json", zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(&json).unwrap();
        w.finish().unwrap().into_inner()
    };
    let bomb = {
        let zeros = vec![0u8; 9 << 20];
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        w.start_file("random.wasm", opts).unwrap();
        w.write_all(&zeros).unwrap();
        w.finish().unwrap().into_inner()
    };
    let many: Vec<(String, Vec<u8>)> = (0..20).map(|i| (format!("f{i}.txt"), vec![])).collect();
    let many_zip = zip_of(
        &many
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect::<Vec<_>>(),
    );
    let tcpsink = std::fs::read(test_plugin("tcpsink")).unwrap();
    let bad_manifest = br#"{"version":"9.9.9","kind":"source"}"#;

    let cases: Vec<(&str, InstallRequest, &str)> = vec![
        (
            "zip slip",
            req(
                PluginKind::Source,
                "random",
                write(
                    pkgs.path(),
                    "slip.zip",
                    &zip_of(&[("../random.wasm", &wasm)]),
                ),
            ),
            "zip slip",
        ),
        (
            "absolute path",
            req(
                PluginKind::Source,
                "random",
                write(
                    pkgs.path(),
                    "abs.zip",
                    &zip_of(&[("/tmp/random.wasm", &wasm)]),
                ),
            ),
            "absolute path",
        ),
        (
            "symlink",
            req(
                PluginKind::Source,
                "random",
                write(pkgs.path(), "link.zip", &symlink_zip),
            ),
            "symbolic link",
        ),
        (
            "zip bomb (size)",
            req(
                PluginKind::Source,
                "random",
                write(pkgs.path(), "bomb.zip", &bomb),
            ),
            "zip bomb",
        ),
        (
            "zip bomb (entries)",
            req(
                PluginKind::Source,
                "random",
                write(pkgs.path(), "many.zip", &many_zip),
            ),
            "entries",
        ),
        (
            "core module",
            req(
                PluginKind::Source,
                "random",
                write(pkgs.path(), "core.wasm", &core_module),
            ),
            "core WebAssembly module",
        ),
        (
            "core module in zip",
            req(
                PluginKind::Source,
                "random",
                write(
                    pkgs.path(),
                    "corez.zip",
                    &zip_of(&[("random.wasm", &core_module), ("random.json", &json)]),
                ),
            ),
            "core WebAssembly module",
        ),
        (
            "wrong world",
            req(
                PluginKind::Source,
                "tcpsink",
                write(pkgs.path(), "tcpsink.wasm", &tcpsink),
            ),
            "wrong world",
        ),
        (
            "name mismatch (zip)",
            req(
                PluginKind::Source,
                "other",
                write(
                    pkgs.path(),
                    "nm.zip",
                    &zip_of(&[("random.wasm", &wasm), ("random.json", &json)]),
                ),
            ),
            "name mismatch",
        ),
        (
            "name mismatch (component)",
            req(
                PluginKind::Source,
                "other",
                write(pkgs.path(), "other.wasm", &wasm),
            ),
            "name mismatch",
        ),
        (
            "version mismatch",
            req(
                PluginKind::Source,
                "random",
                write(
                    pkgs.path(),
                    "vm.zip",
                    &zip_of(&[("random.wasm", &wasm), ("random.json", bad_manifest)]),
                ),
            ),
            "version mismatch",
        ),
        (
            "missing manifest",
            req(
                PluginKind::Source,
                "random",
                write(
                    pkgs.path(),
                    "nomani.zip",
                    &zip_of(&[("random.wasm", &wasm)]),
                ),
            ),
            "no manifest",
        ),
        (
            "not a package",
            req(
                PluginKind::Source,
                "random",
                write(pkgs.path(), "junk.zip", b"hello"),
            ),
            "neither",
        ),
        (
            "missing file",
            req(
                PluginKind::Source,
                "random",
                "file:///nonexistent/x.zip".into(),
            ),
            "cannot read",
        ),
        (
            "unreachable URI",
            req(
                PluginKind::Source,
                "random",
                "http://127.0.0.1:9/x.zip".into(),
            ),
            "cannot download",
        ),
        (
            "bad scheme",
            req(PluginKind::Source, "random", "ftp://example/x.zip".into()),
            "unsupported URI",
        ),
        (
            "too large",
            req(
                PluginKind::Source,
                "random",
                write(pkgs.path(), "big.wasm", &vec![0u8; 5 << 20]),
            ),
            "too large",
        ),
        (
            "too large (http)",
            req(
                PluginKind::Source,
                "random",
                serve(vec![0u8; 5 << 20], false).await,
            ),
            "too large",
        ),
        (
            "too slow",
            req(
                PluginKind::Source,
                "random",
                serve(vec![0u8; 100], true).await,
            ),
            "longer than",
        ),
        (
            "bad name",
            req(
                PluginKind::Source,
                "../x",
                write(pkgs.path(), "x.wasm", &wasm),
            ),
            "invalid plugin name",
        ),
        (
            "bad grant",
            InstallRequest {
                grants: Some(Grants {
                    outbound: vec!["127.0.0.1".into()],
                    ..Grants::default()
                }),
                ..req(
                    PluginKind::Source,
                    "random",
                    write(pkgs.path(), "g.wasm", &wasm),
                )
            },
            "scheme://host:port",
        ),
        (
            "sha256 mismatch",
            InstallRequest {
                sha256: Some("00".repeat(32)),
                ..req(
                    PluginKind::Source,
                    "random",
                    write(pkgs.path(), "s.wasm", &wasm),
                )
            },
            "sha256 mismatch",
        ),
    ];
    for (what, r, expect) in cases {
        let e = m.install(r).await.expect_err(what);
        match &e {
            PluginError::BadRequest(msg) => {
                assert!(msg.contains(expect), "{what}: {msg:?} lacks {expect:?}")
            }
            other => panic!("{what}: expected BadRequest, got {other:?}"),
        }
        assert!(
            files_under(data.path()).is_empty(),
            "{what}: left {:?}",
            files_under(data.path())
        );
        assert!(
            m.list(PluginKind::Source).is_empty() && m.list(PluginKind::Sink).is_empty(),
            "{what}"
        );
        assert!(reg.source("random").is_none(), "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_names_cannot_be_taken() {
    struct Native;
    impl oort_core::SourceFactory for Native {
        fn kind(&self) -> &str {
            "random"
        }
        fn info(&self) -> oort_core::ConnectorInfo {
            oort_core::ConnectorInfo::default()
        }
        fn create(
            &self,
            _: &oort_core::ConnectorEnv,
            _: &str,
            _: &oort_core::Props,
        ) -> Result<Box<dyn oort_core::Source>, oort_core::ConnectorError> {
            Err(oort_core::ConnectorError::config("native"))
        }
    }
    let data = tempfile::tempdir().unwrap();
    let reg = oort_core::Registry::default();
    reg.add_source(std::sync::Arc::new(Native));
    let m = PluginManager::open(data.path(), reg, WasmConfig::default()).unwrap();
    let uri = file_uri(&builtin_dist().join("random.wasm"));
    let e = m
        .install(req(PluginKind::Source, "random", uri))
        .await
        .unwrap_err();
    assert!(
        matches!(e, PluginError::BadRequest(ref s) if s.contains("built-in")),
        "{e}"
    );
}

/// The compiled artifacts in the cache.
fn cached(data: &Path) -> Vec<String> {
    files_under(data)
        .into_iter()
        .filter(|f| f.contains("/plugins/cache/"))
        .collect()
}

/// Reads one message from a fresh instance of an installed source plugin.
async fn read_one(m: &PluginManager, name: &str) -> oort_wasm::runtime::Tier {
    let p = m.loaded(PluginKind::Source, name).expect("loaded");
    let mut inst = p.instantiate_source("t", None).await.expect("instantiate");
    inst.open(&p.context("t", "source_t", 0), r#"{"interval": 1}"#, None)
        .await
        .expect("open");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = inst
            .read(1, Duration::from_millis(100))
            .await
            .expect("read");
        if got.payloads().is_some_and(|v| !v.is_empty()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no message");
    }
    p.tier()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_component_installs_on_baseline_code_then_switches_to_optimized() {
    use oort_wasm::runtime::Tier;
    let data = tempfile::tempdir().unwrap();
    let pkgs = tempfile::tempdir().unwrap();
    let uri = write(pkgs.path(), "random.zip", &random_zip());
    // Every component counts as large here.
    let cfg = WasmConfig {
        tiered_min_bytes: Some(0),
        ..WasmConfig::default()
    };
    let (m, _reg) = manager(data.path(), cfg.clone());
    let info = m
        .install(req(PluginKind::Source, "random", uri))
        .await
        .expect("install");
    assert_eq!(info.compiled.as_deref(), Some("baseline"));
    // Usable at once (on baseline code unless the switch below already
    // happened: it races with this read).
    read_one(&m, "random").await;
    // The optimised code replaces it in the background.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let now = m.get(PluginKind::Source, "random").expect("installed");
        if now.compiled.as_deref() == Some("optimized") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {:?}",
            now.compiled
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(read_one(&m, "random").await, Tier::Optimized);
    // Only the optimised artifact is cached, and the next start maps it.
    let cache = cached(data.path());
    assert_eq!(cache.len(), 1, "{cache:?}");
    drop(m);
    let (m2, _reg2) = manager(data.path(), cfg);
    assert_eq!(read_one(&m2, "random").await, Tier::Optimized);
    assert_eq!(cached(data.path()), cache);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_components_compile_optimized_before_the_install_returns() {
    let data = tempfile::tempdir().unwrap();
    let pkgs = tempfile::tempdir().unwrap();
    let uri = write(pkgs.path(), "random.zip", &random_zip());
    // The default threshold (1 MiB) is far above random's size.
    let (m, _reg) = manager(data.path(), WasmConfig::default());
    let info = m
        .install(req(PluginKind::Source, "random", uri))
        .await
        .expect("install");
    assert_eq!(info.compiled.as_deref(), Some("optimized"));
    assert_eq!(cached(data.path()).len(), 1);
}
