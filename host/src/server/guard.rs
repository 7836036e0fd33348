//! Who may drive the API: checks run on every request before its handler.
//!
//! 1. `Host` (DNS rebinding): bound to loopback, only `localhost`, the
//!    loopback addresses and `rest.allowed_hosts` are answered; bound
//!    elsewhere, `rest.allowed_hosts` when it is set.
//! 2. Browsers: a request with an `Origin` is answered only for
//!    `rest.cors_origins` (or its own origin); `Sec-Fetch-Site: cross-site`
//!    without such an origin is refused; a browser's write must be
//!    `Content-Type: application/json` (or `application/octet-stream`, a
//!    plugin package): the forms and `text/plain` bodies a page can send
//!    cross-site without a preflight are refused. Clients
//!    without browser headers (curl, scripts) keep sending any content type.
//! 3. Authentication ([`super::auth`]) when configured; `GET /` and
//!    `GET /ping` stay open, as in eKuiper, and so do `GET /openapi.json`
//!    (the API's description, the same for every server of a release) and
//!    the web console's static assets under `/console/`.
//!
//! CORS (preflights and response headers) is answered by tower-http's
//! `CorsLayer` for the configured origins only; none by default.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::Auth;
use crate::config::RestConfig;

#[derive(Debug)]
pub struct Guard {
    /// Bound to a loopback address.
    loopback: bool,
    /// Accepted host names (lower case, no port); empty: any.
    hosts: Vec<String>,
    /// Allowed browser origins (lower case, no trailing slash).
    origins: Vec<String>,
    pub auth: Auth,
}

impl Guard {
    pub fn new(rest: &RestConfig, bound: IpAddr, auth: Auth) -> Guard {
        let loopback = bound.is_loopback();
        let mut hosts: Vec<String> = rest
            .allowed_hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        if loopback {
            hosts.extend(
                ["localhost", "127.0.0.1", "::1"]
                    .into_iter()
                    .map(String::from),
            );
            hosts.push(bound.to_string());
        } else if !hosts.is_empty() && !bound.is_unspecified() {
            hosts.push(bound.to_string());
        }
        Guard {
            loopback,
            hosts,
            origins: rest.cors_origins.iter().map(|o| normal_origin(o)).collect(),
            auth,
        }
    }

    pub fn origins(&self) -> &[String] {
        &self.origins
    }

    fn host_allowed(&self, headers: &HeaderMap) -> Result<(), String> {
        let Some(h) = headers.get(header::HOST) else {
            // HTTP/1.0 clients may omit it; browsers never do.
            return Ok(());
        };
        let h = h.to_str().map_err(|_| "invalid Host header".to_string())?;
        let name = host_name(h);
        if self.hosts.is_empty() && !self.loopback {
            return Ok(());
        }
        if self.hosts.contains(&name) || (!self.loopback && name.parse::<IpAddr>().is_ok()) {
            return Ok(());
        }
        Err(format!(
            "host {name} is not allowed: add it to rest.allowed_hosts in the server config"
        ))
    }

    fn origin_allowed(&self, headers: &HeaderMap) -> Result<bool, String> {
        let origin = match headers.get(header::ORIGIN) {
            None => None,
            Some(o) => Some(normal_origin(
                o.to_str()
                    .map_err(|_| "invalid Origin header".to_string())?,
            )),
        };
        let Some(o) = origin else {
            let site = headers
                .get("sec-fetch-site")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site") {
                return Err(format!("{site} browser requests are not allowed"));
            }
            return Ok(false);
        };
        if self.origins.contains(&o) {
            return Ok(true);
        }
        // The page's own origin (same scheme-less host and port as Host).
        let own = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| h.to_ascii_lowercase());
        let o_host = o.split_once("://").map(|(_, rest)| rest);
        if own.is_some() && o_host == own.as_deref() {
            return Ok(true);
        }
        Err(format!(
            "origin {o} is not allowed: add it to rest.cors_origins in the server config"
        ))
    }
}

/// `Host` value without the port (IPv6 brackets removed).
fn host_name(h: &str) -> String {
    let h = h.trim().to_ascii_lowercase();
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_string();
    }
    match h.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name.to_string(),
        _ => h,
    }
}

fn normal_origin(o: &str) -> String {
    o.trim().trim_end_matches('/').to_ascii_lowercase()
}

fn is_browser(headers: &HeaderMap) -> bool {
    headers.contains_key(header::ORIGIN)
        || headers.contains_key("sec-fetch-site")
        || headers.contains_key("sec-fetch-mode")
}

