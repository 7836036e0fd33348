//! `nats` sink: publishes each message of a batch to `subject` on a NATS
//! server over wasi:sockets, then round-trips a PING so a batch is accepted
//! only once the server has it.

use nats_common::{server_addr, valid_subject, Conn};
use oort_plugin_sdk::{
    export_sink, prop, Context, Error, Message, PluginInfo, Props, Sink, WriteFailure,
};

struct Cfg {
    addr: String,
    subject: String,
}

fn cfg(props: &Props) -> Result<Cfg, Error> {
    let server = prop::<String>(props, "server")?.unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let subject = prop::<String>(props, "subject")?.unwrap_or_default();
    if !valid_subject(&subject, false) {
        return Err(Error::config(format!(
            "property subject is required and must be a NATS subject without wildcards, got {subject:?}"
        )));
    }
    Ok(Cfg {
        addr: server_addr(&server)?,
        subject,
    })
}

struct NatsSink {
    conn: Conn,
    subject: String,
}

impl Sink for NatsSink {
    fn describe() -> PluginInfo {
        PluginInfo::new("nats", env!("CARGO_PKG_VERSION"))
            .description("Publishes each message to a NATS subject over TCP.")
            .outbound("tcp://*:*")
    }
    fn validate(props: &Props) -> Result<(), Error> {
        cfg(props).map(|_| ())
    }
    fn open(_ctx: &Context, props: Props) -> Result<Self, Error> {
        let c = cfg(&props)?;
        Ok(NatsSink {
            conn: Conn::connect(&c.addr)?,
            subject: c.subject,
        })
    }
    fn write(&mut self, batch: Vec<Message>) -> Result<(), WriteFailure> {
        self.conn.publish_all(&self.subject, &batch)?;
        self.conn.ping()?;
        Ok(())
    }
}

export_sink!(NatsSink);
