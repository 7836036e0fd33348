//! Our MQTT connection: a [`Client`] queues requests, the [`EventLoop`]
//! (polled by one task) keeps the connection to the broker, writes every
//! queued request in one buffer and one flush, reads whatever the socket
//! has and turns it into events. MQTT 3.1.1 and 5 over TCP or TLS, QoS 0-2
//! both ways, manual or automatic acknowledgements, keep-alive pings.
//!
//! Why not rumqttc's event loop: it writes and flushes each request on its
//! own (one syscall and one TCP segment per message, and the broker pays a
//! wakeup for each) and allocates a topic `String` per message. Its packet
//! codec is used for everything but PUBLISH (see [`super::codec`]).
//!
//! No reconnection state survives a break: what was in flight is reported
//! through [`EventLoop::after_break`] and resent, if at all, by the caller
//! (the sink pipeline's retries and cache; the broker's session for a
//! source).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use rumqttc::tokio_rustls::TlsConnector;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Sleep};

use super::acks::{Acks, Report};
use super::client::{SessionOpts, Settings};
use super::codec::{self, Version};

mod frames;
mod handshake;
mod linger;
mod packets;
mod quiet;
mod requests;
use packets::{In, Simple};
pub(crate) use requests::{Client, Request};

/// How long connecting (TCP, TLS, CONNECT/CONNACK) and one flush may take.
const NET_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests taken from the queue per round.
const TAKE: usize = 512;
/// Largest CONNACK accepted (its properties are small; a peer announcing
/// more is not a broker worth buffering for).
const MAX_CONNACK: usize = 64 * 1024;
/// Read buffer room reserved per read.
const READ_CHUNK: usize = 64 * 1024;
/// The chunk received messages are copied to (a larger run gets its own copy).
const RUN_CHUNK: usize = 64 * 1024;
/// What the event loop reported.
#[derive(Debug)]
pub(crate) enum Ev {
    ConnAck,
    Publish {
        /// UTF-8 (checked).
        topic: Bytes,
        payload: Bytes,
        qos: u8,
        pkid: u16,
    },
    /// How many filters of a SUBACK were refused.
    SubAck {
        refused: usize,
    },
    /// One of our QoS >= 1 publishes went out with this packet id.
    Sent(u16),
    /// The broker acknowledged one of our QoS >= 1 publishes (PUBACK, or
    /// PUBCOMP for QoS 2).
    Acked(u16),
    /// The broker refused one of our QoS >= 1 publishes (an MQTT 5 PUBACK or
    /// PUBREC with an error reason): not delivered.
    Refused(u16, String),
    /// Our DISCONNECT went out (or every client handle is gone).
    Disconnected,
}

