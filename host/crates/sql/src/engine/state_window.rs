//! `STATEWINDOW(begin, emit)` and `STATEWINDOW(cond)` as eKuiper runs them,
//! one window per `OVER (PARTITION BY ...)` key:
//!
//! - two conditions: while closed, a row for which `begin` holds opens the
//!   window (others are dropped); while open, each row is kept and, when
//!   `emit` holds on it, the window is emitted with that closing row and
//!   closes;
//! - one condition: a row for which it holds opens the window; while open,
//!   such a row emits the rows so far (without itself) and starts the next
//!   window; other rows are kept.
//!
//! Windows are emitted on a row only (no timer, nothing at rule stop);
//! `window_start()`/`window_end()` are the opening and closing rows' times.

use std::collections::HashMap;

use oort_core::key::Key;

use super::tuple::{Tuple, WinRange};
use super::window::{Content, Emission};

/// The most rows one open window keeps; a row beyond is refused (an
/// exception of the window operator), never dropped silently.
pub(crate) const MAX_ROWS: usize = 100_000;
/// The most partitions with an open window.
pub(crate) const MAX_PARTS: usize = 100_000;

#[derive(Debug)]
struct Part {
    start: i64,
    rows: Vec<Tuple>,
}

#[derive(Debug)]
pub(crate) struct StateWin {
    /// The two-condition form.
    two: bool,
    parts: HashMap<Key, Part>,
}

impl StateWin {
    pub fn new(two: bool) -> StateWin {
        StateWin {
            two,
            parts: HashMap::new(),
        }
    }

    /// Whether `key`'s window is open: which condition the next row of that
    /// partition is checked against (`begin` when closed; `emit`, or the one
    /// condition, when open).
    pub fn is_open(&self, key: &Key) -> bool {
        self.parts.contains_key(key)
    }

    /// Adds a row of partition `key` for which the condition that applies
    /// ([`StateWin::is_open`]) gave `cond`.
    pub fn push(&mut self, key: Key, t: Tuple, cond: bool) -> Result<Option<Emission>, String> {
        let ts = t.ts;
        let Some(part) = self.parts.get_mut(&key) else {
            if cond {
                if self.parts.len() >= MAX_PARTS {
                    return Err(format!(
                        "state window: {MAX_PARTS} partitions are open; a row opening another is dropped"
                    ));
                }
                self.parts.insert(
                    key,
                    Part {
                        start: ts,
                        rows: vec![t],
                    },
                );
            }
            return Ok(None);
        };
        let full =
            || format!("state window: an open window holds {MAX_ROWS} rows; the row is dropped");
        if self.two {
            if !cond && part.rows.len() >= MAX_ROWS {
                return Err(full());
            }
            part.rows.push(t);
            if !cond {
                return Ok(None);
            }
            let start = part.start;
            let rows = self.parts.remove(&key).map(|p| p.rows).unwrap_or_default();
            return Ok(Some(emission(rows, start, ts)));
        }
        if !cond {
            if part.rows.len() >= MAX_ROWS {
                return Err(full());
            }
            part.rows.push(t);
            return Ok(None);
        }
        let start = std::mem::replace(&mut part.start, ts);
        let rows = std::mem::replace(&mut part.rows, vec![t]);
        Ok(Some(emission(rows, start, ts)))
    }
}

fn emission(rows: Vec<Tuple>, start: i64, end: i64) -> Emission {
    (
        Content::Rows(rows),
        WinRange {
            start,
            end,
            trigger: end,
        },
    )
}
