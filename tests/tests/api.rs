//! REST API end to end: streams, tables, rules, errors, persistence.

use oort_tests::{mqtt, unique, Server};
use serde_json::{json, Value as Json};
use std::io::{Read, Write};

#[test]
fn ping_and_info() {
    let s = Server::start();
    assert_eq!(s.get("/ping").status, 200);
    let info = s.expect("GET", "/", None, 200).json();
    assert!(info["version"].as_str().is_some_and(|v| !v.is_empty()));
    assert!(info["upTimeSeconds"].is_u64());
    let r = s.get("/no/such/path");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], 1002);
}

#[test]
fn streams_crud_and_errors() {
    let s = Server::start();
    let r = s.expect(
        "POST",
        "/streams",
        Some(r#"{"sql":"CREATE STREAM demo (color STRING, size BIGINT, ts BIGINT) WITH (DATASOURCE=\"demo\", FORMAT=\"JSON\", TYPE=\"mqtt\")"}"#),
        201,
    );
    assert_eq!(r.body, "Stream demo is created.");
    assert_eq!(s.get("/streams").json(), json!(["demo"]));
    let d = s.expect("GET", "/streams/demo", None, 200).json();
    assert_eq!(d["Name"], "demo");
    assert_eq!(d["StreamType"], 0);
    assert_eq!(d["Options"]["datasource"], "demo");
    assert_eq!(d["Options"]["format"], "json");
    assert_eq!(
        d["StreamFields"][1],
        json!({"Name":"size","FieldType":"bigint"})
    );
    let det = s.get("/streamdetails").json();
    assert_eq!(det, json!([{"name":"demo","type":"mqtt","format":"json"}]));
    let schema = s.get("/streams/demo/schema").json();
    assert_eq!(schema["size"], json!({"type":"bigint"}));

    // Duplicate, malformed SQL, missing stream, bad id.
    let dup = s.post(
        "/streams",
        r#"{"sql":"CREATE STREAM demo () WITH (DATASOURCE=\"x\")"}"#,
    );
    assert_eq!(dup.status, 400, "{}", dup.body);
    assert!(dup.json()["message"]
        .as_str()
        .unwrap()
        .contains("already exists"));
    let bad = s.post(
        "/streams",
        r#"{"sql":"CREATE STWREAM demo2 () WITH (DATASOURCE=\"x\")"}"#,
    );
    assert_eq!(bad.status, 400);
    let msg = bad.json()["message"].as_str().unwrap().to_string();
    assert!(msg.contains("STWREAM"), "{msg}");
    let bad_opt = s.post(
        "/streams",
        r#"{"sql":"CREATE STREAM d3 () WITH (DATASOURCE=\"x\", FOO=\"1\")"}"#,
    );
    assert_eq!(bad_opt.status, 400);
    assert!(
        bad_opt.body.contains("FOO") || bad_opt.body.to_lowercase().contains("foo"),
        "{}",
        bad_opt.body
    );
    let bad_json = s.post("/streams", "{not json");
    assert_eq!(bad_json.status, 400);
    assert!(bad_json.json()["message"]
        .as_str()
        .unwrap()
        .contains("invalid request body"));
    let unknown_type = s.post(
        "/streams",
        r#"{"sql":"CREATE STREAM d4 () WITH (DATASOURCE=\"x\", TYPE=\"nosuch\")"}"#,
    );
    assert_eq!(unknown_type.status, 400);
    assert!(unknown_type.body.contains("nosuch"));
    assert_eq!(s.get("/streams/nosuch").status, 404);
    assert_eq!(s.get("/streams/bad%20id").status, 400);

    // Replace: the name in the statement must match.
    let r = s.expect(
        "PUT",
        "/streams/demo",
        Some(r#"{"sql":"CREATE STREAM demo (color STRING) WITH (DATASOURCE=\"demo2\")"}"#),
        200,
    );
    assert_eq!(r.body, "Stream demo is replaced.");
    assert_eq!(
        s.get("/streams/demo").json()["Options"]["datasource"],
        "demo2"
    );
    let mismatch = s.put(
        "/streams/demo",
        r#"{"sql":"CREATE STREAM other () WITH (DATASOURCE=\"x\")"}"#,
    );
    assert_eq!(mismatch.status, 400);

    // Drop refused while a rule uses it, allowed with force or after the rule is gone.
    s.create_rule(
        &json!({"id":"r1","sql":"SELECT * FROM demo","actions":[{"nop":{}}],"triggered":false}),
    );
    let refused = s.delete("/streams/demo");
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("r1"), "{}", refused.body);
    s.expect("DELETE", "/rules/r1", None, 200);
    let r = s.expect("DELETE", "/streams/demo", None, 200);
    assert_eq!(r.body, "Stream demo is dropped.");
    assert_eq!(s.get("/streams").json(), json!([]));
    assert_eq!(s.delete("/streams/demo").status, 404);
}

#[test]
fn tables_crud() {
    let s = Server::start();
    let r = s.expect(
        "POST",
        "/tables",
        Some(r#"{"sql":"CREATE TABLE t1 (id BIGINT, name STRING) WITH (DATASOURCE=\"lookup.json\", TYPE=\"file\")"}"#),
        201,
    );
    assert_eq!(r.body, "Table t1 is created.");
    assert_eq!(s.get("/tables").json(), json!(["t1"]));
    assert_eq!(s.get("/tables?kind=scan").json(), json!(["t1"]));
    assert_eq!(s.get("/tables?kind=lookup").json(), json!([]));
    let d = s.get("/tables/t1").json();
    assert_eq!(d["StreamType"], 1);
    assert_eq!(s.get("/tabledetails").json()[0]["name"], "t1");
    s.expect(
        "PUT",
        "/tables/t1",
        Some(r#"{"sql":"CREATE TABLE t1 (id BIGINT) WITH (DATASOURCE=\"other.json\", TYPE=\"file\")"}"#),
        200,
    );
    s.expect("DELETE", "/tables/t1", None, 200);
    assert_eq!(s.get("/tables").json(), json!([]));
}

#[test]
fn rules_crud_lifecycle_and_errors() {
    let s = Server::start();
    let topic = unique("crud");
    s.create_stream(&format!(
        "CREATE STREAM demo () WITH (DATASOURCE=\"{topic}/in\", TYPE=\"mqtt\")"
    ));
    let rule =
        json!({"id":"rule1","sql":"SELECT * FROM demo WHERE temp > 20","actions":[{"nop":{}}]});
    let r = s.expect("POST", "/rules", Some(&rule.to_string()), 201);
    assert_eq!(r.body, "Rule rule1 was created successfully.");
    let dup = s.post("/rules", &rule.to_string());
    assert_eq!(dup.status, 400);
    assert!(dup.body.contains("already exists"), "{}", dup.body);

    let list = s.get("/rules").json();
    assert_eq!(list[0]["id"], "rule1");
    assert_eq!(list[0]["status"], "running");
    // GET returns the stored JSON verbatim.
    assert_eq!(s.get("/rules/rule1").json(), rule);

    let st = s.status("rule1");
    assert_eq!(st["status"], "running");
    assert!(st.get("source_demo_0_records_in_total").is_some(), "{st:#}");
    assert!(st.get("sink_nop_0_0_records_out_total").is_some(), "{st:#}");
    assert_eq!(s.get("/v2/rules/rule1/status").json()["status"], "running");
    let topo = s.get("/rules/rule1/topo").json();
    assert_eq!(topo["sources"], json!(["source_demo"]));
    assert!(topo["edges"]["source_demo"].is_array());

    let r = s.expect("POST", "/rules/rule1/stop", None, 200);
    assert_eq!(r.body, "Rule rule1 was stopped.");
    assert_eq!(s.status("rule1")["status"], "stopped");
    let r = s.expect("POST", "/rules/rule1/start", None, 200);
    assert_eq!(r.body, "Rule rule1 was started");
    assert_eq!(s.status("rule1")["status"], "running");
    let r = s.expect("POST", "/rules/rule1/restart", None, 200);
    assert_eq!(r.body, "Rule rule1 was restarted");
    let all = s.get("/rules/status/all").json();
    assert_eq!(all["rule1"]["status"], "running");

    // Update (upsert) and delete.
    let upd = json!({"id":"rule1","sql":"SELECT temp FROM demo","actions":[{"log":{}}]});
    let r = s.expect("PUT", "/rules/rule1", Some(&upd.to_string()), 200);
    assert_eq!(r.body, "Rule rule1 was updated successfully.");
    assert_eq!(s.get("/rules/rule1").json(), upd);
    let r = s.expect("DELETE", "/rules/rule1", None, 200);
    assert_eq!(r.body, "Rule rule1 is dropped.");
    assert_eq!(s.get("/rules/rule1").status, 404);
    assert_eq!(s.post("/rules/rule1/start", "").status, 404);

    // Bad rules: each names the problem.
    for (body, needle) in [
        (
            r#"{"sql":"SELECT * FROM demo","actions":[{"nop":{}}]}"#,
            "Missing rule id",
        ),
        (
            r#"{"id":"x1","sql":"SELECT * FROM demo"}"#,
            "Missing rule actions",
        ),
        (
            r#"{"id":"x2","sql":"SELEC * FROM demo","actions":[{"nop":{}}]}"#,
            "SELEC",
        ),
        (
            r#"{"id":"x3","sql":"SELECT * FROM nosuch","actions":[{"nop":{}}]}"#,
            "nosuch",
        ),
        (
            r#"{"id":"x4","sql":"SELECT * FROM demo","actions":[{"nosuchsink":{}}]}"#,
            "nosuchsink",
        ),
        (
            r#"{"id":"x5","sql":"SELECT nofunc(a) FROM demo","actions":[{"nop":{}}]}"#,
            "nofunc",
        ),
        (
            r#"{"id":"x 6","sql":"SELECT * FROM demo","actions":[{"nop":{}}]}"#,
            "invalid characters",
        ),
        (
            r#"{"id":"x7","sql":"SELECT * FROM demo","actions":[{"mqtt":{"qos":"high"}}]}"#,
            "qos",
        ),
        (
            r#"{"id":"x8","sql":"SELECT * FROM demo","actions":[{"nop":{}}],"options":{"bufferLength":"big"}}"#,
            "bufferLength",
        ),
        ("[1,2", "invalid rule json"),
    ] {
        let r = s.post("/rules", body);
        assert_eq!(r.status, 400, "{body} -> {}", r.body);
        let j = r.json();
        assert!(j["error"].is_u64(), "{}", r.body);
        assert!(
            j["message"].as_str().unwrap().contains(needle),
            "{body}: message {} lacks {needle}",
            j["message"]
        );
    }
    assert_eq!(s.get("/rules").json(), json!([]));

    // validate: 200 with sources, 422 for an invalid rule.
    let ok = s.post(
        "/rules/validate",
        r#"{"id":"v1","sql":"SELECT * FROM demo","actions":[{"nop":{}}]}"#,
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json(), json!({"sources":["demo"],"valid":true}));
    let bad = s.post(
        "/rules/validate",
        r#"{"id":"v1","sql":"SELECT * FROM demo"}"#,
    );
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("Missing rule actions"));
}

#[test]
fn rule_created_stopped_stays_stopped() {
    let s = Server::start();
    s.create_stream("CREATE STREAM demo () WITH (DATASOURCE=\"x\", TYPE=\"memory\")");
    s.create_rule(
        &json!({"id":"r","sql":"SELECT * FROM demo","actions":[{"nop":{}}],"triggered":false}),
    );
    assert_eq!(s.status("r")["status"], "stopped");
}

#[test]
fn restart_and_kill_restore_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let topic = unique("persist");
    {
        let mut s = Server::start_in(tmp.path());
        s.create_stream(&format!(
            "CREATE STREAM demo () WITH (DATASOURCE=\"{topic}/in\", TYPE=\"mqtt\")"
        ));
        s.create_rule(&json!({"id":"keep","sql":"SELECT temp FROM demo WHERE temp > 20",
            "actions":[{"mqtt":{"server":"tcp://127.0.0.1:1883","topic":format!("{topic}/out"),"sendSingle":true}}]}));
        s.create_rule(&json!({"id":"idle","sql":"SELECT * FROM demo","actions":[{"nop":{}}]}));
        s.expect("POST", "/rules/idle/stop", None, 200);
        s.kill(); // kill -9: no graceful shutdown
    }
    let mut s = Server::start_in(tmp.path());
    assert_eq!(s.get("/streams").json(), json!(["demo"]));
    assert_eq!(s.status("keep")["status"], "running");
    assert_eq!(s.status("idle")["status"], "stopped");
    let sub = mqtt::subscribe(&format!("{topic}/out"));
    s.wait_status("keep", "mqtt source connected", |st| {
        st["source_demo_0_connection_status"] == 1
    });
    mqtt::publish(
        &format!("{topic}/in"),
        &[
            r#"{"temp":25}"#.into(),
            r#"{"temp":10}"#.into(),
            r#"{"temp":30}"#.into(),
        ],
    );
    let got = sub.take_json(2, 10);
    assert_eq!(got, vec![json!({"temp":25}), json!({"temp":30})]);
    // Graceful stop via SIGTERM, then everything is back again.
    assert_eq!(s.terminate(), Some(0));
    let s = Server::start_in(tmp.path());
    assert_eq!(s.status("keep")["status"], "running");
}

#[test]
fn oversized_body_and_wrong_method_get_json_errors() {
    let s = Server::start();
    let r = s.req("PATCH", "/streams", None);
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["error"], 1000);
    // The server answers before it has read the whole body and then closes
    // the connection; it reads and discards what the client still sends
    // until the client closes (a lingering close), so the answer is never
    // lost to a connection reset. Several tries, each must get the 413.
    let big = format!(r#"{{"sql":"{}"}}"#, "x".repeat(17 * 1024 * 1024));
    let client = reqwest::blocking::Client::new();
    for _ in 0..5 {
        let r = client
            .post(format!("{}/streams", s.base))
            .header("Content-Type", "application/json")
            .body(big.clone())
            .send()
            .expect("the 413 arrives, not a connection reset");
        let status = r.status().as_u16();
        // The connection closes after the answer, and the answer says so
        // (a pooled client must not send its next request on it).
        let close = r.headers().get("connection").cloned();
        let body = r.text().unwrap_or_default();
        assert_eq!(status, 413, "{body}");
        assert_eq!(close.as_ref().and_then(|v| v.to_str().ok()), Some("close"));
        assert!(body.contains("too large"), "{body}");
    }
    // The limit is checked against the declared length before the body is
    // read: a client that waits for `100 Continue` gets the 413 instead and
    // never uploads. A plugin package has its own, larger limit (64 MiB), so
    // the same length is told to go on there.
    let host = s.base.trim_start_matches("http://").to_string();
    let first_line = |method: &str, path: &str, len: usize| {
        let mut c = std::net::TcpStream::connect(&host).expect("connect");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nExpect: 100-continue\r\n\r\n"
        );
        c.write_all(head.as_bytes()).expect("write");
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            c.read_exact(&mut byte).expect("an answer");
            line.push(byte[0]);
        }
        String::from_utf8_lossy(&line).into_owned()
    };
    let big = 17 * 1024 * 1024;
    assert_eq!(
        first_line("POST", "/streams", big),
        "HTTP/1.1 413 Payload Too Large\r\n"
    );
    assert_eq!(
        first_line("PUT", "/plugins/sinks/big/package", big),
        "HTTP/1.1 100 Continue\r\n"
    );
    assert_eq!(
        first_line("PUT", "/plugins/sinks/big/package", 65 * 1024 * 1024),
        "HTTP/1.1 413 Payload Too Large\r\n"
    );
    // The server still answers.
    assert_eq!(s.get("/streams").status, 200);
}

