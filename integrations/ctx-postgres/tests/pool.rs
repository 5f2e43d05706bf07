//! `ctx_postgres::Pool` (deadpool-postgres): borrowing bounded by the context, queries
//! cancelled on the server, and connections returned to the pool only when clean. Needs
//! `DATABASE_URL` (see `tests/support`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ctx_core::{Context, Error as CtxError};
use ctx_postgres::{Error, Pool};

mod support;
use support::*;

async fn pool(url: &str, app: &str, size: usize) -> Pool {
    Pool::new(config(url, app), tokio_postgres::NoTls, size).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_connection_ends_with_the_context() {
    let Some(url) = database_url() else { return };
    let pool = pool(&url, "ctx-test-pool-wait", 1).await;
    let held = pool.get(&Context::background()).await.unwrap();

    let (ctx, _h) = Context::background().with_timeout(Duration::from_millis(100));
    let err = pool.get(&ctx).await.unwrap_err();
    assert_eq!(err.context_err(), Some(CtxError::DeadlineExceeded));
    assert!(matches!(err, Error::PoolWait(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "no connection from the pool: context deadline exceeded"
    );

    let (ended, handle) = Context::background().with_cancel();
    handle.cancel_with_cause("client went away");
    let err = pool.get(&ended).await.unwrap_err();
    assert_eq!(err.context_err(), Some(CtxError::Canceled));
    assert_eq!(
        err.context_error().unwrap().cause().to_string(),
        "client went away"
    );

    drop(held);
    let again = pool.get(&Context::background()).await.unwrap();
    assert_eq!(select_int(&again, 1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_query_stops_on_the_server_and_its_connection_goes_back_clean() {
    let Some(url) = database_url() else { return };
    let app = "ctx-test-pool-cancel";
    let pool = pool(&url, app, 2).await;
    let observer = connect(&url, "ctx-test-pool-cancel-observer").await;

    let client = pool.get(&Context::background()).await.unwrap();
    let (ctx, _h) = Context::background().with_timeout(Duration::from_millis(100));
    let err = client
        .query(&ctx, "SELECT pg_sleep(30)", &[])
        .await
        .unwrap_err();
    assert_eq!(err.context_err(), Some(CtxError::DeadlineExceeded));
    assert_eq!(active(&observer, app).await, 0, "stopped on the server");
    assert!(client.is_clean());
    drop(client);

    let status = pool.deadpool().status();
    assert_eq!((status.size, status.available), (1, 1), "{status:?}");
    let again = pool.get(&Context::background()).await.unwrap();
    assert_eq!(select_int(&again, 2).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_dropped_in_flight_closes_its_connection_and_still_stops() {
    let Some(url) = database_url() else { return };
    let app = "ctx-test-pool-dropped";
    let pool = pool(&url, app, 2).await;
    let observer = connect(&url, "ctx-test-pool-dropped-observer").await;

    let task = tokio::spawn({
        let pool = pool.clone();
        async move {
            let client = pool.get(&Context::background()).await.unwrap();
            client
                .query(&Context::background(), "SELECT pg_sleep(30)", &[])
                .await
        }
    });
    until_running(&observer, app).await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());

    // The connection left the pool instead of going back with our cancel on its way...
    assert_eq!(pool.deadpool().status().size, 0);
    // ...and the query still stopped on the server.
    until_quiet(&observer, app).await;
    let again = pool.get(&Context::background()).await.unwrap();
    assert_eq!(select_int(&again, 3).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_cancelled_between_two_writes_leaves_neither() {
    let Some(url) = database_url() else { return };
    let pool = pool(&url, "ctx-test-pool-tx", 1).await;
    let mut client = pool.get(&Context::background()).await.unwrap();
    client
        .batch_execute(
            &Context::background(),
            "CREATE TABLE IF NOT EXISTS ctx_pool_tx (n int); TRUNCATE ctx_pool_tx",
        )
        .await
        .unwrap();

    let (ctx, _h) = Context::background().with_timeout(Duration::from_millis(100));
    let err = client
        .run_mut(&ctx, |pg| {
            Box::pin(async move {
                let tx = pg.transaction().await?;
                tx.execute("INSERT INTO ctx_pool_tx VALUES (1)", &[])
                    .await?;
                tx.execute("SELECT pg_sleep(30)", &[]).await?;
                tx.execute("INSERT INTO ctx_pool_tx VALUES (2)", &[])
                    .await?;
                tx.commit().await
            })
        })
        .await
        .unwrap_err();
    assert_eq!(err.context_err(), Some(CtxError::DeadlineExceeded));
    drop(client);

    let client = pool.get(&Context::background()).await.unwrap();
    let rows: i64 = client
        .query_one(
            &Context::background(),
            "SELECT count(*) FROM ctx_pool_tx",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0, "neither write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_requests_half_abandoned_then_a_thousand_clean_queries() {
    let Some(url) = database_url() else { return };
    let app = "ctx-test-pool-load";
    let pool = pool(&url, app, 8).await;
    let observer = connect(&url, "ctx-test-pool-load-observer").await;
    let stopped = Arc::new(AtomicUsize::new(0));

    let mut tasks = Vec::new();
    let mut seed = 0x2545_F491_4F6C_DD1D_u64;
    for i in 0..200_i32 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let abandon = i % 2 == 1;
        let after = Duration::from_micros(seed % 20_000);
        let (pool, stopped) = (pool.clone(), stopped.clone());
        tasks.push(tokio::spawn(async move {
            let (ctx, handle) = Context::background().with_cancel();
            let work = async {
                let client = pool.get(&ctx).await?;
                let row = client
                    .query_one(&ctx, "SELECT $1::int4 FROM pg_sleep(0.005)", &[&i])
                    .await?;
                Ok::<i32, Error>(row.get(0))
            };
            let canceller = async {
                if abandon {
                    tokio::time::sleep(after).await;
                    handle.cancel_with_cause("client hung up");
                }
            };
            let (result, ()) = tokio::join!(work, canceller);
            match result {
                Ok(n) => assert_eq!(n, i),
                Err(err) => {
                    assert_eq!(err.context_err(), Some(CtxError::Canceled), "{err}");
                    stopped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    println!(
        "pool: {} of 200 stopped by their contexts",
        stopped.load(Ordering::Relaxed)
    );
    until_quiet(&observer, app).await;

    for i in 0..1000_i32 {
        let client = pool.get(&Context::background()).await.unwrap();
        assert_eq!(select_int(&client, i).await, i, "query {i}");
    }
}
