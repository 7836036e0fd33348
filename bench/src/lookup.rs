//! Scenario `l`: a memory stream joined with a 10,000-key Redis lookup
//! table (`INNER JOIN t ON s.k = t.id`) into `nop`, with the lookup cache
//! and without it, beside the same stream and rule without the join
//! (`SELECT * FROM s`), measured in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use oort_core::{Row, Value};

const KEYS: usize = 10_000;

pub fn lookup_join() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let prefix = format!("oort-bench-lk-{}", uuid::Uuid::new_v4().simple());
        let client = redis::Client::open("redis://127.0.0.1:6379/")?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let mut pipe = redis::pipe();
        for i in 0..KEYS {
            pipe.cmd("SET")
                .arg(format!("{prefix}-{i}"))
                .arg(format!(r#"{{"id":{i},"alarm":{}}}"#, i % 100))
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
        let base = run(&prefix, None, 1_000_000).await?;
        println!(
            "l memory -> SELECT * -> nop (baseline): {:.0} events/s",
            base
        );
        let cached = run(&prefix, Some(true), 1_000_000).await?;
        println!(
            "l memory -> INNER JOIN redis lookup (10,000 keys, cache) -> nop: {cached:.0} events/s ({:.2} of baseline)",
            cached / base
        );
        let uncached = run(&prefix, Some(false), 50_000).await?;
        println!(
            "l memory -> INNER JOIN redis lookup (no cache: one GET per event) -> nop: {uncached:.0} events/s ({:.3} of baseline)",
            uncached / base
        );
        let mut del = redis::pipe();
        for i in 0..KEYS {
            del.cmd("DEL").arg(format!("{prefix}-{i}")).ignore();
        }
        del.query_async::<()>(&mut conn).await?;
        Ok(())
    })
}

/// Events per second through the rule: `cache` None = no join.
async fn run(prefix: &str, cache: Option<bool>, n: usize) -> anyhow::Result<f64> {
    const BATCH: usize = 1000;
    let dir = tempfile::tempdir()?;
    let registry = oort_core::Registry::default();
    oort_connectors::builtin(&registry);
    let mgr = oort::manager::Manager::open(dir.path(), registry)?;
    let topic = format!("bench/l/{}", uuid::Uuid::new_v4().simple());
    let err = |e: oort::error::AppError| anyhow!("{e}");
    mgr.exec_stream_sql(&format!(
        "CREATE STREAM s () WITH (DATASOURCE=\"{topic}\", TYPE=\"memory\")"
    ))
    .await
    .map_err(err)?;
    let sql = match cache {
        None => "SELECT * FROM s".to_string(),
        Some(c) => {
            let extra = serde_json::json!({"lookup": {"cache": c}}).to_string();
            mgr.exec_stream_sql(&format!(
                "CREATE TABLE t () WITH (DATASOURCE=\"0\", TYPE=\"redis\", KIND=\"lookup\", EXTRA=\"{}\")",
                extra.replace('"', "\\\"")
            ))
            .await
            .map_err(err)?;
            "SELECT s.id, t.alarm FROM s INNER JOIN t ON s.k = t.id".to_string()
        }
    };
    let rule = serde_json::json!({"id": "l", "sql": sql, "actions": [{"nop": {}}]});
    mgr.create_rule(&rule.to_string()).await.map_err(err)?;
    let schema = Arc::new(oort_core::Schema::from_strs(&["id", "k"]));
    let keys: Vec<Value> = (0..KEYS)
        .map(|i| Value::str(&format!("{prefix}-{i}")))
        .collect();
    let batches: Vec<Vec<Row>> = (0..n / BATCH)
        .map(|b| {
            (0..BATCH)
                .map(|i| {
                    let e = b * BATCH + i;
                    Row::new(
                        schema.clone(),
                        vec![Value::Int(e as i64), keys[e % KEYS].clone()],
                    )
                })
                .collect()
        })
        .collect();
    let bus = oort_connectors::memory::bus::bus(mgr.env());
    let start = Instant::now();
    for b in batches {
        bus.publish(&topic, b).await;
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let st = mgr.rule_status("l").await.map_err(err)?;
        let got = st
            .get("sink_nop_0_0_records_in_total")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        if got >= n as u64 {
            break;
        }
        if Instant::now() > deadline {
            return Err(anyhow!("only {got} of {n} rows reached the sink: {st:?}"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    mgr.shutdown().await;
    Ok(rate)
}
