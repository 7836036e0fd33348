//! The `sql` connectors end to end against this machine's PostgreSQL: a
//! rule keeps a table up to date through the sink (upserts and deletes from
//! MQTT commands), a `sql` stream reads new rows of another table, and a rule
//! joins them with the first table as a lookup table.

use oort_tests::{mqtt, unique, Server};
use serde_json::json;

const PG: &str = "postgres://postgres@127.0.0.1:5432/test";

fn pg(stmts: &[String]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(PG, tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432");
        tokio::spawn(conn);
        for s in stmts {
            client.batch_execute(s).await.unwrap();
        }
    });
}

#[test]
fn postgres_sink_source_and_lookup_table_in_rules() {
    let s = Server::start();
    let t = unique("sql");
    let id = uuid_suffix(&t);
    let (devices, readings) = (format!("oort_dev_{id}"), format!("oort_rd_{id}"));
    pg(&[
        format!("CREATE TABLE {devices} (id INTEGER PRIMARY KEY, name TEXT)"),
        format!("CREATE TABLE {readings} (id SERIAL PRIMARY KEY, dev INTEGER, v DOUBLE PRECISION)"),
    ]);
    s.expect(
        "PUT",
        "/metadata/sources/sql/confKeys/readings",
        Some(&json!({"url": PG, "interval": "50ms", "internalSqlQueryCfg": {"table": readings, "indexField": "id", "indexValue": 0}}).to_string()),
        200,
    );
    s.expect(
        "PUT",
        "/metadata/sources/sql/confKeys/devices",
        Some(&json!({"url": PG, "lookup": {"cache": true, "cacheTtl": 50}}).to_string()),
        200,
    );
    s.create_stream(&format!(
        "CREATE STREAM cmds () WITH (DATASOURCE=\"{t}/cmd\")"
    ));
    s.create_stream("CREATE STREAM readings () WITH (TYPE=\"sql\", CONF_KEY=\"readings\")");
    s.expect(
        "POST",
        "/tables",
        Some(&json!({"sql": format!("CREATE TABLE devices () WITH (DATASOURCE=\"{devices}\", TYPE=\"sql\", CONF_KEY=\"devices\", KIND=\"lookup\")")}).to_string()),
        201,
    );
    s.create_rule(&json!({
        "id": "keep",
        "sql": "SELECT * FROM cmds",
        "actions": [{"sql": {"url": PG, "table": devices, "rowkindField": "action", "keyField": "id", "sendSingle": true}}]
    }));
    s.wait_status("keep", "connected", |st| {
        st["source_cmds_0_connection_status"] == 1
    });
    for c in [
        json!({"action": "upsert", "id": 1, "name": "pump"}),
        json!({"action": "upsert", "id": 2, "name": "fan"}),
        json!({"action": "upsert", "id": 1, "name": "big pump"}),
        json!({"action": "insert", "id": 3, "name": "valve"}),
        json!({"action": "delete", "id": 3}),
    ] {
        mqtt::publish(&format!("{t}/cmd"), &[c.to_string()]);
    }
    s.wait_status("keep", "written", |st| {
        st["sink_sql_0_0_records_out_total"].as_u64().unwrap_or(0) >= 5
    });
    s.create_rule(&json!({
        "id": "enrich",
        "sql": "SELECT readings.id, readings.v, devices.name FROM readings LEFT JOIN devices ON readings.dev = devices.id",
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": format!("{t}/out"), "sendSingle": true}}]
    }));
    let sub = mqtt::subscribe(&format!("{t}/out"));
    pg(&[format!(
        "INSERT INTO {readings} (dev, v) VALUES (1, 1.5), (2, 2.5), (3, 3.5)"
    )]);
    assert_eq!(
        sub.take_json(3, 20),
        [
            json!({"id": 1, "v": 1.5, "name": "big pump"}),
            json!({"id": 2, "v": 2.5, "name": "fan"}),
            json!({"id": 3, "v": 3.5}),
        ]
    );
    // Only newer rows are read: the next poll brings the fourth alone.
    pg(&[format!("INSERT INTO {readings} (dev, v) VALUES (2, 4.5)")]);
    assert_eq!(
        sub.take_json(1, 20),
        [json!({"id": 4, "v": 4.5, "name": "fan"})]
    );
    let st = s.status("enrich");
    assert_eq!(st["source_readings_0_records_in_total"], 4, "{st}");
    pg(&[
        format!("DROP TABLE {devices}"),
        format!("DROP TABLE {readings}"),
    ]);
}

fn uuid_suffix(t: &str) -> String {
    t.chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_lowercase()
}

#[test]
fn sql_properties_are_checked_when_created() {
    let s = Server::start();
    for (body, says) in [
        (
            json!({"sql": "CREATE STREAM a () WITH (TYPE=\"sql\")"}),
            "url",
        ),
        (
            json!({"sql": "CREATE STREAM a () WITH (TYPE=\"sql\", EXTRA=\"{\\\"url\\\":\\\"oracle://h/db\\\",\\\"internalSqlQueryCfg\\\":{\\\"table\\\":\\\"t\\\"}}\")"}),
            "not supported",
        ),
    ] {
        let r = s.expect("POST", "/streams", Some(&body.to_string()), 400);
        assert!(r.body.contains(says), "{body}: {}", r.body);
    }
    s.create_stream("CREATE STREAM demo () WITH (DATASOURCE=\"x\")");
    // A SQLite file outside the data dir and file.allowed_dirs.
    let r = s.expect(
        "POST",
        "/rules",
        Some(&json!({"id": "w", "sql": "SELECT 1 AS a FROM demo", "actions": [{"sql": {"url": "sqlite:/etc/x.db", "table": "t"}}]}).to_string()),
        400,
    );
    assert!(
        r.body.contains("outside the allowed directories"),
        "{}",
        r.body
    );
    assert_eq!(s.get("/rules").json(), json!([]));
    // A connectivity check that cannot connect says why.
    let r = s.expect(
        "POST",
        "/metadata/sinks/connection/sql",
        Some(r#"{"url":"postgres://postgres@127.0.0.1:1/test"}"#),
        400,
    );
    assert!(
        r.body.contains("127.0.0.1:1") || r.body.contains("refused"),
        "{}",
        r.body
    );
    s.expect(
        "POST",
        "/metadata/sinks/connection/sql",
        Some(&json!({"url": PG}).to_string()),
        200,
    );
}
