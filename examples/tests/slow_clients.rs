//! Slow and half-open clients against the demo's server (`ctx_examples::serve`, the routes of
//! `router` behind ctx-http's `ContextLayer`), on real sockets on 127.0.0.1: a request head
//! trickled one byte at a time, a connection that sends nothing, an idle keep-alive
//! connection, a body announced and never sent, and a client that stops reading a large
//! answer. Each is cut off (a bounded wait, or a clear answer), leaves nothing behind (the
//! request's context ended with its cause, the connection's task gone, no query running), and
//! the server answers other clients meanwhile.
//!
//! The limits are short here (300 ms) so that the tests are quick; what the tests assert is the
//! outcome, with generous bounds ([`BOUND`]) only on how long it may take to come.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use common::sqlite_app;
use ctx_core::{CancelHandle, Context, Error};
use ctx_examples::serve::{Limits, serve};
use ctx_examples::{Album, App, router, seed};
use ctx_http::{ContextLayer, RequestContext, RequestEnd};
use http_body::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A generous bound for what the limits make happen in about 300 ms.
const BOUND: Duration = Duration::from_secs(10);

/// The limits under test.
const LIMITS: Limits = Limits {
    header_read: Duration::from_millis(300),
    write_stall: Duration::from_millis(300),
};

/// The size of `/large`'s answer: far more than loopback's socket buffers hold.
const LARGE: usize = 64 << 20;

/// The contexts of the requests to the test's own routes, as their handlers got them.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Context>>>);

impl Seen {
    fn push(&self, ctx: &Context) {
        self.0.lock().unwrap().push(ctx.clone());
    }

    /// The only request's context, once its handler has it.
    async fn one(&self) -> Context {
        let start = tokio::time::Instant::now();
        loop {
            {
                let seen = self.0.lock().unwrap();
                assert!(seen.len() <= 1, "{} requests seen", seen.len());
                if let Some(ctx) = seen.first() {
                    return ctx.clone();
                }
            }
            assert!(start.elapsed() < BOUND, "the handler was never called");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// `POST /upload`: reads the whole body, says how long it was.
async fn upload(
    ctx: RequestContext,
    State(seen): State<Seen>,
    body: Body,
) -> Result<String, StatusCode> {
    seen.push(&ctx);
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|_| StatusCode::BAD_REQUEST)?;
    Ok(format!("{} bytes", bytes.len()))
}

/// `GET /large`: [`LARGE`] bytes, in one piece.
async fn large(ctx: RequestContext, State(seen): State<Seen>) -> Vec<u8> {
    seen.push(&ctx);
    vec![b'x'; LARGE]
}

/// A MiB of the answer of `/stream`.
static CHUNK: [u8; 1 << 20] = [b'x'; 1 << 20];

/// `GET /stream`: [`LARGE`] bytes, a MiB at a time, each made when hyper asks for it.
async fn stream(ctx: RequestContext, State(seen): State<Seen>) -> Body {
    seen.push(&ctx);
    Body::new(Chunks(LARGE / CHUNK.len()))
}

/// A body of this many [`CHUNK`]s.
struct Chunks(usize);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.0 == 0 {
            return Poll::Ready(None);
        }
        self.0 -= 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK)))))
    }
}

struct Server {
    addr: SocketAddr,
    app: Arc<App>,
    seen: Seen,
    /// The tasks alive once the server runs and no client is connected.
    baseline: usize,
    _root: CancelHandle,
}

/// The demo's routes (1 s for each request) and the test's own (`/upload` with 1 s, `/large`
/// and `/stream` without a timeout), served within [`LIMITS`].
async fn start(name: &str) -> Server {
    let app = Arc::new(sqlite_app(name).await);
    let (root, handle) = Context::background().with_cancel();
    let seen = Seen::default();
    let timeout = Duration::from_secs(1);
    let upload = Router::new()
        .route("/upload", post(upload))
        .with_state(seen.clone())
        .layer(ContextLayer::new(root.clone()).timeout(timeout));
    // No timeout: only the write-stall limit can end these.
    let large = Router::new()
        .route("/large", get(large))
        .route("/stream", get(stream))
        .with_state(seen.clone())
        .layer(ContextLayer::new(root.clone()));
    let routes = router(app.clone(), root, Some(timeout))
        .merge(upload)
        .merge(large);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, routes, LIMITS, std::future::pending()));
    // The accept loop is running once it answers.
    assert_eq!(fetch(addr, "/albums/1").await.0, 200);
    Server {
        addr,
        app,
        seen,
        baseline: settled_tasks(usize::MAX).await,
        _root: handle,
    }
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Waits until at most `most` tasks are alive (the connection tasks of finished exchanges
/// end a moment after their client has its answer), then returns how many are.
async fn settled_tasks(most: usize) -> usize {
    let start = tokio::time::Instant::now();
    let mut last = alive_tasks();
    // With no bound given: until the count stops changing for 50 ms.
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = alive_tasks();
        if now <= most && (most != usize::MAX || now == last) {
            return now;
        }
        last = now;
        assert!(
            start.elapsed() < BOUND,
            "{now} tasks alive, more than the {most} of the idle server: a connection is left"
        );
    }
}

