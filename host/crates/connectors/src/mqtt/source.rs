//! `mqtt` source: subscribes to the DATASOURCE topic(s) and emits each message
//! as bytes with meta `{topic, qos, messageId}`. Reconnects with backoff and
//! subscribes again after every reconnect; reports status through `ctx.conn`.
//! With `connectionSelector` it subscribes on a shared connection instead.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oort_core::{
    ConnectorError, Map, Props, Source, SourceContext, SourceFactory, SourceMsg, Value,
};
use serde::Deserialize;

use super::client::{validate_filter, Client, ConnConf, Ev, EventLoop, Settings};
use super::shared;
use crate::util::{de, parse_config, sleep_or_cancel, Backoff};

fn default_qos() -> u64 {
    1
}

#[derive(Debug, Deserialize)]
struct SourceConf {
    #[serde(default = "default_qos", deserialize_with = "de::u64_lenient")]
    qos: u64,
    /// Names a connection profile: the connection is shared ([`super::shared`]).
    #[serde(rename = "connectionselector", default)]
    connection_selector: String,
}

/// Factory of `mqtt` sources.
pub struct MqttSourceFactory;

impl SourceFactory for MqttSourceFactory {
    fn kind(&self) -> &str {
        "mqtt"
    }

    fn create(&self, datasource: &str, props: &Props) -> Result<Box<dyn Source>, ConnectorError> {
        let conn: ConnConf = parse_config("mqtt", props)?;
        let extra: SourceConf = parse_config("mqtt", props)?;
        if extra.qos > 2 {
            return Err(ConnectorError::Config(format!(
                "mqtt: invalid property qos {}: expected 0, 1 or 2",
                extra.qos
            )));
        }
        let topics: Vec<String> = datasource
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        if topics.is_empty() {
            return Err(ConnectorError::config(
                "mqtt: DATASOURCE (the topic to subscribe to) is required",
            ));
        }
        for t in &topics {
            validate_filter(t).map_err(|e| ConnectorError::Config(format!("mqtt: {e}")))?;
        }
        Ok(Box::new(MqttSource {
            settings: Settings::from_conf(&conn)?,
            topics,
            qos: extra.qos as u8,
            selector: Some(extra.connection_selector.trim().to_string()).filter(|s| !s.is_empty()),
        }))
    }
}

/// A running `mqtt` source.
pub struct MqttSource {
    settings: Settings,
    topics: Vec<String>,
    qos: u8,
    /// `connectionSelector`: use the shared connection of this profile.
    selector: Option<String>,
}

impl MqttSource {
    /// Runs on the shared connection of `selector`: subscribes, mirrors the
    /// connection's state into `ctx.conn`, unsubscribes when done.
    async fn run_shared(&self, ctx: SourceContext, selector: &str) -> Result<(), ConnectorError> {
        let lease = shared::acquire(selector, &self.settings, &ctx.id)?;
        tracing::info!(source = %ctx.id, selector, server = %lease.server(), topics = ?self.topics, "mqtt source on a shared connection");
        let (id, gone) = lease.subscribe(self.topics.clone(), self.qos, ctx.clone());
        let mut state = lease.state();
        state.borrow_and_update().mirror(&ctx.conn);
        loop {
            tokio::select! {
                _ = ctx.cancel.cancelled() => break,
                _ = gone.cancelled() => break,
                r = state.changed() => {
                    if r.is_err() {
                        // The driver ended; wait for the end of this run.
                        tokio::select! {
                            _ = ctx.cancel.cancelled() => {}
                            _ = gone.cancelled() => {}
                        }
                        break;
                    }
                    state.borrow_and_update().mirror(&ctx.conn);
                }
            }
        }
        lease.unsubscribe(id);
        Ok(())
    }
}

/// Sends DISCONNECT and drives the loop briefly so it goes out.
pub(crate) async fn disconnect(client: &Client, el: &mut EventLoop) {
    client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            match el.poll().await {
                Ok(Ev::Disconnected) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}

#[async_trait]
impl Source for MqttSource {
    async fn run(&mut self, ctx: SourceContext) -> Result<(), ConnectorError> {
        if let Some(sel) = &self.selector {
            return self.run_shared(ctx, sel).await;
        }
        let (client, mut el) = self.settings.build(64)?;
        let server = self.settings.server_text();
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let mut last_topic: Option<(String, Value)> = None;
        let k_topic: Arc<str> = Arc::from("topic");
        let k_qos: Arc<str> = Arc::from("qos");
        let k_id: Arc<str> = Arc::from("messageId");
        ctx.conn.connecting();
        loop {
            let ev = tokio::select! {
                biased;
                _ = ctx.cancel.cancelled() => {
                    disconnect(&client, &mut el).await;
                    return Ok(());
                }
                ev = el.poll() => ev,
            };
            match ev {
                Ok(Ev::ConnAck) => {
                    backoff.reset();
                    // `connected` waits for the SUBACK: a message published
                    // before the broker has the subscription would be lost.
                    tracing::info!(source = %ctx.id, %server, topics = ?self.topics, "mqtt source connected");
                    if let Err(e) = client.try_subscribe(&self.topics, self.qos) {
                        tracing::warn!(source = %ctx.id, "mqtt subscribe failed: {e}");
                    }
                }
                Ok(Ev::Publish {
                    topic,
                    payload,
                    qos,
                    pkid,
                }) => {
                    let tv = match &last_topic {
                        Some((t, v)) if *t == topic => v.clone(),
                        _ => {
                            let v = Value::str(&topic);
                            last_topic = Some((topic, v.clone()));
                            v
                        }
                    };
                    let mut meta = Map::new();
                    meta.insert(k_topic.clone(), tv);
                    meta.insert(k_qos.clone(), Value::Int(qos as i64));
                    meta.insert(k_id.clone(), Value::Int(pkid as i64));
                    if !ctx.emit_bytes(payload, Some(Arc::new(meta))).await {
                        disconnect(&client, &mut el).await;
                        return Ok(());
                    }
                }
                Ok(Ev::SubAck { refused: 0 }) => ctx.conn.connected(),
                Ok(Ev::SubAck { refused }) => {
                    ctx.conn.connected();
                    let msg = format!(
                        "mqtt: the broker refused {refused} of the subscriptions {:?}",
                        self.topics
                    );
                    tracing::warn!(source = %ctx.id, "{msg}");
                    if !ctx.emit(SourceMsg::Error(msg)).await {
                        disconnect(&client, &mut el).await;
                        return Ok(());
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let msg = format!("mqtt {server}: {e}");
                    tracing::warn!(source = %ctx.id, "{msg}");
                    ctx.conn.disconnected(msg);
                    if sleep_or_cancel(backoff.next_delay(), &ctx.cancel).await {
                        return Ok(());
                    }
                    ctx.conn.connecting();
                }
            }
        }
    }
}
