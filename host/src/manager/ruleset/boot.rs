//! `oort serve --ruleset URI`: a data document applied at every start, so
//! that the instances of a fleet (and each of them after a restart) converge
//! on one setup. The document is read from a path, a `file://` URI or an
//! `http(s)://` URL (the operator's own choice: the outbound policy that
//! guards REST imports does not apply), retried with backoff while it cannot
//! be read, and applied as an [`ImportMode::Converge`] import: what is
//! already as the document says is left alone (running rules keep running),
//! the rest is created or replaced as by a partial import. Its progress and
//! outcome are under `ruleset` in `GET /data/import/status`.

use std::sync::Arc;
use std::time::Duration;

use oort_core::backoff::Backoff;
use oort_wasm::{OutboundPolicy, PluginManager};
use serde_json::{json, Map, Value as Json};
use tokio_util::sync::CancellationToken;

use super::{Format, ImportError, ImportMode, Outcome, Progress, Ruleset};
use crate::manager::Manager;

/// Largest document read.
const MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Longest wait for one download.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether a stored rule is exactly the document's (as JSON values, so
/// that formatting does not count).
pub fn same_rule(stored: &str, text: &str) -> bool {
    let parse = |t: &str| serde_json::from_str::<Json>(t).ok();
    match (parse(stored), parse(text)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The document's format: JSON when it starts with `{`, else YAML.
fn format_of(text: &str) -> Format {
    if text.trim_start().starts_with('{') {
        Format::Json
    } else {
        Format::Yaml
    }
}

/// The URI to fetch: `file://` and `http(s)://` as given, a plain path as
/// the `file://` URI of its absolute form.
fn uri_of(given: &str) -> Result<String, String> {
    let g = given.trim();
    if g.contains("://") {
        return Ok(g.to_string());
    }
    let abs = std::path::absolute(g).map_err(|e| format!("ruleset path {g:?}: {e}"))?;
    reqwest::Url::from_file_path(&abs)
        .map(|u| u.to_string())
        .map_err(|()| format!("ruleset path {g:?} is not a usable file path"))
}

async fn read(uri: &str) -> Result<String, String> {
    let bytes = oort_wasm::outbound::fetch(
        &OutboundPolicy::unrestricted(),
        uri,
        MAX_BYTES,
        FETCH_TIMEOUT,
    )
    .await?;
    String::from_utf8(bytes).map_err(|_| format!("{uri} is not UTF-8 text"))
}

/// Per-section counts of an outcome, by the document's section names.
fn counts(m: &std::collections::BTreeMap<super::Section, usize>) -> Json {
    Json::Object(
        m.iter()
            .map(|(s, n)| (s.key().to_string(), json!(n)))
            .collect::<Map<String, Json>>(),
    )
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Reads and applies the start-up ruleset; retries (1 s doubling to 60 s)
/// while it cannot be read or a server fault stops the import, until it is
/// applied, the document is found invalid, or the server stops.
pub async fn apply_at_start(
    ruleset: Arc<Ruleset>,
    mgr: Manager,
    plugins: Option<PluginManager>,
    given: String,
    cancel: CancellationToken,
) {
    let uri = match uri_of(&given) {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(ruleset = %given, error = %e, "start-up ruleset not applied");
            ruleset.set_boot(json!({"uri": given, "state": "invalid", "error": e, "attempts": 0}));
            return;
        }
    };
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let mut attempts: u64 = 0;
    loop {
        attempts += 1;
        let status = |state: &str, error: Option<&str>| {
            let mut j = json!({"uri": uri, "state": state, "attempts": attempts, "at": now()});
            if let (Some(e), Json::Object(m)) = (error, &mut j) {
                m.insert("error".into(), Json::String(e.to_string()));
            }
            j
        };
        ruleset.set_boot(status("reading", None));
        let failure = match read(&uri).await {
            Err(e) => e,
            Ok(text) => {
                ruleset.set_boot(status("applying", None));
                let r = ruleset
                    .import(
                        &mgr,
                        plugins.as_ref(),
                        &text,
                        format_of(&text),
                        ImportMode::Converge,
                        &Progress::default(),
                        &cancel,
                    )
                    .await;
                match r {
                    Ok(out) if out.cancelled => return,
                    Ok(out) => {
                        ruleset.set_boot(applied(status("applied", None), &out));
                        if out.report.is_empty() {
                            tracing::info!(ruleset = %uri, applied = %counts(&out.applied), unchanged = %counts(&out.unchanged), "start-up ruleset applied");
                        } else {
                            tracing::warn!(ruleset = %uri, errors = %out.report.to_json(), "start-up ruleset applied with errors (GET /data/import/status)");
                        }
                        return;
                    }
                    Err(ImportError::Doc(e)) => {
                        // Reading it again gives the same document: not retried.
                        let e = e.to_string();
                        tracing::error!(ruleset = %uri, error = %e, "start-up ruleset is invalid; nothing of it was applied");
                        ruleset.set_boot(status("invalid", Some(&e)));
                        return;
                    }
                    Err(ImportError::Failed(e)) => e.to_string(),
                }
            }
        };
        let wait = backoff.next_delay();
        tracing::warn!(ruleset = %uri, error = %failure, retry_in_s = wait.as_secs(), "start-up ruleset not applied yet");
        ruleset.set_boot(status("retrying", Some(&failure)));
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

fn applied(mut j: Json, out: &Outcome) -> Json {
    if let Json::Object(m) = &mut j {
        m.insert("applied".into(), counts(&out.applied));
        m.insert("unchanged".into(), counts(&out.unchanged));
        if !out.report.is_empty() {
            m.insert("errors".into(), out.report.to_json());
        }
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_compare_as_json_and_documents_by_their_first_character() {
        assert!(same_rule(
            r#"{"id":"r","sql":"SELECT 1"}"#,
            "{ \"sql\": \"SELECT 1\",\n \"id\": \"r\" }"
        ));
        assert!(!same_rule(
            r#"{"id":"r","sql":"SELECT 1"}"#,
            r#"{"id":"r","sql":"SELECT 2"}"#
        ));
        assert!(!same_rule("not json", r#"{"id":"r"}"#));
        assert_eq!(format_of("  {\"streams\":{}}"), Format::Json);
        assert_eq!(format_of("streams:\n  a: x\n"), Format::Yaml);
        assert_eq!(uri_of(" http://h/r.json ").unwrap(), "http://h/r.json");
        let u = uri_of("rel/fleet.json").unwrap();
        assert!(
            u.starts_with("file:///") && u.ends_with("/rel/fleet.json"),
            "{u}"
        );
    }
}
