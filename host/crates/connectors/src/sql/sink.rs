//! `sql` sink, as eKuiper's: each result row is inserted into `table` (the
//! columns of `fields`, else the row's own, which must be plain
//! identifiers). With `rowkindField` and `keyField` a row may instead update,
//! upsert or delete by its key. A batch is one transaction: the inserts of
//! consecutive rows with the same columns go in one multi-row `INSERT`.

use async_trait::async_trait;
use oort_core::{
    ConnectorEnv, ConnectorError, ConnectorInfo, Consumes, Map, PingFuture, Props, Sink,
    SinkContext, SinkFactory, SinkItem, Value,
};
use serde::Deserialize;

use super::db::{Db, Dialect, Target};
use super::KIND;
use crate::util::{de, parse_config};

#[derive(Debug, Deserialize)]
struct Conf {
    #[serde(default)]
    url: String,
    #[serde(default)]
    table: String,
    #[serde(default, deserialize_with = "de::string_list")]
    fields: Vec<String>,
    #[serde(rename = "tabledatafield", default)]
    table_data_field: String,
    #[serde(rename = "rowkindfield", default)]
    rowkind_field: String,
    #[serde(rename = "keyfield", default)]
    key_field: String,
}

/// Factory of `sql` sinks.
pub struct SqlSinkFactory;

impl SqlSinkFactory {
    fn build(env: &ConnectorEnv, props: &Props) -> Result<SqlSink, ConnectorError> {
        let c: Conf = parse_config(KIND, props)?;
        let target = Target::parse(KIND, env, &c.url)?;
        let table = c.table.trim().to_string();
        if table.is_empty() {
            return Err(ConnectorError::config("sql: property table is required"));
        }
        let rowkind = Some(c.rowkind_field.trim().to_string()).filter(|s| !s.is_empty());
        let key = Some(c.key_field.trim().to_string()).filter(|s| !s.is_empty());
        match (&rowkind, &key) {
            (Some(_), None) => {
                return Err(ConnectorError::config(
                    "sql: property keyField is required when rowkindField is set",
                ))
            }
            (None, Some(_)) => {
                return Err(ConnectorError::config(
                    "sql: property keyField is only used with rowkindField: set rowkindField too",
                ))
            }
            _ => {}
        }
        Ok(SqlSink {
            target,
            table,
            fields: c.fields.into_iter().map(|f| f.trim().to_string()).collect(),
            table_data_field: Some(c.table_data_field.trim().to_string()).filter(|s| !s.is_empty()),
            rowkind,
            key,
            db: None,
        })
    }
}

impl SinkFactory for SqlSinkFactory {
    fn kind(&self) -> &str {
        KIND
    }

    fn info(&self) -> ConnectorInfo {
        super::info::sink()
    }

    fn create(&self, env: &ConnectorEnv, props: &Props) -> Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(Self::build(env, props)?))
    }

    fn ping(&self, env: &ConnectorEnv, props: &Props) -> Option<PingFuture> {
        Some(super::ping(env.clone(), props.clone()))
    }

    fn consumes(&self) -> Consumes {
        Consumes::Rows
    }
}

/// What a row does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Insert,
    Update,
    Upsert,
    Delete,
}

/// A running `sql` sink.
pub struct SqlSink {
    target: Target,
    table: String,
    fields: Vec<String>,
    table_data_field: Option<String>,
    rowkind: Option<String>,
    key: Option<String>,
    db: Option<Db>,
}

/// eKuiper's rule for column names taken from the data: `[A-Za-z_][A-Za-z0-9_]*`.
fn safe_ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f == '_' || f.is_ascii_alphabetic())
        && c.all(|x| x == '_' || x.is_ascii_alphanumeric())
}

