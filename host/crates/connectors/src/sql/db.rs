//! One database connection behind the `sql` connectors, whatever the
//! driver: PostgreSQL (`tokio-postgres`), MySQL and MariaDB (`mysql_async`)
//! and SQLite (`rusqlite`, on the blocking pool). Statements are SQL text:
//! queries come from the user (`templateSqlQueryCfg`) or are generated with
//! [`Dialect`]'s quoting; results come back as rows of Oort values, typed by
//! the column types ([`super::columns`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use oort_core::{ConnectorEnv, ConnectorError, Row, Value};

use super::columns::{lite_rows, my_rows, pg_rows};

/// How long connecting, and each statement, may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The database behind a `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A `postgres://` or `postgresql://` URL, as libpq reads it.
    Postgres(String),
    /// A `mysql://` URL (MariaDB too); Go driver options dropped.
    Mysql(String),
    /// The database file.
    Sqlite(PathBuf),
}

/// The SQL spelling of one driver: identifier quotes, literals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Mysql,
    Sqlite,
}

impl Target {
    /// Reads eKuiper's `url` (`mysql://user:pw@host:3306/db?parseTime=true`,
    /// `postgres://user:pw@host/db`, `sqlite:/path/file.db`,
    /// `sqlite://file.db`). A relative SQLite path is under the data dir,
    /// and a path must be where the file connectors may write. No IO.
    pub fn parse(kind: &str, env: &ConnectorEnv, url: &str) -> Result<Target, ConnectorError> {
        let url = url.trim();
        let bad = |m: String| ConnectorError::Config(format!("{kind}: invalid property url: {m}"));
        if url.is_empty() {
            return Err(ConnectorError::Config(format!(
                "{kind}: property url is required"
            )));
        }
        let (scheme, rest) = url.split_once(':').ok_or_else(|| {
            bad(format!(
                "{url:?} has no scheme (postgres://, mysql://, sqlite:)"
            ))
        })?;
        match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => {
                url.parse::<tokio_postgres::Config>()
                    .map_err(|e| bad(format!("{}: {e}", redact(url))))?;
                Ok(Target::Postgres(url.to_string()))
            }
            "mysql" | "mariadb" => {
                let cleaned = mysql_url(url).map_err(bad)?;
                mysql_async::Opts::from_url(&cleaned)
                    .map_err(|e| bad(format!("{}: {e}", redact(url))))?;
                Ok(Target::Mysql(cleaned))
            }
            "sqlite" | "sqlite3" | "file" => {
                let path = rest.strip_prefix("//").unwrap_or(rest);
                let path = path.split('?').next().unwrap_or(path);
                if path.is_empty() {
                    return Err(bad(format!("{url:?} names no database file")));
                }
                Ok(Target::Sqlite(sqlite_path(kind, env, path)?))
            }
            other => Err(bad(format!(
                "driver {other} is not supported: Oort has postgres, mysql (MariaDB) and sqlite"
            ))),
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Target::Postgres(_) => Dialect::Postgres,
            Target::Mysql(_) => Dialect::Mysql,
            Target::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// The URL with its password hidden, for logs and errors.
    pub fn shown(&self) -> String {
        match self {
            Target::Postgres(u) | Target::Mysql(u) => redact(u),
            Target::Sqlite(p) => format!("sqlite:{}", p.display()),
        }
    }
}

/// A SQLite file: relative to the data dir, and where the `file`
/// connectors may write (the data dir, `file.allowed_dirs`).
fn sqlite_path(kind: &str, env: &ConnectorEnv, path: &str) -> Result<PathBuf, ConnectorError> {
    let p = std::path::Path::new(path);
    let p = if p.is_absolute() {
        p.to_path_buf()
    } else {
        env.data_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|| p.to_path_buf())
    };
    let allowed = crate::file::allowed(env);
    allowed.check(&p).map_err(|e| {
        ConnectorError::Config(format!(
            "{kind}: property url: {}",
            crate::file::refusal(&allowed, &e)
        ))
    })
}

/// A URL with the password replaced by `***`.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Go's MySQL driver options mean nothing to `mysql_async`; they are
/// dropped (`parseTime`, `loc`, `charset`, `timeout`...), the others kept.
fn mysql_url(url: &str) -> Result<String, String> {
    let mut u = url::Url::parse(url).map_err(|e| format!("{}: {e}", redact(url)))?;
    let _ = u.set_scheme("mysql");
    let kept: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| {
            !matches!(
                k.as_ref(),
                "parseTime"
                    | "loc"
                    | "charset"
                    | "collation"
                    | "timeout"
                    | "readTimeout"
                    | "writeTimeout"
                    | "allowNativePasswords"
                    | "tls"
            )
        })
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        u.set_query(None);
    } else {
        u.query_pairs_mut().clear().extend_pairs(kept);
    }
    Ok(u.to_string())
}

impl Dialect {
    /// An identifier in this dialect's quotes (`"a"`, `` `a` ``).
    pub fn ident(self, name: &str) -> String {
        match self {
            Dialect::Mysql => format!("`{}`", name.replace('`', "``")),
            _ => format!("\"{}\"", name.replace('"', "\"\"")),
        }
    }

