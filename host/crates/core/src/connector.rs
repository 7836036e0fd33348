//! Connector seams: what a source or sink implements, built-in or WebAssembly.
//!
//! The runtime only sees these traits. A factory's `create` does no IO, so a
//! rule can be validated without touching the network; IO starts in
//! [`Source::run`] and [`Sink::connect`].

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::env::ConnectorEnv;
use crate::lookup::LookupFactory;
use crate::meta::Meta;
use crate::room::BatchRoom;
use crate::schema::ConnectorInfo;
use crate::value::{Row, Value};

/// Connector properties after conf-key merging (the JSON object eKuiper users write).
pub type Props = serde_json::Map<String, serde_json::Value>;

/// A connectivity check in progress (see [`SourceFactory::ping`]): resolves
/// once the peer answered, or with why it did not.
pub type PingFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), ConnectorError>> + Send>>;

/// Errors a connector reports. The variant decides what the runtime does next.
#[derive(Debug, thiserror::Error, Clone)]
pub enum ConnectorError {
    /// Bad properties: fails rule creation/start with this message.
    #[error("{0}")]
    Config(String),
    /// The remote side is unreachable: retried with backoff.
    #[error("{0}")]
    Unavailable(String),
    /// One record could not be handled: counted as an exception, the rule goes on.
    #[error("{0}")]
    InvalidData(String),
    /// Anything else: stops the rule with this message.
    #[error("{0}")]
    Fatal(String),
}

impl ConnectorError {
    pub fn config(msg: impl Into<String>) -> Self {
        ConnectorError::Config(msg.into())
    }
    pub fn unavailable(msg: impl Into<String>) -> Self {
        ConnectorError::Unavailable(msg.into())
    }
}

/// Raw messages handed over together ([`SourceMsg::BytesBatch`]).
pub type RawBatch = Vec<(Bytes, Option<Arc<Meta>>)>;

/// What a source hands to the runtime.
#[derive(Debug, Clone)]
pub enum SourceMsg {
    /// Raw bytes to decode with the stream's FORMAT.
    Bytes {
        payload: Bytes,
        meta: Option<Arc<Meta>>,
    },
    /// Several raw messages read together (a plugin's packed batch), each
    /// decoded as [`SourceMsg::Bytes`] would be: one hand-over for all of
    /// them. Counts as one emit in [`SourceContext::handed`].
    BytesBatch(RawBatch),
    /// Already-structured rows (memory, simulator): no decoding.
    Rows {
        rows: Vec<Row>,
        meta: Option<Arc<Meta>>,
    },
    /// Rows the source decoded from JSON text itself (the file source's
    /// `json` and `lines` types): the runtime applies the stream's number
    /// rule (a schemaless stream reads every number as a float, as eKuiper;
    /// typed or `useInt64ForWholeNumber` streams keep whole numbers whole).
    JsonRows {
        rows: Vec<Row>,
        meta: Option<Arc<Meta>>,
    },
    /// A record the source could not read; counted as an exception.
    Error(String),
    /// The source will produce nothing more (a bounded file, a non-looping simulator).
    Eof,
    /// A rewindable source's position after everything emitted so far. Once
    /// every rule with checkpoints (`qos` >= 1) has finished with those
    /// events, the runtime stores it, hands it back through
    /// [`SourceContext::take_commit`] and passes it as
    /// [`SourceContext::resume`] at the next start.
    Offset(String),
}

/// Connection status as shown in rule metrics (`connection_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnStatus {
    Connecting = 0,
    Connected = 1,
    Disconnected = -1,
}

/// Shared connection-state cell a connector updates and the status API reads.
#[derive(Debug, Clone)]
pub struct ConnState(Arc<Mutex<ConnInfo>>);

#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub status: ConnStatus,
    pub last_connected_ms: i64,
    pub last_disconnected_ms: i64,
    pub last_disconnected_message: String,
    pub last_try_ms: i64,
    /// Further numeric metrics of the node's connector (a plugin's calls,
    /// time in the guest...), shown in the rule status after the connection's.
    pub metrics: Vec<(&'static str, f64)>,
}

