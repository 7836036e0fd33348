//! `websocket` source and sink, as eKuiper's: with `addr`, Oort is a
//! client of `ws://<addr><path>` (`wss://` with `scheme: wss` and the TLS
//! properties of [`crate::tls`]; the source's path is its DATASOURCE, the
//! sink's the `path` property); without, it is a WebSocket endpoint at that
//! path on its data server ([`super::server`]). The source hands each
//! message to the stream's FORMAT decoder; the sink sends each payload as a
//! text message (binary when it is not UTF-8). A client reconnects with
//! backoff; a server-mode sink with no client connected is unavailable (its
//! batches are retried, cached with `enableCache`, then counted as dropped).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use oort_core::{
    ConnectorEnv, ConnectorError, ConnectorInfo, Consumes, PropSpec, Props, Sink, SinkContext,
    SinkFactory, SinkItem, Source, SourceContext, SourceFactory,
};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

use super::server::{DataServer, Registration, Route, BODY_LIMIT};
use crate::tls::{PemSource, TlsFiles};
use crate::util::{de, parse_config, sleep_or_cancel, Backoff};

const KIND: &str = "websocket";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[derive(Debug, Deserialize)]
struct Conf {
    #[serde(default)]
    addr: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    scheme: String,
    #[serde(
        rename = "insecureskipverify",
        default,
        deserialize_with = "de::bool_lenient"
    )]
    insecure_skip_verify: bool,
    #[serde(
        rename = "checkconnection",
        default,
        deserialize_with = "de::bool_lenient"
    )]
    check_connection: bool,
    #[serde(rename = "certificationpath", default)]
    cert_path: String,
    #[serde(rename = "privatekeypath", default)]
    key_path: String,
    #[serde(rename = "rootcapath", default)]
    root_ca_path: String,
    #[serde(rename = "certficationraw", default)]
    cert_raw: String,
    #[serde(rename = "privatekeyraw", default)]
    key_raw: String,
    #[serde(rename = "rootcaraw", default)]
    root_ca_raw: String,
}

/// Where a connector talks: a URL as a client (with TLS for `wss`), a
/// path as a server endpoint.
#[derive(Debug, Clone)]
enum Mode {
    Client { url: String, tls: Option<TlsFiles> },
    Server(String),
}

fn mode(props: &Props, path_from: &str) -> Result<Mode, ConnectorError> {
    let c: Conf = parse_config(KIND, props)?;
    if c.check_connection {
        return Err(ConnectorError::config(
            "websocket: property checkConnection is not supported yet",
        ));
    }
    let tls = TlsFiles {
        ca: PemSource::pick(&c.root_ca_path, &c.root_ca_raw),
        cert: PemSource::pick(&c.cert_path, &c.cert_raw),
        key: PemSource::pick(&c.key_path, &c.key_raw),
        insecure_skip_verify: c.insecure_skip_verify,
    };
    tls.check(KIND)?;
    let path = if path_from.is_empty() {
        c.path.trim()
    } else {
        path_from.trim()
    };
    let path = if path.is_empty() { "/" } else { path };
    if !path.starts_with('/') {
        return Err(ConnectorError::Config(format!(
            "websocket: the path {path:?} must start with /"
        )));
    }
    let secure = match c.scheme.trim().to_ascii_lowercase().as_str() {
        "" | "ws" => false,
        "wss" => true,
        other => {
            return Err(ConnectorError::Config(format!(
                "websocket: invalid property scheme {other:?}: expected ws or wss"
            )))
        }
    };
    if c.addr.trim().is_empty() {
        if secure || tls.any() {
            return Err(ConnectorError::config(
                "websocket: scheme wss and the TLS properties are for clients (set addr); the server endpoint (no addr) has the data server's TLS (source.httpServerTls in the server config)",
            ));
        }
        return Ok(Mode::Server(path.to_string()));
    }
    if tls.any() && !secure {
        return Err(ConnectorError::config(
            "websocket: the TLS properties need scheme wss",
        ));
    }
    let url = format!(
        "{}://{}{path}",
        if secure { "wss" } else { "ws" },
        c.addr.trim()
    );
    reqwest::Url::parse(&url).map_err(|e| {
        ConnectorError::Config(format!("websocket: invalid addr/path {url:?}: {e}"))
    })?;
    Ok(Mode::Client {
        url,
        tls: secure.then_some(tls),
    })
}

