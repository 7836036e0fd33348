//! The REST API (axum), eKuiper-compatible paths, status codes and bodies.
//! Handlers are thin: they parse the request and call [`Manager`].

pub mod auth;
mod conf_keys;
mod connections;
mod console;
mod data;
mod export;
pub mod guard;
mod metadata;
mod openapi;
mod plugins;
mod prometheus;
mod routes;
mod rules;
mod schemas;
mod streams;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::error::AppError;
use crate::manager::Manager;

#[derive(Clone)]
pub struct AppState {
    pub mgr: Manager,
    pub started: Instant,
    /// Cancelled by `/stop` (and by signals) to shut the server down.
    pub shutdown: CancellationToken,
    /// The WebAssembly plugin host (absent only if it failed to start).
    pub plugins: Option<oort_wasm::PluginManager>,
    /// What `file://`/`http(s)://` URIs (import documents) may be fetched.
    pub outbound: oort_wasm::OutboundPolicy,
    /// Imports, one at a time, and the status of the last one.
    pub ruleset: std::sync::Arc<crate::manager::ruleset::Ruleset>,
    /// `metrics.detail`: what `GET /metrics` holds unless it asks.
    pub metrics_detail: crate::config::MetricsDetail,
}

/// eKuiper's error body: `{"error":code,"message":"..."}` + newline.
impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match &self {
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AppError::Conflict(_) => StatusCode::CONFLICT,
        };
        if let AppError::Internal(m) = &self {
            tracing::error!(error = %m, "request failed");
        }
        let body = serde_json::json!({"error": self.code(), "message": self.to_string()});
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            format!("{body}\n"),
        )
            .into_response()
    }
}

pub fn router(state: AppState, body_limit: usize, guard: Arc<guard::Guard>) -> Router {
    let r = routes::router(state, body_limit)
        .layer(axum::middleware::map_response(json_rejections))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            guard.clone(),
            guard::access,
        ));
    let r = if guard.origins().is_empty() {
        r
    } else {
        r.layer(cors(guard.origins()))
    };
    r.layer(axum::middleware::from_fn_with_state(guard, guard::site))
        .layer(axum::middleware::from_fn(
            oort_connectors::linger::close_unread,
        ))
}

/// CORS for the configured origins only (checked again by [`guard::site`]).
fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderValue, Method};
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::AllowOrigin::list(list))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
}

/// Turns axum's plain-text rejections (body too large, bad method) into the
/// JSON error shape every other error has.
async fn json_rejections(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !status.is_client_error() || is_json || status == StatusCode::UNPROCESSABLE_ENTITY {
        return resp;
    }
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "request body too large".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this path".to_string(),
        other => other
            .canonical_reason()
            .unwrap_or("bad request")
            .to_string(),
    };
    let body = serde_json::json!({"error": crate::error::code::UNDEFINED, "message": message});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response()
}

/// Binds and serves until `state.shutdown` is cancelled. Without
/// authentication only a loopback address is served, unless the operator
/// set `rest.insecure_no_auth` (then with a warning).
pub async fn serve(
    state: AppState,
    rest: &crate::config::RestConfig,
    data_dir: &Path,
) -> anyhow::Result<SocketAddr> {
    let addr = &rest.addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let auth = auth::Auth::new(&rest.token, rest.jwt, data_dir);
    let guard = Arc::new(guard::Guard::new(rest, local.ip(), auth));
    let shutdown = state.shutdown.clone();
    let trimmer = crate::memtrim::Trimmer::start(shutdown.clone());
    let app = router(state, rest.body_limit, guard).layer(axum::middleware::from_fn_with_state(
        trimmer,
        crate::memtrim::after_requests,
    ));
    // Last of the start-up: building the router (and its OpenAPI document)
    // runs code that a running server does not run again.
    crate::memtrim::release("at start-up");
    tracing::info!(addr = %local, "REST API listening");
    axum::serve(oort_connectors::linger::LingeringListener(listener), app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(local)
}

/// Binds the separate metrics listener (`metrics.addr`), if one is set.
pub async fn bind_metrics(addr: &str) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    if addr.is_empty() {
        return Ok(None);
    }
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("metrics.addr {addr}: cannot listen: {e}"))?;
    let local = l.local_addr()?;
    if !local.ip().is_loopback() {
        tracing::warn!(addr = %local, "metrics listener on a non-loopback address: GET /metrics is served there without authentication (rule ids and node names included)");
    }
    Ok(Some(l))
}

/// Serves only `GET /metrics` on `listener` until shutdown.
pub fn serve_metrics(listener: tokio::net::TcpListener, state: AppState) {
    let shutdown = state.shutdown.clone();
    let app = Router::new()
        .route("/metrics", axum::routing::get(prometheus::metrics))
        .with_state(state);
    if let Ok(a) = listener.local_addr() {
        tracing::info!(addr = %a, "metrics listening");
    }
    tokio::spawn(async move {
        let r = axum::serve(oort_connectors::linger::LingeringListener(listener), app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = r {
            tracing::error!("metrics listener failed: {e}");
        }
    });
}

/// Refuses (before anything starts) to serve a non-loopback address without
/// authentication unless the operator says so; warns when they do.
pub async fn check_exposure(
    rest: &crate::config::RestConfig,
    data_dir: &Path,
) -> anyhow::Result<()> {
    let auth = auth::Auth::new(&rest.token, rest.jwt, data_dir);
    if let Some(dir) = auth.jwt_dir() {
        let keys = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        if keys == 0 {
            tracing::warn!(dir = %dir.display(), "JWT authentication is on but there is no public key: every request will be refused");
        }
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(rest.addr.as_str())
        .await
        .map_err(|e| anyhow::anyhow!("cannot resolve rest.addr {}: {e}", rest.addr))?
        .collect();
    let loopback = !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback());
    if auth.enabled() || loopback {
        return Ok(());
    }
    let local = &rest.addr;
    if rest.insecure_no_auth {
        tracing::warn!(
            addr = %local,
            "the REST API is served on a non-loopback address WITHOUT authentication (rest.insecure_no_auth): anyone who reaches it controls this server; set rest.token or rest.jwt"
        );
        return Ok(());
    }
    anyhow::bail!(
        "refusing to serve the REST API on {local} (not a loopback address) without authentication: set rest.token (or OORT__REST__TOKEN) or rest.jwt, bind to a loopback address, or set rest.insecure_no_auth: true to accept the risk (see docs/security.md)"
    )
}
