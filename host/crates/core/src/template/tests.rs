use super::*;
use std::sync::Arc;

fn data(j: serde_json::Value) -> Value {
    Value::from_json(&j)
}

fn r(t: &str, j: serde_json::Value) -> String {
    Template::compile(t)
        .unwrap_or_else(|e| panic!("{t}: {e}"))
        .render(&data(j))
        .unwrap_or_else(|e| panic!("{t}: {e}"))
}

fn compile_err(t: &str) -> String {
    match Template::compile(t) {
        Ok(_) => panic!("{t} compiled"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn if_uses_go_truth() {
    let t = "{{if .flag}}yes{{else}}no{{end}}";
    assert_eq!(r(t, serde_json::json!({"flag": false})), "no");
    assert_eq!(r(t, serde_json::json!({"flag": true})), "yes");
    assert_eq!(r(t, serde_json::json!({"flag": 0})), "no");
    assert_eq!(r(t, serde_json::json!({"flag": ""})), "no");
    assert_eq!(r(t, serde_json::json!({"flag": []})), "no");
    assert_eq!(r(t, serde_json::json!({"flag": {}})), "no");
    assert_eq!(r(t, serde_json::json!({"flag": null})), "no");
    assert_eq!(r(t, serde_json::json!({})), "no");
    assert_eq!(r(t, serde_json::json!({"flag": 0.5})), "yes");
}

#[test]
fn mixed_int_float_comparisons_are_allowed() {
    // Oort keeps JSON integers as int64 (eKuiper has float64 for every
    // number), so `gt .t 30.0` must work whether the payload said 31 or 31.5.
    let t = "{{if gt .t 30.0}}hot{{end}}|{{if eq .t 31}}31{{end}}";
    assert_eq!(r(t, serde_json::json!({"t": 31})), "hot|31");
    assert_eq!(r(t, serde_json::json!({"t": 31.0})), "hot|31");
    assert_eq!(r(t, serde_json::json!({"t": 29.5})), "|");
}

#[test]
fn unsupported_forms_are_refused_by_name() {
    assert!(compile_err("{{now}}").contains("\"now\""));
    assert!(compile_err("{{call .f}}").contains("\"call\""));
    assert!(compile_err("{{addf 1 2}}").contains("\"addf\""));
    assert!(compile_err("{{nosuch 1}}").contains("\"nosuch\" not defined"));
    assert!(compile_err("{{with .a}}{{else with .b}}{{end}}").contains("else with"));
    assert!(compile_err("{{.a 1}}").contains("not a function"));
    assert!(compile_err("{{$x}}").contains("undefined variable"));
    assert!(compile_err("{{if .a}}").contains("end of template"));
    assert!(compile_err("{{end}}").contains("{{end}}"));
    assert!(compile_err("{{break}}").contains("outside"));
    assert!(compile_err("{{len}}").contains("wrong number of args for len"));
    assert!(compile_err("{{.a").contains("unclosed"));
    assert!(compile_err("{{$ = 1}}").contains("$"));
}

#[test]
fn runtime_errors_are_errors() {
    let t = Template::compile("{{.a.b}}").unwrap();
    assert!(t.render(&data(serde_json::json!({"a": null}))).is_err());
    assert!(t.render(&data(serde_json::json!({"a": 1}))).is_err());
    assert_eq!(
        t.render(&data(serde_json::json!({}))).unwrap(),
        "<no value>"
    );
    let t = Template::compile("{{index .a 5}}").unwrap();
    assert!(t.render(&data(serde_json::json!({"a": [1]}))).is_err());
}

#[test]
fn json_fast_path_matches_general_path() {
    let d = data(serde_json::json!({"b": [1, 2.5, "x<"], "a": {"z": null}, "c": 1e21}));
    let fast = Template::compile("{{json .}}").unwrap().render(&d).unwrap();
    let slow = Template::compile("{{json (.)}}")
        .unwrap()
        .render(&d)
        .unwrap();
    assert_eq!(fast, slow);
    assert_eq!(fast, r#"{"a":{"z":null},"b":[1,2.5,"x\u003c"],"c":1e+21}"#);
}

#[test]
fn literal_templates_cost_nothing() {
    let t = Template::compile("plain/topic").unwrap();
    assert_eq!(t.as_literal(), Some("plain/topic"));
    assert!(Template::compile("a/{{.x}}")
        .unwrap()
        .as_literal()
        .is_none());
}

#[test]
fn render_into_appends() {
    let t = Template::compile("{{.a}},").unwrap();
    let mut out = String::from(">");
    let d = Value::Object(Arc::new(
        [(Arc::from("a"), Value::Int(1))].into_iter().collect(),
    ));
    t.render_into(&d, &mut out).unwrap();
    t.render_into(&d, &mut out).unwrap();
    assert_eq!(out, ">1,1,");
}

#[test]
fn a_function_as_an_argument_with_too_few_args_is_an_error() {
    // Found by fuzzing: `index` called with no arguments panicked.
    for t in [
        "{{printf \"%v\" index}}",
        "{{print not}}",
        "{{eq 1 (len) }}",
    ] {
        assert!(compile_err(t).contains("wrong number of args"), "{t}");
    }
    // A function that takes no arguments is fine as an argument.
    assert!(Template::compile("{{print print}}").is_ok());
}

#[test]
fn an_error_in_a_block_inside_a_range_is_a_compile_error() {
    // Found by fuzzing: this panicked in the parser.
    for t in [
        "{{range.}}{{block\"\".}}{{}}",
        "{{range .}}{{block \"b\" .}}{{end}}",
        "{{if .}}{{define \"x\"}}{{end}}",
    ] {
        let _ = Template::compile(t).map(|_| ());
    }
    assert!(Template::compile("{{range.}}{{block\"\".}}{{}}").is_err());
}

#[test]
fn output_is_bounded() {
    // Found by fuzzing: wide printf verbs in a loop made hundreds of MB.
    let t = Template::compile("{{range .}}{{printf \"%1000000d\" 1}}{{end}}").unwrap();
    let rows: Vec<serde_json::Value> = (0..100).map(|i| serde_json::json!(i)).collect();
    let e = t
        .render(&self::data(serde_json::Value::Array(rows)))
        .unwrap_err();
    assert!(e.contains("template output exceeds 64 MiB"), "{e}");
    // Ten of them are fine.
    let rows: Vec<serde_json::Value> = (0..10).map(|i| serde_json::json!(i)).collect();
    let ok = t
        .render(&self::data(serde_json::Value::Array(rows)))
        .unwrap();
    assert_eq!(ok.len(), 10_000_000);
}
