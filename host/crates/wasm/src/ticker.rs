//! The epoch ticker: advances the engine's epoch every [`EPOCH_TICK`] while
//! at least one plugin call is under way (deadlines and yields are checked
//! at each tick), and parks otherwise, so a server whose plugins are idle,
//! or that has none running, wakes no thread for them.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use wasmtime::Engine;

/// How often the epoch advances while calls run; deadlines are checked at
/// this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Shared by the engine's stores; see the module docs.
pub struct Ticker {
    /// Calls under way ([`TickHold`]s alive).
    active: AtomicUsize,
    stop: AtomicBool,
    /// The ticker's thread, to wake it when the first call starts.
    thread: OnceLock<Thread>,
    /// Epoch increments so far.
    ticks: AtomicU64,
    /// True while the thread is parked (no call under way).
    parked: AtomicBool,
}

impl Ticker {
    /// Starts the ticker's thread for `engine`.
    pub fn start(engine: Engine) -> std::io::Result<Arc<Ticker>> {
        let t = Arc::new(Ticker {
            active: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            thread: OnceLock::new(),
            ticks: AtomicU64::new(0),
            parked: AtomicBool::new(false),
        });
        let me = t.clone();
        let handle = std::thread::Builder::new()
            .name("oort-wasm-epoch".into())
            .spawn(move || me.run(&engine))?;
        // Set before any hold can exist: `start` has not returned yet.
        let _ = t.thread.set(handle.thread().clone());
        Ok(t)
    }

    fn run(&self, engine: &Engine) {
        while !self.stop.load(Ordering::SeqCst) {
            if self.active.load(Ordering::SeqCst) == 0 {
                self.parked.store(true, Ordering::SeqCst);
                // Checked again after saying so: a hold taken in between
                // has unparked this thread (the token makes `park` return).
                if self.active.load(Ordering::SeqCst) == 0 && !self.stop.load(Ordering::SeqCst) {
                    std::thread::park();
                }
                self.parked.store(false, Ordering::SeqCst);
                continue;
            }
            std::thread::sleep(EPOCH_TICK);
            engine.increment_epoch();
            self.ticks.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Keeps the epoch advancing until the hold is dropped (one per call).
    pub fn hold(self: &Arc<Self>) -> TickHold {
        if self.active.fetch_add(1, Ordering::SeqCst) == 0 {
            self.wake();
        }
        TickHold(self.clone())
    }

    fn wake(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }

    /// Stops the thread (the engine is going away).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake();
    }

    /// Epoch increments so far.
    pub fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }

    /// True while the thread is parked (no call under way).
    pub fn parked(&self) -> bool {
        self.parked.load(Ordering::SeqCst)
    }
}

/// A call under way: the epoch advances while one exists.
pub struct TickHold(Arc<Ticker>);

impl Drop for TickHold {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn wait_until(what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::yield_now();
        }
    }

    #[test]
    fn the_epoch_advances_only_while_a_call_holds_it() {
        let t = Ticker::start(Engine::default()).unwrap();
        // Idle: parked without a single tick.
        wait_until("the idle ticker to park", || t.parked());
        assert_eq!(t.ticks(), 0);
        // Two holds at once (two calls), then one after the other ends.
        let a = t.hold();
        let b = t.hold();
        wait_until("two ticks", || t.ticks() >= 2);
        drop(a);
        let n = t.ticks();
        wait_until("a tick with one call left", || t.ticks() > n);
        drop(b);
        wait_until("the ticker to park again", || t.parked());
        // Parked: nothing advances it until the next hold.
        let n = t.ticks();
        assert!(t.parked());
        let c = t.hold();
        wait_until("a tick after a new call", || t.ticks() > n);
        drop(c);
        t.stop();
    }
}
