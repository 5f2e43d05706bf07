// The tests every database runs, included by `postgres.rs`, `mysql.rs` and `sqlite.rs`. Each
// of them defines, for its database:
//
// - `type Db`, the sqlx database;
// - `async fn server() -> Option<Server>`: a pool factory on the test server (`None`: skipped);
// - `fn slow(marker) -> String`: a statement that runs for minutes, recognisable by `marker`;
// - `fn short(marker) -> String`: one that runs for a few milliseconds and returns its one
//   parameter (an `i64`), recognisable by `marker`;
// - `ECHO`: a statement returning its one parameter (an `i64`);
// - `async fn running(&Server, marker) -> i64`: how many statements containing `marker` the
//   server is executing now;
// - `fn create_table(name)`, `fn insert(name)` (one `i64` parameter);
// - `SESSION_ID`: a statement returning the session's id on the server (`None`: SQLite), and
//   `fn kill_session(id)`, one that ends that session from another connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ctx_core::{Context, Error as CtxError};
use ctx_sqlx::{Error, Pool};
use sqlx::{AssertSqlSafe, Row};

/// A hard bound for what should take milliseconds, safe on a loaded CI machine.
const HARD_BOUND: Duration = Duration::from_secs(1);

static MARKERS: AtomicUsize = AtomicUsize::new(0);

/// A name no other statement of this run contains.
fn marker(test: &str) -> String {
    format!(
        "ctx_{}_{}_{}",
        test,
        std::process::id(),
        MARKERS.fetch_add(1, Ordering::Relaxed)
    )
}

async fn echo(pool: &Pool<Db>, ctx: &Context, n: i64) -> Result<i64, Error> {
    let row = pool.fetch_one(ctx, sqlx::query(ECHO).bind(n)).await?;
    Ok(row.get::<i64, _>(0))
}

