//! The sink pipeline end to end: common properties (case, strings, bad
//! values), compression, and drops when the peer is down.

use std::io::Read;

use oort_tests::broker::Broker;
use oort_tests::{mqtt, unique, Server};
use serde_json::json;

fn wait_connected(s: &Server, rule: &str, stream: &str) {
    s.wait_status(rule, "source connected", |st| {
        st[format!("source_{stream}_0_connection_status")] == 1
    });
}

#[test]
fn mixed_case_send_single_and_gzip_are_honoured() {
    let s = Server::start();
    let t = unique("gz");
    s.create_stream(&format!(
        "CREATE STREAM demo () WITH (DATASOURCE=\"{t}/in\")"
    ));
    s.create_rule(&json!({
        "id": "gz",
        "sql": "SELECT * FROM demo",
        "actions": [{"mqtt": {
            "server": "tcp://127.0.0.1:1883", "topic": format!("{t}/out"),
            "SendSingle": "true", "COMPRESSION": "gzip", "ExcludeFields": "b"
        }}]
    }));
    let sub = mqtt::subscribe(&format!("{t}/out"));
    wait_connected(&s, "gz", "demo");
    mqtt::publish(
        &format!("{t}/in"),
        &[r#"[{"a":1,"b":2},{"a":3,"b":4}]"#.into()],
    );
    let got: Vec<serde_json::Value> = sub
        .take(2, 10)
        .into_iter()
        .map(|(_, p)| {
            assert_eq!(&p[..2], &[0x1f, 0x8b], "a gzip stream");
            let mut text = String::new();
            flate2::read::GzDecoder::new(&p[..])
                .read_to_string(&mut text)
                .expect("gunzip");
            serde_json::from_str(&text).expect("JSON inside")
        })
        .collect();
    assert_eq!(got, vec![json!({"a": 1}), json!({"a": 3})]);
}

#[test]
fn bad_or_unhonoured_sink_properties_are_refused_by_name() {
    let s = Server::start();
    s.create_stream("CREATE STREAM demo () WITH (DATASOURCE=\"x\")");
    for (props, name) in [
        (
            json!({"bufferLength": 2305843009213693952u64}),
            "bufferLength",
        ),
        (json!({"sendSingle": "yes please"}), "sendSingle"),
        (json!({"Concurrency": 1000}), "concurrency"),
        (json!({"schemaId": "proto1"}), "schemaId"),
        (json!({"runAsync": true}), "runAsync"),
        (
            json!({"enableCache": true, "concurrency": 2}),
            "enableCache",
        ),
        (
            json!({"enableCache": true, "resendDestination": "x/again"}),
            "resendDestination",
        ),
        (
            json!({"enableCache": true, "resendPriority": 7}),
            "resendPriority",
        ),
        (json!({"compression": "lz4"}), "compression"),
        (json!({"encryption": "aes"}), "encryption"),
    ] {
        let mut action = props.clone();
        action["server"] = json!("tcp://127.0.0.1:1883");
        action["topic"] = json!("x/out");
        let rule = json!({"id": "bad", "sql": "SELECT * FROM demo", "actions": [{"mqtt": action}]});
        let r = s.post("/rules", &rule.to_string());
        assert_eq!(r.status, 400, "{props}: {}", r.body);
        assert!(
            r.body
                .to_ascii_lowercase()
                .contains(&name.to_ascii_lowercase()),
            "{props}: {}",
            r.body
        );
    }
    // resendDestination on a sink that has no second destination.
    let rule = json!({"id": "bad", "sql": "SELECT * FROM demo", "actions": [{"log": {
        "enableCache": true, "resendAlterQueue": true, "resendDestination": "elsewhere"}}]});
    let r = s.post("/rules", &rule.to_string());
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("resendDestination"), "{}", r.body);
    // Compression of a sink that reads rows, not bytes.
    let rule = json!({"id": "bad", "sql": "SELECT * FROM demo", "actions": [{"log": {"compression": "zstd"}}]});
    let r = s.post("/rules", &rule.to_string());
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("compression"), "{}", r.body);
    assert_eq!(s.get("/rules").json(), json!([]), "nothing was stored");
}

#[test]
fn a_sink_whose_peer_is_down_counts_drops_not_records_out() {
    let mut broker = Broker::start();
    let s = Server::start();
    let t = unique("down");
    s.create_stream(&format!(
        "CREATE STREAM demo () WITH (DATASOURCE=\"{t}/in\")"
    ));
    s.create_rule(&json!({
        "id": "down",
        "sql": "SELECT * FROM demo",
        "actions": [{"mqtt": {
            "server": format!("tcp://127.0.0.1:{}", broker.port), "topic": format!("{t}/out"),
            "sendSingle": true, "retryCount": "1", "retryInterval": "10ms"
        }}]
    }));
    wait_connected(&s, "down", "demo");
    s.wait_status("down", "sink connected", |st| {
        st["sink_mqtt_0_0_connection_status"] == 1
    });
    broker.kill();
    s.wait_status("down", "sink disconnected", |st| {
        st["sink_mqtt_0_0_connection_status"] != 1
    });
    mqtt::publish(
        &format!("{t}/in"),
        &[r#"{"a":1}"#.into(), r#"{"a":2}"#.into()],
    );
    let st = s.wait_status("down", "drops counted", |st| {
        st["sink_mqtt_0_0_records_dropped_total"].as_u64() == Some(2)
    });
    assert_eq!(st["sink_mqtt_0_0_records_out_total"], 0, "{st:#}");
    assert_eq!(st["sink_mqtt_0_0_records_in_total"], 2, "{st:#}");
    assert_eq!(st["status"], "running");
}

#[test]
fn a_sink_counts_emissions_in_and_messages_out() {
    let s = Server::start();
    let t = unique("emit");
    s.create_stream(&format!(
        "CREATE STREAM demo () WITH (DATASOURCE=\"{t}/in\")"
    ));
    s.create_rule(&json!({
        "id": "emit",
        "sql": "SELECT a FROM demo GROUP BY COUNTWINDOW(3)",
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": format!("{t}/out"), "sendSingle": true}}]
    }));
    let sub = mqtt::subscribe(&format!("{t}/out"));
    wait_connected(&s, "emit", "demo");
    mqtt::publish(
        &format!("{t}/in"),
        &[
            r#"{"a":1}"#.into(),
            r#"{"a":2}"#.into(),
            r#"{"a":3}"#.into(),
        ],
    );
    assert_eq!(sub.take_json(3, 10).len(), 3);
    // One window emission in, its three rows out as three messages.
    let st = s.wait_status("emit", "three messages written", |st| {
        st["sink_mqtt_0_0_records_out_total"] == 3
    });
    assert_eq!(st["sink_mqtt_0_0_records_in_total"], 1, "{st:#}");
}
