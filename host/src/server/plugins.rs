//! Plugin routes, shaped like eKuiper's: `/plugins/sources`, `/plugins/sinks`.
//! Install, list, show, upgrade in place, delete (refused while rules use the
//! plugin unless `force`, which stops them).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use oort_wasm::{InstallRequest, PluginError, PluginKind};
use serde::Deserialize;
use serde_json::{json, Value as Json};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{BadRequest, Busy, ErrorBody, Fault, NotFound, Package, PluginInstallBody};
use super::routes::{json_resp, text};
use super::AppState;
use crate::error::{AppError, AppResult};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, install))
        .routes(routes!(show, upgrade, delete))
}

/// The package upload, whose body may be as large as a plugin package
/// (`plugins.max_package_bytes`) rather than `rest.body_limit`.
pub fn upload_routes(max_package_bytes: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload))
        .layer(axum::extract::DefaultBodyLimit::max(max_package_bytes))
        .layer(axum::middleware::from_fn_with_state(
            max_package_bytes,
            oort_connectors::linger::refuse_declared_over,
        ))
}

impl From<PluginError> for AppError {
    fn from(e: PluginError) -> Self {
        match e {
            PluginError::BadRequest(m) => AppError::bad(m),
            PluginError::NotFound(m) => AppError::NotFound(m),
            PluginError::Internal(m) => AppError::Internal(m),
        }
    }
}

fn kind_of(s: &str) -> AppResult<PluginKind> {
    match s {
        "sources" => Ok(PluginKind::Source),
        "sinks" => Ok(PluginKind::Sink),
        "functions" | "portables" => Err(AppError::bad(format!(
            "{s} plugins are not supported: Oort plugins are WebAssembly sources and sinks (POST /plugins/sources or /plugins/sinks)"
        ))),
        other => Err(AppError::not_found(format!("no plugin type {other}"))),
    }
}

fn word(k: PluginKind) -> &'static str {
    match k {
        PluginKind::Source => "source",
        PluginKind::Sink => "sink",
    }
}

fn plugins(s: &AppState) -> AppResult<&oort_wasm::PluginManager> {
    s.plugins
        .as_ref()
        .ok_or_else(|| AppError::Internal("the plugin host is not available".into()))
}

#[utoipa::path(
    get,
    path = "/plugins/{kind}",
    tag = "plugins",
    operation_id = "plugins_list",
    summary = "Installed plugins of a kind",
    params(
        ("kind" = String, Path, description = "`sources` or `sinks`"),
    ),
    responses(
        (status = 200, description = "Names", body = Vec<String>, content_type = "application/json"),
        BadRequest,
        NotFound,
        Fault,
    )
)]
async fn list(State(s): State<AppState>, Path(kind): Path<String>) -> AppResult<Response> {
    let k = kind_of(&kind)?;
    Ok(json_resp(json!(plugins(&s)?.list(k))))
}

fn parse_req(kind: PluginKind, body: &Bytes) -> AppResult<InstallRequest> {
    let mut req: InstallRequest = serde_json::from_slice(body)
        .map_err(|e| AppError::bad(format!("invalid request body: {e}")))?;
    req.kind = kind;
    Ok(req)
}

#[utoipa::path(
    post,
    path = "/plugins/{kind}",
    tag = "plugins",
    operation_id = "plugins_install",
    summary = "Install a plugin from a URI",
    params(
        ("kind" = String, Path, description = "`sources` or `sinks`"),
    ),
    request_body(content = PluginInstallBody, content_type = "application/json"),
    responses(
        (status = 201, description = "`source plugin demo is created`", body = String, content_type = "text/plain"),
        BadRequest,
        NotFound,
        Busy,
        Fault,
    )
)]
async fn install(
    State(s): State<AppState>,
    Path(kind): Path<String>,
    body: Bytes,
) -> AppResult<Response> {
    let k = kind_of(&kind)?;
    let req = parse_req(k, &body)?;
    let name = req.name.clone();
    if plugins(&s)?.get(k, &name).is_some() {
        return Err(AppError::bad(format!("invalid name {name}: duplicate")));
    }
    plugins(&s)?.install(req).await?;
    Ok(text(
        StatusCode::CREATED,
        format!("{} plugin {name} is created", word(k)),
    ))
}

#[utoipa::path(
    get,
    path = "/plugins/{kind}/{name}",
    tag = "plugins",
    operation_id = "plugins_show",
    summary = "A plugin's status",
    params(
        ("kind" = String, Path, description = "`sources` or `sinks`"),
        ("name" = String, Path, description = "The plugin name"),
    ),
    responses(
        (status = 200, description = "The plugin's status and the rules using it", body = Object, content_type = "application/json"),
        BadRequest,
        NotFound,
        Fault,
    )
)]
async fn show(
    State(s): State<AppState>,
    Path((kind, name)): Path<(String, String)>,
) -> AppResult<Response> {
    let k = kind_of(&kind)?;
    let info = plugins(&s)?
        .get(k, &name)
        .ok_or_else(|| AppError::not_found(format!("{} plugin {name} is not found", word(k))))?;
    let mut v = serde_json::to_value(&info).map_err(|e| AppError::Internal(e.to_string()))?;
    if let Json::Object(m) = &mut v {
        m.insert(
            "rules".into(),
            json!(
                s.mgr
                    .rules_using_connector(k == PluginKind::Source, &name)
                    .await
            ),
        );
    }
    Ok(json_resp(v))
}