impl Ev {
    /// The topic of a [`Ev::Publish`] as text.
    pub fn topic_str(topic: &Bytes) -> &str {
        std::str::from_utf8(topic).unwrap_or_default()
    }
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// Packet-id state of our QoS >= 1 publishes.
const FREE: u8 = 0;
const AWAIT_ACK: u8 = 1;
const AWAIT_COMP: u8 = 2;

struct Conn {
    io: Box<dyn Stream>,
    /// Our publishes in flight, by packet id (`FREE`, `AWAIT_ACK`, `AWAIT_COMP`).
    ids: Vec<u8>,
    inflight: usize,
    max_inflight: usize,
    next_id: u16,
    ping_due: Pin<Box<Sleep>>,
    ping_out: bool,
    /// When the last write went out (a ping is due `keep_alive` after it).
    last_write: Instant,
    /// Packet ids of our SUBSCRIBE/UNSUBSCRIBE (their own counter).
    next_ctl_id: u16,
    /// Plain TCP: lingering raises the socket's low-water mark ([`quiet`]).
    quiet: Option<quiet::Quiet>,
}

impl Conn {
    fn take_id(&mut self) -> u16 {
        loop {
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            if self.ids[self.next_id as usize] == FREE {
                return self.next_id;
            }
        }
    }
}

/// Drives one connection; see the module doc.
pub(crate) struct EventLoop {
    settings: Settings,
    session: SessionOpts,
    tls: Option<TlsConnector>,
    version: Version,
    max_packet: usize,
    rx: mpsc::Receiver<Request>,
    /// Requests taken from the queue and not written yet (a publish waits
    /// here while the broker's receive maximum is reached).
    held: VecDeque<Request>,
    events: VecDeque<Ev>,
    conn: Option<Conn>,
    rbuf: BytesMut,
    /// Where received messages are copied to ([`Self::read_frames`]).
    runs: BytesMut,
    wbuf: BytesMut,
    take: Vec<Request>,
    /// Manual acknowledgements released by a counter ([`Self::release_acks_with`]).
    released: Option<Released>,
    /// How long a read waits for more data while messages flow
    /// ([`Self::set_read_linger`]); zero: never.
    read_linger: Duration,
    /// Reads closer together than this are a flow worth lingering on.
    flowing: Duration,
    /// When the previous read returned.
    last_read: Option<Instant>,
    /// Reads left before lingering is tried again ([`linger::LINGER_BACKOFF`]).
    linger_skip: u32,
}

/// Acknowledgements that wait for a counter (the runtime's count of
/// messages handed on) to reach their index.
struct Released {
    counter: watch::Receiver<u64>,
    /// `(index, qos, pkid)` in index order.
    pending: VecDeque<(u64, u8, u16)>,
    /// The runtime dropped the counter (the source is stopping): what is
    /// pending stays unacknowledged, for the broker to send again.
    closed: bool,
}

impl Released {
    /// The next acknowledgement the counter has passed, if any.
    fn next_due(&mut self) -> Option<(u8, u16)> {
        let done = *self.counter.borrow_and_update();
        let &(idx, qos, pkid) = self.pending.front()?;
        if idx > done {
            return None;
        }
        self.pending.pop_front();
        Some((qos, pkid))
    }
}

impl EventLoop {
    pub fn new(
        settings: Settings,
        session: SessionOpts,
        tls: Option<TlsConnector>,
        cap: usize,
        max_packet: usize,
    ) -> (Client, EventLoop) {
        let (tx, rx) = mpsc::channel(cap.max(1));
        let version = if settings.v5 {
            Version::V5
        } else {
            Version::V4
        };
        (
            Client { tx },
            EventLoop {
                settings,
                session,
                tls,
                version,
                max_packet,
                rx,
                held: VecDeque::new(),
                events: VecDeque::new(),
                conn: None,
                rbuf: BytesMut::new(),
                runs: BytesMut::new(),
                wbuf: BytesMut::new(),
                take: Vec::with_capacity(TAKE),
                released: None,
                read_linger: Duration::ZERO,
                flowing: Duration::ZERO,
                last_read: None,
                linger_skip: 0,
            },
        )
    }

    /// Manual acknowledgements of this loop wait for `counter` to reach the
    /// index given to [`Self::ack_after`]; the loop itself writes them (no
    /// hand-off through another task: an ack's latency bounds a QoS 1
    /// subscription's throughput, as the broker keeps only so many
    /// messages in flight).
    pub fn release_acks_with(&mut self, counter: watch::Receiver<u64>) {
        self.released = Some(Released {
            counter,
            pending: VecDeque::new(),
            closed: false,
        });
    }

    /// Events read and not returned yet.
    pub fn queued_events(&self) -> usize {
        self.events.len()
    }

    /// Acknowledges `(qos, pkid)` once the counter of
    /// [`Self::release_acks_with`] reaches `idx` (at once without one).
    /// Indexes must not decrease.
    pub fn ack_after(&mut self, idx: u64, qos: u8, pkid: u16) {
        if qos == 0 {
            return;
        }
        match &mut self.released {
            Some(r) => r.pending.push_back((idx, qos, pkid)),
            None => self.held.push_back(Request::Ack { qos, pkid }),
        }
    }

    /// The next event if it is a received message already read, without
    /// any IO: the rest of what one read brought, for a source to hand on
    /// in one batch.
    pub fn take_publish(&mut self) -> Option<Ev> {
        match self.events.front() {
            Some(Ev::Publish { .. }) => self.events.pop_front(),
            _ => None,
        }
    }

    /// Moves the publish reports (`Sent`, `Acked`, `Refused`) waiting at the
    /// front of the event queue into `out`, in order, without any IO: the
    /// rest of what one read brought, for [`Acks::apply`].
    pub fn take_reports(&mut self, out: &mut Vec<Report>) {
        while let Some(ev) = self.events.front() {
            let r = match ev {
                Ev::Sent(p) => Report::Sent(*p),
                Ev::Acked(p) => Report::Acked(*p),
                Ev::Refused(p, why) => Report::Refused(*p, why.clone()),
                _ => return,
            };
            self.events.pop_front();
            out.push(r);
        }
    }

