//! At-least-once from the MQTT source: a private Mosquitto (persistence on) is
//! killed with SIGKILL and restarted while a publisher pushes QoS 1 messages
//! through Oort, and Oort itself is killed and restarted while messages keep
//! arriving. Nothing may be lost; duplicates are reported.
//!
//! Each test starts its own broker on a free port (never the shared one on
//! 1883); Oort's sink publishes to the shared broker on a unique topic.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oort_tests::broker::{Broker, BrokerConf};
use oort_tests::{mqtt, unique, Server};
use serde_json::json;

/// A private broker that saves after every change (a SIGKILL loses at most
/// its last loop round, so what is measured is Oort's behaviour, not the
/// broker's write-back delay), queues nothing beyond 20 in flight per client.
fn broker() -> Broker {
    Broker::start_with(BrokerConf {
        max_queued: 0,
        max_inflight: 20,
        autosave_on_changes: true,
    })
}

fn put_len(buf: &mut Vec<u8>, mut len: usize) {
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        buf.push(b);
        if len == 0 {
            return;
        }
    }
}

fn put_str(buf: &mut Vec<u8>, s: &[u8]) {
    buf.extend_from_slice(&(s.len() as u16).to_be_bytes());
    buf.extend_from_slice(s);
}

/// Connects with a clean session and waits for a successful CONNACK.
fn connect(port: u16, id: &str) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut body = Vec::new();
    put_str(&mut body, b"MQTT");
    body.extend_from_slice(&[4, 0x02, 0, 60]);
    put_str(&mut body, id.as_bytes());
    let mut pkt = vec![0x10];
    put_len(&mut pkt, body.len());
    pkt.extend_from_slice(&body);
    s.write_all(&pkt)?;
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack)?;
    if ack[0] != 0x20 || ack[3] != 0 {
        return Err(std::io::Error::other(format!("CONNACK {ack:?}")));
    }
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(s)
}

/// Publishes `{"i":i}` for every i in `ids` with QoS 1, keeping up to
/// `window` messages in flight and at most `rate` per second; after any
/// connection failure it reconnects and sends every message not yet
/// acknowledged again, until all are acknowledged. `acked` counts them.
fn publish_reliably(
    port: u16,
    topic: &str,
    ids: std::ops::Range<u64>,
    window: usize,
    rate: f64,
    acked: &AtomicU64,
) {
    let started = Instant::now();
    let first = ids.start;
    let mut next = ids.start;
    let mut outstanding: BTreeMap<u16, u64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let pid_of = |i: u64| (i % 60_000) as u16 + 1;
    let packet = |i: u64, dup: bool| {
        let payload = format!("{{\"i\":{i}}}");
        let mut p = vec![0x32 | if dup { 0x08 } else { 0 }];
        put_len(&mut p, 2 + topic.len() + 2 + payload.len());
        put_str(&mut p, topic.as_bytes());
        p.extend_from_slice(&pid_of(i).to_be_bytes());
        p.extend_from_slice(payload.as_bytes());
        p
    };
    'session: loop {
        assert!(Instant::now() < deadline, "publisher gave up");
        let Ok(mut s) = connect(port, &unique("pub")) else {
            // The broker is down: try again shortly.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let mut out = Vec::new();
        for &i in outstanding.values() {
            out.extend_from_slice(&packet(i, true));
        }
        let mut inbuf: Vec<u8> = Vec::new();
        loop {
            let allowed = first + (started.elapsed().as_secs_f64() * rate) as u64 + 1;
            while outstanding.len() < window && next < ids.end && next < allowed {
                out.extend_from_slice(&packet(next, false));
                outstanding.insert(pid_of(next), next);
                next += 1;
            }
            if !out.is_empty() {
                if s.write_all(&out).is_err() {
                    continue 'session;
                }
                out.clear();
            }
            if outstanding.is_empty() && next == ids.end {
                let _ = s.write_all(&[0xe0, 0]);
                return;
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk) {
                Ok(0) => continue 'session,
                Ok(n) => inbuf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => continue 'session,
            }
            // PUBACKs are 4 bytes: 0x40 0x02 pid.
            let mut at = 0;
            while inbuf.len() >= at + 4 {
                if inbuf[at] == 0x40 {
                    let pid = u16::from_be_bytes([inbuf[at + 2], inbuf[at + 3]]);
                    if outstanding.remove(&pid).is_some() {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                }
                at += 4;
            }
            inbuf.drain(..at);
        }
    }
}

/// Collects `{"i":..}` messages until every id in `ids` was seen or the
/// deadline passes; returns (missing ids, duplicates).
fn collect(sub: &mqtt::Sub, ids: std::ops::Range<u64>, secs: u64) -> (Vec<u64>, u64) {
    let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while (seen.len() as u64) < ids.end - ids.start {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok((_, p)) = sub.rx.recv_timeout(left) else {
            break;
        };
        let v: serde_json::Value = serde_json::from_slice(&p).expect("JSON from the sink");
        if let Some(i) = v["i"].as_u64() {
            *seen.entry(i).or_default() += 1;
        }
    }
    // Late duplicates still in flight are counted too.
    while let Ok((_, p)) = sub.rx.recv_timeout(Duration::from_millis(300)) {
        let v: serde_json::Value = serde_json::from_slice(&p).expect("JSON from the sink");
        if let Some(i) = v["i"].as_u64() {
            *seen.entry(i).or_default() += 1;
        }
    }
    let missing = ids.filter(|i| !seen.contains_key(i)).collect();
    let dups = seen.values().map(|c| c - 1).sum();
    (missing, dups)
}

/// A stream on the private broker and a rule copying it to `out` on the
/// shared broker; waits until the source is subscribed.
fn pipeline(s: &Server, b: &Broker, topic: &str, out: &str) {
    s.expect(
        "PUT",
        "/metadata/sources/mqtt/confKeys/priv",
        Some(&json!({"server": b.url(), "qos": 1}).to_string()),
        200,
    );
    s.create_stream(&format!(
        "CREATE STREAM s () WITH (DATASOURCE=\"{topic}\", TYPE=\"mqtt\", CONF_KEY=\"priv\")"
    ));
    s.create_rule(&json!({"id": "copy", "sql": "SELECT * FROM s",
        "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": out,
                               "qos": 1, "sendSingle": true}}]}));
    wait_subscribed(s);
}

