//! `sql` source, as eKuiper's: every `interval` it runs a query and emits
//! the rows. `internalSqlQueryCfg` builds the query
//! (`SELECT * FROM table WHERE idx > last ORDER BY idx LIMIT n`), or
//! `templateSqlQueryCfg` gives it as a template over the index fields; after
//! each query every index field takes its value in the last row, so the next
//! query reads only newer rows. The index values are the source's offset:
//! rules with `qos` >= 1 resume from them after a restart.

use std::time::Duration;

use async_trait::async_trait;
use oort_core::template::PropTemplate;
use oort_core::{
    ConnectorEnv, ConnectorError, ConnectorInfo, Map, PingFuture, Props, Row, Source,
    SourceContext, SourceFactory, SourceMsg, Value,
};
use serde::Deserialize;

use super::db::{Db, Target};
use super::{nested, IndexField, IndexSpec, KIND};
use crate::util::{de, parse_config};

/// Rows one query may return (a `limit` above it is lowered to it; a
/// template query returning more is cut, with an exception).
pub const MAX_ROWS: usize = 100_000;

fn default_interval() -> Duration {
    Duration::from_secs(10)
}

#[derive(Debug, Deserialize)]
struct Conf {
    #[serde(default)]
    url: String,
    #[serde(default = "default_interval", deserialize_with = "de::duration")]
    interval: Duration,
}

/// `internalSqlQueryCfg`.
#[derive(Debug, Deserialize, Default)]
struct Internal {
    #[serde(default)]
    table: String,
    #[serde(default, deserialize_with = "de::u64_lenient")]
    limit: u64,
    #[serde(flatten)]
    index: IndexSpec,
}

/// `templateSqlQueryCfg`.
#[derive(Debug, Deserialize)]
struct Templated {
    #[serde(rename = "templatesql", default)]
    template_sql: String,
    #[serde(flatten)]
    index: IndexSpec,
}

/// What each poll runs.
enum Query {
    Internal { table: String, limit: usize },
    Template(PropTemplate),
}

/// Factory of `sql` sources.
pub struct SqlSourceFactory;

impl SqlSourceFactory {
    fn build(
        env: &ConnectorEnv,
        datasource: &str,
        props: &Props,
    ) -> Result<SqlSource, ConnectorError> {
        let c: Conf = parse_config(KIND, props)?;
        if c.interval.is_zero() {
            return Err(ConnectorError::config(
                "sql: invalid property interval 0: it must be positive",
            ));
        }
        let target = Target::parse(KIND, env, &c.url)?;
        let templated: Option<Templated> = nested(props, "templateSqlQueryCfg")?;
        let internal: Option<Internal> = nested(props, "internalSqlQueryCfg")?;
        let (query, index) = match (templated, internal) {
            // As eKuiper: the template wins when both are set.
            (Some(t), _) => {
                if t.template_sql.trim().is_empty() {
                    return Err(ConnectorError::config(
                        "sql: templateSqlQueryCfg.templateSql is required",
                    ));
                }
                let tpl = PropTemplate::parse("templateSqlQueryCfg.templateSql", &t.template_sql)?;
                (Query::Template(tpl), t.index.fields()?)
            }
            (None, i) => {
                let i = i.unwrap_or_default();
                let table = if i.table.trim().is_empty() {
                    datasource.trim().to_string()
                } else {
                    i.table.trim().to_string()
                };
                if table.is_empty() {
                    return Err(ConnectorError::config(
                        "sql: the table to read is required: internalSqlQueryCfg.table or DATASOURCE",
                    ));
                }
                let limit = match usize::try_from(i.limit).unwrap_or(usize::MAX) {
                    0 => MAX_ROWS,
                    n => n.min(MAX_ROWS),
                };
                (Query::Internal { table, limit }, i.index.fields()?)
            }
        };
        Ok(SqlSource {
            target,
            interval: c.interval,
            query,
            index,
            db: None,
        })
    }
}

impl SourceFactory for SqlSourceFactory {
    fn kind(&self) -> &str {
        KIND
    }

    fn info(&self) -> ConnectorInfo {
        super::info::source()
    }

