//! The OpenAPI 3.1 document of the REST API, served at `GET /openapi.json`.
//!
//! Every API route is registered through utoipa-axum's `OpenApiRouter` with
//! `routes!(handler, ...)`, so the router and the document come from the
//! same registration: a handler is in the document exactly when it is
//! routed. The document is rendered once, when the router is built. The
//! shared pieces are here: the error body, the request bodies that the
//! handlers read as raw bytes, the bearer-token scheme and the tags.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::Value as Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi;
use utoipa::ToSchema;

/// eKuiper's error body (followed by a newline on the wire).
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only: errors are written by `AppError`
pub struct ErrorBody {
    /// eKuiper's error code: 1000 undefined, 1001 general, 1002 not found,
    /// 1003 I/O, 2001 SQL parse, 2101 plan, 3000 stream/table, 4000 rule,
    /// 5000 conf key.
    #[schema(example = 1002)]
    pub error: u32,
    /// What went wrong.
    #[schema(example = "no such endpoint")]
    pub message: String,
}

/// The error answers the handlers share, one definition each, named in
/// their `responses(...)`: `400` bad input, `404` no such item, `409` a data
/// import holds the store, `500` a server fault.
#[derive(utoipa::IntoResponses)]
#[response(status = 400, description = "Invalid request")]
#[allow(dead_code)]
pub struct BadRequest(ErrorBody);

#[derive(utoipa::IntoResponses)]
#[response(status = 404, description = "Not found")]
#[allow(dead_code)]
pub struct NotFound(ErrorBody);

#[derive(utoipa::IntoResponses)]
#[response(status = 409, description = "A data import holds the store")]
#[allow(dead_code)]
pub struct Busy(ErrorBody);

#[derive(utoipa::IntoResponses)]
#[response(status = 500, description = "A server fault (store I/O)")]
#[allow(dead_code)]
pub struct Fault(ErrorBody);

/// A rule (eKuiper's rule JSON): `sql` and `actions`, or a `graph`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RuleBody {
    /// The rule id (`^[a-zA-Z0-9_-]+$`).
    #[schema(example = "r1")]
    pub id: String,
    pub name: Option<String>,
    /// The rule's SQL (absent for a graph rule).
    #[schema(example = "SELECT a FROM demo")]
    pub sql: Option<String>,
    /// Sinks: a list of `{"<type>": {properties}}`.
    #[schema(value_type = Option<Vec<Object>>)]
    pub actions: Option<Vec<Json>>,
    /// Rule options (`qos`, `bufferLength`, `restartStrategy`...).
    #[schema(value_type = Option<Object>)]
    pub options: Option<Json>,
    /// Start the rule when it is created (default true).
    pub triggered: Option<bool>,
    /// A graph rule's nodes and topology (instead of `sql` and `actions`).
    #[schema(value_type = Option<Object>)]
    pub graph: Option<Json>,
    pub tags: Option<Vec<String>>,
}

/// An import document, inline or by URI (exactly one of the two).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ImportBody {
    /// The document (JSON for `/data/import`, YAML for `/v2/data/import`).
    pub content: Option<String>,
    /// `file:///...` or `http(s)://...`, within the server's outbound policy.
    pub file: Option<String>,
}

/// A plugin to install from a URI (eKuiper's shape).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PluginInstallBody {
    #[schema(example = "demo")]
    pub name: String,
    /// `file:///abs/path`, `http://...` or `https://...` of a zip or a `.wasm`.
    pub file: String,
    /// Hex sha256 of the file; checked when given.
    pub sha256: Option<String>,
    /// Capabilities the operator grants to the plugin (hosts, paths...).
    #[schema(value_type = Option<Object>)]
    pub grants: Option<Json>,
}

/// A plugin package (a zip or a `.wasm`) as the request body.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct Package(Vec<u8>);