impl SqlSink {
    /// The rows of one item: the row object(s), or those in `tableDataField`.
    fn rows_of(&self, data: &Value, out: &mut Vec<std::sync::Arc<Map>>) -> Result<(), String> {
        let push = |v: &Value, out: &mut Vec<std::sync::Arc<Map>>| match v {
            Value::Object(m) => {
                out.push(m.clone());
                Ok(())
            }
            other => Err(format!("a row is not an object: {}", other.to_json())),
        };
        let each = |v: &Value, out: &mut Vec<std::sync::Arc<Map>>| -> Result<(), String> {
            match v {
                Value::Array(a) => a.iter().try_for_each(|x| push(x, out)),
                other => push(other, out),
            }
        };
        match &self.table_data_field {
            None => each(data, out),
            Some(f) => {
                let mut rows = Vec::new();
                each(data, &mut rows)?;
                for r in rows {
                    match r.get(f.as_str()) {
                        Some(v) => each(v, out)?,
                        None => return Err(format!("tableDataField {f} is not in the result")),
                    }
                }
                Ok(())
            }
        }
    }

    fn kind_of(&self, row: &Map) -> Result<Kind, String> {
        let Some(f) = &self.rowkind else {
            return Ok(Kind::Insert);
        };
        match row.get(f.as_str()) {
            None | Some(Value::Null) => Ok(Kind::Insert),
            Some(Value::Str(s)) => match s.as_ref() {
                "insert" => Ok(Kind::Insert),
                "update" => Ok(Kind::Update),
                "upsert" => Ok(Kind::Upsert),
                "delete" => Ok(Kind::Delete),
                other => Err(format!(
                    "invalid rowkind {other:?}: expected insert, update, upsert or delete"
                )),
            },
            Some(other) => Err(format!(
                "rowkind field {f} is not a string: {}",
                other.to_json()
            )),
        }
    }

    /// The columns of a row: `fields`, or its own names (checked).
    fn columns(&self, row: &Map) -> Result<Vec<String>, String> {
        if !self.fields.is_empty() {
            return Ok(self.fields.clone());
        }
        let cols: Vec<String> = row
            .keys()
            .filter(|k| self.rowkind.as_deref() != Some(k.as_ref()))
            .map(|k| k.to_string())
            .collect();
        if let Some(bad) = cols.iter().find(|c| !safe_ident(c)) {
            return Err(format!(
                "field {bad:?} cannot be a column name ([A-Za-z_][A-Za-z0-9_]*); list the columns in fields"
            ));
        }
        if cols.is_empty() {
            return Err("the row has no fields".into());
        }
        Ok(cols)
    }

    /// The statements of a batch of rows.
    fn statements(&self, rows: &[std::sync::Arc<Map>]) -> Result<Vec<String>, String> {
        let d = self.target.dialect();
        let mut out = Vec::new();
        // The multi-row INSERT being built: its columns and VALUES text.
        let mut insert: Option<(Vec<String>, String)> = None;
        let flush = |ins: &mut Option<(Vec<String>, String)>, out: &mut Vec<String>| {
            if let Some((cols, values)) = ins.take() {
                out.push(format!(
                    "INSERT INTO {} ({}) VALUES {values}",
                    self.table,
                    cols.join(",")
                ));
            }
        };
        for row in rows {
            let kind = self.kind_of(row)?;
            if kind == Kind::Delete {
                flush(&mut insert, &mut out);
                let key = self.key.as_deref().unwrap_or_default();
                let mut s = format!("DELETE FROM {} WHERE {key}=", self.table);
                match row.get(key) {
                    Some(v) if !v.is_null() => d.literal(v, &mut s),
                    _ => return Err(format!("key field {key} is not in the row")),
                }
                out.push(s);
                continue;
            }
            let cols = self.columns(row)?;
            let mut tuple = String::from("(");
            for (i, c) in cols.iter().enumerate() {
                if i > 0 {
                    tuple.push(',');
                }
                d.literal(row.get(c.as_str()).unwrap_or(&Value::Null), &mut tuple);
            }
            tuple.push(')');
            if kind == Kind::Insert {
                match &mut insert {
                    Some((c, values)) if *c == cols => {
                        values.push(',');
                        values.push_str(&tuple);
                    }
                    _ => {
                        flush(&mut insert, &mut out);
                        insert = Some((cols, tuple));
                    }
                }
                continue;
            }
            flush(&mut insert, &mut out);
            let key = self.key.as_deref().unwrap_or_default();
            let mut keyval = String::new();
            match row.get(key) {
                Some(v) if !v.is_null() => d.literal(v, &mut keyval),
                _ => return Err(format!("key field {key} is not in the row")),
            }
            let sets: Vec<String> = cols
                .iter()
                .filter(|c| c.as_str() != key)
                .map(|c| {
                    let mut s = format!("{c}=");
                    d.literal(row.get(c.as_str()).unwrap_or(&Value::Null), &mut s);
                    s
                })
                .collect();
            out.push(match kind {
                Kind::Update if sets.is_empty() => continue,
                Kind::Update => format!(
                    "UPDATE {} SET {} WHERE {key}={keyval}",
                    self.table,
                    sets.join(",")
                ),
                _ => upsert(d, &self.table, &cols, &tuple, key),
            });
        }
        flush(&mut insert, &mut out);
        Ok(out)
    }
}