    /// After a connection error, before the next poll: settles the
    /// acknowledgement events not consumed yet, then forgets every publish
    /// in flight or queued, so the caller alone decides what is resent (the
    /// sink pipeline's retries and cache) and a batch counted as dropped is
    /// not delivered behind its back. `acks` learns which were lost.
    pub fn after_break(&mut self, acks: &Acks) {
        self.events.retain(|e| match e {
            Ev::Sent(p) => {
                acks.sent(*p);
                false
            }
            Ev::Acked(p) => {
                acks.acked(*p);
                false
            }
            Ev::Refused(p, why) => {
                acks.refused(*p, why);
                false
            }
            _ => true,
        });
        let mut unsent = 0u64;
        let mut keep = VecDeque::new();
        let mut queued = std::mem::take(&mut self.held);
        while let Ok(r) = self.rx.try_recv() {
            queued.push_back(r);
        }
        for r in queued {
            match r {
                Request::Publish { qos: 1.., .. } => unsent += 1,
                Request::Disconnect => keep.push_back(r),
                // QoS 0 publishes are gone with the connection; acks of its
                // packet ids mean nothing on the next one; subscriptions are
                // made again at every CONNACK.
                _ => {}
            }
        }
        self.held = keep;
        acks.broken(unsent);
    }

    /// The next event; connects first when there is no connection (after an
    /// error, the next call reconnects).
    pub async fn poll(&mut self) -> Result<Ev, String> {
        if let Some(ev) = self.events.pop_front() {
            return Ok(ev);
        }
        if self.conn.is_none() {
            if let Some(r) = &mut self.released {
                // Packet ids of the old connection mean nothing on the new
                // one (the broker sends those messages again).
                r.pending.clear();
            }
            let conn = tokio::time::timeout(NET_TIMEOUT, self.connect())
                .await
                .map_err(|_| format!("no CONNACK within {NET_TIMEOUT:?}"))??;
            self.conn = Some(conn);
            return Ok(Ev::ConnAck);
        }
        let r = self.round().await;
        if r.is_err() {
            self.conn = None;
            self.rbuf.clear();
            self.wbuf.clear();
        }
        r
    }