impl Default for ConnState {
    fn default() -> Self {
        ConnState(Arc::new(Mutex::new(ConnInfo {
            status: ConnStatus::Connecting,
            last_connected_ms: 0,
            last_disconnected_ms: 0,
            last_disconnected_message: String::new(),
            last_try_ms: 0,
            metrics: Vec::new(),
        })))
    }
}

impl ConnState {
    pub fn connecting(&self) {
        let mut g = self.0.lock();
        g.status = ConnStatus::Connecting;
        g.last_try_ms = crate::value::now_ms();
    }
    pub fn connected(&self) {
        let mut g = self.0.lock();
        g.status = ConnStatus::Connected;
        g.last_connected_ms = crate::value::now_ms();
    }
    pub fn disconnected(&self, msg: impl Into<String>) {
        let mut g = self.0.lock();
        g.status = ConnStatus::Disconnected;
        g.last_disconnected_ms = crate::value::now_ms();
        g.last_disconnected_message = msg.into();
    }
    /// Replaces the node's extra metrics (see [`ConnInfo::metrics`]).
    pub fn set_metrics(&self, m: &[(&'static str, f64)]) {
        let mut g = self.0.lock();
        g.metrics.clear();
        g.metrics.extend_from_slice(m);
    }
    pub fn snapshot(&self) -> ConnInfo {
        self.0.lock().clone()
    }
}

/// Everything a running source needs from the runtime.
#[derive(Clone)]
pub struct SourceContext {
    /// The rule or shared stream this instance serves (for logs and client ids).
    pub id: String,
    pub cancel: CancellationToken,
    pub conn: ConnState,
    /// The last committed offset of a rewindable source (see
    /// [`SourceMsg::Offset`]); `None` on a first start.
    pub resume: Option<String>,
    commit: Arc<Mutex<Option<String>>>,
    handed: Arc<watch::Sender<u64>>,
    /// Cancelled once [`Self::handed`] will not move any more.
    handing: CancellationToken,
    out: mpsc::Sender<SourceMsg>,
    /// Bounds the messages in batches waiting in `out` (see [`BatchRoom`]).
    room: Option<BatchRoom>,
}

/// The runtime's side of [`SourceContext::handed`]: reports how many of the
/// source's messages it has finished handing on.
#[derive(Clone)]
pub struct HandedReporter {
    count: Arc<watch::Sender<u64>>,
    finished: CancellationToken,
}

impl HandedReporter {
    /// `n` more messages (in the order they were emitted) are done with.
    pub fn add(&self, n: u64) {
        if n > 0 {
            self.count.send_modify(|c| *c += n);
        }
    }

    /// The first `n` messages are done with (a count never goes back).
    pub fn reach(&self, n: u64) {
        self.count.send_if_modified(|c| {
            let moved = n > *c;
            if moved {
                *c = n;
            }
            moved
        });
    }

    /// The count will not move any more (no rule is left to finish the
    /// rest): a stopping source need not wait for it.
    pub fn finish(&self) {
        self.finished.cancel();
    }
}

impl SourceContext {
    pub fn new(
        id: impl Into<String>,
        cancel: CancellationToken,
        out: mpsc::Sender<SourceMsg>,
    ) -> Self {
        SourceContext {
            id: id.into(),
            cancel,
            conn: ConnState::default(),
            resume: None,
            commit: Arc::default(),
            handed: Arc::new(watch::channel(0).0),
            handing: CancellationToken::new(),
            out,
            room: None,
        }
    }

    /// Counts the messages of every [`SourceMsg::BytesBatch`] against
    /// `room`, which the runtime gives back as it takes batches in.
    pub fn with_batch_room(mut self, room: BatchRoom) -> Self {
        self.room = Some(room);
        self
    }

    /// True when the consumer takes [`SourceMsg::BytesBatch`] (the runtime
    /// does, counting batches with a [`BatchRoom`]). A source that batches
    /// only when it pays, such as MQTT with what one read brought, sends
    /// messages one by one otherwise: a wrapper such as `edgex` counts the
    /// messages of its inner source one for one.
    pub fn takes_batches(&self) -> bool {
        self.room.is_some()
    }

    /// An empty vector for a [`SourceMsg::BytesBatch`]: one the runtime
    /// took in and gave back ([`BatchRoom::recycle`]) when there is one.
    pub fn batch_vector(&self) -> RawBatch {
        self.room
            .as_ref()
            .map(BatchRoom::vector)
            .unwrap_or_default()
    }

    /// How many of the messages this source emitted (every [`Self::emit`]
    /// that returned true, counted from the first) the runtime has finished
    /// with: decoded and in the queue of every rule that reads the stream,
    /// or counted as an exception; for a source whose
    /// [`Source::acks_on_delivery`] is true, only once every such rule has
    /// also written the results out. A source that acknowledges upstream
    /// (MQTT QoS >= 1) acknowledges a message once this count passes it.
    pub fn handed(&self) -> watch::Receiver<u64> {
        self.handed.subscribe()
    }

    /// Cancelled once [`Self::handed`] will not move any more: a source
    /// that waits at its stop for the last acknowledgements stops waiting.
    pub fn handing_finished(&self) -> CancellationToken {
        self.handing.clone()
    }

    /// The runtime's side of [`Self::handed`].
    pub fn handed_reporter(&self) -> HandedReporter {
        HandedReporter {
            count: self.handed.clone(),
            finished: self.handing.clone(),
        }
    }

    /// The slot the runtime puts committed offsets in (shared with the source).
    pub fn commit_slot(&self) -> Arc<Mutex<Option<String>>> {
        self.commit.clone()
    }

    /// The newest offset committed since the last call, if any: every rule
    /// with checkpoints is done with the events before it, so the source
    /// may acknowledge it upstream.
    pub fn take_commit(&self) -> Option<String> {
        self.commit.lock().take()
    }

    /// Sends one message; returns false when the consumer is gone (stop running).
    pub async fn emit(&self, msg: SourceMsg) -> bool {
        if self.cancel.is_cancelled() {
            return false;
        }
        if let (Some(room), SourceMsg::BytesBatch(b)) = (&self.room, &msg) {
            if !room.take(b.len(), &self.cancel).await {
                return false;
            }
        }
        // While the runtime keeps up the queue has room: no waiting, and no
        // waiter registered with the cancellation token for every message.
        let msg = match self.out.try_send(msg) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
            Err(mpsc::error::TrySendError::Full(m)) => m,
        };
        tokio::select! {
            r = self.out.send(msg) => r.is_ok(),
            _ = self.cancel.cancelled() => false,
        }
    }

    pub async fn emit_bytes(&self, payload: Bytes, meta: Option<Arc<Meta>>) -> bool {
        self.emit(SourceMsg::Bytes { payload, meta }).await
    }

    pub async fn emit_rows(&self, rows: Vec<Row>) -> bool {
        self.emit(SourceMsg::Rows { rows, meta: None }).await
    }
}

/// A running source instance.
#[async_trait]
pub trait Source: Send {
    /// Runs until cancelled (`ctx.cancel`) or the data ends. Return `Ok(())` after
    /// sending [`SourceMsg::Eof`] for bounded sources, or on cancellation.
    /// Transient failures (broker down) should be retried inside, reporting
    /// status through `ctx.conn`; a returned error stops the rule.
    async fn run(&mut self, ctx: SourceContext) -> Result<(), ConnectorError>;

