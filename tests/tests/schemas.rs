//! FORMAT protobuf with eKuiper's schema API: a schema registered over
//! REST, a sink encoding results as its messages on MQTT, a stream decoding
//! them again; what the API and the formats refuse.

use oort_tests::{mqtt, unique, Server};
use serde_json::json;

const PROTO: &str = r#"syntax = "proto3";
message Reading { string device = 1; double temperature = 2; int64 count = 3; repeated string tags = 4; }
"#;

#[test]
fn results_go_through_protobuf_on_the_broker_and_back() {
    let s = Server::start();
    let t = unique("pb");
    let r = s.expect(
        "POST",
        "/schemas/protobuf",
        Some(&json!({"name": "demo", "content": PROTO}).to_string()),
        201,
    );
    assert_eq!(r.body, "protobuf schema demo is created");
    assert_eq!(s.get("/schemas/protobuf").json(), json!(["demo"]));
    assert_eq!(s.get("/schemas/protobuf/demo").json()["content"], PROTO);

    s.create_stream(&format!(
        "CREATE STREAM src () WITH (DATASOURCE=\"{t}/json\")"
    ));
    s.create_stream(&format!(
        "CREATE STREAM pb () WITH (DATASOURCE=\"{t}/pb\", FORMAT=\"protobuf\", SCHEMAID=\"demo.Reading\")"
    ));
    s.create_rule(&json!({
        "id": "encode",
        "sql": "SELECT device, temperature, count, tags FROM src",
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": format!("{t}/pb"),
            "format": "protobuf", "schemaId": "demo.Reading", "sendSingle": true}}]
    }));
    s.create_rule(&json!({
        "id": "decode",
        "sql": "SELECT device, temperature * 2 AS t2, count, tags FROM pb",
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": format!("{t}/out"), "sendSingle": true}}]
    }));
    let raw = mqtt::subscribe(&format!("{t}/pb"));
    let out = mqtt::subscribe(&format!("{t}/out"));
    for rule in ["encode", "decode"] {
        s.wait_status(rule, "connected", |st| {
            st.as_object()
                .unwrap()
                .iter()
                .any(|(k, v)| k.ends_with("_connection_status") && v == 1)
        });
    }
    mqtt::publish(
        &format!("{t}/json"),
        &[
            json!({"device": "d1", "temperature": 21.5, "count": 7, "tags": ["a", "b"]})
                .to_string(),
        ],
    );
    // On the broker: protobuf bytes (field 1, a string: tag 0x0a), not JSON.
    let (_, bytes) = raw.take(1, 10).remove(0);
    assert_eq!(bytes[0], 0x0a, "{bytes:?}");
    assert_eq!(&bytes[2..4], b"d1");
    assert_eq!(
        out.take_json(1, 10),
        [json!({"device": "d1", "t2": 43, "count": 7, "tags": ["a", "b"]})]
    );
}

