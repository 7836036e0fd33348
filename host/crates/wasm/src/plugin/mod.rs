//! A loaded plugin (compiled component + cached `InstancePre` + sandbox) and
//! its live instances: one store and one component instance per connector
//! node, every export call under a deadline, and an instance that trapped is
//! never called again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use oort_core::ConnectorError;
use tokio_util::sync::CancellationToken;
use wasmtime::component::{Component, ComponentType, Lower, TypedFunc};
use wasmtime::Store;

use crate::bindings::sink_world::exports::oort::connector::sink::WriteFailure as WitWriteFailure;
use crate::bindings::sink_world::{SinkPlugin, SinkPluginPre};
use crate::bindings::source_world::exports::oort::connector::source::ReadOutcome;
use crate::bindings::source_world::{SourcePlugin, SourcePluginPre};
use crate::bindings::v2::sink_world::{SinkPlugin as SinkPlugin2, SinkPluginPre as SinkPluginPre2};
use crate::bindings::v2::source_world::exports::oort::connector::source::ReadOutcome as ReadOutcome2;
use crate::bindings::v2::source_world::{
    SourcePlugin as SourcePlugin2, SourcePluginPre as SourcePluginPre2,
};
use crate::bindings::{v2, Contract, WitContext, WitMessage, WitPluginInfo};
use crate::config::{Grants, WasmConfig};
use crate::isolation::{on_guest_pool, on_guest_pool_blocking, StoreCaps};
use crate::manifest::{Limits, PluginKind};
use crate::runtime::{
    arm, disarm, finish, plugin_error, CallFailure, PluginState, Runtime, Sandbox, READ_STOP_GRACE,
    STOP_AT_ONCE, STOP_NEVER,
};

enum Pre {
    Source(SourcePluginPre<PluginState>),
    Sink(SinkPluginPre<PluginState>),
    Source2(SourcePluginPre2<PluginState>),
    Sink2(SinkPluginPre2<PluginState>),
}

/// A source instance's exports, by contract.
enum SourceBindings {
    V1(SourcePlugin),
    V2(SourcePlugin2),
}

/// A sink instance's exports, by contract.
enum SinkBindings {
    V1(SinkPlugin),
    V2(SinkPlugin2),
}

/// Timeouts and batch sizes that apply to one plugin.
#[derive(Debug, Clone)]
pub struct CallLimits {
    pub call_timeout: Duration,
    pub open_timeout: Duration,
    pub read_wait: Duration,
    pub read_batch: u32,
    pub memory_limit: usize,
    /// Tables, memories, core instances and the log rate of each store.
    pub caps: StoreCaps,
    /// Live instances of one plugin (all rules, streams and validations).
    pub max_instances: usize,
}

impl CallLimits {
    /// Server settings, narrowed (never widened) by the manifest's `limits`.
    pub fn new(cfg: &WasmConfig, m: Option<&Limits>) -> CallLimits {
        let mut l = CallLimits {
            call_timeout: cfg.call_timeout,
            open_timeout: cfg.open_timeout,
            read_wait: cfg.read_wait,
            read_batch: cfg.read_batch.max(1),
            memory_limit: cfg.memory_limit_bytes,
            caps: cfg.caps,
            max_instances: cfg.max_instances_per_plugin.max(1),
        };
        if let Some(m) = m {
            if let Some(mib) = m.memory_mib {
                l.memory_limit = l.memory_limit.min((mib as usize).saturating_mul(1 << 20));
            }
            if let Some(ms) = m.call_timeout_ms {
                l.call_timeout = l.call_timeout.min(Duration::from_millis(ms));
            }
            if let Some(ms) = m.open_timeout_ms {
                l.open_timeout = l.open_timeout.min(Duration::from_millis(ms));
            }
        }
        l
    }
}

/// An installed, compiled plugin ready to instantiate.
pub struct LoadedPlugin {
    pub name: Arc<str>,
    pub kind: PluginKind,
    pub version: String,
    /// The contract version the component exports.
    pub contract: Contract,
    pub limits: CallLimits,
    runtime: Arc<Runtime>,
    pre: Pre,
    sandbox: Sandbox,
    live: Arc<AtomicUsize>,
}

impl LoadedPlugin {
    /// The compiler tier of its code.
    pub fn tier(&self) -> crate::runtime::Tier {
        self.runtime.tier
    }

