//! Shared MQTT connections (`connectionSelector`): sources and sinks whose
//! props name the same connection profile and carry the same connection-level
//! settings (server, credentials, client id, protocol version, TLS) use one
//! client ([`super::wire`]). The pool counts users; one driver task per connection
//! dispatches incoming messages to every subscriber whose filter matches,
//! subscribes everything again after a reconnect, and the connection closes
//! when its last user leaves. Status goes to the context's [`oort_core::shared_conn::SharedLinks`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use oort_core::shared_conn::LinkStatus;
use oort_core::{ConnState, ConnectorEnv, ConnectorError, SourceContext, SourceMsg, Value};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::acks::Acks;
use super::client::{Client, Ev, EventLoop, Settings};
use crate::util::{sleep_or_cancel, Backoff};

/// Requests queued between the users and the connection's driver.
const QUEUE: usize = 1024;
/// How long a closing connection may take to send its DISCONNECT.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// State of a shared connection as its users see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinkState {
    Connecting,
    Up,
    Down(String),
}

impl LinkState {
    /// Copies the state into a user's own status cell (rule metrics).
    pub fn mirror(&self, conn: &ConnState) {
        match self {
            LinkState::Connecting => conn.connecting(),
            LinkState::Up => conn.connected(),
            LinkState::Down(m) => conn.disconnected(m.clone()),
        }
    }
}

/// Pool key: the selector and [`Settings::link_key`].
type Key = (String, String);

struct Entry {
    link: Arc<Link>,
    users: usize,
}

/// The open shared connections of one connector context
/// ([`ConnectorEnv::pool`]).
#[derive(Default)]
pub(crate) struct Pool(Mutex<HashMap<Key, Entry>>);

struct Sub {
    id: u64,
    filters: Vec<String>,
    qos: u8,
    ctx: SourceContext,
    /// Cancelled when the subscriber's consumer is gone.
    gone: CancellationToken,
}

#[derive(Default)]
struct Subs {
    list: Vec<Sub>,
    /// Subscriber of each SUBSCRIBE sent and not yet acknowledged, in order.
    pending: VecDeque<u64>,
    next_id: u64,
    /// The broker acknowledged the current session (CONNACK seen).
    up: bool,
}

/// One physical connection.
pub(crate) struct Link {
    selector: String,
    server: String,
    client: Client,
    state: watch::Receiver<LinkState>,
    subs: Mutex<Subs>,
    status: Arc<LinkStatus>,
    stop: CancellationToken,
    /// Acknowledgements of every user's QoS >= 1 publishes.
    acks: Arc<Acks>,
}

/// A user's hold on a shared connection; dropping it releases the connection.
pub(crate) struct Lease {
    key: Key,
    link: Arc<Link>,
    pool: Arc<Pool>,
}

/// Gets the shared connection for `selector` and `settings`, opening it when
/// no user holds one. Needs a tokio runtime (spawns the driver).
pub(crate) fn acquire(
    env: &ConnectorEnv,
    selector: &str,
    settings: &Settings,
    user: &str,
) -> Result<Lease, ConnectorError> {
    let key = (selector.to_string(), settings.link_key());
    let pool_handle = env.pool::<Pool>();
    let mut pool = pool_handle.0.lock();
    if let Some(e) = pool.get_mut(&key) {
        e.users += 1;
        e.link.status.add_user();
        return Ok(Lease {
            key,
            link: e.link.clone(),
            pool: pool_handle.clone(),
        });
    }
    let siblings = pool.keys().filter(|(s, _)| s == selector).count();
    if siblings > 0 {
        tracing::info!(
            selector,
            user,
            "mqtt: connection-level properties differ from the shared connection's; this user gets its own connection"
        );
        if settings.client_id_given {
            tracing::warn!(
                selector,
                user,
                "mqtt: a second connection with the same client id may make the broker drop the other one"
            );
        }
    }
    let (client, el) = settings.build(QUEUE)?;
    let (tx, rx) = watch::channel(LinkState::Connecting);
    let link = Arc::new(Link {
        selector: selector.to_string(),
        server: settings.server_text(),
        client,
        state: rx,
        subs: Mutex::new(Subs::default()),
        status: env.links().open(selector),
        stop: CancellationToken::new(),
        acks: Arc::default(),
    });
    link.status.add_user();
    tokio::spawn(drive(link.clone(), el, tx));
    tracing::info!(selector, server = %link.server, user, "mqtt: shared connection opened");
    pool.insert(
        key.clone(),
        Entry {
            link: link.clone(),
            users: 1,
        },
    );
    drop(pool);
    Ok(Lease {
        key,
        link,
        pool: pool_handle,
    })
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut pool = self.pool.0.lock();
        let Some(e) = pool.get_mut(&self.key) else {
            return;
        };
        if !Arc::ptr_eq(&e.link, &self.link) {
            return;
        }
        e.users = e.users.saturating_sub(1);
        self.link.status.remove_user();
        if e.users > 0 {
            return;
        }
        pool.remove(&self.key);
        drop(pool);
        tracing::info!(selector = %self.link.selector, server = %self.link.server, "mqtt: shared connection closed (no users left)");
        self.link.client.try_disconnect();
        let stop = self.link.stop.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async move {
                    tokio::time::sleep(CLOSE_GRACE).await;
                    stop.cancel();
                });
            }
            Err(_) => stop.cancel(),
        }
    }
}

