//! Connection settings shared by the MQTT source and sink, and a thin wrapper
//! over rumqttc's MQTT 3.1.1 and MQTT 5 clients so both speak one small API.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use oort_core::ConnectorError;
use rumqttc::{QoS, Transport};
use serde::Deserialize;

use crate::util::de;

use super::acks::Acks;

/// QoS >= 1 publishes of ours in flight at once, MQTT 3.1.1 (rumqttc's
/// default is 100). A sink waits for the acknowledgements of its batch, so its rate is
/// at most this many per broker round trip; a loaded broker's round trip is
/// milliseconds.
const INFLIGHT: u16 = 1000;

/// Largest packet we accept or send (the MQTT limit is 256 MiB).
const MAX_PACKET: usize = 256 * 1024 * 1024;

/// System CA bundles tried when TLS is used without `rootCaPath`.
const SYSTEM_CA_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

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

#[derive(Debug, Clone, Default)]
pub(crate) struct TlsFiles {
    pub ca: Option<Source>,
    pub cert: Option<Source>,
    pub key: Option<Source>,
}

/// PEM material: a path or base64 of the content.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Path(PathBuf),
    Base64(String),
}

impl Source {
    fn pick(path: &str, raw: &str) -> Option<Source> {
        if !raw.is_empty() {
            Some(Source::Base64(raw.to_string()))
        } else if !path.is_empty() {
            Some(Source::Path(PathBuf::from(path)))
        } else {
            None
        }
    }