fn common_props() -> Vec<PropSpec> {
    vec![
        PropSpec::new(
            "addr",
            "string",
            "host:port of a WebSocket server to connect to; empty: Oort is the endpoint on its data server",
        ),
        PropSpec::new("scheme", "string", "ws, or wss (TLS) for a client")
            .default(json!("ws"))
            .values(&["ws", "wss"]),
        PropSpec::new(
            "insecureSkipVerify",
            "bool",
            "wss: accept any server certificate (tests only)",
        ),
        PropSpec::new("certificationPath", "string", "wss: client certificate file (PEM)"),
        PropSpec::new("privateKeyPath", "string", "wss: client private key file (PEM)"),
        PropSpec::new("rootCaPath", "string", "wss: CA of the server (default: the system bundle)"),
        PropSpec::new("certficationRaw", "string", "wss: client certificate, base64 PEM"),
        PropSpec::new("privateKeyRaw", "string", "wss: client private key, base64 PEM"),
        PropSpec::new("rootCARaw", "string", "wss: CA of the server, base64 PEM"),
        PropSpec::new("checkConnection", "bool", "Not supported yet: refused when true"),
    ]
}

async fn dial(url: &str, tls: Option<&TlsFiles>) -> Result<Client, ConnectorError> {
    let cfg = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(BODY_LIMIT))
        .max_frame_size(Some(BODY_LIMIT));
    let connector = match tls {
        Some(f) => Some(tokio_tungstenite::Connector::Rustls(
            crate::tls::client_config(KIND, f)?,
        )),
        None => None,
    };
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_tungstenite::connect_async_tls_with_config(url, Some(cfg), true, connector),
    )
    .await
    {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(ConnectorError::Unavailable(format!("websocket {url}: {e}"))),
        Err(_) => Err(ConnectorError::Unavailable(format!(
            "websocket {url}: connect timed out"
        ))),
    }
}

/// Factory of `websocket` sources.
pub struct WebsocketSourceFactory;

impl SourceFactory for WebsocketSourceFactory {
    fn kind(&self) -> &str {
        KIND
    }

    fn info(&self) -> ConnectorInfo {
        ConnectorInfo {
            holds_connection: true,
            datasource_hint: Some("The path (client: on addr; server: on Oort's data server)"),
            properties: common_props(),
            ..ConnectorInfo::new("Receives WebSocket messages, as a client or as an endpoint")
        }
    }

    fn create(
        &self,
        env: &ConnectorEnv,
        datasource: &str,
        props: &Props,
    ) -> Result<Box<dyn Source>, ConnectorError> {
        let mode = mode(
            props,
            if datasource.trim().is_empty() {
                "/"
            } else {
                datasource
            },
        )?;
        if matches!(mode, Mode::Server(_)) {
            super::server::addr(KIND, env)?;
        }
        Ok(Box::new(WebsocketSource {
            env: env.clone(),
            mode,
        }))
    }
}

/// A running `websocket` source.
pub struct WebsocketSource {
    env: ConnectorEnv,
    mode: Mode,
}

