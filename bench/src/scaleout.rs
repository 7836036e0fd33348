//! (x) Scale-out: 1, 2 and 4 Oort instances on one private Mosquitto share
//! one input topic through an MQTT shared subscription (`shareGroup`), each
//! running `SELECT * FROM s WHERE temperature > 20` to one output topic.
//! `mqtt-loadgen` publishes N messages and counts the outputs; beside the
//! raw broker loopback measured in the same run, it reports the aggregate
//! input rate, each instance's share of the messages (its rule's records
//! in) and Oort's CPU per input message summed over the instances.
//!
//! Environment: `OORT_BENCH_X_N` (messages per run, default 1,000,000: in
//! shorter runs the start of the run, which every instance pays, weighs on
//! the per-message figures),
//! `OORT_BENCH_X_QOS` (0 or 1, default 1), `OORT_BENCH_X_SIZES` (default
//! `1,2,4`), `OORT_BENCH_X_SOURCE_PROPS` (a JSON object of more source
//! properties, e.g. `{"readLingerInterval": 1}`); the load generator as
//! for scenario c. Beside CPU it counts the instances' context switches per
//! 1,000 input messages: wake-ups (a thread slept and was woken) and
//! preemptions. After each fleet the same number of null relays
//! ([`crate::relay`], processes on a shared subscription of their own) run
//! at the same QoS: what the machine adds per member whatever runs there.

use anyhow::{anyhow, Context};

use crate::mqtt::{
    cpu_s, env_or, extend_from_env, loadgen, probe, run_args, run_loadgen, switches, Broker,
};
use crate::relay::RelayProcess;
use crate::scenarios::Srv;