/// The base document: info, the bearer scheme, the tags.
pub fn base() -> OpenApi {
    let mut doc = utoipa::openapi::OpenApiBuilder::new()
        .info(
            utoipa::openapi::InfoBuilder::new()
                .title("Oort REST API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "eKuiper's REST API as Oort serves it (docs/rest-api.md). Errors are \
                     `{\"error\": code, \"message\": \"...\"}`. When the server has \
                     `rest.token` or `rest.jwt`, every request but `GET /`, `GET /ping` and \
                     `GET /openapi.json` needs `Authorization: Bearer <token>`.",
                ))
                .build(),
        )
        .tags(Some(
            [
                ("server", "Server information and control"),
                ("streams", "Streams"),
                ("tables", "Tables"),
                ("rules", "Rules"),
                (
                    "metadata",
                    "Connector metadata, SQL functions and conf keys",
                ),
                ("plugins", "WebAssembly source and sink plugins"),
                ("schemas", "Protobuf schemas"),
                ("connections", "Connection profiles"),
                ("data", "Import and export"),
            ]
            .into_iter()
            .map(|(n, d)| {
                utoipa::openapi::tag::TagBuilder::new()
                    .name(n)
                    .description(Some(d))
                    .build()
            }),
        ))
        .build();
    let components = doc
        .components
        .get_or_insert_with(utoipa::openapi::Components::new);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "Required when the server has rest.token (the token) or rest.jwt (a JWT \
                     signed with a key in the data dir); not needed otherwise.",
                ))
                .build(),
        ),
    );
    doc.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
    doc
}

/// The document as served: rendered once.
#[derive(Clone)]
pub struct Document(pub axum::body::Bytes);

impl Document {
    pub fn new(doc: &OpenApi) -> Document {
        // The document is built from static data: it always serializes.
        let text = doc
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\":1003,\"message\":\"{e}\"}}"));
        Document(axum::body::Bytes::from(text))
    }
}

