//! HTTP connectors through the real binary: the `rest` sink (MQTT in, HTTP
//! out to a peer the test runs; templated URL and headers; a 60-row outage
//! (503) with the resend cache loses nothing) and the `httppush` source.

use std::collections::BTreeSet;

use oort_tests::http_peer::HttpPeer;
use oort_tests::{mqtt, unique, Server};
use serde_json::{json, Value as Json};

fn num(st: &Json, key: &str) -> i64 {
    st[key].as_i64().unwrap_or(-99)
}

fn start(s: &Server, id: &str, t: &str, action: Json) {
    s.create_stream(&format!(
        "CREATE STREAM {id} (n BIGINT, dev STRING) WITH (DATASOURCE=\"{t}/in\", TYPE=\"mqtt\")"
    ));
    s.create_rule(&json!({"id": id, "sql": format!("SELECT n, dev FROM {id}"), "actions": [{"rest": action}]}));
    s.wait_status(id, "source connected", |st| {
        num(st, &format!("source_{id}_0_connection_status")) == 1
    });
}

fn publish(t: &str, range: std::ops::Range<i64>) {
    let msgs: Vec<String> = range
        .map(|n| json!({"n": n, "dev": format!("d{}", n % 3)}).to_string())
        .collect();
    mqtt::publish(&format!("{t}/in"), &msgs);
}

#[test]
fn rows_go_to_templated_urls_with_templated_headers() {
    let s = Server::start();
    let peer = HttpPeer::start();
    let t = unique("rest");
    start(
        &s,
        "rest_tpl",
        &t,
        json!({"url": format!("{}/devices/{{{{.dev}}}}", peer.base), "method": "post",
               "headers": {"X-N": "{{.n}}"}, "sendSingle": true}),
    );
    publish(&t, 0..6);
    let got = peer.wait_accepted(6, 20);
    assert_eq!(got.len(), 6, "{}", s.log());
    for r in &got {
        let body: Json = serde_json::from_slice(&r.body).expect("json body");
        assert_eq!(r.method, "POST");
        assert_eq!(
            r.path,
            format!("/devices/{}", body["dev"].as_str().unwrap_or(""))
        );
        assert_eq!(r.header("x-n"), Some(body["n"].to_string().as_str()));
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    // The peer has the requests before the sink counts its writes as done: wait for the count.
    s.wait_status("rest_tpl", "6 records out", |st| {
        num(st, "sink_rest_0_0_records_out_total") == 6
    });
}

#[test]
fn an_outage_with_the_cache_loses_nothing() {
    const N: i64 = 60;
    let s = Server::start();
    let peer = HttpPeer::start();
    let t = unique("rest_down");
    start(
        &s,
        "rest_down",
        &t,
        json!({"url": format!("{}/in", peer.base), "method": "post", "sendSingle": true,
               "enableCache": true, "resendInterval": 10}),
    );
    publish(&t, 0..N / 2);
    peer.wait_accepted((N / 2) as usize, 20);
    peer.set_status(503);
    publish(&t, N / 2..N);
    // Wait until the outage is seen: failed writes counted as retries or cached.
    s.wait_status("rest_down", "the outage is seen", |st| {
        num(st, "sink_rest_0_0_connection_status") == -1
    });
    peer.set_status(200);
    let got = peer.wait_accepted(N as usize, 30);
    let ns: BTreeSet<i64> = got
        .iter()
        .filter_map(|r| serde_json::from_slice::<Json>(&r.body).ok())
        .filter_map(|v| v["n"].as_i64())
        .collect();
    assert_eq!(ns, (0..N).collect::<BTreeSet<_>>(), "{}", s.log());
    let st = s.status("rest_down");
    assert_eq!(
        num(&st, "sink_rest_0_0_records_dropped_total").max(0),
        0,
        "{st}"
    );
}

#[test]
fn httppush_into_a_rule_and_out_through_rest() {
    let port = oort_tests::free_port();
    let s = Server::start_with(oort_tests::Opts {
        env: vec![("OORT__SOURCE__HTTP_SERVER_PORT".into(), port.to_string())],
        ..Default::default()
    });
    let peer = HttpPeer::start();
    s.create_stream(
        "CREATE STREAM pushed (id BIGINT, t FLOAT) WITH (DATASOURCE=\"/devices\", TYPE=\"httppush\")",
    );
    s.create_rule(&json!({"id": "push_rest", "sql": "SELECT id, t * 2 AS t2 FROM pushed WHERE t > 30",
        "actions": [{"rest": {"url": format!("{}/out", peer.base), "method": "post", "sendSingle": true}}]}));
    s.wait_status("push_rest", "source connected", |st| {
        num(st, "source_pushed_0_connection_status") == 1
    });
    let http = reqwest::blocking::Client::new();
    for (id, t) in [(1, 35.0), (2, 10.0), (3, 31.5)] {
        let r = http
            .post(format!("http://127.0.0.1:{port}/devices"))
            .body(json!({"id": id, "t": t}).to_string())
            .send()
            .expect("push");
        assert_eq!(r.status().as_u16(), 200);
    }
    let r = http
        .post(format!("http://127.0.0.1:{port}/elsewhere"))
        .body("{}")
        .send()
        .expect("push");
    assert_eq!(r.status().as_u16(), 404);
    let got = peer.wait_accepted(2, 20);
    let bodies: Vec<Json> = got
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("json"))
        .collect();
    assert_eq!(
        bodies,
        [json!({"id": 1, "t2": 70}), json!({"id": 3, "t2": 63})]
    );
}