    fn load(&self, what: &str) -> Result<Vec<u8>, ConnectorError> {
        match self {
            Source::Path(p) => std::fs::read(p).map_err(|e| {
                ConnectorError::Config(format!("mqtt: cannot read {what} {}: {e}", p.display()))
            }),
            Source::Base64(b) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .map_err(|e| {
                        ConnectorError::Config(format!("mqtt: invalid base64 in {what}: {e}"))
                    })
            }
        }
    }
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
            ca: Source::pick(&c.root_ca_path, &c.root_ca_raw),
            cert: Source::pick(&c.cert_path, &c.cert_raw),
            key: Source::pick(&c.key_path, &c.key_raw),
        };
        if tls.cert.is_some() != tls.key.is_some() {
            return Err(ConnectorError::config(
                "mqtt: properties certificationPath and privateKeyPath must be set together",
            ));
        }
        if endpoint.tls && c.insecure_skip_verify {
            return Err(ConnectorError::config(
                "mqtt: property insecureSkipVerify is not supported: give the broker's CA in rootCaPath instead",
            ));
        }
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

    fn transport(&self) -> Result<Transport, ConnectorError> {
        if !self.endpoint.tls {
            return Ok(Transport::Tcp);
        }
        let ca = match &self.tls.ca {
            Some(s) => s.load("rootCaPath")?,
            None => SYSTEM_CA_FILES
                .iter()
                .find_map(|p| std::fs::read(p).ok())
                .ok_or_else(|| {
                    ConnectorError::config("mqtt: no system CA bundle found: set rootCaPath")
                })?,
        };
        let client_auth = match (&self.tls.cert, &self.tls.key) {
            (Some(c), Some(k)) => Some((c.load("certificationPath")?, k.load("privateKeyPath")?)),
            _ => None,
        };
        Ok(Transport::tls(ca, client_auth, None))
    }

    /// Builds a client with a clean session and automatic acknowledgements
    /// and its event loop (reads TLS files).
    pub fn build(&self, cap: usize) -> Result<(Client, EventLoop), ConnectorError> {
        self.build_session(cap, SessionOpts::default())
    }

    /// Builds a client and its event loop with the given session options.
    pub fn build_session(
        &self,
        cap: usize,
        session: SessionOpts,
    ) -> Result<(Client, EventLoop), ConnectorError> {
        let transport = self.transport()?;
        let Endpoint { host, port, .. } = &self.endpoint;
        if self.v5 {
            let mut o = rumqttc::v5::MqttOptions::new(&self.client_id, host, *port);
            o.set_keep_alive(self.keep_alive)
                .set_clean_start(!session.persistent)
                .set_manual_acks(session.manual_acks)
                .set_max_packet_size(Some(MAX_PACKET as u32))
                .set_transport(transport);
            if session.persistent {
                o.set_session_expiry_interval(Some(session.expiry_secs));
            }
            // MQTT 5: the broker's receive maximum sets what is in flight.
            if !self.username.is_empty() {
                o.set_credentials(&self.username, &self.password);
            }
            let (c, l) = rumqttc::v5::AsyncClient::new(o, cap);
            Ok((Client::V5(c), EventLoop::V5(Box::new(l))))
        } else {
            let mut o = rumqttc::MqttOptions::new(&self.client_id, host, *port);
            o.set_keep_alive(self.keep_alive)
                .set_clean_session(!session.persistent)
                .set_manual_acks(session.manual_acks)
                .set_max_packet_size(MAX_PACKET, MAX_PACKET)
                .set_inflight(INFLIGHT)
                .set_transport(transport);
            if !self.username.is_empty() {
                o.set_credentials(&self.username, &self.password);
            }
            let (c, l) = rumqttc::AsyncClient::new(o, cap);
            Ok((Client::V4(c), EventLoop::V4(Box::new(l))))
        }
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
    /// PUBACK/PUBREC only when [`Client::ack`] is called.
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

fn qos5_of(q: u8) -> rumqttc::v5::mqttbytes::QoS {
    use rumqttc::v5::mqttbytes::QoS as Q;
    match q {
        0 => Q::AtMostOnce,
        1 => Q::AtLeastOnce,
        _ => Q::ExactlyOnce,
    }
}

/// What the event loop reported, version-independent.
#[derive(Debug)]
pub(crate) enum Ev {
    ConnAck,
    Publish {
        topic: String,
        payload: Bytes,
        qos: u8,
        pkid: u16,
    },
    /// How many filters of a SUBACK were refused.
    SubAck {
        refused: usize,
    },
    /// The client wrote out one of our QoS >= 1 publishes (packet id).
    Sent(u16),
    /// The broker acknowledged one of our QoS >= 1 publishes (PUBACK, or
    /// PUBCOMP for QoS 2), by packet id.
    Acked(u16),
    /// Our DISCONNECT went out.
    Disconnected,
    Other,
}

#[derive(Clone)]
pub(crate) enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

pub(crate) enum EventLoop {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

impl EventLoop {
    /// After a connection error, before the next poll: settles the
    /// acknowledgements the client had buffered, then forgets every publish
    /// it would send again or still held (unacknowledged, collided, or
    /// drained from its queue), so the sink pipeline alone decides what is
    /// resent (its retries, its cache) and a batch counted as dropped is not
    /// delivered behind its back. `acks` learns which were lost.
    pub fn after_break(&mut self, acks: &Acks) {
        use rumqttc::Outgoing;
        let unsent = match self {
            EventLoop::V4(l) => {
                use rumqttc::{Event, Packet};
                l.state.events.retain(|e| match e {
                    Event::Outgoing(Outgoing::Publish(p)) if *p != 0 => {
                        acks.sent(*p);
                        false
                    }
                    Event::Incoming(Packet::PubAck(a)) => {
                        acks.acked(a.pkid);
                        false
                    }
                    Event::Incoming(Packet::PubComp(a)) => {
                        acks.acked(a.pkid);
                        false
                    }
                    _ => true,
                });
                let mut unsent = u64::from(l.state.collision.take().is_some());
                l.pending.retain(|r| match r {
                    rumqttc::Request::Publish(p) => {
                        if p.pkid == 0 && p.qos != rumqttc::QoS::AtMostOnce {
                            unsent += 1;
                        }
                        false
                    }
                    _ => true,
                });
                unsent
            }
            EventLoop::V5(l) => {
                use rumqttc::v5::mqttbytes::v5::Packet;
                use rumqttc::v5::Event;
                l.state.events.retain(|e| match e {
                    Event::Outgoing(Outgoing::Publish(p)) if *p != 0 => {
                        acks.sent(*p);
                        false
                    }
                    Event::Incoming(Packet::PubAck(a)) => {
                        acks.acked(a.pkid);
                        false
                    }
                    Event::Incoming(Packet::PubComp(a)) => {
                        acks.acked(a.pkid);
                        false
                    }
                    _ => true,
                });
                let mut unsent = u64::from(l.state.collision.take().is_some());
                l.pending.retain(|r| match r {
                    rumqttc::v5::Request::Publish(p) => {
                        if p.pkid == 0 && p.qos != rumqttc::v5::mqttbytes::QoS::AtMostOnce {
                            unsent += 1;
                        }
                        false
                    }
                    _ => true,
                });
                unsent
            }
        };
        acks.broken(unsent);
    }

    /// Drives the connection; after an error the next call reconnects.
    pub async fn poll(&mut self) -> Result<Ev, String> {
        match self {
            EventLoop::V4(l) => {
                use rumqttc::{Event, Outgoing, Packet};
                match l.poll().await.map_err(|e| e.to_string())? {
                    Event::Incoming(Packet::ConnAck(_)) => Ok(Ev::ConnAck),
                    Event::Incoming(Packet::Publish(p)) => Ok(Ev::Publish {
                        topic: p.topic,
                        payload: p.payload,
                        qos: p.qos as u8,
                        pkid: p.pkid,
                    }),
                    Event::Incoming(Packet::SubAck(s)) => Ok(Ev::SubAck {
                        refused: s
                            .return_codes
                            .iter()
                            .filter(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                            .count(),
                    }),
                    Event::Incoming(Packet::PubAck(a)) => Ok(Ev::Acked(a.pkid)),
                    Event::Incoming(Packet::PubComp(a)) => Ok(Ev::Acked(a.pkid)),
                    Event::Outgoing(Outgoing::Publish(p)) if p != 0 => Ok(Ev::Sent(p)),
                    Event::Outgoing(Outgoing::Disconnect) => Ok(Ev::Disconnected),
                    _ => Ok(Ev::Other),
                }
            }
            EventLoop::V5(l) => {
                use rumqttc::v5::mqttbytes::v5::{Packet, SubscribeReasonCode};
                use rumqttc::v5::Event;
                use rumqttc::Outgoing;
                match l.poll().await.map_err(|e| e.to_string())? {
                    Event::Incoming(Packet::ConnAck(_)) => Ok(Ev::ConnAck),
                    Event::Incoming(Packet::Publish(p)) => Ok(Ev::Publish {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload,
                        qos: p.qos as u8,
                        pkid: p.pkid,
                    }),
                    Event::Incoming(Packet::SubAck(s)) => Ok(Ev::SubAck {
                        refused: s
                            .return_codes
                            .iter()
                            .filter(|c| !matches!(c, SubscribeReasonCode::Success(_)))
                            .count(),
                    }),
                    Event::Incoming(Packet::PubAck(a)) => Ok(Ev::Acked(a.pkid)),
                    Event::Incoming(Packet::PubComp(a)) => Ok(Ev::Acked(a.pkid)),
                    Event::Outgoing(Outgoing::Publish(p)) if p != 0 => Ok(Ev::Sent(p)),
                    Event::Outgoing(Outgoing::Disconnect) => Ok(Ev::Disconnected),
                    _ => Ok(Ev::Other),
                }
            }
        }
    }
}

impl Client {
    /// Queues a SUBSCRIBE for all filters without waiting.
    pub fn try_subscribe(&self, topics: &[String], qos: u8) -> Result<(), String> {
        match self {
            Client::V4(c) => c
                .try_subscribe_many(
                    topics
                        .iter()
                        .map(|t| rumqttc::SubscribeFilter::new(t.clone(), qos_of(qos))),
                )
                .map_err(|e| e.to_string()),
            Client::V5(c) => c
                .try_subscribe_many(
                    topics
                        .iter()
                        .map(|t| rumqttc::v5::mqttbytes::v5::Filter::new(t.clone(), qos5_of(qos))),
                )
                .map_err(|e| e.to_string()),
        }
    }

    /// Queues one SUBSCRIBE holding every `(filter, qos)` pair, without waiting.
    pub fn try_subscribe_each(&self, filters: &[(String, u8)]) -> Result<(), String> {
        match self {
            Client::V4(c) => c
                .try_subscribe_many(
                    filters
                        .iter()
                        .map(|(t, q)| rumqttc::SubscribeFilter::new(t.clone(), qos_of(*q))),
                )
                .map_err(|e| e.to_string()),
            Client::V5(c) => c
                .try_subscribe_many(
                    filters.iter().map(|(t, q)| {
                        rumqttc::v5::mqttbytes::v5::Filter::new(t.clone(), qos5_of(*q))
                    }),
                )
                .map_err(|e| e.to_string()),
        }
    }

    /// Queues an UNSUBSCRIBE for one filter without waiting.
    pub fn try_unsubscribe(&self, filter: &str) -> Result<(), String> {
        match self {
            Client::V4(c) => c.try_unsubscribe(filter).map_err(|e| e.to_string()),
            Client::V5(c) => c.try_unsubscribe(filter).map_err(|e| e.to_string()),
        }
    }

    /// Queues a PUBLISH (waits only for room in the request channel).
    pub async fn publish(
        &self,
        topic: String,
        qos: u8,
        retain: bool,
        payload: Bytes,
    ) -> Result<(), String> {
        match self {
            Client::V4(c) => c
                .publish_bytes(topic, qos_of(qos), retain, payload)
                .await
                .map_err(|e| e.to_string()),
            Client::V5(c) => c
                .publish_bytes(topic, qos5_of(qos), retain, payload)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// Acknowledges an incoming PUBLISH (PUBACK for QoS 1, PUBREC for QoS 2;
    /// nothing for QoS 0). Only for clients built with manual acks; waits for
    /// room in the request channel.
    pub async fn ack(&self, qos: u8, pkid: u16) -> Result<(), String> {
        match self {
            Client::V4(c) => {
                let mut p = rumqttc::Publish::from_bytes("", qos_of(qos), Bytes::new());
                p.pkid = pkid;
                c.ack(&p).await.map_err(|e| e.to_string())
            }
            Client::V5(c) => {
                let mut p =
                    rumqttc::v5::mqttbytes::v5::Publish::new("", qos5_of(qos), Bytes::new(), None);
                p.pkid = pkid;
                c.ack(&p).await.map_err(|e| e.to_string())
            }
        }
    }

    /// Queues a DISCONNECT without waiting.
    pub fn try_disconnect(&self) {
        let _ = match self {
            Client::V4(c) => c.try_disconnect().map_err(|e| e.to_string()),
            Client::V5(c) => c.try_disconnect().map_err(|e| e.to_string()),
        };
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
