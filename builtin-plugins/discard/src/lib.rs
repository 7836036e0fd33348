//! `discard`: Oort's built-in sink plugin that accepts every batch and drops
//! it. It exists to measure the cost of the WebAssembly sink path against the
//! native `nop` sink, and to dry-run a rule without any external system.
//! Built with the `bulky` feature it also carries ~2 MB of generated code
//! (see `build.rs`), used only by the plugin install benchmark.

use oort_plugin_sdk::{
    export_sink, Context, Error, Message, PluginInfo, Props, Sink, WriteFailure,
};

/// Generated code (`build.rs`): lints do not apply.
#[cfg(feature = "bulky")]
#[allow(clippy::all)]
mod bulky {
    include!(concat!(env!("OUT_DIR"), "/bulky.rs"));
}

struct Discard {
    /// Messages seen so far (kept so the batch is really handed over).
    seen: u64,
}

impl Sink for Discard {
    fn describe() -> PluginInfo {
        PluginInfo::new("discard", env!("CARGO_PKG_VERSION"))
            .description("Accepts every message and drops it.")
    }

    fn open(_ctx: &Context, _props: Props) -> Result<Self, Error> {
        Ok(Discard { seen: 0 })
    }

    fn write(&mut self, batch: Vec<Message>) -> Result<(), WriteFailure> {
        #[cfg(feature = "bulky")]
        if let Some(m) = batch.first() {
            self.seen ^= bulky::churn(self.seen, &m.payload);
        }
        self.seen = self.seen.wrapping_add(batch.len() as u64);
        Ok(())
    }
}

export_sink!(Discard);
