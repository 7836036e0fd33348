//! The wasmtime side: one `Engine` with an epoch ticker thread that runs
//! only while a plugin call is under way ([`crate::ticker`]), the shared
//! `Linker` (WASI 0.2 + `oort:connector/host`), precompilation, per-instance
//! stores (memory limit, per-call deadline, WASI context built from the
//! plugin's effective grants, stdout/stderr into the log) and the guarded
//! call helper that turns traps and deadlines into `ConnectorError::Fatal`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskCx, Poll};
use std::time::{Duration, Instant};

use oort_core::ConnectorError;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, Store, StoreLimitsBuilder, UpdateDeadline,
};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::source_world::oort::connector::{host, types};
use crate::bindings::{Level, WitError, WitErrorKind};
use crate::config::Grants;
use crate::grants::SocketPolicy;
use crate::isolation::{LogLimiter, StoreCaps};
use crate::stats::{CallStats, Limits};
use tokio_util::sync::CancellationToken;

pub use crate::ticker::EPOCH_TICK;
use crate::ticker::{TickHold, Ticker};

/// Which compiler produced a runtime's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Winch: compiles several times faster, runs slower. Used so that the
    /// install of a large component finishes quickly; the optimised code
    /// replaces it in the background.
    Baseline,
    /// Cranelift with optimisations: what plugins normally run on.
    Optimized,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Baseline => "baseline",
            Tier::Optimized => "optimized",
        }
    }
}

/// Engine + linker shared by every plugin.
pub struct Runtime {
    pub engine: Engine,
    pub tier: Tier,
    pub linker: Linker<PluginState>,
    /// Changes whenever a cached `.cwasm` would no longer load (wasmtime version, settings, rustc).
    pub engine_key: String,
    ticker: Arc<Ticker>,
}

impl Runtime {
    pub fn new(pooling: bool, memory_limit: usize) -> wasmtime::Result<Arc<Runtime>> {
        Self::with_tier(pooling, memory_limit, Tier::Optimized)
    }

    pub fn with_tier(
        pooling: bool,
        memory_limit: usize,
        tier: Tier,
    ) -> wasmtime::Result<Arc<Runtime>> {
        let mut cfg = Config::new();
        cfg.wasm_component_model(true);
        cfg.epoch_interruption(true);
        if tier == Tier::Baseline {
            cfg.strategy(wasmtime::Strategy::Winch);
        }
        if pooling {
            let mut pool = wasmtime::PoolingAllocationConfig::default();
            pool.total_component_instances(256)
                .total_memories(256)
                .total_tables(512)
                .total_stacks(256)
                .total_core_instances(1024)
                .max_memory_size(memory_limit);
            cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&cfg)?;
        let mut linker = Linker::<PluginState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        crate::bindings::source_world::SourcePlugin::add_to_linker::<
            PluginState,
            HasSelf<PluginState>,
        >(&mut linker, |s| s)?;
        crate::bindings::v2::source_world::SourcePlugin::add_to_linker::<
            PluginState,
            HasSelf<PluginState>,
        >(&mut linker, |s| s)?;
        let engine_key = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut h);
            "wasmtime-48.0.8".hash(&mut h);
            tier.as_str().hash(&mut h);
            format!("{:016x}", h.finish())
        };
        let ticker = Ticker::start(engine.clone())?;
        Ok(Arc::new(Runtime {
            engine,
            tier,
            linker,
            engine_key,
            ticker,
        }))
    }

    /// Compiles a component to wasmtime's native artifact (`.cwasm`).
    pub fn precompile(&self, wasm: &[u8]) -> wasmtime::Result<Vec<u8>> {
        let r = self.engine.precompile_component(wasm);
        release_free_heap();
        r
    }

    /// Loads an artifact produced by [`Runtime::precompile`] on this engine.
    /// Loads a precompiled component from the cache by mapping the file, so
    /// its code pages are shared, file-backed and only resident once used.
    pub fn load_precompiled_file(&self, path: &std::path::Path) -> wasmtime::Result<Component> {
        // SAFETY: the file is a cache entry this host wrote with `precompile`
        // under its own data dir (atomically, by rename); wasmtime checks that
        // the artifact matches this engine's version and settings.
        #[allow(unsafe_code)]
        unsafe {
            Component::deserialize_file(&self.engine, path)
        }
    }

    pub fn load_precompiled(&self, cwasm: &[u8]) -> wasmtime::Result<Component> {
        // SAFETY: `cwasm` is only ever bytes this host produced with
        // `precompile` (in memory, or read back from its own cache directory
        // under the data dir); wasmtime additionally checks that the artifact
        // matches this engine's version and settings.
        #[allow(unsafe_code)]
        unsafe {
            Component::deserialize(&self.engine, cwasm)
        }
    }
}

