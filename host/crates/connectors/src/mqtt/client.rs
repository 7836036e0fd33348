//! Connection settings shared by the MQTT source and sink; building a
//! client and its event loop ([`super::wire`]) from them.

use crate::tls::{PemSource, TlsFiles};
use std::time::Duration;

use oort_core::ConnectorError;
use rumqttc::QoS;
use serde::Deserialize;

use crate::util::{de, parse_config};

pub(crate) use super::wire::{Client, Ev, EventLoop};

/// QoS >= 1 publishes of ours in flight at once (MQTT 5: at most the
/// broker's receive maximum). A sink waits for the acknowledgements of its
/// batch, so its rate is at most this many per broker round trip; a loaded
/// broker's round trip is milliseconds.
pub(crate) const INFLIGHT: u16 = 1000;

/// Largest packet we accept or send (the MQTT limit is 256 MiB).
pub(crate) const MAX_PACKET: usize = 256 * 1024 * 1024;

pub(crate) fn default_server() -> String {
    "tcp://127.0.0.1:1883".into()
}

fn default_protocol() -> String {
    "3.1.1".into()
}

/// Connection props common to the MQTT source and sink.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ConnConf {
    #[serde(default)]
    pub server: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(rename = "clientid", default, deserialize_with = "de::string_lenient")]
    pub client_id: String,
    #[serde(
        rename = "protocolversion",
        default = "default_protocol",
        deserialize_with = "de::string_lenient"
    )]
    pub protocol_version: String,
    #[serde(rename = "certificationpath", default)]
    pub cert_path: String,
    #[serde(rename = "privatekeypath", default)]
    pub key_path: String,
    #[serde(rename = "rootcapath", default)]
    pub root_ca_path: String,
    #[serde(rename = "certficationraw", default)]
    pub cert_raw: String,
    #[serde(rename = "privatekeyraw", default)]
    pub key_raw: String,
    #[serde(rename = "rootcaraw", default)]
    pub root_ca_raw: String,
    #[serde(
        rename = "insecureskipverify",
        default,
        deserialize_with = "de::bool_lenient"
    )]
    pub insecure_skip_verify: bool,
}

/// Where the broker is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// Parses `tcp://host:port` (also `mqtt://`, `ssl://`, `tls://`, `mqtts://`,
/// or a bare `host:port`).
pub(crate) fn parse_server(s: &str) -> Result<Endpoint, String> {
    let s = s.trim();
    let (scheme, rest) = match s.split_once("://") {
        Some((a, b)) => (a.to_ascii_lowercase(), b),
        None => ("tcp".to_string(), s),
    };
    let tls = match scheme.as_str() {
        "tcp" | "mqtt" => false,
        "ssl" | "tls" | "mqtts" | "tcps" => true,
        other => {
            return Err(format!(
                "unsupported scheme {other:?} in server {s:?}: expected tcp://, mqtt://, ssl://, tls:// or mqtts://"
            ))
        }
    };
    let hostport = rest.split('/').next().unwrap_or("");
    let hostport = hostport
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(hostport);
    let default_port = if tls { 8883 } else { 1883 };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("invalid server {s:?}: unclosed ["))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("invalid port in server {s:?}"))?,
            None => default_port,
        };
        (h.to_string(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse::<u16>()
                    .map_err(|_| format!("invalid port in server {s:?}"))?,
            ),
            None => (hostport.to_string(), default_port),
        }
    };
    if host.is_empty() {
        return Err(format!("invalid server {s:?}: no host"));
    }
    Ok(Endpoint { host, port, tls })
}

/// Validated connection settings; building a client from them reads the TLS
/// files (IO), so it happens in `run`/`connect`, never in `create`.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub endpoint: Endpoint,
    pub username: String,
    pub password: String,
    pub client_id: String,
    /// False when `client_id` was generated.
    pub client_id_given: bool,
    pub v5: bool,
    pub tls: TlsFiles,
    pub keep_alive: Duration,
}