    /// `v` as a SQL literal: strings quoted and escaped, numbers as they
    /// are, booleans, NULL, bytes in hex, objects and arrays as JSON text,
    /// datetimes as `'YYYY-MM-DD HH:MM:SS.fff'` (UTC).
    pub fn literal(self, v: &Value, out: &mut String) {
        match v {
            Value::Null => out.push_str("NULL"),
            Value::Bool(b) => out.push_str(match (self, b) {
                (Dialect::Sqlite, true) => "1",
                (Dialect::Sqlite, false) => "0",
                (_, true) => "TRUE",
                (_, false) => "FALSE",
            }),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::Float(f) if f.is_finite() => out.push_str(&format!("{f:?}")),
            Value::Float(_) => out.push_str("NULL"),
            Value::Str(s) => self.string(s, out),
            Value::Bytes(b) => {
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                match self {
                    Dialect::Postgres => out.push_str(&format!("'\\x{hex}'::bytea")),
                    _ => out.push_str(&format!("X'{hex}'")),
                }
            }
            Value::Datetime(ms) => {
                let t = chrono::DateTime::from_timestamp_millis(*ms).unwrap_or_default();
                self.string(&t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(), out)
            }
            Value::Array(_) | Value::Object(_) => self.string(&v.to_json().to_string(), out),
        }
    }

    fn string(self, s: &str, out: &mut String) {
        out.push('\'');
        for c in s.chars() {
            match c {
                '\'' => out.push_str("''"),
                // MySQL reads backslash escapes in strings by default.
                '\\' if self == Dialect::Mysql => out.push_str("\\\\"),
                '\0' if self == Dialect::Mysql => out.push_str("\\0"),
                c => out.push(c),
            }
        }
        out.push('\'');
    }
}

/// An open connection.
pub enum Db {
    Postgres(tokio_postgres::Client),
    Mysql(mysql_async::Conn),
    Sqlite(Arc<parking_lot::Mutex<rusqlite::Connection>>),
}

fn unavailable(t: &Target, e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Unavailable(format!("sql {}: {e}", t.shown()))
}

impl Db {
    /// Connects (at most [`TIMEOUT`]).
    pub async fn open(t: &Target) -> Result<Db, ConnectorError> {
        let fut = async {
            match t {
                Target::Postgres(url) => {
                    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                        .await
                        .map_err(|e| unavailable(t, e))?;
                    let shown = t.shown();
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(db = %shown, error = %e, "sql: connection closed");
                        }
                    });
                    Ok(Db::Postgres(client))
                }
                Target::Mysql(url) => {
                    let opts = mysql_async::Opts::from_url(url).map_err(|e| unavailable(t, e))?;
                    let c = mysql_async::Conn::new(opts)
                        .await
                        .map_err(|e| unavailable(t, e))?;
                    Ok(Db::Mysql(c))
                }
                Target::Sqlite(p) => {
                    let p = p.clone();
                    let c = tokio::task::spawn_blocking(move || {
                        let c = rusqlite::Connection::open(&p)?;
                        c.busy_timeout(TIMEOUT)?;
                        Ok::<_, rusqlite::Error>(c)
                    })
                    .await
                    .map_err(|e| unavailable(t, e))?
                    .map_err(|e| unavailable(t, e))?;
                    Ok(Db::Sqlite(Arc::new(parking_lot::Mutex::new(c))))
                }
            }
        };
        tokio::time::timeout(TIMEOUT, fut)
            .await
            .map_err(|_| unavailable(t, format!("no connection within {} s", TIMEOUT.as_secs())))?
    }

    /// Runs a query; its rows, typed by the column types.
    pub async fn query(&mut self, t: &Target, sql: &str) -> Result<Vec<Row>, ConnectorError> {
        let fut = async {
            match self {
                Db::Postgres(c) => {
                    let rows = c.query(sql, &[]).await.map_err(|e| pg_error(t, e))?;
                    pg_rows(&rows)
                }
                Db::Mysql(c) => {
                    use mysql_async::prelude::Queryable;
                    let mut res = c.query_iter(sql).await.map_err(|e| my_error(t, e))?;
                    let cols = res.columns();
                    let rows: Vec<mysql_async::Row> =
                        res.collect().await.map_err(|e| my_error(t, e))?;
                    my_rows(cols.as_deref().unwrap_or(&[]), rows)
                }
                Db::Sqlite(c) => {
                    let c = c.clone();
                    let sql = sql.to_string();
                    tokio::task::spawn_blocking(move || lite_rows(&c.lock(), &sql))
                        .await
                        .map_err(|e| unavailable(t, e))?
                }
            }
        };
        tokio::time::timeout(TIMEOUT, fut)
            .await
            .map_err(|_| unavailable(t, format!("no answer within {} s", TIMEOUT.as_secs())))?
    }

    /// Runs statements in one transaction: all or none.
    pub async fn execute(&mut self, t: &Target, stmts: &[String]) -> Result<(), ConnectorError> {
        let fut = async {
            match self {
                Db::Postgres(c) => {
                    let tx = c.transaction().await.map_err(|e| pg_error(t, e))?;
                    for s in stmts {
                        tx.batch_execute(s).await.map_err(|e| pg_error(t, e))?;
                    }
                    tx.commit().await.map_err(|e| pg_error(t, e))
                }
                Db::Mysql(c) => {
                    use mysql_async::prelude::Queryable;
                    let mut tx = c
                        .start_transaction(mysql_async::TxOpts::default())
                        .await
                        .map_err(|e| my_error(t, e))?;
                    let mut failed = None;
                    for s in stmts {
                        if let Err(e) = tx.query_drop(s).await {
                            failed = Some(e);
                            break;
                        }
                    }
                    match failed {
                        None => tx.commit().await.map_err(|e| my_error(t, e)),
                        // Rolled back now: a dropped transaction would keep
                        // its locks until the connection's next use.
                        Some(e) => {
                            let _ = tx.rollback().await;
                            Err(my_error(t, e))
                        }
                    }
                }
                Db::Sqlite(c) => {
                    let c = c.clone();
                    let stmts = stmts.to_vec();
                    tokio::task::spawn_blocking(move || {
                        let mut c = c.lock();
                        let tx = c.transaction()?;
                        for s in &stmts {
                            tx.execute_batch(s)?;
                        }
                        tx.commit()
                    })
                    .await
                    .map_err(|e| unavailable(t, e))?
                    .map_err(lite_error)
                }
            }
        };
        tokio::time::timeout(TIMEOUT, fut)
            .await
            .map_err(|_| unavailable(t, format!("no answer within {} s", TIMEOUT.as_secs())))?
    }
}

