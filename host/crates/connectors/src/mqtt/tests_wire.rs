//! The connection loop ([`super::wire`]) against private Mosquitto brokers
//! that each test starts on a free port: TLS with a client certificate, and
//! MQTT 5's receive maximum (publishes beyond it wait, none is refused).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oort_core::SinkFactory as _;

use super::tests::{item, next_msg, prefix, props, sink, start_source};

/// A private Mosquitto, killed on drop.
struct Mosquitto {
    port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts mosquitto with `listener <port> 127.0.0.1` and `extra` lines, in a
/// directory `prepare` may fill first (readable by the mosquitto user).
fn mosquitto(extra: &str, prepare: impl FnOnce(&Path)) -> Mosquitto {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    prepare(dir.path());
    let port = free_port();
    let conf = format!("listener {port} 127.0.0.1\nallow_anonymous true\n{extra}\n");
    let conf = conf.replace("$DIR", &dir.path().display().to_string());
    std::fs::write(dir.path().join("m.conf"), conf).unwrap();
    let log = std::fs::File::create(dir.path().join("m.log")).unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(dir.path().join("m.conf"))
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn mosquitto");
    let mut m = Mosquitto { port, child, dir };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        let log = std::fs::read_to_string(m.dir.path().join("m.log")).unwrap_or_default();
        assert!(
            matches!(m.child.try_wait(), Ok(None)),
            "mosquitto exited: {log}"
        );
        assert!(Instant::now() < deadline, "mosquitto not up: {log}");
        std::thread::sleep(Duration::from_millis(20));
    }
    m
}

/// A CA, a server certificate for `localhost` and a client certificate,
/// all signed by the CA (the end-to-end tests' helper: one copy).
pub(crate) fn certificates(dir: &Path) {
    oort_tests::certs::make(dir);
}

