//! What the demo's end-to-end tests share: databases to run the album server over, and waiting.

#![allow(dead_code, unreachable_pub)] // each test file uses a part of it

use std::time::{Duration, Instant};

use ctx_core::Context;
use ctx_examples::App;

/// A hard bound for things that take milliseconds, safe on a loaded 2-core CI machine.
pub const HARD_BOUND: Duration = Duration::from_secs(3);

/// The album app over a fresh SQLite file named after the test.
pub fn sqlite_app(name: &str) -> App {
    let path = std::env::temp_dir().join(format!("ctx-demo-test-{name}-{}.db", std::process::id()));
    App::sqlite(&path, 8).unwrap()
}

/// The album app over the PostgreSQL server at `DATABASE_URL`, or `None` (the test is then
/// skipped) if it is not set; under `CI=true` a missing server is a failure.
pub async fn postgres_app(ctx: &Context) -> Option<App> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(App::postgres(ctx, &url).await.unwrap()),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("DATABASE_URL is not set under CI=true: .ci/run must start PostgreSQL")
        }
        _ => {
            eprintln!("skipped: DATABASE_URL not set");
            None
        }
    }
}

/// Waits until `done()`, failing after `bound`; returns how long it took.
pub async fn wait_until(what: &str, bound: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < bound, "{what}: not within {bound:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}

/// Active `pg_sleep` queries of the demo's connections, seen from another connection.
pub async fn active_demo_queries(url: &str) -> i64 {
    let (client, connection) =
        ctx_postgres::tokio_postgres::connect(url, ctx_postgres::tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
             WHERE application_name = 'ctx-album-demo' AND state = 'active'
               AND query LIKE '%pg_sleep%'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}
