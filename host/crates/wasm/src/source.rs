//! `SourceFactory`/`Source` for installed source plugins: validate at
//! creation, one instance per run, the pull loop (`read` in batches with a
//! bounded wait), retry with backoff on `unavailable`, an exception per
//! `invalid-data`, and a fatal error naming the plugin on a trap or deadline.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use oort_core::{
    ConnectorEnv, ConnectorError, ConnectorInfo, Meta, Props, Source, SourceContext, SourceFactory,
    SourceMsg, Value,
};

use crate::bindings::{v2, WitMessage};
use crate::isolation::on_guest_pool;
use crate::plugin::{LoadedPlugin, PluginSlot, Read};

/// The key under which a stream's DATASOURCE reaches a source plugin in `props-json`.
pub const DATASOURCE_KEY: &str = "datasource";

const MAX_BACKOFF: Duration = Duration::from_secs(10);

pub struct WasmSourceFactory {
    name: String,
    slot: Arc<PluginSlot>,
}

impl WasmSourceFactory {
    pub fn new(name: &str, slot: Arc<PluginSlot>) -> Self {
        WasmSourceFactory {
            name: name.to_string(),
            slot,
        }
    }
}

/// The exact JSON a source plugin receives: the props with `datasource` set.
pub fn source_props_json(datasource: &str, props: &Props) -> String {
    let mut p = props.clone();
    p.insert(
        DATASOURCE_KEY.into(),
        serde_json::Value::String(datasource.to_string()),
    );
    serde_json::Value::Object(p).to_string()
}

impl SourceFactory for WasmSourceFactory {
    fn kind(&self) -> &str {
        &self.name
    }

    fn info(&self) -> ConnectorInfo {
        self.slot.info()
    }

    /// The plugin gets its own properties only: nothing of the context
    /// (no host path) crosses into the sandbox.
    fn create(
        &self,
        _env: &ConnectorEnv,
        datasource: &str,
        props: &Props,
    ) -> Result<Box<dyn Source>, ConnectorError> {
        let plugin = self.slot.require("source", &self.name)?;
        let props_json = source_props_json(datasource, props);
        plugin.validate_blocking(props_json.clone())?;
        Ok(Box::new(WasmSource { plugin, props_json }))
    }
}

pub struct WasmSource {
    plugin: Arc<LoadedPlugin>,
    props_json: String,
}

fn to_meta(m: &WitMessage) -> Option<Arc<Meta>> {
    if m.meta.is_empty() && m.timestamp_ms.is_none() {
        return None;
    }
    let mut meta = Meta::new();
    for (k, v) in &m.meta {
        meta.insert(Arc::from(k.as_str()), Value::from(v.as_str()));
    }
    if let Some(ts) = m.timestamp_ms {
        meta.insert(
            Arc::from("timestamp"),
            Value::from(i64::try_from(ts).unwrap_or(i64::MAX)),
        );
    }
    Some(Arc::new(meta))
}

/// The metadata of one message of a 0.2.0 batch.
fn packed_meta(
    p: &v2::Packed,
    i: usize,
    entries: &mut std::iter::Peekable<std::slice::Iter<'_, v2::MetaEntry>>,
) -> Option<Arc<Meta>> {
    let ts = p.timestamps.get(i).copied().filter(|&t| t != 0);
    let mut meta: Option<Meta> = None;
    while let Some(e) = entries.next_if(|e| e.message as usize == i) {
        let (k, v) = (&p.strings[e.key as usize], &p.strings[e.value as usize]);
        meta.get_or_insert_with(Meta::new)
            .insert(Arc::from(k.as_str()), Value::from(v.as_str()));
    }
    if let Some(ts) = ts {
        meta.get_or_insert_with(Meta::new).insert(
            Arc::from("timestamp"),
            Value::from(i64::try_from(ts).unwrap_or(i64::MAX)),
        );
    }
    meta.map(Arc::new)
}

