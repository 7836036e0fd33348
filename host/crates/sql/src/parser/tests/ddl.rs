//! CREATE / DROP / DESCRIBE / EXPLAIN / SHOW statements and WITH options.

use crate::ast::*;
use crate::parser::parse_statement;

fn create(sql: &str) -> StreamDef {
    match parse_statement(sql) {
        Ok(Statement::CreateStream(d)) => d,
        other => panic!("{sql}: {other:?}"),
    }
}

fn c(name: &str, ty: DataType) -> Column {
    Column {
        name: name.into(),
        ty,
        default: None,
    }
}

#[test]
fn create_stream_with_schema() {
    let d = create(
        r#"CREATE STREAM demo (
            color STRING,
            size BIGINT,
            ts BIGINT
        ) WITH (DATASOURCE="demo", TYPE="mock", FORMAT="json", KEY="ts");"#,
    );
    assert_eq!(d.kind, StreamKind::Stream);
    assert_eq!(d.name, "demo");
    assert_eq!(
        d.columns,
        vec![
            c("color", DataType::String),
            c("size", DataType::Bigint),
            c("ts", DataType::Bigint)
        ]
    );
    assert_eq!(d.options.datasource.as_deref(), Some("demo"));
    assert_eq!(d.options.type_.as_deref(), Some("mock"));
    assert_eq!(d.options.format.as_deref(), Some("json"));
    assert_eq!(d.options.key.as_deref(), Some("ts"));
    assert!(!d.options.shared && !d.options.strict_validation && !d.options.temp);
}

#[test]
fn create_schemaless_table_and_all_types() {
    let d = create(
        r#"create table t1 () with (datasource="lookup.json", format="JSON", kind="LOOKUP", type="memory", key="id")"#,
    );
    assert_eq!(d.kind, StreamKind::Table);
    assert!(d.columns.is_empty());
    assert_eq!(d.options.format.as_deref(), Some("json"));
    assert_eq!(d.options.kind.as_deref(), Some("lookup"));

    let d = create(
        "CREATE STREAM s (a BIGINT, b FLOAT, c STRING, d DATETIME, e BOOLEAN, f BYTEA, g ARRAY(BIGINT), \
         h ARRAY(STRUCT(x STRING, y ARRAY(FLOAT))), i STRUCT(theme STRING, id BIGINT, sub STRUCT(z BOOLEAN)), \
         j array(array(string)), `from` string,) WITH (DATASOURCE=\"s\",)",
    );
    let types: Vec<DataType> = d.columns.iter().map(|c| c.ty.clone()).collect();
    assert_eq!(
        types,
        vec![
            DataType::Bigint,
            DataType::Float,
            DataType::String,
            DataType::Datetime,
            DataType::Boolean,
            DataType::Bytea,
            DataType::Array(Box::new(DataType::Bigint)),
            DataType::Array(Box::new(DataType::Struct(vec![
                c("x", DataType::String),
                c("y", DataType::Array(Box::new(DataType::Float)))
            ]))),
            DataType::Struct(vec![
                c("theme", DataType::String),
                c("id", DataType::Bigint),
                c("sub", DataType::Struct(vec![c("z", DataType::Boolean)]))
            ]),
            DataType::Array(Box::new(DataType::Array(Box::new(DataType::String)))),
            DataType::String,
        ]
    );
    assert_eq!(d.columns[10].name, "from");
}

