//! Graph compilation tests.
use super::*;
use serde_json::json;

fn src(name: &str) -> Json {
    json!({"type": "source", "nodeType": "mqtt", "props": {"sourceType": "stream", "sourceName": name}})
}

fn op(t: &str, props: Json) -> Json {
    json!({"type": "operator", "nodeType": t, "props": props})
}

fn sink(topic: &str) -> Json {
    json!({"type": "sink", "nodeType": "mqtt", "props": {"server": "tcp://127.0.0.1:1883", "topic": topic}})
}

#[test]
fn a_chain_becomes_one_select() {
    let g = json!({
        "nodes": {
            "demo": src("demo"),
            "fn": op("function", json!({"expr": "log(temperature) as log_t"})),
            "f": op("filter", json!({"expr": "humidity > 30"})),
            "w": op("window", json!({"type": "tumblingwindow", "unit": "ss", "size": 10})),
            "g": op("groupby", json!({"dimensions": ["device"]})),
            "a": op("aggfunc", json!({"expr": "avg(log_t) as avg_t"})),
            "h": op("filter", json!({"expr": "avg_t > 1"})),
            "p": op("pick", json!({"fields": ["device", "avg_t", "window_end() as e"]})),
            "o": op("orderby", json!({"sorts": [{"field": "avg_t", "order": "desc"}]})),
            "out": sink("a"),
            "out2": sink("b")
        },
        "topo": {"sources": ["demo"], "edges": {
            "demo": ["fn"], "fn": ["f"], "f": ["w"], "w": ["g"], "g": ["a"], "a": ["h"],
            "h": ["p"], "p": ["o"], "o": ["out", "out2"]
        }}
    });
    let c = compile(&g, "r").unwrap();
    assert_eq!(
        c.sql,
        "SELECT log(temperature) as log_t INVISIBLE, avg(log_t) as avg_t INVISIBLE, device, avg_t, window_end() as e FROM demo GROUP BY device, TUMBLINGWINDOW(ss, 10) FILTER (WHERE (humidity > 30)) HAVING (avg_t > 1) ORDER BY avg_t DESC"
    );
    assert_eq!(c.actions.len(), 2);
    assert_eq!(c.actions[0]["mqtt"]["topic"], "a");
}

#[test]
fn joins_name_their_sources() {
    let g = json!({
        "nodes": {
            "d1": src("device1"), "d2": src("device2"),
            "w": op("window", json!({"type": "countwindow", "size": 2})),
            "j": op("join", json!({"from": "d1", "joins": [{"name": "d2", "type": "inner", "on": "device1.id = device2.id"}]})),
            "out": sink("x")
        },
        "topo": {"sources": ["d1", "d2"], "edges": {"d1": ["w"], "d2": ["w"], "w": ["j"], "j": ["out"]}}
    });
    assert_eq!(
        compile(&g, "r").unwrap().sql,
        "SELECT * FROM device1 INNER JOIN device2 ON device1.id = device2.id GROUP BY COUNTWINDOW(2)"
    );
}

#[test]
fn inline_sources_become_rule_private_streams() {
    let g = json!({
        "nodes": {
            "in": {"type": "source", "nodeType": "mqtt", "props": {"datasource": "t/in", "format": "json", "confKey": "b1", "shared": false, "sourceType": "stream"}},
            "o": sink("out"),
        },
        "topo": {"sources": ["in"], "edges": {"in": ["o"]}}
    });
    let c = compile(&g, "r1").unwrap();
    assert_eq!(c.sql, "SELECT * FROM r1__in");
    assert_eq!(
        c.inline,
        vec![(
            "r1__in".to_string(),
            "CREATE STREAM r1__in () WITH (TYPE=\"mqtt\", DATASOURCE=\"t/in\", FORMAT=\"json\", CONF_KEY=\"b1\", SHARED=\"false\")".to_string()
        )]
    );
}

