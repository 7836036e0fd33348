//! Socket helpers for plugins that speak a protocol over `wasi:sockets`
//! (std's `TcpStream`, under the plugin's outbound grants).

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::Error;

/// A byte stream whose reads can wait a bounded time: a `TcpStream`, or a
/// plugin's own wrapper around one (TLS).
pub trait ReadTimeout: Read {
    fn set_read_timeout(&self, d: Option<Duration>) -> std::io::Result<()>;
}

impl ReadTimeout for TcpStream {
    fn set_read_timeout(&self, d: Option<Duration>) -> std::io::Result<()> {
        TcpStream::set_read_timeout(self, d)
    }
}

/// Appends what `stream` has to `buf`, waiting at most until `deadline`:
/// `Ok(true)` when bytes came, `Ok(false)` at the deadline, an
/// `unavailable` error (prefixed by `what`) when the peer closed the
/// connection or the read failed.
pub fn read_until<S: ReadTimeout>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    deadline: Instant,
    what: &str,
) -> Result<bool, Error> {
    let now = Instant::now();
    if now >= deadline {
        return Ok(false);
    }
    let wait = (deadline - now).max(Duration::from_millis(1));
    let io = |e: std::io::Error| {
        let mut err = Error::from(e);
        err.message = format!("{what}: {}", err.message);
        err
    };
    stream.set_read_timeout(Some(wait)).map_err(io)?;
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk) {
        Ok(0) => Err(Error::unavailable(format!(
            "{what}: connection closed by the peer"
        ))),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(true)
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(io(e)),
    }
}
