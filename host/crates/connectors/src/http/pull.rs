//! `httppull` source: requests `url` + DATASOURCE every `interval` and hands
//! the response body to the stream's FORMAT decoder. `url`, `body` and
//! `headers` are templates over `PullTime` and `LastPullTime` (ms), the
//! `states` (updated from the fields of each response that carry their
//! names) and, with `oAuth`, the access token's fields. `incremental: true`
//! skips a response identical to the previous one; `compression` decompresses
//! responses (bounded). Failures are counted as
//! exceptions and the connection shown down; the next pull comes at the
//! next interval. The states and `LastPullTime` are the source's offset:
//! rules with `qos` >= 1 resume from them after a restart.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use oort_core::codec::{decoder, DecodeOptions};
use oort_core::compression::Compression;
use oort_core::lookup::matching;
use oort_core::template::PropTemplate;
use oort_core::{
    ConnectorEnv, ConnectorError, ConnectorInfo, LookupFactory, LookupSource, Map, Props, Row,
    Source, SourceContext, SourceFactory, SourceMsg, Value,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::client::{check_response, send_error, BodyType, HttpConf, TokenState};
use crate::util::{de, parse_config};

const KIND: &str = "httppull";
/// Largest response, as received and decompressed.
const MAX_BODY: usize = 64 * 1024 * 1024;

fn default_interval() -> Duration {
    Duration::from_secs(10)
}

#[derive(Debug, Deserialize)]
struct Extra {
    #[serde(default = "default_interval", deserialize_with = "de::duration")]
    interval: Duration,
    #[serde(default, deserialize_with = "de::bool_lenient")]
    incremental: bool,
    #[serde(default)]
    body: String,
    #[serde(default)]
    states: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    compression: String,
}

/// Factory of `httppull` sources.
pub struct HttpPullSourceFactory;

impl SourceFactory for HttpPullSourceFactory {
    fn kind(&self) -> &str {
        KIND
    }

    fn info(&self) -> ConnectorInfo {
        super::info::pull()
    }

    fn create(
        &self,
        env: &ConnectorEnv,
        datasource: &str,
        props: &Props,
    ) -> Result<Box<dyn Source>, ConnectorError> {
        Ok(Box::new(HttpPullSource::new(env, datasource, props)?))
    }
}

impl HttpPullSource {
    /// Reads and checks the props (no IO).
    fn new(
        env: &ConnectorEnv,
        datasource: &str,
        props: &Props,
    ) -> Result<HttpPullSource, ConnectorError> {
        let conf = HttpConf::parse(KIND, props, datasource)?;
        let extra: Extra = parse_config(KIND, props)?;
        if extra.interval.is_zero() {
            return Err(ConnectorError::config(
                "httppull: invalid property interval 0: it must be positive",
            ));
        }
        let compression = Compression::parse(&extra.compression)
            .map_err(|e| ConnectorError::Config(format!("httppull: {e}")))?;
        if conf.body_type == BodyType::FormData {
            return Err(ConnectorError::config(
                "httppull: bodyType formdata is for sinks; use json, text or form",
            ));
        }
        if conf.body_type == BodyType::None && !extra.body.trim().is_empty() {
            return Err(ConnectorError::config(
                "httppull: property body is set but bodyType is none (the default for GET and HEAD): set a bodyType such as json",
            ));
        }
        let body = PropTemplate::parse("body", &extra.body)?;
        let client = conf.client(KIND)?;
        Ok(HttpPullSource {
            env: env.clone(),
            conf,
            client,
            body,
            interval: extra.interval,
            incremental: extra.incremental,
            compression,
            states: extra.states,
            token: None,
            last_hash: None,
            last_pull_ms: None,
        })
    }
}

/// A running `httppull` source.
pub struct HttpPullSource {
    env: ConnectorEnv,
    conf: HttpConf,
    client: reqwest::Client,
    body: PropTemplate,
    interval: Duration,
    incremental: bool,
    /// `compression`: responses come compressed this way.
    compression: Option<Compression>,
    states: serde_json::Map<String, serde_json::Value>,
    token: Option<TokenState>,
    last_hash: Option<[u8; 32]>,
    last_pull_ms: Option<i64>,
}

/// What a pull brought.
enum Pulled {
    Body(Bytes),
    Unchanged,
}

impl HttpPullSource {
    /// The template data of a pull: token fields, states, the pull times.
    fn template_data(&self, now: i64) -> Value {
        let mut m = match self.token.as_ref().map(TokenState::token) {
            Some(Value::Object(t)) => (**t).clone(),
            _ => Map::new(),
        };
        for (k, v) in &self.states {
            m.insert(k.as_str().into(), Value::from_json(v));
        }
        let last = self
            .last_pull_ms
            .unwrap_or(now - self.interval.as_millis() as i64);
        m.insert("PullTime".into(), Value::Int(now));
        m.insert("LastPullTime".into(), Value::Int(last));
        Value::Object(std::sync::Arc::new(m))
    }

    async fn pull(&mut self) -> Result<Pulled, ConnectorError> {
        if let Some(oauth) = &self.conf.oauth {
            let now = self.env.now_ms();
            let next = match &self.token {
                None => Some(
                    oauth
                        .fetch(KIND, &self.client, &self.conf.headers, now)
                        .await?,
                ),
                Some(t) if oauth.stale(t, now) => oauth
                    .renew(KIND, &self.client, &self.conf.headers, t, now)
                    .await
                    .map_err(|e| tracing::warn!(source = KIND, error = %e, "httppull: token refresh failed"))
                    .ok(),
                Some(_) => None,
            };
            if next.is_some() {
                self.token = next;
            }
        }
        let now = self.env.now_ms();
        let data = self.template_data(now);
        let bad = |e: ConnectorError| ConnectorError::InvalidData(format!("httppull: {e}"));
        let url = self.conf.url.render(&data).map_err(bad)?;
        let method = self
            .conf
            .method
            .render(&data)
            .map_err(bad)?
            .to_ascii_uppercase();
        let m = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| ConnectorError::InvalidData(format!("httppull: bad method {method:?}")))?;
        let mut req = self.client.request(m, &url);
        if self.conf.body_type != BodyType::None {
            if let Some(ct) = self.conf.body_type.content_type() {
                req = req.header(reqwest::header::CONTENT_TYPE, ct);
            }
            req = req.body(self.body.render(&data).map_err(bad)?);
        }
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, t) in &self.conf.headers {
            let v = t.render(&data).map_err(bad)?;
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| ConnectorError::InvalidData(format!("httppull: bad header {k:?}")))?;
            let value = reqwest::header::HeaderValue::from_str(&v).map_err(|_| {
                ConnectorError::InvalidData(format!("httppull: header {k}: bad value {v:?}"))
            })?;
            headers.insert(name, value);
        }
        let resp = req
            .headers(headers)
            .send()
            .await
            .map_err(|e| send_error(KIND, &method, &url, &e))?;
        let encoded = resp
            .headers()
            .contains_key(reqwest::header::CONTENT_ENCODING);
        let mut body = check_response(KIND, &method, &url, self.conf.check, resp, MAX_BODY).await?;
        if let Some(c) = self.compression {
            // As eKuiper: a response that does not say it is encoded is an error.
            if !encoded {
                return Err(ConnectorError::InvalidData(format!(
                    "httppull: {url}: compression {c:?} is set but the response has no Content-Encoding"
                )));
            }
            body = c
                .decompress(&body, MAX_BODY)
                .map(Bytes::from)
                .map_err(|e| ConnectorError::InvalidData(format!("httppull: {url}: {e}")))?;
        }
        self.last_pull_ms = Some(now);
        if self.conf.debug_resp {
            tracing::info!(source = KIND, %url, body = %String::from_utf8_lossy(&body), "httppull: response");
        }
        if self.incremental {
            let h: [u8; 32] = Sha256::digest(&body).into();
            if self.last_hash == Some(h) {
                return Ok(Pulled::Unchanged);
            }
            self.last_hash = Some(h);
        }
        self.update_states(&body);
        Ok(Pulled::Body(body))
    }

    /// States take the values of same-named fields of the response (the
    /// last object of an array wins).
    fn update_states(&mut self, body: &[u8]) {
        if self.states.is_empty() {
            return;
        }
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
            return;
        };
        let objs: Vec<&serde_json::Map<String, serde_json::Value>> = match &v {
            serde_json::Value::Array(a) => a.iter().filter_map(|o| o.as_object()).collect(),
            serde_json::Value::Object(o) => vec![o],
            _ => Vec::new(),
        };
        for o in objs {
            for (k, slot) in self.states.iter_mut() {
                if let Some(v) = o.get(k) {
                    *slot = v.clone();
                }
            }
        }
    }

    /// The offset: states and the last pull time, as JSON.
    fn offset(&self) -> String {
        serde_json::json!({"states": self.states, "lastPullTime": self.last_pull_ms}).to_string()
    }

    fn resume(&mut self, offset: &str) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(offset) else {
            tracing::warn!(
                source = KIND,
                "httppull: stored offset is not JSON; starting afresh"
            );
            return;
        };
        if let Some(s) = v.get("states").and_then(|s| s.as_object()) {
            for (k, v) in s {
                self.states.insert(k.clone(), v.clone());
            }
        }
        self.last_pull_ms = v.get("lastPullTime").and_then(serde_json::Value::as_i64);
    }
}