#[test]
fn a_switch_routes_rows_to_its_cases_sinks() {
    let g = json!({
        "nodes": {
            "s": src("demo"),
            "f": op("filter", json!({"expr": "t > 0"})),
            "sw": op("switch", json!({"cases": ["t > 30", "t > 20"], "stopAtFirstMatch": true})),
            "hot": sink("hot"),
            "warm": sink("warm"),
            "all": sink("all"),
        },
        "topo": {"sources": ["s"], "edges": {"s": ["f"], "f": ["sw"], "sw": [["hot", "all"], ["warm"]]}}
    });
    let c = compile(&g, "r").unwrap();
    assert_eq!(c.sql, "SELECT * FROM demo WHERE (t > 0)");
    assert_eq!(c.actions.len(), 3);
    assert_eq!(
        c.routes,
        vec![
            Some("(t > 30)".to_string()),
            Some("(t > 30)".to_string()),
            Some("(t > 20) AND NOT coalesce((t > 30), false)".to_string()),
        ]
    );
    assert_eq!(c.actions[2]["mqtt"]["topic"], json!("warm"));
}

#[test]
fn what_has_no_sql_form_is_refused_naming_the_node() {
    let base = |nodes: Json, edges: Json| json!({"nodes": nodes, "topo": {"sources": ["s"], "edges": edges}});
    for (g, says) in [
        (
            base(
                json!({"s": src("demo"), "x": op("script", json!({"script": "function exec(m){return m}"})), "o": sink("a")}),
                json!({"s": ["x"], "x": ["o"]}),
            ),
            "node x: nodeType script",
        ),
        (
            base(
                json!({"s": src("demo"), "x": op("switch", json!({"cases": ["a > 1"]})), "f": op("filter", json!({"expr": "a"})), "o": sink("a")}),
                json!({"s": ["x"], "x": [["f"]], "f": ["o"]}),
            ),
            "node x: case output f is not a sink",
        ),
        (
            base(
                json!({"s": src("demo"), "x": op("switch", json!({"cases": ["a > 1", "a < 0"]})), "o": sink("a")}),
                json!({"s": ["x"], "x": [["o"]]}),
            ),
            "node x: 2 cases but 1 output lists",
        ),
        (
            base(
                json!({"s": src("demo"), "x": op("switch", json!({"cases": []})), "o": sink("a")}),
                json!({"s": ["x"], "x": [["o"]]}),
            ),
            "node x: property cases",
        ),
        (
            base(
                json!({"s": src("demo"), "f": op("filter", json!({"expr": "a"})), "o": sink("a")}),
                json!({"s": ["f"], "f": [["o"]]}),
            ),
            "only a switch node",
        ),
        (
            base(
                json!({"s": {"type": "source", "nodeType": "mqtt", "props": {"datasorce": "t"}}, "o": sink("a")}),
                json!({"s": ["o"]}),
            ),
            "node s: unknown stream property datasorce (did you mean datasource?)",
        ),
        (
            base(
                json!({"s": {"type": "source", "nodeType": "mqtt", "props": {"datasource": "a\"b"}}, "o": sink("a")}),
                json!({"s": ["o"]}),
            ),
            "node s: property datasource: quotes",
        ),
        (
            base(
                json!({"s": src("demo"), "a": op("filter", json!({"expr": "x"})), "b": op("filter", json!({"expr": "y"})), "o": sink("a")}),
                json!({"s": ["a", "b"], "a": ["o"], "b": ["o"]}),
            ),
            "several operators",
        ),
        (
            base(
                json!({"s": src("demo"), "a": op("filter", json!({"expr": "x"})), "lost": op("pick", json!({"fields": ["a"]})), "o": sink("a")}),
                json!({"s": ["a"], "a": ["o"]}),
            ),
            "node lost: is not on the path",
        ),
        (
            base(
                json!({"s": src("demo"), "w": op("window", json!({"type": "statewindow"})), "o": sink("a")}),
                json!({"s": ["w"], "w": ["o"]}),
            ),
            "node w: window type statewindow",
        ),
        (
            base(
                json!({"s": src("demo"), "o": sink("a")}),
                json!({"s": ["nowhere"]}),
            ),
            "node nowhere",
        ),
        (
            base(
                json!({"s": src("demo"), "a": op("filter", json!({})), "o": sink("a")}),
                json!({"s": ["a"], "a": ["o"]}),
            ),
            "node a: property expr",
        ),
    ] {
        let e = compile(&g, "r").unwrap_err();
        assert!(e.contains(says), "{says}: {e}");
    }
}
