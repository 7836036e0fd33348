//! Any text as a rule JSON: parsed, options and actions validated.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oort::manager::rule_def::RuleDef;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(def) = RuleDef::parse(text, Some("r")) {
        let _ = def.options();
        let _ = def.actions();
        if let Some(sql) = &def.sql {
            let _ = oort_sql::parser::parse_select(sql);
        }
    }
});
