//! A [`Context`] for every HTTP request a server handles: a tower [`Layer`]
//! for hyper- and axum-based servers. Go: `r.Context()`, with `BaseContext` as the root.
//!
//! [`ContextLayer::new(root)`](ContextLayer::new) wraps a service so that each request gets a
//! child of `root`, optionally with a timeout ([`ContextLayer::timeout`]), put in the request's
//! extensions (and, with the `axum` feature, extracted by naming `ctx: RequestContext` in a
//! handler). The request's context ends, with a [`cause()`](ctx_core::Context::cause) that is a
//! [`RequestEnd`] saying why, when the first of these happens:
//!
//! | what happens | `err()` | `cause()` |
//! | --- | --- | --- |
//! | the client closes the connection (HTTP/1.1) or resets the stream (HTTP/2) before the response is sent in full | `Canceled` | [`RequestEnd::ClientDisconnected`]: `client disconnected` |
//! | the timeout passes | `DeadlineExceeded` | [`RequestEnd::TimedOut`]: `request timed out` |
//! | the caller's deadline passes (a `grpc-timeout` header nearer than the timeout) | `DeadlineExceeded` | [`RequestEnd::CallerDeadlineExceeded`]: `caller's deadline exceeded` |
//! | the root ends | the root's | the root's: cancel it with [`RequestEnd::ShuttingDown`] (`server shutting down`) |
//! | the response has been sent in full (or the service failed) | `Canceled` | `Canceled` (nothing went wrong) |
//!
//! # The caller's deadline
//!
//! A caller that runs under a deadline sends the time it has left in a `grpc-timeout` header
//! (gRPC clients do; so do `send_ctx` of `ctx-reqwest` and `call` of
//! `ctx-tonic`). The request's deadline is then the nearer of
//! that and the layer's timeout, so a chain of services shares one deadline. The header can
//! only shorten a request's time: a malformed or hostile value (not 1 to 8 digits and one of
//! the units `H M S m u n`, see [`grpc_timeout`]) is logged with a `tracing`
//! warning and ignored, and a request whose caller's time has already run out (`0m`) is
//! answered without calling the service. With [`ContextLayer::min_remaining`], so is a request
//! whose caller left less time than the work needs: `504 deadline too near: 20ms left, 50ms
//! needed` (a gRPC call: `DEADLINE_EXCEEDED`).
//!
//! # What the client gets when the context ends first
//!
//! The layer races the service's future against the context. When the context ends while the
//! service is still working, the service's future is given one more poll (so a handler that
//! watches its context, for example through [`Context::run`](ctx_core::Context::run), can answer
//! in its own words), and is then dropped, which stops the handler at the `.await` where it
//! waits. The layer then answers:
//!
//! - `504 Gateway Timeout` if the context's `err()` is `DeadlineExceeded` (the request timed
//!   out, or the root's deadline passed), `503 Service Unavailable` if it is `Canceled` (the
//!   server is shutting down). Go's `http.TimeoutHandler` answers 503 for a timeout; 504 tells a
//!   client (and a proxy) that this was a timeout, not an overload.
//! - a `text/plain` body that is the cause's text, such as `request timed out`.
//!
//! A gRPC call (`content-type: application/grpc...`, as when the layer wraps a tonic server)
//! is answered in gRPC's terms instead: HTTP 200 with no body, `grpc-status`
//! `DEADLINE_EXCEEDED` (4) for a deadline, `UNAVAILABLE` (14) when the server is shutting down,
//! `CANCELLED` (1) otherwise, and the cause as `grpc-message`.
//!
//! For a client that went away nobody reads the answer: hyper drops the service's future, and
//! that drop is what ends the context with `client disconnected`.
//!
//! # Streaming bodies
//!
//! The context stays live while the response body is being sent, and ends when the body has
//! been sent in full (with `Canceled`), or with `client disconnected` if the body is dropped
//! before its end: the client went away mid-body (hyper also drops, unsent, a non-empty body
//! answering `HEAD` or with a `204`/`304` status). A streaming body (server-sent events, a large
//! download) should watch the request's context to stop producing. The layer's timeout ends
//! the context of a request whose body is streaming, but does not cut the body itself.
//!
//! # How a closed connection is noticed
//!
//! hyper notices it and drops the service's future (or the response body); the layer turns
//! that drop into the cause. No extra help is needed with hyper's default settings, which are
//! `axum::serve`'s and `hyper_util::server::conn::auto::Builder`'s:
//!
//! - **HTTP/1.1.** While the service's future is pending, hyper's connection task goes on
//!   reading the socket to detect an end of file "on a busy connection". An EOF (the client
//!   closed the socket, or shut down its write side) or a connection reset fails the
//!   connection, and hyper drops the service's future at once (within a millisecond on
//!   loopback). A client that half-closes its socket after a request (shuts down its write
//!   side, then reads) is taken as gone, as in Go's `net/http`. hyper does not read, so it
//!   notices nothing until the handler answers, in two cases: a connection built with
//!   `http1::Builder::half_close(true)` (off by default), and a request body larger than what
//!   hyper has already read that the handler holds without reading (hyper reads a body no
//!   faster than the handler does; a small body that came with the head hides nothing).
//! - **HTTP/2.** hyper runs each stream in a task of its own that, while the service's future
//!   is pending, watches for the client's `RST_STREAM`; the stream's reset, or the end of the
//!   connection, drops the future.
//!
//! A client that vanishes without closing anything (a network failure, a machine that lost
//! power) is noticed by neither protocol until TCP keepalive or HTTP/2 keep-alive pings
//! (`http2::Builder::keep_alive_interval`) give up: the layer's timeout bounds such requests.
//!
//! # Shutting down
//!
//! Cancel the root with [`RequestEnd::ShuttingDown`] as the cause: every request in flight ends
//! with it and is answered `503 server shutting down`, and requests that arrive afterwards are
//! answered so at once, without calling the service. With `axum::serve`, pass
//! `async move { root.done().await; }` to `with_graceful_shutdown` so that the server also
//! stops accepting connections and returns once the last one has closed.
//!
//! # Events (`tracing`)
//!
//! The layer emits one `tracing` event, `request ended early` (target `ctx_http`), for each
//! request whose context ended before its response was done: the client went away, a
//! deadline passed, the server shut down, even if the handler then answered in its own words.
//! A request that completes emits nothing. With no subscriber listening, nothing is kept for
//! it (the request's method and path are only kept when a subscriber may want them) and the
//! check is one atomic load: measured with callgrind on a trivial in-process service, the
//! event added 33 instructions to a request's 3,630 (0.9%; `examples/event_cost.rs`, which
//! counts 3,468 in all since the layer's own work was trimmed).
//!
//! | field | type | value |
//! | --- | --- | --- |
//! | `cause` | text | the cause's text: `client disconnected`, `request timed out`, `caller's deadline exceeded`, `server shutting down`, or the root's own cause (`context canceled` if none) |
//! | `origin` | text | `file:line:col` of the context's [`origin()`](ctx_core::Context::origin): where the root was cancelled for a shutdown; the layer's own source for a disconnect and for the deadlines it sets. Absent if the context has none |
//! | `elapsed_ms` | `u64` | milliseconds from the request's arrival to the moment the layer saw it end (for a context that ends while the body streams, the end of the body) |
//! | `method` | text | `GET`, `POST`, ... |
//! | `path` | text | the request's path, without its query (a query may carry secrets) |
//!
//! Its level says who has to act: `WARN` when the context's `err()` is `DeadlineExceeded` (a
//! timeout, the caller's deadline, the root's deadline: the server was too slow), `INFO`
//! otherwise (a client that went away, a shutdown: nothing the server did wrong). Turn it
//! off with a filter such as `RUST_LOG=info,ctx_http=warn` (only deadlines) or `ctx_http=off`.
//!
//! ## Mapping to a span's status (OpenTelemetry)
//!
//! The event is recorded in the span that was current when the layer was called (a request
//! span of your own, entered around the layer, as tower-http's `TraceLayer` does); with
//! `tracing-opentelemetry` it becomes an event of that span, its fields its attributes. It
//! sets no status itself (`tracing-opentelemetry` marks a span as an error only for `ERROR`
//! events, and none of these is one). Set the request span's status from `cause` and the
//! level:
//!
//! | `cause` | level | the client got | span status |
//! | --- | --- | --- | --- |
//! | `client disconnected` | `INFO` | nothing (it left) | unset: not a server error; the client's doing, like a 4xx (nginx logs it as 499) |
//! | `request timed out`, `caller's deadline exceeded` (and any deadline) | `WARN` | `504` / `DEADLINE_EXCEEDED` | `Error`, with `cause` as its description |
//! | `server shutting down` (and any other end of the root) | `INFO` | `503` / `UNAVAILABLE` | `Error` (a `5xx`), with `cause` as its description; expected during a deploy, hence `INFO` |
//!
//! In short: `Error` unless the cause is `client disconnected`; a deadline is always an error.
//! With `tracing-opentelemetry`, record `otel.status_code = "ERROR"` and
//! `otel.status_message = cause` on a span that declared them.
//!
//! # Examples
//!
//! With axum (the `axum` feature): the handler names `ctx: RequestContext`, which derefs to the
//! request's `Context`.
//!
//! ```
//! # #![cfg_attr(not(feature = "axum"), allow(unused))]
//! use std::time::Duration;
//! use axum::{Router, body::Body, http::{Request, StatusCode}, routing::get};
//! use ctx_core::Context;
//! use ctx_http::{ContextLayer, RequestContext};
//! use tower_service::Service;
//!
//! async fn album(ctx: RequestContext) -> String {
//!     // A lookup that would take a minute: stopped, and answered 504, after 5 s.
//!     tokio::time::sleep(Duration::from_secs(60)).await;
//!     format!("album 7 ({:?})", ctx.err())
//! }
//!
//! # #[cfg(feature = "axum")]
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let (root, _shutdown) = Context::background().with_cancel();
//! let mut app = Router::new()
//!     .route("/album", get(album))
//!     .layer(ContextLayer::new(root).timeout(Duration::from_secs(5)));
//!
//! let request = Request::get("/album").body(Body::empty()).unwrap();
//! let response = app.call(request).await.unwrap();
//! assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
//! # }
//! # #[cfg(not(feature = "axum"))]
//! # fn main() {}
//! ```
//!
//! With any tower service: the context is in the request's extensions.
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use ctx_http::{ContextLayer, RequestEnd};
//! use ctx_core::{Context, Error};
//! use http::{Request, Response, StatusCode};
//! use tower_layer::Layer;
//! use tower_service::Service;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! # struct Slow;
//! # impl Service<Request<String>> for Slow {
//! #     type Response = Response<String>;
//! #     type Error = Infallible;
//! #     type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<String>, Infallible>> + Send>>;
//! #     fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
//! #         std::task::Poll::Ready(Ok(()))
//! #     }
//! #     fn call(&mut self, req: Request<String>) -> Self::Future {
//! // Inside a service (here a handler that takes 60 s):
//! let ctx = req.extensions().get::<Context>().unwrap().clone();
//! Box::pin(async move {
//!     tokio::time::sleep(Duration::from_secs(60)).await;
//!     Ok(Response::new(format!("{:?}", ctx.err())))
//! })
//! #     }
//! # }
//! let layer = ContextLayer::new(Context::background()).timeout(Duration::from_secs(1));
//! let mut service = layer.layer(Slow);
//! let response = service.call(Request::new(String::new())).await.unwrap();
//! assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
//! # let _ = (Error::Canceled, RequestEnd::TimedOut);
//! # }
//! ```
//!
//! # How fast
//!
//! Measured with `cargo run -p ctx-http --features axum --example stops` (`axum::serve`,
//! loopback, a debug build on a 2-core machine): a request's context ends 0.11 ms after its
//! client closes the connection, 302 ms into a 300 ms timeout, and 7 µs after the root is
//! cancelled for a shutdown.

