//! Streams and tables: `/streams`, `/tables` and their details, schemas,
//! replacement and drop.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use oort_sql::ast::StreamKind;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{BadRequest, Busy, Fault, NotFound};
use super::routes::{check_id, json_resp, parse_json, text};
use super::AppState;
use crate::error::AppResult;

/// The stream and table routes.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_streams, exec_streams))
        .routes(routes!(stream_details))
        .routes(routes!(describe_stream, replace_stream, drop_stream))
        .routes(routes!(stream_schema))
        .routes(routes!(list_tables, exec_tables))
        .routes(routes!(table_details))
        .routes(routes!(describe_table, replace_table, drop_table))
        .routes(routes!(table_schema))
}

/// A statement: `CREATE STREAM|TABLE ...`, `DROP`, `DESCRIBE`, `SHOW`.
#[derive(Deserialize, ToSchema)]
struct SqlBody {
    #[schema(
        example = "CREATE STREAM demo (a BIGINT) WITH (DATASOURCE=\"demo\", FORMAT=\"JSON\")"
    )]
    sql: String,
}

async fn exec(s: &AppState, body: &Bytes) -> AppResult<Response> {
    let b: SqlBody = parse_json(body)?;
    match s.mgr.exec_stream_sql(&b.sql).await? {
        crate::manager::StmtResult::Text(t) => Ok(text(StatusCode::CREATED, t)),
        crate::manager::StmtResult::Json(j) => Ok(json_resp(j)),
    }
}

#[utoipa::path(
    post,
    path = "/streams",
    tag = "streams",
    summary = "Run a stream statement (CREATE, DROP, DESCRIBE, SHOW)",
    request_body(content = SqlBody, content_type = "application/json"),
    responses(
        (status = 201, description = "`Stream demo is created.`", body = String, content_type = "text/plain"),
        (status = 200, description = "The answer of DESCRIBE or SHOW", body = Object, content_type = "application/json"),
        BadRequest,
        NotFound,
        Busy,
        Fault,
    )
)]
async fn exec_streams(State(s): State<AppState>, body: Bytes) -> AppResult<Response> {
    exec(&s, &body).await
}
#[utoipa::path(
    post,
    path = "/tables",
    tag = "tables",
    summary = "Run a table statement (CREATE, DROP, DESCRIBE, SHOW)",
    request_body(content = SqlBody, content_type = "application/json"),
    responses(
        (status = 201, description = "`Table demo is created.`", body = String, content_type = "text/plain"),
        (status = 200, description = "The answer of DESCRIBE or SHOW", body = Object, content_type = "application/json"),
        BadRequest,
        NotFound,
        Busy,
        Fault,
    )
)]
async fn exec_tables(State(s): State<AppState>, body: Bytes) -> AppResult<Response> {
    exec(&s, &body).await
}

#[utoipa::path(
    get,
    path = "/streams",
    tag = "streams",
    summary = "Stream names",
    responses(
        (status = 200, description = "`[\"demo\"]`", body = Vec<String>, content_type = "application/json"),
    )
)]
async fn list_streams(State(s): State<AppState>) -> Response {
    json_resp(json!(s.mgr.list(StreamKind::Stream)))
}

#[derive(Deserialize)]
struct KindQuery {
    kind: Option<String>,
}

#[utoipa::path(
    get,
    path = "/tables",
    tag = "tables",
    summary = "Table names",
    params(
        ("kind" = Option<String>, Query, description = "`scan` or `lookup`"),
    ),
    responses(
        (status = 200, description = "Table names", body = Vec<String>, content_type = "application/json"),
    )
)]
async fn list_tables(State(s): State<AppState>, Query(q): Query<KindQuery>) -> Response {
    json_resp(json!(s.mgr.list_tables(q.kind.as_deref())))
}

#[utoipa::path(
    get,
    path = "/streamdetails",
    tag = "streams",
    summary = "Streams with their type and format",
    responses(
        (status = 200, description = "`[{\"name\",\"type\",\"format\"}]`", body = Vec<Object>, content_type = "application/json"),
    )
)]
async fn stream_details(State(s): State<AppState>) -> Response {
    json_resp(s.mgr.details(StreamKind::Stream, None))
}

#[utoipa::path(
    get,
    path = "/tabledetails",
    tag = "tables",
    summary = "Tables with their type and format",
    params(
        ("kind" = Option<String>, Query, description = "`scan` or `lookup`"),
    ),
    responses(
        (status = 200, description = "`[{\"name\",\"type\",\"format\"}]`", body = Vec<Object>, content_type = "application/json"),
    )
)]
async fn table_details(State(s): State<AppState>, Query(q): Query<KindQuery>) -> Response {
    json_resp(s.mgr.details(StreamKind::Table, q.kind.as_deref()))
}

