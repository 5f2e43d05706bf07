//! gRPC with [`tonic`] under a [`Context`]. Go: a gRPC call made with `ctx`, and
//! `status.FromContextError`.
//!
//! - **Calls.** [`call`] sends a request unless the context has already ended, with the time
//!   the context has left as the request's timeout (tonic sends it as the `grpc-timeout`
//!   header), and when the context ends before the answer arrives it resets the call's HTTP/2
//!   stream: the server sees the client go away. A call stopped so fails with a [`Status`] that
//!   says why ([`status`]).
//! - **Serving.** [`ContextLayer`](ctx_http::ContextLayer) is a tower layer, so it wraps a
//!   tonic server too (`Server::builder().layer(ContextLayer::new(root))`): each call gets a
//!   context whose deadline is the nearer of the caller's `grpc-timeout` and the layer's own
//!   timeout, that ends with `client disconnected` when the caller resets the stream, and
//!   whose end is answered in gRPC's terms (`DEADLINE_EXCEEDED`, `CANCELLED`, or `UNAVAILABLE`
//!   while shutting down). Handlers take it with [`context`]. (tonic's server also enforces
//!   `grpc-timeout` with a timer of its own, around the layers: when its timer fires first, the
//!   caller gets tonic's `CANCELLED` "Timeout expired", and the call's context ends as if the
//!   caller had gone away, which stops the handler all the same.)
//! - **`#[cancellable]`.** A context error converts into a [`Status`] (this crate implements
//!   [`IntoCancelError`] for it; [`status_of_error`] is the same
//!   conversion as a function), so a handler's helpers can be `#[cancellable]` fns that return
//!   `Result<T, Status>`.
//!
//! ```
//! use std::time::Duration;
//! use ctx_core::Context;
//! use ctx_tonic::call;
//! use tonic::{Code, Request, Response};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(300));
//!
//! // `send` stands for a generated client's method, such as `|req| client.get_album(req)`;
//! // this one shows what it is given, then takes a minute to answer.
//! let send = |req: Request<u32>| async move {
//!     assert_eq!(req.metadata().get("grpc-timeout").unwrap(), "300000u");
//!     tokio::time::sleep(Duration::from_secs(60)).await;
//!     Ok(Response::new(*req.get_ref() + 1))
//! };
//! let status = call(&ctx, 41, send).await.unwrap_err();
//! assert_eq!(status.code(), Code::DeadlineExceeded);
//! assert_eq!(status.message(), "context deadline exceeded");
//! # }
//! ```
//!
//! # Events (`tracing`)
//!
//! [`call`] records, at `DEBUG` (target `ctx_tonic`) and in the caller's span, a call it did
//! not send because the context had ended (`call not sent`) and a call stopped because the
//! context ended first (`call aborted`, with its stream reset):
//!
//! | field | type | value |
//! | --- | --- | --- |
//! | `cause` | text | the context's cause: `client disconnected`, `context deadline exceeded`, ... |
//! | `origin` | text | `file:line:col` of the context's [`origin()`](ctx_core::Context::origin) |
//! | `elapsed_ms` | `u64` | (`call aborted` only) milliseconds from the send to the abort |
//!
//! With no subscriber listening at `DEBUG` they cost one atomic load per call.
//!
//! # How fast
//!
//! Measured with `cargo run -p ctx-tonic --example deadline`: a call under a 300 ms context is
//! sent `grpc-timeout: 299988u`, the 12 µs spent before sending it kept off the callee's
//! budget; it returns `DEADLINE_EXCEEDED` at the deadline, not when the server answers.

#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

use std::future::Future;
use std::time::Duration;

use tonic::{Code, IntoRequest, Request, Response, Status};

use ctx_core::{Context, ContextError, Error, IntoCancelError};
use ctx_http::grpc_code;
use ctx_http::grpc_timeout::time_left;