/// eKuiper's conf-key environment overrides (`MQTT_SOURCE__DEFAULT__SERVER`,
/// as its container quick start uses): applied over the file, shown by the
/// metadata API, used by a stream; a misspelt property is logged.
#[test]
fn conf_keys_take_environment_overrides() {
    let s = oort_tests::Server::start_with(oort_tests::Opts {
        env: vec![
            ("MQTT_SOURCE__DEFAULT__QOS".into(), "0".into()),
            (
                "MQTT_SOURCE__ENVKEY__SERVER".into(),
                "tcp://127.0.0.1:1883".into(),
            ),
            ("MQTT_SOURCE__ENVKEY__SEVRER".into(), "x".into()),
            ("KUIPER__BASIC__DEBUG".into(), "true".into()),
        ],
        ..oort_tests::Opts::default()
    });
    let keys = s.get("/metadata/sources/yaml/mqtt").json();
    assert_eq!(keys["default"]["qos"], 0, "{keys}");
    assert_eq!(keys["envkey"]["server"], "tcp://127.0.0.1:1883", "{keys}");
    let topic = unique("envkey");
    s.create_stream(&format!(
        "CREATE STREAM e () WITH (DATASOURCE=\"{topic}\", TYPE=\"mqtt\", CONF_KEY=\"ENVKEY\")"
    ));
    s.create_rule(&json!({"id": "e", "sql": "SELECT * FROM e", "actions": [{"nop": {}}]}));
    s.wait_status("e", "connected", |st| {
        st["source_e_0_connection_status"] == 1
    });
    mqtt::publish(&topic, &[json!({"a": 1}).to_string()]);
    s.wait_status("e", "one record", |st| {
        st["sink_nop_0_0_records_in_total"] == 1
    });
    let log = s.log();
    assert!(
        log.contains("MQTT_SOURCE__ENVKEY__SEVRER") && log.contains("did you mean server"),
        "{log}"
    );
    assert!(
        log.contains("KUIPER__BASIC__DEBUG") && log.contains("OORT__"),
        "{log}"
    );
}

