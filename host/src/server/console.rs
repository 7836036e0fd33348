//! The web console at `/console/`: one HTML page, one style sheet and a few
//! ES modules (`main.js` imports the helpers in `lib.js` and one module per
//! page), hand-written (no framework, no build step), embedded in the binary.
//!
//! The assets are public (the guard lets `GET`/`HEAD` under `/console/`
//! through without the API token, see [`is_console_path`]); the page sends
//! the token the user typed with every API call it makes. Each asset carries
//! a strong `ETag` (SHA-256 of its bytes, computed once) and
//! `Cache-Control: no-cache`, so a browser revalidates and gets `304` until
//! the binary changes. The `Content-Security-Policy` allows only the
//! console's own script, style and API calls: no remote script, no inline
//! script.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use super::AppState;
use crate::error::AppError;

/// Every console response's policy: the console's own files and API only.
pub(super) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    /// `"<sha256 hex>"`, quotes included.
    etag: String,
}

fn asset(name: &'static str, content_type: &'static str, body: &'static [u8]) -> Asset {
    let digest = Sha256::digest(body);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Asset {
        name,
        content_type,
        body,
        etag: format!("\"{hex}\""),
    }
}

/// A script of the console (an ES module), embedded.
macro_rules! script {
    ($name:literal) => {
        asset(
            $name,
            "text/javascript; charset=utf-8",
            include_bytes!(concat!("../../console/", $name)),
        )
    };
}

static ASSETS: LazyLock<[Asset; 8]> = LazyLock::new(|| {
    [
        asset(
            "index.html",
            "text/html; charset=utf-8",
            include_bytes!("../../console/index.html"),
        ),
        asset(
            "console.css",
            "text/css; charset=utf-8",
            include_bytes!("../../console/console.css"),
        ),
        script!("main.js"),
        script!("lib.js"),
        script!("rules.js"),
        script!("streams.js"),
        script!("plugins.js"),
        script!("data.js"),
    ]
});

/// `/console` and everything under `/console/`: what the guard serves without
/// the API token (for `GET` and `HEAD` only).
pub(super) fn is_console_path(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// The console's routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(redirect))
        .route("/console/", get(index))
        .route("/console/{*file}", get(file))
}

async fn redirect() -> Response {
    (
        StatusCode::MOVED_PERMANENTLY,
        [(header::LOCATION, "/console/")],
    )
        .into_response()
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    serve(&name, &headers)
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.name == name) else {
        return AppError::not_found(format!("no console asset {name}")).into_response();
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| etag_matches(v, &a.etag));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, a.content_type)],
            a.body,
        )
            .into_response()
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&a.etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// `If-None-Match`: `*` or a list of (possibly weak) entity tags.
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_embedded_with_strong_etags() {
        for a in ASSETS.iter() {
            assert!(!a.body.is_empty(), "{}", a.name);
            assert_eq!(a.etag.len(), 66, "{}", a.etag);
        }
        let total: usize = ASSETS.iter().map(|a| a.body.len()).sum();
        assert!(total < 500 * 1024, "console assets are {total} bytes");
        // The page loads only its own script and style sheet.
        let html = std::str::from_utf8(ASSETS[0].body).unwrap_or_default();
        assert!(html.contains("<script type=\"module\" src=\"main.js\">"));
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!html.contains("<script>"), "no inline script (CSP)");
    }

    /// Every module a script imports is an embedded asset.
    #[test]
    fn imports_resolve_to_assets() {
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(a.body).unwrap_or_default();
            for line in text.lines().filter(|l| l.contains("from './")) {
                let file = line
                    .split("from './")
                    .nth(1)
                    .and_then(|r| r.split('\'').next())
                    .unwrap_or_default();
                assert!(
                    ASSETS.iter().any(|b| b.name == file),
                    "{} imports {file}, not embedded",
                    a.name
                );
            }
        }
    }

    #[test]
    fn if_none_match() {
        let e = "\"abc\"";
        assert!(etag_matches("\"abc\"", e));
        assert!(etag_matches("W/\"abc\"", e));
        assert!(etag_matches("\"x\", \"abc\"", e));
        assert!(etag_matches("*", e));
        assert!(!etag_matches("\"abd\"", e));
        assert!(!etag_matches("abc", e));
    }

    #[test]
    fn console_paths() {
        assert!(is_console_path("/console"));
        assert!(is_console_path("/console/"));
        assert!(is_console_path("/console/main.js"));
        assert!(!is_console_path("/consoles"));
        assert!(!is_console_path("/rules"));
    }

    #[test]
    fn unknown_asset_is_404() {
        let r = serve("nope.js", &HeaderMap::new());
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = serve("main.js", &HeaderMap::new());
        assert_eq!(r.status(), StatusCode::OK);
    }
}
