//! Incremental sliding windows: instead of aggregating every row of the
//! window at each emission (a 10 s window at 10,000 events/s holds 100,000
//! rows, and emits on every event), each group keeps accumulators that rows
//! are added to as they enter and taken back from as they leave
//! ([`oort_functions::Accumulator::remove`]). Used when every aggregate of
//! the query can remove rows (`count`, `sum`, `avg`) and nothing needs the
//! window's rows themselves (see `plan::build`).
//!
//! The window's buffer (in [`super::window::WinState`]) still holds the rows,
//! oldest first; `rows` here gives the group of each, in the same order, so
//! a row leaving the front is taken back from its group. Groups come out in
//! the order of their oldest row still in the window, as a recomputation
//! over the rows would give them.

use std::collections::VecDeque;

use oort_core::Value;
use oort_functions::Accumulator;

use super::agg::{new_accs, GroupIndex};
use super::expr::Ctx;
use super::plan::Plan;

/// A row whose aggregation failed: it is in the window but in no group.
const NO_GROUP: usize = usize::MAX;

#[derive(Debug, Default)]
pub(crate) struct SlideInc {
    index: GroupIndex,
    groups: Vec<SlideGroup>,
    /// The group of each row of the window, oldest first.
    rows: VecDeque<usize>,
    /// Rows that ever left the window (the position of `rows[0]`).
    left: u64,
    /// Rows in the window whose aggregation failed, and the first error:
    /// every emission reports it while such a row is in the window, as a
    /// recomputation would.
    failed: usize,
    error: Option<String>,
    key: Vec<Value>,
    /// Groups with no row left (their slot is reused after a rebuild).
    empty: usize,
}

struct SlideGroup {
    accs: Vec<Box<dyn Accumulator>>,
    /// Positions of the group's rows in the window (oldest first).
    positions: VecDeque<u64>,
}

impl std::fmt::Debug for SlideGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlideGroup")
            .field("rows", &self.positions.len())
            .finish()
    }
}

/// Evaluates the arguments of aggregate `i` for the row of `ctx`; `None`
/// when its FILTER excludes the row.
fn args(plan: &Plan, i: usize, ctx: &Ctx, buf: &mut Vec<Value>) -> Result<bool, String> {
    let Some(def) = plan.aggs.get(i) else {
        return Ok(false);
    };
    if let Some(f) = &def.filter {
        if !f.eval_cond(ctx)? {
            return Ok(false);
        }
    }
    buf.clear();
    for a in &def.args {
        buf.push(a.eval(ctx)?);
    }
    Ok(true)
}

impl SlideInc {
    /// A row entering the window (`ctx` points at it).
    pub fn add(&mut self, plan: &Plan, ctx: &Ctx, buf: &mut Vec<Value>) {
        let pos = self.left + self.rows.len() as u64;
        match self.try_add(plan, ctx, buf, pos) {
            Ok(g) => self.rows.push_back(g),
            Err(e) => {
                self.rows.push_back(NO_GROUP);
                self.failed += 1;
                self.error.get_or_insert(e);
            }
        }
    }

    fn try_add(
        &mut self,
        plan: &Plan,
        ctx: &Ctx,
        buf: &mut Vec<Value>,
        pos: u64,
    ) -> Result<usize, String> {
        self.key.clear();
        for d in &plan.dims {
            let v = d.eval(ctx)?;
            self.key.push(v);
        }
        let (gi, new) = self.index.find_or_insert(&self.key);
        if new {
            self.groups.push(SlideGroup {
                accs: new_accs(plan)?,
                positions: VecDeque::new(),
            });
        }
        let g = self.groups.get_mut(gi).ok_or("internal: no group")?;
        // All or nothing: a failing aggregate takes back the ones fed.
        for i in 0..g.accs.len() {
            let fed = args(plan, i, ctx, buf).and_then(|take| {
                if take {
                    g.accs[i].add(buf).map_err(|e| e.to_string())
                } else {
                    Ok(())
                }
            });
            if let Err(e) = fed {
                for j in 0..i {
                    if args(plan, j, ctx, buf)? {
                        g.accs[j].remove(buf).map_err(|e| e.to_string())?;
                    }
                }
                return Err(e);
            }
        }
        if g.positions.is_empty() {
            self.empty = self.empty.saturating_sub(usize::from(!new));
        }
        g.positions.push_back(pos);
        Ok(gi)
    }

    /// The oldest row leaving the window (`ctx` points at it).
    pub fn remove(&mut self, plan: &Plan, ctx: &Ctx, buf: &mut Vec<Value>) -> Result<(), String> {
        let Some(gi) = self.rows.pop_front() else {
            return Ok(());
        };
        self.left += 1;
        if gi == NO_GROUP {
            self.failed = self.failed.saturating_sub(1);
            if self.failed == 0 {
                self.error = None;
            }
            return Ok(());
        }
        let Some(g) = self.groups.get_mut(gi) else {
            return Ok(());
        };
        g.positions.pop_front();
        for i in 0..g.accs.len() {
            if args(plan, i, ctx, buf)? {
                g.accs[i].remove(buf).map_err(|e| e.to_string())?;
            }
        }
        if g.positions.is_empty() {
            self.empty += 1;
            if self.empty > 1024 && self.empty > self.groups.len() / 2 {
                self.compact();
            }
        }
        Ok(())
    }

    /// Forgets the groups with no row (keys that left the window).
    fn compact(&mut self) {
        let old = std::mem::take(&mut self.groups);
        let keys = self.index.take_keys();
        let mut remap = vec![NO_GROUP; old.len()];
        for (i, (g, k)) in old.into_iter().zip(keys).enumerate() {
            if g.positions.is_empty() {
                continue;
            }
            let (n, _) = self.index.find_or_insert(&k);
            remap[i] = n;
            self.groups.push(g);
        }
        for r in self.rows.iter_mut() {
            if let Some(n) = remap.get(*r) {
                *r = *n;
            }
        }
        self.empty = 0;
    }

    /// The error of a row still in the window, if any.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The groups with rows: the window-buffer index of each one's oldest
    /// row and its aggregates, in the order of those rows.
    pub fn groups(&self) -> Vec<(usize, Vec<Value>)> {
        let mut out: Vec<(usize, Vec<Value>)> = self
            .groups
            .iter()
            .filter_map(|g| {
                let first = *g.positions.front()?;
                let idx = usize::try_from(first.saturating_sub(self.left)).ok()?;
                Some((idx, g.accs.iter().map(|a| a.result()).collect()))
            })
            .collect();
        out.sort_by_key(|(i, _)| *i);
        out
    }
}
