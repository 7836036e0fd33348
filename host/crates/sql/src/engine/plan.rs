//! The planner: resolves a SELECT against the catalog and compiles it once
//! into an immutable [`Plan`]: sources, compiled expressions (aliases
//! inlined, columns bound to sources and slot hints, functions resolved),
//! analytic and aggregate call tables, the window spec, where WHERE runs,
//! the projection and eKuiper-style operator names.

use std::sync::Arc;

use oort_core::{Schema, SlotHint, Value};
use oort_functions::AggregateFunc;

use super::analytic::{AKind, AnalyticDef};
use super::display::ek_string;
use super::expr::{CExpr, LikePat};
use super::ops::like_regex;
use super::validate::Validator;
use super::{Catalog, QueryOptions, SourceRef};
use crate::ast::{
    BinaryOp, Column, Expr, JoinKind, Literal, Select, SelectItem, StreamDef, StreamKind, TimeUnit,
    UnaryOp, WindowKind,
};
use crate::SqlError;

/// Default scan-table size for `file` tables without RETAIN_SIZE.
pub(crate) const MAX_RETAIN_SIZE: usize = 9999;
/// Largest expanded expression (aliases inlined), in nodes.
const MAX_EXPANDED_NODES: usize = 100_000;

/// A window as the engine runs it (durations in ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WinKind {
    Tumbling { size: i64 },
    Hopping { size: i64, hop: i64 },
    Sliding { size: i64, delay: i64 },
    Session { max: i64, timeout: i64 },
    Count { size: usize, every: usize },
}

#[derive(Debug)]
pub(crate) struct WindowSpec {
    pub kind: WinKind,
    /// Processing-time ticks are aligned to multiples of this (ms).
    pub align_ms: i64,
    /// Day windows align to local midnight.
    pub day_unit: bool,
    /// `FILTER (WHERE ...)` when it runs as its own pre-window op.
    pub filter: Option<CExpr>,
    /// `OVER (WHEN ...)` of sliding windows.
    pub trigger: Option<CExpr>,
    /// Which `last_hit_*` counters a matching trigger updates.
    pub trigger_updates: (bool, bool),
}

#[derive(Debug)]
pub(crate) struct JoinSpec {
    pub kind: JoinKind,
    /// The right side's source index.
    pub src: usize,
    pub on: Option<CExpr>,
}

#[derive(Debug)]
pub(crate) struct AggDef {
    pub func: &'static AggregateFunc,
    pub args: Vec<CExpr>,
    pub consts: Vec<Value>,
    pub filter: Option<CExpr>,
    /// `deduplicate`: the whole row is appended to the arguments.
    pub with_row: bool,
}

#[derive(Debug)]
pub(crate) enum ProjItem {
    /// `*` [EXCEPT] [REPLACE] over every source.
    Wildcard {
        except: Vec<String>,
        replace: Vec<(Arc<str>, CExpr, String)>,
    },
    /// `s.*`
    SrcWildcard(usize),
    Expr {
        name: Arc<str>,
        expr: CExpr,
        invisible: bool,
        /// Error prefix: `expr: <text>` or `alias: a expr: <text>`.
        label: String,
    },
    ChangedCols {
        /// Index into the query's changed_cols states.
        id: usize,
        prefix: CExpr,
        ignore_null: CExpr,
        cols: Vec<(Arc<str>, CExpr)>,
        /// `*`: every column of the row.
        star: bool,
        label: String,
    },
    Unnest {
        name: Arc<str>,
        expr: CExpr,
        label: String,
    },
}

#[derive(Debug)]
pub(crate) struct Projection {
    pub items: Vec<ProjItem>,
    /// Output names when they are all known at plan time.
    pub static_schema: Option<Arc<Schema>>,
    /// `SELECT *` alone over one source: the input row is the output.
    pub passthrough: bool,
    pub has_unnest: bool,
    pub changed_cols: usize,
}

/// Per-source run-time settings.
#[derive(Debug)]
pub(crate) struct SrcRuntime {
    pub kind: StreamKind,
    /// Scan-table rows kept.
    pub retain: usize,
    pub validator: Option<Validator>,
    /// Event-time field (`TIMESTAMP`).
    pub timestamp: Option<Arc<str>>,
}

/// Indices of each operator in [`Ops::names`] (and the metrics vector).
#[derive(Debug, Default)]
pub(crate) struct Ops {
    pub names: Vec<String>,
    pub analytic: Option<usize>,
    pub pre_filter: Option<usize>,
    pub win_filter: Option<usize>,
    pub window: Option<usize>,
    pub join: Option<usize>,
    pub post_filter: Option<usize>,
    pub aggregate: Option<usize>,
    pub having: Option<usize>,
    pub window_func: Option<usize>,
    pub order: Option<usize>,
    pub project: usize,
    pub projectset: Option<usize>,
}

/// A compiled query, shared by every running instance of the rule.
#[derive(Debug)]
pub(crate) struct Plan {
    pub sources: Vec<SourceRef>,
    pub srcs: Vec<SrcRuntime>,
    pub opts: QueryOptions,
    pub analytic: Vec<AnalyticDef>,
    pub aggs: Vec<AggDef>,
    /// WHERE evaluated per row before any window (or the only WHERE of a
    /// window-less rule, after its table joins).
    pub pre_filter: Option<CExpr>,
    pub pre_filter_updates: (bool, bool),
    /// WHERE evaluated on a window's content.
    pub post_filter: Option<CExpr>,
    pub post_filter_has_agg: bool,
    pub window: Option<WindowSpec>,
    pub joins: Vec<JoinSpec>,
    pub dims: Vec<CExpr>,
    pub having: Option<CExpr>,
    pub having_updates: (bool, bool),
    pub order: Vec<(CExpr, bool)>,
    pub limit: Option<usize>,
    pub proj: Projection,
    /// SELECT holds aggregate calls: one output row per group.
    pub is_agg: bool,
    /// Windows keep one accumulator set per group instead of the rows.
    pub incremental: bool,
    pub ops: Ops,
}

/// Where an expression sits; decides what it may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Select,
    Where,
    Having,
    Order,
    Dim,
    WinFilter,
    Trigger,
    On,
    AggArg,
    AnalyticArg,
}