/// An insert that updates the row with the same key instead (the key
/// column needs a unique constraint).
fn upsert(d: Dialect, table: &str, cols: &[String], tuple: &str, key: &str) -> String {
    let others: Vec<&String> = cols.iter().filter(|c| c.as_str() != key).collect();
    let head = format!("INSERT INTO {table} ({}) VALUES {tuple}", cols.join(","));
    match d {
        Dialect::Mysql => {
            let sets: Vec<String> = others.iter().map(|c| format!("{c}=VALUES({c})")).collect();
            if sets.is_empty() {
                format!(
                    "INSERT IGNORE INTO {table} ({}) VALUES {tuple}",
                    cols.join(",")
                )
            } else {
                format!("{head} ON DUPLICATE KEY UPDATE {}", sets.join(","))
            }
        }
        Dialect::Postgres | Dialect::Sqlite => {
            let sets: Vec<String> = others.iter().map(|c| format!("{c}=excluded.{c}")).collect();
            if sets.is_empty() {
                format!("{head} ON CONFLICT ({key}) DO NOTHING")
            } else {
                format!(
                    "{head} ON CONFLICT ({key}) DO UPDATE SET {}",
                    sets.join(",")
                )
            }
        }
    }
}

#[async_trait]
impl Sink for SqlSink {
    async fn connect(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        match Db::open(&self.target).await {
            Ok(db) => {
                self.db = Some(db);
                ctx.conn.connected();
                Ok(())
            }
            Err(e) => {
                ctx.conn.disconnected(e.to_string());
                Err(e)
            }
        }
    }

