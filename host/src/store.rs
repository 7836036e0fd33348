//! The metadata store: one SQLite database (`<data-dir>/oort.db`) holding
//! streams, tables, rules (with their `triggered` state) and conf keys as
//! namespaced key/value rows. Every change is one transaction; WAL mode keeps
//! the file consistent across a kill -9.
//!
//! A [`Batch`] (data import) is one transaction owned by the task that runs
//! inside [`Batch::scope`]: writes from any other task while it is open are
//! refused with [`StoreError::Busy`] (HTTP 409) instead of silently joining
//! it, except [`Store::put_deferred`] writes (committed source offsets), which
//! wait in memory until the batch ends. A batch that is dropped without
//! [`Batch::commit`] (an error, a cancel, a panic unwinding) rolls back.

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
    /// A data import holds the store's transaction.
    #[error("a data import is in progress; retry when it has finished (GET /data/import/status)")]
    Busy,
}

tokio::task_local! {
    /// The id of the batch the current task writes in (see [`Batch::scope`]).
    static BATCH_OWNER: u64;
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

struct Db {
    conn: Connection,
    /// The open batch, if any.
    batch: Option<u64>,
    next_batch: u64,
    /// `put_deferred` writes made while another task's batch was open.
    deferred: Vec<Op>,
}

impl Db {
    /// Whether the current task may write now.
    fn may_write(&self) -> bool {
        match self.batch {
            None => true,
            Some(id) => BATCH_OWNER.try_with(|o| *o == id).unwrap_or(false),
        }
    }

    /// Closes the open batch (commit or roll back), then applies the
    /// deferred writes in their own transaction.
    fn close_batch(&mut self, commit: bool) -> Result<(), StoreError> {
        let sql = if commit {
            "RELEASE oort_batch"
        } else {
            "ROLLBACK TO oort_batch; RELEASE oort_batch"
        };
        let r = self.conn.execute_batch(sql);
        self.batch = None;
        let deferred = std::mem::take(&mut self.deferred);
        if !deferred.is_empty() {
            if let Err(e) = write_ops(&mut self.conn, &deferred) {
                tracing::warn!(error = %e, "metadata store: deferred writes failed");
            }
        }
        Ok(r?)
    }
}

fn write_ops(conn: &mut Connection, ops: &[Op]) -> Result<(), StoreError> {
    // A savepoint nests inside an open batch and is a plain transaction otherwise.
    let tx = conn.savepoint()?;
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

#[derive(Clone)]
pub struct Store {
    db: Arc<Mutex<Db>>,
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
            db: Arc::new(Mutex::new(Db {
                conn,
                batch: None,
                next_batch: 1,
                deferred: Vec::new(),
            })),
        })
    }

    pub fn get(&self, ns: &str, key: &str) -> Result<Option<String>, StoreError> {
        let db = self.db.lock();
        Ok(db
            .conn
            .query_row(
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
        let db = self.db.lock();
        let mut st = db
            .conn
            .prepare_cached("SELECT key, value FROM kv WHERE ns = ?1 ORDER BY key")?;
        let rows = st.query_map(params![ns], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Namespaces starting with `prefix` (for conf keys), with their entries.
    pub fn list_prefix(&self, prefix: &str) -> Result<Vec<(String, String, String)>, StoreError> {
        let db = self.db.lock();
        let mut st = db.conn.prepare_cached(
            "SELECT ns, key, value FROM kv WHERE substr(ns, 1, length(?1)) = ?1 ORDER BY ns, key",
        )?;
        let rows = st.query_map(params![prefix], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Starts a group commit owned by the task that runs inside
    /// [`Batch::scope`]: its writes land in one SQLite transaction, so a crash
    /// in between leaves the store as it was before `begin`; reads see them.
    /// Other tasks' writes are refused ([`StoreError::Busy`]) until the batch
    /// ends. Used by data import.
    pub fn begin(&self) -> Result<Batch, StoreError> {
        let mut db = self.db.lock();
        if db.batch.is_some() {
            return Err(StoreError::Busy);
        }
        db.conn.execute_batch("SAVEPOINT oort_batch")?;
        let id = db.next_batch;
        db.next_batch += 1;
        db.batch = Some(id);
        Ok(Batch {
            store: self.clone(),
            id,
            open: true,
        })
    }

    /// True while a batch (data import) is open.
    pub fn batch_open(&self) -> bool {
        self.db.lock().batch.is_some()
    }

    /// Fails with [`StoreError::Busy`] when a batch owned by another task is
    /// open: lets a caller refuse a change before it has any other effect.
    pub fn check_writable(&self) -> Result<(), StoreError> {
        if self.db.lock().may_write() {
            Ok(())
        } else {
            Err(StoreError::Busy)
        }
    }

    /// Applies several writes in one transaction: all or nothing.
    pub fn apply(&self, ops: &[Op]) -> Result<(), StoreError> {
        let mut db = self.db.lock();
        if !db.may_write() {
            return Err(StoreError::Busy);
        }
        write_ops(&mut db.conn, ops)
    }

    /// A put that must not be refused nor join someone else's batch (a
    /// committed source offset): written now, or when the open batch ends.
    pub fn put_deferred(&self, ns: &str, key: &str, value: &str) -> Result<(), StoreError> {
        let op = Op::Put {
            ns: ns.into(),
            key: key.into(),
            value: value.into(),
        };
        let mut db = self.db.lock();
        if db.may_write() {
            return write_ops(&mut db.conn, &[op]);
        }
        db.deferred.push(op);
        Ok(())
    }
}

/// An open group commit (see [`Store::begin`]). Dropping it without
/// [`Batch::commit`] rolls it back, also while a panic unwinds: the caller
/// that owns the in-memory state must then reload it from the store.
pub struct Batch {
    store: Store,
    id: u64,
    open: bool,
}

impl Batch {
    /// Runs `fut` as the batch's owner: its store writes join the batch.
    /// Tasks it spawns are not owners.
    pub async fn scope<F: std::future::Future>(&self, fut: F) -> F::Output {
        BATCH_OWNER.scope(self.id, fut).await
    }

    pub fn commit(mut self) -> Result<(), StoreError> {
        self.open = false;
        self.store.db.lock().close_batch(true)
    }

    pub fn rollback(mut self) -> Result<(), StoreError> {
        self.open = false;
        self.store.db.lock().close_batch(false)
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if self.open {
            if let Err(e) = self.store.db.lock().close_batch(false) {
                tracing::error!(error = %e, "metadata store: cannot roll back a batch");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_is_all_or_nothing_across_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.put(ns::RULES, "old", "1").unwrap();
        let b = s.begin().unwrap();
        b.scope(async {
            s.delete(ns::RULES, "old").unwrap();
            s.put(ns::RULES, "new", "2").unwrap();
        })
        .await;
        assert_eq!(s.get(ns::RULES, "new").unwrap().as_deref(), Some("2"));
        // A second connection is what the next process would see after a
        // crash now: nothing of the batch.
        let other = Store::open(dir.path()).unwrap();
        assert_eq!(other.get(ns::RULES, "old").unwrap().as_deref(), Some("1"));
        assert_eq!(other.get(ns::RULES, "new").unwrap(), None);
        b.commit().unwrap();
        assert_eq!(other.get(ns::RULES, "old").unwrap(), None);
        assert_eq!(other.get(ns::RULES, "new").unwrap().as_deref(), Some("2"));
        // Dropping rolls back.
        let b = s.begin().unwrap();
        b.scope(async { s.put(ns::RULES, "third", "3").unwrap() })
            .await;
        drop(b);
        assert_eq!(s.get(ns::RULES, "third").unwrap(), None);
        assert_eq!(other.get(ns::RULES, "third").unwrap(), None);
    }

    #[tokio::test]
    async fn a_batch_dropped_by_a_panic_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let s2 = s.clone();
        let r = tokio::spawn(async move {
            let b = s2.begin().unwrap();
            b.scope(async { s2.put(ns::RULES, "half", "1").unwrap() })
                .await;
            panic!("import failed half-way");
        })
        .await;
        assert!(r.unwrap_err().is_panic());
        assert_eq!(s.get(ns::RULES, "half").unwrap(), None);
        assert!(!s.batch_open());
        assert_eq!(
            Store::open(dir.path())
                .unwrap()
                .get(ns::RULES, "half")
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn other_writers_are_refused_while_a_batch_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let b = s.begin().unwrap();
        assert!(matches!(
            s.put(ns::RULES, "rest", "1"),
            Err(StoreError::Busy)
        ));
        assert!(matches!(s.check_writable(), Err(StoreError::Busy)));
        assert!(matches!(s.begin(), Err(StoreError::Busy)));
        b.scope(async { s.check_writable().unwrap() }).await;
        // An offset is kept and written once the batch ends, even when the
        // batch rolls back.
        s.put_deferred(ns::CHECKPOINTS, "st", "42").unwrap();
        assert_eq!(s.get(ns::CHECKPOINTS, "st").unwrap(), None);
        b.rollback().unwrap();
        assert_eq!(s.get(ns::CHECKPOINTS, "st").unwrap().as_deref(), Some("42"));
        assert_eq!(s.get(ns::RULES, "rest").unwrap(), None);
        s.put(ns::RULES, "rest", "1").unwrap();
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
