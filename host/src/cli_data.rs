//! `oort import` and `oort export`: REST clients of a running server's
//! data import/export API, with progress shown while plugins install. Also
//! the process exit status requested by a `stop=1` import (read by
//! `cli::main` once the server has shut down).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value as Json};

static EXIT_CODE: AtomicI32 = AtomicI32::new(0);

/// Asks the process to exit with `code` after the server stops.
pub fn request_exit(code: i32) {
    EXIT_CODE.store(code, Ordering::SeqCst);
}

/// The exit status requested so far (0 when none).
pub fn requested_exit() -> i32 {
    EXIT_CODE.load(Ordering::SeqCst)
}

/// Exits the process with the requested status, if one was requested.
pub fn exit_if_requested() {
    let code = requested_exit();
    if code != 0 {
        std::process::exit(code);
    }
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// A local file (sent as content), or a file:// / http(s):// URI the
    /// server reads. kuiper's form `import ruleset|data -f FILE` works too.
    pub source: String,
    /// kuiper's form: the file (then SOURCE is `ruleset` or `data`).
    #[arg(short = 'f', long = "file")]
    pub file: Option<String>,
    /// Keep what exists and apply the document on top (streams, tables and conf
    /// keys replaced, rules upserted, plugins installed only if absent).
    #[arg(long)]
    pub partial: bool,
    /// The document is YAML (v2 format); default: by file extension.
    #[arg(long)]
    pub yaml: bool,
    #[command(flatten)]
    pub at: crate::cli_verbs::ServerAddr,
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// kuiper's form `export ruleset|data FILE`: `ruleset` writes the legacy
    /// ruleset (streams, tables, rules), `data` the data document.
    #[arg(num_args = 0..=2)]
    pub words: Vec<String>,
    /// Export only these rules and what they need (comma-separated ids).
    #[arg(long, value_delimiter = ',')]
    pub rules: Vec<String>,
    /// Write the YAML (v2) format instead of JSON.
    #[arg(long)]
    pub yaml: bool,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub at: crate::cli_verbs::ServerAddr,
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// The REST client; sends `Authorization: Bearer $OORT_API_TOKEN` when that
/// variable is set (a static token or a JWT, see docs/security.md).
pub(crate) fn client() -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(t) = std::env::var("OORT_API_TOKEN") {
        let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", t.trim()))
            .context("OORT_API_TOKEN is not a valid header value")?;
        v.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .default_headers(headers)
        .build()?)
}

/// One REST call's outcome: whether the status was a success, and the body.
pub(crate) struct Answer {
    pub ok: bool,
    pub text: String,
}

impl Answer {
    /// The body, or the server's error message as the command's error,
    /// prefixed with `what` when given.
    pub fn into_text(self, what: &str) -> anyhow::Result<String> {
        if self.ok {
            return Ok(self.text);
        }
        match what {
            "" => bail!("{}", error_text(&self.text)),
            w => bail!("{w}: {}", error_text(&self.text)),
        }
    }
}

/// One REST call to `base` + `path` (with a JSON body when given).
pub(crate) async fn call(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<&Json>,
) -> anyhow::Result<Answer> {
    let mut req = http.request(method, format!("{base}{path}"));
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = req
        .send()
        .await
        .with_context(|| format!("cannot reach {base}"))?;
    let ok = r.status().is_success();
    let text = r.text().await.unwrap_or_default();
    Ok(Answer { ok, text })
}

fn is_uri(s: &str) -> bool {
    s.starts_with("file://") || s.starts_with("http://") || s.starts_with("https://")
}

/// The error message of an eKuiper-style error body, or the body itself.
pub(crate) fn error_text(body: &str) -> String {
    serde_json::from_str::<Json>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Json::as_str).map(str::to_string))
        .unwrap_or_else(|| body.trim().to_string())
}

/// Prints the non-empty entries of a per-item status object; returns how many.
fn print_errors(errors: &Json) -> usize {
    let mut n = 0;
    if let Some(sections) = errors.as_object() {
        for (section, items) in sections {
            for (name, msg) in items.as_object().into_iter().flatten() {
                let msg = msg.as_str().unwrap_or_default();
                if !msg.is_empty() {
                    n += 1;
                    eprintln!("  {section}.{name}: {msg}");
                }
            }
        }
    }
    n
}

/// `oort import`: exits with status 1 (after printing why) when the import fails.
pub fn import(args: ImportArgs) -> anyhow::Result<()> {
    finish(runtime()?.block_on(import_async(args)))
}