    /// True when this source acknowledges upstream only what the rules have
    /// delivered: [`SourceContext::handed`] then counts messages whose
    /// results every rule reading the stream has written out (or counted as
    /// dropped), not just queued. Read once, before [`Self::run`].
    fn acks_on_delivery(&self) -> bool {
        false
    }
}

/// Creates sources of one type (`mqtt`, `memory`, a plugin name...).
pub trait SourceFactory: Send + Sync {
    fn kind(&self) -> &str;
    /// Traits, default conf keys and property schema ([`ConnectorInfo`]).
    fn info(&self) -> ConnectorInfo;
    /// Checks DATASOURCE and props without building anything (a stream or a
    /// conf key is stored only when this passes). No IO. The default builds
    /// an instance and drops it.
    fn validate(
        &self,
        env: &ConnectorEnv,
        datasource: &str,
        props: &Props,
    ) -> Result<(), ConnectorError> {
        self.create(env, datasource, props).map(drop)
    }
    /// Validates props and builds an instance. No IO here.
    fn create(
        &self,
        env: &ConnectorEnv,
        datasource: &str,
        props: &Props,
    ) -> Result<Box<dyn Source>, ConnectorError>;
    /// A connectivity check with `props` (eKuiper's
    /// `POST /metadata/sources/connection/{type}`): connects, waits for the
    /// peer's answer, disconnects. `None`: this connector has no peer to check.
    fn ping(&self, _env: &ConnectorEnv, _props: &Props) -> Option<PingFuture> {
        None
    }
    /// True when this source emits rows rather than bytes (FORMAT is ignored).
    fn emits_rows(&self) -> bool {
        false
    }
}

/// What a sink reads of each [`SinkItem`], declared once on its factory
/// ([`SinkFactory::consumes`]). The runtime builds only that: encoded bytes,
/// row objects, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumes {
    /// Only [`SinkItem::payload`] (the FORMAT encoding, compressed and
    /// encrypted when asked); `data` is `Value::Null` unless a dynamic
    /// property (`{{...}}` in a prop) needs the row.
    Payload,
    /// Only [`SinkItem::data`] (row objects); `payload` is empty.
    Rows,
    /// Both.
    Both,
}

