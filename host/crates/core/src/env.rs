//! The connector context: everything a connector factory may use from the
//! host, handed to every `create`/`validate` call. No process statics and no
//! smuggled properties: the data dir, the directories file connectors may
//! touch, the pools connectors share (one MQTT connection per profile, the
//! memory bus...), the registry of shared links `GET /connections` reads,
//! and the clock.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::shared_conn::SharedLinks;

/// Wall-clock time in milliseconds since the Unix epoch. Connectors read
/// time through it so tests can fix it.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::value::now_ms()
    }
}

/// Cheap to clone handle to the host's side of every connector.
#[derive(Clone)]
pub struct ConnectorEnv {
    inner: Arc<Inner>,
}

struct Inner {
    settings: HashMap<String, String>,
    data_dir: Option<PathBuf>,
    instance_id: Option<String>,
    allowed_dirs: Vec<PathBuf>,
    pools: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
    links: SharedLinks,
    clock: Arc<dyn Clock>,
}

impl Default for ConnectorEnv {
    /// No data dir (relative paths are refused by the file connectors), the
    /// system clock, empty pools: what unit tests of a connector need.
    fn default() -> Self {
        ConnectorEnvBuilder::default().build()
    }
}

impl std::fmt::Debug for ConnectorEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorEnv")
            .field("data_dir", &self.inner.data_dir)
            .field("allowed_dirs", &self.inner.allowed_dirs)
            .finish_non_exhaustive()
    }
}

/// Builds a [`ConnectorEnv`].
#[derive(Default)]
pub struct ConnectorEnvBuilder {
    settings: HashMap<String, String>,
    data_dir: Option<PathBuf>,
    instance_id: Option<String>,
    allowed_dirs: Vec<PathBuf>,
    clock: Option<Arc<dyn Clock>>,
}

impl ConnectorEnvBuilder {
    /// The server's `--data-dir`.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// The server's `--instance-id` (see [`ConnectorEnv::instance_key`]).
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }

    /// Directories besides the data dir that file connectors may use
    /// (`file.allowed_dirs` in the server config).
    pub fn allowed_dirs(mut self, dirs: Vec<PathBuf>) -> Self {
        self.allowed_dirs = dirs;
        self
    }

    /// A server setting connectors read (eKuiper's names, e.g.
    /// `source.httpServerPort`).
    pub fn setting(mut self, key: &str, value: &str) -> Self {
        self.settings.insert(key.to_string(), value.to_string());
        self
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    pub fn build(self) -> ConnectorEnv {
        ConnectorEnv {
            inner: Arc::new(Inner {
                settings: self.settings,
                data_dir: self.data_dir,
                instance_id: self.instance_id,
                allowed_dirs: self.allowed_dirs,
                pools: Mutex::default(),
                links: SharedLinks::default(),
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            }),
        }
    }
}

impl ConnectorEnv {
    pub fn builder() -> ConnectorEnvBuilder {
        ConnectorEnvBuilder::default()
    }

    /// An environment rooted at `dir` (system clock, no extra directories).
    pub fn with_data_dir(dir: impl Into<PathBuf>) -> Self {
        Self::builder().data_dir(dir).build()
    }

    /// The server's data dir; `None` only in connector unit tests.
    pub fn data_dir(&self) -> Option<&Path> {
        self.inner.data_dir.as_deref()
    }

    /// The operator's `--instance-id`, if given.
    pub fn instance_id(&self) -> Option<&str> {
        self.inner.instance_id.as_deref()
    }

    /// What tells this Oort instance from others sharing a broker, stable
    /// across its restarts: the `--instance-id`, else the data dir's
    /// canonical path. Connectors derive per-instance names from it (the
    /// MQTT source's persistent-session client ids). `None` only in
    /// connector unit tests.
    pub fn instance_key(&self) -> Option<String> {
        if let Some(id) = &self.inner.instance_id {
            return Some(format!("id:{id}"));
        }
        let dir = self.data_dir()?;
        Some(
            std::fs::canonicalize(dir)
                .unwrap_or_else(|_| dir.to_path_buf())
                .display()
                .to_string(),
        )
    }

    /// A server setting (see [`ConnectorEnvBuilder::setting`]).
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.inner.settings.get(key).map(String::as_str)
    }

    /// The operator's extra directories for file connectors.
    pub fn allowed_dirs(&self) -> &[PathBuf] {
        &self.inner.allowed_dirs
    }

    /// `path` as configured: absolute as is, relative against the data dir
    /// (against the process directory when there is none).
    pub fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        match self.data_dir() {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.to_path_buf(),
        }
    }

    /// The one pool of type `T` in this environment, created on first use.
    /// Connectors keep what they share between instances here (open
    /// connections by profile, the memory bus).
    pub fn pool<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        let mut g = self.inner.pools.lock();
        let any = g
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()) as Arc<dyn Any + Send + Sync>)
            .clone();
        drop(g);
        match any.downcast::<T>() {
            Ok(t) => t,
            // Unreachable: the map is keyed by the type id of its values.
            Err(_) => Arc::new(T::default()),
        }
    }

    /// Physical links opened for connection profiles (`GET /connections`).
    pub fn links(&self) -> &SharedLinks {
        &self.inner.links
    }

    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    pub fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Counter(std::sync::atomic::AtomicUsize);

    #[test]
    fn pools_are_per_environment_and_per_type() {
        let a = ConnectorEnv::default();
        let b = ConnectorEnv::default();
        a.pool::<Counter>()
            .0
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(a.pool::<Counter>().0.load(Ordering::Relaxed), 1);
        assert_eq!(b.pool::<Counter>().0.load(Ordering::Relaxed), 0);
        assert!(Arc::ptr_eq(
            &a.pool::<Counter>(),
            &a.clone().pool::<Counter>()
        ));
    }

    use std::sync::atomic::Ordering;

    struct Fixed;
    impl Clock for Fixed {
        fn now_ms(&self) -> i64 {
            42
        }
    }

    #[test]
    fn resolves_paths_and_reads_the_clock() {
        let env = ConnectorEnv::builder()
            .data_dir("/srv/oort")
            .clock(Arc::new(Fixed))
            .build();
        assert_eq!(env.resolve("a/b"), PathBuf::from("/srv/oort/a/b"));
        assert_eq!(env.resolve("/x"), PathBuf::from("/x"));
        assert_eq!(env.now_ms(), 42);
        assert_eq!(ConnectorEnv::default().resolve("a"), PathBuf::from("a"));
    }
}
