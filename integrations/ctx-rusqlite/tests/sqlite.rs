//! `ctx_rusqlite`: SQLite work under a context, interrupted inside SQLite when it ends.
//!
//! Real time and real SQLite (bundled). Every slow statement calls `tick()`, an SQL function
//! that counts rows processed, so a test can see that no statement is still running after the
//! calls have returned: the count stops moving.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ctx_core::{CancelHandle, Context, Error as CtxError};
use ctx_rusqlite::{Db, Error};
use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;

/// Counts to a billion: runs for minutes unless interrupted. Each row calls `tick()`.
const SLOW: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000)
                    SELECT sum(tick(x)) FROM c";

/// A hard bound for a stop that should take a few milliseconds, safe on a loaded CI machine.
const HARD_BOUND: Duration = Duration::from_secs(1);

/// Rows processed by `tick()`, per test (each test gets its own counter).
fn with_tick(conn: &Connection, ticks: &Arc<AtomicU64>) {
    let ticks = ticks.clone();
    conn.create_scalar_function("tick", 1, FunctionFlags::SQLITE_UTF8, move |f| {
        ticks.fetch_add(1, Ordering::Relaxed);
        f.get::<i64>(0)
    })
    .unwrap();
}

fn memory_db() -> (Db, Arc<AtomicU64>) {
    let ticks = Arc::new(AtomicU64::new(0));
    let conn = Connection::open_in_memory().unwrap();
    with_tick(&conn, &ticks);
    (Db::from_connections([conn]).unwrap(), ticks)
}

