//! Test sink: writes each payload as one line to a TCP address (needs a
//! grant). Payloads equal to `bad` are refused as invalid data. With
//! `markCalls: true` each `write` ends with a line `--`; `holdFirstWriteMs`
//! makes the first `write` wait that long before writing.
use oort_plugin_sdk::{
    export_sink, logging, prop, Context, Error, Message, PluginInfo, Props, Sink, WriteFailure,
};
use std::io::Write;

struct TcpSink {
    sock: std::net::TcpStream,
    mark_calls: bool,
    hold_first: u64,
}

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
        Ok(TcpSink {
            sock: s,
            mark_calls: prop::<bool>(&props, "markCalls")?.unwrap_or(false),
            hold_first: prop::<u64>(&props, "holdFirstWriteMs")?.unwrap_or(0),
        })
    }
    fn write(&mut self, batch: Vec<Message>) -> Result<(), WriteFailure> {
        if self.hold_first > 0 {
            std::thread::sleep(std::time::Duration::from_millis(self.hold_first));
            self.hold_first = 0;
        }
        let r = self.write_lines(&batch);
        if self.mark_calls {
            let _ = self.sock.write_all(b"--\n");
        }
        r
    }
    fn flush(&mut self) -> Result<(), Error> {
        self.sock.flush().map_err(Error::from)
    }
}

impl TcpSink {
    fn write_lines(&mut self, batch: &[Message]) -> Result<(), WriteFailure> {
        for (i, m) in batch.iter().enumerate() {
            if m.payload == b"bad" {
                return Err(WriteFailure {
                    accepted: i as u32,
                    error: Error::invalid_data("payload 'bad' refused"),
                });
            }
            let mut line = m.payload.clone();
            line.push(b'\n');
            self.sock.write_all(&line).map_err(|e| WriteFailure {
                accepted: i as u32,
                error: Error::unavailable(e.to_string()),
            })?;
        }
        Ok(())
    }
}
export_sink!(TcpSink);
