//! `neuron` source and sink, as eKuiper's: both talk to the local Neuron
//! gateway over one shared NNG `pair` link per `url` ([`link`]). The source
//! emits each message Neuron sends (its JSON event, decoded by FORMAT); the
//! sink sends each result row either in Neuron's write format
//! (`{"node_name","group_name","tags":[{"tag_name","value"}]}`, the tags from
//! `tags` or every field) or, with `raw`, as the encoded payload.

pub mod link;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use oort_core::template::PropTemplate;
use oort_core::{
    ConnectorEnv, ConnectorError, ConnectorInfo, Consumes, PropSpec, Props, Sink, SinkContext,
    SinkFactory, SinkItem, Source, SourceContext, SourceFactory, SourceMsg, Value,
};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::util::{de, parse_config};
use link::{Addr, Link};

const KIND: &str = "neuron";
const DEFAULT_URL: &str = "tcp://127.0.0.1:7081";
/// How long a sink waits for a message to be written.
const SEND_WAIT: Duration = Duration::from_secs(5);

const DEFAULT_CONF: &str = "\
default:
  # Neuron's eKuiper app: tcp://host:7081, or ipc:///tmp/neuron-ekuiper.ipc
  url: tcp://127.0.0.1:7081
";

fn default_url() -> String {
    DEFAULT_URL.into()
}

#[derive(Debug, Deserialize)]
struct SourceConf {
    #[serde(default = "default_url")]
    url: String,
}

#[derive(Debug, Deserialize)]
struct SinkConf {
    #[serde(default = "default_url")]
    url: String,
    #[serde(rename = "nodename", default)]
    node_name: String,
    #[serde(rename = "groupname", default)]
    group_name: String,
    #[serde(default, deserialize_with = "de::string_list")]
    tags: Vec<String>,
    #[serde(default, deserialize_with = "de::bool_lenient")]
    raw: bool,
}

fn url_prop() -> PropSpec {
    PropSpec::new(
        "url",
        "string",
        "Neuron's NNG address: tcp://host:port or ipc:///path",
    )
    .default(json!(DEFAULT_URL))
    .connection()
}

/// Factory of `neuron` sources.
pub struct NeuronSourceFactory;

impl SourceFactory for NeuronSourceFactory {
    fn kind(&self) -> &str {
        KIND
    }

    fn info(&self) -> ConnectorInfo {
        ConnectorInfo {
            holds_connection: true,
            default_conf: Some(DEFAULT_CONF),
            properties: vec![url_prop()],
            ..ConnectorInfo::new("Receives the events of a local Neuron gateway (NNG pair)")
        }
    }

    fn create(
        &self,
        env: &ConnectorEnv,
        _datasource: &str,
        props: &Props,
    ) -> Result<Box<dyn Source>, ConnectorError> {
        let c: SourceConf = parse_config(KIND, props)?;
        let addr = Addr::parse(&c.url)?;
        Ok(Box::new(NeuronSource {
            env: env.clone(),
            addr,
        }))
    }

    fn validate(
        &self,
        _env: &ConnectorEnv,
        _datasource: &str,
        props: &Props,
    ) -> Result<(), ConnectorError> {
        let c: SourceConf = parse_config(KIND, props)?;
        Addr::parse(&c.url).map(drop)
    }
}

/// A running `neuron` source.
pub struct NeuronSource {
    env: ConnectorEnv,
    addr: Addr,
}

#[async_trait]
impl Source for NeuronSource {
    async fn run(&mut self, ctx: SourceContext) -> Result<(), ConnectorError> {
        let link = link::link(&self.env, &self.addr)?;
        let mut rx = link.subscribe();
        let mut status = StatusMirror::default();
        loop {
            status.mirror(&link, &ctx.conn);
            let m = tokio::select! {
                _ = ctx.cancel.cancelled() => return Ok(()),
                m = rx.recv() => m,
                // The link's status changes are shown within this delay.
                _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
            };
            match m {
                Ok(payload) => {
                    if !ctx.emit_bytes(payload, None).await {
                        return Ok(());
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    let msg = format!("neuron: {n} messages lost: the stream read too slowly");
                    if !ctx.emit(SourceMsg::Error(msg)).await {
                        return Ok(());
                    }
                }
                Err(RecvError::Closed) => return Ok(()),
            }
        }
    }
}

/// Copies the shared link's status to one node's.
#[derive(Default)]
struct StatusMirror {
    last: Option<(i64, i64, i64)>,
}

impl StatusMirror {
    fn mirror(&mut self, link: &Link, to: &oort_core::ConnState) {
        let s = link.conn.snapshot();
        let key = (s.status as i64, s.last_connected_ms, s.last_disconnected_ms);
        if self.last == Some(key) {
            return;
        }
        self.last = Some(key);
        match s.status {
            oort_core::ConnStatus::Connected => to.connected(),
            oort_core::ConnStatus::Connecting => to.connecting(),
            oort_core::ConnStatus::Disconnected => to.disconnected(s.last_disconnected_message),
        }
    }
}

/// Factory of `neuron` sinks.
pub struct NeuronSinkFactory;

impl NeuronSinkFactory {
    fn build(env: &ConnectorEnv, props: &Props) -> Result<NeuronSink, ConnectorError> {
        let c: SinkConf = parse_config(KIND, props)?;
        let addr = Addr::parse(&c.url)?;
        let shaped = if c.raw {
            if !c.tags.is_empty() {
                return Err(ConnectorError::config(
                    "neuron: property tags is not used with raw: true (the payload is sent as it is)",
                ));
            }
            None
        } else {
            if c.node_name.trim().is_empty() || c.group_name.trim().is_empty() {
                return Err(ConnectorError::config(
                    "neuron: properties nodeName and groupName are required unless raw is true",
                ));
            }
            Some(Shape {
                node: PropTemplate::parse("nodeName", c.node_name.trim())?,
                group: PropTemplate::parse("groupName", c.group_name.trim())?,
                tags: c
                    .tags
                    .iter()
                    .map(|t| PropTemplate::parse("tags", t.trim()))
                    .collect::<Result<_, _>>()?,
            })
        };
        Ok(NeuronSink {
            env: env.clone(),
            addr,
            shaped,
            link: None,
        })
    }
}

impl SinkFactory for NeuronSinkFactory {
    fn kind(&self) -> &str {
        KIND
    }

