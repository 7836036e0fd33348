//! Joins: combines the rows of a collection (one event, or a window's
//! content) with the rows of the other sources (scan tables, or the other
//! streams' rows of the same window) following each JOIN clause in order.
//! INNER, LEFT, RIGHT, FULL and CROSS are supported; a lookup table (INNER
//! or LEFT) gives the rows its lookup returns for each left row's keys.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;

use ahash::AHashMap;
use oort_core::key::Key;
use oort_core::{SharedEvent, Value};

use super::expr::Ctx;
use super::plan::{JoinSpec, LookupSpec, Plan};
use super::tuple::{Hits, Parts, Tuple};
use super::LookupRows;
use crate::ast::{JoinKind, StreamKind};

/// A partial combination: one optional event per source, and the analytic
/// values of the stream row it started from.
struct Combo {
    parts: Vec<Option<SharedEvent>>,
    analytic: Box<[Value]>,
    ts: i64,
}

impl Combo {
    fn tuple(&self) -> Tuple {
        Tuple {
            parts: Parts::Many(self.parts.clone().into_boxed_slice()),
            ts: self.ts,
            analytic: self.analytic.clone(),
        }
    }
}

/// The context an ON condition or a lookup key is evaluated in: one row.
fn row_ctx<'a>(
    plan: &'a Plan,
    hits: &'a Hits,
    t: &'a Tuple,
    win: Option<super::tuple::WinRange>,
) -> Ctx<'a> {
    super::mk_ctx(plan, hits, Some(t), &[], win, false, 1, (0, 0))
}

/// Candidate rows of source `src`: table rows, or the collection's rows of
/// that stream (with their analytic values and time).
fn candidates<'a>(
    plan: &Plan,
    src: usize,
    rows: &'a [Tuple],
    tables: &'a [VecDeque<SharedEvent>],
) -> Vec<(SharedEvent, Option<&'a Tuple>)> {
    match plan.srcs.get(src).map(|s| s.kind) {
        Some(StreamKind::Table) => tables
            .get(src)
            .map(|t| t.iter().map(|e| (e.clone(), None)).collect())
            .unwrap_or_default(),
        _ => rows
            .iter()
            .filter_map(|t| t.part_shared(src).map(|e| (e.clone(), Some(t))))
            .collect(),
    }
}

/// Hash indexes of the scan tables joined on equi-keys, per JOIN clause,
/// rebuilt when their table changed since.
#[derive(Debug, Default)]
pub(crate) struct TableIndexes {
    /// Changes per source (scan-table rows added).
    versions: Vec<u64>,
    /// Per JOIN clause: the table version it was built at, and the row
    /// positions by key.
    built: RefCell<Vec<Option<(u64, RowsByKey)>>>,
}

/// Row positions of a scan table by their join-key values.
type RowsByKey = AHashMap<Key, Vec<usize>>;

impl TableIndexes {
    /// Notes that scan table `src` changed.
    pub fn changed(&mut self, src: usize) {
        if self.versions.len() <= src {
            self.versions.resize(src + 1, 0);
        }
        self.versions[src] += 1;
    }

    fn version(&self, src: usize) -> u64 {
        self.versions.get(src).copied().unwrap_or(0)
    }
}

/// A key of equi-join values, or `None` when one is NULL (which matches
/// nothing). Values that `=` finds equal hash alike: an integral float is
/// its integer, a date-time its milliseconds.
fn index_key(values: Vec<Value>) -> Option<Key> {
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        out.push(match v {
            Value::Null => return None,
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::Int(f as i64),
            Value::Datetime(ms) => Value::Int(ms),
            other => other,
        });
    }
    Some(Key(out))
}

