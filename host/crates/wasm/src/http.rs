//! Outbound HTTP for plugins (`wasi:http/outgoing-handler`): every request
//! goes through the plugin's outbound grants (the same `scheme://host:port`
//! patterns as sockets), with the host's timeouts and a cap on the response
//! body. A refused request fails with `HTTP-request-denied` and is logged.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::grants::SocketPolicy;

/// HTTP limits of one store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpCaps {
    /// Connect, first-byte and between-bytes timeouts (each at most this).
    pub timeout: Duration,
    /// Largest response body a plugin may read.
    pub max_response_bytes: u64,
}

impl Default for HttpCaps {
    fn default() -> Self {
        HttpCaps {
            timeout: Duration::from_secs(10),
            max_response_bytes: 16 << 20,
        }
    }
}

/// The `wasi:http` hooks of one plugin instance.
pub struct HttpHooks {
    pub(crate) policy: SocketPolicy,
    pub(crate) caps: HttpCaps,
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        drop(fut);
        let policy = self.policy.clone();
        let caps = self.caps;
        Box::new(async move {
            let uri = request.uri();
            let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
            let host = uri
                .host()
                .unwrap_or("")
                .trim_matches(['[', ']'])
                .to_string();
            let port = uri
                .port_u16()
                .unwrap_or(if scheme == "http" { 80 } else { 443 });
            if !policy.check_http(&scheme, &host, port).await {
                // Take the body the plugin is still writing before answering:
                // dropping it at once closes the plugin's output stream under
                // it, and componentize-js's fetch (StarlingMonkey) then aborts
                // the instance ("event loop error, but no exception is
                // pending", a trap) instead of rejecting with a TypeError.
                drain(request.into_body(), caps.timeout).await;
                return Err(HttpError::HttpRequestDenied);
            }
            let cap = |t: Option<Duration>| Some(t.map_or(caps.timeout, |t| t.min(caps.timeout)));
            let options = RequestOptions {
                connect_timeout: cap(options.and_then(|o| o.connect_timeout)),
                first_byte_timeout: cap(options.and_then(|o| o.first_byte_timeout)),
                between_bytes_timeout: cap(options.and_then(|o| o.between_bytes_timeout)),
            };
            // The body goes through a relay that keeps taking it if the
            // send fails before its end (refused, reset, timed out): the
            // same trap as a denied request's otherwise.
            let request = request.map(|b| relay(b, caps.timeout));
            let (res, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            let max = caps.max_response_bytes;
            if res
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|n| n > max)
            {
                return Err(HttpError::HttpResponseBodySize(Some(max)));
            }
            let res = res.map(|b| {
                Capped {
                    inner: b.boxed_unsync(),
                    left: max,
                    max,
                }
                .boxed_unsync()
            });
            Ok((
                res,
                Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
            ))
        })
    }
}

/// The plugin's request body as the HTTP client reads it, pumped by a task
/// that, once the client has let go of it (the send failed, or finished
/// early), reads the rest to its end or `limit` ([`drain`]) so the plugin
/// can finish writing it and see the send's error. Keeps the body's size
/// hint (a known length is still sent as `Content-Length`).
fn relay(mut body: WasiBody, limit: Duration) -> WasiBody {
    let hint = body.size_hint();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        while let Some(frame) = body.frame().await {
            let failed = frame.is_err();
            if tx.send(frame).await.is_err() {
                drain(body, limit).await;
                return;
            }
            if failed {
                return;
            }
        }
    });
    Relayed { rx, hint }.boxed_unsync()
}

/// The client's side of [`relay`].
struct Relayed {
    rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, HttpError>>,
    hint: SizeHint,
}

