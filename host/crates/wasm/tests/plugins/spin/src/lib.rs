//! Hostile source: `read` never returns (a busy loop).
use oort_plugin_sdk::{export_source, Context, Error, PluginInfo, Props, ReadOutcome, Source};
use std::time::Duration;

struct Spin(u64);

impl Source for Spin {
    fn describe() -> PluginInfo {
        PluginInfo::new("spin", "0.1.0")
    }
    fn open(_: &Context, _: Props, _: Option<String>) -> Result<Self, Error> {
        Ok(Spin(0))
    }
    fn read(&mut self, _: u32, _: Duration) -> Result<ReadOutcome, Error> {
        loop {
            self.0 = std::hint::black_box(self.0.wrapping_add(1));
        }
    }
}
export_source!(Spin);
