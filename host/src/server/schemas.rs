//! eKuiper's schema API for protobuf: `POST /schemas/protobuf`
//! (`{"name","content"}`), `GET /schemas/protobuf`, and `GET`, `PUT`,
//! `DELETE /schemas/protobuf/{name}`. The registry is [`crate::schemas`].
//! `custom` schemas (Go plugins) are refused, as is a schema given by
//! `file` (give its text in `content`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value as Json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{BadRequest, Busy, Fault, NotFound};
use super::routes::{json_resp, text};
use super::AppState;
use crate::error::{AppError, AppResult};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
}

/// A protobuf schema: `name` and `content` (the .proto text). `file`,
/// `soFile` and `version` are eKuiper's and refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SchemaBody {
    #[schema(example = "demo")]
    name: String,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    file: Option<String>,
    #[serde(default, rename = "soFile")]
    so_file: Option<String>,
    #[serde(default)]
    version: Option<String>,
}

fn protobuf_only(typ: &str) -> AppResult<()> {
    match typ {
        "protobuf" => Ok(()),
        "custom" => Err(AppError::bad(
            "custom schemas run Go plugins, which Oort does not load; decode or encode in a WebAssembly plugin instead",
        )),
        other => Err(AppError::not_found(format!(
            "schema type {other} is not found: protobuf is the one type"
        ))),
    }
}

fn content(b: &SchemaBody) -> AppResult<&str> {
    if b.version.as_deref().is_some_and(|v| !v.trim().is_empty()) {
        return Err(AppError::bad(
            "schema versions are not supported yet: leave version out (a PUT replaces the schema)",
        ));
    }
    if b.so_file.is_some() {
        return Err(AppError::bad(
            "soFile is for custom schemas (Go plugins), which Oort does not load",
        ));
    }
    match (&b.content, &b.file) {
        (Some(c), None) if !c.trim().is_empty() => Ok(c),
        (_, Some(_)) => Err(AppError::bad(
            "schema file URLs are not supported: give the schema text in content",
        )),
        _ => Err(AppError::bad("content (the .proto text) is required")),
    }
}

fn body(b: &Bytes) -> AppResult<SchemaBody> {
    serde_json::from_slice(b).map_err(|e| AppError::bad(format!("invalid request body: {e}")))
}

#[utoipa::path(
    get,
    path = "/schemas/{typ}",
    tag = "schemas",
    operation_id = "schemas_list",
    summary = "Schema names",
    params(
        ("typ" = String, Path, description = "The schema type: `protobuf`"),
    ),
    responses(
        (status = 200, description = "Names", body = Vec<String>, content_type = "application/json"),
        BadRequest,
        NotFound,
    )
)]
async fn list(State(s): State<AppState>, Path(typ): Path<String>) -> AppResult<Response> {
    protobuf_only(&typ)?;
    let names: Vec<Json> = s.mgr.schemas().list().into_iter().map(Json::from).collect();
    Ok(json_resp(Json::Array(names)))
}

#[utoipa::path(
    post,
    path = "/schemas/{typ}",
    tag = "schemas",
    operation_id = "schemas_create",
    summary = "Create a schema",
    params(
        ("typ" = String, Path, description = "The schema type: `protobuf`"),
    ),
    request_body(content = SchemaBody, content_type = "application/json"),
    responses(
        (status = 201, description = "`protobuf schema demo is created`", body = String, content_type = "text/plain"),
        BadRequest,
        NotFound,
        Busy,
        Fault,
    )
)]
async fn create(
    State(s): State<AppState>,
    Path(typ): Path<String>,
    b: Bytes,
) -> AppResult<Response> {
    protobuf_only(&typ)?;
    let b = body(&b)?;
    s.mgr.schemas().put(&b.name, content(&b)?, false)?;
    Ok(text(
        StatusCode::CREATED,
        format!("protobuf schema {} is created", b.name),
    ))
}

#[utoipa::path(
    get,
    path = "/schemas/{typ}/{name}",
    tag = "schemas",
    operation_id = "schemas_show",
    summary = "A schema",
    params(
        ("typ" = String, Path, description = "The schema type: `protobuf`"),
        ("name" = String, Path, description = "The schema name"),
    ),
    responses(
        (status = 200, description = "`{\"type\",\"name\",\"content\",\"file\"}`", body = Object, content_type = "application/json"),
        BadRequest,
        NotFound,
    )
)]
async fn show(
    State(s): State<AppState>,
    Path((typ, name)): Path<(String, String)>,
) -> AppResult<Response> {
    protobuf_only(&typ)?;
    Ok(json_resp(s.mgr.schemas().describe(&name)?))
}

#[utoipa::path(
    put,
    path = "/schemas/{typ}/{name}",
    tag = "schemas",
    operation_id = "schemas_update",
    summary = "Replace a schema",
    params(
        ("typ" = String, Path, description = "The schema type: `protobuf`"),
        ("name" = String, Path, description = "The schema name"),
    ),
    request_body(content = SchemaBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`protobuf schema demo is updated`", body = String, content_type = "text/plain"),
        BadRequest,
        NotFound,
        Busy,
        Fault,
    )
)]
async fn update(
    State(s): State<AppState>,
    Path((typ, name)): Path<(String, String)>,
    b: Bytes,
) -> AppResult<Response> {
    protobuf_only(&typ)?;
    let b = body(&b)?;
    if b.name != name {
        return Err(AppError::bad(format!(
            "the name in the body ({}) is not the name in the path ({name})",
            b.name
        )));
    }
    s.mgr.schemas().put(&name, content(&b)?, true)?;
    Ok(text(
        StatusCode::OK,
        format!("protobuf schema {name} is updated"),
    ))
}

#[utoipa::path(
    delete,
    path = "/schemas/{typ}/{name}",
    tag = "schemas",
    operation_id = "schemas_remove",
    summary = "Delete a schema",
    params(
        ("typ" = String, Path, description = "The schema type: `protobuf`"),
        ("name" = String, Path, description = "The schema name"),
    ),
    responses(
        (status = 200, description = "`protobuf schema demo is deleted`", body = String, content_type = "text/plain"),
        BadRequest,
        NotFound,
        Busy,
        Fault,
    )
)]
async fn remove(
    State(s): State<AppState>,
    Path((typ, name)): Path<(String, String)>,
) -> AppResult<Response> {
    protobuf_only(&typ)?;
    s.mgr.schemas().delete(&name)?;
    Ok(text(
        StatusCode::OK,
        format!("protobuf schema {name} is deleted"),
    ))
}
