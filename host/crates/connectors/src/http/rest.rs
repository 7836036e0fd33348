//! `rest` sink: one HTTP request per item (per row with `sendSingle`, per
//! batch array otherwise), its body the item's payload (the rule's FORMAT,
//! compressed when asked, with a matching `Content-Encoding`). `url`,
//! `method`, `bodyType`, `headers` and `formData` values may be templates
//! rendered against the result row. A 2xx answer is written; 5xx, 429, 408,
//! a timeout or a refused connection is `Unavailable` (retried, cached when
//! the cache is on); any other answer fails only that item (counted).
//! `bodyType: formdata` sends the payload as a multipart file field
//! (`fileFieldName`, default `file`) beside the `formData` fields.

use async_trait::async_trait;
use bytes::Bytes;
use oort_core::template::PropTemplate;
use oort_core::{
    ConnectorEnv, ConnectorError, ConnectorInfo, Consumes, Props, Sink, SinkContext, SinkFactory,
    SinkItem, Value,
};
use serde::Deserialize;

use super::client::{check_response, check_url, send_error, BodyType, HttpConf, TokenState};
use crate::util::parse_config;

const KIND: &str = "rest";
/// Largest response body read (checked for `responseType: body`, logged
/// with `debugResp`).
const RESPONSE_LIMIT: usize = 4 * 1024 * 1024;

#[derive(Debug, Deserialize)]
struct Extra {
    #[serde(rename = "formdata", default)]
    form_data: std::collections::BTreeMap<String, String>,
    #[serde(rename = "filefieldname", default)]
    file_field: Option<String>,
    #[serde(default)]
    format: String,
    #[serde(default)]
    compression: String,
    #[serde(rename = "resenddestination", default)]
    resend_destination: String,
}

/// Factory of `rest` sinks.
pub struct RestSinkFactory;

impl SinkFactory for RestSinkFactory {
    fn kind(&self) -> &str {
        KIND
    }

    fn info(&self) -> ConnectorInfo {
        super::info::rest()
    }

    /// The payload; the runtime adds the row when a property is a template.
    fn consumes(&self) -> Consumes {
        Consumes::Payload
    }

    fn resend_destination(&self) -> bool {
        true
    }

    /// Also `headers` (unless they are rendered with an `oAuth` token) and
    /// `formData` values may be templates.
    fn needs_rows(&self, props: &Props) -> bool {
        let templated = |key: &str| {
            props.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case(key)
                    && v.as_object().is_some_and(|m| {
                        m.values()
                            .any(|s| s.as_str().is_some_and(|s| s.contains("{{")))
                    })
            })
        };
        let oauth = props.keys().any(|k| k.eq_ignore_ascii_case("oauth"));
        oort_core::dynamic_sink_props(props).next().is_some()
            || (templated("headers") && !oauth)
            || templated("formData")
    }

    fn create(&self, env: &ConnectorEnv, props: &Props) -> Result<Box<dyn Sink>, ConnectorError> {
        let conf = HttpConf::parse(KIND, props, "")?;
        let extra: Extra = parse_config(KIND, props)?;
        let format = if extra.format.trim().is_empty() {
            "json".to_string()
        } else {
            extra.format.trim().to_ascii_lowercase()
        };
        let needs = match conf.body_type {
            BodyType::Json => Some("json"),
            BodyType::Form => Some("urlencoded"),
            _ => None,
        };
        if let Some(f) = needs {
            if format != f {
                return Err(ConnectorError::Config(format!(
                    "rest: property format must be {f} when bodyType is {}, found {format}",
                    if f == "json" { "json" } else { "form" }
                )));
            }
        }
        let form_data = extra
            .form_data
            .iter()
            .map(|(k, v)| Ok((k.clone(), PropTemplate::parse(&format!("formData.{k}"), v)?)))
            .collect::<Result<Vec<_>, ConnectorError>>()?;
        if conf.body_type != BodyType::FormData {
            for (name, set) in [
                ("formData", !form_data.is_empty()),
                ("fileFieldName", extra.file_field.is_some()),
            ] {
                if set {
                    return Err(ConnectorError::Config(format!(
                        "rest: property {name} is only used with bodyType formdata"
                    )));
                }
            }
        }
        // The payload stage compressed the body; say how.
        let content_encoding = match extra.compression.trim() {
            "none" => None,
            c => oort_core::compression::Compression::parse(c)?.and_then(|c| c.content_encoding()),
        };
        let resend = match extra.resend_destination.trim() {
            "" => None,
            u => {
                let t = PropTemplate::parse("resendDestination", u)?;
                if let Some(s) = t.static_text() {
                    check_url(KIND, "resendDestination", &s)?;
                }
                Some(t)
            }
        };
        let client = conf.client(KIND)?;
        Ok(Box::new(RestSink {
            env: env.clone(),
            conf,
            client,
            form_data,
            file_field: extra.file_field.unwrap_or_else(|| "file".into()),
            content_encoding,
            resend,
            token: None,
            progress: None,
        }))
    }
}