/// `GET /openapi.json`: this document. Served without authentication (it
/// describes the API of this release, nothing of the server's state).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "server",
    summary = "The OpenAPI 3.1 document of this API",
    security(()),
    responses((status = 200, description = "This document", body = Object, content_type = "application/json"))
)]
pub async fn openapi_json(Extension(d): Extension<Document>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], d.0).into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value as Json;

    /// Every route of the REST API but the console's, written once from the
    /// router code (routes.rs and the modules it merges).
    const EXPECTED: &[(&str, &str)] = &[
        ("GET", "/"),
        ("POST", "/"),
        ("GET", "/ping"),
        ("GET", "/openapi.json"),
        ("GET", "/metrics"),
        ("POST", "/stop"),
        ("GET", "/streams"),
        ("POST", "/streams"),
        ("GET", "/streamdetails"),
        ("GET", "/streams/{name}"),
        ("PUT", "/streams/{name}"),
        ("DELETE", "/streams/{name}"),
        ("GET", "/streams/{name}/schema"),
        ("GET", "/tables"),
        ("POST", "/tables"),
        ("GET", "/tabledetails"),
        ("GET", "/tables/{name}"),
        ("PUT", "/tables/{name}"),
        ("DELETE", "/tables/{name}"),
        ("GET", "/tables/{name}/schema"),
        ("GET", "/rules"),
        ("POST", "/rules"),
        ("POST", "/rules/validate"),
        ("GET", "/rules/status/all"),
        ("GET", "/rules/{id}"),
        ("PUT", "/rules/{id}"),
        ("DELETE", "/rules/{id}"),
        ("POST", "/rules/{id}/start"),
        ("POST", "/rules/{id}/stop"),
        ("POST", "/rules/{id}/restart"),
        ("GET", "/rules/{id}/status"),
        ("GET", "/v2/rules/{id}/status"),
        ("GET", "/rules/{id}/topo"),
        ("GET", "/rules/{id}/explain"),
        ("GET", "/metadata/sources/yaml/{typ}"),
        ("GET", "/metadata/sinks/yaml/{typ}"),
        ("PUT", "/metadata/sources/{typ}/confKeys/{key}"),
        ("DELETE", "/metadata/sources/{typ}/confKeys/{key}"),
        ("PUT", "/metadata/sinks/{typ}/confKeys/{key}"),
        ("DELETE", "/metadata/sinks/{typ}/confKeys/{key}"),
        ("GET", "/metadata/sources"),
        ("GET", "/metadata/sinks"),
        ("GET", "/metadata/sources/{typ}"),
        ("GET", "/metadata/sinks/{typ}"),
        ("POST", "/metadata/sources/connection/{typ}"),
        ("POST", "/metadata/sinks/connection/{typ}"),
        ("POST", "/metadata/lookups/connection/{typ}"),
        ("GET", "/metadata/functions"),
        ("GET", "/schemas/{typ}"),
        ("POST", "/schemas/{typ}"),
        ("GET", "/schemas/{typ}/{name}"),
        ("PUT", "/schemas/{typ}/{name}"),
        ("DELETE", "/schemas/{typ}/{name}"),
        ("GET", "/plugins/{kind}"),
        ("POST", "/plugins/{kind}"),
        ("GET", "/plugins/{kind}/{name}"),
        ("PUT", "/plugins/{kind}/{name}"),
        ("DELETE", "/plugins/{kind}/{name}"),
        ("PUT", "/plugins/{kind}/{name}/package"),
        ("GET", "/connections"),
        ("POST", "/connections"),
        ("GET", "/connections/{id}"),
        ("PUT", "/connections/{id}"),
        ("DELETE", "/connections/{id}"),
        ("GET", "/metadata/connections"),
        ("GET", "/metadata/connections/yaml/{typ}"),
        ("PUT", "/metadata/connections/{typ}/confKeys/{key}"),
        ("DELETE", "/metadata/connections/{typ}/confKeys/{key}"),
        ("POST", "/data/import"),
        ("GET", "/data/import/status"),
        ("POST", "/async/data/import"),
        ("GET", "/async/task/{id}"),
        ("POST", "/async/task/{id}/cancel"),
        ("GET", "/data/export"),
        ("POST", "/data/export"),
        ("GET", "/v2/data/export"),
        ("POST", "/v2/data/export"),
        ("POST", "/v2/data/import"),
        ("POST", "/ruleset/import"),
        ("GET", "/ruleset/export"),
        ("POST", "/ruleset/export"),
    ];

    const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch"];

    fn document() -> Json {
        let (_, doc) = super::super::routes::api(1 << 20, 1 << 20).split_for_parts();
        let text = super::Document::new(&doc);
        serde_json::from_slice(&text.0).expect("the document is JSON")
    }

    #[test]
    fn document_is_openapi_3_1_with_every_route() {
        let d = document();
        let version = d["openapi"].as_str().unwrap_or_default();
        assert!(version.starts_with("3.1."), "openapi: {version}");
        assert_eq!(d["info"]["title"], "Oort REST API");
        assert_eq!(d["info"]["version"], env!("CARGO_PKG_VERSION"));
        let mut got = BTreeSet::new();
        let mut ids = BTreeSet::new();
        for (path, item) in d["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                if !METHODS.contains(&method.as_str()) {
                    continue;
                }
                got.insert((method.to_uppercase(), path.clone()));
                let id = op["operationId"].as_str().unwrap_or_default().to_string();
                assert!(ids.insert(id.clone()), "operationId {id} twice");
                assert!(op["summary"].is_string(), "{method} {path}: no summary");
                let tags = op["tags"].as_array().map_or(0, Vec::len);
                assert_eq!(tags, 1, "{method} {path}: one tag");
                assert!(op["responses"]["200"].is_object() || op["responses"]["201"].is_object());
            }
        }
        let want: BTreeSet<(String, String)> = EXPECTED
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(EXPECTED.len(), want.len(), "EXPECTED lists a route twice");
        let missing: Vec<_> = want.difference(&got).collect();
        let extra: Vec<_> = got.difference(&want).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "missing from the document: {missing:?}; not expected: {extra:?}"
        );
        let schemas = d["components"]["schemas"].as_object().expect("schemas");
        assert_eq!(
            schemas["ErrorBody"]["properties"]["error"]["type"],
            "integer"
        );
        assert!(d["components"]["securitySchemes"]["bearer"].is_object());
    }

    /// A route added with `.route(` would be served but not documented:
    /// only the console's module and the separate metrics listener in
    /// mod.rs may use it.
    #[test]
    fn no_route_outside_the_document() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/server");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("src/server") {
            let path = entry.expect("entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !name.ends_with(".rs") || name == "console.rs" {
                continue;
            }
            seen += 1;
            let text = std::fs::read_to_string(&path).expect("read source");
            // Tests (this one's strings) are not routes.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let calls = code.matches(".route(").count() + code.matches(".route_service(").count();
            let allowed = if name == "mod.rs" { 1 } else { 0 };
            assert_eq!(
                calls, allowed,
                "{name}: register routes with OpenApiRouter::routes(routes!(...)), not .route("
            );
            if name == "mod.rs" {
                assert!(
                    code.contains(r#".route("/metrics", axum::routing::get(prometheus::metrics))"#)
                );
            }
        }
        assert!(seen >= 10, "read {seen} files of {}", dir.display());
    }
}
