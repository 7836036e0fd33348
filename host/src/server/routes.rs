//! Route table and handlers.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use oort_core::schema::unknown_key_message;
use oort_sql::ast::StreamKind;
use serde::Deserialize;
use serde_json::{json, Value as Json};

use super::AppState;
use crate::error::{AppError, AppResult};
use crate::manager::rule_def::validate_id;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(info).post(info))
        .route("/ping", get(ping))
        .route("/metrics", get(super::prometheus::metrics))
        .route("/stop", post(stop))
        .route("/streams", get(list_streams).post(exec_streams))
        .route("/streamdetails", get(stream_details))
        .route(
            "/streams/{name}",
            get(describe_stream).put(replace_stream).delete(drop_stream),
        )
        .route("/streams/{name}/schema", get(stream_schema))
        .route("/tables", get(list_tables).post(exec_tables))
        .route("/tabledetails", get(table_details))
        .route(
            "/tables/{name}",
            get(describe_table).put(replace_table).delete(drop_table),
        )
        .route("/tables/{name}/schema", get(table_schema))
        .route("/rules", get(list_rules).post(create_rule))
        .route("/rules/validate", post(validate_rule))
        .route("/rules/status/all", get(all_status))
        .route(
            "/rules/{id}",
            get(show_rule).put(update_rule).delete(delete_rule),
        )
        .route("/rules/{id}/start", post(start_rule))
        .route("/rules/{id}/stop", post(stop_rule))
        .route("/rules/{id}/restart", post(restart_rule))
        .route("/rules/{id}/status", get(rule_status))
        .route("/v2/rules/{id}/status", get(rule_status_v2))
        .route("/rules/{id}/topo", get(rule_topo))
        .route("/rules/{id}/explain", get(rule_explain))
        .route(
            "/metadata/sources/yaml/{typ}",
            get(|s, p| conf_yaml(s, "sources", p)),
        )
        .route(
            "/metadata/sinks/yaml/{typ}",
            get(|s, p| conf_yaml(s, "sinks", p)),
        )
        .route(
            "/metadata/sources/{typ}/confKeys/{key}",
            axum::routing::put(|s, p, b| conf_put(s, "sources", p, b))
                .delete(|s, p| conf_delete(s, "sources", p)),
        )
        .route(
            "/metadata/sinks/{typ}/confKeys/{key}",
            axum::routing::put(|s, p, b| conf_put(s, "sinks", p, b))
                .delete(|s, p| conf_delete(s, "sinks", p)),
        )
        .merge(super::metadata::routes())
        .merge(super::schemas::routes())
        .merge(super::plugins::routes(
            state
                .plugins
                .as_ref()
                .map_or(64 << 20, oort_wasm::PluginManager::max_package_bytes),
        ))
        .merge(super::connections::routes())
        .merge(super::data::routes(&state))
        .merge(super::console::routes())
        .fallback(not_found)
        .with_state(state)
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

async fn ping() -> StatusCode {
    StatusCode::OK
}

async fn stop(State(s): State<AppState>) -> Response {
    s.shutdown.cancel();
    text(StatusCode::OK, "stop success")
}

#[derive(Deserialize)]
struct SqlBody {
    sql: String,
}

async fn exec(s: &AppState, body: &Bytes) -> AppResult<Response> {
    let b: SqlBody = parse_json(body)?;
    match s.mgr.exec_stream_sql(&b.sql).await? {
        crate::manager::StmtResult::Text(t) => Ok(text(StatusCode::CREATED, t)),
        crate::manager::StmtResult::Json(j) => Ok(json_resp(j)),
    }
}

async fn exec_streams(State(s): State<AppState>, body: Bytes) -> AppResult<Response> {
    exec(&s, &body).await
}
async fn exec_tables(State(s): State<AppState>, body: Bytes) -> AppResult<Response> {
    exec(&s, &body).await
}

async fn list_streams(State(s): State<AppState>) -> Response {
    json_resp(json!(s.mgr.list(StreamKind::Stream)))
}

#[derive(Deserialize)]
struct KindQuery {
    kind: Option<String>,
}

async fn list_tables(State(s): State<AppState>, Query(q): Query<KindQuery>) -> Response {
    json_resp(json!(s.mgr.list_tables(q.kind.as_deref())))
}

async fn stream_details(State(s): State<AppState>) -> Response {
    json_resp(s.mgr.details(StreamKind::Stream, None))
}

async fn table_details(State(s): State<AppState>, Query(q): Query<KindQuery>) -> Response {
    json_resp(s.mgr.details(StreamKind::Table, q.kind.as_deref()))
}

