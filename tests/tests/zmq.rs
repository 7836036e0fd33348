//! The built-in `zmq` source and sink plugins (ZMTP 3.0 written in the
//! component, over wasi:sockets) against libzmq: Debian's pyzmq binds a PUB
//! socket the source subscribes to, and a SUB socket the sink connects to.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use oort_tests::{free_port, mqtt, unique, Opts, Server};
use serde_json::json;

/// A Python (libzmq) peer running `script`, its stdout lines on a channel.
struct Peer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn peer(script: &str) -> Peer {
    let mut child = Command::new("/usr/bin/python3")
        .args(["-u", "-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start python3 with pyzmq (scripts/services.sh installs python3-zmq)");
    let out = child.stdout.take().expect("stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    let p = Peer { child, lines };
    assert_eq!(
        p.lines.recv_timeout(Duration::from_secs(20)).as_deref(),
        Ok("ready"),
        "the zmq peer did not start"
    );
    p
}

fn oort_granting(port: u16) -> Server {
    let g = format!("[\"tcp://127.0.0.1:{port}\"]");
    Server::start_with(Opts {
        env: vec![("OORT__PLUGINS__GRANTS__ZMQ__OUTBOUND".into(), g)],
        ..Opts::default()
    })
}

#[test]
fn zmq_source_subscribes_to_a_libzmq_publisher() {
    let port = free_port();
    // Publishes on two topics until killed (PUB/SUB drops what is sent
    // before the subscription arrives).
    let _pub = peer(&format!(
        r#"
import json, time, zmq
s = zmq.Context().socket(zmq.PUB)
s.bind("tcp://127.0.0.1:{port}")
print("ready")
i = 0
while True:
    i += 1
    s.send_multipart([b"sensors", json.dumps({{"n": i, "t": 20.5}}).encode()])
    s.send_multipart([b"other", json.dumps({{"n": -i}}).encode()])
    time.sleep(0.02)
"#
    ));
    let s = oort_granting(port);
    let out = unique("zmqsrc");
    let sub = mqtt::subscribe(&out);
    // No server: refused at creation, naming it.
    let r = s.post(
        "/streams",
        &json!({"sql": "CREATE STREAM zbad () WITH (TYPE=\"zmq\", DATASOURCE=\"x\")"}).to_string(),
    );
    assert!(
        r.status == 400 && r.body.contains("server is required"),
        "{}",
        r.body
    );
    s.expect(
        "PUT",
        "/metadata/sources/zmq/confKeys/local",
        Some(&json!({"server": format!("tcp://127.0.0.1:{port}")}).to_string()),
        200,
    );
    s.create_stream(
        r#"CREATE STREAM zin (n bigint, t float) WITH (TYPE="zmq", DATASOURCE="sensors", CONF_KEY="local")"#,
    );
    s.create_rule(&json!({
        "id": "zsrc",
        "sql": "SELECT n, t, meta(topic) AS topic FROM zin",
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": out, "sendSingle": true}}]
    }));
    let got = sub.take_json(5, 20);
    assert_eq!(
        got.len(),
        5,
        "status {}\nlog:\n{}",
        s.status("zsrc"),
        s.log()
    );
    for g in &got {
        assert_eq!(g["topic"], "sensors", "{g}");
        assert!(
            g["n"].as_i64().is_some_and(|n| n > 0),
            "only the subscribed topic: {g}"
        );
        assert_eq!(g["t"], 20.5);
    }
    let ns: Vec<i64> = got.iter().filter_map(|g| g["n"].as_i64()).collect();
    assert!(
        ns.windows(2).all(|w| w[1] == w[0] + 1),
        "in order, none lost: {ns:?}"
    );
}

#[test]
fn zmq_sink_publishes_to_a_bound_libzmq_subscriber() {
    let port = free_port();
    let sub = peer(&format!(
        r#"
import zmq
s = zmq.Context().socket(zmq.SUB)
s.bind("tcp://127.0.0.1:{port}")
s.setsockopt(zmq.SUBSCRIBE, b"")
print("ready")
while True:
    print(" | ".join(f.decode() for f in s.recv_multipart()))
"#
    ));
    let s = oort_granting(port);
    let topic = unique("zmqsink");
    s.create_stream(&format!(
        r#"CREATE STREAM zs (v bigint) WITH (DATASOURCE="{topic}", TYPE="mqtt", FORMAT="json")"#
    ));
    // eKuiper's sink binds: without connect: true the rule is refused, saying why.
    let r = s.post(
        "/rules",
        &json!({"id": "zbind", "sql": "SELECT v FROM zs",
            "actions": [{"zmq": {"server": format!("tcp://127.0.0.1:{port}")}}]})
        .to_string(),
    );
    assert!(
        r.status == 400 && r.body.contains("cannot listen") && r.body.contains("connect: true"),
        "{}",
        r.body
    );
    s.create_rule(&json!({
        "id": "zsink",
        "sql": "SELECT v FROM zs",
        "actions": [{"zmq": {"server": format!("tcp://127.0.0.1:{port}"), "connect": true,
                             "topic": "results", "sendSingle": true}}]
    }));
    s.wait_status("zsink", "source connected", |st| {
        st["source_zs_0_connection_status"] == 1
    });
    let rows: Vec<String> = (1..=3).map(|v| json!({"v": v}).to_string()).collect();
    mqtt::publish(&topic, &rows);
    let mut got = Vec::new();
    while got.len() < 3 {
        match sub.lines.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => got.push(l),
            Err(_) => panic!(
                "got {got:?}\nstatus {}\nlog:\n{}",
                s.status("zsink"),
                s.log()
            ),
        }
    }
    assert_eq!(
        got,
        vec![
            r#"results | {"v":1}"#,
            r#"results | {"v":2}"#,
            r#"results | {"v":3}"#
        ]
    );
}
