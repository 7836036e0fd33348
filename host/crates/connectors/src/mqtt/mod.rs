//! `mqtt` source ([`source`]) and sink ([`sink`]), MQTT 3.1.1 by default and
//! MQTT 5 with `protocolVersion: "5"`; [`client`] holds the shared
//! connection settings (`server`, credentials, TLS files, client id);
//! [`wire`] the connection itself (batched reads and writes, [`codec`] for
//! PUBLISH, rumqttc's codec for the rest, TLS from [`crate::tls`]);
//! [`shared`] the connections shared through `connectionSelector`; [`acks`]
//! which QoS >= 1 publishes the broker acknowledged.

pub(crate) mod acks;
pub(crate) mod client;
pub(crate) mod codec;
mod info;
pub(crate) mod shared;
pub mod sink;
pub mod source;
pub(crate) mod wire;

pub use sink::{MqttSink, MqttSinkFactory};
pub use source::{MqttSource, MqttSourceFactory};

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod tests_wire;