#[test]
fn defaults_are_converted_to_the_column_type() {
    let d = create(
        r#"CREATE STREAM s (a BIGINT DEFAULT 3, b FLOAT DEFAULT -1, c STRING DEFAULT "x", d BOOLEAN DEFAULT TRUE,
           e BIGINT DEFAULT "42", f FLOAT DEFAULT 2.5, g STRING DEFAULT 12, h BOOLEAN DEFAULT "false", i BIGINT DEFAULT -5)
           WITH (DATASOURCE="s", STRICT_VALIDATION="TRUE")"#,
    );
    let defaults: Vec<Option<Literal>> = d.columns.iter().map(|c| c.default.clone()).collect();
    assert_eq!(
        defaults,
        vec![
            Some(Literal::Int(3)),
            Some(Literal::Float(-1.0)),
            Some(Literal::Str("x".into())),
            Some(Literal::Bool(true)),
            Some(Literal::Int(42)),
            Some(Literal::Float(2.5)),
            Some(Literal::Str("12".into())),
            Some(Literal::Bool(false)),
            Some(Literal::Int(-5)),
        ]
    );
    assert!(d.options.strict_validation);
    for bad in [
        r#"CREATE STREAM s (a BIGINT DEFAULT "x") WITH (DATASOURCE="s")"#,
        r#"CREATE STREAM s (a DATETIME DEFAULT "x") WITH (DATASOURCE="s")"#,
        r#"CREATE STREAM s (a BOOLEAN DEFAULT 3) WITH (DATASOURCE="s")"#,
        r#"CREATE STREAM s (a ARRAY(BIGINT) DEFAULT 1) WITH (DATASOURCE="s")"#,
        r#"CREATE STREAM s (a BIGINT DEFAULT b) WITH (DATASOURCE="s")"#,
    ] {
        assert!(parse_statement(bad).is_err(), "{bad}");
    }
}

