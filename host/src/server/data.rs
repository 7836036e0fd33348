//! Data import routes, shaped like eKuiper's: `POST /data/import`
//! (`?partial=1`, `?stop=1`), `GET /data/import/status`, the asynchronous
//! import (`POST /async/data/import`, `GET /async/task/{id}`,
//! `POST /async/task/{id}/cancel`), the YAML form (`/v2/data/import`) and
//! the legacy `/ruleset/import`; the export routes are [`super::export`]'s. The work is done by [`crate::manager::ruleset`];
//! imports run in their own task so a client that disconnects does not cut
//! one short.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use serde::Deserialize;
use serde_json::{json, Map, Value as Json};
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{BadRequest, Busy, Fault, ImportBody, NotFound};
use super::routes::{json_resp, text};
use super::AppState;
use crate::error::{AppError, AppResult};
use crate::manager::ruleset::{
    DocError, Format, ImportError, ImportMode, Outcome, Progress, Ruleset, Section,
};

/// Largest document fetched from an `http(s)://` URI.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024 * 1024;
/// Finished asynchronous tasks kept for `GET /async/task/{id}`.
const MAX_TASKS: usize = 100;
/// Delay between the reply to a `stop=1` import and the shutdown.
const STOP_DELAY: Duration = Duration::from_millis(500);

/// Process exit status after a successful `stop=1` import.
pub const STOP_EXIT_CODE: i32 = 100;

#[derive(Clone)]
pub struct Data {
    ruleset: Arc<Ruleset>,
    tasks: Arc<parking_lot::Mutex<BTreeMap<String, Arc<Task>>>>,
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(import))
        .routes(routes!(import_status))
        .routes(routes!(async_import))
        .routes(routes!(task_status))
        .routes(routes!(task_cancel))
        .routes(routes!(import_yaml))
        .routes(routes!(ruleset_import))
        .merge(super::export::routes())
}

/// The state these routes share (the import lock and status, the
/// asynchronous tasks), as a layer over the API.
pub fn extension(state: &AppState) -> Extension<Data> {
    Extension(Data {
        ruleset: state.ruleset.clone(),
        tasks: Arc::new(parking_lot::Mutex::new(BTreeMap::new())),
    })
}

// ---------- request bodies ----------

/// `{"content": "..."}` xor `{"file": "file:///..." | "http(s)://..."}`.
enum Source {
    Content(String),
    File(String),
}

fn get_ci<'a>(m: &'a Map<String, Json>, key: &str) -> Option<&'a Json> {
    m.get(key).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn parse_source(body: &Bytes) -> AppResult<Source> {
    let v: Json = serde_json::from_slice(body)
        .map_err(|e| AppError::bad(format!("invalid request body: {e}")))?;
    let Json::Object(m) = v else {
        return Err(AppError::bad(
            "Invalid body: must be an object with content or file",
        ));
    };
    let content = match get_ci(&m, "content") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) if s.is_empty() => None,
        Some(Json::String(s)) => Some(s.clone()),
        // An inline document (Oort accepts it besides the string form).
        Some(Json::Object(o)) => Some(Json::Object(o.clone()).to_string()),
        Some(_) => return Err(AppError::bad("Invalid body: content must be a string")),
    };
    let file = match get_ci(&m, "file") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) if s.is_empty() => None,
        Some(Json::String(s)) => Some(s.clone()),
        Some(_) => return Err(AppError::bad("Invalid body: file must be a URI string")),
    };
    match (content, file) {
        (Some(_), Some(_)) => Err(AppError::bad("Cannot specify both content and file")),
        (None, None) => Err(AppError::bad("Invalid body: must specify content or file")),
        (Some(c), None) => Ok(Source::Content(c)),
        (None, Some(f)) => Ok(Source::File(f)),
    }
}