#[test]
fn what_the_schema_api_and_protobuf_refuse() {
    let s = Server::start();
    let post = |body: serde_json::Value, code: u16| {
        s.expect("POST", "/schemas/protobuf", Some(&body.to_string()), code)
            .body
    };
    assert!(post(json!({"name": "bad", "content": "message {"}), 400).contains("does not compile"));
    assert!(post(json!({"name": "f", "file": "file:///tmp/x.proto"}), 400).contains("content"));
    assert!(post(json!({"name": "../x", "content": PROTO}), 400).contains("name"));
    post(json!({"name": "demo", "content": PROTO}), 201);
    assert!(post(json!({"name": "demo", "content": PROTO}), 400).contains("exists"));
    assert!(s
        .expect(
            "POST",
            "/schemas/custom",
            Some(r#"{"name":"c","soFile":"x.so"}"#),
            400
        )
        .body
        .contains("Go plugins"));
    assert_eq!(s.get("/schemas/protobuf").json(), json!(["demo"]));
    let stream = |sql: &str| json!({ "sql": sql }).to_string();
    for (sql, says) in [
        ("CREATE STREAM a () WITH (DATASOURCE=\"x\", FORMAT=\"protobuf\")", "SCHEMAID"),
        ("CREATE STREAM a () WITH (DATASOURCE=\"x\", FORMAT=\"protobuf\", SCHEMAID=\"demo.Nope\")", "Reading"),
        ("CREATE STREAM a () WITH (DATASOURCE=\"x\", FORMAT=\"protobuf\", SCHEMAID=\"nope.Reading\")", "not found"),
        ("CREATE STREAM a () WITH (DATASOURCE=\"x\", SCHEMAID=\"demo.Reading\")", "is used with FORMAT"),
    ] {
        let r = s.expect("POST", "/streams", Some(&stream(sql)), 400);
        assert!(r.body.contains(says), "{sql}: {}", r.body);
    }
    s.create_stream("CREATE STREAM d () WITH (DATASOURCE=\"x\")");
    for (action, says) in [
        (json!({"log": {"format": "protobuf"}}), "schemaId"),
        (
            json!({"log": {"schemaId": "demo.Reading"}}),
            "format protobuf only",
        ),
        (
            json!({"log": {"format": "protobuf", "schemaId": "demo.X"}}),
            "Reading",
        ),
    ] {
        let r = s.expect(
            "POST",
            "/rules",
            Some(&json!({"id": "r", "sql": "SELECT * FROM d", "actions": [action]}).to_string()),
            400,
        );
        assert!(r.body.contains(says), "{action}: {}", r.body);
    }
    let r = s.expect("PUT", "/schemas/protobuf/demo", Some(&json!({"name": "demo", "content": "syntax = \"proto3\"; message Other { int32 n = 1; }"}).to_string()), 200);
    assert_eq!(r.body, "protobuf schema demo is updated");
    s.expect("DELETE", "/schemas/protobuf/demo", None, 200);
    s.expect("GET", "/schemas/protobuf/demo", None, 404);
}

/// A full export carries the schemas; importing it into an empty server
/// registers them before the protobuf streams that use them.
#[test]
fn schemas_travel_in_import_documents() {
    let a = Server::start();
    a.expect(
        "POST",
        "/schemas/protobuf",
        Some(&json!({"name": "demo", "content": PROTO}).to_string()),
        201,
    );
    a.create_stream(
        "CREATE STREAM pb () WITH (DATASOURCE=\"x\", FORMAT=\"protobuf\", SCHEMAID=\"demo.Reading\")",
    );
    let doc = a.get("/data/export").json();
    let entry: serde_json::Value =
        serde_json::from_str(doc["Schema"]["protobuf_demo"].as_str().unwrap()).unwrap();
    assert_eq!(entry["name"], "demo");
    assert_eq!(entry["content"], PROTO);

    let b = Server::start();
    let r = b.expect(
        "POST",
        "/data/import",
        Some(&json!({"content": doc.to_string()}).to_string()),
        200,
    );
    assert_eq!(
        r.json()["ConfigResponse"]["Schema"],
        json!({}),
        "{}",
        r.body
    );
    assert_eq!(b.get("/schemas/protobuf").json(), json!(["demo"]));
    assert_eq!(b.get("/streams").json(), json!(["pb"]));
    // A custom schema in a document is reported, the rest applied.
    let mut doc2 = doc.clone();
    doc2["Schema"]["custom_x"] =
        json!(json!({"type": "custom", "name": "x", "soFile": "x.so"}).to_string());
    // (an import with a failed item answers 400 with the per-item report)
    let r = b.expect(
        "POST",
        "/data/import?partial=1",
        Some(&json!({"content": doc2.to_string()}).to_string()),
        400,
    );
    assert!(r.body.contains("custom_x"), "{}", r.body);
    assert!(
        r.body.contains("custom schemas run Go plugins"),
        "{}",
        r.body
    );
    assert_eq!(b.get("/schemas/protobuf").json(), json!(["demo"]));
}
