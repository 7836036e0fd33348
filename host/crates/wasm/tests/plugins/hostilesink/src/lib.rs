//! Hostile sink for the isolation suite: `props.attack` is `spin-open`,
//! `spin-write`, `spin-close` (busy loops), `flood` (log lines per write),
//! `unauthorized` or `config` (every `write` fails with that error kind).
//! Otherwise it accepts and discards every batch.
use oort_plugin_sdk::{
    export_sink, logging, prop, Context, Error, Message, PluginInfo, Props, Sink, WriteFailure,
};

struct HostileSink(String);

fn spin() -> ! {
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

impl Sink for HostileSink {
    fn describe() -> PluginInfo {
        PluginInfo::new("hostilesink", "0.1.0")
    }
    fn open(_: &Context, props: Props) -> Result<Self, Error> {
        let attack = prop::<String>(&props, "attack")?.unwrap_or_default();
        if attack == "spin-open" {
            spin();
        }
        Ok(HostileSink(attack))
    }
    fn write(&mut self, batch: Vec<Message>) -> Result<(), WriteFailure> {
        match self.0.as_str() {
            "spin-write" => spin(),
            "flood" => {
                for i in 0..300 {
                    println!("flood line {i}");
                    logging::warn(&format!("flood line {i}"));
                }
                Ok(())
            }
            "unauthorized" => Err(WriteFailure {
                accepted: 0,
                error: Error::unauthorized(format!(
                    "the remote refused our credentials ({} messages)",
                    batch.len()
                )),
            }),
            "config" => Err(Error::config("property topic names no known topic").into()),
            _ => Ok(()),
        }
    }
    fn close(&mut self) -> Result<(), Error> {
        if self.0 == "spin-close" {
            spin();
        }
        Ok(())
    }
}
export_sink!(HostileSink);
