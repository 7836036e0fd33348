//! The `edgex` connectors through the real binary and Mosquitto: an EdgeX
//! device service's add-event request comes in, a rule computes on its
//! readings and metadata, and the `edgex` action publishes an EdgeX event
//! in an envelope, checked field by field.

use base64::Engine;
use oort_tests::{mqtt, unique, Server};
use serde_json::json;

#[test]
fn edgex_request_in_event_out() {
    let s = Server::start();
    let t = unique("edgex");
    s.expect(
        "PUT",
        "/metadata/sources/edgex/confKeys/bus",
        Some(r#"{"server":"127.0.0.1","port":1883,"messageType":"request"}"#),
        200,
    );
    s.create_stream(&format!(
        "CREATE STREAM events () WITH (DATASOURCE=\"{t}/events/#\", TYPE=\"edgex\", CONF_KEY=\"bus\")"
    ));
    s.create_rule(&json!({
        "id": "calc",
        "sql": "SELECT meta(*) AS m, Temperature * 2 AS t2, Label FROM events WHERE Temperature > 20",
        "actions": [{"edgex": {"server": "127.0.0.1", "port": 1883, "topic": format!("{t}/out"),
            "metadata": "m", "sendSingle": true}}]
    }));
    let sub = mqtt::subscribe(&format!("{t}/out"));
    s.wait_status("calc", "connected", |st| {
        st["source_events_0_connection_status"] == 1
    });
    let reading = |name: &str, vt: &str, v: &str| {
        json!({"id": "r", "origin": 1, "deviceName": "Thermo-1", "resourceName": name,
               "profileName": "Thermo", "valueType": vt, "value": v})
    };
    for temp in ["1.5e+01", "2.25e+01"] {
        let req = json!({"apiVersion": "v3", "requestId": "q1", "event": {
            "apiVersion": "v3", "id": "e1", "deviceName": "Thermo-1", "profileName": "Thermo",
            "sourceName": "Reading", "origin": 1,
            "readings": [reading("Temperature", "Float64", temp), reading("Label", "String", "hall")]}});
        let env = json!({"apiVersion": "v3", "correlationID": "c1", "contentType": "application/json",
            "payload": base64::engine::general_purpose::STANDARD.encode(req.to_string())});
        mqtt::publish(&format!("{t}/events/Thermo/Thermo-1"), &[env.to_string()]);
    }
    let got = sub.take_json(1, 10).remove(0);
    assert_eq!(got["apiVersion"], "v3");
    assert_eq!(got["contentType"], "application/json");
    let payload = base64::engine::general_purpose::STANDARD
        .decode(got["payload"].as_str().unwrap())
        .unwrap();
    let ev: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    // The names come from the incoming event's metadata.
    assert_eq!(ev["deviceName"], "Thermo-1");
    assert_eq!(ev["profileName"], "Thermo");
    assert_eq!(ev["sourceName"], "Reading");
    let readings = ev["readings"].as_array().unwrap();
    assert_eq!(readings.len(), 2, "{ev}");
    let by = |n: &str| readings.iter().find(|r| r["resourceName"] == n).unwrap();
    assert_eq!(by("t2")["valueType"], "Float64");
    assert_eq!(by("t2")["value"], "4.5e+01");
    assert_eq!(by("Label")["valueType"], "String");
    assert_eq!(by("Label")["value"], "hall");
    assert_eq!(by("t2")["deviceName"], "Thermo-1");
    // The subscriber sees the event before the sink counts its write as done: wait for the count.
    s.wait_status("calc", "1 record out", |st| {
        st["sink_edgex_0_0_records_out_total"] == 1
    });
}

/// eKuiper's `connectionSelector` on EdgeX: the bus settings live in a
/// connection profile of type `edgex`; the conf key only selects it.
#[test]
fn edgex_bus_from_a_connection_profile() {
    let s = Server::start();
    let t = unique("edgexsel");
    s.expect(
        "POST",
        "/connections",
        Some(
            &json!({"id": "mqttBus", "typ": "edgex", "props": {"type": "mqtt", "server": "127.0.0.1", "port": 1883}})
                .to_string(),
        ),
        201,
    );
    s.expect(
        "PUT",
        "/metadata/sources/edgex/confKeys/sel",
        Some(r#"{"connectionSelector":"edgex.mqttBus","messageType":"event"}"#),
        200,
    );
    s.create_stream(&format!(
        "CREATE STREAM sel () WITH (DATASOURCE=\"{t}/events/#\", TYPE=\"edgex\", CONF_KEY=\"sel\")"
    ));
    s.create_rule(&json!({
        "id": "sel",
        "sql": "SELECT Temperature FROM sel",
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": format!("{t}/out"), "sendSingle": true}}]
    }));
    let sub = mqtt::subscribe(&format!("{t}/out"));
    s.wait_status("sel", "connected", |st| {
        st["source_sel_0_connection_status"] == 1
    });
    let event = json!({"apiVersion": "v3", "id": "e1", "deviceName": "Thermo-1", "profileName": "Thermo",
        "sourceName": "Reading", "origin": 1,
        "readings": [{"id": "r", "origin": 1, "deviceName": "Thermo-1", "resourceName": "Temperature",
            "profileName": "Thermo", "valueType": "Int64", "value": "21"}]});
    let env = json!({"apiVersion": "v3", "correlationID": "c1", "contentType": "application/json",
        "payload": base64::engine::general_purpose::STANDARD.encode(event.to_string())});
    mqtt::publish(&format!("{t}/events/Thermo/Thermo-1"), &[env.to_string()]);
    assert_eq!(sub.take_json(1, 10), vec![json!({"Temperature": 21})]);
}
