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
use axum::response::Response;
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

/// Response middleware, for a server whose handlers all take the whole body
/// as an extractor (the data server): there only the extractor's refusal of
/// a body past the limit (413) leaves it unread, so that answer alone is
/// marked `Connection: close`, without [`close_unread`]'s wrapping of every
/// request body (about 5% of `httppush`'s throughput).
pub async fn close_too_large(mut resp: Response) -> Response {
    if resp.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// A body follows the headers: a length above 0 (or one that does not
/// parse), or chunks.
pub fn declares_body(h: &HeaderMap) -> bool {
    h.contains_key(header::TRANSFER_ENCODING)
        || h.get(header::CONTENT_LENGTH).is_some_and(|v| {
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .is_none_or(|n| n > 0)
        })
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
