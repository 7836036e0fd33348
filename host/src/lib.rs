//! `oort`: the engine host. Module map in ARCHITECTURE.md.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod cli;
pub mod cli_data;
pub mod cli_query;
pub mod cli_verbs;
pub mod config;
pub mod confkeys;
pub mod connections;
pub mod error;
pub mod manager;
pub mod memtrim;
pub mod plugin_dev;
pub mod runtime;
pub mod schemas;
pub mod server;
pub mod store;
