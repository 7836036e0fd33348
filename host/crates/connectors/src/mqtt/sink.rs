//! `mqtt` sink: publishes each item's payload on `topic` (static or a
//! `{{.field}}` template) with `qos` and `retained`. `connect` waits for the
//! broker (with a timeout) and fails with `Unavailable` when it is down; a
//! background task keeps the connection up afterwards and reports its status.
//! With `connectionSelector` it publishes on a shared connection instead.

use std::time::Duration;

use async_trait::async_trait;
use oort_core::{ConnectorError, Consumes, Props, Sink, SinkContext, SinkFactory, SinkItem};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::client::{Client, ConnConf, Ev, EventLoop, Settings};
use super::shared::{self, LinkState as SharedState};
use crate::util::{de, parse_config, sleep_or_cancel, Backoff, PropTemplate};

/// How long `connect` waits for the broker.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one publish may wait for room in the client's queue.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests queued between the sink and the connection task.
const QUEUE: usize = 1024;

#[derive(Debug, Deserialize)]
struct SinkConf {
    #[serde(default)]
    topic: String,
    #[serde(default, deserialize_with = "de::u64_lenient")]
    qos: u64,
    #[serde(default, deserialize_with = "de::bool_lenient")]
    retained: bool,
    /// Names a connection profile: the connection is shared ([`super::shared`]).
    #[serde(rename = "connectionselector", default)]
    connection_selector: String,
}

/// Factory of `mqtt` sinks.
pub struct MqttSinkFactory;

impl SinkFactory for MqttSinkFactory {
    fn kind(&self) -> &str {
        "mqtt"
    }

    /// The payload; the runtime adds the row when `topic` is a template.
    fn consumes(&self) -> Consumes {
        Consumes::Payload
    }

    fn create(&self, props: &Props) -> Result<Box<dyn Sink>, ConnectorError> {
        let conn: ConnConf = parse_config("mqtt", props)?;
        let c: SinkConf = parse_config("mqtt", props)?;
        if conn.server.trim().is_empty() {
            return Err(ConnectorError::config("mqtt: property server is required"));
        }
        if c.topic.trim().is_empty() {
            return Err(ConnectorError::config("mqtt: property topic is required"));
        }
        if c.qos > 2 {
            return Err(ConnectorError::Config(format!(
                "mqtt: invalid property qos {}: expected 0, 1 or 2",
                c.qos
            )));
        }
        let topic = PropTemplate::parse("topic", c.topic.trim())?;
        if let Some(t) = topic.static_text() {
            if t.contains(['+', '#']) {
                return Err(ConnectorError::Config(format!(
                    "mqtt: invalid property topic {t:?}: wildcards are not allowed when publishing"
                )));
            }
        }
        Ok(Box::new(MqttSink {
            settings: Settings::from_conf(&conn)?,
            topic,
            qos: c.qos as u8,
            retained: c.retained,
            link: None,
            selector: Some(c.connection_selector.trim().to_string()).filter(|s| !s.is_empty()),
            shared: None,
        }))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LinkState {
    Connecting,
    Up,
    Down(String),
}

struct Link {
    client: Client,
    state: watch::Receiver<LinkState>,
    stop: CancellationToken,
    driver: JoinHandle<()>,
}

/// A running `mqtt` sink.
pub struct MqttSink {
    settings: Settings,
    topic: PropTemplate,
    qos: u8,
    retained: bool,
    link: Option<Link>,
    /// `connectionSelector`: publish on the shared connection of this profile.
    selector: Option<String>,
    shared: Option<SharedUse>,
}

/// A sink's hold on a shared connection and the task mirroring its state
/// into the sink's status.
struct SharedUse {
    lease: shared::Lease,
    mirror: CancellationToken,
}

impl Drop for SharedUse {
    fn drop(&mut self) {
        self.mirror.cancel();
    }
}

/// Keeps the connection up until stopped or our DISCONNECT went out.
async fn drive(
    mut el: EventLoop,
    state: watch::Sender<LinkState>,
    ctx: SinkContext,
    stop: CancellationToken,
    server: String,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    ctx.conn.connecting();
    loop {
        let ev = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            ev = el.poll() => ev,
        };
        match ev {
            Ok(Ev::ConnAck) => {
                backoff.reset();
                ctx.conn.connected();
                let _ = state.send(LinkState::Up);
                tracing::info!(sink = %ctx.id, %server, "mqtt sink connected");
            }
            Ok(Ev::Disconnected) => return,
            Ok(_) => {}
            Err(e) => {
                let msg = format!("mqtt {server}: {e}");
                tracing::warn!(sink = %ctx.id, "{msg}");
                ctx.conn.disconnected(msg.clone());
                let _ = state.send(LinkState::Down(msg));
                if sleep_or_cancel(backoff.next_delay(), &stop).await {
                    return;
                }
                ctx.conn.connecting();
            }
        }
    }
}

impl MqttSink {
    /// `connect` on a shared connection: joins it once (later calls only wait)
    /// and waits for it to be up.
    async fn connect_shared(
        &mut self,
        ctx: &SinkContext,
        selector: &str,
    ) -> Result<(), ConnectorError> {
        if self.shared.is_none() {
            let lease = shared::acquire(selector, &self.settings, &ctx.id)?;
            tracing::info!(sink = %ctx.id, selector, server = %lease.server(), "mqtt sink on a shared connection");
            let mirror = ctx.cancel.child_token();
            let mut st = lease.state();
            let conn = ctx.conn.clone();
            let stop = mirror.clone();
            tokio::spawn(async move {
                st.borrow_and_update().mirror(&conn);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        r = st.changed() => {
                            if r.is_err() {
                                return;
                            }
                            st.borrow_and_update().mirror(&conn);
                        }
                    }
                }
            });
            self.shared = Some(SharedUse { lease, mirror });
        }
        let Some(sh) = &self.shared else {
            return Err(ConnectorError::unavailable("mqtt sink is not connected"));
        };
        let mut st = sh.lease.state();
        let up = matches!(
            tokio::time::timeout(CONNECT_TIMEOUT, st.wait_for(|s| *s == SharedState::Up)).await,
            Ok(Ok(_))
        );
        let current = st.borrow().clone();
        current.mirror(&ctx.conn);
        if up {
            return Ok(());
        }
        Err(ConnectorError::Unavailable(match current {
            SharedState::Down(m) => m,
            _ => format!(
                "mqtt {}: no connection within {CONNECT_TIMEOUT:?}",
                sh.lease.server()
            ),
        }))
    }

    async fn shutdown(&mut self) {
        self.shared = None;
        if let Some(link) = self.link.take() {
            link.client.try_disconnect();
            let mut driver = link.driver;
            if tokio::time::timeout(Duration::from_secs(2), &mut driver)
                .await
                .is_err()
            {
                link.stop.cancel();
                let _ = driver.await;
            }
            link.stop.cancel();
        }
    }
}

