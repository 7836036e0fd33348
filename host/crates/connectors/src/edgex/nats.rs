//! EdgeX's `nats-core` message bus through the `async-nats` client: the
//! subscription of an `edgex` source and the publisher of an `edgex` sink.
//! EdgeX's default NATS format (`nats`) carries the event itself as the
//! payload and the envelope's fields as headers (`X-Correlation-ID`,
//! `Content-Type`, `ApiVersion`...); the `json` format carries the whole
//! envelope as the MQTT bus does. The client reconnects and resubscribes by
//! itself; its connection events drive the connector status.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use oort_core::{ConnState, ConnectorError, Meta, SourceContext, Value};

/// How envelopes travel on NATS (EdgeX's `optional.Format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatsFormat {
    /// The payload is the message body, the envelope's fields are headers.
    Nats,
    /// The payload is the JSON envelope.
    Json,
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct NatsConf {
    pub url: String,
    pub name: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub format: NatsFormat,
    pub connect_timeout: Duration,
    pub queue_group: Option<String>,
    /// `nats-jetstream`: EdgeX's JetStream settings.
    pub jetstream: Option<super::jetstream::JetStreamConf>,
}

/// The metadata of a received message: its subject as an EdgeX topic and
/// the envelope's correlation id (`nats` format headers).
pub(super) fn message_meta(msg: &async_nats::Message) -> Meta {
    let mut meta = Meta::new();
    meta.insert(
        "topic".into(),
        Value::from(msg.subject.as_str().replace('.', "/").as_str()),
    );
    if let Some(c) = msg
        .headers
        .as_ref()
        .and_then(|h| h.get("X-Correlation-ID"))
        .map(|v| v.as_str().to_string())
        .filter(|c| !c.is_empty())
    {
        meta.insert("correlationid".into(), Value::from(c.as_str()));
    }
    meta
}

/// Messages a subscription holds before the client drops (and reports)
/// the next ones.
const SUBSCRIPTION_CAPACITY: usize = 8192;

impl NatsConf {
    /// A client whose connection events update `conn` and count in
    /// `dropped` the messages the server sent that a full subscription
    /// dropped; the first connect must succeed within the connect timeout
    /// (later ones are retried by the client for ever).
    pub async fn connect(
        &self,
        id: &str,
        conn: ConnState,
        dropped: Arc<AtomicU64>,
    ) -> Result<async_nats::Client, ConnectorError> {
        let mut o = async_nats::ConnectOptions::new()
            .connection_timeout(self.connect_timeout)
            .subscription_capacity(SUBSCRIPTION_CAPACITY)
            .max_reconnects(None);
        if let Some(n) = &self.name {
            o = o.name(n);
        }
        if let Some(u) = &self.user {
            o = o.user_and_password(u.clone(), self.password.clone().unwrap_or_default());
        }
        let events = conn.clone();
        let who = id.to_string();
        let drops = Arc::new(std::sync::Mutex::new(oort_core::RateLimitedLog::new(
            Duration::from_secs(10),
        )));
        o = o.event_callback(move |e| {
            let events = events.clone();
            let who = who.clone();
            let drops = drops.clone();
            let dropped = dropped.clone();
            async move {
                match e {
                    async_nats::Event::Connected => events.connected(),
                    async_nats::Event::Disconnected => events.disconnected("nats: disconnected"),
                    async_nats::Event::Closed => events.disconnected("nats: closed"),
                    async_nats::Event::SlowConsumer(_) => {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut l) = drops.lock() {
                            l.hit(|held| {
                                tracing::warn!(node = %who, more = held, "edgex: the NATS subscription is full; the server's messages are being dropped")
                            });
                        }
                    }
                    other => tracing::debug!(node = %who, event = %other, "edgex: nats event"),
                }
            }
        });
        conn.connecting();
        match tokio::time::timeout(self.connect_timeout, o.connect(self.url.as_str())).await {
            Ok(Ok(c)) => {
                conn.connected();
                Ok(c)
            }
            Ok(Err(e)) => {
                let m = format!("nats {}: {e}", self.url);
                conn.disconnected(m.clone());
                Err(ConnectorError::Unavailable(m))
            }
            Err(_) => {
                let m = format!("nats {}: connect timed out", self.url);
                conn.disconnected(m.clone());
                Err(ConnectorError::Unavailable(m))
            }
        }
    }

    /// Subscribes to `subject` and emits every message as bytes (an envelope
    /// for the `json` format; the body with the headers' correlation id in
    /// the metadata for `nats`) until cancelled.
    pub async fn run_source(
        &self,
        subject: &str,
        ctx: &SourceContext,
    ) -> Result<(), ConnectorError> {
        let mut backoff =
            crate::util::Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let dropped = Arc::new(AtomicU64::new(0));
        let mut reported = 0u64;
        let client = loop {
            match self
                .connect(&ctx.id, ctx.conn.clone(), dropped.clone())
                .await
            {
                Ok(c) => break c,
                Err(e) => {
                    tracing::warn!(source = %ctx.id, error = %e, "edgex: nats connect failed; retrying");
                }
            }
            if crate::util::sleep_or_cancel(backoff.next_delay(), &ctx.cancel).await {
                return Ok(());
            }
        };
        if let Some(js) = &self.jetstream {
            return super::jetstream::run_source(self, js, client, subject, ctx).await;
        }
        let sub = match &self.queue_group {
            Some(q) => client.queue_subscribe(subject.to_string(), q.clone()).await,
            None => client.subscribe(subject.to_string()).await,
        };
        let mut sub =
            sub.map_err(|e| ConnectorError::Fatal(format!("nats subscribe {subject}: {e}")))?;
        loop {
            let msg = tokio::select! {
                _ = ctx.cancel.cancelled() => break,
                m = sub.next() => match m {
                    Some(m) => m,
                    None => return Err(ConnectorError::Unavailable("nats: the subscription ended".into())),
                },
            };
            let meta = message_meta(&msg);
            if !ctx.emit_bytes(msg.payload, Some(Arc::new(meta))).await {
                break;
            }
            // Messages the client dropped (the subscription was full) are
            // exceptions of the source, visible in the rule status.
            let now = dropped.load(Ordering::Relaxed);
            if now > reported {
                let n = now - reported;
                reported = now;
                let e = format!("nats: {n} message(s) dropped: the subscription was full ({SUBSCRIPTION_CAPACITY} held)");
                if !ctx.emit(oort_core::SourceMsg::Error(e)).await {
                    break;
                }
            }
        }
        let _ = sub.unsubscribe().await;
        Ok(())
    }
}