/// Makes a gRPC call under `ctx`: `send` (a generated client's method, as in
/// `|req| client.get_album(req)`) is called with the request unless `ctx` has already ended,
/// and the call is aborted if `ctx` ends first.
///
/// - If `ctx` has a deadline, the request's timeout is the time left (tonic sends it as
///   `grpc-timeout`; a server behind [`ContextLayer`](ctx_http::ContextLayer), or any gRPC
///   server, then gives up no later than the caller).
/// - If `ctx` ends before the response arrives, the call's future is dropped and its
///   [cancellation handle](Request::cancellation_handle) fired, which resets the HTTP/2
///   stream, and the result is [`status(ctx, err)`](status). So is the result of a call that
///   failed as `ctx` ended (tonic's channel enforces the timeout it sends, and its own
///   `CANCELLED` "Timeout expired" would hide the reason).
///
/// For a streaming response, read the stream under the context too:
/// `ctx.run(stream.message())`.
///
/// ```
/// use ctx_core::Context;
/// use ctx_tonic::call;
/// use tonic::{Code, Request, Response, Status};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (ctx, cancel) = Context::background().with_cancel();
/// cancel.cancel_with_cause("user went away");
/// let send = |_: Request<()>| async { Ok::<_, Status>(Response::new(())) };
/// let status = call(&ctx, (), send).await.unwrap_err(); // never sent
/// assert_eq!(status.code(), Code::Cancelled);
/// assert_eq!(status.message(), "user went away");
/// # }
/// ```
pub async fn call<M, R, F, Fut>(
    ctx: &Context,
    request: impl IntoRequest<M>,
    send: F,
) -> Result<Response<R>, Status>
where
    F: FnOnce(Request<M>) -> Fut,
    Fut: Future<Output = Result<Response<R>, Status>>,
{
    let mut request = request.into_request();
    match time_left(ctx) {
        Ok(None) => {}
        Ok(Some(left)) => request.set_timeout(left),
        Err(err) => {
            tracing::debug!(
                cause = cause_text(ctx, err).as_str(),
                origin = ctx
                    .origin()
                    .map(|origin| tracing::field::display(origin.location())),
                "call not sent"
            );
            return Err(status(ctx, err));
        }
    }
    let reset = request.cancellation_handle();
    let sent = tracing::enabled!(tracing::Level::DEBUG).then(tokio::time::Instant::now);
    let aborted = |err: Error| {
        if let Some(sent) = sent {
            tracing::debug!(
                cause = cause_text(ctx, err).as_str(),
                origin = ctx
                    .origin()
                    .map(|origin| tracing::field::display(origin.location())),
                elapsed_ms = u64::try_from(sent.elapsed().as_millis()).unwrap_or(u64::MAX),
                "call aborted"
            );
        }
        status(ctx, err)
    };
    match ctx.run(send(request)).await {
        Ok(Ok(response)) => Ok(response),
        // tonic's channel enforces the timeout it sends, and fails with `CANCELLED` "Timeout
        // expired" when it passes: a call that failed as its context ended says why the
        // context ended.
        Ok(Err(failed)) => Err(match ctx.err() {
            Some(err) => aborted(err),
            None => failed,
        }),
        Err(err) => {
            // The response future is gone; for a streaming request, the handle also stops the
            // task that sends the request's messages.
            reset.cancel();
            Err(aborted(err))
        }
    }
}

/// [`call`] for a call that needs at least `needed` to finish: not sent when `ctx` has less
/// time left (or has ended), failing at once with `DEADLINE_EXCEEDED` and a message that says
/// how much was left and how much is needed, instead of costing the server work that the
/// caller's deadline will throw away (gRPC's meaning of the code: the deadline does not allow
/// the operation to complete). A context without a deadline always has time enough.
///
/// ```
/// use std::time::Duration;
/// use ctx_core::Context;
/// use ctx_tonic::call_needing;
/// use tonic::{Code, Request, Response, Status};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let (ctx, _h) = Context::background().with_timeout(Duration::from_millis(20));
/// let send = |_: Request<()>| async { unreachable!("not sent"); #[allow(unreachable_code)] Ok::<_, Status>(Response::new(())) };
/// let status = call_needing(&ctx, Duration::from_millis(50), (), send).await.unwrap_err();
/// assert_eq!(status.code(), Code::DeadlineExceeded);
/// assert_eq!(status.message(), "deadline too near: 20ms left, 50ms needed");
/// assert!(!ctx.is_done()); // the caller's context goes on
/// # }
/// ```
pub async fn call_needing<M, R, F, Fut>(
    ctx: &Context,
    needed: Duration,
    request: impl IntoRequest<M>,
    send: F,
) -> Result<Response<R>, Status>
where
    F: FnOnce(Request<M>) -> Fut,
    Fut: Future<Output = Result<Response<R>, Status>>,
{
    match ctx.ensure_remaining(needed) {
        Ok(()) => call(ctx, request, send).await,
        Err(_) => Err(match ctx.err() {
            Some(err) => status(ctx, err),
            None => Status::deadline_exceeded(format!(
                "deadline too near: {:?} left, {needed:?} needed",
                ctx.remaining().unwrap_or_default()
            )),
        }),
    }
}

/// The text of the cause of `ctx`, which ended with `err`.
fn cause_text(ctx: &Context, err: Error) -> String {
    ContextError::new(ctx, err).cause().to_string()
}