/// A database file that is removed (with its WAL files) when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> TempFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("ctx-sqlite-{}-{name}-{n}.db", std::process::id()));
        let file = TempFile(path);
        file.remove();
        file
    }

    fn remove(&self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A pool of `size` connections on `file`, in WAL mode, each with `tick()`.
fn pool_db(file: &TempFile, size: usize) -> (Db, Arc<AtomicU64>) {
    let ticks = Arc::new(AtomicU64::new(0));
    let mut conns = Vec::new();
    for i in 0..size {
        let conn = Connection::open(&file.0).unwrap();
        if i == 0 {
            conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        }
        with_tick(&conn, &ticks);
        conns.push(conn);
    }
    (Db::from_connections(conns).unwrap(), ticks)
}

fn slow(conn: &mut Connection) -> rusqlite::Result<i64> {
    conn.query_row(SLOW, [], |row| row.get(0))
}

/// Waits until `tick()` has been called at least once: the slow statement is running.
async fn until_running(ticks: &AtomicU64, since: u64) {
    let start = Instant::now();
    while ticks.load(Ordering::Relaxed) == since {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the statement never started"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// No statement is running: the tick count does not move for 100 ms, and no call holds a
/// connection.
async fn assert_quiet(db: &Db, ticks: &AtomicU64) {
    assert_eq!(db.in_use(), 0, "a connection is still taken");
    let before = ticks.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        ticks.load(Ordering::Relaxed),
        before,
        "a statement is still running"
    );
}

async fn select_one(db: &Db) -> Result<i64, Error> {
    db.call(&Context::background(), |conn| {
        conn.query_row("SELECT 1", [], |row| row.get(0))
    })
    .await
}

/// Cancels `handle` once the statement is running; returns when it was cancelled.
fn cancel_when_running(
    handle: CancelHandle,
    ticks: &Arc<AtomicU64>,
    after: Duration,
) -> tokio::task::JoinHandle<Instant> {
    let ticks = ticks.clone();
    tokio::spawn(async move {
        until_running(&ticks, 0).await;
        tokio::time::sleep(after).await;
        let at = Instant::now();
        handle.cancel();
        at
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_interrupts_the_running_statement_within_50_ms() {
    let mut latencies = Vec::new();
    for _ in 0..5 {
        let (db, ticks) = memory_db();
        let (ctx, handle) = Context::background().with_cancel();
        let canceller = cancel_when_running(handle, &ticks, Duration::from_millis(100));
        let err = db.call(&ctx, slow).await.unwrap_err();
        let returned = Instant::now();
        let cancelled = canceller.await.unwrap();
        let latency = returned - cancelled;
        assert_eq!(err.context_err(), Some(CtxError::Canceled));
        assert_eq!(err.to_string(), "query interrupted: context canceled");
        assert!(
            latency < HARD_BOUND,
            "the call returned {latency:?} after the cancel"
        );
        latencies.push(latency);
        assert_quiet(&db, &ticks).await;
        assert_eq!(select_one(&db).await.unwrap(), 1);
    }
    latencies.sort();
    println!("sqlite: cancel -> call returned (interrupted): {latencies:?}");
    assert!(
        latencies[0] < Duration::from_millis(50),
        "not one of 5 interrupts took less than 50 ms: {latencies:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_interrupts_with_deadline_exceeded() {
    let (db, ticks) = memory_db();
    let (ctx, _handle) = Context::background().with_timeout(Duration::from_millis(100));
    let start = Instant::now();
    let err = db.call(&ctx, slow).await.unwrap_err();
    let elapsed = start.elapsed();
    println!("sqlite: 100 ms deadline -> call returned after {elapsed:?}");
    assert_eq!(err.context_err(), Some(CtxError::DeadlineExceeded));
    assert_eq!(
        err.to_string(),
        "query interrupted: context deadline exceeded"
    );
    assert!(matches!(
        &err,
        Error::Context(stopped) if stopped.cause().downcast_ref::<CtxError>() == Some(&CtxError::DeadlineExceeded)
    ));
    assert!(elapsed >= Duration::from_millis(100));
    assert!(elapsed < Duration::from_millis(100) + HARD_BOUND);
    assert!(ticks.load(Ordering::Relaxed) > 0, "the statement never ran");
    assert_quiet(&db, &ticks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_context_never_runs_the_closure() {
    let (db, _ticks) = memory_db();
    let ran = Arc::new(AtomicBool::new(false));

    let (ctx, handle) = Context::background().with_cancel();
    handle.cancel_with_cause("client went away");
    let flag = ran.clone();
    let err = db
        .call(&ctx, move |_| {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        })
        .await
        .unwrap_err();
    assert_eq!(err.context_err(), Some(CtxError::Canceled));
    let stopped = err.context_error().expect("a context error");
    assert_eq!(stopped.cause().to_string(), "client went away");

    let (ctx, _h) = Context::background().with_timeout(Duration::ZERO);
    let flag = ran.clone();
    let err = db
        .call(&ctx, move |_| {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        })
        .await
        .unwrap_err();
    assert_eq!(err.context_err(), Some(CtxError::DeadlineExceeded));
    assert!(!ran.load(Ordering::SeqCst), "the closure ran");
    assert_eq!(db.in_use(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_the_connection_stops_when_the_context_ends() {
    let (db, ticks) = memory_db();
    let (busy_ctx, busy_handle) = Context::background().with_cancel();
    let holder = tokio::spawn({
        let db = db.clone();
        async move { db.call(&busy_ctx, slow).await }
    });
    until_running(&ticks, 0).await;

    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let (ctx, _h) = Context::background().with_timeout(Duration::from_millis(50));
    let start = Instant::now();
    let err = db
        .call(&ctx, move |_| {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        })
        .await
        .unwrap_err();
    assert_eq!(err.context_err(), Some(CtxError::DeadlineExceeded));
    assert!(start.elapsed() < HARD_BOUND);
    assert!(!ran.load(Ordering::SeqCst), "the closure ran");

    busy_handle.cancel();
    let err = holder.await.unwrap().unwrap_err();
    assert_eq!(err.context_err(), Some(CtxError::Canceled));
    assert_quiet(&db, &ticks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_while_the_context_is_live_is_sqlites() {
    let (db, _ticks) = memory_db();
    let err = db
        .call(&Context::background(), |conn| {
            conn.execute_batch("SELECT FROM nowhere")
        })
        .await
        .unwrap_err();
    assert_eq!(err.context_err(), None);
    assert!(matches!(err, Error::Sqlite(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_transaction_is_rolled_back_and_the_connection_works() {
    let (db, ticks) = memory_db();
    let bg = Context::background();
    db.call(&bg, |conn| {
        conn.execute_batch("CREATE TABLE album (id INTEGER PRIMARY KEY, title TEXT)")
    })
    .await
    .unwrap();

    // With rusqlite's Transaction: three writes, then a slow statement, then commit.
    let (ctx, handle) = bg.with_cancel();
    let canceller = cancel_when_running(handle, &ticks, Duration::from_millis(50));
    let err = db
        .call(&ctx, |conn| {
            let tx = conn.transaction()?;
            for title in ["Kind of Blue", "Blue Train", "Mingus Ah Um"] {
                tx.execute("INSERT INTO album (title) VALUES (?1)", [title])?;
            }
            tx.query_row(SLOW, [], |row| row.get::<_, i64>(0))?;
            tx.commit()
        })
        .await
        .unwrap_err();
    canceller.await.unwrap();
    assert_eq!(err.context_err(), Some(CtxError::Canceled));

    // With a bare BEGIN that the closure leaves open when its statement fails.
    let since = ticks.load(Ordering::Relaxed);
    let (ctx, handle) = bg.with_cancel();
    let canceller = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            until_running(&ticks, since).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            handle.cancel();
        })
    };
    let err = db
        .call(&ctx, |conn| {
            conn.execute_batch(
                "BEGIN; INSERT INTO album (title) VALUES ('A Love Supreme');
                 INSERT INTO album (title) VALUES ('Giant Steps');",
            )?;
            conn.query_row(SLOW, [], |row| row.get::<_, i64>(0))?;
            conn.execute_batch("COMMIT")
        })
        .await
        .unwrap_err();
    canceller.await.unwrap();
    assert_eq!(err.context_err(), Some(CtxError::Canceled));

    // None of the writes is visible, and the connection takes new work in autocommit mode.
    let (count, autocommit) = db
        .call(&bg, |conn| {
            let count: i64 = conn.query_row("SELECT count(*) FROM album", [], |row| row.get(0))?;
            Ok((count, conn.is_autocommit()))
        })
        .await
        .unwrap();
    assert_eq!(count, 0, "a cancelled transaction was half-applied");
    assert!(autocommit, "a transaction is still open");
    db.call(&bg, |conn| {
        conn.execute("INSERT INTO album (title) VALUES ('Ugetsu')", [])
    })
    .await
    .unwrap();
    let count: i64 = db
        .call(&bg, |conn| {
            conn.query_row("SELECT count(*) FROM album", [], |row| row.get(0))
        })
        .await
        .unwrap();
    assert_eq!(count, 1);
    assert_quiet(&db, &ticks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_call_interrupts_the_work() {
    let (db, ticks) = memory_db();
    let task = tokio::spawn({
        let db = db.clone();
        async move { db.call(&Context::background(), slow).await }
    });
    until_running(&ticks, 0).await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    let start = Instant::now();
    while db.in_use() > 0 {
        assert!(
            start.elapsed() < HARD_BOUND,
            "the abandoned statement kept running"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!(
        "sqlite: dropped call -> connection back after {:?}",
        start.elapsed()
    );
    assert_quiet(&db, &ticks).await;
    assert_eq!(select_one(&db).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_closure_is_resumed_and_the_connection_kept() {
    let (db, _ticks) = memory_db();
    let task = tokio::spawn({
        let db = db.clone();
        async move {
            db.call(&Context::background(), |conn| -> rusqlite::Result<()> {
                let tx = conn.transaction()?;
                tx.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1)")?;
                panic!("boom")
            })
            .await
        }
    });
    let err = task.await.unwrap_err();
    assert!(err.is_panic());
    assert_eq!(db.in_use(), 0);
    // The transaction was rolled back as the panic unwound: no table `t`.
    let err = db
        .call(&Context::background(), |conn| {
            conn.query_row("SELECT count(*) FROM t", [], |row| row.get::<_, i64>(0))
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Sqlite(_)), "{err:?}");
    assert_eq!(select_one(&db).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_waiting_for_a_lock_stops_when_the_context_ends() {
    let file = TempFile::new("busy");
    let (db, _ticks) = pool_db(&file, 2);
    let bg = Context::background();
    db.call(&bg, |conn| conn.execute_batch("CREATE TABLE t (x)"))
        .await
        .unwrap();
    // Another connection (another process, say) holds the write lock.
    let other = Connection::open(&file.0).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();

    let (ctx, _h) = bg.with_timeout(Duration::from_millis(100));
    let start = Instant::now();
    let err = db
        .call(&ctx, |conn| conn.execute("INSERT INTO t VALUES (1)", []))
        .await
        .unwrap_err();
    let elapsed = start.elapsed();
    println!("sqlite: writer waiting for a lock, 100 ms deadline -> returned after {elapsed:?}");
    assert_eq!(err.context_err(), Some(CtxError::DeadlineExceeded));
    assert!(
        elapsed < Duration::from_millis(100) + HARD_BOUND,
        "waited {elapsed:?}"
    );

    other.execute_batch("ROLLBACK").unwrap();
    assert_eq!(
        db.call(&bg, |conn| conn.execute("INSERT INTO t VALUES (1)", []))
            .await
            .unwrap(),
        1
    );
}

/// Contexts that end right around the moment a short call completes, while other calls that
/// must never be interrupted share the connection: an interrupt meant for a call that has
/// finished must never reach the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_interrupt_never_reaches_the_next_call() {
    const TASKS: usize = 4;
    const ROUNDS: usize = 300;
    let (db, _ticks) = memory_db();
    let short = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300)
                 SELECT sum(x) FROM c";

    // A thread that cancels each handle after a pseudo-random delay of 0-1 ms (spinning,
    // for precision), from outside the runtime, as a client hanging up would.
    let (tx, rx) = std::sync::mpsc::channel::<(CancelHandle, u64)>();
    let canceller = std::thread::spawn(move || {
        for (handle, delay_us) in rx {
            let until = Instant::now() + Duration::from_micros(delay_us);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            handle.cancel();
        }
    });

    let completed = Arc::new(AtomicUsize::new(0));
    let cancelled = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (db, tx) = (db.clone(), tx.clone());
        let (completed, cancelled) = (completed.clone(), cancelled.clone());
        tasks.push(tokio::spawn(async move {
            let mut seed = 0x9E37_79B9_7F4A_7C15_u64 ^ (t as u64);
            for _ in 0..ROUNDS {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let (ctx, handle) = Context::background().with_cancel();
                tx.send((handle, seed % 1000)).unwrap();
                match db
                    .call(&ctx, move |conn| {
                        conn.query_row(short, [], |row| row.get::<_, i64>(0))
                    })
                    .await
                {
                    Ok(sum) => {
                        assert_eq!(sum, 300 * 301 / 2);
                        completed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(Error::Context(_)) => {
                        cancelled.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => panic!("a cancellable call failed with a database error: {e}"),
                }
                // A call whose context never ends: it must never be interrupted.
                let sum = db
                    .call(&Context::background(), move |conn| {
                        conn.query_row(short, [], |row| row.get::<_, i64>(0))
                    })
                    .await
                    .unwrap_or_else(|e| panic!("a call that nobody cancelled failed: {e}"));
                assert_eq!(sum, 300 * 301 / 2);
            }
        }));
    }
    drop(tx);
    for task in tasks {
        task.await.unwrap();
    }
    canceller.join().unwrap();
    let (completed, cancelled) = (
        completed.load(Ordering::Relaxed),
        cancelled.load(Ordering::Relaxed),
    );
    println!("sqlite: racing cancels: {completed} completed, {cancelled} cancelled");
    assert_eq!(completed + cancelled, TASKS * ROUNDS);
    assert_eq!(db.in_use(), 0);
}

/// 200 concurrent calls on a pool, half of them cancelled (most mid-statement, some while
/// waiting for a connection): every other call returns the right result, and afterwards no
/// statement is running and every connection is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_calls_half_cancelled() {
    const CALLS: i64 = 200;
    let file = TempFile::new("concurrent");
    let (db, ticks) = pool_db(&file, 8);
    let started = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..CALLS {
        let db = db.clone();
        let started = started.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                // Sum 1..=n for n in 1000..1200: a short query with a checkable result.
                let n = 1000 + i;
                let got = db
                    .call(&Context::background(), move |conn| {
                        conn.query_row(
                            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?1)
                             SELECT sum(tick(x)) FROM c",
                            [n],
                            |row| row.get::<_, i64>(0),
                        )
                    })
                    .await
                    .unwrap_or_else(|e| panic!("call {i} failed: {e}"));
                assert_eq!(got, n * (n + 1) / 2, "call {i}");
                None
            } else if i % 10 == 1 {
                // Cancelled by a short deadline, most likely while waiting for a connection.
                let (ctx, _h) = Context::background().with_timeout(Duration::from_millis(5));
                let err = db.call(&ctx, slow).await.unwrap_err();
                Some(err.context_err())
            } else {
                // Cancelled 1-20 ms after its statement started.
                let (ctx, handle) = Context::background().with_cancel();
                let (tx, rx) = tokio::sync::oneshot::channel();
                let canceller = tokio::spawn(async move {
                    if rx.await.is_ok() {
                        tokio::time::sleep(Duration::from_millis(1 + i.unsigned_abs() % 20)).await;
                    }
                    handle.cancel();
                });
                let err = db
                    .call(&ctx, move |conn| {
                        started.fetch_add(1, Ordering::Relaxed);
                        let _ = tx.send(());
                        slow(conn)
                    })
                    .await
                    .unwrap_err();
                canceller.await.unwrap();
                Some(err.context_err())
            }
        }));
    }
    let mut cancelled = 0;
    for task in tasks {
        if let Some(err) = task.await.unwrap() {
            assert!(
                err.is_some(),
                "a cancelled call did not report its context's end"
            );
            cancelled += 1;
        }
    }
    assert_eq!(cancelled, CALLS / 2);
    println!(
        "sqlite: {cancelled} cancelled calls, {} of them mid-statement, the rest while waiting for a connection",
        started.load(Ordering::Relaxed)
    );
    // 80 of them are cancelled only once their statement has started.
    assert!(started.load(Ordering::Relaxed) >= 80);
    assert_quiet(&db, &ticks).await;
}
