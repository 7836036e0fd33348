//! `scripts/package.sh`: the tarball holds the binary, the built-in plugins
//! beside it, a configuration listing every key and a systemd unit; the
//! unpacked binary starts from that configuration and loads its plugins
//! from `bin/plugins/` (not from the checkout).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oort_tests::{free_port, oort_bin, workspace_root};

#[test]
fn the_package_unpacks_and_runs_with_its_plugins() {
    let root = workspace_root();
    let out = tempfile::tempdir().expect("tempdir");
    let st = Command::new("bash")
        .arg(root.join("scripts/package.sh"))
        .args(["--out"])
        .arg(out.path())
        .env("OORT_BIN", oort_bin())
        .env("OORT_PLUGINS_DIR", root.join("builtin-plugins/dist"))
        .status()
        .expect("run package.sh");
    assert!(st.success(), "package.sh failed");
    let tarball = std::fs::read_dir(out.path())
        .expect("out dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".tar.gz") && !n.ends_with("-debug.tar.gz")
        })
        .expect("a tarball");
    let unpack = tempfile::tempdir().expect("tempdir");
    let st = Command::new("tar")
        .arg("-C")
        .arg(unpack.path())
        .arg("-xzf")
        .arg(&tarball)
        .status()
        .expect("tar");
    assert!(st.success());
    let pkg = std::fs::read_dir(unpack.path())
        .expect("unpacked")
        .flatten()
        .next()
        .expect("one top directory")
        .path();
    for f in [
        "bin/oort",
        "bin/plugins/random.wasm",
        "bin/plugins/influx.wasm",
        "bin/plugins/sinks/nats.wasm",
        "etc/oort.yaml",
        "lib/systemd/system/oort.service",
        "README.md",
    ] {
        assert!(pkg.join(f).is_file(), "{f} missing");
    }
    assert!(
        !pkg.join("bin/plugins/.compiled").exists(),
        "build artifacts shipped"
    );
    // The debug info is moved out of the shipped binary, into its own tarball.
    let sections = Command::new("objdump")
        .arg("-h")
        .arg(pkg.join("bin/oort"))
        .output()
        .expect("objdump");
    let sections = String::from_utf8_lossy(&sections.stdout);
    assert!(
        sections.contains(".gnu_debuglink"),
        "no debug link:\n{sections}"
    );
    assert!(
        !sections.contains(".debug_info"),
        "debug info shipped:\n{sections}"
    );
    // Nor its symbol table (in oort.debug with the debug info).
    let symbols = Command::new("objdump")
        .arg("-t")
        .arg(pkg.join("bin/oort"))
        .output()
        .expect("objdump -t");
    let symbols = String::from_utf8_lossy(&symbols.stdout);
    assert!(
        symbols.lines().filter(|l| l.contains(" F .text")).count() == 0,
        "function symbols shipped: {} lines",
        symbols.lines().count()
    );
    assert!(
        std::fs::read_dir(out.path())
            .expect("out dir")
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with("-debug.tar.gz")),
        "no debug tarball"
    );
    let unit = std::fs::read_to_string(pkg.join("lib/systemd/system/oort.service")).expect("unit");
    let top = pkg
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        unit.contains(&format!(
            "ExecStart=/opt/{top}/bin/oort serve --config /opt/{top}/etc/oort.yaml"
        )),
        "{unit}"
    );
    let conf = std::fs::read_to_string(pkg.join("etc/oort.yaml")).expect("config");
    assert!(
        conf.starts_with("# oort.yaml") && conf.contains("data_dir: /var/lib/oort"),
        "{conf}"
    );

    // The unpacked binary runs from its configuration and finds its plugins.
    let data = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let log = data.path().join("log");
    let mut child = Command::new(pkg.join("bin/oort"))
        .args(["serve", "--config"])
        .arg(pkg.join("etc/oort.yaml"))
        .arg("--data-dir")
        .arg(data.path().join("d"))
        .args(["--rest-addr", &format!("127.0.0.1:{port}")])
        .env("OORT_LOG", "info")
        .stdout(Stdio::from(std::fs::File::create(&log).expect("log")))
        .stderr(Stdio::null())
        .spawn()
        .expect("start the packaged oort");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let sinks = loop {
        if let Ok(r) = reqwest::blocking::get(format!("{base}/plugins/sinks")) {
            if r.status().is_success() {
                break r.text().expect("body");
            }
        }
        assert!(
            Instant::now() < deadline,
            "the packaged server did not start:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    for p in ["influx", "tdengine", "discard", "nats"] {
        assert!(
            sinks.contains(&format!("\"{p}\"")),
            "{p} not loaded: {sinks}"
        );
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let plugins_dir = pkg.join("bin/plugins").display().to_string();
    assert!(
        text.lines()
            .any(|l| l.contains("built-in plugins loaded") && l.contains(&plugins_dir)),
        "plugins not loaded from beside the binary:\n{text}"
    );
}
