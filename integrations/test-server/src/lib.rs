//! A real axum server on 127.0.0.1 for the HTTP tests: every request gets its context from
//! `ContextLayer`, and the handlers hand their contexts to the test.

// Test support only: its types need no `Debug`.
#![allow(missing_debug_implementations)]

pub mod capture;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use ctx_core::{CancelHandle, Context};
use ctx_http::{ContextLayer, RequestContext};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Long enough that no test waits for it: a handler that sleeps this long is only ever stopped.
pub const FOREVER: Duration = Duration::from_secs(300);

/// The bound every wait in these tests has: far above what anything takes on a loaded machine,
/// far below a hang.
pub const BOUND: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Probe {
    started: mpsc::UnboundedSender<Context>,
    calls: Arc<AtomicUsize>,
}

impl Probe {
    fn started(&self, ctx: &Context) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let _ = self.started.send(ctx.clone());
    }
}

/// `GET /hello`: answers at once.
async fn hello(State(probe): State<Probe>, RequestContext(ctx): RequestContext) -> String {
    probe.calls.fetch_add(1, Ordering::SeqCst);
    format!("hello, live: {}", !ctx.is_done())
}

/// `GET /wait`: hands its context to the test and sleeps (not watching it: the layer stops it).
async fn wait(State(probe): State<Probe>, RequestContext(ctx): RequestContext) -> &'static str {
    probe.started(&ctx);
    tokio::time::sleep(FOREVER).await;
    "finished"
}

/// `GET /stream`: answers at once with a body whose first chunk comes at once and whose second
/// never does.
async fn stream(State(probe): State<Probe>, RequestContext(ctx): RequestContext) -> Body {
    probe.started(&ctx);
    Body::new(FirstChunkOnly(Some(Bytes::from_static(b"first chunk\n"))))
}

/// `POST /unread`: holds the request body without reading it.
async fn unread(
    State(probe): State<Probe>,
    RequestContext(ctx): RequestContext,
    body: Body,
) -> &'static str {
    probe.started(&ctx);
    tokio::time::sleep(FOREVER).await;
    drop(body);
    "finished"
}

/// `POST /read`: reads the whole request body, then sleeps.
async fn read(
    State(probe): State<Probe>,
    RequestContext(ctx): RequestContext,
    body: Bytes,
) -> String {
    probe.started(&ctx);
    tokio::time::sleep(FOREVER).await;
    format!("{} bytes", body.len())
}

/// A body that yields one chunk and then waits forever.
pub struct FirstChunkOnly(pub Option<Bytes>);

impl http_body::Body for FirstChunkOnly {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        match self.0.take() {
            Some(chunk) => Poll::Ready(Some(Ok(http_body::Frame::data(chunk)))),
            None => Poll::Pending,
        }
    }
}

pub fn router(probe: Probe) -> Router {
    Router::new()
        .route("/hello", get(hello))
        .route("/wait", get(wait))
        .route("/stream", get(stream))
        .route("/unread", post(unread))
        .route("/read", post(read))
        .with_state(probe)
}

pub struct Server {
    pub addr: SocketAddr,
    /// The server's root context.
    pub root: Context,
    /// Cancels `root`; `axum::serve` shuts down gracefully when it ends.
    pub shutdown: Option<CancelHandle>,
    started: mpsc::UnboundedReceiver<Context>,
    calls: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    pub task: JoinHandle<()>,
}

impl Server {
    /// Serves `router` with `axum::serve` (HTTP/1.1 and HTTP/2, hyper's defaults) on
    /// 127.0.0.1, every request under `ContextLayer::new(root)`, with `timeout` if given.
    pub async fn start(timeout: Option<Duration>) -> Server {
        let (started_tx, started) = mpsc::unbounded_channel();
        let calls = Arc::new(AtomicUsize::new(0));
        let probe = Probe {
            started: started_tx,
            calls: calls.clone(),
        };
        let (root, shutdown) = Context::background().with_cancel();
        let mut layer = ContextLayer::new(root.clone());
        if let Some(timeout) = timeout {
            layer = layer.timeout(timeout);
        }
        let app = router(probe).layer(layer);

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let listener = listener.tap_io(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let stop = root.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    stop.done().await;
                })
                .await
                .unwrap();
        });
        Server {
            addr,
            root,
            shutdown: Some(shutdown),
            started,
            calls,
            connections,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The context of the next handler that starts.
    pub async fn started(&mut self) -> Context {
        tokio::time::timeout(BOUND, self.started.recv())
            .await
            .expect("no handler started")
            .unwrap()
    }

    /// How many times a handler was called.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// How many TCP connections the server accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Waits (at most `BOUND`) for `ctx` to end and returns how long that took.
pub async fn ended_within(ctx: &Context) -> Duration {
    let t0 = std::time::Instant::now();
    tokio::time::timeout(BOUND, ctx.done())
        .await
        .unwrap_or_else(|_| panic!("the request's context did not end within {BOUND:?}"));
    t0.elapsed()
}
