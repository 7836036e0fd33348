//! Connection profiles and `connectionSelector` end to end: profiles from
//! REST, from `etc/connections/connection.yaml` and from an import; streams
//! and a sink sharing one physical MQTT connection, counted by a TCP proxy in
//! front of the local Mosquitto (the broker sees one client).

use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use oort_tests::{mqtt, unique, Server};
use serde_json::{json, Value as Json};

/// A TCP proxy to 127.0.0.1:1883 that counts the connections it accepted.
struct CountingProxy {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl CountingProxy {
    fn start() -> CountingProxy {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = l.local_addr().expect("proxy addr").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for inbound in l.incoming() {
                let Ok(inbound) = inbound else { break };
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || pipe(inbound));
            }
        });
        CountingProxy { port, accepted }
    }

    fn server(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn pipe(inbound: TcpStream) {
    let Ok(out) = TcpStream::connect("127.0.0.1:1883") else {
        return;
    };
    let (Ok(mut from_client), Ok(mut to_broker)) = (inbound.try_clone(), out.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_broker);
        let _ = to_broker.shutdown(Shutdown::Write);
    });
    let (mut from_broker, mut to_client) = (out, inbound);
    let _ = std::io::copy(&mut from_broker, &mut to_client);
    let _ = to_client.flush();
    let _ = to_client.shutdown(Shutdown::Write);
    let _ = up.join();
}

fn wait_connected(s: &Server, rule: &str, stream: &str) {
    s.wait_status(rule, "source connected", |st| {
        st[format!("source_{stream}_0_connection_status")] == 1
    });
}

fn connection(s: &Server, id: &str) -> Json {
    s.expect("GET", &format!("/connections/{id}"), None, 200)
        .json()
}