async fn count(pool: &sqlx::Pool<Db>, table: &str) -> i64 {
    let row = sqlx::query(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(pool)
        .await
        .unwrap();
    row.get::<i64, _>(0)
}

/// Waits (at most 1 s) until the server runs nothing containing `marker`; returns how long.
async fn until_quiet(server: &Server, marker: &str) -> Duration {
    let start = Instant::now();
    loop {
        let n = running(server, marker).await;
        if n == 0 {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < HARD_BOUND,
            "{n} statements of {marker} still running in the server after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until the server runs a statement containing `marker` (SQLite: a moment).
async fn until_running(server: &Server, marker: &str) {
    let start = Instant::now();
    if !OBSERVABLE {
        tokio::time::sleep(Duration::from_millis(50)).await;
        return;
    }
    while running(server, marker).await == 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "the statement never started");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_query_is_stopped_in_the_server_when_the_context_ends() {
    let Some(server) = server().await else { return };
    let pool = Pool::new(server.pool(1).await);

    // A deadline.
    let m = marker("deadline");
    let (ctx, _h) = Context::background().with_timeout(Duration::from_millis(200));
    let start = Instant::now();
    let err = pool
        .execute(&ctx, sqlx::query(AssertSqlSafe(slow(&m))))
        .await
        .unwrap_err();
    let returned = start.elapsed();
    assert_eq!(err.context_err(), Some(CtxError::DeadlineExceeded), "{err}");
    assert_eq!(err.to_string(), "query canceled: context deadline exceeded");
    assert!(returned < Duration::from_millis(200) + HARD_BOUND, "returned after {returned:?}");
    // The call returns once the server has stopped the statement.
    assert_eq!(running(&server, &m).await, 0, "still running after the call returned");

    // A cancel with a cause, measured from the cancel.
    let mut latencies = Vec::new();
    for round in 0..3 {
        let m = marker("cancel");
        let (ctx, handle) = Context::background().with_cancel();
        let query = pool.execute(&ctx, sqlx::query(AssertSqlSafe(slow(&m))));
        let cancel = async {
            until_running(&server, &m).await;
            let at = Instant::now();
            handle.cancel_with_cause("client went away");
            at
        };
        let (result, at) = tokio::join!(query, cancel);
        let latency = at.elapsed();
        let err = result.unwrap_err();
        assert_eq!(err.context_err(), Some(CtxError::Canceled));
        let stopped = err.context_error().expect("a context error");
        assert_eq!(stopped.cause().to_string(), "client went away");
        assert_eq!(
            std::error::Error::source(&err).map(ToString::to_string).as_deref(),
            Some("client went away")
        );
        assert!(latency < HARD_BOUND, "returned {latency:?} after the cancel");
        assert_eq!(running(&server, &m).await, 0, "round {round}");
        latencies.push(latency);
        // The one connection of the pool is clean and serves the next query.
        assert_eq!(echo(&pool, &Context::background(), round).await.unwrap(), round);
    }
    println!("{NAME}: 200 ms deadline -> returned after {returned:?}; cancel -> returned (server done) after {latencies:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_call_still_stops_the_query() {
    let Some(server) = server().await else { return };
    let pool = Pool::new(server.pool(1).await);
    let m = marker("dropped");
    let task = tokio::spawn({
        let pool = pool.clone();
        let sql = slow(&m);
        async move {
            pool.execute(&Context::background(), sqlx::query(AssertSqlSafe(sql)))
                .await
        }
    });
    until_running(&server, &m).await;
    let dropped = Instant::now();
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    let quiet = until_quiet(&server, &m).await;
    // The connection comes back clean (or a new one is opened): the pool serves at once.
    let ctx_bound = Context::background().with_timeout(HARD_BOUND);
    assert_eq!(echo(&pool, &ctx_bound.0, 9).await.unwrap(), 9);
    println!(
        "{NAME}: dropped call -> server quiet after {quiet:?}, pool serving again after {:?}",
        dropped.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_context_takes_no_connection_and_sends_nothing() {
    let Some(server) = server().await else { return };
    let sqlx_pool = server.lazy_pool(2);
    let pool = Pool::new(sqlx_pool.clone());
    let (ctx, handle) = Context::background().with_cancel();
    handle.cancel();
    let err = echo(&pool, &ctx, 1).await.unwrap_err();
    assert_eq!(err.context_err(), Some(CtxError::Canceled));
    let (ctx, _h) = Context::background().with_timeout(Duration::ZERO);
    let err = pool.acquire(&ctx).await.unwrap_err();
    assert_eq!(err.context_err(), Some(CtxError::DeadlineExceeded));
    assert_eq!(sqlx_pool.size(), 0, "a connection was opened for an ended context");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_while_the_context_is_live_is_sqlx() {
    let Some(server) = server().await else { return };
    let pool = Pool::new(server.pool(1).await);
    let err = pool
        .execute(&Context::background(), sqlx::query("SELECT * FROM no_such_table"))
        .await
        .unwrap_err();
    assert_eq!(err.context_err(), None);
    assert!(err.context_error().is_none());
    assert!(matches!(err, Error::Sqlx(_)), "{err:?}");
    assert_eq!(echo(&pool, &Context::background(), 4).await.unwrap(), 4);
}

/// Pool exhausted, then a deadline: the wait ends exactly at the deadline (paused clock).
#[tokio::test]
async fn an_exhausted_pool_waits_until_the_deadline_and_no_longer() {
    let Some(server) = server().await else { return };
    let pool = Pool::new(server.pool(1).await);
    let held = pool.acquire(&Context::background()).await.unwrap();

    tokio::time::pause();
    let start = tokio::time::Instant::now();
    let (ctx, _h) = Context::background().with_timeout(Duration::from_millis(250));
    let err = echo(&pool, &ctx, 1).await.unwrap_err();
    assert_eq!(err.context_err(), Some(CtxError::DeadlineExceeded));
    // At the deadline: tokio's timers tick in whole milliseconds.
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited <= Duration::from_millis(251),
        "waited {waited:?}"
    );
    // An ended context fails at once, exhausted or not.
    let err = pool.acquire(&ctx).await.unwrap_err();
    assert_eq!(err.context_err(), Some(CtxError::DeadlineExceeded));
    assert_eq!(start.elapsed(), waited);
    tokio::time::resume();

    drop(held);
    assert_eq!(echo(&pool, &Context::background(), 2).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_cancelled_between_two_writes_leaves_neither() {
    let Some(server) = server().await else { return };
    let sqlx_pool = server.pool(1).await;
    let observer = server.pool(1).await;
    let pool = Pool::new(sqlx_pool.clone());
    let table = marker("tx");
    sqlx::query(AssertSqlSafe(create_table(&table)))
        .execute(&sqlx_pool)
        .await
        .unwrap();

    let m = marker("tx_slow");
    let (ctx, _h) = Context::background().with_timeout(Duration::from_millis(300));
    let (insert_sql, slow_sql) = (insert(&table), slow(&m));
    let err = pool
        .transaction(&ctx, move |tx| {
            Box::pin(async move {
                sqlx::query(AssertSqlSafe(insert_sql.clone())).bind(1_i64).execute(&mut **tx).await?;
                sqlx::query(AssertSqlSafe(slow_sql.clone())).execute(&mut **tx).await?;
                sqlx::query(AssertSqlSafe(insert_sql.clone())).bind(2_i64).execute(&mut **tx).await?;
                Ok(())
            })
        })
        .await
        .unwrap_err();
    assert_eq!(err.context_err(), Some(CtxError::DeadlineExceeded), "{err}");
    assert_eq!(running(&server, &m).await, 0);
    assert_eq!(count(&observer, &table).await, 0, "a cancelled transaction was half-applied");
    // The pool's one connection is out of the transaction: a write now is visible elsewhere.
    pool.execute(&Context::background(), sqlx::query(AssertSqlSafe(insert(&table))).bind(3_i64))
        .await
        .unwrap();
    assert_eq!(count(&observer, &table).await, 1, "autocommit is not back");
    assert_eq!(count(&sqlx_pool, &table).await, 1);
    sqlx::query(AssertSqlSafe(format!("DROP TABLE {table}")))
        .execute(&sqlx_pool)
        .await
        .unwrap();
}

/// Contexts cancelled (from another thread) around the moment a short query completes, on a
/// pool of one connection: a late stop must never reach the next query on that connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_cancels_never_reach_a_later_query() {
    let Some(server) = server().await else { return };
    let pool = Pool::new(server.pool(1).await);
    let m = marker("race");
    let (mut completed, mut cancelled) = (0, 0);
    let mut seed = 0x2545_F491_4F6C_DD1D_u64;
    let start = Instant::now();
    for i in 0..RACES {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let (ctx, handle) = Context::background().with_cancel();
        // A thread of its own, so that the cancel comes at its time even while the stop of an
        // earlier one is still being cleaned up.
        let delay = Duration::from_micros(seed % 3000);
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(delay);
            handle.cancel();
        });
        match pool.fetch_one(&ctx, sqlx::query(AssertSqlSafe(short(&m))).bind(i)).await {
            Ok(row) => {
                assert_eq!(row.get::<i64, _>(0), i);
                completed += 1;
            }
            Err(Error::Context(_)) => cancelled += 1,
            Err(e) => panic!("a cancellable query failed with another error: {e}"),
        }
        let n = echo(&pool, &Context::background(), i)
            .await
            .unwrap_or_else(|e| panic!("a query nobody cancelled failed after race {i}: {e}"));
        assert_eq!(n, i);
        canceller.join().unwrap();
    }
    assert_eq!(until_quiet(&server, &m).await.as_secs(), 0);
    println!(
        "{NAME}: {RACES} racing cancels in {:?}: {completed} completed, {cancelled} cancelled, no later query hit",
        start.elapsed()
    );
}

/// 200 concurrent queries over a pool of 10 connections, half of them cancelled while they run:
/// every other one is right, nothing is left running, and the pool then serves 1,000 queries
/// without an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_queries_half_cancelled_then_a_thousand_clean_ones() {
    let Some(server) = server().await else { return };
    let pool = Pool::new(server.pool(10).await);
    let m = marker("burst");
    // (Also opens the observer's connection now, not in the measurement below.)
    assert_eq!(running(&server, &m).await, 0);
    let mid_query = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..200_i64 {
        let pool = pool.clone();
        let mid_query = mid_query.clone();
        let (short_sql, slow_sql) = (short(&m), slow(&m));
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                let row = pool
                    .fetch_one(&Context::background(), sqlx::query(AssertSqlSafe(short_sql.clone())).bind(i))
                    .await
                    .unwrap_or_else(|e| panic!("query {i} failed: {e}"));
                assert_eq!(row.get::<i64, _>(0), i, "query {i}");
                None
            } else {
                let (ctx, handle) = Context::background().with_cancel();
                let cancel = async {
                    let pause = 5 + i.unsigned_abs() % 30;
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    mid_query.fetch_add(1, Ordering::Relaxed);
                    handle.cancel();
                };
                let (result, ()) = tokio::join!(pool.execute(&ctx, sqlx::query(AssertSqlSafe(slow_sql))), cancel);
                let err = result.expect_err("a slow statement completed");
                Some(err.context_err().expect("not a context error"))
            }
        }));
    }
    let mut cancelled = 0;
    for task in tasks {
        if let Some(err) = task.await.unwrap() {
            assert_eq!(err, CtxError::Canceled);
            cancelled += 1;
        }
    }
    assert_eq!(cancelled, 100);
    let quiet = until_quiet(&server, &m).await;
    let start = Instant::now();
    let bg = Context::background();
    for i in 0..1000 {
        assert_eq!(
            echo(&pool, &bg, i)
                .await
                .unwrap_or_else(|e| panic!("clean query {i} after the burst failed: {e}")),
            i
        );
    }
    println!(
        "{NAME}: 100 cancelled, 100 correct; server quiet {quiet:?} after; then 1000 clean queries in {:?}",
        start.elapsed()
    );
}

/// The server ends the session of the pool's one connection while it is idle: the next calls
/// get a clear sqlx error at worst, never a context error or a hang, and the pool recovers by
/// itself with a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_killed_by_the_server_is_replaced() {
    let Some(server) = server().await else { return };
    let Some(session) = SESSION_ID else { return };
    let sqlx_pool = server.pool(1).await;
    let observer = server.pool(1).await;
    let pool = Pool::new(sqlx_pool.clone());
    let id: i64 = sqlx::query_scalar(session)
        .fetch_one(&sqlx_pool)
        .await
        .unwrap();
    sqlx::query(AssertSqlSafe(kill_session(id)))
        .execute(&observer)
        .await
        .unwrap();
    let (ctx, _h) = Context::background().with_timeout(Duration::from_secs(10));
    let mut answered = None;
    for attempt in 0..3 {
        match echo(&pool, &ctx, attempt).await {
            Ok(n) => {
                assert_eq!(n, attempt);
                answered = Some(attempt);
                break;
            }
            Err(e) => assert!(e.context_err().is_none(), "a context error: {e}"),
        }
    }
    assert!(answered.is_some(), "the pool did not recover");
    let new_id: i64 = sqlx::query_scalar(session)
        .fetch_one(&sqlx_pool)
        .await
        .unwrap();
    assert_ne!(new_id, id, "the killed session is still in use");
}