/// Gives the allocator's free pages back to the OS. Compiling a component
/// allocates tens of MB that glibc keeps after they are freed: without this
/// a first start, which compiles the built-in plugins, stays ~20 MB larger
/// than every later start (which maps the compiled cache).
fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of glibc's arenas; it
    // touches no live allocation and is thread-safe.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

/// Per-instance store data.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: Limits,
    deadline: Option<Instant>,
    /// Keeps the epoch advancing while a call is under way ([`arm`]).
    ticker: Arc<Ticker>,
    tick: Option<TickHold>,
    /// Cancelled when the rule (or shared stream) using this instance stops.
    cancel: Option<CancellationToken>,
    /// How long the call under way may go on once it sees `cancel` fired
    /// (`None`: to its deadline, as `flush` and `close`, which let a
    /// stopping rule finish; see [`STOP_AT_ONCE`], [`READ_STOP_GRACE`]).
    stop_grace: Option<Duration>,
    /// When the call under way first saw `cancel` fired.
    stop_seen: Option<Instant>,
    plugin: Arc<str>,
    node: Arc<str>,
    log: Arc<LogLimiter>,
    http_ctx: wasmtime_wasi_http::WasiHttpCtx,
    http: crate::http::HttpHooks,
}

impl PluginState {
    /// The largest linear memory of this instance so far, bytes.
    pub fn memory_peak(&self) -> u64 {
        self.limits.peak
    }

    /// True when the instance's rule was stopped (its cancel token fired).
    pub fn stopped(&self) -> bool {
        self.cancel.as_ref().is_some_and(|c| c.is_cancelled())
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for PluginState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            hooks: &mut self.http,
            table: &mut self.table,
            ctx: &mut self.http_ctx,
        }
    }
}

impl types::Host for PluginState {}
impl crate::bindings::v2::source_world::oort::connector::types::Host for PluginState {}

impl crate::bindings::v2::source_world::oort::connector::host::Host for PluginState {
    fn log(&mut self, level: crate::bindings::v2::Level, message: String) {
        host::Host::log(self, level.into(), message)
    }
}

impl host::Host for PluginState {
    fn log(&mut self, level: Level, message: String) {
        if !self.log.admit() {
            return;
        }
        let (p, n) = (&*self.plugin, &*self.node);
        match level {
            Level::Trace => tracing::trace!(plugin = p, node = n, "{message}"),
            Level::Debug => tracing::debug!(plugin = p, node = n, "{message}"),
            Level::Info => tracing::info!(plugin = p, node = n, "{message}"),
            Level::Warn => tracing::warn!(plugin = p, node = n, "{message}"),
            Level::Error => tracing::error!(plugin = p, node = n, "{message}"),
        }
    }
}

/// What a new store needs: limits and the sandbox of one plugin.
#[derive(Clone)]
pub struct Sandbox {
    pub plugin: Arc<str>,
    pub memory_limit: usize,
    pub caps: StoreCaps,
    pub effective: Grants,
    pub policy: SocketPolicy,
    /// Shared by every instance of the plugin: its log rate and drop count.
    pub log: Arc<LogLimiter>,
    /// Shared by every instance of the plugin: its export calls.
    pub stats: Arc<CallStats>,
}

impl Sandbox {
    pub fn new(
        plugin: Arc<str>,
        memory_limit: usize,
        caps: StoreCaps,
        effective: Grants,
    ) -> Sandbox {
        let policy = SocketPolicy::new(plugin.clone(), &effective);
        Sandbox {
            log: Arc::new(LogLimiter::new(plugin.clone(), caps.log_lines_per_sec)),
            stats: Arc::default(),
            plugin,
            memory_limit,
            caps,
            effective,
            policy,
        }
    }

