//! Connector conf keys (eKuiper's `/metadata/{sources,sinks}/.../confKeys`):
//! list as YAML, store (checked against the connector's declared
//! properties) and remove.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use oort_core::schema::unknown_key_message;
use serde_json::Value as Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{BadRequest, Busy, Fault, NotFound};
use super::routes::{check_id, json_resp, parse_json};
use super::AppState;
use crate::error::{AppError, AppResult};

/// The conf key routes.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(source_yaml))
        .routes(routes!(sink_yaml))
        .routes(routes!(source_conf_put, source_conf_delete))
        .routes(routes!(sink_conf_put, sink_conf_delete))
}

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
        BadRequest,
        Fault,
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
        BadRequest,
        Fault,
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
        BadRequest,
        Busy,
        Fault,
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
        BadRequest,
        Busy,
        Fault,
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
        BadRequest,
        NotFound,
        Busy,
        Fault,
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
        BadRequest,
        NotFound,
        Busy,
        Fault,
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
