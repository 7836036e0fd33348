//! Any text as a Go template (a sink's `dataTemplate`, a dynamic property):
//! parsed, and when it parses rendered against a small fixed row.
//!
//! Rendering is skipped for templates that can do exponential work by
//! design (as in Go): more than one `template`/`block` (recursion with
//! fan-out) or more than three `range`s (nested loops). Parsing is always
//! done.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use oort_core::template::{PropTemplate, Template};
use oort_core::Value;

fn data() -> &'static Value {
    static D: OnceLock<Value> = OnceLock::new();
    D.get_or_init(|| {
        Value::from_json(&serde_json::json!({
            "a": 1,
            "b": [1, 2, {"c": "x"}],
            "s": "text",
            "f": 1.5,
            "n": null,
            "t": true,
            "m": {"k": "v", "e": ""},
        }))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let _ = PropTemplate::parse("topic", src);
    let Ok(t) = Template::parse(src) else {
        return;
    };
    let calls = src.matches("template").count() + src.matches("block").count();
    if calls > 1 || src.matches("range").count() > 3 {
        return;
    }
    let _ = t.render(self::data());
    let _ = t.render(&Value::Array(
        vec![self::data().clone(), Value::Null].into(),
    ));
});
