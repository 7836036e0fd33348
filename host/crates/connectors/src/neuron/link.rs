//! The connection to Neuron: an NNG (scalability protocols) `pair` socket
//! over TCP (`tcp://host:port`) or IPC (`ipc:///path`), written here on
//! tokio. One link per URL is shared by every `neuron` source and sink of a
//! connector context, as in eKuiper: sources receive every message Neuron
//! sends, sinks send through it. The link dials in the background and
//! dials again after a break (100 ms, doubling to 5 s).
//!
//! Wire format: after an 8-byte greeting each way (`\0SP\0`, the protocol
//! number as u16 big-endian, two zero bytes; `pair` v0 is 16, and the peer
//! must also be `pair`), each message is its length as u64 big-endian and
//! its bytes; over IPC a message type byte (1) comes first.

use std::sync::{Arc, Weak};
use std::time::Duration;

use ahash::AHashMap;
use bytes::Bytes;
use oort_core::{ConnState, ConnectorEnv, ConnectorError};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, oneshot};

/// NNG's protocol number of `pair` (v0).
pub const PAIR: u16 = 16;
/// The largest message accepted from Neuron.
pub const MAX_MESSAGE: u64 = 16 * 1024 * 1024;
/// Messages a sink may have waiting for the socket.
const SEND_QUEUE: usize = 128;
/// Messages kept for a slow source before it loses some (counted).
const RECV_QUEUE: usize = 1024;

/// Where the link dials.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Addr {
    Tcp(String),
    Ipc(std::path::PathBuf),
}

impl Addr {
    /// `tcp://host:port` or `ipc:///path`, as eKuiper's `url`.
    pub fn parse(url: &str) -> Result<Addr, ConnectorError> {
        let bad =
            |m: &str| ConnectorError::Config(format!("neuron: invalid property url {url:?}: {m}"));
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("tcp://") {
            match rest.rsplit_once(':') {
                Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => {
                    Ok(Addr::Tcp(rest.to_string()))
                }
                _ => Err(bad("expected tcp://host:port")),
            }
        } else if let Some(path) = url.strip_prefix("ipc://") {
            if path.starts_with('/') {
                Ok(Addr::Ipc(path.into()))
            } else {
                Err(bad("expected ipc:///absolute/path"))
            }
        } else {
            Err(bad("expected tcp://host:port or ipc:///path"))
        }
    }
}

/// A message for the socket and who waits for it to be written.
type Outgoing = (Bytes, oneshot::Sender<()>);

/// One shared link.
pub struct Link {
    pub addr: Addr,
    out: mpsc::Sender<Outgoing>,
    incoming: broadcast::Sender<Bytes>,
    pub conn: ConnState,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(t) = self.task.lock().take() {
            t.abort();
        }
    }
}

impl Link {
    /// Sends one message; `Ok` once it is written to the socket.
    pub async fn send(&self, msg: Bytes, wait: Duration) -> Result<(), ConnectorError> {
        let (tx, rx) = oneshot::channel();
        let down = || {
            let why = self.conn.snapshot().last_disconnected_message;
            ConnectorError::Unavailable(format!(
                "neuron: not written within {} ms: {}",
                wait.as_millis(),
                if why.is_empty() {
                    "not connected".into()
                } else {
                    why
                }
            ))
        };
        let sent = tokio::time::timeout(wait, async {
            self.out.send((msg, tx)).await.map_err(|_| ())?;
            rx.await.map_err(|_| ())
        })
        .await;
        match sent {
            Ok(Ok(())) => Ok(()),
            _ => Err(down()),
        }
    }

    /// Every message Neuron sends from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Bytes> {
        self.incoming.subscribe()
    }
}

/// The links of a connector context, by address.
#[derive(Default)]
pub struct Links {
    links: Mutex<AHashMap<Addr, Weak<Link>>>,
}

/// The link to `addr`, shared with its other users; dialling starts now.
pub fn link(env: &ConnectorEnv, addr: &Addr) -> Result<Arc<Link>, ConnectorError> {
    let pool = env.pool::<Links>();
    let mut links = pool.links.lock();
    if let Some(l) = links.get(addr).and_then(Weak::upgrade) {
        return Ok(l);
    }
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| ConnectorError::Fatal("neuron: no runtime to run the link".into()))?;
    let (out_tx, out_rx) = mpsc::channel(SEND_QUEUE);
    let (in_tx, _) = broadcast::channel(RECV_QUEUE);
    let l = Arc::new(Link {
        addr: addr.clone(),
        out: out_tx,
        incoming: in_tx.clone(),
        conn: ConnState::default(),
        task: Mutex::new(None),
    });
    let task = handle.spawn(run(addr.clone(), l.conn.clone(), out_rx, in_tx));
    *l.task.lock() = Some(task.abort_handle());
    links.retain(|_, w| w.strong_count() > 0);
    links.insert(addr.clone(), Arc::downgrade(&l));
    Ok(l)
}

