//! A bounded source that returns the messages of its `messages` property
//! (`[{"payload": "...", "meta": {"k": "v"}, "ts": 1}]`) in one read, then
//! ends: the contract tests compare what 0.1.0 and 0.2.0 deliver.

use std::time::Duration;

use oort_plugin_sdk::serde_json::Value;
use oort_plugin_sdk::{Context, Error, Message, PluginInfo, Props, ReadOutcome, Source};

pub struct Feeder {
    left: Option<Vec<Message>>,
}

impl Source for Feeder {
    fn describe() -> PluginInfo {
        PluginInfo::new(crate::NAME, "0.1.0")
    }
    fn open(_ctx: &Context, props: Props, _resume: Option<String>) -> Result<Self, Error> {
        let list: Vec<Value> = oort_plugin_sdk::prop(&props, "messages")?.unwrap_or_default();
        let msgs = list
            .iter()
            .map(|m| {
                let mut out = Message::new(m["payload"].as_str().unwrap_or("").as_bytes().to_vec());
                if let Some(meta) = m["meta"].as_object() {
                    for (k, v) in meta {
                        out = out.with_meta(k.clone(), v.as_str().unwrap_or(""));
                    }
                }
                if let Some(ts) = m["ts"].as_u64() {
                    out = out.with_timestamp(ts);
                }
                out
            })
            .collect();
        Ok(Feeder { left: Some(msgs) })
    }
    fn read(&mut self, _max: u32, _wait: Duration) -> Result<ReadOutcome, Error> {
        Ok(match self.left.take() {
            Some(m) => ReadOutcome::Messages(m),
            None => ReadOutcome::EndOfStream,
        })
    }
}