impl Consumes {
    pub fn payload(self) -> bool {
        matches!(self, Consumes::Payload | Consumes::Both)
    }
    pub fn rows(self) -> bool {
        matches!(self, Consumes::Rows | Consumes::Both)
    }
}

/// One item handed to a sink: the result data and/or its encoding, as the
/// factory declared with [`SinkFactory::consumes`].
#[derive(Debug, Clone)]
pub struct SinkItem {
    /// A row object (sendSingle) or an array of row objects (after
    /// `dataTemplate`, `dataField`, `fields`). `Value::Null` for sinks that
    /// consume the payload only (unless a dynamic property needs it).
    pub data: Value,
    /// The encoded payload (format, fields, dataTemplate, compression and
    /// encryption applied). Empty for sinks that consume rows only.
    pub payload: Bytes,
}

/// Context of a running sink.
#[derive(Clone)]
pub struct SinkContext {
    pub id: String,
    pub cancel: CancellationToken,
    pub conn: ConnState,
    /// The rule this sink writes for (empty outside a rule).
    pub rule: String,
    /// The node as the rule status names it: `sink_<type>_<action index>`.
    pub op: String,
    /// The writer's index when the node runs `concurrency` > 1 writers.
    pub instance: u32,
}

impl SinkContext {
    pub fn new(id: impl Into<String>, cancel: CancellationToken) -> Self {
        SinkContext {
            id: id.into(),
            cancel,
            conn: ConnState::default(),
            rule: String::new(),
            op: String::new(),
            instance: 0,
        }
    }

    /// Names the rule and node (see the fields).
    pub fn with_node(mut self, rule: &str, op: String) -> Self {
        self.rule = rule.to_string();
        self.op = op;
        self
    }
}