impl Settings {
    /// Validates the common props.
    pub fn from_conf(c: &ConnConf) -> Result<Settings, ConnectorError> {
        let server = if c.server.trim().is_empty() {
            default_server()
        } else {
            c.server.clone()
        };
        let endpoint = parse_server(&server)
            .map_err(|e| ConnectorError::Config(format!("mqtt: invalid property server: {e}")))?;
        let v5 = match c.protocol_version.trim() {
            "" | "3.1.1" | "4" | "3.1" | "3" => false,
            "5" | "5.0" => true,
            other => {
                return Err(ConnectorError::Config(format!(
                    "mqtt: invalid property protocolVersion {other:?}: expected 3.1, 3.1.1 or 5"
                )))
            }
        };
        let tls = TlsFiles {
            ca: PemSource::pick(&c.root_ca_path, &c.root_ca_raw),
            cert: PemSource::pick(&c.cert_path, &c.cert_raw),
            key: PemSource::pick(&c.key_path, &c.key_raw),
            insecure_skip_verify: c.insecure_skip_verify,
        };
        tls.check("mqtt")?;
        let client_id_given = !c.client_id.trim().is_empty();
        let client_id = if !client_id_given {
            format!("oort-{}", uuid::Uuid::new_v4().simple())
        } else {
            c.client_id.trim().to_string()
        };
        Ok(Settings {
            endpoint,
            username: c.username.clone(),
            password: c.password.clone(),
            client_id,
            client_id_given,
            v5,
            tls,
            keep_alive: Duration::from_secs(30),
        })
    }

    /// Builds a client with a clean session and automatic acknowledgements
    /// and its event loop (reads TLS files).
    pub fn build(&self, cap: usize) -> Result<(Client, EventLoop), ConnectorError> {
        self.build_session(cap, SessionOpts::default())
    }

    /// Builds a client and its event loop with the given session options
    /// (reads the TLS files, so that a bad one fails here, not at every
    /// reconnection).
    pub fn build_session(
        &self,
        cap: usize,
        session: SessionOpts,
    ) -> Result<(Client, EventLoop), ConnectorError> {
        let tls = if self.endpoint.tls {
            Some(rumqttc::tokio_rustls::TlsConnector::from(
                crate::tls::client_config("mqtt", &self.tls)?,
            ))
        } else {
            None
        };
        Ok(EventLoop::new(self.clone(), session, tls, cap, MAX_PACKET))
    }

    /// Identity of the physical connection these settings open: equal keys
    /// may share one client. A client id generated because none was given
    /// does not count. Holds credentials: never log it.
    pub fn link_key(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{:?}|{}",
            self.server_text(),
            self.username.len(),
            self.username,
            self.password.len(),
            self.password,
            if self.client_id_given {
                self.client_id.as_str()
            } else {
                ""
            },
            self.tls,
            self.v5,
        )
    }

    pub fn server_text(&self) -> String {
        format!(
            "{}://{}:{}",
            if self.endpoint.tls { "ssl" } else { "tcp" },
            self.endpoint.host,
            self.endpoint.port
        )
    }
}

/// Session options of a client (the default: clean session, automatic acks).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SessionOpts {
    /// `cleanSession`/`cleanStart` false: the broker keeps the subscriptions
    /// and queues QoS >= 1 messages while the client is away.
    pub persistent: bool,
    /// PUBACK/PUBREC only through [`EventLoop::ack_after`].
    pub manual_acks: bool,
    /// MQTT 5 session expiry interval (seconds) of a persistent session.
    pub expiry_secs: u32,
}