    /// One round on an open connection: write what is queued, read what
    /// arrived, ping when due; returns the first event of the round.
    async fn round(&mut self) -> Result<Ev, String> {
        self.lower_left_mark()?;
        loop {
            // Whole frames left in the buffer (a round cancelled while it
            // lingered) are handled before anything is read.
            if self.events.is_empty() && self.frame()?.is_some() {
                self.read_frames()?;
            }
            // Released acknowledgements are encoded at once (a burst of
            // thousands would otherwise grow the request queue for good),
            // then the requests already taken (room permitting).
            while let Some((qos, pkid)) = self.released.as_mut().and_then(Released::next_due) {
                self.put_simple(if qos == 1 {
                    Simple::PubAck(pkid)
                } else {
                    Simple::PubRec(pkid)
                })?;
            }
            self.encode_held()?;
            if !self.wbuf.is_empty() {
                self.flush().await?;
            }
            if let Some(ev) = self.events.pop_front() {
                return Ok(ev);
            }
            let Some(conn) = self.conn.as_mut() else {
                return Err("not connected".into());
            };
            let can_take = self.held.is_empty();
            let released = self.released.as_mut().filter(|r| !r.closed);
            let has_released = released.is_some();
            let counter_moved = async move {
                match released {
                    Some(r) => r.counter.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            self.rbuf.reserve(READ_CHUNK);
            tokio::select! {
                r = conn.io.read_buf(&mut self.rbuf) => {
                    match r {
                        Ok(0) => return Err("the broker closed the connection".into()),
                        Ok(n) => {
                            if !self.read_linger.is_zero() {
                                self.linger(n).await?;
                            }
                            self.read_frames()?
                        }
                        Err(e) => return Err(format!("read: {e}")),
                    }
                }
                n = self.rx.recv_many(&mut self.take, TAKE), if can_take => {
                    if n == 0 {
                        return Ok(Ev::Disconnected);
                    }
                    self.held.extend(self.take.drain(..));
                }
                ok = counter_moved, if has_released => {
                    if let (false, Some(r)) = (ok, self.released.as_mut()) {
                        // The runtime is gone: nothing more is acknowledged
                        // (never at once: it may not have the messages).
                        r.closed = true;
                    }
                }
                _ = conn.ping_due.as_mut() => {
                    let keep_alive = self.settings.keep_alive;
                    let due = conn.last_write + keep_alive;
                    if due > Instant::now() {
                        // Something was written since the timer was set.
                        conn.ping_due.as_mut().reset(due);
                        continue;
                    }
                    conn.ping_due.as_mut().reset(Instant::now() + keep_alive);
                    if conn.ping_out {
                        return Err("the broker did not answer a ping".into());
                    }
                    conn.ping_out = true;
                    self.put_simple(Simple::PingReq)?;
                }
            }
        }
    }

    /// Writes the write buffer out (within [`NET_TIMEOUT`]). Cancel-safe:
    /// what was written is gone from the buffer.
    async fn flush(&mut self) -> Result<(), String> {
        let Some(conn) = self.conn.as_mut() else {
            return Err("not connected".into());
        };
        let wbuf = &mut self.wbuf;
        let io = &mut conn.io;
        let mut work = std::pin::pin!(async {
            while wbuf.has_remaining() {
                if io.write_buf(wbuf).await? == 0 {
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
            }
            io.flush().await
        });
        // A socket with room takes it all at the first poll: no timer is
        // armed for that (the common case, once per round).
        let first = std::future::poll_fn(|cx| Poll::Ready(work.as_mut().poll(cx))).await;
        let r = match first {
            Poll::Ready(r) => r,
            Poll::Pending => tokio::time::timeout(NET_TIMEOUT, work)
                .await
                .map_err(|_| format!("write: nothing could be sent for {NET_TIMEOUT:?}"))?,
        };
        r.map_err(|e: std::io::Error| format!("write: {e}"))?;
        // The keep-alive timer is moved lazily, when it fires.
        conn.last_write = Instant::now();
        Ok(())
    }

    /// Encodes held requests into the write buffer, publishes only while
    /// the broker's receive maximum allows.
    fn encode_held(&mut self) -> Result<(), String> {
        while let Some(r) = self.held.front() {
            let Some(conn) = self.conn.as_mut() else {
                return Ok(());
            };
            if matches!(r, Request::Publish { qos: 1.., .. }) && conn.inflight >= conn.max_inflight
            {
                return Ok(());
            }
            let Some(r) = self.held.pop_front() else {
                return Ok(());
            };
            match r {
                Request::Publish {
                    topic,
                    payload,
                    qos,
                    retain,
                } => {
                    if let Some(why) =
                        codec::publish_too_large(&topic, payload.len(), self.max_packet)
                    {
                        // Never written (it would break the stream); a QoS
                        // >= 1 publish is reported refused, so its batch
                        // fails. The sink checks first (`MqttSink::publish`).
                        tracing::warn!("mqtt: publish not sent: {why}");
                        if qos > 0 {
                            let id = conn.take_id();
                            self.events.push_back(Ev::Sent(id));
                            self.events.push_back(Ev::Refused(id, why));
                        }
                        continue;
                    }
                    let pkid = if qos > 0 {
                        let id = conn.take_id();
                        conn.ids[id as usize] = AWAIT_ACK;
                        conn.inflight += 1;
                        self.events.push_back(Ev::Sent(id));
                        id
                    } else {
                        0
                    };
                    codec::put_publish(
                        &mut self.wbuf,
                        self.version,
                        &topic,
                        qos,
                        retain,
                        pkid,
                        &payload,
                    );
                }
                Request::Ack { qos, pkid } => self.put_simple(if qos == 1 {
                    Simple::PubAck(pkid)
                } else {
                    Simple::PubRec(pkid)
                })?,
                Request::Subscribe(filters) => {
                    let id = conn.next_ctl_id.checked_add(1).unwrap_or(1);
                    conn.next_ctl_id = id;
                    self.put_subscribe(id, filters)?;
                }
                Request::Unsubscribe(filter) => {
                    let id = conn.next_ctl_id.checked_add(1).unwrap_or(1);
                    conn.next_ctl_id = id;
                    self.put_unsubscribe(id, filter)?;
                }
                Request::Disconnect => {
                    self.put_simple(Simple::Disconnect)?;
                    self.events.push_back(Ev::Disconnected);
                    self.held.clear();
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}
