//! Any text as an import document, JSON (first byte even) or YAML (odd).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oort::manager::ruleset::{parse_json, parse_yaml};

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let doc = if first % 2 == 0 {
        parse_json(text)
    } else {
        parse_yaml(text)
    };
    if let Ok(d) = doc {
        let _ = d.to_json();
        let _ = d.to_yaml();
    }
});
