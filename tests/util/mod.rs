//! Helpers for end-to-end tests: start the real `oort` binary on a free port
//! with a temporary data dir, talk to it over HTTP, publish and subscribe on
//! the local Mosquitto with unique topic prefixes.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

pub mod broker;
pub mod certs;
pub mod http_peer;

/// Path of the `oort` binary: `$OORT_BIN`, else built once per test process.
pub fn oort_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("OORT_BIN") {
            return PathBuf::from(p);
        }
        let root = workspace_root();
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "oort", "--bin", "oort"])
            .current_dir(&root)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p oort failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        target.join("debug").join("oort")
    })
    .clone()
}

/// The plugin toolchains of scripts/toolchains.sh: `$OORT_TOOLCHAINS` (as
/// scripts/test.sh sets it), else `target/toolchains`. Panics unless
/// `needs` (a path under it; "" for the directory itself) exists, naming
/// the `scripts/toolchains.sh` command (`install`) that provides it.
pub fn toolchains(needs: &str, install: &str) -> PathBuf {
    let tc = std::env::var_os("OORT_TOOLCHAINS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/toolchains"));
    let what = if needs.is_empty() {
        "plugin toolchains"
    } else {
        needs
    };
    assert!(
        tc.join(needs).exists(),
        "no {what} under {}: run {install} (scripts/test.sh does) or set OORT_TOOLCHAINS",
        tc.display()
    );
    tc
}

/// Runs `cmd` and returns its output; panics naming `what`, with both
/// output streams, when it cannot start or fails.
pub fn run_ok(cmd: &mut Command, what: &str) -> std::process::Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        o.status.success(),
        "{what} failed ({}):\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The port from the server's "REST API listening" line (plain or JSON log).
fn listening_port(log: &Mutex<Vec<String>>) -> Option<u16> {
    let g = log.lock().ok()?;
    let line = g.iter().find(|l| l.contains("REST API listening"))?;
    let at = line.find("addr")? + 4;
    let addr: String = line[at..]
        .trim_start_matches(['=', '"', ':'])
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != ',')
        .collect();
    addr.rsplit(':').next()?.parse().ok()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Runs `oort ARGS --port <the server's>` (the CLI as a REST client).
pub fn cli(s: &Server, args: &[&str]) -> std::process::Output {
    let port = s.port.to_string();
    Command::new(oort_bin())
        .args(args)
        .args(["--port", &port])
        .env_remove("OORT_SERVER")
        .output()
        .expect("run oort")
}

/// A unique prefix for topics, keys and ids of one test.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// Waits until a line of `log()` satisfies `pred` and returns the whole log.
/// A server's log reaches a test through reader threads on its pipes, so a
/// line written just before a status change can arrive after it: assertions
/// on the log wait for their line instead of reading it once.
pub fn wait_log_line(log: impl Fn() -> String, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = log();
        if text.lines().any(&pred) {
            return text;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for the log to show {what}; log:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running server. Killed on drop; its log is kept for failure messages.
/// How a test server is started.
#[derive(Clone)]
pub struct Opts {
    /// Address to bind (the port is chosen); requests go to 127.0.0.1.
    pub bind: String,
    /// Extra environment, e.g. `OORT__REST__TOKEN`.
    pub env: Vec<(String, String)>,
    /// The server's default outbound policy, without the harness's
    /// allowances (the system temp dir for `file://`, 127.0.0.1 for http).
    pub strict: bool,
    /// Sent as `Authorization: Bearer <token>` on every request.
    pub token: Option<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            bind: "127.0.0.1".into(),
            env: Vec::new(),
            strict: false,
            token: None,
        }
    }
}

impl Opts {
    fn headers(&self) -> reqwest::header::HeaderMap {
        let mut h = reqwest::header::HeaderMap::new();
        if let Some(t) = &self.token {
            h.insert(
                reqwest::header::AUTHORIZATION,
                reqwest::header::HeaderValue::from_str(&format!("Bearer {t}"))
                    .expect("token header"),
            );
        }
        h
    }
}

