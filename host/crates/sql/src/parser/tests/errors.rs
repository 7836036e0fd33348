//! Error messages, positions, and robustness against malformed input.

use super::compat::{CASES, STREAMS};
use crate::ast::Pos;
use crate::parser::{parse_expr, parse_select, parse_statement};
use crate::SqlError;

fn parse_err(sql: &str) -> (String, Option<Pos>) {
    match parse_statement(sql) {
        Err(SqlError::Parse { message, pos }) => (message, pos),
        other => panic!("{sql}: expected a parse error, got {other:?}"),
    }
}

#[test]
fn ekuiper_wording_for_bad_create_keyword() {
    let (m, pos) = parse_err(r#"CREATE STwREAM demo () WITH (DATASOURCE="demo", FORMAT="json")"#);
    assert_eq!(m, r#"found "STWREAM", expected keyword stream or table."#);
    assert_eq!(pos, Some(Pos { line: 1, column: 8 }));
    let full = parse_statement("create stwream demo () WITH ()")
        .unwrap_err()
        .to_string();
    assert_eq!(
        full,
        r#"found "STWREAM", expected keyword stream or table. at line 1, column 8"#
    );
}

#[test]
fn messages_name_what_was_found_and_expected() {
    let (m, pos) = parse_err("SELECT a\n  FORM demo");
    assert_eq!(m, r#"found "FORM", expected FROM."#);
    assert_eq!(pos, Some(Pos { line: 2, column: 3 }));
    let (m, _) = parse_err("SELECT a FROM demo WHERE");
    assert_eq!(m, "found EOF, expected expression.");
    let (m, _) = parse_err("SELECT a FROM demo extra tokens");
    assert_eq!(m, r#"found "tokens", expected EOF."#);
    let (m, _) = parse_err("SELECT (a FROM demo");
    assert_eq!(m, r#"found "FROM", expected right paren."#);
    let (m, _) = parse_err("UPDATE demo");
    assert_eq!(
        m,
        r#"found "UPDATE", expected SELECT, CREATE, DROP, DESCRIBE, EXPLAIN or SHOW."#
    );
    let (m, _) = parse_err("SELECT count(a b) FROM demo");
    assert!(
        m.contains(r#"found "b", expected "," or ")" in call to function count"#),
        "{m}"
    );
    let (m, _) = parse_err("CREATE STREAM s (a INTEGER) WITH ()");
    assert!(
        m.starts_with(r#"found "INTEGER", expected valid stream field types(BIGINT"#),
        "{m}"
    );
    let (m, _) = parse_err("CREATE STREAM s (a BIGINT)");
    assert_eq!(m, "found EOF, expected WITH.");
    let (m, _) = parse_err("SELECT * AS x FROM demo");
    assert_eq!(m, "alias is not supported for *");
    assert!(matches!(
        parse_select("CREATE STREAM s () WITH ()"),
        Err(SqlError::Parse { .. })
    ));
}

#[test]
fn window_validation_errors() {
    let err = |sql: &str| parse_err(sql).0;
    assert!(err("SELECT * FROM s GROUP BY TUMBLINGWINDOW(ss)").contains("should be 2"));
    assert!(err("SELECT * FROM s GROUP BY TUMBLINGWINDOW(xx, 1)").contains("timer literal"));
    assert!(err("SELECT * FROM s GROUP BY TUMBLINGWINDOW(ss, a)").contains("integer literal"));
    assert!(err("SELECT * FROM s GROUP BY TUMBLINGWINDOW(ss, 0)").contains("at least 1"));
    assert!(err("SELECT * FROM s GROUP BY HOPPINGWINDOW(ss, 2)").contains("should be 3"));
    assert!(err("SELECT * FROM s GROUP BY SLIDINGWINDOW(ss, 2, 1, 1)").contains("should be 2 or 3"));
    assert!(err("SELECT * FROM s GROUP BY COUNTWINDOW(2, 3)").contains("should be less than"));
    assert!(err("SELECT * FROM s GROUP BY COUNTWINDOW(0)").contains("at least 1"));
    assert!(err("SELECT * FROM s GROUP BY COUNTWINDOW(ss)").contains("integer literal"));
    assert!(err("SELECT * FROM s GROUP BY STATEWINDOW()").contains("1 or 2"));
    assert!(
        err("SELECT * FROM s GROUP BY COUNTWINDOW(2), COUNTWINDOW(3)").contains("only one window")
    );
    assert!(
        err("SELECT * FROM s GROUP BY TUMBLINGWINDOW(dd, 9223372036854775)").contains("too large")
    );
    assert!(err("SELECT tumblingwindow(ss, 1) FROM s")
        .contains("only allowed at the top level of GROUP BY"));
    assert!(err("SELECT * FROM s GROUP BY a + countwindow(2)").contains("top level of GROUP BY"));
}

#[test]
fn over_and_filter_errors() {
    let err = |sql: &str| parse_err(sql).0;
    assert!(err("SELECT lag(a) OVER () FROM s").contains("expected PARTITION BY, ORDER BY or WHEN"));
    assert!(err("SELECT lag(a) OVER (PARTITION a) FROM s").contains("BY after PARTITION"));
    assert!(err("SELECT row_number() OVER (ORDER BY a ORDER BY b) FROM s").contains("right paren"));
    assert!(err("SELECT count(*) FILTER (size > 1) FROM s").contains("WHERE after FILTER"));
    assert!(err("SELECT lag(a) OVER (WHEN a WHEN b) FROM s").contains("right paren closing OVER"));
}

/// ~30 malformed or truncated statements: each must be an error, never a panic.
#[test]
fn malformed_statements_are_errors() {
    let bad = [
        "",
        "   ",
        ";",
        "SELECT",
        "SELECT FROM demo",
        "SELECT a,",
        "SELECT a, FROM demo",
        "SELECT a FROM",
        "SELECT a FROM demo WHERE a >",
        "SELECT a FROM demo WHERE (a > 1",
        "SELECT a FROM demo WHERE a > 1)",
        "SELECT a FROM demo GROUP a",
        "SELECT a FROM demo GROUP BY",
        "SELECT a FROM demo ORDER BY",
        "SELECT a FROM demo LIMIT",
        "SELECT a FROM demo LIMIT -1",
        "SELECT a FROM demo LIMIT 1.5",
        "SELECT a AS FROM demo",
        "SELECT a FROM demo INNER demo1",
        "SELECT a FROM demo CROSS JOIN b ON a = b",
        "SELECT arr[ FROM demo",
        "SELECT arr[1 FROM demo",
        "SELECT a-> FROM demo",
        "SELECT CASE WHEN a THEN b FROM demo",
        "SELECT CASE END FROM demo",
        "SELECT a BETWEEN 1 FROM demo",
        "SELECT a IN () FROM demo",
        "SELECT a IS 1 FROM demo",
        "SELECT \"unterminated FROM demo",
        "SELECT a FROM demo /* unterminated comment",
        "SELECT `unterminated FROM demo",
        "SELECT * EXCEPT(a FROM demo",
        "SELECT * REPLACE(a) FROM demo",
        "SELECT a FROM (SELECT b FROM c)",
        "SELECT 0x1F FROM demo",
        "SELECT a FROM demo; SELECT b FROM demo",
        "SELECT a @ b FROM demo",
        "SELECT 中文 FROM demo",
        "CREATE",
        "CREATE STREAM",
        "CREATE STREAM s",
        "CREATE STREAM s (",
        "CREATE STREAM s (a",
        "CREATE STREAM s (a BIGINT",
        "CREATE STREAM s (a BIGINT) WITH",
        "CREATE STREAM s (a BIGINT) WITH (",
        "CREATE STREAM s (a BIGINT) WITH (DATASOURCE",
        "CREATE STREAM s (a BIGINT) WITH (DATASOURCE=",
        "CREATE STREAM s (a BIGINT) WITH (DATASOURCE=\"x\"",
        "CREATE STREAM s (a BIGINT) WITH (DATASOURCE=\"x\") trailing",
        "CREATE STREAM s (a ARRAY()) WITH ()",
        "CREATE STREAM s (a ARRAY(BIGINT) WITH ()",
        "CREATE STREAM s (a STRUCT(b)) WITH ()",
        "CREATE STREAM s (a BIGINT b STRING) WITH ()",
        "CREATE STREAM select () WITH ()",
        "DROP",
        "DESCRIBE TABLE",
        "SHOW",
        "EXPLAIN STREAM s extra",
    ];
    assert!(bad.len() >= 30);
    for sql in bad {
        assert!(parse_statement(sql).is_err(), "should fail: {sql:?}");
    }
    for sql in [
        "", "a +", "(a", "a b", "f(", "x[1:", "case", "not", "-", "a ->", "1 2",
    ] {
        assert!(parse_expr(sql).is_err(), "should fail: {sql:?}");
    }
}

/// Every strict prefix of every valid statement is handled without panicking.
#[test]
fn truncations_never_panic() {
    for sql in CASES.iter().chain(STREAMS) {
        for (i, _) in sql.char_indices() {
            let _ = parse_statement(&sql[..i]);
            let _ = parse_expr(&sql[i..]);
        }
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
    assert!(parse_expr(&deep)
        .unwrap_err()
        .to_string()
        .contains("nested too deeply"));
    let minus = format!("{}a", "- ".repeat(5000));
    assert!(parse_expr(&minus).is_err());
    let nots = format!("{}a", "NOT ".repeat(5000));
    assert!(parse_expr(&nots).is_err());
    let arrays = format!(
        "CREATE STREAM s (a {}BIGINT{}) WITH ()",
        "ARRAY(".repeat(5000),
        ")".repeat(5000)
    );
    assert!(parse_statement(&arrays).is_err());
    let structs = format!(
        "CREATE STREAM s (a {}b BIGINT{}) WITH ()",
        "STRUCT(x ".repeat(3000),
        ")".repeat(3000)
    );
    assert!(parse_statement(&structs).is_err());
    let ok = format!("{}1{}", "(".repeat(40), ")".repeat(40));
    assert!(parse_expr(&ok).is_ok());
}

/// Issue 11 item 7: sizes that only make sense as mistakes are refused, with
/// the argument named.
#[test]
fn window_sizes_and_delimiter_are_bounded() {
    let err = parse_select("SELECT count(*) FROM s GROUP BY COUNTWINDOW(9223372036854775807)")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("1st argument for countwindow must be at most 1000000"),
        "{err}"
    );
    parse_select("SELECT count(*) FROM s GROUP BY COUNTWINDOW(1000000, 10)").unwrap();
    let err = parse_select("SELECT count(*) FROM s GROUP BY TUMBLINGWINDOW(dd, 367)")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("2nd argument for tumblingwindow is too large"),
        "{err}"
    );
    parse_select("SELECT count(*) FROM s GROUP BY TUMBLINGWINDOW(dd, 366)").unwrap();
    let err =
        parse_select("SELECT count(*) FROM s GROUP BY SLIDINGWINDOW(ss, 10, 9223372036854775807)")
            .unwrap_err()
            .to_string();
    assert!(err.contains("3rd argument for slidingwindow"), "{err}");
    let err = parse_statement(
        r#"CREATE STREAM s () WITH (DATASOURCE="x", FORMAT="delimited", DELIMITER="")"#,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("DELIMITER must not be empty"), "{err}");
}
