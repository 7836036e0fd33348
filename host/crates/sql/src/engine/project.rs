//! The projection: turns one row (or one group's first row plus its
//! aggregates) into output rows. Output schemas known at plan time are
//! reused; `SELECT *` alone passes the input row through; nil fields are
//! dropped unless `sendNilField`; `changed_cols` and `unnest` expand into
//! several columns / rows.

use std::sync::Arc;

use oort_core::{Row, Schema, Value};

use super::analytic::ChangedColsState;
use super::expr::Ctx;
use super::plan::{Plan, ProjItem};
use super::tuple::{Parts, Tuple};

/// Schemas reused across rows.
#[derive(Debug, Default)]
pub(crate) struct ProjCache {
    dynamic: Option<Arc<Schema>>,
    /// Static schema minus nil fields, by bitmask of kept fields.
    masked: Vec<(u64, Arc<Schema>)>,
}

impl ProjCache {
    fn schema_for(&mut self, names: &[Arc<str>]) -> Arc<Schema> {
        if let Some(s) = &self.dynamic {
            if s.len() == names.len()
                && s.names()
                    .iter()
                    .zip(names)
                    .all(|(a, b)| Arc::ptr_eq(a, b) || a == b)
            {
                return s.clone();
            }
        }
        let s = Arc::new(Schema::new(names.to_vec()));
        self.dynamic = Some(s.clone());
        s
    }
}

/// A row being assembled: later writes of the same name replace the value.
struct Builder {
    names: Vec<Arc<str>>,
    values: Vec<Value>,
}

impl Builder {
    fn with_capacity(n: usize) -> Builder {
        Builder {
            names: Vec::with_capacity(n),
            values: Vec::with_capacity(n),
        }
    }

    fn pos(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n.as_ref() == name)
    }

    fn set(&mut self, name: Arc<str>, v: Value) {
        match self.pos(&name) {
            Some(i) => {
                if let Some(slot) = self.values.get_mut(i) {
                    *slot = v;
                }
            }
            None => {
                self.names.push(name);
                self.values.push(v);
            }
        }
    }

    fn add_if_absent(&mut self, name: &Arc<str>, v: &Value) {
        if self.pos(name).is_none() {
            self.names.push(name.clone());
            self.values.push(v.clone());
        }
    }

    fn add_row(&mut self, row: &Row, except: &[String]) {
        for (k, v) in row.iter() {
            if except.iter().any(|e| e.as_str() == k.as_ref()) {
                continue;
            }
            self.add_if_absent(k, v);
        }
    }
}

fn sel_err(label: &str, e: String) -> String {
    format!("run Select error: {label} meet error, err:{e}")
}

/// The input row of a `SELECT *` passthrough.
fn merged_row(t: &Tuple) -> Row {
    match &t.parts {
        Parts::One { ev, .. } => ev.row.clone(),
        Parts::Many(_) => {
            let mut b = Builder::with_capacity(8);
            for ev in t.events() {
                b.add_row(&ev.row, &[]);
            }
            Row::new(Arc::new(Schema::new(b.names)), b.values)
        }
    }
}

