//! `oort-connectors`: the native connectors, one folder each, registered in
//! [`builtin`] with one line per connector.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::sync::Arc;

use oort_core::Registry;

pub mod edgex;
pub mod file;
pub mod http;
pub mod linger;
pub mod log;
pub mod memory;
pub mod mqtt;
pub mod neuron;
pub mod nop;
pub mod redis;
pub mod simulator;
pub mod sql;
pub mod tls;
pub mod util;

/// Registers every built-in connector.
pub fn builtin(registry: &Registry) {
    registry.add_source(Arc::new(mqtt::MqttSourceFactory));
    registry.add_source(Arc::new(memory::MemorySourceFactory));
    registry.add_source(Arc::new(file::FileSourceFactory));
    registry.add_source(Arc::new(simulator::SimulatorSourceFactory));
    registry.add_source(Arc::new(http::HttpPullSourceFactory));
    registry.add_source(Arc::new(http::HttpPushSourceFactory));
    registry.add_source(Arc::new(redis::RedisSubSourceFactory));
    registry.add_source(Arc::new(http::WebsocketSourceFactory));
    registry.add_source(Arc::new(sql::SqlSourceFactory));
    registry.add_source(Arc::new(neuron::NeuronSourceFactory));
    registry.add_source(Arc::new(edgex::EdgexSourceFactory));
    registry.add_sink(Arc::new(mqtt::MqttSinkFactory));
    registry.add_sink(Arc::new(memory::MemorySinkFactory));
    registry.add_sink(Arc::new(file::FileSinkFactory));
    registry.add_sink(Arc::new(http::RestSinkFactory));
    registry.add_sink(Arc::new(redis::RedisSinkFactory));
    registry.add_sink(Arc::new(redis::RedisPubSinkFactory));
    registry.add_sink(Arc::new(http::WebsocketSinkFactory));
    registry.add_sink(Arc::new(log::LogSinkFactory));
    registry.add_sink(Arc::new(nop::NopSinkFactory));
    registry.add_sink(Arc::new(sql::SqlSinkFactory));
    registry.add_sink(Arc::new(neuron::NeuronSinkFactory));
    registry.add_sink(Arc::new(edgex::EdgexSinkFactory));
    registry.add_lookup(Arc::new(memory::MemoryLookupFactory));
    registry.add_lookup(Arc::new(redis::RedisLookupFactory));
    registry.add_lookup(Arc::new(http::HttpPullLookupFactory));
    registry.add_lookup(Arc::new(simulator::SimulatorLookupFactory));
    registry.add_lookup(Arc::new(sql::SqlLookupFactory));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_all_builtins() {
        let r = Registry::default();
        builtin(&r);
        assert_eq!(
            r.source_kinds(),
            [
                "edgex",
                "file",
                "httppull",
                "httppush",
                "memory",
                "mqtt",
                "neuron",
                "redisSub",
                "simulator",
                "sql",
                "websocket"
            ]
        );
        assert_eq!(
            r.sink_kinds(),
            [
                "edgex",
                "file",
                "log",
                "memory",
                "mqtt",
                "neuron",
                "nop",
                "redis",
                "redisPub",
                "rest",
                "sql",
                "websocket"
            ]
        );
        assert_eq!(
            r.lookup_kinds(),
            ["httppull", "memory", "redis", "simulator", "sql"]
        );
        assert!(r.source("memory").is_some_and(|f| f.emits_rows()));
        assert!(r.source("mqtt").is_some_and(|f| !f.emits_rows()));
    }

    /// Every built-in connector has its page, `docs/connectors/<type>.md`,
    /// and the page names every property the connector declares.
    #[test]
    fn each_connector_page_lists_every_declared_property() {
        let docs =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../docs/connectors");
        let r = Registry::default();
        builtin(&r);
        let infos = r
            .source_kinds()
            .into_iter()
            .filter_map(|k| Some((r.source(&k)?.info(), k)))
            .chain(
                r.sink_kinds()
                    .into_iter()
                    .filter_map(|k| Some((r.sink(&k)?.info(), k))),
            )
            .chain(
                r.lookup_kinds()
                    .into_iter()
                    .filter_map(|k| Some((r.lookup(&k)?.info(), k))),
            );
        let mut missing = Vec::new();
        for (info, kind) in infos {
            let page = docs.join(format!("{kind}.md"));
            let Ok(text) = std::fs::read_to_string(&page) else {
                missing.push(format!("{kind}: no page {}", page.display()));
                continue;
            };
            for p in &info.properties {
                if !text.contains(&format!("`{}`", p.name)) {
                    missing.push(format!("{kind}: property {} not on its page", p.name));
                }
            }
        }
        assert!(missing.is_empty(), "{missing:#?}");
    }

    #[test]
    fn templates_only_where_a_sink_renders_them() {
        let r = Registry::default();
        builtin(&r);
        let props = |v: serde_json::Value| v.as_object().cloned().unwrap_or_default();
        // Rendered per row: accepted.
        for (kind, p) in [
            ("mqtt", serde_json::json!({"topic": "t/{{.id}}"})),
            ("redisPub", serde_json::json!({"channel": "c.{{.id}}"})),
            (
                "rest",
                serde_json::json!({"url": "http://h/{{.id}}", "method": "{{.m}}"}),
            ),
            ("file", serde_json::json!({"path": "out/{{.id}}.txt"})),
            ("memory", serde_json::json!({"topic": "m/{{.id}}"})),
            (
                "neuron",
                serde_json::json!({"nodeName": "{{.n}}", "groupName": "g"}),
            ),
        ] {
            let f = r.sink(kind).unwrap();
            f.check_templates(&props(p))
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
        }
        // Used as literal text: refused, naming the property. Common keys
        // (dataTemplate) are the runtime's.
        for (kind, p, key) in [
            ("redis", serde_json::json!({"key": "k-{{.id}}"}), "key"),
            ("sql", serde_json::json!({"table": "t_{{.id}}"}), "table"),
            (
                "edgex",
                serde_json::json!({"deviceName": "{{.d}}"}),
                "deviceName",
            ),
            ("websocket", serde_json::json!({"path": "/{{.id}}"}), "path"),
        ] {
            let f = r.sink(kind).unwrap();
            let e = f.check_templates(&props(p)).unwrap_err().to_string();
            assert!(
                e.contains(&format!("property {key} holds a template")),
                "{kind}: {e}"
            );
        }
        let mqtt = r.sink("mqtt").unwrap();
        mqtt.check_templates(&props(
            serde_json::json!({"topic": "t", "dataTemplate": "{{json .}}"}),
        ))
        .unwrap();
    }
}
