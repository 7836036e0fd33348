//! `mqtt` sink: publishes each item's payload on `topic` (static or a
//! `{{.field}}` template) with `qos` and `retained`. At QoS 1 and 2 a batch
//! is written only once the broker acknowledged every publish of it (the
//! publishes are pipelined); when the connection breaks first, the batch
//! fails as `Unavailable` and the pipeline retries, caches or drops it (the
//! connection loop never resends on its own after a reconnection, so a
//! batch counted as dropped is not delivered later behind its back; a batch
//! resent whole may give duplicates of what the broker took before the
//! break: at least once). `connect` waits for the
//! broker (with a timeout) and fails with `Unavailable` when it is down; a
//! background task keeps the connection up afterwards and reports its status.
//! With `connectionSelector` it publishes on a shared connection instead.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oort_core::{
    ConnectorEnv, ConnectorError, ConnectorInfo, Consumes, Props, Sink, SinkContext, SinkFactory,
    SinkItem,
};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::acks::{AckWait, Acks, Report, Span};
use super::client::{Client, ConnConf, Ev, EventLoop, Settings, MAX_PACKET};
use super::shared::{self, LinkState as SharedState};
use crate::util::{de, parse_config, sleep_or_cancel, Backoff, PropTemplate};

mod publish;

/// How long `connect` waits for the broker.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one publish may wait for room in the client's queue.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests queued between the sink and the connection task.
const QUEUE: usize = 1024;
/// How long a read of acknowledgements waits for more while they flow.
const ACK_LINGER: Duration = Duration::from_millis(1);
/// A batch waiting for acknowledgements fails when none came for this long
/// while the connection was up.
const ACK_STALL: Duration = Duration::from_secs(10);

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
    /// Topic of what the resend cache sends on its alternate queue.
    #[serde(rename = "resenddestination", default)]
    resend_destination: String,
}

/// Factory of `mqtt` sinks.
pub struct MqttSinkFactory;

impl SinkFactory for MqttSinkFactory {
    fn kind(&self) -> &str {
        "mqtt"
    }

    fn info(&self) -> ConnectorInfo {
        super::info::sink()
    }

    fn ping(&self, _env: &ConnectorEnv, props: &Props) -> Option<oort_core::PingFuture> {
        Some(super::client::ping(props))
    }

    /// The payload; the runtime adds the row when `topic` is a template.
    fn consumes(&self) -> Consumes {
        Consumes::Payload
    }

    fn resend_destination(&self) -> bool {
        true
    }

