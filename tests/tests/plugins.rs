//! WebAssembly plugins end to end through the real `oort` binary: built-in
//! plugins (`random`, `nats`), install from a `file://` zip, show / delete /
//! force delete, bad installs, survival across a restart, operator grants
//! from the server config, and hostile plugins stopping only their own rule.
//!
//! Servers here take a `--config` YAML (built-in dir, grants, deadlines), so
//! this file has its own small launcher beside `oort_tests::Server`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use oort_tests::{free_port, mqtt, oort_bin, unique, workspace_root, Resp};
use serde_json::{json, Value as Json};

// ---------------------------------------------------------------------------
// Plugin artifacts
// ---------------------------------------------------------------------------

fn cargo() -> Command {
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

/// `builtin-plugins/dist`, built by `build.sh` only when a file is missing
/// (rebuilding would rewrite files other test binaries may be reading).
fn builtin_dist() -> PathBuf {
    static DIST: OnceLock<PathBuf> = OnceLock::new();
    DIST.get_or_init(|| {
        let root = workspace_root();
        let dist = root.join("builtin-plugins/dist");
        let needed = [
            "random.wasm",
            "random.json",
            "random.yaml",
            "discard.wasm",
            "sources/nats.wasm",
            "sinks/nats.wasm",
        ];
        if needed.iter().any(|f| !dist.join(f).is_file()) {
            let st = Command::new("bash")
                .arg(root.join("builtin-plugins/build.sh"))
                .env("CARGO_TARGET_DIR", root.join("target/wasm-plugins"))
                .env_remove("RUSTFLAGS")
                .env_remove("CARGO_ENCODED_RUSTFLAGS")
                .status()
                .expect("run builtin-plugins/build.sh");
            assert!(st.success(), "builtin-plugins/build.sh failed");
        }
        dist
    })
    .clone()
}

/// A test plugin of `host/crates/wasm/tests/plugins` (`spin`, `hog`, `tcpsink`, `hostile`...).
fn test_plugin(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let root = workspace_root();
        let target = root.join("target/wasm-test-plugins");
        let out = target.join("wasm32-wasip2/release");
        if ![
            "spin",
            "hog",
            "tcpsink",
            "counter",
            "hostile",
            "hostilesink",
            "httpsink",
        ]
        .iter()
        .all(|p| out.join(format!("{p}.wasm")).is_file())
        {
            let st = cargo()
                .args(["build", "--release", "--target", "wasm32-wasip2"])
                .arg("--manifest-path")
                .arg(root.join("host/crates/wasm/tests/plugins/Cargo.toml"))
                .arg("--target-dir")
                .arg(&target)
                // The hostile plugin emits `table.grow` with inline
                // assembly, a nightly feature.
                .env("RUSTC_BOOTSTRAP", "1")
                .status()
                .expect("run cargo");
            assert!(st.success(), "building the test plugins failed");
        }
        out
    });
    dir.join(format!("{name}.wasm"))
}

fn file_uri(p: &Path) -> String {
    format!("file://{}", p.display())
}

fn sha256_of(p: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(p)
        .output()
        .expect("run sha256sum");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("sha256sum output")
        .to_string()
}

/// CRC-32 (IEEE), for the zip writer below.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// A minimal zip (stored entries) so the test needs no zip crate.
fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    let dos_date: u16 = (1 << 5) | 1; // 1980-01-01
    for (name, data) in entries {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let len = data.len() as u32;
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes()); // version needed
        out.extend_from_slice(&0u16.to_le_bytes()); // flags
        out.extend_from_slice(&0u16.to_le_bytes()); // stored
        out.extend_from_slice(&0u16.to_le_bytes()); // time
        out.extend_from_slice(&dos_date.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // extra
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);

        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // made by
        central.extend_from_slice(&20u16.to_le_bytes()); // needed
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&dos_date.to_le_bytes());
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&len.to_le_bytes());
        central.extend_from_slice(&len.to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0u8; 2 + 2 + 2 + 2]); // extra, comment, disk, int attr
        central.extend_from_slice(&0u32.to_le_bytes()); // ext attr
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    let cd_len = central.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]); // disk numbers
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&cd_len.to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// `random.zip` (component, manifest, default conf keys) written into `dir`.
fn random_zip(dir: &Path) -> PathBuf {
    let dist = builtin_dist();
    let read = |f: &str| std::fs::read(dist.join(f)).expect("dist file");
    let (w, j, y) = (
        read("random.wasm"),
        read("random.json"),
        read("random.yaml"),
    );
    let p = dir.join("random.zip");
    std::fs::write(
        &p,
        zip_of(&[
            ("random.wasm", &w),
            ("random.json", &j),
            ("random.yaml", &y),
        ]),
    )
    .expect("write zip");
    p
}

// ---------------------------------------------------------------------------
// A server started with a config file
// ---------------------------------------------------------------------------

struct Oort {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
    http: reqwest::blocking::Client,
}