#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context as TaskContext, Poll, ready};

use bytes::Bytes;
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, header,
};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Duration, Instant};
use tower_layer::Layer;
use tower_service::Service;

use crate::grpc_timeout::{GRPC_TIMEOUT, parse_timeout};
use ctx_core::{CancelHandle, Context, Done, Error};

pub mod grpc_timeout;

#[cfg(feature = "signal")]
mod shutdown;
#[cfg(feature = "signal")]
#[cfg_attr(docsrs, doc(cfg(feature = "signal")))]
pub use self::shutdown::{Shutdown, ShutdownSignal};

#[cfg(feature = "axum")]
mod axum;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use self::axum::{MissingContextLayer, RequestContext};

/// Why a request's context ended: the [`cause()`](ctx_core::Context::cause) of the contexts that
/// [`ContextLayer`] makes.
///
/// Find it with [`RequestEnd::of`] or `ctx.cause()?.downcast_ref::<RequestEnd>()`. Its
/// `Display` is exactly the text in each variant's summary.
///
/// ```
/// use ctx_core::Context;
/// use ctx_http::RequestEnd;
///
/// let (root, shutdown) = Context::background().with_cancel();
/// let (request, _h) = root.with_cancel();
/// shutdown.cancel_with_cause(RequestEnd::ShuttingDown);
/// assert_eq!(RequestEnd::of(&request), Some(RequestEnd::ShuttingDown));
/// assert_eq!(request.cause().unwrap().to_string(), "server shutting down");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequestEnd {
    /// `client disconnected`: the client closed the connection (HTTP/1.1) or reset the stream
    /// (HTTP/2) before the response was sent in full; hyper dropped the request's future or its
    /// response body. `err()` is `Canceled`.
    ClientDisconnected,
    /// `request timed out`: the timeout set with [`ContextLayer::timeout`] passed. `err()` is
    /// `DeadlineExceeded`.
    TimedOut,
    /// `caller's deadline exceeded`: the time the caller gave the request in its
    /// [`grpc-timeout`](crate::grpc_timeout) header ran out (it was nearer than the layer's own
    /// timeout). `err()` is `DeadlineExceeded`.
    CallerDeadlineExceeded,
    /// `server shutting down`: the cause to cancel a server's root context with, so that every
    /// request in flight says why it ended.
    ///
    /// ```
    /// use ctx_core::Context;
    /// use ctx_http::RequestEnd;
    ///
    /// let (root, handle) = Context::background().with_cancel();
    /// // ... serve with `ContextLayer::new(root.clone())`; then, to stop:
    /// handle.cancel_with_cause(RequestEnd::ShuttingDown);
    /// # assert!(root.is_done());
    /// ```
    ShuttingDown,
}

