//! Aggregate functions as incremental [`Accumulator`]s: `avg count max min
//! sum collect merge_agg deduplicate stddev stddevs var vars median
//! percentile_cont percentile_disc last_value`. nil inputs are skipped by
//! every aggregate except `collect` and `last_value(col, false)`.

use std::sync::Arc;

use ahash::AHashSet;
use oort_core::{Map, Value};

use crate::util::{arg, go_desc, go_v, varray};
use crate::{Accumulator, AggregateFunc, FnError};

macro_rules! agg {
    ($name:literal, $min:expr, $max:expr, $new:expr) => {
        AggregateFunc {
            name: $name,
            min_args: $min,
            max_args: $max,
            new: $new,
        }
    };
}

pub(crate) static FUNCS: &[AggregateFunc] = &[
    agg!("avg", 1, Some(1), |_| Ok(Box::new(Avg::default()))),
    agg!("count", 1, Some(1), |_| Ok(Box::new(Count(0)))),
    agg!("max", 1, Some(1), |_| Ok(Box::new(ExtremeAcc(
        Extreme::new("max", true)
    )))),
    agg!("min", 1, Some(1), |_| Ok(Box::new(ExtremeAcc(
        Extreme::new("min", false)
    )))),
    agg!("sum", 1, Some(1), |_| Ok(Box::new(Sum::default()))),
    agg!("collect", 1, Some(1), |_| Ok(Box::new(Collect(Vec::new())))),
    agg!("merge_agg", 1, Some(1), |_| Ok(Box::new(MergeAgg(
        Map::new()
    )))),
    agg!("deduplicate", 2, Some(2), Dedup::create),
    agg!("stddev", 1, Some(1), |_| Ok(Spread::boxed(
        "stddev",
        SpreadKind::StddevPop
    ))),
    agg!("stddevs", 1, Some(1), |_| Ok(Spread::boxed(
        "stddevs",
        SpreadKind::StddevSample
    ))),
    agg!("var", 1, Some(1), |_| Ok(Spread::boxed(
        "var",
        SpreadKind::VarPop
    ))),
    agg!("vars", 1, Some(1), |_| Ok(Spread::boxed(
        "vars",
        SpreadKind::VarSample
    ))),
    agg!("median", 1, Some(1), |_| Ok(Box::new(Median::default()))),
    agg!("percentile_cont", 2, Some(2), |c| Percentile::create(
        "percentile_cont",
        false,
        c
    )),
    agg!("percentile_disc", 2, Some(2), |c| Percentile::create(
        "percentile_disc",
        true,
        c
    )),
    agg!("last_value", 2, Some(2), LastValue::create),
];

/// A non-nil constant argument.
fn const_at(consts: &[Value], i: usize) -> Option<&Value> {
    consts.get(i).filter(|v| !v.is_null())
}

fn invalid_arg(name: &'static str, v: &Value) -> FnError {
    FnError::call(name, format!("found invalid arg {}", go_desc(v)))
}

// ---------------------------------------------------------------- avg / sum

#[derive(Default)]
struct Avg {
    ints: i128,
    floats: f64,
    /// Float values in `floats` (back to exactly 0 when none is left).
    nf: u64,
    n: u64,
}

impl Accumulator for Avg {
    fn add(&mut self, args: &[Value]) -> Result<(), FnError> {
        match arg(args, 0) {
            Value::Null => return Ok(()),
            Value::Int(i) => self.ints += i128::from(*i),
            Value::Float(f) => {
                self.floats += f;
                self.nf += 1;
            }
            other => return Err(invalid_arg("avg", other)),
        }
        self.n += 1;
        Ok(())
    }
    fn removable(&self) -> bool {
        true
    }
    fn remove(&mut self, args: &[Value]) -> Result<(), FnError> {
        match arg(args, 0) {
            Value::Null => return Ok(()),
            Value::Int(i) => self.ints -= i128::from(*i),
            Value::Float(f) => {
                self.nf = self.nf.saturating_sub(1);
                self.floats = if self.nf == 0 { 0.0 } else { self.floats - f };
            }
            other => return Err(invalid_arg("avg", other)),
        }
        self.n = self.n.saturating_sub(1);
        Ok(())
    }
    fn result(&self) -> Value {
        if self.n == 0 {
            return Value::Null;
        }
        Value::Float((self.ints as f64 + self.floats) / self.n as f64)
    }
}

