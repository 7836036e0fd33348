//! Oort's HTTP data server, shared by every connector of a context that
//! clients connect to (a pool of the [`ConnectorEnv`]): `httppush` streams
//! receive POST/PUT bodies at their path; `websocket` sources and sinks in
//! server mode are WebSocket endpoints at their path (clients' messages go
//! to the sources, the sinks' payloads to every client). It listens on
//! `source.httpServerIp`:`source.httpServerPort` (default 127.0.0.1:10081)
//! while at least one route is registered; with `source.httpServerTls`
//! (`certfile`, `keyfile`) it speaks HTTPS and `wss://` ([`TlsListener`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use http_body::Body as _;
use oort_core::{ConnectorEnv, ConnectorError};
use parking_lot::Mutex;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::linger::{Lingering, LingeringListener};

/// Largest request body or WebSocket message.
pub const BODY_LIMIT: usize = 16 * 1024 * 1024;
/// How long a request waits for room in a full stream.
const FULL_WAIT: Duration = Duration::from_secs(5);
/// Payloads a slow WebSocket client may lag behind before it misses some.
const WS_LAG: usize = 1024;

/// What a route serves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Route {
    /// Bodies of requests with this method and path go to the receivers.
    Push(Method, String),
    /// Messages of WebSocket clients at this path go to the receivers.
    WsIn(String),
    /// Payloads sent on this path go to every WebSocket client there.
    WsOut(String),
}

impl Route {
    fn path(&self) -> &str {
        match self {
            Route::Push(_, p) | Route::WsIn(p) | Route::WsOut(p) => p,
        }
    }
}

/// The data server of one context.
#[derive(Default)]
pub struct DataServer {
    state: Mutex<ServerState>,
}

#[derive(Default)]
struct ServerState {
    inbound: HashMap<Route, Vec<(u64, mpsc::Sender<Bytes>)>>,
    outbound: HashMap<String, (usize, broadcast::Sender<Bytes>)>,
    next_id: u64,
    running: Option<(SocketAddr, CancellationToken)>,
}

impl ServerState {
    fn is_empty(&self) -> bool {
        self.inbound.is_empty() && self.outbound.is_empty()
    }
}

/// A connector's place on the data server; dropping it removes the route
/// (and stops the server when it was the last).
pub struct Registration {
    server: Arc<DataServer>,
    route: Route,
    id: u64,
    pub addr: SocketAddr,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut st = self.server.state.lock();
        match &self.route {
            Route::WsOut(p) => {
                if let Some((n, _)) = st.outbound.get_mut(p) {
                    *n -= 1;
                    if *n == 0 {
                        st.outbound.remove(p);
                    }
                }
            }
            r => {
                if let Some(v) = st.inbound.get_mut(r) {
                    v.retain(|(id, _)| *id != self.id);
                    if v.is_empty() {
                        st.inbound.remove(r);
                    }
                }
            }
        }
        if st.is_empty() {
            if let Some((addr, stop)) = st.running.take() {
                tracing::info!(%addr, "data server stopped (no route left)");
                stop.cancel();
            }
        }
    }
}

/// The data server's address from the context's settings.
pub fn addr(kind: &str, env: &ConnectorEnv) -> Result<SocketAddr, ConnectorError> {
    let ip = env.setting("source.httpServerIp").unwrap_or("127.0.0.1");
    let port = env.setting("source.httpServerPort").unwrap_or("10081");
    format!("{ip}:{port}")
        .parse::<SocketAddr>()
        .or_else(|_| format!("[{ip}]:{port}").parse())
        .map_err(|_| {
            ConnectorError::Config(format!(
                "{kind}: the data server address {ip}:{port} (source.httpServerIp, source.httpServerPort) is invalid"
            ))
        })
}

/// The data server's TLS configuration, when `source.httpServerTls` gives
/// a certificate and key (read now: a bad file fails the rule's start).
fn tls_config(
    kind: &str,
    env: &ConnectorEnv,
) -> Result<Option<Arc<rumqttc::tokio_rustls::rustls::ServerConfig>>, ConnectorError> {
    let cert = env.setting("source.httpServerTls.certfile").unwrap_or("");
    let key = env.setting("source.httpServerTls.keyfile").unwrap_or("");
    match (cert.trim(), key.trim()) {
        ("", "") => Ok(None),
        ("", _) | (_, "") => Err(ConnectorError::Config(format!(
            "{kind}: source.httpServerTls needs both certfile and keyfile"
        ))),
        (c, k) => crate::tls::server_config(
            &format!("{kind}: source.httpServerTls"),
            &crate::tls::PemSource::Path(c.into()),
            &crate::tls::PemSource::Path(k.into()),
        )
        .map(Some),
    }
}

