//! `simulator` source: emits the rows of its `data` prop one per `interval`
//! (default 1s), starting over when `loop` is true (the default), else ending
//! with EOF after the last row. As a lookup table (`KIND="lookup"`) it
//! answers with the rows of `data` whose key columns match.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oort_core::lookup::matching;
use oort_core::{
    ConnectorEnv, ConnectorError, ConnectorInfo, LookupFactory, LookupSource, PropSpec, Props, Row,
    Schema, Source, SourceContext, SourceFactory, SourceMsg, Value,
};
use serde::Deserialize;

use crate::util::{de, parse_config, row_from_json, sleep_or_cancel};

const DEFAULT_CONF: &str =
    "default:\n  data:\n    - temperature: 22.5\n      humidity: 50\n  interval: 1s\n  loop: true\n";

fn default_interval() -> Duration {
    Duration::from_secs(1)
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
struct Conf {
    #[serde(default)]
    data: Vec<serde_json::Map<String, serde_json::Value>>,
    #[serde(default = "default_interval", deserialize_with = "de::duration")]
    interval: Duration,
    #[serde(
        rename = "loop",
        default = "default_true",
        deserialize_with = "de::bool_lenient"
    )]
    looping: bool,
}

/// Factory of `simulator` sources.
pub struct SimulatorSourceFactory;

impl SourceFactory for SimulatorSourceFactory {
    fn kind(&self) -> &str {
        "simulator"
    }

    fn info(&self) -> ConnectorInfo {
        ConnectorInfo {
            bounded: true,
            default_conf: Some(DEFAULT_CONF),
            properties: vec![
                PropSpec::new("data", "list_object", "The rows to emit, in order").required(),
                PropSpec::new("interval", "duration", "Pause between two rows")
                    .default(serde_json::json!("1s")),
                PropSpec::new("loop", "bool", "Start over after the last row (else end)")
                    .default(serde_json::json!(true)),
            ],
            ..ConnectorInfo::new("Emits the rows of its data property, for tests and demos")
        }
    }

    fn create(
        &self,
        _env: &ConnectorEnv,
        _datasource: &str,
        props: &Props,
    ) -> Result<Box<dyn Source>, ConnectorError> {
        let conf: Conf = parse_config("simulator", props)?;
        let mut cache: Option<Arc<Schema>> = None;
        let rows = conf
            .data
            .iter()
            .map(|o| row_from_json(o, &mut cache))
            .collect();
        Ok(Box::new(SimulatorSource {
            rows,
            interval: conf.interval,
            looping: conf.looping,
        }))
    }

    fn emits_rows(&self) -> bool {
        true
    }
}

/// Factory of `simulator` lookup tables.
pub struct SimulatorLookupFactory;

impl LookupFactory for SimulatorLookupFactory {
    fn kind(&self) -> &str {
        "simulator"
    }

    fn info(&self) -> ConnectorInfo {
        ConnectorInfo {
            properties: vec![PropSpec::new("data", "list_object", "The table's rows").required()],
            ..ConnectorInfo::new("A lookup table of the rows of its data property")
        }
    }

    fn create(
        &self,
        _env: &ConnectorEnv,
        _datasource: &str,
        props: &Props,
    ) -> Result<Arc<dyn LookupSource>, ConnectorError> {
        #[derive(Deserialize)]
        struct Data {
            #[serde(default)]
            data: Vec<serde_json::Map<String, serde_json::Value>>,
        }
        let conf: Data = parse_config("simulator", props)?;
        let mut cache: Option<Arc<Schema>> = None;
        let rows = conf
            .data
            .iter()
            .map(|o| row_from_json(o, &mut cache))
            .collect();
        Ok(Arc::new(SimulatorLookup { rows }))
    }
}

/// A `simulator` lookup table.
pub struct SimulatorLookup {
    rows: Vec<Row>,
}

