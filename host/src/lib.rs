//! `oort`: the engine host. Module map in ARCHITECTURE.md.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod cli;
