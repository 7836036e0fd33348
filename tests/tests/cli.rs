//! The `kuiper` verbs of the `oort` binary against a running server: a
//! kuiper script's commands with only the binary's name changed.

use std::process::{Command, Output};

use oort_tests::{oort_bin, unique, Server};
use serde_json::Value as Json;

/// Runs `oort ARGS --port <the server's>`.
fn oort(s: &Server, args: &[&str]) -> Output {
    oort_tests::cli(s, args)
}

fn ok(s: &Server, args: &[&str]) -> String {
    let o = oort(s, args);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "oort {args:?} failed: {}{}",
        out,
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Runs a command that must fail; returns its stderr.
fn fails(s: &Server, args: &[&str]) -> String {
    let o = oort(s, args);
    assert_eq!(o.status.code(), Some(1), "oort {args:?} should fail: {o:?}");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_kuiper_script_runs_with_the_binary_renamed() {
    let s = Server::start();
    let st = unique("clis");
    let rule = unique("clir");
    let topic = unique("cli/t");

    // create stream NAME DEF, as kuiper takes it (the definition in one or several words).
    let out = ok(
        &s,
        &[
            "create",
            "stream",
            &st,
            &format!("(id bigint, name string) WITH (DATASOURCE=\"{topic}\", TYPE=\"memory\", FORMAT=\"json\")"),
        ],
    );
    assert!(out.contains(&st), "{out}");
    assert!(ok(&s, &["show", "streams"]).lines().any(|l| l == st));
    let d = ok(&s, &["describe", "stream", &st]);
    assert!(d.contains("id") && d.contains("bigint"), "{d}");
    assert!(d.contains(&format!("DATASOURCE: {topic}")), "{d}");
    let dj: Json = serde_json::from_str(&ok(&s, &["describe", "stream", &st, "--json"]))
        .expect("describe --json is JSON");
    assert_eq!(dj["Name"], st.as_str(), "{dj}");

    // create table -f FILE holding what follows CREATE TABLE.
    let dir = tempfile::tempdir().expect("tempdir");
    let tf = dir.path().join("table.txt");
    let tb = unique("clit");
    std::fs::write(
        &tf,
        format!("{tb} (id bigint) WITH (DATASOURCE=\"{topic}t\", TYPE=\"memory\");\n"),
    )
    .unwrap();
    ok(&s, &["create", "table", "-f", tf.to_str().unwrap()]);
    assert!(ok(&s, &["show", "tables"]).contains(&tb));

    // create rule NAME -f FILE: the id comes from the name.
    let rf = dir.path().join("rule.json");
    std::fs::write(
        &rf,
        format!(r#"{{"sql": "SELECT id FROM {st}", "actions": [{{"log": {{}}}}]}}"#),
    )
    .unwrap();
    ok(&s, &["create", "rule", &rule, "-f", rf.to_str().unwrap()]);
    let rules = ok(&s, &["show", "rules"]);
    assert!(
        rules.contains(&rule) && rules.contains("running"),
        "{rules}"
    );
    let status: Json = serde_json::from_str(&ok(&s, &["getstatus", "rule", &rule])).unwrap();
    assert_eq!(status["status"], "running", "{status}");
    let topo: Json = serde_json::from_str(&ok(&s, &["gettopo", "rule", &rule])).unwrap();
    assert!(topo["sources"].is_array(), "{topo}");
    ok(&s, &["stop", "rule", &rule]);
    assert_eq!(s.status(&rule)["status"], "stopped");
    ok(&s, &["start", "rule", &rule]);
    ok(&s, &["restart", "rule", &rule]);
    assert_eq!(s.status(&rule)["status"], "running");
    let shown: Json = serde_json::from_str(&ok(&s, &["describe", "rule", &rule])).unwrap();
    assert_eq!(shown["id"], rule.as_str());

    // Errors: the server's message on stderr, status 1, nothing changed.
    let e = fails(
        &s,
        &[
            "create",
            "stream",
            "bad",
            "(id bigint) WITH (DATASOURCE=\"x\", TYPE=\"nope\")",
        ],
    );
    assert!(e.contains("nope"), "{e}");
    assert!(!ok(&s, &["show", "streams"]).contains("bad"));
    let e = fails(
        &s,
        &[
            "create",
            "rule",
            "other",
            &format!(r#"{{"id": "x", "sql": "SELECT * FROM {st}", "actions": [{{"log": {{}}}}]}}"#),
        ],
    );
    assert!(e.contains("differ"), "{e}");
    let e = fails(&s, &["getstatus", "rule", "missing_rule"]);
    assert!(e.contains("missing_rule"), "{e}");

    // drop, then the listings are empty again.
    ok(&s, &["drop", "rule", &rule]);
    assert_eq!(
        ok(&s, &["show", "rules"]).trim(),
        "No rule definitions are found."
    );
    ok(&s, &["drop", "table", &tb]);
    ok(&s, &["drop", "stream", &st]);
    assert_eq!(
        ok(&s, &["show", "streams"]).trim(),
        "No stream definitions are found."
    );
    let none: Json = serde_json::from_str(&ok(&s, &["show", "streams", "--json"])).unwrap();
    assert_eq!(none, Json::Array(vec![]));

    // The import status, and a server that is not there.
    let st: Json = serde_json::from_str(&ok(&s, &["getstatus", "import"])).unwrap();
    assert!(st.is_object(), "{st}");
    let o = Command::new(oort_bin())
        .args([
            "show",
            "rules",
            "--port",
            &oort_tests::free_port().to_string(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot reach"));
}

#[test]
fn shell_completions_are_printed() {
    for shell in ["bash", "zsh", "fish"] {
        let o = Command::new(oort_bin())
            .args(["completions", shell])
            .output()
            .expect("run oort");
        assert!(o.status.success(), "{o:?}");
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("getstatus"), "{shell}: {text}");
    }
}

#[test]
fn kuiper_import_and_export_forms_move_a_ruleset() {
    let a = Server::start();
    let b = Server::start();
    let st = unique("clie");
    let rule = unique("clier");
    a.create_stream(&format!(
        "CREATE STREAM {st} (id bigint) WITH (DATASOURCE=\"{st}\", TYPE=\"memory\")"
    ));
    a.create_rule(
        &serde_json::json!({"id": rule, "sql": format!("SELECT id FROM {st}"),
        "actions": [{"log": {}}]}),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let rs = dir.path().join("ruleset.json");
    let data = dir.path().join("data.json");
    ok(&a, &["export", "ruleset", rs.to_str().unwrap()]);
    ok(&a, &["export", "data", data.to_str().unwrap()]);
    let legacy: Json = serde_json::from_str(&std::fs::read_to_string(&rs).unwrap()).unwrap();
    assert!(legacy["streams"][&st].is_string(), "{legacy}");
    assert!(
        legacy.get("sourceConfig").is_none(),
        "the legacy ruleset only: {legacy}"
    );
    let doc: Json = serde_json::from_str(&std::fs::read_to_string(&data).unwrap()).unwrap();
    assert!(doc["rules"][&rule].is_string(), "{doc}");

    ok(&b, &["import", "ruleset", "-f", rs.to_str().unwrap()]);
    assert!(ok(&b, &["show", "streams"]).lines().any(|l| l == st));
    assert!(ok(&b, &["show", "rules"]).contains(&rule));
    let e = fails(&b, &["import", "stuff", "-f", rs.to_str().unwrap()]);
    assert!(e.contains("import ruleset -f FILE"), "{e}");
}

#[test]
fn query_prints_a_selects_results_and_removes_its_rule() {
    use std::io::{BufRead, BufReader, Write};
    let s = Server::start();
    let st = unique("cliq");
    s.put(
        &format!("/metadata/sources/simulator/confKeys/{st}"),
        r#"{"data": [{"t": 1}, {"t": 2}], "interval": "50ms"}"#,
    );
    s.create_stream(&format!(
        "CREATE STREAM {st} () WITH (TYPE=\"simulator\", DATASOURCE=\"x\", CONF_KEY=\"{st}\")"
    ));
    let mut child = Command::new(oort_bin())
        .args(["query", "--port", &s.port.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run oort query");
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "SHOW STREAMS").unwrap();
    writeln!(stdin, "SELECT t FROM {st} WHERE t > 1;").unwrap();
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut lines = out.lines();
    let mut seen = Vec::new();
    // The SHOW answer, then result rows as the simulator emits them.
    for line in lines.by_ref() {
        let line = line.expect("line");
        let row = line.trim() == r#"{"t":2}"#;
        seen.push(line);
        if row {
            break;
        }
    }
    assert!(seen.iter().any(|l| l.contains(&st)), "{seen:?}");
    let rules = s.get("/rules").json();
    assert_eq!(rules.as_array().map(Vec::len), Some(1), "{rules}");
    writeln!(stdin, "exit").unwrap();
    let st = child.wait().expect("wait");
    assert!(st.success(), "{st:?}");
    // Only rows passing the WHERE came, and the temporary rule is gone.
    for l in lines.map_while(Result::ok) {
        assert_eq!(l.trim(), r#"{"t":2}"#);
    }
    assert_eq!(s.get("/rules").json(), Json::Array(vec![]));
}

/// On a terminal `oort import` shows a progress bar instead of a line per
/// change (run under `script`, which gives it a pseudo-terminal).
#[test]
fn import_on_a_terminal_draws_a_bar_instead_of_lines() {
    let s = Server::start();
    let st = unique("clibar");
    let dir = tempfile::tempdir().expect("tempdir");
    let doc = dir.path().join("doc.json");
    let stream = format!("CREATE STREAM {st} () WITH (DATASOURCE=\"{st}\", TYPE=\"memory\")");
    std::fs::write(
        &doc,
        serde_json::json!({ "streams": { &st: stream } }).to_string(),
    )
    .unwrap();
    let cmd = format!(
        "{} import --partial {} --port {}",
        oort_bin().display(),
        doc.display(),
        s.port
    );
    let piped = Command::new("sh").args(["-c", &cmd]).output().expect("sh");
    assert!(piped.status.success(), "{piped:?}");
    let lines = String::from_utf8_lossy(&piped.stderr);
    assert!(
        lines.contains("[finish]"),
        "a line per change on a pipe: {lines}"
    );
    let tty = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .expect("script (util-linux)");
    let text = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{text}");
    assert!(text.contains("imported"), "{text}");
    assert!(
        text.contains("[=====") && text.contains("1/1"),
        "a bar: {text}"
    );
    assert!(!lines.contains("[====="), "no bar on a pipe: {lines}");
}
