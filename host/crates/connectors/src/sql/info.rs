//! What the `sql` connectors declare: properties and default conf keys.

use oort_core::{ConnectorInfo, PropSpec};
use serde_json::json;

/// The default conf key of `sql` streams and tables (`etc/sources/sql.yaml`).
const SOURCE_DEFAULT: &str = "\
default:
  # url: postgres://user:pass@host:5432/db, mysql://user:pass@host:3306/db or sqlite:/path/file.db
  interval: 10000
  # the cache of lookup tables (see docs/lookup-tables.md)
  lookup:
    cache: false
    cacheTtl: 10m
    cacheMissingKey: false
";

fn url() -> PropSpec {
    PropSpec::new(
        "url",
        "string",
        "The database: postgres://user:pass@host/db, mysql://user:pass@host/db (MariaDB too), sqlite:/path/file.db (relative: under the data dir)",
    )
    .required()
    .connection()
}

fn query_cfg(name: &str, hint: &str) -> PropSpec {
    PropSpec::new(name, "object", hint)
}

pub(super) fn source() -> ConnectorInfo {
    ConnectorInfo {
        holds_connection: true,
        default_conf: Some(SOURCE_DEFAULT),
        datasource_hint: Some("The table to read when internalSqlQueryCfg names none"),
        properties: vec![
            url(),
            PropSpec::new("interval", "duration", "Time between two queries")
                .default(json!(10000)),
            query_cfg(
                "internalSqlQueryCfg",
                "The generated query: table, limit, indexField, indexValue, indexFieldType (DATETIME), dateTimeFormat, indexFields",
            ),
            query_cfg(
                "templateSqlQueryCfg",
                "A query template: templateSql ({{.indexField}} is the last value), indexField, indexValue, indexFieldType, dateTimeFormat, indexFields; wins over internalSqlQueryCfg",
            ),
        ],
        ..ConnectorInfo::new("Queries a SQL database (PostgreSQL, MySQL/MariaDB, SQLite) periodically")
    }
}

pub(super) fn sink() -> ConnectorInfo {
    ConnectorInfo {
        holds_connection: true,
        properties: vec![
            url(),
            PropSpec::new("table", "string", "The table to write").required(),
            PropSpec::new(
                "fields",
                "list_string",
                "The columns to write (default: the result's fields)",
            ),
            PropSpec::new(
                "tableDataField",
                "string",
                "Write the rows nested in this field (an array of objects) instead of the result",
            ),
            PropSpec::new(
                "rowkindField",
                "string",
                "The field saying insert (default), update, upsert or delete",
            ),
            PropSpec::new(
                "keyField",
                "string",
                "The key column of update, upsert and delete (required with rowkindField)",
            ),
        ],
        ..ConnectorInfo::new("Writes results to a SQL table (PostgreSQL, MySQL/MariaDB, SQLite)")
    }
}

pub(super) fn lookup() -> ConnectorInfo {
    ConnectorInfo {
        holds_connection: true,
        datasource_hint: Some("The table to look rows up in"),
        properties: vec![
            url(),
            query_cfg(
                "templateSqlQueryCfg",
                "A lookup query template: templateSql over the join keys ({{.id}})",
            ),
        ],
        ..ConnectorInfo::new("Looks rows up in a SQL table by the join keys")
    }
}