/// A PostgreSQL error: the connection (retried) or the statement (data).
fn pg_error(t: &Target, e: tokio_postgres::Error) -> ConnectorError {
    if e.is_closed() || e.as_db_error().is_none() {
        unavailable(t, e)
    } else {
        let msg = e
            .as_db_error()
            .map(|d| d.message().to_string())
            .unwrap_or_else(|| e.to_string());
        ConnectorError::InvalidData(format!("sql {}: {msg}", t.shown()))
    }
}

fn my_error(t: &Target, e: mysql_async::Error) -> ConnectorError {
    match e {
        mysql_async::Error::Server(s) => {
            ConnectorError::InvalidData(format!("sql {}: {}", t.shown(), s.message))
        }
        other => unavailable(t, other),
    }
}

pub(super) fn lite_error(e: rusqlite::Error) -> ConnectorError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            ConnectorError::Unavailable(format!("sql sqlite: {e}"))
        }
        _ => ConnectorError::InvalidData(format!("sql sqlite: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_as_ekuiper_writes_them() {
        let env = ConnectorEnv::builder().data_dir("/tmp/oort-d").build();
        assert_eq!(
            Target::parse(
                "sql",
                &env,
                "mysql://root:pw@127.0.0.1:3306/test?parseTime=true"
            )
            .unwrap(),
            Target::Mysql("mysql://root:pw@127.0.0.1:3306/test".into())
        );
        assert_eq!(
            Target::parse("sql", &env, "postgres://u@127.0.0.1/test").unwrap(),
            Target::Postgres("postgres://u@127.0.0.1/test".into())
        );
        assert_eq!(
            Target::parse("sql", &env, "sqlite://test.db").unwrap(),
            Target::Sqlite(PathBuf::from("/tmp/oort-d/test.db"))
        );
        for (bad, says) in [
            ("", "required"),
            ("sqlserver://u:p@h/db", "not supported"),
            ("nourl", "scheme"),
            ("sqlite:", "no database file"),
            ("sqlite:/etc/passwd", "url"),
        ] {
            let e = Target::parse("sql", &env, bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let t = Target::parse("sql", &env, "mysql://root:secret@h/db").unwrap();
        assert!(!t.shown().contains("secret"), "{}", t.shown());
    }

    #[test]
    fn literals_are_quoted_per_dialect() {
        let lit = |d: Dialect, v: Value| {
            let mut s = String::new();
            d.literal(&v, &mut s);
            s
        };
        assert_eq!(lit(Dialect::Postgres, Value::str("it's")), "'it''s'");
        assert_eq!(lit(Dialect::Mysql, Value::str("a\\'b")), "'a\\\\''b'");
        assert_eq!(lit(Dialect::Sqlite, Value::Bool(true)), "1");
        assert_eq!(lit(Dialect::Mysql, Value::Bool(false)), "FALSE");
        assert_eq!(lit(Dialect::Postgres, Value::Float(1.5)), "1.5");
        assert_eq!(lit(Dialect::Postgres, Value::Float(f64::NAN)), "NULL");
        assert_eq!(
            lit(Dialect::Postgres, Value::Bytes(vec![1, 255].into())),
            "'\\x01ff'::bytea"
        );
        assert_eq!(
            lit(Dialect::Sqlite, Value::Datetime(0)),
            "'1970-01-01 00:00:00.000'"
        );
        assert_eq!(Dialect::Mysql.ident("a`b"), "`a``b`");
        assert_eq!(Dialect::Postgres.ident("a\"b"), "\"a\"\"b\"");
    }
}