#[tokio::test]
async fn tls_with_a_client_certificate_both_ways() {
    let b = mosquitto(
        "cafile $DIR/ca.pem\ncertfile $DIR/server.pem\nkeyfile $DIR/server.key\nrequire_certificate true",
        certificates,
    );
    let d = b.dir.path().display().to_string();
    let server = format!("ssl://localhost:{}", b.port);
    let tls = serde_json::json!({
        "server": server,
        "rootCaPath": format!("{d}/ca.pem"),
        "certificationPath": format!("{d}/client.pem"),
        "privateKeyPath": format!("{d}/client.key"),
        "qos": 1,
    });
    let t = prefix();
    let mut src = start_source(&t, props(tls.clone())).await;
    let mut sp = tls.clone();
    sp["topic"] = serde_json::json!(t);
    let (mut s, ctx) = sink(sp).await;
    s.collect(&ctx, &[item(r#"{"tls":1}"#), item(r#"{"tls":2}"#)])
        .await
        .unwrap();
    assert_eq!(&next_msg(&mut src).await.0[..], br#"{"tls":1}"#);
    assert_eq!(&next_msg(&mut src).await.0[..], br#"{"tls":2}"#);
    s.close(&ctx).await.unwrap();
    src.cancel.cancel();

    // Without the client certificate the broker refuses the handshake.
    let mut no_cert = tls.clone();
    no_cert["topic"] = serde_json::json!(t);
    let o = no_cert.as_object_mut().unwrap();
    o.remove("certificationPath");
    o.remove("privateKeyPath");
    let mut s = super::MqttSinkFactory
        .create(&oort_core::ConnectorEnv::default(), &props(no_cert))
        .expect("valid props");
    let ctx = oort_core::SinkContext::new("no-cert", tokio_util::sync::CancellationToken::new());
    let e = s
        .connect(&ctx)
        .await
        .expect_err("connected without a certificate");
    assert!(
        matches!(e, oort_core::ConnectorError::Unavailable(_)),
        "{e}"
    );

    // A CA that did not sign the broker's certificate: refused too.
    let mut wrong_ca = tls.clone();
    wrong_ca["topic"] = serde_json::json!(t);
    wrong_ca["rootCaPath"] = serde_json::json!(format!("{d}/client.pem"));
    let mut s = super::MqttSinkFactory
        .create(&oort_core::ConnectorEnv::default(), &props(wrong_ca))
        .unwrap();
    let e = s.connect(&ctx).await.expect_err("trusted an unknown CA");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");

    // insecureSkipVerify: the same wrong CA, accepted.
    let mut insecure = tls.clone();
    insecure["topic"] = serde_json::json!(t);
    insecure["rootCaPath"] = serde_json::json!(format!("{d}/client.pem"));
    insecure["insecureSkipVerify"] = serde_json::json!(true);
    let mut s = super::MqttSinkFactory
        .create(&oort_core::ConnectorEnv::default(), &props(insecure))
        .unwrap();
    s.connect(&ctx).await.expect("insecureSkipVerify connects");
    s.close(&ctx).await.unwrap();
}

/// A v5 peer that announces a receive maximum of 3 and acknowledges what
/// is in flight only when nothing more arrives for 20 ms; returns the most
/// publishes it ever saw in flight and how many it acknowledged.
async fn strict_peer(l: tokio::net::TcpListener, want: usize, refuse: bool) -> (usize, usize) {
    use bytes::BytesMut;
    use rumqttc::v5::mqttbytes::v5::{
        ConnAck, ConnAckProperties, ConnectReturnCode, Packet, PubAck, PubAckReason,
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut io, _) = l.accept().await.unwrap();
    let mut buf = BytesMut::new();
    let mut out = BytesMut::new();
    let (mut inflight, mut most, mut acked) = (Vec::new(), 0, 0);
    loop {
        while let Ok(p) = Packet::read(&mut buf, None) {
            match p {
                Packet::Connect(..) => {
                    let props = ConnAckProperties {
                        session_expiry_interval: None,
                        receive_max: Some(3),
                        max_qos: None,
                        retain_available: None,
                        max_packet_size: None,
                        assigned_client_identifier: None,
                        topic_alias_max: None,
                        reason_string: None,
                        user_properties: Vec::new(),
                        wildcard_subscription_available: None,
                        subscription_identifiers_available: None,
                        shared_subscription_available: None,
                        server_keep_alive: None,
                        response_information: None,
                        server_reference: None,
                        authentication_method: None,
                        authentication_data: None,
                    };
                    Packet::ConnAck(ConnAck {
                        session_present: false,
                        code: ConnectReturnCode::Success,
                        properties: Some(props),
                    })
                    .write(&mut out, None)
                    .unwrap();
                }
                Packet::Publish(p) => {
                    inflight.push(p.pkid);
                    most = most.max(inflight.len());
                }
                _ => {}
            }
        }
        if !out.is_empty() {
            io.write_all(&out).await.unwrap();
            out.clear();
        }
        buf.reserve(4096);
        match tokio::time::timeout(Duration::from_millis(20), io.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (most, acked),
            Ok(Ok(_)) => {}
            Err(_) => {
                for id in inflight.drain(..) {
                    let mut ack = PubAck::new(id, None);
                    if refuse {
                        ack.reason = PubAckReason::NotAuthorized;
                    }
                    Packet::PubAck(ack).write(&mut out, None).unwrap();
                    acked += 1;
                }
                if acked >= want {
                    // Stay connected until the client leaves: its batch
                    // ends on these acknowledgements, not on a closed socket.
                    io.write_all(&out).await.unwrap();
                    out.clear();
                    let mut rest = [0u8; 4096];
                    while matches!(io.read(&mut rest).await, Ok(n) if n > 0) {}
                    return (most, acked);
                }
            }
        }
    }
}

#[tokio::test]
async fn v5_receive_maximum_is_honoured() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let peer = tokio::spawn(strict_peer(l, 30, false));
    let (mut s, ctx) = sink(serde_json::json!({
        "server": format!("tcp://127.0.0.1:{port}"), "topic": "t", "qos": 1, "protocolVersion": "5"
    }))
    .await;
    let items: Vec<_> = (0..30).map(|i| item(&format!("{{\"i\":{i}}}"))).collect();
    s.collect(&ctx, &items).await.expect("all acknowledged");
    s.close(&ctx).await.unwrap();
    let (most, acked) = peer.await.unwrap();
    assert_eq!(acked, 30);
    assert!(
        most <= 3,
        "{most} publishes in flight, the receive maximum is 3"
    );
}

#[tokio::test]
async fn a_peer_announcing_a_huge_connack_is_refused_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut io, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = io.read(&mut buf).await;
        // CONNACK with a remaining length of ~200 MB, then nothing.
        let _ = io.write_all(&[0x20, 0xff, 0xff, 0xff, 0x5f]).await;
        let _ = io.read(&mut buf).await;
    });
    let mut s = super::MqttSinkFactory
        .create(
            &oort_core::ConnectorEnv::default(),
            &props(serde_json::json!({
                "server": format!("tcp://127.0.0.1:{port}"), "topic": "t"
            })),
        )
        .unwrap();
    let ctx = oort_core::SinkContext::new("huge", tokio_util::sync::CancellationToken::new());
    // Refused for its size, not after waiting for 200 MB that never come.
    let e = s
        .connect(&ctx)
        .await
        .expect_err("connected to a bogus peer");
    assert!(e.to_string().contains("over the limit"), "{e}");
}

#[tokio::test]
async fn a_publish_refused_by_a_v5_broker_fails_its_batch() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let _peer = tokio::spawn(strict_peer(l, 3, true));
    let (mut s, ctx) = sink(serde_json::json!({
        "server": format!("tcp://127.0.0.1:{port}"), "topic": "t", "qos": 1, "protocolVersion": "5"
    }))
    .await;
    let items: Vec<_> = (0..3).map(|i| item(&format!("{{\"i\":{i}}}"))).collect();
    let e = s
        .collect(&ctx, &items)
        .await
        .expect_err("a refused publish counted as written");
    assert!(e.to_string().contains("NotAuthorized"), "{e}");
}

