//! Data import/export end to end: full, partial, broken documents, plugins
//! fetched by URI (file:// and a local HTTP server) with per-plugin status,
//! async import with progress and cancel, stop=1, export by rule ids, JSON
//! and YAML round trips, the documented eKuiper examples, the CLI.
//!
//! Every server here starts without built-in plugins so the `random` plugin
//! (from `builtin-plugins/dist`, see `builtin-plugins/build.sh`) can be
//! installed by an import.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use oort_tests::{oort_bin, workspace_root, Resp, Server};
use serde_json::{json, Value as Json};

fn start() -> Server {
    // Same value from every test: a directory that does not exist.
    std::env::set_var(
        "OORT__PLUGINS__BUILTIN_DIR",
        "/nonexistent/oort-test-builtins",
    );
    Server::start()
}

fn dist(file: &str) -> PathBuf {
    let p = workspace_root().join("builtin-plugins/dist").join(file);
    assert!(
        p.exists(),
        "{} is missing: run builtin-plugins/build.sh",
        p.display()
    );
    p
}

/// Zips `files` (name, bytes) into `dir/<zip_name>` (flat).
fn make_zip(dir: &Path, zip_name: &str, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let stage = dir.join(format!("{zip_name}.d"));
    std::fs::create_dir_all(&stage).unwrap();
    for (n, b) in files {
        std::fs::write(stage.join(n), b).unwrap();
    }
    let out = dir.join(zip_name);
    let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
    let ok = Command::new("zip")
        .arg("-q")
        .arg(&out)
        .args(&names)
        .current_dir(&stage)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        let st = Command::new("python3")
            .args(["-m", "zipfile", "-c"])
            .arg(&out)
            .args(&names)
            .current_dir(&stage)
            .status()
            .expect("zip or python3 is needed to build test packages");
        assert!(st.success());
    }
    out
}

fn random_zip(dir: &Path) -> PathBuf {
    make_zip(
        dir,
        "random.zip",
        &[
            ("random.wasm", std::fs::read(dist("random.wasm")).unwrap()),
            ("random.json", std::fs::read(dist("random.json")).unwrap()),
        ],
    )
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn file_uri(p: &Path) -> String {
    format!("file://{}", p.display())
}

/// A tiny HTTP server serving the files of `dir` (GET /<name>).
fn http_server(dir: PathBuf) -> String {
    gated_http_server(dir, None)
}

/// [`http_server`] whose answers wait until `gate` gives a go (or closes).
fn gated_http_server(dir: PathBuf, gate: Option<std::sync::mpsc::Receiver<()>>) -> String {
    let gate = gate.map(|g| std::sync::Arc::new(std::sync::Mutex::new(g)));
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let dir = dir.clone();
            let gate = gate.clone();
            std::thread::spawn(move || {
                if let Some(g) = &gate {
                    if let Ok(rx) = g.lock() {
                        let _ = rx.recv();
                    }
                }
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let req = String::from_utf8_lossy(&buf).to_string();
                let path = req
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/');
                let resp = match std::fs::read(dir.join(path)) {
                    Ok(body) => {
                        let mut r = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        r.extend_from_slice(&body);
                        r
                    }
                    Err(_) => {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = c.write_all(&resp);
            });
        }
    });
    base
}

fn body_of(doc: &Json) -> String {
    json!({ "content": doc.to_string() }).to_string()
}

fn import(s: &Server, query: &str, doc: &Json) -> Resp {
    s.post(&format!("/data/import{query}"), &body_of(doc))
}

/// The per-item object of a failed import (the JSON in `message`).
fn errors_of(r: &Resp) -> Json {
    assert_eq!(r.status, 400, "{}", r.body);
    let msg = r.json()["message"].as_str().unwrap().to_string();
    serde_json::from_str(&msg).unwrap_or_else(|e| panic!("message is not JSON ({e}): {msg}"))
}

fn non_empty(errors: &Json) -> Vec<String> {
    let mut v = Vec::new();
    for (s, items) in errors.as_object().unwrap() {
        for (k, m) in items.as_object().unwrap() {
            if m.as_str().is_some_and(|m| !m.is_empty()) {
                v.push(format!("{s}.{k}"));
            }
        }
    }
    v.sort();
    v
}

const SECTIONS: [&str; 13] = [
    "streams",
    "tables",
    "rules",
    "nativePlugins",
    "portablePlugins",
    "sourceConfig",
    "sinkConfig",
    "connectionConfig",
    "Service",
    "Schema",
    "uploads",
    "scripts",
    "wasmPlugins",
];

