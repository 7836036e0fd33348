//! `edgex` source and sink: EdgeX v3 events on the EdgeX message bus, the
//! MQTT bus (EdgeX 3's default). The source subscribes to DATASOURCE
//! (`edgex/events/#`...) and emits one row per event, a field per reading
//! typed by its `valueType`, with the event's and each reading's metadata
//! (`meta(deviceName)`); the sink publishes each row as an event (or an
//! add-event request) in a message envelope ([`envelope`]). Both run the
//! `mqtt` connector underneath, so the MQTT status, QoS acknowledgements and
//! reconnects are the MQTT connector's.

pub mod envelope;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use oort_core::{
    ConnectorEnv, ConnectorError, ConnectorInfo, Consumes, Map, PropSpec, Props, Sink, SinkContext,
    SinkFactory, SinkItem, Source, SourceContext, SourceFactory, SourceMsg, Value,
};
use serde::Deserialize;
use serde_json::json;

use crate::mqtt::{MqttSinkFactory, MqttSourceFactory};
use crate::util::{de, parse_config};
use envelope::{MessageType, Names};

const KIND: &str = "edgex";

const DEFAULT_CONF: &str = "\
default:
  type: mqtt
  protocol: tcp
  server: localhost
  port: 1883
  messageType: event
";

fn default_type() -> String {
    "mqtt".into()
}
fn default_protocol() -> String {
    "tcp".into()
}
fn default_server() -> String {
    "localhost".into()
}
fn default_port() -> u64 {
    1883
}

/// The bus settings, shared by source and sink.
#[derive(Debug, Deserialize)]
struct Bus {
    #[serde(rename = "type", default = "default_type")]
    typ: String,
    #[serde(default = "default_protocol")]
    protocol: String,
    #[serde(default = "default_server", alias = "host")]
    server: String,
    #[serde(default = "default_port", deserialize_with = "de::u64_lenient")]
    port: u64,
    #[serde(rename = "messagetype", default)]
    message_type: String,
    #[serde(default)]
    optional: serde_json::Map<String, serde_json::Value>,
    #[serde(rename = "connectionselector", default)]
    connection_selector: String,
}

impl Bus {
    /// The `mqtt` connector's props for this bus; what EdgeX's `optional`
    /// says that Oort's MQTT client cannot do is refused.
    fn mqtt_props(&self, sink: bool) -> Result<Props, ConnectorError> {
        let bad = |m: String| ConnectorError::Config(format!("edgex: {m}"));
        match self.typ.trim().to_ascii_lowercase().as_str() {
            "mqtt" => {}
            "redis" | "nats-jetstream" | "nats-core" | "zero" => {
                return Err(bad(format!(
                    "message bus type {} is not supported yet: Oort speaks EdgeX's MQTT bus (type: mqtt, EdgeX 3's default)",
                    self.typ
                )))
            }
            other => return Err(bad(format!("invalid property type {other:?}: expected mqtt"))),
        }
        if !self.connection_selector.trim().is_empty() {
            return Err(bad(
                "connectionSelector is not supported by edgex yet: give server, port and optional"
                    .into(),
            ));
        }
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
            json!(format!("{scheme}://{}:{}", self.server.trim(), self.port)),
        );
        for (k, v) in &self.optional {
            let text = || {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            };
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
                other => {
                    return Err(bad(format!(
                        "optional {k} is not supported{}",
                        if other == "retained" {
                            " by the source".to_string()
                        } else {
                            ": use ClientId, Username, Password, Qos, Retained, CertFile, KeyFile, CertPEMBlock, KeyPEMBlock, SkipCertVerify".to_string()
                        }
                    )))
                }
            };
            p.insert(key.into(), val);
        }
        Ok(p)
    }

    fn kind(&self) -> Result<MessageType, ConnectorError> {
        match self.message_type.trim().to_ascii_lowercase().as_str() {
            "" | "event" => Ok(MessageType::Event),
            "request" => Ok(MessageType::Request),
            other => Err(ConnectorError::Config(format!(
                "edgex: invalid property messageType {other:?}: expected event or request"
            ))),
        }
    }
}

