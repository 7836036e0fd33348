//! Host settings for WebAssembly plugins (`WasmConfig`) and the operator's
//! capability grants (`Grants`, also the shape of a manifest's `permissions`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::isolation::StoreCaps;

/// Capabilities: what a manifest asks for (`permissions`) or what the
/// operator grants (`grants`). The plugin gets the intersection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Outbound network, `scheme://host:port` patterns: scheme `tcp`, `udp`
    /// or any name (treated as TCP) or `*`; host a literal, an IPv4 CIDR or
    /// `*`; port a number, `a..b` or `*`.
    #[serde(default)]
    pub outbound: Vec<String>,
    /// Host directories pre-opened read-only at the same guest path.
    #[serde(default)]
    pub dirs: Vec<String>,
    /// Environment variable names passed through from the server's environment.
    #[serde(default)]
    pub env: Vec<String>,
}

impl Grants {
    pub fn is_empty(&self) -> bool {
        self.outbound.is_empty() && self.dirs.is_empty() && self.env.is_empty()
    }

    /// Union (for merging server-config grants with install-request grants).
    pub fn union(&self, other: &Grants) -> Grants {
        fn merge(a: &[String], b: &[String]) -> Vec<String> {
            let mut v: Vec<String> = a.to_vec();
            for x in b {
                if !v.contains(x) {
                    v.push(x.clone());
                }
            }
            v
        }
        Grants {
            outbound: merge(&self.outbound, &other.outbound),
            dirs: merge(&self.dirs, &other.dirs),
            env: merge(&self.env, &other.env),
        }
    }
}

/// A manifest's permissions have the same shape as grants.
pub type Permissions = Grants;

/// Settings of the plugin host. `Default` gives values suited to an edge box.
#[derive(Debug, Clone)]
pub struct WasmConfig {
    /// Linear-memory cap per plugin instance.
    pub memory_limit_bytes: usize,
    /// Deadline of one `read`/`write`/`validate`/... call (on top of the read wait).
    pub call_timeout: Duration,
    /// Deadline of `open` (connecting may take longer than a call).
    pub open_timeout: Duration,
    /// How long a source's `read` may wait for its first message.
    pub read_wait: Duration,
    /// `max-messages` passed to a source's `read`.
    pub read_batch: u32,
    /// Largest package accepted from a URI.
    pub max_download_bytes: u64,
    /// Whole-download deadline for `http(s)://` packages.
    pub download_timeout: Duration,
    /// Zip-bomb caps.
    pub max_zip_entries: usize,
    pub max_unpacked_bytes: u64,
    /// Operator grants per plugin name (server configuration).
    pub grants: BTreeMap<String, Grants>,
    /// Use wasmtime's pooling allocator (off by default: small boards often lack the address space).
    pub pooling: bool,
    /// Components of at least this many bytes are installed with the fast
    /// baseline compiler (Winch) and recompiled with Cranelift in the
    /// background; `None` compiles everything with Cranelift up front.
    pub tiered_min_bytes: Option<usize>,
    /// Which URIs installs may fetch (the server's `outbound` settings).
    pub outbound: crate::outbound::OutboundPolicy,
    /// Table, memory and core-instance caps of each store, and the log rate
    /// of each plugin.
    pub caps: StoreCaps,
    /// Live instances of one plugin at a time (rules, streams, validations).
    pub max_instances_per_plugin: usize,
    /// Threads of the pool every guest call runs on (shared by all plugins
    /// of the process; the first manager opened decides).
    pub guest_threads: usize,
}

impl Default for WasmConfig {
    fn default() -> Self {
        WasmConfig {
            memory_limit_bytes: 64 << 20,
            call_timeout: Duration::from_secs(5),
            open_timeout: Duration::from_secs(30),
            read_wait: Duration::from_millis(200),
            read_batch: 64,
            max_download_bytes: 64 << 20,
            download_timeout: Duration::from_secs(60),
            max_zip_entries: 64,
            max_unpacked_bytes: 128 << 20,
            grants: BTreeMap::new(),
            pooling: false,
            tiered_min_bytes: Some(1 << 20),
            outbound: Default::default(),
            caps: StoreCaps::default(),
            max_instances_per_plugin: 256,
            guest_threads: crate::isolation::DEFAULT_GUEST_THREADS,
        }
    }
}
