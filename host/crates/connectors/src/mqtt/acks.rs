//! Which QoS >= 1 publishes the broker acknowledged, publish by publish, so a
//! sink reports a batch written only once the broker has all of it.
//!
//! Every publish handed to the client gets a sequence number
//! ([`Acks::hand_off`]). The client writes its queue in order, so the n-th
//! `Outgoing::Publish` event is sequence n ([`Acks::sent`], which remembers
//! the packet id), and a PUBACK/PUBCOMP for that packet id settles it
//! ([`Acks::acked`]). A connection break ([`Acks::broken`]) settles what was
//! in flight or still queued as *lost*: the client forgets those publishes
//! (see `EventLoop::after_break`) and the sink pipeline resends the batches
//! they belong to. Counting by packet identity (not by totals) keeps an
//! acknowledgement from ever being credited to another publish, whatever
//! the timing of a break.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

/// How far below the settled floor lost sequence numbers are kept: a batch
/// longer than this could miss that one of its publishes was lost.
const LOST_KEEP: u64 = 1 << 24;

/// How many publishes may be settled above one that is not before that one
/// is given up as lost.
const MAX_AHEAD: usize = 1 << 16;

pub(crate) struct Acks {
    /// The last sequence number handed out; held across the hand-off so
    /// numbers follow the client's queue order.
    order: tokio::sync::Mutex<u64>,
    state: tokio::sync::watch::Sender<AckState>,
}

#[derive(Debug, Default)]
struct AckState {
    /// The last sequence number the client wrote out (or lost unsent).
    sent: u64,
    /// Written out, not acknowledged yet: packet id -> sequence number.
    inflight: HashMap<u16, u64>,
    /// Every sequence number up to here is settled (acknowledged or lost).
    floor: u64,
    /// Settled sequence numbers above `floor`.
    settled: BTreeSet<u64>,
    /// Sequence numbers lost in a break (kept `LOST_KEEP` below `floor`).
    lost: BTreeSet<u64>,
    /// Sequence numbers the broker refused, with its reason (kept like `lost`).
    refused: std::collections::BTreeMap<u64, String>,
}

/// What the connection said about one of the sink's publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Report {
    /// Written out with this packet id ([`Acks::sent`]).
    Sent(u16),
    /// Acknowledged ([`Acks::acked`]).
    Acked(u16),
    /// Refused, with the broker's reason ([`Acks::refused`]).
    Refused(u16, String),
}

impl AckState {
    /// Applies one report; true when it settled something.
    fn report(&mut self, r: &Report) -> bool {
        match r {
            Report::Sent(pkid) => {
                self.sent += 1;
                let seq = self.sent;
                match self.inflight.insert(*pkid, seq) {
                    // The client reuses a packet id only once it is settled;
                    // if not, the older publish cannot be told apart any more.
                    Some(old) => {
                        self.lost.insert(old);
                        self.settle(old);
                        true
                    }
                    None => false,
                }
            }
            Report::Acked(pkid) => match self.inflight.remove(pkid) {
                Some(seq) => {
                    self.settle(seq);
                    true
                }
                None => false,
            },
            Report::Refused(pkid, why) => match self.inflight.remove(pkid) {
                Some(seq) => {
                    self.refused.insert(seq, why.clone());
                    self.settle(seq);
                    let keep = self.floor.saturating_sub(LOST_KEEP);
                    self.refused = self.refused.split_off(&keep);
                    true
                }
                None => false,
            },
        }
    }

    fn settle(&mut self, seq: u64) {
        if seq == self.floor + 1 {
            self.floor = seq;
            while self.settled.remove(&(self.floor + 1)) {
                self.floor += 1;
            }
        } else if seq > self.floor {
            self.settled.insert(seq);
            if self.settled.len() > MAX_AHEAD {
                // Publishes the broker never acknowledged on a connection
                // that stayed up: given up as lost, so the state stays
                // bounded (their batches failed as stalled long ago).
                while let Some(next) = self.settled.pop_first() {
                    for gap in self.floor + 1..next {
                        self.lost.insert(gap);
                    }
                    self.floor = next;
                    if self.settled.first() != Some(&(self.floor + 1)) {
                        break;
                    }
                }
            }
        }
    }
}

