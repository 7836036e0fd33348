//! Any text through the SQL parser, and every SELECT that parses through the
//! planner and one event: nothing may panic or overflow the stack.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use oort_core::{Event, Row, Value};
use oort_sql::ast::{Statement, StreamDef, StreamKind, StreamOptions};
use oort_sql::engine::{compile, Catalog, QueryOptions};

struct Any;

impl Catalog for Any {
    fn lookup(&self, name: &str) -> Option<StreamDef> {
        Some(StreamDef {
            kind: StreamKind::Stream,
            name: name.into(),
            columns: vec![],
            options: StreamOptions::default(),
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let _ = oort_sql::parser::parse_expr(sql);
    let Ok(Statement::Select(sel)) = oort_sql::parser::parse_statement(sql) else {
        return;
    };
    let Ok(plan) = compile(&sel, &Any, &QueryOptions::default()) else {
        return;
    };
    let mut q = plan.instantiate();
    let j = serde_json::json!({"a": 1, "b": [1, 2, {"c": "x"}], "s": "text", "f": 1.5});
    let Value::Object(m) = Value::from_json(&j) else {
        return;
    };
    let ev = Arc::new(Event {
        row: Row::from_map(&m),
        meta: None,
        seq: 0,
        ts: 1,
    });
    let mut out = Vec::new();
    q.on_event(0, &ev, &mut out);
    q.on_tick(1_000_000, &mut out);
});
