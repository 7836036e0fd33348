//! `GET /openapi.json` from the real binary: every documented operation is
//! routed (a request to it never gets the fallback 404 nor a 405) and none
//! answers a placeholder request with a 5xx; the document is served without
//! the token when one is set.

use oort_tests::{Opts, Server};
use serde_json::Value as Json;

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch"];

/// A placeholder for a path parameter (any value reaches the handler; an
/// unknown connector type keeps the connectivity checks from dialing).
fn placeholder(name: &str) -> &'static str {
    match name {
        "kind" => "sources",
        _ => "oort_placeholder",
    }
}

fn fill(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
        out.push_str(placeholder(&rest[open + 1..close]));
        rest = rest.get(close + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

#[test]
fn every_documented_operation_is_routed() {
    let s = Server::start();
    let r = s.expect("GET", "/openapi.json", None, 200);
    let doc = r.json();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    let mut ops = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().expect("path item").keys() {
            if METHODS.contains(&method.as_str()) {
                ops.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    assert!(ops.len() >= 80, "only {} operations", ops.len());
    // POST /stop last: it shuts the server down.
    ops.sort_by_key(|(m, p)| (m == "POST" && p == "/stop", p.clone(), m.clone()));
    for (method, path) in &ops {
        let url = fill(path);
        let body = matches!(method.as_str(), "POST" | "PUT").then_some("{}");
        let r = s.req(method, &url, body);
        let fallback = r.status == 404
            && serde_json::from_str::<Json>(&r.body)
                .is_ok_and(|j| j["message"] == "no such endpoint");
        assert!(
            !fallback && r.status != 405,
            "{method} {path} ({url}) is documented but not routed: {} {}",
            r.status,
            r.body
        );
        assert!(
            r.status < 500,
            "{method} {path} ({url}) -> {} {}\nlog:\n{}",
            r.status,
            r.body,
            s.log()
        );
    }
}

#[test]
fn document_is_open_when_a_token_is_set() {
    let token = "openapi-t0k3n";
    let s = Server::start_with(Opts {
        env: vec![("OORT__REST__TOKEN".into(), token.into())],
        ..Opts::default()
    });
    let r = s.raw("GET", "/openapi.json", &[], "");
    assert_eq!(r.status, 200, "{}", r.body);
    let doc = r.json();
    assert_eq!(doc["info"]["title"], "Oort REST API");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // What the document says is open (`security: [{}]`) answers without the
    // token; everything else is refused without it.
    let mut open = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let method = method.to_uppercase();
            let is_open = op["security"] == serde_json::json!([{}]);
            let body = if matches!(method.as_str(), "POST" | "PUT") {
                "{}"
            } else {
                ""
            };
            let r = s.raw(&method, &fill(path), &[], body);
            if is_open {
                open.push(format!("{method} {path}"));
                assert_ne!(
                    r.status, 401,
                    "{method} {path} is documented as open: {}",
                    r.body
                );
            } else {
                assert_eq!(
                    r.status, 401,
                    "{method} {path} answered without the token: {}",
                    r.body
                );
            }
        }
    }
    assert_eq!(open, ["GET /", "GET /ping", "GET /openapi.json"]);
    assert_eq!(s.raw("POST", "/openapi.json", &[], "{}").status, 401);
}
