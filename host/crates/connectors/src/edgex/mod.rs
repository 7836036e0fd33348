//! `edgex` source and sink: EdgeX v3 events on the EdgeX message bus: MQTT
//! (EdgeX 3's default), Redis pub/sub or NATS core ([`bus`]). The source
//! subscribes to DATASOURCE (`edgex/events/#`...) and emits one row per
//! event, a field per reading typed by its `valueType`, with the event's and
//! each reading's metadata (`meta(deviceName)`); the sink publishes each row
//! as an event (or an add-event request) in a message envelope
//! ([`envelope`]). On MQTT and Redis the `mqtt` and `redisSub`/`redisPub`
//! connectors run underneath (their status, acknowledgements and reconnects);
//! NATS goes through [`nats`].

mod bus;
pub mod envelope;
mod jetstream;
mod nats;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use oort_core::{
    ConnectorEnv, ConnectorError, ConnectorInfo, Consumes, Map, PropSpec, Props, Sink, SinkContext,
    SinkFactory, SinkItem, Source, SourceContext, SourceFactory, SourceMsg, Value,
};
use serde::Deserialize;
use serde_json::json;

use crate::mqtt::{MqttSinkFactory, MqttSourceFactory};
use crate::redis::{RedisPubSinkFactory, RedisSubSourceFactory};
use crate::util::parse_config;
use bus::{bus_props, Bus, Transport};
use envelope::{MessageType, Names};
use nats::{NatsConf, NatsFormat, NatsPublisher};

const KIND: &str = "edgex";

const DEFAULT_CONF: &str = "\
default:
  type: mqtt
  protocol: tcp
  server: localhost
  port: 1883
  messageType: event
";

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
        let topic = match datasource.trim() {
            "" => "rules-events",
            t => t,
        };
        let wrap = |e: ConnectorError| ConnectorError::Config(format!("edgex: {e}"));
        let inner: Box<dyn Source> = match bus.transport(false)? {
            Transport::Mqtt(p) => MqttSourceFactory.create(env, topic, &p).map_err(wrap)?,
            Transport::Redis(mut p) => {
                p.insert("channels".into(), json!(bus::redis_patterns(topic)));
                RedisSubSourceFactory.create(env, "", &p).map_err(wrap)?
            }
            Transport::Nats(conf) => Box::new(NatsSource {
                conf,
                subject: bus::nats_subject(topic),
            }),
        };
        Ok(EdgexSource {
            inner: Some(inner),
            kind,
        })
    }
}

/// The subscription of an `edgex` source on NATS.
struct NatsSource {
    conf: NatsConf,
    subject: String,
}

