//! `ctx_postgres`: queries under a context, cancelled on the server when it ends.
//!
//! These tests need a PostgreSQL server: `DATABASE_URL` (`.ci/run` starts one, see
//! `.ci/postgres`). Without it they print "skipped: DATABASE_URL not set" and pass, unless
//! `CI=true`, where a missing server is a failure.
//!
//! Each test connects with an `application_name` of its own, so that `pg_stat_activity` shows
//! exactly its sessions: "nothing left running" means no active query under that name.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ctx_core::{CancelHandle, Context, Error as CtxError};
use ctx_postgres::{Client, Error};
use tokio::sync::Mutex;
use tokio_postgres::types::ToSql;

mod support;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_cancels_pg_sleep_on_the_server() {
    let Some(url) = database_url() else { return };
    let app = "ctx-test-deadline";
    let client = connect(&url, app).await;
    let observer = connect(&url, "ctx-test-deadline-observer").await;

    let (ctx, _h) = Context::background().with_timeout(Duration::from_millis(200));
    let start = Instant::now();
    let err = client
        .query(&ctx, "SELECT pg_sleep(30)", &[])
        .await
        .unwrap_err();
    let elapsed = start.elapsed();
    assert_eq!(err.context_err(), Some(CtxError::DeadlineExceeded));
    assert_eq!(err.to_string(), "query canceled: context deadline exceeded");
    assert!(
        elapsed < Duration::from_millis(200) + HARD_BOUND,
        "returned after {elapsed:?}"
    );

