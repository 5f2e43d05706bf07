//! The three servers that `compare` and `instructions` send requests to, and the request they
//! send: one GET through an axum `Router` called as a tower `Service`, in-process (no socket,
//! no hyper), its body read to the end.

use std::hint::black_box;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use ctx_core::{CancelHandle, Context};
use ctx_http::{ContextLayer, RequestContext};
use http_body_util::BodyExt;
use tower::Service;
use tower_http::timeout::TimeoutLayer;

/// The implementations, in the order they are measured.
pub(crate) const IMPLS: [&str; 3] = ["axum", "tower-http-timeout", "ctx"];

/// The timeout of `tower-http-timeout` and `ctx`: long enough never to pass.
const TIMEOUT: Duration = Duration::from_secs(30);

async fn plain() -> &'static str {
    "ok"
}

async fn with_context(ctx: RequestContext) -> &'static str {
    black_box(&ctx);
    "ok"
}

/// A server: its router, and (for `ctx`) the handle of its root, which must live as long as
/// the server (a server's root is cancelled to shut it down).
pub(crate) struct App {
    pub(crate) router: Router,
    _root: Option<CancelHandle>,
}

/// The router of the implementation `imp` (one of [`IMPLS`]):
///
/// - `axum`: `Router::new().route("/", get(plain))`;
/// - `tower-http-timeout`: the same `.layer(TimeoutLayer::with_status_code(504, 30 s))`;
/// - `ctx`: `.route("/", get(with_context))` (a handler that extracts `RequestContext`),
///   `.layer(ContextLayer::new(root).timeout(30 s))`, `root` a cancellable child of
///   `background()` as a server's root is (to shut it down).
///
/// Each ends with `.with_state(())`, as `axum::serve` does (`into_make_service`): it makes each
/// route's service once. A router called without it makes the route of a handler, with the
/// layers around it, again for every request (clones of the handler and of each layer, and
/// their boxes), which no server pays and which would be counted as the layers' cost.
pub(crate) fn app(imp: &str) -> App {
    match imp {
        "axum" => App {
            router: Router::new().route("/", get(plain)).with_state(()),
            _root: None,
        },
        "tower-http-timeout" => App {
            router: Router::new()
                .route("/", get(plain))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::GATEWAY_TIMEOUT,
                    TIMEOUT,
                ))
                .with_state(()),
            _root: None,
        },
        "ctx" => {
            let (root, handle) = Context::background().with_cancel();
            App {
                router: Router::new()
                    .route("/", get(with_context))
                    .layer(ContextLayer::new(root).timeout(TIMEOUT))
                    .with_state(()),
                _root: Some(handle),
            }
        }
        other => panic!("unknown impl {other:?}"),
    }
}

/// One op: builds `GET /`, calls the router, reads the response's body to its end.
pub(crate) async fn request(router: &mut Router) {
    let request = Request::get("/").body(Body::empty()).expect("a request");
    let response = router.call(request).await.expect("a response");
    debug_assert_eq!(response.status(), StatusCode::OK);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the body")
        .to_bytes();
    black_box(body);
}

/// A current-thread runtime with a clock, as the timeouts need.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime")
}
