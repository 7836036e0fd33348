//! EdgeX's `nats-jetstream` message bus: EdgeX's JetStream client settings
//! (`optional`: `Durable`, `Subject`, `AutoProvision`, `Deliver`,
//! `DefaultPubRetryAttempts`, `ExactlyOnce`) on top of the NATS connection
//! of [`super::nats`]. A source reads through a pull consumer (durable when
//! `Durable` is set: Oort instances sharing it share the messages, and what
//! arrived while Oort was away waits for it) and acknowledges a message once
//! it is handed to the stream's rules; a sink publishes and counts a batch
//! as written only once JetStream acknowledged storing every message.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, consumer::DeliverPolicy};
use futures::StreamExt;
use oort_core::{ConnectorError, Meta, SourceContext};

use super::nats::{message_meta, NatsConf};

/// EdgeX's JetStream settings.
#[derive(Debug, Clone, PartialEq)]
pub struct JetStreamConf {
    /// The durable consumer (and the stream's name when provisioning).
    pub durable: Option<String>,
    /// The subject (an EdgeX topic) a provisioned stream captures.
    pub subject: Option<String>,
    pub auto_provision: bool,
    pub deliver: DeliverPolicy,
    pub pub_retry_attempts: usize,
    /// Publish with `Nats-Msg-Id` (`<ClientId>-<correlation id>`) so that
    /// JetStream drops duplicates; acknowledge with a confirmed ack.
    pub exactly_once: bool,
}

impl Default for JetStreamConf {
    fn default() -> Self {
        JetStreamConf {
            durable: None,
            subject: None,
            auto_provision: false,
            deliver: DeliverPolicy::New,
            // nats.go's DefaultPubRetryAttempts.
            pub_retry_attempts: 2,
            exactly_once: false,
        }
    }
}

/// EdgeX's `Deliver` values.
pub fn parse_deliver(s: &str) -> Option<DeliverPolicy> {
    match s.trim().to_ascii_lowercase().as_str() {
        "" | "new" => Some(DeliverPolicy::New),
        "all" => Some(DeliverPolicy::All),
        "last" => Some(DeliverPolicy::Last),
        "lastpersubject" => Some(DeliverPolicy::LastPerSubject),
        _ => None,
    }
}

/// EdgeX's stream name for a subject: separators to `_`, wildcards dropped.
pub fn stream_name(subject: &str) -> String {
    subject
        .replace('.', "_")
        .replace(['*', '>'], "")
        .trim_end_matches('_')
        .to_string()
}

fn unavailable(url: &str, what: &str, e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Unavailable(format!("nats-jetstream {url}: {what}: {e}"))
}

impl JetStreamConf {
    /// Creates the stream EdgeX's `AutoProvision` would: named `Durable`
    /// (else after `Subject`), capturing `Subject`, when it does not exist.
    pub async fn provision(
        &self,
        js: &jetstream::Context,
        url: &str,
    ) -> Result<(), ConnectorError> {
        if !self.auto_provision {
            return Ok(());
        }
        let subject = super::bus::nats_subject(self.subject.as_deref().unwrap_or_default());
        let name = self
            .durable
            .clone()
            .filter(|d| !d.trim().is_empty())
            .unwrap_or_else(|| stream_name(&subject));
        if js.get_stream(&name).await.is_ok() {
            return Ok(());
        }
        js.create_stream(jetstream::stream::Config {
            name,
            subjects: vec![subject],
            ..Default::default()
        })
        .await
        .map(drop)
        .map_err(|e| unavailable(url, "provisioning the stream", e))
    }

    /// The stream a subscription to `subject` reads: the one named after
    /// `Subject` when set without `Durable` (EdgeX's binding), else the one
    /// capturing `subject`.
    async fn stream(
        &self,
        js: &jetstream::Context,
        subject: &str,
        url: &str,
    ) -> Result<jetstream::stream::Stream, ConnectorError> {
        let name = match (&self.durable, &self.subject) {
            (None, Some(s)) => stream_name(&super::bus::nats_subject(s)),
            _ => js
                .stream_by_subject(subject)
                .await
                .map_err(|e| unavailable(url, &format!("no stream captures {subject}"), e))?,
        };
        js.get_stream(&name)
            .await
            .map_err(|e| unavailable(url, &format!("stream {name}"), e))
    }
}

