//! (c) MQTT -> `SELECT * FROM s WHERE temperature > 20` -> MQTT through a
//! private Mosquitto, against the raw broker loopback measured in the same
//! run by `mqtt-loadgen` (a pipelined MQTT publisher and counting subscriber,
//! see `../shared/tools/mqtt-loadgen/README.md`).
//!
//! For QoS 0 and QoS 1 (source, sink and load generator alike), each round
//! runs the baseline (`loadgen -> broker -> loadgen`, one topic) and then the
//! pipeline (`loadgen -> broker -> Oort -> broker -> loadgen`), and reports the
//! ratio of their input rates, Oort's CPU per input message, the broker's CPU
//! per input message in both runs, and Oort's RSS; a third run puts a null
//! relay ([`crate::relay`]) in Oort's place, the ceiling any engine could
//! reach there. The median of the rounds is printed last.
//!
//! Environment: `OORT_MQTT_LOADGEN` (the binary; else it is built from
//! `OORT_MQTT_LOADGEN_SRC`, default `../shared/tools/mqtt-loadgen` beside the
//! workspace), `OORT_BENCH_C_N` (messages per run, default 200,000),
//! `OORT_BENCH_C_ROUNDS` (default 3), `OORT_BENCH_C_QOS` (`0`, `1` or `0,1`),
//! `OORT_BENCH_C_SINK_QOS` (the sink's QoS, when it should differ),
//! `OORT_BENCH_C_SOURCE_PROPS` (a JSON object of more source properties,
//! e.g. `{"readLingerInterval": 1}`), `OORT_BENCH_C_RELAY_LINGER_US` (the
//! relay's sleep between reads, default 5,000), `OORT_BENCH_BROKER_CONF` (lines added to
//! the private broker's configuration, for experiments: the method's figures
//! are taken without it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};

use crate::relay::Relay;
use crate::scenarios::{rss_kb, status_kb, Srv};

/// Linux reports process CPU time in USER_HZ ticks, 100 per second on every
/// mainstream configuration.
const TICKS_PER_S: f64 = 100.0;

/// CPU seconds a process has used so far (user + system).
pub(crate) fn cpu_s(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("bad /proc/{pid}/stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after ')'.
    let ticks: u64 =
        f.get(11).context("utime")?.parse::<u64>()? + f.get(12).context("stime")?.parse::<u64>()?;
    Ok(ticks as f64 / TICKS_PER_S)
}

/// Context switches of all of a process's threads so far: (voluntary, the
/// thread slept and was woken; involuntary, it was preempted).
pub(crate) fn switches(pid: u32) -> anyhow::Result<(u64, u64)> {
    let mut sum = (0, 0);
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Ok(status) = std::fs::read_to_string(task?.path().join("status")) else {
            continue; // the thread ended meanwhile
        };
        for line in status.lines() {
            let num = |l: &str| {
                l.split_whitespace()
                    .last()
                    .and_then(|v| v.parse::<u64>().ok())
            };
            if let Some(v) = line.strip_prefix("voluntary_ctxt_switches:") {
                sum.0 += num(v).unwrap_or(0);
            } else if let Some(v) = line.strip_prefix("nonvoluntary_ctxt_switches:") {
                sum.1 += num(v).unwrap_or(0);
            }
        }
    }
    Ok(sum)
}

/// Adds the properties of the JSON object in environment variable `var`
/// (if set) to `conf`: more source properties for an experiment.
pub(crate) fn extend_from_env(conf: &mut serde_json::Value, var: &str) -> anyhow::Result<()> {
    if let Ok(extra) = std::env::var(var) {
        let extra: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&extra).context(var.to_string())?;
        if let Some(o) = conf.as_object_mut() {
            o.extend(extra);
        }
    }
    Ok(())
}

pub(crate) fn env_or<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn workspace_root() -> anyhow::Result<PathBuf> {
    Ok(PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow!("no workspace root"))?
        .to_path_buf())
}

/// The load generator: `$OORT_MQTT_LOADGEN`, else built (a few seconds,
/// standard library only) into `target/mqtt-loadgen`.
pub(crate) fn loadgen() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("OORT_MQTT_LOADGEN") {
        return Ok(PathBuf::from(p));
    }
    let root = workspace_root()?;
    let src = std::env::var_os("OORT_MQTT_LOADGEN_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/tools/mqtt-loadgen"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("mqtt-loadgen");
    let st = Command::new(env!("CARGO"))
        .args(["build", "--release", "--manifest-path"])
        .arg(src.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .context("build mqtt-loadgen")?;
    if !st.success() {
        return Err(anyhow!(
            "cannot build mqtt-loadgen from {}: set OORT_MQTT_LOADGEN",
            src.display()
        ));
    }
    Ok(target.join("release").join("mqtt-loadgen"))
}

/// A private Mosquitto configured as the load generator's method asks
/// (no persistence, no per-client queue limit).
pub(crate) struct Broker {
    pub(crate) child: Child,
    pub(crate) port: u16,
    _dir: tempfile::TempDir,
}

impl Broker {
    pub(crate) fn start() -> anyhow::Result<Broker> {
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n{}\n",
                // Lines added for an experiment (e.g. `max_inflight_messages 100`).
                std::env::var("OORT_BENCH_BROKER_CONF").unwrap_or_default()
            ),
        )?;
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start mosquitto")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(anyhow!("private mosquitto did not start"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Broker {
            child,
            port,
            _dir: dir,
        })
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the load generator; returns its JSON line.
pub(crate) fn run_loadgen(bin: &Path, args: &[String]) -> anyhow::Result<serde_json::Value> {
    let out = Command::new(bin)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .context("run mqtt-loadgen")?;
    let line = String::from_utf8_lossy(&out.stdout);
    let line = line.lines().last().unwrap_or("");
    let v: serde_json::Value =
        serde_json::from_str(line).with_context(|| format!("mqtt-loadgen printed {line:?}"))?;
    if !v["error"].is_null() {
        return Err(anyhow!("mqtt-loadgen: {}", v["error"]));
    }
    Ok(v)
}

