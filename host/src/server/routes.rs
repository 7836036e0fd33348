//! Route table and handlers.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use oort_core::schema::unknown_key_message;
use oort_sql::ast::StreamKind;
use serde::Deserialize;
use serde_json::{json, Value as Json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{ErrorBody, RuleBody};
use super::AppState;
use crate::error::{AppError, AppResult};
use crate::manager::rule_def::validate_id;

/// The whole REST API: the documented routes, `/openapi.json` (the
/// document, rendered here once), the console and the fallback.
pub fn router(state: AppState) -> Router {
    let limit = state
        .plugins
        .as_ref()
        .map_or(64 << 20, oort_wasm::PluginManager::max_package_bytes);
    let (api, doc) = api(limit).split_for_parts();
    api.layer(Extension(super::openapi::Document::new(&doc)))
        .layer(super::data::extension(&state))
        // The web console is not part of the documented API.
        .merge(super::console::routes())
        .fallback(not_found)
        .with_state(state)
}

/// Every documented route, each registered once through `routes!` so that
/// the router and the OpenAPI document cannot disagree.
pub(super) fn api(max_package_bytes: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(super::openapi::base())
        .routes(routes!(info, info_post))
        .routes(routes!(ping))
        .routes(routes!(super::openapi::openapi_json))
        .routes(routes!(super::prometheus::metrics))
        .routes(routes!(stop))
        .routes(routes!(list_streams, exec_streams))
        .routes(routes!(stream_details))
        .routes(routes!(describe_stream, replace_stream, drop_stream))
        .routes(routes!(stream_schema))
        .routes(routes!(list_tables, exec_tables))
        .routes(routes!(table_details))
        .routes(routes!(describe_table, replace_table, drop_table))
        .routes(routes!(table_schema))
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
        .routes(routes!(source_yaml))
        .routes(routes!(sink_yaml))
        .routes(routes!(source_conf_put, source_conf_delete))
        .routes(routes!(sink_conf_put, sink_conf_delete))
        .merge(super::metadata::routes())
        .merge(super::schemas::routes())
        .merge(super::plugins::routes(max_package_bytes))
        .merge(super::connections::routes())
        .merge(super::data::routes())
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

fn parse_json<T: serde::de::DeserializeOwned>(body: &Bytes) -> AppResult<T> {
    serde_json::from_slice(body).map_err(|e| AppError::bad(format!("invalid request body: {e}")))
}

fn check_id(id: &str) -> AppResult<()> {
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
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "A data import holds the store", body = ErrorBody),
        (status = 500, description = "A server fault (store I/O)", body = ErrorBody),
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
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "A data import holds the store", body = ErrorBody),
        (status = 500, description = "A server fault (store I/O)", body = ErrorBody),
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
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
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
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
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
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
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
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
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
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "A data import holds the store", body = ErrorBody),
        (status = 500, description = "A server fault (store I/O)", body = ErrorBody),
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
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "A data import holds the store", body = ErrorBody),
        (status = 500, description = "A server fault (store I/O)", body = ErrorBody),
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
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "A data import holds the store", body = ErrorBody),
        (status = 500, description = "A server fault (store I/O)", body = ErrorBody),
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
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "A data import holds the store", body = ErrorBody),
        (status = 500, description = "A server fault (store I/O)", body = ErrorBody),
    )
)]
async fn drop_table(
    State(s): State<AppState>,
    Path(n): Path<String>,
    Query(q): Query<ForceQuery>,
) -> AppResult<Response> {
    drop_(&s, StreamKind::Table, &n, &q).await
}

// ---------- rules ----------

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
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "A data import holds the store", body = ErrorBody),
        (status = 500, description = "A server fault (store I/O)", body = ErrorBody),
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
        (status = 400, description = "Invalid request", body = ErrorBody),
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
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
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
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "A data import holds the store", body = ErrorBody),
        (status = 500, description = "A server fault (store I/O)", body = ErrorBody),
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
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "A data import holds the store", body = ErrorBody),
        (status = 500, description = "A server fault (store I/O)", body = ErrorBody),
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
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "A data import holds the store", body = ErrorBody),
        (status = 500, description = "A server fault (store I/O)", body = ErrorBody),
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
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "A data import holds the store", body = ErrorBody),
        (status = 500, description = "A server fault (store I/O)", body = ErrorBody),
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
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "A data import holds the store", body = ErrorBody),
        (status = 500, description = "A server fault (store I/O)", body = ErrorBody),
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
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
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
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
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
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
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
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    )
)]
async fn rule_topo(State(s): State<AppState>, Path(id): Path<String>) -> AppResult<Response> {
    check_id(&id)?;
    Ok(json_resp(s.mgr.rule_topo(&id).await?))
}

// ---------- conf keys ----------

async fn conf_yaml(s: &AppState, kind: &'static str, typ: &str) -> AppResult<Response> {
    check_id(typ)?;
    Ok(json_resp(Json::Object(s.mgr.conf().keys(kind, typ)?)))
}

#[utoipa::path(
    get,
    path = "/metadata/sources/yaml/{typ}",
    tag = "metadata",
    summary = "All conf keys of a source type",
    params(
        ("typ" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The source type"),
    ),
    responses(
        (status = 200, description = "`{\"<key>\": {properties}}`", body = Object, content_type = "application/json"),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 500, description = "A server fault (store I/O)", body = ErrorBody),
    )
)]
async fn source_yaml(State(s): State<AppState>, Path(typ): Path<String>) -> AppResult<Response> {
    conf_yaml(&s, "sources", &typ).await
}

