//! `SinkFactory`/`Sink` for installed sink plugins: validate at creation,
//! one instance per connected sink, batches written with partial accept
//! (`invalid-data` drops one message and goes on, `unavailable` resends the
//! unaccepted rest a few times before the runtime's own retry).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oort_core::{ConnectorError, Consumes, Props, Sink, SinkContext, SinkFactory, SinkItem, Value};

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

/// The payload bytes of each item, borrowed; `owned` holds the JSON of
/// items without a payload (empty when there are none).
fn to_refs<'a>(items: &'a [SinkItem], owned: &'a [Option<Vec<u8>>]) -> Vec<MessageRef<'a>> {
    items
        .iter()
        .enumerate()
        .map(|(i, it)| MessageRef {
            payload: owned
                .get(i)
                .and_then(|o| o.as_deref())
                .unwrap_or(&it.payload[..]),
            meta: MetaRef(&[]),
            timestamp_ms: None,
        })
        .collect()
}

#[async_trait]
impl Sink for WasmSink {
    async fn connect(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        ctx.conn.connecting();
        let mut inst = self.plugin.instantiate_sink(&ctx.id).await?;
        let wctx = self.plugin.context(&ctx.id);
        match inst.open(&wctx, &self.props_json).await {
            Ok(()) => {
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
        let Some(inst) = self.inst.as_mut() else {
            return Err(ConnectorError::Fatal(format!(
                "plugin {}: sink not connected",
                self.plugin.name
            )));
        };
        let owned: Vec<Option<Vec<u8>>> = if items.iter().any(needs_json) {
            items
                .iter()
                .map(|it| {
                    needs_json(it)
                        .then(|| serde_json::to_vec(&it.data.to_json()).unwrap_or_default())
                })
                .collect()
        } else {
            Vec::new()
        };
        let msgs = to_refs(items, &owned);
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

    async fn flush(&mut self, _ctx: &SinkContext) -> Result<(), ConnectorError> {
        match self.inst.as_mut() {
            Some(inst) if !inst.is_dead() => inst.flush().await,
            _ => Ok(()),
        }
    }

    async fn close(&mut self, _ctx: &SinkContext) -> Result<(), ConnectorError> {
        if let Some(mut inst) = self.inst.take() {
            if !inst.is_dead() {
                inst.flush().await?;
            }
            inst.close().await?;
        }
        Ok(())
    }
}
