//! `oort-plugin-sdk`: write an Oort source or sink connector plugin in Rust.
//!
//! Implement [`Source`] (or [`Sink`]) for a type and call
//! [`export_source!`] (or [`export_sink!`]) once at the crate root. The macro
//! generates the `oort:connector@0.2.0` bindings inside your crate (packed
//! batches; [`export_source_v1!`] and [`export_sink_v1!`] target 0.1.0, for
//! servers older than 0.2.0's), keeps one
//! value of your type per plugin instance, parses `props-json` into [`Props`],
//! and converts between the SDK's types and the generated ones: you never
//! touch generated code.
//!
//! ```ignore
//! use oort_plugin_sdk::{export_source, Context, Error, Message, PluginInfo, Props, ReadOutcome, Source};
//! use std::time::Duration;
//!
//! struct Hello { left: u32 }
//!
//! impl Source for Hello {
//!     fn describe() -> PluginInfo { PluginInfo::new("hello", env!("CARGO_PKG_VERSION")) }
//!     fn open(_ctx: &Context, props: Props, _resume: Option<String>) -> Result<Self, Error> {
//!         let left = oort_plugin_sdk::prop::<u32>(&props, "count")?.unwrap_or(3);
//!         Ok(Hello { left })
//!     }
//!     fn read(&mut self, _max: u32, _wait: Duration) -> Result<ReadOutcome, Error> {
//!         if self.left == 0 { return Ok(ReadOutcome::EndOfStream); }
//!         self.left -= 1;
//!         Ok(ReadOutcome::one(Message::new(br#"{"hello":"world"}"#.to_vec())))
//!     }
//! }
//! export_source!(Hello);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release` and a
//! `crate-type = ["cdylib"]` library; the `.wasm` is a component ready to
//! install.

use std::sync::OnceLock;
use std::time::Duration;

pub use packed::{Batch, MessageRef};
pub use serde_json;

mod packed;
#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

include!(concat!(env!("OUT_DIR"), "/wit_macros.rs"));

/// Connector properties: always a JSON object (empty when none were given).
pub type Props = serde_json::Map<String, serde_json::Value>;

/// The property key under which the host passes a stream's `DATASOURCE` to a source.
pub const DATASOURCE_KEY: &str = "datasource";

/// What the host does with a failure (see the WIT `error-kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad properties: the stream/rule is refused with the message.
    Config,
    /// Remote side down or busy: retried with backoff.
    Unavailable,
    /// Credentials rejected or address not granted: treated like `Config`.
    Unauthorized,
    /// This record cannot be handled: dropped and counted, the rule goes on.
    InvalidData,
    /// A plugin bug: the rule stops.
    Internal,
}

/// A plugin error: a kind that drives the host and a message for users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthorized, message)
    }
    pub fn invalid_data(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidData, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    /// IO errors: a refused permission is `Unauthorized`, anything else `Unavailable`.
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::PermissionDenied => Error::unauthorized(e.to_string()),
            _ => Error::unavailable(e.to_string()),
        }
    }
}

/// One message: raw payload bytes, string metadata, optional event time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub payload: Vec<u8>,
    pub meta: Vec<(String, String)>,
    pub timestamp_ms: Option<u64>,
}

impl Message {
    pub fn new(payload: impl Into<Vec<u8>>) -> Self {
        Message {
            payload: payload.into(),
            meta: Vec::new(),
            timestamp_ms: None,
        }
    }
    /// Adds one metadata entry (readable in SQL with `meta(key)`).
    pub fn with_meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.meta.push((key.into(), value.into()));
        self
    }
    pub fn with_timestamp(mut self, unix_ms: u64) -> Self {
        self.timestamp_ms = Some(unix_ms);
        self
    }
}

