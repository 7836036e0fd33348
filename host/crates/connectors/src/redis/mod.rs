//! Redis connectors: the `redis` sink ([`sink`]: keys set or lists pushed
//! per row, pipelined per batch) and pub/sub ([`pubsub`]: the `redisSub`
//! source and `redisPub` sink) and the `redis` lookup table ([`lookup`]).
//! One client per connector instance.

pub mod lookup;
pub mod pubsub;
pub mod sink;

use std::time::Duration;

use oort_core::{ConnectorError, PropSpec, Props, SinkContext};
use serde::Deserialize;
use serde_json::json;

use crate::util::{de, parse_config};

pub use lookup::RedisLookupFactory;
pub use pubsub::{RedisPubSink, RedisPubSinkFactory, RedisSubSource, RedisSubSourceFactory};
pub use sink::{RedisSink, RedisSinkFactory};

/// The server when no address is given.
const DEFAULT_ADDR: &str = "127.0.0.1:6379";
/// How long connecting, and each answer, may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The connection properties (`addr` for the `redis` sink, `address` for
/// pub/sub, as eKuiper names them).
fn connection_props(addr_key: &str, hint: &str) -> Vec<PropSpec> {
    vec![
        PropSpec::new(addr_key, "string", hint)
            .default(json!(DEFAULT_ADDR))
            .connection(),
        PropSpec::new("username", "string", "ACL user name").connection(),
        PropSpec::new("password", "string", "Password").connection(),
        PropSpec::new("db", "int", "Database number, 0-15")
            .default(json!(0))
            .connection(),
    ]
}

/// The connection properties as each connector names them: `addr` (the
/// `redis` sink) or `address` (pub/sub), `username`, `password`, `db`.
#[derive(Debug, Deserialize)]
struct LinkConf {
    #[serde(default)]
    addr: Option<String>,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default, deserialize_with = "de::i64_lenient")]
    db: i64,
}

/// One client and its connection, opened when first needed and dropped
/// when it breaks (the next use opens another).
struct Link {
    client: redis::Client,
    addr: String,
    conn: Option<redis::aio::MultiplexedConnection>,
}

impl Link {
    /// Reads the connection properties of `props` (no IO); refuses a bad
    /// address or db naming the property.
    fn open(kind: &str, addr_key: &str, props: &Props) -> Result<Link, ConnectorError> {
        let c: LinkConf = parse_config(kind, props)?;
        let addr = if addr_key == "addr" {
            c.addr
        } else {
            c.address
        }
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ADDR.to_string());
        let bad = |m: String| ConnectorError::Config(format!("{kind}: {m}"));
        if !(0..=15).contains(&c.db) {
            return Err(bad(format!(
                "invalid property db {}: expected 0 to 15",
                c.db
            )));
        }
        let (host, port) = match addr.trim().rsplit_once(':') {
            Some((h, p)) => match p.parse::<u16>() {
                Ok(p) => (h.trim_matches(['[', ']']).to_string(), p),
                Err(_) => {
                    return Err(bad(format!(
                        "invalid property {addr_key} {addr:?}: bad port"
                    )))
                }
            },
            None => (addr.trim().to_string(), 6379),
        };
        if host.is_empty() {
            return Err(bad(format!(
                "invalid property {addr_key} {addr:?}: host:port expected"
            )));
        }
        let info = redis::ConnectionInfo {
            addr: redis::ConnectionAddr::Tcp(host, port),
            redis: redis::RedisConnectionInfo {
                db: c.db,
                username: Some(c.username).filter(|u| !u.is_empty()),
                password: Some(c.password).filter(|p| !p.is_empty()),
                protocol: redis::ProtocolVersion::RESP2,
            },
        };
        let client = redis::Client::open(info).map_err(|e| bad(e.to_string()))?;
        Ok(Link {
            client,
            addr,
            conn: None,
        })
    }

    /// The open connection, or a new one (with the timeouts).
    async fn connection(&mut self) -> Result<redis::aio::MultiplexedConnection, ConnectorError> {
        if let Some(c) = &self.conn {
            return Ok(c.clone());
        }
        let cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(TIMEOUT)
            .set_response_timeout(TIMEOUT);
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .map_err(|e| classify(&self.addr, &e))?;
        self.conn = Some(c.clone());
        Ok(c)
    }

    /// A sink's `connect`: opens the connection, reports the status.
    async fn connect(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        let r = self.connection().await.map(drop);
        match &r {
            Ok(()) => ctx.conn.connected(),
            Err(e) => ctx.conn.disconnected(e.to_string()),
        }
        r
    }

    /// Runs a batch's pipeline (one round trip). A broken link drops the
    /// connection and shows the sink disconnected.
    async fn run(
        &mut self,
        ctx: &SinkContext,
        pipe: &redis::Pipeline,
    ) -> Result<(), ConnectorError> {
        let r = match self.connection().await {
            Ok(mut conn) => pipe
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| classify(&self.addr, &e)),
            Err(e) => Err(e),
        };
        match &r {
            Ok(()) => ctx.conn.connected(),
            Err(e @ ConnectorError::Unavailable(_)) => {
                self.conn = None;
                ctx.conn.disconnected(e.to_string());
            }
            Err(_) => {}
        }
        r
    }
}

/// The connectivity check of the Redis connectors: connect and PING.
fn ping(kind: &'static str, addr_key: &'static str, props: &Props) -> oort_core::PingFuture {
    let link = Link::open(kind, addr_key, props);
    Box::pin(async move {
        let mut link = link?;
        let mut conn = link.connection().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(|e| classify(&link.addr, &e))
    })
}

/// A Redis error as the runtime sees it: the link (retried), the
/// credentials (the rule stops) or the data.
fn classify(addr: &str, e: &redis::RedisError) -> ConnectorError {
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
        ConnectorError::Unavailable(format!("redis {addr}: {e}"))
    } else if e.kind() == redis::ErrorKind::AuthenticationFailed {
        ConnectorError::Fatal(format!("redis {addr}: {e}"))
    } else {
        ConnectorError::InvalidData(format!("redis {addr}: {e}"))
    }
}

#[cfg(test)]
mod tests;