/// A body is sent, or one is typed (a form with an empty body counts).
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::CONTENT_TYPE) || oort_connectors::linger::declares_body(headers)
}

/// A body type a page cannot send cross-site without a CORS preflight
/// (which only `rest.cors_origins` pass): JSON, or raw bytes (a plugin
/// package uploaded by the console).
fn is_preflighted_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .is_some_and(|m| {
            m.eq_ignore_ascii_case("application/json")
                || m.eq_ignore_ascii_case("application/octet-stream")
        })
}

pub(super) fn refuse(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({"error": crate::error::code::UNDEFINED, "message": message});
    let mut r = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

/// Host and origin checks: outside CORS, so a foreign origin's preflight is
/// refused too.
pub async fn site(State(g): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let h = req.headers();
    if let Err(m) = g.host_allowed(h) {
        return refuse(StatusCode::FORBIDDEN, &m);
    }
    if let Err(m) = g.origin_allowed(h) {
        return refuse(StatusCode::FORBIDDEN, &m);
    }
    next.run(req).await
}

/// Authentication and the content type of browsers' writes: inside CORS
/// (a preflight carries no credentials).
pub async fn access(State(g): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    // The console's static assets are public too: the page sends the token
    // with the API calls it makes.
    let open = matches!(*req.method(), Method::GET | Method::HEAD)
        && (matches!(req.uri().path(), "/" | "/ping" | "/openapi.json")
            || super::console::is_console_path(req.uri().path()));
    if !open {
        let authz = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if let Err(m) = g.auth.check(authz) {
            return refuse(StatusCode::UNAUTHORIZED, &m);
        }
    }
    let h = req.headers();
    let writes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if writes && is_browser(h) && has_body(h) && !is_preflighted_type(h) {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a browser request body must be sent as Content-Type: application/json (application/octet-stream for a plugin package)",
        );
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn guard(addr: &str, hosts: &[&str], origins: &[&str]) -> Guard {
        let rest = RestConfig {
            allowed_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            cors_origins: origins.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        Guard::new(&rest, addr.parse().unwrap(), Auth::default())
    }

    #[test]
    fn host_names() {
        assert_eq!(host_name("LocalHost:9081"), "localhost");
        assert_eq!(host_name("[::1]:9081"), "::1");
        assert_eq!(host_name("example.com"), "example.com");
        let g = guard("127.0.0.1", &["oort.lan"], &[]);
        assert!(g
            .host_allowed(&headers(&[("host", "127.0.0.1:9081")]))
            .is_ok());
        assert!(g.host_allowed(&headers(&[("host", "localhost:1")])).is_ok());
        assert!(g.host_allowed(&headers(&[("host", "oort.lan")])).is_ok());
        assert!(g
            .host_allowed(&headers(&[("host", "evil.example:9081")]))
            .is_err());
        // Not loopback and no list: any host (authentication protects it).
        let g = guard("0.0.0.0", &[], &[]);
        assert!(g
            .host_allowed(&headers(&[("host", "evil.example")]))
            .is_ok());
    }

    #[test]
    fn origins() {
        let g = guard("127.0.0.1", &[], &["https://ui.example/"]);
        let h = |o: &str| headers(&[("host", "127.0.0.1:9081"), ("origin", o)]);
        assert_eq!(g.origin_allowed(&h("https://UI.example")), Ok(true));
        assert!(g.origin_allowed(&h("http://evil.example")).is_err());
        assert!(g.origin_allowed(&h("null")).is_err());
        assert_eq!(g.origin_allowed(&h("http://127.0.0.1:9081")), Ok(true));
        assert_eq!(
            g.origin_allowed(&headers(&[("host", "127.0.0.1:9081")])),
            Ok(false)
        );
        assert!(g
            .origin_allowed(&headers(&[("sec-fetch-site", "cross-site")]))
            .is_err());
    }

    #[test]
    fn browser_bodies() {
        let form = headers(&[
            ("sec-fetch-mode", "navigate"),
            ("content-type", "application/x-www-form-urlencoded"),
        ]);
        assert!(is_browser(&form) && has_body(&form) && !is_preflighted_type(&form));
        let plain = headers(&[("content-type", "text/plain")]);
        assert!(!is_preflighted_type(&plain));
        let json = headers(&[("content-type", "application/json; charset=utf-8")]);
        assert!(is_preflighted_type(&json) && !is_browser(&json));
        let raw = headers(&[("content-type", "Application/Octet-Stream")]);
        assert!(is_preflighted_type(&raw));
    }
}
