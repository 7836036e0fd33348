//! `zmq` source: eKuiper's ZeroMQ source as a component. It connects a SUB
//! socket to `server` (`tcp://host:port`, where a PUB socket is bound) and
//! subscribes to the stream's DATASOURCE as a topic prefix (empty: all). A
//! two-frame message is (topic, payload), the topic readable with
//! `meta(topic)`; a one-frame message is the payload. Needs an outbound
//! grant for the server's address.

use std::time::{Duration, Instant};

use oort_plugin_sdk::{
    export_source, prop, Context, Error, Message, PluginInfo, Props, ReadOutcome, Source,
    DATASOURCE_KEY,
};
use zmq_common::{endpoint, Zmtp};

const SCHEMA: &str = r#"{"server":"string, tcp://host:port of the bound PUB socket (required)"}"#;

struct Config {
    addr: String,
    topic: String,
}

fn config(props: &Props) -> Result<Config, Error> {
    let server = prop::<String>(props, "server")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::config("server is required (tcp://host:port)"))?;
    Ok(Config {
        addr: endpoint(&server)?,
        topic: prop::<String>(props, DATASOURCE_KEY)?.unwrap_or_default(),
    })
}

struct ZmqSource {
    conn: Zmtp,
}

impl Source for ZmqSource {
    fn describe() -> PluginInfo {
        PluginInfo::new("zmq", env!("CARGO_PKG_VERSION"))
            .description("Subscribes to a ZeroMQ PUB socket (eKuiper's zmq source).")
            .properties_schema(SCHEMA)
            .outbound("tcp://*:*")
    }

    fn validate(props: &Props) -> Result<(), Error> {
        config(props).map(|_| ())
    }

    fn open(_ctx: &Context, props: Props, _resume: Option<String>) -> Result<Self, Error> {
        let c = config(&props)?;
        let mut conn = Zmtp::connect(&c.addr, "SUB")?;
        conn.subscribe(c.topic.as_bytes())?;
        Ok(ZmqSource { conn })
    }

    fn read(&mut self, max: u32, wait: Duration) -> Result<ReadOutcome, Error> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        while out.len() < max as usize {
            // After the first message, take only what has already arrived.
            let d = if out.is_empty() {
                deadline
            } else {
                Instant::now()
            };
            let Some(mut parts) = self.conn.recv_message(d)? else {
                break;
            };
            let m = if parts.len() >= 2 {
                let payload = parts.pop().unwrap_or_default();
                let topic = String::from_utf8_lossy(&parts[0]).into_owned();
                let mut m = Message::new(payload);
                m.meta.push(("topic".into(), topic));
                m
            } else {
                Message::new(parts.pop().unwrap_or_default())
            };
            out.push(m);
        }
        Ok(ReadOutcome::Messages(out))
    }
}

export_source!(ZmqSource);
