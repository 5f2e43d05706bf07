//! How fast ctx-sqlx stops a query in the server, per database.
//!
//! ```text
//! cargo run --release -p ctx-sqlx --example stop                        # SQLite only
//! DATABASE_URL=postgres://... MYSQL_URL=mysql://... cargo run --release -p ctx-sqlx --example stop
//! ```
//!
//! For each database: a statement that would run for a minute, under a 200 ms deadline (when
//! does the call return?), then 20 times cancelled from another task while it runs (how long
//! from the cancel until the call returns, the server having stopped it?), and the next query
//! on the same connection.

use std::time::{Duration, Instant};

use ctx_core::Context;
use ctx_sqlx::Pool;

/// The same measurement for each database (a macro, so that each expansion is plain code on
/// one concrete sqlx database).
macro_rules! measure {
    ($name:expr, $pool:expr, $slow:expr, $quick:expr) => {{
        let (name, pool, slow, quick): (&str, _, &'static str, &'static str) =
            ($name, $pool, $slow, $quick);
        let bg = Context::background();
        // The first call opens the connection (and the side connection that sends stops).
        pool.execute(&bg, sqlx::query(quick)).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;

        let (ctx, _h) = bg.with_timeout(Duration::from_millis(200));
        let start = Instant::now();
        let result = pool.execute(&ctx, sqlx::query(slow)).await;
        let deadline = start.elapsed();
        assert!(result.is_err_and(|e| e.context_err().is_some()));

        let mut stops = Vec::new();
        let mut next = Vec::new();
        for _ in 0..20 {
            let (ctx, handle) = bg.with_cancel();
            let call = tokio::spawn({
                let pool = pool.clone();
                async move {
                    let result = pool.execute(&ctx, sqlx::query(slow)).await;
                    (
                        result.is_err_and(|e| e.context_err().is_some()),
                        Instant::now(),
                    )
                }
            });
            // Long enough for the statement to be running in the server.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let cancelled = Instant::now();
            handle.cancel();
            let (stopped, returned) = call.await?;
            assert!(stopped);
            stops.push(returned - cancelled);
            let start = Instant::now();
            pool.execute(&bg, sqlx::query(quick)).await?;
            next.push(start.elapsed());
        }
        stops.sort();
        next.sort();
        println!(
            "{name}: 200 ms deadline -> returned after {:.1} ms; cancel -> returned (stopped in \
             the server) median {:.2} ms, max {:.2} ms; next query on the connection median \
             {:.2} ms",
            ms(deadline),
            ms(stops[stops.len() / 2]),
            ms(stops[stops.len() - 1]),
            ms(next[next.len() / 2]),
        );
    }};
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sqlite = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await?;
    measure!(
        "sqlite",
        Pool::new(sqlite),
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000000)
         SELECT count(*) FROM c",
        "SELECT 1"
    );

    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => {
            let pg = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await?;
            measure!("postgres", Pool::new(pg), "SELECT pg_sleep(60)", "SELECT 1");
        }
        _ => println!("postgres: skipped (DATABASE_URL not set)"),
    }

    match std::env::var("MYSQL_URL") {
        Ok(url) if !url.is_empty() => {
            let my = sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await?;
            measure!("mysql", Pool::new(my), "SELECT SLEEP(60)", "SELECT 1");
        }
        _ => println!("mysql: skipped (MYSQL_URL not set)"),
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