/// Result of one `read`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Zero or more messages (empty: nothing arrived in time).
    Messages(Vec<Message>),
    /// Messages already packed (0.2.0's shape: write payloads in place
    /// with [`Batch::push_with`]); under 0.1.0 they are unpacked.
    Batch(Batch),
    /// A bounded source has no more data; `read` is not called again.
    EndOfStream,
}

impl ReadOutcome {
    pub fn none() -> Self {
        ReadOutcome::Messages(Vec::new())
    }
    pub fn one(m: Message) -> Self {
        ReadOutcome::Messages(vec![m])
    }
}

/// Where an instance runs (for logs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    pub rule_id: String,
    pub op_id: String,
    pub instance_index: u32,
}

/// Capabilities a plugin asks for; the operator grants a subset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    /// `scheme://host:port` patterns, e.g. `tcp://127.0.0.1:4222`.
    pub outbound: Vec<String>,
    /// Host directories to pre-open read-only.
    pub dirs: Vec<String>,
    /// Environment variable names.
    pub env: Vec<String>,
}

/// What `describe` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    /// JSON describing the accepted properties, for UIs.
    pub properties_schema: Option<String>,
    pub permissions: Permissions,
}

impl PluginInfo {
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            ..Default::default()
        }
    }
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = d.into();
        self
    }
    pub fn properties_schema(mut self, json: impl Into<String>) -> Self {
        self.properties_schema = Some(json.into());
        self
    }
    pub fn outbound(mut self, pattern: impl Into<String>) -> Self {
        self.permissions.outbound.push(pattern.into());
        self
    }
}

/// A partial sink write: the first `accepted` messages were handed off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFailure {
    pub accepted: u32,
    pub error: Error,
}

impl From<Error> for WriteFailure {
    fn from(error: Error) -> Self {
        WriteFailure { accepted: 0, error }
    }
}

/// A source connector. One value lives per plugin instance (one per connector node).
pub trait Source: Sized + 'static {
    /// Static metadata; must agree with the package manifest.
    fn describe() -> PluginInfo;
    /// Checks properties without IO. The default accepts everything.
    fn validate(_props: &Props) -> Result<(), Error> {
        Ok(())
    }
    /// Connects. `props[DATASOURCE_KEY]` holds the stream's DATASOURCE.
    fn open(ctx: &Context, props: Props, resume_offset: Option<String>) -> Result<Self, Error>;
    /// Returns up to `max_messages`, waiting at most `wait` for the first.
    fn read(&mut self, max_messages: u32, wait: Duration) -> Result<ReadOutcome, Error>;
    /// Offset after the last message read (rewindable sources only).
    fn offset(&self) -> Result<Option<String>, Error> {
        Ok(None)
    }
    /// A checkpoint containing `offset` completed.
    fn commit(&mut self, _offset: &str) -> Result<(), Error> {
        Ok(())
    }
    fn close(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

/// A sink connector. One value lives per plugin instance.
pub trait Sink: Sized + 'static {
    fn describe() -> PluginInfo;
    fn validate(_props: &Props) -> Result<(), Error> {
        Ok(())
    }
    fn open(ctx: &Context, props: Props) -> Result<Self, Error>;
    /// Writes a batch of encoded messages. On failure say how many were accepted.
    fn write(&mut self, batch: Vec<Message>) -> Result<(), WriteFailure>;
    /// Writes a packed batch as the 0.2.0 host sends it, without an owned
    /// copy per message. The default calls [`Sink::write`] with copies;
    /// override it for speed.
    fn write_batch(&mut self, batch: &Batch) -> Result<(), WriteFailure> {
        self.write(batch.to_messages())
    }
    fn flush(&mut self) -> Result<(), Error> {
        Ok(())
    }
    fn close(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

/// Parses `props-json`; an empty string counts as `{}`.
pub fn parse_props_json(json: &str) -> Result<Props, Error> {
    if json.trim().is_empty() {
        return Ok(Props::new());
    }
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::config("properties must be a JSON object")),
        Err(e) => Err(Error::config(format!("properties are not valid JSON: {e}"))),
    }
}

