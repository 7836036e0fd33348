//! (h) Template rendering cost per event: `dataTemplate` and dynamic
//! properties compiled once, rendered per row with a reused buffer, on one
//! core. The figure is the engine's (`oort_core::template`); turning a row
//! into the object a template reads is measured on its own line.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use oort_core::template::Template;
use oort_core::{Row, Schema, Value};

const N: usize = 1_000_000;

fn rows() -> Vec<Row> {
    let schema = Arc::new(Schema::from_strs(&[
        "device", "humidity", "id", "temp", "ts",
    ]));
    (0..1000)
        .map(|i| {
            Row::new(
                schema.clone(),
                vec![
                    Value::str(&format!("dev-{}", i % 7)),
                    Value::Int(i % 100),
                    Value::Int(i),
                    Value::Float((i % 40) as f64 + 0.5),
                    Value::Int(1_700_000_000_000 + i),
                ],
            )
        })
        .collect()
}

fn ns_per(el: std::time::Duration) -> f64 {
    el.as_nanos() as f64 / N as f64
}

/// CPU time this thread has run (Linux schedstat), so that other processes
/// sharing the cores do not inflate the figure; wall time elsewhere.
fn cpu_now() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

struct Clock(Instant, Option<u64>);

impl Clock {
    fn start() -> Clock {
        Clock(Instant::now(), cpu_now())
    }
    fn elapsed(&self) -> std::time::Duration {
        match (self.1, cpu_now()) {
            (Some(a), Some(b)) => std::time::Duration::from_nanos(b.saturating_sub(a)),
            _ => self.0.elapsed(),
        }
    }
}

pub fn template_render() -> anyhow::Result<()> {
    let rows = rows();
    let values: Vec<Value> = rows.iter().map(Row::to_value).collect();
    let cases = [
        ("json", "{{json .}}"),
        ("fields", r#"{"device":"{{.device}}","t":{{.temp}}}"#),
        (
            "if/printf",
            r#"{{if gt .temp 30.0}}hot{{else}}ok{{end}} {{printf "%.1f" .temp}} {{.device | upper}}"#,
        ),
        ("topic", "devices/{{.device}}/{{.id}}"),
    ];
    let mut out = String::with_capacity(256);
    for (name, src) in cases {
        let t = Template::compile(src)?;
        let mut bytes = 0usize;
        let start = Clock::start();
        for i in 0..N {
            out.clear();
            t.render_into(black_box(&values[i % values.len()]), &mut out)
                .map_err(anyhow::Error::msg)?;
            bytes += out.len();
        }
        let el = start.elapsed();
        println!(
            "h template {name:<9} {src:?}: {:.0} ns/event of CPU ({bytes} bytes out)",
            ns_per(el)
        );
    }
    let start = Clock::start();
    let mut n = 0usize;
    for i in 0..N {
        n += black_box(rows[i % rows.len()].to_value()).is_null() as usize;
    }
    println!(
        "h row -> object (what a template reads, 5 fields): {:.0} ns/event of CPU ({n})",
        ns_per(start.elapsed())
    );
    Ok(())
}
