//! `mqtt` source: subscribes to the DATASOURCE topic(s) and emits each message
//! as bytes with meta `{topic, qos, messageId}`. Reconnects with backoff and
//! subscribes again after every reconnect; reports status through `ctx.conn`.
//! With `connectionSelector` it subscribes on a shared connection instead.
//!
//! At-least-once: a QoS 1 subscription keeps a persistent session
//! (`enableClientSession`, on by default at QoS 1) under a client id that is
//! stable across restarts, and acknowledges each PUBLISH only once the
//! rules reading the stream have delivered its results
//! ([`Source::acks_on_delivery`], [`SourceContext::handed`]), so the broker
//! keeps what Oort has not written out yet across broker restarts and Oort
//! crashes. At a stop the source waits (at most [`CLOSE_WAIT`]) for the
//! rules to finish what it emitted, acknowledges that, and takes nothing
//! more.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oort_core::{
    ConnectorEnv, ConnectorError, ConnectorInfo, Meta, Props, Source, SourceContext, SourceFactory,
    SourceMsg, Value,
};
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};

use super::client::{validate_filter, Client, ConnConf, Ev, EventLoop, SessionOpts, Settings};
use super::shared;
use crate::util::{de, parse_config, sleep_or_cancel, Backoff};

fn default_qos() -> u64 {
    1
}

/// eKuiper's default MQTT 5 session expiry (`sessionExpiryIntervalSeconds`).
fn default_expiry() -> u64 {
    60
}

/// Requests queued between the source and its event loop (acks, SUBSCRIBE).
const REQUESTS: usize = 1024;
/// Most received messages handed to the runtime in one batch (what one
/// read brings is usually far fewer; this bounds the batch's vector).
const BATCH_MAX: usize = 256;

/// Longest a stopping source with delivery acknowledgements waits for the
/// rules to finish the messages it emitted.
const CLOSE_WAIT: Duration = Duration::from_secs(20);

fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    de::bool_lenient(d).map(Some)
}

#[derive(Debug, Deserialize)]
struct SourceConf {
    #[serde(default = "default_qos", deserialize_with = "de::u64_lenient")]
    qos: u64,
    /// Names a connection profile: the connection is shared ([`super::shared`]).
    #[serde(rename = "connectionselector", default)]
    connection_selector: String,
    /// eKuiper's `enableClientSession`: a persistent session (clean session
    /// false). Oort's default: on for QoS 1 subscriptions.
    #[serde(rename = "enableclientsession", default, deserialize_with = "opt_bool")]
    enable_client_session: Option<bool>,
    /// MQTT 5 only: how long the broker keeps the session after a disconnect.
    #[serde(
        rename = "sessionexpiryintervalseconds",
        default = "default_expiry",
        deserialize_with = "de::u64_lenient"
    )]
    session_expiry_secs: u64,
    /// Oort's own: how long (ms) a read waits for more messages while they
    /// flow (reads under 1 ms apart); default 5 at QoS 0 and 1, else 0 (off).
    #[serde(rename = "readlingerinterval", default, deserialize_with = "opt_u64")]
    read_linger_ms: Option<u64>,
    /// Oort's own: subscribe as a member of this MQTT shared-subscription
    /// group (`$share/<group>/<topic>`), so that the instances of a fleet
    /// split the stream's messages between them.
    #[serde(
        rename = "sharegroup",
        default,
        deserialize_with = "de::string_lenient"
    )]
    share_group: String,
}

/// The subscription filters of `topics` with `shareGroup` applied: each
/// becomes `$share/<group>/<topic>`. A group naming `/`, `+` or `#`, or a
/// topic already shared (`$share/...`, `$queue/...`), is refused.
fn shared_topics(group: &str, topics: Vec<String>) -> Result<Vec<String>, ConnectorError> {
    let g = group.trim();
    if g.is_empty() {
        return Ok(topics);
    }
    if g.contains(['/', '+', '#']) {
        return Err(ConnectorError::Config(format!(
            "mqtt: invalid property shareGroup {g:?}: a group name may not hold '/', '+' or '#'"
        )));
    }
    topics
        .into_iter()
        .map(|t| {
            if t.starts_with("$share/") || t.starts_with("$queue/") {
                Err(ConnectorError::Config(format!(
                    "mqtt: property shareGroup {g:?} and the shared topic {t:?} in DATASOURCE name the group twice; keep one of them"
                )))
            } else {
                Ok(format!("$share/{g}/{t}"))
            }
        })
        .collect()
}

fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    de::u64_lenient(d).map(Some)
}

/// `readLingerInterval` at QoS 0 and 1 without a shared connection. 5 ms:
/// in the scale-out benchmark (4 instances sharing a stream, each reading a
/// quarter of it) 1 ms took twice the wake-ups per message of one instance
/// and 5 ms the same number; only streams of about 1,000 reads a second
/// and more wait at all.
const DEFAULT_READ_LINGER: Duration = Duration::from_millis(5);
/// Largest `readLingerInterval` (ms).
const MAX_READ_LINGER_MS: u64 = 100;

/// The read linger of a source: `readLingerInterval`, or 5 ms at QoS 0 and
/// 1 without a shared connection (a shared connection's publishes would
/// wait behind it; a QoS 2 exchange takes several round trips).
fn read_linger(c: &SourceConf, shared: bool) -> Result<Duration, ConnectorError> {
    match c.read_linger_ms {
        None if c.qos <= 1 && !shared => Ok(DEFAULT_READ_LINGER),
        None | Some(0) => Ok(Duration::ZERO),
        Some(_) if shared => Err(ConnectorError::config(
            "mqtt: property readLingerInterval is not supported with connectionSelector (a shared connection's publishes would wait behind it); remove one of them",
        )),
        Some(ms) if ms > MAX_READ_LINGER_MS => Err(ConnectorError::Config(format!(
            "mqtt: invalid property readLingerInterval {ms}: at most {MAX_READ_LINGER_MS} (ms)"
        ))),
        Some(ms) => Ok(Duration::from_millis(ms)),
    }
}

/// The metadata of one received message (`meta(topic)`, `meta(qos)`,
/// `meta(messageId)`), for an own connection and a shared one alike: the
/// names are allocated once per process, the entries given in name order.
pub(crate) fn message_meta(pkid: u16, qos: u8, topic: Value) -> Meta {
    static KEYS: std::sync::LazyLock<[Arc<str>; 3]> =
        std::sync::LazyLock::new(|| [Arc::from("messageId"), Arc::from("qos"), Arc::from("topic")]);
    let [id, q, t] = &*KEYS;
    Meta::from_sorted([
        (id.clone(), Value::Int(pkid as i64)),
        (q.clone(), Value::Int(qos as i64)),
        (t.clone(), topic),
    ])
}

/// Factory of `mqtt` sources.
pub struct MqttSourceFactory;

impl SourceFactory for MqttSourceFactory {
    fn kind(&self) -> &str {
        "mqtt"
    }

    fn info(&self) -> ConnectorInfo {
        super::info::source()
    }

    fn ping(&self, _env: &ConnectorEnv, props: &Props) -> Option<oort_core::PingFuture> {
        Some(super::client::ping(props))
    }

    fn create(
        &self,
        env: &ConnectorEnv,
        datasource: &str,
        props: &Props,
    ) -> Result<Box<dyn Source>, ConnectorError> {
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
        let topics = shared_topics(&extra.share_group, topics)?;
        let selector = Some(extra.connection_selector.trim().to_string()).filter(|s| !s.is_empty());
        let session = session_opts(&extra, selector.is_some())?;
        let read_linger = read_linger(&extra, selector.is_some())?;
        Ok(Box::new(MqttSource {
            settings: Settings::from_conf(&conn)?,
            topics,
            qos: extra.qos as u8,
            selector,
            session,
            env: env.clone(),
            read_linger,
        }))
    }
}

