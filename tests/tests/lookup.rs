//! Lookup tables end to end: a stream joined with a Redis table (written by
//! the redis sink, as in eKuiper's dynamic-alert tutorial) and with an
//! updatable memory table, the cache, and what is refused.

use oort_tests::{mqtt, unique, Server};
use serde_json::{json, Value as Json};

/// Waits until `rule`'s sink has written `n` records.
fn wait_written(s: &Server, rule: &str, sink: &str, n: u64) {
    s.wait_status(rule, "records written", |st| {
        st[format!("sink_{sink}_0_0_records_out_total")]
            .as_u64()
            .unwrap_or(0)
            >= n
    });
}

fn wait_connected(s: &Server, rule: &str, stream: &str) {
    s.wait_status(rule, "source connected", |st| {
        st[format!("source_{stream}_0_connection_status")] == 1
    });
}

/// Rule `keep` writes `{t}/cmd` commands to Redis under their `id`
/// (`action: delete` deletes).
fn redis_writer(s: &Server, t: &str) {
    s.create_stream(&format!(
        "CREATE STREAM cmds () WITH (DATASOURCE=\"{t}/cmd\")"
    ));
    s.create_rule(&json!({
        "id": "keep",
        "sql": "SELECT * FROM cmds",
        "actions": [{"redis": {"addr": "127.0.0.1:6379", "field": "id", "rowkindField": "action", "sendSingle": true}}]
    }));
    wait_connected(s, "keep", "cmds");
}

fn cmd(t: &str, body: Json) {
    mqtt::publish(&format!("{t}/cmd"), &[body.to_string()]);
}

fn event(t: &str, body: Json) {
    mqtt::publish(&format!("{t}/in"), &[body.to_string()]);
}

#[test]
fn redis_lookup_table_alerts_on_the_stored_thresholds() {
    let s = Server::start();
    let t = unique("lk");
    redis_writer(&s, &t);
    let (k1, k2) = (format!("{t}-1"), format!("{t}-2"));
    cmd(&t, json!({"action": "upsert", "id": k1, "alarm": 50}));
    cmd(&t, json!({"action": "upsert", "id": k2, "alarm": 80}));
    wait_written(&s, "keep", "redis", 2);

    s.create_stream(&format!(
        "CREATE STREAM demo () WITH (DATASOURCE=\"{t}/in\")"
    ));
    s.expect(
        "POST",
        "/tables",
        Some(&json!({"sql": "CREATE TABLE alerts () WITH (DATASOURCE=\"0\", TYPE=\"redis\", KIND=\"lookup\")"}).to_string()),
        201,
    );
    s.create_rule(&json!({
        "id": "alert",
        "sql": "SELECT demo.device, demo.value, alerts.alarm FROM demo INNER JOIN alerts ON demo.kind = alerts.id WHERE demo.value > alerts.alarm",
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": format!("{t}/out"), "sendSingle": true}}]
    }));
    let sub = mqtt::subscribe(&format!("{t}/out"));
    wait_connected(&s, "alert", "demo");
    event(&t, json!({"device": "a", "kind": k1, "value": 54}));
    event(&t, json!({"device": "b", "kind": k2, "value": 54}));
    event(
        &t,
        json!({"device": "c", "kind": format!("{t}-none"), "value": 99}),
    );
    event(&t, json!({"device": "d", "kind": k2, "value": 81}));
    let got = sub.take_json(2, 10);
    assert_eq!(
        got,
        [
            json!({"device": "a", "value": 54, "alarm": 50}),
            json!({"device": "d", "value": 81, "alarm": 80}),
        ]
    );
    // The table follows Redis: without a cache a deleted key joins nothing.
    cmd(&t, json!({"action": "delete", "id": k1}));
    wait_written(&s, "keep", "redis", 3);
    event(&t, json!({"device": "e", "kind": k1, "value": 99}));
    event(&t, json!({"device": "f", "kind": k2, "value": 99}));
    assert_eq!(
        sub.take_json(1, 10),
        [json!({"device": "f", "value": 99, "alarm": 80})]
    );
    let st = s.status("alert");
    assert_eq!(st["lookup_alerts_0_lookups_total"], 6, "{st}");
    assert_eq!(st["lookup_alerts_0_cache_hits_total"], 0);
    assert_eq!(st["lookup_alerts_0_dropped_total"], 0);
    assert_eq!(st["op_2_lookup_0_exceptions_total"], 0);
}

