//! The unit the operators pass around: a [`Tuple`] (one event, or one joined
//! combination of events), its window range, group keys and the per-rule
//! hit counters read by `last_hit_*` / `last_agg_hit_*`.

use std::cell::Cell;
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

/// Per-run rule state read by functions: the counters behind `last_hit_*`
/// and `last_agg_hit_*`, and the start time `rule_start()` returns.
#[derive(Debug, Default)]
pub(crate) struct Hits {
    pub rule_start: i64,
    pub count: Cell<i64>,
    pub time: Cell<i64>,
    pub agg_count: Cell<i64>,
    pub agg_time: Cell<i64>,
}

pub(crate) use oort_core::key::{hash_value, strict_eq, Key};

#[cfg(test)]
mod tests {
    use super::*;
    use oort_core::{Row, Schema};

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