impl RequestEnd {
    /// The `RequestEnd` that ended `ctx` (or an ancestor of it), if that is why it ended.
    ///
    /// A root ended by [`Shutdown`] (a [`ShutdownSignal`] cause, with the `signal` feature)
    /// reads as [`ShuttingDown`](RequestEnd::ShuttingDown).
    pub fn of(ctx: &Context) -> Option<RequestEnd> {
        let cause = ctx.cause()?;
        if let Some(end) = cause.downcast_ref::<RequestEnd>() {
            return Some(*end);
        }
        #[cfg(feature = "signal")]
        if cause.downcast_ref::<ShutdownSignal>().is_some() {
            return Some(RequestEnd::ShuttingDown);
        }
        None
    }

    fn as_str(self) -> &'static str {
        match self {
            RequestEnd::ClientDisconnected => "client disconnected",
            RequestEnd::TimedOut => "request timed out",
            RequestEnd::CallerDeadlineExceeded => "caller's deadline exceeded",
            RequestEnd::ShuttingDown => "server shutting down",
        }
    }
}

/// The [`Cause`](ctx_core::Cause) of each of the layer's own ends, made once per thread and
/// given to every request's context as a clone (a reference count), where making it for each
/// request would box the `RequestEnd` and then copy it into an `Arc`: two allocations a request.
/// Per thread, not per process, so that the servers' workers do not all count references on
/// one cache line.
struct Causes {
    timed_out: ctx_core::Cause,
    caller_deadline_exceeded: ctx_core::Cause,
    client_disconnected: ctx_core::Cause,
}

