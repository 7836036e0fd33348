//! `file` source ([`source`]) and sink ([`sink`]).

pub mod sink;
pub mod source;

pub use sink::{FileSink, FileSinkFactory};
pub use source::{FileSource, FileSourceFactory};
