//! Unit tests of the engine through its public API, one group per operator.

use std::sync::Arc;

use oort_core::{Event, Row, Schema, Value};
use serde_json::{json, Value as Json};

use super::*;
use crate::ast::{
    BinaryOp, Expr, FromItem, Select, SelectItem, Statement, StreamDef, StreamKind, StreamOptions,
};
use crate::parser::{parse_select, parse_statement};

struct Cat(Vec<StreamDef>);

impl Catalog for Cat {
    fn lookup(&self, name: &str) -> Option<StreamDef> {
        self.0.iter().find(|d| d.name == name).cloned()
    }
}

fn cat(defs: &[&str]) -> Cat {
    Cat(defs
        .iter()
        .map(|d| match parse_statement(d) {
            Ok(Statement::CreateStream(s)) => s,
            other => panic!("{d}: {other:?}"),
        })
        .collect())
}

fn schemaless(name: &str) -> StreamDef {
    StreamDef {
        kind: StreamKind::Stream,
        name: name.into(),
        columns: vec![],
        options: StreamOptions::default(),
    }
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

fn plan(sql: &str, c: &Cat, o: QueryOptions) -> QueryPlan {
    let sel = parse_select(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    compile(&sel, c, &o).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn s_cat() -> Cat {
    Cat(vec![schemaless("s"), schemaless("s2")])
}

fn rows_json(out: &[Output]) -> Vec<Vec<Json>> {
    out.iter()
        .map(|o| match o {
            Output::Rows(r) => r.iter().map(Row::to_json).collect(),
            Output::Error(e) => vec![json!({"error": e})],
        })
        .collect()
}

fn opts() -> QueryOptions {
    QueryOptions {
        send_error: true,
        ..QueryOptions::default()
    }
}

/// Feeds `events` (json, ts) to source 0 and returns the emissions.
fn feed(sql: &str, events: &[(Json, i64)], end: i64) -> Vec<Vec<Json>> {
    let p = plan(sql, &s_cat(), opts());
    let mut q = p.instantiate();
    let mut out = vec![];
    if let Some(first) = events.first() {
        q.on_tick(first.1 / 1000 * 1000, &mut out);
    }
    for (j, ts) in events {
        q.on_event(0, &ev(j.clone(), *ts), &mut out);
    }
    while let Some(d) = q.next_deadline() {
        if d > end {
            break;
        }
        q.on_tick(d, &mut out);
    }
    rows_json(&out)
}

#[test]
fn types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<QueryPlan>();
    send::<Query>();
}

#[test]
fn hand_built_ast_filter_passes_rows_through() {
    let sel = Select {
        fields: vec![SelectItem::Wildcard {
            except: vec![],
            replace: vec![],
        }],
        from: FromItem {
            name: "s".into(),
            alias: None,
        },
        joins: vec![],
        where_: Some(Expr::bin(
            BinaryOp::Gt,
            Expr::col("temp"),
            Expr::lit_int(20),
        )),
        group_by: vec![],
        window: None,
        having: None,
        order_by: vec![],
        limit: None,
    };
    let p = compile(&sel, &s_cat(), &QueryOptions::default()).expect("compiles");
    assert_eq!(p.op_names(), vec!["op_2_filter", "op_3_project"]);
    assert_eq!(
        p.sources(),
        &[SourceRef {
            name: "s".into(),
            kind: StreamKind::Stream,
            lookup: false,
        }]
    );
    let mut q = p.instantiate();
    let mut out = vec![];
    let hot = ev(json!({"temp": 25.5, "id": 1}), 1);
    q.on_event(0, &hot, &mut out);
    q.on_event(0, &ev(json!({"temp": 10}), 2), &mut out);
    q.on_event(0, &ev(json!({"id": 3}), 3), &mut out);
    assert_eq!(out.len(), 1);
    let Output::Rows(rows) = &out[0] else {
        panic!("rows expected")
    };
    // Passthrough: the very same schema.
    assert!(Arc::ptr_eq(&rows[0].schema, &hot.row.schema));
    assert_eq!(q.next_deadline(), None);
    let m = q.metrics();
    assert_eq!(m[0].1.records_in, 3);
    assert_eq!(m[0].1.records_out, 1);
}

#[test]
fn nil_fields_are_dropped_unless_asked() {
    let sql = "SELECT a, b FROM s";
    let got = feed(sql, &[(json!({"a": 1}), 1)], 0);
    assert_eq!(got, vec![vec![json!({"a": 1})]]);
    let p = plan(
        sql,
        &s_cat(),
        QueryOptions {
            send_nil_field: true,
            ..opts()
        },
    );
    let mut q = p.instantiate();
    let mut out = vec![];
    q.on_event(0, &ev(json!({"a": 1}), 1), &mut out);
    assert_eq!(rows_json(&out), vec![vec![json!({"a": 1, "b": null})]]);
}

#[test]
fn wide_projection_with_nulls_keeps_names() {
    // Found by fuzzing: with more than 64 columns and a null among them,
    // names past the 64th were lost and values shifted onto other names.
    let cols: Vec<String> = (0..70).map(|i| format!("c{i}")).collect();
    let sql = format!("SELECT {} FROM s", cols.join(", "));
    let mut input = serde_json::Map::new();
    for i in 0..70 {
        if i != 3 && i != 66 {
            input.insert(format!("c{i}"), json!(i));
        }
    }
    let got = feed(&sql, &[(Json::Object(input.clone()), 1)], 0);
    assert_eq!(got, vec![vec![Json::Object(input)]]);
}

#[test]
fn wildcard_except_replace_and_overrides() {
    let got = feed(
        "SELECT * EXCEPT(b) REPLACE(a * 10 AS a), upper(c) AS c2 FROM s",
        &[(json!({"a": 2, "b": 3, "c": "x"}), 1)],
        0,
    );
    assert_eq!(got, vec![vec![json!({"a": 20, "c": "x", "c2": "X"})]]);
}

#[test]
fn expressions_in_sql() {
    let got = feed(
        "SELECT a IN (1, 2) AS i, a BETWEEN 2 AND 3 AS btw, name LIKE 'ab%' AS l, \
         name NOT LIKE '_b_' AS nl, o->x AS ox, o.x AS ox2, arr[-1] AS last, \
         CASE a WHEN 2 THEN 'two' ELSE 'other' END AS cs, a / 4 AS idiv, a / 4.0 AS fdiv, \
         missing IS NULL AS mn, -a AS neg, 7 % 3 AS m \
         FROM s",
        &[(
            json!({"a": 2, "name": "abc", "o": {"x": 5}, "arr": [1, 2, 9]}),
            1,
        )],
        0,
    );
    assert_eq!(
        got,
        vec![vec![json!({
            "i": true, "btw": true, "l": true, "nl": false, "ox": 5, "ox2": 5, "last": 9,
            "cs": "two", "idiv": 0, "fdiv": 0.5, "mn": true, "neg": -2, "m": 1
        })]]
    );
}

#[test]
fn runtime_errors_without_send_error_are_counted() {
    let p = plan(
        "SELECT a * 2 AS d FROM s",
        &s_cat(),
        QueryOptions::default(),
    );
    let mut q = p.instantiate();
    let mut out = vec![];
    q.on_event(0, &ev(json!({"a": "x"}), 1), &mut out);
    q.on_event(0, &ev(json!({"a": 2}), 2), &mut out);
    assert_eq!(rows_json(&out), vec![vec![json!({"d": 4})]]);
    let (name, m) = &q.metrics()[0];
    assert_eq!(name, "op_2_project");
    assert_eq!(m.exceptions, 1);
    assert!(m
        .last_exception
        .starts_with("run Select error: alias: d expr: binaryExpr:{ s.a * 2 }"));
    assert!(m.last_exception_time > 0);
}

#[test]
fn tumbling_incremental_group_by() {
    let mut events = vec![];
    for i in 0..300 {
        events.push((
            json!({"k": format!("k{}", i % 3), "v": i % 10}),
            10_000 + i * 3,
        ));
    }
    let got = feed(
        "SELECT k, count(*) AS c, avg(v) AS a, max(v) AS mx FROM s GROUP BY k, TUMBLINGWINDOW(ss, 1)",
        &events,
        11_000,
    );
    assert_eq!(got.len(), 1);
    let rows = &got[0];
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0], json!({"k": "k0", "c": 100, "a": 4.5, "mx": 9}));
    assert_eq!(rows[1]["k"], json!("k1"));
    assert_eq!(rows[1]["c"], json!(100));
}