    fn create(
        &self,
        env: &ConnectorEnv,
        datasource: &str,
        props: &Props,
    ) -> Result<Box<dyn Source>, ConnectorError> {
        Ok(Box::new(Self::build(env, datasource, props)?))
    }

    fn ping(&self, env: &ConnectorEnv, props: &Props) -> Option<PingFuture> {
        Some(super::ping(env.clone(), props.clone()))
    }

    fn emits_rows(&self) -> bool {
        true
    }
}

/// A running `sql` source.
pub struct SqlSource {
    target: Target,
    interval: Duration,
    query: Query,
    index: Vec<IndexField>,
    db: Option<Db>,
}

impl SqlSource {
    /// The statement of the next poll.
    fn statement(&self) -> Result<String, ConnectorError> {
        let d = self.target.dialect();
        match &self.query {
            Query::Template(t) => {
                let mut m = Map::new();
                for f in &self.index {
                    if let Some(v) = &f.value {
                        m.insert(f.field.as_str().into(), f.template_value(v)?);
                    }
                }
                t.render(&Value::Object(std::sync::Arc::new(m)))
                    .map_err(|e| ConnectorError::InvalidData(e.to_string()))
            }
            Query::Internal { table, limit } => {
                let mut s = format!("SELECT * FROM {table}");
                let mut first = true;
                for f in &self.index {
                    let Some(v) = &f.value else { continue };
                    s.push_str(if first { " WHERE " } else { " AND " });
                    first = false;
                    s.push_str(&f.field);
                    s.push_str(" > ");
                    f.literal(d, v, &mut s)?;
                }
                if !self.index.is_empty() {
                    let order: Vec<String> = self
                        .index
                        .iter()
                        .map(|f| format!("{} ASC", f.field))
                        .collect();
                    s.push_str(" ORDER BY ");
                    s.push_str(&order.join(", "));
                }
                s.push_str(&format!(" LIMIT {limit}"));
                Ok(s)
            }
        }
    }

    /// One poll: the rows (at most [`MAX_ROWS`]) and how many more the
    /// query returned; the index values moved to the last emitted row's.
    async fn poll(&mut self) -> Result<(Vec<Row>, usize), ConnectorError> {
        let sql = self.statement()?;
        if self.db.is_none() {
            self.db = Some(Db::open(&self.target).await?);
        }
        let Some(db) = self.db.as_mut() else {
            return Ok((Vec::new(), 0));
        };
        let mut rows = match db.query(&self.target, &sql).await {
            Ok(r) => r,
            Err(e) => {
                if matches!(e, ConnectorError::Unavailable(_)) {
                    self.db = None;
                }
                return Err(e);
            }
        };
        let cut = rows.len().saturating_sub(MAX_ROWS);
        rows.truncate(MAX_ROWS);
        if let Some(last) = rows.last() {
            for f in &mut self.index {
                if let Some(v) = last.get(&f.field).filter(|v| !v.is_null()) {
                    f.value = Some(v.clone());
                }
            }
        }
        Ok((rows, cut))
    }

    fn offset(&self) -> String {
        super::index_offset(&self.index)
    }
}

