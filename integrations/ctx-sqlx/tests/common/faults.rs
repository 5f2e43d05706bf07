// The fault scenarios of a database server, included by the `postgres` and `mysql` modules of
// `faults.rs`. Each of them defines, for its server:
//
// - `type Db`, the sqlx database, `NAME`, and `type Options`, its connect options;
// - `fn options() -> Option<Options>`: the test server (`None`: skipped), and
//   `fn restarter()`: what restarts it (`None`: skipped);
// - `ECHO` (a statement returning its one `i64` parameter), `SESSION_ID` (the session's id on
//   the server, an `i64`), `fn slow(marker)` (a statement that runs for a minute, recognisable
//   by `marker`), `fn kill_session(id)` (ends a session from another connection);
// - `async fn running(observer, marker)`: how many statements containing `marker` the server
//   is executing, and `async fn session_running(observer, marker)`: the id of the session that
//   executes one;
// - `fn code(&sqlx::Error)`: the server's error code (SQLSTATE, or MySQL's error number), and
//   the codes expected for `WRONG_PASSWORD` and `UNKNOWN_DATABASE`;
// - `fn session_ended(&sqlx::Error)`: whether it is what a statement gets when the server ends
//   its session (a shutdown, a kill from another connection);
// - `fn wrong_password`, `fn unknown_database`, `fn unreachable` (a port nobody listens on):
//   bad variants of the options;
// - `MALFORMED`: URLs that do not parse.

use std::time::{Duration, Instant};

use ctx_core::{Context, Error as CtxError};
use ctx_sqlx::{Error, Pool};
use sqlx::pool::PoolOptions;
use sqlx::{AssertSqlSafe, Row};

/// Taken shared by the tests that need the server up, and exclusive by the one that restarts
/// it (the tests of one binary run in parallel).
static SERVER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// How long a call may take to report a fault before the test calls it a hang: half sqlx's
/// default acquire timeout (30 s), so that only a context's deadline can end a wait in time.
const HANG: Duration = Duration::from_secs(15);

static MARKERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A name no other statement of this run contains.
fn marker(test: &str) -> String {
    format!(
        "ctx_fault_{test}_{}_{}",
        std::process::id(),
        MARKERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// A pool of one connection, sqlx's defaults otherwise (an idle connection is tested before it
/// is handed out).
async fn pool_of_one(options: &Options) -> sqlx::Pool<Db> {
    PoolOptions::<Db>::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await
        .unwrap_or_else(|e| panic!("{NAME}: cannot connect to the test server: {e}"))
}

async fn echo(pool: &Pool<Db>, ctx: &Context, n: i64) -> Result<i64, Error> {
    let row = pool.fetch_one(ctx, sqlx::query(ECHO).bind(n)).await?;
    Ok(row.get::<i64, _>(0))
}

/// The server session of the pool's (one) connection.
async fn session(pool: &Pool<Db>) -> i64 {
    let row = pool
        .fetch_one(&Context::background(), sqlx::query(SESSION_ID))
        .await
        .unwrap_or_else(|e| panic!("{NAME}: the session's id: {e}"));
    row.get::<i64, _>(0)
}

/// The server's code of a sqlx error, and `None` for any other.
fn server_code(err: &Error) -> Option<String> {
    match err {
        Error::Sqlx(e) => code(e),
        _ => None,
    }
}

/// Asserts that `err` is the sqlx error of a session the server ended.
fn assert_session_ended(err: &Error, when: &str) {
    assert_eq!(err.context_err(), None, "{NAME} {when}: the server's fault reported as the context's: {err}");
    match err {
        Error::Sqlx(e) if session_ended(e) => {}
        _ => panic!("{NAME} {when}: not the error of a session the server ended: {err:?}"),
    }
}

/// Waits (at most 10 s) until the server runs a statement containing `marker`.
async fn until_running(observer: &sqlx::Pool<Db>, marker: &str) {
    let start = Instant::now();
    while running(observer, marker).await == 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "{NAME}: {marker} never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A minute-long statement under a 300 ms deadline, as a call whose context ends.
async fn stopped(pool: &Pool<Db>, marker: &str) -> Error {
    let (ctx, _h) = Context::background().with_timeout(Duration::from_millis(300));
    pool.execute(&ctx, sqlx::query(AssertSqlSafe(slow(marker))))
        .await
        .expect_err("a minute-long statement completed under a 300 ms deadline")
}

/// Opens the side connection(s) of `pool`, which send its stops: a first stop, whose outcome
/// depends on how fast the machine opens a connection (PostgreSQL's SCRAM login takes a debug
/// build up to seconds on a loaded machine, where a stop has one).
async fn open_side(pool: &Pool<Db>) {
    let err = stopped(pool, &marker("warm")).await;
    assert_eq!(err.context_err(), Some(CtxError::DeadlineExceeded), "{NAME}: {err}");
}

/// A stopped call: it returns the deadline's error, the statement no longer runs in the server,
/// and the pool's one connection came back clean (the same session serves the next call: the
/// stop reached the server and was acted on, else the connection would have been closed).
async fn a_stop_reaches_the_server(pool: &Pool<Db>, observer: &sqlx::Pool<Db>, when: &str) {
    let before = session(pool).await;
    let m = marker("stop");
    let start = Instant::now();
    let err = stopped(pool, &m).await;
    let took = start.elapsed();
    assert_eq!(err.context_err(), Some(CtxError::DeadlineExceeded), "{NAME} {when}: {err}");
    assert_eq!(running(observer, &m).await, 0, "{NAME} {when}: still running in the server");
    assert_eq!(
        session(pool).await,
        before,
        "{NAME} {when}: the stopped connection was closed instead of made clean (a stop failed)"
    );
    println!("{NAME} {when}: 300 ms deadline -> stopped in the server after {took:?}");
}

/// Waits (at most 10 s) until the pool's one connection is idle (sqlx gives a connection back
/// from a task of its own).
async fn until_idle(pool: &Pool<Db>) {
    let start = Instant::now();
    while pool.get_ref().num_idle() == 0 {
        assert!(start.elapsed() < HANG, "{NAME}: the pool's connection never came back");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The server restarted while a call's statement runs (a minute-long one, under a 20 s
/// deadline): the call fails at once with the server's error, not the context's, and the pools
/// recover by themselves: the busy one answers the next call; one whose idle connection died,
/// with sqlx's default test of idle connections, answers its first call (ctx-sqlx's own test
/// finds the connection dead, closes it and opens another); one that does not test idle
/// connections fails its first call with the server's error and answers the next. Stops reach
/// the restarted server (the side connections that send them were replaced too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_mid_query_is_the_servers_error_and_the_pool_recovers() {
    let Some(options) = options() else { return };
    let Some(restart) = restarter() else { return };
    let _server = SERVER.write().await;
    let observer = pool_of_one(&options).await;
    let busy = Pool::new(pool_of_one(&options).await);
    let tested = Pool::new(pool_of_one(&options).await);
    let untested = Pool::new(
        PoolOptions::<Db>::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .unwrap(),
    );
    let bg = Context::background();
    // The side connections are open when the server goes: the restart ends them too; and the
    // idle pools have their connection (the one their first stop left clean, or a new one).
    for pool in [&busy, &tested, &untested] {
        open_side(pool).await;
        assert_eq!(echo(pool, &bg, 1).await.unwrap(), 1);
    }
    until_idle(&tested).await;
    until_idle(&untested).await;

    let m = marker("restart");
    let call = tokio::spawn({
        let pool = busy.clone();
        let sql = slow(&m);
        async move {
            let (ctx, _h) = Context::background().with_timeout(Duration::from_secs(20));
            let start = Instant::now();
            let result = pool.execute(&ctx, sqlx::query(AssertSqlSafe(sql))).await;
            (result.map(drop), start.elapsed())
        }
    });
    until_running(&observer, &m).await;
    let restarted = Instant::now();
    tokio::task::spawn_blocking(restart).await.unwrap();
    let restart_took = restarted.elapsed();
    let (result, took) = tokio::time::timeout(HANG, call)
        .await
        .unwrap_or_else(|_| panic!("{NAME}: the call hung after the restart"))
        .unwrap();
    let err = result.expect_err("a statement the server was restarted under completed");
    assert_session_ended(&err, "restarted mid-query");
    println!("{NAME}: restarted ({restart_took:?}) mid-query -> after {took:?}: {err}");

    let (ctx, _h) = bg.with_timeout(Duration::from_secs(10));
    assert_eq!(echo(&busy, &ctx, 2).await.unwrap(), 2, "{NAME}: busy pool after the restart");
    assert_eq!(echo(&tested, &ctx, 3).await.unwrap(), 3, "{NAME}: tested pool after the restart");
    let err = echo(&untested, &ctx, 4)
        .await
        .expect_err("a connection the server ended before its restart answered");
    assert_session_ended(&err, "untested pool, first call after the restart");
    println!("{NAME}: untested pool, first call after the restart: {err}");
    assert_eq!(echo(&untested, &ctx, 5).await.unwrap(), 5, "{NAME}: untested pool, second call");
    for pool in [&busy, &tested, &untested] {
        a_stop_reaches_the_server(pool, &observer, "after the restart").await;
    }
}

/// The session of a call's connection ended from another connection while its statement runs
/// (`a_connection_killed_by_the_server_is_replaced` of the suites kills an idle one): the call
/// fails at once with the server's error, and the pool serves and stops again on a new session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_killed_mid_query_is_the_servers_error_and_the_pool_recovers() {
    let Some(options) = options() else { return };
    let _server = SERVER.read().await;
    let observer = pool_of_one(&options).await;
    let pool = Pool::new(pool_of_one(&options).await);
    let before = session(&pool).await;
    let m = marker("kill");
    let call = tokio::spawn({
        let pool = pool.clone();
        let sql = slow(&m);
        async move {
            let (ctx, _h) = Context::background().with_timeout(Duration::from_secs(20));
            pool.execute(&ctx, sqlx::query(AssertSqlSafe(sql))).await.map(drop)
        }
    });
    until_running(&observer, &m).await;
    let id = session_running(&observer, &m).await;
    assert_eq!(id, before, "{NAME}: the statement runs on another session");
    sqlx::query(AssertSqlSafe(kill_session(id)))
        .execute(&observer)
        .await
        .unwrap();
    let err = tokio::time::timeout(HANG, call)
        .await
        .unwrap_or_else(|_| panic!("{NAME}: the call hung after its session was killed"))
        .unwrap()
        .expect_err("a statement whose session was killed completed");
    assert_session_ended(&err, "session killed mid-query");
    println!("{NAME}: session killed mid-query: {err}");
    // The session's statement goes with it (once its process or thread has finished exiting).
    let start = Instant::now();
    while running(&observer, &m).await != 0 {
        assert!(start.elapsed() < HANG, "{NAME}: still running {HANG:?} after the kill");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let (ctx, _h) = Context::background().with_timeout(Duration::from_secs(10));
    assert_eq!(echo(&pool, &ctx, 5).await.unwrap(), 5);
    assert_ne!(session(&pool).await, before, "{NAME}: the killed session is still in use");
    a_stop_reaches_the_server(&pool, &observer, "after the kill").await;
}

/// A wrong password and a database that does not exist: the server's error at once (sqlx does
/// not retry them), not the context's 10 s deadline nor sqlx's 30 s acquire timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_or_an_unknown_database_is_the_servers_error_at_once() {
    let Some(options) = options() else { return };
    let _server = SERVER.read().await;
    for (what, bad, expected) in [
        ("wrong password", wrong_password(&options), WRONG_PASSWORD),
        ("unknown database", unknown_database(&options), UNKNOWN_DATABASE),
    ] {
        let pool = Pool::new(PoolOptions::<Db>::new().max_connections(1).connect_lazy_with(bad));
        let (ctx, _h) = Context::background().with_timeout(Duration::from_secs(10));
        let err = echo(&pool, &ctx, 1).await.unwrap_err();
        assert_eq!(err.context_err(), None, "{NAME}: {what}: waited for the deadline: {err}");
        assert_eq!(server_code(&err).as_deref(), Some(expected), "{NAME}: {what}: {err}");
        println!("{NAME}: {what}: {err}");
    }
}

/// A pool that could not log in (a wrong password) whose options are then corrected (sqlx's
/// `set_connect_options`, as a rotated password is): it serves, and its stops, sent from side
/// connections opened with the pool's options, reach the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrected_password_is_used_by_the_pool_and_its_stops() {
    let Some(options) = options() else { return };
    let _server = SERVER.read().await;
    let observer = pool_of_one(&options).await;
    let pool = Pool::new(
        PoolOptions::<Db>::new()
            .max_connections(1)
            .connect_lazy_with(wrong_password(&options)),
    );
    let (ctx, _h) = Context::background().with_timeout(Duration::from_secs(10));
    let err = echo(&pool, &ctx, 1).await.unwrap_err();
    assert_eq!(server_code(&err).as_deref(), Some(WRONG_PASSWORD), "{NAME}: {err}");
    // Whatever the side connections tried meanwhile, with the old password.
    tokio::time::sleep(Duration::from_millis(100)).await;
    pool.get_ref().set_connect_options(options.clone());
    assert_eq!(echo(&pool, &ctx, 2).await.unwrap(), 2);
    open_side(&pool).await;
    a_stop_reaches_the_server(&pool, &observer, "after the password was corrected").await;
}

/// A server nobody answers on (a refused connection): sqlx's pool retries it (a server starting
/// up) until its acquire timeout, 30 s by default, and then says only "pool timed out while
/// waiting for an open connection"; the call's 1 s deadline bounds the wait (well before
/// [`HANG`]), and the call returns the deadline's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_bounded_by_the_context_deadline() {
    let Some(options) = options() else { return };
    let pool = Pool::new(
        PoolOptions::<Db>::new()
            .max_connections(1)
            .connect_lazy_with(unreachable(&options)),
    );
    let (ctx, _h) = Context::background().with_timeout(Duration::from_secs(1));
    let start = Instant::now();
    let err = tokio::time::timeout(HANG, echo(&pool, &ctx, 1))
        .await
        .unwrap_or_else(|_| panic!("{NAME}: the call hung"))
        .unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.context_err(), Some(CtxError::DeadlineExceeded), "{NAME}: {err}");
    println!("{NAME}: unreachable server under a 1 s deadline -> after {took:?}: {err}");
}

/// URLs that do not parse: sqlx's configuration error when the pool is made, never a panic.
#[test]
fn a_malformed_url_is_a_configuration_error() {
    for url in MALFORMED {
        match PoolOptions::<Db>::new().connect_lazy(url) {
            Err(e @ sqlx::Error::Configuration(_)) => println!("{NAME}: {url}: {e}"),
            Err(e) => panic!("{NAME}: {url}: not a configuration error: {e:?}"),
            Ok(_) => panic!("{NAME}: {url} parsed"),
        }
    }
}
