//! `zmq` sink: eKuiper's ZeroMQ sink as a component. eKuiper binds a PUB
//! socket at `server`; a plugin cannot listen, so this sink connects its PUB
//! socket to a subscriber that binds (`connect: true` says so: without it
//! the sink is refused rather than silently doing the other thing). With
//! `topic`, each message is (topic, payload), else the payload alone.
//! Needs an outbound grant for the subscriber's address.

use oort_plugin_sdk::{
    export_sink, prop, Context, Error, Message, PluginInfo, Props, Sink, WriteFailure,
};
use zmq_common::{endpoint, Zmtp};

const SCHEMA: &str = r#"{"server":"string, tcp://host:port of the bound SUB socket (required)","topic":"string: first frame of each message (default none)","connect":"bool, must be true: the sink connects (eKuiper's binds)"}"#;

struct Config {
    addr: String,
    topic: Option<String>,
}

fn config(props: &Props) -> Result<Config, Error> {
    let server = prop::<String>(props, "server")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::config("server is required (tcp://host:port)"))?;
    if !prop::<bool>(props, "connect")?.unwrap_or(false) {
        return Err(Error::config(format!(
            "eKuiper's zmq sink binds a PUB socket at {server}; an Oort plugin cannot listen. \
             Bind the subscriber at that address and set connect: true, and this sink connects to it"
        )));
    }
    Ok(Config {
        addr: endpoint(&server)?,
        topic: prop::<String>(props, "topic")?.filter(|t| !t.is_empty()),
    })
}

struct ZmqSink {
    conn: Zmtp,
    topic: Option<String>,
}

impl Sink for ZmqSink {
    fn describe() -> PluginInfo {
        PluginInfo::new("zmq", env!("CARGO_PKG_VERSION"))
            .description("Publishes to a bound ZeroMQ SUB socket (eKuiper's zmq sink, connecting).")
            .properties_schema(SCHEMA)
            .outbound("tcp://*:*")
    }

    fn validate(props: &Props) -> Result<(), Error> {
        config(props).map(|_| ())
    }

    fn open(_ctx: &Context, props: Props) -> Result<Self, Error> {
        let c = config(&props)?;
        Ok(ZmqSink {
            conn: Zmtp::connect(&c.addr, "PUB")?,
            topic: c.topic,
        })
    }

    fn write(&mut self, batch: Vec<Message>) -> Result<(), WriteFailure> {
        for (i, m) in batch.iter().enumerate() {
            let r = match &self.topic {
                Some(t) => self.conn.send_message(&[t.as_bytes(), &m.payload]),
                None => self.conn.send_message(&[&m.payload]),
            };
            r.map_err(|error| WriteFailure {
                accepted: i as u32,
                error,
            })?;
        }
        Ok(())
    }
}

export_sink!(ZmqSink);
