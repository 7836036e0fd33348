//! eKuiper graph rules through the real binary and Mosquitto: a graph of a
//! stream, a filter, a window with an aggregate and a pick runs as the same
//! rule written in SQL; its definition comes back as posted; what has no
//! SQL form is refused naming the node.

use oort_tests::{mqtt, unique, Server};
use serde_json::json;

#[test]
fn a_graph_rule_runs_and_refuses_what_it_cannot_run() {
    let s = Server::start();
    let t = unique("graph");
    s.create_stream(&format!(
        "CREATE STREAM demo () WITH (DATASOURCE=\"{t}/in\")"
    ));
    let graph = json!({
        "nodes": {
            "demo": {"type": "source", "nodeType": "mqtt", "props": {"sourceType": "stream", "sourceName": "demo"}},
            "hot": {"type": "operator", "nodeType": "filter", "props": {"expr": "temperature > 20"}},
            "f": {"type": "operator", "nodeType": "function", "props": {"expr": "temperature * 2 as t2"}},
            "w": {"type": "operator", "nodeType": "window", "props": {"type": "countwindow", "size": 2}},
            "agg": {"type": "operator", "nodeType": "aggfunc", "props": {"expr": "max(t2) as top"}},
            "n": {"type": "operator", "nodeType": "aggfunc", "props": {"expr": "count(*) as n"}},
            "p": {"type": "operator", "nodeType": "pick", "props": {"fields": ["top", "n"]}},
            "out": {"type": "sink", "nodeType": "mqtt", "props": {"server": "tcp://127.0.0.1:1883", "topic": format!("{t}/out"), "sendSingle": true}}
        },
        "topo": {"sources": ["demo"], "edges": {
            "demo": ["hot"], "hot": ["f"], "f": ["w"], "w": ["agg"], "agg": ["n"], "n": ["p"], "p": ["out"]
        }}
    });
    s.create_rule(&json!({"id": "g1", "name": "graph", "graph": graph}));
    let sub = mqtt::subscribe(&format!("{t}/out"));
    s.wait_status("g1", "source connected", |st| {
        st["source_demo_0_connection_status"] == 1
    });
    mqtt::publish(
        &format!("{t}/in"),
        &[
            r#"{"temperature":25}"#.into(),
            r#"{"temperature":10}"#.into(),
            r#"{"temperature":30}"#.into(),
        ],
    );
    assert_eq!(sub.take_json(1, 10), vec![json!({"top": 60, "n": 2})]);
    // The rule is shown as posted: its graph, no generated SQL.
    let def: serde_json::Value = serde_json::from_str(&s.get("/rules/g1").body).expect("rule JSON");
    assert_eq!(def["graph"], graph);
    assert!(def.get("sql").is_none(), "{def}");

    // A script node: a 400 naming the node, nothing stored.
    let bad = json!({"id": "g2", "graph": {
        "nodes": {
            "demo": {"type": "source", "nodeType": "mqtt", "props": {"sourceType": "stream", "sourceName": "demo"}},
            "js": {"type": "operator", "nodeType": "script", "props": {"script": "function exec(m) { return m }"}},
            "out": {"type": "sink", "nodeType": "log", "props": {}}
        },
        "topo": {"sources": ["demo"], "edges": {"demo": ["js"], "js": ["out"]}}
    }});
    let r = s.expect("POST", "/rules", Some(&bad.to_string()), 400);
    assert!(
        r.body.contains("node js") && r.body.contains("script"),
        "{}",
        r.body
    );
    s.expect("GET", "/rules/g2", None, 404);
}

