//! `SELECT 1` through ctx-sqlx against plain sqlx, on the same pool, side by side.
//!
//! ```text
//! cargo bench -p ctx-sqlx --bench select_one                                 # SQLite only
//! DATABASE_URL=postgres://... MYSQL_URL=mysql://... cargo bench -p ctx-sqlx --bench select_one
//! ```
//!
//! One JSON object per line, as `ctx-core`'s comparison benchmark prints them: `name` is the
//! database, `impl` one of `sqlx` (`sqlx::query("SELECT 1").fetch_one(&pool)`), `ctx-sqlx`
//! (`pool.fetch_one(&ctx, ...)` under a context that can be cancelled and has a deadline, as a
//! request's has), `ctx-sqlx/background` (under `Context::background()`) and
//! `ctx-sqlx/sqlx-acquire` (as `ctx-sqlx`, on a `Pool::with_sqlx_acquire`: sqlx's ping, then the
//! statement that names the connection); `extra.ratio` is `ns_per_op` over plain sqlx's. Each
//! is the median of 7 rounds of `N` sequential queries, the four interleaved round by round so
//! that drift in the server hits them alike.

use std::time::{Duration, Instant};

use ctx_core::Context;
use ctx_sqlx::Pool;

const ROUNDS: usize = 7;

/// The same measurement for each database (a macro, so that each expansion is plain code on
/// one concrete sqlx database).
macro_rules! bench {
    ($name:expr, $pool:expr, $n:expr) => {{
        let (name, sqlx_pool, n): (&str, _, usize) = ($name, $pool, $n);
        let pool = Pool::new(sqlx_pool.clone());
        let through_sqlx = Pool::with_sqlx_acquire(sqlx_pool.clone());
        let bg = Context::background();
        let (request, _cancel) = bg.with_timeout(Duration::from_secs(3600));
        // Warm up: connections open, statements prepared, side connection open.
        for _ in 0..200 {
            sqlx::query("SELECT 1").fetch_one(&sqlx_pool).await.unwrap();
            pool.fetch_one(&request, sqlx::query("SELECT 1")).await.unwrap();
            through_sqlx.fetch_one(&request, sqlx::query("SELECT 1")).await.unwrap();
        }
        let mut times: [Vec<f64>; 4] = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
        for _ in 0..ROUNDS {
            let start = Instant::now();
            for _ in 0..n {
                sqlx::query("SELECT 1").fetch_one(&sqlx_pool).await.unwrap();
            }
            times[0].push(per_op(start.elapsed(), n));
            let start = Instant::now();
            for _ in 0..n {
                pool.fetch_one(&request, sqlx::query("SELECT 1")).await.unwrap();
            }
            times[1].push(per_op(start.elapsed(), n));
            let start = Instant::now();
            for _ in 0..n {
                pool.fetch_one(&bg, sqlx::query("SELECT 1")).await.unwrap();
            }
            times[2].push(per_op(start.elapsed(), n));
            let start = Instant::now();
            for _ in 0..n {
                through_sqlx.fetch_one(&request, sqlx::query("SELECT 1")).await.unwrap();
            }
            times[3].push(per_op(start.elapsed(), n));
        }
        let base = median(&mut times[0]);
        for (imp, t) in ["sqlx", "ctx-sqlx", "ctx-sqlx/background", "ctx-sqlx/sqlx-acquire"].iter().zip(&mut times) {
            let ns = median(t);
            println!(
                "{{\"name\":\"select_one/{name}\",\"impl\":\"{imp}\",\"ns_per_op\":{ns:.0},\"bytes_per_op\":0,\"allocs_per_op\":0,\"iterations\":{},\"method\":\"loop\",\"extra\":{{\"ratio\":{:.3}}},\"note\":\"median of {ROUNDS} rounds of {n} sequential queries, same pool\"}}",
                n * ROUNDS,
                ns / base
            );
        }
    }};
}

fn per_op(elapsed: Duration, n: usize) -> f64 {
    elapsed.as_secs_f64() * 1e9 / n as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo test --benches` runs this with `--bench`-less arguments; one quick pass then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let n = if quick { 20 } else { 2000 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sqlite = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        bench!("sqlite", sqlite, n);
        match std::env::var("DATABASE_URL") {
            Ok(url) if url.starts_with("postgres") => {
                let pg = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(4)
                    .connect(&url)
                    .await
                    .unwrap();
                bench!("postgres", pg, n);
            }
            _ => eprintln!("postgres: skipped (DATABASE_URL not set)"),
        }
        match std::env::var("MYSQL_URL") {
            Ok(url) if !url.is_empty() => {
                let my = sqlx::mysql::MySqlPoolOptions::new()
                    .max_connections(4)
                    .connect(&url)
                    .await
                    .unwrap();
                bench!("mysql", my, n);
            }
            _ => eprintln!("mysql: skipped (MYSQL_URL not set)"),
        }
    });
}
