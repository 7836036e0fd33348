//! A live sink instance: `write` lowered straight from borrowed rows
//! ([`MessageRef`], [`MetaRef`]: no owned copy of each payload), partial
//! writes, `flush`, `close`.

use super::*;

/// A sink write that failed part-way.
#[derive(Debug)]
pub struct PartialWrite {
    pub accepted: u32,
    pub error: ConnectorError,
}

/// One `types.message` record lowered straight from borrowed bytes: the
/// same WIT type as [`WitMessage`], without copying each payload into an
/// owned `Vec` first (the canonical ABI copies it into guest memory anyway).
#[derive(Debug, Clone, Copy, ComponentType, Lower)]
#[component(record)]
pub struct MessageRef<'a> {
    pub payload: &'a [u8],
    pub meta: MetaRef<'a>,
    #[component(name = "timestamp-ms")]
    pub timestamp_ms: Option<u64>,
}

/// A message's `meta` (`list<tuple<string, string>>`), lowered exactly as
/// the slice is, except that an empty list (what sinks send) is written as
/// `(align, 0)` without calling the guest's `cabi_realloc` for 0 bytes.
/// wit-bindgen's Rust and C bindings answer that call with this same
/// dangling, aligned pointer and never free a 0-length list (checked in their
/// generated code); the Python (componentize-py) and C example sinks pass
/// with it in CI; JavaScript sinks are not tested. The call was one guest
/// entry per message, about a sixth of a message's crossing.
#[derive(Debug, Clone, Copy)]
pub struct MetaRef<'a>(pub &'a [(String, String)]);

type MetaSlice = [(String, String)];

// SAFETY: same canonical ABI type, layout and type check as `[(String, String)]`.
#[allow(unsafe_code)]
unsafe impl ComponentType for MetaRef<'_> {
    type Lower = <MetaSlice as ComponentType>::Lower;
    const ABI: wasmtime::component::__internal::CanonicalAbiInfo =
        <MetaSlice as ComponentType>::ABI;
    fn typecheck(
        ty: &wasmtime::component::__internal::InterfaceType,
        types: &wasmtime::component::__internal::InstanceType<'_>,
    ) -> wasmtime::Result<()> {
        <MetaSlice as ComponentType>::typecheck(ty, types)
    }
}

/// The pointer an empty list gets: the element alignment (never 0, aligned).
const EMPTY_META_PTR: u32 = <(String, String) as ComponentType>::ALIGN32;

// SAFETY: non-empty lists are lowered by the slice's own implementation; an
// empty one writes the pointer pair the slice would write after a 0-byte
// `realloc` returning the aligned dangling pointer.
#[allow(unsafe_code)]
unsafe impl Lower for MetaRef<'_> {
    fn linear_lower_to_flat<T>(
        &self,
        cx: &mut wasmtime::component::__internal::LowerContext<'_, T>,
        ty: wasmtime::component::__internal::InterfaceType,
        dst: &mut std::mem::MaybeUninit<Self::Lower>,
    ) -> wasmtime::Result<()> {
        if !self.0.is_empty() {
            return self.0.linear_lower_to_flat(cx, ty, dst);
        }
        dst.write([
            wasmtime::ValRaw::i64(i64::from(EMPTY_META_PTR)),
            wasmtime::ValRaw::i64(0),
        ]);
        Ok(())
    }

    fn linear_lower_to_memory<T>(
        &self,
        cx: &mut wasmtime::component::__internal::LowerContext<'_, T>,
        ty: wasmtime::component::__internal::InterfaceType,
        offset: usize,
    ) -> wasmtime::Result<()> {
        if !self.0.is_empty() {
            return self.0.linear_lower_to_memory(cx, ty, offset);
        }
        *cx.get::<4>(offset) = EMPTY_META_PTR.to_le_bytes();
        *cx.get::<4>(offset + 4) = 0u32.to_le_bytes();
        Ok(())
    }
}

impl<'a> From<&'a WitMessage> for MessageRef<'a> {
    fn from(m: &'a WitMessage) -> Self {
        MessageRef {
            payload: &m.payload,
            meta: MetaRef(&m.meta),
            timestamp_ms: m.timestamp_ms,
        }
    }
}

/// What the guest's `write` returns.
type WriteResult = Result<(), WitWriteFailure>;

/// One live sink instance.
pub struct SinkInstance {
    pub(super) inner: Inst,
    pub(super) bindings: SinkPlugin,
    /// `write` checked against [`MessageRef`] (on the first write).
    pub(super) write_checked: bool,
}

