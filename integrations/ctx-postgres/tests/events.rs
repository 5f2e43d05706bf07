//! The `tracing` event of a query cancelled in the server: `query canceled in the server`
//! (debug), recorded in the caller's span with the cause, the origin of the context's end and
//! how long the stop took; nothing for a query that completes or is never sent.
//!
//! Needs a PostgreSQL server (`DATABASE_URL`); without it the tests print "skipped:
//! DATABASE_URL not set" and pass, unless `CI=true`, where a missing server is a failure.

use std::time::Duration;

use ctx_core::Context;
use ctx_postgres::Client;
use ctx_test_server::capture::capture;
use tracing::{Instrument, Level};

const CANCELED: &str = "query canceled in the server";

fn database_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("DATABASE_URL is not set but CI=true: .ci/run must start PostgreSQL")
        }
        _ => {
            println!("skipped: DATABASE_URL not set");
            None
        }
    }
}

async fn connect(url: &str) -> Client {
    let config = url.parse().expect("DATABASE_URL is not a valid URL");
    Client::connect(&Context::background(), &config, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to DATABASE_URL: {e}"))
}

#[tokio::test]
async fn a_query_canceled_in_the_server_is_recorded_in_the_callers_span() {
    let Some(url) = database_url() else { return };
    let client = connect(&url).await;
    let (events, _guard) = capture();
    let (ctx, handle) = Context::background().with_cancel();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let line = line!() + 1; // the next line
        handle.cancel_with_cause("client disconnected");
        line
    });
    let err = client
        .execute(&ctx, "SELECT pg_sleep(30)", &[])
        .instrument(tracing::info_span!("request"))
        .await
        .unwrap_err();
    assert!(err.context_err().is_some());
    let line = canceller.await.unwrap();

    let event = events.one(CANCELED);
    assert_eq!(event.level, Level::DEBUG);
    assert_eq!(event.target, "ctx_postgres");
    assert_eq!(event.span.as_deref(), Some("request"));
    assert_eq!(event.names(), ["cause", "origin", "stop_ms"]);
    assert_eq!(event.str("cause"), "client disconnected");
    let origin = event.str("origin");
    assert!(
        origin.starts_with(&format!("{}:{line}:", file!())),
        "{origin}"
    );
    assert!(event.f64("stop_ms") >= 0.0);
    // The client is ready for the next query, which records nothing.
    let one: i32 = client
        .query_one(&Context::background(), "SELECT 1::int4", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(one, 1);
    assert_eq!(events.from("ctx_postgres").len(), 1);
}

#[tokio::test]
async fn a_dropped_query_is_recorded_by_the_task_that_cancels_it() {
    let Some(url) = database_url() else { return };
    let client = connect(&url).await;
    let (events, _guard) = capture();
    // The request's context ends, then its future is dropped: what a hang-up does.
    let (ctx, handle) = Context::background().with_cancel();
    {
        let query = client.execute(&ctx, "SELECT pg_sleep(30)", &[]);
        let mut query = Box::pin(query.instrument(tracing::info_span!("request")));
        assert!(
            tokio::time::timeout(Duration::from_millis(100), &mut query)
                .await
                .is_err()
        );
        handle.cancel_with_cause("client disconnected");
    }
    // The next query waits for the cancel sent for the dropped one.
    let one: i32 = client
        .query_one(&Context::background(), "SELECT 1::int4", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(one, 1);
    let event = events.one(CANCELED);
    assert_eq!(event.span.as_deref(), Some("request"));
    assert_eq!(event.str("cause"), "client disconnected");
    let _ = event.str("origin");
    let _ = event.f64("stop_ms");
}

#[tokio::test]
async fn a_query_that_completes_or_is_never_sent_records_nothing() {
    let Some(url) = database_url() else { return };
    let client = connect(&url).await;
    let (events, _guard) = capture();
    client
        .execute(&Context::background(), "SELECT 1", &[])
        .await
        .unwrap();
    let (ended, handle) = Context::background().with_cancel();
    handle.cancel();
    let _ = client
        .execute(&ended, "SELECT pg_sleep(30)", &[])
        .await
        .unwrap_err();
    assert!(events.from("ctx_postgres").is_empty(), "{events:?}");
}