#[test]
fn buffered_and_incremental_agree() {
    let mut events = vec![];
    for i in 0..50 {
        events.push((json!({"k": i % 4, "v": i}), 20_000 + i * 7));
    }
    // row_number() forces the buffered path.
    let inc = feed(
        "SELECT k, sum(v) AS s FROM s GROUP BY k, TUMBLINGWINDOW(ms, 100) ORDER BY k",
        &events,
        20_400,
    );
    let buf = feed(
        "SELECT k, sum(v) AS s, row_number() AS rn FROM s GROUP BY k, TUMBLINGWINDOW(ms, 100) ORDER BY k",
        &events,
        20_400,
    );
    assert_eq!(inc.len(), buf.len());
    assert!(inc.len() >= 3);
    for (a, b) in inc.iter().zip(&buf) {
        let strip: Vec<Json> = b
            .iter()
            .map(|r| json!({"k": r["k"].clone(), "s": r["s"].clone()}))
            .collect();
        assert_eq!(a, &strip);
    }
}

#[test]
fn aggregate_of_empty_window_and_limit() {
    let got = feed(
        "SELECT count(*) AS c FROM s GROUP BY TUMBLINGWINDOW(ss, 1)",
        &[(json!({"a": 1}), 5_100), (json!({"a": 1}), 5_200)],
        7_000,
    );
    assert_eq!(got, vec![vec![json!({"c": 2})], vec![json!({"c": 0})]]);
    let got = feed(
        "SELECT a FROM s GROUP BY COUNTWINDOW(4) ORDER BY a DESC LIMIT 2",
        &[
            (json!({"a": 1}), 1),
            (json!({"a": 4}), 2),
            (json!({"a": 3}), 3),
            (json!({"a": 2}), 4),
        ],
        0,
    );
    assert_eq!(got, vec![vec![json!({"a": 4}), json!({"a": 3})]]);
}

#[test]
fn order_by_puts_nulls_last_and_refuses_mixed_types() {
    let events = [
        (json!({"id": 1, "a": 1}), 1),
        (json!({"id": 2}), 2),
        (json!({"id": 3, "a": 3}), 3),
    ];
    for (dir, want) in [("ASC", [1, 3, 2]), ("DESC", [3, 1, 2])] {
        let got = feed(
            &format!("SELECT id FROM s GROUP BY COUNTWINDOW(3) ORDER BY a {dir}"),
            &events,
            0,
        );
        let ids: Vec<Json> = want.iter().map(|i| json!({"id": i})).collect();
        assert_eq!(got, vec![ids], "{dir}");
    }
    // A second key orders rows whose first keys are both NULL.
    let got = feed(
        "SELECT id FROM s GROUP BY COUNTWINDOW(3) ORDER BY a, id DESC",
        &[
            (json!({"id": 1}), 1),
            (json!({"id": 2}), 2),
            (json!({"id": 3, "a": 0}), 3),
        ],
        0,
    );
    assert_eq!(
        got,
        vec![vec![json!({"id": 3}), json!({"id": 2}), json!({"id": 1})]]
    );
    // Mixed types: the window's emission is the error.
    let got = feed(
        "SELECT id FROM s GROUP BY COUNTWINDOW(2) ORDER BY a",
        &[
            (json!({"id": 1, "a": 1}), 1),
            (json!({"id": 2, "a": "x"}), 2),
        ],
        0,
    );
    assert_eq!(
        got,
        vec![vec![
            json!({"error": "run Order By error: incompatible types for comparison: int64 and string"})
        ]]
    );
    let got = feed(
        "SELECT id FROM s GROUP BY COUNTWINDOW(2) ORDER BY a",
        &[
            (json!({"id": 1, "a": {"k": 1}}), 1),
            (json!({"id": 2, "a": {"k": 2}}), 2),
        ],
        0,
    );
    let e = got[0][0]["error"].as_str().unwrap_or_default().to_string();
    assert!(
        e.starts_with("run Order By error: incompatible types for comparison: map"),
        "{e}"
    );
}

