//! `mqtt` source ([`source`]) and sink ([`sink`]) on rumqttc, MQTT 3.1.1 by
//! default and MQTT 5 with `protocolVersion: "5"`; [`client`] holds the shared
//! connection settings (`server`, credentials, TLS files, client id);
//! [`shared`] the connections shared through `connectionSelector`; [`acks`]
//! which QoS >= 1 publishes the broker acknowledged.

pub(crate) mod acks;
pub(crate) mod client;
pub(crate) mod shared;
pub mod sink;
pub mod source;

pub use sink::{MqttSink, MqttSinkFactory};
pub use source::{MqttSource, MqttSourceFactory};

#[cfg(test)]
mod tests;
