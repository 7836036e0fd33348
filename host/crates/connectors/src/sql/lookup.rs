//! The `sql` lookup table, as eKuiper's: DATASOURCE is the table, and each
//! lookup runs `SELECT * FROM table WHERE k1 = v1 AND ...` (the join keys,
//! values as literals), or `templateSqlQueryCfg.templateSql` rendered over
//! the keys (`{{.id}}`). One connection per table per rule run, opened at
//! the first lookup and again after it breaks.

use std::sync::Arc;

use async_trait::async_trait;
use oort_core::template::PropTemplate;
use oort_core::{
    ConnectorEnv, ConnectorError, ConnectorInfo, LookupFactory, LookupSource, Map, PingFuture,
    Props, Row, Value,
};
use serde::Deserialize;

use super::db::{Db, Target};
use super::{nested, KIND};
use crate::util::parse_config;

#[derive(Debug, Deserialize)]
struct Conf {
    #[serde(default)]
    url: String,
}

#[derive(Debug, Deserialize)]
struct Templated {
    #[serde(rename = "templatesql", default)]
    template_sql: String,
}

/// Factory of `sql` lookup tables.
pub struct SqlLookupFactory;

impl SqlLookupFactory {
    fn build(
        env: &ConnectorEnv,
        datasource: &str,
        props: &Props,
    ) -> Result<SqlLookup, ConnectorError> {
        let c: Conf = parse_config(KIND, props)?;
        let target = Target::parse(KIND, env, &c.url)?;
        let template = match nested::<Templated>(props, "templateSqlQueryCfg")? {
            Some(t) if !t.template_sql.trim().is_empty() => Some(PropTemplate::parse(
                "templateSqlQueryCfg.templateSql",
                &t.template_sql,
            )?),
            Some(_) => {
                return Err(ConnectorError::config(
                    "sql: templateSqlQueryCfg.templateSql is required",
                ))
            }
            None => None,
        };
        let table = datasource.trim().to_string();
        if table.is_empty() && template.is_none() {
            return Err(ConnectorError::config(
                "sql: DATASOURCE (the table) is required",
            ));
        }
        Ok(SqlLookup {
            target,
            table,
            template,
            db: tokio::sync::Mutex::new(None),
        })
    }
}

impl LookupFactory for SqlLookupFactory {
    fn kind(&self) -> &str {
        KIND
    }

    fn info(&self) -> ConnectorInfo {
        super::info::lookup()
    }

    fn create(
        &self,
        env: &ConnectorEnv,
        datasource: &str,
        props: &Props,
    ) -> Result<Arc<dyn LookupSource>, ConnectorError> {
        Ok(Arc::new(Self::build(env, datasource, props)?))
    }

    fn ping(&self, env: &ConnectorEnv, props: &Props) -> Option<PingFuture> {
        Some(super::ping(env.clone(), props.clone()))
    }
}

/// A rule run's `sql` lookup table.
pub struct SqlLookup {
    target: Target,
    table: String,
    template: Option<PropTemplate>,
    db: tokio::sync::Mutex<Option<Db>>,
}

impl SqlLookup {
    fn statement(&self, keys: &[Arc<str>], values: &[Value]) -> Result<String, ConnectorError> {
        if let Some(t) = &self.template {
            let m: Map = keys.iter().cloned().zip(values.iter().cloned()).collect();
            return t
                .render(&Value::Object(Arc::new(m)))
                .map_err(|e| ConnectorError::InvalidData(e.to_string()));
        }
        let d = self.target.dialect();
        let mut s = format!("SELECT * FROM {} WHERE ", self.table);
        for (i, (k, v)) in keys.iter().zip(values).enumerate() {
            if i > 0 {
                s.push_str(" AND ");
            }
            s.push_str(&d.ident(k));
            s.push_str(" = ");
            d.literal(v, &mut s);
        }
        Ok(s)
    }
}

#[async_trait]
impl LookupSource for SqlLookup {
    async fn lookup(
        &self,
        keys: &[Arc<str>],
        values: &[Value],
    ) -> Result<Vec<Row>, ConnectorError> {
        let sql = self.statement(keys, values)?;
        let mut guard = self.db.lock().await;
        if guard.is_none() {
            *guard = Some(Db::open(&self.target).await?);
        }
        let Some(db) = guard.as_mut() else {
            return Err(ConnectorError::unavailable("sql: not connected"));
        };
        let r = db.query(&self.target, &sql).await;
        if matches!(r, Err(ConnectorError::Unavailable(_))) {
            *guard = None;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_select_by_the_join_keys() {
        let env = ConnectorEnv::builder().data_dir("/tmp").build();
        let l = SqlLookupFactory::build(
            &env,
            "devices",
            serde_json::json!({"url": "mysql://h/db"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let keys: [Arc<str>; 2] = [Arc::from("id"), Arc::from("site")];
        assert_eq!(
            l.statement(&keys, &[Value::Int(1), Value::str("o'k")])
                .unwrap(),
            "SELECT * FROM devices WHERE `id` = 1 AND `site` = 'o''k'"
        );
        let l = SqlLookupFactory::build(
            &env,
            "",
            serde_json::json!({"url": "sqlite:x.db", "templateSqlQueryCfg": {"TemplateSql": "select * from d where id = {{.id}}"}})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            l.statement(&keys[..1], &[Value::Int(3)]).unwrap(),
            "select * from d where id = 3"
        );
        let e = SqlLookupFactory
            .validate(
                &env,
                "",
                serde_json::json!({"url": "sqlite:x.db"})
                    .as_object()
                    .unwrap(),
            )
            .unwrap_err();
        assert!(e.to_string().contains("DATASOURCE"), "{e}");
    }
}