/// Reads one typed property; a wrong type is a `Config` error naming the key.
pub fn prop<T: serde::de::DeserializeOwned>(props: &Props, key: &str) -> Result<Option<T>, Error> {
    match props.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| Error::config(format!("invalid property {key}: {e}"))),
    }
}

/// Deserialises all properties into a config struct (`Config` error on mismatch).
pub fn parse_props<T: serde::de::DeserializeOwned>(props: &Props) -> Result<T, Error> {
    serde_json::from_value(serde_json::Value::Object(props.clone()))
        .map_err(|e| Error::config(format!("invalid properties: {e}")))
}

/// Log levels of the host's `log` import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

static LOGGER: OnceLock<fn(Level, &str)> = OnceLock::new();

/// Logs one line through the host (falls back to stderr before the first call).
pub fn log(level: Level, message: &str) {
    match LOGGER.get() {
        Some(f) => f(level, message),
        None => eprintln!("{level:?}: {message}"),
    }
}

/// Logging shorthands.
/// Outbound HTTP (`wasi:http`), under the plugin's outbound grants.
#[cfg(target_arch = "wasm32")]
pub mod http;

/// Reading from sockets with a deadline.
pub mod net;

pub mod logging {
    use super::{log, Level};
    pub fn debug(m: &str) {
        log(Level::Debug, m)
    }
    pub fn info(m: &str) {
        log(Level::Info, m)
    }
    pub fn warn(m: &str) {
        log(Level::Warn, m)
    }
    pub fn error(m: &str) {
        log(Level::Error, m)
    }
}

/// Glue used by the export macros. Not a stable API.
#[doc(hidden)]
pub mod __rt {
    use super::*;
    use std::cell::RefCell;

    pub fn set_logger(f: fn(Level, &str)) {
        let _ = LOGGER.set(f);
    }

    fn not_open() -> Error {
        Error::internal("the host called the plugin before open")
    }

    pub fn source_validate<T: Source>(props_json: &str) -> Result<(), Error> {
        T::validate(&parse_props_json(props_json)?)
    }

    pub fn source_open<T: Source>(
        slot: &RefCell<Option<T>>,
        ctx: Context,
        props_json: &str,
        resume: Option<String>,
    ) -> Result<(), Error> {
        let props = parse_props_json(props_json)?;
        T::validate(&props)?;
        let s = T::open(&ctx, props, resume)?;
        *slot.borrow_mut() = Some(s);
        Ok(())
    }

    pub fn source_read<T: Source>(
        slot: &RefCell<Option<T>>,
        max: u32,
        wait_ms: u32,
    ) -> Result<ReadOutcome, Error> {
        let mut g = slot.borrow_mut();
        let s = g.as_mut().ok_or_else(not_open)?;
        if max == 0 {
            return Ok(ReadOutcome::none());
        }
        s.read(max, Duration::from_millis(u64::from(wait_ms)))
    }

    pub fn source_offset<T: Source>(slot: &RefCell<Option<T>>) -> Result<Option<String>, Error> {
        slot.borrow().as_ref().ok_or_else(not_open)?.offset()
    }

    pub fn source_commit<T: Source>(slot: &RefCell<Option<T>>, offset: &str) -> Result<(), Error> {
        slot.borrow_mut()
            .as_mut()
            .ok_or_else(not_open)?
            .commit(offset)
    }

    pub fn source_close<T: Source>(slot: &RefCell<Option<T>>) -> Result<(), Error> {
        match slot.borrow_mut().take() {
            Some(mut s) => s.close(),
            None => Ok(()),
        }
    }

    pub fn sink_validate<T: Sink>(props_json: &str) -> Result<(), Error> {
        T::validate(&parse_props_json(props_json)?)
    }