struct SrcInfo {
    name: String,
    alias: Option<String>,
    def: StreamDef,
}

impl SrcInfo {
    fn typed(&self) -> Option<&[Column]> {
        (!self.def.columns.is_empty()).then_some(self.def.columns.as_slice())
    }
}

fn plan_err(msg: impl Into<String>) -> SqlError {
    SqlError::plan(msg)
}

/// Functions the engine implements itself (not looked up in the library).
fn engine_fn(name: &str) -> bool {
    matches!(
        name,
        "window_start"
            | "window_end"
            | "event_time"
            | "window_trigger"
            | "row_number"
            | "meta"
            | "mqtt"
            | "rule_id"
            | "last_hit_count"
            | "last_hit_time"
            | "last_agg_hit_count"
            | "last_agg_hit_time"
            | "changed_cols"
            | "unnest"
    ) || AKind::from_name(name).is_some()
}

fn is_agg_name(name: &str) -> bool {
    !engine_fn(name) && oort_functions::is_aggregate(name)
}

/// Visits every node of an expression (pre-order).
fn walk<'e>(e: &'e Expr, f: &mut dyn FnMut(&'e Expr)) {
    f(e);
    match e {
        Expr::Literal(_) | Expr::Column { .. } | Expr::Wildcard => {}
        Expr::Field { expr, .. } | Expr::Unary { expr, .. } | Expr::IsNull { expr, .. } => {
            walk(expr, f)
        }
        Expr::Index { expr, index } => {
            walk(expr, f);
            walk(index, f);
        }
        Expr::Slice { expr, from, to } => {
            walk(expr, f);
            if let Some(x) = from {
                walk(x, f);
            }
            if let Some(x) = to {
                walk(x, f);
            }
        }
        Expr::Binary { left, right, .. } => {
            walk(left, f);
            walk(right, f);
        }
        Expr::Between {
            expr, low, high, ..
        } => {
            walk(expr, f);
            walk(low, f);
            walk(high, f);
        }
        Expr::Like { expr, pattern, .. } => {
            walk(expr, f);
            walk(pattern, f);
        }
        Expr::InList { expr, list, .. } => {
            walk(expr, f);
            for x in list {
                walk(x, f);
            }
        }
        Expr::Case {
            operand,
            whens,
            else_,
        } => {
            if let Some(o) = operand {
                walk(o, f);
            }
            for (w, t) in whens {
                walk(w, f);
                walk(t, f);
            }
            if let Some(x) = else_ {
                walk(x, f);
            }
        }
        Expr::Call {
            args, over, filter, ..
        } => {
            for a in args {
                walk(a, f);
            }
            if let Some(o) = over {
                for p in &o.partition_by {
                    walk(p, f);
                }
                if let Some(w) = &o.when {
                    walk(w, f);
                }
            }
            if let Some(x) = filter {
                walk(x, f);
            }
        }
    }
}

fn calls_named(e: &Expr, name: &str) -> bool {
    let mut found = false;
    walk(e, &mut |x| {
        if matches!(x, Expr::Call { name: n, .. } if n == name) {
            found = true;
        }
    });
    found
}

fn has_aggregate(e: &Expr) -> bool {
    let mut found = false;
    walk(e, &mut |x| {
        if matches!(x, Expr::Call { name, .. } if is_agg_name(name)) {
            found = true;
        }
    });
    found
}

/// Output name of an unaliased select expression.
fn default_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Column { name, .. } | Expr::Field { name, .. } | Expr::Call { name, .. } => {
            Some(name.clone())
        }
        Expr::Index { expr, .. } | Expr::Slice { expr, .. } => default_name(expr),
        _ => None,
    }
}

/// Inlines SELECT aliases into expressions.
struct Aliases<'a> {
    names: Vec<&'a str>,
    exprs: Vec<&'a Expr>,
}

impl<'a> Aliases<'a> {
    fn find(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| *n == name)
    }

    /// `stack` holds the aliases being expanded (innermost last); a reference
    /// to the innermost one is the column of the same name.
    fn expand(
        &self,
        e: &Expr,
        stack: &mut Vec<usize>,
        budget: &mut usize,
    ) -> Result<Expr, SqlError> {
        *budget = budget.saturating_sub(1);
        if *budget == 0 {
            return Err(plan_err("expression too large after alias expansion"));
        }
        let bx = |x: &Expr, s: &mut Vec<usize>, b: &mut usize| -> Result<Box<Expr>, SqlError> {
            Ok(Box::new(self.expand(x, s, b)?))
        };
        Ok(match e {
            Expr::Column {
                qualifier: None,
                name,
            } => match self.find(name) {
                Some(i) if stack.last() == Some(&i) => e.clone(),
                Some(i) if stack.contains(&i) => {
                    return Err(plan_err("select fields have cycled alias"))
                }
                Some(i) => {
                    stack.push(i);
                    let r = self.expand(self.exprs[i], stack, budget);
                    stack.pop();
                    r?
                }
                None => e.clone(),
            },
            Expr::Literal(_) | Expr::Column { .. } | Expr::Wildcard => e.clone(),
            Expr::Field { expr, name } => Expr::Field {
                expr: bx(expr, stack, budget)?,
                name: name.clone(),
            },
            Expr::Index { expr, index } => Expr::Index {
                expr: bx(expr, stack, budget)?,
                index: bx(index, stack, budget)?,
            },
            Expr::Slice { expr, from, to } => Expr::Slice {
                expr: bx(expr, stack, budget)?,
                from: from.as_deref().map(|x| bx(x, stack, budget)).transpose()?,
                to: to.as_deref().map(|x| bx(x, stack, budget)).transpose()?,
            },
            Expr::Binary { op, left, right } => Expr::Binary {
                op: *op,
                left: bx(left, stack, budget)?,
                right: bx(right, stack, budget)?,
            },
            Expr::Unary { op, expr } => Expr::Unary {
                op: *op,
                expr: bx(expr, stack, budget)?,
            },
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => Expr::Between {
                expr: bx(expr, stack, budget)?,
                low: bx(low, stack, budget)?,
                high: bx(high, stack, budget)?,
                negated: *negated,
            },
            Expr::Like {
                expr,
                pattern,
                negated,
            } => Expr::Like {
                expr: bx(expr, stack, budget)?,
                pattern: bx(pattern, stack, budget)?,
                negated: *negated,
            },
            Expr::InList {
                expr,
                list,
                negated,
            } => Expr::InList {
                expr: bx(expr, stack, budget)?,
                list: list
                    .iter()
                    .map(|x| self.expand(x, stack, budget))
                    .collect::<Result<_, _>>()?,
                negated: *negated,
            },
            Expr::IsNull { expr, negated } => Expr::IsNull {
                expr: bx(expr, stack, budget)?,
                negated: *negated,
            },
            Expr::Case {
                operand,
                whens,
                else_,
            } => Expr::Case {
                operand: operand
                    .as_deref()
                    .map(|x| bx(x, stack, budget))
                    .transpose()?,
                whens: whens
                    .iter()
                    .map(|(w, t)| {
                        Ok((
                            self.expand(w, stack, budget)?,
                            self.expand(t, stack, budget)?,
                        ))
                    })
                    .collect::<Result<_, SqlError>>()?,
                else_: else_.as_deref().map(|x| bx(x, stack, budget)).transpose()?,
            },
            Expr::Call {
                name,
                args,
                over,
                filter,
            } => Expr::Call {
                name: name.clone(),
                args: args
                    .iter()
                    .map(|x| self.expand(x, stack, budget))
                    .collect::<Result<_, _>>()?,
                over: match over {
                    Some(o) => Some(crate::ast::Over {
                        partition_by: o
                            .partition_by
                            .iter()
                            .map(|x| self.expand(x, stack, budget))
                            .collect::<Result<_, _>>()?,
                        when: o
                            .when
                            .as_deref()
                            .map(|x| bx(x, stack, budget))
                            .transpose()?,
                    }),
                    None => None,
                },
                filter: filter
                    .as_deref()
                    .map(|x| bx(x, stack, budget))
                    .transpose()?,
            },
        })
    }
}