/// Prints a command's error without a backtrace and exits with status 1.
pub(crate) fn finish(r: anyhow::Result<()>) -> anyhow::Result<()> {
    if let Err(e) = r {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}

/// What `import` was asked: kuiper's `import ruleset -f FILE` (the legacy
/// ruleset endpoint) or `import data -f FILE` / `import FILE` (the data
/// document).
fn import_target(args: &mut ImportArgs) -> anyhow::Result<bool> {
    let Some(file) = args.file.take() else {
        return Ok(false);
    };
    let legacy = match args.source.as_str() {
        "ruleset" => true,
        "data" => false,
        other => bail!(
            "import {other} -f {file}: expected import ruleset -f FILE or import data -f FILE"
        ),
    };
    args.source = file;
    Ok(legacy)
}

async fn import_async(mut args: ImportArgs) -> anyhow::Result<()> {
    let legacy = import_target(&mut args)?;
    let base = args.at.base();
    let yaml = args.yaml
        || [".yaml", ".yml"]
            .iter()
            .any(|e| args.source.to_ascii_lowercase().ends_with(e));
    let body = if is_uri(&args.source) {
        json!({ "file": args.source })
    } else {
        let text = std::fs::read_to_string(&args.source)
            .with_context(|| format!("cannot read {}", args.source))?;
        json!({ "content": text })
    };
    let http = client()?;
    let post = reqwest::Method::POST;
    if legacy {
        let text = call(&http, &base, post, "/ruleset/import", Some(&body))
            .await?
            .into_text("import failed")?;
        eprintln!("{}", text.trim());
        return Ok(());
    }
    if yaml {
        let a = call(&http, &base, post, "/v2/data/import", Some(&body)).await?;
        if a.ok {
            eprintln!("imported {}", args.source);
            return Ok(());
        }
        return report_failure(&error_text(&a.text));
    }
    let path = if args.partial {
        "/async/data/import?partial=1"
    } else {
        "/async/data/import"
    };
    let text = call(&http, &base, post, path, Some(&body))
        .await?
        .into_text("import refused")?;
    let id = serde_json::from_str::<Json>(&text)
        .ok()
        .and_then(|v| v.get("id").and_then(Json::as_str).map(str::to_string))
        .ok_or_else(|| anyhow!("unexpected answer: {text}"))?;
    let mut last_line = String::new();
    // A bar on a terminal; on a pipe or a log, a line per change.
    let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b.enable_steady_tick(Duration::from_millis(120));
        b
    });
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let r = http
            .get(format!("{base}/async/task/{id}"))
            .send()
            .await
            .with_context(|| format!("cannot reach {base}"))?;
        let t: Json = r.json().await.context("task status is not JSON")?;
        let line = progress_line(&t);
        match &bar {
            Some(b) => {
                let (done, total) = progress_counts(&t);
                b.set_length(total);
                b.set_position(done);
                b.set_message(line);
            }
            None if line != last_line => {
                eprintln!("{line}");
                last_line = line;
            }
            None => {}
        }
        let status = t["status"].as_str().unwrap_or_default();
        if let (Some(b), "finish" | "error" | "cancel") = (&bar, status) {
            b.finish_and_clear();
        }
        match status {
            "finish" => {
                eprintln!("imported {}", args.source);
                let _ = std::io::stderr().flush();
                return Ok(());
            }
            "error" | "cancel" => {
                let n = print_errors(&t["errors"]);
                let msg = t["message"].as_str().unwrap_or_default();
                if n == 0 && !msg.is_empty() {
                    eprintln!("  {msg}");
                }
                bail!(
                    "import {}: {}",
                    t["status"].as_str().unwrap_or_default(),
                    if n > 0 {
                        format!("{n} item(s) failed")
                    } else {
                        msg.to_string()
                    }
                );
            }
            _ => {}
        }
    }
}

fn report_failure(msg: &str) -> anyhow::Result<()> {
    match serde_json::from_str::<Json>(msg) {
        Ok(v) if v.is_object() => {
            let n = print_errors(&v);
            bail!("import failed: {n} item(s) failed")
        }
        _ => bail!("import failed: {msg}"),
    }
}

/// Steps done and steps in all (plugins to install, then items to apply).
fn progress_counts(t: &Json) -> (u64, u64) {
    let p = &t["progress"];
    let g = |a: &str, b: &str| p[a][b].as_u64().unwrap_or(0);
    let done = g("plugins", "installed")
        + g("plugins", "skipped")
        + g("plugins", "failed")
        + g("items", "applied")
        + g("items", "failed");
    (done, g("plugins", "total") + g("items", "total"))
}

fn progress_line(t: &Json) -> String {
    let p = &t["progress"];
    let g = |a: &str, b: &str| p[a][b].as_u64().unwrap_or(0);
    format!(
        "[{}] {}: plugins {}/{} installed, {} already present, {} failed; items {}/{} applied, {} failed",
        t["status"].as_str().unwrap_or_default(),
        p["phase"].as_str().unwrap_or_default(),
        g("plugins", "installed"),
        g("plugins", "total"),
        g("plugins", "skipped"),
        g("plugins", "failed"),
        g("items", "applied"),
        g("items", "total"),
        g("items", "failed"),
    )
}

/// `oort export`: exits with status 1 (after printing why) when the export fails.
pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    finish(runtime()?.block_on(export_async(args)))
}

async fn export_async(mut args: ExportArgs) -> anyhow::Result<()> {
    let base = args.at.base();
    // kuiper's `export ruleset|data FILE`, or `export FILE`.
    let (legacy, file) = match args.words.as_slice() {
        [] => (false, None),
        [w, rest @ ..] if w == "ruleset" || w == "data" => (w == "ruleset", rest.first().cloned()),
        [f] => (false, Some(f.clone())),
        [w, _] => bail!("export {w}: expected export ruleset FILE or export data FILE"),
        _ => bail!("too many arguments"),
    };
    if let Some(f) = file {
        if args.output.is_some() {
            bail!("give the file once: as an argument or with -o");
        }
        args.output = Some(PathBuf::from(f));
    }
    if legacy && (args.yaml || !args.rules.is_empty()) {
        bail!("export ruleset writes every stream, table and rule as JSON (no --yaml, no --rules)");
    }
    let path = if legacy {
        "/ruleset/export"
    } else if args.yaml {
        "/v2/data/export"
    } else {
        "/data/export"
    };
    let (method, body) = if args.rules.is_empty() {
        (reqwest::Method::GET, None)
    } else {
        (reqwest::Method::POST, Some(json!(args.rules)))
    };
    let text = call(&client()?, &base, method, path, body.as_ref())
        .await?
        .into_text("export failed")?;
    match &args.output {
        Some(p) => {
            std::fs::write(p, &text).with_context(|| format!("cannot write {}", p.display()))?;
            eprintln!("exported to {}", p.display());
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            if !text.ends_with('\n') {
                out.write_all(b"\n")?;
            }
        }
    }
    Ok(())
}
