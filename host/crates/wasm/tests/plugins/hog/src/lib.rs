//! Hostile source: `read` allocates far past any sane memory limit.
use oort_plugin_sdk::{
    export_source, Context, Error, Message, PluginInfo, Props, ReadOutcome, Source,
};
use std::time::Duration;

struct Hog(Vec<Vec<u8>>);

impl Source for Hog {
    fn describe() -> PluginInfo {
        PluginInfo::new("hog", "0.1.0")
    }
    fn open(_: &Context, _: Props, _: Option<String>) -> Result<Self, Error> {
        Ok(Hog(Vec::new()))
    }
    fn read(&mut self, _: u32, _: Duration) -> Result<ReadOutcome, Error> {
        for _ in 0..64 {
            let mut v = vec![0u8; 16 << 20];
            v[12345] = 1;
            self.0.push(v);
        }
        Ok(ReadOutcome::one(Message::new(b"{}".to_vec())))
    }
}
export_source!(Hog);