#[utoipa::path(
    get,
    path = "/streams/{name}",
    tag = "streams",
    summary = "Describe a stream",
    params(
        ("name" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The stream name"),
    ),
    responses(
        (status = 200, description = "`{\"Name\",\"StreamFields\",\"Options\",\"StreamType\",\"Statement\"}`", body = Object, content_type = "application/json"),
        BadRequest,
        NotFound,
    )
)]
async fn describe_stream(State(s): State<AppState>, Path(n): Path<String>) -> AppResult<Response> {
    check_id(&n)?;
    Ok(json_resp(s.mgr.describe(StreamKind::Stream, &n)?))
}
#[utoipa::path(
    get,
    path = "/tables/{name}",
    tag = "tables",
    summary = "Describe a table",
    params(
        ("name" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The table name"),
    ),
    responses(
        (status = 200, description = "`{\"Name\",\"StreamFields\",\"Options\",\"StreamType\",\"Statement\"}`", body = Object, content_type = "application/json"),
        BadRequest,
        NotFound,
    )
)]
async fn describe_table(State(s): State<AppState>, Path(n): Path<String>) -> AppResult<Response> {
    check_id(&n)?;
    Ok(json_resp(s.mgr.describe(StreamKind::Table, &n)?))
}
#[utoipa::path(
    get,
    path = "/streams/{name}/schema",
    tag = "streams",
    summary = "The stream's schema",
    params(
        ("name" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The stream name"),
    ),
    responses(
        (status = 200, description = "`{\"field\":{\"type\":\"bigint\"}}`", body = Object, content_type = "application/json"),
        BadRequest,
        NotFound,
    )
)]
async fn stream_schema(State(s): State<AppState>, Path(n): Path<String>) -> AppResult<Response> {
    check_id(&n)?;
    Ok(json_resp(s.mgr.stream_schema(StreamKind::Stream, &n)?))
}
#[utoipa::path(
    get,
    path = "/tables/{name}/schema",
    tag = "tables",
    summary = "The table's schema",
    params(
        ("name" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The table name"),
    ),
    responses(
        (status = 200, description = "`{\"field\":{\"type\":\"bigint\"}}`", body = Object, content_type = "application/json"),
        BadRequest,
        NotFound,
    )
)]
async fn table_schema(State(s): State<AppState>, Path(n): Path<String>) -> AppResult<Response> {
    check_id(&n)?;
    Ok(json_resp(s.mgr.stream_schema(StreamKind::Table, &n)?))
}

async fn replace(s: &AppState, kind: StreamKind, n: &str, body: &Bytes) -> AppResult<Response> {
    check_id(n)?;
    let b: SqlBody = parse_json(body)?;
    let msg = s.mgr.replace_stream(kind, n, &b.sql).await?;
    Ok(text(StatusCode::OK, msg))
}
#[utoipa::path(
    put,
    path = "/streams/{name}",
    tag = "streams",
    summary = "Replace a stream",
    params(
        ("name" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The stream name"),
    ),
    request_body(content = SqlBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`Stream demo is replaced.`", body = String, content_type = "text/plain"),
        BadRequest,
        NotFound,
        Busy,
        Fault,
    )
)]
async fn replace_stream(
    State(s): State<AppState>,
    Path(n): Path<String>,
    body: Bytes,
) -> AppResult<Response> {
    replace(&s, StreamKind::Stream, &n, &body).await
}
#[utoipa::path(
    put,
    path = "/tables/{name}",
    tag = "tables",
    summary = "Replace a table",
    params(
        ("name" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The table name"),
    ),
    request_body(content = SqlBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`Table demo is replaced.`", body = String, content_type = "text/plain"),
        BadRequest,
        NotFound,
        Busy,
        Fault,
    )
)]
async fn replace_table(
    State(s): State<AppState>,
    Path(n): Path<String>,
    body: Bytes,
) -> AppResult<Response> {
    replace(&s, StreamKind::Table, &n, &body).await
}

#[derive(Deserialize)]
struct ForceQuery {
    force: Option<String>,
}

async fn drop_(s: &AppState, kind: StreamKind, n: &str, q: &ForceQuery) -> AppResult<Response> {
    check_id(n)?;
    let force = matches!(q.force.as_deref(), Some("true" | "1"));
    s.mgr.drop_stream(kind, n, force).await?;
    let word = if kind == StreamKind::Stream {
        "Stream"
    } else {
        "Table"
    };
    Ok(text(StatusCode::OK, format!("{word} {n} is dropped.")))
}
#[utoipa::path(
    delete,
    path = "/streams/{name}",
    tag = "streams",
    summary = "Drop a stream (refused while rules use it unless force)",
    params(
        ("name" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The stream name"),
        ("force" = Option<String>, Query, description = "`true` or `1`: drop even while rules use it"),
    ),
    responses(
        (status = 200, description = "`Stream demo is dropped.`", body = String, content_type = "text/plain"),
        BadRequest,
        NotFound,
        Busy,
        Fault,
    )
)]
async fn drop_stream(
    State(s): State<AppState>,
    Path(n): Path<String>,
    Query(q): Query<ForceQuery>,
) -> AppResult<Response> {
    drop_(&s, StreamKind::Stream, &n, &q).await
}
#[utoipa::path(
    delete,
    path = "/tables/{name}",
    tag = "tables",
    summary = "Drop a table (refused while rules use it unless force)",
    params(
        ("name" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The table name"),
        ("force" = Option<String>, Query, description = "`true` or `1`: drop even while rules use it"),
    ),
    responses(
        (status = 200, description = "`Table demo is dropped.`", body = String, content_type = "text/plain"),
        BadRequest,
        NotFound,
        Busy,
        Fault,
    )
)]
async fn drop_table(
    State(s): State<AppState>,
    Path(n): Path<String>,
    Query(q): Query<ForceQuery>,
) -> AppResult<Response> {
    drop_(&s, StreamKind::Table, &n, &q).await
}