struct Compiler<'a> {
    srcs: &'a [SrcInfo],
    analytic: Vec<(Expr, AnalyticDef)>,
    aggs: Vec<(Expr, AggDef)>,
    /// Columns used per source (for strict validation).
    used: Vec<Vec<String>>,
    /// `last_hit_count` / `last_hit_time` read by WHERE: read from a
    /// snapshot taken before the filter.
    hit_snap: (bool, bool),
    /// `last_agg_hit_count` / `last_agg_hit_time` used in HAVING.
    agg_hit_in_having: (bool, bool),
    has_window: bool,
    uses_row_number: bool,
}

impl Compiler<'_> {
    fn src_by_name(&self, q: &str) -> Option<usize> {
        self.srcs
            .iter()
            .position(|s| s.alias.as_deref() == Some(q))
            .or_else(|| self.srcs.iter().position(|s| s.name == q))
    }

    fn col(&mut self, src: usize, name: &str) -> CExpr {
        let info = &self.srcs[src];
        let hint = info
            .typed()
            .and_then(|cols| cols.iter().position(|c| c.name == name))
            .map(SlotHint::new)
            .unwrap_or_default();
        if let Some(u) = self.used.get_mut(src) {
            if !u.iter().any(|n| n == name) {
                u.push(name.to_string());
            }
        }
        CExpr::Col {
            src,
            name: Arc::from(name),
            hint,
        }
    }

    fn column(&mut self, qualifier: Option<&str>, name: &str) -> Result<CExpr, SqlError> {
        if let Some(q) = qualifier {
            if let Some(src) = self.src_by_name(q) {
                return Ok(self.col(src, name));
            }
            // `a.b` where `a` is not a source: nested field of column `a`.
            let base = self.column(None, q)?;
            return Ok(CExpr::Field {
                expr: Box::new(base),
                name: Arc::from(name),
            });
        }
        if self.srcs.len() == 1 {
            if let Some(cols) = self.srcs[0].typed() {
                if !cols.iter().any(|c| c.name == name) {
                    return Err(plan_err(format!("unknown field {name}")));
                }
            }
            return Ok(self.col(0, name));
        }
        let typed: Vec<usize> = (0..self.srcs.len())
            .filter(|i| {
                self.srcs[*i]
                    .typed()
                    .is_some_and(|cols| cols.iter().any(|c| c.name == name))
            })
            .collect();
        match typed.as_slice() {
            [one] => return Ok(self.col(*one, name)),
            [_, _, ..] => return Err(plan_err(format!("ambiguous field {name}"))),
            [] => {}
        }
        let schemaless: Vec<usize> = (0..self.srcs.len())
            .filter(|i| self.srcs[*i].typed().is_none())
            .collect();
        match schemaless.as_slice() {
            [] => Err(plan_err(format!("unknown field {name}"))),
            [one] => Ok(self.col(*one, name)),
            many => Ok(CExpr::ColAny {
                name: Arc::from(name),
                srcs: many.to_vec().into_boxed_slice(),
                hint: SlotHint::default(),
            }),
        }
    }

    fn compile(&mut self, e: &Expr, place: Place) -> Result<CExpr, SqlError> {
        let b = |c: CExpr| Box::new(c);
        Ok(match e {
            Expr::Literal(l) => CExpr::Lit(lit_value(l)),
            Expr::Column { qualifier, name } => self.column(qualifier.as_deref(), name)?,
            Expr::Wildcard => CExpr::RowObject,
            Expr::Field { expr, name } => CExpr::Field {
                expr: b(self.compile(expr, place)?),
                name: Arc::from(name.as_str()),
            },
            Expr::Index { expr, index } => CExpr::Index {
                expr: b(self.compile(expr, place)?),
                index: b(self.compile(index, place)?),
            },
            Expr::Slice { expr, from, to } => CExpr::Slice {
                expr: b(self.compile(expr, place)?),
                from: from
                    .as_deref()
                    .map(|x| self.compile(x, place).map(b))
                    .transpose()?,
                to: to
                    .as_deref()
                    .map(|x| self.compile(x, place).map(b))
                    .transpose()?,
            },
            Expr::Binary { op, left, right } => CExpr::Bin {
                op: *op,
                l: b(self.compile(left, place)?),
                r: b(self.compile(right, place)?),
            },
            Expr::Unary { op, expr } => {
                let inner = self.compile(expr, place)?;
                match (op, &inner) {
                    (UnaryOp::Neg, CExpr::Lit(Value::Int(i))) => {
                        CExpr::Lit(Value::Int(i.wrapping_neg()))
                    }
                    (UnaryOp::Neg, CExpr::Lit(Value::Float(f))) => CExpr::Lit(Value::Float(-f)),
                    (UnaryOp::Neg, _) => CExpr::Neg(b(inner)),
                    (UnaryOp::Not, _) => CExpr::Not(b(inner)),
                }
            }
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => CExpr::Between {
                expr: b(self.compile(expr, place)?),
                low: b(self.compile(low, place)?),
                high: b(self.compile(high, place)?),
                negated: *negated,
            },
            Expr::Like {
                expr,
                pattern,
                negated,
            } => {
                let pat = match pattern.as_ref() {
                    Expr::Literal(Literal::Str(p)) => {
                        LikePat::Static(like_regex(p).map_err(plan_err)?)
                    }
                    other => LikePat::Dynamic(b(self.compile(other, place)?)),
                };
                CExpr::Like {
                    expr: b(self.compile(expr, place)?),
                    pat,
                    negated: *negated,
                }
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                let array_expr = list.len() == 1 && !matches!(list[0], Expr::Literal(_));
                CExpr::In {
                    expr: b(self.compile(expr, place)?),
                    list: list
                        .iter()
                        .map(|x| self.compile(x, place))
                        .collect::<Result<_, _>>()?,
                    array_expr,
                    negated: *negated,
                }
            }
            Expr::IsNull { expr, negated } => CExpr::IsNull {
                expr: b(self.compile(expr, place)?),
                negated: *negated,
            },
            Expr::Case {
                operand,
                whens,
                else_,
            } => CExpr::Case {
                operand: operand
                    .as_deref()
                    .map(|x| self.compile(x, place).map(b))
                    .transpose()?,
                whens: whens
                    .iter()
                    .map(|(w, t)| Ok((self.compile(w, place)?, self.compile(t, place)?)))
                    .collect::<Result<_, SqlError>>()?,
                else_: else_
                    .as_deref()
                    .map(|x| self.compile(x, place).map(b))
                    .transpose()?,
            },
            Expr::Call { .. } => self.call(e, place)?,
        })
    }

    fn call(&mut self, e: &Expr, place: Place) -> Result<CExpr, SqlError> {
        let Expr::Call {
            name,
            args,
            over,
            filter,
        } = e
        else {
            return Err(plan_err("internal: not a call"));
        };
        let name = name.as_str();
        let n = args.len();
        let no_args = |what: &str| -> Result<(), SqlError> {
            if n != 0 {
                return Err(plan_err(format!(
                    "validate function {what} error: Expect 0 arguments but found {n}."
                )));
            }
            Ok(())
        };
        if over.is_some() && AKind::from_name(name).is_none() {
            return Err(plan_err(format!("function {name} does not support OVER")));
        }
        if filter.is_some() && !is_agg_name(name) {
            return Err(plan_err(format!("function {name} does not support FILTER")));
        }
        match name {
            "window_start" => {
                no_args(name)?;
                return Ok(CExpr::WindowStart);
            }
            "window_end" => {
                no_args(name)?;
                return Ok(CExpr::WindowEnd);
            }
            "event_time" | "window_trigger" => {
                no_args(name)?;
                return Ok(CExpr::EventTime);
            }
            "row_number" => {
                no_args(name)?;
                self.uses_row_number = true;
                return Ok(CExpr::RowNumber);
            }
            "rule_id" => {
                no_args(name)?;
                return Ok(CExpr::RuleId);
            }
            "meta" | "mqtt" => {
                let [arg] = args.as_slice() else {
                    return Err(plan_err(format!(
                        "validate function {name} error: Expect 1 arguments but found {n}."
                    )));
                };
                return match arg {
                    Expr::Wildcard if name == "meta" => Ok(CExpr::MetaAll),
                    Expr::Column { name: key, .. } => {
                        let key = if name == "mqtt" {
                            key.to_ascii_lowercase()
                        } else {
                            key.clone()
                        };
                        Ok(CExpr::Meta(Arc::from(key.as_str())))
                    }
                    Expr::Literal(Literal::Str(key)) => Ok(CExpr::Meta(Arc::from(key.as_str()))),
                    _ => Err(plan_err(format!(
                        "validate function {name} error: Expect meta reference type but got {}",
                        ek_string(arg, None)
                    ))),
                };
            }
            "last_hit_count" | "last_hit_time" => {
                no_args(name)?;
                let count = name == "last_hit_count";
                let snap = if count {
                    self.hit_snap.0
                } else {
                    self.hit_snap.1
                };
                if snap {
                    let (kind, sname) = if count {
                        (AKind::HitCount, "last_hit_count")
                    } else {
                        (AKind::HitTime, "last_hit_time")
                    };
                    return Ok(self.analytic_slot(e, kind, sname, vec![], vec![], None));
                }
                let update = place == Place::Select;
                return Ok(if count {
                    CExpr::HitCount { update }
                } else {
                    CExpr::HitTime { update }
                });
            }
            "last_agg_hit_count" | "last_agg_hit_time" => {
                no_args(name)?;
                let count = name == "last_agg_hit_count";
                let in_having = if count {
                    self.agg_hit_in_having.0
                } else {
                    self.agg_hit_in_having.1
                };
                let update = place == Place::Select && !in_having;
                return Ok(if count {
                    CExpr::AggHitCount { update }
                } else {
                    CExpr::AggHitTime { update }
                });
            }
            "changed_cols" | "unnest" => {
                return Err(plan_err(format!(
                    "function {name} can only be used as a whole select field"
                )))
            }
            _ => {}
        }
        if let Some(kind) = AKind::from_name(name) {
            if matches!(place, Place::AggArg) {
                return Err(plan_err(format!(
                    "invalid argument for func {name}: analytic function is not allowed in an aggregate"
                )));
            }
            let (min, max) = kind.arity();
            if n < min || max.is_some_and(|m| n > m) {
                return Err(plan_err(match max {
                    Some(m) if m == min => {
                        format!("validate function {name} error: Expect {min} arguments but found {n}.")
                    }
                    Some(m) => format!(
                        "validate function {name} error: Expect {min} to {m} arguments but found {n}."
                    ),
                    None => format!(
                        "validate function {name} error: At least has {min} argument but found {n}."
                    ),
                }));
            }
            if kind == AKind::Lag {
                if let Some(Expr::Literal(Literal::Int(i))) = args.get(1) {
                    if *i < 0 {
                        return Err(plan_err(
                            "validate function lag error: the index should not be a nagtive integer",
                        ));
                    }
                }
            }
            let cargs = args
                .iter()
                .map(|a| self.compile(a, Place::AnalyticArg))
                .collect::<Result<Vec<_>, _>>()?;
            let (partition, when) = match over {
                Some(o) => (
                    o.partition_by
                        .iter()
                        .map(|p| self.compile(p, Place::AnalyticArg))
                        .collect::<Result<Vec<_>, _>>()?,
                    o.when
                        .as_deref()
                        .map(|w| self.compile(w, Place::AnalyticArg))
                        .transpose()?,
                ),
                None => (vec![], None),
            };
            let static_name = oort_static_name(name);
            return Ok(self.analytic_slot(e, kind, static_name, cargs, partition, when));
        }
        if let Some(func) = oort_functions::aggregate(name).filter(|_| !engine_fn(name)) {
            match place {
                Place::Where if !self.has_window => {
                    return Err(plan_err(format!(
                        "aggregate function {name} is not allowed in WHERE without a window"
                    )))
                }
                Place::Dim => {
                    return Err(plan_err(format!(
                        "Not allowed to call aggregate functions in GROUP BY clause: {}.",
                        ek_string(e, None)
                    )))
                }
                Place::AggArg => {
                    return Err(plan_err(format!(
                        "invalid argument for func {name}: aggregate argument is not allowed"
                    )))
                }
                Place::WinFilter | Place::Trigger | Place::On | Place::AnalyticArg => {
                    return Err(plan_err(format!(
                        "aggregate function {name} is not allowed here"
                    )))
                }
                _ => {}
            }
            oort_functions::check_arity(name, n).map_err(|e| plan_err(e.to_string()))?;
            if let Some(i) = self.aggs.iter().position(|(x, _)| x == e) {
                return Ok(CExpr::Agg(i));
            }
            let mut cargs = Vec::with_capacity(n);
            for a in args {
                cargs.push(match a {
                    Expr::Wildcard if func.name == "count" => CExpr::Lit(Value::Bool(true)),
                    other => self.compile(other, Place::AggArg)?,
                });
            }
            let consts = args
                .iter()
                .map(|a| match a {
                    Expr::Literal(l) => lit_value(l),
                    _ => Value::Null,
                })
                .collect::<Vec<_>>();
            // Constant parameters are validated once, here.
            (func.new)(&consts).map_err(|e| plan_err(e.to_string()))?;
            let cfilter = filter
                .as_deref()
                .map(|f| self.compile(f, Place::AggArg))
                .transpose()?;
            self.aggs.push((
                e.clone(),
                AggDef {
                    func,
                    args: cargs,
                    consts,
                    filter: cfilter,
                    with_row: oort_functions::needs_row(name),
                },
            ));
            return Ok(CExpr::Agg(self.aggs.len() - 1));
        }
        if let Some(f) = oort_functions::scalar(name) {
            oort_functions::check_arity(name, n).map_err(|e| plan_err(e.to_string()))?;
            let cargs = args
                .iter()
                .map(|a| self.compile(a, place))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(CExpr::Call {
                f: f.call,
                args: cargs.into_boxed_slice(),
            });
        }
        Err(plan_err(format!("function {name} not found")))
    }

    fn analytic_slot(
        &mut self,
        e: &Expr,
        kind: AKind,
        name: &'static str,
        args: Vec<CExpr>,
        partition: Vec<CExpr>,
        when: Option<CExpr>,
    ) -> CExpr {
        // Hit snapshots are one per counter, whatever the call looks like.
        let same = |x: &Expr, d: &AnalyticDef| match kind {
            AKind::HitCount | AKind::HitTime => d.kind == kind,
            _ => x == e,
        };
        if let Some(i) = self.analytic.iter().position(|(x, d)| same(x, d)) {
            return CExpr::Analytic(i);
        }
        self.analytic.push((
            e.clone(),
            AnalyticDef {
                kind,
                name,
                args,
                partition,
                when,
            },
        ));
        CExpr::Analytic(self.analytic.len() - 1)
    }
}