/// `mqtt-loadgen run` arguments: `n` messages on `inp` at `qos`, counted
/// on `out`.
pub(crate) fn run_args(port: &str, inp: &str, out: &str, n: u64, qos: u8) -> [String; 11] {
    [
        "run",
        "--port",
        port,
        "--in-topic",
        inp,
        "--out-topic",
        out,
        "--n",
        &n.to_string(),
        "--qos",
        &qos.to_string(),
    ]
    .map(String::from)
}

/// Waits (at most 60 s) until a probe published on `inp` comes back on
/// `out`: the pipeline under test is up.
pub(crate) fn probe(lg: &Path, port: &str, inp: &str, out: &str) -> anyhow::Result<()> {
    let args = [
        "probe",
        "--port",
        port,
        "--in-topic",
        inp,
        "--out-topic",
        out,
        "--timeout",
        "60",
    ]
    .map(String::from);
    let p = run_loadgen(lg, &args)?;
    if p["ready"] != true {
        return Err(anyhow!("no probe came back: {p}"));
    }
    Ok(())
}

struct Round {
    raw: f64,
    oort: f64,
    oort_us: f64,
    broker_raw_us: f64,
    broker_oort_us: f64,
    /// Oort's threads woken per 1,000 input messages.
    wakeups: f64,
    /// The null relay's input rate, the broker's CPU per input message
    /// with it, and the relay's own (QoS 0 and 1).
    relay: Option<(f64, f64, f64)>,
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// (c) MQTT -> rule -> MQTT against the raw broker loopback.
pub fn mqtt_round_trip() -> anyhow::Result<()> {
    let n: u64 = env_or("OORT_BENCH_C_N", 200_000);
    let rounds: usize = env_or("OORT_BENCH_C_ROUNDS", 3);
    let qoss: Vec<u8> = std::env::var("OORT_BENCH_C_QOS")
        .unwrap_or_else(|_| "0,1".into())
        .split(',')
        .filter_map(|q| q.trim().parse().ok())
        .collect();
    // The sink's QoS when it should differ from the source's (to tell
    // which side limits a run).
    let sink_qos: Option<u8> = std::env::var("OORT_BENCH_C_SINK_QOS")
        .ok()
        .and_then(|q| q.trim().parse().ok());
    let lg = loadgen()?;
    let broker = Broker::start()?;
    // A first start compiles the built-in plugins (~31 MB RSS after it);
    // every later start maps the compiled cache (~16 MB at rest).
    let s = Srv::start_warm()?;
    let oort_pid = s.child.id();
    let port = broker.port.to_string();
    for qos in qoss {
        let (in_t, out_t, raw_t) = (
            format!("bench/q{qos}/in"),
            format!("bench/q{qos}/out"),
            format!("bench/q{qos}/raw"),
        );
        let mut conf = serde_json::json!({"server": format!("tcp://127.0.0.1:{port}"), "qos": qos});
        extend_from_env(&mut conf, "OORT_BENCH_C_SOURCE_PROPS")?;
        s.put(&format!("/metadata/sources/mqtt/confKeys/q{qos}"), &conf)?;
        s.post(
            "/streams",
            &serde_json::json!({"sql": format!(
                "CREATE STREAM s{qos} () WITH (DATASOURCE=\"{in_t}\", TYPE=\"mqtt\", CONF_KEY=\"q{qos}\")")}),
        )?;
        s.post(
            "/rules",
            &serde_json::json!({"id": format!("c{qos}"),
                "sql": format!("SELECT * FROM s{qos} WHERE temperature > 20"),
                "actions":[{"mqtt":{"server": format!("tcp://127.0.0.1:{port}"),
                    "topic": out_t, "qos": sink_qos.unwrap_or(qos), "sendSingle": true}}]}),
        )?;
        probe(&lg, &port, &in_t, &out_t).context("the pipeline did not come up")?;
        // The ceiling: the cheapest relay in Oort's place (QoS 0 and 1).
        let (rin_t, rout_t) = (format!("bench/q{qos}/rin"), format!("bench/q{qos}/rout"));
        let relay = if qos <= 1 {
            let r = Relay::start(
                broker.port,
                &rin_t,
                &rout_t,
                qos,
                crate::relay::linger_from_env(),
            )?;
            probe(&lg, &port, &rin_t, &rout_t).context("the relay did not come up")?;
            Some(r)
        } else {
            None
        };
        let args = |inp: &str, out: &str| run_args(&port, inp, out, n, qos);
        let mut rs = Vec::new();
        for round in 1..=rounds {
            let b0 = cpu_s(broker.child.id())?;
            let base = run_loadgen(&lg, &args(&raw_t, &raw_t))?;
            let b1 = cpu_s(broker.child.id())?;
            let o1 = cpu_s(oort_pid)?;
            let w1 = switches(oort_pid)?.0;
            let pipe = run_loadgen(&lg, &args(&in_t, &out_t))?;
            let b2 = cpu_s(broker.child.id())?;
            let o2 = cpu_s(oort_pid)?;
            let w2 = switches(oort_pid)?.0;
            let relayed = match relay {
                Some(_) => {
                    // The relay is a thread of this process, idle otherwise.
                    let r0 = cpu_s(std::process::id())?;
                    let run = run_loadgen(&lg, &args(&rin_t, &rout_t))?;
                    let b3 = cpu_s(broker.child.id())?;
                    let r1 = cpu_s(std::process::id())?;
                    Some((
                        run["in_rate"].as_f64().unwrap_or(0.0),
                        (b3 - b2) * 1e6 / n as f64,
                        (r1 - r0) * 1e6 / n as f64,
                    ))
                }
                None => None,
            };
            let r = Round {
                raw: base["in_rate"].as_f64().unwrap_or(0.0),
                oort: pipe["in_rate"].as_f64().unwrap_or(0.0),
                oort_us: (o2 - o1) * 1e6 / n as f64,
                broker_raw_us: (b1 - b0) * 1e6 / n as f64,
                broker_oort_us: (b2 - b1) * 1e6 / n as f64,
                wakeups: w2.saturating_sub(w1) as f64 * 1000.0 / n as f64,
                relay: relayed,
            };
            println!(
                "c qos {qos} round {round}: raw {:.0} msg/s, through Oort {:.0} msg/s = {:.2}; \
                 Oort CPU {:.2} us/msg ({:.0} wake-ups per 1,000 msgs); broker CPU {:.2} us/msg raw, {:.2} us/msg with Oort; \
                 received {}/{}; Oort RSS {} KB (peak {} KB)",
                r.raw,
                r.oort,
                r.oort / r.raw,
                r.oort_us,
                r.wakeups,
                r.broker_raw_us,
                r.broker_oort_us,
                pipe["received"],
                pipe["expect"],
                rss_kb(oort_pid).unwrap_or(0),
                status_kb(oort_pid, "VmHWM:").unwrap_or(0),
            );
            if let Some((rate, broker_us, relay_us)) = r.relay {
                println!(
                    "c qos {qos} round {round}: null relay {rate:.0} msg/s = {:.2} of raw \
                     (relay CPU {relay_us:.2} us/msg, broker CPU {broker_us:.2} us/msg); Oort = {:.2} of the relay",
                    rate / r.raw,
                    r.oort / rate
                );
            }
            rs.push(r);
        }
        println!(
            "c qos {qos} median of {rounds}: ratio {:.2} (raw {:.0}, Oort {:.0} msg/s); Oort CPU {:.2} us/msg ({:.0} wake-ups per 1,000 msgs); \
             broker CPU {:.2} us/msg raw, {:.2} with Oort; Oort peak RSS {:.1} MB",
            median(rs.iter().map(|r| r.oort / r.raw).collect()),
            median(rs.iter().map(|r| r.raw).collect()),
            median(rs.iter().map(|r| r.oort).collect()),
            median(rs.iter().map(|r| r.oort_us).collect()),
            median(rs.iter().map(|r| r.wakeups).collect()),
            median(rs.iter().map(|r| r.broker_raw_us).collect()),
            median(rs.iter().map(|r| r.broker_oort_us).collect()),
            status_kb(oort_pid, "VmHWM:").unwrap_or(0) as f64 / 1024.0,
        );
        if rs.iter().all(|r| r.relay.is_some()) {
            let relay = |f: fn(&Round) -> f64| median(rs.iter().map(f).collect());
            println!(
                "c qos {qos} median of {rounds}: null relay {:.2} of raw (broker CPU {:.2} us/msg); Oort {:.2} of the relay",
                relay(|r| r.relay.map_or(0.0, |(x, _, _)| x) / r.raw),
                relay(|r| r.relay.map_or(0.0, |(_, b, _)| b)),
                relay(|r| r.oort / r.relay.map_or(f64::NAN, |(x, _, _)| x)),
            );
        }
        if let Some(r) = relay {
            r.stop();
        }
        s.delete(&format!("/rules/c{qos}"))?;
    }
    Ok(())
}
