//! Test sink: writes each payload as one line to a TCP address (needs a
//! grant). Payloads equal to `bad` are refused as invalid data.
use oort_plugin_sdk::{
    export_sink, logging, prop, Context, Error, Message, PluginInfo, Props, Sink, WriteFailure,
};
use std::io::Write;

struct TcpSink(std::net::TcpStream);

impl Sink for TcpSink {
    fn describe() -> PluginInfo {
        PluginInfo::new("tcpsink", "0.2.0").outbound("tcp://127.0.0.1:*")
    }
    fn validate(props: &Props) -> Result<(), Error> {
        match prop::<String>(props, "address")? {
            Some(_) => Ok(()),
            None => Err(Error::config("property address is required")),
        }
    }
    fn open(ctx: &Context, props: Props) -> Result<Self, Error> {
        logging::info(&format!(
            "context {}/{}#{}",
            ctx.rule_id, ctx.op_id, ctx.instance_index
        ));
        let addr = prop::<String>(&props, "address")?.unwrap_or_default();
        let s = std::net::TcpStream::connect(&addr)
            .map_err(|e| Error::unavailable(format!("connect {addr}: {e}")))?;
        Ok(TcpSink(s))
    }
    fn write(&mut self, batch: Vec<Message>) -> Result<(), WriteFailure> {
        for (i, m) in batch.iter().enumerate() {
            if m.payload == b"bad" {
                return Err(WriteFailure {
                    accepted: i as u32,
                    error: Error::invalid_data("payload 'bad' refused"),
                });
            }
            let mut line = m.payload.clone();
            line.push(b'\n');
            self.0.write_all(&line).map_err(|e| WriteFailure {
                accepted: i as u32,
                error: Error::unavailable(e.to_string()),
            })?;
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), Error> {
        self.0.flush().map_err(Error::from)
    }
}
export_sink!(TcpSink);
