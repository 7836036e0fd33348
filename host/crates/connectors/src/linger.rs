//! Lingering close for Oort's HTTP listeners: the REST API (and its
//! metrics listener) and the data server of `httppush` and `websocket`.
//!
//! When a server answers before it has read a request's whole body (a
//! 413 for a body over `rest.body_limit`, a 401 before an upload), hyper
//! closes the connection with the rest of the body unread. Closing a TCP
//! socket that still holds unread bytes makes the kernel send a reset
//! instead of a normal end, and a reset that reaches the client before it
//! has read the answer discards the answer: the client sees "connection
//! reset" and never learns why. [`Lingering`] closes the way web servers
//! have long done it: it ends the write side (the answer is complete and
//! the client sees the end of it), then reads and discards what the client
//! still sends until the client closes, for at most [`LINGER`] and
//! [`LINGER_BYTES`], and only then lets the socket go.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Longest a closing connection keeps reading what its client still sends.
pub const LINGER: Duration = Duration::from_secs(2);

/// Most bytes a closing connection reads and discards.
pub const LINGER_BYTES: usize = 64 * 1024 * 1024;

/// A TCP listener whose connections close with a bounded linger.
pub struct LingeringListener(pub TcpListener);

impl axum::serve::Listener for LingeringListener {
    type Io = Lingering;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.0).await;
        (Lingering::new(io), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

enum Closing {
    Open,
    /// Write side ended; reading what is left until EOF or the bounds.
    Draining {
        deadline: Pin<Box<tokio::time::Sleep>>,
        read: usize,
    },
    Closed,
}

/// A TCP stream whose shutdown lingers (see the module's documentation).
pub struct Lingering {
    io: TcpStream,
    closing: Closing,
}

impl Lingering {
    pub fn new(io: TcpStream) -> Self {
        Lingering {
            io,
            closing: Closing::Open,
        }
    }
}

impl AsyncRead for Lingering {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.closing {
                Closing::Open => {
                    ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
                    this.closing = Closing::Draining {
                        deadline: Box::pin(tokio::time::sleep(LINGER)),
                        read: 0,
                    };
                }
                Closing::Draining { deadline, read } => {
                    if deadline.as_mut().poll(cx).is_ready() || *read >= LINGER_BYTES {
                        this.closing = Closing::Closed;
                        continue;
                    }
                    let mut scratch = [0u8; 8192];
                    let mut buf = ReadBuf::new(&mut scratch);
                    match Pin::new(&mut this.io).poll_read(cx, &mut buf) {
                        Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                            this.closing = Closing::Closed;
                        }
                        Poll::Ready(Ok(())) => *read += buf.filled().len(),
                        // A reset or other error: nothing left to wait for.
                        Poll::Ready(Err(_)) => this.closing = Closing::Closed,
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Closing::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// Middleware: a response sent before the request's body was read to its
/// end says `Connection: close`. The server closes such a connection after
/// the response (the rest of the body is not worth reading), and a client
/// told nothing would put it back in its pool and send its next request on
/// a connection that is closing ("connection closed before message
/// completed"). Outermost, so that it sees the guard's refusals too.
pub async fn close_unread(req: Request, next: Next) -> Response {
    if !declares_body(req.headers()) {
        return next.run(req).await;
    }
    let read = Arc::new(AtomicBool::new(false));
    let flag = read.clone();
    let req = req.map(move |b| {
        Body::new(Tracked {
            inner: b,
            read: flag,
        })
    });
    let mut resp = next.run(req).await;
    if !read.load(Ordering::Acquire) {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Middleware with the body limit as its state: a request whose
/// `Content-Length` is over the limit gets its 413 before any of its body is
/// read. A client that sent `Expect: 100-continue` (curl does for a body
/// over 1 MiB) is then never told to go on and does not upload the body at
/// all; without this, the first read of the body would tell it to go on and
/// it would send the whole body only to learn it was too large. A body sent
/// in chunks has no declared length: the extractor's limit still cuts it
/// while it is read.
pub async fn refuse_declared_over(
    axum::extract::State(limit): axum::extract::State<usize>,
    req: Request,
    next: Next,
) -> Response {
    if declared_length(req.headers()).is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    next.run(req).await
}

/// The plain 413 that axum's extractors give too (each server shapes it).
pub fn too_large() -> Response {
    (
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        [(header::CONNECTION, HeaderValue::from_static("close"))],
        "request body too large",
    )
        .into_response()
}

/// The body length the headers declare, if they declare one that parses.
pub fn declared_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// A body follows the headers: a length above 0 (or one that does not
/// parse), or chunks.
pub fn declares_body(h: &HeaderMap) -> bool {
    h.contains_key(header::TRANSFER_ENCODING)
        || (h.contains_key(header::CONTENT_LENGTH) && declared_length(h).is_none_or(|n| n > 0))
}

/// A request body that notes when it has been read to its end.
struct Tracked {
    inner: Body,
    read: Arc<AtomicBool>,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        let ended = match &r {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => self.inner.is_end_stream(),
            _ => false,
        };
        if ended {
            self.read.store(true, Ordering::Release);
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The first line of what a server answers on a raw connection (tests).
#[cfg(test)]
pub(crate) async fn status_line(c: &mut TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        c.read_exact(&mut byte).await.unwrap();
        line.push(byte[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (Lingering, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        (Lingering::new(server), client)
    }

    /// The client is still sending when the server answers and closes: the
    /// server's shutdown reads what comes until the client closes, and the
    /// client gets its whole body written, the whole answer and a clean end
    /// (without the linger, the socket dropped with unread bytes resets the
    /// connection and the client's write or read fails).
    #[tokio::test]
    async fn a_close_with_unread_bytes_delivers_the_answer() {
        const ANSWER: &[u8] = b"HTTP/1.1 413 Payload Too Large\r\n\r\n";
        let (mut server, mut client) = pair().await;
        let closed = tokio::spawn(async move {
            let mut first = [0u8; 1024];
            server.read_exact(&mut first).await?;
            server.write_all(ANSWER).await?;
            server.shutdown().await
            // dropped here, as hyper drops it
        });
        client
            .write_all(&vec![b'x'; 16 * 1024 * 1024])
            .await
            .unwrap();
        let mut got = Vec::new();
        client
            .read_to_end(&mut got)
            .await
            .expect("a clean end, not a reset");
        assert_eq!(got, ANSWER);
        drop(client);
        closed.await.unwrap().unwrap();
    }

    /// A client that never closes holds a closing connection at most
    /// `LINGER` (the paused clock moves on as soon as all is idle).
    #[tokio::test(start_paused = true)]
    async fn the_linger_is_bounded_in_time() {
        let (mut server, client) = pair().await;
        let t0 = tokio::time::Instant::now();
        server.shutdown().await.unwrap();
        assert!(t0.elapsed() >= LINGER, "{:?}", t0.elapsed());
        drop(client);
    }

    /// `Connection: close` goes with a response sent before the body was
    /// read (so a pooled client does not reuse the closing connection),
    /// not with one whose handler read it, nor when there was no body.
    #[tokio::test]
    async fn a_response_that_leaves_the_body_unread_says_close() {
        use axum::routing::post;
        let app = axum::Router::new()
            .route("/read", post(|b: Bytes| async move { b.len().to_string() }))
            .route("/skip", post(|| async { "skipped" }))
            .layer(axum::middleware::from_fn(close_unread));
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(LingeringListener(l), app).await });
        let http = reqwest::Client::new();
        let close = |path: &'static str, body: &'static str| {
            let http = http.clone();
            async move {
                let r = http
                    .post(format!("http://{addr}{path}"))
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let c = r.headers().get("connection").cloned();
                (r.text().await.unwrap(), c.is_some_and(|v| v == "close"))
            }
        };
        assert_eq!(close("/read", "abc").await, ("3".to_string(), false));
        assert_eq!(close("/skip", "abc").await, ("skipped".to_string(), true));
        assert_eq!(close("/skip", "").await, ("skipped".to_string(), false));
    }

    /// A declared length over the limit is refused before the body is read:
    /// a client waiting for `100 Continue` gets the 413 instead (without the
    /// middleware the extractor's first read sends `100 Continue`), and a
    /// length within the limit is told to go on.
    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_unread() {
        let app = axum::Router::new()
            .route(
                "/up",
                axum::routing::post(|b: Bytes| async move { b.len().to_string() }),
            )
            .layer(axum::extract::DefaultBodyLimit::max(1024))
            .layer(axum::middleware::from_fn_with_state(
                1024usize,
                refuse_declared_over,
            ));
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(LingeringListener(l), app).await });
        let first_line = |len: usize| async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            let head = format!(
                "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\nExpect: 100-continue\r\n\r\n"
            );
            c.write_all(head.as_bytes()).await.unwrap();
            status_line(&mut c).await
        };
        assert_eq!(first_line(2048).await, "HTTP/1.1 413 Payload Too Large\r\n");
        assert_eq!(first_line(1000).await, "HTTP/1.1 100 Continue\r\n");
    }

    /// A client that closes ends the linger at once.
    #[tokio::test(start_paused = true)]
    async fn a_client_that_closes_ends_the_linger() {
        let (mut server, mut client) = pair().await;
        client.shutdown().await.unwrap();
        let t0 = tokio::time::Instant::now();
        server.shutdown().await.unwrap();
        assert!(t0.elapsed() < LINGER, "{:?}", t0.elapsed());
    }
}
