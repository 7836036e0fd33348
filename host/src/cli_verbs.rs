//! eKuiper's `kuiper` client verbs as a thin REST client of a running
//! server: `oort create|show|describe|drop stream|table|rule|plugin`,
//! `oort start|stop|restart|getstatus|gettopo rule NAME`, `oort getstatus
//! import`, and `oort completions SHELL`. A `kuiper` script runs with only
//! the binary's name changed; `--json` prints the server's answers as they
//! are, for scripts that parse them. See docs/cli.md.

use std::io::Write;
use std::str::FromStr;

use anyhow::{anyhow, bail, Context};
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use serde_json::{json, Value as Json};

use crate::cli_data::{self, client, error_text, finish, runtime, Answer};

/// Where the server is, and how to print its answers.
#[derive(clap::Args, Debug, Clone)]
pub struct Endpoint {
    #[command(flatten)]
    pub addr: ServerAddr,
    /// Print the server's JSON answer as it is instead of tables and text.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Endpoint {
    fn base(&self) -> String {
        self.addr.base()
    }
}

/// Where the server is: `--server URL`, or kuiper's `--host`/`--port`.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerAddr {
    /// Base URL of the server's REST API.
    #[arg(
        long,
        env = "OORT_SERVER",
        default_value = "http://127.0.0.1:9081",
        global = true
    )]
    pub server: String,
    /// The server's host (as kuiper's client.yaml `host`); with `--port`, replaces `--server`.
    #[arg(long, global = true)]
    pub host: Option<String>,
    /// The server's REST port (Oort's REST API, 9081 by default; kuiper's 20498 was its RPC port).
    #[arg(long, global = true)]
    pub port: Option<u16>,
}

impl ServerAddr {
    pub(crate) fn base(&self) -> String {
        if self.host.is_none() && self.port.is_none() {
            return self.server.trim_end_matches('/').to_string();
        }
        let host = self.host.as_deref().unwrap_or("127.0.0.1");
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        format!("http://{host}:{}", self.port.unwrap_or(9081))
    }
}

/// What a verb acts on.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Stream,
    Table,
    Rule,
    Plugin,
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    pub kind: Kind,
    /// `NAME DEFINITION...` (stream/table: the SQL after `CREATE STREAM`;
    /// rule: NAME and its JSON; plugin: `source|sink NAME JSON`).
    #[arg(num_args = 0..)]
    pub args: Vec<String>,
    /// Read the definition from this file (stream/table SQL, rule JSON).
    #[arg(short = 'f', long = "file")]
    pub file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub at: Endpoint,
}

/// What `show` lists.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listing {
    Streams,
    Tables,
    Rules,
    Plugins,
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    pub what: Listing,
    /// For plugins: `source` or `sink` (both when omitted).
    pub plugin_kind: Option<String>,
    #[command(flatten)]
    pub at: Endpoint,
}

#[derive(clap::Args, Debug)]
pub struct NamedArgs {
    pub kind: Kind,
    /// The name (for a plugin: `source|sink NAME`).
    #[arg(num_args = 1..=2, required = true)]
    pub names: Vec<String>,
    #[command(flatten)]
    pub at: Endpoint,
}

/// The object of a rule verb (`rule`, or `import` for getstatus).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleWord {
    Rule,
    Import,
}

#[derive(clap::Args, Debug)]
pub struct RuleArgs {
    pub word: RuleWord,
    pub name: Option<String>,
    #[command(flatten)]
    pub at: Endpoint,
}

/// A rule verb.
#[derive(Debug, Clone, Copy)]
pub enum RuleVerb {
    Start,
    Stop,
    Restart,
    GetStatus,
    GetTopo,
}

/// The answer's JSON, or its error as the command's error.
fn into_json(a: Answer) -> anyhow::Result<Json> {
    let text = a.into_text("")?;
    serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))
}

async fn call(
    at: &Endpoint,
    method: reqwest::Method,
    path: &str,
    body: Option<Json>,
) -> anyhow::Result<Answer> {
    cli_data::call(&client()?, &at.base(), method, path, body.as_ref()).await
}

fn out(s: &str) -> anyhow::Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(s.as_bytes())?;
    if !s.ends_with('\n') {
        o.write_all(b"\n")?;
    }
    Ok(())
}

fn pretty(v: &Json) -> anyhow::Result<()> {
    out(&serde_json::to_string_pretty(v)?)
}

