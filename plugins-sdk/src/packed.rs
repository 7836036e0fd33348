//! Batches as `oort:connector@0.2.0` carries them: every payload of a call
//! in one buffer, metadata strings once per batch. A 0.2.0 sink receives a
//! [`Batch`] ([`Sink::write_batch`](crate::Sink::write_batch)); a source
//! may return one ([`ReadOutcome::Batch`](crate::ReadOutcome::Batch)) to
//! write payloads in place.

use std::collections::HashMap;

use crate::Message;

/// Messages packed into one buffer (the WIT record `types.packed`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    data: Vec<u8>,
    ends: Vec<u32>,
    timestamps: Vec<u64>,
    strings: Vec<String>,
    /// (message, key, value), in message order.
    meta: Vec<(u32, u32, u32)>,
    interned: HashMap<String, u32>,
}

/// One message of a [`Batch`], borrowed from it.
#[derive(Debug, Clone, Copy)]
pub struct MessageRef<'a> {
    batch: &'a Batch,
    index: usize,
    /// The payload bytes.
    pub payload: &'a [u8],
    /// The event time in Unix milliseconds, if the sender knew it.
    pub timestamp_ms: Option<u64>,
}

impl<'a> MessageRef<'a> {
    /// This message's metadata entries (a sink's dynamic properties).
    pub fn meta(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let b = self.batch;
        let i = self.index as u32;
        let from = b.meta.partition_point(|e| e.0 < i);
        b.meta[from..]
            .iter()
            .take_while(move |e| e.0 == i)
            .map(move |e| (b.string(e.1), b.string(e.2)))
    }

    /// The value of one metadata key.
    pub fn meta_value(&self, key: &str) -> Option<&'a str> {
        self.meta().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// An owned copy.
    pub fn to_message(&self) -> Message {
        Message {
            payload: self.payload.to_vec(),
            meta: self
                .meta()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            timestamp_ms: self.timestamp_ms,
        }
    }
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn string(&self, i: u32) -> &str {
        self.strings.get(i as usize).map_or("", |s| s.as_str())
    }

    /// Message `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<MessageRef<'_>> {
        let end = *self.ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        Some(MessageRef {
            batch: self,
            index: i,
            payload: self.data.get(start..end).unwrap_or_default(),
            timestamp_ms: self.timestamps.get(i).copied().filter(|&t| t != 0),
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = MessageRef<'_>> {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// Owned copies of every message.
    pub fn to_messages(&self) -> Vec<Message> {
        self.iter().map(|m| m.to_message()).collect()
    }

    /// Appends one message with this payload.
    pub fn push(&mut self, payload: &[u8]) {
        self.push_with(|buf| buf.extend_from_slice(payload));
    }

    /// Appends one message whose payload `write` appends to the buffer, e.g.
    /// `batch.push_with(|buf| serde_json::to_writer(buf, &value).unwrap_or_default())`:
    /// no intermediate `Vec` per message.
    pub fn push_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        if !self.timestamps.is_empty() {
            self.timestamps.push(0);
        }
        write(&mut self.data);
        self.ends
            .push(u32::try_from(self.data.len()).unwrap_or(u32::MAX));
    }

    /// Appends an owned message (payload, metadata, event time).
    pub fn push_message(&mut self, m: &Message) {
        let i = self.len() as u32;
        self.push(&m.payload);
        for (k, v) in &m.meta {
            let key = self.intern(k);
            let value = self.intern(v);
            self.meta.push((i, key, value));
        }
        if let Some(ts) = m.timestamp_ms {
            self.set_timestamp(ts);
        }
    }

    /// Sets the event time of the last message pushed.
    pub fn set_timestamp(&mut self, unix_ms: u64) {
        let n = self.len();
        if n == 0 {
            return;
        }
        if self.timestamps.is_empty() {
            self.timestamps.resize(n, 0);
        }
        self.timestamps[n - 1] = unix_ms;
    }

    /// Adds a metadata entry to the last message pushed.
    pub fn add_meta(&mut self, key: &str, value: &str) {
        let Some(i) = self.len().checked_sub(1) else {
            return;
        };
        let key = self.intern(key);
        let value = self.intern(value);
        self.meta.push((i as u32, key, value));
    }

    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.interned.get(s) {
            return i;
        }
        let i = self.strings.len() as u32;
        self.strings.push(s.to_string());
        self.interned.insert(s.to_string(), i);
        i
    }