#[utoipa::path(
    put,
    path = "/plugins/{kind}/{name}",
    tag = "plugins",
    operation_id = "plugins_upgrade",
    summary = "Upgrade a plugin in place from a URI",
    params(
        ("kind" = String, Path, description = "`sources` or `sinks`"),
        ("name" = String, Path, description = "The plugin name"),
    ),
    request_body(content = PluginInstallBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`source plugin demo is updated`", body = String, content_type = "text/plain"),
        BadRequest,
        NotFound,
        Busy,
        Fault,
    )
)]
async fn upgrade(
    State(s): State<AppState>,
    Path((kind, name)): Path<(String, String)>,
    body: Bytes,
) -> AppResult<Response> {
    let k = kind_of(&kind)?;
    let req = parse_req(k, &body)?;
    if req.name != name {
        return Err(AppError::bad(format!(
            "the name in the body ({}) must be {name}",
            req.name
        )));
    }
    plugins(&s)?.upgrade(req).await?;
    restart_users(&s, k, &name).await
}

/// After an upgrade: rules using the plugin restart on the new version.
async fn restart_users(s: &AppState, k: PluginKind, name: &str) -> AppResult<Response> {
    let users = s
        .mgr
        .rules_using_connector(k == PluginKind::Source, name)
        .await;
    for id in &users {
        if let Err(e) = s.mgr.restart_if_running(id).await {
            tracing::warn!(rule = %id, error = %e, "rule did not restart on the upgraded plugin");
        }
    }
    Ok(text(
        StatusCode::OK,
        format!("{} plugin {name} is updated", word(k)),
    ))
}

/// `PUT /plugins/{kind}/{name}/package`: the package (a zip or a `.wasm`)
/// in the body installs the plugin, or upgrades it (keeping its operator
/// grants; rules using it restart). For a package on the client's machine:
/// `curl -T demo.zip .../plugins/sinks/demo/package` or `oort create plugin
/// sink demo ./demo.zip`.
#[utoipa::path(
    put,
    path = "/plugins/{kind}/{name}/package",
    tag = "plugins",
    operation_id = "plugins_upload",
    summary = "Install or upgrade a plugin from the package in the body",
    params(
        ("kind" = String, Path, description = "`sources` or `sinks`"),
        ("name" = String, Path, description = "The plugin name"),
    ),
    request_body(content = Package, description = "A zip or a .wasm", content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "`source plugin demo is created`", body = String, content_type = "text/plain"),
        (status = 200, description = "`source plugin demo is updated`", body = String, content_type = "text/plain"),
        BadRequest,
        NotFound,
        (status = 413, description = "Package too large", body = ErrorBody),
        Busy,
        Fault,
    )
)]
async fn upload(
    State(s): State<AppState>,
    Path((kind, name)): Path<(String, String)>,
    body: Bytes,
) -> AppResult<Response> {
    let k = kind_of(&kind)?;
    if body.is_empty() {
        return Err(AppError::bad(
            "the request body must be the package (a zip or a .wasm)",
        ));
    }
    let (_, upgraded) = plugins(&s)?.install_upload(k, &name, body.to_vec()).await?;
    if !upgraded {
        return Ok(text(
            StatusCode::CREATED,
            format!("{} plugin {name} is created", word(k)),
        ));
    }
    restart_users(&s, k, &name).await
}

#[derive(Deserialize)]
struct DeleteQuery {
    force: Option<String>,
}

#[utoipa::path(
    delete,
    path = "/plugins/{kind}/{name}",
    tag = "plugins",
    operation_id = "plugins_delete",
    summary = "Delete a plugin (refused while rules use it unless force)",
    params(
        ("kind" = String, Path, description = "`sources` or `sinks`"),
        ("name" = String, Path, description = "The plugin name"),
        ("force" = Option<String>, Query, description = "`1` or `true`: stop the rules using it"),
    ),
    responses(
        (status = 200, description = "`source plugin demo is deleted`", body = String, content_type = "text/plain"),
        BadRequest,
        NotFound,
        Busy,
        Fault,
    )
)]
async fn delete(
    State(s): State<AppState>,
    Path((kind, name)): Path<(String, String)>,
    Query(q): Query<DeleteQuery>,
) -> AppResult<Response> {
    let k = kind_of(&kind)?;
    if plugins(&s)?.get(k, &name).is_none() {
        return Err(AppError::not_found(format!(
            "{} plugin {name} is not found",
            word(k)
        )));
    }
    let users = s
        .mgr
        .rules_using_connector(k == PluginKind::Source, &name)
        .await;
    let force = matches!(q.force.as_deref(), Some("1" | "true"));
    if !users.is_empty() {
        if !force {
            return Err(AppError::bad(format!(
                "{} plugin {name} is used by rules {}; stop or delete them first, or delete with ?force=1 to stop them",
                word(k),
                users.join(", ")
            )));
        }
        for id in &users {
            s.mgr.stop_rule(id).await?;
        }
    }
    plugins(&s)?.delete(k, &name)?;
    Ok(text(
        StatusCode::OK,
        format!("{} plugin {name} is deleted", word(k)),
    ))
}
