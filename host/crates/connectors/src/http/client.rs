//! The HTTP client settings the `rest` sink (and the HTTP sources) share, as
//! eKuiper names them: `url`, `method`, `bodyType`, `timeout`, `headers`,
//! `responseType`, `debugResp`, TLS (`insecureSkipVerify`, `rootCaPath`,
//! `certificationPath`, `privateKeyPath` and their `...Raw` forms) and
//! `oAuth` (an access token fetched at connect, refreshed at half its life).
//! One `reqwest` client per connector instance: keep-alive connections are
//! pooled and reused across requests.

use crate::tls::{PemSource, TlsFiles};
use std::collections::BTreeMap;
use std::time::Duration;

use oort_core::template::PropTemplate;
use oort_core::{ConnectorError, Props, Value};
use serde::Deserialize;

use crate::util::{de, parse_config};

/// eKuiper's default request timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(5000);
/// Largest access-token response.
const TOKEN_LIMIT: usize = 1024 * 1024;
/// How much of a failed response's body an error message quotes.
const BODY_QUOTE: usize = 256;

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

fn default_response_type() -> String {
    "code".into()
}

#[derive(Debug, Deserialize)]
struct Raw {
    #[serde(default)]
    url: String,
    #[serde(default)]
    method: String,
    #[serde(rename = "bodytype", default)]
    body_type: String,
    #[serde(default = "default_timeout", deserialize_with = "de::duration")]
    timeout: Duration,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(
        rename = "responsetype",
        default = "default_response_type",
        deserialize_with = "de::string_lenient"
    )]
    response_type: String,
    #[serde(rename = "debugresp", default, deserialize_with = "de::bool_lenient")]
    debug_resp: bool,
    #[serde(
        rename = "insecureskipverify",
        default,
        deserialize_with = "de::bool_lenient"
    )]
    insecure_skip_verify: bool,
    #[serde(rename = "rootcapath", default)]
    root_ca_path: String,
    #[serde(rename = "rootcaraw", default)]
    root_ca_raw: String,
    #[serde(rename = "certificationpath", default)]
    cert_path: String,
    #[serde(rename = "certficationraw", default)]
    cert_raw: String,
    #[serde(rename = "privatekeypath", default)]
    key_path: String,
    #[serde(rename = "privatekeyraw", default)]
    key_raw: String,
    #[serde(rename = "oauth", default)]
    oauth: Option<OAuthRaw>,
}

#[derive(Debug, Deserialize)]
struct OAuthRaw {
    access: Option<AccessRaw>,
    refresh: Option<RefreshRaw>,
}

#[derive(Debug, Deserialize)]
struct AccessRaw {
    #[serde(default)]
    url: String,
    #[serde(default)]
    body: String,
    #[serde(default, deserialize_with = "de::string_lenient")]
    expire: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct RefreshRaw {
    #[serde(default)]
    url: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// What kind of body a request carries (`bodyType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyType {
    None,
    Text,
    Json,
    Html,
    Xml,
    Javascript,
    Form,
    Binary,
    FormData,
}

impl BodyType {
    pub fn parse(s: &str) -> Option<BodyType> {
        Some(match s.to_ascii_lowercase().as_str() {
            "none" => BodyType::None,
            "text" => BodyType::Text,
            "json" => BodyType::Json,
            "html" => BodyType::Html,
            "xml" => BodyType::Xml,
            "javascript" => BodyType::Javascript,
            "form" => BodyType::Form,
            "binary" => BodyType::Binary,
            "formdata" => BodyType::FormData,
            _ => return None,
        })
    }

    /// The `Content-Type` sent unless a header sets one.
    pub fn content_type(self) -> Option<&'static str> {
        Some(match self {
            BodyType::None | BodyType::FormData => return None,
            BodyType::Text => "text/plain",
            BodyType::Json => "application/json",
            BodyType::Html => "text/html",
            BodyType::Xml => "application/xml",
            BodyType::Javascript => "application/javascript",
            BodyType::Form => "application/x-www-form-urlencoded",
            BodyType::Binary => "application/octet-stream",
        })
    }
}

