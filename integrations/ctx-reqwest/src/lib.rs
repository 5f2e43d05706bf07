//! Sending [`reqwest`] requests under a [`Context`]. Go: `http.NewRequestWithContext`.
//!
//! [`send_ctx`](RequestBuilderExt::send_ctx) sends a request unless the context has already
//! ended, and aborts it when the context ends before the response's head arrives: the
//! request's future is dropped, which closes an HTTP/1.1 connection and resets an HTTP/2
//! stream, so the server sees the client go away. The error then says which context error
//! ended it. [`run`] does the same for reading the body (`text()`, `bytes()`, `chunk()`, and
//! `json()` with reqwest's `json` feature).
//!
//! The request carries the context's remaining time in a `grpc-timeout` header, which
//! `ctx_http::ContextLayer` (crate `ctx-http`) reads on the other side: one deadline, and one
//! hang-up, for a chain of services (see the workspace README, "Across services").
//!
//! ```
//! use std::time::Duration;
//! use ctx_core::Context;
//! use ctx_reqwest::RequestBuilderExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // A server that accepts connections and never answers.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let url = format!("http://{}/albums", listener.local_addr().unwrap());
//! tokio::spawn(async move {
//!     let mut open = Vec::new();
//!     while let Ok((socket, _)) = listener.accept().await {
//!         open.push(socket);
//!     }
//! });
//!
//! let (ctx, _cancel) =
//!     Context::background().with_timeout_cause(Duration::from_millis(50), "albums too slow");
//! let client = reqwest::Client::new();
//! let err = client.get(&url).send_ctx(&ctx).await.unwrap_err();
//! assert_eq!(err.context_err(), Some(ctx_core::Error::DeadlineExceeded));
//! assert_eq!(err.to_string(), "request aborted: context deadline exceeded");
//! // The cause is the error's source: `{:#}`-style reports show the whole chain.
//! let stopped = err.context_error().unwrap();
//! assert_eq!(stopped.cause().to_string(), "albums too slow");
//! # }
//! ```
//!
//! # Events (`tracing`)
//!
//! [`send_ctx`](RequestBuilderExt::send_ctx) records, at `DEBUG` (target `ctx_reqwest`) and in
//! the caller's span, a call it did not send because the context had ended (`call not sent`)
//! and a call it aborted when the context ended first (`call aborted`):
//!
//! | field | type | value |
//! | --- | --- | --- |
//! | `cause` | text | the context's cause: `client disconnected`, `context deadline exceeded`, ... |
//! | `origin` | text | `file:line:col` of the context's [`origin()`](ctx_core::Context::origin) |
//! | `elapsed_ms` | `u64` | (`call aborted` only) milliseconds from the send to the abort |
//! | `method` | text | `GET`, `POST`, ... |
//! | `url` | text | scheme, host, port and path: no user, password, query or fragment |
//!
//! With no subscriber listening at `DEBUG` they cost one atomic load per call.
//!
//! # How fast
//!
//! Measured with `cargo run -p ctx-reqwest --example client_server` (loopback, a 2-core
//! machine): a call is aborted at its context's deadline, and the server's request context ends
//! within about a millisecond of it, as `caller's deadline exceeded`.

#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

use std::fmt;
use std::future::{Future, IntoFuture};
use std::time::Duration;

use ctx_http::grpc_timeout::{GRPC_TIMEOUT, timeout_header};

use ctx_core::{Context, ContextError};

/// The error of a request sent under a context: the context ended first, or reqwest failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The context ended before the request completed, so it was not sent (the context had
    /// already ended) or was aborted.
    ///
    /// `Display`: `request aborted: context deadline exceeded` (or `... context canceled`); its
    /// `source()` is the context's cause when one was given, as in `server shutting down`.
    Context(ContextError),
    /// reqwest failed (connection refused, a timeout of reqwest's own, a body that does not
    /// decode, ...). `Display` and `source()` are the reqwest error's.
    Http(::reqwest::Error),
    /// Not sent by [`send_ctx_needing`](RequestBuilderExt::send_ctx_needing): the context is
    /// live, but has less time left than the call needs, so it could not finish in time.
    ///
    /// `Display`: `request not sent: deadline too near: 20ms left, 50ms needed`. The context
    /// has not ended, so [`context_err`](Error::context_err) is `None`.
    DeadlineTooNear {
        /// The time the context had left.
        left: Duration,
        /// The time the call was said to need.
        needed: Duration,
    },
}

