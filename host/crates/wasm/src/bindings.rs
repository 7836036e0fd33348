//! Host-side bindings for the `oort:connector@0.1.0` worlds, generated from
//! `wit/` at the repository root. Both worlds share the `types` and `host`
//! interfaces, so the sink world reuses the source world's generated types.

pub mod source_world {
    wasmtime::component::bindgen!({
        path: "../../../wit",
        world: "oort:connector/source-plugin@0.1.0",
        exports: { default: async },
    });
}

pub mod sink_world {
    wasmtime::component::bindgen!({
        path: "../../../wit",
        world: "oort:connector/sink-plugin@0.1.0",
        exports: { default: async },
        with: {
            "oort:connector/types": super::source_world::oort::connector::types,
            "oort:connector/host": super::source_world::oort::connector::host,
        },
    });
}

pub use source_world::oort::connector::host::Level;
pub use source_world::oort::connector::types::{
    Context as WitContext, Error as WitError, ErrorKind as WitErrorKind, Message as WitMessage,
    Permissions as WitPermissions, PluginInfo as WitPluginInfo,
};

/// Export names a component must have for each kind (the version is part of the name).
/// The contract (WIT package and version) this host serves.
pub const CONTRACT: &str = "oort:connector@0.1.0";
pub const SOURCE_EXPORT: &str = "oort:connector/source@0.1.0";
pub const SINK_EXPORT: &str = "oort:connector/sink@0.1.0";
pub const SOURCE_WORLD: &str = "oort:connector/source-plugin@0.1.0";
pub const SINK_WORLD: &str = "oort:connector/sink-plugin@0.1.0";