#[async_trait]
impl Source for SqlSource {
    async fn run(&mut self, ctx: SourceContext) -> Result<(), ConnectorError> {
        if let Some(o) = ctx.resume.clone() {
            super::resume_index(&mut self.index, &o);
        }
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ctx.cancel.cancelled() => return Ok(()),
                _ = ticker.tick() => {}
            }
            match self.poll().await {
                Ok((rows, cut)) => {
                    ctx.conn.connected();
                    if rows.is_empty() {
                        continue;
                    }
                    if !ctx.emit_rows(rows).await {
                        return Ok(());
                    }
                    // Counted as the source's exception, with the number.
                    if cut > 0 {
                        let msg = format!(
                            "sql: the query returned {cut} rows beyond the {MAX_ROWS}-row limit; they were not emitted (add a LIMIT or an index field)"
                        );
                        if !ctx.emit(SourceMsg::Error(msg)).await {
                            return Ok(());
                        }
                    }
                    if !self.index.is_empty() && !ctx.emit(SourceMsg::Offset(self.offset())).await {
                        return Ok(());
                    }
                }
                Err(ConnectorError::Unavailable(m)) => {
                    ctx.conn.disconnected(m.clone());
                    if !ctx.emit(SourceMsg::Error(m)).await {
                        return Ok(());
                    }
                }
                Err(e @ ConnectorError::Fatal(_)) => return Err(e),
                Err(e) => {
                    if !ctx.emit(SourceMsg::Error(e.to_string())).await {
                        return Ok(());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(v: serde_json::Value) -> Props {
        v.as_object().cloned().unwrap()
    }

    fn source(p: serde_json::Value) -> SqlSource {
        let env = ConnectorEnv::builder().data_dir("/tmp").build();
        SqlSourceFactory::build(&env, "", &props(p)).unwrap()
    }

    #[test]
    fn statements_follow_ekuiper() {
        let url = "mysql://root@127.0.0.1:3306/test";
        let s = source(
            serde_json::json!({"url": url, "internalSqlQueryCfg": {"table": "Student", "limit": 10}}),
        );
        assert_eq!(s.statement().unwrap(), "SELECT * FROM Student LIMIT 10");
        let s = source(
            serde_json::json!({"url": url, "internalSqlQueryCfg": {"table": "Student", "limit": 10, "indexField": "stun", "indexValue": 100}}),
        );
        assert_eq!(
            s.statement().unwrap(),
            "SELECT * FROM Student WHERE stun > 100 ORDER BY stun ASC LIMIT 10"
        );
        let s = source(
            serde_json::json!({"url": url, "internalSqlQueryCfg": {"table": "t", "limit": 1,
            "indexFields": [
                {"indexField": "a", "indexValue": "2022-04-21 10:23:55", "indexFieldType": "DATETIME", "dateTimeFormat": "YYYY-MM-dd HH:mm:ss"},
                {"indexField": "b", "indexValue": 1}]}}),
        );
        assert_eq!(
            s.statement().unwrap(),
            "SELECT * FROM t WHERE a > '2022-04-21 10:23:55' AND b > 1 ORDER BY a ASC, b ASC LIMIT 1"
        );
        let s = source(
            serde_json::json!({"url": url, "templateSqlQueryCfg": {"TemplateSql": "select * from t where id > {{.id}}", "indexField": "id", "indexValue": 7}}),
        );
        assert_eq!(s.statement().unwrap(), "select * from t where id > 7");
        // No limit: the cap applies.
        let s = source(serde_json::json!({"url": url, "internalSqlQueryCfg": {"table": "t"}}));
        assert_eq!(
            s.statement().unwrap(),
            format!("SELECT * FROM t LIMIT {MAX_ROWS}")
        );
    }

    #[test]
    fn bad_configurations_are_refused_naming_the_property() {
        let env = ConnectorEnv::builder().data_dir("/tmp").build();
        for (p, says) in [
            (serde_json::json!({}), "url"),
            (serde_json::json!({"url": "mysql://h/db"}), "table"),
            (
                serde_json::json!({"url": "mysql://h/db", "interval": 0, "internalSqlQueryCfg": {"table": "t"}}),
                "interval",
            ),
            (
                serde_json::json!({"url": "mysql://h/db", "internalSqlQueryCfg": {"table": "t", "limit": "x"}}),
                "limit",
            ),
            (
                serde_json::json!({"url": "mysql://h/db", "internalSqlQueryCfg": {"table": "t", "indexFieldType": "DATETIME"}}),
                "indexField",
            ),
            (
                serde_json::json!({"url": "mysql://h/db", "internalSqlQueryCfg": {"table": "t", "indexField": "a", "indexFieldType": "DATE"}}),
                "indexFieldType",
            ),
            (
                serde_json::json!({"url": "mysql://h/db", "templateSqlQueryCfg": {"indexField": "a"}}),
                "templateSql",
            ),
            (
                serde_json::json!({"url": "mysql://h/db", "internalSqlQueryCfg": "t"}),
                "internalSqlQueryCfg",
            ),
        ] {
            let e = SqlSourceFactory
                .validate(&env, "", &props(p.clone()))
                .err()
                .unwrap_or_else(|| panic!("{p} accepted"));
            assert!(e.to_string().contains(says), "{p}: {e}");
        }
    }
}
