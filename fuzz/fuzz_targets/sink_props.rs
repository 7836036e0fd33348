//! Any JSON object as sink properties: the common props parser and the
//! preparation a rule start does (encoder, template).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oort::runtime::sink::{prepare, SinkCommon};

fuzz_target!(|data: &[u8]| {
    let Ok(serde_json::Value::Object(props)) = serde_json::from_slice(data) else {
        return;
    };
    if let Ok(common) = SinkCommon::from_props(&props) {
        let _ = prepare(&common);
    }
});
