//! Analytic (stateful per-row) functions: `lag`, `latest`, `changed_col`,
//! `had_changed`, `acc_*`, plus the snapshot of `last_hit_*` that WHERE
//! reads. They run over every input row before WHERE, optionally
//! `OVER (PARTITION BY ...)` and `OVER (WHEN ...)`; their results are stored
//! on the row and read by [`CExpr::Analytic`](super::expr::CExpr).
//!
//! `changed_cols` is also here (its state), but it runs in the projection.

use std::collections::VecDeque;

use ahash::AHashMap;
use oort_core::Value;

use super::expr::{CExpr, Ctx};
use super::ops::go_desc;
use super::tuple::{strict_eq, Key};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AKind {
    Lag,
    Latest,
    ChangedCol,
    HadChanged,
    AccSum,
    AccMin,
    AccMax,
    AccCount,
    AccAvg,
    /// `last_hit_count()` as WHERE sees it (read before the filter updates it).
    HitCount,
    HitTime,
}

impl AKind {
    pub fn from_name(name: &str) -> Option<AKind> {
        Some(match name {
            "lag" => AKind::Lag,
            "latest" => AKind::Latest,
            "changed_col" => AKind::ChangedCol,
            "had_changed" => AKind::HadChanged,
            "acc_sum" => AKind::AccSum,
            "acc_min" => AKind::AccMin,
            "acc_max" => AKind::AccMax,
            "acc_count" => AKind::AccCount,
            "acc_avg" => AKind::AccAvg,
            _ => return None,
        })
    }

    pub fn is_acc(self) -> bool {
        matches!(
            self,
            AKind::AccSum | AKind::AccMin | AKind::AccMax | AKind::AccCount | AKind::AccAvg
        )
    }

    /// Accepted argument counts.
    pub fn arity(self) -> (usize, Option<usize>) {
        match self {
            AKind::Lag => (1, Some(4)),
            AKind::Latest => (1, Some(2)),
            AKind::ChangedCol => (2, Some(2)),
            AKind::HadChanged => (2, None),
            // `acc_x(v)` or `acc_x(v, begin, reset)`.
            AKind::AccSum | AKind::AccMin | AKind::AccMax | AKind::AccCount | AKind::AccAvg => {
                (1, Some(3))
            }
            AKind::HitCount | AKind::HitTime => (0, Some(0)),
        }
    }
}

/// One analytic call of the rule.
#[derive(Debug)]
pub(crate) struct AnalyticDef {
    pub kind: AKind,
    pub name: &'static str,
    pub args: Vec<CExpr>,
    pub partition: Vec<CExpr>,
    pub when: Option<CExpr>,
}

#[derive(Debug)]
enum State {
    Lag(VecDeque<Value>),
    Value(Value),
    Values(Vec<Value>),
    Acc {
        sum: f64,
        count: i64,
        min: Option<f64>,
        max: Option<f64>,
        /// The three-argument form: accumulating since a begin condition.
        begun: bool,
    },
}

/// The running state of one analytic call, per partition.
#[derive(Debug, Default)]
pub(crate) struct AnalyticState {
    single: Option<State>,
    parts: AHashMap<Key, State>,
}

fn number(name: &str, v: &Value) -> Result<Option<f64>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Int(i) => Ok(Some(*i as f64)),
        Value::Float(f) => Ok(Some(*f)),
        other => Err(format!(
            "call func {name} error: the value should be number, got {}",
            go_desc(other)
        )),
    }
}

impl AnalyticDef {
    /// Evaluates the call for one row, updating its state.
    pub fn eval(&self, st: &mut AnalyticState, ctx: &Ctx) -> Result<Value, String> {
        if matches!(self.kind, AKind::HitCount) {
            return Ok(Value::Int(ctx.hits.count.get()));
        }
        if matches!(self.kind, AKind::HitTime) {
            return Ok(Value::Int(ctx.hits.time.get()));
        }
        let valid = match &self.when {
            Some(w) => w.eval_cond(ctx)?,
            None => true,
        };
        let mut args: Vec<Value> = Vec::with_capacity(self.args.len());
        for a in &self.args {
            args.push(a.eval(ctx)?);
        }
        let state = if self.partition.is_empty() {
            st.single.get_or_insert_with(|| self.initial(&args))
        } else {
            let mut key = Vec::with_capacity(self.partition.len());
            for p in &self.partition {
                key.push(p.eval(ctx)?);
            }
            st.parts
                .entry(Key(key))
                .or_insert_with(|| self.initial(&args))
        };
        self.step(state, &args, valid)
    }

