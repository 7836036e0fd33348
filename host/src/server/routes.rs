//! The route table (each area registers its own routes) and the server
//! handlers (`/`, `/ping`, `/stop`); helpers the handlers share.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use serde_json::{json, Value as Json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::error::{AppError, AppResult};
use crate::manager::rule_def::validate_id;

/// The whole REST API: the documented routes, `/openapi.json` (the
/// document, rendered here once), the console and the fallback.
pub fn router(state: AppState, body_limit: usize) -> Router {
    let limit = state
        .plugins
        .as_ref()
        .map_or(64 << 20, oort_wasm::PluginManager::max_package_bytes);
    let (api, doc) = api(body_limit, limit).split_for_parts();
    api.layer(Extension(super::openapi::Document::new(&doc)))
        .layer(super::data::extension(&state))
        // The web console is not part of the documented API.
        .merge(super::console::routes())
        .fallback(not_found)
        .with_state(state)
}

/// Every documented route, each registered once through `routes!` so that
/// the router and the OpenAPI document cannot disagree. A request whose
/// declared length is over its route's limit (`body_limit`, or
/// `max_package_bytes` for a package upload) is refused before its body is
/// read.
pub(super) fn api(body_limit: usize, max_package_bytes: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(super::openapi::base())
        .routes(routes!(info, info_post))
        .routes(routes!(ping))
        .routes(routes!(super::openapi::openapi_json))
        .routes(routes!(super::prometheus::metrics))
        .routes(routes!(stop))
        .merge(super::streams::routes())
        .merge(super::rules::routes())
        .merge(super::conf_keys::routes())
        .merge(super::metadata::routes())
        .merge(super::schemas::routes())
        .merge(super::plugins::routes())
        .merge(super::connections::routes())
        .merge(super::data::routes())
        // Before the upload joins: a layer wraps only the routes it follows.
        .layer(axum::middleware::from_fn_with_state(
            body_limit,
            oort_connectors::linger::refuse_declared_over,
        ))
        .merge(super::plugins::upload_routes(max_package_bytes))
}

pub(super) fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

pub(super) fn json_resp(v: Json) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

pub(super) fn parse_json<T: serde::de::DeserializeOwned>(body: &Bytes) -> AppResult<T> {
    serde_json::from_slice(body).map_err(|e| AppError::bad(format!("invalid request body: {e}")))
}

pub(super) fn check_id(id: &str) -> AppResult<()> {
    validate_id(id).map_err(AppError::bad)
}

async fn not_found() -> AppError {
    AppError::not_found("no such endpoint")
}

#[utoipa::path(
    get,
    path = "/",
    tag = "server",
    summary = "Server information",
    security(()),
    responses(
        (status = 200, description = "`{\"version\",\"os\",\"arch\",\"upTimeSeconds\",\"memoryUsed\",\"instanceId\"}`", body = Object, content_type = "application/json"),
    )
)]
async fn info(State(s): State<AppState>) -> Response {
    json_resp(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "upTimeSeconds": s.started.elapsed().as_secs(),
        "memoryUsed": crate::cli::rss_bytes().map(|b| b.to_string()).unwrap_or_default(),
        // Oort's own: `--instance-id`, empty when derived from the data dir.
        "instanceId": s.mgr.env().instance_id().unwrap_or(""),
    }))
}

#[utoipa::path(
    post,
    path = "/",
    tag = "server",
    summary = "Server information (as GET; needs the token when one is set)",
    responses(
        (status = 200, description = "`{\"version\",\"os\",\"arch\",\"upTimeSeconds\",\"memoryUsed\",\"instanceId\"}`", body = Object, content_type = "application/json"),
    )
)]
async fn info_post(s: State<AppState>) -> Response {
    info(s).await
}

#[utoipa::path(
    get,
    path = "/ping",
    tag = "server",
    summary = "Liveness check",
    security(()),
    responses(
        (status = 200, description = "Alive, empty body"),
    )
)]
async fn ping() -> StatusCode {
    StatusCode::OK
}

#[utoipa::path(
    post,
    path = "/stop",
    tag = "server",
    summary = "Shut the server down cleanly",
    responses(
        (status = 200, description = "`stop success`", body = String, content_type = "text/plain"),
    )
)]
async fn stop(State(s): State<AppState>) -> Response {
    s.shutdown.cancel();
    text(StatusCode::OK, "stop success")
}