/// The document text: inline, or read from `file://` / fetched from
/// `http(s)://` within the operator's outbound policy.
async fn read_source(s: &AppState, src: Source) -> AppResult<String> {
    let uri = match src {
        Source::Content(c) => return Ok(c),
        Source::File(f) => f,
    };
    let bytes = oort_wasm::outbound::fetch(
        &s.outbound,
        &uri,
        MAX_DOCUMENT_BYTES as u64,
        Duration::from_secs(60),
    )
    .await
    .map_err(|e| AppError::bad(format!("fail to read file {uri}: {e}")))?;
    String::from_utf8(bytes).map_err(|_| AppError::bad(format!("file {uri} is not UTF-8 text")))
}

#[derive(Deserialize, Default)]
struct ImportQuery {
    partial: Option<String>,
    stop: Option<String>,
}

fn flag(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("1" | "true"))
}

/// Runs an import in its own task (a dropped connection does not abort it).
async fn run_import(
    s: &AppState,
    d: &Data,
    text: String,
    format: Format,
    mode: ImportMode,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> Result<Outcome, ImportError> {
    let (mgr, plugins, ruleset) = (s.mgr.clone(), s.plugins.clone(), d.ruleset.clone());
    tokio::spawn(async move {
        ruleset
            .import(
                &mgr,
                plugins.as_ref(),
                &text,
                format,
                mode,
                &progress,
                &cancel,
            )
            .await
    })
    .await
    .map_err(|e| ImportError::Failed(AppError::Internal(format!("import task: {e}"))))?
}

/// The error response of a failed import: the per-item object as the message.
fn import_error(e: ImportError) -> AppError {
    match e {
        ImportError::Doc(DocError::Invalid(r)) => AppError::bad(r.to_json().to_string()),
        ImportError::Doc(DocError::Syntax(m)) => AppError::bad(m),
        ImportError::Failed(e) => e,
    }
}

fn schedule_stop(s: &AppState) {
    crate::cli_data::request_exit(STOP_EXIT_CODE);
    let token = s.shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(STOP_DELAY).await;
        tracing::info!("import with stop=1 done: shutting down (exit status {STOP_EXIT_CODE})");
        token.cancel();
    });
}

// ---------- synchronous import ----------

#[utoipa::path(
    post,
    path = "/data/import",
    tag = "data",
    summary = "Import a JSON document (replaces everything unless partial)",
    params(
        ("partial" = Option<String>, Query, description = "`1` or `true`: import what is valid, report the rest"),
        ("stop" = Option<String>, Query, description = "`1` or `true`: shut the server down (exit status 100) after a successful full import"),
    ),
    request_body(content = ImportBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"ErrorMsg\":\"\",\"ConfigResponse\":{...}}`", body = Object, content_type = "application/json"),
        BadRequest,
        Busy,
        Fault,
    )
)]
async fn import(
    State(s): State<AppState>,
    Extension(d): Extension<Data>,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> AppResult<Response> {
    let text = read_source(&s, parse_source(&body)?).await?;
    let mode = if flag(&q.partial) {
        ImportMode::Partial
    } else {
        ImportMode::Full
    };
    let out = run_import(
        &s,
        &d,
        text,
        Format::Json,
        mode,
        Arc::new(Progress::default()),
        CancellationToken::new(),
    )
    .await
    .map_err(import_error)?;
    if !out.report.is_empty() {
        return Err(AppError::bad(out.report.to_json().to_string()));
    }
    // eKuiper ignores stop for partial imports.
    if flag(&q.stop) && mode == ImportMode::Full {
        schedule_stop(&s);
    }
    Ok(json_resp(json!({
        "ErrorMsg": "",
        "ConfigResponse": out.report.to_json(),
    })))
}

#[utoipa::path(
    get,
    path = "/data/import/status",
    tag = "data",
    summary = "The status of the last import",
    responses(
        (status = 200, description = "The last import's report", body = Object, content_type = "application/json"),
    )
)]
async fn import_status(Extension(d): Extension<Data>) -> Response {
    json_resp(d.ruleset.status())
}

