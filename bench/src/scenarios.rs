//! The benchmark scenarios. Each prints its figures; none asserts a target
//! (targets are checked by reading the figures, see docs/benchmarks.md).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use oort_core::codec::{self, DecodeOptions, EncodeOptions};
use oort_core::{Event, Row, Value};
use oort_sql::ast::{StreamDef, StreamKind, StreamOptions};
use oort_sql::engine::{self, Catalog, Output, QueryOptions};

struct OneStream(StreamDef);

impl Catalog for OneStream {
    fn lookup(&self, name: &str) -> Option<StreamDef> {
        (name == self.0.name).then(|| self.0.clone())
    }
}

fn schemaless(name: &str) -> OneStream {
    OneStream(StreamDef {
        kind: StreamKind::Stream,
        name: name.into(),
        columns: vec![],
        options: StreamOptions::default(),
    })
}

pub(crate) fn rss_kb(pid: u32) -> Option<u64> {
    status_kb(pid, "VmRSS:")
}

/// A size line of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`...) in KB.
pub(crate) fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn self_rss_kb() -> u64 {
    rss_kb(std::process::id()).unwrap_or(0)
}

fn report(name: &str, events: u64, elapsed: Duration) -> f64 {
    let rate = events as f64 / elapsed.as_secs_f64();
    println!(
        "{name}: {events} events in {:.3} s = {:.0} events/s (bench RSS {} KB)",
        elapsed.as_secs_f64(),
        rate,
        self_rss_kb()
    );
    rate
}

/// (b) JSON bytes -> decode -> `WHERE temp > 20` -> encode, on one core.
pub fn decode_filter_encode() -> anyhow::Result<()> {
    const N: usize = 1_000_000;
    let payloads: Vec<Vec<u8>> = (0..1000)
        .map(|i| {
            format!(
                r#"{{"id":{i},"temp":{}.5,"humidity":{},"device":"dev-{}"}}"#,
                i % 40,
                i % 100,
                i % 7
            )
            .into_bytes()
        })
        .collect();
    let sel = oort_sql::parser::parse_select("SELECT * FROM s WHERE temp > 20")?;
    let plan = engine::compile(&sel, &schemaless("s"), &QueryOptions::default())?;
    let mut q = plan.instantiate();
    let mut dec = codec::decoder("json", &DecodeOptions::default())?;
    let enc = codec::encoder("json", &EncodeOptions::default())?;
    let mut rows: Vec<Row> = Vec::new();
    let mut out: Vec<Output> = Vec::new();
    let mut bytes_out = 0usize;
    let mut passed = 0u64;
    let start = Instant::now();
    for i in 0..N {
        rows.clear();
        dec.decode(&payloads[i % payloads.len()], &mut rows)?;
        for row in rows.drain(..) {
            let ev = Arc::new(Event {
                row,
                meta: None,
                seq: 0,
                ts: 0,
            });
            q.on_event(0, &ev, &mut out);
        }
        for o in out.drain(..) {
            if let Output::Rows(rs) = o {
                for r in rs {
                    passed += 1;
                    bytes_out += enc.encode(&r.to_value())?.len();
                }
            }
        }
    }
    let el = start.elapsed();
    report("b decode->filter->encode (1 core)", N as u64, el);
    println!("  passed filter: {passed}, bytes out: {bytes_out}");
    Ok(())
}

/// (d) tumbling window count/avg GROUP BY a key with 100 distinct keys.
pub fn tumbling_window() -> anyhow::Result<()> {
    const N: i64 = 1_000_000;
    let sel = oort_sql::parser::parse_select(
        "SELECT k, count(*) AS c, avg(v) AS a FROM s GROUP BY k, TUMBLINGWINDOW(ss, 1)",
    )?;
    let plan = engine::compile(&sel, &schemaless("s"), &QueryOptions::default())?;
    let mut q = plan.instantiate();
    let schema = Arc::new(oort_core::Schema::from_strs(&["k", "v"]));
    let keys: Vec<Value> = (0..100).map(|i| Value::str(&format!("key{i}"))).collect();
    // Pre-build events so the figure is the engine's, not the generator's.
    let events: Vec<Arc<Event>> = (0..N)
        .map(|i| {
            Arc::new(Event {
                row: Row::new(
                    schema.clone(),
                    vec![keys[(i % 100) as usize].clone(), Value::Int(i % 50)],
                ),
                meta: None,
                seq: 0,
                // 100k events per second of event time: 10 windows in all.
                ts: 1_700_000_000_000 + i / 100,
            })
        })
        .collect();
    let mut out = Vec::new();
    let mut emitted_rows = 0usize;
    let start = Instant::now();
    for ev in &events {
        if let Some(d) = q.next_deadline() {
            if ev.ts >= d {
                q.on_tick(ev.ts, &mut out);
            }
        }
        q.on_event(0, ev, &mut out);
        for o in out.drain(..) {
            if let Output::Rows(r) = o {
                emitted_rows += r.len();
            }
        }
    }
    let el = start.elapsed();
    report(
        "d tumbling window count/avg, 100 keys (1 core)",
        N as u64,
        el,
    );
    println!("  window rows emitted: {emitted_rows}");
    Ok(())
}

