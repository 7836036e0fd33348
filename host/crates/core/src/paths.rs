//! Confinement of file paths to the directories the operator allows (the data
//! dir and the lists in the server config). Used by the `file` connectors and
//! by `file://` URIs (plugin packages, import documents).
//!
//! A path is accepted when, after resolving `.` and `..` as text, it lies
//! under an allowed directory, and again after resolving symlinks of its
//! deepest existing ancestor (so a sink path that does not exist yet is
//! checked through its parent). The textual check comes first, so a path
//! outside every allowed directory is refused without touching the file
//! system (the answer does not tell whether it exists).

use std::path::{Component, Path, PathBuf};

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path {0} is not absolute")]
    NotAbsolute(String),
    #[error("path {0} is outside the allowed directories")]
    Outside(String),
}

/// A set of allowed directories.
#[derive(Debug, Clone, Default)]
pub struct AllowedDirs {
    /// Each directory as given (made textually normal) and, when it exists,
    /// canonicalised too.
    lexical: Vec<PathBuf>,
    canonical: Vec<PathBuf>,
}

impl AllowedDirs {
    /// Relative entries are ignored (an allowed directory must be absolute).
    pub fn new<I, P>(dirs: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<Path>,
    {
        let mut out = AllowedDirs::default();
        for d in dirs {
            let Some(n) = normalize(d.as_ref()) else {
                continue;
            };
            let c = std::fs::canonicalize(&n).unwrap_or_else(|_| n.clone());
            out.lexical.push(n);
            out.canonical.push(c);
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.lexical.is_empty()
    }

    /// The directories as given, for messages.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.lexical
    }

    /// The real path of `path` if it is inside an allowed directory.
    pub fn check(&self, path: &Path) -> Result<PathBuf, PathError> {
        let shown = || path.display().to_string();
        let n = normalize(path).ok_or_else(|| PathError::NotAbsolute(shown()))?;
        let inside_text = self
            .lexical
            .iter()
            .chain(&self.canonical)
            .any(|d| n.starts_with(d));
        if !inside_text {
            return Err(PathError::Outside(shown()));
        }
        match resolve_existing(&n, 0) {
            Some(real) if self.canonical.iter().any(|d| real.starts_with(d)) => Ok(real),
            _ => Err(PathError::Outside(shown())),
        }
    }
}

/// Resolves `.` and `..` as text; `None` for a relative path.
pub fn normalize(path: &Path) -> Option<PathBuf> {
    if !path.is_absolute() {
        return None;
    }
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Prefix(_) | Component::RootDir => out.push(c.as_os_str()),
            Component::CurDir => {}
            Component::ParentDir => {
                // `..` at the root stays at the root, as the kernel does.
                out.pop();
            }
            Component::Normal(s) => out.push(s),
        }
    }
    Some(out)
}

/// Canonicalises the deepest existing ancestor of a normal absolute path and
/// appends the rest (which has no `..` left). A dangling symlink on the way
/// is followed to where it points (creating a file through it would land
/// there). `None` for a symlink loop.
fn resolve_existing(n: &Path, depth: u32) -> Option<PathBuf> {
    if depth > 40 {
        return None;
    }
    let mut head = n.to_path_buf();
    let mut tail: Vec<std::ffi::OsString> = Vec::new();
    loop {
        let rebuild = |mut out: PathBuf, tail: &[std::ffi::OsString]| {
            for t in tail.iter().rev() {
                out.push(t);
            }
            out
        };
        if let Ok(real) = std::fs::canonicalize(&head) {
            return Some(rebuild(real, &tail));
        }
        if let Ok(target) = std::fs::read_link(&head) {
            let parent = head.parent().unwrap_or(Path::new("/"));
            let next = normalize(&parent.join(target))?;
            return resolve_existing(&rebuild(next, &tail), depth + 1);
        }
        match (head.file_name().map(|s| s.to_os_string()), head.parent()) {
            (Some(name), Some(parent)) => {
                tail.push(name);
                head = parent.to_path_buf();
            }
            _ => return Some(n.to_path_buf()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_dots() {
        assert_eq!(
            normalize(Path::new("/srv/data/../../etc/./x")),
            Some(PathBuf::from("/etc/x"))
        );
        assert_eq!(normalize(Path::new("/..")), Some(PathBuf::from("/")));
        assert_eq!(normalize(Path::new("rel")), None);
    }

    #[test]
    fn confines_text_and_symlinks() {
        let root = tempfile::tempdir().unwrap();
        let allowed = root.path().join("data");
        let outside = root.path().join("outside");
        std::fs::create_dir_all(allowed.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let a = AllowedDirs::new([&allowed]);

        // Inside, existing or not yet.
        assert!(a.check(&allowed.join("sub/f.txt")).is_ok());
        assert!(a.check(&allowed.join("new/dir/f.txt")).is_ok());
        // `..` escapes.
        assert_eq!(
            a.check(&allowed.join("../outside/f")),
            Err(PathError::Outside(
                allowed.join("../outside/f").display().to_string()
            ))
        );
        assert!(a.check(Path::new("/etc/shadow")).is_err());
        // A sibling whose name starts with the allowed one.
        assert!(a.check(&root.path().join("data2/x")).is_err());
        // Relative paths are refused (callers resolve them first).
        assert!(matches!(
            a.check(Path::new("data/x")),
            Err(PathError::NotAbsolute(_))
        ));

        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&outside, allowed.join("link")).unwrap();
            assert!(a.check(&allowed.join("link/f.txt")).is_err());
            assert!(a.check(&allowed.join("link/deeper/f.txt")).is_err());
            // A dangling link: creating the file would create it outside.
            std::os::unix::fs::symlink(outside.join("file"), allowed.join("flink")).unwrap();
            assert!(a.check(&allowed.join("flink")).is_err());
            // A dangling link that stays inside is fine; a loop is refused.
            std::os::unix::fs::symlink(allowed.join("sub/new"), allowed.join("ilink")).unwrap();
            assert_eq!(
                a.check(&allowed.join("ilink")).unwrap(),
                std::fs::canonicalize(&allowed).unwrap().join("sub/new")
            );
            std::os::unix::fs::symlink(allowed.join("loop"), allowed.join("loop")).unwrap();
            assert!(a.check(&allowed.join("loop/x")).is_err());
        }
    }

    #[test]
    fn empty_set_allows_nothing() {
        assert!(AllowedDirs::default().check(Path::new("/tmp/x")).is_err());
        assert!(AllowedDirs::new(["relative"]).is_empty());
    }
}