    /// Packs owned messages.
    pub fn from_messages(msgs: &[Message]) -> Batch {
        let mut b = Batch::new();
        b.data
            .reserve(msgs.iter().map(|m| m.payload.len()).sum::<usize>());
        for m in msgs {
            b.push_message(m);
        }
        b
    }

    /// The record's fields (the export macros' glue).
    #[doc(hidden)]
    #[allow(clippy::type_complexity)]
    pub fn into_parts(
        self,
    ) -> (
        Vec<u8>,
        Vec<u32>,
        Vec<u64>,
        Vec<String>,
        Vec<(u32, u32, u32)>,
    ) {
        (
            self.data,
            self.ends,
            self.timestamps,
            self.strings,
            self.meta,
        )
    }

    /// A batch from the record's fields as the host sent them (the export
    /// macros' glue). Malformed offsets read as empty payloads, never panic.
    #[doc(hidden)]
    pub fn from_parts(
        data: Vec<u8>,
        ends: Vec<u32>,
        timestamps: Vec<u64>,
        strings: Vec<String>,
        meta: Vec<(u32, u32, u32)>,
    ) -> Batch {
        Batch {
            data,
            ends,
            timestamps,
            strings,
            meta,
            interned: HashMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_a_batch() {
        let msgs = vec![
            Message::new(b"a".to_vec()).with_meta("table", "t1"),
            Message::new(b"".to_vec()),
            Message::new(b"ccc".to_vec())
                .with_meta("table", "t1")
                .with_meta("k", "v")
                .with_timestamp(42),
        ];
        let b = Batch::from_messages(&msgs);
        assert_eq!(b.len(), 3);
        assert_eq!(b.to_messages(), msgs);
        let (data, ends, ts, strings, meta) = b.clone().into_parts();
        assert_eq!(data, b"accc");
        assert_eq!(ends, [1, 1, 4]);
        assert_eq!(ts, [0, 0, 42]);
        assert_eq!(strings, ["table", "t1", "k", "v"], "each string once");
        assert_eq!(meta, [(0, 0, 1), (2, 0, 1), (2, 2, 3)]);
        assert_eq!(b.get(2).and_then(|m| m.meta_value("k")), Some("v"));
    }

    #[test]
    fn malformed_parts_read_as_empty_payloads() {
        let b = Batch::from_parts(b"ab".to_vec(), vec![5, 1], vec![], vec![], vec![(0, 9, 9)]);
        let got: Vec<&[u8]> = b.iter().map(|m| m.payload).collect();
        assert_eq!(got, [&b""[..], &b""[..]]);
        assert_eq!(b.get(0).map(|m| m.meta().count()), Some(1));
        assert_eq!(b.get(0).and_then(|m| m.meta_value("")), Some(""));
    }

    #[test]
    fn push_with_writes_in_place() {
        let mut b = Batch::new();
        b.push_with(|buf| buf.extend_from_slice(br#"{"a":1}"#));
        b.push(b"x");
        b.set_timestamp(7);
        b.add_meta("topic", "t");
        let m: Vec<Message> = b.to_messages();
        assert_eq!(m[0].payload, br#"{"a":1}"#);
        assert_eq!(m[0].timestamp_ms, None);
        assert_eq!(m[1].timestamp_ms, Some(7));
        assert_eq!(m[1].meta, vec![("topic".to_string(), "t".to_string())]);
    }
}