impl Body for Relayed {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        self.rx.poll_recv(cx)
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

/// Reads and discards a request body until its end, an error, or `limit`
/// (a plugin that never finishes its body gets its answer then).
async fn drain(mut body: WasiBody, limit: Duration) {
    let _ = tokio::time::timeout(limit, async {
        while let Some(Ok(_)) = body.frame().await {}
    })
    .await;
}

/// A response body that fails once it goes past `max` bytes.
struct Capped<B> {
    inner: B,
    left: u64,
    max: u64,
}

impl<B> Body for Capped<B>
where
    B: Body<Data = Bytes, Error = HttpError> + Unpin,
{
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    if n > this.left {
                        return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(
                            this.max,
                        )))));
                    }
                    this.left -= n;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Grants;
    use tokio::sync::mpsc;

    /// A request body the test writes chunk by chunk, as a plugin does
    /// after `outgoing-handler.handle`.
    struct ChanBody(mpsc::Receiver<Bytes>);

    impl Body for ChanBody {
        type Data = Bytes;
        type Error = HttpError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
            self.0
                .poll_recv(cx)
                .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
        }
    }

    type Answer = tokio::task::JoinHandle<Result<(), HttpError>>;

    /// A POST to an address no grant covers, its body still open.
    fn denied_request(timeout: Duration) -> (mpsc::Sender<Bytes>, Answer) {
        post(&Grants::default(), "http://127.0.0.1:9/in", timeout)
    }

    /// A POST under `grants`, its body still open.
    fn post(grants: &Grants, url: &str, timeout: Duration) -> (mpsc::Sender<Bytes>, Answer) {
        let mut hooks = HttpHooks {
            policy: SocketPolicy::new("t".into(), grants),
            caps: HttpCaps {
                timeout,
                ..HttpCaps::default()
            },
        };
        let (tx, rx) = mpsc::channel(1);
        let request = http::Request::post(url)
            .body(ChanBody(rx).boxed_unsync())
            .expect("request");
        let fut = Pin::from(hooks.send_request(request, None, Box::new(async { Ok(()) })));
        (tx, tokio::spawn(async move { fut.await.map(|_| ()) }))
    }

    /// A denied request keeps reading the body the plugin writes after
    /// `handle` (componentize-js's fetch traps on a closed body stream) and
    /// fails with `HTTP-request-denied` once the body ends.
    #[tokio::test]
    async fn a_denied_request_takes_the_body_then_fails() {
        let (tx, task) = denied_request(Duration::from_secs(10));
        for _ in 0..4 {
            // Capacity 1: each send waits until the host took the last chunk.
            tx.send(Bytes::from_static(b"[{\"n\":1}]"))
                .await
                .expect("the body stream is still open");
        }
        assert!(!task.is_finished(), "answered before the body ended");
        drop(tx);
        let r = task.await.expect("join");
        assert!(matches!(r, Err(HttpError::HttpRequestDenied)), "{r:?}");
    }

    /// A granted request whose connection fails (nothing listens on the
    /// port) also keeps taking the body until it ends, then fails with the
    /// connection's error, not the denial.
    #[tokio::test]
    async fn a_failed_send_takes_the_body_then_fails() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = closed.local_addr().expect("addr").port();
        drop(closed);
        let grants = Grants {
            outbound: vec![format!("http://127.0.0.1:{port}")],
            ..Grants::default()
        };
        let url = format!("http://127.0.0.1:{port}/in");
        let (tx, task) = post(&grants, &url, Duration::from_secs(10));
        for _ in 0..4 {
            tx.send(Bytes::from_static(b"[{\"n\":1}]"))
                .await
                .expect("the body stream is still open");
        }
        drop(tx);
        let r = task.await.expect("join");
        assert!(r.is_err(), "nothing listens: {r:?}");
        assert!(!matches!(r, Err(HttpError::HttpRequestDenied)), "{r:?}");
    }

    /// A body that never ends does not hold the answer past the timeout.
    #[tokio::test(start_paused = true)]
    async fn a_denied_request_with_an_endless_body_fails_at_the_timeout() {
        let (tx, task) = denied_request(Duration::from_millis(50));
        tx.send(Bytes::from_static(b"x")).await.expect("open");
        let r = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("answered within the timeout")
            .expect("join");
        assert!(matches!(r, Err(HttpError::HttpRequestDenied)), "{r:?}");
        drop(tx);
    }
}
