//! The EdgeX message bus settings shared by the `edgex` source and sink:
//! which bus (`type`: mqtt, redis, nats-core), where it is, and what its
//! `optional` map asks. Each bus is reached through a connector Oort
//! already has (the MQTT client, Redis pub/sub) or the NATS client of
//! [`super::nats`]; topics are translated as EdgeX's own clients translate
//! them (`edgex/events/#` is the Redis pattern `edgex.events.*` and the
//! NATS subject `edgex.events.>`).

use std::time::Duration;

use base64::Engine;
use oort_core::{ConnectorError, PropSpec, Props};
use serde::Deserialize;
use serde_json::json;

use super::envelope::MessageType;
use super::jetstream::{parse_deliver, JetStreamConf};
use super::nats::{NatsConf, NatsFormat};
use crate::util::de;

fn default_type() -> String {
    "mqtt".into()
}
fn default_protocol() -> String {
    "tcp".into()
}
fn default_server() -> String {
    "localhost".into()
}

/// The bus settings as the user wrote them.
#[derive(Debug, Deserialize)]
pub(super) struct Bus {
    #[serde(rename = "type", default = "default_type")]
    typ: String,
    #[serde(default = "default_protocol")]
    protocol: String,
    #[serde(default = "default_server", alias = "host")]
    server: String,
    #[serde(default, deserialize_with = "de::opt_u64_lenient")]
    port: Option<u64>,
    #[serde(rename = "messagetype", default)]
    message_type: String,
    #[serde(default)]
    optional: serde_json::Map<String, serde_json::Value>,
    /// Resolved by the host before the connector sees the props: the
    /// profile's `type`, `server`, `port`, `optional`... are merged in (as
    /// eKuiper's `connectionSelector: edgex.redisMsgBus`). Known, not read.
    #[serde(rename = "connectionselector", default)]
    _connection_selector: String,
}

/// How a bus is reached.
pub(super) enum Transport {
    /// Props of the `mqtt` connector (topic added by the caller).
    Mqtt(Props),
    /// Props of the `redisSub`/`redisPub` connectors (channels added by
    /// the caller).
    Redis(Props),
    /// A NATS core connection.
    Nats(NatsConf),
}

fn bad(m: String) -> ConnectorError {
    ConnectorError::Config(format!("edgex: {m}"))
}

/// Refuses an `optional` key this bus does not honour, naming those it does.
fn refuse(bus: &str, key: &str, known: &str) -> ConnectorError {
    bad(format!(
        "optional {key} is not supported on the {bus} bus: use {known}"
    ))
}

impl Bus {
    /// The transport this bus is reached by; what EdgeX's `optional` asks
    /// that Oort cannot do is refused, naming the key.
    pub(super) fn transport(&self, sink: bool) -> Result<Transport, ConnectorError> {
        match self.typ.trim().to_ascii_lowercase().as_str() {
            "mqtt" => self.mqtt(sink).map(Transport::Mqtt),
            "redis" => self.redis().map(Transport::Redis),
            "nats-core" | "nats" => self.nats(false).map(Transport::Nats),
            "nats-jetstream" => self.nats(true).map(Transport::Nats),
            "zero" => Err(bad(
                "message bus type zero (ZeroMQ, removed in EdgeX 3) is not supported: use mqtt, redis or nats-core"
                    .into(),
            )),
            other => Err(bad(format!(
                "invalid property type {other:?}: expected mqtt, redis, nats-core or nats-jetstream"
            ))),
        }
    }

