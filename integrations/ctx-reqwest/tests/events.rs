//! The `tracing` events of `send_ctx`: `call not sent` and `call aborted` (debug), in the
//! caller's span, with the cause, the origin of the context's end, the method and the URL
//! (without its query); nothing for a call that completes. A capturing subscriber and a real
//! axum server on 127.0.0.1.

use ctx_core::Context;
use ctx_reqwest::RequestBuilderExt;
use ctx_test_server::Server;
use ctx_test_server::capture::capture;
use tracing::{Instrument, Level};

#[tokio::test]
async fn a_call_under_an_ended_context_is_recorded_as_not_sent() {
    let server = Server::start(None).await;
    let (events, _guard) = capture();
    let (ctx, cancel) = Context::background().with_cancel();
    let line = line!() + 1; // the next line
    cancel.cancel_with_cause("user gave up");
    let _ = reqwest::Client::new()
        .get(server.url("/hello?token=secret"))
        .send_ctx(&ctx)
        .instrument(tracing::info_span!("caller"))
        .await
        .unwrap_err();

    let event = events.one("call not sent");
    assert_eq!(event.level, Level::DEBUG);
    assert_eq!(event.target, "ctx_reqwest");
    assert_eq!(event.span.as_deref(), Some("caller"));
    assert_eq!(event.names(), ["cause", "method", "origin", "url"]);
    assert_eq!(event.str("cause"), "user gave up");
    assert_eq!(event.str("method"), "GET");
    assert_eq!(event.str("url"), server.url("/hello"));
    assert!(
        event
            .str("origin")
            .starts_with(&format!("{}:{line}:", file!())),
        "{}",
        event.str("origin")
    );
    assert!(events.named("call aborted").is_empty());
}

#[tokio::test]
async fn a_call_whose_context_ends_first_is_recorded_as_aborted() {
    let mut server = Server::start(None).await;
    let (events, _guard) = capture();
    let (ctx, cancel) = Context::background().with_cancel();
    let call = reqwest::Client::new()
        .get(server.url("/wait"))
        .send_ctx(&ctx)
        .instrument(tracing::info_span!("caller"));
    let call = tokio::spawn(call);
    let _handler = server.started().await;
    cancel.cancel_with_cause("client disconnected");
    let _ = call.await.unwrap().unwrap_err();

    let event = events.one("call aborted");
    assert_eq!(event.level, Level::DEBUG);
    assert_eq!(event.span.as_deref(), Some("caller"));
    assert_eq!(
        event.names(),
        ["cause", "elapsed_ms", "method", "origin", "url"]
    );
    assert_eq!(event.str("cause"), "client disconnected");
    assert_eq!(event.str("url"), server.url("/wait"));
    let _ = event.u64("elapsed_ms");
    assert!(events.named("call not sent").is_empty());
}

#[tokio::test]
async fn a_call_that_completes_records_nothing() {
    let server = Server::start(None).await;
    let (events, _guard) = capture();
    let response = reqwest::Client::new()
        .get(server.url("/hello"))
        .send_ctx(&Context::background())
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert!(events.from("ctx_reqwest").is_empty(), "{events:?}");
}
