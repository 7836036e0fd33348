//! HTTP connectors: the `rest` sink ([`rest`]) and the `httppull` source
//! ([`pull`]), on the client settings they share ([`client`]).

pub mod client;
mod info;
pub mod pull;
pub mod rest;

pub use pull::{HttpPullSource, HttpPullSourceFactory};
pub use rest::{RestSink, RestSinkFactory};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_pull;