/// Projects the context's row into `out` (one row, or several for
/// `unnest`). Errors carry eKuiper's `expr: ... meet error, err:...` text.
pub(crate) fn project(
    plan: &Plan,
    ctx: &Ctx,
    changed: &mut [ChangedColsState],
    cache: &mut ProjCache,
    out: &mut Vec<Row>,
) -> Result<(), String> {
    let proj = &plan.proj;
    let send_nil = plan.opts.send_nil_field;
    if proj.passthrough {
        if let Some(t) = ctx.tuple {
            out.push(merged_row(t));
        } else {
            out.push(Row::empty());
        }
        return Ok(());
    }
    if let Some(schema) = &proj.static_schema {
        let mut values = vec![Value::Null; schema.len()];
        let mut any_null = false;
        for item in &proj.items {
            if let ProjItem::Expr {
                name,
                expr,
                invisible: false,
                label,
            } = item
            {
                let v = expr.eval(ctx).map_err(|e| sel_err(label, e))?;
                if let Some(slot) = schema.slot(name).and_then(|i| values.get_mut(i)) {
                    *slot = v;
                }
            }
        }
        if !send_nil {
            any_null = values.iter().any(Value::is_null);
        }
        if !any_null {
            out.push(Row::new(schema.clone(), values));
            return Ok(());
        }
        let mut mask = 0u64;
        for (i, v) in values.iter().enumerate().take(64) {
            if !v.is_null() {
                mask |= 1 << i;
            }
        }
        let cached = if values.len() <= 64 {
            cache
                .masked
                .iter()
                .find(|(m, _)| *m == mask)
                .map(|(_, s)| s.clone())
        } else {
            None
        };
        let s = match cached {
            Some(s) => s,
            None => {
                // Names of the non-null values, read from the values
                // themselves: the mask only covers the first 64 columns.
                let names: Vec<Arc<str>> = schema
                    .names()
                    .iter()
                    .zip(&values)
                    .filter(|(_, v)| !v.is_null())
                    .map(|(n, _)| n.clone())
                    .collect();
                let s = Arc::new(Schema::new(names));
                if schema.len() <= 64 && cache.masked.len() < 64 {
                    cache.masked.push((mask, s.clone()));
                }
                s
            }
        };
        let kept: Vec<Value> = values.into_iter().filter(|v| !v.is_null()).collect();
        out.push(Row::new(s, kept));
        return Ok(());
    }

    // Dynamic shape.
    let mut b = Builder::with_capacity(16);
    let mut unnest: Option<(Arc<str>, Value, &str)> = None;
    for item in &proj.items {
        match item {
            ProjItem::Wildcard { except, replace } => {
                if let Some(t) = ctx.tuple {
                    for ev in t.events() {
                        b.add_row(&ev.row, except);
                    }
                }
                for (name, expr, label) in replace {
                    let v = expr.eval(ctx).map_err(|e| sel_err(label, e))?;
                    if v.is_null() && !send_nil {
                        if let Some(i) = b.pos(name) {
                            b.names.remove(i);
                            b.values.remove(i);
                        }
                    } else {
                        b.set(name.clone(), v);
                    }
                }
            }
            ProjItem::SrcWildcard(src) => {
                if let Some(ev) = ctx.tuple.and_then(|t| t.part(*src)) {
                    b.add_row(&ev.row, &[]);
                }
            }
            ProjItem::Expr {
                name,
                expr,
                invisible,
                label,
            } => {
                if *invisible {
                    continue;
                }
                let v = expr.eval(ctx).map_err(|e| sel_err(label, e))?;
                if v.is_null() && !send_nil {
                    continue;
                }
                b.set(name.clone(), v);
            }
            ProjItem::ChangedCols {
                id,
                prefix,
                ignore_null,
                cols,
                star,
                label,
            } => {
                let err = |e: String| sel_err(label, e);
                let prefix = match prefix.eval(ctx).map_err(err)? {
                    Value::Str(s) => s.to_string(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                let ignore = match ignore_null.eval(ctx).map_err(err)? {
                    Value::Bool(x) => x,
                    other => {
                        return Err(err(format!(
                            "the second argument of changed_cols must be a bool but got {}",
                            super::ops::go_desc(&other)
                        )))
                    }
                };
                let mut current: Vec<(Arc<str>, Value)> = Vec::new();
                if *star {
                    if let Some(t) = ctx.tuple {
                        for ev in t.events() {
                            for (k, v) in ev.row.iter() {
                                if !current.iter().any(|(n, _)| n == k) {
                                    current.push((k.clone(), v.clone()));
                                }
                            }
                        }
                    }
                }
                for (n, e) in cols {
                    current.push((n.clone(), e.eval(ctx).map_err(err)?));
                }
                let mut changed_now = Vec::new();
                if let Some(st) = changed.get_mut(*id) {
                    st.step(ignore, current.into_iter(), &mut changed_now);
                }
                for (n, v) in changed_now {
                    b.set(Arc::from(format!("{prefix}{n}").as_str()), v);
                }
            }
            ProjItem::Unnest {
                name,
                expr,
                label,
                extract,
            } => {
                let mut v = expr.eval(ctx).map_err(|e| sel_err(label, e))?;
                if *extract {
                    v = match v {
                        Value::Object(_) | Value::Null => Value::Array(Arc::new(vec![v])),
                        _ => return Err(sel_err(label, "extract should use map".to_string())),
                    };
                }
                unnest = Some((name.clone(), v, label));
            }
        }
    }
    match unnest {
        None => {
            let schema = cache.schema_for(&b.names);
            out.push(Row::new(schema, b.values));
        }
        Some((name, v, _)) => {
            let Value::Array(items) = v else {
                return Err("the argument for the unnest function should be array".to_string());
            };
            for item in items.iter() {
                let mut rb = Builder {
                    names: b.names.clone(),
                    values: b.values.clone(),
                };
                match item {
                    Value::Object(o) => {
                        for (k, x) in o.iter() {
                            rb.set(k.clone(), x.clone());
                        }
                    }
                    other => {
                        if !other.is_null() || send_nil {
                            rb.set(name.clone(), other.clone());
                        }
                    }
                }
                let schema = cache.schema_for(&rb.names);
                out.push(Row::new(schema, rb.values));
            }
        }
    }
    Ok(())
}
