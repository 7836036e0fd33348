//! SQL engine scenarios of issue 13, one core, no runtime:
//! (j) a stream joined with a 10,000-row scan table;
//! (s) a 10 s sliding window fed at 10,000 events/s of event time: CPU per
//!     event and the memory the window holds.

use std::sync::Arc;
use std::time::Instant;

use oort_core::{Event, Row, Schema, Value};
use oort_sql::ast::{StreamDef, StreamKind, StreamOptions};
use oort_sql::engine::{self, Catalog, Output, QueryOptions};

struct Two;

impl Catalog for Two {
    fn lookup(&self, name: &str) -> Option<StreamDef> {
        let kind = match name {
            "s" => StreamKind::Stream,
            "t" => StreamKind::Table,
            _ => return None,
        };
        Some(StreamDef {
            kind,
            name: name.into(),
            columns: vec![],
            options: StreamOptions::default(),
        })
    }
}

fn rss_kb() -> u64 {
    crate::scenarios::rss_kb(std::process::id()).unwrap_or(0)
}

/// (j) `SELECT s.k, s.v, t.name FROM s INNER JOIN t ON s.k = t.k`, the
/// table holding 10,000 rows, 1M stream events over every key.
pub fn table_join() -> anyhow::Result<()> {
    const N: i64 = 1_000_000;
    const KEYS: i64 = 10_000;
    let sel =
        oort_sql::parser::parse_select("SELECT s.k, s.v, t.name FROM s INNER JOIN t ON s.k = t.k")?;
    let plan = engine::compile(&sel, &Two, &QueryOptions::default())?;
    let mut q = plan.instantiate();
    let tschema = Arc::new(Schema::from_strs(&["k", "name"]));
    let rows: Vec<Row> = (0..KEYS)
        .map(|k| {
            Row::new(
                tschema.clone(),
                vec![Value::Int(k), Value::str(&format!("dev{k}"))],
            )
        })
        .collect();
    q.on_table_rows(1, &rows);
    let schema = Arc::new(Schema::from_strs(&["k", "v"]));
    let events: Vec<Arc<Event>> = (0..N)
        .map(|i| {
            Arc::new(Event {
                row: Row::new(
                    schema.clone(),
                    vec![Value::Int((i * 7919) % KEYS), Value::Int(i)],
                ),
                meta: None,
                seq: 0,
                ts: 1_700_000_000_000 + i / 1000,
            })
        })
        .collect();
    let mut out = Vec::new();
    let mut joined = 0usize;
    let start = Instant::now();
    for ev in &events {
        q.on_event(0, ev, &mut out);
        for o in out.drain(..) {
            if let Output::Rows(r) = o {
                joined += r.len();
            }
        }
    }
    let el = start.elapsed();
    println!(
        "j stream joined with a {KEYS}-row table (1 core): {N} events in {:.3} s = {:.0} events/s, {joined} joined rows (target >= 1,000,000 events/s)",
        el.as_secs_f64(),
        N as f64 / el.as_secs_f64()
    );
    Ok(())
}

/// (s) `SELECT count(*), avg(v) FROM s GROUP BY SLIDINGWINDOW(ss, 10)` in
/// event time, 10,000 events per second for 30 s: a window of ~100,000
/// rows emitted on every event.
pub fn sliding_window() -> anyhow::Result<()> {
    const RATE: i64 = 10_000;
    const SECONDS: i64 = 30;
    let n = RATE * SECONDS;
    let sel = oort_sql::parser::parse_select(
        "SELECT count(*) AS c, avg(v) AS a FROM s GROUP BY SLIDINGWINDOW(ss, 10)",
    )?;
    let opts = QueryOptions {
        is_event_time: true,
        late_tolerance_ms: 0,
        ..QueryOptions::default()
    };
    let plan = engine::compile(&sel, &Two, &opts)?;
    let mut q = plan.instantiate();
    let schema = Arc::new(Schema::from_strs(&["v"]));
    let rss0 = rss_kb();
    let mut out = Vec::new();
    let mut emitted = 0usize;
    let start = Instant::now();
    let mut done = 0i64;
    for i in 0..n {
        let ev = Arc::new(Event {
            row: Row::new(schema.clone(), vec![Value::Float((i % 100) as f64)]),
            meta: None,
            seq: 0,
            ts: 1_700_000_000_000 + i * 1000 / RATE,
        });
        q.on_event(0, &ev, &mut out);
        emitted += out.drain(..).count();
        done = i + 1;
        // Stop after a minute when it cannot keep the pace (one core).
        if i % RATE == 0 && start.elapsed().as_secs_f64() > 60.0 {
            break;
        }
    }
    let el = start.elapsed().as_secs_f64();
    println!(
        "s sliding window 10 s at {RATE} events/s of event time (1 core): {done} events in {el:.3} s = {:.1} us CPU per event ({:.2} cores at {RATE}/s), {emitted} emissions, window memory ~{} KB (RSS {} -> {} KB)",
        el * 1e6 / done as f64,
        el * RATE as f64 / done as f64,
        rss_kb().saturating_sub(rss0),
        rss0,
        rss_kb()
    );
    Ok(())
}