#[utoipa::path(
    post,
    path = "/v2/data/import",
    tag = "data",
    summary = "Import a YAML document",
    request_body(content = ImportBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`success`", body = String, content_type = "text/plain"),
        BadRequest,
        Busy,
        Fault,
    )
)]
async fn import_yaml(
    State(s): State<AppState>,
    Extension(d): Extension<Data>,
    body: Bytes,
) -> AppResult<Response> {
    let text = read_source(&s, parse_source(&body)?).await?;
    let out = run_import(
        &s,
        &d,
        text,
        Format::Yaml,
        ImportMode::Yaml,
        Arc::new(Progress::default()),
        CancellationToken::new(),
    )
    .await
    .map_err(import_error)?;
    if !out.report.is_empty() {
        return Err(AppError::bad(out.report.to_json().to_string()));
    }
    Ok(text_ok("success"))
}

fn text_ok(t: &str) -> Response {
    text(StatusCode::OK, t.to_string())
}

#[utoipa::path(
    post,
    path = "/ruleset/import",
    tag = "data",
    summary = "Legacy import of streams, tables and rules",
    request_body(content = ImportBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`imported N streams, N tables and N rules`", body = String, content_type = "text/plain"),
        BadRequest,
        Busy,
        Fault,
    )
)]
async fn ruleset_import(
    State(s): State<AppState>,
    Extension(d): Extension<Data>,
    body: Bytes,
) -> AppResult<Response> {
    let text = read_source(&s, parse_source(&body)?).await?;
    let out = run_import(
        &s,
        &d,
        text,
        Format::Json,
        ImportMode::Legacy,
        Arc::new(Progress::default()),
        CancellationToken::new(),
    )
    .await
    .map_err(import_error)?;
    if !out.report.is_empty() {
        tracing::warn!(
            failed = out.report.len(),
            errors = %out.report.to_json(),
            "ruleset import: some items were not imported"
        );
    }
    Ok(text_ok(&format!(
        "imported {} streams, {} tables and {} rules",
        out.count(Section::Streams),
        out.count(Section::Tables),
        out.count(Section::Rules)
    )))
}

// ---------- asynchronous import ----------

struct TaskState {
    /// `None` while queued or running; then `finish`, `error` or `cancel`.
    end: Option<&'static str>,
    message: String,
    updated: i64,
    errors: Option<Json>,
}

struct Task {
    id: String,
    created: i64,
    progress: Arc<Progress>,
    cancel: CancellationToken,
    state: parking_lot::Mutex<TaskState>,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Task {
    fn status(&self) -> &'static str {
        if let Some(e) = self.state.lock().end {
            return e;
        }
        match self.progress.phase() {
            "" | "waiting" => "register",
            _ => "running",
        }
    }

    fn end(&self, status: &'static str, message: String, errors: Option<Json>) {
        let mut st = self.state.lock();
        st.end = Some(status);
        st.message = message;
        st.errors = errors;
        st.updated = unix_now();
    }

    fn to_json(&self) -> Json {
        let status = self.status();
        let st = self.state.lock();
        json!({
            "id": self.id,
            "status": status,
            "message": st.message,
            "createdTimestamp": self.created,
            "updatedTimestamp": if st.end.is_some() { st.updated } else { unix_now() },
            "progress": self.progress.to_json(),
            "errors": st.errors.clone().unwrap_or(Json::Null),
        })
    }
}

impl Data {
    fn new_task(&self) -> Arc<Task> {
        let now = unix_now();
        let mut tasks = self.tasks.lock();
        let base = format!("dataImport-{now}");
        let mut id = base.clone();
        let mut n = 1;
        while tasks.contains_key(&id) {
            n += 1;
            id = format!("{base}-{n}");
        }
        if tasks.len() >= MAX_TASKS {
            let oldest_done = tasks
                .iter()
                .filter(|(_, t)| t.state.lock().end.is_some())
                .min_by_key(|(_, t)| t.created)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest_done {
                tasks.remove(&k);
            }
        }
        let t = Arc::new(Task {
            id: id.clone(),
            created: now,
            progress: Arc::new(Progress::default()),
            cancel: CancellationToken::new(),
            state: parking_lot::Mutex::new(TaskState {
                end: None,
                message: String::new(),
                updated: now,
                errors: None,
            }),
        });
        tasks.insert(id, t.clone());
        t
    }
}

