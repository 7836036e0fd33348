//! [`Meta`]: what a source says about one message besides its payload (an
//! MQTT topic, QoS and message id, a file name...).

use std::sync::Arc;

use smallvec::SmallVec;

use crate::value::{Map, Value};

/// Entries kept without an allocation of their own (an MQTT message has 3).
const INLINE: usize = 4;

/// A message's metadata: a few named values, sorted by name, kept inline.
/// A source builds one per message, so this is a small sorted vector rather
/// than a map: one allocation (the `Arc` it travels in) instead of a map's
/// node besides. Reads are by name ([`Meta::get`]); `meta(*)` and
/// `sendMetaToSink` see it as an object ([`Meta::to_map`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Meta(SmallVec<[(Arc<str>, Value); INLINE]>);

impl Meta {
    pub fn new() -> Meta {
        Meta::default()
    }

    /// Sets `key`, returning the value it replaced.
    pub fn insert(&mut self, key: Arc<str>, value: Value) -> Option<Value> {
        match self
            .0
            .binary_search_by(|(k, _)| k.as_ref().cmp(key.as_ref()))
        {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    /// Entries a source gives in name order, as it does for every message
    /// (no search, no shifting; checked, and sorted if they are not).
    pub fn from_sorted<const N: usize>(entries: [(Arc<str>, Value); N]) -> Meta {
        let mut m = Meta(entries.into_iter().collect());
        if !m.0.windows(2).all(|w| w[0].0 < w[1].0) {
            let entries = std::mem::take(&mut m.0);
            m = entries.into_iter().collect();
        }
        m
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }

    /// The entries in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &Value)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The metadata as an object's map.
    pub fn to_map(&self) -> Map {
        self.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

impl FromIterator<(Arc<str>, Value)> for Meta {
    fn from_iter<I: IntoIterator<Item = (Arc<str>, Value)>>(iter: I) -> Meta {
        let mut m = Meta::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_stay_sorted_and_a_key_set_twice_keeps_the_last_value() {
        let mut m = Meta::new();
        assert_eq!(m.insert(Arc::from("topic"), Value::str("a/b")), None);
        m.insert(Arc::from("qos"), Value::Int(1));
        m.insert(Arc::from("messageId"), Value::Int(7));
        m.insert(Arc::from("zz"), Value::Null);
        // A fifth entry leaves the inline room; nothing else changes.
        m.insert(Arc::from("a"), Value::Bool(true));
        assert_eq!(
            m.insert(Arc::from("qos"), Value::Int(2)),
            Some(Value::Int(1))
        );
        let keys: Vec<&str> = m.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["a", "messageId", "qos", "topic", "zz"]);
        assert_eq!(m.get("qos"), Some(&Value::Int(2)));
        assert_eq!(m.get("topic"), Some(&Value::str("a/b")));
        assert_eq!(m.get("nope"), None);
        assert_eq!(m.len(), 5);
        let map = m.to_map();
        assert_eq!(map.len(), 5);
        assert_eq!(map.get("messageId"), Some(&Value::Int(7)));
    }

    #[test]
    fn entries_given_in_order_are_kept_and_out_of_order_ones_sorted() {
        let sorted = Meta::from_sorted([
            (Arc::from("messageId"), Value::Int(7)),
            (Arc::from("qos"), Value::Int(1)),
            (Arc::from("topic"), Value::str("a/b")),
        ]);
        let keys: Vec<&str> = sorted.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["messageId", "qos", "topic"]);
        assert_eq!(sorted.get("qos"), Some(&Value::Int(1)));
        let unsorted = Meta::from_sorted([
            (Arc::from("topic"), Value::str("a/b")),
            (Arc::from("qos"), Value::Int(1)),
            (Arc::from("messageId"), Value::Int(7)),
        ]);
        assert_eq!(unsorted, sorted);
        assert_eq!(unsorted.get("messageId"), Some(&Value::Int(7)));
    }
}
