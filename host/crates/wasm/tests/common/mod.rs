//! Test helpers: build the built-in plugins (builtin-plugins/build.sh) and the
//! test plugins (tests/plugins, hostile ones included) for wasm32-wasip2, each
//! with its own CARGO_TARGET_DIR so the outer `cargo test` lock is not hit.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use oort_wasm::{PluginManager, WasmConfig};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../..")
        .canonicalize()
        .unwrap()
}

fn cargo_cmd() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for v in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WRAPPER",
    ] {
        c.env_remove(v);
    }
    c
}

/// `builtin-plugins/dist`, built once per test binary.
pub fn builtin_dist() -> PathBuf {
    static DIST: OnceLock<PathBuf> = OnceLock::new();
    DIST.get_or_init(|| {
        let root = repo_root();
        let status = Command::new("bash")
            .arg(root.join("builtin-plugins/build.sh"))
            .env("CARGO_TARGET_DIR", root.join("target/wasm-plugins"))
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("run build.sh");
        assert!(status.success(), "builtin-plugins/build.sh failed");
        root.join("builtin-plugins/dist")
    })
    .clone()
}

/// Path of a test plugin's component (`spin`, `hog`, `sneaky`, `tcpsink`).
pub fn test_plugin(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let root = repo_root();
        let target = root.join("target/wasm-test-plugins");
        let status = cargo_cmd()
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plugins/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            // The hostile plugin's `tables` attack uses inline assembly
            // (a nightly feature) to emit `table.grow`.
            .env("RUSTC_BOOTSTRAP", "1")
            .status()
            .expect("run cargo");
        assert!(status.success(), "building test plugins failed");
        target.join("wasm32-wasip2/release")
    });
    dir.join(format!("{name}.wasm"))
}

pub fn file_uri(p: &Path) -> String {
    format!("file://{}", p.display())
}

/// Short deadlines so hostile plugins are stopped quickly.
pub fn test_config() -> WasmConfig {
    WasmConfig {
        memory_limit_bytes: 32 << 20,
        call_timeout: Duration::from_millis(500),
        open_timeout: Duration::from_secs(2),
        read_wait: Duration::from_millis(50),
        ..WasmConfig::default()
    }
}

pub fn manager(dir: &Path, cfg: WasmConfig) -> (PluginManager, oort_core::Registry) {
    let reg = oort_core::Registry::default();
    let m = PluginManager::open(dir, reg.clone(), cfg).expect("open manager");
    (m, reg)
}

/// Files under `<data>/plugins` except the (empty) top-level folders.
pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(d: &Path, out: &mut Vec<String>) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p.display().to_string());
                }
            }
        }
    }
    let mut v = Vec::new();
    walk(&dir.join("plugins"), &mut v);
    v.sort();
    v
}

pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (n, d) in entries {
        w.start_file(*n, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(d).unwrap();
    }
    w.finish().unwrap().into_inner()
}

pub fn props(v: serde_json::Value) -> oort_core::Props {
    match v {
        serde_json::Value::Object(m) => m,
        _ => panic!("props must be an object"),
    }
}

/// Everything logged by any test of this binary (a global subscriber:
/// plugin calls run on runtime worker threads).
pub fn captured_log() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    static LOG: std::sync::OnceLock<std::sync::Arc<std::sync::Mutex<Vec<u8>>>> =
        std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = buf.clone();
        let make = move || Capture(sink.clone());
        let sub = tracing_subscriber::fmt()
            .with_writer(make)
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        let _ = tracing::subscriber::set_global_default(sub);
        buf
    })
    .clone()
}

pub struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(b);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A source's channel read one message at a time: a plugin's read arrives
/// as one [`oort_core::SourceMsg::BytesBatch`], handed out here as the
/// `Bytes` messages it holds.
pub struct Msgs {
    rx: tokio::sync::mpsc::Receiver<oort_core::SourceMsg>,
    queue: std::collections::VecDeque<oort_core::SourceMsg>,
}

impl Msgs {
    pub fn new(rx: tokio::sync::mpsc::Receiver<oort_core::SourceMsg>) -> Self {
        Msgs {
            rx,
            queue: Default::default(),
        }
    }

    pub async fn recv(&mut self) -> Option<oort_core::SourceMsg> {
        loop {
            if let Some(m) = self.queue.pop_front() {
                return Some(m);
            }
            match self.rx.recv().await? {
                oort_core::SourceMsg::BytesBatch(b) => self.queue.extend(
                    b.into_iter()
                        .map(|(payload, meta)| oort_core::SourceMsg::Bytes { payload, meta }),
                ),
                other => return Some(other),
            }
        }
    }
}
