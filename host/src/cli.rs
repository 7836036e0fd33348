//! Command line: `oort serve`, `oort --version`, and the REST client
//! commands (`import`/`export` in `cli_data`, kuiper's verbs in `cli_verbs`).

use std::path::PathBuf;
use std::time::Instant;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::cli_verbs::RuleVerb;
use crate::config::Config;
use crate::manager::Manager;
use crate::server::{self, AppState};

#[derive(Parser)]
#[command(
    name = "oort",
    version,
    about = "Edge stream processing with SQL rules and WebAssembly connectors"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server (REST API on 127.0.0.1:9081 by default).
    Serve(ServeArgs),
    /// Import a data document (streams, tables, rules, plugins, conf keys) into a running server.
    Import(crate::cli_data::ImportArgs),
    /// Export a running server's data document (everything, or what some rules need).
    Export(crate::cli_data::ExportArgs),
    /// Create a stream, table, rule or plugin (kuiper's verb; see docs/cli.md).
    Create(crate::cli_verbs::CreateArgs),
    /// List streams, tables, rules or plugins.
    Show(crate::cli_verbs::ShowArgs),
    /// Show one stream, table, rule or plugin.
    Describe(crate::cli_verbs::NamedArgs),
    /// Delete a stream, table, rule or plugin.
    Drop(crate::cli_verbs::NamedArgs),
    /// Start a rule: `oort start rule NAME`.
    Start(crate::cli_verbs::RuleArgs),
    /// Stop a rule: `oort stop rule NAME`.
    Stop(crate::cli_verbs::RuleArgs),
    /// Restart a rule: `oort restart rule NAME`.
    Restart(crate::cli_verbs::RuleArgs),
    /// A rule's status and metrics (`getstatus rule NAME`), or the import status (`getstatus import`).
    Getstatus(crate::cli_verbs::RuleArgs),
    /// A rule's topology: `oort gettopo rule NAME`.
    Gettopo(crate::cli_verbs::RuleArgs),
    /// kuiper's SQL prompt: each SELECT runs as a temporary rule and prints its results.
    Query(crate::cli_query::QueryArgs),
    /// Plugin authors: `plugin new NAME --lang L --kind K` writes a project, `plugin check FILE` checks a build.
    Plugin(crate::plugin_dev::PluginArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Directory for all state: SQLite store, conf keys (etc/), plugins, data files.
    #[arg(long, env = "OORT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// REST listen address.
    #[arg(long, env = "OORT_REST_ADDR")]
    rest_addr: Option<String>,
    /// YAML settings file (see docs/configuration.md).
    #[arg(long)]
    config: Option<PathBuf>,
    /// This instance's name among several sharing a broker (stable MQTT
    /// client ids); default: derived from the data dir.
    #[arg(long, env = "OORT_INSTANCE_ID")]
    instance_id: Option<String>,
    /// A data document applied at every start, as a partial import that
    /// leaves unchanged items alone: a file path, file:// or http(s):// URI.
    #[arg(long, env = "OORT_RULESET")]
    ruleset: Option<String>,
}

pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let mut cfg = Config::load(args.config.as_deref())?;
            if let Some(d) = args.data_dir {
                cfg.data_dir = d;
            }
            if let Some(a) = args.rest_addr {
                cfg.rest.addr = a;
            }
            if let Some(i) = args.instance_id {
                cfg.instance_id = i;
            }
            if let Some(r) = args.ruleset {
                cfg.ruleset = r;
            }
            init_tracing(&cfg)?;
            let mut rt = tokio::runtime::Builder::new_multi_thread();
            rt.enable_all();
            if let Some(n) = cfg.worker_threads()? {
                rt.worker_threads(n);
            }
            let rt = rt.build()?;
            rt.block_on(serve(cfg))?;
            crate::cli_data::exit_if_requested();
            Ok(())
        }
        Command::Import(args) => crate::cli_data::import(args),
        Command::Export(args) => crate::cli_data::export(args),
        Command::Create(a) => crate::cli_verbs::create(a),
        Command::Show(a) => crate::cli_verbs::show(a),
        Command::Describe(a) => crate::cli_verbs::describe(a),
        Command::Drop(a) => crate::cli_verbs::drop_item(a),
        Command::Start(a) => crate::cli_verbs::rule_verb(RuleVerb::Start, a),
        Command::Stop(a) => crate::cli_verbs::rule_verb(RuleVerb::Stop, a),
        Command::Restart(a) => crate::cli_verbs::rule_verb(RuleVerb::Restart, a),
        Command::Getstatus(a) => crate::cli_verbs::rule_verb(RuleVerb::GetStatus, a),
        Command::Gettopo(a) => crate::cli_verbs::rule_verb(RuleVerb::GetTopo, a),
        Command::Query(a) => crate::cli_query::query(a),
        Command::Plugin(a) => crate::plugin_dev::main(a),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "oort", &mut std::io::stdout());
            Ok(())
        }
    }
}