/// How a response counts as a success (`responseType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseCheck {
    /// A 2xx status.
    Code,
    /// A 2xx status and, in the JSON body (an object or an array of them),
    /// a `code` field in 200..=299.
    Body,
}

/// The methods eKuiper's HTTP connectors accept (plus PATCH and HEAD).
pub const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"];

/// Parsed, checked client settings. No IO.
#[derive(Debug)]
pub struct HttpConf {
    pub url: PropTemplate,
    pub method: PropTemplate,
    pub body_type: BodyType,
    pub timeout: Duration,
    pub headers: Vec<(String, PropTemplate)>,
    pub check: ResponseCheck,
    pub debug_resp: bool,
    tls: TlsFiles,
    pub oauth: Option<OAuth>,
}

/// `oAuth`: how to get and refresh the access token.
#[derive(Debug, Clone)]
pub struct OAuth {
    access_url: String,
    access_body: String,
    access_headers: BTreeMap<String, String>,
    /// Seconds the token lives (0: never refreshed).
    expire_secs: u64,
    refresh: Option<(String, String, BTreeMap<String, String>)>,
}

fn bad(kind: &str, m: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Config(format!("{kind}: {m}"))
}

/// A PEM from `<prop>Path` (a file) or `<prop>Raw` (base64 or PEM text).
impl HttpConf {
    /// Parses the props of connector `kind`; `url_suffix` is appended to
    /// `url` (the DATASOURCE of an HTTP source).
    pub fn parse(kind: &str, props: &Props, url_suffix: &str) -> Result<HttpConf, ConnectorError> {
        let raw: Raw = parse_config(kind, props)?;
        let url_text = format!("{}{}", raw.url.trim(), url_suffix.trim());
        if url_text.is_empty() {
            return Err(bad(kind, "property url is required"));
        }
        let url = PropTemplate::parse("url", &url_text)?;
        if let Some(u) = url.static_text() {
            check_url(kind, "url", &u)?;
        }
        let method_text = if raw.method.trim().is_empty() {
            "GET".to_string()
        } else {
            raw.method.trim().to_string()
        };
        // A templated method keeps its case (field names are case-sensitive);
        // the rendered value is upper-cased per request.
        let method = if method_text.contains("{{") {
            PropTemplate::parse("method", &method_text)?
        } else {
            PropTemplate::parse("method", &method_text.to_ascii_uppercase())?
        };
        if let Some(m) = method.static_text() {
            if !METHODS.contains(&m.as_ref()) {
                return Err(bad(
                    kind,
                    format!(
                        "invalid property method {method_text:?}: expected one of {}",
                        METHODS.join(", ")
                    ),
                ));
            }
        }
        let body_type = match raw.body_type.trim() {
            "" if matches!(method.static_text().as_deref(), Some("GET" | "HEAD")) => {
                BodyType::None
            }
            "" => BodyType::Json,
            t => BodyType::parse(t).ok_or_else(|| {
                bad(
                    kind,
                    format!("invalid property bodyType {t:?}: expected none, text, json, html, xml, javascript, form, binary or formdata"),
                )
            })?,
        };
        let check = match raw.response_type.to_ascii_lowercase().as_str() {
            "code" => ResponseCheck::Code,
            "body" => ResponseCheck::Body,
            other => {
                return Err(bad(
                    kind,
                    format!("invalid property responseType {other:?}: expected code or body"),
                ))
            }
        };
        let headers = raw
            .headers
            .iter()
            .map(|(k, v)| {
                reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                    bad(
                        kind,
                        format!("invalid property headers: bad header name {k:?}"),
                    )
                })?;
                Ok((k.clone(), PropTemplate::parse(&format!("headers.{k}"), v)?))
            })
            .collect::<Result<Vec<_>, ConnectorError>>()?;
        let tls = TlsFiles {
            ca: PemSource::pick(&raw.root_ca_path, &raw.root_ca_raw),
            cert: PemSource::pick(&raw.cert_path, &raw.cert_raw),
            key: PemSource::pick(&raw.key_path, &raw.key_raw),
            insecure_skip_verify: raw.insecure_skip_verify,
        };
        tls.check(kind)?;
        if tls.any() {
            // Unreadable or bad PEM is refused with the props, naming it.
            crate::tls::client_config(kind, &tls)?;
        }
        let oauth = match raw.oauth {
            None => None,
            Some(o) => {
                let Some(a) = o.access else {
                    return Err(bad(kind, "property oAuth needs an access section"));
                };
                if a.url.trim().is_empty() {
                    return Err(bad(kind, "property oAuth.access.url is required"));
                }
                check_url(kind, "oAuth.access.url", a.url.trim())?;
                let expire_secs = match a.expire.trim() {
                    "" => 0,
                    e => e.parse::<u64>().map_err(|_| {
                        bad(
                            kind,
                            format!("invalid property oAuth.access.expire {e:?}: seconds expected"),
                        )
                    })?,
                };
                let refresh = match o.refresh {
                    Some(r) if !r.url.trim().is_empty() => {
                        check_url(kind, "oAuth.refresh.url", r.url.trim())?;
                        Some((r.url.trim().to_string(), r.body, r.headers))
                    }
                    _ => None,
                };
                Some(OAuth {
                    access_url: a.url.trim().to_string(),
                    access_body: a.body,
                    access_headers: a.headers,
                    expire_secs,
                    refresh,
                })
            }
        };
        Ok(HttpConf {
            url,
            method,
            body_type,
            timeout: raw.timeout,
            headers,
            check,
            debug_resp: raw.debug_resp,
            tls,
            oauth,
        })
    }

    /// The client (connection pool, TLS, timeout). No IO.
    pub fn client(&self, kind: &str) -> Result<reqwest::Client, ConnectorError> {
        let mut b = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true);
        if !self.timeout.is_zero() {
            b = b.timeout(self.timeout);
        }
        // TLS settings given: the connectors' one TLS configuration (reads
        // the PEM files); none: reqwest's own roots.
        if self.tls.any() {
            let cfg = crate::tls::client_config(kind, &self.tls)?;
            b = b.use_preconfigured_tls(std::sync::Arc::unwrap_or_clone(cfg));
        }
        b.build()
            .map_err(|e| bad(kind, format!("HTTP client: {e}")))
    }
}