std::thread_local! {
    static CAUSES: Causes = Causes {
        timed_out: std::sync::Arc::new(RequestEnd::TimedOut),
        caller_deadline_exceeded: std::sync::Arc::new(RequestEnd::CallerDeadlineExceeded),
        client_disconnected: std::sync::Arc::new(RequestEnd::ClientDisconnected),
    };
}

impl RequestEnd {
    /// This end as a cause: the same `Cause` each time on a thread (see [`Causes`]). A thread
    /// being torn down (whose thread-locals are gone) makes a new one.
    fn cause(self) -> ctx_core::Cause {
        let shared = CAUSES.try_with(|causes| match self {
            RequestEnd::TimedOut => Some(causes.timed_out.clone()),
            RequestEnd::CallerDeadlineExceeded => Some(causes.caller_deadline_exceeded.clone()),
            RequestEnd::ClientDisconnected => Some(causes.client_disconnected.clone()),
            RequestEnd::ShuttingDown => None,
        });
        shared
            .ok()
            .flatten()
            .unwrap_or_else(|| std::sync::Arc::new(self))
    }
}

impl fmt::Display for RequestEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl StdError for RequestEnd {}

/// A tower [`Layer`] that gives every request a [`Context`]: a child of a root context, with an
/// optional timeout, and no later than the caller's deadline if the request carries one
/// (`grpc-timeout`). See the [module documentation](self) for when and why it ends.
///
/// It wraps an axum `Router` (`router.layer(...)`), any tower service of `http` requests, and a
/// tonic server (`tonic::transport::Server::builder().layer(...)`).
///
/// The context is inserted in the request's extensions (`req.extensions().get::<Context>()`,
/// or the `RequestContext` extractor in axum). If the request already carries a `Context` (from an
/// outer `ContextLayer`, or put there by your own middleware), the request's context is a
/// child of that one instead of the root: layers nest, and an inner timeout can only shorten
/// an outer one.
///
/// ```
/// use std::time::Duration;
/// use ctx_core::Context;
/// use ctx_http::{ContextLayer, RequestEnd};
///
/// let (root, shutdown) = Context::background().with_cancel();
/// let layer = ContextLayer::new(root).timeout(Duration::from_secs(30));
/// // router.layer(layer) ... and at the end:
/// shutdown.cancel_with_cause(RequestEnd::ShuttingDown);
/// # drop(layer);
/// ```
#[derive(Clone, Debug)]
pub struct ContextLayer {
    root: Context,
    timeout: Option<Duration>,
    min_remaining: Option<Duration>,
}

