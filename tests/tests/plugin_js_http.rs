//! `fetch` from a JavaScript plugin: a sink made with `oort plugin new --lang
//! js`, switched to fetch the way its README says (build.mjs `FETCH = true`,
//! the manifest's `permissions.outbound`), with the `write` of
//! tests/fixtures/js_fetch_sink/plugin.js (the sink docs/plugins/js.md
//! shows). Installed with a grant for a local HTTP peer, it POSTs every row
//! there and the rule counts them written; installed without one, every
//! request is denied before a connection, the rows are counted as
//! exceptions and drops, the log names the URL, and the instance keeps
//! running (componentize-js's fetch used to trap when the host dropped a
//! denied request's body under it: host/crates/wasm/src/http.rs).
//!
//! Needs the JavaScript toolchain of `scripts/toolchains.sh` under
//! `OORT_TOOLCHAINS` (scripts/test.sh installs it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use oort_tests::http_peer::HttpPeer;
use oort_tests::{oort_bin, run_ok, toolchains, workspace_root, Server};
use serde_json::{json, Value as Json};

const NAME: &str = "jspost";
/// Replaces `from` (which must occur) by `to` in the project file `path`.
fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).expect("write");
}

/// `oort plugin new jspost --lang js --kind sink` in `dir`, switched to
/// fetch, with the fixture's plugin.js; built with its build.sh. Returns
/// the package.
fn build_fetch_sink(dir: &Path) -> PathBuf {
    run_ok(
        Command::new(oort_bin())
            .args(["plugin", "new", NAME, "--lang", "js", "--kind", "sink"])
            .current_dir(dir),
        "oort plugin new",
    );
    let project = dir.join(NAME);
    // The toolchain's componentize-js instead of an `npm install`.
    std::os::unix::fs::symlink(
        toolchains(
            "node/node_modules/@bytecodealliance/componentize-js",
            "scripts/toolchains.sh js",
        )
        .join("node/node_modules"),
        project.join("node_modules"),
    )
    .expect("link node_modules");
    // The README's two changes: fetch on, and where requests may go.
    edit(
        &project.join("build.mjs"),
        "const FETCH = false;",
        "const FETCH = true;",
    );
    let manifest = project.join(format!("{NAME}.json"));
    let mut m: Json =
        serde_json::from_slice(&std::fs::read(&manifest).expect("manifest")).expect("JSON");
    m["description"] = json!("POSTs each batch to url as a JSON array.");
    m["permissions"]["outbound"] = json!(["http://*:*", "https://*:*"]);
    m["properties"] = json!([{ "name": "url", "type": "string", "optional": false,
        "hint": { "en_US": "The http:// or https:// URL to POST to." } }]);
    std::fs::write(&manifest, m.to_string()).expect("write manifest");
    std::fs::copy(
        workspace_root().join("tests/fixtures/js_fetch_sink/plugin.js"),
        project.join("src/plugin.js"),
    )
    .expect("copy plugin.js");
    // `url` is required: the check validates a sample that has one.
    edit(
        &project.join("build.sh"),
        &format!("plugin check {NAME}.wasm"),
        &format!(r#"plugin check {NAME}.wasm --props '{{"url": "http://127.0.0.1:8080/in"}}'"#),
    );
    let out = run_ok(
        Command::new("bash")
            .arg(project.join("build.sh"))
            .env("OORT", oort_bin()),
        "jspost/build.sh",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("checks passed"), "{text}");
    let zip = project.join(format!("{NAME}.zip"));
    assert!(zip.is_file(), "{text}");
    zip
}

/// Installs the package with these outbound grants (from a file URI: an
/// upload cannot carry grants), and a stream of rows {"n": 1}, {"n": 2}...
fn install(s: &Server, zip: &Path, outbound: &[String], rows: usize, repeat: bool) {
    let body = json!({ "name": NAME, "file": format!("file://{}", zip.display()),
                       "grants": { "outbound": outbound } });
    s.expect("POST", "/plugins/sinks", Some(&body.to_string()), 201);
    let info = s.get(&format!("/plugins/sinks/{NAME}")).json();
    assert_eq!(
        info["permissions_granted"]["outbound"],
        json!(outbound),
        "{info}"
    );
    let data: Vec<Json> = (1..=rows).map(|n| json!({ "n": n })).collect();
    s.expect(
        "PUT",
        "/metadata/sources/simulator/confKeys/rows",
        Some(&json!({ "data": data, "interval": "20ms", "loop": repeat }).to_string()),
        200,
    );
    s.create_stream(r#"CREATE STREAM rows () WITH (TYPE="simulator", CONF_KEY="rows")"#);
}

/// The rows the peer received: each body is a JSON array of rows.
fn received(peer: &HttpPeer) -> Vec<Json> {
    peer.accepted()
        .iter()
        .flat_map(|r| {
            let body: Json = serde_json::from_slice(&r.body).unwrap_or_else(|e| {
                panic!("body not JSON ({e}): {}", String::from_utf8_lossy(&r.body))
            });
            body.as_array().cloned().unwrap_or_else(|| vec![body])
        })
        .collect()
}

#[test]
fn a_js_sink_posts_with_fetch_where_granted_and_is_denied_elsewhere() {
    let dir = tempfile::Builder::new()
        .prefix("oort-plugin-js-http-")
        .tempdir_in(std::env::temp_dir())
        .expect("tempdir");
    let zip = build_fetch_sink(dir.path());

    // Granted: every row arrives, in one POST per batch, and is counted out.
    let peer = HttpPeer::start();
    let s = Server::start();
    let addr = peer.base.trim_start_matches("http://").to_string();
    install(&s, &zip, &[format!("http://{addr}")], 5, false);
    s.create_rule(&json!({
        "id": "granted",
        "sql": "SELECT n FROM rows",
        "actions": [{ NAME: { "url": format!("{}/in", peer.base), "sendSingle": true } }],
    }));
    let want: Vec<Json> = (1..=5).map(|n| json!({ "n": n })).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while received(&peer) != want {
        assert!(
            Instant::now() < deadline && received(&peer).len() < want.len(),
            "the peer got {:?}; status {:#}\nlog:\n{}",
            received(&peer),
            s.status("granted"),
            s.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = peer.accepted();
    assert!(
        got.iter().all(|r| r.method == "POST" && r.path == "/in"),
        "{got:?}"
    );
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    let st = s.wait_status("granted", "5 rows written", |st| {
        st["sink_jspost_0_0_records_out_total"] == 5
    });
    assert_eq!(st["sink_jspost_0_0_exceptions_total"], 0, "{st:#}");
    assert_eq!(st["sink_jspost_0_0_records_dropped_total"], 0, "{st:#}");
    assert_eq!(st["sink_jspost_0_0_plugin_failures_total"], 0.0, "{st:#}");
    drop(s);

    // Not granted (the plugin may reach another port only): no request
    // reaches the peer, the writes fail and their rows are dropped, the
    // log names the URL. Rows keep coming (`loop`), so many denied POSTs
    // run through one instance, which must not trap.
    let denied = HttpPeer::start();
    let s = Server::start();
    install(&s, &zip, &["http://127.0.0.1:9".to_string()], 3, true);
    s.create_rule(&json!({
        "id": "denied",
        "sql": "SELECT n FROM rows",
        "actions": [{ NAME: { "url": format!("{}/in", denied.base), "sendSingle": true,
                              "retryCount": 0 } }],
    }));
    let st = s.wait_status("denied", "30 denied writes", |st| {
        st["sink_jspost_0_0_plugin_calls_total"]
            .as_f64()
            .unwrap_or(0.0)
            >= 30.0
            || st["status"] != "running"
    });
    assert_eq!(st["status"], "running", "{st:#}\nlog:\n{}", s.log());
    assert_eq!(st["sink_jspost_0_0_plugin_failures_total"], 0.0, "{st:#}");
    assert_eq!(st["sink_jspost_0_0_records_out_total"], 0, "{st:#}");
    assert!(
        st["sink_jspost_0_0_exceptions_total"].as_u64().unwrap_or(0) >= 1
            && st["sink_jspost_0_0_records_dropped_total"]
                .as_u64()
                .unwrap_or(0)
                >= 1,
        "{st:#}"
    );
    let last = st["sink_jspost_0_0_last_exception"]
        .as_str()
        .unwrap_or_default();
    assert!(
        last.contains(&format!("POST {}/in: NetworkError", denied.base)),
        "{st:#}"
    );
    let addr = denied.base.trim_start_matches("http://");
    let log = s.wait_log("the denial with its URL", |l| {
        l.contains("HTTP request denied (not granted)")
            && l.contains(&format!("plugin={NAME}"))
            && l.contains(&format!("url=http://{addr}"))
    });
    assert!(!log.contains("trapped"), "{log}");
    assert!(denied.accepted().is_empty(), "the denied peer was reached");
}
