//! Who may drive the API and what it may touch (issue 11, items 3 and 4):
//! authentication (static token, eKuiper JWT), cross-site requests (Origin,
//! Host, Content-Type of browser requests, POST-only /stop, CORS), the file
//! connectors confined to allowed directories, and outbound URIs (plugin
//! installs, imports) under the operator's allow list, with no digest leak.
//! Servers here run with the default outbound policy (`strict`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oort_tests::{free_port, oort_bin, Opts, Server};
use serde_json::json;

fn strict() -> Opts {
    Opts {
        strict: true,
        ..Opts::default()
    }
}

fn fixture(name: &str) -> std::path::PathBuf {
    oort_tests::workspace_root()
        .join("tests/fixtures/jwt")
        .join(name)
}

// ---------- cross-site requests ----------

#[test]
fn stop_only_by_post() {
    let mut s = Server::start_with(strict());
    let r = s.get("/stop");
    assert_eq!(r.status, 405, "{}", r.body);
    assert_eq!(s.get("/ping").status, 200, "still running after GET /stop");
    assert_eq!(s.post("/stop", "").status, 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = s.child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("POST /stop did not stop the server; log:\n{}", s.log());
}

#[test]
fn browser_form_post_to_import_is_refused_and_curl_still_works() {
    let s = Server::start_with(strict());
    s.create_stream(r#"CREATE STREAM keep () WITH (DATASOURCE="t", TYPE="memory")"#);
    let wipe = r#"{"content":"{}"}"#;
    // The issue's reproduction: a page on another site submits a form.
    let r = s.raw(
        "POST",
        "/data/import",
        &[
            ("Origin", "http://evil.example"),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Sec-Fetch-Site", "cross-site"),
            ("Sec-Fetch-Mode", "navigate"),
        ],
        wipe,
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("evil.example"), "{}", r.body);
    // text/plain fetch() from another origin to /rules.
    let rule = json!({"id": "x", "sql": "SELECT * FROM keep", "actions": [{"nop": {}}]});
    let r = s.raw(
        "POST",
        "/rules",
        &[
            ("Origin", "http://evil.example"),
            ("Content-Type", "text/plain"),
        ],
        &rule.to_string(),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // A browser request without Origin (same-origin navigation) but with a
    // form body: the content type is refused.
    let r = s.raw(
        "POST",
        "/data/import",
        &[
            ("Sec-Fetch-Site", "same-origin"),
            ("Sec-Fetch-Mode", "navigate"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        wipe,
    );
    assert_eq!(r.status, 415, "{}", r.body);
    // Cross-site fetch metadata without an Origin header.
    let r = s.raw(
        "POST",
        "/data/import",
        &[("Sec-Fetch-Site", "cross-site")],
        wipe,
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(s.get("/streams").json(), json!(["keep"]), "nothing changed");
    assert_eq!(s.get("/rules").json(), json!([]));
    // `curl -d` (form-encoded, no browser headers) keeps working, as in the
    // README and eKuiper's docs.
    let r = s.raw(
        "POST",
        "/rules",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &rule.to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

#[test]
fn dns_rebinding_host_is_refused_on_loopback() {
    let s = Server::start_with(strict());
    let r = s.raw("GET", "/rules", &[("Host", "evil.example:9081")], "");
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("evil.example"), "{}", r.body);
    let r = s.raw(
        "GET",
        "/rules",
        &[("Host", &format!("localhost:{}", s.port))],
        "",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // A name the operator lists.
    let s = Server::start_with(Opts {
        env: vec![("OORT__REST__ALLOWED_HOSTS".into(), "[oort.lan]".into())],
        ..strict()
    });
    let r = s.raw("GET", "/rules", &[("Host", "oort.lan:9081")], "");
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn cors_is_off_by_default_and_answers_configured_origins_only() {
    let preflight = [
        ("Origin", "https://ui.example"),
        ("Access-Control-Request-Method", "POST"),
        ("Access-Control-Request-Headers", "content-type"),
    ];
    let s = Server::start_with(strict());
    let r = s.raw("OPTIONS", "/rules", &preflight, "");
    assert_eq!(r.status, 403, "{}", r.body);

    let s = Server::start_with(Opts {
        env: vec![(
            "OORT__REST__CORS_ORIGINS".into(),
            "[https://ui.example]".into(),
        )],
        ..strict()
    });
    let url = format!("{}/rules", s.base);
    let c = reqwest::blocking::Client::new();
    let mut rb = c.request(reqwest::Method::OPTIONS, &url);
    for (k, v) in preflight {
        rb = rb.header(k, v);
    }
    let r = rb.send().unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://ui.example"
    );
    let r = s.raw(
        "POST",
        "/streams",
        &[
            ("Origin", "https://ui.example"),
            ("Content-Type", "application/json"),
        ],
        r#"{"sql":"CREATE STREAM ui () WITH (DATASOURCE=\"t\", TYPE=\"memory\")"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    // Another origin is still refused.
    let r = s.raw(
        "GET",
        "/streams",
        &[("Origin", "https://other.example")],
        "",
    );
    assert_eq!(r.status, 403, "{}", r.body);
}

// ---------- authentication ----------

#[test]
fn static_token_is_required_when_set() {
    let token = "t0k3n-for-tests";
    let s = Server::start_with(Opts {
        env: vec![("OORT__REST__TOKEN".into(), token.into())],
        ..strict()
    });
    assert_eq!(s.raw("GET", "/ping", &[], "").status, 200);
    let r = s.raw("GET", "/rules", &[], "");
    assert_eq!(r.status, 401, "{}", r.body);
    let r = s.raw("GET", "/rules", &[("Authorization", "Bearer wrong")], "");
    assert_eq!(r.status, 401, "{}", r.body);
    let r = s.raw("POST", "/stop", &[], "");
    assert_eq!(r.status, 401, "{}", r.body);
    let bearer = format!("Bearer {token}");
    let r = s.raw("GET", "/rules", &[("Authorization", &bearer)], "");
    assert_eq!(r.status, 200, "{}", r.body);

    // The test client sends it on every request.
    let s = Server::start_with(Opts {
        env: vec![("OORT__REST__TOKEN".into(), token.into())],
        token: Some(token.into()),
        ..strict()
    });
    s.create_stream(r#"CREATE STREAM a () WITH (DATASOURCE="t", TYPE="memory")"#);
}

fn sign(key_pem: &str, claims: serde_json::Value) -> String {
    let key = std::fs::read(fixture(key_pem)).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(&key).unwrap(),
    )
    .unwrap()
}

#[test]
fn ekuiper_jwt_with_keys_in_etc_mgmt() {
    let dir = tempfile::tempdir().unwrap();
    let mgmt = dir.path().join("etc/mgmt");
    std::fs::create_dir_all(&mgmt).unwrap();
    std::fs::copy(fixture("test_key.pub"), mgmt.join("test_key.pub")).unwrap();
    let s = Server::start_in_with(
        dir.path(),
        Opts {
            env: vec![("OORT__REST__JWT".into(), "true".into())],
            ..strict()
        },
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let get = |tok: &str, bearer: bool| {
        let h = if bearer {
            format!("Bearer {tok}")
        } else {
            tok.to_string()
        };
        s.raw("GET", "/rules", &[("Authorization", &h)], "")
    };
    let good = sign(
        "test_key.pem",
        json!({"iss": "test_key.pub", "aud": "eKuiper", "exp": now + 600}),
    );
    assert_eq!(get(&good, true).status, 200);
    // eKuiper's clients send the bare token.
    assert_eq!(get(&good, false).status, 200);
    // Case-insensitive key name, an audience list containing eKuiper.
    let t = sign(
        "test_key.pem",
        json!({"iss": "TEST_KEY.pub", "aud": ["neuron", "eKuiper"], "exp": now + 600}),
    );
    assert_eq!(get(&t, true).status, 200);
    for (what, claims, key) in [
        (
            "expired",
            json!({"iss": "test_key.pub", "aud": "eKuiper", "exp": now - 600}),
            "test_key.pem",
        ),
        (
            "no exp",
            json!({"iss": "test_key.pub", "aud": "eKuiper"}),
            "test_key.pem",
        ),
        (
            "wrong audience",
            json!({"iss": "test_key.pub", "aud": "other", "exp": now + 600}),
            "test_key.pem",
        ),
        (
            "unknown key",
            json!({"iss": "nope.pub", "aud": "eKuiper", "exp": now + 600}),
            "test_key.pem",
        ),
        (
            "key path",
            json!({"iss": "../mgmt/test_key.pub", "aud": "eKuiper", "exp": now + 600}),
            "test_key.pem",
        ),
        (
            "signed by another key",
            json!({"iss": "test_key.pub", "aud": "eKuiper", "exp": now + 600}),
            "other_key.pem",
        ),
    ] {
        let r = get(&sign(key, claims), true);
        assert_eq!(r.status, 401, "{what}: {}", r.body);
    }
    let r = s.raw("GET", "/rules", &[], "");
    assert_eq!(r.status, 401, "{}", r.body);
}

/// Spawns `oort serve` and returns its exit status and output if it exits
/// within a few seconds, or `None` (still running, then killed).
fn serve_briefly(bind: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = Command::new(oort_bin());
    cmd.args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--rest-addr", &format!("{bind}:{port}")])
        .env("OORT_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut code = None;
    while Instant::now() < deadline {
        if let Ok(Some(st)) = child.try_wait() {
            code = st.code();
            break;
        }
        let up = reqwest::blocking::get(format!("http://127.0.0.1:{port}/ping"))
            .is_ok_and(|r| r.status().is_success());
        if up {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if code.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (code, text)
}

#[test]
fn non_loopback_without_auth_is_refused_unless_the_operator_insists() {
    let (code, log) = serve_briefly("0.0.0.0", &[]);
    assert!(code.is_some_and(|c| c != 0), "started: {log}");
    assert!(log.contains("refusing to serve"), "{log}");

    let (code, log) = serve_briefly("0.0.0.0", &[("OORT__REST__INSECURE_NO_AUTH", "true")]);
    assert_eq!(code, None, "did not start: {log}");
    assert!(
        log.contains("WARN") && log.contains("WITHOUT authentication"),
        "{log}"
    );

    let (code, log) = serve_briefly("0.0.0.0", &[("OORT__REST__TOKEN", "x")]);
    assert_eq!(code, None, "did not start: {log}");
    assert!(!log.contains("WITHOUT authentication"), "{log}");
}

// ---------- files ----------

#[test]
fn file_source_and_sink_are_confined() {
    let other = tempfile::tempdir().unwrap();
    let allowed = tempfile::tempdir().unwrap();
    let s = Server::start_with(Opts {
        env: vec![(
            "OORT__FILE__ALLOWED_DIRS".into(),
            format!("[{}]", allowed.path().display()),
        )],
        ..strict()
    });
    // The file source reading /etc/passwd, by `..` or absolute.
    for ds in ["../../../../../../etc/passwd", "/etc/passwd"] {
        let r = s.post(
            "/streams",
            &json!({"sql": format!("CREATE STREAM f () WITH (DATASOURCE=\"{ds}\", TYPE=\"file\")")})
                .to_string(),
        );
        assert_eq!(r.status, 400, "{ds}: {}", r.body);
        assert!(
            r.body.contains("passwd") && r.body.contains("outside the allowed"),
            "{}",
            r.body
        );
    }
    s.create_stream(r#"CREATE STREAM m () WITH (DATASOURCE="t", TYPE="memory")"#);
    // The file sink writing out of the data dir.
    let escape = format!("{}/x.txt", other.path().display());
    for path in ["../../../var/x", escape.as_str(), "/etc/oort-x"] {
        let rule = json!({"id": "w", "sql": "SELECT * FROM m",
            "actions": [{"file": {"path": path, "sendSingle": true}}]});
        let r = s.post("/rules", &rule.to_string());
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert!(r.body.contains("outside the allowed"), "{}", r.body);
        assert!(
            r.body.contains(path.trim_start_matches("../")),
            "{}",
            r.body
        );
    }
    // A symlink in the data dir pointing out.
    std::os::unix::fs::symlink(other.path(), s.data_dir.join("link")).unwrap();
    let rule = json!({"id": "w", "sql": "SELECT * FROM m",
        "actions": [{"file": {"path": "link/x.txt", "sendSingle": true}}]});
    let r = s.post("/rules", &rule.to_string());
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(s.get("/rules").json(), json!([]));
    // Relative paths are under the data dir; the operator's list is allowed.
    let inside = format!("{}/ok.txt", allowed.path().display());
    for (id, path) in [("rel", "out/ok.txt"), ("listed", inside.as_str())] {
        let rule = json!({"id": id, "sql": "SELECT * FROM m",
            "actions": [{"file": {"path": path, "sendSingle": true}}]});
        s.create_rule(&rule);
    }
}

// ---------- outbound requests ----------

#[test]
fn plugin_install_from_a_file_outside_reveals_nothing() {
    let s = Server::start_with(strict());
    let digest = {
        let out = Command::new("sha256sum")
            .arg("/etc/passwd")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let size = std::fs::metadata("/etc/passwd").unwrap().len().to_string();
    let r = s.post(
        "/plugins/sources",
        &json!({"name": "leak", "file": "file:///etc/passwd", "sha256": "00"}).to_string(),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("not allowed"), "{}", r.body);
    assert!(
        !r.body.contains(&digest) && !r.body.contains(&size),
        "{}",
        r.body
    );
    // Missing and present files outside answer the same.
    let r2 = s.post(
        "/plugins/sources",
        &json!({"name": "leak", "file": "file:///nonexistent/x.zip", "sha256": "00"}).to_string(),
    );
    assert_eq!(
        r2.body.replace("/nonexistent/x.zip", "/etc/passwd"),
        r.body,
        "existence shows"
    );
    // A file inside the data dir with a wrong sha256: refused without the
    // real digest.
    let f = s.data_dir.join("pkg.zip");
    std::fs::write(&f, b"not a zip").unwrap();
    let r = s.post(
        "/plugins/sources",
        &json!({"name": "pkg", "file": format!("file://{}", f.display()), "sha256": "00"})
            .to_string(),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("sha256 mismatch"), "{}", r.body);
    let real = {
        let out = Command::new("sha256sum").arg(&f).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    assert!(!r.body.contains(&real), "{}", r.body);
}

#[test]
fn internal_urls_and_files_outside_are_refused_by_default() {
    // A local HTTP server that must never be contacted.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let s = Server::start_with(strict());
    for uri in [
        format!("http://127.0.0.1:{port}/random.zip"),
        format!("http://localhost:{port}/random.zip"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://[::1]/x.zip".to_string(),
    ] {
        let r = s.post(
            "/plugins/sources",
            &json!({"name": "ssrf", "file": uri}).to_string(),
        );
        assert_eq!(r.status, 400, "{uri}: {}", r.body);
        assert!(r.body.contains("internal address"), "{uri}: {}", r.body);
        let r = s.post("/data/import", &json!({"file": uri}).to_string());
        assert_eq!(r.status, 400, "{uri}: {}", r.body);
        assert!(r.body.contains("internal address"), "{uri}: {}", r.body);
    }
    assert!(
        listener.accept().is_err(),
        "the server connected to an internal address"
    );
    let r = s.post("/data/import", r#"{"file":"file:///etc/passwd"}"#);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("not allowed"), "{}", r.body);
    // The operator lists the host: now it is contacted (and answers nothing
    // useful, which is a different error).
    let s = Server::start_with(Opts {
        env: vec![("OORT__OUTBOUND__ALLOWED_HOSTS".into(), "[127.0.0.1]".into())],
        ..strict()
    });
    let r = s.post(
        "/data/import",
        &json!({"file": "http://127.0.0.1:1/doc.json"}).to_string(),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(!r.body.contains("internal address"), "{}", r.body);
}
