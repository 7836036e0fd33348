//! A minimal blocking client for the NATS core text protocol (INFO, CONNECT,
//! PING/PONG, SUB, PUB, MSG, +OK/-ERR) over `std::net::TcpStream`, which on
//! wasm32-wasip2 is `wasi:sockets`: every connection needs an outbound grant.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use oort_plugin_sdk::{Error, Message};

/// `nats://host:port` (or `host:port`) to `host:port`.
pub fn server_addr(server: &str) -> Result<String, Error> {
    let s = server.trim();
    let s = s
        .strip_prefix("nats://")
        .or_else(|| s.strip_prefix("tcp://"))
        .unwrap_or(s);
    let s = s.trim_end_matches('/');
    if s.is_empty() {
        return Err(Error::config("server must not be empty"));
    }
    if s.contains('/') || s.contains('@') {
        return Err(Error::config(format!(
            "server {server:?}: use nats://host:port (no path, no credentials)"
        )));
    }
    Ok(if s.contains(':') {
        s.to_string()
    } else {
        format!("{s}:4222")
    })
}

pub fn valid_subject(s: &str, wildcards: bool) -> bool {
    !s.is_empty()
        && !s.contains(char::is_whitespace)
        && s.split('.')
            .all(|t| !t.is_empty() && (wildcards || (t != "*" && t != ">")))
}

fn io_err(what: &str, e: std::io::Error) -> Error {
    let mut err = Error::from(e);
    err.message = format!("{what}: {}", err.message);
    err
}

pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Connects, reads INFO, sends CONNECT and waits for the PONG of a PING.
    pub fn connect(addr: &str) -> Result<Conn, Error> {
        let stream = TcpStream::connect(addr).map_err(|e| io_err(&format!("connect {addr}"), e))?;
        let _ = stream.set_nodelay(true);
        let mut c = Conn {
            stream,
            buf: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let info = c
            .line(deadline)?
            .ok_or_else(|| Error::unavailable("no INFO from server"))?;
        if !info.starts_with("INFO ") {
            return Err(Error::unavailable(format!("unexpected greeting {info:?}")));
        }
        c.send(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"oort\",\"lang\":\"rust\",\"version\":\"0.1.0\",\"protocol\":1}\r\nPING\r\n")?;
        loop {
            match c.line(deadline)? {
                Some(l) if l == "PONG" => return Ok(c),
                Some(l) if l.starts_with("-ERR") => {
                    return Err(Error::unauthorized(format!("server refused: {l}")))
                }
                Some(_) => continue,
                None => return Err(Error::unavailable("no PONG from server")),
            }
        }
    }

    pub fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.stream.write_all(bytes).map_err(|e| io_err("write", e))
    }

    pub fn subscribe(&mut self, subject: &str, queue: Option<&str>, sid: u32) -> Result<(), Error> {
        let cmd = match queue {
            Some(q) => format!("SUB {subject} {q} {sid}\r\nPING\r\n"),
            None => format!("SUB {subject} {sid}\r\nPING\r\n"),
        };
        self.send(cmd.as_bytes())?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.line(deadline)? {
                Some(l) if l == "PONG" => return Ok(()),
                Some(l) if l.starts_with("-ERR") => {
                    return Err(Error::config(format!("subscribe {subject}: {l}")))
                }
                Some(_) => continue,
                None => return Err(Error::unavailable("no reply to SUB")),
            }
        }
    }

    /// Appends `PUB` frames for a batch; one write.
    pub fn publish_all(&mut self, subject: &str, payloads: &[Message]) -> Result<(), Error> {
        let mut out = Vec::new();
        for m in payloads {
            out.extend_from_slice(format!("PUB {subject} {}\r\n", m.payload.len()).as_bytes());
            out.extend_from_slice(&m.payload);
            out.extend_from_slice(b"\r\n");
        }
        self.send(&out)?;
        self.stream.flush().map_err(|e| io_err("flush", e))
    }

    /// Round trip: every PUB before it has been processed (or -ERR returned).
    pub fn ping(&mut self) -> Result<(), Error> {
        self.send(b"PING\r\n")?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.line(deadline)? {
                Some(l) if l == "PONG" => return Ok(()),
                Some(l) if l.starts_with("-ERR") => {
                    return Err(Error::unavailable(format!("server: {l}")))
                }
                Some(_) => continue,
                None => return Err(Error::unavailable("no PONG from server")),
            }
        }
    }

    /// Reads more bytes, waiting at most until `deadline`. False on timeout.
    fn fill(&mut self, deadline: Instant) -> Result<bool, Error> {
        oort_plugin_sdk::net::read_until(&mut self.stream, &mut self.buf, deadline, "nats")
    }

    fn take_line(&mut self) -> Option<String> {
        let i = self.buf.windows(2).position(|w| w == b"\r\n")?;
        let line: Vec<u8> = self.buf.drain(..i + 2).collect();
        Some(String::from_utf8_lossy(&line[..i]).into_owned())
    }

    /// One control line; answers server PINGs on the way.
    fn line(&mut self, deadline: Instant) -> Result<Option<String>, Error> {
        loop {
            if let Some(l) = self.take_line() {
                if l == "PING" {
                    self.send(b"PONG\r\n")?;
                    continue;
                }
                return Ok(Some(l));
            }
            if !self.fill(deadline)? {
                return Ok(None);
            }
        }
    }

    /// Next `MSG` (subject, payload) before `deadline`, if any.
    pub fn next_msg(&mut self, deadline: Instant) -> Result<Option<(String, Vec<u8>)>, Error> {
        loop {
            // A complete MSG frame already buffered?
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                if head == "PING" {
                    self.buf.drain(..i + 2);
                    self.send(b"PONG\r\n")?;
                    continue;
                }
                if let Some(rest) = head.strip_prefix("MSG ") {
                    let parts: Vec<&str> = rest.split_whitespace().collect();
                    let len: usize = parts
                        .last()
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| Error::internal(format!("bad MSG header {head:?}")))?;
                    let need = i + 2 + len + 2;
                    if self.buf.len() >= need {
                        let payload = self.buf[i + 2..i + 2 + len].to_vec();
                        self.buf.drain(..need);
                        let subject = parts.first().map(|s| s.to_string()).unwrap_or_default();
                        return Ok(Some((subject, payload)));
                    }
                } else {
                    // +OK, PONG, INFO updates: skip; -ERR is fatal for this connection.
                    self.buf.drain(..i + 2);
                    if head.starts_with("-ERR") {
                        return Err(Error::unavailable(format!("server: {head}")));
                    }
                    continue;
                }
            }
            if !self.fill(deadline)? {
                return Ok(None);
            }
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}
