//! eKuiper's number semantics end to end: a schemaless JSON stream reads
//! every number as a float (so `a / b` with 7 and 2 is 3.5), integer
//! literals stay integers (`5 / 2` is 2), typed BIGINT columns and
//! `useInt64ForWholeNumber` keep whole numbers whole.

use oort_tests::{mqtt, unique, Server};
use serde_json::json;

fn run(s: &Server, t: &str, stream_sql: &str, rule: &str) -> serde_json::Value {
    s.create_stream(stream_sql);
    s.create_rule(&json!({
        "id": rule,
        "sql": format!("SELECT a / b AS q, a % b AS m, 5 / 2 AS lit, a * 2 AS twice, n.x / 2 AS nested FROM {rule}_s"),
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": format!("{t}/{rule}/out"), "sendSingle": true}}]
    }));
    let sub = mqtt::subscribe(&format!("{t}/{rule}/out"));
    s.wait_status(rule, "source connected", |st| {
        st[format!("source_{rule}_s_0_connection_status")] == 1
    });
    mqtt::publish(
        &format!("{t}/{rule}/in"),
        &[r#"{"a":7,"b":2,"n":{"x":3}}"#.into()],
    );
    sub.take_json(1, 10).remove(0)
}

#[test]
fn schemaless_numbers_are_floats_typed_and_opted_out_ones_integers() {
    let s = Server::start();
    let t = unique("num");
    let got = run(
        &s,
        &t,
        &format!("CREATE STREAM free_s () WITH (DATASOURCE=\"{t}/free/in\")"),
        "free",
    );
    assert_eq!(
        got,
        json!({"q": 3.5, "m": 1, "lit": 2, "twice": 14, "nested": 1.5})
    );
    let got = run(
        &s,
        &t,
        &format!("CREATE STREAM typed_s (a BIGINT, b BIGINT, n STRUCT(x BIGINT)) WITH (DATASOURCE=\"{t}/typed/in\")"),
        "typed",
    );
    assert_eq!(
        got,
        json!({"q": 3, "m": 1, "lit": 2, "twice": 14, "nested": 1})
    );
    s.expect(
        "PUT",
        "/metadata/sources/mqtt/confKeys/ints",
        Some(
            &json!({"server": "tcp://127.0.0.1:1883", "useInt64ForWholeNumber": true}).to_string(),
        ),
        200,
    );
    let got = run(
        &s,
        &t,
        &format!("CREATE STREAM ints_s () WITH (DATASOURCE=\"{t}/ints/in\", CONF_KEY=\"ints\")"),
        "ints",
    );
    assert_eq!(
        got,
        json!({"q": 3, "m": 1, "lit": 2, "twice": 14, "nested": 1})
    );
}

/// The file source decodes its json and lines files itself: the same number
/// rule applies (schemaless: floats; typed: whole numbers stay whole).
#[test]
fn file_streams_follow_the_same_number_rule() {
    let s = Server::start();
    let data = s.data_dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("n.json"), r#"[{"a":7,"b":2,"n":{"x":3}}]"#).unwrap();
    std::fs::write(data.join("n.lines"), "{\"a\":7,\"b\":2,\"n\":{\"x\":3}}\n").unwrap();
    s.expect(
        "PUT",
        "/metadata/sources/file/confKeys/lines",
        Some(&json!({"fileType": "lines"}).to_string()),
        200,
    );
    for (name, cols, conf, want) in [
        ("fj", "", "", json!({"q": 3.5, "nested": 1.5})),
        (
            "fl",
            "",
            ", CONF_KEY=\"lines\"",
            json!({"q": 3.5, "nested": 1.5}),
        ),
        (
            "ft",
            "a BIGINT, b BIGINT, n STRUCT(x BIGINT)",
            "",
            json!({"q": 3, "nested": 1}),
        ),
    ] {
        let file = if conf.is_empty() { "n.json" } else { "n.lines" };
        s.create_stream(&format!(
            "CREATE STREAM {name} ({cols}) WITH (DATASOURCE=\"{file}\", TYPE=\"file\"{conf})"
        ));
        let out = s.data_dir.join(format!("{name}.out"));
        s.create_rule(&json!({
            "id": name,
            "sql": format!("SELECT a / b AS q, n.x / 2 AS nested FROM {name}"),
            "actions": [{"file": {"path": out.to_str().unwrap(), "fileType": "lines", "sendSingle": true}}]
        }));
        s.wait_status(name, "rule stopped at end of file", |st| {
            st["status"] == "stopped"
        });
        let text = std::fs::read_to_string(&out).unwrap();
        let got: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(got, want, "{name}");
    }
}