/// Refuses what is not an absolute `http(s)://` URL.
pub fn check_url(kind: &str, prop: &str, u: &str) -> Result<(), ConnectorError> {
    match reqwest::Url::parse(u) {
        Ok(p) if matches!(p.scheme(), "http" | "https") && p.host().is_some() => Ok(()),
        Ok(p) => Err(bad(
            kind,
            format!(
                "invalid property {prop} {u:?}: scheme {} is not http or https",
                p.scheme()
            ),
        )),
        Err(e) => Err(bad(kind, format!("invalid property {prop} {u:?}: {e}"))),
    }
}

/// Classifies a transport error: the peer is unreachable or slow.
pub fn send_error(kind: &str, method: &str, url: &str, e: &reqwest::Error) -> ConnectorError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    // reqwest's Display names the URL; the source chain says why.
    let mut why = String::new();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        why = s.to_string();
        src = s.source();
    }
    ConnectorError::Unavailable(format!("{kind}: {method} {url}: {what}: {why}"))
}

/// Reads and checks a response: `Ok(body)` on success. A 5xx, 429 or 408
/// status is `Unavailable` (sent again later); any other non-2xx status,
/// or a `code` outside 2xx in the body with `responseType: body`, is
/// `InvalidData` (this item is dropped and counted).
pub async fn check_response(
    kind: &str,
    method: &str,
    url: &str,
    check: ResponseCheck,
    resp: reqwest::Response,
    limit: usize,
) -> Result<bytes::Bytes, ConnectorError> {
    let status = resp.status();
    let body = read_limited(kind, method, url, resp, limit).await?;
    let quote = || {
        let n = body.len().min(BODY_QUOTE);
        String::from_utf8_lossy(&body[..n]).into_owned()
    };
    if !status.is_success() {
        let msg = format!(
            "{kind}: {method} {url}: response code error: {} (body: {:?})",
            status.as_u16(),
            quote()
        );
        let retry = status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::REQUEST_TIMEOUT;
        return Err(if retry {
            ConnectorError::Unavailable(msg)
        } else {
            ConnectorError::InvalidData(msg)
        });
    }
    if check == ResponseCheck::Body {
        if let Some(code) = body_code_error(&body) {
            return Err(ConnectorError::InvalidData(format!(
                "{kind}: {method} {url}: response code error in body: {code} (body: {:?})",
                quote()
            )));
        }
    }
    Ok(body)
}

