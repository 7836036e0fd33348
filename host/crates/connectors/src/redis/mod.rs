//! Redis connectors: the `redis` sink ([`sink`]), keys set or lists pushed
//! per row, pipelined per batch.

pub mod sink;

pub use sink::{RedisSink, RedisSinkFactory};

#[cfg(test)]
mod tests;