impl ContextLayer {
    /// A layer whose request contexts are children of `root`: cancelling `root` ends every
    /// request in flight (cancel it with [`RequestEnd::ShuttingDown`]). No timeout.
    pub fn new(root: Context) -> ContextLayer {
        ContextLayer {
            root,
            timeout: None,
            min_remaining: None,
        }
    }

    /// Ends each request's context `timeout` after the request arrived, with `err()`
    /// `DeadlineExceeded` and `cause()` [`RequestEnd::TimedOut`]; the client then gets
    /// `504 request timed out` if the handler has not answered.
    ///
    /// A root with an earlier deadline keeps its own (and its cause).
    pub fn timeout(mut self, timeout: Duration) -> ContextLayer {
        self.timeout = Some(timeout);
        self
    }

    /// Answers at once, without calling the service, a request that has less than `min` left
    /// before its deadline: a caller whose `grpc-timeout` leaves too little time for the work
    /// to finish gets `504` (a gRPC call `DEADLINE_EXCEEDED`), with a text that says how much
    /// was left and how much is needed, instead of a service that starts work it cannot finish.
    ///
    /// Every deadline of the request's context counts (the caller's, the root's, the layer's
    /// own [`timeout`](Self::timeout), which should be longer than `min`); a request without
    /// any deadline always has time enough.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use std::time::Duration;
    /// use ctx_core::Context;
    /// use ctx_http::ContextLayer;
    /// use http::{Request, Response, StatusCode};
    /// use tower::{Layer, Service, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let layer = ContextLayer::new(Context::background()).min_remaining(Duration::from_millis(50));
    /// let mut service = layer.layer(service_fn(|_req: Request<String>| async {
    ///     unreachable!("not called: the caller has 20 ms, the work needs 50");
    ///     #[allow(unreachable_code)]
    ///     Ok::<_, Infallible>(Response::new(String::new()))
    /// }));
    /// // A caller with 20 ms left (`grpc-timeout: 20m`).
    /// let request = Request::get("/report").header("grpc-timeout", "20m").body(String::new()).unwrap();
    /// let response = service.call(request).await.unwrap();
    /// assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    /// # }
    /// ```
    pub fn min_remaining(mut self, min: Duration) -> ContextLayer {
        self.min_remaining = Some(min);
        self
    }

    /// The context of a request with these `headers` that carries `parent` (if any) in its
    /// extensions, and whether it was born ended.
    ///
    /// A child is born ended when its parent had ended, or when its own time is zero (its
    /// deadline is the instant it is made: a caller's `0m`). Asking the parent before the
    /// child is made tells the same without the child's `is_done()`, which would read the
    /// clock for the child's deadline on every request (the parent of a server's requests, its
    /// root, has no deadline to read it for). A parent that ends between the two is as one
    /// that ends just after the request arrived: the service is called, and the request
    /// answered as the context ended.
    fn derive(
        &self,
        headers: &HeaderMap,
        parent: Option<&Context>,
    ) -> (Context, CancelHandle, bool) {
        let parent = parent.unwrap_or(&self.root);
        let parent_ended = parent.is_done();
        let (timeout, cause) = match (self.timeout, caller_timeout(headers)) {
            (Some(local), Some(caller)) if local <= caller => (local, RequestEnd::TimedOut),
            (_, Some(caller)) => (caller, RequestEnd::CallerDeadlineExceeded),
            (Some(local), None) => (local, RequestEnd::TimedOut),
            (None, None) => {
                let (ctx, handle) = parent.with_cancel();
                return (ctx, handle, parent_ended);
            }
        };
        let (ctx, handle) = parent.with_timeout_cause(timeout, cause.cause());
        (ctx, handle, parent_ended || timeout.is_zero())
    }
}

/// `grpc-timeout` as a header name made at compile time: looked up by a `&str`, the name would
/// be parsed and validated again for every request.
static GRPC_TIMEOUT_NAME: HeaderName = HeaderName::from_static(GRPC_TIMEOUT);

