//! Functions that reach outside the row, end to end: `props()` (the
//! server's `KUIPER_PROPS_*` environment), `get_keyed_state()` (the
//! `keyed_state` table of `<data-dir>/extState.db`, filled by the user),
//! `rule_start()`, `delay()`, and the `sendMetaToSink` rule option.

use oort_tests::{mqtt, unique, Opts, Server};
use serde_json::json;

#[test]
fn props_keyed_state_rule_start_delay_and_meta_reach_the_sink() {
    let dir = tempfile::tempdir().unwrap();
    // The user's external state, as eKuiper's docs have it.
    let db = rusqlite::Connection::open(dir.path().join("extState.db")).unwrap();
    db.execute_batch(
        "CREATE TABLE keyed_state (key VARCHAR(255) PRIMARY KEY, val BLOB);
         INSERT INTO keyed_state VALUES ('threshold', '21.5');",
    )
    .unwrap();
    drop(db);
    let s = Server::start_in_with(
        dir.path(),
        Opts {
            env: vec![("KUIPER_PROPS_SITE".into(), "plant-7".into())],
            ..Opts::default()
        },
    );
    let t = unique("fnx");
    s.create_stream(&format!("CREATE STREAM fx () WITH (DATASOURCE=\"{t}/in\")"));
    s.create_rule(&json!({
        "id": "fx",
        "sql": "SELECT v, props(\"site\") AS site, \
                v > get_keyed_state(\"threshold\", \"float\", 100) AS hot, \
                get_keyed_state(\"nope\", \"bigint\", -1) AS missing, \
                rule_start() AS started, delay(50, v) AS later FROM fx",
        "options": {"sendMetaToSink": true},
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": format!("{t}/out"), "sendSingle": true}}]
    }));
    let sub = mqtt::subscribe(&format!("{t}/out"));
    s.wait_status("fx", "source connected", |st| {
        st["source_fx_0_connection_status"] == 1
    });
    mqtt::publish(&format!("{t}/in"), &[r#"{"v":30}"#.into()]);
    let got = sub.take_json(1, 10).remove(0);
    assert_eq!(got["v"].as_f64(), Some(30.0));
    assert_eq!(got["site"], json!("plant-7"));
    assert_eq!(got["hot"], json!(true));
    assert_eq!(got["missing"], json!(-1));
    assert_eq!(got["later"].as_f64(), Some(30.0));
    assert!(
        got["started"].as_i64().unwrap() > 1_700_000_000_000,
        "{got}"
    );
    // The event's MQTT metadata under __meta.
    assert_eq!(got["__meta"]["topic"], json!(format!("{t}/in")), "{got}");

    // sendMetaToSink with a window is refused, naming the option.
    let r = s.post(
        "/rules",
        &json!({
            "id": "fx_win",
            "sql": "SELECT count(*) FROM fx GROUP BY TUMBLINGWINDOW(ss, 1)",
            "options": {"sendMetaToSink": true},
            "actions": [{"log": {}}]
        })
        .to_string(),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("sendMetaToSink"), "{}", r.body);
}

/// A rule held by `delay()` still answers its status (from the counters
/// last read) instead of making the request wait for the delay.
#[test]
fn status_answers_while_a_rule_is_in_a_delay() {
    let s = Server::start();
    let t = unique("fnslow");
    s.create_stream(&format!(
        "CREATE STREAM slow () WITH (DATASOURCE=\"{t}/in\")"
    ));
    s.create_rule(&json!({
        "id": "slow",
        "sql": "SELECT delay(20000, v) AS v FROM slow",
        "actions": [{"log": {}}]
    }));
    s.wait_status("slow", "source connected", |st| {
        st["source_slow_0_connection_status"] == 1
    });
    mqtt::publish(&format!("{t}/in"), &[r#"{"v":1}"#.into()]);
    s.wait_status("slow", "the event reached the rule", |st| {
        st["source_slow_0_records_in_total"] == 1
    });
    // The query sleeps 20 s from about now: each of these reads falls in it.
    for _ in 0..3 {
        let start = std::time::Instant::now();
        let st = s.status("slow");
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "status took {:?}",
            start.elapsed()
        );
        assert_eq!(st["status"], "running", "{st}");
    }
}

/// eKuiper's `basic.timezone` (`timezone` in Oort's config, here
/// `OORT__TIMEZONE`): time functions read and print in that zone, daylight
/// saving included; an unknown zone stops the start naming the key.
#[test]
fn the_configured_time_zone_drives_time_functions() {
    let s = Server::start_with(Opts {
        env: vec![("OORT__TIMEZONE".into(), "Europe/Berlin".into())],
        ..Opts::default()
    });
    let t = unique("tz");
    s.create_stream(&format!("CREATE STREAM tz () WITH (DATASOURCE=\"{t}/in\")"));
    s.create_rule(&json!({
        "id": "tz",
        "sql": "SELECT format_time(ts, 'yyyy-MM-dd HH:mm') AS local, hour(ts) AS h FROM tz",
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": format!("{t}/out"), "sendSingle": true}}]
    }));
    let sub = mqtt::subscribe(&format!("{t}/out"));
    s.wait_status("tz", "source connected", |st| {
        st["source_tz_0_connection_status"] == 1
    });
    // 2026-01-15T12:00Z is 13:00 in Berlin (winter), 2026-07-15T12:00Z 14:00 (summer).
    mqtt::publish(
        &format!("{t}/in"),
        &[
            json!({"ts": 1_768_478_400_000i64}).to_string(),
            json!({"ts": 1_784_116_800_000i64}).to_string(),
        ],
    );
    let got = sub.take_json(2, 20);
    assert_eq!(got[0]["local"], "2026-01-15 13:00", "{got:?}");
    assert_eq!(got[1]["local"], "2026-07-15 14:00", "{got:?}");
    assert_eq!(got[1]["h"], 14);

    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(oort_tests::oort_bin())
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--rest-addr", "127.0.0.1:0"])
        .env("OORT__TIMEZONE", "Mars/Olympus")
        .output()
        .expect("run oort");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Mars/Olympus") && err.contains("OORT__TIMEZONE"),
        "{err}"
    );
}