/// A running `rest` sink.
pub struct RestSink {
    /// The context's clock dates the access token.
    env: ConnectorEnv,
    conf: HttpConf,
    client: reqwest::Client,
    form_data: Vec<(String, PropTemplate)>,
    file_field: String,
    content_encoding: Option<&'static str>,
    resend: Option<PropTemplate>,
    /// The access token's header values (`oAuth`).
    token: Option<TokenState>,
    /// The batch being written and how many of its items were delivered,
    /// so a retry of the same batch does not send them twice.
    progress: Option<(BatchKey, usize)>,
}

/// Identifies a batch across retries: the runtime sends the same items again.
type BatchKey = (usize, usize, usize);

fn batch_key(items: &[SinkItem]) -> BatchKey {
    let first = items.first().map_or(0, |i| i.payload.as_ptr() as usize);
    let last = items.last().map_or(0, |i| i.payload.as_ptr() as usize);
    (first, last, items.len())
}

fn render(t: &PropTemplate, data: &Value) -> Result<String, ConnectorError> {
    match t.static_text() {
        Some(s) => Ok(s.into_owned()),
        None => t.render(data),
    }
}

impl RestSink {
    async fn ensure_token(&mut self) -> Result<(), ConnectorError> {
        let Some(oauth) = &self.conf.oauth else {
            return Ok(());
        };
        let now = self.env.now_ms();
        let next = match &self.token {
            None => {
                oauth
                    .fetch(KIND, &self.client, &self.conf.headers, now)
                    .await?
            }
            Some(t) if oauth.stale(t, now) => {
                match oauth
                    .renew(KIND, &self.client, &self.conf.headers, t, now)
                    .await
                {
                    Ok(n) => n,
                    Err(e) => {
                        // The old token may still work: keep it, say why.
                        tracing::warn!(sink = KIND, error = %e, "rest: token refresh failed");
                        return Ok(());
                    }
                }
            }
            Some(_) => return Ok(()),
        };
        self.token = Some(next);
        Ok(())
    }

