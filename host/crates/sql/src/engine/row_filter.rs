//! A condition over result rows, compiled once: the cases of a graph
//! rule's `switch` node route each result row to the sinks of the cases it
//! matches. The condition is an ordinary SQL expression over the row's
//! fields (no aggregates, no analytic functions: it sees one row).

use std::sync::Arc;

use oort_core::{Event, Row};

use super::tuple::{Hits, Tuple};
use super::{compile, mk_ctx, Catalog, QueryOptions, QueryPlan};
use crate::ast::{FromItem, Select, SelectItem, StreamDef, StreamKind, StreamOptions};
use crate::SqlError;

/// The one (schemaless) stream a condition reads.
struct RowCatalog;

const ROW: &str = "__row";

impl Catalog for RowCatalog {
    fn lookup(&self, name: &str) -> Option<StreamDef> {
        (name == ROW).then(|| StreamDef {
            kind: StreamKind::Stream,
            name: ROW.into(),
            columns: vec![],
            options: StreamOptions::default(),
        })
    }
}

/// A compiled row condition.
#[derive(Debug)]
pub struct RowFilter {
    plan: QueryPlan,
}

impl RowFilter {
    /// Compiles `cond` (eKuiper's expression syntax).
    pub fn compile(cond: &str) -> Result<RowFilter, SqlError> {
        let expr = crate::parser::parse_expr(cond)?;
        let sel = Select {
            fields: vec![SelectItem::Wildcard {
                except: vec![],
                replace: vec![],
            }],
            from: FromItem {
                name: ROW.into(),
                alias: None,
            },
            joins: vec![],
            where_: Some(expr),
            group_by: vec![],
            window: None,
            having: None,
            order_by: vec![],
            limit: None,
        };
        let plan = compile(&sel, &RowCatalog, &QueryOptions::default())?;
        if !plan.inner.analytic.is_empty() {
            return Err(SqlError::plan(
                "a row condition cannot use analytic functions (lag, latest, acc_*...)",
            ));
        }
        Ok(RowFilter { plan })
    }

    /// Whether `row` matches (NULL and false do not).
    pub fn matches(&self, row: &Row) -> Result<bool, String> {
        let Some(f) = &self.plan.inner.pre_filter else {
            return Ok(true);
        };
        let t = Tuple::one(
            0,
            Arc::new(Event {
                row: row.clone(),
                meta: None,
                seq: 0,
                ts: 0,
            }),
        );
        // No hit counters: a condition cannot use analytic functions.
        let hits = Hits::default();
        let ctx = mk_ctx(
            &self.plan.inner,
            &hits,
            Some(&t),
            &[],
            None,
            false,
            1,
            (0, 0),
        );
        f.eval_cond(&ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oort_core::{Schema, Value};

    #[test]
    fn conditions_match_rows() {
        let schema = Arc::new(Schema::from_strs(&["t", "name"]));
        let row = Row::new(schema, vec![Value::Int(30), Value::str("a")]);
        let f = RowFilter::compile("t > 25 AND name = \"a\"").unwrap();
        assert!(f.matches(&row).unwrap());
        let f = RowFilter::compile("t > 40").unwrap();
        assert!(!f.matches(&row).unwrap());
        // A missing field is NULL: no match.
        let f = RowFilter::compile("missing > 1").unwrap();
        assert!(!f.matches(&row).unwrap());
        assert!(RowFilter::compile("lag(t) > 1").is_err());
        assert!(RowFilter::compile("count(*) > 1").is_err());
        assert!(RowFilter::compile("t > 1 GROUP BY x").is_err());
    }
}
