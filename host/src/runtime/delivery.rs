//! Delivery acknowledgements of a hub whose source acknowledges upstream
//! only what the rules have written out ([`oort_core::Source::acks_on_delivery`],
//! an MQTT QoS 1 subscription with a persistent session).
//!
//! The hub's pump takes the source's messages in rounds; after each round it
//! notes how many messages it has taken in all and the sequence number of the
//! last event broadcast so far ([`DeliveryLog::round`]). Each rule reading the
//! stream reports the sequence number up to which it has finished every event
//! (results written by all its sinks, or held in a window:
//! [`DeliveryLog::delivered`]). A round is released once every rule has
//! passed its last event; the source then acknowledges its messages. A crash
//! before that leaves them unacknowledged, and the broker sends them again.

use std::collections::{HashMap, VecDeque};

/// Most rounds remembered; beyond it every other one is merged into the
/// next (a message is then released a little later: still safe).
const MAX_ROUNDS: usize = 4096;

#[derive(Debug, Default)]
pub struct DeliveryLog {
    /// `(last event's sequence number, messages taken)` after each round,
    /// oldest first, not released yet.
    rounds: VecDeque<(u64, u64)>,
    /// Per rule run: every event up to this sequence number is finished.
    rules: HashMap<String, u64>,
    /// Messages released so far.
    released: u64,
}

impl DeliveryLog {
    /// A round ended: `taken` messages in all, the last event broadcast
    /// being `last_seq`. Returns the new released count if it moved.
    pub fn round(&mut self, last_seq: u64, taken: u64) -> Option<u64> {
        if self.rounds.back().is_some_and(|(s, _)| *s == last_seq) {
            // No event since the previous round: they release together.
            self.rounds.pop_back();
        }
        self.rounds.push_back((last_seq, taken));
        super::thin_keeping_newest(&mut self.rounds, MAX_ROUNDS);
        self.release()
    }

    /// A rule run subscribed when the last event broadcast was `at`: it has
    /// nothing to finish before.
    pub fn join(&mut self, run_key: &str, at: u64) {
        self.rules.insert(run_key.to_string(), at);
    }

    /// A rule run left. Returns the new released count if it moved (the
    /// rules left behind may be further on); with no rule left nothing is
    /// released: what was not finished stays unacknowledged.
    pub fn leave(&mut self, run_key: &str) -> Option<u64> {
        self.rules.remove(run_key);
        self.release()
    }

    /// True when no rule run is subscribed.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Rule run `run_key` finished every event up to `seq`. Returns the new
    /// released count if it moved.
    pub fn delivered(&mut self, run_key: &str, seq: u64) -> Option<u64> {
        match self.rules.get_mut(run_key) {
            Some(at) if *at < seq => *at = seq,
            _ => return None,
        }
        self.release()
    }

    fn release(&mut self) -> Option<u64> {
        let low = self.rules.values().copied().min()?;
        let before = self.released;
        while let Some(&(seq, taken)) = self.rounds.front() {
            if seq > low {
                break;
            }
            self.released = taken;
            self.rounds.pop_front();
        }
        (self.released > before).then_some(self.released)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_is_released_once_every_rule_passed_its_last_event() {
        let mut d = DeliveryLog::default();
        d.join("a", 0);
        d.join("b", 0);
        // Round 1: 3 messages, events up to 10; round 2: 2 more, up to 20.
        assert_eq!(d.round(10, 3), None);
        assert_eq!(d.round(20, 5), None);
        assert_eq!(d.delivered("a", 20), None, "b has not finished");
        assert_eq!(d.delivered("b", 15), Some(3), "b passed round 1 only");
        assert_eq!(d.delivered("b", 20), Some(5));
        // Going back is ignored; an unknown run changes nothing.
        assert_eq!(d.delivered("b", 12), None);
        assert_eq!(d.delivered("zz", 99), None);
    }

    #[test]
    fn rounds_without_events_go_with_the_events_before_them() {
        let mut d = DeliveryLog::default();
        d.join("a", 0);
        assert_eq!(d.round(10, 2), None);
        // Two messages that made no event (decode errors).
        assert_eq!(d.round(10, 4), None);
        assert_eq!(d.delivered("a", 10), Some(4));
        // Nothing new since: released at once.
        assert_eq!(d.round(10, 6), Some(6));
    }

    #[test]
    fn a_leaving_rule_releases_for_the_others_but_the_last_releases_nothing() {
        let mut d = DeliveryLog::default();
        d.join("a", 0);
        d.join("b", 0);
        d.round(10, 1);
        d.delivered("a", 10);
        assert_eq!(d.leave("b"), Some(1), "a alone has finished round 1");
        d.round(20, 2);
        assert_eq!(d.leave("a"), None, "nobody finished round 2");
        assert!(d.is_empty());
        assert_eq!(d.round(30, 3), None);
    }

    #[test]
    fn a_rule_joining_late_has_nothing_to_finish_before() {
        let mut d = DeliveryLog::default();
        d.join("a", 0);
        d.round(10, 1);
        d.join("b", 10);
        assert_eq!(d.delivered("a", 10), Some(1));
    }

    #[test]
    fn thinning_the_log_keeps_the_newest_round() {
        for extra in [1u64, 2, 3] {
            let mut d = DeliveryLog::default();
            d.join("a", 0);
            let last = MAX_ROUNDS as u64 + extra;
            for i in 1..=last {
                d.round(i * 10, i);
            }
            assert_eq!(d.rounds.back(), Some(&(last * 10, last)), "extra {extra}");
            assert_eq!(d.delivered("a", last * 10), Some(last));
        }
    }

    #[test]
    fn the_log_stays_bounded_and_releases_late_rather_than_early() {
        let mut d = DeliveryLog::default();
        d.join("a", 0);
        for i in 1..=(MAX_ROUNDS as u64 + 10) {
            d.round(i * 10, i);
        }
        assert!(d.rounds.len() <= MAX_ROUNDS);
        let released = d.delivered("a", 50).unwrap_or(0);
        assert!(released <= 5, "released {released} beyond event 50");
        let all = MAX_ROUNDS as u64 + 10;
        assert_eq!(d.delivered("a", all * 10), Some(all));
    }
}
