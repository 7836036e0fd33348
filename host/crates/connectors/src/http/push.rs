//! `httppush` source: clients POST (or PUT) events to Oort's HTTP data
//! server at the stream's DATASOURCE path; each request body goes to the
//! stream's FORMAT decoder. One data server serves every `httppush` stream
//! of a server ([`DataServer`], a pool of the connector context), on
//! `source.httpServerIp`:`source.httpServerPort` (default 127.0.0.1:10081).
//! It listens while at least one stream is running and answers `200 ok`
//! once every stream on the path has the body queued, `404` for a path no
//! stream serves, `405` for a path served with another method, `413` past
//! the size limit and `503` when a stream stays full for 5 s.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, StatusCode, Uri};
use oort_core::{
    ConnectorEnv, ConnectorError, ConnectorInfo, Props, Source, SourceContext, SourceFactory,
};
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::util::{de, parse_config};

const KIND: &str = "httppush";
/// Largest request body.
const BODY_LIMIT: usize = 16 * 1024 * 1024;
/// How long a request waits for room in a full stream.
const FULL_WAIT: Duration = Duration::from_secs(5);

fn default_method() -> String {
    "POST".into()
}

fn default_buffer() -> u64 {
    1024
}

#[derive(Debug, Deserialize)]
struct Conf {
    #[serde(default = "default_method")]
    method: String,
    #[serde(
        rename = "bufferlength",
        default = "default_buffer",
        deserialize_with = "de::u64_lenient"
    )]
    buffer_length: u64,
}

/// Factory of `httppush` sources.
pub struct HttpPushSourceFactory;

impl SourceFactory for HttpPushSourceFactory {
    fn kind(&self) -> &str {
        KIND
    }

    fn info(&self) -> ConnectorInfo {
        super::info::push()
    }

    fn create(
        &self,
        env: &ConnectorEnv,
        datasource: &str,
        props: &Props,
    ) -> Result<Box<dyn Source>, ConnectorError> {
        let c: Conf = parse_config(KIND, props)?;
        let method = match c.method.trim().to_ascii_uppercase().as_str() {
            "POST" => Method::POST,
            "PUT" => Method::PUT,
            other => {
                return Err(ConnectorError::Config(format!(
                    "httppush: invalid property method {other:?}: expected POST or PUT"
                )))
            }
        };
        let path = datasource.trim();
        if !path.starts_with('/') || path.contains(['?', '#', ' ']) {
            return Err(ConnectorError::Config(format!(
                "httppush: DATASOURCE {path:?} must be a path starting with / (no query)"
            )));
        }
        addr(env)?;
        Ok(Box::new(HttpPushSource {
            env: env.clone(),
            method,
            path: path.to_string(),
            buffer: c.buffer_length.clamp(1, 1 << 20) as usize,
        }))
    }
}

/// The data server's address from the context's settings.
fn addr(env: &ConnectorEnv) -> Result<SocketAddr, ConnectorError> {
    let ip = env.setting("source.httpServerIp").unwrap_or("127.0.0.1");
    let port = env.setting("source.httpServerPort").unwrap_or("10081");
    format!("{ip}:{port}")
        .parse::<SocketAddr>()
        .or_else(|_| format!("[{ip}]:{port}").parse())
        .map_err(|_| {
            ConnectorError::Config(format!(
                "httppush: the data server address {ip}:{port} (source.httpServerIp, source.httpServerPort) is invalid"
            ))
        })
}

/// A running `httppush` source.
pub struct HttpPushSource {
    env: ConnectorEnv,
    method: Method,
    path: String,
    buffer: usize,
}

#[async_trait]
impl Source for HttpPushSource {
    async fn run(&mut self, ctx: SourceContext) -> Result<(), ConnectorError> {
        let server = self.env.pool::<DataServer>();
        let (reg, mut rx) = match server.register(&self.env, &self.method, &self.path, self.buffer)
        {
            Ok(r) => r,
            Err(e) => {
                ctx.conn.disconnected(e.to_string());
                return Err(e);
            }
        };
        tracing::info!(source = %ctx.id, addr = %reg.addr, path = %self.path, method = %self.method, "httppush: serving");
        ctx.conn.connected();
        loop {
            tokio::select! {
                _ = ctx.cancel.cancelled() => break,
                b = rx.recv() => match b {
                    Some(body) => {
                        if !ctx.emit_bytes(body, None).await {
                            break;
                        }
                    }
                    None => break,
                },
            }
        }
        drop(reg);
        Ok(())
    }
}

