//! (k) The sink resend cache (`oort::runtime::sink::cache`): items written
//! one by one, then read back and removed in batches of 100, with 100-byte
//! payloads. Memory only, then with the default sizes (1024 in memory, pages
//! of 256 spilled to disk), with payload-only items and with a row attached.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use oort::runtime::sink::cache::{CacheConfig, ResendCache};
use oort_core::{Map, SinkItem, Value};

const N: usize = 500_000;
const READ_BATCH: usize = 100;

fn items(with_row: bool) -> Vec<SinkItem> {
    (0..N)
        .map(|i| {
            let mut payload = format!("{{\"id\":{i},\"temp\":21.5,\"device\":\"dev-{}\"", i % 7);
            while payload.len() < 99 {
                payload.push(' ');
            }
            payload.push('}');
            let data = if with_row {
                let mut m = Map::new();
                m.insert(Arc::from("id"), Value::Int(i as i64));
                m.insert(Arc::from("temp"), Value::Float(21.5));
                m.insert(Arc::from("device"), Value::str("dev-1"));
                Value::Object(Arc::new(m))
            } else {
                Value::Null
            };
            SinkItem {
                data,
                payload: Bytes::from(payload),
            }
        })
        .collect()
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn run(label: &str, cfg: CacheConfig, input: &[SinkItem]) -> anyhow::Result<()> {
    let mut c = ResendCache::open(cfg)?;
    let t = Instant::now();
    for it in input {
        c.push(std::slice::from_ref(it))?;
    }
    let write = t.elapsed();
    let on_disk = c.disk_len();
    let t = Instant::now();
    c.persist()?;
    let persist = t.elapsed();
    let t = Instant::now();
    let mut read = 0usize;
    while !c.is_empty() {
        let got = c.front(READ_BATCH)?;
        read += got.len();
        c.pop(got.len())?;
    }
    let read_time = t.elapsed();
    anyhow::ensure!(
        read == input.len(),
        "{label}: read {read} of {}",
        input.len()
    );
    anyhow::ensure!(c.dropped() == 0, "{label}: dropped {}", c.dropped());
    println!(
        "k cache {label}: write {:.0} msg/s, read+remove {:.0} msg/s ({} items, {} spilled to disk, persist {:.1} ms)",
        rate(input.len(), write),
        rate(read, read_time),
        input.len(),
        on_disk,
        persist.as_secs_f64() * 1e3,
    );
    c.close()?;
    Ok(())
}

pub fn resend_cache() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    for with_row in [false, true] {
        let input = items(with_row);
        let kind = if with_row { "payload+row" } else { "payload" };
        let memory = CacheConfig {
            memory_threshold: N,
            max_disk: 0,
            page_size: 256,
            clean_at_stop: true,
            dir: tmp.path().join(format!("mem-{kind}")),
        };
        run(&format!("memory-only {kind}"), memory, &input)?;
        let spill = CacheConfig {
            clean_at_stop: true,
            ..CacheConfig::new(tmp.path().join(format!("disk-{kind}")))
        };
        run(&format!("spill (defaults) {kind}"), spill, &input)?;
    }
    Ok(())
}
