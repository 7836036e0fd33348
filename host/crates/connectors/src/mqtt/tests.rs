//! MQTT tests against the real local Mosquitto (127.0.0.1:1883), each on its
//! own uuid topic prefix so they can run in parallel.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use oort_core::codec::json::decode_value;
use oort_core::{
    ConnState, ConnStatus, ConnectorEnv, ConnectorError, HandedReporter, Props, SinkContext,
    SinkFactory, SinkItem, SourceContext, SourceFactory, SourceMsg, Value,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{MqttSinkFactory, MqttSourceFactory};

/// One connector context for every test here, as one server has one (the
/// shared-connection tests need their sources and sinks in the same pool).
fn env() -> ConnectorEnv {
    static ENV: std::sync::LazyLock<ConnectorEnv> = std::sync::LazyLock::new(ConnectorEnv::default);
    ENV.clone()
}

const BROKER: &str = "tcp://127.0.0.1:1883";

pub(super) fn prefix() -> String {
    format!("oorttest/{}", uuid::Uuid::new_v4().simple())
}

pub(super) fn props(v: serde_json::Value) -> Props {
    v.as_object().cloned().unwrap()
}

async fn wait_status(conn: &ConnState, want: ConnStatus) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while conn.snapshot().status != want {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("status never became {want:?}: {:?}", conn.snapshot()));
}

pub(super) struct Running {
    rx: mpsc::Receiver<SourceMsg>,
    room: oort_core::BatchRoom,
    /// Messages of a batch not returned yet by [`next_msg`].
    batched: std::collections::VecDeque<(Bytes, Option<Arc<oort_core::Meta>>)>,
    pub(super) cancel: CancellationToken,
    conn: ConnState,
    task: JoinHandle<Result<(), ConnectorError>>,
    /// Plays the runtime: reports messages as handed on to the rules.
    pub(super) handed: HandedReporter,
}

pub(super) async fn start_source(ds: &str, p: Props) -> Running {
    let mut src = MqttSourceFactory.create(&env(), ds, &p).unwrap();
    let (tx, rx) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    // As in the runtime: the source hands over what one read brought as one
    // batch ([`next_msg`] gives the room back).
    let room = oort_core::BatchRoom::new(1024);
    let ctx = SourceContext::new("test-src", cancel.clone(), tx).with_batch_room(room.clone());
    let conn = ctx.conn.clone();
    let handed = ctx.handed_reporter();
    let task = tokio::spawn(async move { src.run(ctx).await });
    wait_status(&conn, ConnStatus::Connected).await;
    // Let the SUBSCRIBE reach the broker.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Running {
        rx,
        room,
        batched: Default::default(),
        cancel,
        conn,
        task,
        handed,
    }
}

/// The next message the source emitted, alone or in a batch.
pub(super) async fn next_msg(r: &mut Running) -> (Bytes, Arc<oort_core::Meta>) {
    if let Some((payload, meta)) = r.batched.pop_front() {
        return (payload, meta.unwrap());
    }
    let m = tokio::time::timeout(Duration::from_secs(10), r.rx.recv())
        .await
        .expect("a message within 10s")
        .expect("source still running");
    match m {
        SourceMsg::Bytes { payload, meta } => (payload, meta.unwrap()),
        SourceMsg::BytesBatch(b) => {
            r.room.give_back(b.len());
            r.batched.extend(b);
            let (payload, meta) = r.batched.pop_front().expect("a batch is never empty");
            (payload, meta.unwrap())
        }
        SourceMsg::Error(e) => panic!("source error: {e}"),
        other => panic!("unexpected {other:?}"),
    }
}

pub(super) fn item(json: &str) -> SinkItem {
    SinkItem {
        data: decode_value(json.as_bytes()).unwrap(),
        payload: Bytes::from(json.to_string()),
    }
}

