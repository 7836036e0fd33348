//! Checkpoint progress of a sink node (rules with `qos` >= 1).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// How far a sink node has delivered, for checkpoints and delivery
/// acknowledgements: the rule counts the emissions it sends and asks the
/// node to confirm the first `want` of them; while such a request is open
/// the node confirms (after [`oort_core::Sink::flush`]) how many it has
/// delivered, as that grows. A batch that could not be delivered is never
/// confirmed: with checkpoints the deliver stage keeps retrying it.
#[derive(Default)]
pub struct SinkProgress {
    want: AtomicU64,
    done: AtomicU64,
    wake: Notify,
    /// Woken when `done` moves (shared by the rule's sinks).
    pub rule: Arc<Notify>,
}

impl SinkProgress {
    pub fn new(rule: Arc<Notify>) -> SinkProgress {
        SinkProgress {
            rule,
            ..SinkProgress::default()
        }
    }

    /// Asks for the first `sent` emissions to be confirmed.
    pub fn request(&self, sent: u64) {
        self.want.fetch_max(sent, Ordering::AcqRel);
        self.wake.notify_one();
    }

    /// Emissions delivered and flushed.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Acquire)
    }

    /// The newest request not yet confirmed, if any.
    pub(super) fn wanted(&self) -> Option<u64> {
        let want = self.want.load(Ordering::Acquire);
        (want > self.done()).then_some(want)
    }

    /// Confirms the first `n` emissions.
    pub(super) fn confirm(&self, n: u64) {
        self.done.store(n, Ordering::Release);
        self.rule.notify_one();
    }
}

/// Waits for a checkpoint request (never, without checkpoints).
pub(super) async fn checkpoint_wanted(p: &Option<Arc<SinkProgress>>) {
    match p {
        Some(p) => p.wake.notified().await,
        None => std::future::pending().await,
    }
}
