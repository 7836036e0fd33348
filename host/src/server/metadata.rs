//! Connector metadata in eKuiper's shapes, from what each factory declares
//! ([`oort_core::ConnectorInfo`]): `GET /metadata/sources` and `/metadata/sinks`
//! (`[{name, about, type}]`) and `GET /metadata/sources/{type}`,
//! `/metadata/sinks/{type}` (the UI metadata: property fields with type,
//! default, choices and hint), and the connectivity check
//! `POST /metadata/{sources|sinks|lookups}/connection/{type}`. Lookup
//! tables' connectors are listed with `GET /metadata/sources?kind=lookup`.
//! `GET /metadata/functions` lists the SQL functions. Conf keys live in
//! [`super::routes`].

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::response::Response;
use std::collections::HashMap;

use oort_core::{ConnectorInfo, Props};
use serde_json::{json, Value as Json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{BadRequest, NotFound};
use super::routes::json_resp;
use super::AppState;
use crate::error::{AppError, AppResult};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sources))
        .routes(routes!(list_sinks))
        .routes(routes!(source_meta))
        .routes(routes!(sink_meta))
        .routes(routes!(source_ping))
        .routes(routes!(sink_ping))
        .routes(routes!(ping_lookup))
        .routes(routes!(functions))
}

#[utoipa::path(
    get,
    path = "/metadata/sources",
    tag = "metadata",
    summary = "Installed source connector types",
    params(
        ("kind" = Option<String>, Query, description = "`lookup`: the types a lookup table can have"),
    ),
    responses(
        (status = 200, description = "`[{\"name\",\"about\",\"type\"}]`; `type` is `internal` or `wasm`", body = Vec<Object>, content_type = "application/json"),
    )
)]
async fn list_sources(State(s): State<AppState>, q: Query<HashMap<String, String>>) -> Response {
    list(&s, false, &q)
}

#[utoipa::path(
    get,
    path = "/metadata/sinks",
    tag = "metadata",
    summary = "Installed sink connector types",
    responses(
        (status = 200, description = "`[{\"name\",\"about\",\"type\"}]`; `type` is `internal` or `wasm`", body = Vec<Object>, content_type = "application/json"),
    )
)]
async fn list_sinks(State(s): State<AppState>, q: Query<HashMap<String, String>>) -> Response {
    list(&s, true, &q)
}

#[utoipa::path(
    get,
    path = "/metadata/sources/{typ}",
    tag = "metadata",
    summary = "UI metadata of one source connector",
    params(
        ("typ" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The source type"),
    ),
    responses(
        (status = 200, description = "Every property with type, default, optional, values, hint", body = Object, content_type = "application/json"),
        NotFound,
    )
)]
async fn source_meta(State(s): State<AppState>, Path(typ): Path<String>) -> AppResult<Response> {
    one(&s, false, &typ)
}

#[utoipa::path(
    get,
    path = "/metadata/sinks/{typ}",
    tag = "metadata",
    summary = "UI metadata of one sink connector",
    params(
        ("typ" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The sink type"),
    ),
    responses(
        (status = 200, description = "Every property with type, default, optional, values, hint", body = Object, content_type = "application/json"),
        NotFound,
    )
)]
async fn sink_meta(State(s): State<AppState>, Path(typ): Path<String>) -> AppResult<Response> {
    one(&s, true, &typ)
}

#[utoipa::path(
    post,
    path = "/metadata/sources/connection/{typ}",
    tag = "metadata",
    summary = "Connectivity check of a source connector (10 s at most)",
    params(
        ("typ" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The source type"),
    ),
    request_body(content = Object, description = "The connector's properties", content_type = "application/json"),
    responses(
        (status = 200, description = "The peer answered, empty body"),
        BadRequest,
        NotFound,
    )
)]
async fn source_ping(
    State(s): State<AppState>,
    Path(typ): Path<String>,
    body: axum::body::Bytes,
) -> AppResult<Response> {
    ping(&s, false, &typ, &body).await
}

#[utoipa::path(
    post,
    path = "/metadata/sinks/connection/{typ}",
    tag = "metadata",
    summary = "Connectivity check of a sink connector (10 s at most)",
    params(
        ("typ" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The sink type"),
    ),
    request_body(content = Object, description = "The connector's properties", content_type = "application/json"),
    responses(
        (status = 200, description = "The peer answered, empty body"),
        BadRequest,
        NotFound,
    )
)]
async fn sink_ping(
    State(s): State<AppState>,
    Path(typ): Path<String>,
    body: axum::body::Bytes,
) -> AppResult<Response> {
    ping(&s, true, &typ, &body).await
}

/// `GET /metadata/functions`: every SQL function the engine accepts, from
/// the registry (the list docs/sql-functions.md is generated from): name,
/// family as `type`, whether it aggregates, its argument count, and what it
/// does for the engine-run ones (`hint`, eKuiper's `{"en_US": ...}` shape).
#[utoipa::path(
    get,
    path = "/metadata/functions",
    tag = "metadata",
    summary = "Every SQL function the engine accepts",
    responses(
        (status = 200, description = "`[{\"name\",\"type\",\"aggregate\",\"args\",\"hint\"?}]`", body = Vec<Object>, content_type = "application/json"),
    )
)]
async fn functions() -> Response {
    let list: Vec<Json> = oort_functions::docgen::catalogue()
        .into_iter()
        .map(|f| {
            let mut o = json!({
                "name": f.name,
                "type": f.family,
                "aggregate": f.aggregate,
                "args": f.args,
            });
            if let (Some(h), Some(m)) = (f.hint, o.as_object_mut()) {
                m.insert("hint".into(), json!({ "en_US": h }));
            }
            o
        })
        .collect();
    json_resp(Json::Array(list))
}