#[test]
fn all_option_keys() {
    let d = create(
        r#"CREATE TABLE t (a BIGINT) WITH (datasource="topic/a", Format="DELIMITED", KEY="id", CONF_KEY="c1",
           SHARED="True", STRICT_VALIDATION=false, TYPE="file", TIMESTAMP="ts", TIMESTAMP_FORMAT="YYYY",
           RETAIN_SIZE="10", SCHEMAID="sch.msg", EXTRA="{\"a\":1}", VERSION="V1.0", TEMP=TRUE, KIND="scan",
           DELIMITER=";")"#,
    );
    let o = d.options;
    assert_eq!(o.datasource.as_deref(), Some("topic/a"));
    assert_eq!(o.format.as_deref(), Some("delimited"));
    assert_eq!(o.key.as_deref(), Some("id"));
    assert_eq!(o.conf_key.as_deref(), Some("c1"));
    assert!(o.shared);
    assert!(!o.strict_validation);
    assert_eq!(o.type_.as_deref(), Some("file"));
    assert_eq!(o.timestamp.as_deref(), Some("ts"));
    assert_eq!(o.timestamp_format.as_deref(), Some("YYYY"));
    assert_eq!(o.retain_size, Some(10));
    assert_eq!(o.schema_id.as_deref(), Some("sch.msg"));
    assert_eq!(o.extra.as_deref(), Some(r#"{"a":1}"#));
    assert_eq!(o.version.as_deref(), Some("v1.0"));
    assert!(o.temp);
    assert_eq!(o.kind.as_deref(), Some("scan"));
    assert_eq!(o.delimiter.as_deref(), Some(";"));
}

#[test]
fn options_without_commas_and_with_trailing_comma() {
    let d = create(
        r#"CREATE STREAM demo () WITH (FORMAT="JSON" DATASOURCE="demo" TYPE="edgex", SHARED="false", );"#,
    );
    assert_eq!(d.options.datasource.as_deref(), Some("demo"));
    assert_eq!(d.options.type_.as_deref(), Some("edgex"));
    assert!(!d.options.shared);
}

#[test]
fn option_errors() {
    let err = |sql: &str| parse_statement(sql).unwrap_err().to_string();
    let m = err(r#"CREATE STREAM s () WITH (DATASOURCE="s", FOO="x")"#);
    assert!(
        m.contains(r#"found "FOO", unknown option keys(DATASOURCE|FORMAT|KEY|CONF_KEY|SHARED|STRICT_VALIDATION|TYPE|TIMESTAMP|TIMESTAMP_FORMAT|RETAIN_SIZE|SCHEMAID|EXTRA|VERSION|TEMP|KIND|DELIMITER)."#),
        "{m}"
    );
    assert!(
        err(r#"CREATE STREAM s () WITH (FORMAT="xml")"#).contains("option 'format=xml' is invalid")
    );
    assert!(err(r#"CREATE STREAM s () WITH (SHARED="yes")"#)
        .contains("expect TRUE/FALSE value in SHARED option"));
    assert!(err(r#"CREATE STREAM s () WITH (TEMP="1")"#).contains("TEMP"));
    assert!(
        err(r#"CREATE STREAM s () WITH (STRICT_VALIDATION="no")"#).contains("STRICT_VALIDATION")
    );
    assert!(err(r#"CREATE STREAM s () WITH (RETAIN_SIZE="ten")"#)
        .contains("expect number value in RETAIN_SIZE"));
    assert!(err(r#"CREATE STREAM s () WITH (RETAIN_SIZE="-1")"#).contains("RETAIN_SIZE"));
    assert!(err(r#"CREATE STREAM s () WITH (EXTRA="{bad")"#).contains("invalid extra option"));
    assert!(err(r#"CREATE STREAM s () WITH (EXTRA="[1]")"#).contains("invalid extra option"));
    assert!(err(r#"CREATE TABLE s () WITH (KIND="other")"#).contains("scan or lookup"));
    assert!(err(r#"CREATE STREAM s () WITH (DATASOURCE='s')"#)
        .contains("expected string or boolean value in option"));
    assert!(err(r#"CREATE STREAM s () WITH (DATASOURCE "s")"#)
        .contains("expected equals(=) in options"));
    assert!(
        err(r#"CREATE TABLE s () WITH (KIND="lookup", TYPE="memory")"#)
            .contains("Option \"key\" is required")
    );
    assert!(err(r#"CREATE TABLE s () WITH (FORMAT="binary")"#).contains("not supported for table"));
    assert!(err(r#"CREATE STREAM s (a STRING) WITH (FORMAT="binary")"#).contains("only 'bytea'"));
    assert!(
        err(r#"CREATE STREAM s (a BYTEA, b BYTEA) WITH (FORMAT="binary")"#)
            .contains("only one field")
    );
    let ok = create(r#"CREATE STREAM s (a BYTEA) WITH (FORMAT="BINARY")"#);
    assert_eq!(ok.options.format.as_deref(), Some("binary"));
}

#[test]
fn drop_describe_explain_show() {
    let st = |sql: &str| parse_statement(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(
        st("DROP STREAM demo"),
        Statement::Drop {
            kind: StreamKind::Stream,
            name: "demo".into()
        }
    );
    assert_eq!(
        st("drop table t1;"),
        Statement::Drop {
            kind: StreamKind::Table,
            name: "t1".into()
        }
    );
    assert_eq!(
        st("DESCRIBE STREAM demo"),
        Statement::Describe {
            kind: StreamKind::Stream,
            name: "demo".into()
        }
    );
    assert_eq!(
        st("describe table `my t`"),
        Statement::Describe {
            kind: StreamKind::Table,
            name: "my t".into()
        }
    );
    assert_eq!(
        st("EXPLAIN STREAM demo"),
        Statement::Describe {
            kind: StreamKind::Stream,
            name: "demo".into()
        }
    );
    assert_eq!(
        st("explain TABLE t"),
        Statement::Describe {
            kind: StreamKind::Table,
            name: "t".into()
        }
    );
    assert_eq!(
        st("SHOW STREAMS"),
        Statement::Show {
            kind: StreamKind::Stream
        }
    );
    assert_eq!(
        st("show tables;"),
        Statement::Show {
            kind: StreamKind::Table
        }
    );
    let m = parse_statement("SHOW STREAM").unwrap_err().to_string();
    assert!(
        m.contains(r#"found "STREAM", expected keyword streams or tables."#),
        "{m}"
    );
    let m = parse_statement("DROP STREAMS demo")
        .unwrap_err()
        .to_string();
    assert!(
        m.contains(r#"found "STREAMS", expected keyword stream or table."#),
        "{m}"
    );
    assert!(parse_statement("DROP STREAM").is_err());
    assert!(parse_statement("DROP STREAM a b").is_err());
}