    /// Sends one item to `url` (rendered); `Ok` when the peer took it.
    async fn send_one(&self, url_t: &PropTemplate, it: &SinkItem) -> Result<(), ConnectorError> {
        let data = &it.data;
        let url = render(url_t, data)?;
        let method_text = render(&self.conf.method, data)?.to_ascii_uppercase();
        if url_t.static_text().is_none() {
            check_url(KIND, "url", &url).map_err(|e| ConnectorError::InvalidData(e.to_string()))?;
        }
        let method = match method_text.as_str() {
            "GET" => reqwest::Method::GET,
            "POST" => reqwest::Method::POST,
            "PUT" => reqwest::Method::PUT,
            "DELETE" => reqwest::Method::DELETE,
            "PATCH" => reqwest::Method::PATCH,
            "HEAD" => reqwest::Method::HEAD,
            other => {
                return Err(ConnectorError::InvalidData(format!(
                    "rest: method {other:?} rendered from the row is not one of {}",
                    super::client::METHODS.join(", ")
                )))
            }
        };
        let mut req = self.client.request(method, &url);
        let body_type = self.conf.body_type;
        match body_type {
            BodyType::None => {}
            BodyType::FormData => {
                let (ct, body) = self.multipart(&it.payload, data)?;
                req = req.header(reqwest::header::CONTENT_TYPE, ct).body(body);
            }
            t => {
                if let Some(ct) = t.content_type() {
                    req = req.header(reqwest::header::CONTENT_TYPE, ct);
                }
                req = req.body(it.payload.clone());
            }
        }
        if let (Some(enc), false) = (self.content_encoding, body_type == BodyType::None) {
            req = req.header(reqwest::header::CONTENT_ENCODING, enc);
        }
        // The configured headers replace those set above (Content-Type).
        let mut headers = reqwest::header::HeaderMap::new();
        let mut put = |k: &str, v: String| -> Result<(), ConnectorError> {
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| ConnectorError::InvalidData(format!("rest: bad header name {k:?}")))?;
            let value = reqwest::header::HeaderValue::from_str(&v).map_err(|_| {
                ConnectorError::InvalidData(format!(
                    "rest: header {k}: value {v:?} is not allowed in a header"
                ))
            })?;
            headers.insert(name, value);
            Ok(())
        };
        match &self.token {
            Some(t) => {
                for (k, v) in &t.headers {
                    put(k, v.clone())?;
                }
            }
            None => {
                for (k, t) in &self.conf.headers {
                    put(k, render(t, data)?)?;
                }
            }
        }
        req = req.headers(headers);
        let resp = req
            .send()
            .await
            .map_err(|e| send_error(KIND, &method_text, &url, &e))?;
        let body = check_response(
            KIND,
            &method_text,
            &url,
            self.conf.check,
            resp,
            RESPONSE_LIMIT,
        )
        .await?;
        if self.conf.debug_resp {
            tracing::info!(sink = KIND, %url, body = %String::from_utf8_lossy(&body), "rest: response");
        }
        Ok(())
    }

    /// A `multipart/form-data` body: the payload as file `fileFieldName`
    /// (named after the current time in ms, as eKuiper does), then the
    /// `formData` fields.
    fn multipart(
        &self,
        payload: &Bytes,
        data: &Value,
    ) -> Result<(String, Vec<u8>), ConnectorError> {
        let boundary = format!("oort{:032x}", rand::random::<u128>());
        let mut b = Vec::with_capacity(payload.len() + 256);
        let now = oort_core::now_ms();
        b.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{now}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                escape_quotes(&self.file_field)
            )
            .as_bytes(),
        );
        b.extend_from_slice(payload);
        b.extend_from_slice(b"\r\n");
        for (k, t) in &self.form_data {
            let v = render(t, data)?;
            b.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\n{v}\r\n",
                    escape_quotes(k)
                )
                .as_bytes(),
            );
        }
        b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        Ok((format!("multipart/form-data; boundary={boundary}"), b))
    }

    async fn write(
        &mut self,
        items: &[SinkItem],
        url: Option<PropTemplate>,
    ) -> Result<(), ConnectorError> {
        self.ensure_token().await?;
        let key = batch_key(items);
        let start = match self.progress {
            Some((k, done)) if k == key => done,
            _ => 0,
        };
        let url_t = url.as_ref().unwrap_or(&self.conf.url);
        let mut first_bad: Option<ConnectorError> = None;
        for (i, it) in items.iter().enumerate().skip(start) {
            match self.send_one(url_t, it).await {
                Ok(()) => {}
                Err(ConnectorError::InvalidData(m)) => {
                    // This item is refused by the peer; the others go on.
                    first_bad.get_or_insert(ConnectorError::InvalidData(m));
                }
                Err(e) => {
                    // Items before `i` are delivered: a retry of this batch
                    // starts at `i`.
                    self.progress = Some((key, i));
                    return Err(e);
                }
            }
        }
        self.progress = None;
        match first_bad {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn escape_quotes(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[async_trait]
impl Sink for RestSink {
    async fn connect(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        if let Err(e) = self.ensure_token().await {
            ctx.conn.disconnected(e.to_string());
            return Err(e);
        }
        // HTTP connects per request (and keeps connections alive): the sink
        // is ready once it holds what it needs to send.
        ctx.conn.connected();
        Ok(())
    }

    async fn collect(
        &mut self,
        ctx: &SinkContext,
        items: &[SinkItem],
    ) -> Result<(), ConnectorError> {
        let r = self.write(items, None).await;
        match &r {
            Err(ConnectorError::Unavailable(m)) => ctx.conn.disconnected(m.clone()),
            _ => ctx.conn.connected(),
        }
        r
    }

    async fn collect_resend(
        &mut self,
        ctx: &SinkContext,
        items: &[SinkItem],
    ) -> Result<(), ConnectorError> {
        let url = self.resend.clone();
        if url.is_none() {
            return self.collect(ctx, items).await;
        }
        self.write(items, url).await
    }
}
