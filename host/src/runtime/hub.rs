//! A stream hub: one running source instance of a stream, its FORMAT decoder,
//! and the rules subscribed to it. Events are decoded once into
//! [`SharedEvent`]s and the same batch (`Arc`) is handed to every subscriber.
//!
//! Hubs of streams that can be shared (push sources such as mqtt or memory,
//! or any stream with `SHARED="true"`) are kept in [`Hubs`] by stream name;
//! bounded sources (file, simulator) get a private hub per rule unless shared,
//! so each rule reads the whole input.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use oort_core::codec::{self, DecodeOptions, Decoder};
use oort_core::{
    now_ms, BatchRoom, Event, HandedReporter, Meta, Pooled, Props, Row, SharedEvent, SourceContext,
    SourceFactory, SourceMsg, VecPool,
};
use parking_lot::Mutex;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::delivery::DeliveryLog;
use super::metrics::NodeMetrics;

/// What a hub delivers to a subscribed rule.
#[derive(Clone, Debug)]
pub enum HubMsg {
    /// Shared by every subscriber; its vector goes back to the hub's pool
    /// once the last of them is done with it.
    Events(Arc<Pooled<SharedEvent>>),
    /// A record that could not be read or decoded: one exception.
    Error(Arc<str>),
    /// The source ended (bounded input) or failed (`Some(message)`).
    End(Option<Arc<str>>),
}

/// What a rule receives: a hub message tagged with the rule's source index,
/// holding its room in the rule's input queue until dropped.
pub struct Delivery {
    pub index: usize,
    pub msg: HubMsg,
    _room: Option<OwnedSemaphorePermit>,
}

/// A rule's input queue. Its bound, the rule's `bufferLength`, counts
/// events as eKuiper does, not the batches they travel in (a batch holds up
/// to `MAX_BATCH` events: counting batches let a slow sink's rule buffer
/// 256 times more than asked).
#[derive(Clone)]
pub struct RuleQueue {
    tx: mpsc::Sender<Delivery>,
    room: Arc<Semaphore>,
    cap: u32,
}

impl RuleQueue {
    /// A queue of `buffer_length` events (the rule option, validated to
    /// 1..=`MAX_BUFFER_LENGTH`) and its receiver.
    pub fn new(buffer_length: usize) -> (RuleQueue, mpsc::Receiver<Delivery>) {
        let cap = buffer_length.clamp(
            1,
            crate::manager::rule_def::limits::MAX_BUFFER_LENGTH as usize,
        );
        let (tx, rx) = mpsc::channel(cap);
        (
            RuleQueue {
                tx,
                room: Arc::new(Semaphore::new(cap)),
                cap: cap as u32,
            },
            rx,
        )
    }

    /// Waits for room for the message's events, then queues it; false when
    /// the rule is gone.
    pub async fn send(&self, index: usize, msg: HubMsg) -> bool {
        let weight = match &msg {
            HubMsg::Events(v) => v.len().min(self.cap as usize) as u32,
            _ => 0,
        };
        let room = if weight > 0 {
            match self.room.clone().acquire_many_owned(weight).await {
                Ok(p) => Some(p),
                Err(_) => return false,
            }
        } else {
            None
        };
        self.tx
            .send(Delivery {
                index,
                msg,
                _room: room,
            })
            .await
            .is_ok()
    }
}

/// A rule's subscription.
pub struct Subscriber {
    pub rule_id: String,
    pub index: usize,
    pub queue: RuleQueue,
    /// The rule takes checkpoints (`qos` >= 1): offsets wait for its acks.
    pub checkpoint: bool,
}

/// Stores a committed offset under the hub's checkpoint key.
pub type PersistOffset = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// Where a hub's committed source offsets are kept.
pub struct CheckpointSpec {
    /// Store key: the stream name (only shared hubs keep offsets).
    pub key: String,
    /// The offset committed last time, handed to the source at start.
    pub resume: Option<String>,
    pub persist: PersistOffset,
}

/// Most offsets remembered while waiting for acks; beyond it every other
/// one is dropped (a later commit then covers a little less: still safe).
const MAX_OFFSETS: usize = 1024;

