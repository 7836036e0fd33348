//! Any JSON object as the properties of an action or a source: the common
//! sink properties (`SinkCommon::from_props` and the `prepare` a rule start
//! does: encoder, compression, encryption, template), and the connector
//! property parsing (`parse_config` behind every built-in connector's
//! `create`, which only parses and checks: no connection, no file opened).
//! Optional `"__kind"` (sink/source kind to try, all when absent) and
//! `"__datasource"` (a source's DATASOURCE) steer the input.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use oort::runtime::sink::{prepare, SinkCommon};
use oort_core::{ConnectorEnv, Registry};

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| {
        let r = Registry::default();
        oort_connectors::builtin(&r);
        r
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(serde_json::Value::Object(props)) = serde_json::from_slice(data) else {
        return;
    };
    let r = registry();
    if let Ok(common) = SinkCommon::from_props(&props) {
        // One sink of each declaration (payload, rows, both).
        for kind in ["mqtt", "memory", "file"] {
            if let Some(f) = r.sink(kind) {
                let _ = prepare("r", kind, &props, &common, f.as_ref());
            }
        }
    }
    let want = props.get("__kind").and_then(|v| v.as_str());
    let datasource = props
        .get("__datasource")
        .and_then(|v| v.as_str())
        .unwrap_or("t/1");
    let env = ConnectorEnv::default();
    for kind in r.sink_kinds() {
        if want.is_none_or(|w| w == kind) {
            if let Some(f) = r.sink(&kind) {
                let _ = f.create(&env, &props);
            }
        }
    }
    for kind in r.source_kinds() {
        if want.is_none_or(|w| w == kind) {
            if let Some(f) = r.source(&kind) {
                let _ = f.create(&env, datasource, &props);
            }
        }
    }
});