/// The publisher of an `edgex` sink on NATS.
pub struct NatsPublisher {
    pub conf: NatsConf,
    client: Option<async_nats::Client>,
}

impl NatsPublisher {
    pub fn new(conf: NatsConf) -> Self {
        NatsPublisher { conf, client: None }
    }

    pub async fn connect(&mut self, id: &str, conn: &ConnState) -> Result<(), ConnectorError> {
        if self.client.is_none() {
            // A publisher subscribes to nothing: nothing to drop.
            let none = Arc::new(AtomicU64::new(0));
            let client = self.conf.connect(id, conn.clone(), none).await?;
            if let Some(js) = &self.conf.jetstream {
                js.provision(&async_nats::jetstream::new(client.clone()), &self.conf.url)
                    .await?;
            }
            self.client = Some(client);
        }
        Ok(())
    }

    /// Publishes `(subject, body, envelope)` messages and waits until the
    /// server has them (a flush round trip): only then is the batch written.
    /// `body` is what the `nats` format sends, `envelope` the `json` one.
    pub async fn publish(
        &mut self,
        id: &str,
        conn: &ConnState,
        msgs: Vec<(String, Bytes, Bytes, String)>,
    ) -> Result<(), ConnectorError> {
        self.connect(id, conn).await?;
        let Some(client) = &self.client else {
            return Err(ConnectorError::Unavailable("nats: not connected".into()));
        };
        let unavailable =
            |e: String| ConnectorError::Unavailable(format!("nats {}: {e}", self.conf.url));
        let exactly_once = self.conf.jetstream.as_ref().is_some_and(|j| j.exactly_once);
        let mut out = Vec::with_capacity(msgs.len());
        for (subject, body, envelope, correlation) in msgs {
            let mut h = async_nats::HeaderMap::new();
            if exactly_once {
                // EdgeX's de-duplication id: JetStream drops a second copy.
                let id = format!(
                    "{}-{correlation}",
                    self.conf.name.as_deref().unwrap_or_default()
                );
                h.insert("Nats-Msg-Id", id.as_str());
            }
            let payload = match self.conf.format {
                NatsFormat::Json => envelope,
                NatsFormat::Nats => {
                    h.insert("Content-Type", "application/json");
                    h.insert("X-Correlation-ID", correlation.as_str());
                    h.insert("ApiVersion", "v3");
                    h.insert("RequestId", "");
                    h.insert("ErrorCode", "0");
                    body
                }
            };
            out.push((subject, h, payload));
        }
        if let Some(js) = &self.conf.jetstream {
            return super::jetstream::publish(&self.conf, js, client, out).await;
        }
        for (subject, h, payload) in out {
            let r = if h.is_empty() {
                client.publish(subject, payload).await
            } else {
                client.publish_with_headers(subject, h, payload).await
            };
            r.map_err(|e| unavailable(e.to_string()))?;
        }
        match tokio::time::timeout(Duration::from_secs(5), client.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(unavailable(e.to_string())),
            Err(_) => Err(unavailable(
                "the server did not confirm the batch in 5 s".into(),
            )),
        }
    }

    pub async fn close(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.drain().await;
        }
    }
}
