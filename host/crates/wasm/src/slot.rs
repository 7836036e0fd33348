//! `PluginSlot`: where a registered factory finds the current version of its
//! plugin. Upgrades swap the content; deletes empty it. A slot can also hold
//! a loader instead of a plugin: installed plugins are registered at start-up
//! without touching their compiled code, and the first stream or rule that
//! uses one loads it (the cached artifact is mapped from disk then). Idle
//! servers with many installed plugins stay small and start fast.

use std::sync::Arc;

use oort_core::{ConnectorError, ConnectorInfo};
use parking_lot::{Mutex, RwLock};

use crate::plugin::LoadedPlugin;

/// Produces the loaded plugin on first use; `Err` is the reason it cannot load.
pub type Loader = Box<dyn FnOnce() -> Result<LoadedPlugin, String> + Send>;

#[derive(Default)]
pub struct PluginSlot {
    current: RwLock<Option<Arc<LoadedPlugin>>>,
    /// Held while a lazy load runs, so concurrent first uses load once.
    loader: Mutex<Option<Loader>>,
    /// Why the last lazy load failed.
    error: RwLock<Option<String>>,
    /// What the factory declares (description, property schema), from the
    /// installed package; replaced with the plugin on upgrades.
    info: RwLock<ConnectorInfo>,
}

impl PluginSlot {
    pub fn new(p: Arc<LoadedPlugin>) -> Arc<PluginSlot> {
        let s = PluginSlot::default();
        *s.current.write() = Some(p);
        Arc::new(s)
    }

    /// A slot that loads its plugin when first asked for it.
    pub fn lazy(loader: Loader) -> Arc<PluginSlot> {
        let s = PluginSlot::default();
        *s.loader.lock() = Some(loader);
        Arc::new(s)
    }

    /// The current plugin, loading it first if this slot is lazy. `None`
    /// when it was deleted or could not be loaded (see [`PluginSlot::error`]).
    pub fn get(&self) -> Option<Arc<LoadedPlugin>> {
        if let Some(p) = self.current.read().clone() {
            return Some(p);
        }
        let mut pending = self.loader.lock();
        // Another caller may have finished the load while we waited.
        if let Some(p) = self.current.read().clone() {
            return Some(p);
        }
        let load = pending.take()?;
        match load() {
            Ok(p) => {
                let p = Arc::new(p);
                *self.current.write() = Some(p.clone());
                Some(p)
            }
            Err(e) => {
                tracing::error!("wasm plugin: cannot load: {e}");
                *self.error.write() = Some(e);
                None
            }
        }
    }

    /// [`PluginSlot::get`] for factories: the error names the plugin and
    /// says why it is unusable (deleted, or failed to load).
    pub fn require(&self, kind: &str, name: &str) -> Result<Arc<LoadedPlugin>, ConnectorError> {
        self.get().ok_or_else(|| {
            ConnectorError::Config(match self.error() {
                Some(e) => format!("{kind} plugin {name} cannot be loaded: {e}"),
                None => format!("{kind} plugin {name} is not installed"),
            })
        })
    }

    /// The plugin if it is loaded already; never triggers a load.
    pub fn peek(&self) -> Option<Arc<LoadedPlugin>> {
        self.current.read().clone()
    }

    /// True when a lazy load is still pending.
    pub fn is_pending(&self) -> bool {
        self.loader.lock().is_some()
    }

    /// Why the lazy load failed, if it did.
    pub fn error(&self) -> Option<String> {
        self.error.read().clone()
    }

    /// Replaces `old` by `new` if `old` is still the content (a later
    /// upgrade or delete wins). True when swapped.
    pub fn replace_if(&self, old: &Arc<LoadedPlugin>, new: Arc<LoadedPlugin>) -> bool {
        let _pending = self.loader.lock();
        let mut cur = self.current.write();
        if cur.as_ref().is_some_and(|c| Arc::ptr_eq(c, old)) {
            *cur = Some(new);
            true
        } else {
            false
        }
    }

    /// The connector declaration of the plugin in this slot.
    pub fn info(&self) -> ConnectorInfo {
        self.info.read().clone()
    }

    pub fn set_info(&self, info: ConnectorInfo) {
        *self.info.write() = info;
    }

    /// Replaces the content (upgrade) or empties it (delete); drops a
    /// pending loader and a previous load error.
    pub fn set(&self, p: Option<Arc<LoadedPlugin>>) {
        let mut pending = self.loader.lock();
        *pending = None;
        *self.error.write() = None;
        *self.current.write() = p;
    }
}