#[test]
fn state_windows_as_ekuiper_runs_them() {
    // Two conditions: rows before `begin` are dropped; the closing row is in.
    let got = feed(
        "SELECT a FROM s GROUP BY STATEWINDOW(a > 1, a > 5)",
        &[
            (json!({"a": 1}), 1),
            (json!({"a": 2}), 2),
            (json!({"a": 6}), 3),
            (json!({"a": 0}), 4),
        ],
        0,
    );
    assert_eq!(got, vec![vec![json!({"a": 2}), json!({"a": 6})]]);
    // One condition: a row where it holds emits the window before it and
    // opens the next one.
    let got = feed(
        "SELECT collect(a) AS w, window_start() AS s, window_end() AS e FROM s GROUP BY STATEWINDOW(a)",
        &[
            (json!({"a": true}), 10),
            (json!({"a": false}), 20),
            (json!({"a": false}), 30),
            (json!({"a": true}), 40),
            (json!({"a": false}), 50),
            (json!({"a": true}), 60),
        ],
        0,
    );
    assert_eq!(
        got,
        vec![
            vec![json!({"w": [true, false, false], "s": 10, "e": 40})],
            vec![json!({"w": [true, false], "s": 40, "e": 60})],
        ]
    );
    // Partitions have their own windows.
    let got = feed(
        "SELECT a, b FROM s GROUP BY STATEWINDOW(a = 1, a = 2) OVER (PARTITION BY b)",
        &[
            (json!({"a": 1, "b": 1}), 1),
            (json!({"a": 1, "b": 2}), 2),
            (json!({"a": 2, "b": 1}), 3),
        ],
        0,
    );
    assert_eq!(
        got,
        vec![vec![json!({"a": 1, "b": 1}), json!({"a": 2, "b": 1})]]
    );
    // WHERE runs before the window: filtered rows neither open nor close it.
    let got = feed(
        "SELECT count(*) AS c FROM s WHERE a >= 0 GROUP BY STATEWINDOW(a = 1, a = 3)",
        &[
            (json!({"a": 1}), 1),
            (json!({"a": -3}), 2),
            (json!({"a": 2}), 3),
            (json!({"a": 3}), 4),
        ],
        0,
    );
    assert_eq!(got, vec![vec![json!({"c": 3})]]);
}

#[test]
fn number_semantics_of_docs_sql_md() {
    let got = feed(
        "SELECT a / b AS q, a % b AS m, 5 / 2 AS lit, -7 / 2 AS neg, 5 / 2.0 AS mixed, a + n AS plus_null, a > n AS cmp_null FROM s",
        &[(json!({"a": 7.0, "b": 2.0, "n": null}), 1)],
        0,
    );
    assert_eq!(
        got,
        vec![vec![
            json!({"q": 3.5, "m": 1.0, "lit": 2, "neg": -3, "mixed": 2.5, "cmp_null": false})
        ]]
    );
    for sql in [
        "SELECT a / 0 AS x FROM s",
        "SELECT a % 0 AS x FROM s",
        "SELECT a & 1 AS x FROM s",
    ] {
        let got = feed(sql, &[(json!({"a": 7.0}), 1)], 0);
        assert!(got[0][0].get("error").is_some(), "{sql}: {got:?}");
    }
}