#[derive(Default)]
struct Sum {
    ints: i128,
    floats: f64,
    /// Float values and all values summed (rows can be removed).
    nf: u64,
    n: u64,
}

impl Accumulator for Sum {
    fn add(&mut self, args: &[Value]) -> Result<(), FnError> {
        match arg(args, 0) {
            Value::Null => return Ok(()),
            Value::Int(i) => self.ints += i128::from(*i),
            Value::Float(f) => {
                self.floats += f;
                self.nf += 1;
            }
            other => return Err(invalid_arg("sum", other)),
        }
        self.n += 1;
        Ok(())
    }
    fn removable(&self) -> bool {
        true
    }
    fn remove(&mut self, args: &[Value]) -> Result<(), FnError> {
        match arg(args, 0) {
            Value::Null => return Ok(()),
            Value::Int(i) => self.ints -= i128::from(*i),
            Value::Float(f) => {
                self.nf = self.nf.saturating_sub(1);
                self.floats = if self.nf == 0 { 0.0 } else { self.floats - f };
            }
            other => return Err(invalid_arg("sum", other)),
        }
        self.n = self.n.saturating_sub(1);
        Ok(())
    }
    fn result(&self) -> Value {
        if self.n == 0 {
            return Value::Null;
        }
        if self.nf > 0 {
            return Value::Float(self.ints as f64 + self.floats);
        }
        i64::try_from(self.ints).map_or(Value::Float(self.ints as f64), Value::Int)
    }
}

// ------------------------------------------------------------------- count

struct Count(i64);

impl Accumulator for Count {
    fn add(&mut self, args: &[Value]) -> Result<(), FnError> {
        if !arg(args, 0).is_null() {
            self.0 += 1;
        }
        Ok(())
    }
    fn removable(&self) -> bool {
        true
    }
    fn remove(&mut self, args: &[Value]) -> Result<(), FnError> {
        if !arg(args, 0).is_null() {
            self.0 -= 1;
        }
        Ok(())
    }
    fn result(&self) -> Value {
        Value::Int(self.0)
    }
}

// --------------------------------------------------------------- max / min

#[derive(PartialEq)]
enum Kind {
    None,
    Number,
    Str,
    Time,
}

/// Running maximum/minimum with eKuiper's typing: the first non-nil value
/// fixes the kind (number, string or datetime); a later value of another kind
/// is an error. Ints and floats compare numerically; the winner keeps its
/// own type.
pub(crate) struct Extreme {
    name: &'static str,
    max: bool,
    kind: Kind,
    best: Value,
}

impl Extreme {
    pub(crate) fn new(name: &'static str, max: bool) -> Extreme {
        Extreme {
            name,
            max,
            kind: Kind::None,
            best: Value::Null,
        }
    }

    fn better(&self, v: &Value) -> bool {
        let ord = match (&self.best, v) {
            (Value::Int(a), Value::Int(b)) => b.cmp(a),
            (Value::Str(a), Value::Str(b)) => b.as_ref().cmp(a.as_ref()),
            (Value::Datetime(a), Value::Datetime(b)) => b.cmp(a),
            (a, b) => match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => y.total_cmp(&x),
                _ => return false,
            },
        };
        if self.max {
            ord.is_gt()
        } else {
            ord.is_lt()
        }
    }

    pub(crate) fn push(&mut self, v: &Value) -> Result<(), FnError> {
        let kind = match v {
            Value::Null => return Ok(()),
            Value::Int(_) => Kind::Number,
            Value::Float(f) if !f.is_nan() => Kind::Number,
            Value::Str(_) => Kind::Str,
            Value::Datetime(_) => Kind::Time,
            other => return Err(invalid_arg(self.name, other)),
        };
        if self.kind == Kind::None {
            self.kind = kind;
            self.best = v.clone();
            return Ok(());
        }
        if kind != self.kind {
            let want = match (&self.kind, &self.best) {
                (Kind::Str, _) => "string",
                (Kind::Time, _) => "time.Time",
                (_, Value::Float(_)) => "float64",
                _ => "int64",
            };
            return Err(FnError::call(
                self.name,
                format!("requires {want} but found {}", go_desc(v)),
            ));
        }
        if self.better(v) {
            self.best = v.clone();
        }
        Ok(())
    }

    pub(crate) fn value(&self) -> Value {
        self.best.clone()
    }
}

