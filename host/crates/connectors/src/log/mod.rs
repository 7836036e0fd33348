//! `log` sink: writes each result to the log (tracing, info level) as JSON.

use async_trait::async_trait;
use oort_core::codec::json::write_value;
use oort_core::{
    ConnectorEnv, ConnectorError, ConnectorInfo, Consumes, Props, Sink, SinkContext, SinkFactory,
    SinkItem,
};

/// Factory of `log` sinks.
pub struct LogSinkFactory;

impl SinkFactory for LogSinkFactory {
    fn kind(&self) -> &str {
        "log"
    }

    fn info(&self) -> ConnectorInfo {
        ConnectorInfo {
            properties: Vec::new(),
            ..ConnectorInfo::new("Writes each result to the server log")
        }
    }

    fn create(&self, _env: &ConnectorEnv, _props: &Props) -> Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(LogSink))
    }

    fn consumes(&self) -> Consumes {
        Consumes::Rows
    }
}

/// A running `log` sink.
pub struct LogSink;

/// Renders an item as the log line shows it.
pub(crate) fn item_text(it: &SinkItem) -> String {
    let mut buf = Vec::with_capacity(64);
    write_value(&mut buf, &it.data);
    String::from_utf8_lossy(&buf).into_owned()
}

#[async_trait]
impl Sink for LogSink {
    async fn connect(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        ctx.conn.connected();
        Ok(())
    }

    async fn collect(
        &mut self,
        ctx: &SinkContext,
        items: &[SinkItem],
    ) -> Result<(), ConnectorError> {
        for it in items {
            tracing::info!(rule = %ctx.id, "sink result: {}", item_text(it));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oort_core::codec::json::decode_value;
    use tokio_util::sync::CancellationToken;

    #[tokio::test]
    async fn logs_items_as_json() {
        let it = SinkItem {
            data: decode_value(br#"{"t":1.0}"#).unwrap(),
            payload: bytes::Bytes::new(),
        };
        assert_eq!(item_text(&it), r#"{"t":1}"#);
        let mut s = LogSinkFactory
            .create(&ConnectorEnv::default(), &Props::new())
            .unwrap();
        let ctx = SinkContext::new("r", CancellationToken::new());
        s.connect(&ctx).await.unwrap();
        s.collect(&ctx, &[it]).await.unwrap();
        assert_eq!(ctx.conn.snapshot().status, oort_core::ConnStatus::Connected);
    }
}