/// A whole exchange on a fresh connection (`Connection: close`): status and body.
async fn fetch(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let exchange = async {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n");
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        socket.read_to_end(&mut answer).await.unwrap();
        parse(&answer)
    };
    tokio::time::timeout(BOUND, exchange)
        .await
        .unwrap_or_else(|_| panic!("GET {path}: no answer within {BOUND:?}"))
}

/// The status and body of a whole HTTP/1.1 answer.
fn parse(answer: &[u8]) -> (u16, Vec<u8>) {
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP answer: {:?}", String::from_utf8_lossy(answer)));
    let head = String::from_utf8_lossy(&answer[..end]);
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, answer[end + 4..].to_vec())
}

/// Other clients are answered, correctly, while a slow one holds its connection.
async fn others_are_served(server: &Server) {
    for id in 1..=5 {
        let (status, body) = fetch(server.addr, &format!("/albums/{id}")).await;
        assert_eq!(status, 200);
        let album: Album = serde_json::from_slice(&body).unwrap();
        assert_eq!(album, seed()[id - 1]);
    }
    let (status, body) = fetch(server.addr, "/albums").await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_slice::<Vec<Album>>(&body).unwrap(), seed());
}

/// How a connection ended, seen from the client.
#[derive(Debug, PartialEq)]
enum Closed {
    /// The server closed it (end of file), after sending these bytes.
    Eof(Vec<u8>),
    /// The server reset it, after sending these bytes.
    Reset(Vec<u8>),
}

