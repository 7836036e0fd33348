//! `oort-core`: the data model and the seams shared by the SQL engine, the
//! runtime, the native connectors and the WebAssembly plugin host.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod backoff;
pub mod codec;
pub mod compression;
pub mod connector;
pub mod duration;
pub mod env;
pub mod gofmt;
pub mod key;
pub mod lookup;
pub mod meta;
pub mod paths;
pub mod ratelog;
pub mod room;
pub mod schema;
pub mod shared_conn;
pub mod template;
pub mod value;
pub mod vecpool;

pub use connector::*;
pub use env::{Clock, ConnectorEnv};
pub use lookup::{LookupFactory, LookupSource};
pub use meta::Meta;
pub use ratelog::RateLimitedLog;
pub use room::BatchRoom;
pub use schema::{ConnectorInfo, PropSpec};
pub use value::*;
pub use vecpool::{Pooled, VecPool};