    fn text(v: &serde_json::Value) -> String {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string())
    }

    fn mqtt(&self, sink: bool) -> Result<Props, ConnectorError> {
        let scheme = match self.protocol.trim().to_ascii_lowercase().as_str() {
            "tcp" | "mqtt" | "" => "tcp",
            "ssl" | "tls" | "mqtts" => "ssl",
            other => {
                return Err(bad(format!(
                    "invalid property protocol {other:?}: expected tcp or ssl"
                )))
            }
        };
        let mut p = Props::new();
        p.insert(
            "server".into(),
            json!(format!(
                "{scheme}://{}:{}",
                self.server.trim(),
                self.port.unwrap_or(1883)
            )),
        );
        for (k, v) in &self.optional {
            let text = || Self::text(v);
            let b64 = || base64::engine::general_purpose::STANDARD.encode(text());
            let (key, val) = match k.to_ascii_lowercase().as_str() {
                "clientid" => ("clientid", json!(text())),
                "username" => ("username", json!(text())),
                "password" => ("password", json!(text())),
                "qos" => ("qos", v.clone()),
                "retained" if sink => ("retained", v.clone()),
                "certfile" => ("certificationPath", json!(text())),
                "keyfile" => ("privateKeyPath", json!(text())),
                "certpemblock" => ("certficationRaw", json!(b64())),
                "keypemblock" => ("privateKeyRaw", json!(b64())),
                "skipcertverify" => ("insecureSkipVerify", v.clone()),
                "retained" => return Err(bad(format!("optional {k} is not supported by the source"))),
                _ => {
                    return Err(refuse(
                        "mqtt",
                        k,
                        "ClientId, Username, Password, Qos, Retained, CertFile, KeyFile, CertPEMBlock, KeyPEMBlock, SkipCertVerify",
                    ))
                }
            };
            p.insert(key.into(), val);
        }
        Ok(p)
    }

    fn redis(&self) -> Result<Props, ConnectorError> {
        match self.protocol.trim().to_ascii_lowercase().as_str() {
            "" | "tcp" | "redis" => {}
            other => {
                return Err(bad(format!(
                    "invalid property protocol {other:?}: the redis bus takes tcp (TLS is not supported yet)"
                )))
            }
        }
        let mut p = Props::new();
        p.insert(
            "address".into(),
            json!(format!(
                "{}:{}",
                self.server.trim(),
                self.port.unwrap_or(6379)
            )),
        );
        for (k, v) in &self.optional {
            match k.to_ascii_lowercase().as_str() {
                "username" => p.insert("username".into(), json!(Self::text(v))),
                "password" => p.insert("password".into(), json!(Self::text(v))),
                _ => return Err(refuse("redis", k, "Username, Password")),
            };
        }
        Ok(p)
    }

    fn nats(&self, jetstream: bool) -> Result<NatsConf, ConnectorError> {
        let bus = if jetstream {
            "nats-jetstream"
        } else {
            "nats-core"
        };
        let scheme = match self.protocol.trim().to_ascii_lowercase().as_str() {
            "" | "tcp" | "nats" => "nats",
            "tls" | "ssl" => "tls",
            other => {
                return Err(bad(format!(
                    "invalid property protocol {other:?}: expected tcp or tls"
                )))
            }
        };
        let mut c = NatsConf {
            url: format!(
                "{scheme}://{}:{}",
                self.server.trim(),
                self.port.unwrap_or(4222)
            ),
            name: None,
            user: None,
            password: None,
            format: NatsFormat::Nats,
            connect_timeout: Duration::from_secs(5),
            queue_group: None,
            jetstream: None,
        };
        let mut js = JetStreamConf::default();
        let flag = |k: &str, t: &str| match t.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" | "" => Ok(false),
            _ => Err(bad(format!(
                "invalid optional {k} {t:?}: expected true or false"
            ))),
        };
        for (k, v) in &self.optional {
            let text = Self::text(v);
            let lk = k.to_ascii_lowercase();
            match lk.as_str() {
                "durable" if jetstream => js.durable = Some(text).filter(|t| !t.trim().is_empty()),
                "subject" if jetstream => js.subject = Some(text).filter(|t| !t.trim().is_empty()),
                "autoprovision" if jetstream => js.auto_provision = flag(k, &text)?,
                "exactlyonce" if jetstream => js.exactly_once = flag(k, &text)?,
                "deliver" if jetstream => {
                    js.deliver = parse_deliver(&text).ok_or_else(|| {
                        bad(format!(
                            "invalid optional Deliver {text:?}: expected new, all, last or lastpersubject"
                        ))
                    })?
                }
                "defaultpubretryattempts" if jetstream => {
                    js.pub_retry_attempts = text.trim().parse::<usize>().ok().filter(|n| *n <= 100).ok_or_else(|| {
                        bad(format!("invalid optional DefaultPubRetryAttempts {text:?}: 0 to 100"))
                    })?
                }
                "queuegroup" if jetstream => {
                    return Err(bad(
                        "optional QueueGroup is not supported on nats-jetstream: instances sharing one Durable consumer share its messages"
                            .into(),
                    ))
                }
                "clientid" => c.name = Some(text).filter(|t| !t.is_empty()),
                "username" => c.user = Some(text).filter(|t| !t.is_empty()),
                "password" => c.password = Some(text).filter(|t| !t.is_empty()),
                "queuegroup" => c.queue_group = Some(text).filter(|t| !t.is_empty()),
                "format" => {
                    c.format = match text.trim().to_ascii_lowercase().as_str() {
                        "" | "nats" => NatsFormat::Nats,
                        "json" => NatsFormat::Json,
                        other => {
                            return Err(bad(format!(
                                "invalid optional Format {other:?}: expected nats or json"
                            )))
                        }
                    }
                }
                "connecttimeout" => {
                    // EdgeX's unit is the second; a Go duration also does.
                    c.connect_timeout = text
                        .trim()
                        .parse::<u64>()
                        .map(Duration::from_secs)
                        .or_else(|_| oort_core::duration::parse_duration(&text).map_err(drop))
                        .map_err(|_| {
                            bad(format!(
                                "invalid optional ConnectTimeout {text:?}: a duration such as 5s"
                            ))
                        })?
                }
                // Oort always retries; false cannot be honoured.
                "retryonfailedconnect" if text.trim().eq_ignore_ascii_case("true") => {}
                _ => {
                    return Err(refuse(
                        bus,
                        k,
                        if jetstream {
                            "ClientId, Username, Password, Format, ConnectTimeout, RetryOnFailedConnect (true), Durable, Subject, AutoProvision, Deliver, DefaultPubRetryAttempts, ExactlyOnce"
                        } else {
                            "ClientId, Username, Password, Format, ConnectTimeout, QueueGroup, RetryOnFailedConnect (true)"
                        },
                    ))
                }
            }
        }
        if c.password.is_some() && c.user.is_none() {
            return Err(bad("optional Password needs Username".into()));
        }
        if jetstream {
            if js.auto_provision && js.subject.is_none() {
                return Err(bad(
                    "optional AutoProvision needs Subject (the topic the stream captures)".into(),
                ));
            }
            if js.exactly_once && c.name.is_none() {
                return Err(bad("optional ExactlyOnce needs ClientId (the de-duplication id is <ClientId>-<correlation id>)".into()));
            }
            c.jetstream = Some(js);
        }
        Ok(c)
    }

    pub(super) fn kind(&self) -> Result<MessageType, ConnectorError> {
        match self.message_type.trim().to_ascii_lowercase().as_str() {
            "" | "event" => Ok(MessageType::Event),
            "request" => Ok(MessageType::Request),
            other => Err(ConnectorError::Config(format!(
                "edgex: invalid property messageType {other:?}: expected event or request"
            ))),
        }
    }
}

