//! Connection profiles over REST, in eKuiper's shapes: `/connections`
//! (v2: `{"id","typ","props"}`) and `/metadata/connections/...` (conf-key
//! style, by type). Profiles used by a running rule can be neither changed
//! nor deleted. Logic lives in [`crate::connections`].

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use oort_core::ConnStatus;
use serde::Deserialize;
use serde_json::{json, Value as Json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{BadRequest, Busy, Fault, NotFound};
use super::routes::{json_resp, text};
use super::AppState;
use crate::connections::{self as conns, Profile, KIND};
use crate::error::{code, AppError, AppResult};
use crate::manager::rule_def::validate_id;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(types))
        .routes(routes!(yaml))
        .routes(routes!(put_key, delete_key))
}

fn bad(msg: impl Into<String>) -> AppError {
    AppError::bad_code(code::CONF_KEY, msg)
}

fn check_id(id: &str) -> AppResult<()> {
    validate_id(id).map_err(bad)
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> AppResult<T> {
    serde_json::from_slice(body).map_err(|e| bad(format!("invalid request body: {e}")))
}

/// A type is usable when a source or sink connector of that type exists.
fn check_typ(s: &AppState, typ: &str) -> AppResult<()> {
    check_id(typ)?;
    let reg = s.mgr.registry();
    if reg.source(typ).is_none() && reg.sink(typ).is_none() {
        return Err(bad(format!(
            "unknown connection type {typ}; available: {}",
            connection_types(s).join(", ")
        )));
    }
    Ok(())
}

fn connection_types(s: &AppState) -> Vec<String> {
    let reg = s.mgr.registry();
    let mut v: Vec<String> = reg
        .source_kinds()
        .into_iter()
        .chain(reg.sink_kinds())
        .filter(|k| {
            let source = reg.source(k).is_some_and(|f| f.info().holds_connection);
            source || reg.sink(k).is_some_and(|f| f.info().holds_connection)
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

fn props_object(v: Option<Json>) -> AppResult<serde_json::Map<String, Json>> {
    match v {
        Some(Json::Object(m)) => Ok(m),
        _ => Err(bad("props must be a JSON object")),
    }
}

/// The list item: eKuiper's fields; `status` is `idle` while no rule uses it
/// (Oort connects when the first user starts).
fn item(s: &AppState, p: &Profile) -> Json {
    let (status, err, users) = match s.mgr.env().links().status(&p.selector()) {
        Some(st) => (
            match st.status {
                ConnStatus::Connected => "connected",
                ConnStatus::Connecting => "connecting",
                ConnStatus::Disconnected => "disconnected",
            },
            st.err,
            st.users,
        ),
        None => ("idle", String::new(), 0),
    };
    json!({
        "id": p.id,
        "typ": p.typ,
        "props": p.props,
        "isNamed": true,
        "status": status,
        "err": err,
        "refCount": users,
    })
}

/// Finds a profile by `<id>` or `<type>.<id>` (404 when missing).
fn lookup(s: &AppState, id: &str) -> AppResult<Profile> {
    match conns::find(s.mgr.conf(), id, None) {
        Err(conns::ConnError::NotFound(_)) => {
            Err(AppError::not_found(format!("connection {id} not found")))
        }
        other => Ok(other?),
    }
}

/// Refuses a change while running rules use the profile, naming them.
async fn ensure_unused(s: &AppState, p: &Profile, action: &str) -> AppResult<()> {
    let sel = p.selector();
    let users: Vec<String> = s
        .mgr
        .running_selectors()
        .await
        .into_iter()
        .filter(|(_, _, used)| *used == sel)
        .map(|(rule, what, _)| format!("rule {rule} ({what})"))
        .collect();
    if users.is_empty() {
        return Ok(());
    }
    Err(bad(format!(
        "cannot {action} connection {}: it is used by {}; stop those rules first",
        p.id,
        users.join(", ")
    )))
}

#[utoipa::path(
    get,
    path = "/connections",
    tag = "connections",
    operation_id = "connections_list",
    summary = "Connection profiles",
    responses(
        (status = 200, description = "`[{\"id\",\"typ\",\"props\",\"isNamed\",\"status\",\"err\",\"refCount\"}]`", body = Vec<Object>, content_type = "application/json"),
        Fault,
    )
)]
async fn list(State(s): State<AppState>) -> AppResult<Response> {
    let v: Vec<Json> = conns::list(s.mgr.conf())?
        .iter()
        .map(|p| item(&s, p))
        .collect();
    Ok(json_resp(Json::Array(v)))
}

#[utoipa::path(
    get,
    path = "/connections/{id}",
    tag = "connections",
    operation_id = "connections_show",
    summary = "A connection profile",
    params(
        ("id" = String, Path, description = "The profile id, or `<type>.<id>`"),
    ),
    responses(
        (status = 200, description = "`{\"id\",\"typ\",\"props\",\"isNamed\",\"status\",\"err\",\"refCount\"}`", body = Object, content_type = "application/json"),
        BadRequest,
        NotFound,
        Fault,
    )
)]
async fn show(State(s): State<AppState>, Path(id): Path<String>) -> AppResult<Response> {
    Ok(json_resp(item(&s, &lookup(&s, &id)?)))
}

