//! ZeroMQ's wire protocol, ZMTP 3.0 with the NULL mechanism, on a TCP
//! connection the plugin opens (a component cannot listen: both plugins
//! connect). Enough for PUB/SUB: the greeting, the READY command with the
//! socket type, subscriptions (ZMTP 3.0 style: a message `0x01` + prefix),
//! and multipart messages. Written here because libzmq is a C library that
//! does not build for WASI components.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use oort_plugin_sdk::Error;

const MORE: u8 = 0x01;
const LONG: u8 = 0x02;
const COMMAND: u8 = 0x04;
/// Largest frame accepted from the peer.
pub const MAX_FRAME: usize = 16 << 20;

/// `tcp://host:port` -> `host:port`.
pub fn endpoint(server: &str) -> Result<String, Error> {
    let s = server.trim();
    let Some(rest) = s.strip_prefix("tcp://") else {
        return Err(Error::config(format!(
            "server {server:?}: only tcp://host:port endpoints are supported"
        )));
    };
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && h != "*" && p.parse::<u16>().is_ok() => {
            Ok(rest.to_string())
        }
        _ => Err(Error::config(format!(
            "server {server:?}: use tcp://host:port (a host to connect to, not *)"
        ))),
    }
}

fn io_err(what: &str, e: std::io::Error) -> Error {
    let mut err = Error::from(e);
    err.message = format!("zmq {what}: {}", err.message);
    err
}

/// The 64-byte greeting: signature, version 3.0, mechanism NULL, as client.
fn greeting() -> [u8; 64] {
    let mut g = [0u8; 64];
    g[0] = 0xFF;
    g[9] = 0x7F;
    g[10] = 3;
    g[11] = 0;
    g[12..16].copy_from_slice(b"NULL");
    g
}

/// One connection.
pub struct Zmtp {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Zmtp {
    /// Connects and runs the handshake as `socket_type` (`SUB`, `PUB`).
    pub fn connect(addr: &str, socket_type: &str) -> Result<Zmtp, Error> {
        let stream = TcpStream::connect(addr).map_err(|e| io_err(&format!("connect {addr}"), e))?;
        let _ = stream.set_nodelay(true);
        let mut z = Zmtp {
            stream,
            buf: Vec::new(),
        };
        z.send_raw(&greeting())?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while z.buf.len() < 64 {
            if !z.fill(deadline)? {
                return Err(Error::unavailable(format!("zmq {addr}: no greeting")));
            }
        }
        let g: Vec<u8> = z.buf.drain(..64).collect();
        if g[0] != 0xFF || g[9] != 0x7F {
            return Err(Error::unavailable(format!("zmq {addr}: not a ZMTP peer")));
        }
        if g[10] < 3 {
            return Err(Error::unavailable(format!(
                "zmq {addr}: ZMTP {}.{} peer, 3.x needed",
                g[10], g[11]
            )));
        }
        if &g[12..16] != b"NULL" {
            return Err(Error::config(format!(
                "zmq {addr}: the peer wants security mechanism {:?}; only NULL is supported",
                String::from_utf8_lossy(&g[12..32]).trim_end_matches('\0')
            )));
        }
        let mut ready = vec![5u8];
        ready.extend_from_slice(b"READY");
        ready.push(11);
        ready.extend_from_slice(b"Socket-Type");
        ready.extend_from_slice(&(socket_type.len() as u32).to_be_bytes());
        ready.extend_from_slice(socket_type.as_bytes());
        z.send_frame(&ready, COMMAND)?;
        // The peer's READY (or ERROR).
        loop {
            match z.frame(deadline)? {
                Some((flags, body)) if flags & COMMAND != 0 => {
                    let n = body.first().copied().unwrap_or(0) as usize;
                    let name = body.get(1..1 + n).unwrap_or_default();
                    if name == b"READY" {
                        return Ok(z);
                    }
                    if name == b"ERROR" {
                        return Err(Error::unavailable(format!(
                            "zmq {addr}: the peer refused: {}",
                            String::from_utf8_lossy(body.get(2 + n..).unwrap_or_default())
                        )));
                    }
                }
                Some(_) => {}
                None => return Err(Error::unavailable(format!("zmq {addr}: no READY"))),
            }
        }
    }

    /// Subscribes to messages whose first frame starts with `prefix`.
    pub fn subscribe(&mut self, prefix: &[u8]) -> Result<(), Error> {
        let mut body = vec![1u8];
        body.extend_from_slice(prefix);
        self.send_frame(&body, 0)
    }

