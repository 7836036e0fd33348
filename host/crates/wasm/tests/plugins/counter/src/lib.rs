//! A rewindable source: emits `{"n": 1}`, `{"n": 2}`... one message every
//! `interval` ms (default 20). Its offset is the last `n` returned; opened
//! with a resume offset it goes on after it. Commits are logged
//! (`committed <n>`), so a test can see them arrive.
use oort_plugin_sdk::{
    export_source, logging, prop, Context, Error, Message, PluginInfo, Props, ReadOutcome, Source,
};
use std::time::{Duration, Instant};

struct Counter {
    last: u64,
    interval: Duration,
    next_at: Instant,
}

impl Source for Counter {
    fn describe() -> PluginInfo {
        PluginInfo::new("counter", "0.1.0")
    }
    fn open(ctx: &Context, props: Props, resume: Option<String>) -> Result<Self, Error> {
        logging::info(&format!(
            "context {}/{}#{}",
            ctx.rule_id, ctx.op_id, ctx.instance_index
        ));
        let interval = prop::<u64>(&props, "interval")?.unwrap_or(20);
        let last = match resume {
            Some(o) => o
                .parse::<u64>()
                .map_err(|e| Error::config(format!("bad resume offset {o:?}: {e}")))?,
            None => 0,
        };
        logging::info(&format!("open at {last}"));
        Ok(Counter {
            last,
            interval: Duration::from_millis(interval),
            next_at: Instant::now(),
        })
    }
    fn read(&mut self, _max: u32, wait: Duration) -> Result<ReadOutcome, Error> {
        let now = Instant::now();
        if now < self.next_at {
            std::thread::sleep((self.next_at - now).min(wait));
            if Instant::now() < self.next_at {
                return Ok(ReadOutcome::none());
            }
        }
        self.next_at += self.interval;
        self.last += 1;
        Ok(ReadOutcome::one(Message::new(format!(
            "{{\"n\":{}}}",
            self.last
        ))))
    }
    fn offset(&self) -> Result<Option<String>, Error> {
        Ok(Some(self.last.to_string()))
    }
    fn commit(&mut self, offset: &str) -> Result<(), Error> {
        logging::info(&format!("committed {offset}"));
        Ok(())
    }
}
export_source!(Counter);