/// Checks a 0.2.0 batch against the contract (`types.packed`); a batch that
/// breaks it is a plugin bug, refused whole with what is wrong.
pub fn check_packed(p: &v2::Packed) -> Result<(), String> {
    let n = p.ends.len();
    let mut prev = 0u32;
    for (i, &e) in p.ends.iter().enumerate() {
        if e < prev {
            return Err(format!(
                "ends[{i}] = {e} is less than ends[{}] = {prev}",
                i.max(1) - 1
            ));
        }
        prev = e;
    }
    if prev as usize != p.data.len() {
        return Err(format!(
            "the last of ends is {prev}, data has {} bytes",
            p.data.len()
        ));
    }
    if !p.timestamps.is_empty() && p.timestamps.len() != n {
        return Err(format!(
            "{} timestamps for {n} messages (give none or one per message)",
            p.timestamps.len()
        ));
    }
    let mut last = 0u32;
    for (j, e) in p.meta.iter().enumerate() {
        if e.message as usize >= n || e.message < last {
            return Err(format!(
                "meta[{j}] is for message {} (messages: {n}, entries in message order)",
                e.message
            ));
        }
        if e.key as usize >= p.strings.len() || e.value as usize >= p.strings.len() {
            return Err(format!(
                "meta[{j}] names string {} or {} of {}",
                e.key,
                e.value,
                p.strings.len()
            ));
        }
        last = e.message;
    }
    Ok(())
}

/// Sleeps unless cancelled; false when cancelled.
async fn pause(ctx: &SourceContext, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = ctx.cancel.cancelled() => false,
    }
}

#[async_trait]
impl Source for WasmSource {
    /// The whole pull loop runs on the guest pool; the hub's task only waits.
    async fn run(&mut self, ctx: SourceContext) -> Result<(), ConnectorError> {
        let p = self.plugin.clone();
        let props = self.props_json.clone();
        on_guest_pool("source", async move { pull(p, props, ctx).await }).await?
    }
}

