//! `Context` as an axum extractor.

use std::fmt;

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use ctx_core::Context;

/// The request's [`Context`], put in its extensions by
/// [`ContextLayer`](crate::http::ContextLayer). Go: `r.Context()`.
///
/// Without the layer, the request is rejected with [`MissingContextLayer`] (a `500`), never a
/// panic.
///
/// ```
/// use std::time::Duration;
/// use axum::{Router, routing::get};
/// use ctx_core::Context;
/// use ctx_http::ContextLayer;
///
/// async fn handler(ctx: Context) -> String {
///     match ctx.run(tokio::time::sleep(Duration::from_millis(5))).await {
///         Ok(()) => "done".to_string(),
///         Err(err) => format!("stopped: {err}"),
///     }
/// }
///
/// let app: Router = Router::new()
///     .route("/", get(handler))
///     .layer(ContextLayer::new(Context::background()));
/// # drop(app);
/// ```
impl<S: Send + Sync> FromRequestParts<S> for Context {
    type Rejection = MissingContextLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Context, Self::Rejection> {
        parts
            .extensions
            .get::<Context>()
            .cloned()
            .ok_or(MissingContextLayer)
    }
}

/// The rejection of the [`Context`] extractor when the request has no context: the router
/// lacks [`ContextLayer`](crate::http::ContextLayer).
///
/// Answers `500 Internal Server Error` with its `Display` text as the body, which tells how to
/// fix it. With `Router::route_layer`, or a layer added before some routes, the routes outside
/// it have no context.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MissingContextLayer;

impl fmt::Display for MissingContextLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "this request has no ctx_core::Context: add `.layer(ctx_http::ContextLayer::new(root))` to the router, after the routes that extract a `Context`",
        )
    }
}

impl std::error::Error for MissingContextLayer {}

impl IntoResponse for MissingContextLayer {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}
