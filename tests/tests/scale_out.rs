//! Scale-out: several `oort` processes on one private Mosquitto, started
//! from one ruleset (`OORT_RULESET`), share a stream through an MQTT shared
//! subscription (`shareGroup`). Distribution, a member stopped or killed
//! mid-run with nothing lost at QoS 1, restarts that converge on the ruleset, and a
//! ruleset URL that is not up yet.
//!
//! Each test starts its own broker on a free port (never the shared one).

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use oort_tests::broker::{Broker, IdCounter, Publisher};
use oort_tests::{unique, Opts, Server};
use serde_json::{json, Value as Json};

/// The fleet's document: a conf key joining the shared group `fleet`, a
/// stream on `input`, and a rule copying each message's id to `output` on
/// the same broker (QoS 1 both ways).
fn ruleset(b: &Broker, input: &str, output: &str, sql: &str) -> String {
    let conf = json!({"fleet": {"server": b.url(), "qos": 1, "shareGroup": "fleet"}});
    let rule = json!({"id": "copy", "sql": sql,
        "actions": [{"mqtt": {"server": b.url(), "topic": output, "qos": 1, "sendSingle": true}}]});
    json!({
        "sourceConfig": {"mqtt": conf.to_string()},
        "streams": {"s": format!(
            "CREATE STREAM s () WITH (DATASOURCE=\"{input}\", TYPE=\"mqtt\", CONF_KEY=\"fleet\")")},
        "rules": {"copy": rule.to_string()},
    })
    .to_string()
}

/// An instance named `id` on `dir`, started with the ruleset `uri`.
fn member(dir: &Path, id: &str, uri: &str) -> Server {
    Server::start_in_with(
        dir,
        Opts {
            env: vec![
                ("OORT_RULESET".into(), uri.into()),
                ("OORT_INSTANCE_ID".into(), id.into()),
            ],
            ..Opts::default()
        },
    )
}

