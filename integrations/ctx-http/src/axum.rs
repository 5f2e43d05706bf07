//! The request's `Context` as an axum extractor.

use std::fmt;
use std::ops::Deref;

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use ctx_core::Context;

/// The request's [`Context`], put in its extensions by [`ContextLayer`](crate::ContextLayer),
/// as an axum extractor. Go: `r.Context()`.
///
/// It dereferences to the [`Context`] (and is `AsRef<Context>`), so a handler uses it as one;
/// `RequestContext(ctx): RequestContext` takes the context out. A `#[cancellable]` handler
/// takes it as its `ctx` parameter, and its body sees `ctx: &Context` as usual.
///
/// Without the layer, the request is rejected with [`MissingContextLayer`] (a `500`), never a
/// panic.
///
/// ```
/// use std::time::Duration;
/// use axum::{Router, http::StatusCode, response::{IntoResponse, Response}, routing::get};
/// use ctx_core::{cancellable, Context, Error};
/// use ctx_http::{ContextLayer, RequestContext};
///
/// /// A handler's error: here, only "the context stopped it".
/// struct Stopped(Error);
///
/// impl From<Error> for Stopped {
///     fn from(err: Error) -> Stopped {
///         Stopped(err)
///     }
/// }
///
/// impl IntoResponse for Stopped {
///     fn into_response(self) -> Response {
///         (StatusCode::SERVICE_UNAVAILABLE, self.0.to_string()).into_response()
///     }
/// }
///
/// async fn handler(ctx: RequestContext) -> String {
///     match ctx.run(tokio::time::sleep(Duration::from_millis(5))).await {
///         Ok(()) => "done".to_string(),
///         Err(err) => format!("stopped: {err}"),
///     }
/// }
///
/// // The same, stopped after 2 s at the latest.
/// #[cancellable(timeout = "2s")]
/// async fn bounded(ctx: RequestContext) -> Result<String, Stopped> {
///     let ctx: &Context = ctx; // what the body sees
///     tokio::time::sleep(Duration::from_millis(5)).await;
///     Ok(format!("done, {:?} left", ctx.deadline().is_some()))
/// }
///
/// let app: Router = Router::new()
///     .route("/", get(handler))
///     .route("/bounded", get(bounded))
///     .layer(ContextLayer::new(Context::background()));
/// # drop(app);
/// ```
#[derive(Clone, Debug, Default)]
pub struct RequestContext(pub Context);

impl Deref for RequestContext {
    type Target = Context;

    #[inline]
    fn deref(&self) -> &Context {
        &self.0
    }
}

impl AsRef<Context> for RequestContext {
    #[inline]
    fn as_ref(&self) -> &Context {
        &self.0
    }
}

impl From<RequestContext> for Context {
    #[inline]
    fn from(ctx: RequestContext) -> Context {
        ctx.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = MissingContextLayer;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<RequestContext, Self::Rejection> {
        parts
            .extensions
            .get::<Context>()
            .cloned()
            .map(RequestContext)
            .ok_or(MissingContextLayer)
    }
}

/// The rejection of the [`RequestContext`] extractor when the request has no context: the router
/// lacks [`ContextLayer`](crate::ContextLayer).
///
/// Answers `500 Internal Server Error` with its `Display` text as the body, which tells how to
/// fix it. With `Router::route_layer`, or a layer added before some routes, the routes outside
/// it have no context.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MissingContextLayer;

impl fmt::Display for MissingContextLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "this request has no ctx_core::Context: add `.layer(ctx_http::ContextLayer::new(root))` to the router, after the routes that extract a `RequestContext`",
        )
    }
}

impl std::error::Error for MissingContextLayer {}

impl IntoResponse for MissingContextLayer {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}