impl Error {
    /// The error for a `ctx` that has ended with `err`.
    fn ended(ctx: &Context, err: ctx_core::Error) -> Error {
        Error::Context(ContextError::new(ctx, err))
    }

    /// The context error, if the context's end is what stopped the request.
    pub fn context_err(&self) -> Option<ctx_core::Error> {
        self.context_error().map(ContextError::err)
    }

    /// The context's error and cause, if the context's end is what stopped the request.
    pub fn context_error(&self) -> Option<&ContextError> {
        match self {
            Error::Context(stopped) => Some(stopped),
            Error::Http(_) | Error::DeadlineTooNear { .. } => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Context(stopped) => write!(f, "request aborted: {stopped}"),
            Error::Http(err) => fmt::Display::fmt(err, f),
            Error::DeadlineTooNear { left, needed } => write!(
                f,
                "request not sent: deadline too near: {left:?} left, {needed:?} needed"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // The text holds the context's error; the chain goes on with its cause.
            Error::Context(stopped) => stopped.source(),
            Error::Http(err) => err.source(),
            Error::DeadlineTooNear { .. } => None,
        }
    }
}

impl From<::reqwest::Error> for Error {
    fn from(err: ::reqwest::Error) -> Error {
        Error::Http(err)
    }
}

/// Runs a reqwest future under `ctx`: not at all if `ctx` has already ended, and dropped (which
/// aborts the exchange) when `ctx` ends first.
///
/// For the steps after [`send_ctx`](RequestBuilderExt::send_ctx): reading the body with
/// `response.text()`, `bytes()`, `chunk()` or `json()`.
///
/// ```
/// # #[allow(dead_code)]
/// # async fn example(client: reqwest::Client, url: &str) -> Result<(), ctx_reqwest::Error> {
/// use ctx_core::Context;
/// use ctx_reqwest::{RequestBuilderExt, run};
///
/// let ctx = Context::background();
/// let response = client.get(url).send_ctx(&ctx).await?;
/// let text = run(&ctx, response.text()).await?;
/// # drop(text);
/// # Ok(())
/// # }
/// ```
pub async fn run<T, F>(ctx: &Context, fut: F) -> Result<T, Error>
where
    F: IntoFuture<Output = Result<T, ::reqwest::Error>>,
{
    match ctx.run(fut).await {
        Ok(result) => result.map_err(Error::Http),
        Err(err) => Err(Error::ended(ctx, err)),
    }
}

/// Sending a [`reqwest::RequestBuilder`] under a context.
pub trait RequestBuilderExt: sealed::Sealed {
    /// Sends the request unless `ctx` has already ended (then nothing is sent, not even a
    /// connection is opened), and aborts it if `ctx` ends before the response's head arrives.
    /// Go: `client.Do(req.WithContext(ctx))`.
    ///
    /// If `ctx` has a deadline, the request carries the time left in a `grpc-timeout` header
    /// (see [`ctx_http::grpc_timeout`]), rounded down: a server behind
    /// `ctx_http::ContextLayer` gives the request a deadline no later than
    /// the caller's. Servers that do not know the header ignore it.
    ///
    /// The future does not borrow `ctx` (it holds a clone), so it can be spawned. Read the
    /// body under the context with [`run`].
    fn send_ctx(
        self,
        ctx: &Context,
    ) -> impl Future<Output = Result<::reqwest::Response, Error>> + Send + 'static;

