//! Lookup joins: planning (what eKuiper refuses) and joining each row, or
//! each window row, with the rows a lookup table returns for its keys.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use oort_core::{Event, Row, SharedEvent, Value};
use serde_json::{json, Value as Json};

use super::*;
use crate::ast::Statement;
use crate::parser::{parse_select, parse_statement};

struct Cat(Vec<StreamDef>);

impl Catalog for Cat {
    fn lookup(&self, name: &str) -> Option<StreamDef> {
        self.0.iter().find(|d| d.name == name).cloned()
    }
}

fn cat() -> Cat {
    Cat([
        "CREATE STREAM demo () WITH (DATASOURCE=\"d\")",
        "CREATE STREAM other () WITH (DATASOURCE=\"o\")",
        "CREATE TABLE alerts () WITH (DATASOURCE=\"0\", TYPE=\"redis\", KIND=\"lookup\")",
        "CREATE TABLE devs () WITH (DATASOURCE=\"t\", TYPE=\"memory\", KIND=\"lookup\", KEY=\"id\")",
        "CREATE TABLE scan () WITH (DATASOURCE=\"s.json\", TYPE=\"file\")",
    ]
    .iter()
    .map(|d| match parse_statement(d) {
        Ok(Statement::CreateStream(s)) => s,
        other => panic!("{d}: {other:?}"),
    })
    .collect())
}

fn ev(j: Json, ts: i64) -> SharedEvent {
    let Value::Object(m) = Value::from_json(&j) else {
        panic!("object expected")
    };
    Arc::new(Event {
        row: Row::from_map(&m),
        meta: None,
        seq: 0,
        ts,
    })
}

