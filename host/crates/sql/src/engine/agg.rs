//! Grouping and aggregation: GROUP BY keys (first-seen order), one
//! [`Accumulator`] per group per aggregate call, fed row by row either when
//! a window closes (buffered windows) or as rows arrive (incremental
//! windows, which keep only each group's first row and accumulators).

use std::hash::{BuildHasher, Hasher};

use ahash::AHashMap;
use oort_core::Value;
use oort_functions::Accumulator;

use super::expr::Ctx;
use super::plan::{AggDef, Plan};
use super::tuple::{hash_value, strict_eq, Tuple};

/// Group keys -> group numbers (first-seen order). Lookups hash the key in
/// place, so finding an existing group allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct GroupIndex {
    state: ahash::RandomState,
    heads: AHashMap<u64, usize>,
    next: Vec<Option<usize>>,
    keys: Vec<Vec<Value>>,
}

impl GroupIndex {
    fn hash(&self, key: &[Value]) -> u64 {
        let mut h = self.state.build_hasher();
        for v in key {
            hash_value(v, &mut h);
        }
        h.finish()
    }

    /// The group of `key`, and whether it is new.
    pub fn find_or_insert(&mut self, key: &[Value]) -> (usize, bool) {
        let h = self.hash(key);
        let head = self.heads.get(&h).copied();
        let mut cur = head;
        while let Some(i) = cur {
            let same = self.keys.get(i).is_some_and(|k| {
                k.len() == key.len() && k.iter().zip(key).all(|(a, b)| strict_eq(a, b))
            });
            if same {
                return (i, false);
            }
            cur = self.next.get(i).copied().flatten();
        }
        let i = self.keys.len();
        self.keys.push(key.to_vec());
        self.next.push(head);
        self.heads.insert(h, i);
        (i, true)
    }

    /// Empties the index, handing back its keys by group number.
    pub fn take_keys(&mut self) -> Vec<Vec<Value>> {
        self.heads.clear();
        self.next.clear();
        std::mem::take(&mut self.keys)
    }

    pub fn clear(&mut self) {
        self.heads.clear();
        self.next.clear();
        self.keys.clear();
    }
}

/// Creates one accumulator per aggregate call.
pub(crate) fn new_accs(plan: &Plan) -> Result<Vec<Box<dyn Accumulator>>, String> {
    plan.aggs
        .iter()
        .map(|a| (a.func.new)(&a.consts).map_err(|e| e.to_string()))
        .collect()
}

/// Feeds one row to the accumulators. `ctx` must point at the row.
pub(crate) fn feed(
    defs: &[AggDef],
    accs: &mut [Box<dyn Accumulator>],
    ctx: &Ctx,
    buf: &mut Vec<Value>,
) -> Result<(), String> {
    for (def, acc) in defs.iter().zip(accs.iter_mut()) {
        if let Some(f) = &def.filter {
            if !f.eval_cond(ctx)? {
                continue;
            }
        }
        buf.clear();
        for a in &def.args {
            buf.push(a.eval(ctx)?);
        }
        if def.with_row {
            buf.push(ctx.tuple.map(Tuple::to_object).unwrap_or(Value::Null));
        }
        acc.add(buf).map_err(|e| e.to_string())?;
    }
    Ok(())
}

pub(crate) fn results(accs: &[Box<dyn Accumulator>]) -> Vec<Value> {
    accs.iter().map(|a| a.result()).collect()
}

/// One group of an incremental window.
pub(crate) struct IncGroup {
    pub first: Tuple,
    pub accs: Vec<Box<dyn Accumulator>>,
}

impl std::fmt::Debug for IncGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncGroup")
            .field("first", &self.first)
            .finish()
    }
}

/// The groups of the current incremental window.
#[derive(Debug, Default)]
pub(crate) struct IncGroups {
    index: GroupIndex,
    key: Vec<Value>,
    pub groups: Vec<IncGroup>,
    /// Time of the window's first row (session windows).
    pub first_ts: Option<i64>,
    /// Smallest arrival sequence number folded in (checkpoints).
    pub first_seq: Option<u64>,
}

impl IncGroups {
    pub fn is_empty(&self) -> bool {
        self.first_ts.is_none()
    }

    pub fn take(&mut self) -> Vec<IncGroup> {
        self.index.clear();
        self.key.clear();
        self.first_ts = None;
        self.first_seq = None;
        std::mem::take(&mut self.groups)
    }

    /// Adds one row: evaluates its group key and feeds that group.
    pub fn add(
        &mut self,
        plan: &Plan,
        t: &Tuple,
        ctx: &Ctx,
        buf: &mut Vec<Value>,
    ) -> Result<(), String> {
        self.key.clear();
        for d in &plan.dims {
            let v = d.eval(ctx)?;
            self.key.push(v);
        }
        let (gi, new) = self.index.find_or_insert(&self.key);
        if new {
            let accs = new_accs(plan)?;
            self.groups.push(IncGroup {
                first: t.clone(),
                accs,
            });
        }
        if self.first_ts.is_none() {
            self.first_ts = Some(t.ts);
        }
        let seq = t.min_seq();
        self.first_seq = Some(self.first_seq.map_or(seq, |f| f.min(seq)));
        match self.groups.get_mut(gi) {
            Some(g) => feed(&plan.aggs, &mut g.accs, ctx, buf),
            None => Ok(()),
        }
    }
}

/// Groups row indices by the plan's GROUP BY keys, in first-seen order.
pub(crate) fn group_rows<'t>(
    plan: &Plan,
    rows: &'t [Tuple],
    mut ctx_for: impl FnMut(&'t Tuple) -> Ctx<'t>,
) -> Result<Vec<Vec<usize>>, String> {
    let mut index = GroupIndex::default();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut key = Vec::with_capacity(plan.dims.len());
    for (i, t) in rows.iter().enumerate() {
        let ctx = ctx_for(t);
        key.clear();
        for d in &plan.dims {
            key.push(d.eval(&ctx)?);
        }
        let (g, new) = index.find_or_insert(&key);
        if new {
            groups.push(Vec::new());
        }
        if let Some(v) = groups.get_mut(g) {
            v.push(i);
        }
    }
    Ok(groups)
}
