//! The `tracing` event of `Db::call`: `query interrupted` (debug), recorded in the caller's
//! span with the cause, the origin of the context's end and how long the stop took; nothing
//! for work that completes or never ran. A capturing subscriber, real SQLite.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ctx_core::Context;
use ctx_rusqlite::Db;
use ctx_test_server::capture::capture;
use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;
use tracing::{Instrument, Level};

const INTERRUPTED: &str = "query interrupted";

/// Counts to a billion (minutes, unless interrupted); each row calls `tick()`.
const SLOW: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000)
                    SELECT sum(tick(x)) FROM c";

fn db() -> (Db, Arc<AtomicU64>) {
    let ticks = Arc::new(AtomicU64::new(0));
    let conn = Connection::open_in_memory().unwrap();
    let counter = ticks.clone();
    conn.create_scalar_function("tick", 1, FunctionFlags::SQLITE_UTF8, move |f| {
        counter.fetch_add(1, Ordering::Relaxed);
        f.get::<i64>(0)
    })
    .unwrap();
    (Db::from_connections([conn]).unwrap(), ticks)
}

fn slow(conn: &mut Connection) -> rusqlite::Result<i64> {
    conn.query_row(SLOW, [], |row| row.get(0))
}

/// Waits until the slow statement is running (`tick()` was called).
async fn until_running(ticks: &AtomicU64) {
    while ticks.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn an_interrupted_query_is_recorded_in_the_callers_span() {
    let (events, _guard) = capture();
    let (db, ticks) = db();
    let (ctx, handle) = Context::background().with_cancel();
    let canceller = tokio::spawn(async move {
        until_running(&ticks).await;
        let line = line!() + 1; // the next line
        handle.cancel_with_cause("client disconnected");
        line
    });
    let err = db
        .call(&ctx, slow)
        .instrument(tracing::info_span!("request"))
        .await
        .unwrap_err();
    assert!(err.context_err().is_some());
    let line = canceller.await.unwrap();

    let event = events.one(INTERRUPTED);
    assert_eq!(event.level, Level::DEBUG);
    assert_eq!(event.target, "ctx_rusqlite");
    assert_eq!(event.span.as_deref(), Some("request"));
    assert_eq!(event.names(), ["cause", "origin", "stop_ms"]);
    assert_eq!(event.str("cause"), "client disconnected");
    let origin = event.str("origin");
    assert!(
        origin.starts_with(&format!("{}:{line}:", file!())),
        "{origin}"
    );
    assert!(event.f64("stop_ms") >= 0.0);
}

#[tokio::test]
async fn a_deadline_is_recorded_with_its_text() {
    let (events, _guard) = capture();
    let (db, _ticks) = db();
    let (ctx, _h) = Context::background().with_timeout(Duration::from_millis(50));
    let _ = db.call(&ctx, slow).await.unwrap_err();
    let event = events.one(INTERRUPTED);
    assert_eq!(event.str("cause"), "context deadline exceeded");
    let _ = event.f64("stop_ms");
}

#[tokio::test]
async fn a_dropped_call_is_recorded_without_an_origin() {
    let (events, _guard) = capture();
    let (db, ticks) = db();
    let call = tokio::spawn({
        let db = db.clone();
        async move { db.call(&Context::background(), slow).await }
    });
    until_running(&ticks).await;
    call.abort();
    let _ = call.await;
    while db.in_use() > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let event = events.one(INTERRUPTED);
    assert_eq!(event.str("cause"), "the call was dropped");
    assert_eq!(event.names(), ["cause", "stop_ms"]);
}

#[tokio::test]
async fn work_that_completes_or_never_runs_records_nothing() {
    let (events, _guard) = capture();
    let (db, _ticks) = db();
    let one: i64 = db
        .call(&Context::background(), |conn| {
            conn.query_row("SELECT 1", [], |row| row.get(0))
        })
        .await
        .unwrap();
    assert_eq!(one, 1);
    let (ended, handle) = Context::background().with_cancel();
    handle.cancel();
    let _ = db.call(&ended, slow).await.unwrap_err();
    assert!(events.from("ctx_rusqlite").is_empty(), "{events:?}");
}