/// Reads `subject` through a JetStream consumer until cancelled, emitting
/// each message and acknowledging it once the runtime has it.
pub async fn run_source(
    conf: &NatsConf,
    js_conf: &JetStreamConf,
    client: async_nats::Client,
    subject: &str,
    ctx: &SourceContext,
) -> Result<(), ConnectorError> {
    let js = jetstream::new(client.clone());
    js_conf.provision(&js, &conf.url).await?;
    let stream = js_conf.stream(&js, subject, &conf.url).await?;
    let cfg = pull::Config {
        durable_name: js_conf.durable.clone(),
        deliver_policy: js_conf.deliver,
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        filter_subject: subject.to_string(),
        ..Default::default()
    };
    let consumer = match &js_conf.durable {
        Some(d) => stream.get_or_create_consumer(d, cfg).await,
        None => stream.create_consumer(cfg).await,
    }
    .map_err(|e| unavailable(&conf.url, "creating the consumer", e))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| unavailable(&conf.url, "reading the consumer", e))?;
    loop {
        let msg = tokio::select! {
            _ = ctx.cancel.cancelled() => break,
            m = messages.next() => match m {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    if !ctx.emit(oort_core::SourceMsg::Error(format!("nats-jetstream: {e}"))).await {
                        break;
                    }
                    continue;
                }
                None => return Err(ConnectorError::Unavailable("nats-jetstream: the consumer ended".into())),
            },
        };
        let meta: Meta = message_meta(&msg.message);
        if !ctx
            .emit_bytes(msg.message.payload.clone(), Some(Arc::new(meta)))
            .await
        {
            break;
        }
        let acked = if js_conf.exactly_once {
            msg.double_ack().await
        } else {
            msg.ack().await
        };
        if let Err(e) = acked {
            // Not acknowledged: JetStream delivers it again (at least once).
            let e = format!("nats-jetstream: ack failed, the message will come again: {e}");
            if !ctx.emit(oort_core::SourceMsg::Error(e)).await {
                break;
            }
        }
    }
    // The acks out and the pull requests withdrawn before the connection
    // goes: a message must not be handed to a request nobody reads.
    drop(messages);
    let _ = tokio::time::timeout(Duration::from_secs(5), client.drain()).await;
    Ok(())
}

/// Publishes a batch and waits for JetStream's acknowledgements (each
/// message stored), retrying a message `pub_retry_attempts` times.
pub async fn publish(
    conf: &NatsConf,
    js_conf: &JetStreamConf,
    client: &async_nats::Client,
    msgs: Vec<(String, async_nats::HeaderMap, bytes::Bytes)>,
) -> Result<(), ConnectorError> {
    let js = jetstream::new(client.clone());
    let mut pending = Vec::with_capacity(msgs.len());
    for (subject, headers, payload) in msgs {
        let ack = js
            .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
            .await
            .map_err(|e| unavailable(&conf.url, "publish", e))?;
        pending.push((subject, headers, payload, ack));
    }
    for (subject, headers, payload, ack) in pending {
        let mut result = tokio::time::timeout(Duration::from_secs(5), ack).await;
        let mut tries = 0;
        while !matches!(result, Ok(Ok(_))) && tries < js_conf.pub_retry_attempts {
            tries += 1;
            let again = js
                .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
                .await
                .map_err(|e| unavailable(&conf.url, "publish", e))?;
            result = tokio::time::timeout(Duration::from_secs(5), again).await;
        }
        match result {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(unavailable(&conf.url, &format!("publish to {subject}"), e)),
            Err(_) => {
                return Err(unavailable(
                    &conf.url,
                    &format!("publish to {subject}"),
                    "no acknowledgement in 5 s",
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_deliver_policies_follow_edgex() {
        assert_eq!(stream_name("edgex.events.>"), "edgex_events");
        assert_eq!(stream_name("edgex.events.*.x"), "edgex_events__x");
        assert_eq!(
            parse_deliver("LastPerSubject"),
            Some(DeliverPolicy::LastPerSubject)
        );
        assert_eq!(parse_deliver(""), Some(DeliverPolicy::New));
        assert_eq!(parse_deliver("sometimes"), None);
    }
}