pub(crate) fn qos_of(q: u8) -> QoS {
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

pub(crate) fn qos5_of(q: u8) -> rumqttc::v5::mqttbytes::QoS {
    use rumqttc::v5::mqttbytes::QoS as Q;
    match q {
        0 => Q::AtMostOnce,
        1 => Q::AtLeastOnce,
        _ => Q::ExactlyOnce,
    }
}

/// Validates a subscription filter (`+`/`#` rules; `$share/group/` prefix ok).
pub(crate) fn validate_filter(t: &str) -> Result<(), String> {
    if t.is_empty() {
        return Err("empty topic".into());
    }
    let body = match t.strip_prefix("$share/") {
        Some(rest) => match rest.split_once('/') {
            Some((g, topic)) if !g.is_empty() && !g.contains(['+', '#']) && !topic.is_empty() => {
                topic
            }
            _ => {
                return Err(format!(
                    "invalid shared subscription {t:?}: expected $share/group/topic"
                ))
            }
        },
        None => t.strip_prefix("$queue/").unwrap_or(t),
    };
    let levels: Vec<&str> = body.split('/').collect();
    for (i, l) in levels.iter().enumerate() {
        if l.contains('#') && (*l != "#" || i + 1 != levels.len()) {
            return Err(format!(
                "invalid topic {t:?}: # must be the whole last level"
            ));
        }
        if l.contains('+') && *l != "+" {
            return Err(format!("invalid topic {t:?}: + must be a whole level"));
        }
    }
    Ok(())
}

/// The connectivity check of both MQTT factories: connect with `props`,
/// wait for the CONNACK (5 s at most), disconnect.
pub(crate) fn ping(props: &oort_core::Props) -> oort_core::PingFuture {
    let settings = parse_config::<ConnConf>("mqtt", props).and_then(|c| {
        if c.server.trim().is_empty() {
            return Err(ConnectorError::config("mqtt: property server is required"));
        }
        Settings::from_conf(&c)
    });
    Box::pin(async move {
        let s = settings?;
        let (client, mut el) = s.build(16)?;
        let server = s.server_text();
        let r = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            loop {
                match el.poll().await {
                    Ok(Ev::ConnAck) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => {
                        return Err(ConnectorError::Unavailable(format!("mqtt {server}: {e}")))
                    }
                }
            }
        })
        .await
        .unwrap_or_else(|_| {
            Err(ConnectorError::Unavailable(format!(
                "mqtt {server}: no answer in 5 s"
            )))
        });
        if r.is_ok() {
            super::source::disconnect(&client, &mut el).await;
        }
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_servers() {
        assert_eq!(
            parse_server("tcp://127.0.0.1:1883").unwrap(),
            Endpoint {
                host: "127.0.0.1".into(),
                port: 1883,
                tls: false
            }
        );
        assert_eq!(parse_server("mqtt://broker").unwrap().port, 1883);
        let e = parse_server("ssl://b.example.com").unwrap();
        assert!(e.tls && e.port == 8883);
        assert_eq!(parse_server("tls://[::1]:8884").unwrap().host, "::1");
        assert_eq!(parse_server("localhost:1884").unwrap().port, 1884);
        assert!(parse_server("ws://x:1").is_err());
        assert!(parse_server("tcp://:1883").is_err());
        assert!(parse_server("tcp://h:port").is_err());
    }

    #[test]
    fn validates_filters() {
        for ok in ["a/b", "a/+/c", "#", "a/#", "$share/g/a/+", "$queue/a"] {
            assert!(validate_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/#/b", "a/b#", "a+/b", "$share/g", "$share//t"] {
            assert!(validate_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_validate_props() {
        let c: ConnConf =
            serde_json::from_value(serde_json::json!({"protocolversion": "5"})).unwrap();
        let s = Settings::from_conf(&c).unwrap();
        assert!(s.v5);
        assert!(s.client_id.starts_with("oort-"));
        assert_eq!(s.server_text(), "tcp://127.0.0.1:1883");
        let c: ConnConf =
            serde_json::from_value(serde_json::json!({"protocolversion": "6"})).unwrap();
        assert!(Settings::from_conf(&c).is_err());
        let c: ConnConf =
            serde_json::from_value(serde_json::json!({"certificationpath": "/x.pem"})).unwrap();
        assert!(Settings::from_conf(&c).is_err());
    }
}
