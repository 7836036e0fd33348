//! A stream hub: one running source instance of a stream, its FORMAT decoder,
//! and the rules subscribed to it. Events are decoded once into
//! [`SharedEvent`]s and the same batch (`Arc`) is handed to every subscriber.
//!
//! Hubs of streams that can be shared (push sources such as mqtt or memory,
//! or any stream with `SHARED="true"`) are kept in [`Hubs`] by stream name;
//! bounded sources (file, simulator) get a private hub per rule unless shared,
//! so each rule reads the whole input.

use std::sync::Arc;

use oort_core::codec::{self, DecodeOptions, Decoder};
use oort_core::{now_ms, Event, Props, Row, SharedEvent, SourceContext, SourceFactory, SourceMsg};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::metrics::NodeMetrics;

/// What a hub delivers to a subscribed rule.
#[derive(Clone, Debug)]
pub enum HubMsg {
    Events(Arc<Vec<SharedEvent>>),
    /// A record that could not be read or decoded: one exception.
    Error(Arc<str>),
    /// The source ended (bounded input) or failed (`Some(message)`).
    End(Option<Arc<str>>),
}

/// A rule's subscription: messages arrive tagged with the rule's source index.
pub struct Subscriber {
    pub rule_id: String,
    pub index: usize,
    pub tx: mpsc::Sender<(usize, HubMsg)>,
}

pub struct Hub {
    pub name: String,
    subs: Mutex<Vec<Subscriber>>,
    cancel: CancellationToken,
    pub conn: oort_core::ConnState,
    pub metrics: Arc<NodeMetrics>,
}

impl Hub {
    pub fn subscribe(&self, s: Subscriber) {
        self.subs.lock().push(s);
    }

    /// Removes a rule; returns true when no subscriber is left.
    pub fn unsubscribe(&self, rule_id: &str) -> bool {
        let mut g = self.subs.lock();
        g.retain(|s| s.rule_id != rule_id);
        g.is_empty()
    }

    pub fn stop(&self) {
        self.cancel.cancel();
    }

    async fn broadcast(&self, msg: HubMsg) {
        // Snapshot senders so the lock is not held across await.
        let targets: Vec<(usize, mpsc::Sender<(usize, HubMsg)>)> = self
            .subs
            .lock()
            .iter()
            .map(|s| (s.index, s.tx.clone()))
            .collect();
        for (idx, tx) in targets {
            // A closed receiver means the rule stopped; it unsubscribes itself.
            let _ = tx.send((idx, msg.clone())).await;
        }
    }
}

/// Everything needed to start a stream's source.
pub struct HubSpec {
    pub name: String,
    pub factory: Arc<dyn SourceFactory>,
    pub datasource: String,
    pub props: Props,
    pub format: String,
    pub decode: DecodeOptions,
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
    let mut source = spec.factory.create(&spec.datasource, &spec.props)?;
    let decoder: Option<Box<dyn Decoder>> = if spec.factory.emits_rows() {
        None
    } else {
        Some(codec::decoder(&spec.format, &spec.decode)?)
    };
    let cancel = CancellationToken::new();
    let hub = Arc::new(Hub {
        name: spec.name.clone(),
        subs: Mutex::new(Vec::new()),
        cancel: cancel.clone(),
        conn: oort_core::ConnState::default(),
        metrics: Arc::new(NodeMetrics::default()),
    });
    let (tx, rx) = mpsc::channel::<SourceMsg>(1024);
    let mut ctx = SourceContext::new(spec.name.clone(), cancel.clone(), tx);
    ctx.conn = hub.conn.clone();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<Option<String>>();
    tokio::spawn(async move {
        let r = source.run(ctx).await;
        let _ = done_tx.send(r.err().map(|e| e.to_string()));
    });
    let h = hub.clone();
    tokio::spawn(async move { pump(h, rx, decoder, done_rx, cancel).await });
    Ok(hub)
}

const MAX_BATCH: usize = 256;

async fn pump(
    hub: Arc<Hub>,
    mut rx: mpsc::Receiver<SourceMsg>,
    mut decoder: Option<Box<dyn Decoder>>,
    done: tokio::sync::oneshot::Receiver<Option<String>>,
    cancel: CancellationToken,
) {
    let mut rows: Vec<Row> = Vec::with_capacity(16);
    let mut msgs: Vec<SourceMsg> = Vec::with_capacity(MAX_BATCH);
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
        let mut batch: Vec<SharedEvent> = Vec::with_capacity(n);
        let mut ended = false;
        for m in msgs.drain(..) {
            match m {
                SourceMsg::Bytes { payload, meta } => {
                    hub.metrics.inc_in(1);
                    let Some(dec) = decoder.as_mut() else {
                        continue;
                    };
                    rows.clear();
                    match dec.decode(&payload, &mut rows) {
                        Ok(()) => {
                            for row in rows.drain(..) {
                                batch.push(Arc::new(Event {
                                    row,
                                    meta: meta.clone(),
                                    ts: now,
                                }));
                            }
                        }
                        Err(e) => {
                            hub.metrics.exception(e.to_string());
                            flush(&hub, &mut batch).await;
                            hub.broadcast(HubMsg::Error(Arc::from(e.to_string()))).await;
                        }
                    }
                }
                SourceMsg::Rows { rows: rs, meta } => {
                    hub.metrics.inc_in(rs.len() as u64);
                    for row in rs {
                        batch.push(Arc::new(Event {
                            row,
                            meta: meta.clone(),
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
            }
        }
        flush(&hub, &mut batch).await;
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

async fn flush(hub: &Hub, batch: &mut Vec<SharedEvent>) {
    if batch.is_empty() {
        return;
    }
    hub.metrics.inc_out(batch.len() as u64);
    let b = Arc::new(std::mem::take(batch));
    hub.broadcast(HubMsg::Events(b)).await;
}