fn wait_subscribed(s: &Server) {
    s.wait_status("copy", "source connected", |st| {
        st["source_s_0_connection_status"] == 1
    });
}

#[test]
fn mqtt_source_loses_nothing_when_the_broker_restarts() {
    let mut b = broker();
    let s = Server::start();
    let t = unique("oortsess");
    let (topic, out) = (format!("{t}/in"), format!("{t}/out"));
    let sub = mqtt::subscribe(&out);
    pipeline(&s, &b, &topic, &out);

    const N: u64 = 4000;
    let acked = Arc::new(AtomicU64::new(0));
    let publisher = {
        let (acked, topic, port) = (acked.clone(), topic.clone(), b.port);
        std::thread::spawn(move || publish_reliably(port, &topic, 0..N, 50, 800.0, &acked))
    };
    let mut kills = 0;
    for at in [N / 5, 2 * N / 5, 3 * N / 5, 4 * N / 5] {
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.load(Ordering::Relaxed) < at {
            assert!(Instant::now() < deadline, "publisher stalled before {at}");
            std::thread::sleep(Duration::from_millis(10));
        }
        b.terminate();
        kills += 1;
        // The outage: the publisher and Oort retry meanwhile.
        std::thread::sleep(Duration::from_millis(1500));
        b.restart();
    }
    publisher.join().expect("publisher thread");
    let (missing, dups) = collect(&sub, 0..N, 60);
    eprintln!(
        "broker stopped (SIGTERM) and restarted {kills} times during {N} QoS 1 messages: {} lost, {dups} duplicates",
        missing.len()
    );
    assert!(
        missing.is_empty(),
        "{} of {N} messages lost (first: {:?}); log:\n{}",
        missing.len(),
        &missing[..missing.len().min(20)],
        s.log()
    );
}

#[test]
fn mqtt_source_gets_its_backlog_after_oort_restarts() {
    let b = broker();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Server::start_in(dir.path());
    let t = unique("oortback");
    let (topic, out) = (format!("{t}/in"), format!("{t}/out"));
    let sub = mqtt::subscribe(&out);
    pipeline(&s, &b, &topic, &out);
    let acked = AtomicU64::new(0);

    publish_reliably(b.port, &topic, 0..500, 50, 5000.0, &acked);
    let (missing, _) = collect(&sub, 0..500, 30);
    assert!(missing.is_empty(), "before the restart: {missing:?}");

    // Oort is gone while these arrive: the broker keeps them in the session.
    s.kill();
    publish_reliably(b.port, &topic, 500..1500, 50, 5000.0, &acked);

    let s = Server::start_in(dir.path());
    wait_subscribed(&s);
    publish_reliably(b.port, &topic, 1500..2000, 50, 5000.0, &acked);
    let (missing, dups) = collect(&sub, 500..2000, 60);
    eprintln!(
        "Oort killed and restarted: {} of 1500 lost, {dups} duplicates",
        missing.len()
    );
    assert!(
        missing.is_empty(),
        "{} messages lost across the restart (first: {:?}); log:\n{}",
        missing.len(),
        &missing[..missing.len().min(20)],
        s.log()
    );
}