pub struct Server {
    pub child: Child,
    pub base: String,
    pub port: u16,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    log: Arc<Mutex<Vec<String>>>,
    http: reqwest::blocking::Client,
}

pub struct Resp {
    pub status: u16,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Json {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl Server {
    /// Starts a server with a fresh temporary data dir.
    pub fn start() -> Server {
        Server::start_with(Opts::default())
    }

    /// Starts a server with a fresh temporary data dir and options.
    pub fn start_with(opts: Opts) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut s = Server::start_in_with(&dir, opts);
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server on an existing data dir (restart tests).
    pub fn start_in(data_dir: &Path) -> Server {
        Server::start_in_with(data_dir, Opts::default())
    }

    /// Starts a server on an existing data dir with options.
    pub fn start_in_with(data_dir: &Path, opts: Opts) -> Server {
        // The server binds port 0 and the harness reads the port it got from
        // its log: a port chosen here and passed on could be taken by another
        // test's server in between, and that server would answer our /ping.
        let mut cmd = Command::new(oort_bin());
        cmd.args(["serve", "--data-dir"])
            .arg(data_dir)
            .args(["--rest-addr", &format!("{}:0", opts.bind)])
            .env("OORT_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !opts.strict {
            // The harness serves plugin packages and documents from temporary
            // directories and from HTTP servers on 127.0.0.1, which the
            // default outbound policy refuses (tests/tests/security.rs runs
            // with the defaults).
            cmd.env(
                "OORT__OUTBOUND__FILE_DIRS",
                format!("[{}]", std::env::temp_dir().display()),
            )
            .env("OORT__OUTBOUND__ALLOWED_HOSTS", "[127.0.0.1]");
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn oort");
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Ok(mut g) = log.lock() {
                        g.push(line);
                    }
                }
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = loop {
            if let Some(p) = listening_port(&log) {
                break p;
            }
            if Instant::now() > deadline || matches!(child.try_wait(), Ok(Some(_))) {
                let _ = child.kill();
                let _ = child.wait();
                // The readers end at the pipes' end: the log is complete.
                for r in readers {
                    let _ = r.join();
                }
                let lines = log.lock().map(|g| g.join("\n")).unwrap_or_default();
                panic!("server did not start listening; log:\n{lines}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let s = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            data_dir: data_dir.to_path_buf(),
            _tmp: None,
            log,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .default_headers(opts.headers())
                .build()
                .expect("http client"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
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

    pub fn log(&self) -> String {
        self.log.lock().map(|g| g.join("\n")).unwrap_or_default()
    }

    pub fn req(&self, method: &str, path: &str, body: Option<&str>) -> Resp {
        let url = format!("{}{}", self.base, path);
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.http.request(m, &url);
        if let Some(b) = body {
            rb = rb
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let r = rb
            .send()
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\nlog:\n{}", self.log()));
        let status = r.status().as_u16();
        let body = r.text().unwrap_or_default();
        Resp { status, body }
    }

    /// A request with exactly these extra headers (no default Content-Type).
    pub fn raw(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
        let url = format!("{}{}", self.base, path);
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.http.request(m, &url);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if !body.is_empty() {
            rb = rb.body(body.to_string());
        }
        let r = rb
            .send()
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\nlog:\n{}", self.log()));
        let status = r.status().as_u16();
        let body = r.text().unwrap_or_default();
        Resp { status, body }
    }

    pub fn get(&self, path: &str) -> Resp {
        self.req("GET", path, None)
    }
    pub fn post(&self, path: &str, body: &str) -> Resp {
        self.req("POST", path, Some(body))
    }
    pub fn put(&self, path: &str, body: &str) -> Resp {
        self.req("PUT", path, Some(body))
    }
    pub fn delete(&self, path: &str) -> Resp {
        self.req("DELETE", path, None)
    }

    /// POST that must succeed with `status`; panics with the body and log otherwise.
    pub fn expect(&self, method: &str, path: &str, body: Option<&str>, status: u16) -> Resp {
        let r = self.req(method, path, body);
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

    pub fn create_stream(&self, sql: &str) {
        let body = serde_json::json!({ "sql": sql }).to_string();
        self.expect("POST", "/streams", Some(&body), 201);
    }

    pub fn create_rule(&self, rule: &Json) {
        self.expect("POST", "/rules", Some(&rule.to_string()), 201);
    }

    pub fn status(&self, rule: &str) -> Json {
        self.expect("GET", &format!("/rules/{rule}/status"), None, 200)
            .json()
    }

    /// Polls a rule's status until `pred` holds.
    pub fn wait_status(&self, rule: &str, what: &str, pred: impl Fn(&Json) -> bool) -> Json {
        let deadline = Instant::now() + Duration::from_secs(20);
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

    /// Waits until a log line satisfies `pred` and returns the whole log
    /// (see [`wait_log_line`]).
    pub fn wait_log(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        wait_log_line(|| self.log(), what, pred)
    }

    /// Sends SIGTERM and waits for exit; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        None
    }

    /// kill -9.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// MQTT helpers over the local Mosquitto (127.0.0.1:1883).
pub mod mqtt {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

    pub struct Sub {
        pub rx: mpsc::Receiver<(String, Vec<u8>)>,
        _client: Client,
    }

    impl Sub {
        /// Collects `n` messages or panics after `secs`.
        pub fn take(&self, n: usize, secs: u64) -> Vec<(String, Vec<u8>)> {
            let deadline = Instant::now() + Duration::from_secs(secs);
            let mut out = Vec::new();
            while out.len() < n {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.rx.recv_timeout(left) {
                    Ok(m) => out.push(m),
                    Err(_) => panic!("got {} of {n} MQTT messages: {out:?}", out.len()),
                }
            }
            out
        }

        pub fn take_json(&self, n: usize, secs: u64) -> Vec<serde_json::Value> {
            self.take(n, secs)
                .into_iter()
                .map(|(_, p)| serde_json::from_slice(&p).expect("JSON payload"))
                .collect()
        }
    }

    /// Subscribes and waits until the subscription is acknowledged.
    pub fn subscribe(topic: &str) -> Sub {
        let id = format!("t-{}", uuid::Uuid::new_v4().simple());
        let mut opts = MqttOptions::new(id, "127.0.0.1", 1883);
        opts.set_keep_alive(Duration::from_secs(10));
        let (client, mut conn) = Client::new(opts, 100);
        client
            .subscribe(topic, QoS::AtLeastOnce)
            .expect("subscribe");
        let (tx, rx) = mpsc::channel();
        let (ack_tx, ack_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for ev in conn.iter() {
                match ev {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ack_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if tx.send((p.topic.clone(), p.payload.to_vec())).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        ack_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("SUBACK from mosquitto (is it running on 1883?)");
        Sub {
            rx,
            _client: client,
        }
    }

    /// Publishes messages with QoS 1 and waits until they are all acknowledged.
    pub fn publish(topic: &str, payloads: &[String]) {
        let id = format!("p-{}", uuid::Uuid::new_v4().simple());
        let opts = MqttOptions::new(id, "127.0.0.1", 1883);
        let (client, mut conn) = Client::new(opts, 1000);
        for p in payloads {
            client
                .publish(topic, QoS::AtLeastOnce, false, p.as_bytes().to_vec())
                .expect("publish");
        }
        let mut acked = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        for ev in conn.iter() {
            if let Ok(Event::Incoming(Packet::PubAck(_))) = ev {
                acked += 1;
                if acked == payloads.len() {
                    break;
                }
            }
            if Instant::now() > deadline {
                panic!("publish timed out after {acked} acks");
            }
        }
        let _ = client.disconnect();
    }
}
