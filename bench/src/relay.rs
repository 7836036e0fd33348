//! The cheapest relay there can be, as a ceiling for scenarios c and x:
//! one thread with two plain MQTT 3.1.1 connections (standard library only)
//! that reads what the broker sends on the input topic, keeps the messages
//! whose `temperature` is over 20 and publishes them to the output topic,
//! all the packets of one read in one write. No runtime, no SQL, no
//! decoding beyond finding one number: what it reaches through the broker is
//! what any engine in that place could reach on this machine, so Oort's
//! rate is also compared with it.
//!
//! At QoS 1 it subscribes and publishes with QoS 1: the PUBACKs of one read
//! go out in one write before its publishes, and the broker's PUBACKs to
//! its publishes are read (and dropped) between reads.
//!
//! After each read it sleeps `linger` (`OORT_BENCH_C_RELAY_LINGER_US`,
//! default 5,000: Oort's read linger) so that the next read takes what came
//! meanwhile. Without it each read gets one message, the relay wakes once
//! per message and the broker's writes to it cost most. Measured at QoS 0:
//! 0.37-0.40 of raw without the sleep where Oort reached 0.59-0.60; at QoS
//! 1: 0.52-0.68 of raw and 5 us of the relay's CPU per message without it,
//! 0.68-0.70 with 200 us, 0.73-0.76 with 1 ms and 0.75-0.79 (0.2 us) with
//! 5 ms. The broker is then the limit (one core busy).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, Context};

/// The pause between a relay's reads: `OORT_BENCH_C_RELAY_LINGER_US`
/// (default 5,000, Oort's read linger).
pub(crate) fn linger_from_env() -> Duration {
    Duration::from_micros(crate::mqtt::env_or("OORT_BENCH_C_RELAY_LINGER_US", 5000))
}

/// A running relay; [`Relay::stop`] ends it.
pub(crate) struct Relay {
    sub: TcpStream,
    thread: JoinHandle<u64>,
}

impl Relay {
    /// Connects both sides and subscribes (QoS `qos`, 0 or 1); returns once
    /// the broker has acknowledged the subscription.
    pub(crate) fn start(
        port: u16,
        inp: &str,
        out: &str,
        qos: u8,
        linger: Duration,
    ) -> anyhow::Result<Relay> {
        if qos > 1 {
            return Err(anyhow!("relay: QoS {qos} is not supported (0 or 1)"));
        }
        let pid = std::process::id();
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let pid = format!(
            "{pid}-{}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut sub = connect(port, &format!("relay-sub-{pid}"))?;
        let mut publ = connect(port, &format!("relay-pub-{pid}"))?;
        let mut p = vec![0x82];
        let mut body = vec![0, 1];
        put_str(&mut body, inp);
        body.push(qos);
        put_len(&mut p, body.len());
        p.extend_from_slice(&body);
        sub.write_all(&p)?;
        let mut ack = [0u8; 5];
        sub.read_exact(&mut ack).context("relay SUBACK")?;
        if ack[0] != 0x90 || ack[4] != qos {
            return Err(anyhow!("relay: subscription refused ({ack:?})"));
        }
        let out = out.to_string();
        let reader = sub.try_clone()?;
        let thread = std::thread::spawn(move || pump(reader, &mut publ, &out, qos, linger));
        Ok(Relay { sub, thread })
    }

    /// Stops the relay; returns how many messages it forwarded.
    pub(crate) fn stop(self) -> u64 {
        let _ = self.sub.shutdown(Shutdown::Both);
        self.thread.join().unwrap_or(0)
    }
}

/// `oort-bench relay PORT FILTER OUT QOS LINGER_US`: runs a relay until
/// its standard input closes; prints `ready` once subscribed.
pub(crate) fn serve(args: &[String]) -> anyhow::Result<()> {
    let [port, filter, out, qos, linger] = args else {
        return Err(anyhow!(
            "usage: oort-bench relay PORT FILTER OUT QOS LINGER_US"
        ));
    };
    let r = Relay::start(
        port.parse()?,
        filter,
        out,
        qos.parse()?,
        Duration::from_micros(linger.parse()?),
    )?;
    println!("ready");
    std::io::stdout().flush()?;
    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
    r.stop();
    Ok(())
}

/// A relay in a child process ([`serve`]); stopped when dropped.
pub(crate) struct RelayProcess {
    pub(crate) child: std::process::Child,
}

impl RelayProcess {
    pub(crate) fn spawn(
        port: u16,
        filter: &str,
        out: &str,
        qos: u8,
        linger: Duration,
    ) -> anyhow::Result<Self> {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let mut child = Command::new(std::env::current_exe()?)
            .args(["relay", &port.to_string(), filter, out, &qos.to_string()])
            .arg(linger.as_micros().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("start a relay process")?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            std::io::BufReader::new(out).read_line(&mut line)?;
        }
        if line.trim() != "ready" {
            let _ = child.kill();
            return Err(anyhow!("the relay process did not start"));
        }
        Ok(RelayProcess { child })
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn connect(port: u16, id: &str) -> anyhow::Result<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).context("relay connect")?;
    s.set_nodelay(true)?;
    // Protocol "MQTT" level 4, clean session, no keep-alive.
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 0];
    put_str(&mut body, id);
    let mut p = vec![0x10];
    put_len(&mut p, body.len());
    p.extend_from_slice(&body);
    s.write_all(&p)?;
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack).context("relay CONNACK")?;
    if ack[0] != 0x20 || ack[3] != 0 {
        return Err(anyhow!("relay: connection refused ({ack:?})"));
    }
    Ok(s)
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u16).to_be_bytes());
    b.extend_from_slice(s.as_bytes());
}

