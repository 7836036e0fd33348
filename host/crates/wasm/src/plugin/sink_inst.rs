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

/// A list lowered exactly as the slice is, except that an empty list is
/// written as `(align, 0)` without calling the guest's `cabi_realloc` for 0
/// bytes. wit-bindgen's Rust and C bindings answer that call with this same
/// dangling, aligned pointer and never free a 0-length list (checked in their
/// generated code); the Python (componentize-py) and C example sinks pass
/// with it in CI; JavaScript sinks are not tested. The call was one guest
/// entry per message (0.1.0's `meta`) or per batch (0.2.0's optional lists),
/// about a sixth of a message's crossing.
pub struct ListRef<'a, T>(pub &'a [T]);

impl<T> Clone for ListRef<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for ListRef<'_, T> {}
impl<T: std::fmt::Debug> std::fmt::Debug for ListRef<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A message's `meta` (`list<tuple<string, string>>`).
pub type MetaRef<'a> = ListRef<'a, (String, String)>;

// SAFETY: same canonical ABI type, layout and type check as `[T]`.
#[allow(unsafe_code)]
unsafe impl<T: ComponentType> ComponentType for ListRef<'_, T> {
    type Lower = <[T] as ComponentType>::Lower;
    const ABI: wasmtime::component::__internal::CanonicalAbiInfo = <[T] as ComponentType>::ABI;
    fn typecheck(
        ty: &wasmtime::component::__internal::InterfaceType,
        types: &wasmtime::component::__internal::InstanceType<'_>,
    ) -> wasmtime::Result<()> {
        <[T] as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: non-empty lists are lowered by the slice's own implementation; an
// empty one writes the pointer pair the slice would write after a 0-byte
// `realloc` returning the aligned dangling pointer (the element alignment,
// never 0).
#[allow(unsafe_code)]
unsafe impl<T: Lower> Lower for ListRef<'_, T> {
    fn linear_lower_to_flat<U>(
        &self,
        cx: &mut wasmtime::component::__internal::LowerContext<'_, U>,
        ty: wasmtime::component::__internal::InterfaceType,
        dst: &mut std::mem::MaybeUninit<Self::Lower>,
    ) -> wasmtime::Result<()> {
        if !self.0.is_empty() {
            return self.0.linear_lower_to_flat(cx, ty, dst);
        }
        dst.write([
            wasmtime::ValRaw::i64(i64::from(T::ALIGN32)),
            wasmtime::ValRaw::i64(0),
        ]);
        Ok(())
    }

    fn linear_lower_to_memory<U>(
        &self,
        cx: &mut wasmtime::component::__internal::LowerContext<'_, U>,
        ty: wasmtime::component::__internal::InterfaceType,
        offset: usize,
    ) -> wasmtime::Result<()> {
        if !self.0.is_empty() {
            return self.0.linear_lower_to_memory(cx, ty, offset);
        }
        *cx.get::<4>(offset) = T::ALIGN32.to_le_bytes();
        *cx.get::<4>(offset + 4) = 0u32.to_le_bytes();
        Ok(())
    }
}

/// 0.2.0's `types.packed`, lowered from the host's buffers.
#[derive(Debug, Clone, Copy, ComponentType, Lower)]
#[component(record)]
pub struct PackedRef<'a> {
    pub data: ListRef<'a, u8>,
    pub ends: ListRef<'a, u32>,
    pub timestamps: ListRef<'a, u64>,
    pub strings: ListRef<'a, String>,
    pub meta: ListRef<'a, v2::MetaEntry>,
}

/// The buffers a 0.2.0 sink instance packs its batches into (reused).
#[derive(Default)]
pub(super) struct PackBuf {
    data: Vec<u8>,
    ends: Vec<u32>,
    timestamps: Vec<u64>,
    strings: Vec<String>,
    meta: Vec<v2::MetaEntry>,
    interned: std::collections::HashMap<String, u32>,
}

