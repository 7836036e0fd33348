//! `oort plugin check FILE`: the install checks of a running server
//! (`PluginManager::check`) on a throwaway data dir, with the settings
//! `oort serve` would use, then `validate` with sample properties. For a
//! bare `.wasm`, the manifest `<name>.json` and conf keys `<name>.yaml` next
//! to it are packaged with it, and `--zip` writes that package once every
//! check passed.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use oort_wasm::{CheckInput, CheckReport, PluginKind};

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The package (`NAME.zip`) or the component (`NAME.wasm`).
    file: PathBuf,
    /// The plugin's name (default: the file name without its extension).
    #[arg(long)]
    name: Option<String>,
    /// `source` or `sink` (default: the manifest's `kind`, else the component's export).
    #[arg(long)]
    kind: Option<String>,
    /// Properties to validate with, a JSON object; repeat for several
    /// (default: each conf key of NAME.yaml, else `{}`).
    #[arg(long = "props", value_name = "JSON")]
    props: Vec<String>,
    /// The DATASOURCE a source's properties are validated with.
    #[arg(long, default_value = "demo")]
    datasource: String,
    /// After every check passed, write the package (the .wasm with its
    /// manifest and conf keys) to this zip. Only for a .wasm.
    #[arg(long, value_name = "OUT.zip")]
    zip: Option<PathBuf>,
    /// Server settings file, for the limits the check applies (as `oort serve --config`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(a: CheckArgs) -> anyhow::Result<()> {
    let kind = match a.kind.as_deref() {
        None => None,
        Some(k) => Some(
            PluginKind::parse(k).with_context(|| format!("--kind {k:?}: use source or sink"))?,
        ),
    };
    let cfg = crate::config::Config::load(a.config.as_deref())?;
    let wasm_cfg = cfg.plugins.wasm_config();
    let file = &a.file;
    let (stem, ext) = split_name(file)?;
    let name = a.name.clone().unwrap_or(stem);
    let size = std::fs::metadata(file)
        .with_context(|| format!("{}", file.display()))?
        .len();
    if size > wasm_cfg.max_download_bytes {
        bail!(
            "{}: {size} bytes, more than a server accepts (plugins.max_download_mb)",
            file.display()
        );
    }
    let bytes = std::fs::read(file).with_context(|| format!("{}", file.display()))?;
    let (bytes, packaged) = match ext.as_str() {
        "wasm" => package_with_siblings(file, &name, bytes)?,
        _ => {
            if a.zip.is_some() {
                bail!(
                    "--zip packages a .wasm; {} is a package already",
                    file.display()
                );
            }
            (bytes, false)
        }
    };
    let samples = a
        .props
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("--props #{}", i + 1), p.clone()))
        .collect();
    let input = CheckInput {
        name: name.clone(),
        kind,
        bytes,
        samples,
        datasource: a.datasource.clone(),
    };
    let registry = oort_core::Registry::default();
    oort_connectors::builtin(&registry);
    let scratch = tempfile::Builder::new()
        .prefix("oort-plugin-check-")
        .tempdir()
        .context("a temporary directory for the check")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(async {
        let mgr = oort_wasm::PluginManager::open(scratch.path(), registry, wasm_cfg)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::Ok(mgr.check(input.clone()).await)
    })?;
    drop(rt);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report, file, packaged);
    }
    if !report.passed {
        std::process::exit(1);
    }
    if let Some(out) = &a.zip {
        let zip = if packaged {
            input.bytes
        } else {
            zip_parts(&[(format!("{name}.wasm"), input.bytes)])?
        };
        std::fs::write(out, &zip).with_context(|| format!("{}", out.display()))?;
        if !a.json {
            println!("wrote {} ({} bytes)", out.display(), zip.len());
        }
    }
    Ok(())
}

/// `demo.wasm` -> (`demo`, `wasm`).
fn split_name(file: &Path) -> anyhow::Result<(String, String)> {
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .with_context(|| format!("{}: no file name", file.display()))?;
    let ext = file
        .extension()
        .and_then(|s| s.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ext != "wasm" && ext != "zip" {
        bail!(
            "{}: give a package (.zip) or a component (.wasm)",
            file.display()
        );
    }
    Ok((stem.to_string(), ext))
}

/// A `.wasm` with `<name>.json` (and `<name>.yaml`) beside it is checked as
/// the zip those files make; alone, as the bare component.
fn package_with_siblings(
    file: &Path,
    name: &str,
    wasm: Vec<u8>,
) -> anyhow::Result<(Vec<u8>, bool)> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut parts = vec![(format!("{name}.wasm"), wasm)];
    for ext in ["json", "yaml"] {
        let p = dir.join(format!("{name}.{ext}"));
        if p.is_file() {
            let b = std::fs::read(&p).with_context(|| format!("{}", p.display()))?;
            parts.push((format!("{name}.{ext}"), b));
        }
    }
    if parts.len() == 1 {
        let (_, wasm) = parts.remove(0);
        return Ok((wasm, false));
    }
    Ok((zip_parts(&parts)?, true))
}

fn zip_parts(parts: &[(String, Vec<u8>)]) -> anyhow::Result<Vec<u8>> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (n, b) in parts {
        w.start_file(n.as_str(), opts)?;
        w.write_all(b)?;
    }
    Ok(w.finish()?.into_inner())
}

fn print_report(r: &CheckReport, file: &Path, packaged: bool) {
    let kind = r.kind.map(|k| format!("{k} ")).unwrap_or_default();
    let how = if packaged {
        " (with the manifest beside it, as its zip would hold it)"
    } else {
        ""
    };
    println!(
        "checking {kind}plugin {} from {}{how}",
        r.name,
        file.display()
    );
    for s in &r.steps {
        let mark = if s.ok { "ok  " } else { "FAIL" };
        println!("  {mark} {:<12} {}", s.stage.as_str(), s.detail);
    }
    let failed = r.steps.iter().filter(|s| !s.ok).count();
    if failed == 0 {
        println!("{}: {} checks passed", r.name, r.steps.len());
    } else if r
        .steps
        .iter()
        .any(|s| !s.ok && s.stage != oort_wasm::manager::Stage::Validate)
    {
        println!(
            "{}: {failed} of {} checks failed; an install would be refused",
            r.name,
            r.steps.len()
        );
    } else {
        println!(
            "{}: {failed} of {} checks failed: validate refused the properties above \
             (a stream or rule with them would be refused)",
            r.name,
            r.steps.len()
        );
    }
}