/// A server nobody answers on, and a wrong password: a clear sqlx error within the pool's
/// acquire timeout, never a context error (the context did not end), a panic or a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_or_a_wrong_password_is_a_clear_error() {
    let Some(server) = server().await else { return };
    let Some((unreachable, wrong_password)) = server.bad_options() else { return };
    for (what, options) in [("unreachable", unreachable), ("wrong password", wrong_password)] {
        let pool = Pool::new(
            sqlx::pool::PoolOptions::<Db>::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_millis(500))
                .connect_lazy_with(options),
        );
        let start = Instant::now();
        let err = echo(&pool, &Context::background(), 1).await.unwrap_err();
        assert!(matches!(err, Error::Sqlx(_)), "{what}: {err:?}");
        assert!(start.elapsed() < Duration::from_secs(5), "{what}: took {:?}", start.elapsed());
        println!("{NAME}: {what}: {err}");
    }
}

/// `Pool::new` takes an idle connection without sqlx's ping (the statement that learns its
/// session tests it instead), so a `before_acquire` hook of the pool does not run for its calls;
/// `Pool::with_sqlx_acquire` takes every connection through sqlx's acquire, hook included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_before_acquire_hook_runs_only_with_sqlx_acquire() {
    let Some(server) = server().await else { return };
    for (through_sqlx, expected) in [(false, 0), (true, 5)] {
        let hooks = Arc::new(AtomicUsize::new(0));
        let seen = hooks.clone();
        let sqlx_pool = sqlx::pool::PoolOptions::<Db>::new()
            .max_connections(1)
            .before_acquire(move |_, _| {
                seen.fetch_add(1, Ordering::Relaxed);
                Box::pin(async { Ok(true) })
            })
            .connect_with(server.options.clone())
            .await
            .unwrap();
        let pool = if through_sqlx {
            Pool::with_sqlx_acquire(sqlx_pool.clone())
        } else {
            Pool::new(sqlx_pool.clone())
        };
        for i in 0..5 {
            // The one connection is idle (sqlx gives a connection back from a task of its own).
            let start = Instant::now();
            while sqlx_pool.num_idle() == 0 {
                assert!(start.elapsed() < Duration::from_secs(10), "the connection never came back");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            assert_eq!(echo(&pool, &Context::background(), i).await.unwrap(), i);
        }
        assert_eq!(hooks.load(Ordering::Relaxed), expected, "through sqlx's acquire: {through_sqlx}");
    }
}