async fn pull(
    p: Arc<LoadedPlugin>,
    props_json: String,
    ctx: SourceContext,
) -> Result<(), ConnectorError> {
    let mut inst = p
        .instantiate_source(&ctx.id, Some(ctx.cancel.clone()))
        .await?;
    // A stream's source serves every rule on it: the stream names it, as
    // the rule status's `source_<stream>_0_*` keys do.
    let wctx = p.context(&ctx.id, &format!("source_{}", ctx.id), 0);
    let mut backoff = oort_core::backoff::Backoff::new(Duration::from_millis(100), MAX_BACKOFF);
    ctx.conn.connecting();
    loop {
        match inst.open(&wctx, &props_json, ctx.resume.as_deref()).await {
            Ok(()) => break,
            Err(ConnectorError::Unavailable(_)) if ctx.cancel.is_cancelled() => return Ok(()),
            Err(ConnectorError::Unavailable(m)) => {
                let wait = backoff.next_delay();
                tracing::warn!(plugin = %p.name, rule = %ctx.id, "open: {m}; retrying in {wait:?}");
                ctx.conn.disconnected(m);
                if !pause(&ctx, wait).await {
                    return Ok(());
                }
            }
            Err(e) => {
                ctx.conn.disconnected(e.to_string());
                return Err(e);
            }
        }
    }
    if let Some(o) = &ctx.resume {
        tracing::info!(plugin = %p.name, stream = %ctx.id, offset = %o, "source resumed from its committed offset");
    }
    ctx.conn.connected();
    backoff.reset();
    // Unknown until the first `offset` after a non-empty read; a source
    // that answers `none` then is not asked again.
    let mut rewindable = true;
    let result = loop {
        if ctx.cancel.is_cancelled() {
            break Ok(());
        }
        if let Some(o) = ctx.take_commit() {
            match inst.commit(&o).await {
                Ok(()) => {}
                Err(e @ ConnectorError::Fatal(_)) => break Err(e),
                Err(e) => {
                    tracing::warn!(plugin = %p.name, stream = %ctx.id, offset = %o, "commit: {e}")
                }
            }
        }
        let r = inst.read(p.limits.read_batch, p.limits.read_wait).await;
        ctx.conn.set_metrics(&inst.metrics());
        match r {
            Ok(read @ (Read::Messages(_) | Read::Packed(_))) => {
                backoff.reset();
                let mut any = false;
                match read {
                    Read::Messages(msgs) => {
                        any = !msgs.is_empty();
                        let mut batch = ctx.batch_vector();
                        batch.extend(msgs.into_iter().map(|m| {
                            let meta = to_meta(&m);
                            (Bytes::from(m.payload), meta)
                        }));
                        if any && !ctx.emit(SourceMsg::BytesBatch(batch)).await {
                            break Ok(());
                        }
                    }
                    Read::Packed(mut packed) => {
                        if let Err(m) = check_packed(&packed) {
                            let m =
                                format!("plugin {}: read returned a malformed batch: {m}", p.name);
                            ctx.conn.disconnected(m.clone());
                            break Err(ConnectorError::Fatal(m));
                        }
                        any = !packed.ends.is_empty();
                        // One allocation for the batch: each payload is a slice of it.
                        let data = Bytes::from(std::mem::take(&mut packed.data));
                        let mut entries = packed.meta.iter().peekable();
                        let mut start = 0usize;
                        let mut msgs = ctx.batch_vector();
                        msgs.reserve(packed.ends.len());
                        for (i, &end) in packed.ends.iter().enumerate() {
                            let payload = data.slice(start..end as usize);
                            start = end as usize;
                            msgs.push((payload, packed_meta(&packed, i, &mut entries)));
                        }
                        // The whole read goes to the runtime in one hand-over.
                        if any && !ctx.emit(SourceMsg::BytesBatch(msgs)).await {
                            break Ok(());
                        }
                    }
                    Read::EndOfStream => {}
                }
                if any && rewindable {
                    match inst.offset().await {
                        Ok(Some(o)) => {
                            ctx.emit(SourceMsg::Offset(o)).await;
                        }
                        Ok(None) => rewindable = false,
                        Err(e @ ConnectorError::Fatal(_)) => break Err(e),
                        Err(e) => {
                            tracing::warn!(plugin = %p.name, stream = %ctx.id, "offset: {e}")
                        }
                    }
                }
            }
            Ok(Read::EndOfStream) => {
                ctx.emit(SourceMsg::Eof).await;
                break Ok(());
            }
            // Interrupted by the stop itself: a clean end.
            Err(ConnectorError::Unavailable(_)) if ctx.cancel.is_cancelled() => break Ok(()),
            Err(ConnectorError::Unavailable(m)) => {
                let wait = backoff.next_delay();
                tracing::warn!(plugin = %p.name, rule = %ctx.id, "read: {m}; retrying in {wait:?}");
                ctx.conn.disconnected(m);
                if !pause(&ctx, wait).await {
                    break Ok(());
                }
                ctx.conn.connected();
            }
            Err(ConnectorError::InvalidData(m)) => {
                if !ctx.emit(SourceMsg::Error(m)).await {
                    break Ok(());
                }
            }
            Err(e) => {
                ctx.conn.disconnected(e.to_string());
                break Err(e);
            }
        }
    };
    if let Err(e) = inst.close().await {
        tracing::warn!(plugin = %p.name, rule = %ctx.id, "close: {e}");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(data: &[u8], ends: &[u32]) -> v2::Packed {
        v2::Packed {
            data: data.to_vec(),
            ends: ends.to_vec(),
            timestamps: vec![],
            strings: vec!["k".into(), "v".into()],
            meta: vec![],
        }
    }

    #[test]
    fn a_packed_batch_that_breaks_the_contract_is_named() {
        assert_eq!(check_packed(&packed(b"abc", &[1, 3])), Ok(()));
        assert_eq!(check_packed(&packed(b"", &[])), Ok(()));
        let e = check_packed(&packed(b"abc", &[2, 1, 3])).unwrap_err();
        assert!(e.contains("ends[1] = 1"), "{e}");
        let e = check_packed(&packed(b"abc", &[1, 2])).unwrap_err();
        assert!(e.contains("data has 3 bytes"), "{e}");
        let mut p = packed(b"ab", &[1, 2]);
        p.timestamps = vec![1];
        assert!(check_packed(&p).unwrap_err().contains("1 timestamps for 2"));
        let entry = |message, key, value| v2::MetaEntry {
            message,
            key,
            value,
        };
        let mut p = packed(b"ab", &[1, 2]);
        p.meta = vec![entry(1, 0, 1), entry(0, 0, 1)];
        assert!(check_packed(&p).unwrap_err().contains("message order"));
        p.meta = vec![entry(2, 0, 1)];
        assert!(check_packed(&p).unwrap_err().contains("messages: 2"));
        p.meta = vec![entry(0, 0, 2)];
        assert!(check_packed(&p).unwrap_err().contains("string 0 or 2 of 2"));
    }

    #[test]
    fn packed_metadata_goes_to_its_message() {
        let mut p = packed(b"ab", &[1, 2]);
        p.timestamps = vec![0, 9];
        p.meta = vec![v2::MetaEntry {
            message: 1,
            key: 0,
            value: 1,
        }];
        let mut entries = p.meta.iter().peekable();
        assert!(packed_meta(&p, 0, &mut entries).is_none());
        let m = packed_meta(&p, 1, &mut entries).expect("meta");
        assert_eq!(m.get("k").map(|v| v.to_string()), Some("v".into()));
        assert!(m.get("timestamp").is_some());
    }
}