/// Handshakes running at once; more connections wait to be accepted.
const MAX_HANDSHAKES: usize = 256;
/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type TlsStream = rumqttc::tokio_rustls::server::TlsStream<Lingering>;

/// A listener that hands axum TLS connections: a task accepts TCP
/// connections and runs each handshake on its own task (a slow client
/// delays nobody), bounded by [`MAX_HANDSHAKES`] and [`HANDSHAKE_TIMEOUT`].
struct TlsListener {
    rx: mpsc::Receiver<(TlsStream, SocketAddr)>,
    local: SocketAddr,
    task: tokio::task::AbortHandle,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsListener {
    fn new(
        l: tokio::net::TcpListener,
        cfg: Arc<rumqttc::tokio_rustls::rustls::ServerConfig>,
        local: SocketAddr,
    ) -> TlsListener {
        let (tx, rx) = mpsc::channel(64);
        let acceptor = rumqttc::tokio_rustls::TlsAcceptor::from(cfg);
        let permits = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        let task = tokio::spawn(async move {
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let (tcp, addr) = match l.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(error = %e, "data server: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(
                        HANDSHAKE_TIMEOUT,
                        acceptor.accept(Lingering::new(tcp)),
                    )
                    .await
                    {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, addr)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%addr, error = %e, "data server: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%addr, "data server: TLS handshake timed out"),
                    }
                });
            }
        })
        .abort_handle();
        TlsListener { rx, local, task }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accepting task is gone (never, while this lives).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

impl DataServer {
    /// Starts listening unless it does; the address it listens on.
    fn ensure_running(
        self: &Arc<Self>,
        st: &mut ServerState,
        env: &ConnectorEnv,
        kind: &str,
    ) -> Result<SocketAddr, ConnectorError> {
        if let Some((a, _)) = &st.running {
            return Ok(*a);
        }
        let want = addr(kind, env)?;
        let unavailable = |e: std::io::Error| {
            ConnectorError::Unavailable(format!(
                "{kind}: the data server cannot listen on {want} (source.httpServerIp, source.httpServerPort): {e}"
            ))
        };
        let l = std::net::TcpListener::bind(want).map_err(unavailable)?;
        let bound = l.local_addr().unwrap_or(want);
        l.set_nonblocking(true).map_err(unavailable)?;
        let l = tokio::net::TcpListener::from_std(l).map_err(unavailable)?;
        let tls = tls_config(kind, env)?;
        let stop = CancellationToken::new();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::downgrade(self));
        let s = stop.clone();
        let secure = tls.is_some();
        tokio::spawn(async move {
            let shutdown = async move { s.cancelled().await };
            let r = match tls {
                Some(cfg) => {
                    axum::serve(TlsListener::new(l, cfg, bound), app)
                        .with_graceful_shutdown(shutdown)
                        .await
                }
                None => {
                    axum::serve(LingeringListener(l), app)
                        .with_graceful_shutdown(shutdown)
                        .await
                }
            };
            if let Err(e) = r {
                tracing::error!(error = %e, "data server failed");
            }
        });
        tracing::info!(addr = %bound, tls = secure, "data server listening");
        st.running = Some((bound, stop));
        Ok(bound)
    }

    /// Registers a receiver of `route` (push or WebSocket messages).
    pub fn receive(
        self: &Arc<Self>,
        env: &ConnectorEnv,
        kind: &str,
        route: Route,
        buffer: usize,
    ) -> Result<(Registration, mpsc::Receiver<Bytes>), ConnectorError> {
        let mut st = self.state.lock();
        let addr = self.ensure_running(&mut st, env, kind)?;
        let (tx, rx) = mpsc::channel(buffer);
        st.next_id += 1;
        let id = st.next_id;
        st.inbound.entry(route.clone()).or_default().push((id, tx));
        Ok((
            Registration {
                server: self.clone(),
                route,
                id,
                addr,
            },
            rx,
        ))
    }

    /// Registers a sender to the WebSocket clients at `path`.
    pub fn send_to(
        self: &Arc<Self>,
        env: &ConnectorEnv,
        kind: &str,
        path: &str,
    ) -> Result<(Registration, broadcast::Sender<Bytes>), ConnectorError> {
        let mut st = self.state.lock();
        let addr = self.ensure_running(&mut st, env, kind)?;
        let e = st
            .outbound
            .entry(path.to_string())
            .or_insert_with(|| (0, broadcast::channel(WS_LAG).0));
        e.0 += 1;
        let tx = e.1.clone();
        st.next_id += 1;
        let id = st.next_id;
        Ok((
            Registration {
                server: self.clone(),
                route: Route::WsOut(path.to_string()),
                id,
                addr,
            },
            tx,
        ))
    }

    /// The address it listens on, if it does.
    pub fn listening(&self) -> Option<SocketAddr> {
        self.state.lock().running.as_ref().map(|(a, _)| *a)
    }
}