    let gone = until_quiet(&observer, app).await;
    println!(
        "postgres: 200 ms deadline -> query returned after {elapsed:?}; pg_stat_activity quiet {gone:?} later"
    );
    assert_eq!(select_int(&client, 7).await, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_stops_the_query_and_the_client_stays_usable() {
    let Some(url) = database_url() else { return };
    let app = "ctx-test-cancel";
    let client = connect(&url, app).await;
    let observer = connect(&url, "ctx-test-cancel-observer").await;

    let mut latencies = Vec::new();
    for round in 0..3 {
        let (ctx, handle) = Context::background().with_cancel();
        let query = client.query_one(&ctx, "SELECT pg_sleep(30)", &[]);
        let cancel = async {
            until_running(&observer, app).await;
            let at = Instant::now();
            handle.cancel_with_cause("client went away");
            at
        };
        let (result, cancelled_at) = tokio::join!(query, cancel);
        let latency = cancelled_at.elapsed();
        let err = result.unwrap_err();
        assert_eq!(err.context_err(), Some(CtxError::Canceled));
        let stopped = err.context_error().expect("a context error");
        assert_eq!(stopped.cause().to_string(), "client went away");
        assert!(
            latency < HARD_BOUND,
            "returned {latency:?} after the cancel"
        );
        latencies.push(latency);
        // `run` returns once the server has stopped the query: nothing is running any more.
        assert_eq!(active(&observer, app).await, 0, "round {round}");
        assert_eq!(select_int(&client, round).await, round);
    }
    println!("postgres: cancel -> query returned (server done): {latencies:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_context_sends_nothing() {
    let Some(url) = database_url() else { return };
    let client = connect(&url, "ctx-test-ended").await;
    let bg = Context::background();
    client
        .batch_execute(&bg, "CREATE TEMP TABLE hit (x int)")
        .await
        .unwrap();

    let (ctx, handle) = bg.with_cancel();
    handle.cancel();
    let err = client
        .execute(&ctx, "INSERT INTO hit VALUES (1)", &[])
        .await
        .unwrap_err();
    assert_eq!(err.context_err(), Some(CtxError::Canceled));
    let (ctx, _h) = bg.with_timeout(Duration::ZERO);
    let err = client
        .batch_execute(&ctx, "INSERT INTO hit VALUES (2)")
        .await
        .unwrap_err();
    assert_eq!(err.context_err(), Some(CtxError::DeadlineExceeded));

    let n: i64 = client
        .query_one(&bg, "SELECT count(*) FROM hit", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "a query ran under an ended context");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_while_the_context_is_live_is_postgres() {
    let Some(url) = database_url() else { return };
    let client = connect(&url, "ctx-test-error").await;
    let err = client
        .query(&Context::background(), "SELECT FROM nowhere", &[])
        .await
        .unwrap_err();
    assert_eq!(err.context_err(), None);
    assert!(matches!(err, Error::Postgres(_)), "{err:?}");
    assert_eq!(select_int(&client, 1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_transaction_is_rolled_back() {
    let Some(url) = database_url() else { return };
    let app = "ctx-test-transaction";
    let mut client = connect(&url, app).await;
    let observer = connect(&url, "ctx-test-transaction-observer").await;
    let bg = Context::background();
    client
        .batch_execute(
            &bg,
            "DROP TABLE IF EXISTS ctx_album; CREATE TABLE ctx_album (id serial, title text)",
        )
        .await
        .unwrap();

    let (ctx, _h) = bg.with_timeout(Duration::from_millis(300));
    let err = client
        .run_mut(&ctx, |pg| {
            Box::pin(async move {
                let tx = pg.transaction().await?;
                for title in ["Kind of Blue", "Blue Train", "Mingus Ah Um"] {
                    tx.execute("INSERT INTO ctx_album (title) VALUES ($1)", &[&title])
                        .await?;
                }
                tx.batch_execute("SELECT pg_sleep(30)").await?;
                tx.commit().await
            })
        })
        .await
        .unwrap_err();
    assert_eq!(err.context_err(), Some(CtxError::DeadlineExceeded));
    assert_eq!(active(&observer, app).await, 0);

    // None of the writes is visible, from this connection or another one, and the connection
    // is out of the transaction and takes new work.
    assert_eq!(
        album_count(&client).await,
        0,
        "a cancelled transaction was half-applied"
    );
    assert_eq!(
        album_count(&observer).await,
        0,
        "a cancelled transaction was half-applied"
    );
    client
        .execute(&bg, "INSERT INTO ctx_album (title) VALUES ('Ugetsu')", &[])
        .await
        .unwrap();
    assert_eq!(album_count(&observer).await, 1, "autocommit is back");
    client
        .batch_execute(&bg, "DROP TABLE ctx_album")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_query_future_still_cancels_it() {
    let Some(url) = database_url() else { return };
    let app = "ctx-test-dropped";
    let client = Arc::new(connect(&url, app).await);
    let observer = connect(&url, "ctx-test-dropped-observer").await;
    let task = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .query(&Context::background(), "SELECT pg_sleep(30)", &[])
                .await
        }
    });
    until_running(&observer, app).await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    let gone = until_quiet(&observer, app).await;
    println!("postgres: dropped query future -> server quiet after {gone:?}");
    assert_eq!(select_int(&client, 3).await, 3);
}

/// Contexts that end right around the moment a short query completes: a cancel that reaches
/// the server late must never stop the next query on the same connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_cancel_never_reaches_the_next_query() {
    let Some(url) = database_url() else { return };
    let client = connect(&url, "ctx-test-late").await;
    let (tx, rx) = std::sync::mpsc::channel::<(CancelHandle, u64)>();
    let canceller = std::thread::spawn(move || {
        for (handle, delay_us) in rx {
            std::thread::sleep(Duration::from_micros(delay_us));
            handle.cancel();
        }
    });
    let (mut completed, mut cancelled) = (0, 0);
    let mut seed = 0x2545_F491_4F6C_DD1D_u64;
    for i in 0..150 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let (ctx, handle) = Context::background().with_cancel();
        tx.send((handle, seed % 6000)).unwrap();
        match client
            .query_one(&ctx, "SELECT $1::int4 FROM pg_sleep(0.002)", &[&i])
            .await
        {
            Ok(row) => {
                assert_eq!(row.get::<_, i32>(0), i);
                completed += 1;
            }
            Err(Error::Context(_)) => cancelled += 1,
            Err(e) => panic!("a cancellable query failed with a server error: {e}"),
        }
        let n = client
            .query_one(&Context::background(), "SELECT $1::int4", &[&i])
            .await
            .unwrap_or_else(|e| panic!("a query that nobody cancelled failed: {e}"))
            .get::<_, i32>(0);
        assert_eq!(n, i);
    }
    drop(tx);
    canceller.join().unwrap();
    println!("postgres: racing cancels: {completed} completed, {cancelled} cancelled");
}

/// Query futures dropped at random moments, as when a client hangs up: the cancel sent for
/// each must never stop the next query on the same connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_query_never_cancels_the_next_one() {
    let Some(url) = database_url() else { return };
    let app = "ctx-test-dropped-race";
    let client = Arc::new(connect(&url, app).await);
    let observer = connect(&url, "ctx-test-dropped-race-observer").await;
    let (mut completed, mut dropped) = (0, 0);
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    for i in 0..120 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let task = tokio::spawn({
            let client = client.clone();
            async move {
                client
                    .query_one(
                        &Context::background(),
                        "SELECT $1::int4 FROM pg_sleep(0.002)",
                        &[&i],
                    )
                    .await
            }
        });
        tokio::time::sleep(Duration::from_micros(seed % 5000)).await;
        task.abort();
        match task.await {
            Ok(row) => {
                assert_eq!(row.unwrap().get::<_, i32>(0), i);
                completed += 1;
            }
            Err(e) => {
                assert!(e.is_cancelled());
                dropped += 1;
            }
        }
        let n = client
            .query_one(&Context::background(), "SELECT $1::int4", &[&i])
            .await
            .unwrap_or_else(|e| panic!("the query after a dropped one failed: {e}"))
            .get::<_, i32>(0);
        assert_eq!(n, i);
    }
    until_quiet(&observer, app).await;
    println!("postgres: dropped query futures: {completed} completed, {dropped} dropped");
}

/// 200 concurrent queries over a pool of 10 connections, half of them cancelled (most while
/// their query runs on the server): every other query returns the right result, and afterwards
/// the server runs nothing of ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_queries_half_cancelled() {
    let Some(url) = database_url() else { return };
    const CONNECTIONS: usize = 10;
    const QUERIES: i32 = 200;
    let app = "ctx-test-concurrent";
    let observer = connect(&url, "ctx-test-concurrent-observer").await;
    let mut pool = Vec::new();
    for _ in 0..CONNECTIONS {
        pool.push(Arc::new(Mutex::new(connect(&url, app).await)));
    }
    let pool = Arc::new(pool);
    let mid_query = Arc::new(AtomicUsize::new(0));