fn init_tracing(cfg: &Config) -> anyhow::Result<()> {
    let filter = match std::env::var("OORT_LOG") {
        Ok(v) if !v.trim().is_empty() => {
            log_filter(&v).map_err(|e| anyhow::anyhow!("OORT_LOG: {e}"))?
        }
        _ => log_filter(&cfg.log.level).map_err(|e| anyhow::anyhow!("log.level: {e}"))?,
    };
    // Colours only on a terminal: not in files or pipes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(|| QuietStdout(std::io::stdout()));
    if cfg.log.json {
        b.json().init();
    } else {
        b.init();
    }
    Ok(())
}

/// Standard output for log lines; a line that cannot be written (the
/// reader of a pipe went away) is dropped quietly instead of reported on
/// stderr for every line.
struct QuietStdout(std::io::Stdout);

impl std::io::Write for QuietStdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(self.0.write(buf).unwrap_or(buf.len()))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}

/// A log level (eKuiper's names too: `fatal` and `panic` read as `error`)
/// or a tracing filter (`info,oort=debug`). A bare word that is no level is
/// refused: tracing would read it as a target name and log nothing else.
fn log_filter(s: &str) -> Result<tracing_subscriber::EnvFilter, String> {
    let t = s.trim();
    let level = match t.to_ascii_lowercase().as_str() {
        "trace" => Some("trace"),
        "debug" => Some("debug"),
        "info" => Some("info"),
        "warn" | "warning" => Some("warn"),
        "error" | "fatal" | "panic" => Some("error"),
        "off" => Some("off"),
        _ => None,
    };
    if let Some(l) = level {
        return Ok(tracing_subscriber::EnvFilter::new(l));
    }
    if t.contains(['=', ',']) {
        return tracing_subscriber::EnvFilter::try_new(t).map_err(|e| format!("{t:?}: {e}"));
    }
    Err(format!(
        "{t:?} is not a level: use trace, debug, info, warn or error (eKuiper's fatal and panic read as error), or a filter such as info,oort=debug"
    ))
}

/// The `--instance-id`: `None` when empty; at most 128 printable ASCII
/// characters without spaces (it names the instance in logs and client ids).
fn check_instance_id(id: &str) -> anyhow::Result<Option<String>> {
    let id = id.trim();
    if id.is_empty() {
        return Ok(None);
    }
    if id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        anyhow::bail!(
            "instance id {id:?} (--instance-id, OORT_INSTANCE_ID or instance_id): use at most 128 letters, digits and punctuation, no spaces"
        );
    }
    Ok(Some(id.to_string()))
}