/// Joins `rows` per the plan's JOIN clauses. An error in an ON condition
/// aborts the whole collection (`run Join error: ...`).
pub(crate) fn join(
    plan: &Plan,
    rows: &[Tuple],
    tables: &[VecDeque<SharedEvent>],
    indexes: &TableIndexes,
    lookups: &[Option<Arc<dyn LookupRows>>],
    hits: &Hits,
    win: Option<super::tuple::WinRange>,
) -> Result<Vec<Tuple>, String> {
    let n = plan.srcs.len();
    let mut current: Vec<Combo> = candidates(plan, 0, rows, tables)
        .into_iter()
        .map(|(ev, t)| {
            let mut parts = vec![None; n];
            let ts = t.map(|t| t.ts).unwrap_or(ev.ts);
            parts[0] = Some(ev);
            Combo {
                parts,
                analytic: t.map(|t| t.analytic.clone()).unwrap_or_default(),
                ts,
            }
        })
        .collect();
    for (ji, j) in plan.joins.iter().enumerate() {
        if let (Some(spec), Some(table)) = (&j.index, tables.get(j.src)) {
            current = indexed_join(plan, ji, j, spec, table, indexes, current, hits, win)?;
            continue;
        }
        if let Some(spec) = &j.lookup {
            let rows = lookups.get(j.src).and_then(Option::as_ref).ok_or_else(|| {
                let name = plan.sources.get(j.src).map(|s| s.name.as_str());
                format!(
                    "run Join error: lookup table {} is not connected",
                    name.unwrap_or("?")
                )
            })?;
            current = lookup_join(plan, j, spec, rows.as_ref(), current, hits, win)?;
            continue;
        }
        let rights = candidates(plan, j.src, rows, tables);
        let mut next = Vec::with_capacity(current.len());
        let mut right_matched = vec![false; rights.len()];
        for combo in current {
            let mut any = false;
            for (ri, (rev, rt)) in rights.iter().enumerate() {
                let mut parts = combo.parts.clone();
                if let Some(p) = parts.get_mut(j.src) {
                    *p = Some(rev.clone());
                }
                let (analytic, ts) = if combo.analytic.is_empty() {
                    match rt {
                        Some(t) => (t.analytic.clone(), t.ts),
                        None => (combo.analytic.clone(), combo.ts),
                    }
                } else {
                    (combo.analytic.clone(), combo.ts)
                };
                let cand = Combo {
                    parts,
                    analytic,
                    ts,
                };
                let ok = match (&j.on, j.kind) {
                    (_, JoinKind::Cross) | (None, _) => true,
                    (Some(on), _) => {
                        let t = cand.tuple();
                        let ctx = row_ctx(plan, hits, &t, win);
                        on.eval_cond(&ctx)
                            .map_err(|e| format!("run Join error: {e}"))?
                    }
                };
                if ok {
                    any = true;
                    if let Some(m) = right_matched.get_mut(ri) {
                        *m = true;
                    }
                    next.push(cand);
                }
            }
            if !any && matches!(j.kind, JoinKind::Left | JoinKind::Full) {
                next.push(combo);
            }
        }
        if matches!(j.kind, JoinKind::Right | JoinKind::Full) {
            for ((rev, rt), matched) in rights.iter().zip(&right_matched) {
                if !matched {
                    let mut parts = vec![None; n];
                    if let Some(p) = parts.get_mut(j.src) {
                        *p = Some(rev.clone());
                    }
                    next.push(Combo {
                        parts,
                        analytic: rt.map(|t| t.analytic.clone()).unwrap_or_default(),
                        ts: rt.map(|t| t.ts).unwrap_or(rev.ts),
                    });
                }
            }
        }
        current = next;
    }
    Ok(current.iter().map(Combo::tuple).collect())
}