#[async_trait]
impl Source for WebsocketSource {
    async fn run(&mut self, ctx: SourceContext) -> Result<(), ConnectorError> {
        match self.mode.clone() {
            Mode::Server(path) => {
                let server = self.env.pool::<DataServer>();
                let (_reg, mut rx) = server
                    .receive(&self.env, KIND, Route::WsIn(path.clone()), 1024)
                    .inspect_err(|e| ctx.conn.disconnected(e.to_string()))?;
                ctx.conn.connected();
                loop {
                    tokio::select! {
                        _ = ctx.cancel.cancelled() => return Ok(()),
                        m = rx.recv() => match m {
                            Some(b) => if !ctx.emit_bytes(b, None).await { return Ok(()) },
                            None => return Ok(()),
                        },
                    }
                }
            }
            Mode::Client { url, tls } => {
                let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
                loop {
                    ctx.conn.connecting();
                    match dial(&url, tls.as_ref()).await {
                        Ok(mut ws) => {
                            ctx.conn.connected();
                            backoff.reset();
                            loop {
                                let m = tokio::select! {
                                    _ = ctx.cancel.cancelled() => return Ok(()),
                                    m = ws.next() => m,
                                };
                                let data = match m {
                                    Some(Ok(Message::Text(t))) => Bytes::from(t),
                                    Some(Ok(Message::Binary(b))) => b,
                                    Some(Ok(Message::Close(_))) | None => {
                                        ctx.conn.disconnected("closed by the server");
                                        break;
                                    }
                                    Some(Err(e)) => {
                                        ctx.conn.disconnected(e.to_string());
                                        break;
                                    }
                                    Some(Ok(_)) => continue,
                                };
                                if !ctx.emit_bytes(data, None).await {
                                    return Ok(());
                                }
                            }
                        }
                        Err(e) => ctx.conn.disconnected(e.to_string()),
                    }
                    if sleep_or_cancel(backoff.next_delay(), &ctx.cancel).await {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// Factory of `websocket` sinks.
pub struct WebsocketSinkFactory;

impl SinkFactory for WebsocketSinkFactory {
    fn kind(&self) -> &str {
        KIND
    }

    fn info(&self) -> ConnectorInfo {
        let mut properties = common_props();
        properties.push(
            PropSpec::new(
                "path",
                "string",
                "The path (client: on addr; server: on Oort's data server)",
            )
            .default(json!("/")),
        );
        properties.push(PropSpec::new(
            "checkConnection",
            "bool",
            "Not supported yet: refused when true",
        ));
        ConnectorInfo {
            holds_connection: true,
            properties,
            ..ConnectorInfo::new("Sends results over WebSocket, as a client or as an endpoint")
        }
    }

    fn consumes(&self) -> Consumes {
        Consumes::Payload
    }

    fn create(&self, env: &ConnectorEnv, props: &Props) -> Result<Box<dyn Sink>, ConnectorError> {
        let mode = mode(props, "")?;
        if matches!(mode, Mode::Server(_)) {
            super::server::addr(KIND, env)?;
        }
        Ok(Box::new(WebsocketSink {
            env: env.clone(),
            mode,
            client: None,
            server: None,
        }))
    }
}

/// A running `websocket` sink.
pub struct WebsocketSink {
    env: ConnectorEnv,
    mode: Mode,
    client: Option<Client>,
    server: Option<(Registration, broadcast::Sender<Bytes>)>,
}

/// Text (without copying) when the payload is UTF-8, else binary.
fn message(payload: &Bytes) -> Message {
    match tokio_tungstenite::tungstenite::Utf8Bytes::try_from(payload.clone()) {
        Ok(t) => Message::Text(t),
        Err(_) => Message::Binary(payload.clone()),
    }
}

#[async_trait]
impl Sink for WebsocketSink {
    async fn connect(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        let r = match &self.mode {
            Mode::Server(path) => {
                let server = self.env.pool::<DataServer>();
                server
                    .send_to(&self.env, KIND, path)
                    .map(|s| self.server = Some(s))
            }
            Mode::Client { url, tls } => dial(url, tls.as_ref())
                .await
                .map(|ws| self.client = Some(ws)),
        };
        match &r {
            Ok(()) => ctx.conn.connected(),
            Err(e) => ctx.conn.disconnected(e.to_string()),
        }
        r
    }

    async fn collect(
        &mut self,
        ctx: &SinkContext,
        items: &[SinkItem],
    ) -> Result<(), ConnectorError> {
        match &self.mode {
            Mode::Server(path) => {
                let Some((_, tx)) = &self.server else {
                    return Err(ConnectorError::Unavailable("websocket: not serving".into()));
                };
                for it in items {
                    if tx.send(it.payload.clone()).is_err() {
                        return Err(ConnectorError::Unavailable(format!(
                            "websocket: no client connected at {path}"
                        )));
                    }
                }
                Ok(())
            }
            Mode::Client { url, tls } => {
                if self.client.is_none() {
                    match dial(url, tls.as_ref()).await {
                        Ok(ws) => self.client = Some(ws),
                        Err(e) => {
                            ctx.conn.disconnected(e.to_string());
                            return Err(e);
                        }
                    }
                }
                let Some(ws) = self.client.as_mut() else {
                    return Err(ConnectorError::Unavailable(
                        "websocket: not connected".into(),
                    ));
                };
                let mut r = Ok(());
                for it in items {
                    if let Err(e) = ws.feed(message(&it.payload)).await {
                        r = Err(e);
                        break;
                    }
                }
                if r.is_ok() {
                    r = ws.flush().await;
                }
                match r {
                    Ok(()) => {
                        ctx.conn.connected();
                        Ok(())
                    }
                    Err(e) => {
                        self.client = None;
                        let e = ConnectorError::Unavailable(format!("websocket {url}: {e}"));
                        ctx.conn.disconnected(e.to_string());
                        Err(e)
                    }
                }
            }
        }
    }

    async fn close(&mut self, _ctx: &SinkContext) -> Result<(), ConnectorError> {
        if let Some(mut ws) = self.client.take() {
            let _ = ws.close(None).await;
        }
        self.server = None;
        Ok(())
    }
}