    fn create(&self, env: &ConnectorEnv, props: &Props) -> Result<Box<dyn Sink>, ConnectorError> {
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
        let resend_topic = match c.resend_destination.trim() {
            "" => None,
            t if t.contains(['+', '#']) || t.contains("{{") => {
                return Err(ConnectorError::Config(format!(
                    "mqtt: invalid property resendDestination {t:?}: a fixed topic without wildcards is expected"
                )))
            }
            t => Some(PropTemplate::parse("resendDestination", t)?),
        };
        Ok(Box::new(MqttSink {
            settings: Settings::from_conf(&conn)?,
            env: env.clone(),
            topic,
            resend_topic,
            qos: c.qos as u8,
            retained: c.retained,
            link: None,
            selector: Some(c.connection_selector.trim().to_string()).filter(|s| !s.is_empty()),
            shared: None,
            sent: VecDeque::new(),
            tickets: 0,
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
    acks: Arc<Acks>,
    state: watch::Receiver<LinkState>,
    stop: CancellationToken,
    driver: JoinHandle<()>,
}

/// A running `mqtt` sink.
pub struct MqttSink {
    settings: Settings,
    /// The connector context (the pool of shared connections).
    env: ConnectorEnv,
    topic: PropTemplate,
    /// `resendDestination`: the topic of resends on the alternate queue.
    resend_topic: Option<PropTemplate>,
    qos: u8,
    retained: bool,
    link: Option<Link>,
    /// `connectionSelector`: publish on the shared connection of this profile.
    selector: Option<String>,
    shared: Option<SharedUse>,
    /// Pipelined batches handed off and not settled yet, by ticket.
    sent: VecDeque<(u64, Sent)>,
    /// The last ticket given out.
    tickets: u64,
}

/// A batch handed to the connection, waiting for its acknowledgements.
struct Sent {
    /// Its QoS >= 1 publishes (none at QoS 0).
    span: Option<Span>,
    /// The first item that could not be published (bad topic, too large).
    bad: Option<ConnectorError>,
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

/// The message of a connection that is down now.
fn down_now(shared: &Option<SharedUse>, link: &Option<Link>) -> Option<String> {
    if let Some(sh) = shared {
        if let SharedState::Down(m) = &*sh.lease.state().borrow() {
            return Some(m.clone());
        }
        return None;
    }
    match link.as_ref().map(|l| l.state.borrow().clone()) {
        Some(LinkState::Down(m)) => Some(m),
        _ => None,
    }
}

/// The state of the connection a sink publishes on, to notice it going down.
enum DownWatch {
    Own(watch::Receiver<LinkState>),
    Shared(watch::Receiver<SharedState>),
}

impl DownWatch {
    /// Waits until the connection is down; its message.
    async fn wait(&mut self) -> String {
        let down = match self {
            DownWatch::Own(s) => s
                .wait_for(|s| matches!(s, LinkState::Down(_)))
                .await
                .map(|s| match &*s {
                    LinkState::Down(m) => m.clone(),
                    _ => String::new(),
                }),
            DownWatch::Shared(s) => {
                s.wait_for(|s| matches!(s, SharedState::Down(_)))
                    .await
                    .map(|s| match &*s {
                        SharedState::Down(m) => m.clone(),
                        _ => String::new(),
                    })
            }
        };
        down.unwrap_or_else(|_| "connection task ended".into())
    }
}

/// Keeps the connection up until stopped or our DISCONNECT went out.
/// Hands `first` and the reports queued behind it to `acks` at once.
fn report(el: &mut EventLoop, acks: &Acks, reports: &mut Vec<Report>, first: Report) {
    reports.push(first);
    el.take_reports(reports);
    acks.apply(reports);
    reports.clear();
}

async fn drive(
    mut el: EventLoop,
    acks: Arc<Acks>,
    state: watch::Sender<LinkState>,
    ctx: SinkContext,
    stop: CancellationToken,
    server: String,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let mut reports = Vec::new();
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
            Ok(Ev::Sent(p)) => report(&mut el, &acks, &mut reports, Report::Sent(p)),
            Ok(Ev::Acked(p)) => report(&mut el, &acks, &mut reports, Report::Acked(p)),
            Ok(Ev::Refused(p, why)) => {
                report(&mut el, &acks, &mut reports, Report::Refused(p, why))
            }
            Ok(Ev::Disconnected) => return,
            Ok(_) => {}
            Err(e) => {
                let msg = format!("mqtt {server}: {e}");
                tracing::warn!(sink = %ctx.id, "{msg}");
                // The batches they belong to fail (Down) and are retried,
                // cached or counted as dropped by the pipeline.
                el.after_break(&acks);
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
            let lease = shared::acquire(&self.env, selector, &self.settings, &ctx.id)?;
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
        let (client, mut el) = self.settings.build(QUEUE)?;
        if self.qos > 0 {
            // Acknowledgements flowing in are read in batches (see
            // `EventLoop::set_read_linger`): CPU per message 5.0 -> 3.2 us
            // in the MQTT benchmark at QoS 1, at most ACK_LINGER more
            // before a batch counts as written.
            el.set_read_linger(ACK_LINGER);
        }
        let (tx, mut rx) = watch::channel(LinkState::Connecting);
        let stop = ctx.cancel.child_token();
        let acks = Arc::new(Acks::default());
        let driver = tokio::spawn(drive(
            el,
            acks.clone(),
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
            acks,
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
        self.publish(ctx, items, false).await
    }

    async fn collect_resend(
        &mut self,
        ctx: &SinkContext,
        items: &[SinkItem],
    ) -> Result<(), ConnectorError> {
        self.publish(ctx, items, true).await
    }

    async fn close(&mut self, _ctx: &SinkContext) -> Result<(), ConnectorError> {
        self.shutdown().await;
        Ok(())
    }

    /// At QoS >= 1: the next batches go out while the broker acknowledges
    /// earlier ones.
    fn pipelined(&self) -> bool {
        self.qos > 0
    }

    async fn send(&mut self, ctx: &SinkContext, items: &[SinkItem]) -> Result<u64, ConnectorError> {
        let sent = self.hand_off(ctx, items, false).await?;
        self.tickets += 1;
        self.sent.push_back((self.tickets, sent));
        Ok(self.tickets)
    }

    async fn settle(&mut self, ctx: &SinkContext, ticket: u64) -> Result<(), ConnectorError> {
        // Earlier tickets the runtime gave up on are forgotten.
        while self.sent.front().is_some_and(|(t, _)| *t < ticket) {
            self.sent.pop_front();
        }
        let span = match self.sent.front() {
            Some((t, sent)) if *t == ticket => sent.span,
            _ => {
                return Err(ConnectorError::Fatal(format!(
                    "mqtt: no batch was sent with ticket {ticket}"
                )))
            }
        };
        // Taken off only once settled: a settle cut short settles again.
        let r = self.confirm(ctx, Sent { span, bad: None }).await;
        let bad = self.sent.pop_front().and_then(|(_, sent)| sent.bad);
        r?;
        match bad {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