#[async_trait]
impl Source for NatsSource {
    async fn run(&mut self, ctx: SourceContext) -> Result<(), ConnectorError> {
        self.conf.run_source(&self.subject, &ctx).await
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
            ..ConnectorInfo::new(
                "Receives EdgeX v3 events from the EdgeX message bus (MQTT, Redis or NATS)",
            )
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

/// A running `edgex` source: an MQTT, `redisSub` or NATS source whose
/// messages are read as EdgeX envelopes.
pub struct EdgexSource {
    inner: Option<Box<dyn Source>>,
    kind: MessageType,
}

#[async_trait]
impl Source for EdgexSource {
    /// As the inner source (an MQTT QoS 1 session acknowledges on delivery):
    /// each of its messages is one message here.
    fn acks_on_delivery(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.acks_on_delivery())
    }

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
        // So is the end of the counting (the runtime will finish no more).
        let reporter = inner_ctx.handed_reporter();
        let mut handed = ctx.handed();
        let finished = ctx.handing_finished();
        let acks = tokio::spawn(async move {
            let mut last = 0u64;
            loop {
                let done = tokio::select! {
                    r = handed.changed() => r.is_err(),
                    _ = finished.cancelled() => true,
                };
                let now = *handed.borrow_and_update();
                reporter.add(now.saturating_sub(last));
                last = now;
                if done {
                    reporter.finish();
                    break;
                }
            }
        });
        let task = tokio::spawn(async move { inner.run(inner_ctx).await });
        // A reading that cannot be read leaves the event's row without it.
        let mut skipped = oort_core::RateLimitedLog::new(std::time::Duration::from_secs(10));
        while let Some(m) = rx.recv().await {
            let out = match m {
                SourceMsg::Bytes { payload, meta } => match envelope::read(&payload, self.kind) {
                    Ok(mut r) => {
                        // NATS's format gives the correlation id in a header.
                        if let Some(c) = meta.as_ref().and_then(|m| m.get("correlationid")) {
                            if r.meta.get("correlationid").is_none() {
                                r.meta.insert(Arc::from("correlationid"), c.clone());
                            }
                        }
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
                // The inner sources (MQTT, redisSub, NATS) send one message
                // at a time, as `inner_ctx` takes no batches; a batch would
                // break the one-for-one count above.
                SourceMsg::BytesBatch(b) => SourceMsg::Error(format!(
                    "edgex: the inner source sent {} messages as one batch, which edgex does not read",
                    b.len()
                )),
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
        let prefix =
            Some(c.topic_prefix.trim().trim_end_matches('/').to_string()).filter(|p| !p.is_empty());
        let fixed = match &prefix {
            Some(_) => None,
            None if c.topic.trim().is_empty() => Some(default_topic()),
            None => Some(c.topic.trim().to_string()),
        };
        let wrap = |e: ConnectorError| ConnectorError::Config(format!("edgex: {e}"));
        let out = match bus.transport(true)? {
            Transport::Mqtt(mut p) => {
                p.insert(
                    "topic".into(),
                    json!(fixed.clone().unwrap_or_else(|| "{{.topic}}".into())),
                );
                Out::Mqtt(MqttSinkFactory.create(env, &p).map_err(wrap)?)
            }
            Transport::Redis(mut p) => {
                let channel = match &fixed {
                    Some(t) => bus::redis_channel(t),
                    None => "{{.topic}}".into(),
                };
                p.insert("channel".into(), json!(channel));
                Out::Redis(RedisPubSinkFactory.create(env, &p).map_err(wrap)?)
            }
            Transport::Nats(conf) => Out::Nats(Box::new(NatsPublisher::new(conf))),
        };
        let keep = |s: &str, d: &str| {
            let s = s.trim();
            if s.is_empty() {
                d.to_string()
            } else {
                s.to_string()
            }
        };
        Ok(EdgexSink {
            out,
            kind,
            fixed,
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
            ..ConnectorInfo::new(
                "Publishes EdgeX v3 events on the EdgeX message bus (MQTT, Redis or NATS)",
            )
        }
    }

    fn create(&self, env: &ConnectorEnv, props: &Props) -> Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(Self::build(env, props)?))
    }

    fn consumes(&self) -> Consumes {
        Consumes::Rows
    }
}

/// Where an `edgex` sink publishes.
enum Out {
    Mqtt(Box<dyn Sink>),
    Redis(Box<dyn Sink>),
    Nats(Box<NatsPublisher>),
}

/// A running `edgex` sink: rows as EdgeX events, through an MQTT or
/// Redis pub/sub sink or a NATS publisher.
pub struct EdgexSink {
    out: Out,
    kind: MessageType,
    /// The topic when there is no `topicPrefix`.
    fixed: Option<String>,
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

    /// One row's message: its topic (EdgeX's form, `a/b/c`), body and
    /// correlation id.
    fn message(&self, row: &Map, rule: &str) -> Msg {
        let names = self.names(row, rule);
        let origin = oort_core::now_ms().saturating_mul(1_000_000);
        let ev = envelope::event(row, self.metadata.as_deref(), &names, origin);
        let topic = match (&self.fixed, &self.prefix) {
            (Some(t), _) => t.clone(),
            (None, Some(p)) => format!("{p}/{}/{}/{}", names.profile, names.device, names.source),
            (None, None) => default_topic(),
        };
        Msg {
            topic,
            body: Bytes::from(envelope::body(ev, self.kind).to_string()),
            correlation: uuid::Uuid::new_v4().to_string(),
        }
    }
}

/// One event to publish.
struct Msg {
    topic: String,
    body: Bytes,
    correlation: String,
}

impl Msg {
    fn envelope(&self) -> Bytes {
        Bytes::from(envelope::wrap(&self.body, &self.correlation))
    }

    /// The item of an inner sink: the envelope, and the topic for a
    /// `{{.topic}}` template (as a Redis channel on that bus).
    fn item(&self, dynamic: bool, redis: bool) -> SinkItem {
        let data = if dynamic {
            let t = if redis {
                bus::redis_channel(&self.topic)
            } else {
                self.topic.clone()
            };
            let mut m = Map::new();
            m.insert(Arc::from("topic"), Value::Str(t.into()));
            Value::Object(Arc::new(m))
        } else {
            Value::Null
        };
        SinkItem {
            data,
            payload: self.envelope(),
        }
    }
}

#[async_trait]
impl Sink for EdgexSink {
    async fn connect(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        match &mut self.out {
            Out::Mqtt(s) | Out::Redis(s) => s.connect(ctx).await,
            Out::Nats(p) => p.connect(&ctx.id, &ctx.conn).await,
        }
    }

    async fn collect(
        &mut self,
        ctx: &SinkContext,
        items: &[SinkItem],
    ) -> Result<(), ConnectorError> {
        let mut msgs = Vec::with_capacity(items.len());
        for it in items {
            match &it.data {
                Value::Object(m) => msgs.push(self.message(m, &ctx.id)),
                Value::Array(rows) => {
                    for r in rows.iter() {
                        match r {
                            Value::Object(m) => msgs.push(self.message(m, &ctx.id)),
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
        let dynamic = self.fixed.is_none();
        match &mut self.out {
            Out::Mqtt(s) => {
                let out: Vec<SinkItem> = msgs.iter().map(|m| m.item(dynamic, false)).collect();
                s.collect(ctx, &out).await
            }
            Out::Redis(s) => {
                let out: Vec<SinkItem> = msgs.iter().map(|m| m.item(dynamic, true)).collect();
                s.collect(ctx, &out).await
            }
            Out::Nats(p) => {
                let json = p.conf.format == NatsFormat::Json;
                let out = msgs
                    .into_iter()
                    .map(|m| {
                        let env = if json { m.envelope() } else { Bytes::new() };
                        (bus::nats_subject(&m.topic), m.body, env, m.correlation)
                    })
                    .collect();
                p.publish(&ctx.id, &ctx.conn, out).await
            }
        }
    }

    async fn flush(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        match &mut self.out {
            Out::Mqtt(s) | Out::Redis(s) => s.flush(ctx).await,
            Out::Nats(_) => Ok(()),
        }
    }

    async fn close(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        match &mut self.out {
            Out::Mqtt(s) | Out::Redis(s) => s.close(ctx).await,
            Out::Nats(p) => {
                p.close().await;
                Ok(())
            }
        }
    }
}