async fn describe_stream(State(s): State<AppState>, Path(n): Path<String>) -> AppResult<Response> {
    check_id(&n)?;
    Ok(json_resp(s.mgr.describe(StreamKind::Stream, &n)?))
}
async fn describe_table(State(s): State<AppState>, Path(n): Path<String>) -> AppResult<Response> {
    check_id(&n)?;
    Ok(json_resp(s.mgr.describe(StreamKind::Table, &n)?))
}
async fn stream_schema(State(s): State<AppState>, Path(n): Path<String>) -> AppResult<Response> {
    check_id(&n)?;
    Ok(json_resp(s.mgr.stream_schema(StreamKind::Stream, &n)?))
}
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
async fn replace_stream(
    State(s): State<AppState>,
    Path(n): Path<String>,
    body: Bytes,
) -> AppResult<Response> {
    replace(&s, StreamKind::Stream, &n, &body).await
}
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
async fn drop_stream(
    State(s): State<AppState>,
    Path(n): Path<String>,
    Query(q): Query<ForceQuery>,
) -> AppResult<Response> {
    drop_(&s, StreamKind::Stream, &n, &q).await
}
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

async fn list_rules(State(s): State<AppState>) -> Response {
    json_resp(Json::Array(s.mgr.list_rules().await))
}

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

async fn delete_rule(State(s): State<AppState>, Path(id): Path<String>) -> AppResult<Response> {
    check_id(&id)?;
    s.mgr
        .delete_rule(&id)
        .await
        .map_err(|e| e.context("delete rule error"))?;
    Ok(text(StatusCode::OK, format!("Rule {id} is dropped.")))
}

async fn start_rule(State(s): State<AppState>, Path(id): Path<String>) -> AppResult<Response> {
    check_id(&id)?;
    s.mgr
        .start_rule(&id)
        .await
        .map_err(|e| e.context("start rule error"))?;
    Ok(text(StatusCode::OK, format!("Rule {id} was started")))
}

async fn stop_rule(State(s): State<AppState>, Path(id): Path<String>) -> AppResult<Response> {
    check_id(&id)?;
    s.mgr
        .stop_rule(&id)
        .await
        .map_err(|e| e.context("stop rule error"))?;
    Ok(text(StatusCode::OK, format!("Rule {id} was stopped.")))
}

async fn restart_rule(State(s): State<AppState>, Path(id): Path<String>) -> AppResult<Response> {
    check_id(&id)?;
    s.mgr
        .restart_rule(&id)
        .await
        .map_err(|e| e.context("restart rule error"))?;
    Ok(text(StatusCode::OK, format!("Rule {id} was restarted")))
}

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

async fn rule_status_v2(State(s): State<AppState>, Path(id): Path<String>) -> AppResult<Response> {
    check_id(&id)?;
    Ok(json_resp(Json::Object(s.mgr.rule_status(&id).await?)))
}

async fn all_status(State(s): State<AppState>) -> Response {
    json_resp(s.mgr.all_status().await)
}

async fn rule_explain(State(s): State<AppState>, Path(id): Path<String>) -> AppResult<Response> {
    check_id(&id)?;
    Ok(text(StatusCode::OK, s.mgr.rule_explain(&id).await?))
}

async fn rule_topo(State(s): State<AppState>, Path(id): Path<String>) -> AppResult<Response> {
    check_id(&id)?;
    Ok(json_resp(s.mgr.rule_topo(&id).await?))
}

// ---------- conf keys ----------

async fn conf_yaml(
    State(s): State<AppState>,
    kind: &'static str,
    Path(typ): Path<String>,
) -> AppResult<Response> {
    check_id(&typ)?;
    Ok(json_resp(Json::Object(s.mgr.conf().keys(kind, &typ)?)))
}

async fn conf_put(
    State(s): State<AppState>,
    kind: &'static str,
    Path((typ, key)): Path<(String, String)>,
    body: Bytes,
) -> AppResult<Response> {
    check_id(&typ)?;
    check_id(&key)?;
    let v: Json = parse_json(&body)?;
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
            .source(&typ)
            .map(|f| f.info())
            .or_else(|| reg.lookup(&typ).map(|f| f.info())),
        _ => reg.sink(&typ).map(|f| f.info()),
    };
    // A type that can be a lookup table also takes the `lookup` cache section.
    let lookup = kind == "sources" && reg.lookup(&typ).is_some();
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
    s.mgr.conf().put(kind, &typ, &key, &v)?;
    Ok(StatusCode::OK.into_response())
}

async fn conf_delete(
    State(s): State<AppState>,
    kind: &'static str,
    Path((typ, key)): Path<(String, String)>,
) -> AppResult<Response> {
    check_id(&typ)?;
    check_id(&key)?;
    s.mgr.conf().delete(kind, &typ, &key)?;
    Ok(StatusCode::OK.into_response())
}