    pub fn sink_open<T: Sink>(
        slot: &RefCell<Option<T>>,
        ctx: Context,
        props_json: &str,
    ) -> Result<(), Error> {
        let props = parse_props_json(props_json)?;
        T::validate(&props)?;
        let s = T::open(&ctx, props)?;
        *slot.borrow_mut() = Some(s);
        Ok(())
    }

    pub fn sink_write<T: Sink>(
        slot: &RefCell<Option<T>>,
        batch: Vec<Message>,
    ) -> Result<(), WriteFailure> {
        let mut g = slot.borrow_mut();
        let s = g.as_mut().ok_or_else(|| WriteFailure::from(not_open()))?;
        s.write(batch)
    }

    pub fn sink_write_batch<T: Sink>(
        slot: &RefCell<Option<T>>,
        batch: &Batch,
    ) -> Result<(), WriteFailure> {
        let mut g = slot.borrow_mut();
        let s = g.as_mut().ok_or_else(|| WriteFailure::from(not_open()))?;
        s.write_batch(batch)
    }

    pub fn sink_flush<T: Sink>(slot: &RefCell<Option<T>>) -> Result<(), Error> {
        slot.borrow_mut().as_mut().ok_or_else(not_open)?.flush()
    }

    pub fn sink_close<T: Sink>(slot: &RefCell<Option<T>>) -> Result<(), Error> {
        match slot.borrow_mut().take() {
            Some(mut s) => s.close(),
            None => Ok(()),
        }
    }
}

/// Conversions shared by both export macros (generated types differ per world,
/// so this is a macro too).
#[doc(hidden)]
#[macro_export]
macro_rules! __oort_common_glue {
    () => {
        fn __oort_log(level: $crate::Level, msg: &str) {
            use __oort_bindings::oort::connector::host::{log, Level as L};
            let l = match level {
                $crate::Level::Trace => L::Trace,
                $crate::Level::Debug => L::Debug,
                $crate::Level::Info => L::Info,
                $crate::Level::Warn => L::Warn,
                $crate::Level::Error => L::Error,
            };
            log(l, msg);
        }

        fn __oort_err(e: $crate::Error) -> __oort_bindings::oort::connector::types::Error {
            use __oort_bindings::oort::connector::types::{Error as E, ErrorKind as K};
            let kind = match e.kind {
                $crate::ErrorKind::Config => K::Config,
                $crate::ErrorKind::Unavailable => K::Unavailable,
                $crate::ErrorKind::Unauthorized => K::Unauthorized,
                $crate::ErrorKind::InvalidData => K::InvalidData,
                $crate::ErrorKind::Internal => K::Internal,
            };
            E {
                kind,
                message: e.message,
            }
        }

        fn __oort_info(
            i: $crate::PluginInfo,
        ) -> __oort_bindings::oort::connector::types::PluginInfo {
            use __oort_bindings::oort::connector::types::{Permissions, PluginInfo};
            PluginInfo {
                name: i.name,
                version: i.version,
                description: i.description,
                properties_schema: i.properties_schema,
                permissions: Permissions {
                    outbound: i.permissions.outbound,
                    dirs: i.permissions.dirs,
                    env: i.permissions.env,
                },
            }
        }

        fn __oort_ctx(c: __oort_bindings::oort::connector::types::Context) -> $crate::Context {
            $crate::Context {
                rule_id: c.rule_id,
                op_id: c.op_id,
                instance_index: c.instance_index,
            }
        }
    };
}

/// The parts of a source export both contract versions share: the
/// bindings module, the per-instance slot and every function but `read`.
#[doc(hidden)]
#[macro_export]
macro_rules! __oort_source_common {
    ($ty:ty, $generate:ident) => {
        #[allow(dead_code, clippy::all, missing_docs, unsafe_code)]
        mod __oort_bindings {
            $crate::$generate!();
        }
        $crate::__oort_common_glue!();

        thread_local! {
            static __OORT_INSTANCE: ::std::cell::RefCell<Option<$ty>> = const { ::std::cell::RefCell::new(None) };
        }

        struct __OortSource;

        __oort_bindings::export!(__OortSource with_types_in __oort_bindings);
    };
}

