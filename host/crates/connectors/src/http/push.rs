//! `httppush` source: clients POST (or PUT) events to Oort's HTTP data
//! server ([`super::server`]) at the stream's DATASOURCE path; each request
//! body goes to the stream's FORMAT decoder. The server answers `200 ok`
//! once every stream on the path has the body queued, `404` for a path no
//! stream serves, `405` for a path served with another method, `413` past
//! the size limit and `503` when a stream stays full for 5 s.

use async_trait::async_trait;
use axum::http::Method;
use oort_core::{
    ConnectorEnv, ConnectorError, ConnectorInfo, Props, Source, SourceContext, SourceFactory,
};
use serde::Deserialize;

use super::server::{DataServer, Route};
use crate::util::{de, parse_config};

const KIND: &str = "httppush";

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
        super::server::addr(KIND, env)?;
        Ok(Box::new(HttpPushSource {
            env: env.clone(),
            method,
            path: path.to_string(),
            buffer: c.buffer_length.clamp(1, 1 << 20) as usize,
        }))
    }
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
        let route = Route::Push(self.method.clone(), self.path.clone());
        let (reg, mut rx) = match server.receive(&self.env, KIND, route, self.buffer) {
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

/// The address the data server of `env` listens on, if it does (tests).
#[cfg(test)]
pub(crate) fn listening(env: &ConnectorEnv) -> Option<std::net::SocketAddr> {
    env.pool::<DataServer>().listening()
}
