//! Running rules: stream hubs (source + decode + fan-out), the rule task that
//! drives a compiled query, and sink pipelines. See ARCHITECTURE.md for the
//! path of one event.

pub mod delivery;
pub mod hub;
pub mod keyed_state;
pub mod lookup;
pub mod metrics;
pub mod rule;
pub mod sink;
pub mod tracker;