#[utoipa::path(
    get,
    path = "/metadata/sinks/yaml/{typ}",
    tag = "metadata",
    summary = "All conf keys of a sink type",
    params(
        ("typ" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The sink type"),
    ),
    responses(
        (status = 200, description = "`{\"<key>\": {properties}}`", body = Object, content_type = "application/json"),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 500, description = "A server fault (store I/O)", body = ErrorBody),
    )
)]
async fn sink_yaml(State(s): State<AppState>, Path(typ): Path<String>) -> AppResult<Response> {
    conf_yaml(&s, "sinks", &typ).await
}

#[utoipa::path(
    put,
    path = "/metadata/sources/{typ}/confKeys/{key}",
    tag = "metadata",
    summary = "Store a source conf key",
    params(
        ("typ" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The source type"),
        ("key" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The conf key"),
    ),
    request_body(content = Object, description = "The properties", content_type = "application/json"),
    responses(
        (status = 200, description = "Stored, empty body"),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 409, description = "A data import holds the store", body = ErrorBody),
        (status = 500, description = "A server fault (store I/O)", body = ErrorBody),
    )
)]
async fn source_conf_put(
    State(s): State<AppState>,
    Path((typ, key)): Path<(String, String)>,
    body: Bytes,
) -> AppResult<Response> {
    conf_put(&s, "sources", &typ, &key, &body).await
}

#[utoipa::path(
    put,
    path = "/metadata/sinks/{typ}/confKeys/{key}",
    tag = "metadata",
    summary = "Store a sink conf key",
    params(
        ("typ" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The sink type"),
        ("key" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The conf key"),
    ),
    request_body(content = Object, description = "The properties", content_type = "application/json"),
    responses(
        (status = 200, description = "Stored, empty body"),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 409, description = "A data import holds the store", body = ErrorBody),
        (status = 500, description = "A server fault (store I/O)", body = ErrorBody),
    )
)]
async fn sink_conf_put(
    State(s): State<AppState>,
    Path((typ, key)): Path<(String, String)>,
    body: Bytes,
) -> AppResult<Response> {
    conf_put(&s, "sinks", &typ, &key, &body).await
}

#[utoipa::path(
    delete,
    path = "/metadata/sources/{typ}/confKeys/{key}",
    tag = "metadata",
    summary = "Remove a stored source conf key",
    params(
        ("typ" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The source type"),
        ("key" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The conf key"),
    ),
    responses(
        (status = 200, description = "Removed, empty body"),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "A data import holds the store", body = ErrorBody),
        (status = 500, description = "A server fault (store I/O)", body = ErrorBody),
    )
)]
async fn source_conf_delete(
    State(s): State<AppState>,
    Path((typ, key)): Path<(String, String)>,
) -> AppResult<Response> {
    conf_delete(&s, "sources", &typ, &key).await
}

#[utoipa::path(
    delete,
    path = "/metadata/sinks/{typ}/confKeys/{key}",
    tag = "metadata",
    summary = "Remove a stored sink conf key",
    params(
        ("typ" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The sink type"),
        ("key" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The conf key"),
    ),
    responses(
        (status = 200, description = "Removed, empty body"),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "A data import holds the store", body = ErrorBody),
        (status = 500, description = "A server fault (store I/O)", body = ErrorBody),
    )
)]
async fn sink_conf_delete(
    State(s): State<AppState>,
    Path((typ, key)): Path<(String, String)>,
) -> AppResult<Response> {
    conf_delete(&s, "sinks", &typ, &key).await
}

async fn conf_put(
    s: &AppState,
    kind: &'static str,
    typ: &str,
    key: &str,
    body: &Bytes,
) -> AppResult<Response> {
    check_id(typ)?;
    check_id(key)?;
    let v: Json = parse_json(body)?;
    if !v.is_object() {
        return Err(AppError::bad_code(
            crate::error::code::CONF_KEY,
            "conf key properties must be a JSON object",
        ));
    }
    // A registered connector checks the values it declares (as eKuiper's
    // `Validate` does) and names keys it does not know.
    let reg = s.mgr.registry();
    let info = match kind {
        "sources" => reg
            .source(typ)
            .map(|f| f.info())
            .or_else(|| reg.lookup(typ).map(|f| f.info())),
        _ => reg.sink(typ).map(|f| f.info()),
    };
    // A type that can be a lookup table also takes the `lookup` cache section.
    let lookup = kind == "sources" && reg.lookup(typ).is_some();
    let mut known: Vec<&str> = oort_core::COMMON_SINK_KEYS.to_vec();
    if lookup {
        known.push("lookup");
        if let Some(props) = v.as_object() {
            crate::runtime::lookup::LookupConf::take(&mut props.clone()).map_err(|e| {
                AppError::bad_code(crate::error::code::CONF_KEY, format!("{typ}: {e}"))
            })?;
        }
    }
    if let (Some(info), Some(props)) = (info, v.as_object()) {
        info.check_values(props)
            .map_err(|m| AppError::bad_code(crate::error::code::CONF_KEY, format!("{typ}: {m}")))?;
        for (k, near) in info.unknown_keys(props, &known) {
            let msg = unknown_key_message("property", &k, near.as_deref());
            tracing::warn!(%typ, conf_key = %key, "{msg}");
        }
    }
    s.mgr.conf().put(kind, typ, key, &v)?;
    Ok(StatusCode::OK.into_response())
}

async fn conf_delete(
    s: &AppState,
    kind: &'static str,
    typ: &str,
    key: &str,
) -> AppResult<Response> {
    check_id(typ)?;
    check_id(key)?;
    s.mgr.conf().delete(kind, typ, key)?;
    Ok(StatusCode::OK.into_response())
}
