//! `redisSub` source and `redisPub` sink, eKuiper's Redis pub/sub
//! connectors: the source PSUBSCRIBEs to `channels` (patterns; Oort also
//! takes them from DATASOURCE, comma separated, when `channels` is empty)
//! and emits each message's payload with meta `{channel}`, reconnecting
//! with backoff; the sink PUBLISHes each item's payload on `channel`, one
//! pipeline per batch.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use oort_core::{
    ConnectorEnv, ConnectorError, ConnectorInfo, Consumes, PropSpec, Props, Sink, SinkContext,
    SinkFactory, SinkItem, Source, SourceContext, SourceFactory, Value,
};
use serde::Deserialize;

use super::{classify, connection_props, Link};
use crate::util::{de, parse_config, sleep_or_cancel, Backoff, PropTemplate};

#[derive(Debug, Deserialize)]
struct Conf {
    #[serde(default, deserialize_with = "de::string_list")]
    channels: Vec<String>,
    #[serde(default)]
    channel: String,
}

fn props_of(address_hint: &str) -> Vec<PropSpec> {
    connection_props("address", address_hint)
}

/// Factory of `redisSub` sources.
pub struct RedisSubSourceFactory;

impl SourceFactory for RedisSubSourceFactory {
    fn kind(&self) -> &str {
        "redisSub"
    }

    fn info(&self) -> ConnectorInfo {
        let mut properties = props_of("host:port of the Redis server");
        properties.push(PropSpec::new(
            "channels",
            "list_string",
            "Channel patterns to PSUBSCRIBE to (default: DATASOURCE, comma separated)",
        ));
        ConnectorInfo {
            holds_connection: true,
            datasource_hint: Some("Channel patterns when channels is not set"),
            properties,
            ..ConnectorInfo::new("Receives Redis pub/sub messages")
        }
    }

    fn ping(&self, _env: &ConnectorEnv, props: &Props) -> Option<oort_core::PingFuture> {
        Some(super::ping("redisSub", "address", props))
    }

    fn create(
        &self,
        _env: &ConnectorEnv,
        datasource: &str,
        props: &Props,
    ) -> Result<Box<dyn Source>, ConnectorError> {
        let c: Conf = parse_config("redisSub", props)?;
        let mut channels: Vec<String> = c
            .channels
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if channels.is_empty() {
            channels = datasource
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if channels.is_empty() {
            return Err(ConnectorError::config(
                "redisSub: property channels (or DATASOURCE) is required",
            ));
        }
        let link = Link::open("redisSub", "address", props)?;
        Ok(Box::new(RedisSubSource { link, channels }))
    }
}

/// A running `redisSub` source.
pub struct RedisSubSource {
    link: Link,
    channels: Vec<String>,
}

impl RedisSubSource {
    /// One subscription until it breaks; `Ok(true)` when the run ends.
    async fn session(&self, ctx: &SourceContext) -> Result<bool, ConnectorError> {
        let mut ps =
            tokio::time::timeout(Duration::from_secs(5), self.link.client.get_async_pubsub())
                .await
                .map_err(|_| {
                    ConnectorError::Unavailable(format!(
                        "redis {}: connect timed out",
                        self.link.addr
                    ))
                })?
                .map_err(|e| classify(&self.link.addr, &e))?;
        for ch in &self.channels {
            ps.psubscribe(ch)
                .await
                .map_err(|e| classify(&self.link.addr, &e))?;
        }
        ctx.conn.connected();
        let mut metas: Vec<(String, Arc<oort_core::Meta>)> = Vec::new();
        let mut stream = ps.on_message();
        loop {
            let msg = tokio::select! {
                _ = ctx.cancel.cancelled() => return Ok(true),
                m = stream.next() => match m {
                    Some(m) => m,
                    None => return Err(ConnectorError::Unavailable(format!("redis {}: connection closed", self.link.addr))),
                },
            };
            let channel = msg.get_channel_name();
            let meta = match metas.iter().find(|(c, _)| c == channel) {
                Some((_, m)) => m.clone(),
                None => {
                    let mut m = oort_core::Meta::new();
                    m.insert("channel".into(), Value::from(channel));
                    let m = Arc::new(m);
                    if metas.len() < 64 {
                        metas.push((channel.to_string(), m.clone()));
                    }
                    m
                }
            };
            let payload = Bytes::copy_from_slice(msg.get_payload_bytes());
            if !ctx.emit_bytes(payload, Some(meta)).await {
                return Ok(true);
            }
        }
    }
}

#[async_trait]
impl Source for RedisSubSource {
    async fn run(&mut self, ctx: SourceContext) -> Result<(), ConnectorError> {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        loop {
            ctx.conn.connecting();
            match self.session(&ctx).await {
                Ok(true) => return Ok(()),
                Ok(false) => backoff.reset(),
                Err(ConnectorError::Unavailable(m)) => {
                    tracing::warn!(source = %ctx.id, error = %m, "redisSub: disconnected; reconnecting");
                    ctx.conn.disconnected(m);
                }
                Err(e) => {
                    ctx.conn.disconnected(e.to_string());
                    return Err(e);
                }
            }
            if sleep_or_cancel(backoff.next_delay(), &ctx.cancel).await {
                return Ok(());
            }
        }
    }
}

/// Factory of `redisPub` sinks.
pub struct RedisPubSinkFactory;

impl SinkFactory for RedisPubSinkFactory {
    fn kind(&self) -> &str {
        "redisPub"
    }

