//! EdgeX envelopes field by field (EdgeX's documented v3 event format), and
//! the sink and source through the local Mosquitto.

use base64::Engine;
use oort_core::codec::json::decode_value;
use oort_core::{
    ConnectorEnv, Props, SinkContext, SinkFactory, SinkItem, SourceContext, SourceFactory,
    SourceMsg, Value,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::envelope::{self, go_float_e, MessageType, Names};
use super::{EdgexSinkFactory, EdgexSourceFactory};

fn props(v: serde_json::Value) -> Props {
    v.as_object().cloned().unwrap()
}

/// An event as EdgeX's core-data documentation shows it.
fn edgex_event() -> serde_json::Value {
    json!({
        "apiVersion": "v3",
        "id": "6be0ad8c-2fb4-4fa8-9f89-d4ac4b1d4bfb",
        "deviceName": "Random-Integer-Device",
        "profileName": "Random-Integer-Device",
        "sourceName": "Int16",
        "origin": 1_650_000_000_000_000_000i64,
        "tags": {"site": "A"},
        "readings": [
            {"id": "r1", "origin": 1_650_000_000_000_000_000i64, "deviceName": "Random-Integer-Device",
             "resourceName": "Int16", "profileName": "Random-Integer-Device", "valueType": "Int16", "value": "-8146"},
            {"id": "r2", "origin": 1, "deviceName": "d", "resourceName": "f", "profileName": "p",
             "valueType": "Float64", "value": "2.5e+01"},
            {"id": "r3", "origin": 1, "deviceName": "d", "resourceName": "on", "profileName": "p",
             "valueType": "Bool", "value": "true"},
            {"id": "r4", "origin": 1, "deviceName": "d", "resourceName": "arr", "profileName": "p",
             "valueType": "Float32Array", "value": "[1.5, 2]"},
            {"id": "r5", "origin": 1, "deviceName": "d", "resourceName": "bin", "profileName": "p",
             "valueType": "Binary", "binaryValue": "AQI=", "mediaType": "application/octet-stream"},
            {"id": "r6", "origin": 1, "deviceName": "d", "resourceName": "obj", "profileName": "p",
             "valueType": "Object", "objectValue": {"a": 1}},
            {"id": "r7", "origin": 1, "deviceName": "d", "resourceName": "bad", "profileName": "p",
             "valueType": "Int8", "value": "x"}
        ]
    })
}

#[test]
fn envelopes_are_read_field_by_field() {
    let ev = edgex_event();
    let b64 = base64::engine::general_purpose::STANDARD.encode(ev.to_string());
    // EdgeX 3.0's envelope (payload in base64), 3.1's (a JSON object), a bare event.
    for bytes in [
        json!({"apiVersion": "v3", "correlationID": "c-1", "payload": b64, "contentType": "application/json"}).to_string(),
        json!({"apiVersion": "v3", "correlationID": "c-1", "payload": ev, "contentType": "application/json"}).to_string(),
    ] {
        let r = envelope::read(bytes.as_bytes(), MessageType::Event).unwrap();
        assert_eq!(r.row.get("Int16"), Some(&Value::Int(-8146)));
        assert_eq!(r.row.get("f"), Some(&Value::Float(25.0)));
        assert_eq!(r.row.get("on"), Some(&Value::Bool(true)));
        assert_eq!(r.row.get("arr").map(Value::to_json), Some(json!([1.5, 2])));
        assert_eq!(r.row.get("bin"), Some(&Value::Bytes(vec![1u8, 2].into())));
        assert_eq!(r.row.get("obj").map(Value::to_json), Some(json!({"a": 1})));
        assert!(r.row.get("bad").is_none());
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert_eq!(r.meta.get("deviceName"), Some(&Value::str("Random-Integer-Device")));
        assert_eq!(r.meta.get("sourceName"), Some(&Value::str("Int16")));
        assert_eq!(r.meta.get("correlationid"), Some(&Value::str("c-1")));
        assert_eq!(r.meta.get("tags").map(Value::to_json), Some(json!({"site": "A"})));
        let Some(Value::Object(m)) = r.meta.get("Int16") else {
            panic!("reading meta")
        };
        assert_eq!(m.get("valueType"), Some(&Value::str("Int16")));
    }
    let r = envelope::read(ev.to_string().as_bytes(), MessageType::Event).unwrap();
    assert_eq!(r.row.get("Int16"), Some(&Value::Int(-8146)));
    // An add-event request carries the event in `event`.
    let req = json!({"apiVersion": "v3", "requestId": "q", "event": edgex_event()});
    let r = envelope::read(req.to_string().as_bytes(), MessageType::Request).unwrap();
    assert_eq!(r.row.get("on"), Some(&Value::Bool(true)));
    let e = envelope::read(req.to_string().as_bytes(), MessageType::Event).unwrap_err();
    assert!(e.contains("messageType"), "{e}");
    assert!(envelope::read(b"nope", MessageType::Event).is_err());
}

#[test]
fn events_are_written_as_edgex_writes_them() {
    assert_eq!(go_float_e(25.0), "2.5e+01");
    assert_eq!(go_float_e(-0.00125), "-1.25e-03");
    assert_eq!(go_float_e(1e100), "1e+100");
    let Value::Object(row) =
        decode_value(br#"{"t":25.5,"n":3,"ok":false,"s":"x","a":[1,2],"m":{"k":1},"z":null}"#)
            .unwrap()
    else {
        panic!("row")
    };
    let names = Names {
        device: "dev".into(),
        profile: "prof".into(),
        source: "src".into(),
    };
    let ev = envelope::event(&row, None, &names, 42);
    assert_eq!(ev["apiVersion"], "v3");
    assert_eq!(ev["deviceName"], "dev");
    assert_eq!(ev["profileName"], "prof");
    assert_eq!(ev["sourceName"], "src");
    assert_eq!(ev["origin"], 42);
    assert!(uuid::Uuid::parse_str(ev["id"].as_str().unwrap()).is_ok());
    let readings = ev["readings"].as_array().unwrap();
    let by = |n: &str| {
        readings
            .iter()
            .find(|r| r["resourceName"] == n)
            .cloned()
            .unwrap()
    };
    assert_eq!(readings.len(), 6, "null fields are not readings");
    assert_eq!(
        (by("t")["valueType"].clone(), by("t")["value"].clone()),
        (json!("Float64"), json!("2.55e+01"))
    );
    assert_eq!(
        (by("n")["valueType"].clone(), by("n")["value"].clone()),
        (json!("Int64"), json!("3"))
    );
    assert_eq!(by("ok")["value"], "false");
    assert_eq!(by("s")["valueType"], "String");
    assert_eq!(
        (by("a")["valueType"].clone(), by("a")["value"].clone()),
        (json!("Int64Array"), json!("[1,2]"))
    );
    assert_eq!(by("m")["objectValue"], json!({"k": 1}));
    for r in readings {
        assert_eq!(r["deviceName"], "dev");
        assert_eq!(r["profileName"], "prof");
        assert_eq!(r["origin"], 42);
    }
    // The envelope: base64 payload, decodable by the reader above.
    let env = envelope::envelope(ev.clone(), MessageType::Request);
    let v: serde_json::Value = serde_json::from_slice(&env).unwrap();
    assert_eq!(v["contentType"], "application/json");
    assert_eq!(v["apiVersion"], "v3");
    let r = envelope::read(&env, MessageType::Request).unwrap();
    assert_eq!(r.row.get("t"), Some(&Value::Float(25.5)));
    assert_eq!(r.row.get("a").map(Value::to_json), Some(json!([1, 2])));
}

#[test]
fn what_the_bus_cannot_do_is_refused() {
    let env = ConnectorEnv::default();
    for (p, says) in [
        (
            json!({"type": "nats-jetstream", "optional": {"QueueGroup": "g"}}),
            "QueueGroup",
        ),
        (
            json!({"type": "nats-jetstream", "optional": {"AutoProvision": true}}),
            "needs Subject",
        ),
        (
            json!({"type": "nats-jetstream", "optional": {"ExactlyOnce": "yes"}}),
            "ExactlyOnce",
        ),
        (
            json!({"type": "nats-jetstream", "optional": {"Deliver": "sometimes"}}),
            "Deliver",
        ),
        (json!({"type": "zero"}), "not supported"),
        (
            json!({"type": "kafka"}),
            "expected mqtt, redis, nats-core or nats-jetstream",
        ),
        (
            json!({"type": "redis", "optional": {"ClientId": "x"}}),
            "ClientId",
        ),
        (json!({"type": "redis", "protocol": "tls"}), "protocol"),
        (
            json!({"type": "nats-core", "optional": {"Durable": "x"}}),
            "Durable",
        ),
        (
            json!({"type": "nats-core", "optional": {"Format": "cbor"}}),
            "Format",
        ),
        (
            json!({"type": "nats-core", "optional": {"Password": "p"}}),
            "Username",
        ),
        (json!({"messageType": "notice"}), "messageType"),
        (json!({"optional": {"KeepAlive": 50}}), "KeepAlive"),
        (json!({"topic": "a", "topicPrefix": "b"}), "not both"),
        (
            json!({"contentType": "application/cbor"}),
            "application/json",
        ),
    ] {
        let e = EdgexSinkFactory
            .validate(&env, &props(p.clone()))
            .err()
            .unwrap_or_else(|| panic!("{p} accepted"));
        assert!(e.to_string().contains(says), "{p}: {e}");
    }
    let e = EdgexSourceFactory
        .validate(&env, "t", &props(json!({"optional": {"Retained": true}})))
        .err()
        .unwrap();
    assert!(e.to_string().contains("Retained"), "{e}");
}

/// An `edgex` sink publishes a row under `topicPrefix`; an `edgex` source
/// on `prefix/#` of the same bus reads it back field by field.
async fn round_trip(bus: serde_json::Value, prefix: &str) {
    let env = ConnectorEnv::default();
    let cancel = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let mut src = EdgexSourceFactory
        .create(&env, &format!("{prefix}/#"), &props(bus.clone()))
        .unwrap();
    let sctx = SourceContext::new("s", cancel.clone(), tx);
    let conn = sctx.conn.clone();
    let task = tokio::spawn(async move { src.run(sctx).await });
    while conn.snapshot().status != oort_core::ConnStatus::Connected {
        tokio::task::yield_now().await;
    }
    let mut sp = bus.as_object().cloned().unwrap();
    sp.insert("topicPrefix".into(), json!(prefix));
    sp.insert("metadata".into(), json!("m"));
    sp.insert("profileName".into(), json!("p1"));
    let mut sink = EdgexSinkFactory.create(&env, &sp).unwrap();
    let ctx = SinkContext::new("rule1", cancel.clone());
    sink.connect(&ctx).await.unwrap();
    // The metadata field names the device; the rule id is the source name.
    let item = SinkItem {
        data: decode_value(br#"{"t":21.5,"m":{"deviceName":"pump-7"}}"#).unwrap(),
        payload: bytes::Bytes::new(),
    };
    // A Redis subscription may still be on its way to the server: publish
    // until the source has the event.
    let got = loop {
        sink.collect(&ctx, std::slice::from_ref(&item))
            .await
            .unwrap();
        if let Ok(m) = tokio::time::timeout(std::time::Duration::from_millis(300), rx.recv()).await
        {
            break m.unwrap();
        }
    };
    match got {
        SourceMsg::Rows { rows, meta } => {
            assert_eq!(rows[0].get("t"), Some(&Value::Float(21.5)));
            assert!(
                rows[0].get("m").is_none(),
                "the metadata field is not a reading"
            );
            let meta = meta.unwrap();
            assert_eq!(meta.get("deviceName"), Some(&Value::str("pump-7")));
            assert_eq!(meta.get("profileName"), Some(&Value::str("p1")));
            assert_eq!(meta.get("sourceName"), Some(&Value::str("rule1")));
            assert!(meta.get("correlationid").is_some(), "{meta:?}");
        }
        other => panic!("rows expected, got {other:?}"),
    }
    sink.close(&ctx).await.unwrap();
    cancel.cancel();
    let _ = task.await.unwrap();
}

#[tokio::test]
async fn sink_to_source_through_the_mqtt_bus() {
    let prefix = format!("oort-edgex-{}", uuid::Uuid::new_v4().simple());
    round_trip(
        json!({"server": "127.0.0.1", "port": 1883, "messageType": "request", "optional": {"Qos": 1}}),
        &prefix,
    )
    .await;
}

#[tokio::test]
async fn sink_to_source_through_the_redis_bus() {
    let prefix = format!("oort-edgex-{}", uuid::Uuid::new_v4().simple());
    let bus = json!({"type": "redis", "server": "127.0.0.1", "port": 6379});
    // What EdgeX's own Redis client would see: the channel in its dotted
    // scheme, the JSON envelope as the message.
    let client = redis::Client::open("redis://127.0.0.1:6379/").unwrap();
    let mut ps = client.get_async_pubsub().await.unwrap();
    ps.psubscribe(format!("{prefix}.*")).await.unwrap();
    round_trip(bus, &prefix).await;
    let mut msgs = ps.on_message();
    let m = futures::StreamExt::next(&mut msgs).await.unwrap();
    assert_eq!(m.get_channel_name(), format!("{prefix}.p1.pump-7.rule1"));
    let env: serde_json::Value = serde_json::from_slice(m.get_payload_bytes()).unwrap();
    assert_eq!(env["contentType"], "application/json");
    let r = envelope::read(m.get_payload_bytes(), MessageType::Event).unwrap();
    assert_eq!(r.row.get("t"), Some(&Value::Float(21.5)));
}

#[tokio::test]
async fn sink_to_source_through_the_nats_bus() {
    for format in ["nats", "json"] {
        let prefix = format!("oort-edgex-{}", uuid::Uuid::new_v4().simple());
        let bus = json!({"type": "nats-core", "server": "127.0.0.1", "port": 4222,
            "optional": {"Format": format, "ClientId": "oort-test"}});
        // What EdgeX's own NATS client would see: the dotted subject; the
        // event as the payload and the envelope in headers (format nats),
        // or the JSON envelope (format json).
        let raw = async_nats::connect("127.0.0.1:4222").await.unwrap();
        let mut sub = raw.subscribe(format!("{prefix}.>")).await.unwrap();
        raw.flush().await.unwrap();
        round_trip(bus, &prefix).await;
        let m = futures::StreamExt::next(&mut sub).await.unwrap();
        assert_eq!(m.subject.as_str(), format!("{prefix}.p1.pump-7.rule1"));
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        if format == "nats" {
            let h = m.headers.unwrap();
            assert_eq!(h.get("Content-Type").unwrap().as_str(), "application/json");
            assert!(!h.get("X-Correlation-ID").unwrap().as_str().is_empty());
            assert_eq!(v["deviceName"], "pump-7", "the event itself: {v}");
        } else {
            assert!(v["payload"].is_string(), "an envelope: {v}");
        }
    }
}

/// Messages the NATS client drops because the subscription is full (a rule
/// not keeping up) are exceptions of the source, not lost silently.
#[tokio::test]
async fn nats_subscription_drops_are_reported() {
    use super::nats::{NatsConf, NatsFormat};
    let subject = format!("oort.edgex.drops.{}", uuid::Uuid::new_v4().simple());
    let conf = NatsConf {
        url: "nats://127.0.0.1:4222".into(),
        name: None,
        user: None,
        password: None,
        format: NatsFormat::Nats,
        connect_timeout: std::time::Duration::from_secs(5),
        queue_group: None,
        jetstream: None,
    };
    let cancel = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let ctx = SourceContext::new("drops", cancel.clone(), tx);
    let conn = ctx.conn.clone();
    let subj = subject.clone();
    let task = tokio::spawn(async move { conf.run_source(&subj, &ctx).await });
    while conn.snapshot().status != oort_core::ConnStatus::Connected {
        tokio::task::yield_now().await;
    }
    // Nothing reads `rx` while 20,000 messages arrive: the subscription
    // (8,192 held) overflows.
    let raw = async_nats::connect("127.0.0.1:4222").await.unwrap();
    // The source's subscription is registered once a probe comes back.
    let mut probe = raw.subscribe(subject.clone()).await.unwrap();
    raw.flush().await.unwrap();
    for i in 0..20_000u32 {
        raw.publish(subject.clone(), i.to_string().into())
            .await
            .unwrap();
    }
    raw.flush().await.unwrap();
    let _ = futures::StreamExt::next(&mut probe).await;
    let mut reported = None;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while reported.is_none() && std::time::Instant::now() < deadline {
        match tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await {
            Ok(Some(SourceMsg::Error(e))) if e.contains("dropped") => reported = Some(e),
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    let e = reported.expect("the drops are reported as a source exception");
    assert!(e.contains("subscription was full"), "{e}");
    cancel.cancel();
    let _ = task.await.unwrap();
}

/// A private `nats-server -js` on a free port, killed on drop.
struct PrivateNats {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PrivateNats {
    fn start() -> PrivateNats {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = std::process::Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server (Debian package nats-server)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        PrivateNats {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `n` messages from a source run on `bus` (Deliver/Durable as set),
/// then stops it.
async fn read_jetstream(bus: &serde_json::Value, topic: &str, n: usize) -> Vec<f64> {
    let cancel = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let mut src = EdgexSourceFactory
        .create(&ConnectorEnv::default(), topic, &props(bus.clone()))
        .unwrap();
    let ctx = SourceContext::new("js", cancel.clone(), tx);
    let task = tokio::spawn(async move { src.run(ctx).await });
    let mut got = Vec::new();
    while got.len() < n {
        // Up to JetStream's ack wait (30 s) and more: a message the server
        // handed to the previous reader's pull request just as that reader
        // left is delivered again only once the wait expires (seen once
        // under load: late, not lost).
        match tokio::time::timeout(std::time::Duration::from_secs(45), rx.recv()).await {
            Ok(Some(SourceMsg::Rows { rows, .. })) => got.extend(
                rows.iter()
                    .filter_map(|r| r.get("t").and_then(Value::as_f64)),
            ),
            Ok(Some(other)) => panic!("unexpected {other:?}"),
            _ => break,
        }
    }
    // Nothing more is waiting.
    let extra = tokio::time::timeout(std::time::Duration::from_millis(500), rx.recv()).await;
    assert!(
        !matches!(extra, Ok(Some(SourceMsg::Rows { .. }))),
        "more than {n}: {extra:?}"
    );
    cancel.cancel();
    let _ = task.await.unwrap();
    got
}

/// EdgeX's JetStream bus: the sink provisions the stream and counts a batch
/// written once JetStream stored it; a durable consumer gets what was
/// published while it was away, once (acknowledged messages do not come
/// back); ExactlyOnce drops a duplicate publish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_bus_keeps_messages_for_a_durable_consumer() {
    let nats = PrivateNats::start();
    let bus = json!({"type": "nats-jetstream", "server": "127.0.0.1", "port": nats.port,
        "optional": {"ClientId": "oort-test", "AutoProvision": true, "Subject": "edgex/events/#",
            "Durable": "oort", "Deliver": "all", "ExactlyOnce": true}});
    let env = ConnectorEnv::default();
    let cancel = CancellationToken::new();
    let mut sp = bus.as_object().cloned().unwrap();
    sp.insert("topicPrefix".into(), json!("edgex/events"));
    let mut sink = EdgexSinkFactory.create(&env, &sp).unwrap();
    let ctx = SinkContext::new("rule1", cancel.clone());
    sink.connect(&ctx).await.unwrap();
    let item = |t: f64| SinkItem {
        data: decode_value(format!(r#"{{"t":{t}}}"#).as_bytes()).unwrap(),
        payload: bytes::Bytes::new(),
    };
    // Published before any consumer exists: JetStream keeps them.
    sink.collect(&ctx, &[item(1.0), item(2.0)]).await.unwrap();
    let got = read_jetstream(&bus, "edgex/events/#", 2).await;
    assert_eq!(got, vec![1.0, 2.0]);
    // Away again: the durable consumer resumes after what it acknowledged.
    sink.collect(&ctx, &[item(3.0)]).await.unwrap();
    let got = read_jetstream(&bus, "edgex/events/#", 1).await;
    assert_eq!(got, vec![3.0]);
    sink.close(&ctx).await.unwrap();

    // Stored, as EdgeX's client would find it: stream "oort" on edgex.events.>.
    let raw = async_nats::connect(format!("127.0.0.1:{}", nats.port))
        .await
        .unwrap();
    let js = async_nats::jetstream::new(raw);
    let mut st = js.get_stream("oort").await.unwrap();
    let info = st.info().await.unwrap();
    assert_eq!(info.config.subjects, vec!["edgex.events.>".to_string()]);
    assert_eq!(info.state.messages, 3);

    // Without a stream for the subject, the source says so.
    let bad = json!({"type": "nats-jetstream", "server": "127.0.0.1", "port": nats.port});
    let (tx, _rx) = tokio::sync::mpsc::channel(4);
    let mut src = EdgexSourceFactory
        .create(&env, "nowhere/#", &props(bad))
        .unwrap();
    let e = src
        .run(SourceContext::new("x", cancel.clone(), tx))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no stream captures nowhere.>"), "{e}");
}
