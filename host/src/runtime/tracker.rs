//! What a rule has finished, for the two kinds of upstream acknowledgement:
//!
//! - **Checkpoints** (rules with `qos` >= 1): every `checkpointInterval` the
//!   rule notes how many emissions it has sent to its sinks and, per stream
//!   input, the sequence number of the last event it has finished with
//!   (processed and not held by a window). Once every sink confirms those
//!   emissions written and flushed, the hubs are told ([`Hub::ack`]), and a
//!   hub commits the newest source offset all its checkpointing rules have
//!   passed. After a crash the source resumes from there: events may be seen
//!   twice, never lost.
//! - **Delivery acknowledgements** (inputs whose source acknowledges only
//!   what was delivered, [`Hub::acks_on_delivery`]): after each pass that
//!   took events the rule asks its sinks to confirm what it has sent so far;
//!   once they do, each such hub learns how far the rule got
//!   ([`Hub::delivered`]). An event held by a window counts as finished
//!   (holding its acknowledgement would stall a broker that keeps only so
//!   many messages in flight); a window's content is lost in a crash unless
//!   the rule takes checkpoints of a rewindable source.
//!
//! Both share the sinks' [`SinkProgress`]: a sink confirms emissions once
//! they are written out (or, without checkpoints, counted as dropped after
//! the retries).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use oort_sql::ast::StreamKind;
use oort_sql::engine::Query;

use super::hub::Hub;
use super::rule::Input;
use super::sink::SinkProgress;

/// What the manager sets up for a rule's acknowledgements.
pub struct TrackCfg {
    /// The key the rule's run subscribed to its hubs with.
    pub run_key: String,
    /// One per sink node, in sink order (see [`SinkProgress`]).
    pub sinks: Vec<Arc<SinkProgress>>,
    /// Woken when a sink confirms progress.
    pub wake: Arc<tokio::sync::Notify>,
    /// `qos` >= 1: the checkpoint interval.
    pub checkpoint: Option<Duration>,
}

/// Emissions sent up to a point, and per input the last event then handed
/// to the query.
type Candidate = (u64, Vec<u64>);

/// Most delivery candidates kept while the sinks have not confirmed.
const MAX_CANDIDATES: usize = 1024;

struct Checkpoints {
    interval: Duration,
    next: tokio::time::Instant,
    /// Per input: the hub a checkpoint acks (stream inputs only: tables are
    /// kept whole).
    hubs: Vec<Option<Arc<Hub>>>,
    candidates: VecDeque<Candidate>,
}

struct Deliveries {
    /// Per input: the hub that wants delivery acknowledgements.
    hubs: Vec<Option<Arc<Hub>>>,
    candidates: VecDeque<Candidate>,
    /// What the last candidate was taken from.
    noted: Candidate,
}

pub struct Tracker {
    run_key: String,
    sinks: Vec<Arc<SinkProgress>>,
    wake: Arc<tokio::sync::Notify>,
    /// Emissions sent to the sinks.
    sent: u64,
    /// Per input: sequence number of the last event handed to the query.
    in_seq: Vec<u64>,
    checkpoints: Option<Checkpoints>,
    deliveries: Option<Deliveries>,
}

impl Tracker {
    /// `None` when the rule neither checkpoints nor reads a source that
    /// acknowledges on delivery (nothing to track).
    pub fn new(cfg: TrackCfg, inputs: &[Input]) -> Option<Tracker> {
        let checkpoints = cfg.checkpoint.map(|interval| Checkpoints {
            interval,
            next: tokio::time::Instant::now() + interval,
            hubs: inputs
                .iter()
                .map(|i| i.hub.clone().filter(|_| i.kind == StreamKind::Stream))
                .collect(),
            candidates: VecDeque::new(),
        });
        let hubs: Vec<Option<Arc<Hub>>> = inputs
            .iter()
            .map(|i| i.hub.clone().filter(|h| h.acks_on_delivery()))
            .collect();
        let deliveries = hubs.iter().any(Option::is_some).then(|| Deliveries {
            hubs,
            candidates: VecDeque::new(),
            noted: (0, vec![0; inputs.len()]),
        });
        if checkpoints.is_none() && deliveries.is_none() {
            return None;
        }
        Some(Tracker {
            run_key: cfg.run_key,
            sinks: cfg.sinks,
            wake: cfg.wake,
            sent: 0,
            in_seq: vec![0; inputs.len()],
            checkpoints,
            deliveries,
        })
    }

    /// Input `idx` handed events up to `seq` to the query.
    pub fn took(&mut self, idx: usize, seq: u64) {
        if let Some(s) = self.in_seq.get_mut(idx) {
            *s = seq;
        }
    }

    /// `n` more emissions went to the sinks.
    pub fn sent(&mut self, n: u64) {
        self.sent += n;
    }

    /// When the next checkpoint is due.
    pub fn checkpoint_at(&self) -> Option<tokio::time::Instant> {
        self.checkpoints.as_ref().map(|c| c.next)
    }