    let mut tasks = Vec::new();
    for i in 0..QUERIES {
        let pool = pool.clone();
        let mid_query = mid_query.clone();
        tasks.push(tokio::spawn(async move {
            let slot = pool[usize::try_from(i).unwrap() % CONNECTIONS].clone();
            if i % 2 == 0 {
                // 10-50 ms of server time, then a checkable result.
                let client = slot.lock().await;
                let pause = f64::from(10 + i % 40) / 1000.0;
                let row = client
                    .query_one(
                        &Context::background(),
                        "SELECT $1::int4 * 2 FROM pg_sleep($2::float8)",
                        &[&i, &pause],
                    )
                    .await
                    .unwrap_or_else(|e| panic!("query {i} failed: {e}"));
                assert_eq!(row.get::<_, i32>(0), i * 2, "query {i}");
                None
            } else {
                let (ctx, handle) = Context::background().with_cancel();
                let client = slot.lock().await;
                let cancel = async {
                    tokio::time::sleep(Duration::from_millis(5 + u64::from(i.unsigned_abs() % 30)))
                        .await;
                    mid_query.fetch_add(1, Ordering::Relaxed);
                    handle.cancel();
                };
                let params: [&(dyn ToSql + Sync); 1] = [&i];
                let query = client.query_one(&ctx, "SELECT $1::int4 FROM pg_sleep(30)", &params);
                let (result, ()) = tokio::join!(query, cancel);
                let err = result.expect_err("a pg_sleep(30) completed");
                drop(client);
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
    assert_eq!(cancelled, QUERIES / 2);
    let quiet = until_quiet(&observer, app).await;
    println!(
        "postgres: 100 cancelled ({} mid-query), 100 correct; server quiet {quiet:?} after the last one returned",
        mid_query.load(Ordering::Relaxed)
    );
    assert_eq!(active(&observer, app).await, 0);
    for slot in pool.iter() {
        assert_eq!(select_int(&*slot.lock().await, 5).await, 5);
    }
}

/// A TLS connector that counts its handshakes and otherwise is `NoTls`: shows which of the
/// client's connections (its own, its cancel requests) were made with the user's connector.
#[derive(Clone, Default)]
struct CountingTls {
    connections: Arc<AtomicUsize>,
    cancels: Arc<AtomicUsize>,
}

impl tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket> for CountingTls {
    type Stream = tokio_postgres::tls::NoTlsStream;
    type TlsConnect = tokio_postgres::NoTls;
    type Error = tokio_postgres::tls::NoTlsError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<tokio_postgres::NoTls, Self::Error> {
        self.connections.fetch_add(1, Ordering::SeqCst);
        tokio_postgres::tls::MakeTlsConnect::<tokio_postgres::Socket>::make_tls_connect(
            &mut tokio_postgres::NoTls,
            domain,
        )
    }
}

impl tokio_postgres::tls::MakeTlsConnect<ctx_postgres::AckStream> for CountingTls {
    type Stream = tokio_postgres::tls::NoTlsStream;
    type TlsConnect = tokio_postgres::NoTls;
    type Error = tokio_postgres::tls::NoTlsError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<tokio_postgres::NoTls, Self::Error> {
        self.cancels.fetch_add(1, Ordering::SeqCst);
        tokio_postgres::tls::MakeTlsConnect::<tokio_postgres::Socket>::make_tls_connect(
            &mut tokio_postgres::NoTls,
            domain,
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_and_cancels_use_the_callers_tls_connector() {
    let Some(url) = database_url() else { return };
    let tls = CountingTls::default();
    let client = Client::connect(
        &Context::background(),
        &config(&url, "ctx-test-tls"),
        tls.clone(),
    )
    .await
    .unwrap();
    assert_eq!(tls.connections.load(Ordering::SeqCst), 1);
    assert!(
        client.canceller().is_acknowledged(),
        "a single TCP host: cancels are acknowledged"
    );

    let (ctx, _h) = Context::background().with_timeout(Duration::from_millis(50));
    let err = client
        .query(&ctx, "SELECT pg_sleep(30)", &[])
        .await
        .unwrap_err();
    assert_eq!(err.context_err(), Some(CtxError::DeadlineExceeded));
    assert!(
        tls.cancels.load(Ordering::SeqCst) >= 1,
        "the cancel request was made with the caller's connector"
    );
    assert_eq!(select_int(&client, 7).await, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_name_with_several_addresses_finds_the_one_connected_to() {
    let Some(url) = database_url() else { return };
    // The same server through `localhost`, which may resolve to ::1 and 127.0.0.1: the server's
    // own address for the connection picks the candidate.
    let mut config = config(&url, "ctx-test-localhost");
    let port = config.get_ports().first().copied().unwrap_or(5432);
    config.host("localhost").port(port);
    let client = match Client::connect(&Context::background(), &config, tokio_postgres::NoTls).await
    {
        Ok(client) => client,
        // The server listens on 127.0.0.1 only; `localhost` must at least reach that.
        Err(e) => panic!("cannot connect through localhost: {e}"),
    };
    assert!(client.canceller().is_acknowledged());
    let (ctx, _h) = Context::background().with_timeout(Duration::from_millis(50));
    let err = client
        .query(&ctx, "SELECT pg_sleep(30)", &[])
        .await
        .unwrap_err();
    assert_eq!(err.context_err(), Some(CtxError::DeadlineExceeded));
    assert_eq!(select_int(&client, 8).await, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_request_that_gets_no_answer_gives_up_after_its_limit() {
    let Some(url) = database_url() else { return };
    let (pg, connection) = config(&url, "ctx-test-cancel-limit")
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // A "server" that accepts the cancel connection and never answers or closes it.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let client = Client::new(
        pg,
        tokio_postgres::NoTls,
        Some(("silent".to_string(), addr)),
    );
    let err = client.canceller().cancel().await.unwrap_err();
    assert!(matches!(err, Error::CancelTimedOut), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the cancel request got no answer within 1 s"
    );
    // The client itself is fine.
    assert_eq!(select_int(&client, 9).await, 9);
    held.abort();
}