/// Dials, serves the connection until it breaks, dials again.
async fn run(
    addr: Addr,
    conn: ConnState,
    mut out: mpsc::Receiver<Outgoing>,
    incoming: broadcast::Sender<Bytes>,
) {
    let mut backoff = crate::util::Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        conn.connecting();
        let r = match &addr {
            Addr::Tcp(a) => match tokio::net::TcpStream::connect(a).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    serve(s, false, &conn, &mut out, &incoming, &mut backoff).await
                }
                Err(e) => Err(format!("dial tcp://{a}: {e}")),
            },
            Addr::Ipc(p) => match tokio::net::UnixStream::connect(p).await {
                Ok(s) => serve(s, true, &conn, &mut out, &incoming, &mut backoff).await,
                Err(e) => Err(format!("dial ipc://{}: {e}", p.display())),
            },
        };
        match r {
            Ok(()) => return,
            Err(e) => {
                tracing::debug!(error = %e, "neuron: link down");
                conn.disconnected(e);
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// One connection: greeting, then messages both ways. `Ok` when no user is
/// left (the send queue closed).
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    s: S,
    ipc: bool,
    conn: &ConnState,
    out: &mut mpsc::Receiver<Outgoing>,
    incoming: &broadcast::Sender<Bytes>,
    backoff: &mut crate::util::Backoff,
) -> Result<(), String> {
    let (mut r, mut w) = tokio::io::split(s);
    w.write_all(&greeting(PAIR))
        .await
        .map_err(|e| format!("greeting: {e}"))?;
    let mut theirs = [0u8; 8];
    tokio::time::timeout(Duration::from_secs(5), r.read_exact(&mut theirs))
        .await
        .map_err(|_| "no greeting from the peer within 5 s".to_string())?
        .map_err(|e| format!("greeting: {e}"))?;
    check_greeting(&theirs)?;
    conn.connected();
    backoff.reset();
    let reader = async {
        loop {
            let m = read_message(&mut r, ipc).await?;
            // No source listening: the message has nobody to go to.
            let _ = incoming.send(m);
        }
    };
    tokio::pin!(reader);
    loop {
        tokio::select! {
            r = &mut reader => return r,
            m = out.recv() => {
                let Some((msg, done)) = m else { return Ok(()) };
                // Its sender gave up (and will send it again): not twice.
                if done.is_closed() {
                    continue;
                }
                write_message(&mut w, ipc, &msg).await.map_err(|e| format!("send: {e}"))?;
                let _ = done.send(());
            }
        }
    }
}

/// Our greeting for `protocol`.
pub fn greeting(protocol: u16) -> [u8; 8] {
    let p = protocol.to_be_bytes();
    [0, b'S', b'P', 0, p[0], p[1], 0, 0]
}

/// The peer's greeting must be SP and `pair`.
pub fn check_greeting(g: &[u8; 8]) -> Result<(), String> {
    if g[..4] != [0, b'S', b'P', 0] || g[6..] != [0, 0] {
        return Err(format!("the peer is not an NNG socket (greeting {g:02x?})"));
    }
    let p = u16::from_be_bytes([g[4], g[5]]);
    if p != PAIR {
        return Err(format!(
            "the peer speaks NNG protocol {p}, not pair ({PAIR})"
        ));
    }
    Ok(())
}

/// Reads one framed message.
pub async fn read_message<R: AsyncRead + Unpin>(r: &mut R, ipc: bool) -> Result<Bytes, String> {
    if ipc {
        let t = r.read_u8().await.map_err(|e| format!("receive: {e}"))?;
        if t != 1 {
            return Err(format!("receive: unknown IPC message type {t}"));
        }
    }
    let n = r.read_u64().await.map_err(|e| format!("receive: {e}"))?;
    if n > MAX_MESSAGE {
        return Err(format!(
            "receive: a message of {n} bytes is over the {MAX_MESSAGE}-byte limit"
        ));
    }
    let mut buf = vec![0u8; n as usize];
    r.read_exact(&mut buf)
        .await
        .map_err(|e| format!("receive: {e}"))?;
    Ok(Bytes::from(buf))
}

/// Writes one framed message.
pub async fn write_message<W: AsyncWrite + Unpin>(
    w: &mut W,
    ipc: bool,
    msg: &[u8],
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(9);
    if ipc {
        head.push(1);
    }
    head.extend_from_slice(&(msg.len() as u64).to_be_bytes());
    w.write_all(&head).await?;
    w.write_all(msg).await?;
    w.flush().await
}