/// Offsets reported by the source, each with the sequence number of the
/// last event before it, and how far each checkpointing rule has got.
#[derive(Default)]
struct OffsetLog {
    entries: VecDeque<(u64, String)>,
    acks: HashMap<String, u64>,
    committed: Option<String>,
}

/// Arrival sequence numbers: process-wide, handed to each hub in blocks so
/// that numbering costs no shared atomic per event. Within one hub they
/// increase with arrival order. 0 is never used.
static NEXT_SEQ: AtomicU64 = AtomicU64::new(1);
const SEQ_BLOCK: u64 = 4096;

#[derive(Default)]
struct SeqGen {
    next: u64,
    end: u64,
}

impl SeqGen {
    fn next(&mut self) -> u64 {
        if self.next == self.end {
            self.next = NEXT_SEQ.fetch_add(SEQ_BLOCK, Ordering::Relaxed);
            self.end = self.next + SEQ_BLOCK;
        }
        let s = self.next;
        self.next += 1;
        s
    }
}

pub struct Hub {
    pub name: String,
    subs: Mutex<Vec<Subscriber>>,
    cancel: CancellationToken,
    pub conn: oort_core::ConnState,
    pub metrics: Arc<NodeMetrics>,
    /// Sequence number of the last event broadcast.
    last_seq: AtomicU64,
    offsets: Mutex<OffsetLog>,
    commit_slot: Arc<Mutex<Option<String>>>,
    checkpoint_key: String,
    persist: Option<PersistOffset>,
    /// Events flow once the first rule has subscribed (none are lost to a
    /// hub nobody listens to yet).
    first_sub: tokio::sync::Notify,
    /// Set once the hub's task ended: nothing more reaches the rules.
    ended: tokio::sync::watch::Sender<bool>,
    /// Set once the source's task returned.
    source_done: tokio::sync::watch::Sender<bool>,
    /// With a source that acknowledges on delivery: what the rules have
    /// finished ([`DeliveryLog`]).
    delivery: Option<Mutex<DeliveryLog>>,
    /// Tells the source how many of its messages are done with.
    handed: HandedReporter,
    /// Vectors of event batches the rules are done with.
    batches: VecPool<SharedEvent>,
}

impl Hub {
    pub fn subscribe(&self, s: Subscriber) {
        if let Some(d) = &self.delivery {
            let at = self.last_seq.load(Ordering::Acquire);
            d.lock().join(&s.rule_id, at);
        }
        if s.checkpoint {
            // A new rule has nothing to finish before this point.
            let at = self.last_seq.load(Ordering::Acquire);
            self.offsets.lock().acks.insert(s.rule_id.clone(), at);
        }
        self.subs.lock().push(s);
        // Only now may the first events go out: they have someone to go to.
        self.first_sub.notify_one();
    }

    /// Removes a rule; returns true when no subscriber is left.
    pub fn unsubscribe(&self, rule_id: &str) -> bool {
        self.offsets.lock().acks.remove(rule_id);
        if let Some(d) = &self.delivery {
            let mut d = d.lock();
            if let Some(n) = d.leave(rule_id) {
                self.handed.reach(n);
            }
            if d.is_empty() {
                // Nobody will finish the rest: the source stops waiting.
                self.handed.finish();
            }
        }
        let mut g = self.subs.lock();
        g.retain(|s| s.rule_id != rule_id);
        g.is_empty()
    }

    /// The offset committed last (this run or, before the first commit,
    /// the one the source resumed from).
    pub fn committed_offset(&self) -> Option<String> {
        self.offsets.lock().committed.clone()
    }

    fn wants_offsets(&self) -> bool {
        !self.offsets.lock().acks.is_empty()
    }

    fn record_offset(&self, offset: String) {
        let seq = self.last_seq.load(Ordering::Acquire);
        let mut log = self.offsets.lock();
        if log.acks.is_empty() {
            return;
        }
        if log.entries.back().is_some_and(|(s, _)| *s == seq) {
            // Nothing new arrived since the previous offset: keep the newer one.
            log.entries.pop_back();
        }
        log.entries.push_back((seq, offset));
        super::thin_keeping_newest(&mut log.entries, MAX_OFFSETS);
    }

