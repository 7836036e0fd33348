//! The plugin author's path, in each language: `oort plugin new` writes a
//! project (its own copy of wit/, no SDK), its `build.sh` builds the
//! component and, through `oort plugin check`, the package; the check refuses
//! bad properties; the packages install into a running server with `oort
//! create plugin`, a rule runs from the new source into the new sink, and
//! `oort drop` uninstalls them.
//!
//! Rust needs cargo (the wasm32-wasip2 target is added by the build); Python,
//! JavaScript and C need the toolchains of `scripts/toolchains.sh` under
//! `OORT_TOOLCHAINS` (scripts/test.sh installs them first).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use oort_tests::{oort_bin, run_ok, toolchains, unique, workspace_root, Server};

/// `oort plugin new NAME --lang LANG --kind KIND` in `dir`, then its build.sh.
fn new_and_build(dir: &Path, name: &str, lang: &str, kind: &str) -> PathBuf {
    run_ok(
        Command::new(oort_bin())
            .args(["plugin", "new", name, "--lang", lang, "--kind", kind])
            .current_dir(dir),
        &format!("oort plugin new {name}"),
    );
    let project = dir.join(name);
    if lang == "js" {
        // The toolchain's componentize-js instead of an `npm install` per test.
        std::os::unix::fs::symlink(
            toolchains("", "scripts/toolchains.sh").join("node/node_modules"),
            project.join("node_modules"),
        )
        .expect("link node_modules");
    }
    let mut path = std::env::var_os("PATH").unwrap_or_default();
    if lang != "rust" {
        let tc = toolchains("", "scripts/toolchains.sh");
        let mut dirs = vec![tc.join("py/bin"), tc.join("cargo/bin")];
        dirs.extend(std::env::split_paths(&path));
        path = std::env::join_paths(dirs).expect("PATH");
    }
    let out = run_ok(
        Command::new("bash")
            .arg(project.join("build.sh"))
            .env("OORT", oort_bin())
            .env("PATH", path)
            // One target dir for every Rust project of the suite: the
            // wit-bindgen build is shared.
            .env(
                "CARGO_TARGET_DIR",
                workspace_root().join("target/plugin-new"),
            ),
        &format!("{name}/build.sh"),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("{name}: ")) && text.contains("checks passed"),
        "{text}"
    );
    let zip = project.join(format!("{name}.zip"));
    assert!(zip.is_file(), "{name}.zip not written:\n{text}");
    zip
}

fn oort(s: &Server, args: &[&str]) -> Output {
    oort_tests::cli(s, args)
}

fn oort_ok(s: &Server, args: &[&str]) -> String {
    let o = oort(s, args);
    assert!(
        o.status.success(),
        "oort {args:?}: {}{}\nlog:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        s.log()
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The whole path for one language.
fn author_path(lang: &str) {
    let tag = unique(lang);
    let tag = &tag[..lang.len() + 9];
    let dir = tempfile::Builder::new()
        .prefix("oort-plugin-new-")
        .tempdir_in(std::env::temp_dir())
        .expect("tempdir");
    let src = format!("{tag}_src");
    let sink = format!("{tag}_sink");
    let src_zip = new_and_build(dir.path(), &src, lang, "source");
    let sink_zip = new_and_build(dir.path(), &sink, lang, "sink");

    // The check refuses what validate refuses, naming the property.
    let bad = Command::new(oort_bin())
        .args(["plugin", "check"])
        .arg(&src_zip)
        .args(["--props", r#"{"interval": 0}"#])
        .output()
        .expect("oort plugin check");
    let text = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL validate") && text.contains("interval must be a positive integer"),
        "{text}"
    );

    let s = Server::start();
    for (kind, name, zip) in [("source", &src, &src_zip), ("sink", &sink, &sink_zip)] {
        if lang == "rust" || lang == "python" {
            // The package uploaded from this machine.
            let out = oort_ok(
                &s,
                &["create", "plugin", kind, name, &zip.display().to_string()],
            );
            assert!(out.contains("is created"), "{out}");
        } else {
            let body = serde_json::json!({ "file": format!("file://{}", zip.display()) });
            oort_ok(&s, &["create", "plugin", kind, name, &body.to_string()]);
        }
    }
    let stream = format!("{tag}_in");
    let rule = format!("{tag}_rule");
    let prefix = format!("<{tag}> ");
    s.create_stream(&format!(
        r#"CREATE STREAM {stream} () WITH (TYPE="{src}", DATASOURCE="demo", CONF_KEY="fast")"#
    ));
    s.create_rule(&serde_json::json!({
        "id": rule,
        "sql": format!("SELECT n, message FROM {stream}"),
        "actions": [{ sink.as_str(): { "prefix": prefix } }],
    }));
    // The sink logs each row after the prefix; the source counts from 1.
    let deadline = Instant::now() + Duration::from_secs(60);
    let want = |n: u32| {
        s.log().lines().any(|l| {
            l.contains(&prefix)
                && l.contains(&format!("\"n\":{n}"))
                && l.contains("\"message\":\"hello\"")
        })
    };
    while !(want(1) && want(3)) {
        assert!(
            Instant::now() < deadline,
            "no rows from {src} through {sink}; status {}\nlog:\n{}",
            s.status(&rule),
            s.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let st = s.status(&rule);
    assert_eq!(st["status"], "running", "{st:#}");
    let exceptions: u64 = st
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| k.ends_with("_exceptions_total"))
                .filter_map(|(_, v)| v.as_u64())
                .sum()
        })
        .unwrap_or(0);
    assert_eq!(exceptions, 0, "{st:#}");
    // A rule with a bad property for the new sink is refused at creation.
    let r = s.post(
        "/rules",
        &serde_json::json!({
            "id": format!("{tag}_bad"),
            "sql": format!("SELECT n FROM {stream}"),
            "actions": [{ sink.as_str(): { "prefix": 7 } }],
        })
        .to_string(),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("prefix must be a string"), "{}", r.body);

    // Uninstall.
    oort_ok(&s, &["drop", "rule", &rule]);
    oort_ok(&s, &["drop", "stream", &stream]);
    oort_ok(&s, &["drop", "plugin", "source", &src]);
    oort_ok(&s, &["drop", "plugin", "sink", &sink]);
    s.expect("GET", &format!("/plugins/sources/{src}"), None, 404);
    s.expect("GET", &format!("/plugins/sinks/{sink}"), None, 404);
}

#[test]
fn rust_plugin_new_build_check_install_run_uninstall() {
    author_path("rust");
}

#[test]
fn python_plugin_new_build_check_install_run_uninstall() {
    author_path("python");
}

#[test]
fn js_plugin_new_build_check_install_run_uninstall() {
    author_path("js");
}

#[test]
fn c_plugin_new_build_check_install_run_uninstall() {
    author_path("c");
}
