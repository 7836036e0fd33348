//! The planner: resolves a SELECT against the catalog and compiles it once
//! into an immutable [`Plan`]: sources, compiled expressions (aliases
//! inlined, columns bound to sources and slot hints, functions resolved),
//! analytic and aggregate call tables, the window spec, where WHERE runs,
//! the projection and eKuiper-style operator names. [`build`] plans a whole
//! SELECT (`plan/build.rs`), `plan/compile.rs` compiles one expression and
//! `plan/aliases.rs` inlines SELECT aliases.

use std::sync::Arc;

use oort_core::{Schema, SlotHint, Value};
use oort_functions::AggregateFunc;

use super::analytic::{AKind, AnalyticDef};
use super::display::ek_string;
use super::expr::{CExpr, LikePat, KEYED_STATE_TYPES, MAX_DELAY_MS};
use super::ops::like_regex;
use super::validate::Validator;
use super::{Catalog, QueryOptions, SourceRef, META_KEY};
use crate::ast::{
    BinaryOp, Column, Expr, JoinKind, Literal, Select, SelectItem, StreamDef, StreamKind, TimeUnit,
    UnaryOp, WindowKind,
};
use crate::SqlError;

mod aliases;
mod build;
mod compile;

use aliases::Aliases;
pub(crate) use build::build;

/// Default scan-table size for `file` tables without RETAIN_SIZE.
pub(crate) const MAX_RETAIN_SIZE: usize = 9999;
/// Largest expanded expression (aliases inlined), in nodes.
const MAX_EXPANDED_NODES: usize = 100_000;

/// A window as the engine runs it (durations in ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WinKind {
    Tumbling {
        size: i64,
    },
    Hopping {
        size: i64,
        hop: i64,
    },
    Sliding {
        size: i64,
        delay: i64,
    },
    Session {
        max: i64,
        timeout: i64,
    },
    Count {
        size: usize,
        every: usize,
    },
    /// `two`: begin and emit conditions (else one condition).
    State {
        two: bool,
    },
}

/// The conditions and partition of a state window.
#[derive(Debug)]
pub(crate) struct StateSpec {
    pub begin: CExpr,
    pub emit: Option<CExpr>,
    pub partition: Vec<CExpr>,
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
    /// A state window's conditions and partition.
    pub state: Option<StateSpec>,
}

#[derive(Debug)]
pub(crate) struct JoinSpec {
    pub kind: JoinKind,
    /// The right side's source index.
    pub src: usize,
    pub on: Option<CExpr>,
    /// A join with a lookup table: its ON split into key lookups and the
    /// rest (then `on` is the rest).
    pub lookup: Option<LookupSpec>,
    /// An INNER or LEFT join with a scan table whose ON has `table.col =
    /// other.col` predicates: the table rows are found through a hash index
    /// on those columns (the whole ON is still checked on each).
    pub index: Option<LookupSpec>,
}

/// The equi-join predicates of a lookup join: the table's columns `keys`
/// are looked up with the values of `vals`, evaluated on the left row.
#[derive(Debug)]
pub(crate) struct LookupSpec {
    pub keys: Vec<Arc<str>>,
    pub vals: Vec<CExpr>,
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
    /// `unnest(array)`, or `extract(object)` (one row, the object's keys
    /// as columns).
    Unnest {
        name: Arc<str>,
        expr: CExpr,
        label: String,
        extract: bool,
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
    pub row_number_over: Option<RowNumberOver>,
    pub limit: Option<usize>,
    pub proj: Projection,
    /// SELECT holds aggregate calls: one output row per group.
    pub is_agg: bool,
    /// Windows keep one accumulator set per group instead of the rows.
    pub incremental: bool,
    /// A sliding window whose aggregates are updated as rows enter and
    /// leave (see `slide_inc`).
    pub slide_incremental: bool,
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
    fn is_lookup(&self) -> bool {
        self.def.kind == StreamKind::Table
            && self
                .def
                .options
                .kind
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case("lookup"))
    }

    fn typed(&self) -> Option<&[Column]> {
        (!self.def.columns.is_empty()).then_some(self.def.columns.as_slice())
    }
}

fn plan_err(msg: impl Into<String>) -> SqlError {
    SqlError::plan(msg)
}

/// Functions the engine implements itself (not looked up in the library).
pub(crate) fn engine_fn(name: &str) -> bool {
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
            | "rule_start"
            | "get_keyed_state"
            | "delay"
            | "last_hit_count"
            | "last_hit_time"
            | "last_agg_hit_count"
            | "last_agg_hit_time"
            | "changed_cols"
            | "unnest"
            | "extract"
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
    /// `row_number() OVER (PARTITION BY ... ORDER BY ...)`.
    row_number_over: Option<(Expr, RowNumberOver)>,
}

/// eKuiper's window function `row_number() OVER (...)`: rows of a window
/// numbered per partition in the ORDER BY's order; the partitions follow
/// each other by their key text.
#[derive(Debug)]
pub(crate) struct RowNumberOver {
    pub partition: Vec<CExpr>,
    pub order: Vec<(CExpr, bool)>,
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
        WindowKind::State { emit, .. } => (
            WinKind::State {
                two: emit.is_some(),
            },
            0,
        ),
    })
}
