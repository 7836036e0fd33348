//! A sink whose plugin name is chosen at build time
//! (`OORT_PLUGIN_NAME=foo cargo build ...`), so benchmarks can install many
//! distinct plugin packages. It keeps a count of what it was given.
use oort_plugin_sdk::{
    export_sink, Context, Error, Message, PluginInfo, Props, Sink, WriteFailure,
};

struct Named {
    seen: u64,
}

const NAME: &str = match option_env!("OORT_PLUGIN_NAME") {
    Some(n) => n,
    None => "named",
};

impl Sink for Named {
    fn describe() -> PluginInfo {
        PluginInfo::new(NAME, "0.1.0").description("A sink that counts and drops messages.")
    }
    fn open(_: &Context, _: Props) -> Result<Self, Error> {
        Ok(Named { seen: 0 })
    }
    fn write(&mut self, batch: Vec<Message>) -> Result<(), WriteFailure> {
        self.seen = self.seen.wrapping_add(batch.len() as u64);
        Ok(())
    }
}
export_sink!(Named);