/// A switch node routes each result row to its cases' sinks; with
/// `stopAtFirstMatch` a row takes the first case it matches only.
#[test]
fn a_switch_routes_rows_to_the_sinks_of_matching_cases() {
    let s = Server::start();
    let t = unique("gswitch");
    s.create_stream(&format!("CREATE STREAM sw () WITH (DATASOURCE=\"{t}/in\")"));
    let sink = |topic: &str| json!({"type": "sink", "nodeType": "mqtt", "props": {"server": "tcp://127.0.0.1:1883", "topic": format!("{t}/{topic}"), "sendSingle": true}});
    let graph = json!({
        "nodes": {
            "sw_src": {"type": "source", "nodeType": "mqtt", "props": {"sourceType": "stream", "sourceName": "sw"}},
            "sw": {"type": "operator", "nodeType": "switch", "props": {"cases": ["t > 30", "t > 20"], "stopAtFirstMatch": true}},
            "hot": sink("hot"),
            "warm": sink("warm")
        },
        "topo": {"sources": ["sw_src"], "edges": {"sw_src": ["sw"], "sw": [["hot"], ["warm"]]}}
    });
    s.create_rule(&json!({"id": "gs", "graph": graph}));
    let hot = mqtt::subscribe(&format!("{t}/hot"));
    let warm = mqtt::subscribe(&format!("{t}/warm"));
    s.wait_status("gs", "source connected", |st| {
        st["source_sw_0_connection_status"] == 1
    });
    mqtt::publish(
        &format!("{t}/in"),
        &[
            r#"{"t":35}"#.into(),
            r#"{"t":25}"#.into(),
            r#"{"t":10}"#.into(),
            r#"{"t":40}"#.into(),
            // A marker: anything wrongly routed to warm comes before it.
            r#"{"t":26}"#.into(),
        ],
    );
    let got_hot: Vec<f64> = hot
        .take_json(2, 10)
        .iter()
        .map(|j| j["t"].as_f64().unwrap())
        .collect();
    assert_eq!(got_hot, vec![35.0, 40.0]);
    let got_warm: Vec<f64> = warm
        .take_json(2, 10)
        .iter()
        .map(|j| j["t"].as_f64().unwrap())
        .collect();
    assert_eq!(
        got_warm,
        vec![25.0, 26.0],
        "35 and 40 stop at the first case"
    );

    // A case that is not a valid condition: 400, nothing stored.
    let bad = json!({"id": "gs2", "graph": {
        "nodes": {
            "sw_src": {"type": "source", "nodeType": "mqtt", "props": {"sourceType": "stream", "sourceName": "sw"}},
            "sw": {"type": "operator", "nodeType": "switch", "props": {"cases": ["t >"]}},
            "hot": sink("hot")
        },
        "topo": {"sources": ["sw_src"], "edges": {"sw_src": ["sw"], "sw": [["hot"]]}}
    }});
    let r = s.expect("POST", "/rules", Some(&bad.to_string()), 400);
    assert!(r.body.contains("switch case"), "{}", r.body);
    s.expect("GET", "/rules/gs2", None, 404);
}

/// A source node that defines its stream inline runs as a stream private to
/// the rule: not listed with the streams, gone with the rule.
#[test]
fn an_inline_source_node_runs_as_a_rule_private_stream() {
    let s = Server::start();
    let t = unique("ginline");
    let graph = json!({
        "nodes": {
            "in": {"type": "source", "nodeType": "mqtt", "props": {"datasource": format!("{t}/in"), "format": "json"}},
            "f": {"type": "operator", "nodeType": "filter", "props": {"expr": "v > 1"}},
            "out": {"type": "sink", "nodeType": "mqtt", "props": {"server": "tcp://127.0.0.1:1883", "topic": format!("{t}/out"), "sendSingle": true}}
        },
        "topo": {"sources": ["in"], "edges": {"in": ["f"], "f": ["out"]}}
    });
    s.create_rule(&json!({"id": "gi", "graph": graph}));
    let sub = mqtt::subscribe(&format!("{t}/out"));
    s.wait_status("gi", "source connected", |st| {
        st["source_gi__in_0_connection_status"] == 1
    });
    mqtt::publish(
        &format!("{t}/in"),
        &[r#"{"v":1}"#.into(), r#"{"v":2}"#.into()],
    );
    let got = sub.take_json(1, 10);
    assert_eq!(got[0]["v"].as_f64(), Some(2.0));
    let streams = s.get("/streams").json();
    assert_eq!(streams, json!([]), "inline streams are not listed");
    s.expect("DELETE", "/rules/gi", None, 200);
    // The name is free again: a rule naming it finds no stream.
    let r = s.post(
        "/rules",
        &json!({"id": "x", "sql": "SELECT * FROM gi__in", "actions": [{"log": {}}]}).to_string(),
    );
    assert_eq!(r.status, 400, "{}", r.body);
}
