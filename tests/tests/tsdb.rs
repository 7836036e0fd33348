//! The built-in time-series sink plugins (eKuiper's `influx`, `influx2` and
//! `tdengine` sinks as WebAssembly components over `wasi:http`): rows into a
//! real InfluxDB 1.x started privately on free ports (Debian's influxdb);
//! the InfluxDB v2 and TDengine REST wire formats (path, query, credentials,
//! body) checked by local peers, with an outage that loses nothing and a
//! statement TDengine refuses.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oort_tests::http_peer::HttpPeer;
use oort_tests::{free_port, mqtt, unique, Opts, Server};
use serde_json::{json, Value as Json};

/// A private `influxd` on free ports, killed on drop.
struct Influxd {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Influxd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Influxd {
    /// Starts on two distinct free ports; a start that fails (a port taken
    /// meanwhile by another test) is tried again on new ports.
    fn start() -> Influxd {
        let mut last = String::new();
        for _ in 0..3 {
            match Influxd::try_start() {
                Ok(i) => return i,
                Err(e) => last = e,
            }
        }
        panic!("influxd did not start: {last}");
    }

    fn try_start() -> Result<Influxd, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let http = free_port();
        let rpc = loop {
            let p = free_port();
            if p != http {
                break p;
            }
        };
        let d = dir.path().display();
        let conf = format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n\
             [meta]\n  dir = \"{d}/meta\"\n[data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
             [http]\n  bind-address = \"127.0.0.1:{http}\"\n  log-enabled = false\n[logging]\n  level = \"warn\"\n"
        );
        let conf_path = dir.path().join("influxdb.conf");
        std::fs::write(&conf_path, conf).expect("write influxdb.conf");
        let log = std::fs::File::create(dir.path().join("influxd.log")).expect("log file");
        let child = Command::new(influxd())
            .arg("-config")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start influxd (scripts/services.sh installs Debian's influxdb)");
        let mut i = Influxd {
            child,
            base: format!("http://127.0.0.1:{http}"),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::blocking::get(format!("{}/ping", i.base)).map_or(true, |r| r.status() != 204)
        {
            let log =
                || std::fs::read_to_string(i._dir.path().join("influxd.log")).unwrap_or_default();
            if let Ok(Some(st)) = i.child.try_wait() {
                return Err(format!("influxd exited ({st}):\n{}", log()));
            }
            if Instant::now() > deadline {
                return Err(format!("no answer in 30 s:\n{}", log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(i)
    }

    fn query(&self, db: &str, q: &str) -> Json {
        reqwest::blocking::Client::new()
            .post(format!("{}/query", self.base))
            .query(&[("db", db), ("q", q)])
            .send()
            .and_then(|r| r.json())
            .expect("influx query")
    }
}

fn influxd() -> &'static str {
    for p in ["/usr/bin/influxd", "/usr/local/bin/influxd"] {
        if Path::new(p).is_file() {
            return p;
        }
    }
    "influxd"
}

/// A server whose built-in `influx`/`influx2` plugins may reach `grant`.
fn oort_granting(grant: &str) -> Server {
    let g = format!("[\"{grant}\"]");
    Server::start_with(Opts {
        env: vec![
            ("OORT__PLUGINS__GRANTS__INFLUX__OUTBOUND".into(), g.clone()),
            ("OORT__PLUGINS__GRANTS__INFLUX2__OUTBOUND".into(), g.clone()),
            ("OORT__PLUGINS__GRANTS__TDENGINE__OUTBOUND".into(), g),
        ],
        ..Opts::default()
    })
}

#[test]
fn influx_writes_rows_into_a_real_influxdb_1() {
    let influx = Influxd::start();
    let db = unique("oort");
    let r = influx.query(&db, &format!("CREATE DATABASE \"{db}\""));
    assert!(r["results"][0].get("error").is_none(), "{r}");
    let s = oort_granting(&influx.base);
    let topic = unique("influx");
    s.create_stream(&format!(
        r#"CREATE STREAM readings (site string, temperature float, ts bigint) WITH (DATASOURCE="{topic}", TYPE="mqtt", FORMAT="json")"#
    ));
    // A property the plugin refuses is refused at creation, naming it.
    let bad = s.post(
        "/rules",
        &json!({"id": "bad", "sql": "SELECT * FROM readings",
            "actions": [{"influx": {"addr": influx.base, "database": db, "measurement": "m", "precision": "m"}}]})
        .to_string(),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(
        bad.body.contains("precision m is not supported"),
        "{}",
        bad.body
    );
    s.create_rule(&json!({
        "id": "toinflux",
        "sql": "SELECT site, temperature, ts FROM readings WHERE temperature > 0",
        "actions": [{"influx": {
            "addr": influx.base, "database": db, "measurement": "air",
            "precision": "ms", "tsFieldName": "ts",
            "tags": {"loc": "{{.site}}", "src": "oort"}
        }}]
    }));
    s.wait_status("toinflux", "source connected", |st| {
        st["source_readings_0_connection_status"] == 1
    });
    let rows: Vec<String> = (0..5)
        .map(|i| {
            json!({"site": if i % 2 == 0 { "north" } else { "south" },
                   "temperature": if i == 2 { -1.0 } else { 20.5 + f64::from(i) },
                   "ts": 1_700_000_000_000_i64 + i64::from(i)})
            .to_string()
        })
        .collect();
    mqtt::publish(&topic, &rows);
    let deadline = Instant::now() + Duration::from_secs(20);
    let values = loop {
        let r = influx.query(&db, "SELECT temperature, loc, src, ts FROM air");
        let v = r["results"][0]["series"][0]["values"].clone();
        if v.as_array().is_some_and(|a| a.len() >= 4) {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "points did not arrive: {r}\nstatus {}\nlog:\n{}",
            s.status("toinflux"),
            s.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        values,
        json!([
            [
                "2023-11-14T22:13:20Z",
                20.5,
                "north",
                "oort",
                1_700_000_000_000_i64
            ],
            [
                "2023-11-14T22:13:20.001Z",
                21.5,
                "south",
                "oort",
                1_700_000_000_001_i64
            ],
            [
                "2023-11-14T22:13:20.003Z",
                23.5,
                "south",
                "oort",
                1_700_000_000_003_i64
            ],
            [
                "2023-11-14T22:13:20.004Z",
                24.5,
                "north",
                "oort",
                1_700_000_000_004_i64
            ]
        ])
    );
    // The points are in InfluxDB before the sink counts its write as done: wait for the count.
    let st = s.wait_status("toinflux", "4 records out", |st| {
        st["sink_influx_0_0_records_out_total"] == 4
    });
    assert_eq!(st["sink_influx_0_0_exceptions_total"], 0, "{st}");
}

#[test]
fn influx2_sends_v2_line_protocol_and_loses_nothing_in_an_outage() {
    let peer = HttpPeer::start();
    let s = oort_granting(&peer.base);
    let topic = unique("influx2");
    s.create_stream(&format!(
        r#"CREATE STREAM m2 (dev string, v bigint) WITH (DATASOURCE="{topic}", TYPE="mqtt", FORMAT="json")"#
    ));
    s.create_rule(&json!({
        "id": "toinflux2",
        "sql": "SELECT dev, v FROM m2",
        "actions": [{"influx2": {
            "addr": format!("{}/", peer.base), "org": "my org", "bucket": "b1", "token": "tkn",
            "measurement": "m", "precision": "s", "tags": {"dev": "{{.dev}}"}, "sendSingle": true
        }}]
    }));
    s.wait_status("toinflux2", "source connected", |st| {
        st["source_m2_0_connection_status"] == 1
    });
    mqtt::publish(&topic, &[json!({"dev": "d 1", "v": 7}).to_string()]);
    let got = peer.wait_accepted(1, 20);
    assert_eq!(got.len(), 1, "log:\n{}", s.log());
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/api/v2/write?org=my+org&bucket=b1&precision=s");
    assert_eq!(r.header("authorization"), Some("Token tkn"));
    let body = String::from_utf8_lossy(&r.body).into_owned();
    let (head, ts) = body.trim_end().rsplit_once(' ').expect("a timestamp");
    assert_eq!(head, "m,dev=d\\ 1 dev=\"d 1\",v=7i", "{body}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let ts: u64 = ts.parse().expect("seconds");
    assert!(ts.abs_diff(now) < 60, "{ts} vs {now}");

    // The server answers 503 for a while: the rows wait and are retried.
    peer.set_status(503);
    let rows: Vec<String> = (0..3)
        .map(|i| json!({"dev": "d2", "v": i}).to_string())
        .collect();
    mqtt::publish(&topic, &rows);
    s.wait_status("toinflux2", "a failed write", |st| {
        st["sink_influx2_0_0_exceptions_total"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    });
    peer.set_status(200);
    // Batches may group rows: count lines, not requests.
    let deadline = Instant::now() + Duration::from_secs(30);
    let lines = loop {
        let lines: Vec<String> = peer.accepted()[1..]
            .iter()
            .flat_map(|r| {
                String::from_utf8_lossy(&r.body)
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        if lines.len() >= 3 || Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(lines.len(), 3, "{lines:?}\nlog:\n{}", s.log());
    for (i, l) in lines.iter().enumerate() {
        assert!(
            l.starts_with(&format!("m,dev=d2 dev=\"d2\",v={i}i ")),
            "{lines:?}"
        );
    }
}

/// A peer answering every request with `body` (200), recording the requests.
fn answering_peer(body: &'static str) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", l.local_addr().expect("addr"));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let rec = seen.clone();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let rec = rec.clone();
            std::thread::spawn(move || {
                let mut w = c.try_clone().expect("clone");
                let mut r = BufReader::new(c);
                loop {
                    let mut head = String::new();
                    let mut len = 0;
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                        if h.trim_end().is_empty() {
                            break;
                        }
                        head.push_str(&h);
                    }
                    let mut b = vec![0u8; len];
                    if r.read_exact(&mut b).is_err() {
                        return;
                    }
                    rec.lock()
                        .expect("lock")
                        .push(format!("{head}\n{}", String::from_utf8_lossy(&b)));
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if w.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (base, seen)
}

#[test]
fn tdengine_posts_escaped_inserts_to_the_rest_api() {
    let (base, seen) = answering_peer(r#"{"code":0,"column_meta":[],"data":[[1]],"rows":1}"#);
    let (bad_base, _) = answering_peer(r#"{"code":9826,"desc":"Table does not exist"}"#);
    let s = Server::start_with(Opts {
        env: vec![(
            "OORT__PLUGINS__GRANTS__TDENGINE__OUTBOUND".into(),
            format!("[\"{base}\", \"{bad_base}\"]"),
        )],
        ..Opts::default()
    });
    let port = |b: &str| {
        b.rsplit(':')
            .next()
            .expect("port")
            .parse::<u16>()
            .expect("port")
    };
    let topic = unique("taos");
    s.create_stream(&format!(
        r#"CREATE STREAM meters_in (dev string, loc string, current float, ts bigint) WITH (DATASOURCE="{topic}", TYPE="mqtt", FORMAT="json")"#
    ));
    let action = |p: u16| {
        json!({"tdengine": {
            "host": "127.0.0.1", "port": p, "database": "power",
            "table": "d_{{.dev}}", "sTable": "meters", "tagFields": ["loc"],
            "tsFieldName": "ts", "provideTs": true, "sendSingle": true
        }})
    };
    s.create_rule(&json!({"id": "totaos", "sql": "SELECT current, ts, dev, loc FROM meters_in", "actions": [action(port(&base))]}));
    s.create_rule(&json!({"id": "refused", "sql": "SELECT * FROM meters_in", "actions": [action(port(&bad_base))]}));
    s.wait_status("totaos", "source connected", |st| {
        st["source_meters_in_0_connection_status"] == 1
    });
    mqtt::publish(
        &topic,
        &[
            json!({"dev": "1001", "loc": "o'hare", "current": 10.3, "ts": 1_700_000_000_000_i64})
                .to_string(),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let req = loop {
        if let Some(r) = seen.lock().expect("lock").first().cloned() {
            break r;
        }
        assert!(Instant::now() < deadline, "no insert\nlog:\n{}", s.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(req.starts_with("POST /rest/sql/power HTTP/1.1"), "{req}");
    assert!(
        req.to_ascii_lowercase()
            .contains("authorization: basic cm9vddp0yw9zzgf0yq=="),
        "{req}"
    );
    assert!(
        req.ends_with("\nINSERT INTO d_1001 (ts,current,dev,loc) USING meters TAGS ('o\\'hare') VALUES (1700000000000,10.3,'1001','o\\'hare');"),
        "{req}"
    );
    // TDengine's refusal (200 with a code) drops the row and counts it.
    let st = s.wait_status("refused", "a refused insert", |st| {
        st["sink_tdengine_0_0_exceptions_total"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    });
    assert!(
        st.to_string().contains("code 9826: Table does not exist"),
        "{st}"
    );
    assert_eq!(st["sink_tdengine_0_0_records_out_total"], 0, "{st}");
}
