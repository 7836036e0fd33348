//! Hostile source: `describe` never returns, so its install must end at the
//! call deadline without holding anything up.
use oort_plugin_sdk::{export_source, Context, Error, PluginInfo, Props, ReadOutcome, Source};
use std::time::Duration;

struct SpinDescribe;

impl Source for SpinDescribe {
    fn describe() -> PluginInfo {
        let mut x = 0u64;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }
    fn open(_: &Context, _: Props, _: Option<String>) -> Result<Self, Error> {
        Ok(SpinDescribe)
    }
    fn read(&mut self, _: u32, _: Duration) -> Result<ReadOutcome, Error> {
        Ok(ReadOutcome::none())
    }
}
export_source!(SpinDescribe);
