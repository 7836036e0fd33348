//! The REST API (axum), eKuiper-compatible paths, status codes and bodies.
//! Handlers are thin: they parse the request and call [`Manager`].

mod connections;
mod data;
mod plugins;
mod routes;

use std::net::SocketAddr;
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

pub fn router(state: AppState, body_limit: usize) -> Router {
    routes::router(state)
        .layer(axum::middleware::map_response(json_rejections))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
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

/// Binds and serves until `state.shutdown` is cancelled.
pub async fn serve(state: AppState, addr: &str, body_limit: usize) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let shutdown = state.shutdown.clone();
    let app = router(state, body_limit);
    tracing::info!(addr = %local, "REST API listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(local)
}