fn put_len(b: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        b.push(byte);
        if n == 0 {
            return;
        }
    }
}

/// A frame at the start of `b`: (header length, remaining length).
fn frame(b: &[u8]) -> Option<(usize, usize)> {
    let mut len = 0usize;
    for i in 1..5 {
        let byte = *b.get(i)?;
        len |= ((byte & 0x7f) as usize) << (7 * (i - 1));
        if byte & 0x80 == 0 {
            return (b.len() >= i + 1 + len).then_some((i + 1, len));
        }
    }
    None
}

/// Whether the JSON payload's `temperature` is a number over 20.
fn passes(p: &[u8]) -> bool {
    const KEY: &[u8] = b"\"temperature\":";
    let Some(at) = p.windows(KEY.len()).position(|w| w == KEY) else {
        return false;
    };
    let rest = &p[at + KEY.len()..];
    let end = rest
        .iter()
        .position(|c| !(c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'e' | b'E' | b'+')))
        .unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end])
        .ok()
        .and_then(|t| t.parse::<f64>().ok())
        .is_some_and(|t| t > 20.0)
}

/// The packets a relay writes for what one read brought: to the broker on
/// the input side (PUBACKs) and on the output side (its publishes).
#[derive(Default)]
struct Out {
    acks: Vec<u8>,
    publishes: Vec<u8>,
    /// The last packet id of our QoS 1 publishes.
    pkid: u16,
    sent: u64,
}

impl Out {
    /// Relays the whole frames at the start of `buf`: (bytes used).
    fn frames(&mut self, buf: &[u8], topic: &str, qos: u8) -> usize {
        let mut at = 0;
        while let Some((h, len)) = frame(&buf[at..]) {
            let kind = buf[at];
            let f = &buf[at + h..at + h + len];
            at += h + len;
            if kind >> 4 != 3 || f.len() < 2 {
                continue;
            }
            let tl = u16::from_be_bytes([f[0], f[1]]) as usize;
            let mut skip = 2 + tl;
            if kind & 0x06 != 0 {
                if let Some(id) = f.get(skip..skip + 2) {
                    // QoS 1 in: acknowledged whatever the filter says.
                    self.acks.extend_from_slice(&[0x40, 0x02, id[0], id[1]]);
                }
                skip += 2;
            }
            let payload = f.get(skip..).unwrap_or_default();
            if !passes(payload) {
                continue;
            }
            let id_len = if qos > 0 { 2 } else { 0 };
            self.publishes.push(0x30 | (qos << 1));
            put_len(
                &mut self.publishes,
                2 + topic.len() + id_len + payload.len(),
            );
            put_str(&mut self.publishes, topic);
            if qos > 0 {
                self.pkid = self.pkid.checked_add(1).unwrap_or(1);
                self.publishes.extend_from_slice(&self.pkid.to_be_bytes());
            }
            self.publishes.extend_from_slice(payload);
            self.sent += 1;
        }
        at
    }
}

fn pump(mut sub: TcpStream, publ: &mut TcpStream, topic: &str, qos: u8, linger: Duration) -> u64 {
    let mut buf = vec![0u8; 256 * 1024];
    let mut have = 0;
    let mut out = Out {
        acks: Vec::with_capacity(4 * 1024),
        publishes: Vec::with_capacity(256 * 1024),
        ..Out::default()
    };
    let mut drain = vec![0u8; 64 * 1024];
    loop {
        let n = match sub.read(&mut buf[have..]) {
            Ok(0) | Err(_) => return out.sent,
            Ok(n) => n,
        };
        have += n;
        let used = out.frames(&buf[..have], topic, qos);
        buf.copy_within(used..have, 0);
        have -= used;
        if have == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        if !out.acks.is_empty() {
            if sub.write_all(&out.acks).is_err() {
                return out.sent;
            }
            out.acks.clear();
        }
        if !out.publishes.is_empty() {
            if publ.write_all(&out.publishes).is_err() {
                return out.sent;
            }
            out.publishes.clear();
        }
        if qos > 0 && !drain_acks(publ, &mut drain) {
            return out.sent;
        }
        if !linger.is_zero() {
            std::thread::sleep(linger);
        }
    }
}

