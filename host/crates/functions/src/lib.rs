//! `oort-functions`: the SQL function library (scalar functions and aggregate
//! accumulators), following eKuiper's builtin catalogue and semantics.
//!
//! # How the planner uses it
//!
//! Look a function up **once** at plan time ([`scalar`], [`aggregate`]), check
//! its argument count with [`check_arity`], keep the `&'static` entry, and call
//! it per event: [`ScalarFunc::call`] is a plain function pointer, so a call
//! costs no name lookup and allocates nothing beyond its result.
//!
//! Aggregates create one [`Accumulator`] per group (per window) through
//! [`AggregateFunc::new`], feed it every row with [`Accumulator::add`] and read
//! [`Accumulator::result`] when the window closes.
//!
//! * `consts` passed to `new` has one entry per SQL argument: the value of a
//!   literal argument, or `Value::Null` for any non-literal one. It carries the
//!   constant parameters: `percentile_cont(col, 0.5)`, `last_value(col, true)`,
//!   `deduplicate(col, false)`. When such a parameter is not a literal it is
//!   read from the first row's arguments instead.
//! * `add` receives all SQL arguments evaluated for one row. For `count(*)`,
//!   `collect(*)`, `merge_agg(*)` and `last_value(*, b)` the planner passes the
//!   whole row as a `Value::Object` (any non-nil marker works for `count`).
//! * `deduplicate` (see [`needs_row`]) additionally wants the whole row as a
//!   **third** argument to `add`: `add(&[key, all, row])`. The result is the
//!   row (or the array of rows when `all` is true) whose key was first seen;
//!   without the row argument the key value itself is collected.
//!
//! # Value conventions
//!
//! * nil in → nil out, except where eKuiper documents otherwise (`concat`,
//!   `coalesce`, `isnull`, `indexof` → -1, `length`/`numbytes`/`cardinality`
//!   → 0, `startswith`/`endswith`/`regexp_matches` → false).
//! * `Int` op `Int` stays `Int` (`abs`, `sign`, `bit*`, `sum`); the
//!   transcendental functions, `ceil`, `floor`, `round`, `mod`, `power` return
//!   `Float` like eKuiper; `avg` is always a `Float`.
//! * `now()`/`current_timestamp()` return eKuiper's formatted string
//!   `YYYY-MM-DD HH:mm:ss` (optionally with `fsp` fraction digits) in the
//!   configured time zone ([`set_timezone`], default: the system zone);
//!   `tstamp()` returns unix milliseconds as an `Int`.
//! * Time arguments may be `Datetime`, unix milliseconds (`Int`/`Float`) or a
//!   date-time string.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod agg;
mod array;
mod calendar;
mod convert;
pub mod docgen;
mod error;
mod hash;
mod jsonpath;
mod math;
mod object;
mod other;
mod string;
mod time;
mod util;
mod validate;

use std::sync::LazyLock;

use ahash::AHashMap;
use oort_core::Value;

pub use convert::{cast_value, CAST_TYPES};
pub use error::FnError;
pub use time::{set_timezone, timezone_name};
pub use validate::check_call;

/// A scalar function body: all arguments evaluated for one event.
pub type ScalarFn = fn(&[Value]) -> Result<Value, FnError>;

/// A scalar function of the registry.
#[derive(Debug)]
pub struct ScalarFunc {
    /// Lower-case name, as used for the output column.
    pub name: &'static str,
    pub min_args: usize,
    /// `None` for variadic functions.
    pub max_args: Option<usize>,
    pub call: ScalarFn,
}

/// The running state of one aggregate call for one group.
pub trait Accumulator: Send {
    /// Adds one row; `args` are the call's arguments evaluated for that row.
    fn add(&mut self, args: &[Value]) -> Result<(), FnError>;
    /// The aggregate over every row added so far.
    fn result(&self) -> Value;
    /// Whether [`Accumulator::remove`] works: sliding windows then update
    /// their aggregates as rows leave instead of recomputing them.
    fn removable(&self) -> bool {
        false
    }
    /// Takes back a row added earlier (same `args`).
    fn remove(&mut self, _args: &[Value]) -> Result<(), FnError> {
        Err(FnError::call(
            "aggregate",
            "this aggregate cannot remove rows",
        ))
    }
}

