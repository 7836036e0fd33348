//! Engine-only throughput smoke tests for the two benchmark targets
//! (1M events/s filter; 1M events/s tumbling count/avg by 100 keys).
//! Ignored by default: run with
//! `cargo test --release -p oort-sql --test perf -- --ignored --nocapture`.

use std::sync::Arc;
use std::time::Instant;

use oort_core::{Event, Row, Schema, Value};
use oort_sql::ast::{StreamDef, StreamKind, StreamOptions};
use oort_sql::engine::{self, Catalog, Output, QueryOptions};
use oort_sql::parser::parse_select;

struct One;

impl Catalog for One {
    fn lookup(&self, name: &str) -> Option<StreamDef> {
        (name == "s").then(|| StreamDef {
            kind: StreamKind::Stream,
            name: "s".into(),
            columns: vec![],
            options: StreamOptions::default(),
        })
    }
}

const N: usize = 1_000_000;

#[test]
#[ignore]
fn filter_throughput() {
    let sel = parse_select("SELECT * FROM s WHERE temp > 20").expect("sql");
    let plan = engine::compile(&sel, &One, &QueryOptions::default()).expect("plan");
    let mut q = plan.instantiate();
    let schema = Arc::new(Schema::from_strs(&["id", "temp", "humidity", "device"]));
    let events: Vec<Arc<Event>> = (0..1000)
        .map(|i| {
            Arc::new(Event {
                row: Row::new(
                    schema.clone(),
                    vec![
                        Value::Int(i),
                        Value::Float((i % 40) as f64 + 0.5),
                        Value::Int(i % 100),
                        Value::str(&format!("dev-{}", i % 7)),
                    ],
                ),
                meta: None,
                seq: 0,
                ts: 0,
            })
        })
        .collect();
    let mut out = Vec::with_capacity(16);
    let mut passed = 0usize;
    let start = Instant::now();
    for i in 0..N {
        q.on_event(0, &events[i % events.len()], &mut out);
        passed += out.len();
        out.clear();
    }
    let el = start.elapsed();
    println!(
        "filter: {N} events in {:.3} s = {:.0} events/s ({passed} passed)",
        el.as_secs_f64(),
        N as f64 / el.as_secs_f64()
    );
    assert_eq!(passed, N / 2);
}

#[test]
#[ignore]
fn tumbling_group_throughput() {
    let sel = parse_select(
        "SELECT k, count(*) AS c, avg(v) AS a FROM s GROUP BY k, TUMBLINGWINDOW(ss, 1)",
    )
    .expect("sql");
    let plan = engine::compile(&sel, &One, &QueryOptions::default()).expect("plan");
    let mut q = plan.instantiate();
    let schema = Arc::new(Schema::from_strs(&["k", "v"]));
    let keys: Vec<Value> = (0..100).map(|i| Value::str(&format!("key{i}"))).collect();
    let events: Vec<Arc<Event>> = (0..N as i64)
        .map(|i| {
            Arc::new(Event {
                row: Row::new(
                    schema.clone(),
                    vec![keys[(i % 100) as usize].clone(), Value::Int(i % 50)],
                ),
                meta: None,
                seq: 0,
                ts: 1_700_000_000_000 + i / 100,
            })
        })
        .collect();
    let mut out = Vec::new();
    let mut rows = 0usize;
    let start = Instant::now();
    for ev in &events {
        if let Some(d) = q.next_deadline() {
            if ev.ts >= d {
                q.on_tick(ev.ts, &mut out);
            }
        }
        q.on_event(0, ev, &mut out);
        for o in out.drain(..) {
            if let Output::Rows(r) = o {
                rows += r.len();
            }
        }
    }
    let el = start.elapsed();
    println!(
        "tumbling: {N} events in {:.3} s = {:.0} events/s ({rows} rows)",
        el.as_secs_f64(),
        N as f64 / el.as_secs_f64()
    );
    assert_eq!(rows, 900);
}
