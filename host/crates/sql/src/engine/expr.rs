//! Compiled expressions: the tree the planner builds once per rule, with
//! field references resolved to sources and slot hints, functions resolved to
//! plain function pointers, LIKE patterns pre-compiled, aliases inlined and
//! analytic/aggregate calls replaced by slot reads. [`CExpr::eval`] evaluates
//! one against a [`Ctx`].

use std::sync::Arc;

use oort_core::{SlotHint, Value};
use oort_functions::ScalarFn;
use regex::Regex;

use super::ops::{binary, go_desc, go_fmt, like_regex};
use super::tuple::{Hits, Tuple, WinRange};
use crate::ast::BinaryOp;

pub(crate) type EvalResult = Result<Value, String>;

/// What an expression can see while it is evaluated.
pub(crate) struct Ctx<'a> {
    /// The current row (the first row of the group in an aggregated context).
    pub tuple: Option<&'a Tuple>,
    /// Analytic results of the current row.
    pub analytic: &'a [Value],
    /// Aggregate results of the current group.
    pub aggs: &'a [Value],
    pub win: Option<WinRange>,
    /// True when evaluating one row per group (aggregate projection, HAVING):
    /// `event_time()` is then the window's time.
    pub agg_ctx: bool,
    pub row_number: i64,
    pub hits: &'a Hits,
    /// `last_agg_hit_count()`, `last_agg_hit_time()` as they were when the
    /// current emission started.
    pub agg_hits: (i64, i64),
    pub rule_id: &'a str,
    pub host: Option<&'a dyn super::RuleHost>,
}

impl Ctx<'_> {
    /// `event_time()`: the row's time, or the window's in aggregated contexts.
    pub fn event_time(&self) -> Option<i64> {
        if self.agg_ctx {
            if let Some(w) = self.win {
                return Some(w.trigger);
            }
        }
        self.tuple.map(|t| t.ts).or(self.win.map(|w| w.trigger))
    }
}

/// A LIKE pattern: compiled once when it is a literal.
#[derive(Debug)]
pub(crate) enum LikePat {
    Static(Regex),
    Dynamic(Box<CExpr>),
}

#[derive(Debug)]
pub(crate) enum CExpr {
    Lit(Value),
    /// A column of one source.
    Col {
        src: usize,
        name: Arc<str>,
        hint: SlotHint,
    },
    /// An unqualified column in a multi-source query whose source is only
    /// known at run time (schemaless sources): first source that has it.
    ColAny {
        name: Arc<str>,
        srcs: Box<[usize]>,
        hint: SlotHint,
    },
    Field {
        expr: Box<CExpr>,
        name: Arc<str>,
    },
    Index {
        expr: Box<CExpr>,
        index: Box<CExpr>,
    },
    Slice {
        expr: Box<CExpr>,
        from: Option<Box<CExpr>>,
        to: Option<Box<CExpr>>,
    },
    Bin {
        op: BinaryOp,
        l: Box<CExpr>,
        r: Box<CExpr>,
    },
    Not(Box<CExpr>),
    Neg(Box<CExpr>),
    Between {
        expr: Box<CExpr>,
        low: Box<CExpr>,
        high: Box<CExpr>,
        negated: bool,
    },
    Like {
        expr: Box<CExpr>,
        pat: LikePat,
        negated: bool,
    },
    In {
        expr: Box<CExpr>,
        list: Vec<CExpr>,
        /// The single element is an expression yielding the set (an array).
        array_expr: bool,
        negated: bool,
    },
    IsNull {
        expr: Box<CExpr>,
        negated: bool,
    },
    Case {
        operand: Option<Box<CExpr>>,
        whens: Vec<(CExpr, CExpr)>,
        else_: Option<Box<CExpr>>,
    },
    Call {
        f: ScalarFn,
        args: Box<[CExpr]>,
    },
    /// Result of analytic call number `n` for the current row.
    Analytic(usize),
    /// Result of aggregate call number `n` for the current group.
    Agg(usize),
    WindowStart,
    WindowEnd,
    EventTime,
    RowNumber,
    Meta(Arc<str>),
    MetaAll,
    /// `last_hit_count()` read (and, with `update`, incremented) live.
    HitCount {
        update: bool,
    },
    HitTime {
        update: bool,
    },
    /// `last_agg_hit_*()`: the emission's snapshot, or live with `update`.
    AggHitCount {
        update: bool,
    },
    AggHitTime {
        update: bool,
    },
    RuleId,
    RuleStart,
    /// `get_keyed_state(key, type, default)`: the host's keyed state cast to
    /// `ty` (bigint, float, string, boolean, datetime; a column: at run time).
    KeyedState {
        key: Box<CExpr>,
        ty: Box<CExpr>,
        default: Box<CExpr>,
    },
    /// `delay(ms, value)`: holds the rule, then returns `value`.
    Delay {
        ms: Box<CExpr>,
        value: Box<CExpr>,
    },
    /// `*` as a function argument: the whole row as an object.
    RowObject,
}

