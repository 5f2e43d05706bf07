//! The `tracing` events of `ctx_tonic::call`: `call not sent` and `call aborted` (debug), in
//! the caller's span, with the cause and the origin of the context's end; nothing for a call
//! that completes. A capturing subscriber, the paused clock, and a stand-in for a generated
//! client's method.

use std::time::Duration;

use ctx_core::Context;
use ctx_test_server::capture::capture;
use tonic::{Code, Request, Response, Status};
use tracing::{Instrument, Level};

/// Answers after a minute.
async fn slow(request: Request<u32>) -> Result<Response<u32>, Status> {
    tokio::time::sleep(Duration::from_secs(60)).await;
    Ok(Response::new(*request.get_ref() + 1))
}

#[tokio::test(start_paused = true)]
async fn a_call_under_an_ended_context_is_recorded_as_not_sent() {
    let (events, _guard) = capture();
    let (ctx, cancel) = Context::background().with_cancel();
    let line = line!() + 1; // the next line
    cancel.cancel_with_cause("user went away");
    let status = ctx_tonic::call(&ctx, 41, slow)
        .instrument(tracing::info_span!("caller"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Cancelled);

    let event = events.one("call not sent");
    assert_eq!(event.level, Level::DEBUG);
    assert_eq!(event.target, "ctx_tonic");
    assert_eq!(event.span.as_deref(), Some("caller"));
    assert_eq!(event.names(), ["cause", "origin"]);
    assert_eq!(event.str("cause"), "user went away");
    assert!(
        event
            .str("origin")
            .starts_with(&format!("{}:{line}:", file!())),
        "{}",
        event.str("origin")
    );
    assert!(events.named("call aborted").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_call_past_its_deadline_is_recorded_as_aborted() {
    let (events, _guard) = capture();
    let line = line!() + 1; // the next line
    let (ctx, _h) = Context::background().with_timeout(Duration::from_millis(300));
    let status = ctx_tonic::call(&ctx, 41, slow)
        .instrument(tracing::info_span!("caller"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded);

    let event = events.one("call aborted");
    assert_eq!(event.level, Level::DEBUG);
    assert_eq!(event.span.as_deref(), Some("caller"));
    assert_eq!(event.names(), ["cause", "elapsed_ms", "origin"]);
    assert_eq!(event.str("cause"), "context deadline exceeded");
    let _ = event.u64("elapsed_ms");
    assert!(
        event
            .str("origin")
            .starts_with(&format!("{}:{line}:", file!())),
        "{}",
        event.str("origin")
    );
    assert!(events.named("call not sent").is_empty());
}

/// A call that failed as its context ended (tonic's own timer, say) is an abort too.
#[tokio::test(start_paused = true)]
async fn a_call_that_fails_as_its_context_ends_is_recorded_as_aborted() {
    let (events, _guard) = capture();
    let (ctx, cancel) = Context::background().with_cancel();
    let status = ctx_tonic::call(&ctx, 41, |_: Request<u32>| async move {
        cancel.cancel_with_cause("shutting down");
        Err::<Response<u32>, _>(Status::cancelled("Timeout expired"))
    })
    .await
    .unwrap_err();
    assert_eq!(status.message(), "shutting down");
    assert_eq!(events.one("call aborted").str("cause"), "shutting down");
}

#[tokio::test(start_paused = true)]
async fn a_call_that_completes_records_nothing() {
    let (events, _guard) = capture();
    let (ctx, _h) = Context::background().with_timeout(Duration::from_secs(120));
    let response = ctx_tonic::call(&ctx, 41, slow).await.unwrap();
    assert_eq!(*response.get_ref(), 42);
    assert!(events.from("ctx_tonic").is_empty(), "{events:?}");
}