/// The time the caller gave the request: the shortest well-formed `grpc-timeout` value among
/// the request's headers. A malformed value is logged and ignored: it never lengthens, nor
/// shortens, the request's deadline.
fn caller_timeout(headers: &HeaderMap) -> Option<Duration> {
    let mut shortest: Option<Duration> = None;
    for value in headers.get_all(&GRPC_TIMEOUT_NAME) {
        match parse_timeout(value.as_bytes()) {
            Ok(timeout) => shortest = Some(shortest.map_or(timeout, |s| s.min(timeout))),
            Err(err) => {
                // At most 32 bytes of a hostile value reach the log.
                let shown = &value.as_bytes()[..value.len().min(32)];
                tracing::warn!(
                    value = %shown.escape_ascii(),
                    "ignoring the request's grpc-timeout header: {err}"
                );
            }
        }
    }
    shortest
}

impl<S> Layer<S> for ContextLayer {
    type Service = ContextService<S>;

    fn layer(&self, inner: S) -> ContextService<S> {
        ContextService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`ContextLayer`]: gives each request a [`Context`] and races the inner
/// service's future against it.
#[derive(Clone, Debug)]
pub struct ContextService<S> {
    inner: S,
    layer: ContextLayer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ContextService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body,
    ResBody::Data: From<Bytes>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let grpc = is_grpc(req.headers());
        let (ctx, handle, mut ended) = self
            .layer
            .derive(req.headers(), req.extensions().get::<Context>());
        let guard = Some(RequestGuard::new(handle, &ctx, &req));
        // Too little time left for the work: answered at once, as a deadline. The clock is
        // read here anyway, so a context whose time ran out since it was made counts as ended.
        let too_near = match self.layer.min_remaining {
            Some(min) if !ended => {
                ended = ctx.is_done();
                (!ended && ctx.ensure_remaining(min).is_err()).then(|| TooNear {
                    left: ctx.remaining().unwrap_or_default(),
                    min,
                })
            }
            _ => None,
        };
        // As `Context::run`: a request whose context has already ended (the server is shutting
        // down) is answered without calling the inner service at all.
        let inner = if ended || too_near.is_some() {
            None
        } else {
            req.extensions_mut().insert(ctx.clone());
            Some(self.inner.call(req))
        };
        ResponseFuture {
            guard,
            done: None,
            ctx,
            inner,
            too_near,
            grpc,
            completed: false,
        }
    }
}

/// A request refused by [`ContextLayer::min_remaining`]: how much time it had, and how much the
/// layer asks for.
#[derive(Clone, Copy, Debug)]
struct TooNear {
    left: Duration,
    min: Duration,
}

impl fmt::Display for TooNear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deadline too near: {:?} left, {:?} needed",
            self.left, self.min
        )
    }
}

/// Ends a request's context when dropped: with [`RequestEnd::ClientDisconnected`] unless the
/// exchange was marked finished. Reports (one `tracing` event) a request whose context ended
/// before the exchange did.
struct RequestGuard {
    handle: CancelHandle,
    finished: AtomicBool,
    /// What the event needs: taken only when a subscriber may listen (boxed: a guard that
    /// carries nothing stays small, and so do the futures and bodies that hold it).
    watch: Option<Box<Watch>>,
}

/// A request, as the event of its early end shows it.
struct Watch {
    ctx: Context,
    /// The span current when the layer was called (a request span entered around it): the
    /// event is recorded in it even when it is emitted as the body ends, outside any span.
    span: tracing::Span,
    started: Instant,
    method: Method,
    uri: Uri,
}

impl RequestGuard {
    fn new<B>(handle: CancelHandle, ctx: &Context, req: &Request<B>) -> RequestGuard {
        // One atomic load when nothing listens (the least verbose of the event's levels is
        // `WARN`: if it is off, so are the others).
        let watch = tracing::enabled!(tracing::Level::WARN).then(|| {
            Box::new(Watch {
                ctx: ctx.clone(),
                span: tracing::Span::current(),
                started: Instant::now(),
                method: req.method().clone(),
                uri: req.uri().clone(),
            })
        });
        RequestGuard {
            handle,
            finished: AtomicBool::new(false),
            watch,
        }
    }

    /// The exchange ended normally (the response was sent in full, the layer answered, or
    /// the service failed): dropping the guard cancels without a cause. Reports the
    /// request if its context had ended before.
    fn finish(&self) {
        if self.watch.is_none() {
            self.finished.store(true, Ordering::Relaxed);
        } else if !self.finished.swap(true, Ordering::Relaxed) {
            self.report();
        }
    }

