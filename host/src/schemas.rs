//! The schema registry (eKuiper's `/schemas/protobuf`): `.proto` files
//! under `<data-dir>/schemas/protobuf/<name>.proto`, compiled when
//! registered (a schema that does not compile is refused) and when first
//! used after a start. `SCHEMAID="name.Message"` (streams) and
//! `schemaId` (sinks) pick a message type of one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oort_core::codec::protobuf::ProtoSchema;
use parking_lot::Mutex;
use prost_reflect::MessageDescriptor;
use serde_json::{json, Value as Json};

use crate::error::{AppError, AppResult};

/// Largest schema text.
pub const MAX_SCHEMA: usize = 1024 * 1024;

/// A directory for a schema being checked, removed when dropped. Its name
/// starts with a dot: never listed as a schema.
struct Staging(PathBuf);

impl Staging {
    fn new(dir: &Path) -> std::io::Result<Staging> {
        let p = dir.join(format!(".staging-{:016x}", rand::random::<u64>()));
        std::fs::create_dir(&p)?;
        Ok(Staging(p))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The registry.
pub struct Schemas {
    dir: PathBuf,
    compiled: Mutex<HashMap<String, ProtoSchema>>,
}

fn check_name(name: &str) -> AppResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(AppError::bad(format!(
            "invalid schema name {name:?}: letters, digits, _ and - only"
        )))
    }
}

impl Schemas {
    /// The registry of `data_dir` (creates its directory).
    pub fn open(data_dir: &Path) -> std::io::Result<Schemas> {
        let dir = data_dir.join("schemas").join("protobuf");
        std::fs::create_dir_all(&dir)?;
        Ok(Schemas {
            dir,
            compiled: Mutex::new(HashMap::new()),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.proto"))
    }

    /// Registers (or, with `replace`, replaces) schema `name`: compiled
    /// first, stored only when it compiles.
    pub fn put(&self, name: &str, content: &str, replace: bool) -> AppResult<()> {
        check_name(name)?;
        if content.len() > MAX_SCHEMA {
            return Err(AppError::bad(format!(
                "schema {name} is over the {MAX_SCHEMA}-byte limit"
            )));
        }
        let exists = self.path(name).exists();
        if exists && !replace {
            return Err(AppError::bad(format!("schema {name} already exists")));
        }
        if !exists && replace {
            return Err(AppError::not_found(format!("schema {name} is not found")));
        }
        // Compiled in a staging directory that sees the other schemas (imports).
        let staging = Staging::new(&self.dir)
            .map_err(|e| AppError::Internal(format!("schema staging: {e}")))?;
        let file = format!("{name}.proto");
        std::fs::write(staging.path().join(&file), content)
            .map_err(|e| AppError::Internal(format!("schema staging: {e}")))?;
        let compiled = protox::compile([file.as_str()], [staging.path(), self.dir.as_path()])
            .map_err(|e| AppError::bad(format!("schema {name} does not compile: {e}")))?;
        let pool = prost_reflect::DescriptorPool::from_file_descriptor_set(compiled)
            .map_err(|e| AppError::bad(format!("schema {name}: {e}")))?;
        if pool.all_messages().next().is_none() {
            return Err(AppError::bad(format!("schema {name} declares no message")));
        }
        std::fs::rename(staging.path().join(&file), self.path(name))
            .map_err(|e| AppError::Internal(format!("storing schema {name}: {e}")))?;
        self.compiled.lock().remove(name);
        Ok(())
    }

    pub fn list(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                n.strip_suffix(".proto").map(str::to_string)
            })
            .collect();
        v.sort();
        v
    }

    /// eKuiper's description: `{type, name, content, file}`.
    pub fn describe(&self, name: &str) -> AppResult<Json> {
        check_name(name)?;
        let p = self.path(name);
        let content = std::fs::read_to_string(&p)
            .map_err(|_| AppError::not_found(format!("schema {name} is not found")))?;
        Ok(
            json!({"type": "protobuf", "name": name, "content": content, "file": p.display().to_string()}),
        )
    }

    pub fn delete(&self, name: &str) -> AppResult<()> {
        check_name(name)?;
        std::fs::remove_file(self.path(name))
            .map_err(|_| AppError::not_found(format!("schema {name} is not found")))?;
        self.compiled.lock().remove(name);
        Ok(())
    }

    /// The message type of `schema_id` (`name.Message`; the message by its
    /// full or simple name).
    pub fn message(&self, schema_id: &str) -> Result<MessageDescriptor, String> {
        let (name, msg) = schema_id
            .trim()
            .split_once('.')
            .filter(|(a, b)| !a.is_empty() && !b.is_empty())
            .ok_or_else(|| format!("schema id {schema_id:?} is not schemaName.MessageName"))?;
        let schema = {
            let mut c = self.compiled.lock();
            match c.get(name) {
                Some(s) => s.clone(),
                None => {
                    if !self.path(name).exists() {
                        return Err(format!(
                            "schema {name} is not found (register it with POST /schemas/protobuf)"
                        ));
                    }
                    let s = ProtoSchema::compile(&self.dir, &format!("{name}.proto"))
                        .map_err(|e| format!("schema {name} does not compile: {e}"))?;
                    c.insert(name.to_string(), s.clone());
                    s
                }
            }
        };
        schema.message(msg).ok_or_else(|| {
            format!(
                "schema {name} has no message {msg} (it has {})",
                schema.message_names().join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_use_replace_and_delete() {
        let d = tempfile::tempdir().unwrap();
        let s = Schemas::open(d.path()).unwrap();
        s.put(
            "demo",
            "syntax = \"proto3\"; message Book { string title = 1; }",
            false,
        )
        .unwrap();
        assert_eq!(s.list(), ["demo"]);
        assert_eq!(s.message("demo.Book").unwrap().name(), "Book");
        let e = s.message("demo.Nope").unwrap_err();
        assert!(e.contains("Book"), "{e}");
        assert!(s
            .message("demo")
            .unwrap_err()
            .contains("schemaName.MessageName"));
        assert!(s.message("other.Book").unwrap_err().contains("not found"));
        // Refused: a duplicate, bad text (nothing stored), a bad name.
        assert!(s.put("demo", "message A {}", false).is_err());
        let e = s.put("bad", "message {", false).unwrap_err().to_string();
        assert!(e.contains("does not compile"), "{e}");
        assert_eq!(s.list(), ["demo"]);
        assert!(s.put("../x", "message A {}", false).is_err());
        // Replaced: the new text is what is used.
        s.put(
            "demo",
            "syntax = \"proto3\"; message Page { int32 n = 1; }",
            true,
        )
        .unwrap();
        assert!(s.message("demo.Page").is_ok());
        assert!(s.message("demo.Book").is_err());
        assert_eq!(s.describe("demo").unwrap()["type"], "protobuf");
        // Imports of another registered schema compile.
        s.put(
            "withimport",
            "syntax = \"proto3\"; import \"demo.proto\"; message W { Page p = 1; }",
            false,
        )
        .unwrap();
        assert!(s.message("withimport.W").is_ok());
        s.delete("withimport").unwrap();
        assert!(s.delete("withimport").is_err());
    }
}