    fn initial(&self, args: &[Value]) -> State {
        match self.kind {
            AKind::Lag => {
                let n = match args.get(1) {
                    Some(Value::Int(i)) if *i >= 0 => (*i as usize).min(1 << 16),
                    Some(Value::Float(f)) if *f >= 0.0 => (*f as usize).min(1 << 16),
                    _ => 1,
                };
                let dft = args.get(2).cloned().unwrap_or(Value::Null);
                State::Lag(std::iter::repeat_n(dft, n).collect())
            }
            AKind::Latest | AKind::ChangedCol => State::Value(Value::Null),
            AKind::HadChanged => State::Values(vec![Value::Null; args.len().saturating_sub(1)]),
            _ => State::Acc {
                sum: 0.0,
                count: 0,
                min: None,
                max: None,
                begun: false,
            },
        }
    }

    fn step(&self, state: &mut State, args: &[Value], valid: bool) -> Result<Value, String> {
        let arg0 = args.first().unwrap_or(&Value::Null);
        match (self.kind, state) {
            (AKind::Lag, State::Lag(q)) => {
                let ignore_null = match args.get(3) {
                    None => true,
                    Some(Value::Bool(b)) => *b,
                    Some(other) => {
                        return Err(format!(
                            "call func lag error: the fourth arg is not a bool but got {}",
                            go_desc(other)
                        ))
                    }
                };
                if q.is_empty() {
                    // lag(x, 0): the current value.
                    return Ok(arg0.clone());
                }
                let mut out = q.front().cloned().unwrap_or(Value::Null);
                if valid && (!ignore_null || !arg0.is_null()) {
                    out = q.pop_front().unwrap_or(Value::Null);
                    q.push_back(arg0.clone());
                }
                Ok(out)
            }
            (AKind::Latest, State::Value(last)) => {
                if valid && !arg0.is_null() {
                    *last = arg0.clone();
                    return Ok(arg0.clone());
                }
                if last.is_null() {
                    Ok(args.get(1).cloned().unwrap_or(Value::Null))
                } else {
                    Ok(last.clone())
                }
            }
            (AKind::ChangedCol, State::Value(last)) => {
                let ignore_null = match arg0 {
                    Value::Bool(b) => *b,
                    other => {
                        return Err(format!(
                            "call func changed_col error: first arg is not a bool but got {}",
                            go_desc(other)
                        ))
                    }
                };
                let v = args.get(1).unwrap_or(&Value::Null);
                if (ignore_null && v.is_null()) || !valid {
                    return Ok(Value::Null);
                }
                if !strict_eq(v, last) {
                    *last = v.clone();
                    return Ok(v.clone());
                }
                Ok(Value::Null)
            }
            (AKind::HadChanged, State::Values(lasts)) => {
                if !valid {
                    return Ok(Value::Bool(false));
                }
                let ignore_null = match arg0 {
                    Value::Bool(b) => *b,
                    other => {
                        return Err(format!(
                            "call func had_changed error: first arg is not a bool but got {}",
                            go_desc(other)
                        ))
                    }
                };
                let mut changed = false;
                for (v, last) in args.iter().skip(1).zip(lasts.iter_mut()) {
                    if ignore_null && v.is_null() {
                        continue;
                    }
                    if !strict_eq(v, last) {
                        changed = true;
                        *last = v.clone();
                    }
                }
                Ok(Value::Bool(changed))
            }
            (
                kind,
                State::Acc {
                    sum,
                    count,
                    min,
                    max,
                    begun,
                },
            ) => {
                // `acc_x(v, begin, reset)`, as eKuiper: idle until `begin`
                // holds (the value reads 0), accumulating from that row on,
                // and after a row where `reset` holds (that row counted)
                // idle again.
                let mut valid = valid;
                let mut reset = false;
                if args.len() == 3 {
                    let flag = |i: usize, what: &str| match &args[i] {
                        Value::Bool(b) => Ok(*b),
                        _ => Err(format!(
                            "call func {} error: {what} should be boolean",
                            self.name
                        )),
                    };
                    let on_begin = flag(1, "onBegin")?;
                    reset = flag(2, "onReset")?;
                    if !*begun {
                        *sum = 0.0;
                        *count = 0;
                        *min = None;
                        *max = None;
                        *begun = on_begin;
                    }
                    valid = valid && *begun;
                }
                if reset {
                    *begun = false;
                }
                if valid {
                    match kind {
                        AKind::AccCount => {
                            if !arg0.is_null() {
                                *count += 1;
                            }
                        }
                        AKind::AccSum => {
                            if let Some(x) = number(self.name, arg0)? {
                                *sum += x;
                            }
                        }
                        _ => {
                            let Some(x) = number(self.name, arg0)? else {
                                return Err(format!(
                                    "call func {} error: the value should be number",
                                    self.name
                                ));
                            };
                            *sum += x;
                            *count += 1;
                            *min = Some(min.map_or(x, |m| m.min(x)));
                            *max = Some(max.map_or(x, |m| m.max(x)));
                        }
                    }
                }
                Ok(match kind {
                    AKind::AccCount => Value::Int(*count),
                    AKind::AccSum => Value::Float(*sum),
                    AKind::AccMin => Value::Float(min.unwrap_or(0.0)),
                    AKind::AccMax => Value::Float(max.unwrap_or(0.0)),
                    _ => Value::Float(if *count > 0 {
                        *sum / *count as f64
                    } else {
                        0.0
                    }),
                })
            }
            _ => Ok(Value::Null),
        }
    }
}

