//! `oort-connectors`: the native connectors, one folder each, registered in
//! [`builtin`] with one line per connector.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use oort_core::Registry;

/// Registers every built-in connector.
pub fn builtin(_registry: &Registry) {}