/// A running sink instance.
#[async_trait]
pub trait Sink: Send {
    async fn connect(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError>;
    /// Writes a batch. `Unavailable` errors are retried by the runtime.
    async fn collect(
        &mut self,
        ctx: &SinkContext,
        items: &[SinkItem],
    ) -> Result<(), ConnectorError>;
    /// Writes a batch the resend cache sends on its alternate queue
    /// (`resendAlterQueue: true`). A sink that honours `resendDestination`
    /// (see [`SinkFactory::resend_destination`]) sends it there; the default
    /// is [`Sink::collect`].
    async fn collect_resend(
        &mut self,
        ctx: &SinkContext,
        items: &[SinkItem],
    ) -> Result<(), ConnectorError> {
        self.collect(ctx, items).await
    }
    async fn close(&mut self, _ctx: &SinkContext) -> Result<(), ConnectorError> {
        Ok(())
    }
    /// Hands off whatever the sink buffers internally. Called before a
    /// checkpoint counts the written rows as done (rules with `qos` >= 1).
    async fn flush(&mut self, _ctx: &SinkContext) -> Result<(), ConnectorError> {
        Ok(())
    }
    /// True when the sink supports pipelined writes ([`Sink::send`] and
    /// [`Sink::settle`]): the runtime then hands it the next batches while
    /// the peer has yet to confirm earlier ones, and counts a batch written
    /// only once it settled. For sinks whose peer confirms asynchronously
    /// (MQTT QoS >= 1 acknowledgements): a batch per round trip otherwise.
    fn pipelined(&self) -> bool {
        false
    }
    /// Most batches the runtime keeps in flight for a pipelined sink before
    /// it waits for the oldest to settle.
    fn pipeline_depth(&self) -> usize {
        4
    }
    /// Hands a batch to the peer without waiting for its confirmation;
    /// returns a ticket for [`Sink::settle`]. Errors as for `collect` (the
    /// batch was not handed off). The default is `collect` (settled at once).
    async fn send(&mut self, ctx: &SinkContext, items: &[SinkItem]) -> Result<u64, ConnectorError> {
        self.collect(ctx, items).await.map(|()| 0)
    }
    /// Hands several batches off at once (`items` cut at `ends`, each the
    /// end of one batch): what one pass over the rule's input made. Pushes
    /// a ticket per batch handed off, in order; on an error the batches from
    /// `tickets.len()` on were not handed off. The default sends each.
    async fn send_many(
        &mut self,
        ctx: &SinkContext,
        items: &[SinkItem],
        ends: &[usize],
        tickets: &mut Vec<u64>,
    ) -> Result<(), ConnectorError> {
        let mut start = 0;
        for &end in ends {
            tickets.push(self.send(ctx, &items[start..end]).await?);
            start = end;
        }
        Ok(())
    }
    /// Waits until the batch of `ticket` is delivered. Tickets are settled
    /// in the order `send` gave them out; an error means that batch was not
    /// (or not entirely) delivered and the runtime sends it again, retries
    /// and drops as for `collect`. Must be cancel-safe: the runtime waits
    /// for a settlement and for new input at once, and a settle cut short
    /// is called again with the same ticket.
    async fn settle(&mut self, _ctx: &SinkContext, _ticket: u64) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// Creates sinks of one type.
pub trait SinkFactory: Send + Sync {
    fn kind(&self) -> &str;
    /// Traits, default conf keys and property schema ([`ConnectorInfo`]).
    fn info(&self) -> ConnectorInfo;
    /// Checks props without building anything. No IO. The default builds an
    /// instance and drops it.
    fn validate(&self, env: &ConnectorEnv, props: &Props) -> Result<(), ConnectorError> {
        self.create(env, props).map(drop)
    }
    /// Validates props (connector-specific keys; the common sink keys such as
    /// `format` or `sendSingle` are also present and must be tolerated) and
    /// builds an instance. No IO here.
    fn create(&self, env: &ConnectorEnv, props: &Props) -> Result<Box<dyn Sink>, ConnectorError>;
    /// True when this sink renders something per row with these props (a
    /// `{{...}}` template in a property): it is then handed the row with
    /// each payload even if it [`Consumes::Payload`] only. The default
    /// looks at the top-level connector properties.
    fn needs_rows(&self, props: &Props) -> bool {
        dynamic_sink_props(props).next().is_some()
    }
    /// Refuses a template (`{{...}}`) in a property this sink does not
    /// render per row: it would otherwise be used as literal text. The
    /// default trusts the property schema's [`crate::PropSpec::dynamic`]
    /// marks; keys outside the schema are left to the unknown-key warning.
    fn check_templates(&self, props: &Props) -> Result<(), ConnectorError> {
        let info = self.info();
        for (k, _) in dynamic_sink_props(props) {
            if let Some(p) = info
                .properties
                .iter()
                .find(|p| p.name.eq_ignore_ascii_case(k))
            {
                if !p.dynamic {
                    return Err(ConnectorError::Config(format!(
                        "{}: property {k} holds a template ({{{{...}}}}) but the {} sink does not render templates in it; give a fixed value",
                        self.kind(),
                        self.kind()
                    )));
                }
            }
        }
        Ok(())
    }
    /// A connectivity check, as [`SourceFactory::ping`].
    fn ping(&self, _env: &ConnectorEnv, _props: &Props) -> Option<PingFuture> {
        None
    }
    /// What this sink reads of each item (the one declaration; see [`Consumes`]).
    fn consumes(&self) -> Consumes {
        Consumes::Both
    }
    /// Whether this sink honours the common property `resendDestination`
    /// (in [`Sink::collect_resend`]); when not, a rule setting it is refused.
    fn resend_destination(&self) -> bool {
        false
    }
}

/// Built-ins and plugins register through the same registry.
#[derive(Default, Clone)]
pub struct Registry {
    sources: Arc<parking_lot::RwLock<ahash::AHashMap<String, Arc<dyn SourceFactory>>>>,
    sinks: Arc<parking_lot::RwLock<ahash::AHashMap<String, Arc<dyn SinkFactory>>>>,
    lookups: Arc<parking_lot::RwLock<ahash::AHashMap<String, Arc<dyn LookupFactory>>>>,
}

impl Registry {
    pub fn add_source(&self, f: Arc<dyn SourceFactory>) {
        self.sources.write().insert(f.kind().to_string(), f);
    }
    pub fn add_sink(&self, f: Arc<dyn SinkFactory>) {
        self.sinks.write().insert(f.kind().to_string(), f);
    }
    pub fn add_lookup(&self, f: Arc<dyn LookupFactory>) {
        self.lookups.write().insert(f.kind().to_string(), f);
    }
    pub fn lookup(&self, kind: &str) -> Option<Arc<dyn LookupFactory>> {
        self.lookups.read().get(kind).cloned()
    }
    pub fn lookup_kinds(&self) -> Vec<String> {
        let mut v: Vec<String> = self.lookups.read().keys().cloned().collect();
        v.sort();
        v
    }
    pub fn remove_source(&self, kind: &str) {
        self.sources.write().remove(kind);
    }
    pub fn remove_sink(&self, kind: &str) {
        self.sinks.write().remove(kind);
    }
    pub fn source(&self, kind: &str) -> Option<Arc<dyn SourceFactory>> {
        self.sources.read().get(kind).cloned()
    }
    pub fn sink(&self, kind: &str) -> Option<Arc<dyn SinkFactory>> {
        self.sinks.read().get(kind).cloned()
    }
    pub fn source_kinds(&self) -> Vec<String> {
        let mut v: Vec<String> = self.sources.read().keys().cloned().collect();
        v.sort();
        v
    }
    pub fn sink_kinds(&self) -> Vec<String> {
        let mut v: Vec<String> = self.sinks.read().keys().cloned().collect();
        v.sort();
        v
    }
}

/// Reads a typed property with a clear error naming the key.
pub fn prop<T: serde::de::DeserializeOwned>(
    props: &Props,
    key: &str,
) -> Result<Option<T>, ConnectorError> {
    match props.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| ConnectorError::Config(format!("invalid property {key}: {e}"))),
    }
}

