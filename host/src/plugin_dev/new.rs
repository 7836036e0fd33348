//! `oort plugin new NAME --lang rust|python|js|c --kind source|sink`: writes
//! a plugin project whose `build.sh` makes the component and the package in
//! one command. The project holds its own copy of the WIT contract (embedded
//! in this binary), so it builds without this repository or an SDK. Files are
//! rendered with Oort's template engine (`{{.name}}`, `{{if .source}}`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::ValueEnum;
use oort_core::template::Template;

#[derive(clap::Args)]
pub struct NewArgs {
    /// The plugin's name: a letter, then letters, digits, `_` or `-` (max 64).
    name: String,
    /// The language of the project.
    #[arg(long, value_enum)]
    lang: Lang,
    /// A source (emits messages into streams) or a sink (a rule action).
    #[arg(long, value_enum)]
    kind: Kind,
    /// Where to write it (default: ./NAME); must not exist, or be empty.
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Lang {
    Rust,
    Python,
    #[value(alias = "javascript")]
    Js,
    C,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    Source,
    Sink,
}

/// Oort's contract at its current version, `oort:connector@0.2.0`, as
/// published in `wit/0.2.0/` (whose `deps` are the WASI packages of `wit/deps/`):
/// (path under the project's `wit/`, text).
const WIT: [(&str, &str); 9] = [
    ("types.wit", include_str!("../../../wit/0.2.0/types.wit")),
    ("worlds.wit", include_str!("../../../wit/0.2.0/worlds.wit")),
    (
        "host-worlds.wit",
        include_str!("../../../wit/0.2.0/host-worlds.wit"),
    ),
    (
        "deps/cli/cli.wit",
        include_str!("../../../wit/deps/cli/cli.wit"),
    ),
    (
        "deps/clocks/clocks.wit",
        include_str!("../../../wit/deps/clocks/clocks.wit"),
    ),
    (
        "deps/filesystem/filesystem.wit",
        include_str!("../../../wit/deps/filesystem/filesystem.wit"),
    ),
    (
        "deps/io/io.wit",
        include_str!("../../../wit/deps/io/io.wit"),
    ),
    (
        "deps/random/random.wit",
        include_str!("../../../wit/deps/random/random.wit"),
    ),
    (
        "deps/sockets/sockets.wit",
        include_str!("../../../wit/deps/sockets/sockets.wit"),
    ),
];

/// One file of a project: where it goes, its template, executable or not.
struct File {
    path: String,
    template: &'static str,
    exec: bool,
    /// A template (else copied as it is: the WIT).
    render: bool,
}

fn file(path: impl Into<String>, template: &'static str) -> File {
    File {
        path: path.into(),
        template,
        exec: false,
        render: true,
    }
}

fn script(path: &str, template: &'static str) -> File {
    File {
        exec: true,
        ..file(path, template)
    }
}

macro_rules! t {
    ($p:literal) => {
        include_str!(concat!("templates/", $p))
    };
}

/// The files of a project for `lang` and `kind` (the WIT comes on top).
fn files(name: &str, lang: Lang, kind: Kind) -> Vec<File> {
    let source = kind == Kind::Source;
    let mut v = vec![
        file("README.md", t!("common/README.md")),
        file(
            format!("{name}.json"),
            if source {
                t!("common/manifest_source.json")
            } else {
                t!("common/manifest_sink.json")
            },
        ),
    ];
    if source {
        v.push(file(
            format!("{name}.yaml"),
            t!("common/confkeys_source.yaml"),
        ));
    }
    match lang {
        Lang::Rust => {
            v.push(file("Cargo.toml", t!("rust/Cargo.toml")));
            v.push(script("build.sh", t!("rust/build.sh")));
            v.push(file(".gitignore", t!("rust/gitignore")));
            v.push(file(
                "src/lib.rs",
                if source {
                    t!("rust/lib_source.rs")
                } else {
                    t!("rust/lib_sink.rs")
                },
            ));
        }
        Lang::Python => {
            v.push(script("build.sh", t!("python/build.sh")));
            v.push(file(
                "src/app.py",
                if source {
                    t!("python/app_source.py")
                } else {
                    t!("python/app_sink.py")
                },
            ));
        }
        Lang::Js => {
            v.push(script("build.sh", t!("js/build.sh")));
            v.push(file("build.mjs", t!("js/build.mjs")));
            v.push(file("package.json", t!("js/package.json")));
            v.push(file("wit/world.wit", t!("js/world.wit")));
            v.push(file(
                "src/plugin.js",
                if source {
                    t!("js/plugin_source.js")
                } else {
                    t!("js/plugin_sink.js")
                },
            ));
        }
        Lang::C => {
            v.push(script("build.sh", t!("c/build.sh")));
            v.push(file("src/props.h", t!("c/props.h")));
            v.push(file(
                format!("src/{name}.c"),
                if source {
                    t!("c/plugin_source.c")
                } else {
                    t!("c/plugin_sink.c")
                },
            ));
        }
    }
    // componentize-js wants its own world at the root and every package it
    // uses under deps/; the other tools take Oort's package as the root.
    for (path, text) in WIT {
        let at = match (lang, path.strip_prefix("deps/")) {
            (Lang::Js, None) => format!("wit/deps/oort-connector/{path}"),
            _ => format!("wit/{path}"),
        };
        v.push(File {
            path: at,
            template: text,
            exec: false,
            render: false,
        });
    }
    v
}

/// What the templates see.
fn values(name: &str, lang: Lang, kind: Kind) -> serde_json::Value {
    let (lang_id, title, needs) = match lang {
        Lang::Rust => (
            "rust",
            "Rust",
            "Needs `cargo` (rustup adds the `wasm32-wasip2` target on the first build).",
        ),
        Lang::Python => (
            "python",
            "Python",
            "Needs `componentize-py` on your `PATH` (`pip install componentize-py`), or \
             `COMPONENTIZE_PY=/path/to/componentize-py`.",
        ),
        Lang::Js => (
            "js",
            "JavaScript",
            "Needs Node.js >= 18 and npm: the first build runs `npm install` (componentize-js).",
        ),
        Lang::C => (
            "c",
            "C",
            "Needs `clang` with the wasm32-wasi target and wasi-libc (Debian: `clang-19 lld-19 \
             wasi-libc libclang-rt-19-dev-wasm32`; or a WASI SDK through `CC`), and \
             `wit-bindgen` and `wasm-component-ld` on your `PATH` (`cargo install \
             wit-bindgen-cli wasm-component-ld`).",
        ),
    };
    let source = kind == Kind::Source;
    serde_json::json!({
        "name": name,
        "kind": if source { "source" } else { "sink" },
        "source": source,
        "world": if source { "source-plugin" } else { "sink-plugin" },
        "world_c": if source { "source_plugin" } else { "sink_plugin" },
        "crate_file": name.replace('-', "_"),
        "npm_name": name.to_ascii_lowercase(),
        "lang": lang_id,
        "js": lang == Lang::Js,
        "lang_title": title,
        "build_needs": needs,
    })
}

pub fn run(a: NewArgs) -> anyhow::Result<()> {
    oort_wasm::manager::check_name(&a.name).map_err(|e| anyhow::anyhow!("{e}"))?;
    let dir = a.dir.clone().unwrap_or_else(|| PathBuf::from(&a.name));
    check_empty(&dir)?;
    let written = write_project(&dir, &a.name, a.lang, a.kind)?;
    let kind = match a.kind {
        Kind::Source => "source",
        Kind::Sink => "sink",
    };
    println!(
        "wrote the {kind} plugin project {} ({written} files)",
        dir.display()
    );
    println!(
        "next: cd {} && ./build.sh   (then see README.md to install it)",
        dir.display()
    );
    Ok(())
}

fn check_empty(dir: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut rd) => {
            if rd.next().is_some() {
                bail!(
                    "{} exists and is not empty: choose another --dir",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("{}", dir.display())),
    }
}

/// Renders and writes every file; returns how many.
fn write_project(dir: &Path, name: &str, lang: Lang, kind: Kind) -> anyhow::Result<usize> {
    let data = oort_core::Value::from_json(&values(name, lang, kind));
    let list = files(name, lang, kind);
    for f in &list {
        let text = if f.render {
            let t = Template::compile(f.template)
                .map_err(|e| anyhow::anyhow!("template {}: {e}", f.path))?;
            t.render(&data)
                .map_err(|e| anyhow::anyhow!("template {}: {e}", f.path))?
        } else {
            f.template.to_string()
        };
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("{}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("{}", path.display()))?;
        if f.exec {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("{}", path.display()))?;
        }
    }
    Ok(list.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_project_renders_with_its_name_and_no_template_left() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js, Lang::C] {
            for kind in [Kind::Source, Kind::Sink] {
                let dir = tempfile::tempdir().unwrap();
                let n = write_project(dir.path(), "my-plugin_1", lang, kind).unwrap();
                assert!(n >= 12, "{n} files");
                let manifest: serde_json::Value = serde_json::from_slice(
                    &std::fs::read(dir.path().join("my-plugin_1.json")).unwrap(),
                )
                .unwrap();
                assert_eq!(manifest["name"], "my-plugin_1");
                let build = std::fs::read_to_string(dir.path().join("build.sh")).unwrap();
                assert!(build.contains("plugin check my-plugin_1.wasm --zip my-plugin_1.zip"));
                for f in files("my-plugin_1", lang, kind) {
                    if !f.render {
                        continue;
                    }
                    let text = std::fs::read_to_string(dir.path().join(&f.path)).unwrap();
                    assert!(!text.contains("{{"), "{} keeps a template action", f.path);
                    assert!(
                        !text.contains("<no value>"),
                        "{} has a missing value",
                        f.path
                    );
                }
            }
        }
    }

