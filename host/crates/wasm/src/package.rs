//! Plugin packages: fetching from `file://`/`http://`/`https://` with size
//! and time caps, sha256 checks, and safe unpacking of a zip (no zip slip,
//! absolute paths or symlinks; caps on entries and unpacked size) or a bare
//! `.wasm`. Every error is a user-facing message (an HTTP 400).

use std::io::Read;
use std::path::{Component as PathComponent, Path};

use sha2::{Digest, Sha256};

use crate::config::WasmConfig;

/// Magic and version of a component binary.
const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
const CORE_MODULE_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Fetches a package within the operator's outbound policy. Caps:
/// `max_download_bytes`, `download_timeout`.
pub async fn fetch(uri: &str, cfg: &WasmConfig) -> Result<Vec<u8>, String> {
    crate::outbound::fetch(
        &cfg.outbound,
        uri,
        cfg.max_download_bytes,
        cfg.download_timeout,
    )
    .await
}

/// What a package holds after unpacking.
#[derive(Debug, Default)]
pub struct Unpacked {
    pub wasm: Vec<u8>,
    pub manifest: Option<Vec<u8>>,
    pub yaml: Option<Vec<u8>>,
}

/// Recognises a zip or a bare `.wasm` and returns its parts for plugin `name`.
pub fn unpack(bytes: &[u8], name: &str, cfg: &WasmConfig) -> Result<Unpacked, String> {
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        unpack_zip(bytes, name, cfg)
    } else if bytes.starts_with(b"\0asm") {
        check_component(bytes)?;
        Ok(Unpacked {
            wasm: bytes.to_vec(),
            manifest: None,
            yaml: None,
        })
    } else {
        Err("the file is neither a zip package nor a WebAssembly component".into())
    }
}

/// Refuses core modules and anything that is not a component.
pub fn check_component(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() >= 8 && bytes[..8] == COMPONENT_HEADER {
        return Ok(());
    }
    if bytes.len() >= 8 && bytes[..8] == CORE_MODULE_HEADER {
        return Err(
            "the .wasm is a core WebAssembly module, not a component: build for wasm32-wasip2 \
                    (or wrap it with `wasm-tools component new`)"
                .into(),
        );
    }
    Err("the .wasm is not a WebAssembly component (bad header)".into())
}