struct ExtremeAcc(Extreme);

impl Accumulator for ExtremeAcc {
    fn add(&mut self, args: &[Value]) -> Result<(), FnError> {
        self.0.push(arg(args, 0))
    }
    fn result(&self) -> Value {
        self.0.value()
    }
}

// ------------------------------------------------------ collect / merge_agg

struct Collect(Vec<Value>);

impl Accumulator for Collect {
    fn add(&mut self, args: &[Value]) -> Result<(), FnError> {
        self.0.push(arg(args, 0).clone());
        Ok(())
    }
    fn result(&self) -> Value {
        varray(self.0.clone())
    }
}

/// Union of the keys of every object argument (later values win); non-object
/// values are ignored; nil when nothing was merged.
struct MergeAgg(Map);

impl Accumulator for MergeAgg {
    fn add(&mut self, args: &[Value]) -> Result<(), FnError> {
        if let Value::Object(m) = arg(args, 0) {
            self.0.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Ok(())
    }
    fn result(&self) -> Value {
        if self.0.is_empty() {
            Value::Null
        } else {
            Value::Object(Arc::new(self.0.clone()))
        }
    }
}

// ------------------------------------------------------------- deduplicate

/// `deduplicate(col, all)`: rows whose `col` value was not seen before in the
/// group. With `all` the result is the array of those rows; otherwise the
/// latest row if it is new, else nil (eKuiper then emits `{}`).
struct Dedup {
    all: Option<bool>,
    seen: AHashSet<String>,
    rows: Vec<Value>,
    last: Value,
    last_new: bool,
}

fn bool_param(name: &'static str, v: &Value) -> Result<bool, FnError> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => Err(FnError::call(
            name,
            format!(
                "the second parameter requires bool but found {}",
                go_desc(other)
            ),
        )),
    }
}

impl Dedup {
    fn create(consts: &[Value]) -> Result<Box<dyn Accumulator>, FnError> {
        let all = match const_at(consts, 1) {
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                return Err(FnError::validate(
                    "deduplicate",
                    "Expect bool type for parameter 2",
                ))
            }
            None => None,
        };
        Ok(Box::new(Dedup {
            all,
            seen: AHashSet::new(),
            rows: Vec::new(),
            last: Value::Null,
            last_new: false,
        }))
    }
}

impl Accumulator for Dedup {
    fn add(&mut self, args: &[Value]) -> Result<(), FnError> {
        let all = match self.all {
            Some(b) => b,
            None => {
                let b = bool_param("deduplicate", arg(args, 1))?;
                self.all = Some(b);
                b
            }
        };
        let key = arg(args, 0);
        let row = args.get(2).unwrap_or(key);
        self.last_new = self.seen.insert(go_v(key));
        if all {
            if self.last_new {
                self.rows.push(row.clone());
            }
        } else {
            self.last = row.clone();
        }
        Ok(())
    }
    fn result(&self) -> Value {
        match self.all {
            Some(true) => varray(self.rows.clone()),
            _ if self.last_new => self.last.clone(),
            _ => Value::Null,
        }
    }
}

// ------------------------------------------------------ stddev / variance

#[derive(Clone, Copy)]
enum SpreadKind {
    StddevPop,
    StddevSample,
    VarPop,
    VarSample,
}

/// Keeps the values and computes the two-pass (mean, then squared
/// deviations) statistic like eKuiper's `montanaflynn/stats`.
struct Spread {
    name: &'static str,
    kind: SpreadKind,
    xs: Vec<f64>,
}