/// A batch's publishes: sequence numbers `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub first: u64,
    pub last: u64,
}

impl Span {
    pub fn extend(span: Option<Span>, seq: u64) -> Span {
        match span {
            Some(s) => Span {
                first: s.first,
                last: seq,
            },
            None => Span {
                first: seq,
                last: seq,
            },
        }
    }
}

/// Why [`Acks::wait`] gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AckWait {
    /// The connection broke before all of it was acknowledged.
    Broken,
    /// Nothing was settled for the stall time; this many are missing.
    Stalled(u64),
    /// The broker refused a publish of it (MQTT 5 reason).
    Refused(String),
}

impl Default for Acks {
    fn default() -> Self {
        Acks {
            order: tokio::sync::Mutex::new(0),
            state: tokio::sync::watch::Sender::new(AckState::default()),
        }
    }
}

/// The order of hand-offs, held ([`Acks::try_order`]).
pub(crate) struct Order<'a>(tokio::sync::MutexGuard<'a, u64>);

impl Order<'_> {
    /// The number of the publish just queued.
    pub fn next(mut self) -> u64 {
        *self.0 += 1;
        *self.0
    }
}

impl Acks {
    /// Runs `publish` (which queues one QoS >= 1 publish on the client) and
    /// numbers it when it succeeds. Concurrent hand-offs are serialised so
    /// the numbers follow the client's queue.
    pub async fn hand_off<E>(
        &self,
        publish: impl std::future::Future<Output = Result<(), E>>,
    ) -> Result<u64, E> {
        let mut last = self.order.lock().await;
        publish.await?;
        *last += 1;
        Ok(*last)
    }

