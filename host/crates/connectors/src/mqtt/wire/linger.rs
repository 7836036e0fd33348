//! Reading in batches: a read while messages flow waits a while for more
//! ([`EventLoop::set_read_linger`]), quietly on plain TCP ([`super::quiet`]).

use super::*;

/// Reads closer together than this (a flow of about 1,000 reads a second
/// and more) are lingered on; a slower stream is not delayed, whatever the
/// linger: its wake-ups cost little.
const FLOWING: Duration = Duration::from_millis(1);
/// A read this large is handled at once, never lingered on.
const LINGER_FULL: usize = 32 * 1024;
/// Reads handled at once after a linger that brought nothing more (the
/// peer waits for us: a broker's in-flight window full of unacknowledged
/// messages; or the broker served the other members of a shared
/// subscription meanwhile), before lingering is tried again. Few: 64
/// left the members of a 4-instance fleet lingering on a minority of
/// their reads (scenario x: 28 wake-ups per 1,000 messages, 23 with 4,
/// and 5-8% less CPU per message; one instance's figures unchanged).
pub(super) const LINGER_BACKOFF: u32 = 4;

impl EventLoop {
    /// Reads while messages flow (the previous read returned less than
    /// [`FLOWING`] ago, or `linger` if shorter) wait `linger` for more
    /// before they are handled, so a steady stream is taken in batches
    /// rather than one message per wakeup of every stage behind the
    /// connection (about 5x less CPU per message at 100k msg/s, at most
    /// `linger` of added latency). A slower or quiet connection's reads are
    /// handled at once. A linger that brings nothing more (the peer waits
    /// for our acknowledgements) turns lingering off for the next
    /// [`LINGER_BACKOFF`] reads. Only for a subscriber: what the loop
    /// writes waits too.
    pub fn set_read_linger(&mut self, linger: Duration) {
        self.read_linger = linger;
        self.flowing = FLOWING.min(linger);
    }

    /// Reads closer together than `gap` count as a flow (tests: a gap that
    /// a busy test machine cannot break).
    #[cfg(test)]
    pub fn set_flowing(&mut self, gap: Duration) {
        self.flowing = gap;
    }

    /// Whether the socket's low-water mark is raised now (`None`: a
    /// connection without quiet lingering, or none).
    #[cfg(test)]
    pub fn quiet_raised(&self) -> Option<bool> {
        let q = self.conn.as_ref()?.quiet.as_ref()?;
        Some(q.is_raised())
    }

    /// A round cancelled while it lingered left the mark raised: lowered
    /// before anything else, or later messages would not wake the loop
    /// until 32 KiB had come.
    pub(super) fn lower_left_mark(&mut self) -> Result<(), String> {
        match self.conn.as_mut().and_then(|c| c.quiet.as_mut()) {
            Some(q) if q.is_raised() => q.lower(),
            _ => Ok(()),
        }
    }

    /// After a read of `n` bytes: while messages flow, waits
    /// [`Self::set_read_linger`] and takes whatever arrived meanwhile.
    /// Cancel-safe: what was read stays in the read buffer.
    pub(super) async fn linger(&mut self, n: usize) -> Result<(), String> {
        let now = Instant::now();
        let flowing = self
            .last_read
            .is_some_and(|t| now.duration_since(t) < self.flowing);
        self.last_read = Some(now);
        if !flowing || n >= LINGER_FULL {
            return Ok(());
        }
        if self.linger_skip > 0 {
            self.linger_skip -= 1;
            return Ok(());
        }
        let before = self.rbuf.len();
        let quiet = match self.conn.as_mut().and_then(|c| c.quiet.as_mut()) {
            Some(q) => q.raise(LINGER_FULL),
            None => false,
        };
        tokio::time::sleep(self.read_linger).await;
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        match conn.quiet.as_mut().filter(|_| quiet) {
            Some(q) => {
                // Our own reads: tokio would still take the socket for
                // drained (see `quiet`).
                while self.rbuf.len() < LINGER_FULL {
                    self.rbuf.reserve(READ_CHUNK);
                    // Nothing more, or the end of the stream: the next
                    // round's read sees it.
                    if !matches!(q.recv(&mut self.rbuf)?, quiet::Got::Bytes) {
                        break;
                    }
                }
                q.lower()?;
            }
            None => {
                while self.rbuf.len() < LINGER_FULL {
                    self.rbuf.reserve(READ_CHUNK);
                    let mut read = std::pin::pin!(conn.io.read_buf(&mut self.rbuf));
                    match std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await {
                        // Nothing more, or the end of the stream: the next round sees it.
                        Poll::Pending | Poll::Ready(Ok(0)) => break,
                        Poll::Ready(Ok(_)) => {}
                        Poll::Ready(Err(e)) => return Err(format!("read: {e}")),
                    }
                }
            }
        }
        if self.rbuf.len() == before {
            // Nothing came meanwhile: the peer may be waiting for us (its
            // window of unacknowledged messages is full).
            self.linger_skip = LINGER_BACKOFF;
        }
        self.last_read = Some(Instant::now());
        Ok(())
    }
}