/// Creates an accumulator from the call's constant arguments (see crate docs).
pub type AccumulatorFactory = fn(consts: &[Value]) -> Result<Box<dyn Accumulator>, FnError>;

/// An aggregate function of the registry.
#[derive(Debug)]
pub struct AggregateFunc {
    pub name: &'static str,
    pub min_args: usize,
    pub max_args: Option<usize>,
    pub new: AccumulatorFactory,
}

/// The scalar functions by family, as `docs/sql-functions.md` lists them.
pub static FAMILIES: &[(&str, &[ScalarFunc])] = &[
    ("Mathematical", math::FUNCS),
    ("String", string::FUNCS),
    ("Conversion", convert::FUNCS),
    ("Hashing", hash::FUNCS),
    ("Date and time", time::FUNCS),
    ("Zones, days and compression", calendar::FUNCS),
    ("JSON path", jsonpath::FUNCS),
    ("Array", array::FUNCS),
    ("Object", object::FUNCS),
    ("Other", other::FUNCS),
];

/// The aggregate functions.
pub fn aggregates() -> &'static [AggregateFunc] {
    agg::FUNCS
}

static SCALARS: LazyLock<AHashMap<&'static str, &'static ScalarFunc>> = LazyLock::new(|| {
    let mut m = AHashMap::new();
    for f in FAMILIES.iter().flat_map(|(_, fs)| fs.iter()) {
        m.insert(f.name, f);
    }
    m
});

static AGGREGATES: LazyLock<AHashMap<&'static str, &'static AggregateFunc>> =
    LazyLock::new(|| agg::FUNCS.iter().map(|f| (f.name, f)).collect());

fn lookup<T: ?Sized>(map: &AHashMap<&'static str, &'static T>, name: &str) -> Option<&'static T> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        map.get(name.to_ascii_lowercase().as_str()).copied()
    } else {
        map.get(name).copied()
    }
}

/// The scalar function `name` (case-insensitive).
/// Formats unix ms `ms` in the configured time zone with eKuiper's pattern
/// letters (`YYYY-MM-dd HH:mm:ss`), as `format_time` does.
pub fn format_time_ms(ms: i64, pattern: &str) -> Result<String, String> {
    time::format_ms(ms, pattern)
}

pub fn scalar(name: &str) -> Option<&'static ScalarFunc> {
    lookup(&SCALARS, name)
}

/// The aggregate function `name` (case-insensitive).
pub fn aggregate(name: &str) -> Option<&'static AggregateFunc> {
    lookup(&AGGREGATES, name)
}

/// True when `name` is an aggregate function of this library.
pub fn is_aggregate(name: &str) -> bool {
    aggregate(name).is_some()
}

/// True when the aggregate wants the whole current row appended to its
/// `add` arguments (`deduplicate`).
pub fn needs_row(name: &str) -> bool {
    name.eq_ignore_ascii_case("deduplicate")
}

/// Every function name of the library (scalars and aggregates), sorted.
pub fn names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = SCALARS.keys().chain(AGGREGATES.keys()).copied().collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn arity_message(min: usize, max: Option<usize>, n: usize) -> Option<String> {
    match max {
        Some(max) if min == max && n != min => {
            Some(format!("Expect {min} arguments but found {n}."))
        }
        Some(max) if n < min || n > max => {
            if max == min + 1 {
                Some(format!("Expect {min} or {max} arguments but found {n}."))
            } else {
                Some(format!("Expect {min} to {max} arguments but found {n}."))
            }
        }
        None if n < min => Some(format!("At least has {min} argument but found {n}.")),
        _ => None,
    }
}

