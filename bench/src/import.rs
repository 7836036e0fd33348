//! Scenario `g`: data import of 1,000 streams + 1,000 rules + 10 plugin
//! packages from `file://`, in process (the same code `POST /data/import`
//! runs), then an export of everything. Beside it, in the same run: the 10
//! packages installed one after another, the baseline that concurrent
//! installation is measured against.
//!
//! The packages are ten distinct components (`named` from the wasm test
//! plugins, built once per name with `OORT_PLUGIN_NAME`), ~100 KB each.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{anyhow, Context};
use oort::manager::ruleset::{Format, ImportMode, Progress, Ruleset};
use oort_wasm::{InstallRequest, PluginKind, PluginManager, WasmConfig};
use serde_json::{json, Map, Value as Json};
use tokio_util::sync::CancellationToken;

const PLUGINS: usize = 10;
const ITEMS: usize = 1000;

fn root() -> anyhow::Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow!("bench/ has no parent"))
}

/// Builds the `named` test plugin once per name; returns the `.wasm` files.
fn build_packages(out: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let root = root()?;
    let manifest = root.join("host/crates/wasm/tests/plugins/Cargo.toml");
    let target = root.join("target/wasm-bench-named");
    let mut v = Vec::new();
    for i in 0..PLUGINS {
        let name = format!("benchsink{i}");
        let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "-p",
                "named",
            ])
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target)
            .env("OORT_PLUGIN_NAME", &name)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .context("build the named test plugin")?;
        if !st.success() {
            return Err(anyhow!("building the named plugin as {name} failed"));
        }
        let dest = out.join(format!("{name}.wasm"));
        std::fs::copy(target.join("wasm32-wasip2/release/named.wasm"), &dest)?;
        v.push((name, dest));
    }
    Ok(v)
}

fn document(packages: &[(String, PathBuf)]) -> Json {
    let mut streams = Map::new();
    let mut rules = Map::new();
    for i in 0..ITEMS {
        streams.insert(
            format!("s{i}"),
            json!(format!(
                "CREATE STREAM s{i} () WITH (DATASOURCE=\"bench/g/{i}\", TYPE=\"memory\")"
            )),
        );
        // The first rules write through the plugins; the rest to nop.
        let sink = if i < packages.len() {
            packages[i].0.clone()
        } else {
            "nop".to_string()
        };
        let rule = json!({"id": format!("r{i}"), "sql": format!("SELECT * FROM s{i}"),
                          "actions": [{ sink: {} }]});
        rules.insert(format!("r{i}"), json!(rule.to_string()));
    }
    let mut plugins = Map::new();
    for (name, path) in packages {
        plugins.insert(
            format!("sinks_{name}"),
            json!({"name": name, "file": format!("file://{}", path.display())}),
        );
    }
    json!({"streams": streams, "tables": {}, "rules": rules, "wasmPlugins": plugins})
}

/// Runs scenario `g`.
pub fn import_export() -> anyhow::Result<()> {
    let pkgs_dir = tempfile::tempdir()?;
    let packages = build_packages(pkgs_dir.path())?;
    let size: u64 = packages
        .iter()
        .filter_map(|(_, p)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let text = document(&packages).to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        // Baseline: the same packages installed one after another.
        let seq_dir = tempfile::tempdir()?;
        let pm = PluginManager::open(seq_dir.path(), oort_core::Registry::default(), WasmConfig::default())
            .map_err(|e| anyhow!("{e}"))?;
        let t = Instant::now();
        for (name, path) in &packages {
            pm.install(InstallRequest {
                kind: PluginKind::Sink,
                name: name.clone(),
                file: format!("file://{}", path.display()),
                sha256: None,
                grants: None,
            })
            .await
            .map_err(|e| anyhow!("{name}: {e}"))?;
        }
        let sequential = t.elapsed();
        // The same, all at once (what an import does, bounded by its own limit).
        let par_dir = tempfile::tempdir()?;
        let pm = PluginManager::open(par_dir.path(), oort_core::Registry::default(), WasmConfig::default())
            .map_err(|e| anyhow!("{e}"))?;
        let t = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for (name, path) in &packages {
            let pm = pm.clone();
            let req = InstallRequest {
                kind: PluginKind::Sink,
                name: name.clone(),
                file: format!("file://{}", path.display()),
                sha256: None,
                grants: None,
            };
            set.spawn(async move { pm.install(req).await });
        }
        while let Some(r) = set.join_next().await {
            r?.map_err(|e| anyhow!("{e}"))?;
        }
        let concurrent = t.elapsed();

        let dir = tempfile::tempdir()?;
        let registry = oort_core::Registry::default();
        oort_connectors::builtin(&registry);
        let pm = PluginManager::open(dir.path(), registry.clone(), WasmConfig::default())
            .map_err(|e| anyhow!("{e}"))?;
        let mgr = oort::manager::Manager::open(dir.path(), registry.clone())?;
        let ruleset = Ruleset::new(&mgr);
        let progress = Progress::default();
        let t = Instant::now();
        let out = ruleset
            .import(&mgr, Some(&pm), &text, Format::Json, ImportMode::Full, &progress, &CancellationToken::new())
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let import = t.elapsed();
        if !out.report.is_empty() {
            return Err(anyhow!("import reported errors: {}", out.report.to_json()));
        }
        let t = Instant::now();
        let doc = mgr
            .export_document(Some(&pm), None)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let exported = serde_json::to_string(&doc.to_json())?;
        let export = t.elapsed();
        println!(
            "g import of {ITEMS} streams + {ITEMS} rules + {PLUGINS} plugin packages ({:.1} MB of .wasm, file://): {:.2} s",
            size as f64 / 1e6,
            import.as_secs_f64()
        );
        println!(
            "g   the {PLUGINS} packages alone: one after another {:.2} s, concurrently {:.2} s = {:.2}x faster",
            sequential.as_secs_f64(),
            concurrent.as_secs_f64(),
            sequential.as_secs_f64() / concurrent.as_secs_f64().max(1e-9)
        );
        println!(
            "g export of everything: {:.0} ms ({} KB)",
            export.as_secs_f64() * 1e3,
            exported.len() / 1024
        );
        for id in (0..ITEMS).map(|i| format!("r{i}")) {
            let _ = mgr.delete_rule(&id).await;
        }
        Ok(())
    })
}