    /// [`send_ctx`](Self::send_ctx) for a call that needs at least `needed` to finish: it is
    /// not sent (no connection is opened) when `ctx` has less time left, and fails at once with
    /// [`Error::DeadlineTooNear`], instead of costing the server work that the caller's
    /// deadline will throw away. Go libraries hand-write this as a "deadline too soon" check.
    ///
    /// A context without a deadline always has time enough.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctx_core::Context;
    /// use ctx_reqwest::{Error, RequestBuilderExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (ctx, _h) = Context::background().with_timeout(Duration::from_millis(20));
    /// let client = reqwest::Client::new();
    /// // A report takes at least 50 ms to render: not worth asking for with 20 ms left.
    /// let err = client
    ///     .get("http://127.0.0.1:9/report")
    ///     .send_ctx_needing(&ctx, Duration::from_millis(50))
    ///     .await
    ///     .unwrap_err();
    /// assert!(matches!(err, Error::DeadlineTooNear { .. }));
    /// assert_eq!(err.to_string(), "request not sent: deadline too near: 20ms left, 50ms needed");
    /// # }
    /// ```
    fn send_ctx_needing(
        self,
        ctx: &Context,
        needed: Duration,
    ) -> impl Future<Output = Result<::reqwest::Response, Error>> + Send + 'static;
}

impl RequestBuilderExt for ::reqwest::RequestBuilder {
    fn send_ctx(
        self,
        ctx: &Context,
    ) -> impl Future<Output = Result<::reqwest::Response, Error>> + Send + 'static {
        let ctx = ctx.clone();
        async move {
            let request = match timeout_header(&ctx) {
                Ok(None) => self,
                Ok(Some(left)) => self.header(GRPC_TIMEOUT, left),
                Err(err) => {
                    if tracing::enabled!(tracing::Level::DEBUG)
                        && let (_, Ok(request)) = self.build_split()
                    {
                        not_sent(&ctx, &request);
                    }
                    return Err(Error::ended(&ctx, err));
                }
            };
            // `send()`, in two steps, to keep what the event of an abort shows.
            let (client, request) = request.build_split();
            let request = request?;
            let sent = tracing::enabled!(tracing::Level::DEBUG).then(|| Sent {
                method: request.method().clone(),
                url: request.url().clone(),
                at: tokio::time::Instant::now(),
            });
            match ctx.run(client.execute(request)).await {
                Ok(result) => result.map_err(Error::Http),
                Err(err) => {
                    if let Some(sent) = sent {
                        sent.aborted(&ctx);
                    }
                    Err(Error::ended(&ctx, err))
                }
            }
        }
    }

    fn send_ctx_needing(
        self,
        ctx: &Context,
        needed: Duration,
    ) -> impl Future<Output = Result<::reqwest::Response, Error>> + Send + 'static {
        let ctx = ctx.clone();
        async move {
            if let Some(err) = ctx.err() {
                return Err(Error::ended(&ctx, err));
            }
            if ctx.ensure_remaining(needed).is_err() {
                return Err(Error::DeadlineTooNear {
                    left: ctx.remaining().unwrap_or_default(),
                    needed,
                });
            }
            self.send_ctx(&ctx).await
        }
    }
}

/// A request on its way, as the event of its abort shows it.
struct Sent {
    method: ::reqwest::Method,
    url: ::reqwest::Url,
    at: tokio::time::Instant,
}

impl Sent {
    fn aborted(&self, ctx: &Context) {
        tracing::debug!(
            cause = cause_text(ctx).as_str(),
            origin = ctx
                .origin()
                .map(|origin| tracing::field::display(origin.location())),
            elapsed_ms = u64::try_from(self.at.elapsed().as_millis()).unwrap_or(u64::MAX),
            method = %self.method,
            url = %Target(&self.url),
            "call aborted"
        );
    }
}

fn not_sent(ctx: &Context, request: &::reqwest::Request) {
    tracing::debug!(
        cause = cause_text(ctx).as_str(),
        origin = ctx
            .origin()
            .map(|origin| tracing::field::display(origin.location())),
        method = %request.method(),
        url = %Target(request.url()),
        "call not sent"
    );
}

/// The text of the context's cause (the context has ended).
fn cause_text(ctx: &Context) -> String {
    match ctx.err() {
        Some(err) => ContextError::new(ctx, err).cause().to_string(),
        None => String::new(),
    }
}

/// A URL as the events show it: scheme, host, port and path, without the user's name and
/// password, the query or the fragment (they may carry secrets).
struct Target<'a>(&'a ::reqwest::Url);

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.0;
        write!(f, "{}://{}", url.scheme(), url.host_str().unwrap_or(""))?;
        if let Some(port) = url.port() {
            write!(f, ":{port}")?;
        }
        f.write_str(url.path())
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for ::reqwest::RequestBuilder {}
}