    /// A fresh store: nothing granted beyond clocks and random unless the
    /// effective grants say so. Granted directories are resolved again
    /// first; one that now leads elsewhere refuses the instance.
    pub fn store(
        &self,
        rt: &Runtime,
        node: &str,
        cancel: Option<CancellationToken>,
    ) -> Result<Store<PluginState>, String> {
        crate::grants::recheck_dirs(&self.effective.dirs)?;
        let node: Arc<str> = Arc::from(node);
        let mut b = WasiCtxBuilder::new();
        b.stdout(LogStream {
            plugin: self.plugin.clone(),
            node: node.clone(),
            stderr: false,
            log: self.log.clone(),
        });
        b.stderr(LogStream {
            plugin: self.plugin.clone(),
            node: node.clone(),
            stderr: true,
            log: self.log.clone(),
        });
        for name in &self.effective.env {
            if let Ok(v) = std::env::var(name) {
                b.env(name, v);
            }
        }
        for dir in &self.effective.dirs {
            b.preopened_dir(dir, dir, wasmtime_wasi::FsPerms::ReadOnly)
                .map_err(|e| format!("cannot pre-open granted directory {dir}: {e}"))?;
        }
        // Sockets can always be created; every bind, connect and send goes
        // through the policy below, which refuses what was not granted and
        // logs each refusal with its address (a plugin with no grant at all
        // included). Name lookups stay off unless a granted pattern needs them.
        b.allow_tcp(true);
        b.allow_udp(true);
        b.allow_ip_name_lookup(self.policy.needs_dns());
        let http = crate::http::HttpHooks {
            policy: self.policy.clone(),
            caps: self.caps.http,
        };
        let policy = self.policy.clone();
        b.socket_addr_check(move |addr, usage| {
            let policy = policy.clone();
            Box::pin(async move { policy.check(addr, usage).await })
        });
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.memory_limit)
            .table_elements(self.caps.table_elements)
            .tables(self.caps.tables)
            .memories(self.caps.memories)
            .instances(self.caps.core_instances)
            .trap_on_grow_failure(true)
            .build();
        let state = PluginState {
            wasi: b.build(),
            table: ResourceTable::new(),
            limits: Limits {
                caps: limits,
                stats: self.stats.clone(),
                peak: 0,
            },
            deadline: None,
            ticker: rt.ticker.clone(),
            tick: None,
            cancel,
            stop_grace: STOP_AT_ONCE,
            stop_seen: None,
            plugin: self.plugin.clone(),
            node,
            log: self.log.clone(),
            http_ctx: wasmtime_wasi_http::WasiHttpCtx::new(),
            http,
        };
        let mut store = Store::new(&rt.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut cx| {
            let s = cx.data_mut();
            let now = Instant::now();
            let stopped = s.stopped();
            Ok(match (s.deadline, s.stop_grace) {
                (Some(d), _) if now > d => UpdateDeadline::Interrupt,
                (Some(_), Some(grace)) if stopped => {
                    let seen = *s.stop_seen.get_or_insert(now);
                    if now.duration_since(seen) >= grace {
                        UpdateDeadline::Interrupt
                    } else {
                        UpdateDeadline::Yield(1)
                    }
                }
                _ => UpdateDeadline::Yield(1),
            })
        });
        Ok(store)
    }
}

/// Why a guarded call failed.
#[derive(Debug)]
pub enum CallFailure {
    /// Trap, deadline or host-side timeout: the instance must be discarded.
    Dead(String),
}

impl CallFailure {
    /// Whether the call was stopped at its deadline (see [`finish`]'s texts).
    pub fn is_deadline(&self) -> bool {
        let CallFailure::Dead(m) = self;
        m.contains("deadline and was stopped") || m.contains("did not return within")
    }
}

impl From<CallFailure> for ConnectorError {
    fn from(f: CallFailure) -> Self {
        match f {
            CallFailure::Dead(m) => ConnectorError::Fatal(m),
        }
    }
}

/// A call a stopping rule interrupts as soon as the guest runs again.
pub const STOP_AT_ONCE: Option<Duration> = Some(Duration::ZERO);
/// A call a stopping rule lets finish (bounded by its deadline).
pub const STOP_NEVER: Option<Duration> = None;
/// How long a source's `read` may go on after its rule stopped: long
/// enough for a read waiting on its peer to return (so the source is then
/// closed and can say goodbye: a Kafka consumer leaves its group), short
/// enough that a spinning plugin still stops at once for a person.
pub const READ_STOP_GRACE: Duration = Duration::from_millis(500);

/// Arms the per-call deadline checked by the epoch callback. A call armed
/// with [`STOP_AT_ONCE`] also ends within one epoch tick of its rule
/// stopping (one with a grace, that long after it first sees the stop).
pub fn arm(store: &mut Store<PluginState>, limit: Duration, stop_grace: Option<Duration>) {
    let s = store.data_mut();
    s.deadline = Some(Instant::now() + limit);
    s.tick = Some(s.ticker.hold());
    s.stop_grace = stop_grace;
    s.stop_seen = None;
    store.set_epoch_deadline(1);
}

/// Clears the deadline after a call.
pub fn disarm(store: &mut Store<PluginState>) {
    let s = store.data_mut();
    s.deadline = None;
    s.tick = None;
}

/// Awaits one export call started after [`arm`]: the epoch callback
/// interrupts wasm running past `limit`; an outer timeout bounds time spent
/// blocked in host calls. Any failure means the instance must be discarded.
pub async fn finish<R>(
    fut: impl Future<Output = wasmtime::Result<R>>,
    plugin: &str,
    what: &str,
    limit: Duration,
) -> Result<R, CallFailure> {
    let outer = limit + Duration::from_secs(1);
    match tokio::time::timeout(outer, fut).await {
        Err(_) => Err(CallFailure::Dead(format!(
            "plugin {plugin}: {what} did not return within {} ms and was stopped",
            outer.as_millis()
        ))),
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(CallFailure::Dead(describe_trap(plugin, what, limit, &e))),
    }
}

