//! Outbound HTTP from a plugin through `wasi:http/outgoing-handler`: the
//! host sends the request if the plugin's outbound grants cover its
//! `scheme://host:port` (a manifest `permissions.outbound` pattern such as
//! `http://127.0.0.1:8086`, granted by the operator), with the server's
//! timeouts and response-size cap (docs/plugins/contract.md).
//!
//! ```ignore
//! use oort_plugin_sdk::http;
//! let r = http::Request::post("http://127.0.0.1:8086/write?db=demo", b"cpu v=1".to_vec())
//!     .header("Content-Type", "text/plain")
//!     .send()?;
//! if !r.ok() { return Err(r.error("influx write")); }
//! ```
//!
//! Errors map to the contract's kinds: a request the grants do not cover is
//! `unauthorized`; a refused connection, a timeout or a DNS failure is
//! `unavailable` (the host retries); a malformed URL is `config`.

use std::time::Duration;

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};

use crate::Error;

/// One request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Connect and first-byte timeout (the host caps it with its own).
    pub timeout: Option<Duration>,
}

/// A response, its body read whole.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A 2xx status.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// An error for a non-2xx answer: 5xx and 429 are `unavailable` (the host
    /// retries), 401/403 `unauthorized`, other 4xx `invalid-data` (the batch
    /// is dropped and counted).
    pub fn error(&self, what: &str) -> Error {
        let text = String::from_utf8_lossy(&self.body[..self.body.len().min(512)]).into_owned();
        let msg = format!("{what}: HTTP {}: {}", self.status, text.trim());
        match self.status {
            401 | 403 => Error::unauthorized(msg),
            429 | 500..=599 => Error::unavailable(msg),
            _ => Error::invalid_data(msg),
        }
    }
}

impl Request {
    pub fn new(method: &str, url: &str) -> Request {
        Request {
            method: method.to_string(),
            url: url.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
        }
    }

    pub fn get(url: &str) -> Request {
        Request::new("GET", url)
    }

    pub fn post(url: &str, body: Vec<u8>) -> Request {
        Request {
            body,
            ..Request::new("POST", url)
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn timeout(mut self, t: Duration) -> Request {
        self.timeout = Some(t);
        self
    }

    /// Sends it and reads the whole response (blocking this instance).
    pub fn send(&self) -> Result<Response, Error> {
        let url = url::Url::parse(&self.url)
            .map_err(|e| Error::config(format!("URL {:?}: {e}", self.url)))?;
        let scheme = match url.scheme() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            s => {
                return Err(Error::config(format!(
                    "URL {:?}: scheme {s} is not http or https",
                    self.url
                )))
            }
        };
        let host = url
            .host_str()
            .ok_or_else(|| Error::config(format!("URL {:?} has no host", self.url)))?;
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let mut path = url.path().to_string();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        let mut fields: Vec<(String, Vec<u8>)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
            .collect();
        // A declared length rather than a chunked body: every server takes it.
        if !self.body.is_empty()
            && !fields
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        {
            fields.push((
                "Content-Length".into(),
                self.body.len().to_string().into_bytes(),
            ));
        }
        let headers = Fields::from_list(&fields)
            .map_err(|e| Error::config(format!("request headers: {e:?}")))?;
        let req = OutgoingRequest::new(headers);
        let method = match self.method.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "HEAD" => Method::Head,
            other => Method::Other(other.to_string()),
        };
        let bad = |what: &str| Error::internal(format!("HTTP request: cannot set the {what}"));
        req.set_method(&method).map_err(|()| bad("method"))?;
        req.set_scheme(Some(&scheme)).map_err(|()| bad("scheme"))?;
        req.set_authority(Some(&authority))
            .map_err(|()| bad("authority"))?;
        req.set_path_with_query(Some(&path))
            .map_err(|()| bad("path"))?;
        let body = req.body().map_err(|()| bad("body"))?;
        let options = self.timeout.map(|t| {
            let o = RequestOptions::new();
            let ns = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
            let _ = o.set_connect_timeout(Some(ns));
            let _ = o.set_first_byte_timeout(Some(ns));
            o
        });
        let future =
            outgoing_handler::handle(req, options).map_err(|e| code_error(&self.url, e))?;
        {
            let out = body.write().map_err(|()| bad("body stream"))?;
            for chunk in self.body.chunks(4096) {
                out.blocking_write_and_flush(chunk).map_err(|e| {
                    Error::unavailable(format!("{}: sending the body: {e:?}", self.url))
                })?;
            }
        }
        OutgoingBody::finish(body, None).map_err(|e| code_error(&self.url, e))?;
        future.subscribe().block();
        let resp = match future.get() {
            Some(Ok(Ok(r))) => r,
            Some(Ok(Err(e))) => return Err(code_error(&self.url, e)),
            _ => return Err(Error::internal(format!("{}: no response", self.url))),
        };
        let status = resp.status();
        let headers = resp
            .headers()
            .entries()
            .into_iter()
            .collect::<Vec<(String, Vec<u8>)>>();
        let incoming = resp.consume().map_err(|()| bad("response body"))?;
        let mut out = Vec::new();
        {
            let stream = incoming.stream().map_err(|()| bad("response stream"))?;
            loop {
                match stream.blocking_read(64 * 1024) {
                    Ok(bytes) => out.extend_from_slice(&bytes),
                    Err(wasip2::io::streams::StreamError::Closed) => break,
                    Err(e) => {
                        return Err(Error::unavailable(format!(
                            "{}: reading the response: {e:?}",
                            self.url
                        )))
                    }
                }
            }
        }
        Ok(Response {
            status,
            headers,
            body: out,
        })
    }
}

fn code_error(url: &str, e: ErrorCode) -> Error {
    let msg = format!("{url}: {e:?}");
    match e {
        ErrorCode::HttpRequestDenied => Error::unauthorized(format!(
            "{msg} (not covered by the plugin's outbound grants)"
        )),
        ErrorCode::HttpRequestUriInvalid | ErrorCode::HttpRequestMethodInvalid => {
            Error::config(msg)
        }
        ErrorCode::HttpResponseBodySize(_) => Error::invalid_data(msg),
        _ => Error::unavailable(msg),
    }
}