    fn info(&self) -> ConnectorInfo {
        ConnectorInfo {
            holds_connection: true,
            properties: vec![
                url_prop(),
                PropSpec::new(
                    "nodeName",
                    "string",
                    "The Neuron node to write (required unless raw); may be a template",
                )
                .dynamic(),
                PropSpec::new(
                    "groupName",
                    "string",
                    "The Neuron group to write (required unless raw); may be a template",
                )
                .dynamic(),
                PropSpec::new(
                    "tags",
                    "list_string",
                    "The result fields sent as tags (default: all); each may be a template",
                )
                .dynamic(),
                PropSpec::new(
                    "raw",
                    "bool",
                    "Send the encoded result (format, dataTemplate) as it is instead of Neuron's write format",
                )
                .default(json!(false)),
            ],
            ..ConnectorInfo::new("Writes tags to a local Neuron gateway (NNG pair)")
        }
    }

    fn validate(&self, env: &ConnectorEnv, props: &Props) -> Result<(), ConnectorError> {
        Self::build(env, props).map(drop)
    }

    fn create(&self, env: &ConnectorEnv, props: &Props) -> Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(Self::build(env, props)?))
    }

    fn needs_rows(&self, props: &Props) -> bool {
        // Neuron's write format is built from the row.
        !props.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("raw") && (v == &json!(true) || v == &json!("true"))
        }) || oort_core::dynamic_sink_props(props).next().is_some()
    }

    /// The payload for `raw`; the row (see `needs_rows`) for the write format.
    fn consumes(&self) -> Consumes {
        Consumes::Payload
    }
}

/// Neuron's write format: node, group, which fields are tags.
struct Shape {
    node: PropTemplate,
    group: PropTemplate,
    tags: Vec<PropTemplate>,
}

impl Shape {
    /// `{"node_name","group_name","tags":[{"tag_name","value"}]}` of a row.
    fn message(&self, row: &Value) -> Result<Vec<u8>, ConnectorError> {
        let Value::Object(m) = row else {
            return Err(ConnectorError::InvalidData(
                "neuron: a result is not a row object (set sendSingle: true)".into(),
            ));
        };
        let mut tags = Vec::new();
        if self.tags.is_empty() {
            for (k, v) in m.iter() {
                tags.push(json!({"tag_name": k.as_ref(), "value": v.to_json()}));
            }
        } else {
            for t in &self.tags {
                let name = t.render(row)?;
                if let Some(v) = m.get(name.as_str()) {
                    tags.push(json!({"tag_name": name, "value": v.to_json()}));
                }
            }
        }
        let msg = json!({
            "node_name": self.node.render(row)?,
            "group_name": self.group.render(row)?,
            "tags": tags,
        });
        serde_json::to_vec(&msg).map_err(|e| ConnectorError::InvalidData(e.to_string()))
    }
}

/// A running `neuron` sink.
pub struct NeuronSink {
    env: ConnectorEnv,
    addr: Addr,
    shaped: Option<Shape>,
    link: Option<Arc<Link>>,
}

#[async_trait]
impl Sink for NeuronSink {
    async fn connect(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        let l = link::link(&self.env, &self.addr)?;
        StatusMirror::default().mirror(&l, &ctx.conn);
        self.link = Some(l);
        Ok(())
    }

    async fn collect(
        &mut self,
        ctx: &SinkContext,
        items: &[SinkItem],
    ) -> Result<(), ConnectorError> {
        let Some(link) = self.link.clone() else {
            return Err(ConnectorError::unavailable("neuron: not connected"));
        };
        for it in items {
            let msg = match &self.shaped {
                Some(s) => match &it.data {
                    Value::Array(rows) => {
                        for r in rows.iter() {
                            let m = s.message(r)?;
                            link.send(Bytes::from(m), SEND_WAIT).await?;
                        }
                        continue;
                    }
                    row => Bytes::from(s.message(row)?),
                },
                None => it.payload.clone(),
            };
            let r = link.send(msg, SEND_WAIT).await;
            StatusMirror::default().mirror(&link, &ctx.conn);
            r?;
        }
        Ok(())
    }
}