impl Lease {
    /// The connection's state, to wait on or mirror.
    pub fn state(&self) -> watch::Receiver<LinkState> {
        self.link.state.clone()
    }

    pub fn client(&self) -> &Client {
        &self.link.client
    }

    pub fn server(&self) -> &str {
        &self.link.server
    }

    pub fn acks(&self) -> &Arc<Acks> {
        &self.link.acks
    }

    /// Adds a subscriber: messages on topics matching `filters` are emitted to
    /// `ctx`. Returns its id and a token cancelled when its consumer is gone.
    pub fn subscribe(
        &self,
        filters: Vec<String>,
        qos: u8,
        ctx: SourceContext,
    ) -> (u64, CancellationToken) {
        let gone = CancellationToken::new();
        let mut subs = self.link.subs.lock();
        let id = subs.next_id;
        subs.next_id += 1;
        subs.list.push(Sub {
            id,
            filters,
            qos,
            ctx,
            gone: gone.clone(),
        });
        if subs.up {
            self.link.send_subscribe(&mut subs, id);
        }
        (id, gone)
    }

    /// Removes a subscriber; filters nobody else holds are unsubscribed.
    pub fn unsubscribe(&self, id: u64) {
        self.link.remove_sub(id);
    }
}

impl Link {
    /// Queues one SUBSCRIBE for subscriber `id`; each filter takes the highest
    /// qos any subscriber asked for it.
    fn send_subscribe(&self, subs: &mut Subs, id: u64) {
        let Some(sub) = subs.list.iter().find(|s| s.id == id) else {
            return;
        };
        let pairs: Vec<(String, u8)> = sub
            .filters
            .iter()
            .map(|f| {
                let q = subs
                    .list
                    .iter()
                    .filter(|s| s.filters.contains(f))
                    .map(|s| s.qos)
                    .max()
                    .unwrap_or(sub.qos);
                (f.clone(), q)
            })
            .collect();
        match self.client.try_subscribe_each(&pairs) {
            Ok(()) => subs.pending.push_back(id),
            Err(e) => tracing::warn!(selector = %self.selector, "mqtt subscribe failed: {e}"),
        }
    }

    fn resubscribe_all(&self) {
        let mut subs = self.subs.lock();
        subs.up = true;
        subs.pending.clear();
        let ids: Vec<u64> = subs.list.iter().map(|s| s.id).collect();
        for id in ids {
            self.send_subscribe(&mut subs, id);
        }
    }

    fn remove_sub(&self, id: u64) {
        let mut subs = self.subs.lock();
        let Some(pos) = subs.list.iter().position(|s| s.id == id) else {
            return;
        };
        let sub = subs.list.remove(pos);
        sub.gone.cancel();
        if !subs.up {
            return;
        }
        for f in &sub.filters {
            if !subs.list.iter().any(|s| s.filters.contains(f)) {
                if let Err(e) = self.client.try_unsubscribe(f) {
                    tracing::debug!(selector = %self.selector, "mqtt unsubscribe {f}: {e}");
                }
            }
        }
    }

    /// Hands one message to every subscriber whose filter matches.
    async fn dispatch(&self, topic: &str, payload: Bytes, qos: u8, pkid: u16) {
        let targets: Vec<(u64, SourceContext)> = {
            let subs = self.subs.lock();
            subs.list
                .iter()
                .filter(|s| s.filters.iter().any(|f| filter_matches(f, topic)))
                .map(|s| (s.id, s.ctx.clone()))
                .collect()
        };
        if targets.is_empty() {
            return;
        }
        let meta = Arc::new(super::source::message_meta(pkid, qos, Value::str(topic)));
        for (id, ctx) in targets {
            if !ctx.emit_bytes(payload.clone(), Some(meta.clone())).await {
                self.remove_sub(id);
            }
        }
    }

