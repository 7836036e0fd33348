//! Any bytes as a plugin package (the body of a plugin install): the same
//! `package::unpack` the install path calls (zip slip, symlink, entry and
//! size caps), then what the install's `prepare` parses: the manifest
//! (`Manifest::parse`) and the `<name>.yaml` (as YAML). All in
//! memory: nothing is written to disk.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use oort_wasm::{package, Manifest, PluginKind, WasmConfig};

fn cfg() -> &'static WasmConfig {
    static C: OnceLock<WasmConfig> = OnceLock::new();
    C.get_or_init(WasmConfig::default)
}

fuzz_target!(|data: &[u8]| {
    let Ok(u) = package::unpack(data, "p", cfg()) else {
        return;
    };
    if let Some(m) = &u.manifest {
        for kind in [PluginKind::Source, PluginKind::Sink] {
            let _ = Manifest::parse(m, "p", kind);
        }
    }
    if let Some(y) = &u.yaml {
        let _ = serde_yaml_ng::from_slice::<serde_json::Value>(y);
    }
});