#[test]
fn metadata_functions_lists_the_registry() {
    let s = Server::start();
    let v = s.expect("GET", "/metadata/functions", None, 200).json();
    let list = v.as_array().expect("an array");
    let find = |n: &str| list.iter().find(|f| f["name"] == n).cloned();
    let abs = find("abs").expect("abs");
    assert_eq!(abs["type"], "Mathematical");
    assert_eq!(abs["args"], "1");
    assert_eq!(find("count").expect("count")["aggregate"], true);
    assert!(find("lag").expect("lag")["hint"]["en_US"].is_string());
    assert!(
        find("partition").is_some(),
        "every function, the newest too"
    );
    assert!(list.len() > 150, "{} functions", list.len());
}

/// eKuiper's `GET /rules/{id}/explain`: the rule's logical plan, one JSON
/// line per node with its children indented; 404 for an unknown rule.
#[test]
fn explain_shows_the_rule_plan() {
    let s = Server::start();
    let t = unique("explain");
    s.create_stream(&format!(
        "CREATE STREAM {t} (temperature float, dev string) WITH (DATASOURCE=\"{t}\", TYPE=\"memory\")"
    ));
    s.create_rule(&json!({"id": format!("{t}_r"), "triggered": false,
        "sql": format!("SELECT dev, avg(temperature) AS t FROM {t} WHERE temperature > 0 GROUP BY dev, TUMBLINGWINDOW(ss, 10)"),
        "actions": [{"nop": {}}]}));
    let r = s.expect("GET", &format!("/rules/{t}_r/explain"), None, 200);
    let lines: Vec<(usize, Json)> = r
        .body
        .lines()
        .map(|l| {
            let depth = l.len() - l.trim_start_matches('\t').len();
            (
                depth,
                serde_json::from_str(l.trim_start()).expect("a JSON line"),
            )
        })
        .collect();
    let ops: Vec<(usize, &str)> = lines
        .iter()
        .map(|(d, v)| (*d, v["op"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        ops,
        [
            (0, "ProjectPlan_0"),
            (1, "AggregatePlan_1"),
            (2, "WindowPlan_2"),
            (3, "FilterPlan_3"),
            (4, "DataSourcePlan_4"),
        ],
        "{}",
        r.body
    );
    assert_eq!(lines[0].1["info"], format!("Fields:[ {t}.dev, $$alias.t ]"));
    assert_eq!(
        lines[3].1["info"],
        format!("Condition:{{ binaryExpr:{{ {t}.temperature > 0 }} }}")
    );
    s.expect("GET", "/rules/nope/explain", None, 404);
}

/// Threads named like tokio's runtime workers in the server process.
#[cfg(target_os = "linux")]
fn runtime_workers(s: &Server) -> usize {
    let dir = format!("/proc/{}/task", s.child.id());
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.trim() == "tokio-rt-worker")
                })
                .count()
        })
        .unwrap_or(0)
}

#[cfg(target_os = "linux")]
#[test]
fn worker_threads_sets_the_runtime_threads() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let s = Server::start();
    assert_eq!(runtime_workers(&s), cores, "one per core by default");
    drop(s);
    let s = Server::start_with(oort_tests::Opts {
        env: vec![("OORT__WORKER_THREADS".into(), "3".into())],
        ..Default::default()
    });
    assert_eq!(runtime_workers(&s), 3);
    assert_eq!(s.get("/ping").status, 200);
}

#[test]
fn too_many_worker_threads_stop_the_start_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(oort_tests::oort_bin())
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--rest-addr", "127.0.0.1:0"])
        .env("OORT__WORKER_THREADS", "100000")
        .output()
        .expect("run oort");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("worker_threads") && err.contains("256"),
        "{err}"
    );
}
