//! The `sql` connectors against the PostgreSQL and MariaDB servers of this
//! machine (database `test`) and a SQLite file: each test on its own table.

use std::sync::Arc;

use oort_core::codec::json::decode_value;
use oort_core::{
    ConnectorEnv, LookupFactory, Props, Row, SinkContext, SinkFactory, SinkItem, SourceFactory,
    Value,
};
use tokio_util::sync::CancellationToken;

use super::db::{Db, Target};
use super::source::SqlSourceFactory;
use super::{SqlLookupFactory, SqlSinkFactory};

const PG: &str = "postgres://postgres@127.0.0.1:5432/test";
const MY: &str = "mysql://root@127.0.0.1:3306/test?parseTime=true";

fn props(v: serde_json::Value) -> Props {
    v.as_object().cloned().unwrap()
}

fn item(json: &str) -> SinkItem {
    SinkItem {
        data: decode_value(json.as_bytes()).unwrap(),
        payload: bytes::Bytes::new(),
    }
}

/// A database under test: its URL, a fresh table, the DDL's types.
struct Case {
    url: String,
    table: String,
    env: ConnectorEnv,
    _dir: tempfile::TempDir,
}

impl Case {
    async fn new(url: &str, ddl: &str) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let env = ConnectorEnv::builder().data_dir(dir.path()).build();
        let table = format!("oort_t_{}", uuid::Uuid::new_v4().simple());
        let c = Case {
            url: url.to_string(),
            table,
            env,
            _dir: dir,
        };
        c.exec(&[ddl.replace("{t}", &c.table)]).await;
        c
    }

    fn target(&self) -> Target {
        Target::parse("sql", &self.env, &self.url).unwrap()
    }

    async fn exec(&self, stmts: &[String]) {
        let t = self.target();
        let mut db = Db::open(&t).await.unwrap();
        db.execute(&t, stmts).await.unwrap();
    }

    async fn rows(&self, order: &str) -> Vec<serde_json::Value> {
        let t = self.target();
        let mut db = Db::open(&t).await.unwrap();
        db.query(
            &t,
            &format!("SELECT id, name, v FROM {} ORDER BY {order}", self.table),
        )
        .await
        .unwrap()
        .iter()
        .map(Row::to_json)
        .collect()
    }

    async fn drop_table(&self) {
        self.exec(&[format!("DROP TABLE {}", self.table)]).await;
    }
}