impl Drop for Oort {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A data dir and a config file that outlive restarts of the server.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    /// `config` is the YAML of the server settings (may be empty).
    fn new(config: &str) -> Site {
        builtin_dist();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("oort.yaml"), config).expect("write config");
        std::fs::create_dir_all(dir.path().join("empty")).expect("mkdir");
        Site { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// An empty directory, to start a server without built-in plugins.
    fn empty_dir(&self) -> PathBuf {
        self.dir.path().join("empty")
    }

    fn start(&self) -> Oort {
        let port = free_port();
        let mut child = Command::new(oort_bin())
            .args(["serve", "--data-dir"])
            .arg(self.path().join("data"))
            .args(["--rest-addr", &format!("127.0.0.1:{port}")])
            .arg("--config")
            .arg(self.path().join("oort.yaml"))
            .env("OORT_LOG", "info")
            // Packages come from temporary dirs, the checkout and HTTP
            // servers on 127.0.0.1, which the default outbound policy
            // refuses (docs/security.md; tests/tests/security.rs checks it).
            .env(
                "OORT__OUTBOUND__FILE_DIRS",
                format!(
                    "[{}, {}]",
                    std::env::temp_dir().display(),
                    workspace_root().display()
                ),
            )
            .env("OORT__OUTBOUND__ALLOWED_HOSTS", "[127.0.0.1]")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn oort");
        let log = Arc::new(Mutex::new(Vec::new()));
        let pipes: Vec<Box<dyn Read + Send>> = [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        .collect();
        for pipe in pipes {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Ok(mut g) = log.lock() {
                        g.push(line);
                    }
                }
            });
        }
        let s = Oort {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(r) = s.http.get(format!("{}/ping", s.base)).send() {
                if r.status().is_success() {
                    return s;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not start; log:\n{}", s.log());
    }
}

impl Oort {
    fn log(&self) -> String {
        self.log.lock().map(|g| g.join("\n")).unwrap_or_default()
    }

    fn wait_log(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        oort_tests::wait_log_line(|| self.log(), what, pred)
    }

    fn req(&self, method: &str, path: &str, body: Option<&str>) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.http.request(m, format!("{}{}", self.base, path));
        if let Some(b) = body {
            rb = rb
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let r = rb
            .send()
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\nlog:\n{}", self.log()));
        let status = r.status().as_u16();
        Resp {
            status,
            body: r.text().unwrap_or_default(),
        }
    }

    /// A request that must answer `status`.
    fn expect(&self, method: &str, path: &str, body: Option<&Json>, status: u16) -> Resp {
        let b = body.map(|b| b.to_string());
        let r = self.req(method, path, b.as_deref());
        assert_eq!(
            r.status,
            status,
            "{method} {path} -> {} {}\nlog:\n{}",
            r.status,
            r.body,
            self.log()
        );
        r
    }

    fn get_json(&self, path: &str) -> Json {
        self.expect("GET", path, None, 200).json()
    }

    fn stream(&self, sql: &str) {
        self.expect("POST", "/streams", Some(&json!({ "sql": sql })), 201);
    }

    fn rule(&self, rule: Json) {
        self.expect("POST", "/rules", Some(&rule), 201);
    }

    fn install(&self, kind: &str, body: Json) -> Resp {
        self.req("POST", &format!("/plugins/{kind}"), Some(&body.to_string()))
    }

    fn status(&self, rule: &str) -> Json {
        self.get_json(&format!("/rules/{rule}/status"))
    }

    fn wait_status(&self, rule: &str, what: &str, pred: impl Fn(&Json) -> bool) -> Json {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.status(rule);
            if pred(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; status: {s:#}\nlog:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then wait for the process to end.
    fn terminate(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Drop kills it.
    }
}

fn names(v: &Json) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap_or_default().to_string())
        .collect()
}

fn message(r: &Resp) -> String {
    r.json()["message"].as_str().unwrap_or_default().to_string()
}

// ---------------------------------------------------------------------------
// Built-in `random`
// ---------------------------------------------------------------------------

#[test]
fn builtin_random_with_conf_key_feeds_a_rule() {
    let site = Site::new("");
    let s = site.start();
    let sources = names(&s.get_json("/plugins/sources"));
    assert!(sources.contains(&"random".to_string()), "{sources:?}");
    let sinks = names(&s.get_json("/plugins/sinks"));
    assert!(sinks.contains(&"discard".to_string()), "{sinks:?}");
    let info = s.get_json("/plugins/sources/random");
    assert_eq!(info["builtin"], true);
    assert_eq!(info["state"], "installed");
    // The package's default conf keys are visible like eKuiper's yaml.
    let yaml = s.get_json("/metadata/sources/yaml/random");
    assert_eq!(yaml["default"]["interval"], 1000, "{yaml}");

    s.expect(
        "PUT",
        "/metadata/sources/random/confKeys/fast",
        Some(&json!({"interval": 20, "seed": 10, "pattern": {"a": 5, "tag": "r"}})),
        200,
    );
    let yaml = s.get_json("/metadata/sources/yaml/random");
    assert_eq!(yaml["fast"]["interval"], 20, "{yaml}");

    let t = unique("plugins/random");
    s.stream("CREATE STREAM rs () WITH (TYPE=\"random\", CONF_KEY=\"fast\", DATASOURCE=\"x\")");
    let sub = mqtt::subscribe(&format!("{t}/out"));
    s.rule(json!({
        "id": "rnd",
        "sql": "SELECT a, tag FROM rs",
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": format!("{t}/out"), "sendSingle": true}}]
    }));
    let got = sub.take_json(20, 15);
    let mut distinct = std::collections::BTreeSet::new();
    for m in &got {
        assert_eq!(m["tag"], "r", "{m}");
        let a = m["a"]
            .as_i64()
            .unwrap_or_else(|| panic!("a not an int: {m}"));
        assert!((5..15).contains(&a), "a = {a} outside [5, 15): {m}");
        assert_eq!(m.as_object().map(|o| o.len()), Some(2), "{m}");
        distinct.insert(a);
    }
    // seed 10: twenty draws are not all equal unless the source ignored its conf key.
    assert!(distinct.len() > 1, "no randomness in {got:?}");
    let st = s.status("rnd");
    assert_eq!(st["status"], "running", "{st}");
    assert!(st["source_rs_0_records_in_total"].as_u64().unwrap_or(0) >= 20);
    // The source instance's own calls and memory, in the rule status.
    assert!(
        st["source_rs_0_plugin_calls_total"].as_f64().unwrap_or(0.0) >= 1.0,
        "{st}"
    );
    assert!(
        st["source_rs_0_plugin_memory_peak_bytes"]
            .as_f64()
            .unwrap_or(0.0)
            >= 65_536.0,
        "{st}"
    );
    // Its calls are counted, in the plugin's status and in /metrics.
    let info = s.get_json("/plugins/sources/random");
    assert!(info["calls"]["calls"].as_u64().unwrap_or(0) > 0, "{info}");
    assert!(info["calls"]["guestMs"].as_f64().is_some(), "{info}");
    assert_eq!(info["calls"]["failures"], 0, "{info}");
    // Its memory high-water mark: at least one 64 KiB page, within the limit.
    let peak = info["calls"]["memoryPeakBytes"].as_u64().unwrap_or(0);
    assert!(peak >= 65_536, "{info}");
    assert!(peak <= 64 * 1024 * 1024, "{info}");
    assert!(info["instances"].as_u64().unwrap_or(0) >= 1, "{info}");
    let m = s.req("GET", "/metrics", None).body;
    let line = m
        .lines()
        .find(|l| l.starts_with("oort_plugin_calls_total{kind=\"source\",plugin=\"random\"}"))
        .unwrap_or_else(|| panic!("no plugin calls in /metrics:\n{m}"));
    let n: f64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(n > 0.0, "{line}");
    let line = m
        .lines()
        .find(|l| l.starts_with("oort_plugin_memory_peak_bytes{kind=\"source\",plugin=\"random\"}"))
        .unwrap_or_else(|| panic!("no plugin memory peak in /metrics:\n{m}"));
    assert!(line.ends_with(&format!(" {peak}")), "{line} vs {peak}");
}

// ---------------------------------------------------------------------------
// Install from a file:// zip, show, delete, restart
// ---------------------------------------------------------------------------

#[test]
fn install_show_delete_and_restart() {
    let site = Site::new("");
    // No built-in plugins on this server, so `random` can be installed.
    std::fs::write(
        site.path().join("oort.yaml"),
        format!("plugins:\n  builtin_dir: {}\n", site.empty_dir().display()),
    )
    .expect("config");
    let zip = random_zip(site.path());
    let s = site.start();
    assert_eq!(names(&s.get_json("/plugins/sources")), Vec::<String>::new());
    let kinds = s.get_json("/metadata/sources").to_string();
    assert!(!kinds.contains("random"), "{kinds}");

    // Bad installs: 400 with a message, nothing listed afterwards.
    let garbage = site.path().join("garbage.zip");
    std::fs::write(&garbage, b"this is not a zip").expect("write");
    let no_wasm = site.path().join("nowasm.zip");
    std::fs::write(
        &no_wasm,
        zip_of(&[("random.json", b"{\"name\":\"random\"}".as_slice())]),
    )
    .expect("write");
    let cases = [
        (
            json!({"name": "random", "file": file_uri(&garbage)}),
            "neither a zip package nor a WebAssembly component",
        ),
        (
            json!({"name": "random", "file": file_uri(&no_wasm)}),
            "no random.wasm",
        ),
        (
            json!({"name": "random", "file": file_uri(&site.path().join("missing.zip"))}),
            "cannot read",
        ),
        (
            json!({"name": "random", "file": file_uri(&zip), "sha256": "00".repeat(32)}),
            "sha256 mismatch",
        ),
        (
            json!({"name": "other", "file": file_uri(&zip)}),
            "other.wasm",
        ),
        (
            json!({"name": "random", "file": "ftp://example.com/random.zip"}),
            "unsupported URI",
        ),
    ];
    for (body, want) in &cases {
        let r = s.install("sources", body.clone());
        assert_eq!(r.status, 400, "{body} -> {} {}", r.status, r.body);
        let m = message(&r);
        assert!(m.contains(want), "{body}: message {m:?} lacks {want:?}");
    }
    assert_eq!(names(&s.get_json("/plugins/sources")), Vec::<String>::new());
    let leftovers: Vec<_> = std::fs::read_dir(site.path().join("data/plugins/.tmp"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "staging not cleaned: {leftovers:?}");

    // A good install, with the package's sha256.
    let zip_sha = sha256_of(&zip);
    let wasm_sha = sha256_of(&builtin_dist().join("random.wasm"));
    let r = s.install(
        "sources",
        json!({"name": "random", "file": file_uri(&zip), "sha256": zip_sha.to_uppercase()}),
    );
    assert_eq!(r.status, 201, "{}\nlog:\n{}", r.body, s.log());
    assert_eq!(r.body, "source plugin random is created");
    assert_eq!(names(&s.get_json("/plugins/sources")), vec!["random"]);
    let dup = s.install("sources", json!({"name": "random", "file": file_uri(&zip)}));
    assert_eq!(dup.status, 400, "{}", dup.body);
    assert!(message(&dup).contains("duplicate"), "{}", dup.body);

    let info = s.get_json("/plugins/sources/random");
    assert_eq!(info["version"], "0.1.0");
    assert_eq!(info["sha256"], wasm_sha.as_str());
    assert_eq!(info["package_sha256"], zip_sha.as_str());
    assert_eq!(info["state"], "installed");
    assert_eq!(info["builtin"], false);
    assert_eq!(info["rules"], json!([]));
    assert_eq!(info["conf_keys"]["default"]["interval"], 1000, "{info}");
    assert_eq!(s.req("GET", "/plugins/sinks/random", None).status, 404);

    // A rule that uses it.
    let t = unique("plugins/inst");
    s.expect(
        "PUT",
        "/metadata/sources/random/confKeys/k",
        Some(&json!({"interval": 50, "pattern": {"n": 7}})),
        200,
    );
    s.stream("CREATE STREAM r1 () WITH (TYPE=\"random\", CONF_KEY=\"k\", DATASOURCE=\"x\")");
    let sub = mqtt::subscribe(&format!("{t}/out"));
    s.rule(json!({
        "id": "uses_random",
        "sql": "SELECT n FROM r1",
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": format!("{t}/out"), "sendSingle": true}}]
    }));
    assert_eq!(sub.take_json(2, 10)[0], json!({"n": 7}));
    let info = s.get_json("/plugins/sources/random");
    assert_eq!(info["rules"], json!(["uses_random"]));

    // Upgrade in place with the same package: the rule restarts and runs on.
    let started = s.status("uses_random")["lastStartTimestamp"]
        .as_i64()
        .unwrap_or(0);
    std::thread::sleep(Duration::from_millis(20));
    let r = s.expect(
        "PUT",
        "/plugins/sources/random",
        Some(&json!({"name": "random", "file": file_uri(&zip)})),
        200,
    );
    assert_eq!(r.body, "source plugin random is updated");
    let st = s.status("uses_random");
    assert_eq!(st["status"], "running", "{st}");
    assert!(
        st["lastStartTimestamp"].as_i64().unwrap_or(0) > started,
        "the rule was not restarted on the upgraded plugin: {st}"
    );
    let r = s.req(
        "PUT",
        "/plugins/sources/random",
        Some(&json!({"name": "other", "file": file_uri(&zip)}).to_string()),
    );
    assert_eq!(r.status, 400, "{}", r.body);

    // Restart: the plugin, its conf key and the rule come back.
    s.terminate();
    let s = site.start();
    assert_eq!(names(&s.get_json("/plugins/sources")), vec!["random"]);
    let info = s.get_json("/plugins/sources/random");
    assert_eq!(info["state"], "installed", "{info}");
    assert_eq!(info["sha256"], wasm_sha.as_str());
    assert_eq!(info["builtin"], false);
    s.wait_status("uses_random", "rule running after restart", |st| {
        st["status"] == "running"
    });
    let sub = mqtt::subscribe(&format!("{t}/out"));
    assert_eq!(sub.take_json(2, 10)[1], json!({"n": 7}));

    // Delete is refused while the rule uses it and names the rule.
    let r = s.req("DELETE", "/plugins/sources/random", None);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(message(&r).contains("uses_random"), "{}", r.body);
    assert_eq!(s.status("uses_random")["status"], "running");
    assert_eq!(names(&s.get_json("/plugins/sources")), vec!["random"]);

    // ?force=1 stops the rule and deletes the plugin.
    let r = s.expect("DELETE", "/plugins/sources/random?force=1", None, 200);
    assert_eq!(r.body, "source plugin random is deleted");
    let st = s.status("uses_random");
    assert_eq!(st["status"], "stopped", "{st}");
    assert_eq!(names(&s.get_json("/plugins/sources")), Vec::<String>::new());
    assert_eq!(s.req("GET", "/plugins/sources/random", None).status, 404);
    assert_eq!(s.req("DELETE", "/plugins/sources/random", None).status, 404);
    assert!(!site.path().join("data/plugins/sources/random").exists());
    // Starting the rule again fails visibly: its source type is gone.
    let r = s.req("POST", "/rules/uses_random/start", None);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        message(&r).contains("source type random not found"),
        "{}",
        r.body
    );
    assert_ne!(s.status("uses_random")["status"], "running");

    // And it stays deleted across a restart.
    s.terminate();
    let s = site.start();
    assert_eq!(names(&s.get_json("/plugins/sources")), Vec::<String>::new());
}

#[test]
fn builtin_names_cannot_be_taken_and_bad_kinds_are_refused() {
    let site = Site::new("");
    let s = site.start();
    let zip = random_zip(site.path());
    let before = s.get_json("/plugins/sources");
    let r = s.install("sources", json!({"name": "random", "file": file_uri(&zip)}));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(message(&r).contains("duplicate"), "{}", r.body);
    // A native connector's name.
    let r = s.install("sources", json!({"name": "mqtt", "file": file_uri(&zip)}));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(message(&r).contains("built-in"), "{}", r.body);
    // A source package installed as a sink.
    let r = s.install("sinks", json!({"name": "random", "file": file_uri(&zip)}));
    assert_eq!(r.status, 400, "{}", r.body);
    let r = s.install("functions", json!({"name": "f", "file": file_uri(&zip)}));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(message(&r).contains("not supported"), "{}", r.body);
    let r = s.req("POST", "/plugins/sources", Some("{not json"));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(s.get_json("/plugins/sources"), before);
}

// ---------------------------------------------------------------------------
// NATS with and without grants
// ---------------------------------------------------------------------------

const NATS: &str = "127.0.0.1:4222";

fn nats_up() -> bool {
    NATS.parse()
        .ok()
        .and_then(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_millis(500)).ok())
        .is_some()
}

/// Publishes with the NATS text protocol and waits for the server's PONG.
fn nats_publish(subject: &str, payloads: &[String]) {
    let mut s = std::net::TcpStream::connect(NATS).expect("connect NATS");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut line = String::new();
    r.read_line(&mut line).expect("INFO");
    assert!(line.starts_with("INFO"), "{line}");
    let mut out = String::from("CONNECT {\"verbose\":false}\r\n");
    for p in payloads {
        out.push_str(&format!("PUB {subject} {}\r\n{p}\r\n", p.len()));
    }
    out.push_str("PING\r\n");
    s.write_all(out.as_bytes()).expect("write NATS");
    loop {
        line.clear();
        r.read_line(&mut line).expect("read NATS");
        assert!(!line.starts_with("-ERR"), "{line}");
        if line.starts_with("PONG") {
            return;
        }
    }
}

#[test]
fn nats_plugins_with_a_grant_carry_data() {
    if !nats_up() {
        eprintln!("SKIP: no NATS server on {NATS}");
        return;
    }
    let site = Site::new(&format!(
        "plugins:\n  grants:\n    nats:\n      outbound: [\"tcp://{NATS}\"]\n"
    ));
    let s = site.start();
    let info = s.get_json("/plugins/sources/nats");
    assert_eq!(
        info["permissions_granted"]["outbound"],
        json!([format!("tcp://{NATS}")])
    );
    let t = unique("plugins/nats");
    let subject = t.replace('/', ".");
    s.stream(&format!(
        "CREATE STREAM ns () WITH (TYPE=\"nats\", DATASOURCE=\"{subject}\")"
    ));
    let sub = mqtt::subscribe(&format!("{t}/out"));
    s.rule(json!({
        "id": "from_nats",
        "sql": "SELECT src, n FROM ns",
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": format!("{t}/out"), "sendSingle": true}}]
    }));
    s.wait_status("from_nats", "nats source connected", |st| {
        st["source_ns_0_connection_status"] == 1
    });
    // Raw NATS publish -> nats source plugin -> rule -> MQTT.
    nats_publish(
        &subject,
        &[
            r#"{"src":"raw","n":1}"#.into(),
            r#"{"src":"raw","n":2}"#.into(),
        ],
    );
    let got = sub.take_json(2, 10);
    assert_eq!(
        got,
        vec![json!({"src":"raw","n":1}), json!({"src":"raw","n":2})]
    );

    // random -> rule -> nats sink plugin -> NATS -> nats source -> MQTT.
    s.expect(
        "PUT",
        "/metadata/sources/random/confKeys/feed",
        Some(&json!({"interval": 50, "pattern": {"src": "sink", "n": 3}})),
        200,
    );
    s.stream("CREATE STREAM feed () WITH (TYPE=\"random\", CONF_KEY=\"feed\", DATASOURCE=\"x\")");
    s.rule(json!({
        "id": "to_nats",
        "sql": "SELECT * FROM feed",
        "actions": [{"nats": {"subject": subject, "sendSingle": true}}]
    }));
    let got = sub.take_json(3, 10);
    for m in &got {
        assert_eq!(m, &json!({"src":"sink","n":3}));
    }
    let st = s.wait_status("to_nats", "3 records out of the nats sink", |st| {
        st["sink_nats_0_0_records_out_total"].as_u64().unwrap_or(0) >= 3
    });
    assert_eq!(st["status"], "running", "{st}");
    let info = s.get_json("/plugins/sinks/nats");
    assert_eq!(info["rules"], json!(["to_nats"]));

    // A plugin sink takes its properties from a connection profile: first
    // one pointing at a port it may not reach (the rule fails naming it),
    // then, after the profile is fixed, the real server.
    let conn = unique("natsconn");
    s.expect(
        "POST",
        "/connections",
        Some(&json!({"id": conn, "typ": "nats", "props": {"server": "nats://127.0.0.1:4299"}})),
        201,
    );
    s.rule(json!({
        "id": "to_nats_profile",
        "sql": "SELECT * FROM feed",
        "actions": [{"nats": {"connectionSelector": conn, "subject": subject, "sendSingle": true}}]
    }));
    let st = s.wait_status("to_nats_profile", "stopped by error", |st| {
        st["status"] == "stopped by error"
    });
    assert!(
        st["message"].as_str().unwrap_or_default().contains("4299"),
        "the profile's server did not reach the plugin: {st}"
    );
    s.expect(
        "PUT",
        &format!("/connections/{conn}"),
        Some(&json!({"typ": "nats", "props": {"server": format!("nats://{NATS}")}})),
        200,
    );
    s.expect("POST", "/rules/to_nats_profile/restart", None, 200);
    s.wait_status("to_nats_profile", "records out through the profile", |st| {
        st["sink_nats_0_0_records_out_total"].as_u64().unwrap_or(0) >= 2
    });
}

#[test]
fn nats_plugins_without_a_grant_fail_visibly() {
    if !nats_up() {
        eprintln!("SKIP: no NATS server on {NATS}");
        return;
    }
    let site = Site::new("");
    let s = site.start();
    let info = s.get_json("/plugins/sources/nats");
    assert_eq!(
        info["permissions_requested"]["outbound"],
        json!(["tcp://*:*"])
    );
    assert_eq!(info["permissions_granted"]["outbound"], json!([]));
    let t = unique("plugins.denied");
    s.stream(&format!(
        "CREATE STREAM ns () WITH (TYPE=\"nats\", DATASOURCE=\"{t}\")"
    ));
    s.rule(json!({"id": "src_denied", "sql": "SELECT * FROM ns", "actions": [{"log": {}}]}));
    let st = s.wait_status("src_denied", "stopped by error", |st| {
        st["status"] == "stopped by error"
    });
    let m = st["message"].as_str().unwrap_or_default();
    assert!(m.contains("plugin nats") && m.contains(NATS), "{st}");
    s.stream("CREATE STREAM mem () WITH (TYPE=\"memory\", DATASOURCE=\"x\")");
    s.rule(json!({"id": "sink_denied", "sql": "SELECT * FROM mem",
        "actions": [{"nats": {"subject": t}}]}));
    let st = s.wait_status("sink_denied", "stopped by error", |st| {
        st["status"] == "stopped by error"
    });
    let m = st["message"].as_str().unwrap_or_default();
    assert!(m.contains("plugin nats") && m.contains(NATS), "{st}");
    // The operator sees at start-up what was asked for and not granted.
    let log = s.log();
    assert!(
        log.contains("not granted (grant them under plugins.grants.nats): outbound tcp://*:*"),
        "the missing grant is not logged:\n{log}"
    );
}

/// Grants given in the install request: `tcpsink` may reach one port only.
#[test]
fn grants_in_the_install_request_open_exactly_that_address() {
    let site = Site::new("");
    let s = site.start();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let other = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let other_addr = other.local_addr().expect("addr").to_string();
    let r = s.install(
        "sinks",
        json!({"name": "tcpsink", "file": file_uri(&test_plugin("tcpsink")),
               "grants": {"outbound": [format!("tcp://{addr}")]}}),
    );
    assert_eq!(r.status, 201, "{}\nlog:\n{}", r.body, s.log());
    let info = s.get_json("/plugins/sinks/tcpsink");
    assert_eq!(info["version"], "0.2.0");
    assert_eq!(
        info["permissions_granted"]["outbound"],
        json!([format!("tcp://{addr}")])
    );
    s.expect(
        "PUT",
        "/metadata/sources/random/confKeys/k",
        Some(&json!({"interval": 50, "pattern": {"v": 1}})),
        200,
    );
    s.stream("CREATE STREAM rs () WITH (TYPE=\"random\", CONF_KEY=\"k\", DATASOURCE=\"x\")");
    s.rule(json!({"id": "granted", "sql": "SELECT v FROM rs",
        "actions": [{"tcpsink": {"address": addr, "sendSingle": true}}]}));
    let (conn, _) = listener.accept().expect("the plugin connects");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut lines = BufReader::new(conn).lines();
    for _ in 0..3 {
        let l = lines.next().expect("a line").expect("read");
        assert_eq!(l, r#"{"v":1}"#);
    }
    // The context names the rule and the node as the rule status does
    // (`sink_tcpsink_0_0_*`: node `sink_tcpsink_0`, instance 0).
    s.wait_log("the context line", |l| {
        l.contains("context granted/sink_tcpsink_0#0")
    });
    // The same plugin to an address it was not granted. `tcpsink` reports a
    // failed connect as `unavailable`, so the rule keeps retrying: the refusal
    // shows in the sink's connection status and exceptions.
    s.rule(json!({"id": "refused", "sql": "SELECT v FROM rs",
        "actions": [{"tcpsink": {"address": other_addr, "sendSingle": true}}]}));
    let st = s.wait_status("refused", "refused connect visible", |st| {
        st["sink_tcpsink_0_0_exceptions_total"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    });
    assert_eq!(st["sink_tcpsink_0_0_connection_status"], -1, "{st}");
    assert_eq!(st["sink_tcpsink_0_0_records_out_total"], 0, "{st}");
    let m = st["sink_tcpsink_0_0_connection_last_disconnected_message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        m.contains("plugin tcpsink") && m.contains(&other_addr),
        "{st}"
    );
    s.wait_log("the denial", |l| {
        l.contains("network access denied") && l.contains(&other_addr)
    });
    other.set_nonblocking(true).expect("nonblocking");
    assert!(other.accept().is_err(), "the refused address was reached");
    assert_eq!(s.status("granted")["status"], "running");
}

// ---------------------------------------------------------------------------
// Hostile plugins
// ---------------------------------------------------------------------------

#[test]
fn a_looping_or_hogging_plugin_stops_only_its_rule() {
    let site = Site::new("plugins:\n  call_timeout_ms: 500\n  memory_limit_mb: 32\n");
    let s = site.start();
    for p in ["spin", "hog"] {
        let r = s.install(
            "sources",
            json!({"name": p, "file": file_uri(&test_plugin(p))}),
        );
        assert_eq!(r.status, 201, "{p}: {}\nlog:\n{}", r.body, s.log());
    }
    let t = unique("plugins/hostile");
    s.expect(
        "PUT",
        "/metadata/sources/random/confKeys/k",
        Some(&json!({"interval": 50, "pattern": {"ok": 1}})),
        200,
    );
    s.stream("CREATE STREAM good () WITH (TYPE=\"random\", CONF_KEY=\"k\", DATASOURCE=\"x\")");
    s.stream("CREATE STREAM looping () WITH (TYPE=\"spin\", DATASOURCE=\"x\")");
    s.stream("CREATE STREAM hogging () WITH (TYPE=\"hog\", DATASOURCE=\"x\")");
    let sub = mqtt::subscribe(&format!("{t}/out"));
    s.rule(json!({
        "id": "good",
        "sql": "SELECT ok FROM good",
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": format!("{t}/out"), "sendSingle": true}}]
    }));
    s.rule(json!({"id": "loop", "sql": "SELECT * FROM looping", "actions": [{"log": {}}]}));
    s.rule(json!({"id": "hog", "sql": "SELECT * FROM hogging", "actions": [{"log": {}}]}));
    sub.take(1, 10);

    let st = s.wait_status("loop", "loop stopped by error", |st| {
        st["status"] == "stopped by error"
    });
    let m = st["message"].as_str().unwrap_or_default();
    assert!(m.contains("plugin spin") && m.contains("deadline"), "{st}");
    let st = s.wait_status("hog", "hog stopped by error", |st| {
        st["status"] == "stopped by error"
    });
    let m = st["message"].as_str().unwrap_or_default();
    assert!(m.contains("plugin hog") && m.contains("memory"), "{st}");

    // The good rule keeps running and delivering after both failures.
    while sub.rx.try_recv().is_ok() {}
    let after = sub.take_json(5, 10);
    assert!(after.iter().all(|m| m == &json!({"ok": 1})), "{after:?}");
    assert_eq!(s.status("good")["status"], "running");
    // The server itself is fine.
    assert_eq!(s.req("GET", "/ping", None).status, 200);
    assert_eq!(
        s.get_json("/plugins/sources/spin")["rules"],
        json!(["loop"])
    );
    // A rule stopped by error still refers to the plugin; force deletes it.
    let r = s.req("DELETE", "/plugins/sources/spin", None);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(message(&r).contains("loop"), "{}", r.body);
    s.expect("DELETE", "/plugins/sources/spin?force=1", None, 200);
    s.expect("DELETE", "/plugins/sources/hog?force=1", None, 200);
    let left = names(&s.get_json("/plugins/sources"));
    assert!(
        !left.contains(&"spin".to_string()) && !left.contains(&"hog".to_string()),
        "{left:?}"
    );
    assert_eq!(s.status("good")["status"], "running");
}

/// Pings `/ping` in a loop on its own thread; `p99` stops it.
struct Pinger {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<Vec<Duration>>,
}

impl Pinger {
    fn start(base: &str) -> Pinger {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, url) = (stop.clone(), format!("{base}/ping"));
        let handle = std::thread::spawn(move || {
            let http = reqwest::blocking::Client::new();
            let mut v = Vec::new();
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                let ok = http.get(&url).send().map(|r| r.status().is_success());
                v.push(if ok.unwrap_or(false) {
                    t.elapsed()
                } else {
                    Duration::from_secs(60)
                });
                std::thread::sleep(Duration::from_millis(10));
            }
            v
        });
        Pinger { stop, handle }
    }

    fn p99(self) -> (Duration, usize) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut v = self.handle.join().expect("pinger");
        v.sort();
        (v[(v.len() * 99 / 100).min(v.len() - 1)], v.len())
    }
}

/// `sink_<kind>_<i>_..._records_in_total` of a rule status.
fn sink_records_in(st: &Json) -> u64 {
    st.as_object()
        .and_then(|o| {
            o.iter()
                .find(|(k, _)| k.starts_with("sink_") && k.ends_with("_records_in_total"))
        })
        .and_then(|(_, v)| v.as_u64())
        .unwrap_or(0)
}

/// The neighbour rule's sink count, sampled on its own thread; `longest_gap`
/// stops it and returns the longest time the count did not move.
struct Mover {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<Duration>,
}

impl Mover {
    fn start(base: &str, rule: &str) -> Mover {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, url) = (stop.clone(), format!("{base}/rules/{rule}/status"));
        let handle = std::thread::spawn(move || {
            let http = reqwest::blocking::Client::new();
            let (mut last, mut moved, mut gap) = (0u64, Instant::now(), Duration::ZERO);
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let n = http
                    .get(&url)
                    .send()
                    .and_then(|r| r.json::<Json>())
                    .ok()
                    .map(|j| sink_records_in(&j))
                    .unwrap_or(last);
                if n > last {
                    last = n;
                    moved = Instant::now();
                }
                gap = gap.max(moved.elapsed());
                std::thread::sleep(Duration::from_millis(20));
            }
            gap
        });
        Mover { stop, handle }
    }

    fn longest_gap(self) -> Duration {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.join().expect("mover")
    }
}