    /// Links the component (every import must be satisfiable) and checks it
    /// exports the interface of `kind`. Errors are user-facing messages.
    pub fn new(
        runtime: Arc<Runtime>,
        component: &Component,
        kind: PluginKind,
        name: &str,
        version: &str,
        effective: Grants,
        limits: CallLimits,
    ) -> Result<LoadedPlugin, String> {
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(&runtime.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let Some(contract) = Contract::ALL
            .into_iter()
            .find(|c| exports.iter().any(|e| e == c.export(kind)))
        else {
            let found = if exports.is_empty() {
                "nothing".to_string()
            } else {
                exports.join(", ")
            };
            return Err(format!(
                "wrong world or version: a {kind} plugin must export {} (world {} or {}), this component exports {found}",
                Contract::accepted_exports(kind),
                Contract::LATEST.world(kind),
                Contract::V0_1.world(kind),
            ));
        };
        let ipre = runtime.linker.instantiate_pre(component).map_err(|e| {
            format!("the component's imports cannot be satisfied by the host: {e:#}")
        })?;
        let e = |e: wasmtime::Error| format!("{e:#}");
        let pre = match (kind, contract) {
            (PluginKind::Source, Contract::V0_1) => {
                Pre::Source(SourcePluginPre::new(ipre).map_err(e)?)
            }
            (PluginKind::Sink, Contract::V0_1) => Pre::Sink(SinkPluginPre::new(ipre).map_err(e)?),
            (PluginKind::Source, Contract::V0_2) => {
                Pre::Source2(SourcePluginPre2::new(ipre).map_err(e)?)
            }
            (PluginKind::Sink, Contract::V0_2) => Pre::Sink2(SinkPluginPre2::new(ipre).map_err(e)?),
        };
        let name: Arc<str> = Arc::from(name);
        Ok(LoadedPlugin {
            sandbox: Sandbox::new(name.clone(), limits.memory_limit, limits.caps, effective),
            live: Arc::new(AtomicUsize::new(0)),
            name,
            kind,
            version: version.to_string(),
            contract,
            limits,
            runtime,
            pre,
        })
    }

    pub fn effective_grants(&self) -> &Grants {
        &self.sandbox.effective
    }

    /// Log lines dropped by the plugin's log rate limit since it was loaded.
    pub fn log_lines_dropped(&self) -> u64 {
        self.sandbox.log.dropped()
    }

    /// Export calls of this plugin's instances since it was loaded.
    pub fn call_counts(&self) -> crate::stats::CallCounts {
        self.sandbox.stats.counts()
    }

    /// Live instances right now.
    pub fn live_instances(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// A fresh store, counted against the plugin's instance limit.
    fn new_store(
        &self,
        node: &str,
        cancel: Option<CancellationToken>,
    ) -> Result<(Store<PluginState>, LiveGuard), ConnectorError> {
        let max = self.limits.max_instances;
        let prev = self.live.fetch_add(1, Ordering::AcqRel);
        let guard = LiveGuard(self.live.clone());
        if prev >= max {
            return Err(ConnectorError::Config(format!(
                "plugin {}: instance limit reached ({max} live instances; plugins.max_instances_per_plugin)",
                self.name
            )));
        }
        let store = self
            .sandbox
            .store(&self.runtime, node, cancel)
            .map_err(|m| ConnectorError::Config(format!("plugin {}: {m}", self.name)))?;
        Ok((store, guard))
    }

    fn dead(&self, m: String) -> ConnectorError {
        tracing::error!(plugin = %self.name, "{m}");
        ConnectorError::Fatal(m)
    }

    /// A source instance. `cancel` is the token of the rule or stream it
    /// serves: when it fires, the call under way is interrupted at once.
    pub async fn instantiate_source(
        &self,
        node: &str,
        cancel: Option<CancellationToken>,
    ) -> Result<SourceInstance, ConnectorError> {
        let (mut store, live) = self.new_store(node, cancel)?;
        arm(&mut store, self.limits.call_timeout, STOP_AT_ONCE);
        let t = self.limits.call_timeout;
        let r = match &self.pre {
            Pre::Source(pre) => finish(
                pre.instantiate_async(&mut store),
                &self.name,
                "instantiate",
                t,
            )
            .await
            .map(SourceBindings::V1),
            Pre::Source2(pre) => finish(
                pre.instantiate_async(&mut store),
                &self.name,
                "instantiate",
                t,
            )
            .await
            .map(SourceBindings::V2),
            _ => {
                return Err(ConnectorError::Config(format!(
                    "plugin {} is not a source",
                    self.name
                )))
            }
        };
        disarm(&mut store);
        let bindings = r.map_err(|CallFailure::Dead(m)| self.dead(m))?;
        Ok(SourceInstance {
            inner: Inst::new(self, store, live),
            bindings,
        })
    }

    /// A sink instance; `cancel` as for [`LoadedPlugin::instantiate_source`].
    pub async fn instantiate_sink(
        &self,
        node: &str,
        cancel: Option<CancellationToken>,
    ) -> Result<SinkInstance, ConnectorError> {
        let (mut store, live) = self.new_store(node, cancel)?;
        arm(&mut store, self.limits.call_timeout, STOP_AT_ONCE);
        let t = self.limits.call_timeout;
        let r = match &self.pre {
            Pre::Sink(pre) => finish(
                pre.instantiate_async(&mut store),
                &self.name,
                "instantiate",
                t,
            )
            .await
            .map(SinkBindings::V1),
            Pre::Sink2(pre) => finish(
                pre.instantiate_async(&mut store),
                &self.name,
                "instantiate",
                t,
            )
            .await
            .map(SinkBindings::V2),
            _ => {
                return Err(ConnectorError::Config(format!(
                    "plugin {} is not a sink",
                    self.name
                )))
            }
        };
        disarm(&mut store);
        let bindings = r.map_err(|CallFailure::Dead(m)| self.dead(m))?;
        Ok(SinkInstance {
            inner: Inst::new(self, store, live),
            bindings,
            write_checked: false,
            pack: Default::default(),
        })
    }

    /// `describe` in a throwaway instance, on the guest pool.
    pub async fn describe(self: &Arc<Self>) -> Result<WitPluginInfo, ConnectorError> {
        let me = self.clone();
        on_guest_pool("describe", async move { me.describe_here().await }).await?
    }

    async fn describe_here(&self) -> Result<WitPluginInfo, ConnectorError> {
        match self.kind {
            PluginKind::Source => {
                self.instantiate_source("describe", None)
                    .await?
                    .describe()
                    .await
            }
            PluginKind::Sink => {
                self.instantiate_sink("describe", None)
                    .await?
                    .describe()
                    .await
            }
        }
    }

    /// `validate` in a throwaway instance, on the guest pool.
    pub async fn validate(self: &Arc<Self>, props_json: String) -> Result<(), ConnectorError> {
        let me = self.clone();
        on_guest_pool(
            "validate",
            async move { me.validate_here(&props_json).await },
        )
        .await?
    }

    async fn validate_here(&self, props_json: &str) -> Result<(), ConnectorError> {
        match self.kind {
            PluginKind::Source => {
                self.instantiate_source("validate", None)
                    .await?
                    .validate(props_json)
                    .await
            }
            PluginKind::Sink => {
                self.instantiate_sink("validate", None)
                    .await?
                    .validate(props_json)
                    .await
            }
        }
    }

    /// [`LoadedPlugin::validate`] from synchronous code (factories'
    /// `create`): the guest runs on the guest pool; the caller's thread
    /// waits (a tokio worker hands its other tasks on first).
    pub fn validate_blocking(self: &Arc<Self>, props_json: String) -> Result<(), ConnectorError> {
        let me = self.clone();
        on_guest_pool_blocking(
            "validate",
            async move { me.validate_here(&props_json).await },
        )?
    }

    /// The `context` record handed to `open`.
    /// The `context` of an instance: the rule (a stream, for a source),
    /// the node as the rule status names it, the writer's index.
    pub fn context(&self, rule_id: &str, op_id: &str, instance_index: u32) -> WitContext {
        WitContext {
            rule_id: rule_id.to_string(),
            op_id: op_id.to_string(),
            instance_index,
        }
    }
}

/// Releases one slot of a plugin's instance limit.
struct LiveGuard(Arc<AtomicUsize>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// State common to source and sink instances.
struct Inst {
    plugin: Arc<str>,
    stats: Arc<crate::stats::CallStats>,
    /// This instance's own calls (the rule status shows them per node).
    own: crate::stats::CallStats,
    limits: CallLimits,
    store: Store<PluginState>,
    dead: Option<String>,
    _live: LiveGuard,
}

impl Inst {
    fn new(p: &LoadedPlugin, store: Store<PluginState>, live: LiveGuard) -> Inst {
        Inst {
            plugin: p.name.clone(),
            stats: p.sandbox.stats.clone(),
            own: Default::default(),
            limits: p.limits.clone(),
            store,
            dead: None,
            _live: live,
        }
    }

    /// This instance's calls, and the largest its memory grew to.
    fn metrics(&self) -> [(&'static str, f64); 5] {
        let c = self.own.counts();
        [
            ("plugin_calls_total", c.calls as f64),
            ("plugin_guest_ms", c.guest_ms),
            ("plugin_failures_total", c.failures as f64),
            ("plugin_interruptions_total", c.interruptions as f64),
            (
                "plugin_memory_peak_bytes",
                self.store.data().memory_peak() as f64,
            ),
        ]
    }

    fn check_alive(&self) -> Result<(), ConnectorError> {
        match &self.dead {
            Some(m) => Err(ConnectorError::Fatal(m.clone())),
            None => Ok(()),
        }
    }

    fn kill(&mut self, what: &str, f: CallFailure) -> ConnectorError {
        let CallFailure::Dead(mut m) = f;
        if self.store.data().stopped() {
            m = format!(
                "plugin {}: {what} interrupted because its rule stopped",
                self.plugin
            );
            tracing::info!(plugin = %self.plugin, "{m}");
            self.dead = Some(m.clone());
            // Not a plugin failure: the caller is stopping anyway, and takes
            // `Unavailable` after a cancel as a clean end.
            return ConnectorError::Unavailable(m);
        }
        tracing::error!(plugin = %self.plugin, "{m}");
        self.dead = Some(m.clone());
        ConnectorError::Fatal(m)
    }
}

/// Runs one export call on an instance: deadline armed, trap -> instance dead.
macro_rules! call {
    ($self:ident, $what:literal, $limit:expr, |$b:ident, $s:ident| $e:expr) => {{
        call!($self, $what, $limit, STOP_AT_ONCE, |$b, $s| $e)
    }};
    ($self:ident, $what:literal, $limit:expr, $stop_grace:expr, |$b:ident, $s:ident| $e:expr) => {{
        $self.inner.check_alive()?;
        let limit = $limit;
        arm(&mut $self.inner.store, limit, $stop_grace);
        let $b = &$self.bindings;
        let $s = &mut $self.inner.store;
        let started = std::time::Instant::now();
        let r = finish($e, &$self.inner.plugin, $what, limit).await;
        let took = started.elapsed();
        $self.inner.stats.record(took, r.as_ref().err());
        $self.inner.own.record(took, r.as_ref().err());
        disarm(&mut $self.inner.store);
        match r {
            Ok(v) => v,
            Err(f) => return Err($self.inner.kill($what, f)),
        }
    }};
}

/// One export call on an instance's bindings, whichever contract they
/// are: `$call` runs on that version's interface `$iface`, and a 0.2.0
/// result goes through `$conv` into the 0.1.0 records the host speaks.
macro_rules! either {
    ($b:ident, $bind:ident, $iface:ident, |$i:ident| $call:expr, $conv:expr) => {
        async move {
            match $b {
                $bind::V1(b) => {
                    let $i = b.$iface();
                    $call.await
                }
                $bind::V2(b) => {
                    let $i = b.$iface();
                    $call.await.map($conv)
                }
            }
        }
    };
}

/// A 0.2.0 export's result with its error as 0.1.0's record.
fn v2_err<T>(r: Result<T, v2::Error>) -> Result<T, crate::bindings::WitError> {
    r.map_err(Into::into)
}

/// One live source instance.
pub struct SourceInstance {
    inner: Inst,
    bindings: SourceBindings,
}

/// What one `read` returned, in the shape of the plugin's contract.
#[derive(Debug)]
pub enum Read {
    /// 0.1.0: one record per message.
    Messages(Vec<WitMessage>),
    /// 0.2.0: one buffer for all payloads.
    Packed(v2::Packed),
    EndOfStream,
}

impl Read {
    /// The payloads, whatever the contract (tests and tools; the runtime
    /// takes packed payloads as slices of one buffer).
    pub fn payloads(&self) -> Option<Vec<Vec<u8>>> {
        match self {
            Read::Messages(m) => Some(m.iter().map(|m| m.payload.clone()).collect()),
            Read::Packed(p) => {
                let mut start = 0usize;
                let mut out = Vec::with_capacity(p.ends.len());
                for &e in &p.ends {
                    out.push(p.data.get(start..e as usize)?.to_vec());
                    start = e as usize;
                }
                Some(out)
            }
            Read::EndOfStream => None,
        }
    }
}

impl SourceInstance {
    /// This instance's metrics for the rule status (`plugin_calls_total`...).
    pub fn metrics(&self) -> [(&'static str, f64); 5] {
        self.inner.metrics()
    }

    pub fn is_dead(&self) -> bool {
        self.inner.dead.is_some()
    }

    pub async fn describe(&mut self) -> Result<WitPluginInfo, ConnectorError> {
        let t = self.inner.limits.call_timeout;
        Ok(call!(self, "describe", t, |b, s| either!(
            b,
            SourceBindings,
            oort_connector_source,
            |i| i.call_describe(s),
            Into::into
        )))
    }

    pub async fn validate(&mut self, props_json: &str) -> Result<(), ConnectorError> {
        let t = self.inner.limits.call_timeout;
        let r = call!(self, "validate", t, |b, s| either!(
            b,
            SourceBindings,
            oort_connector_source,
            |i| i.call_validate(s, props_json),
            v2_err
        ));
        r.map_err(|e| plugin_error(&self.inner.plugin, e))
    }

    pub async fn open(
        &mut self,
        ctx: &WitContext,
        props_json: &str,
        resume: Option<&str>,
    ) -> Result<(), ConnectorError> {
        let t = self.inner.limits.open_timeout;
        let r = call!(self, "open", t, |b, s| async move {
            match b {
                SourceBindings::V1(b) => {
                    b.oort_connector_source()
                        .call_open(s, ctx, props_json, resume)
                        .await
                }
                SourceBindings::V2(b) => b
                    .oort_connector_source()
                    .call_open(s, &ctx.into(), props_json, resume)
                    .await
                    .map(|r| r.map_err(Into::into)),
            }
        });
        r.map_err(|e| plugin_error(&self.inner.plugin, e))
    }

    /// `read(max, wait)`; the deadline is the read wait plus the call timeout.
    pub async fn read(&mut self, max: u32, wait: Duration) -> Result<Read, ConnectorError> {
        let t = self.inner.limits.call_timeout + wait;
        let wait_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
        let r = call!(self, "read", t, Some(READ_STOP_GRACE), |b, s| async move {
            match b {
                SourceBindings::V1(b) => b
                    .oort_connector_source()
                    .call_read(s, max, wait_ms)
                    .await
                    .map(|r| {
                        r.map(|o| match o {
                            ReadOutcome::Messages(m) => Read::Messages(m),
                            ReadOutcome::EndOfStream => Read::EndOfStream,
                        })
                    }),
                SourceBindings::V2(b) => b
                    .oort_connector_source()
                    .call_read(s, max, wait_ms)
                    .await
                    .map(|r| {
                        r.map(|o| match o {
                            ReadOutcome2::Messages(p) => Read::Packed(p),
                            ReadOutcome2::EndOfStream => Read::EndOfStream,
                        })
                        .map_err(Into::into)
                    }),
            }
        });
        r.map_err(|e| plugin_error(&self.inner.plugin, e))
    }

    pub async fn offset(&mut self) -> Result<Option<String>, ConnectorError> {
        let t = self.inner.limits.call_timeout;
        let r = call!(self, "offset", t, |b, s| either!(
            b,
            SourceBindings,
            oort_connector_source,
            |i| i.call_offset(s),
            v2_err
        ));
        r.map_err(|e| plugin_error(&self.inner.plugin, e))
    }

    pub async fn commit(&mut self, offset: &str) -> Result<(), ConnectorError> {
        let t = self.inner.limits.call_timeout;
        let r = call!(self, "commit", t, |b, s| either!(
            b,
            SourceBindings,
            oort_connector_source,
            |i| i.call_commit(s, offset),
            v2_err
        ));
        r.map_err(|e| plugin_error(&self.inner.plugin, e))
    }

    pub async fn close(&mut self) -> Result<(), ConnectorError> {
        if self.is_dead() {
            return Ok(());
        }
        let t = self.inner.limits.call_timeout;
        let r = call!(self, "close", t, STOP_NEVER, |b, s| either!(
            b,
            SourceBindings,
            oort_connector_source,
            |i| i.call_close(s),
            v2_err
        ));
        r.map_err(|e| plugin_error(&self.inner.plugin, e))
    }
}

mod sink_inst;
pub use sink_inst::{ListRef, MessageRef, MetaRef, PackedRef, PartialWrite, SinkInstance};

/// The current version of an installed plugin, shared between the manager
/// (which swaps it on upgrade and clears it on delete) and its factory.
pub use crate::slot::PluginSlot;