impl Spread {
    fn boxed(name: &'static str, kind: SpreadKind) -> Box<dyn Accumulator> {
        Box::new(Spread {
            name,
            kind,
            xs: Vec::new(),
        })
    }
}

fn number(name: &'static str, v: &Value) -> Result<Option<f64>, FnError> {
    match v {
        Value::Null => Ok(None),
        Value::Int(i) => Ok(Some(*i as f64)),
        Value::Float(f) => Ok(Some(*f)),
        other => Err(FnError::call(
            name,
            format!("requires float64 but found {}", go_desc(other)),
        )),
    }
}

impl Accumulator for Spread {
    fn add(&mut self, args: &[Value]) -> Result<(), FnError> {
        if let Some(x) = number(self.name, arg(args, 0))? {
            self.xs.push(x);
        }
        Ok(())
    }
    fn result(&self) -> Value {
        let n = self.xs.len();
        let sample = matches!(self.kind, SpreadKind::StddevSample | SpreadKind::VarSample);
        if n == 0 || (sample && n < 2) {
            return Value::Null;
        }
        let mean = self.xs.iter().sum::<f64>() / n as f64;
        let ss: f64 = self.xs.iter().map(|x| (x - mean) * (x - mean)).sum();
        let var = ss / (n - usize::from(sample)) as f64;
        Value::Float(match self.kind {
            SpreadKind::StddevPop | SpreadKind::StddevSample => var.sqrt(),
            SpreadKind::VarPop | SpreadKind::VarSample => var,
        })
    }
}

// ------------------------------------------------------------------ median

/// Median; all-integer input gives an integer for an odd count.
#[derive(Default)]
struct Median {
    ints: Vec<i64>,
    floats: Vec<f64>,
}

impl Accumulator for Median {
    fn add(&mut self, args: &[Value]) -> Result<(), FnError> {
        match arg(args, 0) {
            Value::Null => {}
            Value::Int(i) => self.ints.push(*i),
            Value::Float(f) => self.floats.push(*f),
            other => {
                return Err(FnError::call(
                    "median",
                    format!("{} should be number", go_v(other)),
                ))
            }
        }
        Ok(())
    }
    fn result(&self) -> Value {
        if self.floats.is_empty() {
            let mut v = self.ints.clone();
            v.sort_unstable();
            let n = v.len();
            return match n {
                0 => Value::Null,
                _ if n % 2 == 1 => Value::Int(v[n / 2]),
                _ => Value::Float((v[n / 2 - 1] as f64 + v[n / 2] as f64) / 2.0),
            };
        }
        let mut v: Vec<f64> = self.ints.iter().map(|i| *i as f64).collect();
        v.extend_from_slice(&self.floats);
        v.sort_by(f64::total_cmp);
        let n = v.len();
        Value::Float(if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        })
    }
}

// ------------------------------------------------------------- percentiles

struct Percentile {
    name: &'static str,
    discrete: bool,
    p: Option<f64>,
    xs: Vec<f64>,
}

impl Percentile {
    fn check(name: &'static str, discrete: bool, v: &Value) -> Result<f64, String> {
        let p = match v {
            Value::Int(i) => *i as f64,
            Value::Float(f) => *f,
            other => {
                return Err(format!(
                    "the second parameter requires float64 but found {}",
                    go_desc(other)
                ))
            }
        };
        let ok = if discrete {
            (0.0..=1.0).contains(&p)
        } else {
            p > 0.0 && p <= 1.0
        };
        if !ok {
            return Err(format!("{name}: the percentile {p} is outside of range"));
        }
        Ok(p)
    }

    fn create(
        name: &'static str,
        discrete: bool,
        consts: &[Value],
    ) -> Result<Box<dyn Accumulator>, FnError> {
        let p = match const_at(consts, 1) {
            Some(v) => {
                Some(Self::check(name, discrete, v).map_err(|m| FnError::validate(name, m))?)
            }
            None => None,
        };
        Ok(Box::new(Percentile {
            name,
            discrete,
            p,
            xs: Vec::new(),
        }))
    }
}

