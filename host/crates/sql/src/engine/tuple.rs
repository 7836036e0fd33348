//! The unit the operators pass around: a [`Tuple`] (one event, or one joined
//! combination of events), its window range, group keys and the per-rule
//! hit counters read by `last_hit_*` / `last_agg_hit_*`.

use std::cell::Cell;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use oort_core::{Event, Map, Meta, SharedEvent, Value};

/// Which events make up a tuple.
#[derive(Clone, Debug)]
pub(crate) enum Parts {
    /// One event of FROM/JOIN source `src`.
    One { src: usize, ev: SharedEvent },
    /// A joined combination: one optional event per source, by source index.
    Many(Box<[Option<SharedEvent>]>),
}

/// A row flowing through the query: its events, its time and the analytic
/// function results computed for it before WHERE.
#[derive(Clone, Debug)]
pub(crate) struct Tuple {
    pub parts: Parts,
    /// Processing (or event) time, unix ms.
    pub ts: i64,
    /// Results of the analytic calls (`lag`, `acc_sum`...), by slot.
    pub analytic: Box<[Value]>,
}

impl Tuple {
    pub fn one(src: usize, ev: SharedEvent) -> Tuple {
        let ts = ev.ts;
        Tuple {
            parts: Parts::One { src, ev },
            ts,
            analytic: Box::default(),
        }
    }

    /// The smallest arrival sequence number of its events.
    pub fn min_seq(&self) -> u64 {
        self.events().map(|e| e.seq).min().unwrap_or(u64::MAX)
    }

    /// The event of source `src`, if present.
    #[inline]
    pub fn part(&self, src: usize) -> Option<&Event> {
        match &self.parts {
            Parts::One { src: s, ev } => (*s == src).then_some(ev.as_ref()),
            Parts::Many(v) => v.get(src).and_then(|e| e.as_deref()),
        }
    }

    pub fn part_shared(&self, src: usize) -> Option<&SharedEvent> {
        match &self.parts {
            Parts::One { src: s, ev } => (*s == src).then_some(ev),
            Parts::Many(v) => v.get(src).and_then(|e| e.as_ref()),
        }
    }

    /// Events present, in source order.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        let (one, many): (Option<&SharedEvent>, &[Option<SharedEvent>]) = match &self.parts {
            Parts::One { ev, .. } => (Some(ev), &[]),
            Parts::Many(v) => (None, v),
        };
        one.into_iter()
            .chain(many.iter().flatten())
            .map(|e| e.as_ref())
    }

    /// Metadata of the first event that has some.
    pub fn meta(&self) -> Option<&Meta> {
        self.events().find_map(|e| e.meta.as_deref())
    }

    /// All columns of all parts as one object (first part wins on a clash).
    pub fn to_object(&self) -> Value {
        let mut m = Map::new();
        for ev in self.events() {
            for (k, v) in ev.row.iter() {
                m.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        Value::Object(Arc::new(m))
    }
}

/// The time range of one window emission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WinRange {
    pub start: i64,
    pub end: i64,
    /// What `event_time()` returns in an aggregated context.
    pub trigger: i64,
}

/// Per-rule counters behind `last_hit_*` and `last_agg_hit_*`.
#[derive(Debug, Default)]
pub(crate) struct Hits {
    pub count: Cell<i64>,
    pub time: Cell<i64>,
    pub agg_count: Cell<i64>,
    pub agg_time: Cell<i64>,
}

/// A hashable key made of values (GROUP BY dimensions, PARTITION BY).
/// Equality is strict: `1` and `1.0` are different keys.
#[derive(Clone, Debug)]
pub(crate) struct Key(pub Vec<Value>);

pub(crate) fn hash_value<H: Hasher>(v: &Value, h: &mut H) {
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => {
            1u8.hash(h);
            b.hash(h)
        }
        Value::Int(i) => {
            2u8.hash(h);
            i.hash(h)
        }
        Value::Float(f) => {
            3u8.hash(h);
            let f = if *f == 0.0 { 0.0 } else { *f };
            f.to_bits().hash(h)
        }
        Value::Str(s) => {
            4u8.hash(h);
            s.hash(h)
        }
        Value::Bytes(b) => {
            5u8.hash(h);
            b.hash(h)
        }
        Value::Array(a) => {
            6u8.hash(h);
            a.len().hash(h);
            for x in a.iter() {
                hash_value(x, h);
            }
        }
        Value::Object(o) => {
            7u8.hash(h);
            o.len().hash(h);
            for (k, x) in o.iter() {
                k.hash(h);
                hash_value(x, h);
            }
        }
        Value::Datetime(t) => {
            8u8.hash(h);
            t.hash(h)
        }
    }
}

/// Strict structural equality (no int/float coercion).
pub(crate) fn strict_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Bytes(x), Value::Bytes(y)) => x == y,
        (Value::Datetime(x), Value::Datetime(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| strict_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|((k1, v1), (k2, v2))| k1 == k2 && strict_eq(v1, v2))
        }
        _ => false,
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for v in &self.0 {
            hash_value(v, state);
        }
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && self.0.iter().zip(&other.0).all(|(a, b)| strict_eq(a, b))
    }
}

impl Eq for Key {}

#[cfg(test)]
mod tests {
    use super::*;
    use oort_core::{Row, Schema};

    #[test]
    fn keys_are_strict() {
        let a = Key(vec![Value::Int(1), Value::str("x")]);
        let b = Key(vec![Value::Int(1), Value::str("x")]);
        let c = Key(vec![Value::Float(1.0), Value::str("x")]);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut set = ahash::AHashSet::new();
        set.insert(a);
        assert!(set.contains(&b));
        assert!(!set.contains(&c));
    }

    #[test]
    fn tuple_parts_and_object() {
        let ev = |names: &[&str], vals: Vec<Value>| {
            Arc::new(Event {
                row: Row::new(Arc::new(Schema::from_strs(names)), vals),
                meta: None,
                seq: 0,
                ts: 5,
            })
        };
        let t = Tuple {
            parts: Parts::Many(
                vec![
                    Some(ev(&["a", "b"], vec![Value::Int(1), Value::Int(2)])),
                    None,
                    Some(ev(&["b", "c"], vec![Value::Int(9), Value::Int(3)])),
                ]
                .into_boxed_slice(),
            ),
            ts: 5,
            analytic: Box::default(),
        };
        assert!(t.part(1).is_none());
        assert_eq!(t.part(2).and_then(|e| e.row.get("c")), Some(&Value::Int(3)));
        let Value::Object(o) = t.to_object() else {
            panic!("object expected")
        };
        assert_eq!(o.get("b"), Some(&Value::Int(2)));
        assert_eq!(o.len(), 3);
    }
}