/// Reads (and drops) what the broker sent on the output side without
/// waiting: the PUBACKs of our publishes. False when the connection broke.
fn drain_acks(publ: &mut TcpStream, buf: &mut [u8]) -> bool {
    if publ.set_nonblocking(true).is_err() {
        return false;
    }
    let ok = loop {
        match publ.read(buf) {
            Ok(0) => break false,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break true,
            Err(_) => break false,
        }
    };
    ok && publ.set_nonblocking(false).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(topic: &str, payload: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        put_str(&mut body, topic);
        body.extend_from_slice(payload);
        let mut p = vec![0x30];
        put_len(&mut p, body.len());
        p.extend_from_slice(&body);
        p
    }

    #[test]
    fn frames_are_whole_or_not_yet() {
        let p = publish("t", &[b'x'; 200]);
        // 200 + 3 bytes of topic: two length bytes.
        assert_eq!(frame(&p), Some((3, 203)));
        assert_eq!(frame(&p[..p.len() - 1]), None);
        assert_eq!(frame(&p[..2]), None);
        assert_eq!(frame(&[0x30, 0]), Some((2, 0)));
    }

    #[test]
    fn at_qos_1_every_message_is_acknowledged_and_those_that_pass_are_published_with_ids() {
        let with_id = |id: u16, payload: &[u8]| {
            let mut body = Vec::new();
            put_str(&mut body, "in");
            body.extend_from_slice(&id.to_be_bytes());
            body.extend_from_slice(payload);
            let mut p = vec![0x32];
            put_len(&mut p, body.len());
            p.extend_from_slice(&body);
            p
        };
        let mut buf = with_id(7, br#"{"temperature":25}"#);
        buf.extend(with_id(8, br#"{"temperature":5}"#));
        buf.extend(with_id(9, br#"{"temperature":30}"#));
        let whole = buf.len();
        // Half a frame more: left for the next read.
        buf.extend_from_slice(&with_id(10, b"{}")[..3]);
        let mut out = Out::default();
        assert_eq!(out.frames(&buf, "o", 1), whole);
        assert_eq!(
            out.acks,
            [0x40, 2, 0, 7, 0x40, 2, 0, 8, 0x40, 2, 0, 9],
            "every message acknowledged"
        );
        let mut want = Vec::new();
        for (id, p) in [
            (1u16, &br#"{"temperature":25}"#[..]),
            (2, br#"{"temperature":30}"#),
        ] {
            want.push(0x32);
            put_len(&mut want, 2 + 1 + 2 + p.len());
            put_str(&mut want, "o");
            want.extend_from_slice(&id.to_be_bytes());
            want.extend_from_slice(p);
        }
        assert_eq!(out.publishes, want);
        assert_eq!(out.sent, 2);
        // At QoS 0 the same input publishes without ids.
        let mut out = Out::default();
        out.frames(&buf, "o", 0);
        assert_eq!(out.publishes[0], 0x30);
        assert_eq!(out.sent, 2);
    }

    #[test]
    fn only_temperatures_over_20_pass() {
        assert!(passes(br#"{"dev":"d1","temperature":21.5,"humidity":40}"#));
        assert!(passes(br#"{"temperature":99}"#));
        assert!(!passes(br#"{"dev":"d1","temperature":19.0,"humidity":40}"#));
        assert!(!passes(br#"{"temperature":20}"#));
        assert!(!passes(br#"{"temperature":"hot"}"#));
        assert!(!passes(br#"{"humidity":40}"#));
    }

    #[test]
    fn lengths_use_the_variable_encoding() {
        for (n, want) in [
            (0usize, vec![0u8]),
            (127, vec![0x7f]),
            (128, vec![0x80, 0x01]),
            (16_383, vec![0xff, 0x7f]),
            (16_384, vec![0x80, 0x80, 0x01]),
        ] {
            let mut b = Vec::new();
            put_len(&mut b, n);
            assert_eq!(b, want, "{n}");
            let mut f = vec![0x30];
            f.extend_from_slice(&b);
            f.resize(1 + b.len() + n, 0);
            assert_eq!(frame(&f), Some((1 + b.len(), n)));
        }
    }
}
