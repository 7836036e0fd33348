//! Data export, shaped like eKuiper's: `GET`/`POST /data/export` (all, or
//! the rules named and what they use), the YAML form `/v2/data/export`, and
//! the legacy `/ruleset/export`. The document is built by
//! [`crate::manager::ruleset`].

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{BadRequest, Fault, NotFound};
use super::AppState;
use crate::error::{AppError, AppResult};
use crate::manager::ruleset::Document;

/// The export routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(export_all, export_rules))
        .routes(routes!(export_yaml, export_yaml_rules))
        .routes(routes!(ruleset_export, ruleset_export_post))
}

fn attachment(body: String, name: &str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("Attachment; filename={name}"),
            ),
        ],
        body,
    )
        .into_response()
}

fn rule_ids(body: &Bytes) -> AppResult<Vec<String>> {
    serde_json::from_slice::<Vec<String>>(body).map_err(|e| {
        AppError::bad(format!(
            "invalid request body: expected a JSON array of rule ids: {e}"
        ))
    })
}

async fn export_doc(s: &AppState, ids: Option<&[String]>) -> AppResult<Document> {
    s.mgr.export_document(s.plugins.as_ref(), ids).await
}

fn json_attachment(doc: &Document) -> Response {
    attachment(doc.to_json().to_string(), "ekuiper_export.json")
}

fn yaml_attachment(doc: &Document) -> AppResult<Response> {
    let y = doc.to_yaml().map_err(AppError::Internal)?;
    Ok(attachment(y, "ekuiper_export.yaml"))
}

#[utoipa::path(
    get,
    path = "/data/export",
    tag = "data",
    summary = "Export everything (JSON)",
    responses(
        (status = 200, description = "The document, as an attachment", body = String, content_type = "application/octet-stream"),
        Fault,
    )
)]
async fn export_all(State(s): State<AppState>) -> AppResult<Response> {
    Ok(json_attachment(&export_doc(&s, None).await?))
}

#[utoipa::path(
    post,
    path = "/data/export",
    tag = "data",
    summary = "Export some rules and what they use (JSON)",
    request_body(content = Vec<String>, description = "The rule ids to export (with what they use)", content_type = "application/json"),
    responses(
        (status = 200, description = "The document, as an attachment", body = String, content_type = "application/octet-stream"),
        BadRequest,
        NotFound,
        Fault,
    )
)]
async fn export_rules(State(s): State<AppState>, body: Bytes) -> AppResult<Response> {
    let ids = rule_ids(&body)?;
    Ok(json_attachment(&export_doc(&s, Some(&ids)).await?))
}

#[utoipa::path(
    get,
    path = "/v2/data/export",
    tag = "data",
    summary = "Export everything (YAML)",
    responses(
        (status = 200, description = "The document, as an attachment", body = String, content_type = "application/octet-stream"),
        Fault,
    )
)]
async fn export_yaml(State(s): State<AppState>) -> AppResult<Response> {
    yaml_attachment(&export_doc(&s, None).await?)
}

#[utoipa::path(
    post,
    path = "/v2/data/export",
    tag = "data",
    summary = "Export some rules and what they use (YAML)",
    request_body(content = Vec<String>, description = "The rule ids to export (with what they use)", content_type = "application/json"),
    responses(
        (status = 200, description = "The document, as an attachment", body = String, content_type = "application/octet-stream"),
        BadRequest,
        NotFound,
        Fault,
    )
)]
async fn export_yaml_rules(State(s): State<AppState>, body: Bytes) -> AppResult<Response> {
    let ids = rule_ids(&body)?;
    yaml_attachment(&export_doc(&s, Some(&ids)).await?)
}

#[utoipa::path(
    get,
    path = "/ruleset/export",
    tag = "data",
    summary = "Legacy export of streams, tables and rules",
    responses(
        (status = 200, description = "The document, as an attachment", body = String, content_type = "application/octet-stream"),
        Fault,
    )
)]
async fn ruleset_export(State(s): State<AppState>) -> AppResult<Response> {
    let doc = export_doc(&s, None).await?;
    let full = doc.to_json();
    let mut m = Map::new();
    for k in ["streams", "tables", "rules"] {
        m.insert(k.into(), full[k].clone());
    }
    Ok(attachment(Json::Object(m).to_string(), "ruleset.json"))
}

#[utoipa::path(
    post,
    path = "/ruleset/export",
    tag = "data",
    summary = "Legacy export of streams, tables and rules (as GET)",
    responses(
        (status = 200, description = "The document, as an attachment", body = String, content_type = "application/octet-stream"),
        Fault,
    )
)]
async fn ruleset_export_post(s: State<AppState>) -> AppResult<Response> {
    ruleset_export(s).await
}