const STOPPED: &str = "query stopped in the server";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_query_is_recorded_in_the_callers_span() {
    use tracing::Instrument;
    let Some(server) = server().await else { return };
    let pool = Pool::new(server.pool(1).await);
    let (events, _guard) = ctx_test_server::capture::capture();
    let m = marker("event");
    let (ctx, handle) = Context::background().with_cancel();
    let query = pool
        .execute(&ctx, sqlx::query(AssertSqlSafe(slow(&m))))
        .instrument(tracing::info_span!("request"));
    let cancel = async {
        until_running(&server, &m).await;
        let line = line!() + 1; // the next line
        handle.cancel_with_cause("client went away");
        line
    };
    let (result, line) = tokio::join!(query, cancel);
    assert_eq!(result.unwrap_err().context_err(), Some(CtxError::Canceled));

    let event = events.one(STOPPED);
    assert_eq!(event.level, tracing::Level::DEBUG);
    assert_eq!(event.target, "ctx_sqlx");
    assert_eq!(event.span.as_deref(), Some("request"));
    assert_eq!(event.names(), ["cause", "connection", "origin", "stop_ms"]);
    assert_eq!(event.str("cause"), "client went away");
    let origin = event.str("origin");
    assert!(origin.starts_with(&format!("{}:{line}:", file!())), "{origin}");
    assert!(event.f64("stop_ms") >= 0.0);
    assert_eq!(event.str("connection"), "reused");
    // The connection serves the next query, which records nothing.
    assert_eq!(echo(&pool, &Context::background(), 5).await.unwrap(), 5);
    assert_eq!(events.from("ctx_sqlx").len(), 1, "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_call_is_recorded_by_the_task_that_stops_it() {
    use tracing::Instrument;
    let Some(server) = server().await else { return };
    let pool = Pool::new(server.pool(1).await);
    let (events, _guard) = ctx_test_server::capture::capture();
    let m = marker("dropped_event");
    {
        let background = Context::background();
        let sql = slow(&m);
        let query = pool.execute(&background, sqlx::query(AssertSqlSafe(sql)));
        let mut query = Box::pin(query.instrument(tracing::info_span!("request")));
        let running = async {
            until_running(&server, &m).await;
            // Still running a moment later: the call is in the server.
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        tokio::select! {
            _ = &mut query => panic!("the slow query completed"),
            _ = running => {}
        }
    }
    // The pool's one connection comes back once the clean-up has stopped the query and
    // recorded it.
    let bound = Context::background().with_timeout(Duration::from_secs(5));
    assert_eq!(echo(&pool, &bound.0, 6).await.unwrap(), 6);
    let event = events.one(STOPPED);
    assert_eq!(event.span.as_deref(), Some("request"));
    assert_eq!(event.str("cause"), "the query was dropped");
    assert!(event.f64("stop_ms") >= 0.0);
    assert_eq!(event.str("connection"), "reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_that_completes_or_is_never_sent_records_nothing() {
    let Some(server) = server().await else { return };
    let pool = Pool::new(server.pool(1).await);
    let (events, _guard) = ctx_test_server::capture::capture();
    assert_eq!(echo(&pool, &Context::background(), 7).await.unwrap(), 7);
    let (ended, handle) = Context::background().with_cancel();
    handle.cancel();
    let m = marker("never_sent");
    let err = pool
        .execute(&ended, sqlx::query(AssertSqlSafe(slow(&m))))
        .await
        .unwrap_err();
    assert_eq!(err.context_err(), Some(CtxError::Canceled));
    assert!(events.from("ctx_sqlx").is_empty(), "{events:?}");
}
