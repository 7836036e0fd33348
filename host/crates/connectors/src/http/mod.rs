//! HTTP connectors: the `rest` sink ([`rest`]), the `httppull` source
//! ([`pull`]) on the client settings they share ([`client`]), and the
//! `httppush` source with its data server ([`push`]).

pub mod client;
mod info;
pub mod pull;
pub mod push;
pub mod rest;
pub mod server;
pub mod websocket;

pub use pull::{HttpPullLookupFactory, HttpPullSource, HttpPullSourceFactory};
pub use push::{HttpPushSource, HttpPushSourceFactory};
pub use rest::{RestSink, RestSinkFactory};
pub use websocket::{WebsocketSinkFactory, WebsocketSourceFactory};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_pull;
#[cfg(test)]
mod tests_push;
#[cfg(test)]
mod tests_ws;