/// State of one `changed_cols(prefix, ignoreNull, cols...)` select field:
/// last value per column name.
#[derive(Debug, Default)]
pub(crate) struct ChangedColsState {
    pub last: AHashMap<std::sync::Arc<str>, Value>,
}

impl ChangedColsState {
    /// Returns `(name, value)` pairs that changed since the previous row.
    pub fn step(
        &mut self,
        ignore_null: bool,
        cols: impl Iterator<Item = (std::sync::Arc<str>, Value)>,
        out: &mut Vec<(std::sync::Arc<str>, Value)>,
    ) {
        for (name, v) in cols {
            if ignore_null && v.is_null() {
                continue;
            }
            let changed = match self.last.get(&name) {
                Some(last) => !strict_eq(last, &v),
                None => !v.is_null(),
            };
            if changed {
                self.last.insert(name.clone(), v.clone());
                out.push((name, v));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tuple::Hits;

    fn ctx(hits: &Hits) -> Ctx<'_> {
        Ctx {
            tuple: None,
            analytic: &[],
            aggs: &[],
            win: None,
            agg_ctx: false,
            row_number: 1,
            hits,
            agg_hits: (0, 0),
            rule_id: "",
            host: None,
        }
    }

    fn def(kind: AKind, args: Vec<Value>) -> AnalyticDef {
        AnalyticDef {
            kind,
            name: "f",
            args: args.into_iter().map(CExpr::Lit).collect(),
            partition: vec![],
            when: None,
        }
    }

    #[test]
    fn lag_returns_previous_and_default() {
        let hits = Hits::default();
        let c = ctx(&hits);
        let mut st = AnalyticState::default();
        let mut outs = vec![];
        for v in [3, 6, 2] {
            let d = def(
                AKind::Lag,
                vec![Value::Int(v), Value::Int(1), Value::Int(0)],
            );
            outs.push(d.eval(&mut st, &c).unwrap());
        }
        assert_eq!(outs, vec![Value::Int(0), Value::Int(3), Value::Int(6)]);
    }

    #[test]
    fn acc_functions() {
        let hits = Hits::default();
        let c = ctx(&hits);
        let mut sum = AnalyticState::default();
        let mut avg = AnalyticState::default();
        let mut cnt = AnalyticState::default();
        let mut last = (Value::Null, Value::Null, Value::Null);
        for v in [3, 6, 2] {
            last = (
                def(AKind::AccSum, vec![Value::Int(v)])
                    .eval(&mut sum, &c)
                    .unwrap(),
                def(AKind::AccAvg, vec![Value::Int(v)])
                    .eval(&mut avg, &c)
                    .unwrap(),
                def(AKind::AccCount, vec![Value::Int(v)])
                    .eval(&mut cnt, &c)
                    .unwrap(),
            );
        }
        assert_eq!(
            last,
            (Value::Float(11.0), Value::Float(11.0 / 3.0), Value::Int(3))
        );
        let mut mn = AnalyticState::default();
        assert!(def(AKind::AccMin, vec![Value::str("x")])
            .eval(&mut mn, &c)
            .is_err());
    }

    #[test]
    fn changed_and_latest() {
        let hits = Hits::default();
        let c = ctx(&hits);
        let mut st = AnalyticState::default();
        let seq = [Value::Int(1), Value::Int(1), Value::Null, Value::Int(2)];
        let got: Vec<Value> = seq
            .iter()
            .map(|v| {
                def(AKind::ChangedCol, vec![Value::Bool(true), v.clone()])
                    .eval(&mut st, &c)
                    .unwrap()
            })
            .collect();
        assert_eq!(
            got,
            vec![Value::Int(1), Value::Null, Value::Null, Value::Int(2)]
        );
        let mut lt = AnalyticState::default();
        let got: Vec<Value> = [Value::Null, Value::Int(5), Value::Null]
            .iter()
            .map(|v| {
                def(AKind::Latest, vec![v.clone(), Value::Int(-1)])
                    .eval(&mut lt, &c)
                    .unwrap()
            })
            .collect();
        assert_eq!(got, vec![Value::Int(-1), Value::Int(5), Value::Int(5)]);
        let mut cc = ChangedColsState::default();
        let mut out = vec![];
        cc.step(
            true,
            vec![(std::sync::Arc::from("a"), Value::Int(1))].into_iter(),
            &mut out,
        );
        cc.step(
            true,
            vec![(std::sync::Arc::from("a"), Value::Int(1))].into_iter(),
            &mut out,
        );
        assert_eq!(out.len(), 1);
    }
}