/// `describe`, `validate`, `open`, `offset`, `commit` and `close` of a
/// source's `Guest` impl (the same under both contract versions).
#[doc(hidden)]
#[macro_export]
macro_rules! __oort_source_fns {
    ($ty:ty) => {
        fn describe() -> __oort_bindings::oort::connector::types::PluginInfo {
            $crate::__rt::set_logger(__oort_log);
            __oort_info(<$ty as $crate::Source>::describe())
        }
        fn validate(
            props_json: String,
        ) -> Result<(), __oort_bindings::oort::connector::types::Error> {
            $crate::__rt::set_logger(__oort_log);
            $crate::__rt::source_validate::<$ty>(&props_json).map_err(__oort_err)
        }
        fn open(
            ctx: __oort_bindings::oort::connector::types::Context,
            props_json: String,
            resume_offset: Option<String>,
        ) -> Result<(), __oort_bindings::oort::connector::types::Error> {
            $crate::__rt::set_logger(__oort_log);
            __OORT_INSTANCE
                .with(|s| {
                    $crate::__rt::source_open::<$ty>(s, __oort_ctx(ctx), &props_json, resume_offset)
                })
                .map_err(__oort_err)
        }
        fn offset() -> Result<Option<String>, __oort_bindings::oort::connector::types::Error> {
            __OORT_INSTANCE
                .with(|s| $crate::__rt::source_offset::<$ty>(s))
                .map_err(__oort_err)
        }
        fn commit(offset: String) -> Result<(), __oort_bindings::oort::connector::types::Error> {
            __OORT_INSTANCE
                .with(|s| $crate::__rt::source_commit::<$ty>(s, &offset))
                .map_err(__oort_err)
        }
        fn close() -> Result<(), __oort_bindings::oort::connector::types::Error> {
            __OORT_INSTANCE
                .with(|s| $crate::__rt::source_close::<$ty>(s))
                .map_err(__oort_err)
        }
    };
}

/// The parts of a sink export both contract versions share.
#[doc(hidden)]
#[macro_export]
macro_rules! __oort_sink_common {
    ($ty:ty, $generate:ident) => {
        #[allow(dead_code, clippy::all, missing_docs, unsafe_code)]
        mod __oort_bindings {
            $crate::$generate!();
        }
        $crate::__oort_common_glue!();

        thread_local! {
            static __OORT_INSTANCE: ::std::cell::RefCell<Option<$ty>> = const { ::std::cell::RefCell::new(None) };
        }

        struct __OortSink;

        __oort_bindings::export!(__OortSink with_types_in __oort_bindings);
    };
}

/// `describe`, `validate`, `open`, `flush` and `close` of a sink's `Guest`
/// impl (the same under both contract versions).
#[doc(hidden)]
#[macro_export]
macro_rules! __oort_sink_fns {
    ($ty:ty) => {
        fn describe() -> __oort_bindings::oort::connector::types::PluginInfo {
            $crate::__rt::set_logger(__oort_log);
            __oort_info(<$ty as $crate::Sink>::describe())
        }
        fn validate(
            props_json: String,
        ) -> Result<(), __oort_bindings::oort::connector::types::Error> {
            $crate::__rt::set_logger(__oort_log);
            $crate::__rt::sink_validate::<$ty>(&props_json).map_err(__oort_err)
        }
        fn open(
            ctx: __oort_bindings::oort::connector::types::Context,
            props_json: String,
        ) -> Result<(), __oort_bindings::oort::connector::types::Error> {
            $crate::__rt::set_logger(__oort_log);
            __OORT_INSTANCE
                .with(|s| $crate::__rt::sink_open::<$ty>(s, __oort_ctx(ctx), &props_json))
                .map_err(__oort_err)
        }
        fn flush() -> Result<(), __oort_bindings::oort::connector::types::Error> {
            __OORT_INSTANCE
                .with(|s| $crate::__rt::sink_flush::<$ty>(s))
                .map_err(__oort_err)
        }
        fn close() -> Result<(), __oort_bindings::oort::connector::types::Error> {
            __OORT_INSTANCE
                .with(|s| $crate::__rt::sink_close::<$ty>(s))
                .map_err(__oort_err)
        }
    };
}