    /// Takes a checkpoint: what the rule has sent, and per input the last
    /// event it finished with (not held by a window).
    pub fn checkpoint(&mut self, query: &Query) {
        let Some(c) = self.checkpoints.as_mut() else {
            return;
        };
        let held = query.min_retained_seq();
        let acks = self
            .in_seq
            .iter()
            .map(|&s| match held {
                Some(h) => s.min(h.saturating_sub(1)),
                None => s,
            })
            .collect();
        c.candidates.push_back((self.sent, acks));
        c.next = tokio::time::Instant::now() + c.interval;
        for p in &self.sinks {
            p.request(self.sent);
        }
    }

    /// After a pass: notes what the rule has taken and sent for delivery
    /// acknowledgements, and asks the sinks to confirm it.
    pub fn passed(&mut self) {
        let Some(d) = self.deliveries.as_mut() else {
            return;
        };
        if d.noted.0 == self.sent && d.noted.1 == self.in_seq {
            return;
        }
        d.noted.0 = self.sent;
        d.noted.1.clone_from(&self.in_seq);
        match d.candidates.back_mut() {
            // Nothing sent since: both are confirmed together.
            Some(last) if last.0 == self.sent => last.1.clone_from(&self.in_seq),
            _ => d.candidates.push_back((self.sent, self.in_seq.clone())),
        }
        super::thin_keeping_newest(&mut d.candidates, MAX_CANDIDATES);
        if self.sent > self.written() {
            for p in &self.sinks {
                p.request(self.sent);
            }
        }
    }

    /// True while some sink confirmation is awaited.
    pub fn waiting(&self) -> bool {
        self.checkpoints
            .as_ref()
            .is_some_and(|c| !c.candidates.is_empty())
            || self
                .deliveries
                .as_ref()
                .is_some_and(|d| !d.candidates.is_empty())
    }

    /// Emissions every sink has confirmed.
    fn written(&self) -> u64 {
        self.sinks
            .iter()
            .map(|p| p.done())
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Tells the hubs what every sink has confirmed.
    pub fn confirm(&mut self) {
        let written = self.written();
        if let Some(c) = self.checkpoints.as_mut() {
            if let Some((_, acks)) = newest_within(&mut c.candidates, written) {
                for (h, seq) in per_hub(&c.hubs, &acks) {
                    h.ack(&self.run_key, seq);
                }
            }
        }
        if let Some(d) = self.deliveries.as_mut() {
            if let Some((_, seqs)) = newest_within(&mut d.candidates, written) {
                for (h, seq) in per_hub(&d.hubs, &seqs) {
                    h.delivered(&self.run_key, seq);
                }
            }
        }
    }

    /// Waits for a sink to confirm progress (forever when nothing is awaited).
    pub async fn progress(t: &Option<Tracker>) {
        match t {
            Some(t) if t.waiting() => t.wake.notified().await,
            _ => std::future::pending().await,
        }
    }

    /// Sleeps until the next checkpoint (forever without checkpoints).
    pub async fn checkpoint_due(t: &Option<Tracker>) {
        match t.as_ref().and_then(Tracker::checkpoint_at) {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }
}

/// Each hub once, with the lowest sequence number of the inputs it feeds (a
/// rule may read one stream twice, as in a self-join: the hub may only go
/// as far as the input that is behind).
fn per_hub<'a, H>(hubs: &'a [Option<Arc<H>>], seqs: &[u64]) -> Vec<(&'a Arc<H>, u64)> {
    let mut out: Vec<(&Arc<H>, u64)> = Vec::with_capacity(hubs.len());
    for (hub, &seq) in hubs.iter().zip(seqs) {
        let Some(h) = hub else { continue };
        match out.iter_mut().find(|(o, _)| Arc::ptr_eq(o, h)) {
            Some((_, s)) => *s = (*s).min(seq),
            None => out.push((h, seq)),
        }
    }
    out
}

/// Pops the candidates `written` covers; returns the newest of them.
fn newest_within(q: &mut VecDeque<Candidate>, written: u64) -> Option<Candidate> {
    let mut last = None;
    while q.front().is_some_and(|(s, _)| *s <= written) {
        last = q.pop_front();
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hub_feeding_two_inputs_goes_as_far_as_the_one_behind() {
        let (a, b) = (Arc::new(1), Arc::new(2));
        let hubs = vec![Some(a.clone()), None, Some(b.clone()), Some(a.clone())];
        let got: Vec<(i32, u64)> = per_hub(&hubs, &[30, 99, 7, 12])
            .into_iter()
            .map(|(h, s)| (**h, s))
            .collect();
        assert_eq!(got, vec![(1, 12), (2, 7)]);
    }

    #[test]
    fn candidates_are_popped_up_to_what_is_written() {
        let mut q: VecDeque<Candidate> = [(2, vec![10]), (5, vec![20]), (9, vec![30])].into();
        assert_eq!(newest_within(&mut q, 1), None);
        assert_eq!(newest_within(&mut q, 6), Some((5, vec![20])));
        assert_eq!(q.len(), 1);
    }
}