    /// The order of hand-offs if no other holds it now: a publish queued
    /// without waiting while it is held is numbered with
    /// [`Order::next`] ([`Self::hand_off`] without waiting).
    pub fn try_order(&self) -> Option<Order<'_>> {
        self.order.try_lock().ok().map(Order)
    }

    /// The client wrote out the next queued publish, with packet id `pkid`.
    /// Waiters are woken only if that settled something: they wait on
    /// settlements, and waking them per publish written costs a lock per
    /// slot of the channel's notifier.
    pub fn sent(&self, pkid: u16) {
        self.apply(&[Report::Sent(pkid)]);
    }

    /// The broker acknowledged packet id `pkid` (PUBACK, or PUBCOMP at QoS 2).
    pub fn acked(&self, pkid: u16) {
        self.apply(&[Report::Acked(pkid)]);
    }

    /// The broker refused packet id `pkid` (an MQTT 5 error reason): that
    /// publish was not delivered, its batch fails.
    pub fn refused(&self, pkid: u16, why: &str) {
        self.apply(&[Report::Refused(pkid, why.to_string())]);
    }

    /// Several of the reports above at once, in order (what one read of the
    /// connection brought): one lock, and at most one wake-up of the waiters.
    pub fn apply(&self, reports: &[Report]) {
        self.state.send_if_modified(|s| {
            let mut settled = false;
            for r in reports {
                settled |= s.report(r);
            }
            settled
        });
    }

    /// The connection broke: what was in flight is lost, and so are the next
    /// `unsent` queued publishes, which the client dropped.
    pub fn broken(&self, unsent: u64) {
        self.state.send_modify(|s| {
            let inflight: Vec<u64> = s.inflight.drain().map(|(_, seq)| seq).collect();
            for seq in inflight {
                s.lost.insert(seq);
                s.settle(seq);
            }
            for _ in 0..unsent {
                s.sent += 1;
                let seq = s.sent;
                s.lost.insert(seq);
                s.settle(seq);
            }
            let keep = s.floor.saturating_sub(LOST_KEEP);
            s.lost = s.lost.split_off(&keep);
        });
    }

    /// Waits until every publish of `span` is acknowledged.
    pub async fn wait(&self, span: Span, stall: Duration) -> Result<(), AckWait> {
        let mut rx = self.state.subscribe();
        loop {
            let missing = {
                let s = rx.borrow_and_update();
                if let Some((_, why)) = s.refused.range(span.first..=span.last).next() {
                    return Err(AckWait::Refused(why.clone()));
                }
                if s.lost.range(span.first..=span.last).next().is_some() {
                    return Err(AckWait::Broken);
                }
                if s.floor >= span.last {
                    return Ok(());
                }
                let from = span.first.max(s.floor + 1);
                (span.last + 1 - from) - s.settled.range(from..=span.last).count() as u64
            };
            if missing == 0 {
                return Ok(());
            }
            match tokio::time::timeout(stall, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return Err(AckWait::Stalled(missing)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    pub(super) async fn hand(acks: &Acks, n: u64) -> Span {
        let mut span = None;
        for _ in 0..n {
            let seq = acks.hand_off(async { Ok::<(), ()>(()) }).await;
            span = Some(Span::extend(span, seq.unwrap_or_default()));
        }
        span.unwrap_or(Span { first: 0, last: 0 })
    }

    const STALL: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn a_batch_is_done_when_each_of_its_publishes_is_acknowledged() {
        let acks = Acks::default();
        let b = hand(&acks, 3).await;
        acks.sent(1);
        acks.sent(2);
        acks.sent(3);
        // Out of order, and an acknowledgement nobody waits for.
        acks.acked(3);
        acks.acked(1);
        acks.acked(77);
        assert_eq!(acks.wait(b, STALL).await, Err(AckWait::Stalled(1)));
        acks.acked(2);
        assert_eq!(acks.wait(b, STALL).await, Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_break_fails_the_batches_it_touched_and_no_other() {
        let acks = Arc::new(Acks::default());
        let a = hand(&acks, 2).await;
        let b = hand(&acks, 2).await;
        let c = hand(&acks, 2).await;
        // a written and acknowledged; b written, half acknowledged; c still
        // queued when the connection breaks, the first of c dropped by the
        // client, the second queued after the client's drain.
        acks.sent(1);
        acks.sent(2);
        acks.acked(1);
        acks.acked(2);
        acks.sent(3);
        acks.sent(4);
        acks.acked(3);
        let waiter = {
            let acks = acks.clone();
            tokio::spawn(async move { acks.wait(b, STALL).await })
        };
        tokio::task::yield_now().await;
        acks.broken(1);
        assert_eq!(waiter.await.ok(), Some(Err(AckWait::Broken)));
        assert_eq!(acks.wait(a, STALL).await, Ok(()));
        assert_eq!(acks.wait(c, STALL).await, Err(AckWait::Broken));
        // After the reconnect the remaining queued publish goes out, reusing
        // packet id 4: only its own acknowledgement counts.
        let d = hand(&acks, 1).await;
        acks.sent(4);
        acks.sent(5);
        acks.acked(5);
        assert_eq!(acks.wait(d, STALL).await, Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn an_acknowledgement_after_a_break_is_never_credited_to_another_publish() {
        // The regression behind a lost run: a publish queued while the
        // connection was breaking went out after the reconnect; its
        // acknowledgement must not settle a later batch's publish.
        let acks = Acks::default();
        let a = hand(&acks, 1).await;
        acks.sent(1);
        acks.broken(0);
        assert_eq!(acks.wait(a, STALL).await, Err(AckWait::Broken));
        let late = hand(&acks, 1).await;
        let next = hand(&acks, 1).await;
        acks.sent(2);
        acks.sent(3);
        acks.acked(2);
        assert_eq!(acks.wait(late, STALL).await, Ok(()));
        assert_eq!(acks.wait(next, STALL).await, Err(AckWait::Stalled(1)));
        acks.broken(0);
        assert_eq!(acks.wait(next, STALL).await, Err(AckWait::Broken));
    }

    #[tokio::test(start_paused = true)]
    async fn a_publish_never_acknowledged_is_given_up_after_many_later_ones() {
        let acks = Acks::default();
        let stuck = hand(&acks, 1).await;
        acks.sent(1);
        let n = MAX_AHEAD as u64 + 1;
        let later = hand(&acks, n).await;
        for i in 0..n {
            // Packet ids cycle like the client's, skipping the stuck one.
            let pkid = 2 + (i % 60_000) as u16;
            acks.sent(pkid);
            acks.acked(pkid);
        }
        assert_eq!(acks.wait(later, STALL).await, Ok(()));
        assert_eq!(acks.wait(stuck, STALL).await, Err(AckWait::Broken));
        let s = acks.state.borrow();
        assert!(s.settled.is_empty(), "{} kept", s.settled.len());
        assert_eq!(s.floor, n + 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_hand_off_takes_no_number() {
        let acks = Acks::default();
        assert_eq!(
            acks.hand_off(async { Err::<(), _>("full") }).await,
            Err("full")
        );
        let a = hand(&acks, 1).await;
        assert_eq!(a, Span { first: 1, last: 1 });
    }

    #[tokio::test(start_paused = true)]
    async fn a_publish_queued_without_waiting_takes_the_next_number_unless_a_hand_off_holds_the_order(
    ) {
        let acks = Acks::default();
        assert_eq!(acks.hand_off(async { Ok::<(), ()>(()) }).await, Ok(1));
        assert_eq!(acks.try_order().map(Order::next), Some(2));
        assert_eq!(acks.try_order().map(Order::next), Some(3));
        // A hand-off waiting for room holds the order: no number is taken
        // beside it (the caller waits its turn).
        let (room_tx, room_rx) = tokio::sync::oneshot::channel::<()>();
        let waiting = acks.hand_off(async move { room_rx.await.map_err(|_| ()) });
        let mut waiting = std::pin::pin!(waiting);
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        assert!(acks.try_order().is_none());
        let _ = room_tx.send(());
        assert_eq!(waiting.await, Ok(4));
        assert_eq!(acks.try_order().map(Order::next), Some(5));
    }
}

#[cfg(test)]
mod refused_tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn reports_applied_together_settle_as_one_by_one() {
        let (one, many) = (Acks::default(), Acks::default());
        let spans = [
            super::tests::hand(&one, 4).await,
            super::tests::hand(&many, 4).await,
        ];
        // Written, acknowledged out of order, one refused, one unknown id,
        // and packet id 1 reused after it settled.
        let reports = [
            Report::Sent(1),
            Report::Sent(2),
            Report::Acked(2),
            Report::Sent(3),
            Report::Acked(1),
            Report::Refused(3, "quota".into()),
            Report::Acked(99),
            Report::Sent(1),
            Report::Acked(1),
        ];
        for r in &reports {
            match r {
                Report::Sent(p) => one.sent(*p),
                Report::Acked(p) => one.acked(*p),
                Report::Refused(p, why) => one.refused(*p, why),
            }
        }
        many.apply(&reports);
        for (acks, span) in [(&one, spans[0]), (&many, spans[1])] {
            assert_eq!(
                acks.wait(span, Duration::from_secs(10)).await,
                Err(AckWait::Refused("quota".into()))
            );
            let s = acks.state.borrow();
            assert_eq!((s.sent, s.floor), (4, 4));
            assert!(s.inflight.is_empty());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_publish_fails_its_batch_and_no_other() {
        let acks = Acks::default();
        let mut a = None;
        for _ in 0..2 {
            let seq = acks
                .hand_off(async { Ok::<(), ()>(()) })
                .await
                .unwrap_or_default();
            a = Some(Span::extend(a, seq));
        }
        let b = Span::extend(
            None,
            acks.hand_off(async { Ok::<(), ()>(()) })
                .await
                .unwrap_or_default(),
        );
        let (a, b) = (a.unwrap_or(b), b);
        acks.sent(1);
        acks.sent(2);
        acks.sent(3);
        acks.acked(1);
        acks.refused(2, "NotAuthorized");
        acks.acked(3);
        assert_eq!(
            acks.wait(a, Duration::from_secs(10)).await,
            Err(AckWait::Refused("NotAuthorized".into()))
        );
        assert_eq!(acks.wait(b, Duration::from_secs(10)).await, Ok(()));
    }
}
