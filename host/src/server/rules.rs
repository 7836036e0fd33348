//! Rules: `/rules`, their lifecycle, status, topology and explanation.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value as Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{BadRequest, Busy, Fault, NotFound, RuleBody};
use super::routes::{check_id, json_resp, text};
use super::AppState;
use crate::error::{AppError, AppResult};

/// The rule routes.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_rules, create_rule))
        .routes(routes!(validate_rule))
        .routes(routes!(all_status))
        .routes(routes!(show_rule, update_rule, delete_rule))
        .routes(routes!(start_rule))
        .routes(routes!(stop_rule))
        .routes(routes!(restart_rule))
        .routes(routes!(rule_status))
        .routes(routes!(rule_status_v2))
        .routes(routes!(rule_topo))
        .routes(routes!(rule_explain))
}

fn body_str(body: &Bytes) -> AppResult<&str> {
    std::str::from_utf8(body).map_err(|_| AppError::bad("invalid rule json: body is not UTF-8"))
}

#[utoipa::path(
    get,
    path = "/rules",
    tag = "rules",
    summary = "Rules, sorted by id",
    responses(
        (status = 200, description = "`[{\"id\",\"name\",\"status\",\"version\",\"trace\",\"tags\"}]`", body = Vec<Object>, content_type = "application/json"),
    )
)]
async fn list_rules(State(s): State<AppState>) -> Response {
    json_resp(Json::Array(s.mgr.list_rules().await))
}

#[utoipa::path(
    post,
    path = "/rules",
    tag = "rules",
    summary = "Create a rule (started when triggered, the default)",
    request_body(content = RuleBody, content_type = "application/json"),
    responses(
        (status = 201, description = "`Rule r1 was created successfully.`", body = String, content_type = "text/plain"),
        BadRequest,
        NotFound,
        Busy,
        Fault,
    )
)]
async fn create_rule(State(s): State<AppState>, body: Bytes) -> AppResult<Response> {
    let id = s
        .mgr
        .create_rule(body_str(&body)?)
        .await
        .map_err(|e| e.context("create rule error"))?;
    Ok(text(
        StatusCode::CREATED,
        format!("Rule {id} was created successfully."),
    ))
}

#[utoipa::path(
    post,
    path = "/rules/validate",
    tag = "rules",
    summary = "Validate a rule without creating it",
    request_body(content = RuleBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"sources\":[...],\"valid\":true}`", body = Object, content_type = "application/json"),
        BadRequest,
        (status = 422, description = "The rule is invalid: the reason", body = String, content_type = "text/plain"),
    )
)]
async fn validate_rule(State(s): State<AppState>, body: Bytes) -> Response {
    let b = match body_str(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match s.mgr.validate_rule(b) {
        Ok(v) => json_resp(v),
        // eKuiper answers an invalid rule with 422 and plain text.
        Err(e) => text(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
}

#[utoipa::path(
    get,
    path = "/rules/{id}",
    tag = "rules",
    summary = "The rule JSON as it was posted",
    params(
        ("id" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The rule id"),
    ),
    responses(
        (status = 200, description = "The rule", body = Object, content_type = "application/json"),
        BadRequest,
        NotFound,
    )
)]
async fn show_rule(State(s): State<AppState>, Path(id): Path<String>) -> AppResult<Response> {
    check_id(&id)?;
    let j = s.mgr.rule_json(&id).await?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        j,
    )
        .into_response())
}

#[utoipa::path(
    put,
    path = "/rules/{id}",
    tag = "rules",
    summary = "Replace a rule (creates it if absent)",
    params(
        ("id" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The rule id"),
    ),
    request_body(content = RuleBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`Rule r1 was updated successfully.`", body = String, content_type = "text/plain"),
        BadRequest,
        NotFound,
        Busy,
        Fault,
    )
)]
async fn update_rule(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> AppResult<Response> {
    check_id(&id)?;
    s.mgr
        .update_rule(&id, body_str(&body)?)
        .await
        .map_err(|e| e.context("update rule error"))?;
    Ok(text(
        StatusCode::OK,
        format!("Rule {id} was updated successfully."),
    ))
}

#[utoipa::path(
    delete,
    path = "/rules/{id}",
    tag = "rules",
    summary = "Delete a rule",
    params(
        ("id" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The rule id"),
    ),
    responses(
        (status = 200, description = "`Rule r1 is dropped.`", body = String, content_type = "text/plain"),
        BadRequest,
        NotFound,
        Busy,
        Fault,
    )
)]
async fn delete_rule(State(s): State<AppState>, Path(id): Path<String>) -> AppResult<Response> {
    check_id(&id)?;
    s.mgr
        .delete_rule(&id)
        .await
        .map_err(|e| e.context("delete rule error"))?;
    Ok(text(StatusCode::OK, format!("Rule {id} is dropped.")))
}