fn bus_props() -> Vec<PropSpec> {
    vec![
        PropSpec::new("type", "string", "The message bus: mqtt (EdgeX 3's default)")
            .default(json!("mqtt"))
            .values(&["mqtt"])
            .connection(),
        PropSpec::new("protocol", "string", "tcp or ssl")
            .default(json!("tcp"))
            .connection(),
        PropSpec::new("server", "string", "The broker's host")
            .default(json!("localhost"))
            .connection(),
        PropSpec::new("host", "string", "The broker's host (the sink's name for server)")
            .connection(),
        PropSpec::new("port", "int", "The broker's port")
            .default(json!(1883))
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
            "MQTT settings: ClientId, Username, Password, Qos, Retained (sink), CertFile, KeyFile, CertPEMBlock, KeyPEMBlock, SkipCertVerify",
        ),
    ]
}

/// Factory of `edgex` sources.
pub struct EdgexSourceFactory;

impl EdgexSourceFactory {
    fn build(
        env: &ConnectorEnv,
        datasource: &str,
        props: &Props,
    ) -> Result<EdgexSource, ConnectorError> {
        let bus: Bus = parse_config(KIND, props)?;
        let kind = bus.kind()?;
        let mqtt = bus.mqtt_props(false)?;
        let topic = match datasource.trim() {
            "" => "rules-events",
            t => t,
        };
        let inner = MqttSourceFactory
            .create(env, topic, &mqtt)
            .map_err(|e| ConnectorError::Config(format!("edgex: {e}")))?;
        Ok(EdgexSource {
            inner: Some(inner),
            kind,
        })
    }
}

impl SourceFactory for EdgexSourceFactory {
    fn kind(&self) -> &str {
        KIND
    }

    fn info(&self) -> ConnectorInfo {
        ConnectorInfo {
            holds_connection: true,
            default_conf: Some(DEFAULT_CONF),
            datasource_hint: Some("The topic to subscribe to (default rules-events)"),
            properties: bus_props(),
            ..ConnectorInfo::new("Receives EdgeX v3 events from the EdgeX MQTT message bus")
        }
    }

    fn create(
        &self,
        env: &ConnectorEnv,
        datasource: &str,
        props: &Props,
    ) -> Result<Box<dyn Source>, ConnectorError> {
        Ok(Box::new(Self::build(env, datasource, props)?))
    }

    fn emits_rows(&self) -> bool {
        true
    }
}

/// A running `edgex` source: an MQTT source whose messages are read as
/// EdgeX envelopes.
pub struct EdgexSource {
    inner: Option<Box<dyn Source>>,
    kind: MessageType,
}

