//! `cargo run --release -p oort-bench [-- SCENARIO...]`
//!
//! Scenarios (all by default):
//! - `a`: memory source -> `SELECT * WHERE temp > 20` -> nop, through the real runtime;
//! - `b`: JSON bytes -> decode -> filter -> encode, one core;
//! - `c`: MQTT -> `WHERE temperature > 20` -> MQTT through a private Mosquitto,
//!   QoS 0 and 1, beside the raw broker loopback of `mqtt-loadgen` measured in
//!   the same run (see `mqtt.rs`);
//! - `d`: tumbling window `count(*)`/`avg` GROUP BY a key with 100 distinct keys;
//! - `e`: idle server RSS, and RSS per rule with 1000 rules on one stream;
//! - `f`: WebAssembly plugins (see `plugins.rs`);
//! - `g`: data import of 1,000 streams + rules + 10 plugin packages, and export;
//! - `h`: template rendering (`dataTemplate`, dynamic properties) per event.
//! - `k`: the sink resend cache, write and read throughput, memory-only and
//!   spilling to disk (see `cache.rs`).
//! - `l`: a stream joined with a 10,000-key Redis lookup table, cached and
//!   not, beside the same rule without the join (see `lookup.rs`).
//! - `x`: scale-out: 1, 2 and 4 instances sharing one MQTT topic through a
//!   shared subscription (see `scaleout.rs`).
//! - `i`: plugin isolation: REST p99 and a neighbour rule's rate during each
//!   hostile-plugin attack (see `isolation.rs`).
//!
//! Figures are printed as one line per measurement; ratios are to a baseline
//! measured in the same run where one exists.

mod cache;
mod import;
mod isolation;
mod lookup;
mod mqtt;
mod plugins;
mod relay;
mod rest;
mod scaleout;
mod scenarios;
mod sqlbench;
mod template;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("relay") {
        // A null relay in a process of its own (scenario x's relay fleets).
        return relay::serve(&args[1..]);
    }
    let want = |s: &str| args.is_empty() || args.iter().any(|a| a == s);
    println!(
        "oort-bench {} ({} cores)",
        env!("CARGO_PKG_VERSION"),
        cores()
    );
    if want("a") {
        scenarios::memory_filter_nop()?;
    }
    if want("b") {
        scenarios::decode_filter_encode()?;
    }
    if want("c") {
        mqtt::mqtt_round_trip()?;
    }
    if want("d") {
        scenarios::tumbling_window()?;
    }
    if want("e") {
        scenarios::rss_per_rule()?;
    }
    if want("f") {
        plugins::wasm_plugins()?;
    }
    if want("g") {
        import::import_export()?;
    }
    if want("h") {
        template::template_render()?;
    }
    if want("k") {
        cache::resend_cache()?;
    }
    if want("i") {
        isolation::plugin_isolation()?;
    }
    if want("x") {
        scaleout::shared_subscription()?;
    }
    if want("r") {
        rest::rest_sink()?;
    }
    if want("l") {
        lookup::lookup_join()?;
    }
    if want("j") {
        sqlbench::table_join()?;
    }
    if want("s") {
        sqlbench::sliding_window()?;
    }
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