/// Reads until the server closes the connection, within [`BOUND`].
async fn until_closed(socket: &mut TcpStream) -> Closed {
    let mut got = Vec::new();
    let read = async {
        let mut buf = vec![0; 1 << 16];
        loop {
            match socket.read(&mut buf).await {
                Ok(0) => return Closed::Eof(got),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => return Closed::Reset(got),
            }
        }
    };
    tokio::time::timeout(BOUND, read)
        .await
        .unwrap_or_else(|_| panic!("the server kept the connection open for {BOUND:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_trickled_one_byte_at_a_time_is_cut_off() {
    let server = start("trickle").await;
    let head = format!(
        "GET /albums HTTP/1.1\r\nHost: demo\r\nX-Trickle: {}\r\n\r\n",
        "a".repeat(1000)
    );
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    // One byte every 10 ms: the whole head would take over 10 s, 35 times the limit.
    let trickle = async {
        for (sent, byte) in head.bytes().enumerate() {
            if socket.write_all(&[byte]).await.is_err() {
                return sent;
            }
            let mut buf = [0; 1024];
            match tokio::time::timeout(Duration::from_millis(10), socket.read(&mut buf)).await {
                Err(_) => {}
                Ok(Ok(0) | Err(_)) => return sent + 1,
                Ok(Ok(n)) => panic!(
                    "answered after {} of {} bytes: {:?}",
                    sent + 1,
                    head.len(),
                    String::from_utf8_lossy(&buf[..n])
                ),
            }
        }
        head.len()
    };
    let (sent, ()) = tokio::join!(trickle, async {
        // Served meanwhile.
        tokio::time::sleep(Duration::from_millis(50)).await;
        others_are_served(&server).await;
    });
    assert!(
        sent < head.len(),
        "the server waited for the whole trickled head ({sent} bytes)"
    );
    println!("cut off after {sent} of {} bytes", head.len());
    drop(socket);
    settled_tasks(server.baseline).await;
    assert_eq!(server.app.connections_in_use(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_nothing_is_closed() {
    let server = start("silent").await;
    // Nothing at all, and the first byte of HTTP/2's preface then nothing: hyper is still
    // choosing the protocol, before its own header timeout starts.
    for first in [&b""[..], b"P"] {
        let mut socket = TcpStream::connect(server.addr).await.unwrap();
        socket.write_all(first).await.unwrap();
        others_are_served(&server).await;
        let closed = until_closed(&mut socket).await;
        assert!(
            matches!(&closed, Closed::Eof(got) | Closed::Reset(got) if got.is_empty()),
            "{closed:?}"
        );
    }
    settled_tasks(server.baseline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let server = start("idle").await;
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    socket
        .write_all(b"GET /albums/2 HTTP/1.1\r\nHost: demo\r\n\r\n")
        .await
        .unwrap();
    // The answer, then silence from the client: the server closes the connection.
    let closed = until_closed(&mut socket).await;
    let Closed::Eof(got) = closed else {
        panic!("{closed:?}")
    };
    let (status, body) = parse(&got);
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_slice::<Album>(&body).unwrap(), seed()[1]);
    settled_tasks(server.baseline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_announced_and_never_sent_times_out_with_504() {
    let server = start("no-body").await;
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    // 1,000 bytes announced, 10 sent.
    socket
        .write_all(b"POST /upload HTTP/1.1\r\nHost: demo\r\nContent-Length: 1000\r\n\r\n0123456789")
        .await
        .unwrap();
    let ctx = server.seen.one().await;
    others_are_served(&server).await;
    // The handler waits for the body until the request's timeout ends its context; the layer
    // answers 504; hyper closes the connection, whose body was never read to its end.
    tokio::time::timeout(BOUND, ctx.done())
        .await
        .expect("the request's context did not end");
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    assert_eq!(RequestEnd::of(&ctx), Some(RequestEnd::TimedOut));
    let closed = until_closed(&mut socket).await;
    let (Closed::Eof(got) | Closed::Reset(got)) = closed;
    let (status, body) = parse(&got);
    assert_eq!(status, 504, "{:?}", String::from_utf8_lossy(&body));
    assert_eq!(body, b"request timed out");
    settled_tasks(server.baseline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_announced_to_a_slow_query_stops_the_query_with_504() {
    let server = start("no-body-query").await;
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    // The handler reads no body: its query runs until the request's timeout.
    socket
        .write_all(
            b"GET /albums/slow?seconds=30 HTTP/1.1\r\nHost: demo\r\nContent-Length: 1000\r\n\r\n",
        )
        .await
        .unwrap();
    common::wait_until("the query starts", BOUND, || {
        server.app.connections_in_use() == 1
    })
    .await;
    others_are_served(&server).await;
    let closed = until_closed(&mut socket).await;
    let (Closed::Eof(got) | Closed::Reset(got)) = closed;
    let (status, _) = parse(&got);
    assert_eq!(status, 504);
    common::wait_until("the query stops", BOUND, || {
        server.app.connections_in_use() == 0
    })
    .await;
    settled_tasks(server.baseline).await;
}

/// Asks for `path` and reads the start of the answer only; returns how much it read.
async fn read_the_start(socket: &mut TcpStream, path: &str) -> usize {
    let request = format!("GET {path} HTTP/1.1\r\nHost: demo\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut first = vec![0; 4096];
    let n = tokio::time::timeout(BOUND, socket.read(&mut first))
        .await
        .unwrap()
        .unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    n
}

/// What the client can still read once the server cut it off: what the socket buffers held,
/// never the whole answer.
async fn never_all_of_it(socket: &mut TcpStream, read: usize) {
    let closed = until_closed(socket).await;
    let (Closed::Eof(got) | Closed::Reset(got)) = closed;
    assert!(
        read + got.len() < LARGE,
        "{} bytes arrived",
        read + got.len()
    );
    println!("the client got {} of {LARGE} bytes", read + got.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_a_large_answer_is_cut_off() {
    let server = start("no-read").await;
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    let read = read_the_start(&mut socket, "/large").await;
    let ctx = server.seen.one().await;
    others_are_served(&server).await;
    // The body was handed to hyper whole, so the request was done as far as the layer can
    // tell: its context ended as a finished exchange's does (`Canceled`, no cause of the
    // layer's). hyper's write stalls, and fails after the limit: the connection and its task
    // end.
    tokio::time::timeout(BOUND, ctx.done())
        .await
        .expect("the request's context did not end");
    assert_eq!(ctx.err(), Some(Error::Canceled));
    assert_eq!(RequestEnd::of(&ctx), None);
    settled_tasks(server.baseline).await;
    never_all_of_it(&mut socket, read).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_a_streamed_answer_ends_its_context() {
    let server = start("no-read-stream").await;
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    let read = read_the_start(&mut socket, "/stream").await;
    let ctx = server.seen.one().await;
    others_are_served(&server).await;
    // hyper asks for no more of the body while its write stalls; the write fails after the
    // limit, hyper drops the body, which ends the request's context as a client that left.
    tokio::time::timeout(BOUND, ctx.done())
        .await
        .expect("the request's context did not end");
    assert_eq!(ctx.err(), Some(Error::Canceled));
    assert_eq!(RequestEnd::of(&ctx), Some(RequestEnd::ClientDisconnected));
    settled_tasks(server.baseline).await;
    never_all_of_it(&mut socket, read).await;
}