fn oort_static_name(name: &str) -> &'static str {
    match name {
        "lag" => "lag",
        "latest" => "latest",
        "changed_col" => "changed_col",
        "had_changed" => "had_changed",
        "acc_sum" => "acc_sum",
        "acc_min" => "acc_min",
        "acc_max" => "acc_max",
        "acc_count" => "acc_count",
        "acc_avg" => "acc_avg",
        _ => "analytic",
    }
}

pub(crate) fn lit_value(l: &Literal) -> Value {
    match l {
        Literal::Null => Value::Null,
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Int(i) => Value::Int(*i),
        Literal::Float(f) => Value::Float(*f),
        Literal::Str(s) => Value::str(s),
    }
}

fn and(a: Option<Expr>, b: Option<Expr>) -> Option<Expr> {
    match (a, b) {
        (Some(a), Some(b)) => Some(Expr::bin(BinaryOp::And, a, b)),
        (a, b) => a.or(b),
    }
}

fn window_kind(w: &crate::ast::Window) -> Result<(WinKind, i64), SqlError> {
    let pos = |v: i64, what: &str| -> Result<i64, SqlError> {
        if v <= 0 {
            Err(plan_err(format!(
                "invalid window {what}: it must be positive"
            )))
        } else {
            Ok(v)
        }
    };
    Ok(match &w.kind {
        WindowKind::Tumbling { size_ms } => {
            let s = pos(*size_ms, "size")?;
            (WinKind::Tumbling { size: s }, s)
        }
        WindowKind::Hopping { size_ms, hop_ms } => {
            let s = pos(*size_ms, "size")?;
            let h = pos(*hop_ms, "interval")?;
            (WinKind::Hopping { size: s, hop: h }, h)
        }
        WindowKind::Sliding { size_ms, delay_ms } => {
            let s = pos(*size_ms, "size")?;
            if *delay_ms < 0 {
                return Err(plan_err("invalid window delay: it must not be negative"));
            }
            (
                WinKind::Sliding {
                    size: s,
                    delay: *delay_ms,
                },
                s,
            )
        }
        WindowKind::Session { max_ms, timeout_ms } => {
            let m = pos(*max_ms, "size")?;
            let t = pos(*timeout_ms, "timeout")?;
            (WinKind::Session { max: m, timeout: t }, m)
        }
        WindowKind::Count { size, every } => {
            if *size == 0 {
                return Err(plan_err("invalid count window size: it must be positive"));
            }
            let every = if *every == 0 { *size } else { *every };
            if every > *size {
                return Err(plan_err(
                    "invalid count window: the interval must not be greater than the size",
                ));
            }
            let size = usize::try_from(*size).map_err(|_| plan_err("count window too large"))?;
            let every = usize::try_from(every).map_err(|_| plan_err("count window too large"))?;
            (WinKind::Count { size, every }, 0)
        }
        WindowKind::State { .. } => return Err(plan_err("state windows are not supported")),
    })
}

