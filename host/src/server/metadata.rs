//! Connector metadata in eKuiper's shapes, from what each factory declares
//! ([`oort_core::ConnectorInfo`]): `GET /metadata/sources` and `/metadata/sinks`
//! (`[{name, about, type}]`) and `GET /metadata/sources/{type}`,
//! `/metadata/sinks/{type}` (the UI metadata: property fields with type,
//! default, choices and hint). Conf keys live in [`super::routes`].

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use oort_core::ConnectorInfo;
use serde_json::{json, Value as Json};

use super::routes::json_resp;
use super::AppState;
use crate::error::{AppError, AppResult};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/metadata/sources", get(|s| list(s, false)))
        .route("/metadata/sinks", get(|s| list(s, true)))
        .route("/metadata/sources/{typ}", get(|s, p| one(s, false, p)))
        .route("/metadata/sinks/{typ}", get(|s, p| one(s, true, p)))
}

/// The declaration of a registered connector and whether it is a plugin.
fn find(s: &AppState, sink: bool, typ: &str) -> Option<(ConnectorInfo, bool)> {
    let reg = s.mgr.registry();
    let info = if sink {
        reg.sink(typ)?.info()
    } else {
        reg.source(typ)?.info()
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

async fn list(State(s): State<AppState>, sink: bool) -> Response {
    let reg = s.mgr.registry();
    let kinds = if sink {
        reg.sink_kinds()
    } else {
        reg.source_kinds()
    };
    let v: Vec<Json> = kinds
        .into_iter()
        .filter_map(|k| {
            let (info, plugin) = find(&s, sink, &k)?;
            Some(json!({
                "name": k,
                "about": {"description": {"en_US": info.about}},
                "type": if plugin { "wasm" } else { "internal" },
            }))
        })
        .collect();
    json_resp(Json::Array(v))
}

async fn one(
    State(s): State<AppState>,
    sink: bool,
    Path(typ): Path<String>,
) -> AppResult<Response> {
    let (info, plugin) = find(&s, sink, &typ).ok_or_else(|| {
        AppError::not_found(format!(
            "{} {typ} not found",
            if sink { "sink" } else { "source" }
        ))
    })?;
    Ok(json_resp(info.ui_metadata(&typ, sink, plugin)))
}
