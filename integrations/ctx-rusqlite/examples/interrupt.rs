//! A query that would run for minutes, stopped inside SQLite: once by a deadline, once by a
//! cancel from another task, and the connection answers the next query at once.
//!
//! Run it with `cargo run -p ctx-rusqlite --example interrupt`.

use std::time::Duration;

use ctx_core::Context;
use ctx_rusqlite::{Db, Error};
use tokio::time::Instant;

/// Counts to a billion: minutes of work inside SQLite.
const BILLION: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000)
     SELECT count(*) FROM c";

async fn count(ctx: &Context, db: &Db) -> Result<i64, Error> {
    db.call(ctx, |conn| conn.query_row(BILLION, [], |row| row.get(0)))
        .await
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let db = Db::open_in_memory()?;

    // 1. A 100 ms deadline.
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(100));
    let start = Instant::now();
    let err = count(&ctx, &db).await.unwrap_err();
    println!("100 ms deadline: `{err}` after {:?}", start.elapsed());

    // 2. A cancel from another task, 50 ms in.
    let (ctx, handle) = Context::background().with_cancel();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let at = Instant::now();
        handle.cancel_with_cause("the client went away");
        at
    });
    let err = count(&ctx, &db).await.unwrap_err();
    let cancelled_at = canceller.await.expect("the canceller ran");
    let cause = err.context_error().expect("a context error").cause();
    println!(
        "cancel: `{err}` ({cause}), {:?} after the cancel",
        cancelled_at.elapsed()
    );

    // 3. The connection is ready for the next query.
    let start = Instant::now();
    let one: i64 = db
        .call(&Context::background(), |conn| {
            conn.query_row("SELECT 1", [], |row| row.get(0))
        })
        .await?;
    println!("next query: {one} in {:?}", start.elapsed());
    Ok(())
}