impl Accumulator for Percentile {
    fn add(&mut self, args: &[Value]) -> Result<(), FnError> {
        if self.p.is_none() {
            let p = Self::check(self.name, self.discrete, arg(args, 1))
                .map_err(|m| FnError::call(self.name, m))?;
            self.p = Some(p);
        }
        if let Some(x) = number(self.name, arg(args, 0))? {
            self.xs.push(x);
        }
        Ok(())
    }
    fn result(&self) -> Value {
        let (Some(p), n) = (self.p, self.xs.len()) else {
            return Value::Null;
        };
        if n == 0 {
            return Value::Null;
        }
        let mut c = self.xs.clone();
        c.sort_by(f64::total_cmp);
        if self.discrete {
            // Nearest rank.
            if p >= 1.0 {
                return Value::Float(c[n - 1]);
            }
            let rank = (n as f64 * p).ceil() as usize;
            return Value::Float(c[rank.saturating_sub(1).min(n - 1)]);
        }
        if n == 1 {
            return Value::Float(c[0]);
        }
        // montanaflynn/stats Percentile: index = p·n; an integral index picks
        // that element, otherwise the mean of the two neighbours.
        let index = p * n as f64;
        let i = index as usize;
        let v = if index.fract() == 0.0 && i >= 1 {
            c[(i - 1).min(n - 1)]
        } else if index > 1.0 {
            (c[i - 1] + c[i.min(n - 1)]) / 2.0
        } else {
            c[0]
        };
        Value::Float(v)
    }
}

// -------------------------------------------------------------- last_value

/// `last_value(col, ignore_null)`.
struct LastValue {
    ignore_null: Option<bool>,
    last: Value,
    last_non_null: Value,
}

impl LastValue {
    fn create(consts: &[Value]) -> Result<Box<dyn Accumulator>, FnError> {
        let ignore_null = match const_at(consts, 1) {
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                return Err(FnError::validate(
                    "last_value",
                    "Expect bool type for parameter 2",
                ))
            }
            None => None,
        };
        Ok(Box::new(LastValue {
            ignore_null,
            last: Value::Null,
            last_non_null: Value::Null,
        }))
    }
}

