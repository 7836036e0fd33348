//! Every built-in connector end to end, through the real binary and the real
//! Mosquitto broker.

use std::time::{Duration, Instant};

use oort_tests::{mqtt, unique, Server};
use serde_json::{json, Value as Json};

fn wait_connected(s: &Server, rule: &str, stream: &str) {
    s.wait_status(rule, "source connected", |st| {
        st[format!("source_{stream}_0_connection_status")] == 1
    });
}

#[test]
fn mqtt_to_mqtt_filter_project_and_bad_payloads() {
    let s = Server::start();
    let t = unique("m2m");
    s.create_stream(&format!(
        "CREATE STREAM demo (temp FLOAT, id BIGINT) WITH (DATASOURCE=\"{t}/in/+\", TYPE=\"mqtt\")"
    ));
    s.create_rule(&json!({
        "id": "m2m",
        "sql": "SELECT id, temp * 2 AS double, meta(topic) AS topic FROM demo WHERE temp > 20",
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": format!("{t}/out"), "sendSingle": true}}]
    }));
    let sub = mqtt::subscribe(&format!("{t}/out"));
    wait_connected(&s, "m2m", "demo");
    mqtt::publish(
        &format!("{t}/in/a"),
        &[
            r#"{"id":1,"temp":25.5}"#.into(),
            "this is not json".into(),
            r#"{"id":2,"temp":10}"#.into(),
        ],
    );
    mqtt::publish(&format!("{t}/in/b"), &[r#"{"id":3,"temp":21}"#.into()]);
    let got = sub.take_json(2, 10);
    assert_eq!(
        got[0],
        json!({"id":1,"double":51,"topic":format!("{t}/in/a")})
    );
    assert_eq!(got[1]["id"], 3);
    // The undecodable payload is an exception on the source; the rule runs on.
    let st = s.wait_status("m2m", "exception counted", |st| {
        st["source_demo_0_exceptions_total"].as_u64().unwrap_or(0) >= 1
    });
    assert_eq!(st["status"], "running");
    assert!(st["source_demo_0_last_exception"].as_str().unwrap().len() > 3);
    // The subscriber gets a message before the sink counts its publish as done.
    s.wait_status("m2m", "2 records out", |st| {
        st["sink_mqtt_0_0_records_out_total"] == 2
    });
}

#[test]
fn mqtt_array_output_and_fields() {
    let s = Server::start();
    let t = unique("arr");
    s.create_stream(&format!(
        "CREATE STREAM demo () WITH (DATASOURCE=\"{t}/in\")"
    ));
    s.create_rule(&json!({
        "id": "arr",
        "sql": "SELECT * FROM demo",
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": format!("{t}/out"), "fields": ["a"]}}]
    }));
    let sub = mqtt::subscribe(&format!("{t}/out"));
    wait_connected(&s, "arr", "demo");
    mqtt::publish(&format!("{t}/in"), &[r#"{"a":1,"b":2}"#.into()]);
    assert_eq!(sub.take_json(1, 10)[0], json!([{"a":1}]));
}

#[test]
fn tumbling_window_count_by_key() {
    let s = Server::start();
    let t = unique("win");
    s.create_stream(&format!(
        "CREATE STREAM demo () WITH (DATASOURCE=\"{t}/in\")"
    ));
    s.create_rule(&json!({
        "id": "win",
        "sql": "SELECT color, count(*) AS c, avg(size) AS a FROM demo GROUP BY color, TUMBLINGWINDOW(ss, 2) ORDER BY color",
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": format!("{t}/out"), "omitIfEmpty": true}}]
    }));
    let sub = mqtt::subscribe(&format!("{t}/out"));
    wait_connected(&s, "win", "demo");
    // Publish right after a window boundary so all land in one window.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let to_boundary = 2000 - (now % 2000);
    std::thread::sleep(Duration::from_millis(to_boundary + 100));
    mqtt::publish(
        &format!("{t}/in"),
        &[
            r#"{"color":"red","size":3}"#.into(),
            r#"{"color":"blue","size":6}"#.into(),
            r#"{"color":"red","size":1}"#.into(),
        ],
    );
    // Normally all three land in one window; on a loaded machine the
    // publish may straddle a boundary, so collect windows until 3 events.
    let mut windows = Vec::new();
    let mut seen = 0;
    while seen < 3 {
        let w = sub.take_json(1, 10).remove(0);
        seen += w
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["c"].as_u64().unwrap())
            .sum::<u64>();
        windows.push(w);
    }
    assert_eq!(seen, 3, "{windows:?}");
    if windows.len() == 1 {
        assert_eq!(
            windows[0],
            json!([{"color":"blue","c":1,"a":6},{"color":"red","c":2,"a":2}])
        );
    } else {
        let count = |color: &str| -> u64 {
            windows
                .iter()
                .flat_map(|w| w.as_array().unwrap().clone())
                .filter(|r| r["color"] == color)
                .map(|r| r["c"].as_u64().unwrap())
                .sum()
        };
        assert_eq!((count("red"), count("blue")), (2, 1), "{windows:?}");
    }
}

#[test]
fn memory_topics_chain_rules() {
    let s = Server::start();
    let t = unique("mem");
    s.create_stream(&format!(
        "CREATE STREAM src () WITH (DATASOURCE=\"{t}/in\")"
    ));
    s.create_stream(&format!(
        "CREATE STREAM mid () WITH (DATASOURCE=\"{t}/mid/#\", TYPE=\"memory\")"
    ));
    s.create_rule(&json!({"id": "first", "sql": "SELECT v + 1 AS v FROM src",
        "actions": [{"memory": {"topic": format!("{t}/mid/x"), "sendSingle": true}}]}));
    s.create_rule(&json!({"id": "second", "sql": "SELECT v * 10 AS v FROM mid",
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": format!("{t}/out"), "sendSingle": true}}]}));
    let sub = mqtt::subscribe(&format!("{t}/out"));
    wait_connected(&s, "first", "src");
    mqtt::publish(
        &format!("{t}/in"),
        &[r#"{"v":1}"#.into(), r#"{"v":2}"#.into()],
    );
    assert_eq!(sub.take_json(2, 10), vec![json!({"v":20}), json!({"v":30})]);
}

#[test]
fn file_source_and_file_sink_and_table_join() {
    let s = Server::start();
    let data = s.data_dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("readings.json"),
        r#"[{"id":1,"temp":20},{"id":2,"temp":30},{"id":1,"temp":40}]"#,
    )
    .unwrap();
    std::fs::write(
        data.join("names.json"),
        r#"[{"id":1,"name":"boiler"},{"id":2,"name":"pump"}]"#,
    )
    .unwrap();
    std::fs::write(data.join("lines.txt"), "{\"a\":1}\n{\"a\":2}\n").unwrap();
    std::fs::write(data.join("rows.csv"), "a,b\n1,x\n2,y\n").unwrap();
    s.create_stream("CREATE STREAM readings () WITH (DATASOURCE=\"readings.json\", TYPE=\"file\")");
    s.expect(
        "POST",
        "/tables",
        Some(
            &json!({"sql": "CREATE TABLE names () WITH (DATASOURCE=\"names.json\", TYPE=\"file\")"})
                .to_string(),
        ),
        201,
    );
    let out = s.data_dir.join("out.jsonl");
    // The table is loaded before the stream's rows are joined: give it a moment
    // by creating the rule stopped, then starting it.
    s.create_rule(&json!({"id": "join",
        "sql": "SELECT readings.id, temp, names.name FROM readings LEFT JOIN names ON readings.id = names.id",
        "actions": [{"file": {"path": out.to_str().unwrap(), "fileType": "lines", "sendSingle": true}}]}));
    let lines = wait_lines(&out, 3);
    let rows: Vec<Json> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows[0], json!({"id":1,"temp":20,"name":"boiler"}));
    assert_eq!(rows[1], json!({"id":2,"temp":30,"name":"pump"}));
    // A bounded file stream ends the rule as stopped.
    s.wait_status("join", "rule stopped at end of file", |st| {
        st["status"] == "stopped"
    });

    // lines and csv file types.
    let out2 = s.data_dir.join("out2.jsonl");
    s.expect(
        "PUT",
        "/metadata/sources/file/confKeys/lines",
        Some(r#"{"fileType":"lines"}"#),
        200,
    );
    s.create_stream(
        "CREATE STREAM ls () WITH (DATASOURCE=\"lines.txt\", TYPE=\"file\", CONF_KEY=\"lines\")",
    );
    s.create_rule(&json!({"id": "lines", "sql": "SELECT a FROM ls",
        "actions": [{"file": {"path": out2.to_str().unwrap(), "sendSingle": true}}]}));
    assert_eq!(wait_lines(&out2, 2), vec![r#"{"a":1}"#, r#"{"a":2}"#]);
    let out3 = s.data_dir.join("out3.csv");
    s.expect(
        "PUT",
        "/metadata/sources/file/confKeys/csv",
        Some(r#"{"fileType":"csv","hasHeader":true}"#),
        200,
    );
    s.create_stream(
        "CREATE STREAM cs () WITH (DATASOURCE=\"rows.csv\", TYPE=\"file\", CONF_KEY=\"csv\")",
    );
    s.create_rule(&json!({"id": "csv", "sql": "SELECT a, b FROM cs",
        "actions": [{"file": {"path": out3.to_str().unwrap(), "fileType": "csv", "format": "delimited", "hasHeader": true, "sendSingle": true}}]}));
    let csv = wait_lines(&out3, 3);
    assert_eq!(csv[0], "a,b");
    assert_eq!(csv[1], "1,x");
}

#[test]
fn simulator_log_and_nop() {
    let s = Server::start();
    s.expect(
        "PUT",
        "/metadata/sources/simulator/confKeys/fast",
        Some(r#"{"data":[{"t":1},{"t":2}],"interval":"10ms","loop":true}"#),
        200,
    );
    s.create_stream("CREATE STREAM sim () WITH (TYPE=\"simulator\", CONF_KEY=\"fast\")");
    s.create_rule(
        &json!({"id": "simlog", "sql": "SELECT t FROM sim", "actions": [{"log": {}}, {"nop": {}}]}),
    );
    s.wait_status("simlog", "rows through log and nop", |st| {
        st["sink_log_0_0_records_out_total"].as_u64().unwrap_or(0) >= 5
            && st["sink_nop_1_0_records_out_total"].as_u64().unwrap_or(0) >= 5
    });
    s.wait_log("the log sink's output", |l| l.contains("\"t\""));
}

fn wait_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            if lines.len() >= n {
                return lines;
            }
        }
        if Instant::now() > deadline {
            panic!(
                "{} did not get {n} lines: {:?}",
                path.display(),
                std::fs::read_to_string(path)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn connector_metadata_from_the_factories_declarations() {
    let s = Server::start();
    let list = s.expect("GET", "/metadata/sources", None, 200).json();
    let mqtt = list
        .as_array()
        .and_then(|l| l.iter().find(|e| e["name"] == "mqtt"))
        .cloned()
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(mqtt["type"], "internal");
    assert!(mqtt["about"]["description"]["en_US"]
        .as_str()
        .is_some_and(|d| d.contains("MQTT")));

    // eKuiper's UI metadata: sources list their fields under properties.default.
    let m = s.expect("GET", "/metadata/sources/mqtt", None, 200).json();
    let fields = m["properties"]["default"]
        .as_array()
        .expect("fields")
        .clone();
    let field = |n: &str| fields.iter().find(|f| f["name"] == n).cloned();
    let server = field("server").expect("server");
    assert_eq!(server["default"], "tcp://127.0.0.1:1883");
    assert_eq!(server["type"], "string");
    assert_eq!(server["connection_related"], true);
    let qos = field("qos").expect("qos");
    assert_eq!(qos["control"], "select");
    assert_eq!(qos["values"], json!(["0", "1", "2"]));
    assert_eq!(m["node"]["category"], "source");
    assert!(m["dataSource"]["hint"]["en_US"].is_string());

    // Sinks list them directly.
    let k = s.expect("GET", "/metadata/sinks/mqtt", None, 200).json();
    let topic = k["properties"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["name"] == "topic"))
        .cloned()
        .expect("topic");
    assert_eq!(topic["optional"], false);
    let file = s.expect("GET", "/metadata/sinks/file", None, 200).json();
    assert!(file["properties"]
        .as_array()
        .is_some_and(|f| f.iter().any(|f| f["name"] == "rollingCount")));

    // The built-in random plugin's schema, marked as a WebAssembly connector.
    let r = s
        .expect("GET", "/metadata/sources/random", None, 200)
        .json();
    assert_eq!(r["type"], "wasm");
    assert!(r["properties"]["default"].as_array().is_some_and(|f| f
        .iter()
        .any(|f| f["name"] == "interval" && f["type"] == "int")));
    // A plugin's conf keys are checked against its manifest's typed fields
    // (its describe schema names them without types).
    let bad = s.put(
        "/metadata/sources/random/confKeys/bad",
        r#"{"interval":"often"}"#,
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("interval"), "{}", bad.body);
    let ok = s.put(
        "/metadata/sources/random/confKeys/fine",
        r#"{"interval":"25"}"#,
    );
    assert_eq!(ok.status, 200, "{}", ok.body);

    let e = s.get("/metadata/sinks/nope");
    assert_eq!(e.status, 404, "{}", e.body);

    // Conf keys are checked against the declared types and choices.
    for (body, needle) in [
        (r#"{"qos":"high"}"#, "qos"),
        (r#"{"qos":5}"#, "not one of"),
        (r#"{"insecureSkipVerify":"maybe"}"#, "insecureSkipVerify"),
    ] {
        let r = s.put("/metadata/sources/mqtt/confKeys/bad", body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(r.body.contains(needle), "{body}: {}", r.body);
    }
    let r = s.put(
        "/metadata/sources/mqtt/confKeys/good",
        r#"{"qos":"1","server":"tcp://10.0.0.5:1883"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let yaml = s.get("/metadata/sources/yaml/mqtt").json();
    assert!(
        yaml.get("bad").is_none(),
        "a refused key is not stored: {yaml}"
    );
    assert_eq!(yaml["good"]["qos"], "1");
}

#[test]
fn connectivity_checks_reach_the_real_peers() {
    let s = Server::start();
    let ok = s.post(
        "/metadata/sinks/connection/mqtt",
        r#"{"server":"tcp://127.0.0.1:1883"}"#,
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    let dead = oort_tests::free_port();
    let e = s.post(
        "/metadata/sources/connection/mqtt",
        &format!(r#"{{"server":"tcp://127.0.0.1:{dead}"}}"#),
    );
    assert_eq!(e.status, 400, "{}", e.body);
    assert!(e.body.contains(&dead.to_string()), "{}", e.body);
    let r = s.post(
        "/metadata/sources/connection/redisSub",
        r#"{"address":"127.0.0.1:6379"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.post(
        "/metadata/sinks/connection/redis",
        r#"{"addr":"127.0.0.1:6379","db":16}"#,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("db"), "{}", r.body);
    let r = s.post("/metadata/sinks/connection/log", "{}");
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(s.post("/metadata/sinks/connection/nope", "{}").status, 404);
    assert_eq!(s.post("/metadata/sinks/connection/mqtt", "[1]").status, 400);
}