#[utoipa::path(
    post,
    path = "/rules/{id}/start",
    tag = "rules",
    summary = "Start a rule",
    params(
        ("id" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The rule id"),
    ),
    responses(
        (status = 200, description = "`Rule r1 was started`", body = String, content_type = "text/plain"),
        BadRequest,
        NotFound,
        Busy,
        Fault,
    )
)]
async fn start_rule(State(s): State<AppState>, Path(id): Path<String>) -> AppResult<Response> {
    check_id(&id)?;
    s.mgr
        .start_rule(&id)
        .await
        .map_err(|e| e.context("start rule error"))?;
    Ok(text(StatusCode::OK, format!("Rule {id} was started")))
}

#[utoipa::path(
    post,
    path = "/rules/{id}/stop",
    tag = "rules",
    summary = "Stop a rule",
    params(
        ("id" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The rule id"),
    ),
    responses(
        (status = 200, description = "`Rule r1 was stopped.`", body = String, content_type = "text/plain"),
        BadRequest,
        NotFound,
        Busy,
        Fault,
    )
)]
async fn stop_rule(State(s): State<AppState>, Path(id): Path<String>) -> AppResult<Response> {
    check_id(&id)?;
    s.mgr
        .stop_rule(&id)
        .await
        .map_err(|e| e.context("stop rule error"))?;
    Ok(text(StatusCode::OK, format!("Rule {id} was stopped.")))
}

#[utoipa::path(
    post,
    path = "/rules/{id}/restart",
    tag = "rules",
    summary = "Restart a rule",
    params(
        ("id" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The rule id"),
    ),
    responses(
        (status = 200, description = "`Rule r1 was restarted`", body = String, content_type = "text/plain"),
        BadRequest,
        NotFound,
        Busy,
        Fault,
    )
)]
async fn restart_rule(State(s): State<AppState>, Path(id): Path<String>) -> AppResult<Response> {
    check_id(&id)?;
    s.mgr
        .restart_rule(&id)
        .await
        .map_err(|e| e.context("restart rule error"))?;
    Ok(text(StatusCode::OK, format!("Rule {id} was restarted")))
}

#[utoipa::path(
    get,
    path = "/rules/{id}/status",
    tag = "rules",
    summary = "Status and per-node metrics (pretty-printed)",
    params(
        ("id" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The rule id"),
    ),
    responses(
        (status = 200, description = "Status keys and node metrics", body = Object, content_type = "application/json"),
        BadRequest,
        NotFound,
    )
)]
async fn rule_status(State(s): State<AppState>, Path(id): Path<String>) -> AppResult<Response> {
    check_id(&id)?;
    let m = s.mgr.rule_status(&id).await?;
    let pretty = serde_json::to_string_pretty(&Json::Object(m))
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        pretty,
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/v2/rules/{id}/status",
    tag = "rules",
    summary = "Status and per-node metrics (compact)",
    params(
        ("id" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The rule id"),
    ),
    responses(
        (status = 200, description = "Status keys and node metrics", body = Object, content_type = "application/json"),
        BadRequest,
        NotFound,
    )
)]
async fn rule_status_v2(State(s): State<AppState>, Path(id): Path<String>) -> AppResult<Response> {
    check_id(&id)?;
    Ok(json_resp(Json::Object(s.mgr.rule_status(&id).await?)))
}

#[utoipa::path(
    get,
    path = "/rules/status/all",
    tag = "rules",
    summary = "Every rule's status",
    responses(
        (status = 200, description = "`{\"r1\":{\"status\",\"last_exception\",\"exceptions_total\"}}`", body = Object, content_type = "application/json"),
    )
)]
async fn all_status(State(s): State<AppState>) -> Response {
    json_resp(s.mgr.all_status().await)
}

#[utoipa::path(
    get,
    path = "/rules/{id}/explain",
    tag = "rules",
    summary = "The logical plan of the rule's SQL",
    params(
        ("id" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The rule id"),
    ),
    responses(
        (status = 200, description = "One JSON object per plan node, inputs one tab deeper", body = String, content_type = "text/plain"),
        BadRequest,
        NotFound,
    )
)]
async fn rule_explain(State(s): State<AppState>, Path(id): Path<String>) -> AppResult<Response> {
    check_id(&id)?;
    Ok(text(StatusCode::OK, s.mgr.rule_explain(&id).await?))
}

#[utoipa::path(
    get,
    path = "/rules/{id}/topo",
    tag = "rules",
    summary = "The rule's topology",
    params(
        ("id" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The rule id"),
    ),
    responses(
        (status = 200, description = "`{\"sources\":[...],\"edges\":{...}}`", body = Object, content_type = "application/json"),
        BadRequest,
        NotFound,
    )
)]
async fn rule_topo(State(s): State<AppState>, Path(id): Path<String>) -> AppResult<Response> {
    check_id(&id)?;
    Ok(json_resp(s.mgr.rule_topo(&id).await?))
}