/// Polls `GET /connections/{id}` until `pred` holds.
fn wait_connection(s: &Server, id: &str, what: &str, pred: impl Fn(&Json) -> bool) -> Json {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let c = connection(s, id);
        if pred(&c) {
            return c;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {c}\nlog:\n{}",
            s.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn rest_profile_is_shared_by_streams_and_sink_and_guarded_while_used() {
    let proxy = CountingProxy::start();
    let s = Server::start();
    let t = unique("conn");
    let cid = unique("c");

    // Create, and the refusals.
    let body = json!({"id": cid, "typ": "mqtt", "props": {"server": proxy.server()}});
    let r = s.expect("POST", "/connections", Some(&body.to_string()), 201);
    assert_eq!(r.body, "success");
    for bad in [
        body.clone(),
        json!({"id": "a.b", "typ": "mqtt", "props": {}}),
        json!({"id": "x1", "typ": "nosuchtype", "props": {}}),
        json!({"id": "x2", "typ": "mqtt", "props": "tcp://h:1"}),
    ] {
        let r = s.post("/connections", &bad.to_string());
        assert_eq!(r.status, 400, "{bad} -> {}", r.body);
        assert_eq!(r.json()["error"], 5000, "{}", r.body);
    }
    let c = connection(&s, &cid);
    assert_eq!(
        (
            c["typ"].clone(),
            c["isNamed"].clone(),
            c["status"].clone(),
            c["refCount"].clone()
        ),
        (json!("mqtt"), json!(true), json!("idle"), json!(0))
    );
    assert_eq!(c["props"]["server"], proxy.server());
    let list = s.expect("GET", "/connections", None, 200).json();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == cid.as_str()),
        "{list}"
    );
    assert_eq!(s.get("/connections/nope").status, 404);

    // Two conf keys, one per selector form; two streams on different topics.
    s.expect(
        "PUT",
        "/metadata/sources/mqtt/confKeys/ck_bare",
        Some(&json!({"connectionSelector": cid, "qos": 1}).to_string()),
        200,
    );
    s.expect(
        "PUT",
        "/metadata/sources/mqtt/confKeys/ck_typed",
        Some(&json!({"connectionSelector": format!("mqtt.{cid}"), "qos": 0}).to_string()),
        200,
    );
    s.create_stream(&format!(
        "CREATE STREAM sa () WITH (DATASOURCE=\"{t}/a\", CONF_KEY=\"ck_bare\")"
    ));
    s.create_stream(&format!(
        "CREATE STREAM sb () WITH (DATASOURCE=\"{t}/b\", CONF_KEY=\"ck_typed\")"
    ));
    // Unknown selectors are refused, naming them.
    s.expect(
        "PUT",
        "/metadata/sources/mqtt/confKeys/ck_bad",
        Some(r#"{"connectionSelector":"no_such_conn"}"#),
        200,
    );
    let r = s.post(
        "/streams",
        &json!({"sql": format!("CREATE STREAM sx () WITH (DATASOURCE=\"{t}/x\", CONF_KEY=\"ck_bad\")")})
            .to_string(),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("no_such_conn"), "{}", r.body);
    let r = s.post(
        "/rules",
        &json!({"id": "rx", "sql": "SELECT * FROM sa",
            "actions": [{"mqtt": {"connectionSelector": "mqtt.no_such_conn", "topic": "x"}}]})
        .to_string(),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("no_such_conn"), "{}", r.body);

    // Rule ra publishes through the shared connection (no server of its own);
    // rule rb writes straight to the broker.
    s.create_rule(&json!({
        "id": "ra",
        "sql": "SELECT a FROM sa",
        "actions": [{"mqtt": {"connectionSelector": cid, "topic": format!("{t}/out_a"), "sendSingle": true}}]
    }));
    s.create_rule(&json!({
        "id": "rb",
        "sql": "SELECT b FROM sb",
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": format!("{t}/out_b"), "sendSingle": true}}]
    }));
    let out_a = mqtt::subscribe(&format!("{t}/out_a"));
    let out_b = mqtt::subscribe(&format!("{t}/out_b"));
    wait_connected(&s, "ra", "sa");
    wait_connected(&s, "rb", "sb");
    s.wait_status("ra", "sink connected", |st| {
        st["sink_mqtt_0_0_connection_status"] == 1
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    mqtt::publish(&format!("{t}/a"), &[r#"{"a":1}"#.into()]);
    mqtt::publish(&format!("{t}/b"), &[r#"{"b":2}"#.into()]);
    assert_eq!(out_a.take_json(1, 10), [json!({"a":1})]);
    assert_eq!(out_b.take_json(1, 10), [json!({"b":2})]);
    assert_eq!(
        proxy.accepted(),
        1,
        "two streams and a sink share one client\nlog:\n{}",
        s.log()
    );
    let c = wait_connection(&s, &cid, "3 users, connected", |c| {
        c["refCount"] == 3 && c["status"] == "connected"
    });
    assert_eq!(c["err"], "");
    assert_eq!(connection(&s, &format!("mqtt.{cid}"))["refCount"], 3);

    // A conf key overriding the credentials gets a connection of its own.
    s.expect(
        "PUT",
        "/metadata/sources/mqtt/confKeys/ck_other",
        Some(&json!({"connectionSelector": cid, "username": "other_user"}).to_string()),
        200,
    );
    s.create_stream(&format!(
        "CREATE STREAM sc () WITH (DATASOURCE=\"{t}/c\", CONF_KEY=\"ck_other\")"
    ));
    s.create_rule(&json!({
        "id": "rc",
        "sql": "SELECT c FROM sc",
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": format!("{t}/out_c"), "sendSingle": true}}]
    }));
    let out_c = mqtt::subscribe(&format!("{t}/out_c"));
    wait_connected(&s, "rc", "sc");
    std::thread::sleep(std::time::Duration::from_millis(300));
    mqtt::publish(&format!("{t}/c"), &[r#"{"c":3}"#.into()]);
    assert_eq!(out_c.take_json(1, 10), [json!({"c":3})]);
    assert_eq!(
        proxy.accepted(),
        2,
        "the override opened a second connection"
    );
    wait_connection(&s, &cid, "4 users", |c| c["refCount"] == 4);

    // Changing or deleting it is refused while rules use it, naming them.
    let r = s.delete(&format!("/connections/{cid}"));
    assert_eq!(r.status, 400, "{}", r.body);
    for who in ["ra", "rb", "rc", "stream sa", "action 0 (mqtt)"] {
        assert!(r.body.contains(who), "{who} in {}", r.body);
    }
    let r = s.put(
        &format!("/connections/{cid}"),
        &json!({"typ": "mqtt", "props": {"server": "tcp://127.0.0.1:1883"}}).to_string(),
    );
    assert_eq!(r.status, 400, "{}", r.body);

    // Once the rules stop, it can go.
    for rule in ["ra", "rb", "rc"] {
        s.expect("POST", &format!("/rules/{rule}/stop"), None, 200);
    }
    wait_connection(&s, &cid, "no users", |c| {
        c["refCount"] == 0 && c["status"] == "idle"
    });
    let r = s.put(
        &format!("/connections/{cid}"),
        &json!({"typ": "mqtt", "props": {"server": proxy.server(), "qos": 0}}).to_string(),
    );
    assert_eq!((r.status, r.body.as_str()), (200, "success"));
    assert_eq!(connection(&s, &cid)["props"]["qos"], 0);
    let r = s.delete(&format!("/connections/{cid}"));
    assert_eq!((r.status, r.body.as_str()), (200, "success"), "{}", r.body);
    assert_eq!(s.get(&format!("/connections/{cid}")).status, 404);
    // A rule whose stream names the deleted profile no longer starts.
    let r = s.post("/rules/ra/start", "");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains(&cid), "{}", r.body);
}

#[test]
fn file_profile_from_connection_yaml_is_shared() {
    let proxy = CountingProxy::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(etc.join("connections")).expect("mkdir");
    std::fs::write(
        etc.join("connections/connection.yaml"),
        format!(
            "mqtt:\n  localConnection:\n    server: \"{}\"\n    protocolVersion: \"3.1.1\"\n",
            proxy.server()
        ),
    )
    .expect("write connection.yaml");
    // The seed's form: conf keys naming `mqtt.localConnection`.
    std::fs::write(
        etc.join("mqtt_source.yaml"),
        "default:\n  qos: 1\n  server: \"tcp://127.0.0.1:1883\"\n\
         demo_conf:\n  qos: 0\n  connectionSelector: mqtt.localConnection\n\
         demo2_conf:\n  qos: 0\n  connectionSelector: mqtt.localConnection\n",
    )
    .expect("write mqtt_source.yaml");
    let s = Server::start_in(dir.path());
    let t = unique("fileconn");

    let c = connection(&s, "localConnection");
    assert_eq!(c["typ"], "mqtt");
    assert_eq!(c["props"]["server"], proxy.server());
    let y = s
        .expect("GET", "/metadata/connections/yaml/mqtt", None, 200)
        .json();
    assert_eq!(y["localConnection"]["server"], proxy.server());
    let kinds = s.expect("GET", "/metadata/connections", None, 200).json();
    assert!(
        kinds
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["name"] == "mqtt"),
        "{kinds}"
    );

    s.create_stream(&format!(
        "CREATE STREAM demo () WITH (DATASOURCE=\"{t}/one\", FORMAT=\"JSON\", CONF_KEY=\"demo_conf\")"
    ));
    s.create_stream(&format!(
        "CREATE STREAM demo2 () WITH (DATASOURCE=\"{t}/two\", FORMAT=\"JSON\", CONF_KEY=\"demo2_conf\")"
    ));
    s.create_rule(&json!({
        "id": "r1",
        "sql": "SELECT * FROM demo",
        "actions": [{"mqtt": {"connectionSelector": "mqtt.localConnection", "topic": format!("{t}/out"), "sendSingle": true}}]
    }));
    s.create_rule(&json!({
        "id": "r2",
        "sql": "SELECT * FROM demo2",
        "actions": [{"mqtt": {"connectionSelector": "localConnection", "topic": format!("{t}/out"), "sendSingle": true}}]
    }));
    let out = mqtt::subscribe(&format!("{t}/out"));
    wait_connected(&s, "r1", "demo");
    wait_connected(&s, "r2", "demo2");
    for r in ["r1", "r2"] {
        s.wait_status(r, "sink connected", |st| {
            st["sink_mqtt_0_0_connection_status"] == 1
        });
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    mqtt::publish(&format!("{t}/one"), &[r#"{"n":1}"#.into()]);
    mqtt::publish(&format!("{t}/two"), &[r#"{"n":2}"#.into()]);
    let mut got: Vec<i64> = out
        .take_json(2, 10)
        .iter()
        .map(|v| v["n"].as_i64().unwrap_or(-1))
        .collect();
    got.sort();
    assert_eq!(got, [1, 2]);
    assert_eq!(proxy.accepted(), 1, "log:\n{}", s.log());
    wait_connection(&s, "localConnection", "4 users", |c| {
        c["refCount"] == 4 && c["status"] == "connected"
    });

    // A file profile can be overridden over REST but not deleted there.
    for r in ["r1", "r2"] {
        s.expect("POST", &format!("/rules/{r}/stop"), None, 200);
    }
    let r = s.delete("/connections/localConnection");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("connection.yaml"), "{}", r.body);
    s.expect(
        "PUT",
        "/metadata/connections/mqtt/confKeys/localConnection",
        Some(&json!({"server": "tcp://127.0.0.1:1883"}).to_string()),
        200,
    );
    assert_eq!(
        connection(&s, "localConnection")["props"]["server"],
        "tcp://127.0.0.1:1883"
    );
    s.expect(
        "DELETE",
        "/metadata/connections/mqtt/confKeys/localConnection",
        None,
        200,
    );
    assert_eq!(
        connection(&s, "localConnection")["props"]["server"],
        proxy.server(),
        "the file profile shows again"
    );
}

#[test]
fn imported_connection_resolves_at_once_and_is_exported_with_its_rule() {
    let proxy = CountingProxy::start();
    let s = Server::start();
    let t = unique("impconn");
    let doc = json!({
        "streams": {"si": format!("CREATE STREAM si () WITH (DATASOURCE=\"{t}/in\", CONF_KEY=\"imp\")")},
        "rules": {"ri": json!({"id": "ri", "sql": "SELECT * FROM si",
            "actions": [{"mqtt": {"connectionSelector": "mqtt.impconn", "topic": format!("{t}/out"), "sendSingle": true}}]}).to_string()},
        "sourceConfig": {"mqtt": json!({"imp": {"connectionSelector": "impconn"}}).to_string()},
        "connectionConfig": {"mqtt": json!({"impconn": {"server": proxy.server()}}).to_string()},
    });
    let r = s.post(
        "/data/import",
        &json!({"content": doc.to_string()}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let out = mqtt::subscribe(&format!("{t}/out"));
    wait_connected(&s, "ri", "si");
    s.wait_status("ri", "sink connected", |st| {
        st["sink_mqtt_0_0_connection_status"] == 1
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    mqtt::publish(&format!("{t}/in"), &[r#"{"v":7}"#.into()]);
    assert_eq!(out.take_json(1, 10), [json!({"v":7})]);
    assert_eq!(proxy.accepted(), 1);
    assert_eq!(connection(&s, "impconn")["refCount"], 2);

    let part: Json =
        serde_json::from_str(&s.post("/data/export", r#"["ri"]"#).body).expect("export JSON");
    let conns: Json = serde_json::from_str(
        part["connectionConfig"]["mqtt"]
            .as_str()
            .expect("connectionConfig.mqtt"),
    )
    .expect("JSON string");
    assert_eq!(conns, json!({"impconn": {"server": proxy.server()}}));
}