#[async_trait]
impl LookupSource for SimulatorLookup {
    async fn lookup(
        &self,
        keys: &[Arc<str>],
        values: &[Value],
    ) -> Result<Vec<Row>, ConnectorError> {
        Ok(matching(&self.rows, keys, values))
    }
}

/// A running `simulator` source.
pub struct SimulatorSource {
    rows: Vec<Row>,
    interval: Duration,
    looping: bool,
}

#[async_trait]
impl Source for SimulatorSource {
    async fn run(&mut self, ctx: SourceContext) -> Result<(), ConnectorError> {
        ctx.conn.connected();
        if self.rows.is_empty() {
            if self.looping {
                ctx.cancel.cancelled().await;
                return Ok(());
            }
            ctx.emit(SourceMsg::Eof).await;
            return Ok(());
        }
        let mut ticker = tokio::time::interval(self.interval.max(Duration::from_micros(1)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut i = 0usize;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = ctx.cancel.cancelled() => return Ok(()),
            }
            if i >= self.rows.len() {
                if !self.looping {
                    ctx.emit(SourceMsg::Eof).await;
                    return Ok(());
                }
                i = 0;
            }
            if !ctx.emit_rows(vec![self.rows[i].clone()]).await {
                return Ok(());
            }
            i += 1;
            if i >= self.rows.len() && !self.looping {
                // Like eKuiper, EOF comes one interval after the last row.
                if sleep_or_cancel(self.interval, &ctx.cancel).await {
                    return Ok(());
                }
                ctx.emit(SourceMsg::Eof).await;
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oort_core::Value;
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    fn props(v: serde_json::Value) -> Props {
        v.as_object().cloned().unwrap()
    }

    #[tokio::test]
    async fn emits_rows_then_eof_without_loop() {
        let mut s = SimulatorSourceFactory
            .create(&ConnectorEnv::default(),
                "",
                &props(serde_json::json!({"data":[{"t":1,"h":"a"},{"t":2,"h":"b"}],"interval":"5ms","loop":false})),
            )
            .unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        let ctx = SourceContext::new("r", CancellationToken::new(), tx);
        s.run(ctx).await.unwrap();
        let mut got = Vec::new();
        while let Ok(m) = rx.try_recv() {
            got.push(m);
        }
        assert_eq!(got.len(), 3);
        let SourceMsg::Rows { rows, .. } = &got[1] else {
            panic!("rows expected")
        };
        assert_eq!(rows[0].get("t"), Some(&Value::Int(2)));
        let names: Vec<&str> = rows[0].schema.names().iter().map(|n| n.as_ref()).collect();
        assert_eq!(names, ["t", "h"]);
        assert!(matches!(got[2], SourceMsg::Eof));
    }

    #[tokio::test]
    async fn loops_until_cancelled() {
        let mut s = SimulatorSourceFactory
            .create(
                &ConnectorEnv::default(),
                "",
                &props(serde_json::json!({"data":[{"t":1}],"interval":1})),
            )
            .unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        let cancel = CancellationToken::new();
        let ctx = SourceContext::new("r", cancel.clone(), tx);
        let task = tokio::spawn(async move { s.run(ctx).await });
        for _ in 0..5 {
            assert!(matches!(rx.recv().await, Some(SourceMsg::Rows { .. })));
        }
        cancel.cancel();
        task.await.unwrap().unwrap();
    }

    #[test]
    fn bad_props_name_the_key() {
        let e = SimulatorSourceFactory
            .create(
                &ConnectorEnv::default(),
                "",
                &props(serde_json::json!({"interval":"often"})),
            )
            .err()
            .unwrap();
        assert!(e.to_string().contains("interval"), "{e}");
        let e = SimulatorSourceFactory
            .create(
                &ConnectorEnv::default(),
                "",
                &props(serde_json::json!({"data":[1]})),
            )
            .err()
            .unwrap();
        assert!(e.to_string().contains("data"), "{e}");
    }
}
