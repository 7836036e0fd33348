//! `nats` source: subscribes to the stream's DATASOURCE (or `subject`) on a
//! NATS server over wasi:sockets; each message's payload is decoded by the
//! stream's FORMAT, its subject is in `meta(subject)`.

use std::time::{Duration, Instant};

use nats_common::{server_addr, valid_subject, Conn};
use oort_plugin_sdk::{
    export_source, prop, Context, Error, Message, PluginInfo, Props, ReadOutcome, Source,
    DATASOURCE_KEY,
};

struct Cfg {
    addr: String,
    subject: String,
    queue: Option<String>,
}

fn cfg(props: &Props) -> Result<Cfg, Error> {
    let server = prop::<String>(props, "server")?.unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let subject = match prop::<String>(props, "subject")? {
        Some(s) if !s.is_empty() => s,
        _ => prop::<String>(props, DATASOURCE_KEY)?.unwrap_or_default(),
    };
    if !valid_subject(&subject, true) {
        return Err(Error::config(format!(
            "subject {subject:?} is not a valid NATS subject (set DATASOURCE or the subject property)"
        )));
    }
    Ok(Cfg {
        addr: server_addr(&server)?,
        subject,
        queue: prop::<String>(props, "queue")?.filter(|q| !q.is_empty()),
    })
}

struct NatsSource(Conn);

impl Source for NatsSource {
    fn describe() -> PluginInfo {
        PluginInfo::new("nats", env!("CARGO_PKG_VERSION"))
            .description("Subscribes to a NATS subject (DATASOURCE) over TCP.")
            .outbound("tcp://*:*")
    }
    fn validate(props: &Props) -> Result<(), Error> {
        cfg(props).map(|_| ())
    }
    fn open(_ctx: &Context, props: Props, _resume: Option<String>) -> Result<Self, Error> {
        let c = cfg(&props)?;
        let mut conn = Conn::connect(&c.addr)?;
        conn.subscribe(&c.subject, c.queue.as_deref(), 1)?;
        Ok(NatsSource(conn))
    }
    fn read(&mut self, max: u32, wait: Duration) -> Result<ReadOutcome, Error> {
        let mut out = Vec::new();
        let mut deadline = Instant::now() + wait;
        while (out.len() as u32) < max {
            match self.0.next_msg(deadline)? {
                Some((subject, payload)) => {
                    out.push(Message::new(payload).with_meta("subject", subject));
                    // Once something arrived, only drain what is already there.
                    deadline = Instant::now();
                }
                None => break,
            }
        }
        Ok(ReadOutcome::Messages(out))
    }
}

export_source!(NatsSource);