/// eKuiper's documented example (docs/en_US/api/restapi/data.md); the
/// plugin URLs are replaced by files that do not exist.
fn ekuiper_example() -> Json {
    json!({
        "streams": {"demo": "CREATE STREAM demo () WITH (DATASOURCE=\"users\", FORMAT=\"JSON\")"},
        "tables": {"T110": "\n CREATE TABLE T110\n (\n S1 string\n )\n WITH (DATASOURCE=\"test.json\", FORMAT=\"json\", TYPE=\"file\", KIND=\"scan\", );\n "},
        "rules": {
            "rule1": "{\"id\": \"rule1\",\"sql\": \"SELECT * FROM demo\",\"actions\": [{\"log\": {}}]}",
            "rule2": "{\"id\": \"rule2\",\"sql\": \"SELECT * FROM demo\",\"actions\": [{  \"log\": {}}]}"
        },
        "nativePlugins": {
            "functions_image": "{\"name\":\"image\",\"file\":\"file:///nonexistent/functions/image_amd64.zip\",\"shellParas\":[]}",
            "sources_video": "{\"name\":\"video\",\"file\":\"file:///nonexistent/sources/video_amd64.zip\",\"shellParas\":[]}"
        },
        "portablePlugins": {},
        "sourceConfig": {"mqtt": "{\"td\":{\"insecureSkipVerify\":false,\"password\":\"public\",\"protocolVersion\":\"3.1.1\",\"qos\":1,\"server\":\"tcp://broker.emqx.io:1883\",\"username\":\"admin\"},\"test\":{\"insecureSkipVerify\":false,\"password\":\"public\",\"protocolVersion\":\"3.1.1\",\"qos\":1,\"server\":\"tcp://127.0.0.1:1883\",\"username\":\"admin\"}}"},
        "sinkConfig": {"edgex": "{\"test\":{\"bufferLength\":1024,\"contentType\":\"application/json\",\"enableCache\":false,\"format\":\"json\",\"messageType\":\"event\",\"omitIfEmpty\":false,\"port\":6379,\"protocol\":\"redis\",\"sendSingle\":true,\"server\":\"localhost\",\"topic\":\"application\",\"type\":\"redis\"}}"},
        "connectionConfig": {},
        "Service": {},
        "Schema": {},
        "uploads": {},
        "scripts": {"area": "{\"id\":\"area\",\"description\":\"calculate area\",\"script\":\"function area(x, y) { return x * y; }\",\"isAgg\":false}"}
    })
}

/// eKuiper's documented YAML (v2) example.
const EKUIPER_YAML: &str = r#"sourceConfig:
    sources.mqtt.mqttconf1:
        connectionSelector: mqttcon
        qos: 1
        sourceType: stream
connectionConfig:
    connections.mqtt.mqttcon:
        insecureSkipVerify: false
        protocolVersion: 3.1.1
        server: tcp://127.0.0.1:1883
streams:
    mqttstream1:
        sql: ' CREATE STREAM mqttstream1 ()       WITH (DATASOURCE="topic1", FORMAT="json", CONF_KEY="mqttconf1", TYPE="mqtt", SHARED="false", );'
rules:
    rule1:
        triggered: false
        id: rule1
        sql: select * from mqttstream1
        actions:
            - log: {}
"#;

#[test]
fn ekuiper_json_example_imports_with_plugin_failures_reported() {
    let s = start();
    let r = import(&s, "", &ekuiper_example());
    let errors = errors_of(&r);
    let keys: Vec<&str> = errors
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, SECTIONS);
    assert_eq!(
        non_empty(&errors),
        [
            "nativePlugins.functions_image",
            "nativePlugins.sources_video",
            "scripts.area"
        ]
    );
    let video = errors["nativePlugins"]["sources_video"].as_str().unwrap();
    assert!(
        video.contains("/nonexistent/sources/video_amd64.zip"),
        "{video}"
    );
    assert!(errors["scripts"]["area"]
        .as_str()
        .unwrap()
        .contains("not supported"));
    // Everything else was applied.
    assert_eq!(s.get("/streams").json(), json!(["demo"]));
    assert_eq!(s.get("/tables").json(), json!(["T110"]));
    let rules: Vec<String> = s
        .get("/rules")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(rules, ["rule1", "rule2"]);
    assert_eq!(
        s.get("/rules/rule2").body,
        "{\"id\": \"rule2\",\"sql\": \"SELECT * FROM demo\",\"actions\": [{  \"log\": {}}]}"
    );
    let mqtt = s.get("/metadata/sources/yaml/mqtt").json();
    assert_eq!(mqtt["test"]["server"], "tcp://127.0.0.1:1883");
    assert_eq!(mqtt["td"]["password"], "public");
    // The status is the same object.
    assert_eq!(s.get("/data/import/status").json(), errors);
    // The export holds the applied items (the failed plugins and the script are not there).
    let exp: Json = serde_json::from_str(&s.get("/data/export").body).unwrap();
    assert_eq!(exp["streams"], ekuiper_example()["streams"]);
    assert_eq!(exp["tables"], ekuiper_example()["tables"]);
    assert_eq!(exp["rules"], ekuiper_example()["rules"]);
    assert_eq!(exp["sinkConfig"], ekuiper_example()["sinkConfig"]);
    assert_eq!(exp["nativePlugins"], json!({}));
    assert_eq!(exp["scripts"], json!({}));
}