/// Session options from `qos`, `enableClientSession` and
/// `sessionExpiryIntervalSeconds`; refuses the combinations Oort cannot honour.
fn session_opts(c: &SourceConf, shared: bool) -> Result<SessionOpts, ConnectorError> {
    let persistent = match c.enable_client_session {
        Some(true) if shared => {
            return Err(ConnectorError::config(
                "mqtt: property enableClientSession is not supported with connectionSelector: a shared connection serves several streams and keeps a clean session; remove connectionSelector for a persistent session",
            ))
        }
        Some(true) if c.qos == 2 => {
            return Err(ConnectorError::config(
                "mqtt: property enableClientSession is not supported with qos 2 (the MQTT client cannot resume a QoS 2 exchange after a reconnect); use qos 1",
            ))
        }
        Some(b) => b,
        None => c.qos == 1 && !shared,
    };
    let expiry_secs = u32::try_from(c.session_expiry_secs).map_err(|_| {
        ConnectorError::Config(format!(
            "mqtt: invalid property sessionExpiryIntervalSeconds {}: at most {}",
            c.session_expiry_secs,
            u32::MAX
        ))
    })?;
    Ok(SessionOpts {
        persistent,
        // QoS 0 has nothing to acknowledge.
        manual_acks: persistent && c.qos == 1,
        expiry_secs,
    })
}

/// The client id of a persistent session when none is configured: the same
/// for a stream of one Oort instance ([`ConnectorEnv::instance_key`]: its
/// `--instance-id`, else its data dir) across restarts, different between
/// streams and instances. 21 characters (MQTT 3.1.1 servers must accept up
/// to 23).
pub(crate) fn stable_client_id(instance: &str, stream: &str) -> String {
    let mut h = Sha256::new();
    h.update(instance.as_bytes());
    h.update([0u8]);
    h.update(stream.as_bytes());
    let d = h.finalize();
    let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("oort-{hex}")
}

/// A running `mqtt` source.
pub struct MqttSource {
    settings: Settings,
    topics: Vec<String>,
    qos: u8,
    /// `connectionSelector`: use the shared connection of this profile.
    selector: Option<String>,
    session: SessionOpts,
    /// The connector context (the data dir for client ids of persistent
    /// sessions, the pool of shared connections).
    env: ConnectorEnv,
    /// `readLingerInterval`.
    read_linger: Duration,
}

