//! The built-in `kafka` source and sink plugins (a Kafka client written in
//! the component, over wasi:sockets) against Tansu, a Kafka-compatible
//! broker started privately per test on a free port (scripts/toolchains.sh
//! installs it). Tansu's own client (`tansu cat`) produces and consumes on
//! the other side, so each plugin is checked against an independent
//! implementation of the protocol.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oort_tests::{free_port, mqtt, run_ok, toolchains, unique, Opts, Server};
use serde_json::{json, Value};

fn tansu_bin() -> PathBuf {
    toolchains("cargo/bin/tansu", "scripts/toolchains.sh tansu").join("cargo/bin/tansu")
}

/// A private Tansu broker (in-memory storage unless a test asks for a file
/// and authentication). Killed on drop.
struct Tansu {
    port: u16,
    child: Option<Child>,
    storage: String,
    authentication: bool,
    /// The port clients are told to use (metadata), when not the broker's
    /// own: a TLS front's.
    advertised: Option<u16>,
    _dir: Option<tempfile::TempDir>,
}

impl Tansu {
    fn launch(storage: &str, advertised: Option<u16>, dir: Option<tempfile::TempDir>) -> Tansu {
        let mut t = Tansu {
            port: free_port(),
            child: None,
            storage: storage.into(),
            authentication: false,
            advertised,
            _dir: dir,
        };
        t.restart();
        t
    }

    fn start() -> Tansu {
        Tansu::launch("memory://tansu/", None, None)
    }

    /// A broker that tells clients to connect to `front` (a TLS front that
    /// forwards to it): its own port serves only the test's admin calls.
    fn start_behind(front: u16) -> Tansu {
        Tansu::launch("memory://tansu/", Some(front), None)
    }

    /// A broker on a SQLite file, so that what it holds (users) outlives
    /// a restart. Relative: Tansu opens it in its working directory.
    fn start_on_file() -> Tansu {
        let dir = tempfile::tempdir().expect("tempdir");
        Tansu::launch("sqlite://tansu.db", None, Some(dir))
    }

    fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on its port and waits until it accepts connections.
    fn restart(&mut self) {
        let mut args = vec![
            "broker".to_string(),
            "--listener-url".into(),
            self.url(),
            "--advertised-listener-url".into(),
            match self.advertised {
                Some(p) => format!("tcp://127.0.0.1:{p}"),
                None => self.url(),
            },
            "--storage-engine".into(),
            self.storage.clone(),
        ];
        if self.authentication {
            args.push("--authentication".into());
        }
        let mut cmd = Command::new(tansu_bin());
        if let Some(d) = &self._dir {
            cmd.current_dir(d.path());
        }
        let child = cmd
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(self.addr()).is_err() {
            assert!(Instant::now() < deadline, "tansu did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn create_topic(&self, name: &str, partitions: u32) {
        run_ok(
            Command::new(tansu_bin()).args([
                "topic",
                "create",
                "--broker",
                &self.url(),
                "--partitions",
                &partitions.to_string(),
                name,
            ]),
            "tansu topic create",
        );
    }

    /// Produces `records` (`{"key": .., "value": ..}` each) to one
    /// partition, one `tansu cat produce` per record: Tansu 0.6's client
    /// writes a batch of several records with a last offset delta of 0, so
    /// the broker numbers the next batch wrongly (seen with its own
    /// consumer); single-record batches are numbered right.
    fn produce(&self, topic: &str, partition: u32, records: &[Value]) {
        for r in records {
            self.produce_one(topic, partition, &format!("{r}\n"));
        }
    }

    fn produce_one(&self, topic: &str, partition: u32, input: &str) {
        let mut child = Command::new(tansu_bin())
            .args([
                "cat",
                "produce",
                "--broker",
                &self.url(),
                "--partition",
                &partition.to_string(),
                topic,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tansu cat produce");
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(input.as_bytes()).expect("write records");
        }
        let out = child.wait_with_output().expect("tansu cat produce");
        assert!(
            out.status.success(),
            "tansu cat produce: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Every record of one partition from offset 0, as tansu's consumer
    /// prints them (`{"key": .., "value": ..}`).
    fn consume(&self, topic: &str, partition: u32) -> Vec<Value> {
        let out = run_ok(
            Command::new(tansu_bin()).args([
                "cat",
                "consume",
                "--broker",
                &self.url(),
                "--partition",
                &partition.to_string(),
                "--max-wait-time-ms",
                "200",
                topic,
            ]),
            "tansu cat consume",
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let mut got = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<Value>(line) {
                Ok(Value::Array(a)) => got.extend(a),
                Ok(v) => got.push(v),
                Err(e) => panic!("tansu cat consume printed {line:?}: {e}"),
            }
        }
        got
    }

    /// Consumes every partition until `n` records are there (30 s at most).
    fn wait_records(&self, topic: &str, partitions: u32, n: usize, s: &Server) -> Vec<Vec<Value>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let parts: Vec<Vec<Value>> = (0..partitions).map(|p| self.consume(topic, p)).collect();
            let total: usize = parts.iter().map(Vec::len).sum();
            if total >= n || Instant::now() > deadline {
                assert_eq!(total, n, "records {parts:?}\nlog:\n{}", s.log());
                return parts;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `n` JSON messages from `sub` (30 s at most); on a shortfall, panics with
/// what came, the rule's status and the server's log.
fn take(sub: &mqtt::Sub, n: usize, s: &Server, rule: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match sub.rx.recv_timeout(left) {
            Ok((_, p)) => got.push(serde_json::from_slice(&p).expect("JSON payload")),
            Err(_) => panic!(
                "got {} of {n}: {got:?}\nstatus {}\nlog:\n{}",
                got.len(),
                s.status(rule),
                s.log()
            ),
        }
    }
    got
}

/// Reads `topic` back through a kafka stream with conf key `key` (the
/// properties `conf`) and a rule `rule` that publishes each row to MQTT
/// topic `out`.
fn read_back(s: &Server, key: &str, conf: &Value, topic: &str, rule: &str, out: &str) {
    s.expect(
        "PUT",
        &format!("/metadata/sources/kafka/confKeys/{key}"),
        Some(&conf.to_string()),
        200,
    );
    s.create_stream(&format!(
        r#"CREATE STREAM {rule}_in (v bigint) WITH (TYPE="kafka", DATASOURCE="{topic}", FORMAT="json", CONF_KEY="{key}")"#
    ));
    s.create_rule(&json!({"id": rule, "sql": format!("SELECT v FROM {rule}_in"),
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": out, "sendSingle": true}}]}));
}

fn oort_granting(k: &Tansu) -> Server {
    Server::start_with(Opts {
        env: vec![(
            "OORT__PLUGINS__GRANTS__KAFKA__OUTBOUND".into(),
            format!("[\"tcp://{}\"]", k.addr()),
        )],
        ..Opts::default()
    })
}

#[test]
fn kafka_sink_produces_keyed_records_with_headers_that_a_kafka_client_reads() {
    let k = Tansu::start();
    let topic = unique("oort-out").replace('/', "-");
    k.create_topic(&topic, 3);
    let s = oort_granting(&k);
    let input = unique("kafka/in");
    s.create_stream(&format!(
        r#"CREATE STREAM kin (id bigint, site string, v bigint) WITH (DATASOURCE="{input}", TYPE="mqtt", FORMAT="json")"#
    ));
    s.create_rule(&json!({
        "id": "to_kafka",
        "sql": "SELECT id, site, v FROM kin",
        "actions": [{"kafka": {
            "brokers": k.addr(), "topic": topic, "key": "{{.id}}",
            "headers": {"site": "{{.site}}", "src": "oort"},
            "compression": "gzip", "sendSingle": true
        }}]
    }));
    s.wait_status("to_kafka", "source connected", |st| {
        st["source_kin_0_connection_status"] == 1
    });
    let rows: Vec<String> = (0..12)
        .map(|i| json!({"id": i % 4, "site": format!("s{i}"), "v": i}).to_string())
        .collect();
    mqtt::publish(&input, &rows);
    let parts = k.wait_records(&topic, 3, 12, &s);
    // Kafka's own client reads plain JSON values (the gzip was the record
    // batch's, not the payload's), each key on one partition only. (Tansu's
    // client prints a key parsed as JSON: numeric ids show as numbers.)
    let mut seen = Vec::new();
    for (p, recs) in parts.iter().enumerate() {
        for r in recs {
            let key = r["key"].as_i64().unwrap_or_else(|| panic!("no key: {r}"));
            let v = &r["value"];
            assert_eq!(v["id"], key, "{r}");
            seen.push((key.to_string(), p, v["v"].as_i64().unwrap_or(-1)));
        }
    }
    // Kafka's default partitioner: murmur2("0"), ("2"), ("3") modulo 3 is
    // 2 and murmur2("1") modulo 3 is 0, where a Java producer puts them.
    for (key, want) in [("0", 2), ("1", 0), ("2", 2), ("3", 2)] {
        let ps: Vec<usize> = seen.iter().filter(|s| s.0 == key).map(|s| s.1).collect();
        assert_eq!(ps, [want, want, want], "{key}: {seen:?}");
    }
    // Within a key (one partition), the order of the rows.
    for key in ["0", "1", "2", "3"] {
        let vs: Vec<i64> = seen.iter().filter(|s| s.0 == key).map(|s| s.2).collect();
        assert!(vs.windows(2).all(|w| w[0] < w[1]), "{key}: {vs:?}");
    }
    // The sink counts what Kafka acknowledged.
    let st = s.wait_status("to_kafka", "12 out", |st| {
        st["sink_kafka_0_0_records_out_total"] == 12
    });
    assert_eq!(st["status"], "running", "{st}");

    // Oort's kafka source on the same topic, with a consumer group (every
    // partition, from the earliest): keys, headers and partitions arrive as
    // metadata.
    let out = unique("kafka/out");
    let sub = mqtt::subscribe(&out);
    s.expect(
        "PUT",
        "/metadata/sources/kafka/confKeys/default",
        Some(&json!({"brokers": k.addr(), "groupID": unique("g").replace('/', "-")}).to_string()),
        200,
    );
    s.create_stream(&format!(
        r#"CREATE STREAM kback (id bigint, v bigint) WITH (TYPE="kafka", DATASOURCE="{topic}", FORMAT="json")"#
    ));
    s.create_rule(&json!({
        "id": "from_kafka",
        "sql": "SELECT id, v, meta(key) AS k, meta(headers) AS h, meta(`partition`) AS p, meta(offset) AS o FROM kback",
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": out, "sendSingle": true}}]
    }));
    let got = take(&sub, 12, &s, "from_kafka");
    // The records of each partition are numbered 0, 1, 2... without gaps.
    for p in ["0", "2"] {
        let mut offsets: Vec<i64> = got
            .iter()
            .filter(|g| g["p"] == p)
            .filter_map(|g| g["o"].as_str().and_then(|o| o.parse().ok()))
            .collect();
        offsets.sort_unstable();
        let want: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(offsets, want, "partition {p}: {got:?}");
    }
    assert_eq!(
        got.len(),
        12,
        "status {}\nlog:\n{}",
        s.status("from_kafka"),
        s.log()
    );
    for g in &got {
        assert_eq!(g["k"], g["id"].to_string(), "{g}");
        let h: Value = serde_json::from_str(g["h"].as_str().unwrap_or("null")).unwrap_or_default();
        assert_eq!(h["src"], "oort", "{g}");
        assert!(
            h["site"].as_str().is_some_and(|s| s.starts_with('s')),
            "{g}"
        );
        let p: usize = g["p"].as_str().and_then(|p| p.parse().ok()).unwrap_or(9);
        let key = g["id"].to_string();
        assert!(
            seen.iter().any(|s| s.0 == key && s.1 == p),
            "partition {p} for {key}: {seen:?}"
        );
    }
}

#[test]
fn kafka_source_reads_a_partition_and_resumes_where_its_rule_left_off() {
    let k = Tansu::start();
    let topic = unique("oort-in").replace('/', "-");
    k.create_topic(&topic, 2);
    let recs = |from: i64, to: i64| -> Vec<Value> {
        (from..to)
            // Tansu's client writes a key as JSON text: 2 is the bytes "2".
            .map(|i| json!({"key": i * 10, "value": {"n": i}}))
            .collect()
    };
    k.produce(&topic, 1, &recs(0, 3));
    k.produce(&topic, 0, &[json!({"value": {"n": -1}})]);
    let s = oort_granting(&k);
    let out = unique("kafka/resume");
    let sub = mqtt::subscribe(&out);
    // Partition 1 from the earliest record.
    s.expect(
        "PUT",
        "/metadata/sources/kafka/confKeys/p1",
        Some(&json!({"brokers": k.addr(), "partition": 1, "startOffset": "earliest"}).to_string()),
        200,
    );
    s.create_stream(&format!(
        r#"CREATE STREAM kp (n bigint) WITH (TYPE="kafka", DATASOURCE="{topic}", FORMAT="json", CONF_KEY="p1")"#
    ));
    s.create_rule(&json!({
        "id": "kresume",
        "sql": "SELECT n, meta(offset) AS o, meta(key) AS k FROM kp",
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": out, "sendSingle": true}}],
        "options": {"qos": 1, "checkpointInterval": 50}
    }));
    let got = take(&sub, 3, &s, "kresume");
    let ns: Vec<i64> = got.iter().filter_map(|g| g["n"].as_i64()).collect();
    assert_eq!(ns, [0, 1, 2], "partition 1 only, in order:\n{}", s.log());
    assert_eq!(got[2]["o"], "2");
    assert_eq!(got[2]["k"], "20");
    // The checkpoint covers the three records: the next one is offset 3.
    s.wait_status("kresume", "offset 1:3 committed", |st| {
        st["source_kp_0_committed_offset"] == "1:3"
    });
    s.expect("POST", "/rules/kresume/stop", None, 200);
    // Written while the rule is stopped: read when it starts again, and
    // nothing before them again.
    k.produce(&topic, 1, &recs(3, 5));
    s.expect("POST", "/rules/kresume/start", None, 200);
    let got = take(&sub, 2, &s, "kresume");
    let ns: Vec<i64> = got.iter().filter_map(|g| g["n"].as_i64()).collect();
    assert_eq!(ns, [3, 4], "resumed at offset 3:\n{}", s.log());
    // Nothing read twice: the next message is the next record.
    k.produce(&topic, 1, &recs(5, 6));
    let got = take(&sub, 1, &s, "kresume");
    assert_eq!(got[0]["n"], 5, "{got:?}");
}

#[test]
fn kafka_settings_oort_does_not_implement_are_refused_by_name() {
    let k = Tansu::start();
    let s = oort_granting(&k);
    for (props, want) in [
        (json!({"saslAuthType": "plain"}), "saslAuthType"),
        (
            json!({"rootCaPath": "/nonexistent/ca.pem"}),
            "rootCaPath /nonexistent/ca.pem",
        ),
        (json!({"tlsMinVersion": "tls1.0"}), "tlsMinVersion"),
        (json!({"groupID": "g", "partition": 1}), "groupID"),
    ] {
        let mut p = props.as_object().cloned().unwrap_or_default();
        p.insert("brokers".into(), k.addr().into());
        s.expect(
            "PUT",
            "/metadata/sources/kafka/confKeys/bad",
            Some(&Value::Object(p).to_string()),
            200,
        );
        let r = s.post(
            "/streams",
            &json!({"sql": "CREATE STREAM kbad () WITH (TYPE=\"kafka\", DATASOURCE=\"t\", CONF_KEY=\"bad\")"})
                .to_string(),
        );
        assert!(
            r.status == 400 && r.body.contains(want),
            "{want}: {} {}",
            r.status,
            r.body
        );
    }
    s.create_stream(
        r#"CREATE STREAM kx (v bigint) WITH (DATASOURCE="kafka/refusals", TYPE="mqtt")"#,
    );
    for (extra, want) in [
        (json!({"compression": "lz4"}), "compression lz4"),
        (json!({"requiredACKs": 2}), "requiredACKs"),
        (json!({"saslAuthType": "scram"}), "saslAuthType"),
        (json!({}), "topic is required"),
    ] {
        let mut p = extra.as_object().cloned().unwrap_or_default();
        p.insert("brokers".into(), k.addr().into());
        if want != "topic is required" {
            p.insert("topic".into(), "t".into());
        }
        let r = s.post(
            "/rules",
            &json!({"id": "kbad", "sql": "SELECT v FROM kx", "actions": [{"kafka": p}]})
                .to_string(),
        );
        assert!(
            r.status == 400 && r.body.contains(want),
            "{want}: {} {}",
            r.status,
            r.body
        );
        assert_eq!(s.get("/rules/kbad").status, 404, "nothing stored");
    }
}

#[test]
fn kafka_sink_keeps_what_a_broker_outage_held_back() {
    let mut k = Tansu::start();
    let topic = unique("oort-outage").replace('/', "-");
    k.create_topic(&topic, 1);
    let s = oort_granting(&k);
    let input = unique("kafka/outage");
    s.create_stream(&format!(
        r#"CREATE STREAM ko (v bigint) WITH (DATASOURCE="{input}", TYPE="mqtt", FORMAT="json")"#
    ));
    s.create_rule(&json!({
        "id": "kout",
        "sql": "SELECT v FROM ko",
        "actions": [{"kafka": {"brokers": k.addr(), "topic": topic, "sendSingle": true,
            "enableCache": true, "retryCount": 1, "retryInterval": "100ms", "resendInterval": "200ms"}}]
    }));
    s.wait_status("kout", "source connected", |st| {
        st["source_ko_0_connection_status"] == 1
    });
    let rows =
        |a: i64, b: i64| -> Vec<String> { (a..b).map(|v| json!({"v": v}).to_string()).collect() };
    mqtt::publish(&input, &rows(0, 3));
    k.wait_records(&topic, 1, 3, &s);
    // The broker goes away (its in-memory log with it); rows keep coming.
    k.kill();
    mqtt::publish(&input, &rows(3, 8));
    s.wait_status("kout", "the failed writes cached", |st| {
        st["sink_kafka_0_0_cache_length"].as_u64().unwrap_or(0) >= 1
            || st["sink_kafka_0_0_exceptions_total"].as_u64().unwrap_or(0) >= 1
    });
    k.restart();
    k.create_topic(&topic, 1);
    let got = k.wait_records(&topic, 1, 5, &s);
    let vs: Vec<i64> = got[0]
        .iter()
        .filter_map(|r| r["value"]["v"].as_i64())
        .collect();
    assert_eq!(vs, [3, 4, 5, 6, 7], "none lost, in order:\n{}", s.log());
    // The records are readable before the sink counts its write as done: wait for the count.
    let st = s.wait_status("kout", "8 records out", |st| {
        st["sink_kafka_0_0_records_out_total"] == 8
    });
    assert_eq!(
        st["sink_kafka_0_0_records_dropped_total"]
            .as_u64()
            .unwrap_or(0),
        0,
        "{st}"
    );
}

/// Log lines of a group's assignments (`... partitions [0, 1] of <topic>`).
fn assignments(log: &str, topic: &str) -> Vec<String> {
    let tail = format!(" of {topic}");
    log.lines()
        .filter(|l| l.contains("kafka group") && l.contains(&tail))
        .filter_map(|l| {
            let at = l.find("partitions [")? + "partitions ".len();
            let end = l[at..].find(']')? + at + 1;
            Some(l[at..end].to_string())
        })
        .collect()
}

#[test]
fn two_servers_in_one_consumer_group_share_a_topic_and_take_over_from_each_other() {
    let k = Tansu::start();
    let topic = unique("oort-group").replace('/', "-");
    k.create_topic(&topic, 2);
    let group = unique("grp").replace('/', "-");
    let out = unique("kafka/group");
    let sub = mqtt::subscribe(&out);
    let start = |rule: &str| -> Server {
        let s = oort_granting(&k);
        s.expect(
            "PUT",
            "/metadata/sources/kafka/confKeys/default",
            Some(&json!({"brokers": k.addr(), "groupID": group}).to_string()),
            200,
        );
        s.create_stream(&format!(
            r#"CREATE STREAM kg (n bigint) WITH (TYPE="kafka", DATASOURCE="{topic}", FORMAT="json")"#
        ));
        s.create_rule(&json!({
            "id": rule,
            "sql": "SELECT n, meta(`partition`) AS p, meta(offset) AS o FROM kg",
            "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": out, "sendSingle": true}}]
        }));
        s
    };
    let one = |l: &str| {
        l.contains(&format!("partitions [0] of {topic}"))
            || l.contains(&format!("partitions [1] of {topic}"))
    };
    let s1 = start("g1");
    s1.wait_log("the first member owns both partitions", |l| {
        l.contains(&format!("partitions [0, 1] of {topic}"))
    });
    let mut s2 = start("g2");
    // The second member's join rebalances the group: one partition each.
    s2.wait_log("the second member's partition", one);
    s1.wait_log("the first member's share", one);
    let mine1 = assignments(&s1.log(), &topic).pop().unwrap_or_default();
    let mine2 = assignments(&s2.log(), &topic).pop().unwrap_or_default();
    assert_ne!(mine1, mine2, "both own {mine1}");

    let recs = |from: i64, to: i64| -> Vec<Value> {
        (from..to).map(|i| json!({"value": {"n": i}})).collect()
    };
    k.produce(&topic, 0, &recs(0, 4));
    k.produce(&topic, 1, &recs(100, 104));
    let got = take(&sub, 8, &s1, "g1");
    let mut seen: Vec<(String, String)> = got
        .iter()
        .map(|g| {
            (
                g["p"].as_str().unwrap_or("?").to_string(),
                g["o"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    seen.sort();
    let want: Vec<(String, String)> = ["0", "1"]
        .iter()
        .flat_map(|p| (0..4).map(move |o| (p.to_string(), o.to_string())))
        .collect();
    assert_eq!(seen, want, "each record once");
    let n = |s: &Server, rule: &str| {
        s.status(rule)["source_kg_0_records_in_total"]
            .as_u64()
            .unwrap_or(0)
    };
    assert_eq!((n(&s1, "g1"), n(&s2, "g2")), (4, 4), "one partition each");

    // The second server's rule stops (most likely while a read waits on the
    // broker): its source is still closed, so it commits and leaves the
    // group, and the first takes the partition over from that offset
    // without waiting for the session timeout.
    s2.expect("POST", "/rules/g2/stop", None, 200);
    s2.wait_log("the stopped member leaves its group", |l| {
        l.contains(&format!("kafka group {group}: left"))
    });
    assert_eq!(s2.terminate(), Some(0));
    let deadline = Instant::now() + Duration::from_secs(30);
    while assignments(&s1.log(), &topic).last().map(String::as_str) != Some("[0, 1]") {
        assert!(
            Instant::now() < deadline,
            "no takeover:\n{}\nthe server that left:\n{}",
            s1.log(),
            s2.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    k.produce(&topic, 0, &recs(4, 6));
    k.produce(&topic, 1, &recs(104, 106));
    // Every new record arrives. The partition that changed hands goes on
    // from the offset its last owner committed (every second while it
    // read): the records it delivered after that commit may come again
    // (at least once), nothing before it, and the other partition not at all.
    let left = mine2.trim_matches(|c| c == '[' || c == ']').to_string();
    let want: Vec<(String, i64)> = ["0", "1"]
        .iter()
        .flat_map(|p| (4..6).map(move |o| (p.to_string(), o)))
        .collect();
    let mut seen: Vec<(String, i64)> = Vec::new();
    while !want.iter().all(|w| seen.contains(w)) {
        let g = take(&sub, 1, &s1, "g1").remove(0);
        let p = g["p"].as_str().unwrap_or("?").to_string();
        let o: i64 = g["o"].as_str().and_then(|o| o.parse().ok()).unwrap_or(-1);
        assert!(
            o >= 4 || (p == left && o >= 0),
            "{p}:{o} read again, but partition {p} did not change hands:\n{}",
            s1.log()
        );
        assert!(
            !seen.contains(&(p.clone(), o)),
            "{p}:{o} twice after the takeover"
        );
        seen.push((p, o));
    }
}

#[test]
fn kafka_plugins_authenticate_with_sasl_scram_and_a_wrong_password_is_named() {
    // The user is created with authentication off (Tansu's CLI cannot
    // authenticate), then the broker restarts with it on, on the same file.
    let mut k = Tansu::start_on_file();
    let topic = unique("oort-sasl").replace('/', "-");
    k.create_topic(&topic, 1);
    run_ok(
        Command::new(tansu_bin()).args(["user", "create", "--broker", &k.url(), "alice", "s3cret"]),
        "tansu user create",
    );
    k.kill();
    k.authentication = true;
    k.restart();
    let s = oort_granting(&k);
    let input = unique("kafka/sasl");
    let out = unique("kafka/sasl-out");
    let sub = mqtt::subscribe(&out);
    s.create_stream(&format!(
        r#"CREATE STREAM ks (v bigint) WITH (DATASOURCE="{input}", TYPE="mqtt", FORMAT="json")"#
    ));
    let sink = |password: &str| {
        json!({"kafka": {"brokers": k.addr(), "topic": topic, "sendSingle": true,
            "saslAuthType": "scram", "saslUserName": "alice", "password": password}})
    };
    // A wrong password: the rule cannot start its sink, and says why.
    s.create_rule(&json!({"id": "kbadpw", "sql": "SELECT v FROM ks", "actions": [sink("wrong")]}));
    let st = s.wait_status("kbadpw", "the SASL failure", |st| {
        st.to_string().contains("SASL SCRAM-SHA-512 as alice")
    });
    assert_ne!(st["status"], "running", "{st}");
    s.expect("DELETE", "/rules/kbadpw", None, 200);
    // The right one: rows go in, and the source (authenticated too) reads
    // them back. (PLAIN is not tried: Tansu 0.6 accepts any PLAIN password.)
    s.create_rule(&json!({"id": "ksasl", "sql": "SELECT v FROM ks", "actions": [sink("s3cret")]}));
    read_back(
        &s,
        "sasl",
        &json!({"brokers": k.addr(), "startOffset": "earliest", "saslAuthType": "scram",
            "saslUserName": "alice", "password": "s3cret"}),
        &topic,
        "ksasl_back",
        &out,
    );
    s.wait_status("ksasl", "source connected", |st| {
        st["source_ks_0_connection_status"] == 1
    });
    let rows: Vec<String> = (0..3).map(|v| json!({"v": v}).to_string()).collect();
    mqtt::publish(&input, &rows);
    let got = take(&sub, 3, &s, "ksasl_back");
    let vs: Vec<i64> = got.iter().filter_map(|g| g["v"].as_i64()).collect();
    assert_eq!(vs, [0, 1, 2]);
}

/// A TLS front for a broker: socat terminates TLS on `port` with the test
/// CA's server certificate, requires a client certificate signed by that
/// CA, and forwards to the broker, which advertises this port, so every
/// connection a Kafka client opens goes through TLS. Killed on drop.
struct TlsFront {
    port: u16,
    child: Child,
}

impl TlsFront {
    fn start(port: u16, broker: &Tansu, certs: &std::path::Path) -> TlsFront {
        let d = certs.display();
        let child = Command::new("socat")
            .args([
                &format!(
                    "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={d}/server.pem,key={d}/server.key,cafile={d}/ca.pem,verify=1"
                ),
                &format!("TCP:127.0.0.1:{}", broker.port),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start socat (scripts/services.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "socat did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        TlsFront { port, child }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn kafka_plugins_speak_tls_with_a_client_certificate_and_name_a_refused_handshake() {
    use base64::Engine as _;
    let certs = tempfile::tempdir().expect("tempdir");
    oort_tests::certs::make(certs.path());
    let dir = certs
        .path()
        .canonicalize()
        .expect("resolve the certificates' dir");
    let b64 = |f: &str| {
        base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(dir.join(f)).expect("read a certificate"))
    };
    let front_port = free_port();
    let k = Tansu::start_behind(front_port);
    let front = TlsFront::start(front_port, &k, &dir);
    let topic = unique("oort-tls").replace('/', "-");
    k.create_topic(&topic, 1);
    // The sink gets its certificates inline (base64, eKuiper's `...Raw`),
    // the source from files in a directory granted to the plugin.
    let s = Server::start_with(Opts {
        env: vec![
            (
                "OORT__PLUGINS__GRANTS__KAFKA__OUTBOUND".into(),
                format!("[\"tcp://127.0.0.1:{}\"]", front.port),
            ),
            (
                "OORT__PLUGINS__GRANTS__KAFKA__DIRS".into(),
                format!("[\"{}\"]", dir.display()),
            ),
        ],
        ..Opts::default()
    });
    let tls_addr = format!("127.0.0.1:{}", front.port);
    let input = unique("kafka/tls");
    let out = unique("kafka/tls-out");
    let sub = mqtt::subscribe(&out);
    s.create_stream(&format!(
        r#"CREATE STREAM kt (v bigint) WITH (DATASOURCE="{input}", TYPE="mqtt", FORMAT="json")"#
    ));
    let sink = |extra: Value| {
        let mut p = json!({"brokers": tls_addr, "topic": topic, "sendSingle": true});
        if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        json!({ "kafka": p })
    };
    // Refused handshakes, each named: the broker's certificate without its
    // CA (Mozilla's roots do not know it), and no client certificate.
    for (id, extra, want) in [
        (
            "ktls_noca",
            json!({"certficationRaw": b64("client.pem"), "privateKeyRaw": b64("client.key")}),
            "certificate is refused",
        ),
        (
            "ktls_nocert",
            json!({"rootCARaw": b64("ca.pem")}),
            "client certificate",
        ),
    ] {
        s.create_rule(&json!({"id": id, "sql": "SELECT v FROM kt", "actions": [sink(extra)]}));
        let st = s.wait_status(id, want, |st| st.to_string().contains(want));
        assert_ne!(st["status"], "running", "{st}");
        s.expect("DELETE", &format!("/rules/{id}"), None, 200);
    }
    s.create_rule(
        &json!({"id": "ktls", "sql": "SELECT v FROM kt", "actions": [sink(json!({
            "rootCARaw": b64("ca.pem"), "certficationRaw": b64("client.pem"),
            "privateKeyRaw": b64("client.key"), "tlsMinVersion": "tls1.2"
        }))]}),
    );
    let d = dir.display();
    read_back(
        &s,
        "tls",
        &json!({"brokers": format!("ssl://{tls_addr}"), "startOffset": "earliest",
            "rootCaPath": format!("{d}/ca.pem"), "certificationPath": format!("{d}/client.pem"),
            "privateKeyPath": format!("{d}/client.key")}),
        &topic,
        "ktls_back",
        &out,
    );
    s.wait_status("ktls", "source connected", |st| {
        st["source_kt_0_connection_status"] == 1
    });
    // insecureSkipVerify: no CA given, the front's certificate accepted as
    // it is (its own topic, so the round trip above stays exact).
    let skip_topic = unique("oort-tls-skip").replace('/', "-");
    k.create_topic(&skip_topic, 1);
    s.create_rule(&json!({"id": "ktls_skip", "sql": "SELECT v FROM kt", "actions": [{"kafka": {
        "brokers": tls_addr, "topic": skip_topic, "sendSingle": true, "insecureSkipVerify": true,
        "certficationRaw": b64("client.pem"), "privateKeyRaw": b64("client.key")
    }}]}));
    s.wait_status("ktls_skip", "source connected", |st| {
        st["source_kt_0_connection_status"] == 1
    });
    let rows: Vec<String> = (0..3).map(|v| json!({"v": v}).to_string()).collect();
    mqtt::publish(&input, &rows);
    let got = take(&sub, 3, &s, "ktls_back");
    let vs: Vec<i64> = got.iter().filter_map(|g| g["v"].as_i64()).collect();
    assert_eq!(vs, [0, 1, 2]);
    s.wait_status("ktls_skip", "3 records acknowledged", |st| {
        st["sink_kafka_0_0_records_out_total"] == 3
    });
}