/// Deserialises a whole props object into a connector's config struct.
pub fn parse_props<T: serde::de::DeserializeOwned>(props: &Props) -> Result<T, ConnectorError> {
    serde_json::from_value(serde_json::Value::Object(props.clone()))
        .map_err(|e| ConnectorError::Config(format!("invalid properties: {e}")))
}

/// eKuiper's common sink properties as it spells them: the runtime's sink
/// pipeline reads them; every other property belongs to the connector.
pub const COMMON_SINK_KEYS: &[&str] = &[
    "sendSingle",
    "omitIfEmpty",
    "format",
    "schemaId",
    "delimiter",
    "hasHeader",
    "fields",
    "excludeFields",
    "dataField",
    "tableDataField",
    "dataTemplate",
    "batchSize",
    "lingerInterval",
    "bufferLength",
    "concurrency",
    "runAsync",
    "compression",
    "compressionProps",
    "encryption",
    "encProps",
    "retryCount",
    "retryInterval",
    "enableCache",
    "memoryCacheThreshold",
    "maxDiskCache",
    "bufferPageSize",
    "resendInterval",
    "cleanCacheAtStop",
    "resendAlterQueue",
    "resendPriority",
    "resendIndicatorField",
    "resendDestination",
    "resourceId",
];

/// True when `key` is a common sink property (any case).
pub fn is_common_sink_key(key: &str) -> bool {
    COMMON_SINK_KEYS.iter().any(|c| c.eq_ignore_ascii_case(key))
}

/// The connector properties (not common ones) whose value is a `{{...}}`
/// template (eKuiper's dynamic properties), in `props` order.
pub fn dynamic_sink_props(props: &Props) -> impl Iterator<Item = (&String, &str)> {
    props.iter().filter_map(|(k, v)| {
        let s = v.as_str()?;
        (s.contains("{{") && !is_common_sink_key(k)).then_some((k, s))
    })
}