#[async_trait]
impl Source for EdgexSource {
    async fn run(&mut self, ctx: SourceContext) -> Result<(), ConnectorError> {
        let Some(mut inner) = self.inner.take() else {
            return Ok(());
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let mut inner_ctx = SourceContext::new(ctx.id.clone(), ctx.cancel.clone(), tx);
        inner_ctx.conn = ctx.conn.clone();
        inner_ctx.resume = ctx.resume.clone();
        // Each MQTT message becomes one message here: what the runtime has
        // finished with, the MQTT source may acknowledge.
        let reporter = inner_ctx.handed_reporter();
        let mut handed = ctx.handed();
        let acks = tokio::spawn(async move {
            let mut last = 0u64;
            while handed.changed().await.is_ok() {
                let now = *handed.borrow();
                reporter.add(now.saturating_sub(last));
                last = now;
            }
        });
        let task = tokio::spawn(async move { inner.run(inner_ctx).await });
        // A reading that cannot be read leaves the event's row without it.
        let mut skipped = oort_core::RateLimitedLog::new(std::time::Duration::from_secs(10));
        while let Some(m) = rx.recv().await {
            let out = match m {
                SourceMsg::Bytes { payload, .. } => match envelope::read(&payload, self.kind) {
                    Ok(r) => {
                        if let Some(e) = r.errors.first() {
                            skipped.hit(|held| {
                                tracing::warn!(stream = %ctx.id, error = %e, more = held, "edgex: a reading could not be read and is left out of the row")
                            });
                        }
                        SourceMsg::Rows {
                            rows: vec![r.row],
                            meta: Some(Arc::new(r.meta)),
                        }
                    }
                    Err(e) => SourceMsg::Error(format!("edgex: {e}")),
                },
                other => other,
            };
            if !ctx.emit(out).await {
                break;
            }
        }
        acks.abort();
        match task.await {
            Ok(r) => r,
            Err(e) => Err(ConnectorError::Fatal(format!("edgex: {e}"))),
        }
    }
}

fn default_topic() -> String {
    "application".into()
}

#[derive(Debug, Deserialize)]
struct SinkConf {
    #[serde(default)]
    topic: String,
    #[serde(rename = "topicprefix", default)]
    topic_prefix: String,
    #[serde(rename = "contenttype", default)]
    content_type: String,
    #[serde(default)]
    metadata: String,
    #[serde(rename = "profilename", default)]
    profile_name: String,
    #[serde(rename = "devicename", default)]
    device_name: String,
    #[serde(rename = "sourcename", default)]
    source_name: String,
}

/// Factory of `edgex` sinks.
pub struct EdgexSinkFactory;

impl EdgexSinkFactory {
    fn build(env: &ConnectorEnv, props: &Props) -> Result<EdgexSink, ConnectorError> {
        let bus: Bus = parse_config(KIND, props)?;
        let kind = bus.kind()?;
        let c: SinkConf = parse_config(KIND, props)?;
        if !c.topic.trim().is_empty() && !c.topic_prefix.trim().is_empty() {
            return Err(ConnectorError::config(
                "edgex: set topic or topicPrefix, not both",
            ));
        }
        match c.content_type.trim() {
            "" | "application/json" => {}
            other => {
                return Err(ConnectorError::Config(format!(
                    "edgex: contentType {other:?} is not supported: application/json only"
                )))
            }
        }
        let mut mqtt = bus.mqtt_props(true)?;
        let prefix =
            Some(c.topic_prefix.trim().trim_end_matches('/').to_string()).filter(|p| !p.is_empty());
        let topic = match &prefix {
            Some(_) => "{{.topic}}".to_string(),
            None if c.topic.trim().is_empty() => default_topic(),
            None => c.topic.trim().to_string(),
        };
        mqtt.insert("topic".into(), json!(topic));
        let inner = MqttSinkFactory
            .create(env, &mqtt)
            .map_err(|e| ConnectorError::Config(format!("edgex: {e}")))?;
        let keep = |s: &str, d: &str| {
            let s = s.trim();
            if s.is_empty() {
                d.to_string()
            } else {
                s.to_string()
            }
        };
        Ok(EdgexSink {
            inner,
            kind,
            prefix,
            metadata: Some(c.metadata.trim().to_string()).filter(|m| !m.is_empty()),
            device: keep(&c.device_name, "ekuiper"),
            profile: keep(&c.profile_name, "ekuiperProfile"),
            source: Some(c.source_name.trim().to_string()).filter(|s| !s.is_empty()),
        })
    }
}

impl SinkFactory for EdgexSinkFactory {
    fn kind(&self) -> &str {
        KIND
    }

