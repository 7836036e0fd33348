//! `SinkFactory`/`Sink` for installed sink plugins: validate at creation,
//! one instance per connected sink, batches written with partial accept
//! (`invalid-data` drops one message and goes on, `unavailable` resends the
//! unaccepted rest a few times before the runtime's own retry, `config` and
//! `unauthorized` stop the rule). Guest calls run on the guest pool.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use oort_core::{ConnectorError, Consumes, Props, Sink, SinkContext, SinkFactory, SinkItem, Value};

use crate::isolation::on_guest_pool;
use crate::plugin::{LoadedPlugin, MessageRef, MetaRef, PluginSlot, SinkInstance};

const RESEND_ATTEMPTS: u32 = 3;

pub struct WasmSinkFactory {
    name: String,
    slot: Arc<PluginSlot>,
}

impl WasmSinkFactory {
    pub fn new(name: &str, slot: Arc<PluginSlot>) -> Self {
        WasmSinkFactory {
            name: name.to_string(),
            slot,
        }
    }
}

impl SinkFactory for WasmSinkFactory {
    fn kind(&self) -> &str {
        &self.name
    }

    /// Plugins see bytes and metadata only.
    fn consumes(&self) -> Consumes {
        Consumes::Payload
    }

    fn create(&self, props: &Props) -> Result<Box<dyn Sink>, ConnectorError> {
        let plugin = self.slot.require("sink", &self.name)?;
        let props_json = serde_json::Value::Object(props.clone()).to_string();
        plugin.validate_blocking(props_json.clone())?;
        Ok(Box::new(WasmSink {
            plugin,
            props_json,
            inst: None,
        }))
    }
}

pub struct WasmSink {
    plugin: Arc<LoadedPlugin>,
    props_json: String,
    inst: Option<SinkInstance>,
}

/// An item the runtime did not encode (a caller that built items itself):
/// its data as JSON.
fn needs_json(item: &SinkItem) -> bool {
    item.payload.is_empty() && !matches!(item.data, Value::Null)
}

/// The bytes each item hands the plugin (shared, not copied).
fn payloads(items: &[SinkItem]) -> Vec<Bytes> {
    items
        .iter()
        .map(|it| {
            if needs_json(it) {
                Bytes::from(serde_json::to_vec(&it.data.to_json()).unwrap_or_default())
            } else {
                it.payload.clone()
            }
        })
        .collect()
}

/// Writes one batch with partial accepts: `invalid-data` drops one message
/// and goes on, `unavailable` resends the rest a few times, `config` and
/// `unauthorized` stop the rule (contract: a sink that cannot be authorised
/// or configured will not get better by retrying).
async fn write_all(
    inst: &mut SinkInstance,
    ctx: &SinkContext,
    payloads: &[Bytes],
) -> Result<(), ConnectorError> {
    let msgs: Vec<MessageRef<'_>> = payloads
        .iter()
        .map(|p| MessageRef {
            payload: &p[..],
            meta: MetaRef(&[]),
            timestamp_ms: None,
        })
        .collect();
    let mut start = 0usize;
    let mut dropped: Vec<String> = Vec::new();
    let mut attempts = 0u32;
    while start < msgs.len() {
        match inst.write_refs(&msgs[start..]).await {
            Ok(()) => break,
            Err(Err(e)) => return Err(e),
            Err(Ok(partial)) => {
                start = (start + partial.accepted as usize).min(msgs.len());
                match partial.error {
                    ConnectorError::InvalidData(m) => {
                        dropped.push(m);
                        start += 1;
                    }
                    ConnectorError::Unavailable(m) => {
                        attempts += 1;
                        if attempts >= RESEND_ATTEMPTS || ctx.cancel.is_cancelled() {
                            ctx.conn.disconnected(m.clone());
                            return Err(ConnectorError::Unavailable(format!(
                                "{m} ({start} of {} messages accepted)",
                                msgs.len()
                            )));
                        }
                        tokio::time::sleep(Duration::from_millis(50 << attempts)).await;
                    }
                    ConnectorError::Config(m) => {
                        ctx.conn.disconnected(m.clone());
                        return Err(ConnectorError::Fatal(format!(
                            "{m} ({start} of {} messages accepted; the rule stops)",
                            msgs.len()
                        )));
                    }
                    other => return Err(other),
                }
            }
        }
    }
    if dropped.is_empty() {
        Ok(())
    } else {
        Err(ConnectorError::InvalidData(format!(
            "{} message(s) dropped: {}",
            dropped.len(),
            dropped.join("; ")
        )))
    }
}

fn not_connected(name: &str) -> ConnectorError {
    ConnectorError::Fatal(format!("plugin {name}: sink not connected"))
}

/// Every guest call of a sink runs on the guest pool: the instance moves
/// there for the call and comes back with the result.
#[async_trait]
impl Sink for WasmSink {
    async fn connect(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        ctx.conn.connecting();
        self.inst = None;
        let plugin = self.plugin.clone();
        let props = self.props_json.clone();
        let id = ctx.id.clone();
        let cancel = ctx.cancel.clone();
        let r = on_guest_pool("sink open", async move {
            let mut inst = plugin.instantiate_sink(&id, Some(cancel)).await?;
            let wctx = plugin.context(&id);
            inst.open(&wctx, &props).await.map(|()| inst)
        })
        .await
        .and_then(|r| r);
        match r {
            Ok(inst) => {
                ctx.conn.connected();
                self.inst = Some(inst);
                Ok(())
            }
            Err(e) => {
                ctx.conn.disconnected(e.to_string());
                Err(e)
            }
        }
    }

    async fn collect(
        &mut self,
        ctx: &SinkContext,
        items: &[SinkItem],
    ) -> Result<(), ConnectorError> {
        if self.inst.as_ref().is_none_or(|i| i.is_dead()) {
            self.connect(ctx).await?;
        }
        let mut inst = self
            .inst
            .take()
            .ok_or_else(|| not_connected(&self.plugin.name))?;
        let payloads = payloads(items);
        let wctx = ctx.clone();
        let (inst, r) = on_guest_pool("sink write", async move {
            let r = write_all(&mut inst, &wctx, &payloads).await;
            (inst, r)
        })
        .await?;
        self.inst = Some(inst);
        r
    }

    async fn flush(&mut self, _ctx: &SinkContext) -> Result<(), ConnectorError> {
        match self.inst.take() {
            Some(mut inst) if !inst.is_dead() => {
                let (inst, r) = on_guest_pool("sink flush", async move {
                    let r = inst.flush().await;
                    (inst, r)
                })
                .await?;
                self.inst = Some(inst);
                r
            }
            other => {
                self.inst = other;
                Ok(())
            }
        }
    }

    async fn close(&mut self, _ctx: &SinkContext) -> Result<(), ConnectorError> {
        if let Some(mut inst) = self.inst.take() {
            on_guest_pool("sink close", async move {
                if !inst.is_dead() {
                    inst.flush().await?;
                }
                inst.close().await
            })
            .await??;
        }
        Ok(())
    }
}