/// The connectivity check of a lookup table's connector.
#[utoipa::path(
    post,
    path = "/metadata/lookups/connection/{typ}",
    tag = "metadata",
    summary = "Connectivity check of a lookup table's connector (10 s at most)",
    params(
        ("typ" = String, Path, description = "The lookup source type"),
    ),
    request_body(content = Object, description = "The connector's properties", content_type = "application/json"),
    responses(
        (status = 200, description = "The peer answered, empty body"),
        BadRequest,
        NotFound,
    )
)]
async fn ping_lookup(
    State(s): State<AppState>,
    Path(typ): Path<String>,
    body: axum::body::Bytes,
) -> AppResult<Response> {
    let props: Props = serde_json::from_slice(&body)
        .map_err(|e| AppError::bad(format!("the body must be a JSON object of properties: {e}")))?;
    let f = s
        .mgr
        .registry()
        .lookup(&typ)
        .ok_or_else(|| AppError::not_found(format!("lookup source {typ} not found")))?;
    let check = f
        .ping(s.mgr.env(), &props)
        .ok_or_else(|| AppError::bad(format!("{typ} has no connection to check")))?;
    finish_ping(&typ, check).await
}

/// eKuiper's connectivity check: the body is the connector's properties;
/// 200 (empty) when the peer answered, 400 naming why not, 404 for an
/// unknown type. At most 10 s.
async fn ping(s: &AppState, sink: bool, typ: &str, body: &[u8]) -> AppResult<Response> {
    let props: Props = serde_json::from_slice(body)
        .map_err(|e| AppError::bad(format!("the body must be a JSON object of properties: {e}")))?;
    let reg = s.mgr.registry();
    let env = s.mgr.env();
    let check = if sink {
        let f = reg
            .sink(typ)
            .ok_or_else(|| AppError::not_found(format!("sink {typ} not found")))?;
        f.ping(env, &props)
    } else {
        let f = reg
            .source(typ)
            .ok_or_else(|| AppError::not_found(format!("source {typ} not found")))?;
        f.ping(env, &props)
    };
    let check = check.ok_or_else(|| AppError::bad(format!("{typ} has no connection to check")))?;
    finish_ping(typ, check).await
}

async fn finish_ping(typ: &str, check: oort_core::PingFuture) -> AppResult<Response> {
    match tokio::time::timeout(std::time::Duration::from_secs(10), check).await {
        Ok(Ok(())) => Ok(axum::http::StatusCode::OK.into_response()),
        Ok(Err(e)) => Err(AppError::bad(e.to_string())),
        Err(_) => Err(AppError::bad(format!("{typ}: no answer in 10 s"))),
    }
}

/// The declaration of a registered connector and whether it is a plugin.
fn find(s: &AppState, sink: bool, typ: &str) -> Option<(ConnectorInfo, bool)> {
    let reg = s.mgr.registry();
    let info = if sink {
        reg.sink(typ)?.info()
    } else {
        match reg.source(typ) {
            Some(f) => f.info(),
            // A lookup-only type (`redis` tables): its conf keys are sources'.
            None => reg.lookup(typ)?.info(),
        }
    };
    let kind = if sink {
        oort_wasm::PluginKind::Sink
    } else {
        oort_wasm::PluginKind::Source
    };
    let plugin = s
        .plugins
        .as_ref()
        .is_some_and(|p| p.get(kind, typ).is_some());
    Some((info, plugin))
}

fn list(s: &AppState, sink: bool, q: &HashMap<String, String>) -> Response {
    let reg = s.mgr.registry();
    if !sink && q.get("kind").is_some_and(|k| k == "lookup") {
        let v: Vec<Json> = reg
            .lookup_kinds()
            .into_iter()
            .filter_map(|k| {
                let info = reg.lookup(&k)?.info();
                Some(json!({
                    "name": k,
                    "about": {"description": {"en_US": info.about}},
                    "type": "internal",
                }))
            })
            .collect();
        return json_resp(Json::Array(v));
    }
    let kinds = if sink {
        reg.sink_kinds()
    } else {
        reg.source_kinds()
    };
    let v: Vec<Json> = kinds
        .into_iter()
        .filter_map(|k| {
            let (info, plugin) = find(s, sink, &k)?;
            Some(json!({
                "name": k,
                "about": {"description": {"en_US": info.about}},
                "type": if plugin { "wasm" } else { "internal" },
            }))
        })
        .collect();
    json_resp(Json::Array(v))
}

fn one(s: &AppState, sink: bool, typ: &str) -> AppResult<Response> {
    let (info, plugin) = find(s, sink, typ).ok_or_else(|| {
        AppError::not_found(format!(
            "{} {typ} not found",
            if sink { "sink" } else { "source" }
        ))
    })?;
    Ok(json_resp(info.ui_metadata(typ, sink, plugin)))
}