impl Accumulator for LastValue {
    fn add(&mut self, args: &[Value]) -> Result<(), FnError> {
        if self.ignore_null.is_none() {
            self.ignore_null = Some(bool_param("last_value", arg(args, 1))?);
        }
        let v = arg(args, 0);
        if !v.is_null() {
            self.last_non_null = v.clone();
        }
        self.last = v.clone();
        Ok(())
    }
    fn result(&self) -> Value {
        if self.ignore_null == Some(true) {
            self.last_non_null.clone()
        } else {
            self.last.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{aggregate, FnError};
    use oort_core::{Map, Value};
    use std::sync::Arc;

    fn i(v: i64) -> Value {
        Value::Int(v)
    }
    fn fl(v: f64) -> Value {
        Value::Float(v)
    }
    fn s(v: &str) -> Value {
        Value::str(v)
    }
    fn b(v: bool) -> Value {
        Value::Bool(v)
    }
    fn a(v: Vec<Value>) -> Value {
        Value::Array(Arc::new(v))
    }
    fn o(kv: &[(&str, Value)]) -> Value {
        let m: Map = kv.iter().map(|(k, v)| (Arc::from(*k), v.clone())).collect();
        Value::Object(Arc::new(m))
    }
    const N: Value = Value::Null;

    /// (aggregate, constant args, rows of args, expected).
    type Case<T> = (&'static str, Vec<Value>, Vec<Vec<Value>>, T);

    /// Runs `name` over rows of arguments, with `consts` at creation.
    fn run(name: &str, consts: &[Value], rows: &[Vec<Value>]) -> Result<Value, FnError> {
        let f = aggregate(name).unwrap_or_else(|| panic!("no aggregate {name}"));
        let mut acc = (f.new)(consts)?;
        for r in rows {
            acc.add(r)?;
        }
        Ok(acc.result())
    }

    fn col(vals: &[Value]) -> Vec<Vec<Value>> {
        vals.iter().map(|v| vec![v.clone()]).collect()
    }

    #[test]
    fn table() {
        let ints = col(&[i(100), i(150), N, i(200), N]);
        let floats = col(&[fl(100.0), fl(150.0), fl(200.0)]);
        let strs = col(&[s("foo"), s("bar"), s("self")]);
        let cases: Vec<Case<Value>> = vec![
            ("avg", vec![], ints.clone(), fl(150.0)),
            ("avg", vec![], col(&[i(1), i(2)]), fl(1.5)),
            ("avg", vec![], col(&[N]), N),
            ("count", vec![], ints.clone(), i(3)),
            ("count", vec![], vec![], i(0)),
            ("max", vec![], ints.clone(), i(200)),
            ("max", vec![], floats.clone(), fl(200.0)),
            ("max", vec![], strs.clone(), s("self")),
            ("max", vec![], col(&[i(1), fl(2.5), i(2)]), fl(2.5)),
            ("max", vec![], col(&[N]), N),
            ("min", vec![], ints.clone(), i(100)),
            ("min", vec![], strs.clone(), s("bar")),
            (
                "min",
                vec![],
                col(&[Value::Datetime(5), Value::Datetime(3)]),
                Value::Datetime(3),
            ),
            ("sum", vec![], ints.clone(), i(450)),
            ("sum", vec![], col(&[i(1), fl(0.5)]), fl(1.5)),
            (
                "sum",
                vec![],
                col(&[i(i64::MAX), i(1)]),
                fl(i64::MAX as f64 + 1.0),
            ),
            ("sum", vec![], col(&[N]), N),
            (
                "collect",
                vec![],
                col(&[i(3), N, i(6)]),
                a(vec![i(3), N, i(6)]),
            ),
            ("collect", vec![], vec![], a(vec![])),
            (
                "merge_agg",
                vec![],
                col(&[
                    o(&[("foo", s("bar")), ("a", i(123))]),
                    i(7),
                    o(&[("foo1", s("bar")), ("a", i(243))]),
                    o(&[("foo", s("bar1")), ("a", i(342))]),
                ]),
                o(&[("a", i(342)), ("foo", s("bar1")), ("foo1", s("bar"))]),
            ),
            ("merge_agg", vec![], col(&[i(100), i(150)]), N),
            ("stddev", vec![], ints.clone(), fl(40.824829046386306)),
            ("stddevs", vec![], ints.clone(), fl(50.0)),
            ("var", vec![], floats.clone(), fl(1666.6666666666667)),
            ("vars", vec![], floats.clone(), fl(2500.0)),
            ("vars", vec![], col(&[i(1)]), N),
            ("stddev", vec![], col(&[N]), N),
            ("median", vec![], col(&[i(3), i(1), i(2)]), i(2)),
            ("median", vec![], col(&[i(4), i(1), i(2), i(3)]), fl(2.5)),
            ("median", vec![], col(&[fl(1.5), i(1), N]), fl(1.25)),
            ("median", vec![], col(&[N]), N),
            ("percentile_cont", vec![N, fl(0.5)], ints.clone(), fl(125.0)),
            ("percentile_disc", vec![N, fl(0.5)], ints.clone(), fl(150.0)),
            ("percentile_cont", vec![N, fl(1.0)], ints.clone(), fl(200.0)),
            ("percentile_disc", vec![N, fl(0.0)], ints.clone(), fl(100.0)),
            (
                "percentile_cont",
                vec![N, fl(0.25)],
                col(&[i(1), i(2), i(3), i(4)]),
                fl(1.0),
            ),
            ("percentile_cont", vec![N, fl(0.5)], vec![], N),
            // Non-constant percentile: read from the rows.
            (
                "percentile_disc",
                vec![N, N],
                vec![vec![i(1), fl(0.5)], vec![i(2), fl(0.5)]],
                fl(1.0),
            ),
            ("last_value", vec![N, b(true)], col(&[i(1), i(2), N]), i(2)),
            ("last_value", vec![N, b(false)], col(&[i(1), i(2), N]), N),
            (
                "last_value",
                vec![N, N],
                vec![vec![s("foo"), b(true)], vec![s("self"), b(true)]],
                s("self"),
            ),
            ("last_value", vec![N, b(false)], vec![], N),
        ];
        for (name, consts, rows, want) in cases {
            assert_eq!(run(name, &consts, &rows), Ok(want), "{name} over {rows:?}");
        }
    }

    #[test]
    fn errors() {
        let strs = col(&[s("foo"), s("bar")]);
        let cases: Vec<Case<&str>> = vec![
            ("avg", vec![], strs.clone(), "call func avg error: found invalid arg string(foo)"),
            ("sum", vec![], col(&[i(1), b(true)]), "call func sum error: found invalid arg bool(true)"),
            ("max", vec![], col(&[i(1), s("a")]), "call func max error: requires int64 but found string(a)"),
            ("min", vec![], col(&[s("a"), fl(1.0)]), "call func min error: requires string but found float64(1)"),
            ("stddev", vec![], strs.clone(), "call func stddev error: requires float64 but found string(foo)"),
            ("median", vec![], strs.clone(), "call func median error: foo should be number"),
            ("percentile_cont", vec![N, fl(1.5)], vec![], "validate function percentile_cont error: percentile_cont: the percentile 1.5 is outside of range"),
            ("percentile_disc", vec![N, N], vec![vec![i(1), s("x")]], "call func percentile_disc error: the second parameter requires float64 but found string(x)"),
            ("last_value", vec![N, i(1)], vec![], "validate function last_value error: Expect bool type for parameter 2"),
            ("last_value", vec![N, N], vec![vec![i(1), i(1)]], "call func last_value error: the second parameter requires bool but found int64(1)"),
            ("deduplicate", vec![N, s("x")], vec![], "validate function deduplicate error: Expect bool type for parameter 2"),
        ];
        for (name, consts, rows, want) in cases {
            assert_eq!(
                run(name, &consts, &rows).map_err(|e| e.to_string()),
                Err(want.to_string()),
                "{name}"
            );
        }
    }

    /// §6.4 case #36: `deduplicate(color, false)` over a sliding window, one
    /// accumulator per emitted window, each window holding all events so far.
    #[test]
    fn deduplicate_latest_per_window() {
        let colors = ["red", "blue", "blue", "yellow", "red"];
        let row = |c: &str| o(&[("color", s(c))]);
        let mut got = Vec::new();
        for end in 1..=colors.len() {
            let rows: Vec<Vec<Value>> = colors[..end]
                .iter()
                .map(|c| vec![s(c), b(false), row(c)])
                .collect();
            got.push(run("deduplicate", &[N, b(false)], &rows).unwrap());
        }
        assert_eq!(got, vec![row("red"), row("blue"), N, row("yellow"), N]);
    }

    #[test]
    fn deduplicate_all_keeps_first_seen_rows() {
        let rows: Vec<Vec<Value>> = [(1, "a"), (2, "b"), (1, "c"), (3, "d")]
            .iter()
            .map(|(k, tag)| vec![i(*k), b(true), o(&[("k", i(*k)), ("t", s(tag))])])
            .collect();
        assert_eq!(
            run("deduplicate", &[N, b(true)], &rows),
            Ok(a(vec![
                o(&[("k", i(1)), ("t", s("a"))]),
                o(&[("k", i(2)), ("t", s("b"))]),
                o(&[("k", i(3)), ("t", s("d"))]),
            ]))
        );
        // Without the row argument the key values are collected.
        let keys = vec![vec![i(1)], vec![i(1)], vec![i(2)]];
        assert_eq!(
            run("deduplicate", &[N, b(true)], &keys),
            Ok(a(vec![i(1), i(2)]))
        );
    }

    #[test]
    fn result_can_be_read_repeatedly_while_adding() {
        let f = aggregate("SUM").unwrap();
        let mut acc = (f.new)(&[N]).unwrap();
        acc.add(&[i(1)]).unwrap();
        assert_eq!(acc.result(), i(1));
        acc.add(&[i(2)]).unwrap();
        assert_eq!(acc.result(), i(3));
        assert_eq!(acc.result(), i(3));
    }
}