    /// A SUBACK: reports refused filters to the subscriber that asked.
    async fn suback(&self, refused: usize) {
        let target = {
            let mut subs = self.subs.lock();
            let id = subs.pending.pop_front();
            id.and_then(|id| subs.list.iter().find(|s| s.id == id))
                .map(|s| (s.id, s.filters.clone(), s.ctx.clone()))
        };
        if refused == 0 {
            return;
        }
        match target {
            Some((id, filters, ctx)) => {
                let msg =
                    format!("mqtt: the broker refused {refused} of the subscriptions {filters:?}");
                tracing::warn!(selector = %self.selector, source = %ctx.id, "{msg}");
                if !ctx.emit(SourceMsg::Error(msg)).await {
                    self.remove_sub(id);
                }
            }
            None => tracing::warn!(
                selector = %self.selector,
                "mqtt: the broker refused {refused} subscriptions"
            ),
        }
    }
}

/// Keeps one shared connection up until stopped or our DISCONNECT went out.
async fn drive(link: Arc<Link>, mut el: EventLoop, state: watch::Sender<LinkState>) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    link.status.state.connecting();
    loop {
        let ev = tokio::select! {
            biased;
            _ = link.stop.cancelled() => return,
            ev = el.poll() => ev,
        };
        match ev {
            Ok(Ev::ConnAck) => {
                backoff.reset();
                link.status.state.connected();
                let _ = state.send(LinkState::Up);
                tracing::info!(selector = %link.selector, server = %link.server, "mqtt shared connection up");
                link.resubscribe_all();
            }
            Ok(Ev::Publish {
                topic,
                payload,
                qos,
                pkid,
            }) => {
                link.dispatch(Ev::topic_str(&topic), payload, qos, pkid)
                    .await
            }
            Ok(Ev::SubAck { refused }) => link.suback(refused).await,
            Ok(Ev::Sent(p)) => link.acks.sent(p),
            Ok(Ev::Acked(p)) => link.acks.acked(p),
            Ok(Ev::Refused(p, why)) => link.acks.refused(p, &why),
            Ok(Ev::Disconnected) => return,
            Err(e) => {
                // As the sink's own connection (sink.rs): the pipeline resends.
                el.after_break(&link.acks);
                let msg = format!("mqtt {}: {e}", link.server);
                tracing::warn!(selector = %link.selector, "{msg}");
                {
                    let mut subs = link.subs.lock();
                    subs.up = false;
                    subs.pending.clear();
                }
                link.status.state.disconnected(msg.clone());
                let _ = state.send(LinkState::Down(msg));
                if sleep_or_cancel(backoff.next_delay(), &link.stop).await {
                    return;
                }
                link.status.state.connecting();
                let _ = state.send(LinkState::Connecting);
            }
        }
    }
}

/// The topic part of a subscription filter (`$share/<group>/` and `$queue/` removed).
fn topic_of_filter(f: &str) -> &str {
    if let Some(rest) = f.strip_prefix("$share/") {
        return rest.split_once('/').map(|(_, t)| t).unwrap_or(rest);
    }
    f.strip_prefix("$queue/").unwrap_or(f)
}

/// MQTT filter matching (`+` one level, `#` the rest; wildcards at the first
/// level do not match topics starting with `$`).
pub(crate) fn filter_matches(filter: &str, topic: &str) -> bool {
    let f = topic_of_filter(filter);
    if topic.starts_with('$') && (f.starts_with('+') || f.starts_with('#')) {
        return false;
    }
    let mut fl = f.split('/');
    let mut tl = topic.split('/');
    loop {
        match (fl.next(), tl.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Users of the connection (tests).
#[cfg(test)]
pub(crate) fn users_of(env: &ConnectorEnv, selector: &str) -> usize {
    env.pool::<Pool>()
        .0
        .lock()
        .iter()
        .filter(|((s, _), _)| s == selector)
        .map(|(_, e)| e.users)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_like_a_broker() {
        for (f, t) in [
            ("a/b", "a/b"),
            ("a/+", "a/b"),
            ("a/+/c", "a/x/c"),
            ("a/#", "a"),
            ("a/#", "a/b/c"),
            ("#", "x/y"),
            ("$share/g/a/+", "a/b"),
            ("$queue/a/b", "a/b"),
            ("+/+", "/x"),
        ] {
            assert!(filter_matches(f, t), "{f} should match {t}");
        }
        for (f, t) in [
            ("a/b", "a/c"),
            ("a/+", "a/b/c"),
            ("a/+", "a"),
            ("a/b/c", "a/b"),
            ("#", "$SYS/x"),
            ("+/x", "$SYS/x"),
            ("$share/g/a/b", "a/c"),
        ] {
            assert!(!filter_matches(f, t), "{f} should not match {t}");
        }
    }
}