fn describe_trap(plugin: &str, what: &str, limit: Duration, e: &wasmtime::Error) -> String {
    if matches!(
        e.downcast_ref::<wasmtime::Trap>(),
        Some(wasmtime::Trap::Interrupt)
    ) {
        return format!(
            "plugin {plugin}: {what} exceeded its {} ms deadline and was stopped",
            limit.as_millis()
        );
    }
    let text = format!("{e:#}");
    if text.contains("failed to convert function to given type") || text.contains("type mismatch") {
        // The component exports the contract's names with other shapes.
        return format!(
            "plugin {plugin}: {what} failed: its exports do not have the types of the contract version they name (this server serves {}): {text}. It was most likely built against an older or newer wit/ under the same version line (a record such as plugin-info with other fields); rebuild it against the published wit/ of that version (docs/plugins/contract.md)",
            crate::bindings::Contract::served()
        );
    }
    if text.contains("growing memory") || text.contains("memory limit") {
        return format!("plugin {plugin}: {what} trapped: memory limit exceeded ({text})");
    }
    if text.contains("growing table") || text.contains("table limit") {
        return format!("plugin {plugin}: {what} trapped: table limit exceeded ({text})");
    }
    format!("plugin {plugin}: {what} trapped: {text}")
}

/// Maps a plugin-reported error to what the runtime does next.
pub fn plugin_error(plugin: &str, e: WitError) -> ConnectorError {
    let msg = format!("plugin {plugin}: {}", e.message);
    match e.kind {
        WitErrorKind::Config | WitErrorKind::Unauthorized => ConnectorError::Config(msg),
        WitErrorKind::Unavailable => ConnectorError::Unavailable(msg),
        WitErrorKind::InvalidData => ConnectorError::InvalidData(msg),
        WitErrorKind::Internal => ConnectorError::Fatal(msg),
    }
}

/// Guest stdout/stderr: complete lines go to the log, labelled with plugin and node.
struct LogStream {
    plugin: Arc<str>,
    node: Arc<str>,
    stderr: bool,
    log: Arc<LogLimiter>,
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LogWriter {
            plugin: self.plugin.clone(),
            node: self.node.clone(),
            stderr: self.stderr,
            buf: Vec::new(),
            log: self.log.clone(),
        })
    }
}

struct LogWriter {
    plugin: Arc<str>,
    node: Arc<str>,
    stderr: bool,
    buf: Vec<u8>,
    log: Arc<LogLimiter>,
}

const MAX_LINE: usize = 4096;

impl LogWriter {
    fn emit(&self, line: &[u8]) {
        if line.trim_ascii().is_empty() || !self.log.admit() {
            return;
        }
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        let (p, n) = (&*self.plugin, &*self.node);
        if self.stderr {
            tracing::warn!(plugin = p, node = n, stream = "stderr", "{text}");
        } else {
            tracing::info!(plugin = p, node = n, stream = "stdout", "{text}");
        }
    }
}

impl tokio::io::AsyncWrite for LogWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut TaskCx<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.buf.extend_from_slice(data);
        while let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            self.emit(&line);
        }
        if self.buf.len() > MAX_LINE {
            let line = std::mem::take(&mut self.buf);
            self.emit(&line);
        }
        Poll::Ready(Ok(data.len()))
    }
    fn poll_flush(mut self: Pin<&mut Self>, _cx: &mut TaskCx<'_>) -> Poll<std::io::Result<()>> {
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            self.emit(&line);
        }
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            self.emit(&line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What wasmtime says when an export's types differ from the host's
    /// (a component built against another version of `wit/`) becomes a
    /// message that names the contract and the likely cause.
    #[test]
    fn a_type_mismatch_is_reported_as_a_stale_contract() {
        let e = wasmtime::Error::msg(
            "type mismatch with results: expected record of 5 fields, found 3 fields",
        )
        .context("failed to convert function to given type");
        let m = describe_trap("old", "instantiate", Duration::from_secs(5), &e);
        assert!(m.contains("oort:connector@0.1.0"), "{m}");
        assert!(m.contains("older or newer wit/"), "{m}");
        assert!(m.contains("expected record of 5 fields"), "{m}");
        // Other traps keep their own texts.
        let m = describe_trap(
            "p",
            "read",
            Duration::from_secs(5),
            &wasmtime::Trap::Interrupt.into(),
        );
        assert!(m.contains("deadline"), "{m}");
        assert!(CallFailure::Dead(m).is_deadline());
    }
}