/// Prints a text answer (or its error) and fails on an error status.
fn report(at: &Endpoint, a: Answer) -> anyhow::Result<()> {
    if !a.ok {
        bail!("{}", error_text(&a.text));
    }
    if at.json {
        return out(&a.text);
    }
    out(&error_text(&a.text))
}

/// Percent-encodes one path segment (a name may hold any character).
fn seg(s: &str) -> String {
    let mut u = reqwest::Url::from_str("http://h/").expect("a constant URL");
    if let Ok(mut p) = u.path_segments_mut() {
        p.clear().push(s);
    }
    u.path().trim_start_matches('/').to_string()
}

fn read_def(file: &Option<std::path::PathBuf>, rest: &[String]) -> anyhow::Result<String> {
    match file {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
        }
        None if rest.is_empty() => bail!("a definition is needed, after the name or with -f FILE"),
        None => Ok(rest.join(" ")),
    }
}

fn plugin_path(kind: &str) -> anyhow::Result<&'static str> {
    match kind.to_ascii_lowercase().trim_end_matches('s') {
        "source" => Ok("sources"),
        "sink" => Ok("sinks"),
        other => bail!("plugin kind {other}: use source or sink (Oort plugins are WebAssembly sources and sinks)"),
    }
}

/// `oort create ...`.
pub fn create(a: CreateArgs) -> anyhow::Result<()> {
    finish(runtime()?.block_on(create_async(a)))
}

async fn create_async(a: CreateArgs) -> anyhow::Result<()> {
    match a.kind {
        Kind::Stream | Kind::Table => {
            let word = if a.kind == Kind::Stream {
                "STREAM"
            } else {
                "TABLE"
            };
            let def = read_def(&a.file, &a.args)?;
            let def = def.trim().trim_end_matches(';').trim();
            // A file may hold the whole statement or, as kuiper's, what follows it.
            let sql = if def.to_ascii_uppercase().starts_with("CREATE ") {
                def.to_string()
            } else {
                format!("CREATE {word} {def}")
            };
            let path = if a.kind == Kind::Stream {
                "/streams"
            } else {
                "/tables"
            };
            let r = call(
                &a.at,
                reqwest::Method::POST,
                path,
                Some(json!({ "sql": sql })),
            )
            .await?;
            report(&a.at, r)
        }
        Kind::Rule => {
            let (name, rest) = a
                .args
                .split_first()
                .ok_or_else(|| anyhow!("create rule NAME JSON, or create rule NAME -f FILE"))?;
            let text = read_def(&a.file, rest)?;
            let mut rule: Json = serde_json::from_str(&text)
                .with_context(|| format!("the definition of rule {name} is not JSON"))?;
            let obj = rule
                .as_object_mut()
                .ok_or_else(|| anyhow!("the definition of rule {name} is not a JSON object"))?;
            match obj.get("id").and_then(Json::as_str) {
                Some(id) if id != name => {
                    bail!("rule name {name} and the definition's id {id} differ")
                }
                _ => {
                    obj.insert("id".into(), json!(name));
                }
            }
            let r = call(&a.at, reqwest::Method::POST, "/rules", Some(rule)).await?;
            report(&a.at, r)
        }
        Kind::Plugin => {
            let [kind, name, rest @ ..] = a.args.as_slice() else {
                bail!("create plugin source|sink NAME JSON (e.g. '{{\"file\":\"https://.../random.zip\"}}') or a local FILE.zip|.wasm");
            };
            // A package on this machine: uploaded (PUT .../package).
            if let [local] = rest {
                let p = std::path::Path::new(local);
                if a.file.is_none() && !local.trim_start().starts_with('{') && p.is_file() {
                    let bytes = std::fs::read(p).with_context(|| local.to_string())?;
                    let path = format!("/plugins/{}/{}/package", plugin_path(kind)?, seg(name));
                    eprintln!(
                        "uploading {local} ({} bytes) as {kind} plugin {name}...",
                        bytes.len()
                    );
                    let r = client()?
                        .put(format!("{}{path}", a.at.base()))
                        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                        .body(bytes)
                        .send()
                        .await
                        .with_context(|| format!("cannot reach {}", a.at.base()))?;
                    let ok = r.status().is_success();
                    let text = r.text().await.unwrap_or_default();
                    return report(&a.at, Answer { ok, text });
                }
            }
            let text = read_def(&a.file, rest)?;
            let mut body: Json = serde_json::from_str(&text)
                .with_context(|| format!("the definition of plugin {name} is not JSON"))?;
            let obj = body
                .as_object_mut()
                .ok_or_else(|| anyhow!("the definition of plugin {name} is not a JSON object"))?;
            obj.insert("name".into(), json!(name));
            let path = format!("/plugins/{}", plugin_path(kind)?);
            // A download and compilation can take seconds: a spinner on a
            // terminal, a line otherwise.
            let what = format!("installing {kind} plugin {name}");
            let spin = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
                let s = indicatif::ProgressBar::new_spinner();
                s.set_message(what.clone());
                s.enable_steady_tick(std::time::Duration::from_millis(120));
                s
            });
            if spin.is_none() {
                eprintln!("{what}...");
            }
            let r = call(&a.at, reqwest::Method::POST, &path, Some(body)).await;
            if let Some(s) = spin {
                s.finish_and_clear();
            }
            report(&a.at, r?)
        }
    }
}

