//! What the HTTP connectors declare: property schemas (eKuiper's names).

use oort_core::{ConnectorInfo, PropSpec};
use serde_json::json;

/// The client properties every HTTP connector reads ([`super::client`]).
fn client() -> Vec<PropSpec> {
    vec![
        PropSpec::new("method", "string", "HTTP method; may be a template")
            .dynamic()
            .default(json!("GET"))
            .values(&["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]),
        PropSpec::new(
            "bodyType",
            "string",
            "Body kind and Content-Type; default none for GET/HEAD, else json",
        )
        .values(&[
            "none",
            "text",
            "json",
            "html",
            "xml",
            "javascript",
            "form",
            "binary",
            "formdata",
        ]),
        PropSpec::new("timeout", "duration", "Request timeout (ms or Go duration); 0: none")
            .default(json!(5000)),
        PropSpec::new(
            "headers",
            "object",
            "Request headers; values may be templates (rendered with the row, or with the access token under oAuth)",
        ),
        PropSpec::new(
            "responseType",
            "string",
            "code: a 2xx status is success; body: also a 2xx code field in the JSON body",
        )
        .default(json!("code"))
        .values(&["code", "body"]),
        PropSpec::new("debugResp", "bool", "Log each response body").default(json!(false)),
        PropSpec::new("insecureSkipVerify", "bool", "Skip TLS certificate verification")
            .default(json!(false)),
        PropSpec::new("rootCaPath", "string", "CA certificate file (PEM)"),
        PropSpec::new("rootCARaw", "string", "CA certificate, base64 or PEM text"),
        PropSpec::new("certificationPath", "string", "Client certificate file (PEM)"),
        PropSpec::new("certficationRaw", "string", "Client certificate, base64 or PEM text"),
        PropSpec::new("privateKeyPath", "string", "Client private key file (PEM)"),
        PropSpec::new("privateKeyRaw", "string", "Client private key, base64 or PEM text"),
        PropSpec::new(
            "oAuth",
            "object",
            "access {url, body, expire (s), headers} and optional refresh {url, body, headers}",
        ),
    ]
}

pub(super) fn rest() -> ConnectorInfo {
    let mut properties = vec![PropSpec::new(
        "url",
        "string",
        "The endpoint (http or https); may be a template ({{.field}})",
    )
    .required()
    .dynamic()];
    properties.extend(client());
    properties.extend([
        PropSpec::new(
            "formData",
            "object",
            "bodyType formdata: extra form fields; values may be templates",
        ),
        PropSpec::new(
            "fileFieldName",
            "string",
            "bodyType formdata: the field carrying the payload",
        )
        .default(json!("file")),
    ]);
    ConnectorInfo {
        holds_connection: true,
        properties,
        ..ConnectorInfo::new("Sends each result to an HTTP endpoint")
    }
}

const PULL_DEFAULT: &str = "default:\n  url: http://localhost\n  method: get\n  interval: 10000\n  timeout: 5000\n  incremental: false\n  bodyType: none\n  responseType: code\n  insecureSkipVerify: false\n";

pub(super) fn pull() -> ConnectorInfo {
    let mut properties = vec![PropSpec::new(
        "url",
        "string",
        "The endpoint (http or https), DATASOURCE appended; a template over PullTime, LastPullTime, states and token fields",
    )
    .default(json!("http://localhost"))];
    properties.extend(client());
    properties.extend([
        PropSpec::new(
            "interval",
            "duration",
            "Time between two pulls (ms or Go duration)",
        )
        .default(json!(10000)),
        PropSpec::new(
            "incremental",
            "bool",
            "Skip a response identical to the previous one",
        )
        .default(json!(false)),
        PropSpec::new("body", "string", "Request body; a template like url"),
        PropSpec::new(
            "states",
            "object",
            "Named values for the templates, updated from same-named response fields",
        ),
        PropSpec::new(
            "compression",
            "string",
            "Not supported yet: refused when set",
        ),
    ]);
    ConnectorInfo {
        holds_connection: true,
        default_conf: Some(PULL_DEFAULT),
        datasource_hint: Some("Appended to url (a path such as /api/data)"),
        properties,
        ..ConnectorInfo::new("Polls an HTTP endpoint and reads each response as events")
    }
}

pub(super) fn push() -> ConnectorInfo {
    ConnectorInfo {
        holds_connection: false,
        datasource_hint: Some("The path clients send to, e.g. /devices (starts with /)"),
        properties: vec![
            PropSpec::new("method", "string", "The method clients use")
                .default(json!("POST"))
                .values(&["POST", "PUT"]),
            PropSpec::new(
                "bufferLength",
                "int",
                "Bodies queued for the stream before senders wait",
            )
            .default(json!(1024)),
        ],
        ..ConnectorInfo::new(
            "Receives events that clients send to Oort's HTTP data server (source.httpServerPort)",
        )
    }
}