    async fn collect(
        &mut self,
        ctx: &SinkContext,
        items: &[SinkItem],
    ) -> Result<(), ConnectorError> {
        let mut rows = Vec::new();
        for it in items {
            self.rows_of(&it.data, &mut rows)
                .map_err(|e| ConnectorError::InvalidData(format!("sql: {e}")))?;
        }
        if rows.is_empty() {
            return Ok(());
        }
        let stmts = self
            .statements(&rows)
            .map_err(|e| ConnectorError::InvalidData(format!("sql: {e}")))?;
        if self.db.is_none() {
            self.connect(ctx).await?;
        }
        let Some(db) = self.db.as_mut() else {
            return Err(ConnectorError::unavailable("sql: not connected"));
        };
        let r = db.execute(&self.target, &stmts).await;
        match &r {
            Ok(()) => ctx.conn.connected(),
            Err(e @ ConnectorError::Unavailable(_)) => {
                self.db = None;
                ctx.conn.disconnected(e.to_string());
            }
            Err(_) => {}
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oort_core::codec::json::decode_value;

    fn sink(p: serde_json::Value) -> SqlSink {
        let env = ConnectorEnv::builder().data_dir("/tmp").build();
        SqlSinkFactory::build(&env, p.as_object().unwrap()).unwrap()
    }

    fn stmts(s: &SqlSink, json: &str) -> Result<Vec<String>, String> {
        let mut rows = Vec::new();
        s.rows_of(&decode_value(json.as_bytes()).unwrap(), &mut rows)?;
        s.statements(&rows)
    }

    #[test]
    fn inserts_go_in_one_statement_per_run_of_columns() {
        let s = sink(serde_json::json!({"url": "sqlite:x.db", "table": "t"}));
        assert_eq!(
            stmts(&s, r#"[{"a":1,"b":"x'y"},{"a":2,"b":null},{"c":true}]"#).unwrap(),
            [
                "INSERT INTO t (a,b) VALUES (1,'x''y'),(2,NULL)",
                "INSERT INTO t (c) VALUES (1)"
            ]
        );
        let s =
            sink(serde_json::json!({"url": "mysql://h/db", "table": "t", "fields": ["b", "zz"]}));
        assert_eq!(
            stmts(&s, r#"{"a":1,"b":"c\\d"}"#).unwrap(),
            ["INSERT INTO t (b,zz) VALUES ('c\\\\d',NULL)"]
        );
        let e = stmts(&s, "[1]").unwrap_err();
        assert!(e.contains("not an object"), "{e}");
        let s = sink(serde_json::json!({"url": "sqlite:x.db", "table": "t"}));
        let e = stmts(&s, r#"{"a b":1}"#).unwrap_err();
        assert!(e.contains("fields"), "{e}");
    }

    #[test]
    fn rowkinds_update_upsert_and_delete_by_key() {
        let s = sink(
            serde_json::json!({"url": "postgres://u@h/db", "table": "t", "rowkindField": "action", "keyField": "id"}),
        );
        assert_eq!(
            stmts(
                &s,
                r#"[{"action":"insert","id":1,"v":2},{"action":"update","id":1,"v":3},{"action":"upsert","id":2,"v":4},{"action":"delete","id":1},{"id":5,"v":6}]"#
            )
            .unwrap(),
            [
                "INSERT INTO t (id,v) VALUES (1,2)",
                "UPDATE t SET v=3 WHERE id=1",
                "INSERT INTO t (id,v) VALUES (2,4) ON CONFLICT (id) DO UPDATE SET v=excluded.v",
                "DELETE FROM t WHERE id=1",
                "INSERT INTO t (id,v) VALUES (5,6)",
            ]
        );
        let s = sink(
            serde_json::json!({"url": "mysql://h/db", "table": "t", "rowkindField": "action", "keyField": "id"}),
        );
        assert_eq!(
            stmts(&s, r#"{"action":"upsert","id":"a","v":1}"#).unwrap(),
            ["INSERT INTO t (id,v) VALUES ('a',1) ON DUPLICATE KEY UPDATE v=VALUES(v)"]
        );
        assert!(stmts(&s, r#"{"action":"drop","id":1}"#)
            .unwrap_err()
            .contains("drop"));
        assert!(stmts(&s, r#"{"action":"delete"}"#)
            .unwrap_err()
            .contains("key field id"));
    }

    #[test]
    fn table_data_field_writes_the_nested_rows() {
        let s = sink(
            serde_json::json!({"url": "sqlite:x.db", "table": "t", "fields": ["temperature"], "tableDataField": "telemetry"}),
        );
        assert_eq!(
            stmts(
                &s,
                r#"{"telemetry":[{"temperature":32.5,"ts":1},{"temperature":34.5}]}"#
            )
            .unwrap(),
            ["INSERT INTO t (temperature) VALUES (32.5),(34.5)"]
        );
        assert!(stmts(&s, r#"{"x":1}"#).unwrap_err().contains("telemetry"));
    }

    #[test]
    fn bad_configurations_are_refused() {
        let env = ConnectorEnv::builder().data_dir("/tmp").build();
        for (p, says) in [
            (serde_json::json!({"url": "sqlite:x.db"}), "table"),
            (serde_json::json!({"table": "t"}), "url"),
            (
                serde_json::json!({"url": "sqlite:x.db", "table": "t", "rowkindField": "a"}),
                "keyField is required",
            ),
            (
                serde_json::json!({"url": "sqlite:x.db", "table": "t", "keyField": "a"}),
                "rowkindField",
            ),
            (
                serde_json::json!({"url": "oracle://h/db", "table": "t"}),
                "not supported",
            ),
        ] {
            let e = SqlSinkFactory
                .validate(&env, p.as_object().unwrap())
                .err()
                .unwrap_or_else(|| panic!("{p} accepted"));
            assert!(e.to_string().contains(says), "{p}: {e}");
        }
    }
}
