//! `call_needing`: a call that cannot finish in time is not sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ctx_core::Context;
use ctx_tonic::call_needing;
use tonic::{Code, Request, Response, Status};

const NEEDED: Duration = Duration::from_millis(50);

/// A `send` that counts how often it was called and checks the timeout it was given.
fn counting(
    sent: &Arc<AtomicUsize>,
) -> impl FnOnce(Request<u32>) -> std::future::Ready<Result<Response<u32>, Status>> {
    let sent = sent.clone();
    move |req| {
        sent.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(Response::new(*req.get_ref() + 1)))
    }
}

#[tokio::test(start_paused = true)]
async fn too_little_time_is_deadline_exceeded_and_nothing_is_sent() {
    let sent = Arc::new(AtomicUsize::new(0));
    let (ctx, _h) = Context::background().with_timeout(Duration::from_millis(20));
    let status = call_needing(&ctx, NEEDED, 1, counting(&sent))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert_eq!(
        status.message(),
        "deadline too near: 20ms left, 50ms needed"
    );
    assert_eq!(sent.load(Ordering::SeqCst), 0);
    assert_eq!(ctx.err(), None);
}

#[tokio::test(start_paused = true)]
async fn enough_time_or_no_deadline_sends_the_call() {
    let sent = Arc::new(AtomicUsize::new(0));
    let (ctx, _h) = Context::background().with_timeout(NEEDED);
    let response = call_needing(&ctx, NEEDED, 1, counting(&sent))
        .await
        .unwrap();
    assert_eq!(response.into_inner(), 2);
    let response = call_needing(&Context::background(), Duration::MAX, 2, counting(&sent))
        .await
        .unwrap();
    assert_eq!(response.into_inner(), 3);
    assert_eq!(sent.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn an_ended_context_says_why_it_ended() {
    let sent = Arc::new(AtomicUsize::new(0));
    let (ctx, cancel) = Context::background().with_timeout(Duration::from_secs(1));
    cancel.cancel_with_cause("batch aborted");
    let status = call_needing(&ctx, NEEDED, 1, counting(&sent))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::Cancelled, "batch aborted")
    );
    assert_eq!(sent.load(Ordering::SeqCst), 0);
}