async fn handle(
    State(server): State<Weak<DataServer>>,
    method: Method,
    uri: Uri,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
    body: Body,
) -> Response {
    // Every refusal comes before the body is read; a connection whose body
    // is left unread closes after the answer, and the answer says so (a
    // pooled client must not send its next request on it).
    let unread = !body.is_end_stream();
    let refuse = |status: StatusCode, msg: &'static str| {
        let mut r = (status, msg).into_response();
        if unread {
            r.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        r
    };
    let Some(server) = server.upgrade() else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    };
    let path = uri.path().to_string();
    if let Ok(ws) = ws {
        let known = {
            let st = server.state.lock();
            st.outbound.contains_key(&path) || st.inbound.contains_key(&Route::WsIn(path.clone()))
        };
        if !known {
            return refuse(StatusCode::NOT_FOUND, "no websocket endpoint on this path");
        }
        return ws
            .max_message_size(BODY_LIMIT)
            .on_upgrade(move |socket| serve_socket(server, path, socket));
    }
    let targets: Vec<mpsc::Sender<Bytes>> = {
        let st = server.state.lock();
        match st.inbound.get(&Route::Push(method.clone(), path.clone())) {
            Some(v) => v.iter().map(|(_, tx)| tx.clone()).collect(),
            None if st
                .inbound
                .keys()
                .any(|r| matches!(r, Route::Push(..)) && r.path() == path) =>
            {
                return refuse(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            }
            None => return refuse(StatusCode::NOT_FOUND, "no stream on this path"),
        }
    };
    // A declared length over the limit is refused unread: a client waiting
    // for `100 Continue` then never uploads the body. A chunked body is cut
    // at the limit while it is read.
    if body.size_hint().lower() > BODY_LIMIT as u64 {
        return crate::linger::too_large();
    }
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) if over_limit(&e) => return crate::linger::too_large(),
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            )
                .into_response()
        }
    };
    for tx in targets {
        if tokio::time::timeout(FULL_WAIT, tx.send(body.clone()))
            .await
            .is_err()
        {
            return (StatusCode::SERVICE_UNAVAILABLE, "stream is full").into_response();
        }
    }
    (StatusCode::OK, "ok").into_response()
}

/// The body was cut at the limit (not a failed read).
fn over_limit(e: &axum::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// One WebSocket client: its messages go to the sources at `path`, the
/// sinks' payloads at `path` go to it.
async fn serve_socket(server: Arc<DataServer>, path: String, mut socket: WebSocket) {
    let mut out = server
        .state
        .lock()
        .outbound
        .get(&path)
        .map(|(_, tx)| tx.subscribe());
    loop {
        tokio::select! {
            m = socket.recv() => {
                let data = match m {
                    Some(Ok(Message::Text(t))) => Bytes::from(t),
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                let targets: Vec<mpsc::Sender<Bytes>> = server
                    .state
                    .lock()
                    .inbound
                    .get(&Route::WsIn(path.clone()))
                    .map(|v| v.iter().map(|(_, tx)| tx.clone()).collect())
                    .unwrap_or_default();
                for tx in targets {
                    let _ = tx.send(data.clone()).await;
                }
            }
            p = async {
                match out.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => match p {
                Ok(payload) => {
                    // Text without copying when it is UTF-8.
                    let msg = match axum::extract::ws::Utf8Bytes::try_from(payload.clone()) {
                        Ok(t) => Message::Text(t),
                        Err(_) => Message::Binary(payload),
                    };
                    if socket.send(msg).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(%path, missed = n, "websocket client too slow: payloads skipped");
                }
                Err(broadcast::error::RecvError::Closed) => out = None,
            },
        }
    }
}
