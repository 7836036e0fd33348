//! The resident set: code that creating streams and rules ran is given
//! back half a second after the last request that changed something
//! (`host/src/memtrim.rs`). Linux only: it reads the server's `smaps`.
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use oort_tests::{Opts, Server};
use serde_json::json;

/// Resident KB of the server binary's code mapping (`r-xp`).
fn code_kb(pid: u32) -> u64 {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe link");
    let exe = exe.to_string_lossy().to_string();
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).expect("smaps");
    let mut in_code = false;
    let mut kb = 0;
    for line in smaps.lines() {
        let head = line.split_whitespace().collect::<Vec<_>>();
        if head.first().is_some_and(|r| r.contains('-')) && head.len() >= 5 {
            in_code = head.get(1) == Some(&"r-xp") && head.last() == Some(&exe.as_str());
            continue;
        }
        if in_code {
            if let Some(v) = line.strip_prefix("Rss:") {
                kb += v
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap_or(0);
            }
        }
    }
    kb
}

#[test]
fn code_that_created_a_rule_is_released_while_status_is_polled() {
    let s = Server::start_with(Opts {
        env: vec![("OORT_LOG".into(), "info,oort::memtrim=debug".into())],
        ..Opts::default()
    });
    let pid = s.child.id();
    s.create_stream("CREATE STREAM s () WITH (DATASOURCE=\"memtrim\", TYPE=\"memory\")");
    s.create_rule(&json!({"id": "r", "sql": "SELECT * FROM s WHERE a > 1",
        "actions": [{"nop": {}}]}));
    let busy = code_kb(pid);
    // The release comes half a second after the last change; a dashboard
    // polling the rule's status meanwhile does not postpone it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Measured before the next poll (a poll maps some code back).
        let kb = code_kb(pid);
        if kb * 2 < busy {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "resident code {busy} KB after creating the rule, still {kb} KB; log:\n{}",
            s.log()
        );
        assert_eq!(s.get("/rules/r/status").status, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    s.wait_log("the release's log line", |l| {
        l.contains("code pages released after requests")
    });
    // The server and the rule work on: the code comes back on use.
    assert_eq!(s.status("r")["status"], "running");
    assert_eq!(s.get("/streams").json(), json!(["s"]));
}