/// An INNER or LEFT join with a scan table through its hash index: each
/// left combination meets only the table rows with its key values, and the
/// whole ON condition is checked on those.
#[allow(clippy::too_many_arguments)]
fn indexed_join(
    plan: &Plan,
    ji: usize,
    j: &JoinSpec,
    spec: &LookupSpec,
    table: &VecDeque<SharedEvent>,
    indexes: &TableIndexes,
    current: Vec<Combo>,
    hits: &Hits,
    win: Option<super::tuple::WinRange>,
) -> Result<Vec<Combo>, String> {
    let version = indexes.version(j.src);
    let mut built = indexes.built.borrow_mut();
    if built.len() <= ji {
        built.resize_with(ji + 1, || None);
    }
    if built[ji].as_ref().is_none_or(|(v, _)| *v != version) {
        let mut map: AHashMap<Key, Vec<usize>> = AHashMap::with_capacity(table.len());
        for (i, ev) in table.iter().enumerate() {
            let vals = spec
                .keys
                .iter()
                .map(|k| ev.row.get(k).cloned().unwrap_or(Value::Null))
                .collect();
            if let Some(key) = index_key(vals) {
                map.entry(key).or_default().push(i);
            }
        }
        built[ji] = Some((version, map));
    }
    let Some((_, map)) = &built[ji] else {
        return Ok(Vec::new());
    };
    let mut next = Vec::with_capacity(current.len());
    for combo in current {
        let t = combo.tuple();
        let key = {
            let ctx = row_ctx(plan, hits, &t, win);
            let mut vals = Vec::with_capacity(spec.vals.len());
            for v in &spec.vals {
                vals.push(v.eval(&ctx).map_err(|e| format!("run Join error: {e}"))?);
            }
            index_key(vals)
        };
        let mut any = false;
        for &i in key
            .as_ref()
            .and_then(|k| map.get(k))
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            let Some(rev) = table.get(i) else { continue };
            let mut parts = combo.parts.clone();
            if let Some(p) = parts.get_mut(j.src) {
                *p = Some(rev.clone());
            }
            let cand = Combo {
                parts,
                analytic: combo.analytic.clone(),
                ts: combo.ts,
            };
            let ok = match &j.on {
                None => true,
                Some(on) => {
                    let ct = cand.tuple();
                    let ctx = row_ctx(plan, hits, &ct, win);
                    on.eval_cond(&ctx)
                        .map_err(|e| format!("run Join error: {e}"))?
                }
            };
            if ok {
                any = true;
                next.push(cand);
            }
        }
        if !any && j.kind == JoinKind::Left {
            next.push(combo);
        }
    }
    Ok(next)
}

/// One lookup join: for each left combination, the rows the table returns
/// for its key values (none when a key value is NULL), filtered by the rest
/// of the ON condition; a LEFT join keeps a combination without rows.
fn lookup_join(
    plan: &Plan,
    j: &JoinSpec,
    spec: &LookupSpec,
    table: &dyn LookupRows,
    current: Vec<Combo>,
    hits: &Hits,
    win: Option<super::tuple::WinRange>,
) -> Result<Vec<Combo>, String> {
    let mut next = Vec::with_capacity(current.len());
    let mut values = Vec::with_capacity(spec.vals.len());
    for combo in current {
        let t = combo.tuple();
        let ctx = row_ctx(plan, hits, &t, win);
        values.clear();
        for v in &spec.vals {
            values.push(v.eval(&ctx).map_err(|e| format!("run Join error: {e}"))?);
        }
        let found: Arc<[SharedEvent]> = if values.iter().any(Value::is_null) {
            Arc::from(Vec::new())
        } else {
            table
                .lookup(&spec.keys, &values)
                .map_err(|e| format!("run Join error: {e}"))?
        };
        let mut any = false;
        for ev in found.iter() {
            let mut parts = combo.parts.clone();
            if let Some(p) = parts.get_mut(j.src) {
                *p = Some(ev.clone());
            }
            let cand = Combo {
                parts,
                analytic: combo.analytic.clone(),
                ts: combo.ts,
            };
            if let Some(on) = &j.on {
                let t = cand.tuple();
                let ctx = row_ctx(plan, hits, &t, win);
                if !on
                    .eval_cond(&ctx)
                    .map_err(|e| format!("run Join error: {e}"))?
                {
                    continue;
                }
            }
            any = true;
            next.push(cand);
        }
        if !any && matches!(j.kind, JoinKind::Left) {
            next.push(combo);
        }
    }
    Ok(next)
}