    #[test]
    fn the_wit_is_the_published_contract() {
        let dir = tempfile::tempdir().unwrap();
        write_project(dir.path(), "w", Lang::Rust, Kind::Sink).unwrap();
        let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/0.2.0");
        for (path, _) in WIT {
            assert_eq!(
                std::fs::read(dir.path().join("wit").join(path)).unwrap(),
                std::fs::read(here.join(path)).unwrap(),
                "{path}"
            );
        }
        let types = std::fs::read_to_string(dir.path().join("wit/types.wit")).unwrap();
        assert!(types.starts_with("package oort:connector@0.2.0;\n"));
        let js = tempfile::tempdir().unwrap();
        write_project(js.path(), "w", Lang::Js, Kind::Source).unwrap();
        assert!(js
            .path()
            .join("wit/deps/oort-connector/types.wit")
            .is_file());
        assert!(js.path().join("wit/deps/io/io.wit").is_file());
        let world = std::fs::read_to_string(js.path().join("wit/world.wit")).unwrap();
        assert!(world.contains("include oort:connector/source-plugin@0.2.0;\n  import wasi:clocks"));
    }

    /// fetch is off in a JS project, and its README says the two changes
    /// that turn it on (tests/tests/plugin_js_http.rs makes them).
    #[test]
    fn js_projects_say_how_to_turn_fetch_on() {
        for kind in [Kind::Source, Kind::Sink] {
            let dir = tempfile::tempdir().unwrap();
            write_project(dir.path(), "w", Lang::Js, kind).unwrap();
            let build = std::fs::read_to_string(dir.path().join("build.mjs")).unwrap();
            assert!(build.contains("const FETCH = false;"), "{build}");
            assert!(build.contains("FETCH ? ['fetch-event'] : ['http', 'fetch-event']"));
            let readme = std::fs::read_to_string(dir.path().join("README.md")).unwrap();
            assert!(
                readme.contains("## Sending HTTP requests (fetch)"),
                "{readme}"
            );
            assert!(
                readme.contains("`build.mjs`: `const FETCH = true;`"),
                "{readme}"
            );
            assert!(
                readme.contains("`w.json`: list where the requests go"),
                "{readme}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        write_project(dir.path(), "w", Lang::Rust, Kind::Sink).unwrap();
        let readme = std::fs::read_to_string(dir.path().join("README.md")).unwrap();
        assert!(!readme.contains("Sending HTTP requests"), "{readme}");
    }

    #[test]
    fn a_non_empty_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x"), "").unwrap();
        let e = check_empty(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not empty"), "{e}");
        assert!(check_empty(&dir.path().join("new")).is_ok());
    }
}