/// Longest `delay()` (a longer one is an error: a rule must stay stoppable).
pub(crate) const MAX_DELAY_MS: i64 = 60_000;

/// The types `get_keyed_state` casts to.
pub(crate) const KEYED_STATE_TYPES: [&str; 5] =
    ["bigint", "float", "string", "boolean", "datetime"];

fn to_index(v: &Value) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Float(f) if f.fract() == 0.0 => Ok(*f as i64),
        other => Err(format!(
            "invalid index {}: an integer is required",
            go_desc(other)
        )),
    }
}

impl CExpr {
    #[cfg(test)]
    pub fn lit(v: Value) -> CExpr {
        CExpr::Lit(v)
    }

    /// Evaluates to a boolean condition: only `true` passes, nil is false.
    pub fn eval_cond(&self, ctx: &Ctx) -> Result<bool, String> {
        match self.eval(ctx)? {
            Value::Bool(b) => Ok(b),
            Value::Null => Ok(false),
            other => Err(format!(
                "invalid condition that returns non-bool value {}",
                go_desc(&other)
            )),
        }
    }

    pub fn eval(&self, ctx: &Ctx) -> EvalResult {
        match self {
            CExpr::Lit(v) => Ok(v.clone()),
            CExpr::Col { src, name, hint } => Ok(ctx
                .tuple
                .and_then(|t| t.part(*src))
                .and_then(|ev| ev.row.get_hinted(name, hint))
                .cloned()
                .unwrap_or(Value::Null)),
            CExpr::ColAny { name, srcs, hint } => {
                let Some(t) = ctx.tuple else {
                    return Ok(Value::Null);
                };
                for s in srcs.iter() {
                    if let Some(v) = t.part(*s).and_then(|ev| ev.row.get_hinted(name, hint)) {
                        return Ok(v.clone());
                    }
                }
                Ok(Value::Null)
            }
            CExpr::Field { expr, name } => match expr.eval(ctx)? {
                Value::Object(o) => Ok(o.get(name.as_ref()).cloned().unwrap_or(Value::Null)),
                Value::Null => Ok(Value::Null),
                other => Err(format!(
                    "the result {} is not a type of map[string]interface {{}}",
                    go_fmt(&other)
                )),
            },
            CExpr::Index { expr, index } => {
                let base = expr.eval(ctx)?;
                let idx = index.eval(ctx)?;
                match base {
                    Value::Null => Ok(Value::Null),
                    Value::Array(a) => {
                        let len = a.len() as i64;
                        let mut i = to_index(&idx)?;
                        if i < 0 {
                            if i.saturating_add(len) < 0 {
                                return Err(format!("out of index: {i} of {len}"));
                            }
                            i += len;
                        } else if i >= len {
                            return Err(format!("out of index: {i} of {len}"));
                        }
                        Ok(a.get(i as usize).cloned().unwrap_or(Value::Null))
                    }
                    Value::Object(o) => match &idx {
                        Value::Str(k) => Ok(o.get(k.as_ref()).cloned().unwrap_or(Value::Null)),
                        other => Err(format!("invalid index {} for an object", go_desc(other))),
                    },
                    other => Err(format!(
                        "invalid operation {} [] {}",
                        go_desc(&other),
                        go_desc(&idx)
                    )),
                }
            }
            CExpr::Slice { expr, from, to } => {
                let base = expr.eval(ctx)?;
                let start = match from {
                    Some(e) => Some(to_index(&e.eval(ctx)?)?),
                    None => None,
                };
                let end = match to {
                    Some(e) => Some(to_index(&e.eval(ctx)?)?),
                    None => None,
                };
                match base {
                    Value::Null => Ok(Value::Null),
                    Value::Array(a) => slice(&a, start, end).map(|v| Value::Array(Arc::new(v))),
                    other => Err(format!("invalid operation {} [:]", go_desc(&other))),
                }
            }
            CExpr::Bin { op, l, r } => {
                let lv = l.eval(ctx)?;
                match op {
                    BinaryOp::And if matches!(lv, Value::Bool(false)) => {
                        return Ok(Value::Bool(false))
                    }
                    BinaryOp::Or if matches!(lv, Value::Bool(true)) => {
                        return Ok(Value::Bool(true))
                    }
                    _ => {}
                }
                let rv = r.eval(ctx)?;
                binary(*op, &lv, &rv)
            }
            CExpr::Not(e) => match e.eval(ctx)? {
                Value::Bool(b) => Ok(Value::Bool(!b)),
                Value::Null => Ok(Value::Null),
                other => Err(format!(
                    "NOT operator expects a bool, but found {}",
                    go_desc(&other)
                )),
            },
            CExpr::Neg(e) => match e.eval(ctx)? {
                Value::Int(i) => Ok(Value::Int(i.wrapping_neg())),
                Value::Float(f) => Ok(Value::Float(-f)),
                Value::Null => Ok(Value::Null),
                other => Err(format!("invalid operation -{}", go_desc(&other))),
            },
            CExpr::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let v = expr.eval(ctx)?;
                let lo = low.eval(ctx)?;
                let hi = high.eval(ctx)?;
                if v.is_null() {
                    return Ok(Value::Bool(false));
                }
                let a = binary(BinaryOp::GtEq, &v, &lo).map_err(|_| {
                    format!(
                        "between operator cannot compare {} and {}",
                        go_desc(&v),
                        go_desc(&lo)
                    )
                })?;
                let b = binary(BinaryOp::LtEq, &v, &hi).map_err(|_| {
                    format!(
                        "between operator cannot compare {} and {}",
                        go_desc(&v),
                        go_desc(&hi)
                    )
                })?;
                let r = a.is_true() && b.is_true();
                Ok(Value::Bool(r != *negated))
            }
            CExpr::Like { expr, pat, negated } => {
                let v = expr.eval(ctx)?;
                let Value::Str(s) = &v else {
                    return Err(format!(
                        "LIKE operator left operand expects string, but found {}",
                        go_fmt(&v)
                    ));
                };
                let m = match pat {
                    LikePat::Static(re) => re.is_match(s),
                    LikePat::Dynamic(e) => match e.eval(ctx)? {
                        Value::Str(p) => like_regex(&p)?.is_match(s),
                        other => {
                            return Err(format!(
                                "invalid LIKE pattern, must be a string but got {}",
                                go_fmt(&other)
                            ))
                        }
                    },
                };
                Ok(Value::Bool(m != *negated))
            }
            CExpr::In {
                expr,
                list,
                array_expr,
                negated,
            } => {
                let v = expr.eval(ctx)?;
                let check = |x: &Value| -> Result<bool, String> {
                    match binary(BinaryOp::Eq, &v, x) {
                        Err(e) => Err(format!("evaluate in expression error: {e}")),
                        Ok(r) => Ok(r.is_true()),
                    }
                };
                if *array_expr {
                    let set = match list.first() {
                        Some(e) => e.eval(ctx)?,
                        None => Value::Null,
                    };
                    if set.is_null() {
                        return Ok(Value::Bool(*negated));
                    }
                    if v.is_null() {
                        return Ok(Value::Bool(false));
                    }
                    match &set {
                        Value::Array(a) => {
                            for x in a.iter() {
                                if check(x)? {
                                    return Ok(Value::Bool(!*negated));
                                }
                            }
                        }
                        other => {
                            if check(other)? {
                                return Ok(Value::Bool(!*negated));
                            }
                        }
                    }
                    return Ok(Value::Bool(*negated));
                }
                if list.is_empty() {
                    return Ok(Value::Bool(*negated));
                }
                if v.is_null() {
                    return Ok(Value::Bool(false));
                }
                for e in list {
                    if check(&e.eval(ctx)?)? {
                        return Ok(Value::Bool(!*negated));
                    }
                }
                Ok(Value::Bool(*negated))
            }
            CExpr::IsNull { expr, negated } => {
                Ok(Value::Bool(expr.eval(ctx)?.is_null() != *negated))
            }
            CExpr::Case {
                operand,
                whens,
                else_,
            } => {
                if let Some(op) = operand {
                    let ov = op.eval(ctx)?;
                    for (w, then) in whens {
                        let wv = w.eval(ctx)?;
                        match binary(BinaryOp::Eq, &ov, &wv) {
                            Err(e) => return Err(format!("evaluate case expression error: {e}")),
                            Ok(Value::Bool(true)) => return then.eval(ctx),
                            Ok(_) => {}
                        }
                    }
                } else {
                    for (w, then) in whens {
                        match w.eval(ctx) {
                            Err(e) => return Err(format!("evaluate case expression error: {e}")),
                            Ok(Value::Bool(true)) => return then.eval(ctx),
                            Ok(_) => {}
                        }
                    }
                }
                match else_ {
                    Some(e) => e.eval(ctx),
                    None => Ok(Value::Null),
                }
            }
            CExpr::Call { f, args } => {
                if args.len() <= 4 {
                    let mut buf: [Value; 4] = Default::default();
                    for (slot, a) in buf.iter_mut().zip(args.iter()) {
                        *slot = a.eval(ctx)?;
                    }
                    f(&buf[..args.len()]).map_err(|e| e.to_string())
                } else {
                    let vals = args
                        .iter()
                        .map(|a| a.eval(ctx))
                        .collect::<Result<Vec<_>, _>>()?;
                    f(&vals).map_err(|e| e.to_string())
                }
            }
            CExpr::Analytic(i) => Ok(ctx.analytic.get(*i).cloned().unwrap_or(Value::Null)),
            CExpr::Agg(i) => Ok(ctx.aggs.get(*i).cloned().unwrap_or(Value::Null)),
            CExpr::WindowStart => Ok(ctx.win.map(|w| Value::Int(w.start)).unwrap_or(Value::Null)),
            CExpr::WindowEnd => Ok(ctx.win.map(|w| Value::Int(w.end)).unwrap_or(Value::Null)),
            CExpr::EventTime => Ok(ctx.event_time().map(Value::Int).unwrap_or(Value::Null)),
            CExpr::RowNumber => Ok(Value::Int(ctx.row_number)),
            CExpr::Meta(key) => Ok(ctx
                .tuple
                .and_then(|t| t.meta())
                .and_then(|m| m.get(key.as_ref()))
                .cloned()
                .unwrap_or(Value::Null)),
            CExpr::MetaAll => Ok(ctx
                .tuple
                .and_then(|t| t.meta())
                .map(|m| Value::Object(Arc::new(m.to_map())))
                .unwrap_or(Value::Null)),
            CExpr::HitCount { update } => {
                let v = ctx.hits.count.get();
                if *update {
                    ctx.hits.count.set(v + 1);
                }
                Ok(Value::Int(v))
            }
            CExpr::HitTime { update } => {
                let v = ctx.hits.time.get();
                if *update {
                    if let Some(t) = ctx.event_time() {
                        ctx.hits.time.set(t);
                    }
                }
                Ok(Value::Int(v))
            }
            CExpr::AggHitCount { update } => {
                if *update {
                    let v = ctx.hits.agg_count.get();
                    ctx.hits.agg_count.set(v + 1);
                    Ok(Value::Int(v))
                } else {
                    Ok(Value::Int(ctx.agg_hits.0))
                }
            }
            CExpr::AggHitTime { update } => {
                if *update {
                    let v = ctx.hits.agg_time.get();
                    if let Some(t) = ctx.event_time() {
                        ctx.hits.agg_time.set(t);
                    }
                    Ok(Value::Int(v))
                } else {
                    Ok(Value::Int(ctx.agg_hits.1))
                }
            }
            CExpr::RuleId => Ok(Value::str(ctx.rule_id)),
            CExpr::RuleStart => Ok(Value::Int(ctx.hits.rule_start)),
            CExpr::KeyedState { key, ty, default } => {
                let key = match key.eval(ctx)? {
                    Value::Str(k) => k,
                    other => return Err(format!("key {} is not a string", go_desc(&other))),
                };
                let ty = match ty.eval(ctx)? {
                    Value::Str(t) if KEYED_STATE_TYPES.contains(&&*t) => t,
                    other => {
                        return Err(format!(
                            "expect one of following value for the 2nd parameter: bigint, float, string, boolean, datetime; got {}",
                            go_desc(&other)
                        ))
                    }
                };
                let found = match ctx.host {
                    Some(h) => h.keyed_state(&key)?,
                    None => None,
                };
                match found {
                    Some(v) => oort_functions::cast_value(&v, &ty).map_err(|e| e.to_string()),
                    None => default.eval(ctx),
                }
            }
            CExpr::Delay { ms, value } => {
                let ms = match ms.eval(ctx)? {
                    Value::Null => return Ok(Value::Null),
                    Value::Int(i) => i,
                    Value::Float(f) if f.fract() == 0.0 => f as i64,
                    other => {
                        return Err(format!(
                            "delay: {} is not an integer number of milliseconds",
                            go_desc(&other)
                        ))
                    }
                };
                let v = value.eval(ctx)?;
                if v.is_null() {
                    return Ok(Value::Null);
                }
                if ms > MAX_DELAY_MS {
                    return Err(format!(
                        "delay: {ms} ms is longer than the longest delay, {MAX_DELAY_MS} ms"
                    ));
                }
                // A negative delay does not wait (Go's time.Sleep).
                let ms = ms.max(0).unsigned_abs();
                match ctx.host {
                    Some(h) => h.sleep(ms),
                    None => std::thread::sleep(std::time::Duration::from_millis(ms)),
                }
                Ok(v)
            }
            CExpr::RowObject => Ok(ctx.tuple.map(|t| t.to_object()).unwrap_or(Value::Null)),
        }
    }
}

