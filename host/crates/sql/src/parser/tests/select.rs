//! SELECT statements: projection, FROM/JOIN, clauses and windows.

use super::*;
use crate::ast::BinaryOp::*;
use crate::parser::parse_statement;

#[test]
fn minimal_select() {
    let q = sel("SELECT * FROM demo");
    assert_eq!(
        q.fields,
        vec![SelectItem::Wildcard {
            except: vec![],
            replace: vec![]
        }]
    );
    assert_eq!(
        q.from,
        FromItem {
            name: "demo".into(),
            alias: None
        }
    );
    assert!(q.joins.is_empty() && q.where_.is_none() && q.group_by.is_empty());
    assert!(q.window.is_none() && q.having.is_none() && q.order_by.is_empty() && q.limit.is_none());
    // Trailing semicolon and keyword case.
    assert_eq!(sel("select * from demo;"), q);
    let st = parse_statement("SeLeCt * FrOm demo").unwrap();
    assert_eq!(st, Statement::Select(Box::new(q)));
}

#[test]
fn select_items() {
    let q = sel("SELECT a, b AS bb, c + 1 AS c1 INVISIBLE, d.*, upper(e) FROM s");
    assert_eq!(
        q.fields,
        vec![
            item(col("a"), None),
            item(col("b"), Some("bb")),
            SelectItem::Expr {
                expr: bin(Add, col("c"), int(1)),
                alias: Some("c1".into()),
                invisible: true
            },
            SelectItem::QualifiedWildcard("d".into()),
            item(Expr::call("upper", vec![col("e")]), None),
        ]
    );
    let q = sel("SELECT `select` AS `my alias` FROM `my stream`");
    assert_eq!(q.fields, vec![item(col("select"), Some("my alias"))]);
    assert_eq!(q.from.name, "my stream");
}

#[test]
fn wildcard_except_replace() {
    let q = sel("SELECT * EXCEPT(a, b) REPLACE(a + 1 AS a, upper(c) AS c), d FROM s");
    assert_eq!(
        q.fields[0],
        SelectItem::Wildcard {
            except: vec!["a".into(), "b".into()],
            replace: vec![
                (bin(Add, col("a"), int(1)), "a".into()),
                (Expr::call("upper", vec![col("c")]), "c".into())
            ],
        }
    );
    assert_eq!(q.fields[1], item(col("d"), None));
    let q = sel("SELECT * REPLACE(x * 2 AS x) EXCEPT(y) FROM s");
    assert_eq!(
        q.fields[0],
        SelectItem::Wildcard {
            except: vec!["y".into()],
            replace: vec![(bin(Mul, col("x"), int(2)), "x".into())]
        }
    );
    let q = sel("SELECT *, upper(color), event_time() FROM demo");
    assert_eq!(q.fields.len(), 3);
}

#[test]
fn from_alias_and_joins() {
    let q = sel(
        "SELECT * FROM demo AS d INNER JOIN t1 AS a ON d.id = a.id LEFT JOIN t2 b ON d.x = b.x \
         RIGHT OUTER JOIN t3 ON true FULL JOIN t4 ON d.y = t4.y CROSS JOIN t5 JOIN t6 ON 1 = 1",
    );
    assert_eq!(
        q.from,
        FromItem {
            name: "demo".into(),
            alias: Some("d".into())
        }
    );
    let kinds: Vec<JoinKind> = q.joins.iter().map(|j| j.kind).collect();
    assert_eq!(
        kinds,
        vec![
            JoinKind::Inner,
            JoinKind::Left,
            JoinKind::Right,
            JoinKind::Full,
            JoinKind::Cross,
            JoinKind::Inner
        ]
    );
    assert_eq!(
        q.joins[0].source,
        FromItem {
            name: "t1".into(),
            alias: Some("a".into())
        }
    );
    assert_eq!(
        q.joins[0].on,
        Some(bin(Eq, qcol("d", "id"), qcol("a", "id")))
    );
    assert_eq!(
        q.joins[1].source,
        FromItem {
            name: "t2".into(),
            alias: Some("b".into())
        }
    );
    assert_eq!(q.joins[2].source.alias, None);
    assert_eq!(q.joins[4].on, None);
    assert_eq!(q.joins[4].source.name, "t5");
    let q = sel("SELECT * FROM demo d");
    assert_eq!(q.from.alias.as_deref(), Some("d"));
}

#[test]
fn where_group_having_order_limit() {
    let q = sel(
        "SELECT color, count(*) AS c FROM demo WHERE size > 2 GROUP BY color, TUMBLINGWINDOW(ss, 10), size \
         HAVING c > 1 ORDER BY c DESC, color ASC, size LIMIT 5",
    );
    assert_eq!(q.where_, Some(bin(Gt, col("size"), int(2))));
    assert_eq!(q.group_by, vec![col("color"), col("size")]);
    let w = q.window.unwrap();
    assert_eq!(w.kind, WindowKind::Tumbling { size_ms: 10_000 });
    assert_eq!(w.unit, Some(TimeUnit::Ss));
    assert_eq!(q.having, Some(bin(Gt, col("c"), int(1))));
    assert_eq!(
        q.order_by,
        vec![
            OrderBy {
                expr: col("c"),
                desc: true
            },
            OrderBy {
                expr: col("color"),
                desc: false
            },
            OrderBy {
                expr: col("size"),
                desc: false
            }
        ]
    );
    assert_eq!(q.limit, Some(5));
}