#[test]
fn ekuiper_yaml_example_imports() {
    let s = start();
    let r = s.post(
        "/v2/data/import",
        &json!({ "content": EKUIPER_YAML }).to_string(),
    );
    assert_eq!(r.status, 200, "{}\n{}", r.body, s.log());
    assert_eq!(r.body, "success");
    assert_eq!(s.get("/streams").json(), json!(["mqttstream1"]));
    let st = s.status("rule1");
    assert_eq!(st["status"], "stopped");
    assert_eq!(
        s.get("/metadata/sources/yaml/mqtt").json()["mqttconf1"]["connectionSelector"],
        "mqttcon"
    );
    let y = s.get("/v2/data/export").body;
    assert!(y.contains("connections.mqtt.mqttcon:"), "{y}");
    assert!(y.contains("sources.mqtt.mqttconf1:"), "{y}");
    // YAML round trip: importing the export changes nothing.
    let r = s.post("/v2/data/import", &json!({ "content": y }).to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.get("/v2/data/export").body, y);
}

#[test]
fn broken_document_changes_nothing() {
    let s = start();
    s.create_stream("CREATE STREAM keep () WITH (DATASOURCE=\"k\", TYPE=\"memory\")");
    s.create_rule(&json!({"id":"rk","sql":"SELECT * FROM keep","actions":[{"nop":{}}]}));
    let doc = json!({
        "streams": {
            "demo": "CREATE STWREAM demo () WITH (DATASOURCE=\"users\")",
            "fine": "CREATE STREAM fine () WITH (DATASOURCE=\"f\", TYPE=\"memory\")"
        },
        "rules": {"r1": "{\"id\":\"r1\",\"sql\":\"SELECT * FROM fine\",\"actions\":[{\"nop\":{}}]}",
                  "r2": "{\"id\":\"r2\",\"sql\":\"SELECT FROM\",\"actions\":[{\"nop\":{}}]}"},
        "sinkConfig": {"mqtt": "{\"remote\": 5}"}
    });
    for q in ["", "?partial=1"] {
        let r = import(&s, q, &doc);
        let errors = errors_of(&r);
        assert_eq!(
            non_empty(&errors),
            ["rules.r2", "sinkConfig.mqtt", "streams.demo"],
            "{q}"
        );
        assert!(errors["streams"]["demo"]
            .as_str()
            .unwrap()
            .contains("STWREAM"));
        assert_eq!(s.get("/streams").json(), json!(["keep"]));
        assert_eq!(s.status("rk")["status"], "running");
        assert_eq!(s.get("/data/import/status").json(), errors);
    }
    // Unreadable documents.
    let r = s.post(
        "/data/import",
        &json!({"content": "{\"streams\":"}).to_string(),
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .starts_with("configuration unmarshal with error"));
    let r = s.post(
        "/data/import",
        &json!({"content": "{\"stream\":{}}"}).to_string(),
    );
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("unknown section(s) stream"),
        "{}",
        r.body
    );
    let r = s.post("/data/import", "{}");
    assert_eq!(
        r.json()["message"],
        "Invalid body: must specify content or file"
    );
    let r = s.post("/data/import", r#"{"content":"{}","file":"file:///x"}"#);
    assert_eq!(r.json()["message"], "Cannot specify both content and file");
    let r = s.post("/data/import", r#"{"file":"file:///nonexistent/doc.json"}"#);
    assert_eq!(r.status, 400);
    assert!(r.body.contains("/nonexistent/doc.json"));
    assert_eq!(s.get("/streams").json(), json!(["keep"]));
}

#[test]
fn full_import_resets_and_partial_keeps() {
    let s = start();
    s.create_stream("CREATE STREAM old () WITH (DATASOURCE=\"o\", TYPE=\"memory\")");
    s.create_rule(&json!({"id":"rold","sql":"SELECT * FROM old","actions":[{"nop":{}}]}));
    s.put(
        "/metadata/sinks/mqtt/confKeys/oldkey",
        r#"{"server":"tcp://127.0.0.1:1883"}"#,
    );
    let doc = json!({
        "streams": {"a": "CREATE STREAM a () WITH (DATASOURCE=\"a\", TYPE=\"memory\")"},
        "tables": {},
        "rules": {"ra": "{\"id\":\"ra\",\"sql\":\"SELECT * FROM a\",\"actions\":[{\"nop\":{}}]}",
                  "rb": "{\"id\":\"rb\",\"sql\":\"SELECT * FROM a\",\"actions\":[{\"nop\":{}}],\"triggered\":false}"},
        "sinkConfig": {"mqtt": "{\"remote\":{\"server\":\"tcp://10.0.0.1:1883\"}}"}
    });
    let r = import(&s, "", &doc);
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(j["ErrorMsg"], "");
    assert!(non_empty(&j["ConfigResponse"]).is_empty());
    assert_eq!(s.get("/streams").json(), json!(["a"]));
    assert_eq!(s.get("/rules/rold").status, 404);
    assert_eq!(s.status("ra")["status"], "running");
    assert_eq!(s.status("rb")["status"], "stopped");
    let keys = s.get("/metadata/sinks/yaml/mqtt").json();
    assert!(keys.get("oldkey").is_none(), "{keys}");
    assert_eq!(keys["remote"]["server"], "tcp://10.0.0.1:1883");

    // Partial: adds b, replaces ra (now stopped), keeps rb and the conf key.
    let doc2 = json!({
        "streams": {"b": "CREATE STREAM b () WITH (DATASOURCE=\"b\", TYPE=\"memory\")"},
        "rules": {"ra": "{\"id\":\"ra\",\"sql\":\"SELECT * FROM b\",\"actions\":[{\"nop\":{}}],\"triggered\":false}"},
        "sinkConfig": {"mqtt": "{\"other\":{\"server\":\"tcp://10.0.0.2:1883\"}}"}
    });
    let r = import(&s, "?partial=1", &doc2);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.get("/streams").json(), json!(["a", "b"]));
    assert_eq!(s.status("ra")["status"], "stopped");
    assert!(s.get("/rules/ra").body.contains("FROM b"));
    assert_eq!(s.status("rb")["status"], "stopped");
    let keys = s.get("/metadata/sinks/yaml/mqtt").json();
    assert_eq!(keys["remote"]["server"], "tcp://10.0.0.1:1883");
    assert_eq!(keys["other"]["server"], "tcp://10.0.0.2:1883");

    // An all-empty full import resets everything.
    let r = import(&s, "", &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.get("/streams").json(), json!([]));
    assert_eq!(s.get("/rules").json(), json!([]));
}