/// Path of the release `oort` binary, built if needed.
/// The release `oort` binary (built here), or `$OORT_BIN` when set.
fn oort_release() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("OORT_BIN") {
        return Ok(PathBuf::from(p));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow!("no workspace root"))?
        .to_path_buf();
    let st = Command::new(env!("CARGO"))
        .args(["build", "--release", "-p", "oort", "--bin", "oort"])
        .current_dir(&root)
        .status()?;
    if !st.success() {
        return Err(anyhow!("cargo build --release -p oort failed"));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("release").join("oort"))
}

/// A request error naming the method, path, status and body.
fn ok_or_err(method: &str, path: &str, r: reqwest::blocking::Response) -> anyhow::Result<()> {
    if !r.status().is_success() {
        return Err(anyhow!("{method} {path}: {} {}", r.status(), r.text()?));
    }
    Ok(())
}

pub(crate) struct Srv {
    pub(crate) child: Child,
    pub(crate) base: String,
    _dir: tempfile::TempDir,
    pub(crate) http: reqwest::blocking::Client,
}

impl Drop for Srv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the release `oort` on `dir` and waits for `/ping`.
fn spawn_on(dir: &std::path::Path) -> anyhow::Result<(Child, String)> {
    let bin = oort_release()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = Command::new(bin)
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--rest-addr", &format!("127.0.0.1:{port}")])
        .env("OORT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(match std::env::var_os("OORT_BENCH_STDERR") {
            Some(_) => Stdio::inherit(),
            None => Stdio::null(),
        })
        .spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::blocking::Client::new();
    for _ in 0..200 {
        if http.get(format!("{base}/ping")).send().is_ok() {
            return Ok((child, base));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(anyhow!("server did not start"))
}

impl Srv {
    pub(crate) fn start() -> anyhow::Result<Srv> {
        Srv::start_in(tempfile::tempdir()?)
    }

    /// Starts a server on a data dir that a first start already prepared
    /// (built-in plugins compiled into the cache): what every start after
    /// the first one looks like, for figures of steady memory.
    pub(crate) fn start_warm() -> anyhow::Result<Srv> {
        let dir = tempfile::tempdir()?;
        let (mut first, _) = spawn_on(dir.path())?;
        let _ = first.kill();
        let _ = first.wait();
        Srv::start_in(dir)
    }

    fn start_in(dir: tempfile::TempDir) -> anyhow::Result<Srv> {
        let (child, base) = spawn_on(dir.path())?;
        Ok(Srv {
            child,
            base,
            _dir: dir,
            http: reqwest::blocking::Client::new(),
        })
    }

    /// The server's `--data-dir`.
    pub(crate) fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub(crate) fn put(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<()> {
        let r = self
            .http
            .put(format!("{}{}", self.base, path))
            .json(body)
            .send()?;
        ok_or_err("PUT", path, r)
    }

    pub(crate) fn delete(&self, path: &str) -> anyhow::Result<()> {
        let r = self.http.delete(format!("{}{}", self.base, path)).send()?;
        ok_or_err("DELETE", path, r)
    }

    pub(crate) fn post(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<()> {
        let r = self
            .http
            .post(format!("{}{}", self.base, path))
            .json(body)
            .send()?;
        ok_or_err("POST", path, r)
    }

    pub(crate) fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        Ok(self
            .http
            .get(format!("{}{}", self.base, path))
            .send()?
            .json()?)
    }
}

/// (e) idle RSS and RSS per rule with 1000 rules on one stream.
pub fn rss_per_rule() -> anyhow::Result<()> {
    let s = Srv::start()?;
    std::thread::sleep(Duration::from_millis(500));
    let pid = s.child.id();
    let idle = rss_kb(pid).context("read RSS")?;
    println!(
        "e idle server RSS: {idle} KB ({:.1} MB)",
        idle as f64 / 1024.0
    );
    s.post(
        "/streams",
        &serde_json::json!({"sql": "CREATE STREAM s () WITH (DATASOURCE=\"bench/rules\", TYPE=\"memory\")"}),
    )?;
    // Warm up: the first rule pays for one-off allocations.
    s.post(
        "/rules",
        &serde_json::json!({"id":"warm","sql":"SELECT temperature FROM s WHERE temperature > 20","actions":[{"nop":{}}]}),
    )?;
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_kb(pid).context("read RSS")?;
    const RULES: u64 = 1000;
    for i in 0..RULES {
        s.post(
            "/rules",
            &serde_json::json!({"id": format!("r{i}"),
                "sql":"SELECT temperature FROM s WHERE temperature > 20","actions":[{"nop":{}}]}),
        )?;
    }
    std::thread::sleep(Duration::from_secs(1));
    let after = rss_kb(pid).context("read RSS")?;
    let running = s
        .get_json("/rules")?
        .as_array()
        .map(|a| a.iter().filter(|r| r["status"] == "running").count())
        .unwrap_or(0);
    println!(
        "e {RULES} rules ({running} running): RSS {after} KB, {:.1} KB per rule",
        (after.saturating_sub(before)) as f64 / RULES as f64
    );
    // GET /metrics over those rules (3 nodes each): time and size, best of
    // 5, at both detail levels, plain and as Prometheus asks for it (gzip).
    for query in ["", "?detail=full"] {
        let url = format!("{}/metrics{query}", s.base);
        let (mut best, mut bytes) = (Duration::MAX, 0);
        let (mut best_gz, mut gz_bytes) = (Duration::MAX, 0);
        for _ in 0..5 {
            let t = std::time::Instant::now();
            let body = s.http.get(&url).send()?.text()?;
            best = best.min(t.elapsed());
            bytes = body.len();
            let t = std::time::Instant::now();
            let body = s
                .http
                .get(&url)
                .header("Accept-Encoding", "gzip")
                .send()?
                .bytes()?;
            best_gz = best_gz.min(t.elapsed());
            gz_bytes = body.len();
        }
        let level = if query.is_empty() {
            "rules (default)"
        } else {
            "full"
        };
        println!(
            "e GET /metrics{query} [{level}] with {RULES} rules: {:.1} ms, {:.0} KB; gzip (as Prometheus asks): {:.1} ms, {:.0} KB (target <= 20 ms, <= 1 MB); RSS after {} KB",
            best.as_secs_f64() * 1e3,
            bytes as f64 / 1024.0,
            best_gz.as_secs_f64() * 1e3,
            gz_bytes as f64 / 1024.0,
            rss_kb(pid).unwrap_or(0)
        );
    }
    Ok(())
}

/// (a) memory source -> `SELECT * WHERE temp > 20` -> nop, through the real
/// runtime (manager, hub, rule task, sink pipeline) on one tokio worker thread.
pub fn memory_filter_nop() -> anyhow::Result<()> {
    const N: usize = 1_000_000;
    const BATCH: usize = 1000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let registry = oort_core::Registry::default();
        oort_connectors::builtin(&registry);
        let mgr = oort::manager::Manager::open(dir.path(), registry)?;
        let topic = format!("bench/a/{}", uuid::Uuid::new_v4().simple());
        mgr.exec_stream_sql(&format!(
            "CREATE STREAM s () WITH (DATASOURCE=\"{topic}\", TYPE=\"memory\")"
        ))
        .await
        .map_err(|e| anyhow!("{e}"))?;
        mgr.create_rule(
            r#"{"id":"a","sql":"SELECT * FROM s WHERE temp > 20","actions":[{"nop":{}}]}"#,
        )
        .await
        .map_err(|e| anyhow!("{e}"))?;
        let schema = Arc::new(oort_core::Schema::from_strs(&["id", "temp", "humidity"]));
        let batches: Vec<Vec<Row>> = (0..N / BATCH)
            .map(|b| {
                (0..BATCH)
                    .map(|i| {
                        let n = (b * BATCH + i) as i64;
                        Row::new(
                            schema.clone(),
                            vec![
                                Value::Int(n),
                                Value::Float((n % 40) as f64),
                                Value::Int(n % 100),
                            ],
                        )
                    })
                    .collect()
            })
            .collect();
        let expect_out = (0..N as i64).filter(|n| (n % 40) > 20).count() as u64;
        let bus = oort_connectors::memory::bus::bus(mgr.env());
        let start = Instant::now();
        for b in batches {
            bus.publish(&topic, b).await;
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let st = mgr.rule_status("a").await.map_err(|e| anyhow!("{e}"))?;
            let got = st
                .get("sink_nop_0_0_records_in_total")
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            if got >= expect_out {
                break;
            }
            if Instant::now() > deadline {
                return Err(anyhow!("only {got} of {expect_out} rows reached the sink"));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let el = start.elapsed();
        report("a memory -> filter -> nop (1 worker thread)", N as u64, el);
        mgr.shutdown().await;
        Ok(())
    })
}
