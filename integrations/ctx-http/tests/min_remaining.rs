//! `ContextLayer::min_remaining`: a request with too little time left is answered at once,
//! without calling the service; and, with or without it, so is a request with no time at all.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ctx_core::Context;
use ctx_http::ContextLayer;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::{Layer, Service, ServiceExt, service_fn};

const MIN: Duration = Duration::from_millis(50);

/// A service that counts its calls and answers `200 ok`.
fn counting(
    calls: Arc<AtomicUsize>,
) -> impl Service<Request<String>, Response = Response<String>, Error = Infallible> + Clone {
    service_fn(move |_req: Request<String>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new("ok".to_string())) }
    })
}

async fn call(
    layer: &ContextLayer,
    calls: &Arc<AtomicUsize>,
    request: Request<String>,
) -> (StatusCode, http::HeaderMap, String) {
    let service = layer.layer(counting(calls.clone()));
    let response = service.oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

fn with_timeout(timeout: &str) -> Request<String> {
    Request::get("/")
        .header("grpc-timeout", timeout)
        .body(String::new())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_caller_with_too_little_time_is_answered_504_without_calling_the_service() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = ContextLayer::new(Context::background()).min_remaining(MIN);
    let (status, headers, body) = call(&layer, &calls, with_timeout("20m")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(body, "deadline too near: 20ms left, 50ms needed");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_caller_with_enough_time_or_no_deadline_is_served() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = ContextLayer::new(Context::background()).min_remaining(MIN);
    for request in [
        with_timeout("50m"),
        with_timeout("1S"),
        Request::get("/").body(String::new()).unwrap(),
    ] {
        let (status, _, body) = call(&layer, &calls, request).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn without_min_remaining_a_short_caller_deadline_is_served() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = ContextLayer::new(Context::background());
    let (status, _, _) = call(&layer, &calls, with_timeout("20m")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn the_roots_deadline_counts_too() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (root, _h) = Context::background().with_timeout(Duration::from_millis(10));
    let layer = ContextLayer::new(root).min_remaining(MIN);
    let (status, _, body) = call(
        &layer,
        &calls,
        Request::get("/").body(String::new()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body, "deadline too near: 10ms left, 50ms needed");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_grpc_call_is_refused_with_deadline_exceeded() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = ContextLayer::new(Context::background()).min_remaining(MIN);
    let request = Request::post("/pkg.Service/Method")
        .header("content-type", "application/grpc")
        .header("grpc-timeout", "20m")
        .body(String::new())
        .unwrap();
    let (status, headers, body) = call(&layer, &calls, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["grpc-status"], "4");
    assert_eq!(
        headers["grpc-message"],
        "deadline too near: 20ms left, 50ms needed"
    );
    assert!(body.is_empty());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn an_ended_root_is_still_answered_as_an_end() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (root, handle) = Context::background().with_cancel();
    handle.cancel();
    let layer = ContextLayer::new(root).min_remaining(MIN);
    let (status, _, _) = call(&layer, &calls, with_timeout("20m")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(start_paused = true)]
async fn a_caller_whose_time_has_run_out_is_answered_504_without_calling_the_service() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = ContextLayer::new(Context::background()).timeout(Duration::from_secs(30));
    let (status, _, body) = call(&layer, &calls, with_timeout("0m")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body, "caller's deadline exceeded");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_zero_timeout_answers_504_without_calling_the_service() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = ContextLayer::new(Context::background()).timeout(Duration::ZERO);
    let (status, _, body) = call(&layer, &calls, Request::new(String::new())).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body, "request timed out");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
