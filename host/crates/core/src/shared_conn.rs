//! Status of shared (named) connections: connectors that pool one physical
//! connection per connection profile register each physical link here and
//! keep its state and user count current; the REST layer reads the summary
//! per selector (`GET /connections`). One registry per
//! [`crate::ConnectorEnv`] ([`crate::ConnectorEnv::links`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::connector::{ConnState, ConnStatus};

/// One physical connection opened for a connection selector.
#[derive(Debug, Default)]
pub struct LinkStatus {
    /// Connection state, updated by the connection's driver.
    pub state: ConnState,
    users: AtomicUsize,
}

impl LinkStatus {
    /// One more source or sink uses this link.
    pub fn add_user(&self) {
        self.users.fetch_add(1, Ordering::Relaxed);
    }

    /// One user left.
    pub fn remove_user(&self) {
        let _ = self
            .users
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Sources and sinks currently using this link.
    pub fn users(&self) -> usize {
        self.users.load(Ordering::Relaxed)
    }
}

/// What `GET /connections` shows for one selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorStatus {
    /// The worst state over the open links (disconnected < connecting < connected).
    pub status: ConnStatus,
    /// Last disconnect message of a link that is not connected ("" otherwise).
    pub err: String,
    /// Sources and sinks using the selector, over all its links.
    pub users: usize,
    /// Physical connections open for the selector (more than one when a
    /// conf key overrides connection-level settings).
    pub links: usize,
}

/// Registry of open shared links, keyed by selector (`<type>.<id>`).
#[derive(Default)]
pub struct SharedLinks {
    links: Mutex<HashMap<String, Vec<Weak<LinkStatus>>>>,
}

impl SharedLinks {
    /// Registers a new physical link for `selector`; it disappears from the
    /// registry when the returned handle is dropped.
    pub fn open(&self, selector: &str) -> Arc<LinkStatus> {
        let link = Arc::new(LinkStatus::default());
        let mut g = self.links.lock();
        let v = g.entry(selector.to_string()).or_default();
        v.retain(|w| w.strong_count() > 0);
        v.push(Arc::downgrade(&link));
        link
    }

    /// Summary of the links of `selector` that have users, `None` when none has.
    pub fn status(&self, selector: &str) -> Option<SelectorStatus> {
        let mut g = self.links.lock();
        let v = g.get_mut(selector)?;
        v.retain(|w| w.strong_count() > 0);
        // A link without users is closing: no longer shown.
        let live: Vec<Arc<LinkStatus>> = v
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|l| l.users() > 0)
            .collect();
        if live.is_empty() {
            g.remove(selector);
            return None;
        }
        let rank = |s: ConnStatus| match s {
            ConnStatus::Disconnected => 0,
            ConnStatus::Connecting => 1,
            ConnStatus::Connected => 2,
        };
        let mut out = SelectorStatus {
            status: ConnStatus::Connected,
            err: String::new(),
            users: 0,
            links: live.len(),
        };
        for l in &live {
            let info = l.state.snapshot();
            out.users += l.users();
            if rank(info.status) < rank(out.status) {
                out.status = info.status;
            }
            if info.status != ConnStatus::Connected && !info.last_disconnected_message.is_empty() {
                out.err = info.last_disconnected_message;
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_links_and_forgets_dropped_ones() {
        let reg = SharedLinks::default();
        assert!(reg.status("mqtt.a").is_none());
        let l1 = reg.open("mqtt.a");
        l1.add_user();
        l1.add_user();
        l1.state.connected();
        let s = reg.status("mqtt.a").unwrap();
        assert_eq!((s.status, s.users, s.links), (ConnStatus::Connected, 2, 1));
        let l2 = reg.open("mqtt.a");
        l2.add_user();
        l2.state.disconnected("refused");
        let s = reg.status("mqtt.a").unwrap();
        assert_eq!(
            (s.status, s.users, s.links),
            (ConnStatus::Disconnected, 3, 2)
        );
        assert_eq!(s.err, "refused");
        l2.remove_user();
        l1.remove_user();
        let s = reg.status("mqtt.a").unwrap();
        assert_eq!((s.status, s.users, s.links), (ConnStatus::Connected, 1, 1));
        l1.remove_user();
        assert!(reg.status("mqtt.a").is_none(), "no users: closing");
        drop((l1, l2));
        assert!(reg.status("mqtt.a").is_none());
        assert!(reg.links.lock().is_empty());
    }
}