    fn info(&self) -> ConnectorInfo {
        let mut properties = bus_props();
        properties.extend([
            PropSpec::new("topic", "string", "The topic to publish on (default application)"),
            PropSpec::new(
                "topicPrefix",
                "string",
                "Publish on topicPrefix/profileName/deviceName/sourceName instead of topic",
            ),
            PropSpec::new("contentType", "string", "application/json (the only one)")
                .default(json!("application/json")),
            PropSpec::new(
                "metadata",
                "string",
                "The result field holding EdgeX metadata (SELECT meta(*) AS m): its deviceName, profileName, sourceName win",
            ),
            PropSpec::new("profileName", "string", "The event's profile (default ekuiperProfile)"),
            PropSpec::new("deviceName", "string", "The event's device (default ekuiper)"),
            PropSpec::new("sourceName", "string", "The event's source (default the rule id)"),
        ]);
        ConnectorInfo {
            holds_connection: true,
            properties,
            ..ConnectorInfo::new("Publishes EdgeX v3 events on the EdgeX MQTT message bus")
        }
    }

    fn create(&self, env: &ConnectorEnv, props: &Props) -> Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(Self::build(env, props)?))
    }

    fn consumes(&self) -> Consumes {
        Consumes::Rows
    }
}

/// A running `edgex` sink: rows as EdgeX events, through an MQTT sink.
pub struct EdgexSink {
    inner: Box<dyn Sink>,
    kind: MessageType,
    prefix: Option<String>,
    metadata: Option<String>,
    device: String,
    profile: String,
    source: Option<String>,
}

impl EdgexSink {
    /// The names of one row's event: its metadata field wins over the props.
    fn names(&self, row: &Map, rule: &str) -> Names {
        let meta = self
            .metadata
            .as_deref()
            .and_then(|f| row.get(f))
            .and_then(|v| match v {
                Value::Object(m) => Some(m.clone()),
                _ => None,
            });
        let pick = |k: &str, d: &str| {
            meta.as_ref()
                .and_then(|m| m.get(k))
                .and_then(|v| match v {
                    Value::Str(s) if !s.is_empty() => Some(s.to_string()),
                    _ => None,
                })
                .unwrap_or_else(|| d.to_string())
        };
        Names {
            device: pick("deviceName", &self.device),
            profile: pick("profileName", &self.profile),
            source: pick("sourceName", self.source.as_deref().unwrap_or(rule)),
        }
    }

    fn message(&self, row: &Map, rule: &str) -> SinkItem {
        let names = self.names(row, rule);
        let origin = oort_core::now_ms().saturating_mul(1_000_000);
        let ev = envelope::event(row, self.metadata.as_deref(), &names, origin);
        let data = match &self.prefix {
            Some(p) => {
                let topic = format!("{p}/{}/{}/{}", names.profile, names.device, names.source);
                let mut m = Map::new();
                m.insert(Arc::from("topic"), Value::Str(topic.into()));
                Value::Object(Arc::new(m))
            }
            None => Value::Null,
        };
        SinkItem {
            data,
            payload: Bytes::from(envelope::envelope(ev, self.kind)),
        }
    }
}

#[async_trait]
impl Sink for EdgexSink {
    async fn connect(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        self.inner.connect(ctx).await
    }

    async fn collect(
        &mut self,
        ctx: &SinkContext,
        items: &[SinkItem],
    ) -> Result<(), ConnectorError> {
        let mut out = Vec::with_capacity(items.len());
        for it in items {
            match &it.data {
                Value::Object(m) => out.push(self.message(m, &ctx.id)),
                Value::Array(rows) => {
                    for r in rows.iter() {
                        match r {
                            Value::Object(m) => out.push(self.message(m, &ctx.id)),
                            other => {
                                return Err(ConnectorError::InvalidData(format!(
                                    "edgex: a result is not an object: {}",
                                    other.to_json()
                                )))
                            }
                        }
                    }
                }
                other => {
                    return Err(ConnectorError::InvalidData(format!(
                    "edgex: a result is not an object (a dataTemplate must give a JSON object): {}",
                    other.to_json()
                )))
                }
            }
        }
        self.inner.collect(ctx, &out).await
    }

    async fn flush(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        self.inner.flush(ctx).await
    }

    async fn close(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        self.inner.close(ctx).await
    }
}