/// Exports a [`Source`] implementation as the plugin's
/// `oort:connector/source@0.2.0`. Call once, at the crate root of a
/// `cdylib` crate.
#[macro_export]
macro_rules! export_source {
    ($ty:ty) => {
        $crate::__oort_source_common!($ty, __oort_generate_source);

        impl __oort_bindings::exports::oort::connector::source::Guest for __OortSource {
            $crate::__oort_source_fns!($ty);

            fn read(
                max_messages: u32,
                wait_ms: u32,
            ) -> Result<
                __oort_bindings::exports::oort::connector::source::ReadOutcome,
                __oort_bindings::oort::connector::types::Error,
            > {
                use __oort_bindings::exports::oort::connector::source::ReadOutcome as R;
                use __oort_bindings::oort::connector::types::{MetaEntry, Packed};
                let out = __OORT_INSTANCE
                    .with(|s| $crate::__rt::source_read::<$ty>(s, max_messages, wait_ms))
                    .map_err(__oort_err)?;
                let batch = match out {
                    $crate::ReadOutcome::EndOfStream => return Ok(R::EndOfStream),
                    $crate::ReadOutcome::Messages(v) => $crate::Batch::from_messages(&v),
                    $crate::ReadOutcome::Batch(b) => b,
                };
                let (data, ends, timestamps, strings, meta) = batch.into_parts();
                Ok(R::Messages(Packed {
                    data,
                    ends,
                    timestamps,
                    strings,
                    meta: meta
                        .into_iter()
                        .map(|(message, key, value)| MetaEntry {
                            message,
                            key,
                            value,
                        })
                        .collect(),
                }))
            }
        }
    };
}

/// Exports a [`Source`] implementation as `oort:connector/source@0.1.0`,
/// for servers that do not serve 0.2.0 yet (Oort serves both). Call once,
/// at the crate root of a `cdylib` crate, instead of [`export_source!`].
#[macro_export]
macro_rules! export_source_v1 {
    ($ty:ty) => {
        $crate::__oort_source_common!($ty, __oort_generate_source_v1);

        impl __oort_bindings::exports::oort::connector::source::Guest for __OortSource {
            $crate::__oort_source_fns!($ty);

            fn read(
                max_messages: u32,
                wait_ms: u32,
            ) -> Result<
                __oort_bindings::exports::oort::connector::source::ReadOutcome,
                __oort_bindings::oort::connector::types::Error,
            > {
                use __oort_bindings::exports::oort::connector::source::ReadOutcome as R;
                use __oort_bindings::oort::connector::types::Message as M;
                let out = __OORT_INSTANCE
                    .with(|s| $crate::__rt::source_read::<$ty>(s, max_messages, wait_ms))
                    .map_err(__oort_err)?;
                let msgs = match out {
                    $crate::ReadOutcome::EndOfStream => return Ok(R::EndOfStream),
                    $crate::ReadOutcome::Messages(v) => v,
                    $crate::ReadOutcome::Batch(b) => b.to_messages(),
                };
                Ok(R::Messages(
                    msgs.into_iter()
                        .map(|m| M {
                            payload: m.payload,
                            meta: m.meta,
                            timestamp_ms: m.timestamp_ms,
                        })
                        .collect(),
                ))
            }
        }
    };
}