/// A response body of at most `limit` bytes (checked as it arrives, not
/// only against `Content-Length`); a longer one is invalid data.
async fn read_limited(
    kind: &str,
    method: &str,
    url: &str,
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<bytes::Bytes, ConnectorError> {
    let too_large = || {
        ConnectorError::InvalidData(format!(
            "{kind}: {method} {url}: the response is larger than {limit} bytes"
        ))
    };
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| send_error(kind, method, url, &e))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The first `code` outside 200..=299 in a JSON body (an object or an array
/// of objects). A body that is not JSON is not an error (eKuiper only logs it).
fn body_code_error(body: &[u8]) -> Option<i64> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let objs: Vec<&serde_json::Value> = match &v {
        serde_json::Value::Array(a) => a.iter().collect(),
        o => vec![o],
    };
    objs.into_iter()
        .map(|o| {
            o.get("code")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(0)
        })
        .find(|c| !(200..=299).contains(c))
}

/// The token state of an `oAuth` client: header values rendered with the
/// token response, renewed at half the token's life.
#[derive(Debug)]
pub struct TokenState {
    pub headers: Vec<(String, String)>,
    /// When it was fetched, on the connector context's clock (ms).
    fetched_ms: i64,
    token: Value,
}

impl TokenState {
    /// The token response (an object), for templates.
    pub fn token(&self) -> &Value {
        &self.token
    }
}

impl OAuth {
    /// Fetches the access token and renders `headers` with it.
    pub async fn fetch(
        &self,
        kind: &str,
        client: &reqwest::Client,
        headers: &[(String, PropTemplate)],
        now_ms: i64,
    ) -> Result<TokenState, ConnectorError> {
        let token = post_json(
            kind,
            client,
            &self.access_url,
            &self.access_body,
            &self.access_headers,
        )
        .await?;
        render_with(kind, headers, token, now_ms)
    }

    /// True when the token is older than half its life at `now_ms`.
    pub fn stale(&self, t: &TokenState, now_ms: i64) -> bool {
        let age_ms = u64::try_from(now_ms.saturating_sub(t.fetched_ms)).unwrap_or(0);
        self.expire_secs > 0 && age_ms.saturating_mul(2) > self.expire_secs.saturating_mul(1000)
    }

    /// Refreshes (`oAuth.refresh`, its body and headers rendered with the
    /// current token) or fetches a new token.
    pub async fn renew(
        &self,
        kind: &str,
        client: &reqwest::Client,
        headers: &[(String, PropTemplate)],
        current: &TokenState,
        now_ms: i64,
    ) -> Result<TokenState, ConnectorError> {
        let Some((url, body, rh)) = &self.refresh else {
            return self.fetch(kind, client, headers, now_ms).await;
        };
        let render = |name: &str, text: &str| -> Result<String, ConnectorError> {
            PropTemplate::parse(name, text)?.render(&current.token)
        };
        let body = render("oAuth.refresh.body", body)?;
        let rh = rh
            .iter()
            .map(|(k, v)| Ok((k.clone(), render("oAuth.refresh.headers", v)?)))
            .collect::<Result<BTreeMap<_, _>, ConnectorError>>()?;
        let token = post_json(kind, client, url, &body, &rh).await?;
        render_with(kind, headers, token, now_ms)
    }
}

fn render_with(
    kind: &str,
    headers: &[(String, PropTemplate)],
    token: Value,
    now_ms: i64,
) -> Result<TokenState, ConnectorError> {
    let headers = headers
        .iter()
        .map(|(k, t)| {
            t.render(&token).map(|v| (k.clone(), v)).map_err(|e| {
                ConnectorError::Unavailable(format!(
                    "{kind}: header {k} from the access token: {e}"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TokenState {
        headers,
        fetched_ms: now_ms,
        token,
    })
}

/// POSTs a JSON body and returns the response's JSON (the first object of
/// an array).
async fn post_json(
    kind: &str,
    client: &reqwest::Client,
    url: &str,
    body: &str,
    headers: &BTreeMap<String, String>,
) -> Result<Value, ConnectorError> {
    let mut req = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req
        .send()
        .await
        .map_err(|e| send_error(kind, "POST", url, &e))?;
    let body = check_response(kind, "POST", url, ResponseCheck::Code, resp, TOKEN_LIMIT).await?;
    let v = oort_core::codec::json::decode_value(&body).map_err(|e| {
        ConnectorError::Unavailable(format!("{kind}: token response of {url} is not JSON: {e}"))
    })?;
    Ok(match v {
        Value::Array(a) => a.first().cloned().unwrap_or(Value::Null),
        v => v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(v: serde_json::Value) -> Result<HttpConf, ConnectorError> {
        HttpConf::parse("rest", v.as_object().unwrap(), "")
    }

    #[test]
    fn defaults_follow_ekuiper() {
        let c = conf(serde_json::json!({"url": "http://h/x"})).unwrap();
        assert_eq!(c.method.static_text().as_deref(), Some("GET"));
        assert_eq!(c.body_type, BodyType::None);
        assert_eq!(c.timeout, Duration::from_millis(5000));
        assert_eq!(c.check, ResponseCheck::Code);
        let c = conf(serde_json::json!({"url": "http://h", "method": "post"})).unwrap();
        assert_eq!(c.body_type, BodyType::Json);
        let c = conf(
            serde_json::json!({"url": "http://h", "Method": "put", "timeout": "1s",
            "bodyType": "TEXT", "responseType": "body"}),
        )
        .unwrap();
        assert_eq!(c.method.static_text().as_deref(), Some("PUT"));
        assert_eq!(
            (c.body_type, c.check),
            (BodyType::Text, ResponseCheck::Body)
        );
        assert_eq!(c.timeout, Duration::from_secs(1));
    }

    #[test]
    fn refuses_bad_values_naming_the_property() {
        for (v, needle) in [
            (serde_json::json!({"url": "ftp://h"}), "url"),
            (serde_json::json!({"url": "not a url"}), "url"),
            (
                serde_json::json!({"url": "http://h", "method": "FETCH"}),
                "method",
            ),
            (
                serde_json::json!({"url": "http://h", "bodyType": "yaml"}),
                "bodyType",
            ),
            (
                serde_json::json!({"url": "http://h", "responseType": "x"}),
                "responseType",
            ),
            (
                serde_json::json!({"url": "http://h", "timeout": "soon"}),
                "timeout",
            ),
            (
                serde_json::json!({"url": "http://h", "headers": {"a b": "x"}}),
                "headers",
            ),
            (
                serde_json::json!({"url": "http://h", "oAuth": {"refresh": {"url": "http://t"}}}),
                "oAuth",
            ),
            (
                serde_json::json!({"url": "http://h", "oAuth": {"access": {"url": "http://t", "expire": "soon"}}}),
                "expire",
            ),
            (
                serde_json::json!({"url": "http://h", "certificationPath": "/nope.pem"}),
                "certificationPath",
            ),
            (
                serde_json::json!({"url": "http://h", "rootCaRaw": "!!"}),
                "rootCARaw",
            ),
        ] {
            match conf(v.clone()) {
                Err(ConnectorError::Config(m)) => assert!(m.contains(needle), "{v}: {m}"),
                other => panic!("{v}: {other:?}"),
            }
        }
        // A templated url or method is checked per request instead, and
        // the method's field name keeps its case.
        let c =
            conf(serde_json::json!({"url": "http://h/{{.id}}", "method": "{{.verb}}"})).unwrap();
        let row = oort_core::codec::json::decode_value(br#"{"verb":"put"}"#).unwrap();
        assert_eq!(c.method.render(&row).unwrap(), "put");
    }

    #[test]
    fn body_codes() {
        assert_eq!(body_code_error(br#"{"code":200}"#), None);
        assert_eq!(
            body_code_error(br#"[{"code":201},{"code":500}]"#),
            Some(500)
        );
        assert_eq!(body_code_error(br#"{"message":"no code"}"#), Some(0));
        assert_eq!(body_code_error(b"not json"), None);
    }
}