/// The [`Status`] for `ctx`, which ended with `err`: `DEADLINE_EXCEEDED` for a deadline;
/// `UNAVAILABLE` for a server shutting down ([`RequestEnd::ShuttingDown`](ctx_http::RequestEnd::ShuttingDown)); `CANCELLED`
/// otherwise. The message is the cause's text ([`ctx.cause()`](Context::cause)). Go:
/// `status.FromContextError(ctx.Err())`, with the cause.
///
/// ```
/// use ctx_core::{Context, Error};
/// use ctx_tonic::status;
/// use tonic::Code;
///
/// let (ctx, cancel) = Context::background().with_cancel();
/// cancel.cancel_with_cause("batch aborted");
/// let status = status(&ctx, Error::Canceled);
/// assert_eq!((status.code(), status.message()), (Code::Cancelled, "batch aborted"));
/// ```
pub fn status(ctx: &Context, err: Error) -> Status {
    Status::new(
        Code::from_i32(grpc_code(ctx, err)),
        ContextError::new(ctx, err).cause().to_string(),
    )
}

/// `DEADLINE_EXCEEDED` or `CANCELLED`, with the error's text: what a `#[cancellable]` fn that
/// returns `Result<T, Status>` gives back when its context ends. Use [`status`] where the
/// context is at hand, to say why.
///
/// ```
/// use ctx_core::Error;
/// use ctx_tonic::status_of_error;
/// use tonic::Code;
///
/// let status = status_of_error(Error::DeadlineExceeded);
/// assert_eq!((status.code(), status.message()), (Code::DeadlineExceeded, "context deadline exceeded"));
/// ```
pub fn status_of_error(err: Error) -> Status {
    let code = match err {
        Error::DeadlineExceeded => Code::DeadlineExceeded,
        Error::Canceled => Code::Cancelled,
    };
    Status::new(code, err.to_string())
}

/// The marker of this crate's [`IntoCancelError`] impl for [`Status`]. Rust's orphan rule
/// keeps any crate but tonic's and ctx-core's from writing `impl From<ctx_core::Error> for
/// Status`; the marker makes the impl this crate's own. It is inferred: nothing names it.
#[derive(Debug)]
pub enum ViaStatus {}

/// A `#[cancellable]` fn that returns `Result<T, Status>` stops with [`status_of_error`].
///
/// Like every trait impl, this one is seen by a crate that uses `ctx_tonic` somewhere (as any
/// gRPC server does, for [`context`]); a crate that only lists it in `Cargo.toml` is told that
/// `Status` has no `From<ctx_core::Error>`.
///
/// ```
/// use ctx_core::{cancellable, Context};
/// use tonic::{Code, Request, Status};
///
/// #[cancellable]
/// async fn load(id: u32) -> Result<u32, Status> {
///     Ok(id)
/// }
///
/// /// A handler: its context comes from the request.
/// async fn get(request: Request<u32>) -> Result<u32, Status> {
///     let ctx = ctx_tonic::context(&request)?;
///     load(&ctx, *request.get_ref()).await
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (ctx, cancel) = Context::background().with_cancel();
/// cancel.cancel();
/// let mut request = Request::new(7);
/// request.extensions_mut().insert(ctx); // what `ContextLayer` does
/// assert_eq!(get(request).await.unwrap_err().code(), Code::Cancelled);
/// # }
/// ```
impl IntoCancelError<ViaStatus> for Status {
    fn into_cancel_error(err: Error) -> Status {
        status_of_error(err)
    }
}

/// The context of a gRPC call served behind [`ContextLayer`](ctx_http::ContextLayer): ends
/// when the caller's deadline (or the layer's timeout) passes, when the caller resets the call,
/// or when the server's root context ends. Go: the `ctx` of a gRPC handler.
///
/// Without the layer it is an `INTERNAL` status (never a panic) that says to add it.
///
/// ```
/// use ctx_core::Context;
/// use ctx_tonic::context;
/// use tonic::{Code, Request};
///
/// let mut request = Request::new(());
/// assert_eq!(context(&request).unwrap_err().code(), Code::Internal);
/// request.extensions_mut().insert(Context::background()); // what the layer does
/// assert!(context(&request).is_ok());
/// ```
pub fn context<T>(request: &Request<T>) -> Result<Context, Status> {
    request
        .extensions()
        .get::<Context>()
        .cloned()
        .ok_or_else(|| {
            Status::internal(
                "this call has no context: serve it behind ctx_http::ContextLayer \
             (`Server::builder().layer(ContextLayer::new(root))`)",
            )
        })
}