fn sink_records_in(st: &Json) -> u64 {
    st.as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("sink_") && k.ends_with("_records_in_total"))
        .map(|(_, v)| v.as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn plugins_by_uri_with_per_plugin_status() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let zip = random_zip(dir);
    let sha = sha256(&zip);
    let base = http_server(dir.to_path_buf());
    let gozip = make_zip(
        dir,
        "video.zip",
        &[("video.so", b"\x7fELF fake go plugin".to_vec())],
    );
    let core = make_zip(
        dir,
        "notcomp.zip",
        &[
            ("notcomp.wasm", b"\0asm\x01\0\0\0".to_vec()),
            (
                "notcomp.json",
                br#"{"name":"notcomp","version":"0.1.0","kind":"sink"}"#.to_vec(),
            ),
        ],
    );
    let s = start();
    let doc = json!({
        "streams": {
            "rs": "CREATE STREAM rs () WITH (TYPE=\"random\", DATASOURCE=\"x\", CONF_KEY=\"fast\")",
            "bad": "CREATE STREAM bad () WITH (TYPE=\"badsum\", DATASOURCE=\"x\")"
        },
        "rules": {
            "r1": "{\"id\":\"r1\",\"sql\":\"SELECT * FROM rs\",\"actions\":[{\"nop\":{}}]}",
            "r2": "{\"id\":\"r2\",\"sql\":\"SELECT * FROM rs\",\"actions\":[{\"missing\":{}}]}",
            "r3": "{\"id\":\"r3\",\"sql\":\"SELECT * FROM bad\",\"actions\":[{\"nop\":{}}]}"
        },
        "sourceConfig": {"random": "{\"fast\":{\"interval\":20,\"pattern\":{\"count\":1}}}"},
        "wasmPlugins": {
            "sources_random": json!({"name":"random","file": format!("{base}/random.zip"),"sha256": sha}).to_string(),
            "sinks_missing": json!({"name":"missing","file": file_uri(&dir.join("missing.zip"))}).to_string(),
            "sources_badsum": {"name":"badsum","file": file_uri(&zip),"sha256":"0000"},
            "sinks_notcomp": {"name":"notcomp","file": file_uri(&core)},
            "sinks_gone": {"name":"gone","file": format!("{base}/gone.zip")}
        },
        "nativePlugins": {
            "sources_video": json!({"name":"video","file": file_uri(&gozip),"shellParas":[]}).to_string()
        }
    });
    let r = import(&s, "", &doc);
    let errors = errors_of(&r);
    assert_eq!(
        non_empty(&errors),
        [
            "nativePlugins.sources_video",
            "rules.r2",
            "rules.r3",
            "streams.bad",
            "wasmPlugins.sinks_gone",
            "wasmPlugins.sinks_missing",
            "wasmPlugins.sinks_notcomp",
            "wasmPlugins.sources_badsum",
        ],
        "{errors:#}"
    );
    let w = &errors["wasmPlugins"];
    assert!(
        w["sinks_missing"].as_str().unwrap().contains("missing.zip"),
        "{w}"
    );
    assert!(
        w["sources_badsum"]
            .as_str()
            .unwrap()
            .contains("sha256 mismatch"),
        "{w}"
    );
    assert!(
        w["sinks_notcomp"]
            .as_str()
            .unwrap()
            .contains("core WebAssembly module"),
        "{w}"
    );
    assert!(w["sinks_gone"].as_str().unwrap().contains("404"), "{w}");
    let video = errors["nativePlugins"]["sources_video"].as_str().unwrap();
    assert!(
        video.contains("Go plugin (video.so)") && video.contains("WebAssembly component"),
        "{video}"
    );
    // Streams and rules behind a failed plugin name it.
    let bad = errors["streams"]["bad"].as_str().unwrap();
    assert!(
        bad.contains("source plugin badsum failed to install") && bad.contains("sha256 mismatch"),
        "{bad}"
    );
    let r2 = errors["rules"]["r2"].as_str().unwrap();
    assert!(r2.contains("sink plugin missing failed to install"), "{r2}");
    let r3 = errors["rules"]["r3"].as_str().unwrap();
    assert!(
        r3.contains("stream bad was not imported") && r3.contains("badsum"),
        "{r3}"
    );
    assert_eq!(s.get("/data/import/status").json(), errors);

    // The plugin installed over HTTP runs a rule.
    assert_eq!(s.get("/plugins/sources").json(), json!(["random"]));
    s.wait_status("r1", "records through the random plugin", |st| {
        sink_records_in(st) > 0
    });

    // Partial import leaves an installed plugin alone even if the entry is broken now.
    let doc2 = json!({"wasmPlugins": {"sources_random": {"name":"random","file": file_uri(&dir.join("nope.zip"))}}});
    let r = import(&s, "?partial=1", &doc2);
    assert_eq!(r.status, 200, "{}", r.body);
    let info = s.get("/plugins/sources/random").json();
    assert_eq!(info["file"], format!("{base}/random.zip"));
}