    /// Sends a multipart message.
    pub fn send_message(&mut self, frames: &[&[u8]]) -> Result<(), Error> {
        let mut out = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let more = if i + 1 < frames.len() { MORE } else { 0 };
            encode_frame(&mut out, f, more);
        }
        self.send_raw(&out)
    }

    /// The next message (its frames), waiting until `deadline`; commands
    /// (heartbeats, subscriptions sent to a publisher) are skipped.
    pub fn recv_message(&mut self, deadline: Instant) -> Result<Option<Vec<Vec<u8>>>, Error> {
        let mut parts = Vec::new();
        loop {
            // Once a message has started, its other frames are already on
            // their way: give them a moment past the deadline.
            let d = if parts.is_empty() {
                deadline
            } else {
                deadline.max(Instant::now() + Duration::from_secs(5))
            };
            match self.frame(d)? {
                None if parts.is_empty() => return Ok(None),
                None => return Err(Error::unavailable("zmq: incomplete multipart message")),
                Some((flags, _)) if flags & COMMAND != 0 => continue,
                Some((flags, body)) => {
                    parts.push(body);
                    if flags & MORE == 0 {
                        return Ok(Some(parts));
                    }
                }
            }
        }
    }

    fn send_frame(&mut self, body: &[u8], flags: u8) -> Result<(), Error> {
        let mut out = Vec::with_capacity(body.len() + 9);
        encode_frame(&mut out, body, flags);
        self.send_raw(&out)
    }

    fn send_raw(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.stream
            .write_all(bytes)
            .and_then(|()| self.stream.flush())
            .map_err(|e| io_err("write", e))
    }

    /// One frame (flags, body), or `None` at the deadline.
    fn frame(&mut self, deadline: Instant) -> Result<Option<(u8, Vec<u8>)>, Error> {
        loop {
            if let Some((flags, start, len)) = parse_head(&self.buf)? {
                if self.buf.len() >= start + len {
                    let body = self.buf[start..start + len].to_vec();
                    self.buf.drain(..start + len);
                    return Ok(Some((flags, body)));
                }
            }
            if !self.fill(deadline)? {
                return Ok(None);
            }
        }
    }

    fn fill(&mut self, deadline: Instant) -> Result<bool, Error> {
        oort_plugin_sdk::net::read_until(&mut self.stream, &mut self.buf, deadline, "zmq")
    }
}

fn encode_frame(out: &mut Vec<u8>, body: &[u8], flags: u8) {
    if body.len() <= 255 {
        out.push(flags);
        out.push(body.len() as u8);
    } else {
        out.push(flags | LONG);
        out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    }
    out.extend_from_slice(body);
}

/// (flags, body start, body length) of the frame at the start of `buf`.
fn parse_head(buf: &[u8]) -> Result<Option<(u8, usize, usize)>, Error> {
    let Some(&flags) = buf.first() else {
        return Ok(None);
    };
    if flags & LONG == 0 {
        Ok(buf.get(1).map(|&n| (flags, 2, n as usize)))
    } else {
        let Some(b) = buf.get(1..9) else {
            return Ok(None);
        };
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        let n = u64::from_be_bytes(a);
        if n > MAX_FRAME as u64 {
            return Err(Error::invalid_data(format!(
                "zmq: a frame of {n} bytes (more than {MAX_FRAME})"
            )));
        }
        Ok(Some((flags, 9, n as usize)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_short_and_long() {
        let mut out = Vec::new();
        encode_frame(&mut out, b"topic", MORE);
        let big = vec![7u8; 300];
        encode_frame(&mut out, &big, 0);
        let (f, s, n) = parse_head(&out).unwrap().unwrap();
        assert_eq!((f, s, n), (MORE, 2, 5));
        let rest = &out[s + n..];
        let (f, s, n) = parse_head(rest).unwrap().unwrap();
        assert_eq!((f, s, n), (LONG, 9, 300));
        assert_eq!(&rest[s..s + n], &big[..]);
        assert!(parse_head(&rest[..5]).unwrap().is_none());
    }

    #[test]
    fn endpoints_and_greeting() {
        assert_eq!(endpoint("tcp://127.0.0.1:5563").unwrap(), "127.0.0.1:5563");
        assert!(endpoint("tcp://*:5563").is_err());
        assert!(endpoint("ipc:///tmp/x").is_err());
        let g = greeting();
        assert_eq!(
            (g[0], g[9], g[10], &g[12..16]),
            (0xFF, 0x7F, 3, &b"NULL"[..])
        );
    }
}
