//! `oort-connectors`: the native connectors, one folder each, registered in
//! [`builtin`] with one line per connector.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::sync::Arc;

use oort_core::Registry;

pub mod file;
pub mod http;
pub mod log;
pub mod memory;
pub mod mqtt;
pub mod nop;
pub mod simulator;
pub mod util;

/// Registers every built-in connector.
pub fn builtin(registry: &Registry) {
    registry.add_source(Arc::new(mqtt::MqttSourceFactory));
    registry.add_source(Arc::new(memory::MemorySourceFactory));
    registry.add_source(Arc::new(file::FileSourceFactory));
    registry.add_source(Arc::new(simulator::SimulatorSourceFactory));
    registry.add_sink(Arc::new(mqtt::MqttSinkFactory));
    registry.add_sink(Arc::new(memory::MemorySinkFactory));
    registry.add_sink(Arc::new(file::FileSinkFactory));
    registry.add_sink(Arc::new(http::RestSinkFactory));
    registry.add_sink(Arc::new(log::LogSinkFactory));
    registry.add_sink(Arc::new(nop::NopSinkFactory));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_all_builtins() {
        let r = Registry::default();
        builtin(&r);
        assert_eq!(r.source_kinds(), ["file", "memory", "mqtt", "simulator"]);
        assert_eq!(
            r.sink_kinds(),
            ["file", "log", "memory", "mqtt", "nop", "rest"]
        );
        assert!(r.source("memory").is_some_and(|f| f.emits_rows()));
        assert!(r.source("mqtt").is_some_and(|f| !f.emits_rows()));
    }
}
