//! `oort query`: kuiper's SQL prompt. Each `SELECT` runs as a temporary
//! rule whose `rest` action posts the results to a listener of this
//! process on the loopback, and its rows are printed as they come; the
//! next query replaces it, and `exit` (or the end of input, or Ctrl-C)
//! deletes it. Other statements (`SHOW STREAMS`, `DESCRIBE STREAM s`,
//! `CREATE STREAM ...`) go to the server's stream endpoint as they are.

use std::io::Write;

use anyhow::Context;
use serde_json::{json, Value as Json};
use tokio::io::AsyncBufReadExt;

use crate::cli_data::{call, client, finish, runtime};
use crate::cli_verbs::ServerAddr;

#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    #[command(flatten)]
    pub at: ServerAddr,
}

/// `oort query`.
pub fn query(a: QueryArgs) -> anyhow::Result<()> {
    finish(runtime()?.block_on(query_async(a)))
}

/// The id of this prompt's temporary rule.
fn rule_id() -> String {
    format!("oort_query_{}", std::process::id())
}

fn prompt(interactive: bool) {
    if interactive {
        print!("oort > ");
        let _ = std::io::stdout().flush();
    }
}

fn is_select(sql: &str) -> bool {
    sql.split_whitespace()
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case("select"))
}

async fn query_async(a: QueryArgs) -> anyhow::Result<()> {
    let base = a.at.base();
    let http = client()?;
    // Results arrive here: one POST per result row.
    let (tx, mut rows) = tokio::sync::mpsc::channel::<bytes::Bytes>(1024);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen on the loopback for results")?;
    let port = listener.local_addr()?.port();
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |body: bytes::Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body).await;
                axum::http::StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    if let Some(host) = reqwest::Url::parse(&base)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
    {
        if !matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]" | "::1") {
            eprintln!("warning: results are posted to 127.0.0.1:{port} as {host} sees it: run oort query on the server's machine");
        }
    }
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    if interactive {
        println!("Connected to {base}. SELECT ... runs until the next query; exit to quit.");
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let id = rule_id();
    let mut running = false;
    prompt(interactive);
    let result = loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { break Ok(()) };
                let sql = line.trim().trim_end_matches(';').trim();
                if sql.is_empty() {
                    prompt(interactive);
                    continue;
                }
                if sql.eq_ignore_ascii_case("exit") || sql.eq_ignore_ascii_case("quit") {
                    break Ok(());
                }
                if running {
                    drop_rule(&http, &base, &id).await;
                    running = false;
                }
                if is_select(sql) {
                    let rule = json!({
                        "id": id,
                        "sql": sql,
                        "actions": [{"rest": {
                            "url": format!("http://127.0.0.1:{port}/"),
                            "method": "post",
                            "sendSingle": true,
                        }}],
                    });
                    match send(&http, &base, reqwest::Method::POST, "/rules", Some(rule)).await {
                        Ok(_) => {
                            running = true;
                            if interactive {
                                println!("query is running; results follow");
                            }
                        }
                        Err(e) => eprintln!("error: {e:#}"),
                    }
                } else {
                    match send(&http, &base, reqwest::Method::POST, "/streams", Some(json!({"sql": sql}))).await {
                        Ok(text) => println!("{}", pretty_text(&text)),
                        Err(e) => eprintln!("error: {e:#}"),
                    }
                }
                prompt(interactive);
            }
            Some(row) = rows.recv() => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&row);
                let _ = out.write_all(b"\n");
                let _ = out.flush();
            }
            _ = tokio::signal::ctrl_c() => break Ok(()),
        }
    };
    if running {
        drop_rule(&http, &base, &id).await;
    }
    result
}

/// A JSON answer indented, a text answer as it is.
fn pretty_text(text: &str) -> String {
    match serde_json::from_str::<Json>(text) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_else(|_| text.to_string()),
        Err(_) => text.trim().to_string(),
    }
}

async fn send(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Json>,
) -> anyhow::Result<String> {
    call(http, base, method, path, body.as_ref())
        .await?
        .into_text("")
}

async fn drop_rule(http: &reqwest::Client, base: &str, id: &str) {
    if let Err(e) = send(
        http,
        base,
        reqwest::Method::DELETE,
        &format!("/rules/{id}"),
        None,
    )
    .await
    {
        eprintln!("error: the query rule {id} could not be deleted: {e:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_become_rules_and_the_rest_goes_to_the_stream_endpoint() {
        assert!(is_select("select * from s"));
        assert!(is_select("  SELECT a FROM s"));
        assert!(!is_select("SHOW STREAMS"));
        assert!(!is_select("selection"));
        assert_eq!(pretty_text("[\"a\"]"), "[\n  \"a\"\n]");
        assert_eq!(
            pretty_text("Stream s is created.\n"),
            "Stream s is created."
        );
    }
}