/// Every attack of the hostile plugins, one after the other, beside a
/// healthy rule: REST (`/ping` p99) must stay under 500 ms and the
/// neighbour must never stop moving for a second (sampled through REST); a stopped or deleted
/// rule's spinning plugin is interrupted at once, not at its deadline.
#[test]
fn hostile_plugins_stall_neither_rest_nor_a_neighbour_rule() {
    let site = Site::new(
        "plugins:\n  call_timeout_ms: 3000\n  memory_limit_mb: 32\n  log_lines_per_sec: 50\n",
    );
    let s = site.start();
    let r = s.install(
        "sources",
        json!({"name": "hostile", "file": file_uri(&test_plugin("hostile"))}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = s.install(
        "sinks",
        json!({"name": "hostilesink", "file": file_uri(&test_plugin("hostilesink"))}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    // The neighbour reads a native source: the plugin pool is shared by
    // design; what must not suffer is everything outside it.
    s.expect(
        "PUT",
        "/metadata/sources/simulator/confKeys/fast",
        Some(&json!({"data": [{"ok": 1}], "interval": "5ms", "loop": true})),
        200,
    );
    s.stream("CREATE STREAM calm () WITH (TYPE=\"simulator\", CONF_KEY=\"fast\")");
    for a in ["spin-validate", "spin-open", "spin-read", "flood", "grow"] {
        s.expect(
            "PUT",
            &format!("/metadata/sources/hostile/confKeys/{}", a.replace('-', "_")),
            Some(&json!({"attack": a})),
            200,
        );
        if a == "spin-validate" {
            // Stream creation validates its source: this one is refused at
            // its deadline below, while REST and the neighbour are watched.
            continue;
        }
        s.stream(&format!(
            "CREATE STREAM {} () WITH (TYPE=\"hostile\", CONF_KEY=\"{}\", DATASOURCE=\"x\")",
            a.replace('-', "_"),
            a.replace('-', "_")
        ));
    }
    s.rule(json!({"id": "neighbour", "sql": "SELECT ok FROM calm", "actions": [{"nop": {}}]}));
    s.wait_status("neighbour", "neighbour moving", |st| {
        sink_records_in(st) > 10
    });
    let pinger = Pinger::start(&s.base);
    let mover = Mover::start(&s.base, "neighbour");

    // validate spins while streams are created (a stream's source is
    // validated at creation): four at once, each refused at its deadline,
    // none holding up the others or REST.
    let creators: Vec<_> = (0..4)
        .map(|i| {
            let url = format!("{}/streams", s.base);
            std::thread::spawn(move || {
                let body = json!({"sql": format!("CREATE STREAM spin_validate_{i} () WITH (TYPE=\"hostile\", CONF_KEY=\"spin_validate\", DATASOURCE=\"x\")")});
                let r = reqwest::blocking::Client::new().post(url).json(&body).send().unwrap();
                (r.status().as_u16(), r.text().unwrap_or_default())
            })
        })
        .collect();
    for c in creators {
        let (status, body) = c.join().unwrap();
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("deadline"), "{body}");
    }

    // Busy loops in open, read (source) and write (sink): deleting the rule
    // interrupts the call at once, well before its 3 s deadline.
    let spinners = [
        ("spin_open", "SELECT * FROM spin_open", json!({"nop": {}})),
        ("spin_read", "SELECT * FROM spin_read", json!({"nop": {}})),
        (
            "spin_write",
            "SELECT ok FROM calm",
            json!({"hostilesink": {"attack": "spin-write"}}),
        ),
    ];
    for (id, sql, action) in spinners {
        s.rule(json!({"id": id, "sql": sql, "actions": [action]}));
        std::thread::sleep(Duration::from_millis(500));
        let t = Instant::now();
        s.expect("DELETE", &format!("/rules/{id}"), None, 200);
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "{id}: delete took {:?}",
            t.elapsed()
        );
    }

    // A log flood is cut to the rate limit and counted.
    s.rule(json!({"id": "flood", "sql": "SELECT * FROM flood", "actions": [{"nop": {}}]}));
    s.wait_status("flood", "flood reading", |st| {
        st["source_flood_0_records_in_total"].as_u64().unwrap_or(0) > 3
    });
    // The flood goes on: wait (bounded) until the counter shows it was cut.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = s.get_json("/plugins/sources/hostile");
        if info["log_lines_dropped"].as_u64().unwrap_or(0) > 10_000 {
            break;
        }
        assert!(Instant::now() < deadline, "{info}");
        std::thread::sleep(Duration::from_millis(100));
    }
    s.expect("DELETE", "/rules/flood", None, 200);

    // Memory growth stops only its own rule.
    s.rule(json!({"id": "grow", "sql": "SELECT * FROM grow", "actions": [{"nop": {}}]}));
    let st = s.wait_status("grow", "grow stopped by error", |st| {
        st["status"] == "stopped by error"
    });
    assert!(
        st["message"]
            .as_str()
            .unwrap_or_default()
            .contains("memory"),
        "{st}"
    );

    // A sink write refused as unauthorized stops its rule with the message.
    s.rule(json!({"id": "unauth", "sql": "SELECT ok FROM calm", "actions": [{"hostilesink": {"attack": "unauthorized"}}]}));
    let st = s.wait_status("unauth", "unauth stopped by error", |st| {
        st["status"] == "stopped by error"
    });
    let m = st["message"].as_str().unwrap_or_default();
    assert!(
        m.contains("refused our credentials") && m.contains("the rule stops"),
        "{st}"
    );

    let gap = mover.longest_gap();
    let (p99, n) = pinger.p99();
    eprintln!("hostile suite: REST p99 {p99:?} over {n} pings, neighbour's longest pause {gap:?}");
    assert!(
        p99 < Duration::from_millis(500),
        "REST p99 {p99:?} over {n} pings\nlog:\n{}",
        s.log()
    );
    assert!(
        gap < Duration::from_secs(1),
        "the neighbour rule stood still for {gap:?}"
    );
    assert_eq!(s.status("neighbour")["status"], "running");
}

/// `random.wasm` with an extra custom section: same plugin, another sha256.
fn random_v2_zip(dir: &Path) -> PathBuf {
    let dist = builtin_dist();
    let read = |f: &str| std::fs::read(dist.join(f)).expect("dist file");
    let mut w = read("random.wasm");
    let name = b"oort-test";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(b"v2");
    w.push(0); // custom section
    w.push(payload.len() as u8);
    w.extend_from_slice(&payload);
    let p = dir.join("random-v2.zip");
    std::fs::write(
        &p,
        zip_of(&[
            ("random.wasm", &w),
            ("random.json", &read("random.json")),
            ("random.yaml", &read("random.yaml")),
        ]),
    )
    .expect("write zip");
    p
}

#[test]
fn an_upgraded_builtin_plugin_survives_a_restart() {
    let site = Site::new("");
    let zip = random_v2_zip(site.path());
    let s = site.start();
    let shipped = s.get_json("/plugins/sources/random")["sha256"].clone();
    s.expect(
        "PUT",
        "/plugins/sources/random",
        Some(&json!({"name": "random", "file": file_uri(&zip)})),
        200,
    );
    let upgraded = s.get_json("/plugins/sources/random")["sha256"].clone();
    assert_ne!(upgraded, shipped);
    s.terminate();
    let s = site.start();
    let info = s.get_json("/plugins/sources/random");
    assert_eq!(
        info["sha256"], upgraded,
        "the operator's upgrade was reverted: {info}"
    );
}

// ---------------------------------------------------------------------------
// Offsets: a rewindable plugin source resumes from its last checkpoint
// ---------------------------------------------------------------------------

/// Numbers after `marker` on lines containing `marker` (e.g. `committed 12`).
fn numbers_after(log: &str, marker: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|l| {
            let at = l.find(marker)? + marker.len();
            let digits: String = l[at..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

#[test]
fn a_rewindable_plugin_source_resumes_from_its_last_checkpoint() {
    let site = Site::new("");
    let s = site.start();
    let r = s.install(
        "sources",
        json!({"name": "counter", "file": file_uri(&test_plugin("counter"))}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    s.stream("CREATE STREAM cnt () WITH (TYPE=\"counter\", DATASOURCE=\"c\")");
    // A rule without checkpoints commits nothing.
    s.rule(json!({
        "id": "plain",
        "sql": "SELECT n FROM cnt",
        "actions": [{"nop": {}}],
        "options": {"qos": 0}
    }));
    s.wait_status("plain", "20 records", |st| {
        st["source_cnt_0_records_in_total"].as_u64().unwrap_or(0) >= 20
    });
    // A stream's source serves every rule on it: the context names the
    // stream and the node as the rule status does (`source_cnt_0_*`).
    s.wait_log("the context line", |l| {
        l.contains("context cnt/source_cnt#0")
    });
    assert!(
        numbers_after(&s.log(), "committed ").is_empty(),
        "a qos 0 rule committed offsets:\n{}",
        s.log()
    );
    assert!(
        s.status("plain")
            .get("source_cnt_0_committed_offset")
            .is_none(),
        "{}",
        s.status("plain")
    );
    s.expect("DELETE", "/rules/plain", None, 200);

    s.rule(json!({
        "id": "ckpt",
        "sql": "SELECT n FROM cnt",
        "actions": [{"log": {"sendSingle": true}}],
        "options": {"qos": 1, "checkpointInterval": 100}
    }));
    // Wait until the plugin has seen a few commits, then kill the server.
    let deadline = Instant::now() + Duration::from_secs(30);
    while numbers_after(&s.log(), "committed ").len() < 5 {
        assert!(Instant::now() < deadline, "no commits:\n{}", s.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // The committed offset is visible in the rule's status.
    let st = s.wait_status("ckpt", "a committed offset", |st| {
        st["source_cnt_0_committed_offset"]
            .as_str()
            .and_then(|o| o.parse::<u64>().ok())
            .is_some_and(|o| o >= 5)
    });
    assert_eq!(st["status"], "running", "{st}");
    let lines = s.log.clone();
    drop(s); // SIGKILL: no clean shutdown
    std::thread::sleep(Duration::from_millis(300)); // the pipes drain
    let log = lines.lock().map(|g| g.join("\n")).unwrap_or_default();
    let committed = numbers_after(&log, "committed ")
        .into_iter()
        .max()
        .unwrap_or(0);
    let written = numbers_after(&log, r#"{"n":"#)
        .into_iter()
        .max()
        .unwrap_or(0);
    let s2 = site.start();
    let deadline = Instant::now() + Duration::from_secs(30);
    let resumed = loop {
        let opens = numbers_after(&s2.log(), "open at ");
        if let Some(&o) = opens.first() {
            break o;
        }
        assert!(Instant::now() < deadline, "no open:\n{}", s2.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        resumed >= committed && resumed >= 5 && resumed <= written,
        "the source restarted from {resumed}; committed {committed}, written {written}:\n{}",
        s2.log()
    );
    // At least once: the first result after the restart is the one after
    // the committed offset, nothing in between is lost.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = numbers_after(&s2.log(), r#"{"n":"#);
        if let Some(&first) = seen.first() {
            assert_eq!(first, resumed + 1, "{seen:?}\n{}", s2.log());
            break;
        }
        assert!(Instant::now() < deadline, "no results:\n{}", s2.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `oort plugin check` (no server): a good package passes every stage and
/// its conf keys validate; each kind of mistake fails at its own stage with
/// the message an install would give, and the exit code says so.
#[test]
fn plugin_check_reports_each_stage_and_names_the_failing_one() {
    let dist = builtin_dist();
    let check = |args: &[&str]| {
        let o = Command::new(oort_bin())
            .args(["plugin", "check"])
            .args(args)
            .output()
            .expect("run oort plugin check");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let random = dist.join("random.wasm").display().to_string();

    // The shipped plugin, with its manifest and conf keys beside it.
    let (code, out) = check(&[&random]);
    assert_eq!(code, Some(0), "{out}");
    for stage in [
        "name",
        "package",
        "kind",
        "manifest",
        "compile",
        "contract",
        "describe",
        "permissions",
        "validate",
    ] {
        assert!(
            out.contains(&format!("ok   {stage}")),
            "{stage} missing:\n{out}"
        );
    }
    assert!(out.contains("conf key default: accepted"), "{out}");
    // --zip makes the package, which checks the same.
    let zip = dir.path().join("random.zip");
    let (code, out) = check(&[&random, "--zip", &zip.display().to_string()]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = check(&[&zip.display().to_string(), "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let report: Json = serde_json::from_str(&out).expect("JSON report");
    assert_eq!(report["passed"], true);
    assert_eq!(report["kind"], "source");

    // validate refuses a sample: exit 1, the property named.
    let (code, out) = check(&[&random, "--props", r#"{"interval": -1}"#]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FAIL validate") && out.contains("interval must be positive"),
        "{out}"
    );

    // Wrong kind: the contract stage names the export it lacks.
    let bare = dir.path().join("rnd.wasm");
    std::fs::copy(dist.join("random.wasm"), &bare).expect("copy");
    let (code, out) = check(&[&bare.display().to_string(), "--kind", "sink"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FAIL contract") && out.contains("oort:connector/sink@0.1.0"),
        "{out}"
    );
    // A bare component without a manifest: the kind comes from its export.
    let (code, out) = check(&[&bare.display().to_string()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("source (from the component's exports)"),
        "{out}"
    );
    assert!(
        out.contains("FAIL describe") && out.contains("name mismatch"),
        "{out}"
    );

    // A native connector's name.
    let mqtt = dir.path().join("mqtt.wasm");
    std::fs::copy(dist.join("random.wasm"), &mqtt).expect("copy");
    let (code, out) = check(&[&mqtt.display().to_string(), "--kind", "source"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FAIL name") && out.contains("native connector"),
        "{out}"
    );

    // A core module is not a component.
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").expect("write");
    let (code, out) = check(&[&core.display().to_string()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FAIL package") && out.contains("core WebAssembly module"),
        "{out}"
    );

    // A manifest that does not parse.
    let m = dir.path().join("broken.wasm");
    std::fs::copy(dist.join("random.wasm"), &m).expect("copy");
    std::fs::write(dir.path().join("broken.json"), b"{\"version\": ").expect("write");
    let (code, out) = check(&[&m.display().to_string(), "--kind", "source"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FAIL manifest") && out.contains("broken.json is invalid"),
        "{out}"
    );
}

/// A server on 127.0.0.1 that answers every request after reading its head
/// (and `Content-Length` body) with `answer`, or never answers (`None`).
fn raw_http_server(answer: Option<&'static str>) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(c) = conn else { continue };
            std::thread::spawn(move || {
                let mut w = c.try_clone().expect("clone");
                let mut r = BufReader::new(c);
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 {
                        return;
                    }
                    let h = h.trim_end().to_ascii_lowercase();
                    if let Some(v) = h.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    if h.is_empty() {
                        break;
                    }
                }
                let mut body = vec![0u8; len];
                let _ = r.read_exact(&mut body);
                match answer {
                    Some(a) => {
                        let _ = w.write_all(a.as_bytes());
                    }
                    None => std::thread::sleep(Duration::from_secs(30)),
                }
            });
        }
    });
    addr
}

/// `wasi:http` for plugins: a request the grants cover goes out (the SDK's
/// client, a declared body length), one they do not is refused before any
/// connection and logged, a response larger than the cap and a peer that
/// never answers fail the write within the host's limits, as counted
/// exceptions with the reason in the sink's status.
#[test]
fn plugins_send_http_only_where_granted_and_within_limits() {
    let site = Site::new("plugins:\n  http_timeout_ms: 500\n  http_max_response_kb: 1\n");
    let s = site.start();
    let peer = oort_tests::http_peer::HttpPeer::start();
    let granted = peer.base.trim_start_matches("http://").to_string();
    let big = raw_http_server(Some(Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n{}",
            "x".repeat(4096)
        )
        .into_boxed_str(),
    )));
    let silent = raw_http_server(None);
    let denied = oort_tests::http_peer::HttpPeer::start();
    let r = s.install(
        "sinks",
        json!({"name": "httpsink", "file": file_uri(&test_plugin("httpsink")),
               "grants": {"outbound": [
                   format!("http://{granted}"), format!("http://{big}"), format!("http://{silent}")]}}),
    );
    assert_eq!(r.status, 201, "{}\nlog:\n{}", r.body, s.log());
    s.expect(
        "PUT",
        "/metadata/sources/random/confKeys/k",
        Some(&json!({"interval": 50, "pattern": {"v": 1}})),
        200,
    );
    s.stream("CREATE STREAM rs () WITH (TYPE=\"random\", CONF_KEY=\"k\", DATASOURCE=\"x\")");
    s.rule(json!({"id": "granted", "sql": "SELECT v FROM rs",
        "actions": [{"httpsink": {"url": format!("{}/in?x=1", peer.base), "sendSingle": true}}]}));
    let got = peer.wait_accepted(3, 20);
    assert!(got.len() >= 3, "the peer got {got:?}\nlog:\n{}", s.log());
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].path, "/in?x=1");
    assert_eq!(got[0].body, br#"{"v":1}"#);
    assert_eq!(got[0].header("content-type"), Some("text/plain"));
    // The plugin instance's own figures are in the rule status, per node.
    let st = s.wait_status("granted", "plugin metrics", |st| {
        st["sink_httpsink_0_0_plugin_calls_total"]
            .as_f64()
            .unwrap_or(0.0)
            >= 3.0
    });
    assert!(
        st["sink_httpsink_0_0_plugin_guest_ms"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0,
        "{st}"
    );
    assert_eq!(st["sink_httpsink_0_0_plugin_failures_total"], 0.0, "{st}");
    assert_eq!(
        st["sink_httpsink_0_0_plugin_interruptions_total"], 0.0,
        "{st}"
    );
    assert!(
        st["sink_httpsink_0_0_plugin_memory_peak_bytes"]
            .as_f64()
            .unwrap_or(0.0)
            >= 65536.0,
        "{st}"
    );

    let failing = |id: &str, url: String, why: &str| {
        s.rule(json!({"id": id, "sql": "SELECT v FROM rs",
            "actions": [{"httpsink": {"url": url, "sendSingle": true}}]}));
        let st = s.wait_status(id, why, |st| {
            st["sink_httpsink_0_0_exceptions_total"]
                .as_u64()
                .unwrap_or(0)
                >= 1
        });
        assert_eq!(st["sink_httpsink_0_0_records_out_total"], 0, "{st}");
        st.to_string()
    };
    let st = failing("denied", format!("{}/x", denied.base), "a denied request");
    assert!(
        st.contains("HttpRequestDenied")
            && st.contains("not covered by the plugin's outbound grants"),
        "{st}"
    );
    s.wait_log("the denial", |l| {
        l.contains("HTTP request denied") && l.contains(denied.base.trim_start_matches("http://"))
    });
    assert!(denied.accepted().is_empty(), "the denied peer was reached");

    let st = failing("big", format!("http://{big}/x"), "a response over the cap");
    assert!(st.contains("HttpResponseBodySize"), "{st}");
    let started = Instant::now();
    let st = failing(
        "silent",
        format!("http://{silent}/x"),
        "a peer that never answers",
    );
    assert!(st.contains("Timeout"), "{st}");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(s.status("granted")["status"], "running");
}

/// `PUT /plugins/{kind}/{name}/package`: the package in the body installs
/// (201), then upgrades in place keeping the operator's grants (200); a
/// package that is not the named plugin, an empty body or another kind are
/// refused with the reason, and nothing is installed.
#[test]
fn a_package_uploaded_in_the_body_installs_and_upgrades() {
    let site = Site::new("");
    let s = site.start();
    let tcpsink = std::fs::read(test_plugin("tcpsink")).expect("tcpsink.wasm");
    let put = |path: &str, body: Vec<u8>| {
        let r = reqwest::blocking::Client::new()
            .put(format!("{}{path}", s.base))
            .body(body)
            .send()
            .expect("put");
        (r.status().as_u16(), r.text().unwrap_or_default())
    };
    let (code, body) = put("/plugins/sinks/tcpsink/package", tcpsink.clone());
    assert_eq!(code, 201, "{body}");
    assert!(body.contains("sink plugin tcpsink is created"), "{body}");
    // Grants given later by an install request are kept by an upload upgrade.
    let r = s.req(
        "PUT",
        "/plugins/sinks/tcpsink",
        Some(
            &json!({"name": "tcpsink", "file": file_uri(&test_plugin("tcpsink")),
                    "grants": {"outbound": ["tcp://127.0.0.1:9"]}})
            .to_string(),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let (code, body) = put("/plugins/sinks/tcpsink/package", tcpsink);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("is updated"), "{body}");
    let info = s.get_json("/plugins/sinks/tcpsink");
    assert_eq!(
        info["operator_grants"]["outbound"],
        json!(["tcp://127.0.0.1:9"]),
        "{info}"
    );
    assert_eq!(info["version"], "0.2.0");

    let random = std::fs::read(builtin_dist().join("random.wasm")).expect("random.wasm");
    let (code, body) = put("/plugins/sources/other/package", random);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("name mismatch"), "{body}");
    assert_eq!(s.req("GET", "/plugins/sources/other", None).status, 404);
    let (code, body) = put("/plugins/sinks/empty/package", Vec::new());
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("must be the package"), "{body}");
    let (code, body) = put("/plugins/functions/f/package", b"x".to_vec());
    assert_eq!(code, 400, "{body}");
}