pub(super) async fn sink(p: serde_json::Value) -> (Box<dyn oort_core::Sink>, SinkContext) {
    let mut s = MqttSinkFactory.create(&env(), &props(p)).unwrap();
    let ctx = SinkContext::new("test-sink", CancellationToken::new());
    s.connect(&ctx).await.unwrap();
    (s, ctx)
}

#[tokio::test]
async fn source_gets_messages_with_meta_from_wildcards_and_several_topics() {
    let t = prefix();
    let mut r = start_source(
        &format!("{t}/in/+, {t}/other/#"),
        props(serde_json::json!({"server": BROKER, "qos": 1})),
    )
    .await;
    let (mut s, sctx) =
        sink(serde_json::json!({"server": BROKER, "topic": format!("{t}/in/a"), "qos": 1})).await;
    s.collect(&sctx, &[item(r#"{"id":1}"#)]).await.unwrap();
    let (payload, meta) = next_msg(&mut r).await;
    assert_eq!(&payload[..], br#"{"id":1}"#);
    assert_eq!(meta.get("topic"), Some(&Value::str(&format!("{t}/in/a"))));
    assert_eq!(meta.get("qos"), Some(&Value::Int(1)));
    assert!(matches!(meta.get("messageId"), Some(Value::Int(id)) if *id > 0));

    let (mut s2, sctx2) =
        sink(serde_json::json!({"server": BROKER, "topic": format!("{t}/other/x/y")})).await;
    s2.collect(&sctx2, &[item(r#"{"id":2}"#)]).await.unwrap();
    let (payload, meta) = next_msg(&mut r).await;
    assert_eq!(&payload[..], br#"{"id":2}"#);
    assert_eq!(meta.get("qos"), Some(&Value::Int(0)));
    s.close(&sctx).await.unwrap();
    s2.close(&sctx2).await.unwrap();

    // Cancellation ends run promptly once the runtime says nothing more
    // will be finished (until then a QoS 1 source waits to acknowledge what
    // the rules deliver).
    r.handed.finish();
    r.cancel.cancel();
    tokio::time::timeout(Duration::from_secs(2), r.task)
        .await
        .expect("run ends within 2s")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn sink_renders_topic_templates_and_v5_works() {
    let t = prefix();
    let mut r = start_source(
        &format!("{t}/dev/+"),
        props(serde_json::json!({"server": BROKER, "protocolVersion": "5", "qos": 0})),
    )
    .await;
    let (mut s, sctx) = sink(serde_json::json!({"server": BROKER,
        "topic": format!("{t}/dev/{{{{.id}}}}"), "protocolVersion": 5, "sendSingle": true}))
    .await;
    s.collect(
        &sctx,
        &[item(r#"{"id":"d7","v":1}"#), item(r#"{"id":"d8","v":2}"#)],
    )
    .await
    .unwrap();
    let (_, m1) = next_msg(&mut r).await;
    let (p2, m2) = next_msg(&mut r).await;
    assert_eq!(m1.get("topic"), Some(&Value::str(&format!("{t}/dev/d7"))));
    assert_eq!(m2.get("topic"), Some(&Value::str(&format!("{t}/dev/d8"))));
    assert_eq!(&p2[..], br#"{"id":"d8","v":2}"#);
    let e = s
        .collect(&sctx, &[item(r#"{"id":"+"}"#)])
        .await
        .unwrap_err();
    assert!(matches!(e, ConnectorError::InvalidData(_)), "{e:?}");
    s.close(&sctx).await.unwrap();
    r.handed.finish();
    r.cancel.cancel();
    r.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn shared_subscription_receives() {
    let t = prefix();
    let mut r = start_source(
        &format!("$share/g1/{t}/s"),
        props(serde_json::json!({"server": BROKER})),
    )
    .await;
    let (mut s, sctx) =
        sink(serde_json::json!({"server": BROKER, "topic": format!("{t}/s"), "retained": false}))
            .await;
    s.collect(&sctx, &[item(r#"{"x":1}"#)]).await.unwrap();
    let (p, _) = next_msg(&mut r).await;
    assert_eq!(&p[..], br#"{"x":1}"#);
    s.close(&sctx).await.unwrap();
    r.handed.finish();
    r.cancel.cancel();
    r.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn sink_connect_fails_fast_when_the_broker_is_down() {
    let mut s = MqttSinkFactory
        .create(
            &env(),
            &props(serde_json::json!({"server": "tcp://127.0.0.1:1", "topic": "x"})),
        )
        .unwrap();
    let ctx = SinkContext::new("down", CancellationToken::new());
    let started = std::time::Instant::now();
    let e = s.connect(&ctx).await.unwrap_err();
    assert!(matches!(e, ConnectorError::Unavailable(_)), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(6));
    assert_eq!(ctx.conn.snapshot().status, ConnStatus::Disconnected);
    let e = s.collect(&ctx, &[item("{}")]).await.unwrap_err();
    assert!(matches!(e, ConnectorError::Unavailable(_)));
}

#[tokio::test]
async fn source_reports_down_broker_and_stops_on_cancel() {
    let p = props(serde_json::json!({"server": "tcp://127.0.0.1:1"}));
    let mut src = MqttSourceFactory.create(&env(), "a/b", &p).unwrap();
    let (tx, _rx) = mpsc::channel(4);
    let cancel = CancellationToken::new();
    let ctx = SourceContext::new("down", cancel.clone(), tx);
    let conn = ctx.conn.clone();
    let task = tokio::spawn(async move { src.run(ctx).await });
    wait_status(&conn, ConnStatus::Disconnected).await;
    assert!(!conn.snapshot().last_disconnected_message.is_empty());
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("run ends within 2s")
        .unwrap()
        .unwrap();
}

#[test]
fn factories_validate_props() {
    let bad_sources = [
        ("", serde_json::json!({})),
        ("a/#/b", serde_json::json!({})),
        ("a", serde_json::json!({"qos": 3})),
        ("a", serde_json::json!({"qos": "x"})),
        ("a", serde_json::json!({"server": "ws://h:1"})),
        ("a", serde_json::json!({"protocolVersion": "2"})),
        (
            "a",
            serde_json::json!({"enableClientSession": true, "connectionSelector": "m.c"}),
        ),
        ("a", serde_json::json!({"enableClientSession": "yes"})),
        (
            "a",
            serde_json::json!({"qos": 2, "enableClientSession": true}),
        ),
        (
            "a",
            serde_json::json!({"sessionExpiryIntervalSeconds": "soon"}),
        ),
        (
            "a",
            serde_json::json!({"sessionExpiryIntervalSeconds": 5_000_000_000u64}),
        ),
    ];
    for (ds, p) in bad_sources {
        let e = MqttSourceFactory
            .create(&env(), ds, &props(p.clone()))
            .err();
        assert!(matches!(e, Some(ConnectorError::Config(_))), "{ds} {p}");
    }
    let e = MqttSourceFactory
        .create(&env(), "a", &props(serde_json::json!({"qos": "x"})))
        .err()
        .unwrap();
    assert!(e.to_string().contains("qos"), "{e}");
    let bad_sinks = [
        serde_json::json!({"topic": "a"}),
        serde_json::json!({"server": BROKER}),
        serde_json::json!({"server": BROKER, "topic": "a/+"}),
        serde_json::json!({"server": BROKER, "topic": "a/{{.x"}),
        serde_json::json!({"server": BROKER, "topic": "a", "retained": "maybe"}),
    ];
    for p in bad_sinks {
        let e = MqttSinkFactory.create(&env(), &props(p.clone())).err();
        assert!(matches!(e, Some(ConnectorError::Config(_))), "{p}");
    }
    // Common sink keys are tolerated.
    assert!(MqttSinkFactory
        .create(
            &env(),
            &props(serde_json::json!({"server": BROKER, "topic": "a",
            "sendSingle": true, "format": "json", "bufferLength": 1024, "clientId": "c1"}))
        )
        .is_ok());
}

/// Receives `n` messages and returns their payloads.
async fn payloads(r: &mut Running, n: usize) -> Vec<String> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(String::from_utf8_lossy(&next_msg(r).await.0).into_owned());
    }
    v
}

#[tokio::test]
async fn source_acks_only_what_the_runtime_has_handed_on() {
    let t = prefix();
    let ds = format!("{t}/acks");
    let id = format!("oort-acktest-{}", uuid::Uuid::new_v4().simple());
    let p = props(serde_json::json!({"server": BROKER, "qos": 1, "clientid": id}));
    let (mut s, sctx) = sink(serde_json::json!({"server": BROKER, "topic": ds, "qos": 1})).await;
    let mut r = start_source(&ds, p.clone()).await;
    s.collect(&sctx, &[item(r#"{"n":1}"#), item(r#"{"n":2}"#)])
        .await
        .unwrap();
    assert_eq!(payloads(&mut r, 2).await, [r#"{"n":1}"#, r#"{"n":2}"#]);
    // Nothing was handed on: the broker must send both again to the same
    // session, and what was published while the source was away too.
    r.handed.finish();
    r.cancel.cancel();
    r.task.await.unwrap().unwrap();
    s.collect(&sctx, &[item(r#"{"n":3}"#)]).await.unwrap();
    let mut r = start_source(&ds, p.clone()).await;
    assert_eq!(
        payloads(&mut r, 3).await,
        [r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":3}"#]
    );
    r.handed.add(3);
    r.handed.finish();
    r.cancel.cancel();
    r.task.await.unwrap().unwrap();
    s.close(&sctx).await.unwrap();
    // A clean session with the same id removes the session from the broker.
    let mut clean = p.clone();
    clean.insert("enableClientSession".into(), false.into());
    let r = start_source(&ds, clean).await;
    r.handed.finish();
    r.cancel.cancel();
    r.task.await.unwrap().unwrap();
}

/// A TCP proxy to the broker whose connections can be cut.
struct Proxy {
    port: u16,
    cut: Arc<parking_lot::Mutex<Vec<CancellationToken>>>,
    /// TCP connections accepted so far (what the broker would count as clients).
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl Proxy {
    async fn start() -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let cut: Arc<parking_lot::Mutex<Vec<CancellationToken>>> = Arc::default();
        let c2 = cut.clone();
        let accepted: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let a2 = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = l.accept().await {
                a2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let token = CancellationToken::new();
                c2.lock().push(token.clone());
                tokio::spawn(async move {
                    let Ok(mut out) = TcpStream::connect("127.0.0.1:1883").await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut out) => {}
                        _ = token.cancelled() => {}
                    }
                });
            }
        });
        Proxy {
            port,
            cut,
            accepted,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn cut_all(&self) {
        for t in self.cut.lock().drain(..) {
            t.cancel();
        }
    }
}

#[tokio::test]
async fn source_reconnects_and_resubscribes() {
    let t = prefix();
    let proxy = Proxy::start().await;
    let server = format!("tcp://127.0.0.1:{}", proxy.port);
    let mut r = start_source(
        &format!("{t}/r"),
        props(serde_json::json!({"server": server})),
    )
    .await;
    let (mut s, sctx) =
        sink(serde_json::json!({"server": BROKER, "topic": format!("{t}/r")})).await;
    s.collect(&sctx, &[item(r#"{"n":1}"#)]).await.unwrap();
    assert_eq!(&next_msg(&mut r).await.0[..], br#"{"n":1}"#);
    r.handed.add(1);

    proxy.cut_all();
    wait_status(&r.conn, ConnStatus::Disconnected).await;
    wait_status(&r.conn, ConnStatus::Connected).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.collect(&sctx, &[item(r#"{"n":2}"#)]).await.unwrap();
    // The session is persistent (QoS 1): n:1 comes again if its PUBACK had
    // not reached the broker before the cut (at least once).
    let mut got = next_msg(&mut r).await.0;
    if &got[..] == br#"{"n":1}"# {
        got = next_msg(&mut r).await.0;
    }
    assert_eq!(&got[..], br#"{"n":2}"#);
    s.close(&sctx).await.unwrap();
    r.handed.finish();
    r.cancel.cancel();
    r.task.await.unwrap().unwrap();
}

/// A source started with `connectionSelector` (waits until connected).
async fn start_shared_source(ds: &str, p: Props) -> Running {
    start_source(ds, p).await
}

#[tokio::test]
async fn selector_shares_one_client_between_sources_and_sink() {
    let t = prefix();
    let sel = format!("mqtt.{}", uuid::Uuid::new_v4().simple());
    let proxy = Proxy::start().await;
    let server = format!("tcp://127.0.0.1:{}", proxy.port);
    let shared = |extra: serde_json::Value| {
        let mut p = props(serde_json::json!({"server": server, "connectionSelector": sel}));
        p.extend(props(extra));
        p
    };
    let mut a = start_shared_source(&format!("{t}/a"), shared(serde_json::json!({"qos": 1}))).await;
    let mut b =
        start_shared_source(&format!("{t}/b/+"), shared(serde_json::json!({"qos": 0}))).await;
    // A second subscriber to the same filter gets its own copy.
    let mut a2 = start_shared_source(&format!("{t}/a"), shared(serde_json::json!({}))).await;
    let mut out = MqttSinkFactory
        .create(
            &env(),
            &shared(serde_json::json!({"topic": format!("{t}/out")})),
        )
        .unwrap();
    let octx = SinkContext::new("shared-sink", CancellationToken::new());
    out.connect(&octx).await.unwrap();
    assert_eq!(octx.conn.snapshot().status, ConnStatus::Connected);
    assert_eq!(super::shared::users_of(&env(), &sel), 4);
    let st = env().links().status(&sel).unwrap();
    assert_eq!(
        (st.users, st.links, st.status),
        (4, 1, ConnStatus::Connected)
    );

    // An outside reader of the sink's topic, on its own connection.
    let mut reader = start_source(
        &format!("{t}/out"),
        props(serde_json::json!({"server": BROKER})),
    )
    .await;
    let (mut pubs, pctx) =
        sink(serde_json::json!({"server": BROKER, "topic": format!("{t}/a")})).await;
    pubs.collect(&pctx, &[item(r#"{"to":"a"}"#)]).await.unwrap();
    let (mut pubb, bctx) =
        sink(serde_json::json!({"server": BROKER, "topic": format!("{t}/b/x")})).await;
    pubb.collect(&bctx, &[item(r#"{"to":"b"}"#)]).await.unwrap();
    let (p, meta) = next_msg(&mut a).await;
    assert_eq!(&p[..], br#"{"to":"a"}"#);
    assert_eq!(meta.get("topic"), Some(&Value::str(&format!("{t}/a"))));
    assert_eq!(&next_msg(&mut a2).await.0[..], br#"{"to":"a"}"#);
    let (p, meta) = next_msg(&mut b).await;
    assert_eq!(&p[..], br#"{"to":"b"}"#);
    assert_eq!(meta.get("topic"), Some(&Value::str(&format!("{t}/b/x"))));
    out.collect(&octx, &[item(r#"{"from":"sink"}"#)])
        .await
        .unwrap();
    assert_eq!(&next_msg(&mut reader).await.0[..], br#"{"from":"sink"}"#);
    // Nothing crossed over between filters.
    assert!(a.rx.try_recv().is_err() && b.rx.try_recv().is_err());
    assert_eq!(
        proxy.accepted(),
        1,
        "one TCP connection for three sources and a sink"
    );

    // Different credentials under the same selector: a connection of its own.
    let mut c = start_shared_source(
        &format!("{t}/a"),
        shared(serde_json::json!({"username": "other"})),
    )
    .await;
    assert_eq!(proxy.accepted(), 2);
    let st = env().links().status(&sel).unwrap();
    assert_eq!((st.users, st.links), (5, 2));
    pubs.collect(&pctx, &[item(r#"{"n":2}"#)]).await.unwrap();
    assert_eq!(&next_msg(&mut c).await.0[..], br#"{"n":2}"#);
    assert_eq!(&next_msg(&mut a).await.0[..], br#"{"n":2}"#);

    // Users leave; the last one closes the connection.
    for r in [a, a2, b, c, reader] {
        r.handed.finish();
        r.cancel.cancel();
        r.task.await.unwrap().unwrap();
    }
    assert_eq!(super::shared::users_of(&env(), &sel), 1);
    out.close(&octx).await.unwrap();
    pubs.close(&pctx).await.unwrap();
    pubb.close(&bctx).await.unwrap();
    assert_eq!(super::shared::users_of(&env(), &sel), 0);
    assert!(env().links().status(&sel).is_none());
}

#[tokio::test]
async fn shared_connection_resubscribes_every_user_after_a_reconnect() {
    let t = prefix();
    let sel = format!("mqtt.{}", uuid::Uuid::new_v4().simple());
    let proxy = Proxy::start().await;
    let p = props(serde_json::json!({
        "server": format!("tcp://127.0.0.1:{}", proxy.port), "connectionSelector": sel}));
    let mut a = start_shared_source(&format!("{t}/a"), p.clone()).await;
    let mut b = start_shared_source(&format!("{t}/b"), p.clone()).await;
    let (mut pa, actx) =
        sink(serde_json::json!({"server": BROKER, "topic": format!("{t}/a")})).await;
    let (mut pb, bctx) =
        sink(serde_json::json!({"server": BROKER, "topic": format!("{t}/b")})).await;

    proxy.cut_all();
    wait_status(&a.conn, ConnStatus::Disconnected).await;
    wait_status(&b.conn, ConnStatus::Disconnected).await;
    wait_status(&a.conn, ConnStatus::Connected).await;
    wait_status(&b.conn, ConnStatus::Connected).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    pa.collect(&actx, &[item(r#"{"n":1}"#)]).await.unwrap();
    pb.collect(&bctx, &[item(r#"{"n":2}"#)]).await.unwrap();
    assert_eq!(&next_msg(&mut a).await.0[..], br#"{"n":1}"#);
    assert_eq!(&next_msg(&mut b).await.0[..], br#"{"n":2}"#);
    assert_eq!(proxy.accepted(), 2, "one connection, reconnected once");

    // One user leaving keeps the other subscribed.
    a.handed.finish();
    a.cancel.cancel();
    a.task.await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    pb.collect(&bctx, &[item(r#"{"n":3}"#)]).await.unwrap();
    assert_eq!(&next_msg(&mut b).await.0[..], br#"{"n":3}"#);
    b.cancel.cancel();
    b.task.await.unwrap().unwrap();
    pa.close(&actx).await.unwrap();
    pb.close(&bctx).await.unwrap();
}

#[tokio::test]
async fn a_batch_larger_than_the_connection_queue_is_published_whole_and_in_order() {
    // 2,500 publishes through a queue of 1,024 requests: the hand-off waits
    // for room once the queue is full (the test runtime has one thread, so
    // the connection drains only while the sink waits).
    let t = prefix();
    let mut r = start_source(
        &format!("{t}/many"),
        props(serde_json::json!({"server": BROKER, "qos": 0})),
    )
    .await;
    let (mut s, sctx) =
        sink(serde_json::json!({"server": BROKER, "topic": format!("{t}/many"), "qos": 1})).await;
    let items: Vec<SinkItem> = (0..2500)
        .map(|i| item(&format!(r#"{{"i":{i}}}"#)))
        .collect();
    s.collect(&sctx, &items).await.unwrap();
    let got = payloads(&mut r, 2500).await;
    let want: Vec<String> = (0..2500).map(|i| format!(r#"{{"i":{i}}}"#)).collect();
    assert_eq!(got, want);
    s.close(&sctx).await.unwrap();
    r.handed.finish();
    r.cancel.cancel();
    r.task.await.unwrap().unwrap();
}
