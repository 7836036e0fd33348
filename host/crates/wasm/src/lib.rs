//! `oort-wasm`: the WebAssembly connector plugin host.
//!
//! Plugins are WASI 0.2 components targeting the `oort:connector@0.1.0`
//! worlds (`wit/` at the repository root). [`PluginManager`] installs them
//! (zip or bare `.wasm` from `file://`/`http(s)://`), precompiles them into a
//! cache keyed by sha256 and engine version, and registers a
//! `SourceFactory`/`SinkFactory` per plugin in the shared `Registry`.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod bindings;
pub mod config;
pub mod grants;
pub mod http;
pub mod isolation;
pub mod manager;
pub mod manifest;
pub mod outbound;
pub mod package;
pub mod plugin;
pub mod runtime;
pub mod sink;
pub mod slot;
pub mod source;
pub mod stats;
pub mod ticker;

pub use bindings::Contract;
pub use config::{Grants, Permissions, WasmConfig};
pub use manager::{
    CheckInput, CheckReport, InstallRequest, PluginError, PluginInfo, PluginManager,
};
pub use manifest::{Manifest, PluginKind};
pub use outbound::OutboundPolicy;
pub use source::DATASOURCE_KEY;