pub fn shared_subscription() -> anyhow::Result<()> {
    let n: u64 = env_or("OORT_BENCH_X_N", 1_000_000);
    let qos: u8 = env_or("OORT_BENCH_X_QOS", 1);
    let sizes: Vec<usize> = std::env::var("OORT_BENCH_X_SIZES")
        .unwrap_or_else(|_| "1,2,4".into())
        .split(',')
        .filter_map(|q| q.trim().parse().ok())
        .collect();
    let lg = loadgen()?;
    let broker = Broker::start()?;
    let port = broker.port.to_string();
    let args = |inp: &str, out: &str| run_args(&port, inp, out, n, qos);
    let raw = run_loadgen(&lg, &args("bench/x/raw", "bench/x/raw"))?;
    let raw_rate = raw["in_rate"].as_f64().unwrap_or(0.0);
    println!("x qos {qos}: raw broker loopback {raw_rate:.0} msg/s ({n} messages)");
    let mut base_cpu: Option<f64> = None;
    let mut relay_base: Option<f64> = None;
    for (round, &k) in sizes.iter().enumerate() {
        let (in_t, out_t) = (format!("bench/x{round}/in"), format!("bench/x{round}/out"));
        let mut fleet = Vec::new();
        for _ in 0..k {
            let s = Srv::start_warm()?;
            let mut conf = serde_json::json!({"server": format!("tcp://127.0.0.1:{port}"), "qos": qos,
                "shareGroup": "fleet"});
            extend_from_env(&mut conf, "OORT_BENCH_X_SOURCE_PROPS")?;
            s.put("/metadata/sources/mqtt/confKeys/fleet", &conf)?;
            s.post(
                "/streams",
                &serde_json::json!({"sql": format!(
                    "CREATE STREAM s () WITH (DATASOURCE=\"{in_t}\", TYPE=\"mqtt\", CONF_KEY=\"fleet\")")}),
            )?;
            s.post(
                "/rules",
                &serde_json::json!({"id": "x", "sql": "SELECT * FROM s WHERE temperature > 20",
                    "actions":[{"mqtt":{"server": format!("tcp://127.0.0.1:{port}"),
                        "topic": out_t, "qos": qos, "sendSingle": true}}]}),
            )?;
            fleet.push(s);
        }
        // Every member is subscribed before the probe (else the group would
        // not yet include it).
        for s in &fleet {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while s.get_json("/rules/x/status")?["source_s_0_connection_status"] != 1 {
                if std::time::Instant::now() > deadline {
                    return Err(anyhow!("a member did not subscribe"));
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        probe(&lg, &port, &in_t, &out_t).context("the fleet did not come up")?;
        let records = |s: &Srv| -> anyhow::Result<u64> {
            Ok(
                s.get_json("/rules/x/status")?["source_s_0_records_in_total"]
                    .as_u64()
                    .unwrap_or(0),
            )
        };
        let before: Vec<u64> = fleet.iter().map(records).collect::<anyhow::Result<_>>()?;
        let cpu0: f64 = fleet
            .iter()
            .map(|s| cpu_s(s.child.id()))
            .sum::<anyhow::Result<f64>>()?;
        let sw0: Vec<(u64, u64)> = fleet
            .iter()
            .map(|s| switches(s.child.id()))
            .collect::<anyhow::Result<_>>()?;
        let run = run_loadgen(&lg, &args(&in_t, &out_t))?;
        let sw1: Vec<(u64, u64)> = fleet
            .iter()
            .map(|s| switches(s.child.id()))
            .collect::<anyhow::Result<_>>()?;
        let cpu1: f64 = fleet
            .iter()
            .map(|s| cpu_s(s.child.id()))
            .sum::<anyhow::Result<f64>>()?;
        let after: Vec<u64> = fleet.iter().map(records).collect::<anyhow::Result<_>>()?;
        let shares: Vec<f64> = before
            .iter()
            .zip(&after)
            .map(|(b, a)| (a - b) as f64 / n as f64)
            .collect();
        let (vol, invol) = sw0
            .iter()
            .zip(&sw1)
            .fold((0, 0), |acc, (a, b)| (acc.0 + b.0 - a.0, acc.1 + b.1 - a.1));
        let rate = run["in_rate"].as_f64().unwrap_or(0.0);
        let us = (cpu1 - cpu0) * 1e6 / n as f64;
        let base = *base_cpu.get_or_insert(us);
        let worst = shares
            .iter()
            .map(|s| (s * k as f64 - 1.0).abs())
            .fold(0.0, f64::max);
        println!(
            "x qos {qos}, {k} instance(s): {rate:.0} msg/s in ({:.2} of raw); shares {} (worst {:.1}% from 1/{k}); Oort CPU {us:.2} us/msg over all instances ({:.2}x the 1-instance figure); {:.0} wake-ups and {:.0} preemptions per 1,000 messages; received {}/{}",
            rate / raw_rate,
            shares
                .iter()
                .map(|s| format!("{:.3}", s))
                .collect::<Vec<_>>()
                .join(" / "),
            worst * 100.0,
            us / base,
            vol as f64 * 1000.0 / n as f64,
            invol as f64 * 1000.0 / n as f64,
            run["received"],
            run["expect"],
        );
        drop(fleet);
        if qos <= 1 {
            // The same fleet of null relays (processes), for what the
            // machine adds per member whatever runs there.
            let (rin, rout) = (
                format!("bench/x{round}/rin"),
                format!("bench/x{round}/rout"),
            );
            let linger = crate::relay::linger_from_env();
            let relays = (0..k)
                .map(|_| {
                    RelayProcess::spawn(
                        broker.port,
                        &format!("$share/relays/{rin}"),
                        &rout,
                        qos,
                        linger,
                    )
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            probe(&lg, &port, &rin, &rout).context("the relays did not come up")?;
            let cpu =
                || -> anyhow::Result<f64> { relays.iter().map(|r| cpu_s(r.child.id())).sum() };
            let c0 = cpu()?;
            let run = run_loadgen(&lg, &args(&rin, &rout))?;
            let us = (cpu()? - c0) * 1e6 / n as f64;
            let base = *relay_base.get_or_insert(us);
            let rrate = run["in_rate"].as_f64().unwrap_or(0.0);
            println!(
                "x qos {qos}, {k} null relay(s): {rrate:.0} msg/s in ({:.2} of raw); relay CPU {us:.2} us/msg over all relays ({:.2}x the 1-relay figure); Oort {:.2} of the relays' rate",
                rrate / raw_rate,
                us / base,
                rate / rrate,
            );
        }
    }
    Ok(())
}
