//! What running queries ask of the server ([`RuleHost`]): eKuiper's
//! external keyed state for `get_keyed_state` and the wait of `delay()`.
//!
//! Keyed state is read where eKuiper reads it (`store.extStateType`):
//! `sqlite`, the `keyed_state` table (`key`, `val`) of `<data-dir>/extState.db`
//! (created when missing, filled by the user), or `redis`, plain keys
//! (`GET key`). Queries are synchronous, so a call waits on the rule's
//! task; `block_in_place` moves the runtime's other tasks to other threads.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oort_core::Value;
use oort_sql::engine::RuleHost;
use parking_lot::Mutex;
use rusqlite::types::ValueRef;

/// Where keyed state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtState {
    Sqlite,
    Redis {
        host: String,
        port: u16,
        password: String,
        timeout: Duration,
    },
}

/// The file of `extStateType: sqlite`, in the data dir (eKuiper's name).
pub const SQLITE_FILE: &str = "extState.db";
/// Its table (eKuiper's).
pub const TABLE: &str = "keyed_state";

#[derive(Debug)]
enum Backend {
    Sqlite {
        path: PathBuf,
        conn: Mutex<Option<rusqlite::Connection>>,
    },
    Redis {
        client: redis::Client,
        timeout: Duration,
        conn: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    },
}

/// The server's [`RuleHost`].
#[derive(Debug)]
pub struct ServerHost {
    backend: Backend,
}

impl ServerHost {
    pub fn new(data_dir: &Path, ext: &ExtState) -> Result<ServerHost, String> {
        let backend = match ext {
            ExtState::Sqlite => Backend::Sqlite {
                path: data_dir.join(SQLITE_FILE),
                conn: Mutex::new(None),
            },
            ExtState::Redis {
                host,
                port,
                password,
                timeout,
            } => {
                let info = redis::ConnectionInfo {
                    addr: redis::ConnectionAddr::Tcp(host.clone(), *port),
                    redis: redis::RedisConnectionInfo {
                        db: 0,
                        username: None,
                        password: Some(password.clone()).filter(|p| !p.is_empty()),
                        protocol: redis::ProtocolVersion::RESP2,
                    },
                };
                Backend::Redis {
                    client: redis::Client::open(info)
                        .map_err(|e| format!("store.redis {host}:{port}: {e}"))?,
                    timeout: *timeout,
                    conn: tokio::sync::Mutex::new(None),
                }
            }
        };
        Ok(ServerHost { backend })
    }

    fn sqlite_get(
        path: &Path,
        slot: &Mutex<Option<rusqlite::Connection>>,
        key: &str,
    ) -> Result<Option<Value>, String> {
        let mut guard = slot.lock();
        if guard.is_none() {
            let c = rusqlite::Connection::open(path)
                .map_err(|e| format!("keyed state {}: {e}", path.display()))?;
            c.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {TABLE} (key VARCHAR(255) PRIMARY KEY, val BLOB)"
            ))
            .map_err(|e| format!("keyed state {}: {e}", path.display()))?;
            *guard = Some(c);
        }
        let Some(c) = guard.as_ref() else {
            return Ok(None);
        };
        let mut st = c
            .prepare_cached(&format!("SELECT val FROM {TABLE} WHERE key = ?1"))
            .map_err(|e| format!("keyed state: {e}"))?;
        let mut rows = st.query([key]).map_err(|e| format!("keyed state: {e}"))?;
        let Some(row) = rows.next().map_err(|e| format!("keyed state: {e}"))? else {
            return Ok(None);
        };
        let v = row.get_ref(0).map_err(|e| format!("keyed state: {e}"))?;
        Ok(Some(match v {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Int(i),
            ValueRef::Real(f) => Value::Float(f),
            ValueRef::Text(t) | ValueRef::Blob(t) => match std::str::from_utf8(t) {
                Ok(s) => Value::str(s),
                Err(_) => Value::Bytes(t.to_vec().into()),
            },
        }))
    }

    fn redis_get(&self, key: &str) -> Result<Option<Value>, String> {
        let Backend::Redis {
            client,
            timeout,
            conn,
        } = &self.backend
        else {
            return Ok(None);
        };
        let handle = tokio::runtime::Handle::try_current()
            .ok()
            .filter(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
            .ok_or_else(|| "keyed state in Redis needs the multi-threaded runtime".to_string())?;
        let fut = async {
            let mut slot = conn.lock().await;
            if slot.is_none() {
                *slot = Some(client.get_multiplexed_async_connection().await?);
            }
            let Some(c) = slot.as_mut() else {
                return Ok(None);
            };
            let r: redis::RedisResult<Option<String>> =
                redis::cmd("GET").arg(key).query_async(c).await;
            if r.is_err() {
                // Reconnect on the next call.
                *slot = None;
            }
            r
        };
        match tokio::task::block_in_place(|| handle.block_on(tokio::time::timeout(*timeout, fut))) {
            Ok(Ok(v)) => Ok(v.map(|s| Value::str(&s))),
            Ok(Err(e)) => Err(format!("keyed state (redis): {e}")),
            Err(_) => Err(format!(
                "keyed state (redis): no answer within {} ms",
                timeout.as_millis()
            )),
        }
    }
}

impl RuleHost for ServerHost {
    fn keyed_state(&self, key: &str) -> Result<Option<Value>, String> {
        match &self.backend {
            Backend::Sqlite { path, conn } => Self::sqlite_get(path, conn, key),
            Backend::Redis { .. } => self.redis_get(key),
        }
    }

    fn sleep(&self, ms: u64) {
        let d = Duration::from_millis(ms);
        let multi = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi {
            tokio::task::block_in_place(|| std::thread::sleep(d));
        } else {
            std::thread::sleep(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_keyed_state_reads_the_users_table() {
        let dir = tempfile::tempdir().unwrap();
        let h = ServerHost::new(dir.path(), &ExtState::Sqlite).unwrap();
        // The table is created on first use; absent keys are None.
        assert_eq!(h.keyed_state("a").unwrap(), None);
        let c = rusqlite::Connection::open(dir.path().join(SQLITE_FILE)).unwrap();
        c.execute(
            "INSERT INTO keyed_state (key, val) VALUES ('a', '12'), ('b', 2.5), ('c', 7)",
            [],
        )
        .unwrap();
        assert_eq!(h.keyed_state("a").unwrap(), Some(Value::str("12")));
        assert_eq!(h.keyed_state("b").unwrap(), Some(Value::Float(2.5)));
        assert_eq!(h.keyed_state("c").unwrap(), Some(Value::Int(7)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_keyed_state_reads_plain_keys() {
        let key = format!("oort-test-ks-{}", std::process::id());
        let client = redis::Client::open("redis://127.0.0.1:6379/").unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg("3.5")
            .query_async(&mut c)
            .await
            .unwrap();
        let h = ServerHost::new(
            Path::new("/nonexistent"),
            &ExtState::Redis {
                host: "127.0.0.1".into(),
                port: 6379,
                password: String::new(),
                timeout: Duration::from_secs(2),
            },
        )
        .unwrap();
        let k2 = key.clone();
        let got = tokio::task::spawn(async move { h.keyed_state(&k2) })
            .await
            .unwrap();
        let _: () = redis::cmd("DEL")
            .arg(&key)
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(got.unwrap(), Some(Value::str("3.5")));
    }
}
