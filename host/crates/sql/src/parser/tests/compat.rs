//! Every SQL text of the conformance cases (compat doc §6.4) and the stream
//! definitions of its datasets (§6.3) must parse; a few are checked in depth.

use super::*;
use crate::ast::BinaryOp::*;
use crate::parser::parse_statement;

/// The rule SQL of §6.4 (abridged ones spelled out).
pub(super) const CASES: &[&str] = &[
    "SELECT *, upper(color), event_time() FROM demo",
    "SELECT color, ts, last_hit_count() + 1 as lc FROM demo WHERE size > 3",
    "SELECT size as Int8, ts FROM demoError WHERE size > 3",
    "SELECT meta(topic) as m, ts FROM demo WHERE last_hit_count() < 4",
    "SELECT * FROM demo1 WHERE `from`=\"device1\"",
    "SELECT color, CASE WHEN size < 2 THEN \"S\" WHEN size < 4 THEN \"M\" ELSE \"L\" END as s, ts FROM demo",
    "SELECT changed_cols(\"tt_\", true, color, size) FROM demo",
    "SELECT arr[1] as col1 FROM demoArr WHERE x=1",
    "SELECT arr[1:y] as col1 FROM demoArr WHERE x=1",
    "SELECT arr[x:4] as col1 FROM demoArr WHERE x=1",
    "SELECT arr[x:y+1] as col1 FROM demoArr WHERE x=1",
    "SELECT unnest(arr2) FROM demoArr WHERE x=1",
    "SELECT unnest(arr2), x FROM demoArr WHERE x=1",
    "SELECT unnest(arr3) as col FROM demoArr WHERE x=1",
    "SELECT unnest(a) FROM demoArr WHERE x=1",
    "SELECT lag(size) as lastSize, lag(had_changed(true,size)), size, lastSize/size as changeRate FROM demo WHERE size > 2",
    "SELECT color, lag(size) over (partition by color) as lastSize, size, lastSize/size as changeRate FROM demo",
    "SELECT lag(size,1,0) + 1 as b, lag(b,1,0), size FROM demo",
    "select acc_sum(size) over (partition by color), color from demo",
    "select acc_sum(size) over (when color = \"red\"), color from demo",
    "select acc_min(size) over (when color = \"red\"), color from demo",
    "select acc_max(size) over (when color = \"red\"), color from demo",
    "select acc_count(size) over (when color = \"red\"), color from demo",
    "select acc_avg(size) over (when color = \"red\"), color from demo",
    "select size, row_number() from demo",
    "select size + 1 as size, size + 1 as b from demo",
    "select a + 1 as b, size as a from demo",
    "SELECT color, ts FROM ldemo WHERE size >= 3",
    "SELECT size * 5 FROM ldemo",
    "SELECT * FROM demo INNER JOIN table1 on demo.ts = table1.id",
    "SELECT *, upper(color) FROM demoE",
    "SELECT *, last_hit_time() as lt, last_hit_count() as lc, event_time() as et FROM demoE WHERE size < 3 AND lc < 2",
    "select a,b from sharedDemo",
    "select b,c from sharedDemo",
    "SELECT *, event_time() as et FROM demo GROUP BY HOPPINGWINDOW(ss, 2, 1)",
    "SELECT color, ts FROM demo WHERE size > 2 GROUP BY TUMBLINGWINDOW(ss, 1)",
    "SELECT color, window_end(), event_time() as et, ts, count(*) as c, window_start() FROM demo WHERE size > 2 GROUP BY TUMBLINGWINDOW(ss,1) HAVING c > 1",
    "SELECT * FROM demoError GROUP BY HOPPINGWINDOW(ss, 2, 1)",
    "SELECT color, window_start(), window_end() FROM demo GROUP BY HOPPINGWINDOW(ss,2,1) FILTER(WHERE size > 2)",
    "SELECT collect(size) as allSize FROM demo GROUP BY HOPPINGWINDOW(ss,2,1), color ORDER BY color",
    "SELECT collect(*)[0]->color as c, window_end() as we FROM demo GROUP BY COUNTWINDOW(3)",
    "SELECT color, count(*) as c FROM demo WHERE color != \"red\" GROUP BY COUNTWINDOW(5), color ORDER BY c DESC",
    "SELECT count(temp), window_start() as ws, window_end(), event_time() as et FROM sessionDemo GROUP BY SESSIONWINDOW(ss, 2, 1)",
    "SELECT size,color FROM demo GROUP BY SLIDINGWINDOW(ss, 5) FILTER (WHERE color = \"red\") OVER (WHEN size = 1)",
    "SELECT size,color FROM demo GROUP BY SLIDINGWINDOW(ss, 5, 1) OVER (WHEN size = 2)",
    "SELECT color, count(*) as c FROM demo GROUP BY SLIDINGWINDOW(ss, 2) OVER(WHEN ts - last_hit_time() > 1000), color ORDER BY color",
    "SELECT deduplicate(color, false)->color as c FROM demo GROUP BY SLIDINGWINDOW(hh, 1)",
    "SELECT color, temp, demo.ts as ts1, demo1.ts as ts2, demo.ts - demo1.ts as diff FROM demo INNER JOIN demo1 ON ts1 = ts2 GROUP BY SLIDINGWINDOW(ss, 1) HAVING last_agg_hit_count() < 7",
    "SELECT window_start(), window_end(), color, ts FROM demoE WHERE size > 2 GROUP BY TUMBLINGWINDOW(ss, 1)",
    "SELECT window_end(), color, window_start() FROM demoE GROUP BY HOPPINGWINDOW(ss, 2, 1)",
    "SELECT count(*), last_agg_hit_time() as lt, last_agg_hit_count() as lc, event_time() as et FROM demoE GROUP BY HOPPINGWINDOW(ss, 2, 1) HAVING lc < 4",
    "SELECT temp, window_start(), window_end() FROM sessionDemoE GROUP BY SESSIONWINDOW(ss, 2, 1)",
    // §4.2 examples.
    "select a + 1 as b, size as a from demo where a > avg(a) group by countwindow(2)",
];