/// A connection profile (eKuiper's v2 shape).
#[derive(Deserialize, ToSchema)]
struct NewConn {
    #[serde(default)]
    #[schema(example = "mqtt1")]
    id: String,
    /// A connector type that holds connections (`mqtt`...).
    #[serde(default)]
    #[schema(example = "mqtt")]
    typ: String,
    /// The connector's properties (an object).
    #[schema(value_type = Object)]
    props: Option<Json>,
}

#[utoipa::path(
    post,
    path = "/connections",
    tag = "connections",
    operation_id = "connections_create",
    summary = "Create a connection profile",
    request_body(content = NewConn, content_type = "application/json"),
    responses(
        (status = 201, description = "`success`", body = String, content_type = "text/plain"),
        BadRequest,
        Busy,
        Fault,
    )
)]
async fn create(State(s): State<AppState>, body: Bytes) -> AppResult<Response> {
    let b: NewConn = parse(&body)?;
    check_id(&b.id)?;
    check_typ(&s, &b.typ)?;
    let props = props_object(b.props)?;
    if let Some(p) = conns::list(s.mgr.conf())?.iter().find(|p| p.id == b.id) {
        return Err(bad(format!(
            "connection {} already exists (type {})",
            b.id, p.typ
        )));
    }
    s.mgr
        .conf()
        .put(KIND, &b.typ, &b.id, &Json::Object(props))?;
    Ok(text(StatusCode::CREATED, "success"))
}

/// The new properties of a profile (its type cannot change).
#[derive(Deserialize, ToSchema)]
struct ConnUpdate {
    #[serde(default)]
    typ: String,
    /// The connector's properties (an object).
    #[schema(value_type = Object)]
    props: Option<Json>,
}

#[utoipa::path(
    put,
    path = "/connections/{id}",
    tag = "connections",
    operation_id = "connections_update",
    summary = "Change a profile's properties (refused while running rules use it)",
    params(
        ("id" = String, Path, description = "The profile id, or `<type>.<id>`"),
    ),
    request_body(content = ConnUpdate, content_type = "application/json"),
    responses(
        (status = 200, description = "`success`", body = String, content_type = "text/plain"),
        BadRequest,
        NotFound,
        Busy,
        Fault,
    )
)]
async fn update(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> AppResult<Response> {
    let b: ConnUpdate = parse(&body)?;
    let old = lookup(&s, &id)?;
    if !b.typ.is_empty() && b.typ != old.typ {
        return Err(bad(format!(
            "connection {} is of type {}; its type cannot change",
            old.id, old.typ
        )));
    }
    let props = props_object(b.props)?;
    ensure_unused(&s, &old, "update").await?;
    s.mgr
        .conf()
        .put(KIND, &old.typ, &old.id, &Json::Object(props))?;
    Ok(text(StatusCode::OK, "success"))
}

async fn delete_profile(s: &AppState, p: &Profile) -> AppResult<()> {
    ensure_unused(s, p, "delete").await?;
    if !p.stored {
        return Err(bad(format!(
            "connection {} is defined in etc/connections/connection.yaml; edit that file to remove it",
            p.id
        )));
    }
    s.mgr.conf().delete(KIND, &p.typ, &p.id)?;
    Ok(())
}

#[utoipa::path(
    delete,
    path = "/connections/{id}",
    tag = "connections",
    operation_id = "connections_remove",
    summary = "Delete a profile (refused while running rules use it)",
    params(
        ("id" = String, Path, description = "The profile id, or `<type>.<id>`"),
    ),
    responses(
        (status = 200, description = "`success`", body = String, content_type = "text/plain"),
        BadRequest,
        NotFound,
        Busy,
        Fault,
    )
)]
async fn remove(State(s): State<AppState>, Path(id): Path<String>) -> AppResult<Response> {
    let p = lookup(&s, &id)?;
    delete_profile(&s, &p).await?;
    Ok(text(StatusCode::OK, "success"))
}