    /// Emits the event of a request whose context has ended (nothing if it is live).
    fn report(&self) {
        if let Some(watch) = &self.watch
            && let Some(err) = watch.ctx.err()
        {
            watch.emit(err);
        }
    }
}

/// The event of a request that ended early, at its level: `WARN` for a deadline, `INFO`
/// otherwise.
macro_rules! request_ended_early {
    ($level:ident, $watch:expr, $stopped:expr) => {
        tracing::$level!(
            // Text (quoted by fmt, a JSON string), made only once the event is enabled.
            cause = cause_text(&$watch.ctx, &$stopped).as_ref(),
            origin = $watch.ctx.origin().map(|origin| tracing::field::display(origin.location())),
            elapsed_ms = u64::try_from($watch.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            method = %$watch.method,
            path = %$watch.uri.path(),
            "request ended early"
        )
    };
}

/// The text of the cause: borrowed for the layer's own causes, made for any other.
fn cause_text(ctx: &Context, stopped: &ctx_core::ContextError) -> std::borrow::Cow<'static, str> {
    match RequestEnd::of(ctx) {
        Some(end) => end.as_str().into(),
        None => stopped.cause().to_string().into(),
    }
}

impl Watch {
    #[cold]
    #[inline(never)]
    fn emit(&self, err: Error) {
        let stopped = ctx_core::ContextError::new(&self.ctx, err);
        self.span.in_scope(|| match err {
            Error::DeadlineExceeded => request_ended_early!(warn, self, stopped),
            // A client that went away, a shutdown: nothing the server did wrong.
            Error::Canceled => request_ended_early!(info, self, stopped),
        })
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        if self.finished.load(Ordering::Relaxed) {
            self.handle.cancel();
        } else {
            self.handle
                .cancel_with_cause(RequestEnd::ClientDisconnected.cause());
            self.report();
        }
    }
}

impl fmt::Debug for RequestGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestGuard")
            .field("finished", &self.finished.load(Ordering::Relaxed))
            .finish()
    }
}

pin_project! {
    /// The future of [`ContextService`]: the inner service's response, or an answer of the
    /// layer's own if the request's context ends first.
    ///
    /// Dropping it before it completes ends the request's context with
    /// [`RequestEnd::ClientDisconnected`] (hyper drops it when the client goes away), before
    /// the inner future is dropped.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        // Declared first: dropped (ending the context) before the inner future.
        guard: Option<RequestGuard>,
        // Made at the first poll that finds the service's future pending: a request answered
        // at once never waits on its context.
        done: Option<Done>,
        ctx: Context,
        // `None` if the context had ended before the inner service was called.
        #[pin]
        inner: Option<F>,
        // Refused for too little time left (the inner service was not called).
        too_near: Option<TooNear>,
        // A gRPC call: answered in gRPC's terms if the context ends first.
        grpc: bool,
        completed: bool,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
    B::Data: From<Bytes>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        assert!(!*this.completed, "`ResponseFuture` polled after completion");
        if let Some(too_near) = this.too_near.take() {
            *this.completed = true;
            if let Some(guard) = this.guard.take() {
                guard.finish();
            }
            let text = too_near.to_string();
            return Poll::Ready(Ok(answer(
                this.ctx,
                Error::DeadlineExceeded,
                *this.grpc,
                text,
            )));
        }
        // The inner future first, even after the context has ended: a handler that watches its
        // context gets to answer in its own words.
        if let Some(inner) = this.inner.as_mut().as_pin_mut()
            && let Poll::Ready(result) = inner.poll(cx)
        {
            *this.completed = true;
            this.inner.set(None);
            let guard = this.guard.take();
            return Poll::Ready(match result {
                Ok(response) => Ok(response.map(|body| ResponseBody::inner(body, guard))),
                Err(err) => {
                    if let Some(guard) = guard {
                        guard.finish();
                    }
                    Err(err)
                }
            });
        }
        let done = this.done.get_or_insert_with(|| this.ctx.done());
        let err = ready!(Pin::new(done).poll(cx));
        // The context ended first (so its cause is set): stop the handler, then answer.
        *this.completed = true;
        this.inner.set(None);
        if let Some(guard) = this.guard.take() {
            guard.finish();
        }
        Poll::Ready(Ok(ended(this.ctx, err, *this.grpc)))
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("ctx", &self.ctx)
            .field("completed", &self.completed)
            .finish()
    }
}

/// The layer's answer to a request whose context ended before the service answered.
fn ended<B>(ctx: &Context, err: Error, grpc: bool) -> Response<ResponseBody<B>> {
    let text = ctx_core::ContextError::new(ctx, err).cause().to_string();
    answer(ctx, err, grpc, text)
}