#[tokio::test]
async fn a_publish_too_large_for_mqtt_fails_by_name_and_the_rest_goes_out() {
    use super::codec::publish_too_large;
    assert!(publish_too_large(&"t".repeat(70_000), 10, 1 << 20).is_some());
    assert!(publish_too_large("t", 2_000_000, 1 << 20).is_some());
    assert!(publish_too_large("t", 1000, 1 << 20).is_none());
    // Through the sink: the long topic is refused by name, the next item is
    // published (a topic length over 65,535 used to be truncated into the
    // packet and break the connection).
    let t = prefix();
    let mut src = start_source(
        &format!("{t}/+"),
        props(serde_json::json!({"server": "tcp://127.0.0.1:1883", "qos": 0})),
    )
    .await;
    let (mut long, ctx) = sink(serde_json::json!({
        "server": "tcp://127.0.0.1:1883", "topic": format!("{t}/{}", "x".repeat(70_000)), "qos": 1
    }))
    .await;
    let e = long
        .collect(&ctx, &[item(r#"{"big":1}"#)])
        .await
        .expect_err("a 70 KB topic was accepted");
    assert!(e.to_string().contains("65,535"), "{e}");
    let (mut ok, ctx2) = sink(serde_json::json!({
        "server": "tcp://127.0.0.1:1883", "topic": format!("{t}/ok"), "qos": 1
    }))
    .await;
    ok.collect(&ctx2, &[item(r#"{"ok":1}"#)]).await.unwrap();
    assert_eq!(&next_msg(&mut src).await.0[..], br#"{"ok":1}"#);
    long.close(&ctx).await.unwrap();
    ok.close(&ctx2).await.unwrap();
    src.cancel.cancel();
}

/// A QoS 0 PUBLISH of `payload` on topic `t` (MQTT 3.1.1).
fn publish_frame(payload: &str) -> Vec<u8> {
    let mut f = vec![0x30, (3 + payload.len()) as u8, 0x00, 0x01, b't'];
    f.extend_from_slice(payload.as_bytes());
    f
}

/// The payload of a polled PUBLISH, as text.
fn payload(ev: Result<super::wire::Ev, String>) -> String {
    match ev {
        Ok(super::wire::Ev::Publish { payload, .. }) => {
            String::from_utf8_lossy(&payload).to_string()
        }
        other => panic!("expected a publish, got {other:?}"),
    }
}

/// A connected event loop reading with `linger` from a peer that acks the
/// CONNECT and then writes each frame sent on the channel.
async fn lingering_loop(
    linger: Duration,
) -> (
    tokio::sync::mpsc::Sender<Vec<u8>>,
    super::wire::Client,
    super::wire::EventLoop,
) {
    use super::client::{ConnConf, SessionOpts, Settings};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, mut frames) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    tokio::spawn(async move {
        let (mut io, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = io.read(&mut buf).await; // CONNECT
        io.write_all(&[0x20, 0x02, 0x00, 0x00]).await.unwrap();
        while let Some(f) = frames.recv().await {
            io.write_all(&f).await.unwrap();
        }
        while matches!(io.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    let conf: ConnConf = crate::util::parse_config(
        "mqtt",
        &props(serde_json::json!({"server": format!("tcp://127.0.0.1:{port}")})),
    )
    .unwrap();
    let settings = Settings::from_conf(&conf).unwrap();
    let (client, mut el) = settings.build_session(16, SessionOpts::default()).unwrap();
    el.set_read_linger(linger);
    assert!(matches!(el.poll().await, Ok(super::wire::Ev::ConnAck)));
    (tx, client, el)
}

#[tokio::test]
async fn a_flowing_stream_is_read_in_batches_and_a_quiet_one_at_once() {
    // Generous: the test only needs each step to come well within it.
    const LINGER: Duration = Duration::from_millis(1000);
    let (tx, _client, mut el) = lingering_loop(LINGER).await;
    // Reads up to a linger apart are a flow here (by default only reads
    // under 1 ms apart are, which a busy test machine could break).
    el.set_flowing(LINGER);
    // A quiet connection: the first message is handled at once.
    tx.send(publish_frame("1")).await.unwrap();
    let t = Instant::now();
    assert_eq!(payload(el.poll().await), "1");
    assert!(
        t.elapsed() < LINGER,
        "a lone message waited {:?}",
        t.elapsed()
    );
    // Flowing (this read comes within the linger of the last one): the
    // read waits, and a message sent meanwhile comes in the same round.
    tx.send(publish_frame("2")).await.unwrap();
    let later = tx.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        later.send(publish_frame("3")).await.unwrap();
    });
    assert_eq!(payload(el.poll().await), "2");
    assert_eq!(el.queued_events(), 1, "3 was not read with 2");
    assert_eq!(payload(el.poll().await), "3");
    // A linger that brings nothing (the peer waits for us, as a broker
    // with a full window of unacknowledged messages does) ...
    tx.send(publish_frame("4")).await.unwrap();
    assert_eq!(payload(el.poll().await), "4");
    // ... turns lingering off for a while: the next read is handled at once.
    tx.send(publish_frame("5")).await.unwrap();
    let t = Instant::now();
    assert_eq!(payload(el.poll().await), "5");
    assert!(
        t.elapsed() < LINGER,
        "waited {:?} after a fruitless linger",
        t.elapsed()
    );
}

/// After a linger that brought nothing, lingering resumes within a few
/// reads: a member of a shared subscription has such lingers often (the
/// broker serves the other members meanwhile), and a long pause of its
/// lingering took its rounds back to a few messages each (scenario x: 28
/// wake-ups per 1,000 messages with 64 reads of pause, 23 with 4).
#[tokio::test]
async fn lingering_resumes_four_reads_after_a_fruitless_linger() {
    const LINGER: Duration = Duration::from_millis(1000);
    let (tx, _client, mut el) = lingering_loop(LINGER).await;
    el.set_flowing(LINGER);
    tx.send(publish_frame("a")).await.unwrap();
    assert_eq!(payload(el.poll().await), "a");
    // Flowing: this read lingers, and nothing more comes.
    tx.send(publish_frame("b")).await.unwrap();
    assert_eq!(payload(el.poll().await), "b");
    assert_eq!(el.queued_events(), 0);
    // The next four reads are handled at once ...
    for i in 0..4 {
        let p = format!("c{i}");
        tx.send(publish_frame(&p)).await.unwrap();
        let t = Instant::now();
        assert_eq!(payload(el.poll().await), p);
        assert!(t.elapsed() < LINGER, "read {i} lingered");
    }
    // ... and the fifth lingers again: a message sent meanwhile comes with it.
    tx.send(publish_frame("d")).await.unwrap();
    let later = tx.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        later.send(publish_frame("e")).await.unwrap();
    });
    assert_eq!(payload(el.poll().await), "d");
    assert_eq!(el.queued_events(), 1, "e was not read with d");
    assert_eq!(payload(el.poll().await), "e");
}

/// The messages of one read are copied out of the read buffer as runs of
/// whole PUBLISH frames: a frame of another kind ends a run and is handled
/// in its place, and a frame cut by the end of the read waits for the rest.
#[tokio::test]
async fn publishes_of_one_read_come_in_order_around_other_frames() {
    use super::wire::Ev;
    let (tx, _client, mut el) = lingering_loop(Duration::ZERO).await;
    let payload = |ev: Option<Ev>| match ev {
        Some(Ev::Publish { payload, topic, .. }) => {
            assert_eq!(&topic[..], b"t");
            String::from_utf8_lossy(&payload).to_string()
        }
        other => panic!("expected a publish, got {other:?}"),
    };
    let mut read = Vec::new();
    read.extend(publish_frame("a"));
    read.extend(publish_frame("bb"));
    read.extend([0x90, 0x03, 0x00, 0x01, 0x00]); // SUBACK, granted
    read.extend(publish_frame("c"));
    let d = publish_frame("dddd");
    read.extend(&d[..4]);
    tx.send(read).await.unwrap();
    assert_eq!(payload(el.poll().await.ok()), "a");
    assert_eq!(payload(el.take_publish()), "bb");
    assert!(el.take_publish().is_none(), "the SUBACK comes next");
    assert!(matches!(el.poll().await, Ok(Ev::SubAck { refused: 0 })));
    assert_eq!(payload(el.take_publish()), "c");
    assert!(el.take_publish().is_none());
    tx.send(d[4..].to_vec()).await.unwrap();
    assert_eq!(payload(el.poll().await.ok()), "dddd");
}

/// Received messages are cut from one chunk: consecutive reads land side by
/// side in it, and once every message cut from it is gone the chunk is used
/// again from its start, so reading allocates nothing per message or read.
#[tokio::test]
async fn received_messages_share_one_chunk_that_is_reused() {
    use super::wire::Ev;
    let (tx, _client, mut el) = lingering_loop(Duration::ZERO).await;
    let mut next = async || match el.poll().await {
        Ok(Ev::Publish { payload, .. }) => payload,
        other => panic!("expected a publish, got {other:?}"),
    };
    tx.send(publish_frame("a")).await.unwrap();
    let first = next().await;
    let base = first.as_ptr() as usize;
    tx.send(publish_frame("b")).await.unwrap();
    let second = next().await;
    assert_eq!(
        second.as_ptr() as usize,
        base + publish_frame("a").len(),
        "the second read's message is not beside the first's"
    );
    drop((first, second));
    // 100-byte messages, each dropped once read: past the chunk's 64 KiB
    // the next one lands at its start again.
    let body = "x".repeat(100);
    let mut reused = false;
    for _ in 0..1000 {
        tx.send(publish_frame(&body)).await.unwrap();
        if next().await.as_ptr() as usize == base {
            reused = true;
            break;
        }
    }
    assert!(reused, "the chunk was not used again from its start");
    // A message larger than the chunk gets a copy of its own, whole.
    let big = "y".repeat(70_000);
    let mut frame = vec![0x30];
    let mut left = 3 + big.len();
    loop {
        let b = (left % 128) as u8;
        left /= 128;
        frame.push(if left > 0 { b | 0x80 } else { b });
        if left == 0 {
            break;
        }
    }
    frame.extend([0x00, 0x01, b't']);
    frame.extend(big.as_bytes());
    tx.send(frame).await.unwrap();
    let got = next().await;
    assert_eq!(got.len(), big.len());
    assert!(got.iter().all(|&b| b == b'y'));
}

/// A round cancelled while it lingered leaves the socket's low-water mark
/// raised; the next round lowers it before anything else, so later messages
/// wake the loop again (a raised mark would hold them back until 32 KiB
/// had come).
#[tokio::test]
async fn a_linger_cut_short_leaves_no_raised_mark_behind() {
    use super::wire::Ev;
    const LINGER: Duration = Duration::from_millis(1000);
    let (tx, _client, mut el) = lingering_loop(LINGER).await;
    el.set_flowing(LINGER);
    assert_eq!(el.quiet_raised(), Some(false), "plain TCP lingers quietly");
    tx.send(publish_frame("1")).await.unwrap();
    assert!(matches!(el.poll().await, Ok(Ev::Publish { .. })));
    // Flowing: this read lingers, and the caller gives up meanwhile.
    tx.send(publish_frame("2")).await.unwrap();
    let cut = tokio::time::timeout(Duration::from_millis(100), el.poll()).await;
    assert!(cut.is_err(), "the read did not linger: {cut:?}");
    assert_eq!(el.quiet_raised(), Some(true));
    // The next round lowers the mark and hands over what was read.
    assert!(matches!(el.poll().await, Ok(Ev::Publish { .. })));
    assert_eq!(el.quiet_raised(), Some(false));
}

/// A stream slower than a flow (reads more than 1 ms apart) is not lingered
/// on, however long the linger: its messages are handled at once.
#[tokio::test]
async fn a_slow_stream_is_not_lingered_on() {
    use super::wire::Ev;
    const LINGER: Duration = Duration::from_millis(1000);
    let (tx, _client, mut el) = lingering_loop(LINGER).await;
    for i in 0..3 {
        // 20 ms between messages: 50 a second, far from a flow.
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.send(publish_frame(&i.to_string())).await.unwrap();
        let t = Instant::now();
        assert!(matches!(el.poll().await, Ok(Ev::Publish { .. })));
        assert!(
            t.elapsed() < LINGER / 2,
            "message {i} waited {:?}",
            t.elapsed()
        );
    }
}