impl PackBuf {
    /// Packs `batch`: payloads back to back, metadata strings interned.
    fn pack(&mut self, batch: &[MessageRef<'_>]) -> Result<PackedRef<'_>, ConnectorError> {
        let too_big = || ConnectorError::InvalidData("a batch over 4 GiB cannot be packed".into());
        self.data.clear();
        self.ends.clear();
        self.timestamps.clear();
        self.strings.clear();
        self.meta.clear();
        self.interned.clear();
        let any_ts = batch.iter().any(|m| m.timestamp_ms.is_some());
        for (i, m) in batch.iter().enumerate() {
            self.data.extend_from_slice(m.payload);
            self.ends
                .push(u32::try_from(self.data.len()).map_err(|_| too_big())?);
            if any_ts {
                self.timestamps.push(m.timestamp_ms.unwrap_or(0));
            }
            for (k, v) in m.meta.0 {
                let message = u32::try_from(i).map_err(|_| too_big())?;
                let key = intern(&mut self.strings, &mut self.interned, k);
                let value = intern(&mut self.strings, &mut self.interned, v);
                self.meta.push(v2::MetaEntry {
                    message,
                    key,
                    value,
                });
            }
        }
        Ok(PackedRef {
            data: ListRef(&self.data),
            ends: ListRef(&self.ends),
            timestamps: ListRef(&self.timestamps),
            strings: ListRef(&self.strings),
            meta: ListRef(&self.meta),
        })
    }
}

fn intern(
    strings: &mut Vec<String>,
    index: &mut std::collections::HashMap<String, u32>,
    s: &str,
) -> u32 {
    if let Some(&i) = index.get(s) {
        return i;
    }
    let i = strings.len() as u32;
    strings.push(s.to_string());
    index.insert(s.to_string(), i);
    i
}

impl<'a> From<&'a WitMessage> for MessageRef<'a> {
    fn from(m: &'a WitMessage) -> Self {
        MessageRef {
            payload: &m.payload,
            meta: ListRef(&m.meta),
            timestamp_ms: m.timestamp_ms,
        }
    }
}

/// What the guest's `write` returns.
type WriteResult = Result<(), WitWriteFailure>;
/// What a 0.2.0 guest's `write` returns.
type WriteResult2 = Result<(), v2::sink_world::exports::oort::connector::sink::WriteFailure>;

/// One live sink instance.
pub struct SinkInstance {
    pub(super) inner: Inst,
    pub(super) bindings: SinkBindings,
    /// `write` checked against [`MessageRef`] or [`PackedRef`] (on the
    /// first write).
    pub(super) write_checked: bool,
    pub(super) pack: PackBuf,
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
        Ok(call!(self, "describe", t, |b, s| either!(
            b,
            SinkBindings,
            oort_connector_sink,
            |i| i.call_describe(s),
            Into::into
        )))
    }

    pub async fn validate(&mut self, props_json: &str) -> Result<(), ConnectorError> {
        let t = self.inner.limits.call_timeout;
        let r = call!(self, "validate", t, |b, s| either!(
            b,
            SinkBindings,
            oort_connector_sink,
            |i| i.call_validate(s, props_json),
            v2_err
        ));
        r.map_err(|e| plugin_error(&self.inner.plugin, e))
    }

    pub async fn open(&mut self, ctx: &WitContext, props_json: &str) -> Result<(), ConnectorError> {
        let t = self.inner.limits.open_timeout;
        let r = call!(self, "open", t, |b, s| async move {
            match b {
                SinkBindings::V1(b) => b.oort_connector_sink().call_open(s, ctx, props_json).await,
                SinkBindings::V2(b) => b
                    .oort_connector_sink()
                    .call_open(s, &ctx.into(), props_json)
                    .await
                    .map(|r| r.map_err(Into::into)),
            }
        });
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
    /// buffers): each payload is copied once into guest memory (0.1.0), or
    /// packed into one buffer that is copied once (0.2.0).
    pub async fn write_refs(
        &mut self,
        batch: &[MessageRef<'_>],
    ) -> Result<(), Result<PartialWrite, ConnectorError>> {
        let t = self.inner.limits.call_timeout;
        let failure = match &self.bindings {
            SinkBindings::V1(b) => {
                let func = *b.oort_connector_sink().func_write().func();
                let typed = self
                    .typed::<(&[MessageRef<'_>],), (WriteResult,)>(func)
                    .map_err(Err)?;
                let r = (async {
                    Ok::<_, ConnectorError>(call!(self, "write", t, |_b, s| async move {
                        typed.call_async(s, (batch,)).await.map(|(r,)| r)
                    }))
                })
                .await
                .map_err(Err)?;
                r.err().map(|f| (f.accepted, f.error))
            }
            SinkBindings::V2(b) => {
                let func = *b.oort_connector_sink().func_write().func();
                let typed = self
                    .typed::<(PackedRef<'_>,), (WriteResult2,)>(func)
                    .map_err(Err)?;
                let mut pack = std::mem::take(&mut self.pack);
                let r = async {
                    let packed = pack.pack(batch)?;
                    Ok::<_, ConnectorError>(call!(self, "write", t, |_b, s| async move {
                        typed.call_async(s, (packed,)).await.map(|(r,)| r)
                    }))
                }
                .await;
                self.pack = pack;
                r.map_err(Err)?.err().map(|f| (f.accepted, f.error.into()))
            }
        };
        match failure {
            None => Ok(()),
            Some((accepted, error)) => Err(Ok(PartialWrite {
                accepted,
                error: plugin_error(&self.inner.plugin, error),
            })),
        }
    }

    /// The guest's `write` typed for borrowed messages. The type check (the
    /// bindings checked `write` against the WIT; this checks the borrowed
    /// record against it, a host bug if it fails) runs on the first write
    /// only: it costs about as much as lowering a dozen messages.
    fn typed<
        P: wasmtime::component::ComponentNamedList + Lower,
        R: wasmtime::component::ComponentNamedList + wasmtime::component::Lift,
    >(
        &mut self,
        func: wasmtime::component::Func,
    ) -> Result<TypedFunc<P, R>, ConnectorError> {
        if !self.write_checked {
            func.typed::<P, R>(&self.inner.store).map_err(|e| {
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
        let r = call!(self, "flush", t, STOP_NEVER, |b, s| either!(
            b,
            SinkBindings,
            oort_connector_sink,
            |i| i.call_flush(s),
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
            SinkBindings,
            oort_connector_sink,
            |i| i.call_close(s),
            v2_err
        ));
        r.map_err(|e| plugin_error(&self.inner.plugin, e))
    }
}
