//! Host-side bindings for every `oort:connector` contract this host serves,
//! generated from `wit/` at the repository root: 0.1.0 (`wit/`) and 0.2.0
//! (`wit/0.2.0/`). Within one version both worlds share the `types` and
//! `host` interfaces, so each sink world reuses its source world's types.
//! The rest of the crate speaks 0.1.0's records (`WitPluginInfo`,
//! `WitError`, `WitContext`); 0.2.0's identical records convert into them.

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

/// `oort:connector@0.2.0`: packed messages.
pub mod v2 {
    pub mod source_world {
        wasmtime::component::bindgen!({
            path: "../../../wit/0.2.0",
            world: "oort:connector/source-plugin@0.2.0",
            exports: { default: async },
        });
    }

    pub mod sink_world {
        wasmtime::component::bindgen!({
            path: "../../../wit/0.2.0",
            world: "oort:connector/sink-plugin@0.2.0",
            exports: { default: async },
            with: {
                "oort:connector/types": super::source_world::oort::connector::types,
                "oort:connector/host": super::source_world::oort::connector::host,
            },
        });
    }

    pub use source_world::oort::connector::host::Level;
    pub use source_world::oort::connector::types::{
        Context, Error, ErrorKind, MetaEntry, Packed, PluginInfo,
    };

    impl From<PluginInfo> for super::WitPluginInfo {
        fn from(i: PluginInfo) -> Self {
            super::WitPluginInfo {
                name: i.name,
                version: i.version,
                description: i.description,
                properties_schema: i.properties_schema,
                permissions: super::WitPermissions {
                    outbound: i.permissions.outbound,
                    dirs: i.permissions.dirs,
                    env: i.permissions.env,
                },
            }
        }
    }

    impl From<Error> for super::WitError {
        fn from(e: Error) -> Self {
            use super::WitErrorKind as K;
            super::WitError {
                kind: match e.kind {
                    ErrorKind::Config => K::Config,
                    ErrorKind::Unavailable => K::Unavailable,
                    ErrorKind::Unauthorized => K::Unauthorized,
                    ErrorKind::InvalidData => K::InvalidData,
                    ErrorKind::Internal => K::Internal,
                },
                message: e.message,
            }
        }
    }

    impl From<&super::WitContext> for Context {
        fn from(c: &super::WitContext) -> Self {
            Context {
                rule_id: c.rule_id.clone(),
                op_id: c.op_id.clone(),
                instance_index: c.instance_index,
            }
        }
    }

    impl From<Level> for super::Level {
        fn from(l: Level) -> Self {
            match l {
                Level::Trace => super::Level::Trace,
                Level::Debug => super::Level::Debug,
                Level::Info => super::Level::Info,
                Level::Warn => super::Level::Warn,
                Level::Error => super::Level::Error,
            }
        }
    }
}

pub use source_world::oort::connector::host::Level;
pub use source_world::oort::connector::types::{
    Context as WitContext, Error as WitError, ErrorKind as WitErrorKind, Message as WitMessage,
    Permissions as WitPermissions, PluginInfo as WitPluginInfo,
};

use crate::manifest::PluginKind;

/// A version of the `oort:connector` contract this host serves. The host
/// learns a component's from its export names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Contract {
    V0_1,
    V0_2,
}

impl Contract {
    /// Newest first.
    pub const ALL: [Contract; 2] = [Contract::V0_2, Contract::V0_1];
    /// What `oort plugin new` and the SDK build against.
    pub const LATEST: Contract = Contract::V0_2;

    pub fn version(self) -> &'static str {
        match self {
            Contract::V0_1 => "0.1.0",
            Contract::V0_2 => "0.2.0",
        }
    }

    /// `oort:connector@<version>`.
    pub fn package(self) -> &'static str {
        match self {
            Contract::V0_1 => "oort:connector@0.1.0",
            Contract::V0_2 => "oort:connector@0.2.0",
        }
    }

    /// The interface a plugin of `kind` exports under this contract.
    pub fn export(self, kind: PluginKind) -> &'static str {
        match (self, kind) {
            (Contract::V0_1, PluginKind::Source) => "oort:connector/source@0.1.0",
            (Contract::V0_1, PluginKind::Sink) => "oort:connector/sink@0.1.0",
            (Contract::V0_2, PluginKind::Source) => "oort:connector/source@0.2.0",
            (Contract::V0_2, PluginKind::Sink) => "oort:connector/sink@0.2.0",
        }
    }

    /// The world a plugin of `kind` is built against under this contract.
    pub fn world(self, kind: PluginKind) -> &'static str {
        match (self, kind) {
            (Contract::V0_1, PluginKind::Source) => "oort:connector/source-plugin@0.1.0",
            (Contract::V0_1, PluginKind::Sink) => "oort:connector/sink-plugin@0.1.0",
            (Contract::V0_2, PluginKind::Source) => "oort:connector/source-plugin@0.2.0",
            (Contract::V0_2, PluginKind::Sink) => "oort:connector/sink-plugin@0.2.0",
        }
    }

    /// The kind and contract of a component with these export names.
    pub fn detect<S: AsRef<str>>(exports: &[S]) -> Option<(PluginKind, Contract)> {
        for c in Contract::ALL {
            for k in [PluginKind::Source, PluginKind::Sink] {
                if exports.iter().any(|e| e.as_ref() == c.export(k)) {
                    return Some((k, c));
                }
            }
        }
        None
    }

    /// The exports a plugin of `kind` may have, for error messages:
    /// "oort:connector/sink@0.2.0 or oort:connector/sink@0.1.0".
    pub fn accepted_exports(kind: PluginKind) -> String {
        Contract::ALL
            .iter()
            .map(|c| c.export(kind))
            .collect::<Vec<_>>()
            .join(" or ")
    }

    /// Every package this host serves: "oort:connector@0.2.0, oort:connector@0.1.0".
    pub fn served() -> String {
        Contract::ALL
            .iter()
            .map(|c| c.package())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::fmt::Display for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.package())
    }
}