/// The start-up ruleset's state once it is no longer being read or applied.
fn settled(s: &Server) -> Json {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = s.get("/data/import/status").json();
        let state = st["ruleset"]["state"].as_str().unwrap_or("").to_string();
        if !matches!(state.as_str(), "" | "reading" | "applying" | "retrying") {
            return st["ruleset"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "ruleset not applied: {st}; log:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the member's rule is subscribed to the shared group.
fn ready(s: &Server) {
    let rs = settled(s);
    assert_eq!(rs["state"], "applied", "{rs}");
    s.wait_status("copy", "source subscribed", |st| {
        st["source_s_0_connection_status"] == 1
    });
}

fn records_in(s: &Server) -> u64 {
    s.status("copy")["source_s_0_records_in_total"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn members_split_a_shared_stream_and_converge_on_the_ruleset_at_restart() {
    let b = Broker::start();
    let t = unique("fleet");
    let (input, output) = (format!("{t}/in"), format!("{t}/out"));
    let docs = tempfile::tempdir().expect("tempdir");
    let file = docs.path().join("fleet.json");
    std::fs::write(&file, ruleset(&b, &input, &output, "SELECT id FROM s")).expect("write");
    let uri = file.display().to_string();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = member(da.path(), "edge-a", &uri);
    let mut bm = member(db.path(), "edge-b", &uri);
    ready(&a);
    ready(&bm);
    assert_eq!(a.get("/").json()["instanceId"], "edge-a");

    let out = IdCounter::subscribe(b.port, &output);
    const N: u64 = 2000;
    let acked = Publisher::start(b.port, &input, 0..N, 0).finish();
    assert_eq!(acked, N);
    assert!(
        out.wait_distinct(N as usize, Duration::from_secs(60)),
        "{} of {N} arrived; missing {:?}",
        out.distinct(),
        &out.missing(0..N)[..10.min(out.missing(0..N).len())]
    );
    let (na, nb) = (records_in(&a), records_in(&bm));
    eprintln!(
        "shared group of 2: {na} / {nb} messages, {} duplicates",
        out.duplicates()
    );
    assert_eq!(na + nb, N, "each message reaches one member");
    for n in [na, nb] {
        let share = n as f64 / N as f64;
        assert!((0.4..=0.6).contains(&share), "uneven split {na} / {nb}");
    }
    assert_eq!(out.duplicates(), 0);

    // A restart applies the same document again: everything is unchanged,
    // the rule is not replaced (its counters went on from the store only if
    // it were restarted by the import: it is started once, at boot).
    a.terminate();
    let a = member(da.path(), "edge-a", &uri);
    ready(&a);
    let rs = settled(&a);
    assert_eq!(rs["unchanged"]["rules"], 1, "{rs}");
    assert_eq!(rs["unchanged"]["streams"], 1, "{rs}");
    assert_eq!(rs["unchanged"]["sourceConfig"], Json::Null, "{rs}");
    assert_eq!(a.get("/rules").json().as_array().map(Vec::len), Some(1));

    // A changed document changes what differs, at the next start.
    std::fs::write(
        &file,
        ruleset(&b, &input, &output, "SELECT id FROM s WHERE id >= 0"),
    )
    .expect("rewrite");
    bm.terminate();
    let bm = member(db.path(), "edge-b", &uri);
    ready(&bm);
    let rs = settled(&bm);
    assert_eq!(rs["applied"]["rules"], 1, "{rs}");
    assert_eq!(rs["unchanged"]["rules"], Json::Null, "{rs}");
    assert_eq!(rs["unchanged"]["streams"], 1, "{rs}");
    assert_eq!(
        bm.get("/rules/copy").json()["sql"],
        "SELECT id FROM s WHERE id >= 0"
    );
}

/// Two members share a QoS 1 stream of 6,000 messages at 1,000/s; one of
/// them is stopped (SIGTERM when `graceful`, else SIGKILL) after 1,500 and
/// started again after 3,500. Returns the ids never delivered, the
/// duplicates, and how many messages had been acknowledged to the publisher
/// at the stop.
fn stop_and_restart_a_member(graceful: bool) -> (Vec<u64>, u64, u64) {
    let b = Broker::start();
    let t = unique("fleetkill");
    let (input, output) = (format!("{t}/in"), format!("{t}/out"));
    let docs = tempfile::tempdir().expect("tempdir");
    let file = docs.path().join("fleet.json");
    std::fs::write(&file, ruleset(&b, &input, &output, "SELECT id FROM s")).expect("write");
    let uri = format!("file://{}", file.display());
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = member(da.path(), "edge-a", &uri);
    let mut bm = member(db.path(), "edge-b", &uri);
    ready(&a);
    ready(&bm);
    let out = IdCounter::subscribe(b.port, &output);

    const N: u64 = 6000;
    let publisher = Publisher::start(b.port, &input, 0..N, 1000);
    let wait_acked = |n: u64| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while publisher.acked() < n {
            assert!(Instant::now() < deadline, "publisher stalled before {n}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_acked(1500);
    let stopped_at = publisher.acked();
    if graceful {
        bm.terminate();
    } else {
        // No DISCONNECT, no last acknowledgements, no draining.
        bm.kill();
    }
    wait_acked(3500);
    let bm = member(db.path(), "edge-b", &uri);
    let back = Instant::now();
    ready(&bm);
    let resubscribed = back.elapsed();
    assert_eq!(publisher.finish(), N);
    // Until every id came, or none came for 3 s (what a crash lost never
    // comes), at most 60 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut seen, mut since) = (out.distinct(), Instant::now());
    while seen < N as usize && Instant::now() < deadline && since.elapsed() < Duration::from_secs(3)
    {
        std::thread::sleep(Duration::from_millis(50));
        let d = out.distinct();
        if d != seen {
            (seen, since) = (d, Instant::now());
        }
    }
    let missing = out.missing(0..N);
    eprintln!(
        "member {} at {stopped_at} of {N} and restarted (subscribed {:.2} s after its start): {} lost, {} duplicates; members took {} / {}",
        if graceful { "stopped (SIGTERM)" } else { "killed (SIGKILL)" },
        resubscribed.as_secs_f64(),
        missing.len(),
        out.duplicates(),
        records_in(&a),
        records_in(&bm)
    );
    // The restarted member got its backlog: its session was kept.
    assert!(records_in(&bm) > 0, "log:\n{}", bm.log());
    (missing, out.duplicates(), stopped_at)
}

#[test]
fn a_member_stopped_mid_run_loses_nothing_at_qos_1() {
    let (missing, _, _) = stop_and_restart_a_member(true);
    assert!(
        missing.is_empty(),
        "{} lost (first: {:?})",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
}

/// A SIGKILL loses nothing either: the source acknowledges a message only
/// once the rule has written its result (the MQTT sink's QoS 1 publish was
/// acknowledged), so what the killed member held is sent again by the
/// broker to its session when it comes back. Those may arrive twice.
#[test]
fn a_member_killed_mid_run_loses_nothing_at_qos_1() {
    let (missing, dups, stopped_at) = stop_and_restart_a_member(false);
    assert!(
        missing.is_empty(),
        "{} lost around the kill at {stopped_at}: {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    // Only what was in flight at the kill comes twice.
    assert!(dups <= 200, "{dups} duplicates");
}

/// Serves `body` to every request on `listener`.
fn serve_document(listener: std::net::TcpListener, body: String) {
    std::thread::spawn(move || {
        for c in listener.incoming() {
            let Ok(mut c) = c else { continue };
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
}

#[test]
fn a_ruleset_url_not_up_yet_is_retried_and_a_bad_one_is_reported() {
    let b = Broker::start();
    let t = unique("fleeturl");
    // Nothing listens on this port yet: the member starts, serves its API
    // and retries.
    let port = oort_tests::free_port();
    let url = format!("http://127.0.0.1:{port}/fleet.json");
    let d1 = tempfile::tempdir().expect("tempdir");
    let s = member(d1.path(), "late", &url);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rs = s.get("/data/import/status").json()["ruleset"].clone();
        if rs["state"] == "retrying" {
            assert!(
                rs["error"].as_str().unwrap_or("").contains("fleet.json"),
                "{rs}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no retry reported: {rs}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(s.get("/rules").json().as_array().map(Vec::len), Some(0));
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind the URL's port");
    serve_document(
        listener,
        ruleset(
            &b,
            &format!("{t}/in"),
            &format!("{t}/out"),
            "SELECT id FROM s",
        ),
    );
    ready(&s);
    let rs = settled(&s);
    assert!(rs["attempts"].as_u64().unwrap_or(0) >= 2, "{rs}");

    // A document that is not one: reported, not retried, the server runs.
    let docs = tempfile::tempdir().expect("tempdir");
    let bad = docs.path().join("bad.json");
    std::fs::write(&bad, "{\"streams\": 42}").expect("write");
    let d2 = tempfile::tempdir().expect("tempdir");
    let s2 = member(d2.path(), "bad", &bad.display().to_string());
    let rs = settled(&s2);
    assert_eq!(rs["state"], "invalid", "{rs}");
    assert!(!rs["error"].as_str().unwrap_or("").is_empty(), "{rs}");
    assert_eq!(s2.get("/ping").status, 200);
}

/// Keyed work across instances: an upstream rule publishes each event to
/// `<t>/part/{{.p}}` with `p = partition(dev, 2)`, and each of two workers
/// reads one partition, so every event of a key lands on the same worker.
#[test]
fn partition_sends_every_event_of_a_key_to_one_worker() {
    let t = unique("fleetpart");
    let up = Server::start();
    up.expect(
        "PUT",
        "/metadata/sources/mqtt/confKeys/local",
        Some(&json!({"server": "tcp://127.0.0.1:1883", "qos": 1}).to_string()),
        200,
    );
    up.create_stream(&format!(
        "CREATE STREAM raw () WITH (DATASOURCE=\"{t}/raw\", TYPE=\"mqtt\", CONF_KEY=\"local\")"
    ));
    up.create_rule(&json!({"id": "split",
        "sql": "SELECT *, partition(dev, 2) AS p FROM raw",
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883",
            "topic": format!("{t}/part/{{{{.p}}}}"), "qos": 1, "sendSingle": true}}]}));
    let mut workers = Vec::new();
    for i in 0..2 {
        let w = Server::start();
        w.create_stream(&format!(
            "CREATE STREAM s () WITH (DATASOURCE=\"{t}/part/{i}\", TYPE=\"mqtt\")"
        ));
        w.create_rule(&json!({"id": "work",
            "sql": format!("SELECT dev, p, {i} AS worker FROM s"),
            "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883",
                "topic": format!("{t}/out"), "qos": 1, "sendSingle": true}}]}));
        w.wait_status("work", "subscribed", |st| {
            st["source_s_0_connection_status"] == 1
        });
        workers.push(w);
    }
    up.wait_status("split", "subscribed", |st| {
        st["source_raw_0_connection_status"] == 1
    });
    let sub = oort_tests::mqtt::subscribe(&format!("{t}/out"));
    const N: usize = 400;
    let payloads: Vec<String> = (0..N)
        .map(|i| json!({"dev": format!("d{}", i % 20), "i": i}).to_string())
        .collect();
    oort_tests::mqtt::publish(&format!("{t}/raw"), &payloads);
    let got = sub.take_json(N, 60);
    let mut worker_of: std::collections::BTreeMap<String, u64> = Default::default();
    for m in &got {
        let (dev, w) = (
            m["dev"].as_str().unwrap_or("").to_string(),
            m["worker"].as_u64(),
        );
        assert_eq!(m["p"].as_u64(), w, "worker {w:?} got partition {}", m["p"]);
        let w = w.expect("worker");
        let first = *worker_of.entry(dev.clone()).or_insert(w);
        assert_eq!(first, w, "key {dev} reached two workers");
    }
    assert_eq!(worker_of.len(), 20);
    // CRC-32 spreads 20 keys over both partitions.
    let on_0 = worker_of.values().filter(|w| **w == 0).count();
    assert!((1..20).contains(&on_0), "{worker_of:?}");
    // The same keys as Python's zlib.crc32(key.encode()) % 2.
    assert_eq!(worker_of["d7"], 4_176_812_371 % 2);
}