#[test]
fn cached_lookups_do_not_see_changes_until_the_ttl() {
    let s = Server::start();
    let t = unique("lkc");
    redis_writer(&s, &t);
    let k = format!("{t}-1");
    cmd(&t, json!({"action": "upsert", "id": k, "alarm": 50}));
    wait_written(&s, "keep", "redis", 1);
    s.expect(
        "PUT",
        "/metadata/sources/redis/confKeys/cached",
        Some(r#"{"addr":"127.0.0.1:6379","lookup":{"cache":true,"cacheTtl":"1h","cacheMissingKey":true}}"#),
        200,
    );
    s.create_stream(&format!(
        "CREATE STREAM demo () WITH (DATASOURCE=\"{t}/in\")"
    ));
    s.expect(
        "POST",
        "/tables",
        Some(&json!({"sql": "CREATE TABLE th () WITH (DATASOURCE=\"0\", TYPE=\"redis\", KIND=\"lookup\", CONF_KEY=\"cached\")"}).to_string()),
        201,
    );
    s.create_rule(&json!({
        "id": "enrich",
        "sql": "SELECT demo.n, th.alarm FROM demo LEFT JOIN th ON demo.kind = th.id",
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": format!("{t}/out"), "sendSingle": true}}]
    }));
    let sub = mqtt::subscribe(&format!("{t}/out"));
    wait_connected(&s, "enrich", "demo");
    event(&t, json!({"n": 1, "kind": k}));
    event(&t, json!({"n": 2, "kind": format!("{t}-2")}));
    assert_eq!(
        sub.take_json(2, 10),
        [json!({"n": 1, "alarm": 50}), json!({"n": 2})]
    );
    // Redis changes; the cached answers (a hit and a cached miss) stay.
    cmd(&t, json!({"action": "upsert", "id": k, "alarm": 70}));
    cmd(
        &t,
        json!({"action": "upsert", "id": format!("{t}-2"), "alarm": 20}),
    );
    wait_written(&s, "keep", "redis", 3);
    event(&t, json!({"n": 3, "kind": k}));
    event(&t, json!({"n": 4, "kind": format!("{t}-2")}));
    assert_eq!(
        sub.take_json(2, 10),
        [json!({"n": 3, "alarm": 50}), json!({"n": 4})]
    );
    let st = s.status("enrich");
    assert_eq!(st["lookup_th_0_lookups_total"], 2, "{st}");
    assert_eq!(st["lookup_th_0_cache_hits_total"], 2);
    // A restart empties the cache.
    s.expect("POST", "/rules/enrich/restart", None, 200);
    wait_connected(&s, "enrich", "demo");
    event(&t, json!({"n": 5, "kind": k}));
    assert_eq!(sub.take_json(1, 10), [json!({"n": 5, "alarm": 70})]);
}

#[test]
fn updatable_memory_sink_keeps_a_memory_lookup_table() {
    let s = Server::start();
    let t = unique("lkm");
    s.create_stream(&format!(
        "CREATE STREAM cmds () WITH (DATASOURCE=\"{t}/cmd\")"
    ));
    s.create_stream(&format!(
        "CREATE STREAM demo () WITH (DATASOURCE=\"{t}/in\")"
    ));
    s.expect(
        "POST",
        "/tables",
        Some(&json!({"sql": format!("CREATE TABLE devs () WITH (DATASOURCE=\"{t}/devs\", TYPE=\"memory\", KIND=\"lookup\", KEY=\"id\")")}).to_string()),
        201,
    );
    // The joining rule starts first: the table fills from then on.
    s.create_rule(&json!({
        "id": "enrich",
        "sql": "SELECT demo.v, devs.name FROM demo LEFT JOIN devs ON demo.dev = devs.id",
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": format!("{t}/out"), "sendSingle": true}}]
    }));
    s.create_rule(&json!({
        "id": "keep",
        "sql": "SELECT * FROM cmds",
        "actions": [{"memory": {"topic": format!("{t}/devs"), "rowkindField": "action", "keyField": "id", "sendSingle": true}}]
    }));
    let sub = mqtt::subscribe(&format!("{t}/out"));
    wait_connected(&s, "enrich", "demo");
    wait_connected(&s, "keep", "cmds");
    cmd(&t, json!({"action": "insert", "id": 1, "name": "pump"}));
    cmd(&t, json!({"action": "insert", "id": 2, "name": "fan"}));
    cmd(&t, json!({"action": "delete", "id": 1}));
    cmd(&t, json!({"action": "explode", "id": 3, "name": "x"}));
    cmd(&t, json!({"name": "big fan", "id": 2}));
    // The bad rowkind is the sink's exception, named.
    s.wait_status("keep", "bad rowkind counted", |st| {
        st["sink_memory_0_0_last_exception"]
            .as_str()
            .is_some_and(|e| e.contains("explode"))
    });
    // The table applies the sink's rows in order, shortly after: probe
    // until the last change (an upsert: no rowkind) shows.
    let mut seen = Vec::new();
    for _ in 0..50 {
        event(&t, json!({"v": 0, "dev": 2}));
        let got = sub.take_json(1, 10).remove(0);
        seen.push(got.clone());
        if got["name"] == "big fan" {
            break;
        }
    }
    assert_eq!(
        seen.last(),
        Some(&json!({"v": 0, "name": "big fan"})),
        "{seen:?}"
    );
    event(&t, json!({"v": 10, "dev": 1}));
    event(&t, json!({"v": 20, "dev": 2}));
    event(&t, json!({"v": 30, "dev": 3}));
    assert_eq!(
        sub.take_json(3, 10),
        [
            json!({"v": 10}),
            json!({"v": 20, "name": "big fan"}),
            json!({"v": 30}),
        ]
    );
}

#[test]
fn what_a_lookup_table_cannot_do_is_refused_and_nothing_is_stored() {
    let s = Server::start();
    s.create_stream("CREATE STREAM demo () WITH (DATASOURCE=\"x\")");
    let table = |sql: &str| json!({ "sql": sql }).to_string();
    // Not a lookup type; memory without KEY; a bad cache setting.
    let r = s.expect(
        "POST",
        "/tables",
        Some(&table(
            "CREATE TABLE t1 () WITH (DATASOURCE=\"x\", TYPE=\"mqtt\", KIND=\"lookup\")",
        )),
        400,
    );
    assert!(
        r.body.contains("lookup source type mqtt not found"),
        "{}",
        r.body
    );
    assert!(r.body.contains("redis"), "{}", r.body);
    s.expect(
        "POST",
        "/tables",
        Some(&table(
            "CREATE TABLE t2 () WITH (DATASOURCE=\"x\", TYPE=\"memory\", KIND=\"lookup\")",
        )),
        400,
    );
    let r = s.expect(
        "PUT",
        "/metadata/sources/redis/confKeys/bad",
        Some(r#"{"lookup":{"cacheTtl":"soon"}}"#),
        400,
    );
    assert!(r.body.contains("cacheTtl"), "{}", r.body);
    let r = s.expect(
        "POST",
        "/tables",
        Some(&table(
            "CREATE TABLE t3 () WITH (DATASOURCE=\"0\", TYPE=\"redis\", KIND=\"lookup\", EXTRA=\"{\\\"dataType\\\":\\\"hash\\\"}\")",
        )),
        400,
    );
    assert!(r.body.contains("dataType"), "{}", r.body);
    assert_eq!(s.get("/tables").json(), json!([]));
    s.expect(
        "POST",
        "/tables",
        Some(&table(
            "CREATE TABLE lk () WITH (DATASOURCE=\"0\", TYPE=\"redis\", KIND=\"lookup\")",
        )),
        201,
    );
    assert_eq!(s.get("/tables?kind=lookup").json(), json!(["lk"]));
    for (sql, says) in [
        ("SELECT * FROM lk", "can only be joined"),
        (
            "SELECT * FROM demo RIGHT JOIN lk ON demo.a = lk.id",
            "INNER or LEFT",
        ),
        (
            "SELECT * FROM demo INNER JOIN lk ON demo.a > lk.id",
            "equi-join",
        ),
    ] {
        let r = s.expect(
            "POST",
            "/rules",
            Some(&json!({"id": "r", "sql": sql, "actions": [{"log": {}}]}).to_string()),
            400,
        );
        assert!(r.body.contains(says), "{sql}: {}", r.body);
    }
    assert_eq!(s.get("/rules").json(), json!([]));
    // The types a lookup table can have, and redis's form metadata.
    let kinds: Vec<Json> = s
        .get("/metadata/sources?kind=lookup")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].clone())
        .collect();
    assert_eq!(
        kinds,
        [
            json!("httppull"),
            json!("memory"),
            json!("redis"),
            json!("simulator"),
            json!("sql")
        ]
    );
    let meta = s.get("/metadata/sources/redis").json();
    assert!(meta.to_string().contains("dataType"), "{meta}");
}
