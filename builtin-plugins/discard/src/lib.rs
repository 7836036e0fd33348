//! `discard`: Oort's built-in sink plugin that accepts every batch and drops
//! it. It exists to measure the cost of the WebAssembly sink path against the
//! native `nop` sink, and to dry-run a rule without any external system.
//! Built with the `bulky` feature it also carries ~2 MB of generated code
//! (see `build.rs`), used only by the plugin install benchmark; with the
//! `contract-0-1` feature it is `discard_v1`, the same sink on
//! `oort:connector@0.1.0` (the contract benchmark compares the two).

use oort_plugin_sdk::{Batch, Context, Error, Message, PluginInfo, Props, Sink, WriteFailure};

#[cfg(not(feature = "contract-0-1"))]
const NAME: &str = "discard";
#[cfg(feature = "contract-0-1")]
const NAME: &str = "discard_v1";

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
        PluginInfo::new(NAME, env!("CARGO_PKG_VERSION"))
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

    /// 0.2.0: the batch as it arrived, no copy per message.
    fn write_batch(&mut self, batch: &Batch) -> Result<(), WriteFailure> {
        #[cfg(feature = "bulky")]
        if let Some(m) = batch.get(0) {
            self.seen ^= bulky::churn(self.seen, m.payload);
        }
        self.seen = self.seen.wrapping_add(batch.len() as u64);
        Ok(())
    }
}

#[cfg(not(feature = "contract-0-1"))]
oort_plugin_sdk::export_sink!(Discard);
#[cfg(feature = "contract-0-1")]
oort_plugin_sdk::export_sink_v1!(Discard);