#[test]
fn export_by_rule_ids_and_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = random_zip(tmp.path());
    let s = start();
    let doc = json!({
        "streams": {
            "s1": "CREATE STREAM s1 () WITH (DATASOURCE=\"t1\", TYPE=\"mqtt\", CONF_KEY=\"local\")",
            "s2": "CREATE STREAM s2 () WITH (DATASOURCE=\"t2\", TYPE=\"memory\")",
            "rs": "CREATE STREAM rs () WITH (TYPE=\"random\", DATASOURCE=\"x\")"
        },
        "tables": {"t1": "CREATE TABLE t1 (id BIGINT) WITH (DATASOURCE=\"lookup\", TYPE=\"memory\", KIND=\"lookup\", KEY=\"id\")"},
        "rules": {
            "r1": "{\"id\":\"r1\",\"sql\":\"SELECT * FROM s1\",\"actions\":[{\"nop\":{}}],\"triggered\":false}",
            "r2": "{\"id\":\"r2\",\"sql\":\"SELECT * FROM s2\",\"actions\":[{\"mqtt\":{\"resourceId\":\"remote\",\"topic\":\"x\"}}],\"triggered\":false}",
            "r3": "{\"id\":\"r3\",\"sql\":\"SELECT * FROM rs\",\"actions\":[{\"log\":{}}],\"triggered\":false}"
        },
        "sourceConfig": {"mqtt": "{\"local\":{\"server\":\"tcp://127.0.0.1:1883\",\"connectionSelector\":\"conn1\"},\"unused\":{\"qos\":0}}"},
        "sinkConfig": {"mqtt": "{\"remote\":{\"server\":\"tcp://127.0.0.1:1883\"},\"unused\":{\"qos\":1}}"},
        "connectionConfig": {"mqtt": "{\"conn1\":{\"server\":\"tcp://127.0.0.1:1883\"},\"conn2\":{\"server\":\"tcp://127.0.0.1:1884\"}}"},
        "wasmPlugins": {"sources_random": {"name":"random","file": file_uri(&zip)}}
    });
    let r = import(&s, "", &doc);
    assert_eq!(r.status, 200, "{}", r.body);

    let part: Json = serde_json::from_str(&s.post("/data/export", r#"["r2"]"#).body).unwrap();
    assert_eq!(
        part["streams"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["s2"]
    );
    assert_eq!(
        part["rules"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["r2"]
    );
    assert_eq!(
        part["sinkConfig"],
        json!({"mqtt": "{\"remote\":{\"server\":\"tcp://127.0.0.1:1883\"}}"})
    );
    assert_eq!(part["sourceConfig"], json!({}));
    assert_eq!(part["connectionConfig"], json!({}));
    assert_eq!(part["wasmPlugins"], json!({}));

    let part: Json = serde_json::from_str(&s.post("/data/export", r#"["r1","r3"]"#).body).unwrap();
    assert_eq!(
        part["streams"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["rs", "s1"]
    );
    assert_eq!(
        part["sourceConfig"],
        json!({"mqtt": "{\"local\":{\"server\":\"tcp://127.0.0.1:1883\",\"connectionSelector\":\"conn1\"}}"})
    );
    assert_eq!(
        part["connectionConfig"],
        json!({"mqtt": "{\"conn1\":{\"server\":\"tcp://127.0.0.1:1883\"}}"})
    );
    let plugin: Json =
        serde_json::from_str(part["wasmPlugins"]["sources_random"].as_str().unwrap()).unwrap();
    assert_eq!(plugin["file"], file_uri(&zip));
    assert_eq!(plugin["sha256"], sha256(&zip));
    assert_eq!(s.post("/data/export", r#"["nope"]"#).status, 404);

    // Round trip: export, import into an empty server, export again.
    let r = s.get("/data/export");
    assert_eq!(r.status, 200);
    let first = r.body;
    let exported: Json = serde_json::from_str(&first).unwrap();
    assert_eq!(
        exported.as_object().unwrap().keys().collect::<Vec<_>>(),
        SECTIONS
    );
    let s2 = start();
    let r = s2.post("/data/import", &json!({ "content": first }).to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s2.get("/data/export").body, first);

    // The YAML form round-trips too.
    let y = s.get("/v2/data/export").body;
    let s3 = start();
    let r = s3.post("/v2/data/import", &json!({ "content": y }).to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s3.get("/v2/data/export").body, y);
    assert_eq!(s3.get("/streams").json(), json!(["rs", "s1", "s2"]));
}

fn wait_task(s: &Server, id: &str) -> Json {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let t = s
            .expect("GET", &format!("/async/task/{id}"), None, 200)
            .json();
        if ["finish", "error", "cancel"].contains(&t["status"].as_str().unwrap()) {
            return t;
        }
        assert!(Instant::now() < deadline, "task {id} did not end: {t}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn async_import_with_progress_and_cancel() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = random_zip(tmp.path());
    // The plugin's download waits for the test: the first import is still
    // running while the second is cancelled, however fast the machine.
    let (go, gate) = std::sync::mpsc::channel::<()>();
    let base = gated_http_server(tmp.path().to_path_buf(), Some(gate));
    let name = zip.file_name().unwrap().to_string_lossy().to_string();
    let s = start();
    let doc = json!({
        "streams": {"rs": "CREATE STREAM rs () WITH (TYPE=\"random\", DATASOURCE=\"x\")"},
        "rules": {"r1": "{\"id\":\"r1\",\"sql\":\"SELECT * FROM rs\",\"actions\":[{\"nop\":{}}],\"triggered\":false}"},
        "wasmPlugins": {"sources_random": {"name":"random","file": format!("{base}/{name}")}}
    });
    let a = s
        .expect("POST", "/async/data/import", Some(&body_of(&doc)), 200)
        .json();
    let id_a = a["id"].as_str().unwrap().to_string();
    assert!(id_a.starts_with("dataImport-"), "{id_a}");
    // Wait until the first import holds the import lock: it is in its
    // plugins phase, blocked on the gated download. (Submitting the second
    // before that lets the runtime start either one first.)
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = s
            .expect("GET", &format!("/async/task/{id_a}"), None, 200)
            .json();
        if t["progress"]["phase"] == "plugins" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "first import never reached its plugins: {t}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A second import queues behind the first; cancel it while it waits.
    let b = s.expect("POST", "/async/data/import?partial=1", Some(&body_of(&json!({"streams": {"zz": "CREATE STREAM zz () WITH (DATASOURCE=\"z\", TYPE=\"memory\")"}}))), 200).json();
    let id_b = b["id"].as_str().unwrap().to_string();
    assert_ne!(id_a, id_b);
    let r = s.post(&format!("/async/task/{id_b}/cancel"), "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "cancel success");
    drop(go);

    let ta = wait_task(&s, &id_a);
    assert_eq!(ta["status"], "finish", "{ta}");
    assert_eq!(ta["progress"]["plugins"]["total"], 1);
    assert_eq!(ta["progress"]["plugins"]["installed"], 1);
    assert_eq!(ta["progress"]["items"]["total"], 2);
    assert_eq!(ta["progress"]["items"]["applied"], 2);
    assert!(ta["createdTimestamp"].as_i64().unwrap() > 0);
    let tb = wait_task(&s, &id_b);
    assert_eq!(tb["status"], "cancel", "{tb}");
    assert_eq!(s.get("/streams").json(), json!(["rs"]));
    // Ended tasks cannot be cancelled; unknown ones are 404.
    assert_eq!(
        s.post(&format!("/async/task/{id_a}/cancel"), "").status,
        400
    );
    assert_eq!(s.get("/async/task/nope").status, 404);

    // An async import with errors ends in `error` with the per-item object.
    let bad = json!({"wasmPlugins": {"sinks_x": {"name":"x","file":"file:///nonexistent/x.zip"}}});
    let t = s
        .expect(
            "POST",
            "/async/data/import?partial=1",
            Some(&body_of(&bad)),
            200,
        )
        .json();
    let t = wait_task(&s, t["id"].as_str().unwrap());
    assert_eq!(t["status"], "error");
    assert!(
        t["errors"]["wasmPlugins"]["sinks_x"]
            .as_str()
            .unwrap()
            .contains("x.zip"),
        "{t}"
    );
}

#[test]
fn concurrent_partial_imports_keep_the_highest_version() {
    let s = start();
    let r = import(
        &s,
        "",
        &json!({"streams": {"rs": "CREATE STREAM rs () WITH (DATASOURCE=\"r\", TYPE=\"memory\")"}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let base = s.base.clone();
    let handles: Vec<_> = ["1.0.0", "2.0.0", "3.0.0", "1.5.0", "2.5.0"]
        .into_iter()
        .map(|v| {
            let base = base.clone();
            std::thread::spawn(move || {
                let rule = json!({"id":"raceTest","version":v,"sql":"SELECT * FROM rs","actions":[{"nop":{}}]});
                let doc = json!({"rules": {"raceTest": rule.to_string()}});
                reqwest::blocking::Client::new()
                    .post(format!("{base}/data/import?partial=1"))
                    .body(body_of(&doc))
                    .send()
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            })
        })
        .collect();
    for h in handles {
        let code = h.join().unwrap();
        assert!(code == 200 || code == 400, "{code}");
    }
    let rules = s.get("/rules").json();
    assert_eq!(rules[0]["version"], "3.0.0", "{rules}");
    assert_eq!(s.status("raceTest")["status"], "running");
}

#[test]
fn stop_finishes_then_exits_with_100() {
    let mut s = start();
    let doc = json!({
        "streams": {"a": "CREATE STREAM a () WITH (DATASOURCE=\"a\", TYPE=\"memory\")"},
        "rules": {"ra": "{\"id\":\"ra\",\"sql\":\"SELECT * FROM a\",\"actions\":[{\"nop\":{}}]}"}
    });
    let r = import(&s, "?stop=1", &doc);
    assert_eq!(r.status, 200, "{}", r.body);
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Ok(Some(st)) = s.child.try_wait() {
            break st.code();
        }
        assert!(
            Instant::now() < deadline,
            "server did not exit\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(100), "{}", s.log());
    let s2 = Server::start_in(&s.data_dir);
    assert_eq!(s2.get("/streams").json(), json!(["a"]));
    assert_eq!(s2.status("ra")["status"], "running");
    let st = s2.get("/data/import/status").json();
    assert!(non_empty(&st).is_empty(), "{st}");
    drop(s2);
    s.kill();
}

#[test]
fn legacy_ruleset_import_and_export() {
    let s = start();
    s.create_stream("CREATE STREAM a () WITH (DATASOURCE=\"a\", TYPE=\"memory\")");
    s.create_rule(&json!({"id":"r1","sql":"SELECT * FROM a","actions":[{"nop":{}}]}));
    let doc = json!({
        "streams": {"a": "CREATE STREAM a () WITH (DATASOURCE=\"a2\", TYPE=\"memory\")",
                    "b": "CREATE STREAM b () WITH (DATASOURCE=\"b\", TYPE=\"memory\")"},
        "tables": {},
        "rules": {"r1": "{\"id\":\"r1\",\"sql\":\"SELECT * FROM b\",\"actions\":[{\"nop\":{}}]}",
                  "r2": "{\"id\":\"r2\",\"sql\":\"SELECT * FROM b\",\"actions\":[{\"nop\":{}}]}"}
    });
    let r = s.expect("POST", "/ruleset/import", Some(&body_of(&doc)), 200);
    assert_eq!(r.body, "imported 2 streams, 0 tables and 1 rules");
    assert!(s.get("/rules/r1").body.contains("FROM a"));
    let exp: Json = serde_json::from_str(&s.post("/ruleset/export", "").body).unwrap();
    assert_eq!(
        exp.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["streams", "tables", "rules"]
    );
    assert_eq!(exp["rules"].as_object().unwrap().len(), 2);
}

#[test]
fn cli_export_and_import() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start();
    s.create_stream("CREATE STREAM a () WITH (DATASOURCE=\"a\", TYPE=\"memory\")");
    s.create_rule(&json!({"id":"r1","sql":"SELECT * FROM a","actions":[{"nop":{}}]}));
    s.create_stream("CREATE STREAM b () WITH (DATASOURCE=\"b\", TYPE=\"memory\")");
    s.create_rule(&json!({"id":"r2","sql":"SELECT * FROM b","actions":[{"nop":{}}]}));
    let out = tmp.path().join("r1.json");
    let st = Command::new(oort_bin())
        .args(["export", "--rules", "r1", "--server", &s.base, "-o"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let exported: Json = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(
        exported["rules"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["r1"]
    );

    let s2 = start();
    let o = Command::new(oort_bin())
        .args(["import"])
        .arg(&out)
        .args(["--server", &s2.base])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("[finish]"));
    assert_eq!(s2.get("/streams").json(), json!(["a"]));
    assert_eq!(s2.status("r1")["status"], "running");

    // YAML export to stdout, then a partial import of it.
    let o = Command::new(oort_bin())
        .args(["export", "--yaml", "--server", &s.base])
        .output()
        .unwrap();
    assert!(o.status.success());
    let y = tmp.path().join("all.yaml");
    std::fs::write(&y, &o.stdout).unwrap();
    let o = Command::new(oort_bin())
        .args(["import", "--partial"])
        .arg(&y)
        .args(["--server", &s2.base])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(s2.get("/streams").json(), json!(["a", "b"]));

    // A failing import exits non-zero and names the item.
    let bad = tmp.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"streams":{"x":"CREATE STWREAM x () WITH (DATASOURCE=\"x\")"}}"#,
    )
    .unwrap();
    let o = Command::new(oort_bin())
        .args(["import"])
        .arg(&bad)
        .args(["--server", &s2.base])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("streams.x") && err.contains("STWREAM"),
        "{err}"
    );
}

/// Bulk import timing (issue target: 1,000 streams + rules under 10 s).
/// `cargo test -p oort-tests --release --test import_export -- --ignored --nocapture`
#[test]
#[ignore]
fn bulk_import_timing() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = random_zip(tmp.path());
    let n = 1000;
    let mut streams = serde_json::Map::new();
    let mut rules = serde_json::Map::new();
    for i in 0..n {
        streams.insert(
            format!("s{i}"),
            json!(format!(
                "CREATE STREAM s{i} () WITH (DATASOURCE=\"t{i}\", TYPE=\"memory\")"
            )),
        );
        rules.insert(
            format!("r{i}"),
            json!(json!({"id": format!("r{i}"), "sql": format!("SELECT * FROM s{i}"), "actions": [{"nop": {}}]}).to_string()),
        );
    }
    let doc = json!({"streams": streams, "rules": rules,
        "wasmPlugins": {"sources_random": {"name":"random","file": file_uri(&zip)}}});
    let path = tmp.path().join("bulk.json");
    std::fs::write(&path, doc.to_string()).unwrap();
    let s = start();
    let t0 = Instant::now();
    let r = s.post(
        "/data/import",
        &json!({"file": file_uri(&path)}).to_string(),
    );
    let import_time = t0.elapsed();
    assert_eq!(r.status, 200, "{}", &r.body[..r.body.len().min(2000)]);
    let t1 = Instant::now();
    let e = s.get("/data/export");
    let export_time = t1.elapsed();
    assert_eq!(e.status, 200);
    println!(
        "import of {n} streams + {n} rules + 1 plugin: {import_time:?}; export: {export_time:?}"
    );
}

/// A kill -9 in the middle of an import: after the restart the store holds
/// the setup from before the import, whole (the import is one transaction).
#[test]
fn a_crash_during_an_import_leaves_the_previous_setup() {
    let mut s = start();
    s.create_stream("CREATE STREAM before () WITH (DATASOURCE=\"b\", TYPE=\"memory\")");
    s.create_rule(&json!({"id":"rbefore","sql":"SELECT * FROM before","actions":[{"nop":{}}]}));
    let n = 1500;
    let mut streams = serde_json::Map::new();
    let mut rules = serde_json::Map::new();
    for i in 0..n {
        streams.insert(
            format!("c{i}"),
            json!(format!(
                "CREATE STREAM c{i} () WITH (DATASOURCE=\"c{i}\", TYPE=\"memory\")"
            )),
        );
        rules.insert(
            format!("rc{i}"),
            json!(json!({"id": format!("rc{i}"), "sql": format!("SELECT * FROM c{i}"), "actions": [{"nop": {}}]}).to_string()),
        );
    }
    let doc = json!({"streams": streams, "rules": rules});
    let t = s
        .expect("POST", "/async/data/import", Some(&body_of(&doc)), 200)
        .json();
    let id = t["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let t = s
            .expect("GET", &format!("/async/task/{id}"), None, 200)
            .json();
        assert_ne!(
            t["status"], "finish",
            "the import ended before it could be interrupted: {t}"
        );
        if t["progress"]["items"]["applied"].as_u64().unwrap_or(0) >= 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the import did not progress: {t}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    s.kill();
    let s2 = Server::start_in(&s.data_dir);
    assert_eq!(s2.get("/streams").json(), json!(["before"]));
    assert_eq!(s2.get("/rules").json().as_array().map(Vec::len), Some(1));
    assert_eq!(s2.status("rbefore")["status"], "running");
}