/// `arr[from:to]` with eKuiper's bounds rules (end exclusive, negative from
/// the end, either bound optional).
fn slice(a: &[Value], start: Option<i64>, end: Option<i64>) -> Result<Vec<Value>, String> {
    let len = a.len() as i64;
    let mut s = start.unwrap_or(0);
    if s < 0 {
        if s.saturating_add(len) < 0 {
            return Err(format!("out of index: {s} of {len}"));
        }
        s += len;
    } else if s >= len && !(s == 0 && len == 0) {
        return Err(format!("start value is out of index: {s} of {len}"));
    }
    let e = match end {
        None => len,
        Some(e) if e < 0 => {
            if e.saturating_add(len) < 0 {
                return Err(format!("out of index: {e} of {len}"));
            }
            e + len
        }
        Some(e) if e > len => return Err(format!("end value is out of index: {e} of {len}")),
        Some(e) => e,
    };
    if end.is_some() && s >= e {
        return Err(format!(
            "start cannot be greater than end. start:{s}  end:{e}"
        ));
    }
    let (s, e) = (s.max(0) as usize, e.max(0) as usize);
    Ok(a.get(s..e.max(s)).map(|x| x.to_vec()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oort_core::{Event, Row, Schema};

    fn ctx_with<'a>(t: Option<&'a Tuple>, hits: &'a Hits) -> Ctx<'a> {
        Ctx {
            tuple: t,
            analytic: &[],
            aggs: &[],
            win: None,
            agg_ctx: false,
            row_number: 1,
            hits,
            agg_hits: (0, 0),
            rule_id: "r",
            host: None,
        }
    }

    fn tuple() -> Tuple {
        let arr = Value::Array(Arc::new((1..=5).map(Value::Int).collect()));
        Tuple::one(
            0,
            Arc::new(Event {
                row: Row::new(
                    Arc::new(Schema::from_strs(&["arr", "x", "s"])),
                    vec![arr, Value::Int(1), Value::str("abc")],
                ),
                meta: None,
                seq: 0,
                ts: 42,
            }),
        )
    }

    fn col(n: &str) -> CExpr {
        CExpr::Col {
            src: 0,
            name: Arc::from(n),
            hint: SlotHint::default(),
        }
    }

    fn b(e: CExpr) -> Box<CExpr> {
        Box::new(e)
    }

    #[test]
    fn index_and_slices() {
        let t = tuple();
        let hits = Hits::default();
        let c = ctx_with(Some(&t), &hits);
        let idx = CExpr::Index {
            expr: b(col("arr")),
            index: b(CExpr::lit(Value::Int(-1))),
        };
        assert_eq!(idx.eval(&c), Ok(Value::Int(5)));
        let out = CExpr::Index {
            expr: b(col("arr")),
            index: b(CExpr::lit(Value::Int(5))),
        };
        assert_eq!(out.eval(&c), Err("out of index: 5 of 5".to_string()));
        let sl = CExpr::Slice {
            expr: b(col("arr")),
            from: Some(b(col("x"))),
            to: Some(b(CExpr::lit(Value::Int(3)))),
        };
        assert_eq!(
            sl.eval(&c),
            Ok(Value::Array(Arc::new(vec![Value::Int(2), Value::Int(3)])))
        );
        let open = CExpr::Slice {
            expr: b(col("arr")),
            from: None,
            to: None,
        };
        assert_eq!(
            open.eval(&c)
                .map(|v| matches!(v, Value::Array(a) if a.len() == 5)),
            Ok(true)
        );
        let bad = CExpr::Slice {
            expr: b(col("arr")),
            from: Some(b(CExpr::lit(Value::Int(3)))),
            to: Some(b(CExpr::lit(Value::Int(2)))),
        };
        assert!(bad.eval(&c).is_err());
    }

    #[test]
    fn logic_in_between_like_case() {
        let t = tuple();
        let hits = Hits::default();
        let c = ctx_with(Some(&t), &hits);
        let and = CExpr::Bin {
            op: BinaryOp::And,
            l: b(CExpr::lit(Value::Bool(false))),
            // Would error if evaluated.
            r: b(CExpr::Bin {
                op: BinaryOp::Gt,
                l: b(col("s")),
                r: b(CExpr::lit(Value::Int(1))),
            }),
        };
        assert_eq!(and.eval(&c), Ok(Value::Bool(false)));
        let inl = CExpr::In {
            expr: b(col("x")),
            list: vec![CExpr::lit(Value::Int(3)), CExpr::lit(Value::Int(1))],
            array_expr: false,
            negated: false,
        };
        assert_eq!(inl.eval(&c), Ok(Value::Bool(true)));
        let ina = CExpr::In {
            expr: b(CExpr::lit(Value::Int(4))),
            list: vec![col("arr")],
            array_expr: true,
            negated: true,
        };
        assert_eq!(ina.eval(&c), Ok(Value::Bool(false)));
        let btw = CExpr::Between {
            expr: b(col("x")),
            low: b(CExpr::lit(Value::Int(0))),
            high: b(CExpr::lit(Value::Float(1.0))),
            negated: false,
        };
        assert_eq!(btw.eval(&c), Ok(Value::Bool(true)));
        let like = CExpr::Like {
            expr: b(col("s")),
            pat: LikePat::Static(like_regex("a_c").unwrap()),
            negated: false,
        };
        assert_eq!(like.eval(&c), Ok(Value::Bool(true)));
        let case = CExpr::Case {
            operand: Some(b(col("x"))),
            whens: vec![
                (CExpr::lit(Value::Int(2)), CExpr::lit(Value::str("two"))),
                (CExpr::lit(Value::Int(1)), CExpr::lit(Value::str("one"))),
            ],
            else_: None,
        };
        assert_eq!(case.eval(&c), Ok(Value::str("one")));
        let missing = CExpr::Bin {
            op: BinaryOp::Add,
            l: b(col("nope")),
            r: b(CExpr::lit(Value::Int(1))),
        };
        assert_eq!(missing.eval(&c), Ok(Value::Null));
    }

    #[test]
    fn hit_counters_update_only_when_asked() {
        let t = tuple();
        let hits = Hits::default();
        let c = ctx_with(Some(&t), &hits);
        assert_eq!(CExpr::HitCount { update: true }.eval(&c), Ok(Value::Int(0)));
        assert_eq!(
            CExpr::HitCount { update: false }.eval(&c),
            Ok(Value::Int(1))
        );
        assert_eq!(CExpr::HitTime { update: true }.eval(&c), Ok(Value::Int(0)));
        assert_eq!(hits.time.get(), 42);
    }
}