impl MqttSource {
    /// Runs on the shared connection of `selector`: subscribes, mirrors the
    /// connection's state into `ctx.conn`, unsubscribes when done.
    async fn run_shared(&self, ctx: SourceContext, selector: &str) -> Result<(), ConnectorError> {
        let lease = shared::acquire(&self.env, selector, &self.settings, &ctx.id)?;
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

impl MqttSource {
    /// Stops: with manual acknowledgements, first waits until the runtime
    /// has finished every emitted message (or no rule is left to, or
    /// [`CLOSE_WAIT`]) while the loop writes their PUBACKs; then
    /// disconnects. A message arriving meanwhile is not taken and stays
    /// unacknowledged: the broker sends it to this session again.
    async fn close(&self, client: &Client, el: &mut EventLoop, ctx: &SourceContext, emitted: u64) {
        if self.session.manual_acks {
            let mut handed = ctx.handed();
            let finished = ctx.handing_finished();
            let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
            while *handed.borrow_and_update() < emitted {
                tokio::select! {
                    _ = finished.cancelled() => break,
                    _ = tokio::time::sleep_until(deadline) => {
                        tracing::warn!(source = %ctx.id, "mqtt source stopped before the rules finished its last messages: the broker sends them again");
                        break;
                    }
                    r = handed.changed() => if r.is_err() { break },
                    ev = el.poll() => if ev.is_err() { break },
                }
            }
        }
        disconnect(client, el).await;
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
    fn acks_on_delivery(&self) -> bool {
        self.session.manual_acks && self.selector.is_none()
    }

    async fn run(&mut self, ctx: SourceContext) -> Result<(), ConnectorError> {
        if let Some(sel) = &self.selector {
            return self.run_shared(ctx, sel).await;
        }
        if self.session.persistent && !self.settings.client_id_given {
            if let Some(key) = self.env.instance_key() {
                self.settings.client_id = stable_client_id(&key, &ctx.id);
            }
        }
        let (client, mut el) = self.settings.build_session(REQUESTS, self.session)?;
        let server = self.settings.server_text();
        if self.session.persistent {
            tracing::info!(source = %ctx.id, client_id = %self.settings.client_id, manual_acks = self.session.manual_acks, "mqtt source keeps a persistent session");
        }
        el.set_read_linger(self.read_linger);
        if self.session.manual_acks {
            // The loop writes each PUBACK once the runtime has the message.
            el.release_acks_with(ctx.handed());
        }
        // Messages emitted so far (the count `ctx.handed()` is compared with).
        let mut emitted: u64 = 0;
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let mut last_topic: Option<(bytes::Bytes, Value)> = None;
        let batch_max = if ctx.takes_batches() { BATCH_MAX } else { 1 };
        ctx.conn.connecting();
        loop {
            let ev = tokio::select! {
                biased;
                _ = ctx.cancel.cancelled() => {
                    self.close(&client, &mut el, &ctx, emitted).await;
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
                Ok(first @ Ev::Publish { .. }) => {
                    // The messages one read brought go to the runtime as
                    // one batch: one hand-off, not one per message. A read
                    // that brought one message hands it over alone (no
                    // vector made).
                    let mut one = None;
                    let mut batch = Vec::new();
                    let mut n = 0usize;
                    let mut next = Some(first);
                    while let Some(Ev::Publish {
                        topic,
                        payload,
                        qos,
                        pkid,
                    }) = next
                    {
                        let tv = match &last_topic {
                            Some((t, v)) if *t == topic => v.clone(),
                            _ => {
                                let v = Value::str(Ev::topic_str(&topic));
                                // A copy: the topic is a view into the read
                                // run its message came in, which it would keep.
                                last_topic =
                                    Some((bytes::Bytes::copy_from_slice(&topic), v.clone()));
                                v
                            }
                        };
                        let item = (payload, Some(Arc::new(message_meta(pkid, qos, tv))));
                        if n == 0 {
                            one = Some(item);
                        } else {
                            if n == 1 {
                                batch = ctx.batch_vector();
                                batch.reserve(el.queued_events() + 2);
                                batch.extend(one.take());
                            }
                            batch.push(item);
                        }
                        n += 1;
                        if self.session.manual_acks {
                            // Released once the runtime has taken the batch
                            // (emitted below as message `emitted + 1`).
                            el.ack_after(emitted + 1, qos, pkid);
                        }
                        next = if n < batch_max {
                            el.take_publish()
                        } else {
                            None
                        };
                    }
                    let msg = match one {
                        Some((payload, meta)) => SourceMsg::Bytes { payload, meta },
                        None => SourceMsg::BytesBatch(batch),
                    };
                    if !ctx.emit(msg).await {
                        self.close(&client, &mut el, &ctx, emitted).await;
                        return Ok(());
                    }
                    emitted += 1;
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
                        self.close(&client, &mut el, &ctx, emitted).await;
                        return Ok(());
                    }
                    emitted += 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(v: serde_json::Value) -> SourceConf {
        parse_config("mqtt", v.as_object().expect("object")).expect("valid conf")
    }

    #[test]
    fn qos_1_keeps_a_persistent_session_with_manual_acks_by_default() {
        let s = session_opts(&conf(serde_json::json!({})), false).unwrap();
        assert!(s.persistent && s.manual_acks);
        assert_eq!(s.expiry_secs, 60);
        let s = session_opts(&conf(serde_json::json!({"qos": 0})), false).unwrap();
        assert!(!s.persistent && !s.manual_acks);
        let s = session_opts(&conf(serde_json::json!({"qos": 2})), false).unwrap();
        assert!(!s.persistent && !s.manual_acks);
        // A shared connection keeps a clean session.
        let s = session_opts(&conf(serde_json::json!({"qos": 1})), true).unwrap();
        assert!(!s.persistent && !s.manual_acks);
        let s = session_opts(
            &conf(serde_json::json!({"enableClientSession": "false", "qos": 1})),
            false,
        )
        .unwrap();
        assert!(!s.persistent && !s.manual_acks);
        let s = session_opts(
            &conf(serde_json::json!({"EnableClientSession": true, "qos": 0,
                "sessionExpiryIntervalSeconds": "3600"})),
            false,
        )
        .unwrap();
        assert!(s.persistent && !s.manual_acks);
        assert_eq!(s.expiry_secs, 3600);
    }

    #[test]
    fn a_message_s_metadata_names_its_topic_qos_and_id() {
        let m = message_meta(7, 1, Value::str("a/b"));
        assert_eq!(m.get("topic"), Some(&Value::str("a/b")));
        assert_eq!(m.get("qos"), Some(&Value::Int(1)));
        assert_eq!(m.get("messageId"), Some(&Value::Int(7)));
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn reads_linger_by_default_at_qos_0_and_1_on_an_own_connection() {
        let ms = |v: serde_json::Value, shared: bool| {
            read_linger(&conf(v), shared).map(|d| d.as_millis() as u64)
        };
        assert_eq!(ms(serde_json::json!({"qos": 0}), false).unwrap(), 5);
        assert_eq!(ms(serde_json::json!({}), false).unwrap(), 5);
        assert_eq!(ms(serde_json::json!({"qos": 2}), false).unwrap(), 0);
        assert_eq!(ms(serde_json::json!({"qos": 0}), true).unwrap(), 0);
        assert_eq!(
            ms(
                serde_json::json!({"qos": 1, "readLingerInterval": "2"}),
                false
            )
            .unwrap(),
            2
        );
        assert_eq!(
            ms(
                serde_json::json!({"qos": 0, "READLINGERINTERVAL": 0}),
                false
            )
            .unwrap(),
            0
        );
        let e = ms(serde_json::json!({"readLingerInterval": 101}), false).unwrap_err();
        assert!(e.to_string().contains("readLingerInterval 101"), "{e}");
        let e = ms(serde_json::json!({"readLingerInterval": 2}), true).unwrap_err();
        assert!(e.to_string().contains("connectionSelector"), "{e}");
        assert!(parse_config::<SourceConf>(
            "mqtt",
            serde_json::json!({"readLingerInterval": "soon"})
                .as_object()
                .unwrap()
        )
        .is_err());
    }

    #[test]
    fn client_ids_are_stable_per_instance_and_stream() {
        let a = stable_client_id("/srv/oort-a", "demo");
        assert_eq!(a, stable_client_id("/srv/oort-a", "demo"));
        assert_ne!(a, stable_client_id("/srv/oort-b", "demo"));
        assert_ne!(a, stable_client_id("/srv/oort-a", "demo2"));
        assert!(a.starts_with("oort-") && a.len() <= 23, "{a}");
        // An instance id names the instance instead of its data dir.
        let dir = tempfile::tempdir().unwrap();
        let by_dir = ConnectorEnv::with_data_dir(dir.path());
        let by_id = ConnectorEnv::builder()
            .data_dir(dir.path())
            .instance_id("edge-1")
            .build();
        let other_dir = tempfile::tempdir().unwrap();
        let same_id = ConnectorEnv::builder()
            .data_dir(other_dir.path())
            .instance_id("edge-1")
            .build();
        let key = |e: &ConnectorEnv| e.instance_key().unwrap();
        assert_ne!(key(&by_dir), key(&by_id));
        assert_eq!(key(&by_id), key(&same_id));
        // Without an id the key is the data dir's path, as before ids existed
        // (so existing persistent sessions keep their client id).
        assert_eq!(
            key(&by_dir),
            std::fs::canonicalize(dir.path())
                .unwrap()
                .display()
                .to_string()
        );
    }

    #[test]
    fn share_group_subscribes_as_a_member_of_the_group() {
        let t = |g: &str, ts: &[&str]| {
            shared_topics(g, ts.iter().map(|s| s.to_string()).collect()).map_err(|e| e.to_string())
        };
        assert_eq!(t("", &["a/b"]).unwrap(), vec!["a/b"]);
        assert_eq!(
            t(" fleet ", &["a/b", "c/#"]).unwrap(),
            vec!["$share/fleet/a/b", "$share/fleet/c/#"]
        );
        assert!(t("a/b", &["x"]).unwrap_err().contains("shareGroup"));
        assert!(t("g+", &["x"]).unwrap_err().contains("shareGroup"));
        let e = t("g", &["$share/h/x"]).unwrap_err();
        assert!(e.contains("shareGroup") && e.contains("$share/h/x"), "{e}");
        // Through the factory, from a conf key's case-insensitive property.
        let props = serde_json::json!({"SHAREGROUP": "g1", "qos": 0});
        let src =
            MqttSourceFactory.create(&ConnectorEnv::default(), "in/a", props.as_object().unwrap());
        assert!(src.is_ok());
    }
}
