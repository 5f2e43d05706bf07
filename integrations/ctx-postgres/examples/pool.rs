//! A deadpool-postgres pool under contexts: a borrow bounded by a deadline while the pool is
//! busy, a query cancelled on the server, and the connection back in the pool, clean.
//!
//! Needs a server: `DATABASE_URL=postgres://user:pass@127.0.0.1/db cargo run -p ctx-postgres
//! --features deadpool --example pool`.

use std::time::Duration;

use ctx_core::Context;
use ctx_postgres::Pool;
use tokio::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!(
            "set DATABASE_URL to a PostgreSQL server, e.g. postgres://user:pass@127.0.0.1/db"
        );
        std::process::exit(2);
    };
    let pool = Pool::new(url.parse()?, tokio_postgres::NoTls, 1).await;

    // 1. A query cancelled on the server by its deadline.
    let client = pool.get(&Context::background()).await?;
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(200));
    let start = Instant::now();
    let err = client
        .execute(&ctx, "SELECT pg_sleep(30)", &[])
        .await
        .unwrap_err();
    println!(
        "query: `{err}` after {:?}; clean: {}",
        start.elapsed(),
        client.is_clean()
    );

    // 2. The only connection is busy: the borrow waits no longer than its context.
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(100));
    let start = Instant::now();
    let err = pool.get(&ctx).await.unwrap_err();
    println!("borrow while busy: `{err}` after {:?}", start.elapsed());

    // 3. Back in the pool, ready.
    drop(client);
    let client = pool.get(&Context::background()).await?;
    let one: i32 = client
        .query_one(&Context::background(), "SELECT 1", &[])
        .await?
        .get(0);
    println!(
        "next borrow: SELECT 1 = {one}; pool: {:?}",
        pool.deadpool().status()
    );
    Ok(())
}
