//! Window operators. Time windows run on a clock the caller supplies
//! (processing time: arrival times and ticks; event time: the watermark):
//! tumbling, hopping, sliding (with delay), session, and count windows.
//! Ticks of tumbling/hopping/session windows are aligned to multiples of
//! the window size (hop for hopping) like eKuiper's, and fire even when the
//! window is empty.
//!
//! A window emits [`Content`]: its rows, or (incremental mode) its groups.

use std::collections::VecDeque;

use super::agg::{IncGroup, IncGroups};
use super::plan::{WinKind, WindowSpec};
use super::state_window::StateWin;
use super::tuple::{Tuple, WinRange};

pub(crate) enum Content {
    Rows(Vec<Tuple>),
    Groups(Vec<IncGroup>),
    /// An incremental sliding window fired: its groups are in the query's
    /// [`super::slide_inc::SlideInc`].
    Slide,
}

pub(crate) type Emission = (Content, WinRange);

/// Most ticks processed by one call (a clock jump realigns instead).
const MAX_TICKS_PER_CALL: usize = 10_000;

#[derive(Debug)]
pub(crate) struct WinState {
    kind: WinKind,
    align: i64,
    day_unit: bool,
    inited: bool,
    /// Previous trigger time (eKuiper's `triggerTime`): window starts derive from it.
    trigger_time: i64,
    next_tick: Option<i64>,
    buf: VecDeque<Tuple>,
    pub inc: Option<IncGroups>,
    session_active: bool,
    timeout_at: Option<i64>,
    /// Sliding windows with a delay: trigger times waiting to fire.
    pending: VecDeque<i64>,
    count: usize,
    /// A state window's open windows.
    pub state: Option<StateWin>,
    /// Incremental sliding window: rows leaving the window are moved to
    /// `expired` (for their aggregates to be taken back) and emissions
    /// carry no rows.
    slide_inc: bool,
    pub expired: Vec<Tuple>,
}

/// Offset of the local time zone at `ms`, in ms.
fn local_offset_ms(ms: i64) -> i64 {
    use chrono::{Local, Offset, TimeZone};
    Local
        .timestamp_millis_opt(ms)
        .single()
        .map(|d| i64::from(d.offset().fix().local_minus_utc()) * 1000)
        .unwrap_or(0)
}

impl WinState {
    pub fn new(spec: &WindowSpec, incremental: bool, slide_inc: bool) -> WinState {
        WinState {
            kind: spec.kind,
            align: spec.align_ms.max(1),
            day_unit: spec.day_unit,
            inited: false,
            trigger_time: 0,
            next_tick: None,
            buf: VecDeque::new(),
            inc: incremental.then(IncGroups::default),
            session_active: false,
            timeout_at: None,
            pending: VecDeque::new(),
            count: 0,
            state: match spec.kind {
                WinKind::State { two } => Some(StateWin::new(two)),
                _ => None,
            },
            slide_inc,
            expired: Vec::new(),
        }
    }

    /// True for windows driven by clock ticks.
    pub fn ticking(&self) -> bool {
        matches!(
            self.kind,
            WinKind::Tumbling { .. } | WinKind::Hopping { .. } | WinKind::Session { .. }
        )
    }

    /// The first tick strictly after `now`, aligned to the window size.
    fn aligned_after(&self, now: i64) -> i64 {
        let off = if self.day_unit {
            local_offset_ms(now)
        } else {
            0
        };
        let local = now.saturating_add(off);
        local
            .div_euclid(self.align)
            .saturating_add(1)
            .saturating_mul(self.align)
            .saturating_sub(off)
    }

    /// Starts the window clock (rule start).
    pub fn init(&mut self, now: i64) {
        if self.inited {
            return;
        }
        self.inited = true;
        self.trigger_time = now;
        if self.ticking() {
            self.next_tick = Some(self.aligned_after(now));
        }
    }

    pub fn is_inited(&self) -> bool {
        self.inited
    }

