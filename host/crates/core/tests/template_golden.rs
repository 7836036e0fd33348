//! Golden tests of the template engine: every case in `golden/cases.json`
//! must render byte for byte what Go's `text/template` rendered into
//! `golden/expected.json` (regenerate with `golden/regen.sh`, which needs Go;
//! this test does not). A case Go fails to render must fail here too, and one Go refuses to parse
//! must be refused by `Template::compile`.

use std::path::Path;

use oort_core::template::Template;
use oort_core::Value;

fn load(name: &str) -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn templates_render_like_go() {
    let cases = load("cases.json");
    let expected = load("expected.json");
    let cases = cases.as_array().expect("cases.json is an array");
    let mut failures = Vec::new();
    for c in cases {
        let name = c["name"].as_str().expect("case name");
        let src = c["template"].as_str().expect("case template");
        let data = Value::from_json(&c["data"]);
        let want = &expected[name];
        let got = Template::compile(src)
            .map_err(|e| e.to_string())
            .and_then(|t| t.render(&data));
        match (want, &got) {
            (serde_json::Value::String(w), Ok(g)) if w == g => {}
            (serde_json::Value::Object(o), Err(_)) if o.contains_key("error") => {}
            (serde_json::Value::Object(o), Err(_)) if o.contains_key("parse_error") => {
                if Template::compile(src).is_ok() {
                    failures.push(format!(
                        "{name}: Go refuses {src:?} at parse time, Oort compiles it"
                    ));
                }
            }
            (serde_json::Value::Null, _) => {
                failures.push(format!("{name}: no expectation (run golden/regen.sh)"))
            }
            _ => failures.push(format!(
                "{name}:\n  template {src:?}\n  go   {want}\n  oort {got:?}"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from Go:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
