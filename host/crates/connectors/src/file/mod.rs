//! `file` source ([`source`]) and sink ([`sink`]), both confined to the
//! directories the operator allows ([`allowed`]).

mod info;
pub mod sink;
pub mod source;

use std::path::{Path, PathBuf};

use oort_core::paths::{AllowedDirs, PathError};
use oort_core::{ConnectorEnv, ConnectorError};

pub use sink::{FileSink, FileSinkFactory};
pub use source::{FileSource, FileSourceFactory};

/// Where the `file` connectors may read and write: the data dir and the
/// operator's `file.allowed_dirs` (both from the connector context).
/// Without either, every path is refused.
pub(crate) fn allowed(env: &ConnectorEnv) -> AllowedDirs {
    AllowedDirs::new(
        env.data_dir()
            .into_iter()
            .chain(env.allowed_dirs().iter().map(PathBuf::as_path)),
    )
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