    /// A checkpointing rule (`run_key`) finished with every event of this
    /// hub up to `seq`. Commits the newest offset all of them have passed:
    /// stored under the checkpoint key and handed to the source.
    pub fn ack(&self, run_key: &str, seq: u64) {
        let commit = {
            let mut log = self.offsets.lock();
            match log.acks.get_mut(run_key) {
                Some(a) if *a < seq => *a = seq,
                Some(_) => {}
                None => return,
            }
            let Some(low) = log.acks.values().copied().min() else {
                return;
            };
            let mut newest = None;
            while log.entries.front().is_some_and(|(s, _)| *s <= low) {
                newest = log.entries.pop_front().map(|(_, o)| o);
            }
            if let Some(o) = &newest {
                log.committed = Some(o.clone());
            }
            newest
        };
        if let Some(o) = commit {
            if let Some(p) = &self.persist {
                p(&self.checkpoint_key, &o);
            }
            *self.commit_slot.lock() = Some(o);
        }
    }

    /// True when the source acknowledges upstream only what the rules have
    /// delivered: every rule reading it reports [`Self::delivered`].
    pub fn acks_on_delivery(&self) -> bool {
        self.delivery.is_some()
    }

    /// Rule run `run_key` has finished every event of this hub up to `seq`
    /// (its results are written out).
    pub fn delivered(&self, run_key: &str, seq: u64) {
        if let Some(d) = &self.delivery {
            if let Some(n) = d.lock().delivered(run_key, seq) {
                self.handed.reach(n);
            }
        }
    }

    /// No more deliveries will be reported (the server stops after the
    /// rules drained): the source stops waiting for them.
    pub fn finish_handing(&self) {
        self.handed.finish();
    }

    /// Waits until the source's task returned (after its last
    /// acknowledgements).
    pub async fn source_ended(&self) {
        let mut rx = self.source_done.subscribe();
        let _ = rx.wait_for(|e| *e).await;
    }

    pub fn stop(&self) {
        self.cancel.cancel();
    }

    /// Waits until the hub's task ended (after [`Hub::stop`], or at the end
    /// of a bounded source): every event it took is in the rules' queues.
    pub async fn ended(&self) {
        let mut rx = self.ended.subscribe();
        let _ = rx.wait_for(|e| *e).await;
    }

    async fn broadcast(&self, msg: HubMsg) {
        // Snapshot senders so the lock is not held across await.
        let targets: Vec<(usize, RuleQueue)> = self
            .subs
            .lock()
            .iter()
            .map(|s| (s.index, s.queue.clone()))
            .collect();
        for (idx, q) in targets {
            // A closed receiver means the rule stopped; it unsubscribes itself.
            let _ = q.send(idx, msg.clone()).await;
        }
    }
}

