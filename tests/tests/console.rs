//! The web console at `/console/`: its assets over HTTP (types, caching,
//! authentication) and a browser test of its pages (Playwright driving
//! Debian's Chromium, `tests/console/console.test.mjs`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use oort_tests::{workspace_root, Opts, Server};

const TOKEN: &str = "console-test-token";

fn start_with_token() -> Server {
    Server::start_with(Opts {
        env: vec![("OORT__REST__TOKEN".into(), TOKEN.into())],
        ..Opts::default()
    })
}

/// A client that sends no token and follows no redirect.
fn bare_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn header(r: &reqwest::blocking::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn assets_are_public_typed_and_cached() {
    let s = start_with_token();
    let c = bare_client();
    let get = |path: &str| {
        c.get(format!("{}{path}", s.base))
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    };

    // The API still needs the token; the console's assets do not.
    assert_eq!(get("/rules").status().as_u16(), 401);
    let r = get("/console");
    assert_eq!(r.status().as_u16(), 301);
    assert_eq!(header(&r, "location"), "/console/");

    let mut total = 0;
    for (path, ctype) in [
        ("/console/", "text/html; charset=utf-8"),
        ("/console/index.html", "text/html; charset=utf-8"),
        ("/console/main.js", "text/javascript; charset=utf-8"),
        ("/console/lib.js", "text/javascript; charset=utf-8"),
        ("/console/rules.js", "text/javascript; charset=utf-8"),
        ("/console/streams.js", "text/javascript; charset=utf-8"),
        ("/console/plugins.js", "text/javascript; charset=utf-8"),
        ("/console/data.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
    ] {
        let r = get(path);
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert_eq!(header(&r, "content-type"), ctype, "{path}");
        assert_eq!(header(&r, "cache-control"), "no-cache", "{path}");
        let csp = header(&r, "content-security-policy");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        let etag = header(&r, "etag");
        assert_eq!(etag.len(), 66, "{path}: a quoted SHA-256 hex, found {etag}");
        let body = r.bytes().expect("body");
        if path != "/console/" {
            total += body.len();
        }

        // Revalidation: 304 without a body for the same tag, 200 otherwise.
        let again = c
            .get(format!("{}{path}", s.base))
            .header("If-None-Match", &etag)
            .send()
            .expect("revalidate");
        assert_eq!(again.status().as_u16(), 304, "{path}");
        assert_eq!(header(&again, "etag"), etag);
        assert!(again.bytes().expect("body").is_empty());
        let stale = c
            .get(format!("{}{path}", s.base))
            .header("If-None-Match", "\"0000\"")
            .send()
            .expect("stale");
        assert_eq!(stale.status().as_u16(), 200, "{path}");
    }
    assert!(total < 100 * 1024, "first load is {total} bytes");

    for path in [
        "/console/nope.js",
        "/console/main.js/x",
        "/console/console.js",
        "/console/sub/index.html",
    ] {
        let r = get(path);
        assert_eq!(r.status().as_u16(), 404, "{path}");
    }
    // Only reads are public: a write under /console/ still needs the token.
    let r = c.post(format!("{}/console/", s.base)).send().expect("post");
    assert_eq!(r.status().as_u16(), 401);
    // With the token the API answers.
    let r = c
        .get(format!("{}/rules", s.base))
        .bearer_auth(TOKEN)
        .send()
        .expect("rules");
    assert_eq!(r.status().as_u16(), 200);
}

/// `builtin-plugins/dist`, built by `build.sh` when `random` or `discard` is
/// missing (as tests/tests/plugins.rs does), so the plugin page lists them.
fn builtin_dist() -> PathBuf {
    static DIST: OnceLock<PathBuf> = OnceLock::new();
    DIST.get_or_init(|| {
        let root = workspace_root();
        let dist = root.join("builtin-plugins/dist");
        let needed = ["random.wasm", "random.json", "discard.wasm", "discard.json"];
        if needed.iter().any(|f| !dist.join(f).is_file()) {
            let st = Command::new("bash")
                .arg(root.join("builtin-plugins/build.sh"))
                .args(["random", "discard"])
                .env("CARGO_TARGET_DIR", root.join("target/wasm-plugins"))
                .env_remove("RUSTFLAGS")
                .env_remove("CARGO_ENCODED_RUSTFLAGS")
                .status()
                .expect("run builtin-plugins/build.sh");
            assert!(st.success(), "builtin-plugins/build.sh failed");
        }
        dist
    })
    .clone()
}

/// `npm ci` in `tests/console` unless its `node_modules` has playwright-core;
/// once per test process (the browser tests run in parallel, and two `npm
/// ci` in one directory break each other on a fresh checkout).
fn node_modules(dir: &Path) {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| npm_ci(dir));
}

fn npm_ci(dir: &Path) {
    if dir
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        return;
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .output()
        .expect("run npm ci (is Node.js installed? scripts/toolchains.sh)");
    assert!(
        out.status.success(),
        "npm ci in {} failed:\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `tests/console/console.test.mjs` against a server with `token` (or
/// none); screenshots go to `shots`.
fn browser_test(token: Option<&str>, shots: &Path) {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).is_file(),
        "{chromium} is missing: run scripts/services.sh (it installs Debian's chromium)"
    );
    let dist = builtin_dist();
    let dir = workspace_root().join("tests/console");
    node_modules(&dir);

    // Built-in plugins: only `discard` (a sink), so the page lists it and
    // the test uploads `random` (a source) as a new plugin.
    let builtin = tempfile::tempdir().expect("tempdir");
    for f in ["discard.wasm", "discard.json"] {
        std::fs::copy(dist.join(f), builtin.path().join(f)).expect("copy discard");
    }
    let mut env = vec![(
        "OORT__PLUGINS__BUILTIN_DIR".to_string(),
        builtin.path().display().to_string(),
    )];
    if let Some(t) = token {
        env.push(("OORT__REST__TOKEN".into(), t.into()));
    }
    let s = Server::start_with(Opts {
        env,
        ..Opts::default()
    });
    let out = Command::new("node")
        .arg("console.test.mjs")
        .current_dir(&dir)
        .env("OORT_CONSOLE_URL", &s.base)
        .env("OORT_CONSOLE_TOKEN", token.unwrap_or(""))
        .env("OORT_CONSOLE_PLUGIN", dist.join("random.wasm"))
        .env("OORT_CONSOLE_SHOTS", shots)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("run node console.test.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "console browser test failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server log\n{}",
        out.status,
        s.log()
    );
    println!("{stdout}");
    for shot in [
        "rules.png",
        "rule-detail.png",
        "rule-editor.png",
        "plugins.png",
        "import-export.png",
    ] {
        assert!(shots.join(shot).is_file(), "screenshot {shot} missing");
    }
}

/// With a token: the pages show the 401 until it is typed in the sidebar.
/// Screenshots go to `$OORT_CONSOLE_SHOTS` (docs/console.md regenerates
/// them there), else to a temporary directory.
#[test]
fn console_in_a_browser() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let shots = std::env::var_os("OORT_CONSOLE_SHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    browser_test(Some(TOKEN), &shots);
}

/// A server without authentication: the console sends no token and works.
#[test]
fn console_in_a_browser_without_a_token() {
    let tmp = tempfile::tempdir().expect("tempdir");
    browser_test(None, tmp.path());
}