/// Stream/table definitions of the §6.3 datasets, as eKuiper's tests write them.
pub(super) const STREAMS: &[&str] = &[
    "CREATE STREAM demo (\n\tcolor STRING,\n\tsize BIGINT,\n\tts BIGINT\n) WITH (DATASOURCE=\"demo\", TYPE=\"mock\", FORMAT=\"json\", KEY=\"ts\");",
    "CREATE STREAM demoE (color STRING, size BIGINT, ts BIGINT) WITH (DATASOURCE=\"demoE\", TYPE=\"mock\", FORMAT=\"json\", KEY=\"ts\", TIMESTAMP=\"ts\");",
    "CREATE STREAM demo1 (temp FLOAT, hum BIGINT, `from` STRING, ts BIGINT) WITH (DATASOURCE=\"demo1\", TYPE=\"mock\", FORMAT=\"json\", KEY=\"ts\");",
    "CREATE STREAM sessionDemo (temp FLOAT, hum BIGINT, ts BIGINT) WITH (DATASOURCE=\"sessionDemo\", TYPE=\"mock\", FORMAT=\"json\", KEY=\"ts\");",
    "CREATE STREAM sessionDemoE (temp FLOAT, hum BIGINT, ts BIGINT) WITH (DATASOURCE=\"sessionDemoE\", TYPE=\"mock\", FORMAT=\"json\", KEY=\"ts\", TIMESTAMP=\"ts\");",
    "CREATE STREAM demoArr () WITH (DATASOURCE=\"demoArr\", TYPE=\"mock\", FORMAT=\"json\", KEY=\"ts\");",
    "CREATE STREAM ldemo (\t\t\t\t\t\n) WITH (DATASOURCE=\"ldemo\", TYPE=\"mock\", FORMAT=\"json\");",
    "CREATE STREAM demoError (color STRING, size BIGINT, ts BIGINT) WITH (DATASOURCE=\"demoError\", TYPE=\"mock\", FORMAT=\"json\", KEY=\"ts\",STRICT_VALIDATION=\"true\");",
    "CREATE STREAM sharedDemo () WITH (DATASOURCE=\"sharedDemo\", TYPE=\"mock\", FORMAT=\"json\", SHARED=\"true\");",
    "CREATE TABLE table1 (name STRING, size BIGINT, id BIGINT) WITH (DATASOURCE=\"lookup.json\", FORMAT=\"json\", CONF_KEY=\"test\", STRICT_VALIDATION=\"true\");",
    "CREATE TABLE demoTable (device STRING, ts BIGINT) WITH (DATASOURCE=\"demoTable\", TYPE=\"mock\", RETAIN_SIZE=\"3\");",
    "CREATE STREAM ext (count bigint) WITH (DATASOURCE=\"ext\", FORMAT=\"JSON\", TYPE=\"random\", CONF_KEY=\"ext\",STRICT_VALIDATION=\"true\")",
    "CREATE STREAM text (slogan string, brand string) WITH (DATASOURCE=\"text\", TYPE=\"mock\", FORMAT=\"JSON\")",
    "CREATE STREAM binDemo () WITH (DATASOURCE=\"binDemo\", TYPE=\"mock\", FORMAT=\"BINARY\")",
    "CREATE STREAM shelves (name string, size BIGINT, shelf STRUCT(theme STRING,id BIGINT, subfield STRING)) WITH (DATASOURCE=\"shelves\", TYPE=\"mock\", FORMAT=\"json\");",
    "CREATE STREAM demo () WITH (DATASOURCE=\"demo\", FORMAT=\"json\", SHARED=\"false\", );",
];

