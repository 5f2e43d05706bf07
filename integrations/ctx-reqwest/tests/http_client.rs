//! `ctx_reqwest`: reqwest calls made under a context, against a real axum server on
//! 127.0.0.1 whose requests have contexts of their own (`ContextLayer`), so each test sees both
//! ends: what the client got, and what the server's handler saw.

use std::time::Duration;

use ctx_core::{Context, Error};
use ctx_http::RequestEnd;
use ctx_reqwest::{Error as ClientError, RequestBuilderExt, run};
use ctx_test_server::{BOUND, Server, ended_within};

fn assert_server_saw_disconnect(ctx: &Context) {
    assert_eq!(ctx.err(), Some(Error::Canceled));
    assert_eq!(RequestEnd::of(ctx), Some(RequestEnd::ClientDisconnected));
}

#[test]
fn the_error_is_a_send_sync_error() {
    fn error<T: std::error::Error + Send + Sync + 'static>() {}
    error::<ClientError>();
}

#[tokio::test]
async fn a_call_under_a_live_context_works() {
    let server = Server::start(None).await;
    let (ctx, _cancel) = Context::background().with_timeout(BOUND);
    let client = reqwest::Client::new();
    let response = client
        .get(server.url("/hello"))
        .send_ctx(&ctx)
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert_eq!(
        run(&ctx, response.text()).await.unwrap(),
        "hello, live: true"
    );
    assert_eq!(server.calls(), 1);
}

/// A context that has already ended sends nothing: no connection, no request.
#[tokio::test]
async fn a_call_under_an_ended_context_is_not_sent() {
    let server = Server::start(None).await;
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel_with_cause("user gave up");
    let err = reqwest::Client::new()
        .get(server.url("/hello"))
        .send_ctx(&ctx)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Context(stopped) if stopped.err() == Error::Canceled && stopped.cause().to_string() == "user gave up"),
        "{err:?}"
    );
    assert_eq!(err.context_err(), Some(Error::Canceled));
    assert_eq!(err.to_string(), "request aborted: context canceled");

    // Had anything been sent, the server would have seen it by now.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.connections(), 0);
    assert_eq!(server.calls(), 0);
}

/// A deadline that passed unobserved counts as ended too (`err()` reads the clock).
#[tokio::test]
async fn a_call_after_the_deadline_passed_is_not_sent() {
    let server = Server::start(None).await;
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(1));
    std::thread::sleep(Duration::from_millis(5)); // nothing awaits the deadline
    let err = reqwest::Client::new()
        .get(server.url("/hello"))
        .send_ctx(&ctx)
        .await
        .unwrap_err();
    assert_eq!(err.context_err(), Some(Error::DeadlineExceeded));
    assert_eq!(
        err.to_string(),
        "request aborted: context deadline exceeded"
    );
    assert_eq!(server.connections(), 0);
}

/// Cancelled while the server works on it: the call returns at once with the context's error,
/// and the server's handler sees its client go away.
#[tokio::test]
async fn a_cancel_mid_flight_aborts_the_call_and_the_server_sees_a_disconnect() {
    let mut server = Server::start(None).await;
    let (ctx, cancel) = Context::background().with_cancel();
    let call = tokio::spawn(
        reqwest::Client::new()
            .get(server.url("/wait"))
            .send_ctx(&ctx),
    );
    let server_ctx = server.started().await;

    cancel.cancel_with_cause("user gave up");
    let err = tokio::time::timeout(BOUND, call)
        .await
        .expect("the call was not aborted")
        .unwrap()
        .unwrap_err();
    assert_eq!(err.context_err(), Some(Error::Canceled));
    assert_eq!(err.to_string(), "request aborted: context canceled");

    ended_within(&server_ctx).await;
    assert_server_saw_disconnect(&server_ctx);
}

