//! Serving the demo's routes with bounds on slow and half-open clients.
//!
//! `axum::serve` bounds none of them: it builds hyper's connections without a timer, so hyper's
//! `header_read_timeout` (30 s by default) is not applied at all, and hyper has no bound on a
//! write to a client that stopped reading. A client could hold a connection, and its task,
//! forever by trickling its request head one byte at a time, or by never reading a large
//! answer. [`serve`] accepts the connections itself and gives each:
//!
//! - **a bound on reading a request head** ([`Limits::header_read`]): hyper's
//!   `header_read_timeout`, with tokio's timer. It runs from the moment hyper waits for a head,
//!   so it also closes a keep-alive connection left idle that long. hyper starts it only once
//!   it knows the connection speaks HTTP/1 (it first reads a connection's bytes until they
//!   differ from HTTP/2's 24-byte preface: one byte, for HTTP/1), so those first bytes have
//!   the same bound of their own.
//! - **a bound on a stalled write** ([`Limits::write_stall`]): a write to the socket that makes
//!   no progress for that long fails the connection. hyper then drops the answer's body, so
//!   the request's context ends with `client disconnected`, as for any client that went away.
//!
//! What neither needs: a request body announced and never sent (or trickled) is bounded by the
//! request's context, whose timeout ([`ContextLayer`](ctx_http::ContextLayer)'s, and each
//! handler's own 5 s) ends the handler reading it; hyper then closes the connection, since
//! the body was not read to its end.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;

/// How long a client may take over what the server waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest a request head may take to arrive, and a keep-alive connection may stay
    /// idle.
    pub header_read: Duration,
    /// The longest a write to the client may make no progress (the client stopped reading).
    pub write_stall: Duration,
}

impl Default for Limits {
    /// 10 s for a request head, 10 s for a stalled write: far more than any client on a working
    /// network needs, far less than a connection held forever.
    fn default() -> Limits {
        Limits {
            header_read: Duration::from_secs(10),
            write_stall: Duration::from_secs(10),
        }
    }
}

/// Serves `routes` on `listener` over HTTP/1.1 (and HTTP/2 with prior knowledge) within
/// `limits`, until `shutdown` completes; then stops accepting and returns once every
/// connection has closed (hyper closes the idle ones at once, the others after their request
/// in flight).
pub async fn serve(
    listener: TcpListener,
    routes: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(err) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // keep serving the others (what axum::serve does too).
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let io = TokioIo::new(Bounded::new(stream, limits));
        let conn = builder
            .serve_connection_with_upgrades(io, TowerToHyperService::new(routes.clone()))
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// HTTP/2's connection preface: hyper reads a connection's first bytes until they differ from
/// it (or match it whole) to choose the protocol, and starts its own header timeout only then.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A connection's socket, with the bounds hyper lacks: its first bytes within
/// [`Limits::header_read`], and no write stalled for longer than [`Limits::write_stall`].
struct Bounded {
    stream: TcpStream,
    write_stall: Duration,
    /// Until hyper has the bytes to choose the protocol: when they are due.
    first_bytes: Option<Pin<Box<Sleep>>>,
    /// How many of the first bytes matched [`H2_PREFACE`].
    read: usize,
    /// While a write is pending: when it fails.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl Bounded {
    fn new(stream: TcpStream, limits: Limits) -> Bounded {
        Bounded {
            stream,
            write_stall: limits.write_stall,
            first_bytes: Some(Box::pin(tokio::time::sleep(limits.header_read))),
            read: 0,
            stalled: None,
        }
    }

    /// After a write returned `Pending`: fails once it has been pending for `write_stall`.
    fn poll_stall(&mut self, cx: &mut TaskContext<'_>) -> Poll<io::Error> {
        let limit = self.write_stall;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(stalled.as_mut().poll(cx));
        self.stalled = None;
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client read nothing for {limit:?}"),
        ))
    }

    /// A write (or flush) polled: progress stops the stall's clock, `Pending` runs it.
    fn wrote<T>(
        &mut self,
        cx: &mut TaskContext<'_>,
        polled: Poll<io::Result<T>>,
        progress: bool,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(result) => {
                if progress {
                    self.stalled = None;
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.poll_stall(cx).map(Err),
        }
    }
}

impl AsyncRead for Bounded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if this.first_bytes.is_some() {
                    let new = &buf.filled()[before..];
                    // hyper stops reading for the version at the first byte that is not
                    // HTTP/2's preface, or at its end.
                    let end = (this.read + new.len()).min(H2_PREFACE.len());
                    let preface = new[..end - this.read] == H2_PREFACE[this.read..end];
                    this.read = end;
                    if new.is_empty() || !preface || end == H2_PREFACE.len() {
                        this.first_bytes = None;
                    }
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                if let Some(due) = &mut this.first_bytes
                    && due.as_mut().poll(cx).is_ready()
                {
                    this.first_bytes = None;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client's first bytes did not arrive in time",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for Bounded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.wrote(cx, polled, true)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.wrote(cx, polled, true)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_flush(cx);
        this.wrote(cx, polled, false)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_shutdown(cx);
        this.wrote(cx, polled, false)
    }
}
