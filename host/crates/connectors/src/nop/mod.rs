//! `nop` sink: discards results (benchmarks); with `log: true` it logs them
//! at debug level first.

use async_trait::async_trait;
use oort_core::{
    ConnectorEnv, ConnectorError, ConnectorInfo, Consumes, PropSpec, Props, Sink, SinkContext,
    SinkFactory, SinkItem,
};
use serde::Deserialize;

use crate::util::{de, parse_config};

#[derive(Debug, Deserialize)]
struct Conf {
    #[serde(default, deserialize_with = "de::bool_lenient")]
    log: bool,
}

/// Factory of `nop` sinks.
pub struct NopSinkFactory;

impl SinkFactory for NopSinkFactory {
    fn kind(&self) -> &str {
        "nop"
    }

    fn info(&self) -> ConnectorInfo {
        ConnectorInfo {
            properties: vec![
                PropSpec::new("log", "bool", "Log each result at debug level first")
                    .default(serde_json::json!(false)),
            ],
            ..ConnectorInfo::new("Discards results (benchmarks)")
        }
    }

    fn create(&self, _env: &ConnectorEnv, props: &Props) -> Result<Box<dyn Sink>, ConnectorError> {
        let conf: Conf = parse_config("nop", props)?;
        Ok(Box::new(NopSink { log: conf.log }))
    }

    fn consumes(&self) -> Consumes {
        Consumes::Rows
    }
}

/// A running `nop` sink.
pub struct NopSink {
    log: bool,
}

#[async_trait]
impl Sink for NopSink {
    async fn connect(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        ctx.conn.connected();
        Ok(())
    }

    async fn collect(
        &mut self,
        ctx: &SinkContext,
        items: &[SinkItem],
    ) -> Result<(), ConnectorError> {
        if self.log {
            for it in items {
                tracing::debug!(rule = %ctx.id, "nop sink: {}", crate::log::item_text(it));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_log_flag() {
        let p = serde_json::json!({"log": "true"})
            .as_object()
            .cloned()
            .unwrap();
        assert!(NopSinkFactory.create(&ConnectorEnv::default(), &p).is_ok());
        let p = serde_json::json!({"log": [1]})
            .as_object()
            .cloned()
            .unwrap();
        assert!(NopSinkFactory.create(&ConnectorEnv::default(), &p).is_err());
        assert_eq!(NopSinkFactory.consumes(), Consumes::Rows);
    }
}