/// `oort show streams|tables|rules|plugins`.
pub fn show(a: ShowArgs) -> anyhow::Result<()> {
    finish(runtime()?.block_on(show_async(a)))
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header(header.to_vec());
    t
}

fn cell(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

async fn show_async(a: ShowArgs) -> anyhow::Result<()> {
    match a.what {
        Listing::Streams | Listing::Tables => {
            let (path, what) = if a.what == Listing::Streams {
                ("/streams", "stream")
            } else {
                ("/tables", "table")
            };
            let v = into_json(call(&a.at, reqwest::Method::GET, path, None).await?)?;
            if a.at.json {
                return pretty(&v);
            }
            let names: Vec<String> = v.as_array().into_iter().flatten().map(cell).collect();
            if names.is_empty() {
                return out(&format!("No {what} definitions are found."));
            }
            out(&names.join("\n"))
        }
        Listing::Rules => {
            let v = into_json(call(&a.at, reqwest::Method::GET, "/rules", None).await?)?;
            if a.at.json {
                return pretty(&v);
            }
            let rules = v.as_array().cloned().unwrap_or_default();
            if rules.is_empty() {
                return out("No rule definitions are found.");
            }
            let mut t = table(&["id", "status"]);
            for r in &rules {
                t.add_row(vec![cell(&r["id"]), cell(&r["status"])]);
            }
            out(&t.to_string())
        }
        Listing::Plugins => {
            let kinds: Vec<&str> = match &a.plugin_kind {
                Some(k) => vec![plugin_path(k)?],
                None => vec!["sources", "sinks"],
            };
            let mut all = serde_json::Map::new();
            for k in kinds {
                let v = into_json(
                    call(&a.at, reqwest::Method::GET, &format!("/plugins/{k}"), None).await?,
                )?;
                all.insert(k.to_string(), v);
            }
            if a.at.json {
                return pretty(&Json::Object(all));
            }
            // The server lists names (as eKuiper does); `describe plugin` has the rest.
            let mut t = table(&["kind", "name"]);
            let mut n = 0;
            for (k, list) in &all {
                for p in list.as_array().into_iter().flatten() {
                    n += 1;
                    let name = match p {
                        Json::String(name) => name.clone(),
                        p => cell(&p["name"]),
                    };
                    t.add_row(vec![k.trim_end_matches('s').to_string(), name]);
                }
            }
            if n == 0 {
                return out("No plugins are installed.");
            }
            out(&t.to_string())
        }
    }
}

/// The REST path of a named item (`stream s` -> `/streams/s`).
fn item_path(kind: Kind, names: &[String]) -> anyhow::Result<String> {
    Ok(match (kind, names) {
        (Kind::Stream, [n]) => format!("/streams/{}", seg(n)),
        (Kind::Table, [n]) => format!("/tables/{}", seg(n)),
        (Kind::Rule, [n]) => format!("/rules/{}", seg(n)),
        (Kind::Plugin, [k, n]) => format!("/plugins/{}/{}", plugin_path(k)?, seg(n)),
        (Kind::Plugin, _) => bail!("name a plugin as source|sink NAME"),
        (_, _) => bail!("one name is expected"),
    })
}

/// `oort describe stream|table|rule|plugin NAME`.
pub fn describe(a: NamedArgs) -> anyhow::Result<()> {
    finish(runtime()?.block_on(describe_async(a)))
}

async fn describe_async(a: NamedArgs) -> anyhow::Result<()> {
    let path = item_path(a.kind, &a.names)?;
    let v = into_json(call(&a.at, reqwest::Method::GET, &path, None).await?)?;
    if a.at.json || !matches!(a.kind, Kind::Stream | Kind::Table) {
        return pretty(&v);
    }
    // Fields as a table, then the WITH options.
    let mut text = String::new();
    let fields = v["StreamFields"].as_array().cloned().unwrap_or_default();
    if fields.is_empty() {
        text.push_str("Fields: none (schemaless)\n");
    } else {
        let mut t = table(&["field", "type"]);
        for f in &fields {
            let ty = match &f["FieldType"] {
                Json::Object(o) => o
                    .get("Type")
                    .map(cell)
                    .unwrap_or_else(|| Json::Object(o.clone()).to_string()),
                other => cell(other),
            };
            t.add_row(vec![cell(&f["Name"]), ty]);
        }
        text.push_str(&t.to_string());
        text.push('\n');
    }
    if let Some(opts) = v["Options"].as_object() {
        text.push('\n');
        for (k, val) in opts {
            if !val.is_null() && val != "" {
                text.push_str(&format!("{}: {}\n", k.to_ascii_uppercase(), cell(val)));
            }
        }
    }
    out(&text)
}

/// `oort drop stream|table|rule|plugin NAME`.
pub fn drop_item(a: NamedArgs) -> anyhow::Result<()> {
    finish(runtime()?.block_on(async {
        let path = item_path(a.kind, &a.names)?;
        let r = call(&a.at, reqwest::Method::DELETE, &path, None).await?;
        report(&a.at, r)
    }))
}

/// `oort start|stop|restart|getstatus|gettopo rule NAME`, `oort getstatus import`.
pub fn rule_verb(verb: RuleVerb, a: RuleArgs) -> anyhow::Result<()> {
    finish(runtime()?.block_on(rule_verb_async(verb, a)))
}

async fn rule_verb_async(verb: RuleVerb, a: RuleArgs) -> anyhow::Result<()> {
    if a.word == RuleWord::Import {
        if !matches!(verb, RuleVerb::GetStatus) {
            bail!("only getstatus applies to import");
        }
        let v = into_json(call(&a.at, reqwest::Method::GET, "/data/import/status", None).await?)?;
        return pretty(&v);
    }
    let name = a.name.as_deref().ok_or_else(|| anyhow!("name the rule"))?;
    let base = format!("/rules/{}", seg(name));
    let (method, path) = match verb {
        RuleVerb::Start => (reqwest::Method::POST, format!("{base}/start")),
        RuleVerb::Stop => (reqwest::Method::POST, format!("{base}/stop")),
        RuleVerb::Restart => (reqwest::Method::POST, format!("{base}/restart")),
        RuleVerb::GetStatus => (reqwest::Method::GET, format!("{base}/status")),
        RuleVerb::GetTopo => (reqwest::Method::GET, format!("{base}/topo")),
    };
    let r = call(&a.at, method, &path, None).await?;
    match verb {
        RuleVerb::GetStatus | RuleVerb::GetTopo => pretty(&into_json(r)?),
        _ => report(&a.at, r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(server: &str, host: Option<&str>, port: Option<u16>) -> ServerAddr {
        ServerAddr {
            server: server.into(),
            host: host.map(str::to_string),
            port,
        }
    }

    #[test]
    fn host_and_port_replace_the_server_url() {
        assert_eq!(at("http://x:1/", None, None).base(), "http://x:1");
        assert_eq!(
            at("http://x:1", Some("edge"), None).base(),
            "http://edge:9081"
        );
        assert_eq!(
            at("http://x:1", None, Some(9999)).base(),
            "http://127.0.0.1:9999"
        );
        assert_eq!(at("", Some("::1"), Some(1)).base(), "http://[::1]:1");
    }

    #[test]
    fn names_are_one_path_segment() {
        assert_eq!(
            item_path(Kind::Rule, &["a b/c".into()]).unwrap(),
            "/rules/a%20b%2Fc"
        );
        assert_eq!(
            item_path(Kind::Plugin, &["sink".into(), "tcp".into()]).unwrap(),
            "/plugins/sinks/tcp"
        );
        assert!(item_path(Kind::Plugin, &["tcp".into()]).is_err());
        assert!(item_path(Kind::Stream, &["a".into(), "b".into()]).is_err());
        assert!(plugin_path("function").is_err());
    }
}