/// A deadline mid-flight: `DeadlineExceeded`, with the deadline's cause.
#[tokio::test]
async fn a_deadline_mid_flight_aborts_the_call() {
    let mut server = Server::start(None).await;
    let t0 = std::time::Instant::now();
    let (ctx, _cancel) = Context::background()
        .with_timeout_cause(Duration::from_millis(100), "albums lookup too slow");
    let call = tokio::spawn(
        reqwest::Client::new()
            .get(server.url("/wait"))
            .send_ctx(&ctx),
    );
    let server_ctx = server.started().await;
    let err = tokio::time::timeout(BOUND, call)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(t0.elapsed() >= Duration::from_millis(100));
    assert!(
        matches!(
            err,
            ClientError::Context(ref stopped) if stopped.err() == Error::DeadlineExceeded
                && stopped.cause().to_string() == "albums lookup too slow"
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "request aborted: context deadline exceeded"
    );
    ended_within(&server_ctx).await;
    // The request carried the caller's deadline (`grpc-timeout`), so the server's context
    // ends at about the same instant by itself: either end may be the one it reports.
    match RequestEnd::of(&server_ctx) {
        Some(RequestEnd::CallerDeadlineExceeded) => {
            assert_eq!(server_ctx.err(), Some(Error::DeadlineExceeded));
        }
        _ => assert_server_saw_disconnect(&server_ctx),
    }
}

/// Over HTTP/2 the abort resets the stream; the server's handler sees it the same way.
#[tokio::test]
async fn a_cancel_mid_flight_over_http2_resets_the_stream() {
    let mut server = Server::start(None).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let (ctx, cancel) = Context::background().with_cancel();
    let call = tokio::spawn(client.get(server.url("/wait")).send_ctx(&ctx));
    let server_ctx = server.started().await;
    drop(cancel);
    let err = tokio::time::timeout(BOUND, call)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.to_string(), "request aborted: context canceled");
    ended_within(&server_ctx).await;
    assert_server_saw_disconnect(&server_ctx);
}

/// The body read under the context: cancelled while the body streams, the read is aborted and
/// the server's response body is dropped unfinished.
#[tokio::test]
async fn a_cancel_while_reading_the_body_aborts_the_read() {
    let mut server = Server::start(None).await;
    let (ctx, cancel) = Context::background().with_cancel();
    let response = reqwest::Client::new()
        .get(server.url("/stream"))
        .send_ctx(&ctx)
        .await
        .unwrap();
    let server_ctx = server.started().await;
    let read = tokio::spawn({
        let ctx = ctx.clone();
        async move { run(&ctx, response.text()).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        server_ctx.err(),
        None,
        "the server's context ended mid-body"
    );

    cancel.cancel_with_cause("enough");
    let err = tokio::time::timeout(BOUND, read)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.to_string(), "request aborted: context canceled");
    let source = std::error::Error::source(&err).expect("the cause is the source");
    assert_eq!(source.to_string(), "enough");
    ended_within(&server_ctx).await;
    assert_server_saw_disconnect(&server_ctx);
}

/// reqwest's own failures come back as `Error::Http`.
#[tokio::test]
async fn a_reqwest_failure_is_an_http_error() {
    // A port that was just free: connection refused.
    let addr = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let err = reqwest::Client::new()
        .get(format!("http://{addr}/"))
        .send_ctx(&Context::background())
        .await
        .unwrap_err();
    match &err {
        ClientError::Http(inner) => assert!(inner.is_connect(), "{inner:?}"),
        other => panic!("expected an HTTP error, got {other:?}"),
    }
    assert_eq!(err.context_err(), None);
}

/// The future owns what it needs: it can be spawned after the context is gone from scope.
#[tokio::test]
async fn the_call_future_is_static_and_send() {
    let server = Server::start(None).await;
    let call = {
        let ctx = Context::background();
        reqwest::Client::new()
            .get(server.url("/hello"))
            .send_ctx(&ctx)
    };
    let response = tokio::spawn(call).await.unwrap().unwrap();
    assert_eq!(response.text().await.unwrap(), "hello, live: true");
}

/// A call that needs more time than the context has left is not sent; one that fits is.
#[tokio::test]
async fn a_call_that_cannot_finish_in_time_is_not_sent() {
    let server = Server::start(None).await;
    let client = reqwest::Client::new();
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(1));
    let err = client
        .get(server.url("/hello"))
        .send_ctx_needing(&ctx, Duration::from_secs(3600))
        .await
        .unwrap_err();
    match &err {
        ClientError::DeadlineTooNear { left, needed } => {
            assert!(*left <= Duration::from_secs(1), "{left:?}");
            assert_eq!(*needed, Duration::from_secs(3600));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.context_err(), None, "the context has not ended");
    assert!(
        err.to_string()
            .starts_with("request not sent: deadline too near: "),
        "{err}"
    );
    assert_eq!(ctx.err(), None);

    // With enough time (or no deadline at all) it is sent as `send_ctx` sends it.
    let response = client
        .get(server.url("/hello"))
        .send_ctx_needing(&ctx, Duration::from_millis(1))
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let response = client
        .get(server.url("/hello"))
        .send_ctx_needing(&Context::background(), Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    // Only the two calls that fit reached the server.
    assert_eq!(server.calls(), 2);
}

#[tokio::test]
async fn a_call_needing_time_under_an_ended_context_reports_the_end() {
    let (ctx, cancel) = Context::background().with_timeout(Duration::from_secs(1));
    cancel.cancel_with_cause("user gave up");
    let err = reqwest::Client::new()
        .get("http://127.0.0.1:9/")
        .send_ctx_needing(&ctx, Duration::from_secs(3600))
        .await
        .unwrap_err();
    assert_eq!(err.context_err(), Some(Error::Canceled));
}