/// Exports a [`Sink`] implementation as the plugin's
/// `oort:connector/sink@0.2.0`: each write arrives as one [`Batch`]
/// ([`Sink::write_batch`]). Call once, at the crate root of a `cdylib` crate.
#[macro_export]
macro_rules! export_sink {
    ($ty:ty) => {
        $crate::__oort_sink_common!($ty, __oort_generate_sink);

        impl __oort_bindings::exports::oort::connector::sink::Guest for __OortSink {
            $crate::__oort_sink_fns!($ty);

            fn write(
                batch: __oort_bindings::oort::connector::types::Packed,
            ) -> Result<(), __oort_bindings::exports::oort::connector::sink::WriteFailure> {
                use __oort_bindings::exports::oort::connector::sink::WriteFailure as W;
                let batch = $crate::Batch::from_parts(
                    batch.data,
                    batch.ends,
                    batch.timestamps,
                    batch.strings,
                    batch
                        .meta
                        .into_iter()
                        .map(|e| (e.message, e.key, e.value))
                        .collect(),
                );
                __OORT_INSTANCE
                    .with(|s| $crate::__rt::sink_write_batch::<$ty>(s, &batch))
                    .map_err(|f| W {
                        accepted: f.accepted,
                        error: __oort_err(f.error),
                    })
            }
        }
    };
}

/// Exports a [`Sink`] implementation as `oort:connector/sink@0.1.0`, for
/// servers that do not serve 0.2.0 yet (Oort serves both). Call once, at
/// the crate root of a `cdylib` crate, instead of [`export_sink!`].
#[macro_export]
macro_rules! export_sink_v1 {
    ($ty:ty) => {
        $crate::__oort_sink_common!($ty, __oort_generate_sink_v1);

        impl __oort_bindings::exports::oort::connector::sink::Guest for __OortSink {
            $crate::__oort_sink_fns!($ty);

            fn write(
                batch: Vec<__oort_bindings::oort::connector::types::Message>,
            ) -> Result<(), __oort_bindings::exports::oort::connector::sink::WriteFailure> {
                use __oort_bindings::exports::oort::connector::sink::WriteFailure as W;
                let batch = batch
                    .into_iter()
                    .map(|m| $crate::Message {
                        payload: m.payload,
                        meta: m.meta,
                        timestamp_ms: m.timestamp_ms,
                    })
                    .collect();
                __OORT_INSTANCE
                    .with(|s| $crate::__rt::sink_write::<$ty>(s, batch))
                    .map_err(|f| W {
                        accepted: f.accepted,
                        error: __oort_err(f.error),
                    })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_props_json_is_an_empty_object() {
        assert_eq!(parse_props_json("").map(|p| p.len()), Ok(0));
        assert_eq!(parse_props_json("{}").map(|p| p.len()), Ok(0));
    }

    #[test]
    fn non_object_props_are_config_errors() {
        let e = parse_props_json("[1]").err().map(|e| e.kind);
        assert_eq!(e, Some(ErrorKind::Config));
        let e = parse_props_json("{").err().map(|e| e.kind);
        assert_eq!(e, Some(ErrorKind::Config));
    }

    #[test]
    fn typed_prop_errors_name_the_key() {
        let p = parse_props_json(r#"{"interval": "fast", "n": 25}"#).unwrap();
        let e = prop::<u64>(&p, "interval").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(e.message.contains("interval"), "{}", e.message);
        assert_eq!(prop::<u64>(&p, "n").unwrap(), Some(25));
        assert_eq!(prop::<u64>(&p, "missing").unwrap(), None);
    }

    #[test]
    fn embedded_wit_is_the_published_package() {
        for (wit, version) in [(WIT, "0.2.0"), (WIT_0_1, "0.1.0")] {
            assert!(wit.contains(&format!("package oort:connector@{version};")));
            assert!(wit.contains("world source-plugin"));
            assert!(wit.contains("world sink-plugin"));
            assert_eq!(wit.lines().filter(|l| l.starts_with("package ")).count(), 1);
        }
        assert!(WIT.contains("record packed"));
    }
}