/// Everything needed to start a stream's source.
pub struct HubSpec {
    pub name: String,
    pub env: oort_core::ConnectorEnv,
    pub factory: Arc<dyn SourceFactory>,
    pub datasource: String,
    pub props: Props,
    pub format: String,
    pub decode: DecodeOptions,
    pub checkpoint: Option<CheckpointSpec>,
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("{0}")]
    Connector(#[from] oort_core::ConnectorError),
    #[error("{0}")]
    Codec(#[from] oort_core::codec::CodecError),
}

/// Creates the source (validating its props, no IO) and starts the hub task.
pub fn start(spec: HubSpec) -> Result<Arc<Hub>, HubError> {
    let mut source = spec
        .factory
        .create(&spec.env, &spec.datasource, &spec.props)?;
    let keep_integers = spec.decode.keep_integers;
    let decoder: Option<Box<dyn Decoder>> = if spec.factory.emits_rows() {
        None
    } else {
        Some(codec::decoder(&spec.format, &spec.decode)?)
    };
    let cancel = CancellationToken::new();
    let (tx, rx) = mpsc::channel::<SourceMsg>(SOURCE_QUEUE);
    // Messages in batches count by their number, as single ones do.
    let room = BatchRoom::new(SOURCE_QUEUE);
    let mut ctx =
        SourceContext::new(spec.name.clone(), cancel.clone(), tx).with_batch_room(room.clone());
    let (checkpoint_key, persist, resume) = match spec.checkpoint {
        Some(c) => (c.key, Some(c.persist), c.resume),
        None => (String::new(), None, None),
    };
    ctx.resume = resume.clone();
    let hub = Arc::new(Hub {
        name: spec.name.clone(),
        subs: Mutex::new(Vec::new()),
        cancel: cancel.clone(),
        conn: oort_core::ConnState::default(),
        metrics: Arc::new(NodeMetrics::default()),
        last_seq: AtomicU64::new(0),
        offsets: Mutex::new(OffsetLog {
            committed: resume,
            ..OffsetLog::default()
        }),
        commit_slot: ctx.commit_slot(),
        checkpoint_key,
        persist,
        first_sub: tokio::sync::Notify::new(),
        ended: tokio::sync::watch::channel(false).0,
        source_done: tokio::sync::watch::channel(false).0,
        delivery: source
            .acks_on_delivery()
            .then(|| Mutex::new(DeliveryLog::default())),
        handed: ctx.handed_reporter(),
        batches: VecPool::new(BATCH_SPARES, BATCH_SPARE_CAPACITY),
    });
    ctx.conn = hub.conn.clone();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<Option<String>>();
    let h = hub.clone();
    tokio::spawn(async move {
        let r = source.run(ctx).await;
        let _ = done_tx.send(r.err().map(|e| e.to_string()));
        h.source_done.send_replace(true);
    });
    let h = hub.clone();
    tokio::spawn(async move {
        pump(h.clone(), rx, room, decoder, keep_integers, done_rx, cancel).await;
        h.ended.send_replace(true);
    });
    Ok(hub)
}

const MAX_BATCH: usize = 256;

/// Event batch vectors a hub keeps for reuse: a few rounds' worth waiting in
/// the rules' queues. Larger than this many events, a batch's vector is
/// freed.
const BATCH_SPARES: usize = 8;
const BATCH_SPARE_CAPACITY: usize = 4096;

/// Source messages waiting for the pump, at most (single ones, and as many
/// again in batches: [`BatchRoom`]).
const SOURCE_QUEUE: usize = 1024;

async fn pump(
    hub: Arc<Hub>,
    mut rx: mpsc::Receiver<SourceMsg>,
    room: BatchRoom,
    mut decoder: Option<Box<dyn Decoder>>,
    // Rows the source decoded from JSON keep whole numbers whole (else floats).
    keep_integers: bool,
    done: tokio::sync::oneshot::Receiver<Option<String>>,
    cancel: CancellationToken,
) {
    let mut rows: Vec<Row> = Vec::with_capacity(16);
    let mut seqs = SeqGen::default();
    let mut msgs: Vec<SourceMsg> = Vec::with_capacity(MAX_BATCH);
    // Messages taken from the source so far.
    let mut taken: u64 = 0;
    tokio::select! {
        _ = hub.first_sub.notified() => {}
        _ = cancel.cancelled() => return,
    }
    loop {
        msgs.clear();
        let n = tokio::select! {
            n = rx.recv_many(&mut msgs, MAX_BATCH) => n,
            _ = cancel.cancelled() => 0,
        };
        if n == 0 {
            break;
        }
        let now = now_ms();
        let mut batch: Vec<SharedEvent> = hub.batches.take();
        let mut ended = false;
        for m in msgs.drain(..) {
            match m {
                SourceMsg::Bytes { payload, meta } => {
                    let one = std::iter::once((payload, meta));
                    let dec = decoder.as_deref_mut();
                    decode_into(&hub, dec, one, &mut rows, &mut seqs, now, &mut batch).await;
                }
                SourceMsg::BytesBatch(mut msgs) => {
                    room.give_back(msgs.len());
                    let dec = decoder.as_deref_mut();
                    decode_into(
                        &hub,
                        dec,
                        msgs.drain(..),
                        &mut rows,
                        &mut seqs,
                        now,
                        &mut batch,
                    )
                    .await;
                    room.recycle(msgs);
                }
                SourceMsg::Rows { rows: rs, meta } => {
                    hub.metrics.inc_in(rs.len() as u64);
                    for row in rs {
                        batch.push(Arc::new(Event {
                            row,
                            meta: meta.clone(),
                            seq: seqs.next(),
                            ts: now,
                        }));
                    }
                }
                SourceMsg::JsonRows { rows: rs, meta } => {
                    hub.metrics.inc_in(rs.len() as u64);
                    for mut row in rs {
                        if !keep_integers {
                            row = oort_core::codec::json::floats(row);
                        }
                        batch.push(Arc::new(Event {
                            row,
                            meta: meta.clone(),
                            seq: seqs.next(),
                            ts: now,
                        }));
                    }
                }
                SourceMsg::Error(e) => {
                    hub.metrics.exception(e.clone());
                    flush(&hub, &mut batch).await;
                    hub.broadcast(HubMsg::Error(Arc::from(e))).await;
                }
                SourceMsg::Eof => {
                    ended = true;
                }
                SourceMsg::Offset(o) => {
                    if hub.wants_offsets() {
                        // The events before the offset go out first, so its
                        // sequence number is that of the last of them.
                        flush(&hub, &mut batch).await;
                        hub.record_offset(o);
                    }
                }
            }
        }
        flush(&hub, &mut batch).await;
        // Every message of this round is now in each subscriber's queue (or
        // was counted as an exception): the source may acknowledge them,
        // or, acknowledging on delivery, once the rules have written them.
        taken += n as u64;
        match &hub.delivery {
            Some(d) => {
                let last = hub.last_seq.load(Ordering::Acquire);
                if let Some(n) = d.lock().round(last, taken) {
                    hub.handed.reach(n);
                }
            }
            None => hub.handed.reach(taken),
        }
        if ended {
            hub.broadcast(HubMsg::End(None)).await;
            return;
        }
    }
    if cancel.is_cancelled() {
        return;
    }
    // The source task returned: report how it ended.
    let err = done.await.ok().flatten();
    hub.broadcast(HubMsg::End(err.map(|e| Arc::from(e.as_str()))))
        .await;
}

/// Decodes raw messages into events appended to `batch` (each counted in;
/// without a decoder they are only counted). One that does not decode is an
/// exception, reported to the rules after the events before it.
async fn decode_into(
    hub: &Hub,
    dec: Option<&mut (dyn Decoder + 'static)>,
    msgs: impl ExactSizeIterator<Item = (bytes::Bytes, Option<Arc<Meta>>)>,
    rows: &mut Vec<Row>,
    seqs: &mut SeqGen,
    now: i64,
    batch: &mut Vec<SharedEvent>,
) {
    hub.metrics.inc_in(msgs.len() as u64);
    let Some(dec) = dec else {
        return;
    };
    batch.reserve(msgs.len());
    for (payload, meta) in msgs {
        rows.clear();
        match dec.decode(&payload, rows) {
            Ok(()) => {
                for row in rows.drain(..) {
                    batch.push(Arc::new(Event {
                        row,
                        meta: meta.clone(),
                        seq: seqs.next(),
                        ts: now,
                    }));
                }
            }
            Err(e) => {
                hub.metrics.exception(e.to_string());
                flush(hub, batch).await;
                hub.broadcast(HubMsg::Error(Arc::from(e.to_string()))).await;
            }
        }
    }
}

async fn flush(hub: &Hub, batch: &mut Vec<SharedEvent>) {
    if batch.is_empty() {
        return;
    }
    hub.metrics.inc_out(batch.len() as u64);
    if let Some(last) = batch.last() {
        hub.last_seq.store(last.seq, Ordering::Release);
    }
    let b = Arc::new(Pooled::new(std::mem::take(batch), &hub.batches));
    hub.broadcast(HubMsg::Events(b)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn events(n: usize) -> HubMsg {
        let schema = Arc::new(oort_core::Schema::from_strs(&["a"]));
        HubMsg::Events(Arc::new(
            (0..n)
                .map(|i| {
                    Arc::new(Event {
                        row: Row::new(schema.clone(), vec![oort_core::Value::Int(i as i64)]),
                        meta: None,
                        ts: 0,
                        seq: i as u64,
                    })
                })
                .collect::<Vec<_>>()
                .into(),
        ))
    }

    /// True when `send` completes without waiting.
    async fn sends_now(q: &RuleQueue, msg: HubMsg) -> bool {
        // A zero timeout still polls the send once.
        tokio::time::timeout(Duration::ZERO, q.send(0, msg))
            .await
            .is_ok_and(|ok| ok)
    }

    #[tokio::test]
    async fn the_rule_queue_counts_events_not_batches() {
        let (q, mut rx) = RuleQueue::new(10);
        assert!(sends_now(&q, events(8)).await);
        // 8 + 8 events are more than 10, although only 2 batches.
        assert!(!sends_now(&q, events(8)).await);
        // Messages without events take no room.
        assert!(sends_now(&q, HubMsg::Error(Arc::from("x"))).await);
        let first = rx.recv().await.expect("queued");
        assert!(matches!(&first.msg, HubMsg::Events(v) if v.len() == 8));
        assert!(
            !sends_now(&q, events(3)).await,
            "room is held until dropped"
        );
        drop(first);
        assert!(sends_now(&q, events(8)).await);
        // A batch larger than the whole queue waits for all of it, not forever.
        let (q, _rx) = RuleQueue::new(4);
        assert!(sends_now(&q, events(100)).await);
        // Large bufferLength values are honoured (up to the option's limit).
        let (q, _rx) = RuleQueue::new(100_000);
        assert!(sends_now(&q, events(40_000)).await);
        assert!(sends_now(&q, events(40_000)).await);
    }

    /// A source that emits what it is given, then ends.
    struct Scripted(parking_lot::Mutex<Vec<SourceMsg>>);

    struct ScriptedSource(Vec<SourceMsg>);

    #[async_trait::async_trait]
    impl oort_core::Source for ScriptedSource {
        async fn run(&mut self, ctx: SourceContext) -> Result<(), oort_core::ConnectorError> {
            for m in self.0.drain(..) {
                if !ctx.emit(m).await {
                    break;
                }
            }
            Ok(())
        }
    }

    impl SourceFactory for Scripted {
        fn kind(&self) -> &str {
            "scripted"
        }
        fn info(&self) -> oort_core::ConnectorInfo {
            oort_core::ConnectorInfo::new("test")
        }
        fn create(
            &self,
            _env: &oort_core::ConnectorEnv,
            _datasource: &str,
            _props: &Props,
        ) -> Result<Box<dyn oort_core::Source>, oort_core::ConnectorError> {
            Ok(Box::new(ScriptedSource(std::mem::take(
                &mut *self.0.lock(),
            ))))
        }
    }

    #[tokio::test]
    async fn a_batch_of_raw_messages_is_decoded_in_order_and_a_bad_one_is_one_exception() {
        let json = |s: &str| (bytes::Bytes::copy_from_slice(s.as_bytes()), None);
        let batch = SourceMsg::BytesBatch(vec![
            json(r#"{"a":1}"#),
            json(r#"{"a":2}"#),
            json("not json"),
            json(r#"{"a":3}"#),
        ]);
        let hub = start(HubSpec {
            name: "s".into(),
            env: Default::default(),
            factory: Arc::new(Scripted(parking_lot::Mutex::new(vec![
                batch,
                SourceMsg::Bytes {
                    payload: bytes::Bytes::from_static(br#"{"a":4}"#),
                    meta: None,
                },
                SourceMsg::Eof,
            ]))),
            datasource: String::new(),
            props: Props::new(),
            format: "json".into(),
            decode: DecodeOptions::default(),
            checkpoint: None,
        })
        .expect("hub starts");
        let (queue, mut rx) = RuleQueue::new(100);
        hub.subscribe(Subscriber {
            rule_id: "r".into(),
            index: 0,
            queue,
            checkpoint: false,
        });
        let mut seen = Vec::new();
        loop {
            let d = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("the hub delivers")
                .expect("queue open");
            match &d.msg {
                HubMsg::Events(v) => {
                    for e in v.iter() {
                        seen.push(format!("{:?}", e.row.get("a")));
                    }
                }
                HubMsg::Error(e) => seen.push(format!("error: {}", !e.is_empty())),
                HubMsg::End(_) => break,
            }
        }
        assert_eq!(
            seen,
            [
                "Some(Float(1.0))",
                "Some(Float(2.0))",
                "error: true",
                "Some(Float(3.0))",
                "Some(Float(4.0))"
            ]
        );
        // Five messages in, one of them an exception, four events out.
        let m = &hub.metrics;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        assert_eq!(
            (n(&m.records_in), n(&m.records_out), n(&m.exceptions)),
            (5, 4, 1)
        );
        // The batches' vectors came back to the hub once the rule was done
        // with them.
        assert!(hub.batches.kept() >= 1, "{:?}", hub.batches);
    }
}