#[test]
fn acc_functions_with_begin_and_reset_conditions() {
    // eKuiper's documented example.
    let evs: Vec<(Json, i64)> = [1, 2, 1, 3, -1, 1]
        .iter()
        .enumerate()
        .map(|(i, a)| (json!({"a": a}), i as i64 + 1))
        .collect();
    let got = feed("SELECT acc_count(a, a > 1, a < 0) AS c FROM s", &evs, 0);
    let cs: Vec<Json> = got.iter().map(|r| r[0]["c"].clone()).collect();
    assert_eq!(
        cs,
        vec![json!(0), json!(1), json!(2), json!(3), json!(4), json!(0)]
    );
    let got = feed("SELECT acc_sum(a, a > 1, a < 0) AS s FROM s", &evs, 0);
    let ss: Vec<f64> = got
        .iter()
        .map(|r| r[0]["s"].as_f64().unwrap_or(-99.0))
        .collect();
    assert_eq!(ss, vec![0.0, 2.0, 3.0, 6.0, 5.0, 0.0]);
    let plan_err = |sql: &str| {
        compile(&parse_select(sql).expect("parses"), &s_cat(), &opts())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(plan_err("SELECT acc_sum(a, a > 1) AS s FROM s")
        .contains("Expect 1/3 arguments but found 2."));
    let got = feed(
        "SELECT acc_sum(a, a, false) AS s FROM s",
        &[(json!({"a": 1}), 1)],
        0,
    );
    assert!(
        got[0][0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("onBegin should be boolean"),
        "{got:?}"
    );
}

#[test]
fn limit_applies_to_unnest_rows() {
    let got = feed(
        "SELECT unnest(arr) AS x FROM s LIMIT 2",
        &[(json!({"arr": [1, 2, 3]}), 1)],
        0,
    );
    assert_eq!(got, vec![vec![json!({"x": 1})], vec![json!({"x": 2})]]);
}

#[test]
fn aggregate_in_where_of_count_window() {
    let got = feed(
        "SELECT a FROM s WHERE a > avg(a) GROUP BY COUNTWINDOW(3)",
        &[
            (json!({"a": 1}), 1),
            (json!({"a": 2}), 2),
            (json!({"a": 6}), 3),
        ],
        0,
    );
    assert_eq!(got, vec![vec![json!({"a": 6})]]);
}

#[test]
fn count_window_with_interval() {
    let got = feed(
        "SELECT collect(a) AS l FROM s GROUP BY COUNTWINDOW(3, 2)",
        &(1..=6).map(|i| (json!({"a": i}), i)).collect::<Vec<_>>(),
        0,
    );
    assert_eq!(
        got,
        vec![vec![json!({"l": [2, 3, 4]})], vec![json!({"l": [4, 5, 6]})]]
    );
}

#[test]
fn deadlines_and_alignment() {
    let p = plan(
        "SELECT * FROM s GROUP BY TUMBLINGWINDOW(ss, 10)",
        &s_cat(),
        opts(),
    );
    let mut q = p.instantiate();
    let mut out = vec![];
    assert_eq!(q.next_deadline(), Some(0));
    q.on_tick(1_000_003, &mut out);
    assert!(out.is_empty());
    assert_eq!(q.next_deadline(), Some(1_010_000));
    // A late tick fires every missed window, each emitting (even empty).
    q.on_tick(1_030_500, &mut out);
    assert_eq!(out.len(), 3);
    assert_eq!(q.next_deadline(), Some(1_040_000));
    // An event past the deadline fires the window before it is added.
    q.on_event(0, &ev(json!({"a": 1}), 1_040_001), &mut out);
    assert_eq!(out.len(), 4);
    assert_eq!(rows_json(&out[3..]), vec![Vec::<Json>::new()]);
}

#[test]
fn sliding_and_hopping_op_names() {
    let c = s_cat();
    assert_eq!(
        plan(
            "SELECT a FROM s WHERE a > 1 GROUP BY SLIDINGWINDOW(ss, 1) FILTER (WHERE b = 1)",
            &c,
            opts()
        )
        .op_names(),
        vec![
            "op_2_windowFilter",
            "op_2_window",
            "op_3_filter",
            "op_4_project"
        ]
    );
    assert_eq!(
        plan(
            "SELECT a FROM s WHERE a > 1 GROUP BY HOPPINGWINDOW(ss, 2, 1) FILTER (WHERE b = 1)",
            &c,
            opts()
        )
        .op_names(),
        vec!["op_2_filter", "op_3_window", "op_4_project"]
    );
    assert_eq!(
        plan("SELECT lag(a), unnest(arr) FROM s", &c, opts()).op_names(),
        vec!["op_2_analytic", "op_3_project", "op_4_projectset"]
    );
}

#[test]
fn table_join_left_retain_and_multi_match() {
    let c = cat(&[
        "CREATE STREAM st (id BIGINT, v BIGINT) WITH (TYPE=\"memory\")",
        "CREATE TABLE tb (id BIGINT, name STRING) WITH (TYPE=\"memory\", RETAIN_SIZE=\"2\")",
    ]);
    let p = plan(
        "SELECT st.id, v, name FROM st LEFT JOIN tb ON st.id = tb.id",
        &c,
        opts(),
    );
    assert_eq!(
        p.op_names(),
        vec!["op_3_join_aligner", "op_4_join", "op_5_project"]
    );
    let mut q = p.instantiate();
    let table: Vec<Row> = [
        json!({"id": 1, "name": "old"}),
        json!({"id": 1, "name": "a"}),
        json!({"id": 1, "name": "b"}),
    ]
    .iter()
    .map(|j| ev(j.clone(), 0).row.clone())
    .collect();
    q.on_table_rows(1, &table);
    let mut out = vec![];
    q.on_event(0, &ev(json!({"id": 1, "v": 10}), 1), &mut out);
    q.on_event(0, &ev(json!({"id": 2, "v": 20}), 2), &mut out);
    assert_eq!(
        rows_json(&out),
        vec![
            // RETAIN_SIZE 2: "old" is gone; both matches in one emission.
            vec![
                json!({"id": 1, "v": 10, "name": "a"}),
                json!({"id": 1, "v": 10, "name": "b"})
            ],
            vec![json!({"id": 2, "v": 20})],
        ]
    );
}

#[test]
fn stream_join_kinds_in_window() {
    let c = s_cat();
    let run = |kind: &str| {
        let p = plan(
            &format!("SELECT s.k AS l, s2.k AS r FROM s {kind} JOIN s2 ON s.k = s2.k GROUP BY COUNTWINDOW(4)"),
            &c,
            opts(),
        );
        let mut q = p.instantiate();
        let mut out = vec![];
        q.on_event(0, &ev(json!({"k": 1}), 1), &mut out);
        q.on_event(1, &ev(json!({"k": 1}), 2), &mut out);
        q.on_event(0, &ev(json!({"k": 2}), 3), &mut out);
        q.on_event(1, &ev(json!({"k": 3}), 4), &mut out);
        rows_json(&out)
    };
    assert_eq!(run("INNER"), vec![vec![json!({"l": 1, "r": 1})]]);
    assert_eq!(
        run("LEFT"),
        vec![vec![json!({"l": 1, "r": 1}), json!({"l": 2})]]
    );
    assert_eq!(
        run("RIGHT"),
        vec![vec![json!({"l": 1, "r": 1}), json!({"r": 3})]]
    );
    assert_eq!(
        run("FULL"),
        vec![vec![
            json!({"l": 1, "r": 1}),
            json!({"l": 2}),
            json!({"r": 3})
        ]]
    );
}

#[test]
fn session_window_incremental_matches_rows() {
    let events: Vec<(Json, i64)> = [13, 823, 1932, 2442, 3252]
        .iter()
        .map(|t| (json!({"v": 1}), 100_000 + t))
        .collect();
    let got = feed(
        "SELECT count(*) AS c, window_start() AS ws, window_end() AS we FROM s GROUP BY SESSIONWINDOW(ss, 2, 1)",
        &events,
        110_000,
    );
    assert_eq!(
        got,
        vec![
            vec![json!({"c": 2, "ws": 100_013, "we": 101_823})],
            vec![json!({"c": 3, "ws": 101_932, "we": 104_000})],
        ]
    );
}

#[test]
fn strict_validation_converts_types() {
    let c = cat(&["CREATE STREAM t (a BIGINT, b FLOAT) WITH (STRICT_VALIDATION=\"true\")"]);
    let p = plan("SELECT a, b FROM t", &c, opts());
    let mut q = p.instantiate();
    let mut out = vec![];
    q.on_event(0, &ev(json!({"a": 2.0, "b": 3}), 1), &mut out);
    q.on_event(0, &ev(json!({"b": 3}), 2), &mut out);
    assert_eq!(
        rows_json(&out),
        vec![
            vec![json!({"a": 2, "b": 3.0})],
            vec![json!({"error": "error in preprocessor: field a is not found"})],
        ]
    );
}

#[test]
fn plan_errors_are_clear() {
    let c = cat(&[
        "CREATE STREAM d (a BIGINT) WITH (TYPE=\"memory\")",
        "CREATE STREAM e (a BIGINT) WITH (TYPE=\"memory\")",
    ]);
    let err = |sql: &str| {
        compile(&parse_select(sql).expect("parses"), &c, &opts())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        err("SELECT a FROM d INNER JOIN e ON d.a = e.a GROUP BY COUNTWINDOW(2)"),
        "ambiguous field a"
    );
    assert!(err("SELECT a FROM d GROUP BY STATEWINDOW(a > 1), b")
        .contains("GROUP BY dimensions beside STATEWINDOW"));
    assert!(err("SELECT a FROM d GROUP BY STATEWINDOW(count(a) > 1)").contains("not allowed"));
    assert!(err("SELECT sum(count(a)) FROM d GROUP BY COUNTWINDOW(2)")
        .contains("aggregate argument is not allowed"));
    assert!(err("SELECT lag(a, -1) FROM d").contains("nagtive"));
    assert!(err("SELECT upper(a) OVER (PARTITION BY a) FROM d").contains("OVER"));
    assert_eq!(err("SELECT a AS x, a AS x FROM d"), "duplicate alias x");
}

#[test]
fn weird_inputs_never_panic() {
    let c = s_cat();
    let sqls = [
        "SELECT a[10], a[-10], a[1:0], a[5:], b->c, b[0], c / 0, c % 0, d LIKE e FROM s",
        "SELECT lag(a, 100000000), latest(b), changed_col(x, a), had_changed(1, a) FROM s",
        "SELECT acc_min(a), acc_avg(b) FROM s WHERE a IN b",
        "SELECT * FROM s GROUP BY SLIDINGWINDOW(ms, 1, 1) OVER (WHEN a)",
        "SELECT count(*), collect(*), deduplicate(a, b) FROM s GROUP BY a, SESSIONWINDOW(ms, 1, 1)",
        "SELECT unnest(a), changed_cols(a, b, *) FROM s",
        "SELECT meta(*), meta(topic), rule_id(), window_start(), event_time() FROM s",
    ];
    let rows = [
        json!({"a": [1], "b": {"c": 1}, "c": 1, "d": "x", "e": 1}),
        json!({"a": "str", "b": [1, 2], "c": 1.5, "d": null}),
        json!({"a": null, "b": null, "x": true}),
        json!({"a": {"k": [1, {"z": 2}]}, "b": i64::MAX, "c": i64::MIN}),
        json!({}),
    ];
    for sql in sqls {
        let p = plan(sql, &c, opts());
        let mut q = p.instantiate();
        let mut out = vec![];
        for (i, r) in rows.iter().enumerate() {
            for ts in [i64::MIN, -5, 0, i as i64, i64::MAX - 1, i64::MAX] {
                q.on_event(0, &ev(r.clone(), ts), &mut out);
                q.on_tick(ts, &mut out);
            }
        }
        q.on_event(7, &ev(json!({}), 1), &mut out);
        q.on_table_rows(9, &[Row::new(Arc::new(Schema::default()), vec![])]);
        let _ = q.metrics();
    }
}

#[test]
fn event_time_without_timestamp_field_uses_arrival() {
    let p = plan(
        "SELECT a FROM s GROUP BY TUMBLINGWINDOW(ss, 1)",
        &s_cat(),
        QueryOptions {
            is_event_time: true,
            late_tolerance_ms: 0,
            ..opts()
        },
    );
    let mut q = p.instantiate();
    let mut out = vec![];
    for (a, ts) in [(1, 100), (2, 900), (3, 1100), (4, 50), (5, 2100)] {
        q.on_event(0, &ev(json!({"a": a}), ts), &mut out);
    }
    assert_eq!(q.next_deadline(), None);
    // a=4 is late; windows close as the watermark passes them.
    assert_eq!(
        rows_json(&out),
        vec![
            vec![json!({"a": 1}), json!({"a": 2})],
            vec![json!({"a": 3})]
        ]
    );
}

fn ev_seq(j: Json, ts: i64, seq: u64) -> SharedEvent {
    let mut e = (*ev(j, ts)).clone();
    e.seq = seq;
    Arc::new(e)
}

#[test]
fn retained_events_are_reported_until_their_window_closes() {
    for sql in [
        "SELECT * FROM s GROUP BY TumblingWindow(ss, 1)",
        // Incremental aggregation keeps no rows, only groups.
        "SELECT count(*) FROM s GROUP BY TumblingWindow(ss, 1)",
    ] {
        let p = plan(sql, &s_cat(), opts());
        let mut q = p.instantiate();
        let mut out = vec![];
        q.on_tick(10_000, &mut out);
        assert_eq!(q.min_retained_seq(), None, "{sql}");
        q.on_event(0, &ev_seq(json!({"a": 1}), 10_100, 7), &mut out);
        q.on_event(0, &ev_seq(json!({"a": 2}), 10_200, 8), &mut out);
        assert_eq!(q.min_retained_seq(), Some(7), "{sql}");
        q.on_tick(11_000, &mut out);
        assert_eq!(q.min_retained_seq(), None, "{sql}: the window fired");
        assert_eq!(rows_json(&out).len(), 1, "{sql}");
    }
    // Without a window nothing is held.
    let p = plan("SELECT a FROM s WHERE a > 1", &s_cat(), opts());
    let mut q = p.instantiate();
    let mut out = vec![];
    q.on_event(0, &ev_seq(json!({"a": 2}), 1, 3), &mut out);
    assert_eq!(q.min_retained_seq(), None);
}

#[test]
fn event_time_hopping_window_with_a_hop_longer_than_its_size() {
    let p = plan(
        "SELECT collect(a) AS w, window_start() AS s, window_end() AS e FROM s GROUP BY HOPPINGWINDOW(ss, 1, 2)",
        &s_cat(),
        QueryOptions {
            is_event_time: true,
            late_tolerance_ms: 0,
            ..opts()
        },
    );
    let mut q = p.instantiate();
    let mut out = vec![];
    for (a, ts) in [
        (1, 500),
        (2, 1500),
        (3, 2500),
        (4, 3500),
        (5, 4500),
        (6, 6100),
    ] {
        q.on_event(0, &ev(json!({"a": a}), ts), &mut out);
    }
    // Windows end every 2 s and hold the last 1 s; rows in the gaps are in
    // no window. Starts as eKuiper computes them: the previous trigger less
    // the hop, or the end less the size when that is not after the epoch.
    assert_eq!(
        rows_json(&out),
        vec![
            vec![json!({"w": [2], "s": 1000, "e": 2000})],
            vec![json!({"w": [4], "s": 3000, "e": 4000})],
            vec![json!({"w": [], "s": 2000, "e": 6000})],
        ]
    );
}

#[test]
fn event_time_joins_wait_for_the_slowest_stream() {
    let c = cat(&[
        "CREATE STREAM d () WITH (TYPE=\"memory\")",
        "CREATE STREAM e () WITH (TYPE=\"memory\")",
    ]);
    let p = plan(
        "SELECT d.a, e.b FROM d INNER JOIN e ON d.k = e.k GROUP BY TUMBLINGWINDOW(ss, 1)",
        &c,
        QueryOptions {
            is_event_time: true,
            late_tolerance_ms: 0,
            ..opts()
        },
    );
    let mut q = p.instantiate();
    let mut out = vec![];
    // d runs ahead; e's events at 200 and 1200 are not late: the watermark
    // is the smaller of the two streams' (eKuiper's rule).
    q.on_event(0, &ev(json!({"k": 1, "a": 1}), 100), &mut out);
    q.on_event(0, &ev(json!({"k": 1, "a": 2}), 1500), &mut out);
    assert!(out.is_empty(), "nothing released before e has spoken");
    q.on_event(1, &ev(json!({"k": 1, "b": 10}), 200), &mut out);
    q.on_event(1, &ev(json!({"k": 1, "b": 20}), 1200), &mut out);
    assert_eq!(rows_json(&out), vec![vec![json!({"a": 1, "b": 10})]]);
}

#[test]
fn scan_table_joins_find_rows_through_the_key_index() {
    let c = cat(&[
        "CREATE STREAM s () WITH (TYPE=\"memory\")",
        "CREATE TABLE t () WITH (TYPE=\"memory\", RETAIN_SIZE=\"100\")",
    ]);
    let table = |q: &mut Query, rows: &[Json]| {
        let rs: Vec<Row> = rows.iter().map(|j| ev(j.clone(), 0).row.clone()).collect();
        q.on_table_rows(1, &rs);
    };
    for kind in ["INNER", "LEFT"] {
        let p = plan(
            &format!("SELECT s.id, t.name FROM s {kind} JOIN t ON s.k = t.k AND t.ok = true"),
            &c,
            opts(),
        );
        let mut q = p.instantiate();
        table(
            &mut q,
            &[
                json!({"k": 1, "name": "one", "ok": true}),
                json!({"k": 2, "name": "two", "ok": false}),
                json!({"k": 1, "name": "uno", "ok": true}),
                json!({"name": "nokey", "ok": true}),
            ],
        );
        let mut out = vec![];
        // 1.0 finds 1; the residual ON drops "two"; a NULL key finds nothing.
        q.on_event(0, &ev(json!({"id": "a", "k": 1.0}), 1), &mut out);
        q.on_event(0, &ev(json!({"id": "b", "k": 2}), 2), &mut out);
        q.on_event(0, &ev(json!({"id": "c"}), 3), &mut out);
        // The index follows the table.
        table(&mut q, &[json!({"k": 2, "name": "deux", "ok": true})]);
        q.on_event(0, &ev(json!({"id": "d", "k": 2}), 4), &mut out);
        let got = rows_json(&out);
        let mut want = vec![vec![
            json!({"id": "a", "name": "one"}),
            json!({"id": "a", "name": "uno"}),
        ]];
        if kind == "LEFT" {
            want.push(vec![json!({"id": "b"})]);
            want.push(vec![json!({"id": "c"})]);
        }
        want.push(vec![json!({"id": "d", "name": "deux"})]);
        assert_eq!(got, want, "{kind}");
    }
}

/// A host whose keyed state is a fixed map and whose sleep is recorded.
#[derive(Debug, Default)]
struct MapHost {
    slept: std::sync::Mutex<Vec<u64>>,
}

impl RuleHost for MapHost {
    fn keyed_state(&self, key: &str) -> Result<Option<Value>, String> {
        Ok(match key {
            "limit" => Some(Value::str("42")),
            "ratio" => Some(Value::str("0.5")),
            "broken" => return Err("store down".into()),
            _ => None,
        })
    }
    fn sleep(&self, ms: u64) {
        self.slept.lock().unwrap().push(ms);
    }
}

#[test]
fn keyed_state_delay_and_rule_start() {
    let host = Arc::new(MapHost::default());
    let o = QueryOptions {
        host: Some(HostRef(host.clone())),
        ..opts()
    };
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let p = plan(
        "SELECT get_keyed_state(\"limit\", \"bigint\", 0) AS l, \
         get_keyed_state(\"ratio\", \"float\", 1.0) AS r, \
         get_keyed_state(\"absent\", \"bigint\", -1) AS d, \
         get_keyed_state(k, \"string\", \"none\") AS c, \
         delay(5, a) AS x, rule_start() AS st FROM s",
        &s_cat(),
        o.clone(),
    );
    let mut q = p.instantiate();
    let mut out = vec![];
    q.on_event(0, &ev(json!({"a": 7, "k": "limit"}), 1), &mut out);
    let got = rows_json(&out);
    let row = &got[0][0];
    assert_eq!(row["l"], json!(42));
    assert_eq!(row["r"], json!(0.5));
    assert_eq!(row["d"], json!(-1));
    assert_eq!(row["c"], json!("42"));
    assert_eq!(row["x"], json!(7));
    let st = row["st"].as_i64().unwrap();
    assert!(st >= before && st < before + 60_000, "{st}");
    assert_eq!(*host.slept.lock().unwrap(), vec![5]);

    // A nil argument: no wait, nil result (eKuiper's check).
    out.clear();
    q.on_event(0, &ev(json!({"k": "limit"}), 2), &mut out);
    assert_eq!(host.slept.lock().unwrap().len(), 1);

    // A failing store is an error row, not a default.
    let p = plan(
        "SELECT get_keyed_state(\"broken\", \"bigint\", 0) AS l FROM s",
        &s_cat(),
        o.clone(),
    );
    let mut q = p.instantiate();
    out.clear();
    q.on_event(0, &ev(json!({}), 1), &mut out);
    assert!(format!("{:?}", rows_json(&out)).contains("store down"));

    // Too long a delay at run time.
    let p = plan("SELECT delay(d, 1) AS x FROM s", &s_cat(), o.clone());
    let mut q = p.instantiate();
    out.clear();
    q.on_event(0, &ev(json!({"d": 3_600_000}), 1), &mut out);
    assert!(format!("{:?}", rows_json(&out)).contains("longest delay"));
}

#[test]
fn extract_expands_an_object_into_columns() {
    let got = feed(
        "SELECT id, extract(m) FROM s",
        &[
            (json!({"id": 1, "m": {"x": 1, "y": "b"}}), 1),
            (json!({"id": 2, "m": 3}), 2),
        ],
        3,
    );
    assert_eq!(got[0], vec![json!({"id": 1, "x": 1, "y": "b"})]);
    assert!(
        format!("{:?}", got[1]).contains("extract should use map"),
        "{got:?}"
    );
}

#[test]
fn keyed_state_and_delay_are_checked_at_creation() {
    let c = s_cat();
    for (sql, want) in [
        (
            "SELECT get_keyed_state(\"a\", \"int\", 0) FROM s",
            "expect one of following value for the 2nd parameter",
        ),
        (
            "SELECT get_keyed_state(\"a\", 1, 0) FROM s",
            "Expect string type for parameter 2",
        ),
        (
            "SELECT get_keyed_state(\"a\", \"bigint\") FROM s",
            "Expect 3 arguments but found 2",
        ),
        (
            "SELECT delay(\"1s\", a) FROM s",
            "Expect number - float or int type for parameter 1",
        ),
        ("SELECT delay(3600000, a) FROM s", "longest delay"),
        ("SELECT rule_start(1) FROM s", "Expect 0 arguments"),
        (
            "SELECT abs(\"x\") FROM s",
            "Expect number - float or int type for parameter 1",
        ),
        (
            "SELECT cast(a, \"int\") FROM s",
            "following value for the 2nd parameter",
        ),
    ] {
        let sel = parse_select(sql).unwrap();
        match compile(&sel, &c, &opts()) {
            Ok(_) => panic!("{sql}: accepted"),
            Err(e) => assert!(e.to_string().contains(want), "{sql}: {e}"),
        }
    }
}

/// Every name of eKuiper's function catalogue resolves (library or engine).
#[test]
fn every_ekuiper_function_is_known() {
    // From eKuiper's function reference (../shared/docs/ekuiper-compat.md, 4.6).
    let names = "abs acos asin atan atan2 bitand bitor bitxor bitnot ceil ceiling cos cosh exp \
        floor ln log mod pi power pow rand round sign sin sinh sqrt tan tanh cot radians degrees \
        conv concat endswith indexof length lower lpad ltrim numbytes regexp_matches \
        regexp_replace regexp_substr reverse rpad rtrim substring startswith split_value trim \
        upper format format_time cast convert_tz to_seconds encode decode compress decompress \
        trunc chr hex2dec dec2hex md5 sha1 sha256 sha384 sha512 crc32 to_json parse_json \
        json_path_exists json_path_query json_path_query_first now current_timestamp \
        local_time local_timestamp cur_date current_date cur_time current_time date_calc \
        date_diff day_name day_of_month day day_of_week day_of_year from_days from_unix_time \
        hour last_day microsecond minute month month_name second cardinality array_create \
        array_position element_at array_contains array_remove array_last_position \
        array_contains_any array_intersect array_union array_max array_min array_except repeat \
        sequence array_cardinality array_flatten array_distinct array_map array_join \
        array_shuffle array_sort array_concat kvpair_array_to_obj keys values object zip items \
        object_concat object_construct erase object_size object_pick obj_to_kvpair_array \
        unnest extract row_number window_start window_end window_trigger event_time bypass props \
        isnull coalesce newuuid tstamp mqtt meta rule_id rule_start get_keyed_state delay \
        avg count max min sum collect merge_agg deduplicate stddev stddevs var vars median \
        percentile_cont percentile_disc last_value lag latest changed_col had_changed \
        changed_cols acc_sum acc_min acc_max acc_count acc_avg last_hit_count last_hit_time \
        last_agg_hit_count last_agg_hit_time";
    let missing: Vec<&str> = names
        .split_whitespace()
        .filter(|n| {
            !plan::engine_fn(n)
                && oort_functions::scalar(n).is_none()
                && !oort_functions::is_aggregate(n)
        })
        .collect();
    assert!(missing.is_empty(), "unknown functions: {missing:?}");
}

#[test]
fn send_meta_to_sink_adds_the_metadata_column() {
    let o = QueryOptions {
        send_meta: true,
        ..opts()
    };
    let p = plan("SELECT a FROM s WHERE a > 1", &s_cat(), o.clone());
    let mut q = p.instantiate();
    let mut meta = oort_core::Meta::new();
    meta.insert(Arc::from("topic"), Value::str("t/1"));
    let Value::Object(m) = Value::from_json(&json!({"a": 2})) else {
        panic!()
    };
    let e = Arc::new(Event {
        row: Row::from_map(&m),
        meta: Some(Arc::new(meta)),
        seq: 0,
        ts: 1,
    });
    let mut out = vec![];
    q.on_event(0, &e, &mut out);
    // An event without metadata gets no column (eKuiper sets it only when present).
    q.on_event(0, &ev(json!({"a": 3}), 2), &mut out);
    assert_eq!(
        rows_json(&out),
        vec![
            vec![json!({"a": 2, "__meta": {"topic": "t/1"}})],
            vec![json!({"a": 3})]
        ]
    );
    for sql in [
        "SELECT count(*) FROM s GROUP BY TUMBLINGWINDOW(ss, 1)",
        "SELECT * FROM s INNER JOIN t ON s.a = t.a",
    ] {
        let c = cat(&[
            "CREATE STREAM s () WITH (TYPE=\"memory\")",
            "CREATE TABLE t () WITH (TYPE=\"memory\", RETAIN_SIZE=\"100\")",
        ]);
        let sel = parse_select(sql).unwrap();
        let e = compile(&sel, &c, &o).unwrap_err().to_string();
        assert!(e.contains("sendMetaToSink"), "{sql}: {e}");
    }
}

#[test]
fn row_number_over_partition_and_order() {
    let evs = [
        (json!({"id": 1, "g": "b", "v": 1}), 1_000),
        (json!({"id": 2, "g": "a", "v": 5}), 2_000),
        (json!({"id": 3, "g": "b", "v": 3}), 3_000),
        (json!({"id": 4, "g": "a", "v": 7}), 4_000),
    ];
    let ids = |got: &Vec<Vec<Json>>| -> Vec<(i64, i64)> {
        got[0]
            .iter()
            .map(|r| (r["id"].as_i64().unwrap(), r["rn"].as_i64().unwrap()))
            .collect()
    };
    // Partitions by key text ("a," before "b,"), ORDER BY within each.
    let got = feed(
        "SELECT id, row_number() OVER (PARTITION BY g ORDER BY v DESC) AS rn FROM s GROUP BY TUMBLINGWINDOW(ss, 10)",
        &evs,
        10_000,
    );
    assert_eq!(ids(&got), vec![(4, 1), (2, 2), (3, 1), (1, 2)]);
    // The query's ORDER BY runs after the numbering.
    let got = feed(
        "SELECT id, row_number() OVER (PARTITION BY g ORDER BY v DESC) AS rn FROM s GROUP BY TUMBLINGWINDOW(ss, 10) ORDER BY id",
        &evs,
        10_000,
    );
    assert_eq!(ids(&got), vec![(1, 2), (2, 2), (3, 1), (4, 1)]);
    // ORDER BY alone: one partition.
    let got = feed(
        "SELECT id, row_number() OVER (ORDER BY v) AS rn FROM s GROUP BY TUMBLINGWINDOW(ss, 10)",
        &evs,
        10_000,
    );
    assert_eq!(ids(&got), vec![(1, 1), (3, 2), (2, 3), (4, 4)]);
    // PARTITION BY alone keeps arrival order within a partition.
    let got = feed(
        "SELECT id, row_number() OVER (PARTITION BY g) AS rn FROM s GROUP BY TUMBLINGWINDOW(ss, 10)",
        &evs,
        10_000,
    );
    assert_eq!(ids(&got), vec![(2, 1), (4, 2), (1, 1), (3, 2)]);
    // Without a window a row is number 1.
    let got = feed(
        "SELECT id, row_number() OVER (ORDER BY v) AS rn FROM s",
        &evs[..1],
        2_000,
    );
    assert_eq!(ids(&got), vec![(1, 1)]);
    // Mixed types in the OVER's ORDER BY: eKuiper's comparison error.
    let got = feed(
        "SELECT id, row_number() OVER (ORDER BY v) AS rn FROM s GROUP BY TUMBLINGWINDOW(ss, 10)",
        &[
            (json!({"id": 1, "v": 1}), 1_000),
            (json!({"id": 2, "v": "x"}), 2_000),
        ],
        10_000,
    );
    assert!(format!("{got:?}").contains("incompatible types"), "{got:?}");
    for (sql, want) in [
        (
            "SELECT lag(a) OVER (ORDER BY b) FROM s",
            "does not support ORDER BY in OVER",
        ),
        (
            "SELECT row_number() OVER (WHEN a > 1) FROM s",
            "does not support WHEN",
        ),
        (
            "SELECT row_number() OVER (ORDER BY a), row_number() OVER (ORDER BY b) FROM s GROUP BY TUMBLINGWINDOW(ss, 1)",
            "only one row_number",
        ),
        ("SELECT abs(a) OVER (ORDER BY a) FROM s", "does not support OVER"),
        (
            "SELECT a FROM s GROUP BY TUMBLINGWINDOW(ss, 1) HAVING row_number() OVER (ORDER BY a) < 3",
            "SELECT or ORDER BY only",
        ),
    ] {
        let sel = parse_select(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let e = compile(&sel, &s_cat(), &opts()).unwrap_err().to_string();
        assert!(e.contains(want), "{sql}: {e}");
    }
}

/// Incremental sliding windows (count/sum/avg taken back as rows leave)
/// give what recomputing the window gives: the same query with a `max`
/// (not removable) runs buffered, and the shared columns must agree.
#[test]
fn incremental_sliding_windows_match_recomputation() {
    let cases = [
        ("", "GROUP BY SLIDINGWINDOW(ss, 2)", false),
        (
            "",
            "GROUP BY k, SLIDINGWINDOW(ss, 2) FILTER (WHERE v IS NOT NULL OR k = \"b\")",
            false,
        ),
        (
            "",
            "GROUP BY k, SLIDINGWINDOW(ss, 3) OVER (WHEN v > 5) HAVING count(*) > 1 ORDER BY k",
            false,
        ),
        ("", "GROUP BY k, SLIDINGWINDOW(ss, 2)", true),
    ];
    for (wh, tail, event_time) in cases {
        let o = QueryOptions {
            is_event_time: event_time,
            late_tolerance_ms: 0,
            ..opts()
        };
        let inc_sql = format!(
            "SELECT k, count(*) AS c, sum(v) AS s, avg(v) AS a, count(v) AS n FROM s {wh} {tail}"
        );
        let buf_sql = format!(
            "SELECT k, count(*) AS c, sum(v) AS s, avg(v) AS a, count(v) AS n, max(v) AS m FROM s {wh} {tail}"
        );
        let pi = plan(&inc_sql, &s_cat(), o.clone());
        let pb = plan(&buf_sql, &s_cat(), o.clone());
        assert!(pi.inner.slide_incremental, "{inc_sql}");
        assert!(!pb.inner.slide_incremental, "{buf_sql}");
        let (mut qi, mut qb) = (pi.instantiate(), pb.instantiate());
        let (mut oi, mut ob) = (vec![], vec![]);
        let mut x: u64 = 7;
        for i in 0..3000i64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let k = ["a", "b", "c"][(x >> 33) as usize % 3];
            let v = match (x >> 40) % 5 {
                0 => json!(null),
                1 => json!(((x >> 20) % 100) as f64 / 4.0),
                _ => json!((x >> 24) % 10),
            };
            let ts = 1_700_000_000_000 + i * 97;
            let e = ev(json!({"k": k, "v": v, "ts": ts}), ts);
            qi.on_event(0, &e, &mut oi);
            qb.on_event(0, &e, &mut ob);
        }
        qi.on_tick(1_700_000_000_000 + 4_000_000, &mut oi);
        qb.on_tick(1_700_000_000_000 + 4_000_000, &mut ob);
        let strip = |o: &[Output]| -> Vec<Vec<Json>> {
            rows_json(o)
                .into_iter()
                .map(|rs| {
                    rs.into_iter()
                        .map(|mut r| {
                            if let Some(m) = r.as_object_mut() {
                                m.remove("m");
                                for f in ["s", "a"] {
                                    // Float sums in another order: compare rounded.
                                    if let Some(x) = m.get(f).and_then(Json::as_f64) {
                                        m.insert(f.into(), json!((x * 1e6).round() / 1e6));
                                    }
                                }
                            }
                            r
                        })
                        .collect()
                })
                .collect()
        };
        let (gi, gb) = (strip(&oi), strip(&ob));
        assert!(gb.len() > 100, "{tail}: {} emissions", gb.len());
        assert_eq!(gi, gb, "{wh} {tail}");
    }
}

#[test]
fn incremental_sliding_window_reports_a_bad_row_while_it_is_in_the_window() {
    let got = feed(
        "SELECT avg(v) AS a FROM s GROUP BY SLIDINGWINDOW(ss, 2)",
        &[
            (json!({"v": 1}), 1_000),
            (json!({"v": "x"}), 1_500),
            (json!({"v": 3}), 2_000),
            (json!({"v": 5}), 4_000),
        ],
        5_000,
    );
    assert_eq!(got[0], vec![json!({"a": 1.0})]);
    assert!(format!("{:?}", got[1]).contains("error"), "{got:?}");
    assert!(format!("{:?}", got[2]).contains("error"), "{got:?}");
    // 1,000 and 1,500 left the window [2,000, 4,000].
    assert_eq!(got[3], vec![json!({"a": 4.0})]);
}