#[utoipa::path(
    get,
    path = "/metadata/connections",
    tag = "connections",
    operation_id = "connections_types",
    summary = "Connection types",
    responses(
        (status = 200, description = "`[{\"name\",\"type\":\"connection\"}]`", body = Vec<Object>, content_type = "application/json"),
        Fault,
    )
)]
async fn types(State(s): State<AppState>) -> AppResult<Response> {
    let mut names = connection_types(&s);
    names.extend(s.mgr.conf().connection_types()?);
    names.sort();
    names.dedup();
    let v: Vec<Json> = names
        .into_iter()
        .map(|n| json!({"name": n, "type": "connection"}))
        .collect();
    Ok(json_resp(Json::Array(v)))
}

#[utoipa::path(
    get,
    path = "/metadata/connections/yaml/{typ}",
    tag = "connections",
    operation_id = "connections_yaml",
    summary = "The profiles of one type",
    params(
        ("typ" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The connection type"),
    ),
    responses(
        (status = 200, description = "`{\"<id>\": {properties}}`", body = Object, content_type = "application/json"),
        BadRequest,
        Fault,
    )
)]
async fn yaml(State(s): State<AppState>, Path(typ): Path<String>) -> AppResult<Response> {
    check_id(&typ)?;
    Ok(json_resp(Json::Object(s.mgr.conf().keys(KIND, &typ)?)))
}

#[utoipa::path(
    put,
    path = "/metadata/connections/{typ}/confKeys/{key}",
    tag = "connections",
    operation_id = "connections_put_key",
    summary = "Store a profile (conf-key style)",
    params(
        ("typ" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The connection type"),
        ("key" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The profile id"),
    ),
    request_body(content = Object, description = "The properties", content_type = "application/json"),
    responses(
        (status = 200, description = "Stored, empty body"),
        BadRequest,
        Busy,
        Fault,
    )
)]
async fn put_key(
    State(s): State<AppState>,
    Path((typ, key)): Path<(String, String)>,
    body: Bytes,
) -> AppResult<Response> {
    check_typ(&s, &typ)?;
    check_id(&key)?;
    let props = props_object(Some(parse(&body)?))?;
    let existing = conns::list(s.mgr.conf())?;
    if let Some(other) = existing.iter().find(|p| p.id == key && p.typ != typ) {
        return Err(bad(format!(
            "connection {key} already exists with type {}",
            other.typ
        )));
    }
    if let Some(old) = existing.iter().find(|p| p.id == key && p.typ == typ) {
        ensure_unused(&s, old, "update").await?;
    }
    s.mgr.conf().put(KIND, &typ, &key, &Json::Object(props))?;
    Ok(StatusCode::OK.into_response())
}

#[utoipa::path(
    delete,
    path = "/metadata/connections/{typ}/confKeys/{key}",
    tag = "connections",
    operation_id = "connections_delete_key",
    summary = "Remove a profile (conf-key style)",
    params(
        ("typ" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The connection type"),
        ("key" = String, Path, pattern = r"^[a-zA-Z0-9_-]+$", description = "The profile id"),
    ),
    responses(
        (status = 200, description = "Removed, empty body"),
        BadRequest,
        NotFound,
        Busy,
        Fault,
    )
)]
async fn delete_key(
    State(s): State<AppState>,
    Path((typ, key)): Path<(String, String)>,
) -> AppResult<Response> {
    check_id(&typ)?;
    check_id(&key)?;
    let p = lookup(&s, &format!("{typ}.{key}"))?;
    delete_profile(&s, &p).await?;
    Ok(StatusCode::OK.into_response())
}