#[async_trait]
impl Source for HttpPullSource {
    async fn run(&mut self, ctx: SourceContext) -> Result<(), ConnectorError> {
        if let Some(o) = ctx.resume.clone() {
            self.resume(&o);
        }
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ctx.cancel.cancelled() => return Ok(()),
                _ = ticker.tick() => {}
            }
            let msg = match self.pull().await {
                Ok(Pulled::Body(b)) => {
                    ctx.conn.connected();
                    if !ctx.emit_bytes(b, None).await {
                        return Ok(());
                    }
                    SourceMsg::Offset(self.offset())
                }
                Ok(Pulled::Unchanged) => {
                    ctx.conn.connected();
                    continue;
                }
                Err(ConnectorError::Unavailable(m)) => {
                    ctx.conn.disconnected(m.clone());
                    SourceMsg::Error(m)
                }
                Err(ConnectorError::Config(m) | ConnectorError::Fatal(m)) => {
                    ctx.conn.disconnected(m.clone());
                    return Err(ConnectorError::Fatal(m));
                }
                Err(ConnectorError::InvalidData(m)) => {
                    ctx.conn.connected();
                    SourceMsg::Error(m)
                }
            };
            if !ctx.emit(msg).await {
                return Ok(());
            }
        }
    }
}

/// Factory of `httppull` lookup tables: each lookup requests the URL (as
/// the source does once per interval) and keeps the rows of the response
/// whose key columns match; `lookup.cache` spares the requests.
pub struct HttpPullLookupFactory;

