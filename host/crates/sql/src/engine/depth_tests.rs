//! Issue 11: long chains (`a+a+...`, `a->b->...`, `a[0][0]...`,
//! `x AND x AND ...`) are bounded on the built tree. At the limit an
//! expression goes through every pass (parse, plan, evaluate, debug print,
//! clone, drop) on a 2 MiB stack (a tokio worker's), debug builds included
//! (measured: evaluation needs about 11 KiB per level in a debug build, so
//! 2 MiB holds about 180 levels; the limit is 100);
//! one level more, and the issue's 3,000 terms, are parse errors, found
//! without recursing per term.

use std::sync::Arc;

use oort_core::{Event, Row, Value};
use serde_json::json;

use super::*;
use crate::ast::{StreamDef, StreamKind, StreamOptions};
use crate::parser::{parse_select, MAX_EXPR_DEPTH};

struct Cat;

impl Catalog for Cat {
    fn lookup(&self, name: &str) -> Option<StreamDef> {
        Some(StreamDef {
            kind: StreamKind::Stream,
            name: name.into(),
            columns: vec![],
            options: StreamOptions::default(),
        })
    }
}

/// Expressions of each chain shape whose tree height is `n`.
fn chains(n: usize) -> Vec<(&'static str, String)> {
    vec![
        ("a+a+...", vec!["a"; n].join("+")),
        ("x AND x AND ...", vec!["a"; n].join(" AND ")),
        ("a->b->...", format!("a{}", "->b".repeat(n - 1))),
        ("a[0][0]...", format!("a{}", "[0]".repeat(n - 1))),
        ("a.b->c->...", format!("a.b{}", "->c".repeat(n - 1))),
        ("a+a-a...", {
            let ops = ["+", "-"];
            let mut s = String::from("a");
            for i in 1..n {
                s.push_str(ops[i % 2]);
                s.push('a');
            }
            s
        }),
    ]
}

fn on_stack<F: FnOnce() + Send + 'static>(bytes: usize, f: F) {
    std::thread::Builder::new()
        .stack_size(bytes)
        .spawn(f)
        .unwrap()
        .join()
        .expect("the thread must not overflow its stack or panic");
}

#[test]
fn chains_at_the_limit_run_every_pass_on_a_worker_stack() {
    on_stack(2 << 20, || {
        let in_where = chains(MAX_EXPR_DEPTH - 2);
        for ((shape, e), (_, w)) in chains(MAX_EXPR_DEPTH).into_iter().zip(in_where) {
            // `IS NULL` and `OR` add the last two levels.
            let sql = format!("SELECT {e} AS x FROM s WHERE {w} IS NULL OR true");
            let sel = parse_select(&sql).unwrap_or_else(|err| panic!("{shape}: {err}"));
            let copy = sel.clone();
            assert!(!format!("{copy:?}").is_empty());
            let plan = compile(
                &sel,
                &Cat,
                &QueryOptions {
                    send_error: true,
                    ..QueryOptions::default()
                },
            )
            .unwrap_or_else(|err| panic!("{shape}: {err}"));
            let mut q = plan.instantiate();
            let Value::Object(m) = Value::from_json(&json!({"a": 1, "b": {"c": 2}})) else {
                unreachable!()
            };
            let ev = Arc::new(Event {
                row: Row::from_map(&m),
                meta: None,
                seq: 0,
                ts: 1,
            });
            let mut out = Vec::new();
            q.on_event(0, &ev, &mut out);
            assert_eq!(out.len(), 1, "{shape}");
            drop((sel, copy, plan, q));
        }
    });
}

#[test]
fn one_level_more_is_a_parse_error() {
    for (shape, e) in chains(MAX_EXPR_DEPTH + 1) {
        let err = parse_select(&format!("SELECT {e} FROM s")).unwrap_err();
        assert!(
            err.to_string().contains("nested too deeply"),
            "{shape}: {err}"
        );
    }
}

#[test]
fn the_issues_3000_term_chains_fail_fast_on_a_small_stack() {
    // 256 KiB: the parse must not recurse per term, nor build (and then
    // drop) a 3,000-level tree.
    on_stack(256 << 10, || {
        for (shape, e) in chains(3000) {
            for sql in [
                format!("SELECT {e} FROM s"),
                format!("SELECT a FROM s WHERE {e}"),
                format!("SELECT count(*) FROM s GROUP BY COUNTWINDOW(2) FILTER (WHERE {e})"),
            ] {
                let err = parse_select(&sql).unwrap_err();
                assert!(
                    err.to_string().contains("nested too deeply"),
                    "{shape}: {err}"
                );
            }
        }
    });
}