/// Runs the server until SIGINT/SIGTERM or `/stop`.
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    let registry = oort_core::Registry::default();
    oort_connectors::builtin(&registry);
    let dir_err = |e: std::io::Error| {
        anyhow::anyhow!(
            "data dir {}: {e} (set it with --data-dir or data_dir)",
            cfg.data_dir.display()
        )
    };
    std::fs::create_dir_all(&cfg.data_dir).map_err(dir_err)?;
    let data_dir = std::fs::canonicalize(&cfg.data_dir).map_err(dir_err)?;
    let instance_id = check_instance_id(&cfg.instance_id)?;
    oort_functions::set_timezone(&cfg.timezone).map_err(|_| {
        anyhow::anyhow!(
            "timezone {:?} (config key timezone, OORT__TIMEZONE): use Local, UTC, an IANA name such as Europe/Berlin, or an offset such as +08:00",
            cfg.timezone
        )
    })?;
    let mut env = oort_core::ConnectorEnv::builder()
        .data_dir(&data_dir)
        .allowed_dirs(cfg.file.allowed_dirs()?)
        .setting("source.httpServerIp", &cfg.source.http_server_ip)
        .setting(
            "source.httpServerPort",
            &cfg.source.http_server_port.to_string(),
        );
    if let Some(t) = &cfg.source.http_server_tls {
        env = env
            .setting(
                "source.httpServerTls.certfile",
                &t.certfile.display().to_string(),
            )
            .setting(
                "source.httpServerTls.keyfile",
                &t.keyfile.display().to_string(),
            );
    }
    if let Some(id) = &instance_id {
        env = env.instance_id(id);
    }
    let env = env.build();
    server::check_exposure(&cfg.rest, &data_dir).await?;
    let metrics_listener = server::bind_metrics(&cfg.metrics.addr).await?;
    let outbound = cfg.outbound.policy(&data_dir)?;
    crate::memtrim::release("after the connectors' set-up");
    let mut wasm_cfg = cfg.plugins.wasm_config();
    wasm_cfg.outbound = outbound.clone();
    let plugins = match oort_wasm::PluginManager::open(&data_dir, registry.clone(), wasm_cfg) {
        Ok(p) => {
            if let Some(dir) = cfg.plugins.builtin_dir() {
                match p.load_builtin(&dir) {
                    Ok(names) => {
                        tracing::info!(dir = %dir.display(), plugins = ?names, "built-in plugins loaded")
                    }
                    Err(e) => {
                        tracing::warn!(dir = %dir.display(), error = %e, "built-in plugins not loaded")
                    }
                }
            } else {
                tracing::info!("no built-in plugin directory found (run builtin-plugins/build.sh)");
            }
            Some(p)
        }
        Err(e) => {
            tracing::error!(error = %e, "the WebAssembly plugin host did not start; plugins are unavailable");
            None
        }
    };
    // Starting up runs each part's set-up code once; dropping the code
    // pages between the parts keeps the peak resident set at the largest
    // part instead of their sum (see memtrim).
    crate::memtrim::release("after loading plugins");
    if !cfg.sink.aes_key.is_empty() {
        crate::runtime::sink::compress::set_aes_key(&cfg.sink.aes_key)
            .map_err(anyhow::Error::msg)?;
    }
    let mgr = Manager::open_with(env, registry, &cfg.store.ext_state()?)?;
    if let Some(p) = plugins.clone() {
        mgr.conf()
            .set_packaged(std::sync::Arc::new(move |kind, typ| {
                let k = match kind {
                    "sources" => oort_wasm::PluginKind::Source,
                    "sinks" => oort_wasm::PluginKind::Sink,
                    _ => return None,
                };
                p.get(k, typ)?.conf_keys?.as_object().cloned()
            }));
    }
    mgr.restore().await?;
    crate::memtrim::release("after restoring rules");
    let shutdown = CancellationToken::new();
    let ruleset = std::sync::Arc::new(crate::manager::ruleset::Ruleset::new(&mgr));
    if !cfg.ruleset.trim().is_empty() {
        tokio::spawn(crate::manager::ruleset::boot::apply_at_start(
            ruleset.clone(),
            mgr.clone(),
            plugins.clone(),
            cfg.ruleset.clone(),
            shutdown.clone(),
        ));
    }
    let state = AppState {
        mgr: mgr.clone(),
        started: Instant::now(),
        shutdown: shutdown.clone(),
        plugins,
        outbound,
        ruleset,
        metrics_detail: cfg.metrics.detail,
    };
    let sig = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        sig.cancel();
    });
    tracing::info!(data_dir = %data_dir.display(), instance_id = instance_id.as_deref().unwrap_or(""), version = env!("CARGO_PKG_VERSION"), "oort starting");
    if let Some(l) = metrics_listener {
        server::serve_metrics(l, state.clone());
    }
    let r = server::serve(state, &cfg.rest, &data_dir).await;
    mgr.shutdown().await;
    tracing::info!("stopped");
    r.map(|_| ())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Resident set size of this process, bytes (Linux: `VmRSS` of
/// `/proc/self/status`, which the kernel gives in kB whatever the page size).
pub fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// CPU seconds this process used, user + system (Linux: `/proc/self/stat`,
/// in USER_HZ ticks, 100 per second on every mainstream configuration).
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

#[cfg(test)]
mod log_tests {
    use super::log_filter;

    #[test]
    fn levels_filters_and_refusals() {
        for ok in [
            "info",
            "DEBUG",
            "warning",
            "fatal",
            "off",
            "info,oort=debug",
            "oort=trace",
        ] {
            assert!(log_filter(ok).is_ok(), "{ok}");
        }
        let e = log_filter("verbose").unwrap_err();
        assert!(e.contains("not a level"), "{e}");
    }
}

#[cfg(test)]
mod instance_id_tests {
    use super::check_instance_id;

    #[test]
    fn instance_ids_are_short_printable_words() {
        assert_eq!(check_instance_id("  ").unwrap(), None);
        assert_eq!(
            check_instance_id(" edge-a.1 ").unwrap().as_deref(),
            Some("edge-a.1")
        );
        for bad in ["edge a", "tab\there", &"x".repeat(129), "é"] {
            let e = check_instance_id(bad).unwrap_err().to_string();
            assert!(e.contains("--instance-id"), "{bad}: {e}");
        }
    }
}