fn unpack_zip(bytes: &[u8], name: &str, cfg: &WasmConfig) -> Result<Unpacked, String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("invalid zip package: {e}"))?;
    if zip.len() > cfg.max_zip_entries {
        return Err(format!(
            "zip package has {} entries (max {}): refused as a possible zip bomb",
            zip.len(),
            cfg.max_zip_entries
        ));
    }
    let mut out = Unpacked::default();
    let mut wasm_found = false;
    let mut other_wasm: Vec<String> = Vec::new();
    let mut budget = cfg.max_unpacked_bytes;
    let want_wasm = format!("{name}.wasm");
    let want_json = format!("{name}.json");
    let want_yaml = format!("{name}.yaml");
    for i in 0..zip.len() {
        let mut f = zip
            .by_index(i)
            .map_err(|e| format!("invalid zip package: {e}"))?;
        let entry = f.name().to_string();
        if entry.starts_with('/')
            || entry.starts_with('\\')
            || entry.as_bytes().get(1) == Some(&b':')
        {
            return Err(format!("zip entry {entry:?} has an absolute path"));
        }
        let rel = Path::new(&entry);
        if entry.contains('\\')
            || rel.components().any(|c| {
                matches!(
                    c,
                    PathComponent::ParentDir | PathComponent::RootDir | PathComponent::Prefix(_)
                )
            })
            || f.enclosed_name().is_none()
        {
            return Err(format!(
                "zip entry {entry:?} escapes the package directory (zip slip)"
            ));
        }
        if f.is_symlink() {
            return Err(format!(
                "zip entry {entry:?} is a symbolic link; links are not allowed"
            ));
        }
        if f.is_dir() {
            continue;
        }
        if f.size() > budget {
            return Err(format!(
                "zip package unpacks to more than {} bytes: refused as a possible zip bomb",
                cfg.max_unpacked_bytes
            ));
        }
        // Read with a hard cap: the declared size may lie.
        let mut data = Vec::new();
        (&mut f)
            .take(budget + 1)
            .read_to_end(&mut data)
            .map_err(|e| format!("zip entry {entry:?} cannot be read: {e}"))?;
        if data.len() as u64 > budget {
            return Err(format!(
                "zip package unpacks to more than {} bytes: refused as a possible zip bomb",
                cfg.max_unpacked_bytes
            ));
        }
        budget -= data.len() as u64;
        if entry == want_wasm {
            out.wasm = data;
            wasm_found = true;
        } else if entry == want_json {
            out.manifest = Some(data);
        } else if entry == want_yaml {
            out.yaml = Some(data);
        } else if entry.ends_with(".wasm") {
            other_wasm.push(entry);
        }
    }
    if !wasm_found {
        if other_wasm.is_empty() {
            return Err(format!("zip package has no {want_wasm} at its root"));
        }
        return Err(format!(
            "name mismatch: zip package holds {} but the plugin is named {name:?} (expected {want_wasm})",
            other_wasm.join(", ")
        ));
    }
    if out.manifest.is_none() {
        return Err(format!(
            "zip package has no manifest {want_json} at its root"
        ));
    }
    check_component(&out.wasm)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (n, d) in entries {
            w.start_file(*n, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(d).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    const COMPONENT: &[u8] = &[0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

    #[test]
    fn accepts_a_well_formed_zip() {
        let z = zip_of(&[
            ("p.wasm", COMPONENT),
            ("p.json", b"{}"),
            ("p.yaml", b"a: 1"),
        ]);
        let u = unpack(&z, "p", &WasmConfig::default()).unwrap();
        assert_eq!(u.wasm, COMPONENT);
        assert_eq!(u.manifest.as_deref(), Some(&b"{}"[..]));
        assert_eq!(u.yaml.as_deref(), Some(&b"a: 1"[..]));
    }

    #[test]
    fn refuses_bad_zips_with_a_reason() {
        let cfg = WasmConfig::default();
        let e = unpack(&zip_of(&[("../p.wasm", COMPONENT)]), "p", &cfg).unwrap_err();
        assert!(e.contains("zip slip"), "{e}");
        let e = unpack(&zip_of(&[("/etc/p.wasm", COMPONENT)]), "p", &cfg).unwrap_err();
        assert!(e.contains("absolute"), "{e}");
        let e = unpack(
            &zip_of(&[("q.wasm", COMPONENT), ("q.json", b"{}")]),
            "p",
            &cfg,
        )
        .unwrap_err();
        assert!(e.contains("name mismatch"), "{e}");
        let e = unpack(&zip_of(&[("p.wasm", COMPONENT)]), "p", &cfg).unwrap_err();
        assert!(e.contains("manifest"), "{e}");
        let core = &[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00][..];
        let e = unpack(&zip_of(&[("p.wasm", core), ("p.json", b"{}")]), "p", &cfg).unwrap_err();
        assert!(e.contains("core WebAssembly module"), "{e}");
        let small = WasmConfig {
            max_unpacked_bytes: 1000,
            ..WasmConfig::default()
        };
        let big = vec![0u8; 5000];
        let e = unpack(&zip_of(&[("p.wasm", &big)]), "p", &small).unwrap_err();
        assert!(e.contains("zip bomb"), "{e}");
        let few = WasmConfig {
            max_zip_entries: 2,
            ..WasmConfig::default()
        };
        let e = unpack(&zip_of(&[("a", b""), ("b", b""), ("c", b"")]), "p", &few).unwrap_err();
        assert!(e.contains("entries"), "{e}");
        let e = unpack(b"hello", "p", &cfg).unwrap_err();
        assert!(e.contains("neither"), "{e}");
    }
}