    /// When `tick` must next be called.
    pub fn deadline(&self) -> Option<i64> {
        if !self.inited {
            return self.ticking().then_some(0);
        }
        [
            self.next_tick,
            self.timeout_at,
            self.pending.front().copied(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Adds a row (buffered mode) at time `t.ts`. `triggered` tells a sliding
    /// window whether the row matches its OVER (WHEN) condition. Returns the
    /// emissions the row causes at once (count and sliding windows).
    pub fn push(&mut self, t: Tuple, triggered: bool) -> Option<Emission> {
        let now = t.ts;
        self.init(now);
        match self.kind {
            WinKind::Tumbling { .. } | WinKind::Hopping { .. } => {
                self.buf.push_back(t);
                None
            }
            WinKind::Session { timeout, .. } => {
                self.session_event(now, timeout);
                self.buf.push_back(t);
                None
            }
            WinKind::Count { size, every } => {
                self.buf.push_back(t);
                while self.buf.len() > size {
                    self.buf.pop_front();
                }
                self.count += 1;
                if !self.count.is_multiple_of(every) {
                    return None;
                }
                self.count = 0;
                if self.buf.len() < size {
                    return None;
                }
                let rows: Vec<Tuple> = self.buf.iter().cloned().collect();
                self.trigger_time = now;
                Some((
                    Content::Rows(rows),
                    WinRange {
                        start: now,
                        end: now,
                        trigger: now,
                    },
                ))
            }
            // Rows of state windows go through `state` (see windowing).
            WinKind::State { .. } => None,
            WinKind::Sliding { size, delay } => {
                self.buf.push_back(t);
                if !triggered {
                    // Rows that can no longer be in any window go.
                    let limit = now
                        .saturating_add(1)
                        .saturating_sub(size.saturating_add(delay));
                    self.pop_before(limit);
                    return None;
                }
                if delay > 0 {
                    self.pending.push_back(now.saturating_add(delay));
                    return None;
                }
                Some(self.slide(now, size, false))
            }
        }
    }

    /// Notes a row added to the incremental groups (session bookkeeping).
    pub fn push_inc(&mut self, now: i64) {
        self.init(now);
        if let WinKind::Session { timeout, .. } = self.kind {
            self.session_event(now, timeout);
        }
    }

    fn session_event(&mut self, now: i64, timeout: i64) {
        if !self.session_active {
            self.session_active = true;
            self.trigger_time = now;
        }
        self.timeout_at = Some(now.saturating_add(timeout));
    }

    /// Sliding scan at `right`: rows in `[right - length, right]`
    /// (`right` excluded when `strict`).
    fn slide(&mut self, right: i64, length: i64, strict: bool) -> Emission {
        let left = right.saturating_sub(length);
        self.pop_before(left);
        self.trigger_time = right;
        let content = if self.slide_inc {
            Content::Slide
        } else {
            Content::Rows(
                self.buf
                    .iter()
                    .filter(|x| if strict { x.ts < right } else { x.ts <= right })
                    .cloned()
                    .collect(),
            )
        };
        (
            content,
            WinRange {
                start: left,
                end: right,
                trigger: right,
            },
        )
    }

    /// Drops the buffered rows older than `limit` (keeping them in
    /// `expired` for an incremental sliding window).
    fn pop_before(&mut self, limit: i64) {
        while self.buf.front().is_some_and(|x| x.ts < limit) {
            if let Some(x) = self.buf.pop_front() {
                if self.slide_inc {
                    self.expired.push(x);
                }
            }
        }
    }

    /// The `i`-th buffered row (oldest first).
    pub fn row(&self, i: usize) -> Option<&Tuple> {
        self.buf.get(i)
    }

    fn take_all(&mut self) -> Content {
        match &mut self.inc {
            Some(inc) => Content::Groups(inc.take()),
            None => Content::Rows(self.buf.drain(..).collect()),
        }
    }

    fn has_rows(&self) -> bool {
        match &self.inc {
            Some(inc) => !inc.is_empty(),
            None => !self.buf.is_empty(),
        }
    }

    fn first_ts(&self) -> Option<i64> {
        match &self.inc {
            Some(inc) => inc.first_ts,
            None => self.buf.front().map(|t| t.ts),
        }
    }

    /// The smallest arrival sequence number of the rows the window still
    /// holds (buffered or folded into incremental groups).
    pub fn min_seq(&self) -> Option<u64> {
        let buffered = self.buf.iter().map(Tuple::min_seq).min();
        let folded = self.inc.as_ref().and_then(|i| i.first_seq);
        buffered.into_iter().chain(folded).min()
    }

    /// Fires every deadline up to `now`, in time order.
    pub fn tick(&mut self, now: i64, out: &mut Vec<Emission>) {
        if !self.inited {
            self.init(now);
            return;
        }
        for _ in 0..MAX_TICKS_PER_CALL {
            let Some(d) = self.deadline() else { return };
            if d > now {
                return;
            }
            if self.timeout_at == Some(d) {
                self.timeout_at = None;
                if self.has_rows() {
                    let start = self.trigger_time;
                    let content = self.take_all();
                    self.session_active = false;
                    out.push((
                        content,
                        WinRange {
                            start,
                            end: d,
                            trigger: d,
                        },
                    ));
                }
                continue;
            }
            if self.pending.front() == Some(&d) {
                self.pending.pop_front();
                if let WinKind::Sliding { size, delay } = self.kind {
                    out.push(self.slide(d, size.saturating_add(delay), true));
                }
                continue;
            }
            if self.next_tick == Some(d) {
                self.fire_tick(d, out);
                continue;
            }
            return;
        }
        // Too far behind (clock jump): realign instead of replaying.
        if let Some(t) = self.next_tick {
            if t <= now {
                self.next_tick = Some(self.aligned_after(now));
            }
        }
    }

    fn fire_tick(&mut self, t: i64, out: &mut Vec<Emission>) {
        match self.kind {
            WinKind::Tumbling { size } => {
                let start = match self.trigger_time {
                    s if s <= 0 => t.saturating_sub(size),
                    s => s,
                };
                let content = self.take_all();
                self.trigger_time = t;
                self.next_tick = Some(t.saturating_add(size));
                out.push((
                    content,
                    WinRange {
                        start,
                        end: t,
                        trigger: t,
                    },
                ));
            }
            WinKind::Hopping { size, hop } => {
                let delta = t.saturating_sub(self.trigger_time).saturating_sub(hop);
                let left = t.saturating_sub(size).saturating_sub(delta);
                while self.buf.front().is_some_and(|x| x.ts < left) {
                    self.buf.pop_front();
                }
                let rows: Vec<Tuple> = self.buf.iter().filter(|x| x.ts < t).cloned().collect();
                // eKuiper's start: the previous trigger less the hop, or the
                // end less the size when that is not after the epoch.
                let start = match self.trigger_time.saturating_sub(hop) {
                    s if s <= 0 => t.saturating_sub(size),
                    s => s,
                };
                self.trigger_time = t;
                self.next_tick = Some(t.saturating_add(hop));
                out.push((
                    Content::Rows(rows),
                    WinRange {
                        start,
                        end: t,
                        trigger: t,
                    },
                ));
            }
            WinKind::Session { max, .. } => {
                self.next_tick = Some(t.saturating_add(max));
                let due = self.first_ts().is_some_and(|f| t.saturating_sub(f) >= max);
                if due {
                    let start = self.trigger_time;
                    let content = match &mut self.inc {
                        Some(inc) => Content::Groups(inc.take()),
                        None => {
                            let mut rows = Vec::new();
                            while self.buf.front().is_some_and(|x| x.ts < t) {
                                if let Some(x) = self.buf.pop_front() {
                                    rows.push(x);
                                }
                            }
                            Content::Rows(rows)
                        }
                    };
                    self.trigger_time = t;
                    out.push((
                        content,
                        WinRange {
                            start,
                            end: t,
                            trigger: t,
                        },
                    ));
                }
            }
            WinKind::Sliding { .. } | WinKind::Count { .. } | WinKind::State { .. } => {
                self.next_tick = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oort_core::{Event, Row, Schema, Value};
    use std::sync::Arc;

    fn spec(kind: WinKind, align: i64) -> WindowSpec {
        WindowSpec {
            kind,
            align_ms: align,
            day_unit: false,
            filter: None,
            trigger: None,
            trigger_updates: (false, false),
            state: None,
        }
    }

    fn t(ts: i64) -> Tuple {
        Tuple::one(
            0,
            Arc::new(Event {
                row: Row::new(Arc::new(Schema::from_strs(&["v"])), vec![Value::Int(ts)]),
                meta: None,
                seq: 0,
                ts,
            }),
        )
    }

    fn ts_of(c: &Content) -> Vec<i64> {
        match c {
            Content::Rows(r) => r.iter().map(|x| x.ts).collect(),
            Content::Groups(_) | Content::Slide => vec![],
        }
    }

    #[test]
    fn tumbling_aligns_and_emits_empty() {
        let mut w = WinState::new(&spec(WinKind::Tumbling { size: 1000 }, 1000), false, false);
        assert_eq!(w.deadline(), Some(0));
        w.init(10_000);
        assert_eq!(w.deadline(), Some(11_000));
        w.push(t(10_013), false);
        w.push(t(10_822), false);
        let mut out = vec![];
        w.tick(12_500, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(ts_of(&out[0].0), vec![10_013, 10_822]);
        assert_eq!(
            out[0].1,
            WinRange {
                start: 10_000,
                end: 11_000,
                trigger: 11_000
            }
        );
        assert!(ts_of(&out[1].0).is_empty());
        assert_eq!(out[1].1.start, 11_000);
    }

    #[test]
    fn hopping_overlaps() {
        let mut w = WinState::new(
            &spec(
                WinKind::Hopping {
                    size: 2000,
                    hop: 1000,
                },
                1000,
            ),
            false,
            false,
        );
        w.init(0);
        for ts in [13, 822, 1632] {
            w.push(t(ts), false);
        }
        let mut out = vec![];
        w.tick(2000, &mut out);
        assert_eq!(ts_of(&out[0].0), vec![13, 822]);
        assert_eq!(out[0].1.start, -1000);
        assert_eq!(ts_of(&out[1].0), vec![13, 822, 1632]);
        assert_eq!(out[1].1.start, 0);
    }

    #[test]
    fn count_window_every() {
        let mut w = WinState::new(&spec(WinKind::Count { size: 3, every: 2 }, 0), false, false);
        let mut got = vec![];
        for ts in 1..=6 {
            if let Some((c, r)) = w.push(t(ts), false) {
                got.push((ts_of(&c), r.end));
            }
        }
        assert_eq!(got, vec![(vec![2, 3, 4], 4), (vec![4, 5, 6], 6)]);
    }

    #[test]
    fn session_timeout_and_max_tick() {
        let mut w = WinState::new(
            &spec(
                WinKind::Session {
                    max: 2000,
                    timeout: 1000,
                },
                2000,
            ),
            false,
            false,
        );
        w.init(0);
        let mut out = vec![];
        for ts in [13, 823, 1932, 2442, 3252] {
            w.tick(ts, &mut out);
            w.push(t(ts), false);
        }
        w.tick(4000, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(ts_of(&out[0].0), vec![13, 823]);
        assert_eq!(
            out[0].1,
            WinRange {
                start: 13,
                end: 1823,
                trigger: 1823
            }
        );
        assert_eq!(ts_of(&out[1].0), vec![1932, 2442, 3252]);
        assert_eq!(
            out[1].1,
            WinRange {
                start: 1932,
                end: 4000,
                trigger: 4000
            }
        );
    }

    #[test]
    fn sliding_with_delay() {
        let mut w = WinState::new(
            &spec(
                WinKind::Sliding {
                    size: 5000,
                    delay: 1000,
                },
                5000,
            ),
            false,
            false,
        );
        w.init(0);
        assert!(w.push(t(13), false).is_none());
        assert!(w.push(t(1632), true).is_none());
        assert_eq!(w.deadline(), Some(2632));
        w.push(t(2442), false);
        let mut out = vec![];
        w.tick(3000, &mut out);
        assert_eq!(ts_of(&out[0].0), vec![13, 1632, 2442]);
        assert_eq!(
            out[0].1,
            WinRange {
                start: -3368,
                end: 2632,
                trigger: 2632
            }
        );
    }
}