#[async_trait]
impl Sink for MqttSink {
    async fn connect(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        if let Some(sel) = self.selector.clone() {
            return self.connect_shared(ctx, &sel).await;
        }
        self.shutdown().await;
        let (client, el) = self.settings.build(QUEUE)?;
        let (tx, mut rx) = watch::channel(LinkState::Connecting);
        let stop = ctx.cancel.child_token();
        let driver = tokio::spawn(drive(
            el,
            tx,
            ctx.clone(),
            stop.clone(),
            self.settings.server_text(),
        ));
        let waited = tokio::time::timeout(CONNECT_TIMEOUT, async {
            loop {
                let s = rx.borrow_and_update().clone();
                if s != LinkState::Connecting {
                    return s;
                }
                if rx.changed().await.is_err() {
                    return LinkState::Down("connection task ended".into());
                }
            }
        })
        .await;
        let failure = match waited {
            Ok(LinkState::Up) => None,
            Ok(LinkState::Down(m)) => Some(m),
            Ok(LinkState::Connecting) | Err(_) => Some(format!(
                "mqtt {}: no connection within {CONNECT_TIMEOUT:?}",
                self.settings.server_text()
            )),
        };
        self.link = Some(Link {
            client,
            state: rx,
            stop,
            driver,
        });
        if let Some(m) = failure {
            self.shutdown().await;
            ctx.conn.disconnected(m.clone());
            return Err(ConnectorError::Unavailable(m));
        }
        Ok(())
    }

    async fn collect(
        &mut self,
        ctx: &SinkContext,
        items: &[SinkItem],
    ) -> Result<(), ConnectorError> {
        let client = if let Some(sh) = &self.shared {
            if let SharedState::Down(m) = &*sh.lease.state().borrow() {
                return Err(ConnectorError::Unavailable(m.clone()));
            }
            sh.lease.client()
        } else {
            let Some(link) = &self.link else {
                return Err(ConnectorError::unavailable("mqtt sink is not connected"));
            };
            if let LinkState::Down(m) = &*link.state.borrow() {
                return Err(ConnectorError::Unavailable(m.clone()));
            }
            &link.client
        };
        let static_topic = self.topic.static_text().map(|t| t.into_owned());
        // An item whose topic cannot be rendered is not published; the
        // others are, and the first such error is reported at the end.
        let mut bad_topic: Option<ConnectorError> = None;
        for it in items {
            let topic = match &static_topic {
                Some(t) => t.clone(),
                None => match self.topic.render(&it.data) {
                    Ok(t) if t.is_empty() || t.contains(['+', '#']) => {
                        bad_topic.get_or_insert(ConnectorError::InvalidData(format!(
                            "mqtt: rendered topic {t:?} is empty or has wildcards"
                        )));
                        continue;
                    }
                    Ok(t) => t,
                    Err(e) => {
                        bad_topic.get_or_insert(e);
                        continue;
                    }
                },
            };
            let publish = client.publish(topic, self.qos, self.retained, it.payload.clone());
            tokio::select! {
                r = tokio::time::timeout(PUBLISH_TIMEOUT, publish) => match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(ConnectorError::Unavailable(format!("mqtt publish: {e}"))),
                    Err(_) => return Err(ConnectorError::unavailable("mqtt publish: timed out waiting for the connection")),
                },
                _ = ctx.cancel.cancelled() => return Ok(()),
            }
        }
        match bad_topic {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn close(&mut self, _ctx: &SinkContext) -> Result<(), ConnectorError> {
        self.shutdown().await;
        Ok(())
    }
}