/// Sink, source and lookup on one database.
async fn round_trip(c: &Case) {
    let ctx = SinkContext::new("r", CancellationToken::new());
    let mut sink = SqlSinkFactory
        .create(
            &c.env,
            &props(serde_json::json!({"url": c.url, "table": c.table, "rowkindField": "action", "keyField": "id"})),
        )
        .unwrap();
    sink.connect(&ctx).await.unwrap();
    sink.collect(
        &ctx,
        &[
            item(r#"[{"id":1,"name":"pump","v":1.5},{"id":2,"name":"it's","v":2}]"#),
            item(r#"{"id":3,"name":"fan","v":3,"action":"insert"}"#),
        ],
    )
    .await
    .unwrap();
    sink.collect(
        &ctx,
        &[
            item(r#"{"action":"update","id":1,"name":"big pump","v":1.5}"#),
            item(r#"{"action":"upsert","id":2,"name":"two","v":22}"#),
            item(r#"{"action":"upsert","id":4,"name":"four","v":4}"#),
            item(r#"{"action":"delete","id":3}"#),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        c.rows("id").await,
        [
            serde_json::json!({"id": 1, "name": "big pump", "v": 1.5}),
            serde_json::json!({"id": 2, "name": "two", "v": 22.0}),
            serde_json::json!({"id": 4, "name": "four", "v": 4.0}),
        ]
    );
    // A statement the database refuses fails the whole batch: nothing of
    // it is written.
    let e = sink
        .collect(
            &ctx,
            &[
                item(r#"{"id":5,"name":"five","v":5}"#),
                item(r#"{"id":1,"name":"dup","v":0}"#),
            ],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, oort_core::ConnectorError::InvalidData(_)),
        "{e}"
    );
    assert_eq!(c.rows("id").await.len(), 3);

    // The source: newer rows by id, from indexValue on.
    let src = SqlSourceFactory
        .create(
            &c.env,
            "",
            &props(serde_json::json!({"url": c.url, "internalSqlQueryCfg": {"table": c.table, "indexField": "id", "indexValue": 1, "limit": 10}})),
        )
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let cancel = CancellationToken::new();
    let sctx = oort_core::SourceContext::new("s", cancel.clone(), tx);
    let task = tokio::spawn(async move {
        let mut src = src;
        src.run(sctx).await
    });
    let ids = |m: oort_core::SourceMsg| match m {
        oort_core::SourceMsg::Rows { rows, .. } => rows
            .iter()
            .map(|r| r.get("id").cloned().unwrap_or_default())
            .collect::<Vec<_>>(),
        other => panic!("rows expected, got {other:?}"),
    };
    assert_eq!(
        ids(rx.recv().await.unwrap()),
        [Value::Int(2), Value::Int(4)]
    );
    match rx.recv().await.unwrap() {
        oort_core::SourceMsg::Offset(o) => assert!(o.contains("\"value\":4"), "{o}"),
        other => panic!("offset expected, got {other:?}"),
    }
    cancel.cancel();
    task.await.unwrap().unwrap();

    // The lookup table.
    let l = SqlLookupFactory
        .create(&c.env, &c.table, &props(serde_json::json!({"url": c.url})))
        .unwrap();
    let id: [Arc<str>; 1] = [Arc::from("id")];
    let got = l.lookup(&id, &[Value::Int(4)]).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].get("name"), Some(&Value::str("four")));
    assert!(l.lookup(&id, &[Value::Int(3)]).await.unwrap().is_empty());
    c.drop_table().await;
}

#[tokio::test]
async fn postgres_sink_source_and_lookup() {
    let c = Case::new(
        PG,
        "CREATE TABLE {t} (id INTEGER PRIMARY KEY, name TEXT, v DOUBLE PRECISION)",
    )
    .await;
    round_trip(&c).await;
}

#[tokio::test]
async fn mariadb_sink_source_and_lookup() {
    let c = Case::new(
        MY,
        "CREATE TABLE {t} (id INTEGER PRIMARY KEY, name VARCHAR(64), v DOUBLE)",
    )
    .await;
    round_trip(&c).await;
}

#[tokio::test]
async fn sqlite_sink_source_and_lookup() {
    let c = Case::new(
        "sqlite:test.db",
        "CREATE TABLE {t} (id INTEGER PRIMARY KEY, name TEXT, v REAL)",
    )
    .await;
    round_trip(&c).await;
}

/// Column types come back as Oort types.
#[tokio::test]
async fn column_types_are_read_as_values() {
    // MariaDB's JSON is text.
    for (url, ddl, insert, json_typed) in [
        (
            PG,
            "CREATE TABLE {t} (i BIGINT, f REAL, n NUMERIC(10,3), b BOOLEAN, s VARCHAR(8), j JSONB, ts TIMESTAMP, d DATE, x BYTEA)",
            "INSERT INTO {t} VALUES (7, 1.5, -12.125, true, 'abc', '{\"k\":[1]}', '2024-01-02 03:04:05.678', '2024-01-02', '\\x0102')",
            true,
        ),
        (
            MY,
            "CREATE TABLE {t} (i BIGINT, f FLOAT, n DECIMAL(10,3), b BOOLEAN, s VARCHAR(8), j JSON, ts DATETIME(3), d DATE, x VARBINARY(4))",
            "INSERT INTO {t} VALUES (7, 1.5, -12.125, true, 'abc', '{\"k\":[1]}', '2024-01-02 03:04:05.678', '2024-01-02', X'0102')",
            false,
        ),
    ] {
        let c = Case::new(url, ddl).await;
        c.exec(&[insert.replace("{t}", &c.table)]).await;
        let t = c.target();
        let mut db = Db::open(&t).await.unwrap();
        let rows = db
            .query(&t, &format!("SELECT * FROM {}", c.table))
            .await
            .unwrap();
        let r = &rows[0];
        let ts = chrono::NaiveDate::from_ymd_opt(2024, 1, 2)
            .unwrap()
            .and_hms_milli_opt(3, 4, 5, 678)
            .unwrap()
            .and_utc()
            .timestamp_millis();
        assert_eq!(r.get("i"), Some(&Value::Int(7)), "{url}");
        assert_eq!(r.get("f"), Some(&Value::Float(1.5)), "{url}");
        assert_eq!(r.get("n"), Some(&Value::Float(-12.125)), "{url}");
        assert!(
            matches!(r.get("b"), Some(Value::Bool(true)) | Some(Value::Int(1))),
            "{url}: {:?}",
            r.get("b")
        );
        assert_eq!(r.get("s"), Some(&Value::str("abc")), "{url}");
        let want = serde_json::json!({"k": [1]});
        if json_typed {
            assert_eq!(r.get("j").map(Value::to_json), Some(want), "{url}");
        } else {
            assert_eq!(r.get("j"), Some(&Value::str(&want.to_string())), "{url}");
        }
        assert_eq!(r.get("ts"), Some(&Value::Datetime(ts)), "{url}");
        assert_eq!(
            r.get("d"),
            Some(&Value::Datetime(ts - (3 * 3600 + 4 * 60 + 5) * 1000 - 678)),
            "{url}"
        );
        assert_eq!(r.get("x"), Some(&Value::Bytes(vec![1u8, 2].into())), "{url}");
        c.drop_table().await;
    }
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_not_fatal() {
    let env = ConnectorEnv::default();
    let t = Target::parse("sql", &env, "postgres://postgres@127.0.0.1:1/test").unwrap();
    let e = Db::open(&t).await.err().unwrap();
    assert!(
        matches!(e, oort_core::ConnectorError::Unavailable(_)),
        "{e}"
    );
    let t = Target::parse("sql", &env, "mysql://root@127.0.0.1:1/test").unwrap();
    let e = Db::open(&t).await.err().unwrap();
    assert!(
        matches!(e, oort_core::ConnectorError::Unavailable(_)),
        "{e}"
    );
}

/// A template query that returns more than the cap: the rest is counted,
/// not silently dropped.
#[tokio::test]
async fn rows_beyond_the_cap_are_counted_as_an_exception() {
    let c = Case::new("sqlite:big.db", "CREATE TABLE {t} (id INTEGER)").await;
    let extra = 5;
    c.exec(&[format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {}) INSERT INTO {} SELECT i FROM n",
        super::source::MAX_ROWS + extra,
        c.table
    )])
    .await;
    let mut src = SqlSourceFactory
        .create(
            &c.env,
            "",
            &props(serde_json::json!({"url": c.url, "interval": "1h",
                "templateSqlQueryCfg": {"templateSql": format!("SELECT id FROM {}", c.table)}})),
        )
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let cancel = CancellationToken::new();
    let sctx = oort_core::SourceContext::new("s", cancel.clone(), tx);
    let task = tokio::spawn(async move { src.run(sctx).await });
    match rx.recv().await.unwrap() {
        oort_core::SourceMsg::Rows { rows, .. } => assert_eq!(rows.len(), super::source::MAX_ROWS),
        other => panic!("rows expected, got {other:?}"),
    }
    match rx.recv().await.unwrap() {
        oort_core::SourceMsg::Error(e) => {
            assert!(e.contains(&format!("returned {extra} rows beyond")), "{e}")
        }
        other => panic!("an exception expected, got {other:?}"),
    }
    cancel.cancel();
    task.await.unwrap().unwrap();
}