/// An EdgeX topic as a Redis pub/sub channel (`/` is `.`, wildcards `*`).
pub(super) fn redis_channel(topic: &str) -> String {
    topic.replace('/', ".").replace(['#', '+'], "*")
}

/// The Redis patterns of a subscription: `a.b.*` also takes `a.b` itself,
/// as MQTT's `a/b/#` does.
pub(super) fn redis_patterns(topic: &str) -> Vec<String> {
    let p = redis_channel(topic);
    match p.strip_suffix(".*") {
        Some(base) if !base.is_empty() => vec![p.clone(), base.to_string()],
        _ => vec![p],
    }
}

/// An EdgeX topic as a NATS subject (`/` is `.`, `+` is `*`, `#` is `>`).
pub(super) fn nats_subject(topic: &str) -> String {
    topic.replace('/', ".").replace('+', "*").replace('#', ">")
}

/// The bus properties of both connectors' schemas.
pub(super) fn bus_props() -> Vec<PropSpec> {
    vec![
        PropSpec::new("type", "string", "The message bus: mqtt (EdgeX 3's default), redis, nats-core or nats-jetstream")
            .default(json!("mqtt"))
            .values(&["mqtt", "redis", "nats-core", "nats-jetstream"])
            .connection(),
        PropSpec::new("protocol", "string", "tcp, or ssl/tls (mqtt and nats-core)")
            .default(json!("tcp"))
            .connection(),
        PropSpec::new("server", "string", "The bus's host")
            .default(json!("localhost"))
            .connection(),
        PropSpec::new("host", "string", "The bus's host (the sink's name for server)")
            .connection(),
        PropSpec::new("port", "int", "The bus's port (default 1883 for mqtt, 6379 for redis, 4222 for nats-core)")
            .connection(),
        PropSpec::new(
            "messageType",
            "string",
            "event (application services) or request (add-event requests: device services, core data)",
        )
        .default(json!("event"))
        .values(&["event", "request"]),
        PropSpec::new(
            "optional",
            "object",
            "Bus settings. mqtt: ClientId, Username, Password, Qos, Retained (sink), CertFile, KeyFile, CertPEMBlock, KeyPEMBlock, SkipCertVerify; redis: Username, Password; nats-core: ClientId, Username, Password, Format (nats or json), ConnectTimeout, QueueGroup; nats-jetstream: those but QueueGroup, and Durable, Subject, AutoProvision, Deliver, DefaultPubRetryAttempts, ExactlyOnce",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_translated_as_edgex_does() {
        assert_eq!(
            redis_channel("edgex/events/device/p/d/s"),
            "edgex.events.device.p.d.s"
        );
        assert_eq!(
            redis_patterns("edgex/events/#"),
            vec!["edgex.events.*".to_string(), "edgex.events".to_string()]
        );
        assert_eq!(redis_patterns("a/+/c"), vec!["a.*.c".to_string()]);
        assert_eq!(nats_subject("edgex/events/#"), "edgex.events.>");
        assert_eq!(nats_subject("a/+/c"), "a.*.c");
    }
}