impl LookupFactory for HttpPullLookupFactory {
    fn kind(&self) -> &str {
        KIND
    }

    fn info(&self) -> ConnectorInfo {
        let mut info = super::info::pull();
        info.about = "Looks up rows in the response of an HTTP request".into();
        info.properties
            .retain(|p| p.name != "interval" && p.name != "incremental");
        info
    }

    fn create(
        &self,
        env: &ConnectorEnv,
        datasource: &str,
        props: &Props,
    ) -> Result<Arc<dyn LookupSource>, ConnectorError> {
        let mut src = HttpPullSource::new(env, datasource, props)?;
        src.incremental = false;
        let format = props
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("format"))
            .and_then(|(_, v)| v.as_str())
            .unwrap_or("json")
            .to_string();
        // Checked here: a table with an unsupported FORMAT is refused.
        decoder(&format, &DecodeOptions::default())
            .map_err(|e| ConnectorError::Config(format!("httppull: {e}")))?;
        Ok(Arc::new(HttpPullLookup {
            src: tokio::sync::Mutex::new(src),
            format,
        }))
    }
}

/// A rule run's `httppull` lookup table.
pub struct HttpPullLookup {
    src: tokio::sync::Mutex<HttpPullSource>,
    format: String,
}

#[async_trait]
impl LookupSource for HttpPullLookup {
    async fn lookup(
        &self,
        keys: &[Arc<str>],
        values: &[Value],
    ) -> Result<Vec<Row>, ConnectorError> {
        let body = match self.src.lock().await.pull().await? {
            Pulled::Body(b) => b,
            Pulled::Unchanged => return Ok(Vec::new()),
        };
        let mut rows = Vec::new();
        decoder(&self.format, &DecodeOptions::default())
            .and_then(|mut d| d.decode(&body, &mut rows))
            .map_err(|e| ConnectorError::InvalidData(format!("httppull: response: {e}")))?;
        Ok(matching(&rows, keys, values))
    }
}
