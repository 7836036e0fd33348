//! The metadata store: one SQLite database (`<data-dir>/oort.db`) holding
//! streams, tables, rules (with their `triggered` state) and conf keys as
//! namespaced key/value rows. Every change is one transaction; WAL mode keeps
//! the file consistent across a kill -9.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metadata store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("metadata store: {0}")]
    Io(#[from] std::io::Error),
}

/// Namespaces of the store.
pub mod ns {
    pub const STREAMS: &str = "streams";
    pub const TABLES: &str = "tables";
    pub const RULES: &str = "rules";
    /// Per-rule flags such as `triggered`.
    pub const RULE_STATE: &str = "rule_state";
    /// `sources.<type>` / `sinks.<type>` / `connections.<type>` prefix + conf key name.
    pub const CONF: &str = "conf";
    /// Committed source offsets (checkpoints of `qos` >= 1 rules), by stream name.
    pub const CHECKPOINTS: &str = "checkpoints";
}

/// One write in a batch applied atomically.
#[derive(Debug, Clone)]
pub enum Op {
    Put {
        ns: String,
        key: String,
        value: String,
    },
    Delete {
        ns: String,
        key: String,
    },
}

#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl Store {
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir)?;
        let conn = Connection::open(data_dir.join("oort.db"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS kv (
                ns TEXT NOT NULL,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                PRIMARY KEY (ns, key)
            );",
        )?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    pub fn get(&self, ns: &str, key: &str) -> Result<Option<String>, StoreError> {
        let c = self.conn.lock();
        Ok(c.query_row(
            "SELECT value FROM kv WHERE ns = ?1 AND key = ?2",
            params![ns, key],
            |r| r.get(0),
        )
        .optional()?)
    }

    pub fn put(&self, ns: &str, key: &str, value: &str) -> Result<(), StoreError> {
        self.apply(&[Op::Put {
            ns: ns.into(),
            key: key.into(),
            value: value.into(),
        }])
    }

    pub fn delete(&self, ns: &str, key: &str) -> Result<(), StoreError> {
        self.apply(&[Op::Delete {
            ns: ns.into(),
            key: key.into(),
        }])
    }

    /// All (key, value) pairs of a namespace, sorted by key.
    pub fn list(&self, ns: &str) -> Result<Vec<(String, String)>, StoreError> {
        let c = self.conn.lock();
        let mut st = c.prepare_cached("SELECT key, value FROM kv WHERE ns = ?1 ORDER BY key")?;
        let rows = st.query_map(params![ns], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Namespaces starting with `prefix` (for conf keys), with their entries.
    pub fn list_prefix(&self, prefix: &str) -> Result<Vec<(String, String, String)>, StoreError> {
        let c = self.conn.lock();
        let mut st = c.prepare_cached(
            "SELECT ns, key, value FROM kv WHERE substr(ns, 1, length(?1)) = ?1 ORDER BY ns, key",
        )?;
        let rows = st.query_map(params![prefix], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Applies several writes in one transaction: all or nothing.
    /// Starts a group commit: every write through this store until the
    /// returned [`Batch`] is committed (or dropped) lands in one SQLite
    /// transaction, so a crash in between leaves the store as it was before
    /// `begin`. Used by data import. Reads see the batch's writes.
    pub fn begin(&self) -> Result<Batch, StoreError> {
        self.conn.lock().execute_batch("SAVEPOINT oort_batch")?;
        Ok(Batch {
            store: self.clone(),
            open: true,
        })
    }

    pub fn apply(&self, ops: &[Op]) -> Result<(), StoreError> {
        let mut c = self.conn.lock();
        // A savepoint nests inside an open `Batch` and is a plain
        // transaction otherwise.
        let tx = c.savepoint()?;
        for op in ops {
            match op {
                Op::Put { ns, key, value } => {
                    tx.execute(
                        "INSERT INTO kv (ns, key, value) VALUES (?1, ?2, ?3)
                         ON CONFLICT(ns, key) DO UPDATE SET value = excluded.value",
                        params![ns, key, value],
                    )?;
                }
                Op::Delete { ns, key } => {
                    tx.execute(
                        "DELETE FROM kv WHERE ns = ?1 AND key = ?2",
                        params![ns, key],
                    )?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// An open group commit (see [`Store::begin`]). Dropping it commits too:
/// the engine's in-memory state already reflects the writes, so throwing
/// them away would make the two disagree; only a crash discards them.
pub struct Batch {
    store: Store,
    open: bool,
}

impl Batch {
    pub fn commit(mut self) -> Result<(), StoreError> {
        self.open = false;
        self.store.conn.lock().execute_batch("RELEASE oort_batch")?;
        Ok(())
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if self.open {
            if let Err(e) = self.store.conn.lock().execute_batch("RELEASE oort_batch") {
                tracing::error!(error = %e, "metadata store: cannot commit a batch");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_all_or_nothing_across_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.put(ns::RULES, "old", "1").unwrap();
        let b = s.begin().unwrap();
        s.delete(ns::RULES, "old").unwrap();
        s.put(ns::RULES, "new", "2").unwrap();
        assert_eq!(s.get(ns::RULES, "new").unwrap().as_deref(), Some("2"));
        // A second connection is what the next process would see after a
        // crash now: nothing of the batch.
        let other = Store::open(dir.path()).unwrap();
        assert_eq!(other.get(ns::RULES, "old").unwrap().as_deref(), Some("1"));
        assert_eq!(other.get(ns::RULES, "new").unwrap(), None);
        b.commit().unwrap();
        assert_eq!(other.get(ns::RULES, "old").unwrap(), None);
        assert_eq!(other.get(ns::RULES, "new").unwrap().as_deref(), Some("2"));
        // Dropping commits as well.
        let b = s.begin().unwrap();
        s.put(ns::RULES, "third", "3").unwrap();
        drop(b);
        assert_eq!(other.get(ns::RULES, "third").unwrap().as_deref(), Some("3"));
    }

    #[test]
    fn put_get_list_delete_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.put(ns::STREAMS, "b", "2").unwrap();
            s.put(ns::STREAMS, "a", "1").unwrap();
            s.put(ns::STREAMS, "a", "3").unwrap();
            assert_eq!(s.get(ns::STREAMS, "a").unwrap().as_deref(), Some("3"));
            assert_eq!(
                s.list(ns::STREAMS).unwrap(),
                vec![("a".into(), "3".into()), ("b".into(), "2".into())]
            );
            s.delete(ns::STREAMS, "b").unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.list(ns::STREAMS).unwrap().len(), 1);
        assert_eq!(s.get(ns::STREAMS, "b").unwrap(), None);
    }
}