#[test]
fn time_windows_convert_units() {
    let w = |sql: &str| sel(sql).window.unwrap();
    assert_eq!(
        w("SELECT * FROM s GROUP BY TUMBLINGWINDOW(ms, 500)").kind,
        WindowKind::Tumbling { size_ms: 500 }
    );
    assert_eq!(
        w("SELECT * FROM s GROUP BY tumblingwindow(MI, 2)").kind,
        WindowKind::Tumbling { size_ms: 120_000 }
    );
    let h = w("SELECT * FROM s GROUP BY HOPPINGWINDOW(ss, 2, 1)");
    assert_eq!(
        h.kind,
        WindowKind::Hopping {
            size_ms: 2000,
            hop_ms: 1000
        }
    );
    assert_eq!(h.unit, Some(TimeUnit::Ss));
    assert_eq!(
        w("SELECT * FROM s GROUP BY SLIDINGWINDOW(hh, 1)").kind,
        WindowKind::Sliding {
            size_ms: 3_600_000,
            delay_ms: 0
        }
    );
    assert_eq!(
        w("SELECT * FROM s GROUP BY SLIDINGWINDOW(ss, 5, 1)").kind,
        WindowKind::Sliding {
            size_ms: 5000,
            delay_ms: 1000
        }
    );
    assert_eq!(
        w("SELECT * FROM s GROUP BY SESSIONWINDOW(dd, 1, 2)").kind,
        WindowKind::Session {
            max_ms: 86_400_000,
            timeout_ms: 172_800_000
        }
    );
    assert_eq!(
        w("SELECT * FROM s GROUP BY SESSIONWINDOW(Dd, 1, 2)").unit,
        Some(TimeUnit::Dd)
    );
}

#[test]
fn count_and_state_windows() {
    let w = |sql: &str| sel(sql).window.unwrap();
    let c = w("SELECT * FROM s GROUP BY COUNTWINDOW(3)");
    assert_eq!(c.kind, WindowKind::Count { size: 3, every: 3 });
    assert_eq!(c.unit, None);
    assert_eq!(
        w("SELECT * FROM s GROUP BY COUNTWINDOW(5, 2)").kind,
        WindowKind::Count { size: 5, every: 2 }
    );
    assert_eq!(
        w("SELECT * FROM s GROUP BY COUNTWINDOW(5, 5)").kind,
        WindowKind::Count { size: 5, every: 5 }
    );
    let st = w("SELECT * FROM s GROUP BY STATEWINDOW(a > 1, a < 0) OVER (PARTITION BY id, b->c)");
    assert_eq!(
        st.kind,
        WindowKind::State {
            begin: Box::new(bin(Gt, col("a"), int(1))),
            emit: Some(Box::new(bin(Lt, col("a"), int(0))))
        }
    );
    assert_eq!(st.partition_by, vec![col("id"), field(col("b"), "c")]);
    let st = w("SELECT * FROM s GROUP BY statewindow(a = 1)");
    assert_eq!(
        st.kind,
        WindowKind::State {
            begin: Box::new(bin(Eq, col("a"), int(1))),
            emit: None
        }
    );
}

#[test]
fn window_filter_and_over_when() {
    let q = sel(
        r#"SELECT size,color FROM demo GROUP BY SLIDINGWINDOW(ss, 5) FILTER (WHERE color = "red") OVER (WHEN size = 1)"#,
    );
    let w = q.window.unwrap();
    assert_eq!(
        w.kind,
        WindowKind::Sliding {
            size_ms: 5000,
            delay_ms: 0
        }
    );
    assert_eq!(w.filter, Some(Box::new(bin(Eq, col("color"), s("red")))));
    assert_eq!(w.trigger, Some(Box::new(bin(Eq, col("size"), int(1)))));
    assert!(w.partition_by.is_empty());
    let q = sel("SELECT color FROM demo GROUP BY HOPPINGWINDOW(ss,2,1) FILTER(WHERE size > 2)");
    assert_eq!(
        q.window.unwrap().filter,
        Some(Box::new(bin(Gt, col("size"), int(2))))
    );
    // The window may sit anywhere in the GROUP BY list.
    let q = sel("SELECT * FROM demo GROUP BY COUNTWINDOW(5), color");
    assert_eq!(q.group_by, vec![col("color")]);
    assert!(q.window.is_some());
}

#[test]
fn statement_dispatch_of_select() {
    match parse_statement("SELECT a FROM b WHERE a > 1").unwrap() {
        Statement::Select(q) => assert_eq!(q.where_, Some(bin(Gt, col("a"), int(1)))),
        other => panic!("{other:?}"),
    }
}
