//! Redis connectors: the `redis` sink ([`sink`]: keys set or lists pushed
//! per row, pipelined per batch) and pub/sub ([`pubsub`]: the `redisSub`
//! source and `redisPub` sink). One client per connector instance.

pub mod pubsub;
pub mod sink;

use std::time::Duration;

use oort_core::{ConnectorError, PropSpec};
use serde_json::json;

pub use pubsub::{RedisPubSink, RedisPubSinkFactory, RedisSubSource, RedisSubSourceFactory};
pub use sink::{RedisSink, RedisSinkFactory};

/// How long connecting, and each answer, may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The connection properties (`addr` for the `redis` sink, `address` for
/// pub/sub, as eKuiper names them).
fn connection_props(addr_key: &str, hint: &str) -> Vec<PropSpec> {
    vec![
        PropSpec::new(addr_key, "string", hint)
            .default(json!("127.0.0.1:6379"))
            .connection(),
        PropSpec::new("username", "string", "ACL user name").connection(),
        PropSpec::new("password", "string", "Password").connection(),
        PropSpec::new("db", "int", "Database number, 0-15")
            .default(json!(0))
            .connection(),
    ]
}

/// A client for `host:port` (no IO); refuses a bad address or db.
fn client(
    kind: &str,
    addr: &str,
    username: &str,
    password: &str,
    db: i64,
) -> Result<redis::Client, ConnectorError> {
    let bad = |m: String| ConnectorError::Config(format!("{kind}: {m}"));
    if !(0..=15).contains(&db) {
        return Err(bad(format!("invalid property db {db}: expected 0 to 15")));
    }
    let (host, port) = match addr.trim().rsplit_once(':') {
        Some((h, p)) => match p.parse::<u16>() {
            Ok(p) => (h.trim_matches(['[', ']']).to_string(), p),
            Err(_) => return Err(bad(format!("invalid address {addr:?}: bad port"))),
        },
        None => (addr.trim().to_string(), 6379),
    };
    if host.is_empty() {
        return Err(bad(format!("invalid address {addr:?}: host:port expected")));
    }
    let info = redis::ConnectionInfo {
        addr: redis::ConnectionAddr::Tcp(host, port),
        redis: redis::RedisConnectionInfo {
            db,
            username: Some(username.to_string()).filter(|u| !u.is_empty()),
            password: Some(password.to_string()).filter(|p| !p.is_empty()),
            protocol: redis::ProtocolVersion::RESP2,
        },
    };
    redis::Client::open(info).map_err(|e| bad(e.to_string()))
}

/// Opens a multiplexed connection with the timeouts.
async fn connect(
    client: &redis::Client,
    addr: &str,
) -> Result<redis::aio::MultiplexedConnection, ConnectorError> {
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(TIMEOUT)
        .set_response_timeout(TIMEOUT);
    client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .map_err(|e| classify(addr, &e))
}

/// The connectivity check of the Redis connectors: connect and PING.
fn ping(
    kind: &'static str,
    addr_key: &'static str,
    props: &oort_core::Props,
) -> oort_core::PingFuture {
    let get = |k: &str| -> String {
        props
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .and_then(|(_, v)| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let addr = Some(get(addr_key))
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "127.0.0.1:6379".into());
    let db = props
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("db"))
        .and_then(|(_, v)| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
        .unwrap_or(0);
    let c = client(kind, &addr, &get("username"), &get("password"), db);
    Box::pin(async move {
        let mut conn = connect(&c?, &addr).await?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(|e| classify(&addr, &e))
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