fn compile_err(sql: &str) -> String {
    let sel = parse_select(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    match compile(&sel, &cat(), &QueryOptions::default()) {
        Ok(_) => panic!("{sql}: compiled"),
        Err(e) => e.to_string(),
    }
}

fn plan(sql: &str) -> QueryPlan {
    let sel = parse_select(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let o = QueryOptions {
        send_error: true,
        ..QueryOptions::default()
    };
    compile(&sel, &cat(), &o).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// A table of rows by `id`, recording each lookup's keys and values.
#[derive(Debug, Default)]
struct Table {
    rows: Vec<Json>,
    asked: Mutex<Vec<(Vec<String>, Vec<Value>)>>,
    calls: AtomicUsize,
    fail: bool,
}

impl LookupRows for Table {
    fn lookup(&self, keys: &[Arc<str>], values: &[Value]) -> Result<Arc<[SharedEvent]>, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.asked.lock().unwrap().push((
            keys.iter().map(|k| k.to_string()).collect(),
            values.to_vec(),
        ));
        if self.fail {
            return Err("lookup table alerts: redis down".into());
        }
        Ok(self
            .rows
            .iter()
            .map(|r| ev(r.clone(), 0))
            .filter(|e| {
                keys.iter()
                    .zip(values)
                    .all(|(k, v)| e.row.get(k) == Some(v))
            })
            .collect())
    }
}

fn rows(out: &[Output]) -> Vec<Json> {
    out.iter()
        .flat_map(|o| match o {
            Output::Rows(r) => r.iter().map(Row::to_json).collect::<Vec<_>>(),
            Output::Error(e) => vec![json!({ "error": e })],
        })
        .collect()
}

fn alerts() -> Arc<Table> {
    Arc::new(Table {
        rows: vec![
            json!({"id": 1, "alarm": 50}),
            json!({"id": 2, "alarm": 80}),
            json!({"id": 2, "alarm": 90}),
        ],
        ..Table::default()
    })
}

#[test]
fn plan_refuses_what_a_lookup_join_cannot_do() {
    let e = compile_err("SELECT * FROM alerts");
    assert!(e.contains("lookup table alerts can only be joined"), "{e}");
    let e = compile_err("SELECT * FROM demo RIGHT JOIN alerts ON demo.k = alerts.id");
    assert!(e.contains("INNER or LEFT"), "{e}");
    let e = compile_err("SELECT * FROM demo CROSS JOIN alerts");
    assert!(e.contains("INNER or LEFT"), "{e}");
    let e = compile_err("SELECT * FROM demo INNER JOIN alerts ON demo.v > alerts.alarm");
    assert!(
        e.contains("at least one equi-join predicate is required"),
        "{e}"
    );
    let e = compile_err(
        "SELECT * FROM demo INNER JOIN alerts ON demo.a = alerts.id AND demo.b = alerts.id",
    );
    assert!(e.contains("equi-join"), "{e}");
    // A lookup table needs no window; two streams still do.
    plan("SELECT * FROM demo INNER JOIN alerts ON demo.k = alerts.id");
    let p = plan("SELECT * FROM demo LEFT JOIN alerts ON alerts.id = demo.k + 1");
    assert_eq!(
        p.sources().iter().map(|s| s.lookup).collect::<Vec<_>>(),
        [false, true]
    );
    assert_eq!(p.op_names(), ["op_2_lookup", "op_3_project"]);
    let p = plan(
        "SELECT * FROM demo INNER JOIN scan ON demo.k = scan.id INNER JOIN alerts ON demo.k = alerts.id",
    );
    // A scan table's join and a lookup share the join operator here; eKuiper
    // shows them as two (`join`, then `lookup`).
    assert_eq!(
        p.op_names(),
        ["op_3_join_aligner", "op_4_join", "op_5_project"]
    );
}

#[test]
fn each_row_is_joined_with_the_rows_of_its_key() {
    let p = plan(
        "SELECT demo.device, alerts.alarm FROM demo INNER JOIN alerts ON demo.kind = alerts.id WHERE demo.v > alerts.alarm",
    );
    let mut q = p.instantiate();
    let t = alerts();
    q.set_lookup(1, t.clone());
    let mut out = Vec::new();
    for (d, kind, v) in [("a", 1, 54), ("b", 2, 85), ("c", 3, 99), ("d", 2, 95)] {
        q.on_event(
            0,
            &ev(json!({"device": d, "kind": kind, "v": v}), 1),
            &mut out,
        );
    }
    assert_eq!(
        rows(&out),
        [
            json!({"device": "a", "alarm": 50}),
            json!({"device": "b", "alarm": 80}),
            json!({"device": "d", "alarm": 80}),
            json!({"device": "d", "alarm": 90}),
        ]
    );
    let asked = t.asked.lock().unwrap();
    assert_eq!(asked.len(), 4);
    assert_eq!(asked[0], (vec!["id".to_string()], vec![Value::Int(1)]));
}

#[test]
fn left_join_keeps_rows_without_a_match_and_null_keys_are_not_looked_up() {
    let p = plan("SELECT demo.device, alarm FROM demo LEFT JOIN alerts ON demo.kind = alerts.id");
    let mut q = p.instantiate();
    let t = alerts();
    q.set_lookup(1, t.clone());
    let mut out = Vec::new();
    q.on_event(0, &ev(json!({"device": "a", "kind": 7}), 1), &mut out);
    q.on_event(0, &ev(json!({"device": "b"}), 1), &mut out);
    q.on_event(0, &ev(json!({"device": "c", "kind": 1}), 1), &mut out);
    assert_eq!(
        rows(&out),
        [
            json!({"device": "a"}),
            json!({"device": "b"}),
            json!({"device": "c", "alarm": 50}),
        ]
    );
    assert_eq!(
        t.calls.load(Ordering::SeqCst),
        2,
        "no lookup for a NULL key"
    );
}

#[test]
fn the_rest_of_the_on_condition_filters_the_looked_up_rows() {
    let p = plan(
        "SELECT demo.device, alerts.alarm FROM demo LEFT JOIN alerts ON demo.kind = alerts.id AND alerts.alarm > 85",
    );
    let mut q = p.instantiate();
    q.set_lookup(1, alerts());
    let mut out = Vec::new();
    q.on_event(0, &ev(json!({"device": "a", "kind": 2}), 1), &mut out);
    q.on_event(0, &ev(json!({"device": "b", "kind": 1}), 1), &mut out);
    assert_eq!(
        rows(&out),
        [json!({"device": "a", "alarm": 90}), json!({"device": "b"}),]
    );
}

#[test]
fn window_rows_are_looked_up_when_the_window_closes() {
    let p = plan(
        "SELECT count(*) AS n, max(alerts.alarm) AS top FROM demo INNER JOIN alerts ON demo.kind = alerts.id GROUP BY TUMBLINGWINDOW(ss, 1)",
    );
    let mut q = p.instantiate();
    let t = alerts();
    q.set_lookup(1, t.clone());
    let mut out = Vec::new();
    q.on_tick(0, &mut out);
    for kind in [1, 2, 3] {
        q.on_event(0, &ev(json!({"kind": kind}), 100), &mut out);
    }
    assert_eq!(
        t.calls.load(Ordering::SeqCst),
        0,
        "not before the window closes"
    );
    q.on_tick(1000, &mut out);
    assert_eq!(rows(&out), [json!({"n": 3, "top": 90})]);
    assert_eq!(t.calls.load(Ordering::SeqCst), 3);
}

#[test]
fn a_failing_lookup_is_an_error_of_the_join() {
    let p = plan("SELECT * FROM demo INNER JOIN alerts ON demo.kind = alerts.id");
    let mut q = p.instantiate();
    let mut out = Vec::new();
    q.on_event(0, &ev(json!({"kind": 1}), 1), &mut out);
    assert_eq!(
        rows(&out),
        [json!({"error": "run Join error: lookup table alerts is not connected"})]
    );
    q.set_lookup(
        1,
        Arc::new(Table {
            fail: true,
            ..Table::default()
        }),
    );
    out.clear();
    q.on_event(0, &ev(json!({"kind": 1}), 1), &mut out);
    assert_eq!(
        rows(&out),
        [json!({"error": "run Join error: lookup table alerts: redis down"})]
    );
    let m = q.metrics();
    assert_eq!(m[0].0, "op_2_lookup");
    assert_eq!(m[0].1.exceptions, 2);
}

#[test]
fn memory_tables_join_on_several_keys() {
    let p = plan("SELECT demo.x, devs.name FROM demo INNER JOIN devs ON devs.id = demo.id AND demo.site = devs.site");
    let mut q = p.instantiate();
    let t = Arc::new(Table {
        rows: vec![
            json!({"id": 1, "site": "a", "name": "one-a"}),
            json!({"id": 1, "site": "b", "name": "one-b"}),
        ],
        ..Table::default()
    });
    q.set_lookup(1, t.clone());
    let mut out = Vec::new();
    q.on_event(0, &ev(json!({"x": 9, "id": 1, "site": "b"}), 1), &mut out);
    assert_eq!(rows(&out), [json!({"x": 9, "name": "one-b"})]);
    assert_eq!(
        t.asked.lock().unwrap()[0].0,
        ["id".to_string(), "site".to_string()]
    );
}
