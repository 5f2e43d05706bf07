//! A `pg_sleep(30)` stopped on the server: the context's deadline sends PostgreSQL a cancel
//! request, and the call returns once the server has stopped the query.
//!
//! Needs a server: `DATABASE_URL=postgres://user:pass@127.0.0.1/db cargo run -p ctx-postgres
//! --example server_cancel`.

use std::time::Duration;

use ctx_core::Context;
use ctx_postgres::{Client, Error};
use tokio::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!(
            "set DATABASE_URL to a PostgreSQL server, e.g. postgres://user:pass@127.0.0.1/db"
        );
        std::process::exit(2);
    };
    let config = url.parse()?;
    let ctx = Context::background();
    let client = Client::connect(&ctx, &config, tokio_postgres::NoTls).await?;

    let (ctx, _cancel) = ctx.with_timeout(Duration::from_millis(200));
    let start = Instant::now();
    let err: Error = client
        .execute(&ctx, "SELECT pg_sleep(30)", &[])
        .await
        .unwrap_err();
    println!("200 ms deadline: `{err}` after {:?}", start.elapsed());

    // Nothing of it is left running on the server.
    let running: i64 = client
        .query_one(
            &Context::background(),
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT pg_sleep(30)%'",
            &[],
        )
        .await?
        .get(0);
    println!("queries still running on the server: {running}");
    Ok(())
}
