//! Expressions: literals, operators and precedence, access chains, calls.

use super::*;
use crate::ast::BinaryOp::*;

#[test]
fn literals() {
    assert_eq!(e("42"), int(42));
    assert_eq!(e("-7"), int(-7));
    assert_eq!(e("3.5"), Expr::Literal(Literal::Float(3.5)));
    assert_eq!(e("-0.25"), Expr::Literal(Literal::Float(-0.25)));
    assert_eq!(e(".5"), Expr::Literal(Literal::Float(0.5)));
    assert_eq!(e("1e3"), Expr::Literal(Literal::Float(1000.0)));
    assert_eq!(e(r#""red""#), s("red"));
    assert_eq!(e("'red'"), s("red"));
    assert_eq!(e(r#"'say "hi"'"#), s("say \"hi\""));
    assert_eq!(e(r#""a\"b""#), s("a\"b"));
    assert_eq!(e(r#""line\nbreak""#), s("line\nbreak"));
    assert_eq!(e("TRUE"), Expr::Literal(Literal::Bool(true)));
    assert_eq!(e("false"), Expr::Literal(Literal::Bool(false)));
    assert_eq!(e("NULL"), Expr::Literal(Literal::Null));
    assert_eq!(e("-9223372036854775808"), int(i64::MIN));
    assert!(parse_expr("9223372036854775808").is_err());
}

#[test]
fn arithmetic_precedence() {
    assert_eq!(e("1 + 2 * 3"), bin(Add, int(1), bin(Mul, int(2), int(3))));
    assert_eq!(e("(1 + 2) * 3"), bin(Mul, bin(Add, int(1), int(2)), int(3)));
    assert_eq!(
        e("a - b - c"),
        bin(Sub, bin(Sub, col("a"), col("b")), col("c"))
    );
    assert_eq!(
        e("a / b % c"),
        bin(Mod, bin(Div, col("a"), col("b")), col("c"))
    );
    assert_eq!(
        e("a & b | c ^ d"),
        bin(
            BitXor,
            bin(BitOr, bin(BitAnd, col("a"), col("b")), col("c")),
            col("d")
        )
    );
    assert_eq!(
        e("a | b & c"),
        bin(BitOr, col("a"), bin(BitAnd, col("b"), col("c")))
    );
    assert_eq!(e("a-1"), bin(Sub, col("a"), int(1)));
    assert_eq!(e("a - -1"), bin(Sub, col("a"), int(-1)));
    assert_eq!(
        e("-a * b"),
        bin(
            Mul,
            Expr::Unary {
                op: UnaryOp::Neg,
                expr: Box::new(col("a"))
            },
            col("b")
        )
    );
    assert_eq!(e("+a"), col("a"));
}

#[test]
fn comparison_and_logic_precedence() {
    assert_eq!(
        e("a = 1 OR b != 2 AND c <> 3"),
        bin(
            Or,
            bin(Eq, col("a"), int(1)),
            bin(
                And,
                bin(NotEq, col("b"), int(2)),
                bin(NotEq, col("c"), int(3))
            )
        )
    );
    assert_eq!(
        e("a < 1 and b <= 2"),
        bin(And, bin(Lt, col("a"), int(1)), bin(LtEq, col("b"), int(2)))
    );
    assert_eq!(
        e("a > b + 1"),
        bin(Gt, col("a"), bin(Add, col("b"), int(1)))
    );
    assert_eq!(e("a >= 1"), bin(GtEq, col("a"), int(1)));
    assert_eq!(
        e("NOT a = 1 AND b"),
        bin(
            And,
            Expr::Unary {
                op: UnaryOp::Not,
                expr: Box::new(bin(Eq, col("a"), int(1)))
            },
            col("b")
        )
    );
    assert_eq!(e("not not true"), {
        let t = Expr::Literal(Literal::Bool(true));
        let inner = Expr::Unary {
            op: UnaryOp::Not,
            expr: Box::new(t),
        };
        Expr::Unary {
            op: UnaryOp::Not,
            expr: Box::new(inner),
        }
    });
}

#[test]
fn between_like_in_is() {
    assert_eq!(
        e("a BETWEEN 1 AND 5 AND b"),
        bin(
            And,
            Expr::Between {
                expr: Box::new(col("a")),
                low: Box::new(int(1)),
                high: Box::new(int(5)),
                negated: false
            },
            col("b")
        )
    );
    assert_eq!(
        e("a not between x+1 and 10"),
        Expr::Between {
            expr: Box::new(col("a")),
            low: Box::new(bin(Add, col("x"), int(1))),
            high: Box::new(int(10)),
            negated: true
        }
    );
    assert_eq!(
        e(r#"color LIKE "r%""#),
        Expr::Like {
            expr: Box::new(col("color")),
            pattern: Box::new(s("r%")),
            negated: false
        }
    );
    assert_eq!(
        e("color NOT LIKE 'b_'"),
        Expr::Like {
            expr: Box::new(col("color")),
            pattern: Box::new(s("b_")),
            negated: true
        }
    );
    assert_eq!(
        e(r#"color IN ("red", "blue")"#),
        Expr::InList {
            expr: Box::new(col("color")),
            list: vec![s("red"), s("blue")],
            negated: false
        }
    );
    assert_eq!(
        e("size NOT IN (1, 2, 3)"),
        Expr::InList {
            expr: Box::new(col("size")),
            list: vec![int(1), int(2), int(3)],
            negated: true
        }
    );
    assert_eq!(
        e("x IN arr"),
        Expr::InList {
            expr: Box::new(col("x")),
            list: vec![col("arr")],
            negated: false
        }
    );
    assert_eq!(
        e("x IN a->b AND y"),
        bin(
            And,
            Expr::InList {
                expr: Box::new(col("x")),
                list: vec![field(col("a"), "b")],
                negated: false
            },
            col("y")
        )
    );
    assert_eq!(
        e("a IS NULL"),
        Expr::IsNull {
            expr: Box::new(col("a")),
            negated: false
        }
    );
    assert_eq!(
        e("a + 1 is not null or b"),
        bin(
            Or,
            Expr::IsNull {
                expr: Box::new(bin(Add, col("a"), int(1))),
                negated: true
            },
            col("b")
        )
    );
}

#[test]
fn case_expressions() {
    assert_eq!(
        e(r#"CASE WHEN size < 2 THEN "S" WHEN size < 4 THEN "M" ELSE "L" END"#),
        Expr::Case {
            operand: None,
            whens: vec![
                (bin(Lt, col("size"), int(2)), s("S")),
                (bin(Lt, col("size"), int(4)), s("M"))
            ],
            else_: Some(Box::new(s("L"))),
        }
    );
    assert_eq!(
        e("case color when 'red' then 1 end"),
        Expr::Case {
            operand: Some(Box::new(col("color"))),
            whens: vec![(s("red"), int(1))],
            else_: None
        }
    );
}

#[test]
fn columns_and_access_chains() {
    assert_eq!(e("demo.ts"), qcol("demo", "ts"));
    assert_eq!(e("`from`"), col("from"));
    assert_eq!(e("`my col`"), col("my col"));
    assert_eq!(e("demo.`from`"), qcol("demo", "from"));
    assert_eq!(e("a->b->c"), field(field(col("a"), "b"), "c"));
    assert_eq!(e("a.b.c"), field(qcol("a", "b"), "c"));
    assert_eq!(e("a -> b"), field(col("a"), "b"));
    assert_eq!(
        e("arr[0]"),
        Expr::Index {
            expr: Box::new(col("arr")),
            index: Box::new(int(0))
        }
    );
    assert_eq!(
        e("arr[-1]"),
        Expr::Index {
            expr: Box::new(col("arr")),
            index: Box::new(int(-1))
        }
    );
    let slice = |from: Option<Expr>, to: Option<Expr>| Expr::Slice {
        expr: Box::new(col("arr")),
        from: from.map(Box::new),
        to: to.map(Box::new),
    };
    assert_eq!(e("arr[1:3]"), slice(Some(int(1)), Some(int(3))));
    assert_eq!(
        e("arr[x:y+1]"),
        slice(Some(col("x")), Some(bin(Add, col("y"), int(1))))
    );
    assert_eq!(e("arr[:2]"), slice(None, Some(int(2))));
    assert_eq!(e("arr[2:]"), slice(Some(int(2)), None));
    assert_eq!(e("arr[:]"), slice(None, None));
    assert_eq!(e("arr[]"), slice(None, None));
    assert_eq!(e("arr[1:y]"), slice(Some(int(1)), Some(col("y"))));
    assert_eq!(e("arr[-2:-1]"), slice(Some(int(-2)), Some(int(-1))));
    assert_eq!(
        e("a->b[0]->c"),
        field(
            Expr::Index {
                expr: Box::new(field(col("a"), "b")),
                index: Box::new(int(0))
            },
            "c"
        )
    );
    assert_eq!(
        e("arr2[0][1]"),
        Expr::Index {
            expr: Box::new(Expr::Index {
                expr: Box::new(col("arr2")),
                index: Box::new(int(0))
            }),
            index: Box::new(int(1))
        }
    );
    // Access binds tighter than any operator.
    assert_eq!(e("a * b->c"), bin(Mul, col("a"), field(col("b"), "c")));
}

#[test]
fn calls() {
    assert_eq!(e("UPPER(color)"), Expr::call("upper", vec![col("color")]));
    assert_eq!(e("count(*)"), Expr::call("count", vec![Expr::Wildcard]));
    assert_eq!(e("event_time()"), Expr::call("event_time", vec![]));
    assert_eq!(
        e(r#"changed_cols("tt_", true, color, size)"#),
        Expr::call(
            "changed_cols",
            vec![
                s("tt_"),
                Expr::Literal(Literal::Bool(true)),
                col("color"),
                col("size")
            ]
        )
    );
    assert_eq!(
        e("had_changed(true, *)"),
        Expr::call(
            "had_changed",
            vec![Expr::Literal(Literal::Bool(true)), Expr::Wildcard]
        )
    );
    assert_eq!(
        e("collect(*)[0]->color"),
        field(
            Expr::Index {
                expr: Box::new(Expr::call("collect", vec![Expr::Wildcard])),
                index: Box::new(int(0))
            },
            "color"
        )
    );
    assert_eq!(
        e("lag(had_changed(true,size))"),
        Expr::call(
            "lag",
            vec![Expr::call(
                "had_changed",
                vec![Expr::Literal(Literal::Bool(true)), col("size")]
            )]
        )
    );
    assert_eq!(e("meta(topic)"), Expr::call("meta", vec![col("topic")]));
    assert_eq!(
        e("abs(-x)").clone(),
        Expr::call(
            "abs",
            vec![Expr::Unary {
                op: UnaryOp::Neg,
                expr: Box::new(col("x"))
            }]
        )
    );
}

#[test]
fn filter_and_over_on_calls() {
    assert_eq!(
        e("count(*) FILTER (WHERE size > 2)"),
        Expr::Call {
            name: "count".into(),
            args: vec![Expr::Wildcard],
            over: None,
            filter: Some(Box::new(bin(Gt, col("size"), int(2)))),
        }
    );
    assert_eq!(
        e("lag(size) over (partition by color)"),
        Expr::Call {
            name: "lag".into(),
            args: vec![col("size")],
            over: Some(Over {
                partition_by: vec![col("color")],
                order_by: vec![],
                when: None
            }),
            filter: None,
        }
    );
    assert_eq!(
        e(r#"acc_sum(size) OVER (WHEN color = "red")"#),
        Expr::Call {
            name: "acc_sum".into(),
            args: vec![col("size")],
            over: Some(Over {
                partition_by: vec![],
                order_by: vec![],
                when: Some(Box::new(bin(Eq, col("color"), s("red"))))
            }),
            filter: None,
        }
    );
    assert_eq!(
        e("latest(a) OVER (PARTITION BY b, c->d WHEN a > 1) + 1"),
        bin(
            Add,
            Expr::Call {
                name: "latest".into(),
                args: vec![col("a")],
                over: Some(Over {
                    partition_by: vec![col("b"), field(col("c"), "d")],
                    order_by: vec![],
                    when: Some(Box::new(bin(Gt, col("a"), int(1)))),
                }),
                filter: None,
            },
            int(1)
        )
    );
    // WHEN before PARTITION BY is accepted too.
    let Expr::Call { over: Some(o), .. } = e("lag(a) over (when a > 1 partition by b)") else {
        panic!()
    };
    assert_eq!(o.partition_by, vec![col("b")]);
    assert!(o.when.is_some());
    // partition(key, n) is a call, also inside OVER's PARTITION BY.
    let Expr::Call { name, args, .. } = e("PARTITION(dev, 4)") else {
        panic!()
    };
    assert_eq!((name.as_str(), args.len()), ("partition", 2));
    let Expr::Call { over: Some(o), .. } = e("lag(a) OVER (PARTITION BY partition(b, 2))") else {
        panic!()
    };
    assert!(matches!(&o.partition_by[0], Expr::Call { name, .. } if name == "partition"));
    let Expr::Call { over: Some(o), .. } =
        e("row_number() OVER (PARTITION BY a ORDER BY b DESC, c)")
    else {
        panic!()
    };
    assert_eq!(o.partition_by, vec![col("a")]);
    assert_eq!(
        o.order_by,
        vec![
            crate::ast::OrderBy {
                expr: col("b"),
                desc: true
            },
            crate::ast::OrderBy {
                expr: col("c"),
                desc: false
            }
        ]
    );
}

#[test]
fn comments_and_case_insensitive_keywords() {
    assert_eq!(e("a /* c */ aNd /* d */ b"), bin(And, col("a"), col("b")));
    assert_eq!(
        e("a -- trailing comment\n or b"),
        bin(Or, col("a"), col("b"))
    );
}
