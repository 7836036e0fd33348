//! `file` source ([`source`]) and sink ([`sink`]), both confined to the
//! directories the operator allows ([`FileAccess`]).

pub mod sink;
pub mod source;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use oort_core::paths::{AllowedDirs, PathError};
use oort_core::{ConnectorError, Props};

pub use sink::{FileSink, FileSinkFactory};
pub use source::{FileSource, FileSourceFactory};

use crate::util::DATA_DIR_PROP;

/// Where the `file` connectors may read and write: the data dir (the
/// `__data_dir` property the manager sets) and the operator's
/// `file.allowed_dirs`. Without either, every path is refused.
#[derive(Debug, Clone, Default)]
pub struct FileAccess {
    extra: Arc<Vec<PathBuf>>,
}

impl FileAccess {
    pub fn new(allowed_dirs: Vec<PathBuf>) -> Self {
        FileAccess {
            extra: Arc::new(allowed_dirs),
        }
    }

    /// The allowed directories for a connector created with `props`.
    pub(crate) fn allowed(&self, props: &Props) -> AllowedDirs {
        let data_dir = props
            .get(DATA_DIR_PROP)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        AllowedDirs::new(data_dir.iter().chain(self.extra.iter()))
    }
}

/// The real path of `path` (the value of property `prop`) or a config error
/// naming both.
pub(crate) fn confine(
    allowed: &AllowedDirs,
    prop: &str,
    path: &Path,
) -> Result<PathBuf, ConnectorError> {
    allowed.check(path).map_err(|e| {
        ConnectorError::Config(format!("file: property {prop}: {}", refusal(allowed, &e)))
    })
}

pub(crate) fn refusal(allowed: &AllowedDirs, e: &PathError) -> String {
    match e {
        PathError::NotAbsolute(p) => format!("path {p} is relative and there is no data dir"),
        PathError::Outside(p) => format!(
            "path {p} is outside the allowed directories ({}; add directories to file.allowed_dirs in the server config)",
            allowed
                .dirs()
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