    fn info(&self) -> ConnectorInfo {
        let mut properties = props_of("host:port of the Redis server");
        properties.push(
            PropSpec::new(
                "channel",
                "string",
                "The channel to PUBLISH on (a template such as ch/{{.id}} is rendered per row)",
            )
            .required()
            .dynamic(),
        );
        ConnectorInfo {
            holds_connection: true,
            properties,
            ..ConnectorInfo::new("Publishes results on a Redis pub/sub channel")
        }
    }

    fn consumes(&self) -> Consumes {
        Consumes::Payload
    }

    fn ping(&self, _env: &ConnectorEnv, props: &Props) -> Option<oort_core::PingFuture> {
        Some(super::ping("redisPub", "address", props))
    }

    fn create(&self, _env: &ConnectorEnv, props: &Props) -> Result<Box<dyn Sink>, ConnectorError> {
        let c: Conf = parse_config("redisPub", props)?;
        if c.channel.trim().is_empty() {
            return Err(ConnectorError::config(
                "redisPub: property channel is required",
            ));
        }
        let link = Link::open("redisPub", "address", props)?;
        Ok(Box::new(RedisPubSink {
            link,
            channel: PropTemplate::parse("channel", c.channel.trim())?,
        }))
    }
}

/// A running `redisPub` sink.
pub struct RedisPubSink {
    link: Link,
    /// Fixed, or rendered per item against its row (a dynamic property).
    channel: PropTemplate,
}

#[async_trait]
impl Sink for RedisPubSink {
    async fn connect(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        self.link.connect(ctx).await
    }

    async fn collect(
        &mut self,
        ctx: &SinkContext,
        items: &[SinkItem],
    ) -> Result<(), ConnectorError> {
        let mut pipe = redis::pipe();
        let fixed = self.channel.static_text();
        let mut rendered = String::new();
        for it in items {
            let channel = match &fixed {
                Some(c) => c.as_ref(),
                None => {
                    rendered.clear();
                    self.channel.render_into(&it.data, &mut rendered)?;
                    if rendered.is_empty() {
                        return Err(ConnectorError::InvalidData(
                            "redisPub: the channel template rendered an empty channel".into(),
                        ));
                    }
                    rendered.as_str()
                }
            };
            pipe.publish(channel, it.payload.as_ref()).ignore();
        }
        self.link.run(ctx, &pipe).await
    }
}