/// Compiles a SELECT.
pub(crate) fn build(
    select: &Select,
    catalog: &dyn Catalog,
    opts: &QueryOptions,
) -> Result<Plan, SqlError> {
    // ---- sources
    let mut infos = Vec::with_capacity(1 + select.joins.len());
    for item in std::iter::once(&select.from).chain(select.joins.iter().map(|j| &j.source)) {
        let def = catalog
            .lookup(&item.name)
            .ok_or_else(|| plan_err(format!("stream {} not found", item.name)))?;
        if infos.iter().any(|s: &SrcInfo| s.name == item.name) {
            return Err(plan_err(format!("stream {} is used twice", item.name)));
        }
        infos.push(SrcInfo {
            name: item.name.clone(),
            alias: item.alias.clone(),
            def,
        });
    }
    let stream_srcs: Vec<usize> = (0..infos.len())
        .filter(|i| infos[*i].def.kind == StreamKind::Stream)
        .collect();
    let has_window = select.window.is_some();
    if stream_srcs.len() > 1 && !has_window {
        return Err(plan_err(
            "a time window or count window is required to join multiple streams",
        ));
    }
    if has_window && stream_srcs.is_empty() {
        return Err(plan_err("cannot run window for TABLE sources"));
    }
    if !select.group_by.is_empty() && !has_window {
        return Err(plan_err("select stmt group by should be used with window"));
    }
    if let Some(w) = &select.window {
        if !w.partition_by.is_empty() {
            return Err(plan_err(
                "OVER (PARTITION BY) is only supported by state windows",
            ));
        }
        if w.trigger.is_some() && !matches!(w.kind, WindowKind::Sliding { .. }) {
            return Err(plan_err(
                "OVER (WHEN ...) is only supported by sliding windows",
            ));
        }
    }

    // ---- aliases
    let mut aliases = Aliases {
        names: vec![],
        exprs: vec![],
    };
    for f in &select.fields {
        if let SelectItem::Expr {
            expr,
            alias: Some(a),
            ..
        } = f
        {
            if aliases.find(a).is_some() {
                return Err(plan_err(format!("duplicate alias {a}")));
            }
            aliases.names.push(a.as_str());
            aliases.exprs.push(expr);
        }
    }
    let mut budget = MAX_EXPANDED_NODES;
    let mut expand = |e: &Expr, own: Option<usize>| -> Result<Expr, SqlError> {
        let mut stack: Vec<usize> = own.into_iter().collect();
        aliases.expand(e, &mut stack, &mut budget)
    };

    let where_ = select
        .where_
        .as_ref()
        .map(|w| expand(w, None))
        .transpose()?;
    let having = select
        .having
        .as_ref()
        .map(|h| expand(h, None))
        .transpose()?;
    let order: Vec<(Expr, bool)> = select
        .order_by
        .iter()
        .map(|o| Ok((expand(&o.expr, None)?, o.desc)))
        .collect::<Result<_, SqlError>>()?;
    let dims: Vec<Expr> = select
        .group_by
        .iter()
        .map(|d| expand(d, None))
        .collect::<Result<_, _>>()?;
    let win_filter = select
        .window
        .as_ref()
        .and_then(|w| w.filter.as_deref())
        .map(|f| expand(f, None))
        .transpose()?;
    let trigger = select
        .window
        .as_ref()
        .and_then(|w| w.trigger.as_deref())
        .map(|f| expand(f, None))
        .transpose()?;
    let ons: Vec<Option<Expr>> = select
        .joins
        .iter()
        .map(|j| j.on.as_ref().map(|o| expand(o, None)).transpose())
        .collect::<Result<_, _>>()?;
    // Select fields, expanded with their own alias on the stack.
    let mut alias_idx = 0usize;
    let mut fields_expanded: Vec<Option<Expr>> = Vec::with_capacity(select.fields.len());
    for f in &select.fields {
        match f {
            SelectItem::Expr { expr, alias, .. } => {
                let own = alias.as_ref().map(|_| {
                    alias_idx += 1;
                    alias_idx - 1
                });
                fields_expanded.push(Some(expand(expr, own)?));
            }
            _ => fields_expanded.push(None),
        }
    }

    // ---- where WHERE runs
    let where_has_agg = where_.as_ref().is_some_and(has_aggregate);
    let pushable = match &select.window {
        None => true,
        Some(w) => {
            matches!(
                w.kind,
                WindowKind::Tumbling { .. }
                    | WindowKind::Hopping { .. }
                    | WindowKind::Session { .. }
            ) && !opts.is_event_time
                && select.joins.is_empty()
                && !where_has_agg
        }
    };
    let (pre_where, post_where, sep_win_filter) = if !has_window {
        (where_, None, None)
    } else if pushable {
        (and(where_, win_filter), None, None)
    } else {
        (None, where_, win_filter)
    };

    let mut c = Compiler {
        srcs: &infos,
        analytic: vec![],
        aggs: vec![],
        used: vec![vec![]; infos.len()],
        hit_snap: (false, false),
        agg_hit_in_having: (false, false),
        has_window,
        uses_row_number: false,
    };
    if let Some(w) = pre_where.as_ref().or(post_where.as_ref()) {
        c.hit_snap = (
            calls_named(w, "last_hit_count"),
            calls_named(w, "last_hit_time"),
        );
    }
    if let Some(h) = &having {
        c.agg_hit_in_having = (
            calls_named(h, "last_agg_hit_count"),
            calls_named(h, "last_agg_hit_time"),
        );
    }
    let pre_filter_updates = pre_where
        .as_ref()
        .map(|w| {
            (
                calls_named(w, "last_hit_count"),
                calls_named(w, "last_hit_time"),
            )
        })
        .unwrap_or_default();
    let trigger_updates = trigger
        .as_ref()
        .map(|w| {
            (
                calls_named(w, "last_hit_count"),
                calls_named(w, "last_hit_time"),
            )
        })
        .unwrap_or_default();
    let having_updates = c.agg_hit_in_having;

    let pre_filter = pre_where
        .as_ref()
        .map(|w| c.compile(w, Place::Where))
        .transpose()?;
    let post_filter = post_where
        .as_ref()
        .map(|w| c.compile(w, Place::Where))
        .transpose()?;
    let cdims = dims
        .iter()
        .map(|d| c.compile(d, Place::Dim))
        .collect::<Result<Vec<_>, _>>()?;
    let chaving = having
        .as_ref()
        .map(|h| c.compile(h, Place::Having))
        .transpose()?;
    let corder = order
        .iter()
        .map(|(e, d)| Ok((c.compile(e, Place::Order)?, *d)))
        .collect::<Result<Vec<_>, SqlError>>()?;
    let cwin_filter = sep_win_filter
        .as_ref()
        .map(|f| c.compile(f, Place::WinFilter))
        .transpose()?;
    let ctrigger = trigger
        .as_ref()
        .map(|f| c.compile(f, Place::Trigger))
        .transpose()?;
    let mut joins = Vec::with_capacity(select.joins.len());
    for (i, (j, on)) in select.joins.iter().zip(&ons).enumerate() {
        if j.kind != JoinKind::Cross && on.is_none() {
            return Err(plan_err(format!(
                "join with {} requires an ON condition",
                j.source.name
            )));
        }
        joins.push(JoinSpec {
            kind: j.kind,
            src: i + 1,
            on: on.as_ref().map(|o| c.compile(o, Place::On)).transpose()?,
        });
    }

    // ---- projection
    let default_stream = infos.first().map(|s| s.name.clone());
    let mut items = Vec::with_capacity(select.fields.len());
    let mut unnamed = 0usize;
    let mut wildcard_all: Vec<bool> = vec![false; infos.len()];
    let mut is_agg = false;
    let mut n_changed = 0usize;
    let mut n_unnest = 0usize;
    for (f, exp) in select.fields.iter().zip(&fields_expanded) {
        match f {
            SelectItem::Wildcard { except, replace } => {
                wildcard_all.iter_mut().for_each(|w| *w = true);
                let mut rep = Vec::with_capacity(replace.len());
                for (e, name) in replace {
                    let ex = expand(e, None)?;
                    is_agg |= has_aggregate(&ex);
                    let label = format!("expr: {}", ek_string(e, default_stream.as_deref()));
                    rep.push((
                        Arc::from(name.as_str()),
                        c.compile(&ex, Place::Select)?,
                        label,
                    ));
                }
                items.push(ProjItem::Wildcard {
                    except: except.clone(),
                    replace: rep,
                });
            }
            SelectItem::QualifiedWildcard(q) => {
                let src = c
                    .src_by_name(q)
                    .ok_or_else(|| plan_err(format!("stream {q} not found")))?;
                wildcard_all[src] = true;
                items.push(ProjItem::SrcWildcard(src));
            }
            SelectItem::Expr {
                expr,
                alias,
                invisible,
            } => {
                let Some(ex) = exp else {
                    return Err(plan_err("internal: select field not expanded"));
                };
                let text = ek_string(expr, default_stream.as_deref());
                let label = match alias {
                    Some(a) => format!("alias: {a} expr: {text}"),
                    None => format!("expr: {text}"),
                };
                match ex {
                    Expr::Call { name, args, .. } if name == "changed_cols" => {
                        if args.len() < 3 {
                            return Err(plan_err(format!(
                                "validate function changed_cols error: At least has 3 argument but found {}.",
                                args.len()
                            )));
                        }
                        let prefix = c.compile(&args[0], Place::Select)?;
                        let ignore_null = c.compile(&args[1], Place::Select)?;
                        let mut cols = Vec::new();
                        let mut star = false;
                        for a in &args[2..] {
                            match a {
                                Expr::Wildcard => {
                                    star = true;
                                    wildcard_all.iter_mut().for_each(|w| *w = true);
                                }
                                other => {
                                    let n = default_name(other)
                                        .unwrap_or_else(|| ek_string(other, None));
                                    cols.push((
                                        Arc::from(n.as_str()),
                                        c.compile(other, Place::Select)?,
                                    ));
                                }
                            }
                        }
                        items.push(ProjItem::ChangedCols {
                            id: n_changed,
                            prefix,
                            ignore_null,
                            cols,
                            star,
                            label,
                        });
                        n_changed += 1;
                    }
                    Expr::Call { name, args, .. } if name == "unnest" => {
                        let [arg] = args.as_slice() else {
                            return Err(plan_err(format!(
                                "validate function unnest error: Expect 1 arguments but found {}.",
                                args.len()
                            )));
                        };
                        n_unnest += 1;
                        if n_unnest > 1 {
                            return Err(plan_err("only one unnest function is allowed in SELECT"));
                        }
                        let nm = alias.clone().unwrap_or_else(|| "unnest".to_string());
                        items.push(ProjItem::Unnest {
                            name: Arc::from(nm.as_str()),
                            expr: c.compile(arg, Place::Select)?,
                            label,
                        });
                    }
                    _ => {
                        is_agg |= has_aggregate(ex);
                        let nm = match alias {
                            Some(a) => a.clone(),
                            None => match default_name(expr) {
                                Some(n) => n,
                                None => {
                                    unnamed += 1;
                                    format!("kuiper_field_{}", unnamed - 1)
                                }
                            },
                        };
                        items.push(ProjItem::Expr {
                            name: Arc::from(nm.as_str()),
                            expr: c.compile(ex, Place::Select)?,
                            invisible: *invisible,
                            label,
                        });
                    }
                }
            }
        }
    }
    let static_names: Option<Vec<Arc<str>>> = items
        .iter()
        .map(|it| match it {
            ProjItem::Expr {
                name, invisible, ..
            } => Some((!invisible).then(|| name.clone())),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .map(|v| v.into_iter().flatten().collect());
    let static_schema = static_names.map(|names| {
        // Later fields with the same name win; keep the first position.
        let mut uniq: Vec<Arc<str>> = Vec::with_capacity(names.len());
        for n in names {
            if !uniq.contains(&n) {
                uniq.push(n);
            }
        }
        Arc::new(Schema::new(uniq))
    });
    let passthrough = infos.len() == 1
        && matches!(items.as_slice(), [ProjItem::Wildcard { except, replace }] if except.is_empty() && replace.is_empty());
    let proj = Projection {
        items,
        static_schema,
        passthrough,
        has_unnest: n_unnest > 0,
        changed_cols: n_changed,
    };

    // ---- window
    let window = match &select.window {
        Some(w) => {
            let (kind, align) = window_kind(w)?;
            Some(WindowSpec {
                kind,
                align_ms: align,
                day_unit: w.unit == Some(TimeUnit::Dd),
                filter: cwin_filter,
                trigger: ctrigger,
                trigger_updates,
            })
        }
        None => None,
    };
    let has_dims = !cdims.is_empty();
    let needs_rows = !(is_agg || has_dims) || c.uses_row_number || post_filter.is_some();
    let incremental = match &window {
        Some(w) => {
            matches!(w.kind, WinKind::Tumbling { .. } | WinKind::Session { .. })
                && !opts.is_event_time
                && joins.is_empty()
                && !needs_rows
        }
        None => false,
    };

    // ---- runtime per source
    let mut srcs = Vec::with_capacity(infos.len());
    for (i, info) in infos.iter().enumerate() {
        let o = &info.def.options;
        let retain = match o.retain_size {
            Some(n) if n > 0 => usize::try_from(n).unwrap_or(MAX_RETAIN_SIZE),
            _ => match o.type_.as_deref() {
                None | Some("file") => MAX_RETAIN_SIZE,
                _ => 1,
            },
        };
        let validator = match info.typed() {
            Some(cols) if o.strict_validation => {
                if wildcard_all[i] {
                    Validator::new(cols, None)
                } else {
                    Validator::new(cols, Some(&c.used[i]))
                }
            }
            _ => None,
        };
        srcs.push(SrcRuntime {
            kind: info.def.kind,
            retain,
            validator,
            timestamp: o.timestamp.as_deref().map(Arc::from),
        });
    }

    // ---- operator names
    let mut ops = Ops::default();
    let mut idx = infos.len() + 1;
    let mut push = |ops: &mut Ops, kind: &str, same: bool| -> usize {
        if same {
            idx -= 1;
        }
        ops.names.push(format!("op_{idx}_{kind}"));
        idx += 1;
        ops.names.len() - 1
    };
    let real_analytic = c
        .analytic
        .iter()
        .any(|(_, d)| !matches!(d.kind, AKind::HitCount | AKind::HitTime));
    if real_analytic {
        ops.analytic = Some(push(&mut ops, "analytic", false));
    }
    let has_tables = stream_srcs.len() < infos.len();
    if window.is_none() {
        if !joins.is_empty() {
            if has_tables {
                push(&mut ops, "join_aligner", false);
            }
            ops.join = Some(push(&mut ops, "join", false));
        }
        if pre_filter.is_some() {
            ops.pre_filter = Some(push(&mut ops, "filter", false));
        }
    } else {
        if pre_filter.is_some() {
            ops.pre_filter = Some(push(&mut ops, "filter", false));
        }
        if let Some(w) = &window {
            if w.filter.is_some() {
                ops.win_filter = Some(push(&mut ops, "windowFilter", false));
                ops.window = Some(push(&mut ops, "window", true));
            } else {
                ops.window = Some(push(&mut ops, "window", false));
            }
        }
        if !joins.is_empty() {
            if has_tables {
                push(&mut ops, "join_aligner", false);
            }
            ops.join = Some(push(&mut ops, "join", false));
        }
        if post_filter.is_some() {
            if where_has_agg {
                push(&mut ops, "agg_func", false);
            }
            ops.post_filter = Some(push(&mut ops, "filter", false));
        }
        if has_dims {
            ops.aggregate = Some(push(&mut ops, "aggregate", false));
        }
    }
    if chaving.is_some() {
        ops.having = Some(push(&mut ops, "having", false));
    }
    if c.uses_row_number && window.is_some() {
        ops.window_func = Some(push(&mut ops, "windowFunc", false));
    }
    if !corder.is_empty() {
        ops.order = Some(push(&mut ops, "order", false));
    }
    ops.project = push(&mut ops, "project", false);
    if proj.has_unnest {
        ops.projectset = Some(push(&mut ops, "projectset", false));
    }

    let sources = infos
        .iter()
        .map(|s| SourceRef {
            name: s.name.clone(),
            kind: s.def.kind,
        })
        .collect();
    Ok(Plan {
        sources,
        srcs,
        opts: opts.clone(),
        analytic: c.analytic.into_iter().map(|(_, d)| d).collect(),
        aggs: c.aggs.into_iter().map(|(_, d)| d).collect(),
        pre_filter,
        pre_filter_updates,
        post_filter,
        post_filter_has_agg: where_has_agg,
        window,
        joins,
        dims: cdims,
        having: chaving,
        having_updates,
        order: corder,
        limit: select
            .limit
            .map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
        proj,
        is_agg,
        incremental,
        ops,
    })
}
