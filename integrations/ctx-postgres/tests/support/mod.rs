//! What the PostgreSQL test files share: the server from `DATABASE_URL` (skipped without one,
//! a failure under `CI=true`), and observations of it through `pg_stat_activity`.

#![allow(dead_code)] // each test file uses a part of it

use std::time::{Duration, Instant};

use ctx_core::Context;
use ctx_postgres::{Client, Connection};
use tokio_postgres::Config;

/// A hard bound for what should take milliseconds, safe on a loaded CI machine.
pub(crate) const HARD_BOUND: Duration = Duration::from_secs(1);

pub(crate) fn database_url() -> Option<String> {
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

pub(crate) fn config(url: &str, app: &str) -> Config {
    let mut config: Config = url.parse().expect("DATABASE_URL is not a valid URL");
    config.application_name(app);
    config
}

pub(crate) async fn connect(url: &str, app: &str) -> Client {
    Client::connect(
        &Context::background(),
        &config(url, app),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap_or_else(|e| panic!("cannot connect to DATABASE_URL: {e}"))
}

/// Queries of `app` that the server is running now (the observer's own is not one of them).
pub(crate) async fn active<C: Connection>(observer: &Client<C>, app: &str) -> i64 {
    observer
        .query_one(
            &Context::background(),
            "SELECT count(*) FROM pg_stat_activity
             WHERE application_name = $1 AND state <> 'idle' AND pid <> pg_backend_pid()",
            &[&app],
        )
        .await
        .unwrap()
        .get(0)
}

/// Waits (at most 1 s) until `app` has no query running; returns how long that took.
pub(crate) async fn until_quiet<C: Connection>(observer: &Client<C>, app: &str) -> Duration {
    let start = Instant::now();
    loop {
        let n = active(observer, app).await;
        if n == 0 {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < HARD_BOUND,
            "{n} queries of {app} still running on the server after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(crate) async fn album_count<C: Connection>(client: &Client<C>) -> i64 {
    client
        .query_one(
            &Context::background(),
            "SELECT count(*) FROM ctx_album",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Waits until `app` has a query running.
pub(crate) async fn until_running<C: Connection>(observer: &Client<C>, app: &str) {
    let start = Instant::now();
    while active(observer, app).await == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the query never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub(crate) async fn select_int<C: Connection>(client: &Client<C>, n: i32) -> i32 {
    client
        .query_one(&Context::background(), "SELECT $1::int4", &[&n])
        .await
        .unwrap()
        .get(0)
}
