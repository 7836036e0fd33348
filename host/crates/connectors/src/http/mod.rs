//! HTTP connectors: the `rest` sink ([`rest`]), on the client settings
//! shared by every HTTP connector ([`client`]).

pub mod client;
mod info;
pub mod rest;

pub use rest::{RestSink, RestSinkFactory};

#[cfg(test)]
mod tests;