/// The layer's own answer for `err` (`504`/`503`, or gRPC's code), with `text`.
fn answer<B>(ctx: &Context, err: Error, grpc: bool, text: String) -> Response<ResponseBody<B>> {
    if grpc {
        return grpc_ended(ctx, err, &text);
    }
    let status = match err {
        Error::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Error::Canceled => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut response = Response::new(ResponseBody::message(Some(Bytes::from(text))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Whether a request is a gRPC call (`content-type: application/grpc`, `application/grpc+proto`,
/// ...), to be answered in gRPC's terms.
fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

/// The gRPC status code for `ctx`, which ended with `err`: `DEADLINE_EXCEEDED` (4) for a
/// deadline, `UNAVAILABLE` (14) for a server shutting down ([`RequestEnd::ShuttingDown`]), which
/// a client may retry elsewhere, and `CANCELLED` (1) otherwise.
///
/// The layer answers gRPC requests whose context ended with this code, and `ctx-tonic` builds
/// its `Status` from it, so that a server and a client agree.
///
/// ```
/// use ctx_core::{Context, Error};
/// use ctx_http::grpc_code;
///
/// let (ctx, h) = Context::background().with_cancel();
/// h.cancel();
/// assert_eq!(grpc_code(&ctx, Error::Canceled), 1);
/// assert_eq!(grpc_code(&ctx, Error::DeadlineExceeded), 4);
/// ```
pub fn grpc_code(ctx: &Context, err: Error) -> i32 {
    match (err, RequestEnd::of(ctx)) {
        (Error::DeadlineExceeded, _) => 4,
        (Error::Canceled, Some(RequestEnd::ShuttingDown)) => 14,
        (Error::Canceled, _) => 1,
    }
}

/// The gRPC answer: a "trailers-only" response (HTTP 200, no body) with
/// [`grpc_code`] as `grpc-status` and the cause as `grpc-message`.
fn grpc_ended<B>(ctx: &Context, err: Error, text: &str) -> Response<ResponseBody<B>> {
    // The spec's percent-encoding: printable ASCII as is, except `%`.
    let mut message = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (b' '..=b'~').contains(&byte) && byte != b'%' {
            message.push(char::from(byte));
        } else {
            message.push_str(&format!("%{byte:02X}"));
        }
    }
    let mut response = Response::new(ResponseBody::message(None));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from(grpc_code(ctx, err)));
    if let Ok(message) = HeaderValue::from_str(&message) {
        headers.insert("grpc-message", message);
    }
    response
}

pin_project! {
    /// The response body of [`ContextService`]: the inner service's body, which keeps the
    /// request's context live until it has been sent, or the layer's own text answer.
    ///
    /// Dropped before its end, it ends the request's context with
    /// [`RequestEnd::ClientDisconnected`]; at its end, with a plain cancel.
    pub struct ResponseBody<B> {
        // Declared first: dropped (ending the context) before the inner body.
        guard: Option<RequestGuard>,
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Message { text: Option<Bytes> },
    }
}

impl<B> ResponseBody<B> {
    fn inner(body: B, guard: Option<RequestGuard>) -> ResponseBody<B> {
        ResponseBody {
            guard,
            kind: Kind::Inner { body },
        }
    }

    /// The layer's own answer: `text`, or no body at all.
    fn message(text: Option<Bytes>) -> ResponseBody<B> {
        ResponseBody {
            guard: None,
            kind: Kind::Message { text },
        }
    }

    fn finish(guard: &Option<RequestGuard>) {
        if let Some(guard) = guard {
            guard.finish();
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Data: From<Bytes>,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        match this.kind.project() {
            KindProj::Inner { mut body } => {
                let frame = ready!(body.as_mut().poll_frame(cx));
                // The end, or an error (hyper then aborts the exchange): either way the
                // client did not go away.
                if !matches!(frame, Some(Ok(_))) || body.is_end_stream() {
                    ResponseBody::<B>::finish(this.guard);
                }
                Poll::Ready(frame)
            }
            KindProj::Message { text } => {
                Poll::Ready(text.take().map(|text| Ok(Frame::data(B::Data::from(text)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let end = match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Message { text } => text.is_none(),
        };
        if end {
            // hyper drops a body that says it has ended without polling it again.
            ResponseBody::<B>::finish(&self.guard);
        }
        end
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Message { text } => {
                SizeHint::with_exact(text.as_ref().map_or(0, |text| text.len() as u64))
            }
        }
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Inner { .. } => "inner",
            Kind::Message { .. } => "message",
        };
        f.debug_struct("ResponseBody").field("kind", &kind).finish()
    }
}