#[utoipa::path(
    post,
    path = "/async/data/import",
    tag = "data",
    summary = "Start an import in the background",
    params(
        ("partial" = Option<String>, Query, description = "`1` or `true`: import what is valid, report the rest"),
        ("stop" = Option<String>, Query, description = "`1` or `true`: shut the server down (exit status 100) after a successful full import"),
    ),
    request_body(content = ImportBody, content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"id\":\"<task id>\"}`", body = Object, content_type = "application/json"),
        BadRequest,
    )
)]
async fn async_import(
    State(s): State<AppState>,
    Extension(d): Extension<Data>,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> AppResult<Response> {
    let src = parse_source(&body)?;
    let mode = if flag(&q.partial) {
        ImportMode::Partial
    } else {
        ImportMode::Full
    };
    let stop = flag(&q.stop) && mode == ImportMode::Full;
    let task = d.new_task();
    let id = task.id.clone();
    tokio::spawn(async move {
        let text = match read_source(&s, src).await {
            Ok(t) => t,
            Err(e) => {
                task.end("error", e.to_string(), None);
                return;
            }
        };
        let r = run_import(
            &s,
            &d,
            text,
            Format::Json,
            mode,
            task.progress.clone(),
            task.cancel.clone(),
        )
        .await;
        match r {
            Ok(out) if out.cancelled => task.end(
                "cancel",
                "import cancelled".into(),
                Some(out.report.to_json()),
            ),
            Ok(out) if out.report.is_empty() => {
                task.end("finish", String::new(), Some(out.report.to_json()));
                if stop {
                    schedule_stop(&s);
                }
            }
            Ok(out) => {
                let msg = format!("{} item(s) failed; see errors", out.report.len());
                task.end("error", msg, Some(out.report.to_json()));
            }
            Err(ImportError::Doc(DocError::Invalid(r))) => task.end(
                "error",
                "the document has invalid items; nothing was imported".into(),
                Some(r.to_json()),
            ),
            Err(e) => task.end("error", e.to_string(), None),
        }
    });
    Ok(json_resp(json!({ "id": id })))
}

fn find_task(d: &Data, id: &str) -> AppResult<Arc<Task>> {
    d.tasks
        .lock()
        .get(id)
        .cloned()
        .ok_or_else(|| AppError::not_found(format!("async task: {id} not found")))
}

#[utoipa::path(
    get,
    path = "/async/task/{id}",
    tag = "data",
    summary = "An asynchronous import's status",
    params(
        ("id" = String, Path, description = "The task id"),
    ),
    responses(
        (status = 200, description = "The task's status, progress and errors", body = Object, content_type = "application/json"),
        NotFound,
    )
)]
async fn task_status(Extension(d): Extension<Data>, Path(id): Path<String>) -> AppResult<Response> {
    Ok(json_resp(find_task(&d, &id)?.to_json()))
}

#[utoipa::path(
    post,
    path = "/async/task/{id}/cancel",
    tag = "data",
    summary = "Cancel an asynchronous import",
    params(
        ("id" = String, Path, description = "The task id"),
    ),
    responses(
        (status = 200, description = "`cancel success`", body = String, content_type = "text/plain"),
        BadRequest,
        NotFound,
    )
)]
async fn task_cancel(Extension(d): Extension<Data>, Path(id): Path<String>) -> AppResult<Response> {
    let t = find_task(&d, &id)?;
    if let Some(end) = t.state.lock().end {
        return Err(AppError::bad(format!(
            "async task {id} has already ended ({end})"
        )));
    }
    t.cancel.cancel();
    Ok(text_ok("cancel success"))
}