type RouteKey = (Method, String);

/// The data server shared by the `httppush` streams of one context.
#[derive(Default)]
pub struct DataServer {
    state: Mutex<ServerState>,
}

#[derive(Default)]
struct ServerState {
    routes: HashMap<RouteKey, Vec<(u64, mpsc::Sender<Bytes>)>>,
    next_id: u64,
    running: Option<(SocketAddr, CancellationToken)>,
}

/// A stream's place on the data server; dropping it removes the route
/// (and stops the server when it was the last).
struct Registration {
    server: Arc<DataServer>,
    key: RouteKey,
    id: u64,
    addr: SocketAddr,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut st = self.server.state.lock();
        if let Some(v) = st.routes.get_mut(&self.key) {
            v.retain(|(id, _)| *id != self.id);
            if v.is_empty() {
                st.routes.remove(&self.key);
            }
        }
        if st.routes.is_empty() {
            if let Some((addr, stop)) = st.running.take() {
                tracing::info!(%addr, "httppush: data server stopped (no stream left)");
                stop.cancel();
            }
        }
    }
}

impl DataServer {
    fn register(
        self: &Arc<Self>,
        env: &ConnectorEnv,
        method: &Method,
        path: &str,
        buffer: usize,
    ) -> Result<(Registration, mpsc::Receiver<Bytes>), ConnectorError> {
        let mut st = self.state.lock();
        let addr = match &st.running {
            Some((a, _)) => *a,
            None => {
                let want = addr(env)?;
                let l = std::net::TcpListener::bind(want).map_err(|e| {
                    ConnectorError::Unavailable(format!(
                        "httppush: the data server cannot listen on {want} (source.httpServerIp, source.httpServerPort): {e}"
                    ))
                })?;
                let bound = l.local_addr().unwrap_or(want);
                l.set_nonblocking(true).map_err(|e| {
                    ConnectorError::Unavailable(format!("httppush: data server: {e}"))
                })?;
                let l = tokio::net::TcpListener::from_std(l).map_err(|e| {
                    ConnectorError::Unavailable(format!("httppush: data server: {e}"))
                })?;
                let stop = CancellationToken::new();
                let app = axum::Router::new()
                    .fallback(handle)
                    .layer(DefaultBodyLimit::max(BODY_LIMIT))
                    .with_state(Arc::downgrade(self));
                let s = stop.clone();
                tokio::spawn(async move {
                    let r = axum::serve(l, app)
                        .with_graceful_shutdown(async move { s.cancelled().await })
                        .await;
                    if let Err(e) = r {
                        tracing::error!(error = %e, "httppush: data server failed");
                    }
                });
                tracing::info!(addr = %bound, "httppush: data server listening");
                st.running = Some((bound, stop));
                bound
            }
        };
        let (tx, rx) = mpsc::channel(buffer);
        st.next_id += 1;
        let id = st.next_id;
        let key = (method.clone(), path.to_string());
        st.routes.entry(key.clone()).or_default().push((id, tx));
        Ok((
            Registration {
                server: self.clone(),
                key,
                id,
                addr,
            },
            rx,
        ))
    }
}

async fn handle(
    State(server): State<std::sync::Weak<DataServer>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let Some(server) = server.upgrade() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    };
    let targets: Vec<mpsc::Sender<Bytes>> = {
        let st = server.state.lock();
        match st.routes.get(&(method.clone(), uri.path().to_string())) {
            Some(v) => v.iter().map(|(_, tx)| tx.clone()).collect(),
            None if st.routes.keys().any(|(_, p)| p == uri.path()) => {
                return (StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            }
            None => return (StatusCode::NOT_FOUND, "no stream on this path"),
        }
    };
    for tx in targets {
        match tokio::time::timeout(FULL_WAIT, tx.send(body.clone())).await {
            Ok(_) => {}
            Err(_) => return (StatusCode::SERVICE_UNAVAILABLE, "stream is full"),
        }
    }
    (StatusCode::OK, "ok")
}

/// The address the data server of `env` listens on, if it does (tests).
#[cfg(test)]
pub(crate) fn listening(env: &ConnectorEnv) -> Option<SocketAddr> {
    env.pool::<DataServer>()
        .state
        .lock()
        .running
        .as_ref()
        .map(|(a, _)| *a)
}