#[test]
fn all_conformance_sql_parses() {
    for sql in CASES {
        match parse_statement(sql) {
            Ok(Statement::Select(_)) => {}
            other => panic!("{sql}: {other:?}"),
        }
    }
    for sql in STREAMS {
        match parse_statement(sql) {
            Ok(Statement::CreateStream(_)) => {}
            other => panic!("{sql}: {other:?}"),
        }
    }
}

#[test]
fn case_37_join_with_window_in_depth() {
    let q = sel(CASES[47]);
    assert_eq!(q.from.name, "demo");
    assert_eq!(q.joins.len(), 1);
    assert_eq!(q.joins[0].kind, JoinKind::Inner);
    assert_eq!(q.joins[0].on, Some(bin(Eq, col("ts1"), col("ts2"))));
    assert_eq!(
        q.fields[4],
        item(
            bin(Sub, qcol("demo", "ts"), qcol("demo1", "ts")),
            Some("diff")
        )
    );
    assert_eq!(
        q.window.unwrap().kind,
        WindowKind::Sliding {
            size_ms: 1000,
            delay_ms: 0
        }
    );
    assert_eq!(
        q.having,
        Some(bin(Lt, Expr::call("last_agg_hit_count", vec![]), int(7)))
    );
}

#[test]
fn case_35_trigger_condition_in_depth() {
    let q = sel(CASES[45]);
    let w = q.window.unwrap();
    assert_eq!(
        w.trigger,
        Some(Box::new(bin(
            Gt,
            bin(Sub, col("ts"), Expr::call("last_hit_time", vec![])),
            int(1000)
        )))
    );
    assert_eq!(q.group_by, vec![col("color")]);
    assert_eq!(
        q.order_by,
        vec![OrderBy {
            expr: col("color"),
            desc: false
        }]
    );
}

#[test]
fn case_36_call_then_arrow() {
    let q = sel(CASES[46]);
    assert_eq!(
        q.fields[0],
        item(
            field(
                Expr::call(
                    "deduplicate",
                    vec![col("color"), Expr::Literal(Literal::Bool(false))]
                ),
                "color"
            ),
            Some("c")
        )
    );
    assert_eq!(
        q.window.unwrap().kind,
        WindowKind::Sliding {
            size_ms: 3_600_000,
            delay_ms: 0
        }
    );
}

#[test]
fn dataset_streams_in_depth() {
    let Ok(Statement::CreateStream(d)) = parse_statement(STREAMS[2]) else {
        panic!()
    };
    assert_eq!(d.columns[2].name, "from");
    let Ok(Statement::CreateStream(d)) = parse_statement(STREAMS[10]) else {
        panic!()
    };
    assert_eq!(d.kind, StreamKind::Table);
    assert_eq!(d.options.retain_size, Some(3));
    let Ok(Statement::CreateStream(d)) = parse_statement(STREAMS[13]) else {
        panic!()
    };
    assert_eq!(d.options.format.as_deref(), Some("binary"));
    let Ok(Statement::CreateStream(d)) = parse_statement(STREAMS[8]) else {
        panic!()
    };
    assert!(d.options.shared);
}