/// Plan-time check of the argument count of `name`, with eKuiper's messages
/// (`validate function abs error: Expect 1 arguments but found 2.`).
pub fn check_arity(name: &str, n: usize) -> Result<(), FnError> {
    let (fname, min, max) = if let Some(f) = scalar(name) {
        (f.name, f.min_args, f.max_args)
    } else if let Some(f) = aggregate(name) {
        (f.name, f.min_args, f.max_args)
    } else {
        return Err(FnError::NotFound(name.to_string()));
    };
    match arity_message(min, max, n) {
        Some(msg) => Err(FnError::validate(fname, msg)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_resolves_case_insensitively() {
        let all = names();
        assert!(all.len() > 140, "only {} functions", all.len());
        for n in &all {
            let upper = n.to_ascii_uppercase();
            let mixed: String = n
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if i % 2 == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            for candidate in [n.to_string(), upper, mixed] {
                let found = scalar(&candidate)
                    .map(|f| f.name)
                    .or_else(|| aggregate(&candidate).map(|f| f.name));
                assert_eq!(found, Some(*n), "{candidate} did not resolve");
            }
        }
    }

    #[test]
    fn scalar_and_aggregate_names_do_not_clash() {
        for n in AGGREGATES.keys() {
            assert!(SCALARS.get(n).is_none(), "{n} is both scalar and aggregate");
        }
    }

    #[test]
    fn registry_entries_are_consistent() {
        for (k, f) in SCALARS.iter() {
            assert_eq!(*k, f.name);
            assert_eq!(f.name, f.name.to_ascii_lowercase());
            if let Some(max) = f.max_args {
                assert!(max >= f.min_args, "{k}");
            }
        }
        for (k, f) in AGGREGATES.iter() {
            assert_eq!(*k, f.name);
        }
    }

    #[test]
    fn brief_function_list_is_complete() {
        let required = "abs acos asin atan atan2 bitand bitor bitxor bitnot ceil ceiling cos cosh exp \
            floor ln log mod pi power pow rand round sign sin sinh sqrt tan tanh cot radians degrees \
            concat endswith indexof length lower lpad ltrim numbytes regexp_matches regexp_replace \
            regexp_substr reverse rpad rtrim substring startswith split_value trim upper format \
            cast to_seconds encode decode trunc chr hex2dec dec2hex to_json parse_json \
            md5 sha1 sha256 sha384 sha512 crc32 now current_timestamp cur_date current_date \
            cur_time current_time format_time day_name day_of_month day day_of_week day_of_year \
            hour minute second month month_name from_unix_time cardinality array_position \
            element_at array_contains array_remove array_last_position array_max array_min \
            array_distinct array_join array_concat array_create sequence keys values object_size \
            object_pick erase isnull coalesce newuuid tstamp bypass";
        for n in required.split_whitespace() {
            assert!(scalar(n).is_some(), "missing scalar {n}");
        }
        let aggs = "avg count max min sum collect merge_agg stddev stddevs var vars median \
            percentile_cont percentile_disc last_value deduplicate";
        for n in aggs.split_whitespace() {
            assert!(is_aggregate(n), "missing aggregate {n}");
        }
        assert!(!is_aggregate("abs"));
        assert!(scalar("no_such_fn").is_none());
    }

    /// nil in → nil out for every scalar, except the documented exceptions.
    #[test]
    fn nil_arguments_follow_the_documented_policy() {
        use std::sync::Arc;
        let exceptions: Vec<(&str, Value)> = vec![
            ("concat", Value::str("")),
            ("endswith", Value::Bool(false)),
            ("startswith", Value::Bool(false)),
            ("regexp_matches", Value::Bool(false)),
            ("indexof", Value::Int(-1)),
            ("length", Value::Int(0)),
            ("numbytes", Value::Int(0)),
            ("cardinality", Value::Int(0)),
            ("array_cardinality", Value::Int(0)),
            ("object_size", Value::Int(0)),
            ("isnull", Value::Bool(true)),
            ("json_path_exists", Value::Bool(false)),
            ("array_position", Value::Int(-1)),
            ("array_last_position", Value::Int(-1)),
            ("array_contains", Value::Bool(false)),
            ("array_contains_any", Value::Bool(false)),
            ("array_union", Value::Array(Arc::new(vec![]))),
            (
                "object_concat",
                Value::Object(Arc::new(oort_core::Map::new())),
            ),
        ];
        let mut checked = 0;
        for name in names() {
            let Some(f) = scalar(name) else { continue };
            if f.min_args == 0 {
                continue;
            }
            let args = vec![Value::Null; f.min_args];
            // eKuiper's JSON path functions fail on nil data (exists: false).
            if matches!(name, "json_path_query" | "json_path_query_first") {
                assert!((f.call)(&args).is_err(), "{name}(nil...)");
                checked += 1;
                continue;
            }
            let want = exceptions
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(Value::Null, |(_, v)| v.clone());
            assert_eq!((f.call)(&args), Ok(want), "{name}(nil...)");
            checked += 1;
        }
        assert!(checked > 110, "only {checked} functions checked");
    }

    /// No function panics, whatever it is fed (it may return an error).
    #[test]
    fn odd_arguments_never_panic() {
        use std::sync::Arc;
        let mut m = oort_core::Map::new();
        m.insert(Arc::from("k"), Value::Int(1));
        let odd = [
            Value::Null,
            Value::Bool(true),
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::Int(-1),
            Value::Int(0),
            Value::Float(f64::NAN),
            Value::Float(f64::INFINITY),
            Value::Float(-1e300),
            Value::str(""),
            Value::str("é\u{0}%[("),
            Value::Bytes(Arc::from(&[0xffu8, 0, 1][..])),
            Value::Array(Arc::new(vec![])),
            Value::Array(Arc::new(vec![Value::Null, Value::str("a"), Value::Int(1)])),
            Value::Object(Arc::new(m)),
            Value::Datetime(i64::MAX),
        ];
        for name in names() {
            if let Some(f) = scalar(name) {
                let max = f.max_args.unwrap_or(f.min_args + 2).min(f.min_args + 2);
                for n in f.min_args..=max {
                    for a in &odd {
                        for b in &odd {
                            let args: Vec<Value> = (0..n)
                                .map(|i| if i == 0 { a.clone() } else { b.clone() })
                                .collect();
                            let _ = (f.call)(&args);
                        }
                    }
                }
            }
            if let Some(f) = aggregate(name) {
                for c in &odd {
                    let Ok(mut acc) = (f.new)(&[Value::Null, c.clone()]) else {
                        continue;
                    };
                    for a in &odd {
                        let _ = acc.add(&[a.clone(), c.clone(), a.clone()]);
                        let _ = acc.result();
                    }
                }
            }
        }
    }

    #[test]
    fn arity_errors_read_like_ekuiper() {
        assert_eq!(check_arity("ABS", 1), Ok(()));
        assert_eq!(
            check_arity("abs", 2).map_err(|e| e.to_string()),
            Err("validate function abs error: Expect 1 arguments but found 2.".to_string())
        );
        assert_eq!(
            check_arity("round", 3).map_err(|e| e.to_string()),
            Err("validate function round error: Expect 1 or 2 arguments but found 3.".to_string())
        );
        assert_eq!(
            check_arity("concat", 0).map_err(|e| e.to_string()),
            Err("validate function concat error: At least has 1 argument but found 0.".to_string())
        );
        assert_eq!(check_arity("concat", 7), Ok(()));
        assert_eq!(check_arity("count", 1), Ok(()));
        assert_eq!(
            check_arity("nope", 1).map_err(|e| e.to_string()),
            Err("function nope not found".to_string())
        );
        assert!(needs_row("Deduplicate"));
        assert!(!needs_row("count"));
    }
}
