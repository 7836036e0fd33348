//! A sink that refuses every batch with a description of what it received
//! (payloads, metadata, event times) as JSON in the error message: the
//! contract tests compare what 0.1.0 and 0.2.0 deliver.

use oort_plugin_sdk::serde_json::{json, Value};
use oort_plugin_sdk::{Context, Error, Message, PluginInfo, Props, Sink, WriteFailure};

pub struct Probe;

impl Sink for Probe {
    fn describe() -> PluginInfo {
        PluginInfo::new(crate::NAME, "0.1.0")
    }
    fn open(_ctx: &Context, _props: Props) -> Result<Self, Error> {
        Ok(Probe)
    }
    fn write(&mut self, batch: Vec<Message>) -> Result<(), WriteFailure> {
        let got: Vec<Value> = batch
            .iter()
            .map(|m| {
                json!({
                    "payload": String::from_utf8_lossy(&m.payload),
                    "meta": m.meta,
                    "ts": m.timestamp_ms,
                })
            })
            .collect();
        Err(WriteFailure {
            accepted: 0,
            error: Error::invalid_data(Value::Array(got).to_string()),
        })
    }
}