impl SinkInstance {
    /// This instance's metrics for the rule status (`plugin_calls_total`...).
    pub fn metrics(&self) -> [(&'static str, f64); 5] {
        self.inner.metrics()
    }

    pub fn is_dead(&self) -> bool {
        self.inner.dead.is_some()
    }

    pub async fn describe(&mut self) -> Result<WitPluginInfo, ConnectorError> {
        let t = self.inner.limits.call_timeout;
        Ok(call!(self, "describe", t, |b, s| b
            .oort_connector_sink()
            .call_describe(s)))
    }

    pub async fn validate(&mut self, props_json: &str) -> Result<(), ConnectorError> {
        let t = self.inner.limits.call_timeout;
        let r = call!(self, "validate", t, |b, s| b
            .oort_connector_sink()
            .call_validate(s, props_json));
        r.map_err(|e| plugin_error(&self.inner.plugin, e))
    }

    pub async fn open(&mut self, ctx: &WitContext, props_json: &str) -> Result<(), ConnectorError> {
        let t = self.inner.limits.open_timeout;
        let r = call!(self, "open", t, |b, s| b
            .oort_connector_sink()
            .call_open(s, ctx, props_json));
        r.map_err(|e| plugin_error(&self.inner.plugin, e))
    }

    /// Writes a batch. `Err(Ok(partial))` is a plugin-reported failure,
    /// `Err(Err(e))` a dead instance.
    pub async fn write(
        &mut self,
        batch: &[WitMessage],
    ) -> Result<(), Result<PartialWrite, ConnectorError>> {
        let refs: Vec<MessageRef<'_>> = batch.iter().map(MessageRef::from).collect();
        self.write_refs(&refs).await
    }

    /// [`SinkInstance::write`] from borrowed payloads (the runtime's own
    /// buffers): each payload is copied once, into guest memory.
    pub async fn write_refs(
        &mut self,
        batch: &[MessageRef<'_>],
    ) -> Result<(), Result<PartialWrite, ConnectorError>> {
        let typed = self.write_func().map_err(Err)?;
        let t = self.inner.limits.call_timeout;
        let r = (async {
            Ok::<_, ConnectorError>(call!(self, "write", t, |_b, s| async move {
                typed.call_async(s, (batch,)).await.map(|(r,)| r)
            }))
        })
        .await
        .map_err(Err)?;
        r.map_err(|f| {
            Ok(PartialWrite {
                accepted: f.accepted,
                error: plugin_error(&self.inner.plugin, f.error),
            })
        })
    }

    /// The guest's `write` typed for borrowed messages. The type check (the
    /// bindings checked `write` against the WIT; this checks the borrowed
    /// record against it, a host bug if it fails) runs on the first write
    /// only: it costs about as much as lowering a dozen messages.
    fn write_func<'m>(
        &mut self,
    ) -> Result<TypedFunc<(&'m [MessageRef<'m>],), (WriteResult,)>, ConnectorError> {
        let func = *self.bindings.oort_connector_sink().func_write().func();
        if !self.write_checked {
            func.typed::<(&[MessageRef<'_>],), (WriteResult,)>(&self.inner.store)
                .map_err(|e| {
                    ConnectorError::Fatal(format!(
                        "plugin {}: write: host message type: {e:#}",
                        self.inner.plugin
                    ))
                })?;
            self.write_checked = true;
        }
        // SAFETY: `func` (this instance's `write`, which never changes) passed
        // `Func::typed` with these very parameter and result types just now or
        // on an earlier call; lifetimes do not change the ABI. This is what the
        // generated bindings do for every export.
        #[allow(unsafe_code)]
        let typed = unsafe { TypedFunc::new_unchecked(func) };
        Ok(typed)
    }

    pub async fn flush(&mut self) -> Result<(), ConnectorError> {
        let t = self.inner.limits.call_timeout;
        let r = call!(self, "flush", t, false, |b, s| b
            .oort_connector_sink()
            .call_flush(s));
        r.map_err(|e| plugin_error(&self.inner.plugin, e))
    }

    pub async fn close(&mut self) -> Result<(), ConnectorError> {
        if self.is_dead() {
            return Ok(());
        }
        let t = self.inner.limits.call_timeout;
        let r = call!(self, "close", t, false, |b, s| b
            .oort_connector_sink()
            .call_close(s));
        r.map_err(|e| plugin_error(&self.inner.plugin, e))
    }
}
