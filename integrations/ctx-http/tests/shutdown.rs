//! `Shutdown`: the first signal stops accepting, the drain deadline (or a second signal) ends
//! the requests still in flight with the signal as their cause. Paused clock; the real signal
//! case is in `tests/signal.rs` (its own process).

use std::time::Duration;

use axum::{Router, body::Body, routing::get};
use ctx_http::{ContextLayer, RequestContext, RequestEnd, Shutdown};
use http::{Request, StatusCode};
use tower::ServiceExt;

#[tokio::test(start_paused = true)]
async fn the_requests_drain_for_the_grace_period_then_end() {
    let shutdown = Shutdown::manual(Duration::from_secs(10));
    let (request, _request_handle) = shutdown.context().with_cancel();
    assert!(!shutdown.is_signalled());

    let start = tokio::time::Instant::now();
    shutdown.trigger();
    shutdown.signalled().await;
    assert!(shutdown.is_signalled());
    assert!(!request.is_done(), "in flight: still draining");

    request.done().await;
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    assert_eq!(RequestEnd::of(&request), Some(RequestEnd::ShuttingDown));
    assert_eq!(request.cause().unwrap().to_string(), "server shutting down");
}

#[tokio::test(start_paused = true)]
async fn a_second_signal_ends_the_requests_at_once() {
    let shutdown = Shutdown::manual(Duration::from_secs(10));
    shutdown.trigger();
    shutdown.signalled().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start = tokio::time::Instant::now();
    shutdown.trigger();
    shutdown.context().done().await;
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn nothing_ends_without_a_signal() {
    let shutdown = Shutdown::manual(Duration::from_millis(1));
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(!shutdown.is_signalled());
    assert!(!shutdown.context().is_done());
}

#[tokio::test(start_paused = true)]
async fn a_request_past_the_drain_deadline_is_answered_503() {
    let shutdown = Shutdown::manual(Duration::from_secs(2));
    let app = Router::new()
        .route(
            "/slow",
            get(|_ctx: RequestContext| async move {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "finished"
            }),
        )
        .layer(ContextLayer::new(shutdown.context().clone()));
    let request = Request::get("/slow").body(Body::empty()).unwrap();
    let call = tokio::spawn(app.oneshot(request));
    tokio::time::sleep(Duration::from_millis(10)).await;
    shutdown.trigger();
    let response = call.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}
