//! Embeds the `oort:connector` WIT (from `../wit`) into the SDK's export
//! macros, so plugin crates generate bindings without knowing where the WIT lives.

use std::path::PathBuf;

/// The WIT text of one contract version, as one inline document.
fn wit_text(dir: &std::path::Path) -> String {
    let mut text = String::new();
    for file in ["types.wit", "worlds.wit"] {
        let path = dir.join(file);
        println!("cargo:rerun-if-changed={}", path.display());
        let body = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        for line in body.lines() {
            // One package line is enough for the inline text.
            if line.starts_with("package ") && !text.is_empty() {
                continue;
            }
            text.push_str(line);
            text.push('\n');
        }
    }
    assert!(
        !text.contains("\"##"),
        "WIT text must not contain the raw-string terminator"
    );
    text
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let wit_dir = manifest.join("..").join("wit");
    let v1 = wit_text(&wit_dir);
    let v2 = wit_text(&wit_dir.join("0.2.0"));
    let mut out = String::new();
    out.push_str("/// The WIT text of `oort:connector@0.2.0` this SDK was built with.\n");
    out.push_str(&format!("pub const WIT: &str = r##\"{v2}\"##;\n\n"));
    out.push_str(
        "/// The WIT text of `oort:connector@0.1.0` (`export_source_v1!`, `export_sink_v1!`).\n",
    );
    out.push_str(&format!("pub const WIT_0_1: &str = r##\"{v1}\"##;\n\n"));
    for (mac, world, text) in [
        ("__oort_generate_source", "source-plugin", &v2),
        ("__oort_generate_sink", "sink-plugin", &v2),
        ("__oort_generate_source_v1", "source-plugin", &v1),
        ("__oort_generate_sink_v1", "sink-plugin", &v1),
    ] {
        out.push_str(&format!(
            "#[doc(hidden)]\n#[macro_export]\nmacro_rules! {mac} {{\n    () => {{\n        \
             $crate::__wit_bindgen::generate!({{\n            inline: r##\"{text}\"##,\n            \
             world: \"{world}\",\n            runtime_path: \"oort_plugin_sdk::__wit_bindgen::rt\",\n        \
             }});\n    }};\n}}\n\n"
        ));
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    std::fs::write(out_dir.join("wit_macros.rs"), out)
        .unwrap_or_else(|e| panic!("cannot write macros: {e}"));
}
