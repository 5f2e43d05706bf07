//! The demo server, end to end, with real clients on 127.0.0.1, on each database it runs on:
//! correct answers, the audit trail written under a shield, a timeout, a client that hangs up,
//! and 200 concurrent requests of which half are abandoned at random times, after which no
//! query is left running in the database and the pool serves 1,000 more requests without an
//! error. SQLite always; PostgreSQL when `DATABASE_URL` is set and MySQL/MariaDB when
//! `MYSQL_URL` is (`.ci/run` sets both: under `CI=true` a missing server is a failure). On a
//! server, "the query stopped" is what the server says (`pg_stat_activity`,
//! `information_schema.PROCESSLIST`), and the pool's connections are all back.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{HARD_BOUND, Watcher, mysql_app, postgres_app, sqlite_app, wait_until};
use ctx_core::{CancelHandle, Context};
use ctx_examples::{Album, App, AppError, AuditRow, router, seed};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

struct Server {
    addr: SocketAddr,
    app: Arc<App>,
    _root: CancelHandle,
}

async fn serve(app: Arc<App>, request_timeout: Option<Duration>) -> Server {
    let (root, handle) = Context::background().with_cancel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = router(app.clone(), root, request_timeout);
    tokio::spawn(async move { axum::serve(listener, routes).await });
    Server {
        addr,
        app,
        _root: handle,
    }
}

/// Sends a request on a raw socket and closes it without reading the answer.
async fn abandon(addr: SocketAddr, path: &str, after: Duration) {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: demo\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(after).await;
    drop(socket);
}

/// Waits until the app's pool has every connection back (each query has stopped in the
/// database and its connection is clean) and nothing runs in the database, failing after
/// `bound`.
async fn all_connections_back(app: &App, bound: Duration) -> Duration {
    wait_until("every connection back and nothing running", bound, || {
        app.nothing_running()
    })
    .await
}

/// The albums, one album, a 404, a short slow request.
async fn answers_are_correct(server: &Server) {
    let base = format!("http://{}", server.addr);
    let all: Vec<Album> = reqwest::get(format!("{base}/albums"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all, seed());
    let one: Album = reqwest::get(format!("{base}/albums/4"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one, seed()[3]);
    let missing = reqwest::get(format!("{base}/albums/99")).await.unwrap();
    assert_eq!(missing.status(), 404);
    let start = Instant::now();
    let slow = reqwest::get(format!("{base}/albums/slow?seconds=0.3"))
        .await
        .unwrap();
    let took = start.elapsed();
    assert_eq!(slow.status(), 200);
    assert_eq!(slow.json::<Vec<Album>>().await.unwrap(), seed());
    // The pause happens in the database, for the time asked.
    assert!(
        took >= Duration::from_millis(300),
        "answered after {took:?}"
    );
}

/// The audit row of a request is written however the request ends: under a shield of its
/// context when the client hung up (the context had ended, the write still happens), and
/// `answered` otherwise. Read back through `GET /audit`; run first, on an empty trail.
async fn audit_rows_are_written_under_a_shield(server: &Server) {
    let base = format!("http://{}", server.addr);
    abandon(
        server.addr,
        "/albums/slow?seconds=30",
        Duration::from_millis(200),
    )
    .await;
    let quick = reqwest::get(format!("{base}/albums/slow?seconds=0.01"))
        .await
        .unwrap();
    assert_eq!(quick.status(), reqwest::StatusCode::OK);

    let expected = vec![
        ("GET /albums/slow?seconds=0.01", "answered"),
        ("GET /albums/slow?seconds=30", "client disconnected"),
    ];
    let start = Instant::now();
    loop {
        let rows: Vec<AuditRow> = reqwest::get(format!("{base}/audit"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // In either order: the abandoned request's row may wait for its query's stop.
        let mut seen: Vec<_> = rows
            .iter()
            .map(|row| (row.what.as_str(), row.outcome.as_str()))
            .collect();
        seen.sort();
        if seen == expected {
            // Each had the handler's own 5 s at most.
            assert!(
                rows.iter()
                    .all(|row| row.budget_ms.is_some_and(|ms| ms <= 5_000))
            );
            break;
        }
        assert!(start.elapsed() < HARD_BOUND, "audit trail: {rows:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A request past its deadline (a second server on the same app, whose layer gives each
/// request 300 ms) gets 504, and its query stops.
async fn a_request_past_its_deadline_gets_504_and_its_query_stops(
    app: &Arc<App>,
    watcher: Option<&Watcher>,
) -> Duration {
    let server = serve(app.clone(), Some(Duration::from_millis(300))).await;
    let start = Instant::now();
    let response = reqwest::get(format!("http://{}/albums/slow?seconds=30", server.addr))
        .await
        .unwrap();
    let took = start.elapsed();
    assert_eq!(response.status(), 504);
    assert_eq!(response.text().await.unwrap(), "context deadline exceeded");
    assert!(
        took >= Duration::from_millis(300),
        "answered after {took:?}"
    );
    assert!(took < HARD_BOUND, "answered after {took:?}");
    let stopped = match watcher {
        Some(watcher) => watcher.wait_until_none(HARD_BOUND).await,
        None => Duration::ZERO,
    };
    let back = all_connections_back(app, HARD_BOUND).await;
    println!(
        "504 after {took:?}; query gone from the server {stopped:?} later, connections back {back:?} later"
    );
    took
}

/// A client that hangs up stops its query: on a server, the server says it is gone; on SQLite
/// (in the process), its connection is back, which it is only once SQLite has returned.
async fn a_client_that_hangs_up_stops_the_query(
    server: &Server,
    watcher: Option<&Watcher>,
) -> Duration {
    let app = server.app.clone();
    let client = tokio::spawn(abandon(
        server.addr,
        "/albums/slow?seconds=30",
        Duration::from_secs(30),
    ));
    wait_until("the query starts", HARD_BOUND, || {
        app.connections_in_use() == 1
    })
    .await;
    if let Some(watcher) = watcher {
        watcher.wait_for_sleep(HARD_BOUND).await;
    }
    // Let it run a little: the stop must reach a statement that is well under way.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let hung_up = Instant::now();
    client.abort();
    let _ = client.await;
    if let Some(watcher) = watcher {
        watcher.wait_until_none(HARD_BOUND).await;
    }
    all_connections_back(&app, HARD_BOUND).await;
    let stopped = hung_up.elapsed();
    println!("query stopped {stopped:?} after the client hung up (goal: 100 ms)");
    stopped
}

/// A small deterministic generator (xorshift), seeded per run and printed, for the random
/// hang-up times.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let seed = std::env::var("DEMO_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |t| t.as_nanos() as u64)
            })
            | 1;
        println!("hang-up times from DEMO_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// 200 concurrent requests: 100 slow ones abandoned by their clients at random times within
/// 500 ms, 100 normal ones whose answers are checked. Afterwards nothing is left running (the
/// server says so, the pool has its connections back), and the pool serves 1,000 requests,
/// 20 at a time, every answer correct.
async fn half_abandoned_then_a_thousand(server: &Server, watcher: Option<&Watcher>) {
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let mut rng = Rng::seeded();
    let mut abandoned = Vec::new();
    for _ in 0..100 {
        let after = Duration::from_millis(rng.below(500));
        abandoned.push(tokio::spawn(abandon(
            server.addr,
            "/albums/slow?seconds=30",
            after,
        )));
    }
    let mut answered = Vec::new();
    for i in 0..100 {
        let (http, base) = (http.clone(), base.clone());
        answered.push(tokio::spawn(async move {
            let id = i % 5 + 1;
            let album: Album = http
                .get(format!("{base}/albums/{id}"))
                .send()
                .await
                .unwrap()
                .error_for_status()
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(album, seed()[(id - 1) as usize]);
        }));
    }
    for task in abandoned.into_iter().chain(answered) {
        task.await.unwrap();
    }
    if let Some(watcher) = watcher {
        watcher.wait_until_none(Duration::from_secs(10)).await;
    }
    all_connections_back(&server.app, Duration::from_secs(10)).await;

    let start = Instant::now();
    let mut workers = Vec::new();
    for w in 0..20 {
        let (http, base) = (http.clone(), base.clone());
        workers.push(tokio::spawn(async move {
            for i in 0..50 {
                let id = (w * 50 + i) % 5 + 1;
                let response = http
                    .get(format!("{base}/albums/{id}"))
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let body = response.text().await.unwrap();
                assert_eq!(status, 200, "request {i} of worker {w}: {body}");
                let album: Album = serde_json::from_str(&body).unwrap();
                assert_eq!(album, seed()[(id - 1) as usize]);
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    println!("then 1,000 requests in {:?}, all correct", start.elapsed());
    all_connections_back(&server.app, HARD_BOUND).await;
}

/// One suite at a time: each puts 200 concurrent requests on a 2-core machine, and its answers
/// must come within their 5 s.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The whole suite, on one app (one database: the audit trail is checked first, while it is
/// empty).
async fn suite(name: &str, app: App, watcher: Option<Watcher>) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = Arc::new(app);
    let server = serve(app.clone(), None).await;
    audit_rows_are_written_under_a_shield(&server).await;
    answers_are_correct(&server).await;
    let deadline =
        a_request_past_its_deadline_gets_504_and_its_query_stops(&app, watcher.as_ref()).await;
    let hang_up = a_client_that_hangs_up_stops_the_query(&server, watcher.as_ref()).await;
    half_abandoned_then_a_thousand(&server, watcher.as_ref()).await;
    println!(
        "{name}: 504 after {deadline:?} (300 ms deadline); hang-up to query stopped {hang_up:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_answers_are_correct_and_every_stopped_query_stops() {
    suite("SQLite", sqlite_app("suite").await, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_answers_are_correct_and_every_stopped_query_stops_on_the_server() {
    let Some((app, watcher)) = postgres_app(&Context::background()).await else {
        return;
    };
    suite("PostgreSQL", app, Some(watcher)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_mariadb_answers_are_correct_and_every_stopped_query_stops_on_the_server() {
    let Some((app, watcher)) = mysql_app(&Context::background()).await else {
        return;
    };
    suite("MySQL/MariaDB", app, Some(watcher)).await;
}

/// A malformed `DATABASE_URL` is a clear error at start-up, never a panic, and never repeats
/// the URL (it may hold a password).
#[tokio::test]
async fn a_malformed_database_url_is_a_clear_error() {
    let ctx = Context::background();
    for (url, says) in [
        (
            "postgres://user:secret@host:notaport/db",
            "invalid PostgreSQL URL",
        ),
        ("mysql://user:secret@host:notaport/db", "invalid MySQL URL"),
        ("mariadb://user:secret@[::1/db", "invalid MySQL URL"),
        (
            "redis://user:secret@host/0",
            "invalid URL: it must start with postgres://",
        ),
        (
            "user:secret@host/db",
            "invalid URL: it must start with postgres://",
        ),
    ] {
        let err = App::connect(&ctx, url).await.unwrap_err();
        assert!(matches!(err, AppError::Config(_)), "{url}: {err:?}");
        let text = err.to_string();
        assert!(text.contains(says), "{url}: {text}");
        assert!(text.contains("invalid"), "{url}: {text}");
        assert!(!text.contains("secret"), "{url}: {text}");
    }
}

/// A server that cannot be reached is a clear error at start-up, at once (not a pool's
/// timeout 30 s later), without the URL.
#[tokio::test]
async fn an_unreachable_database_server_is_a_clear_error_at_once() {
    let ctx = Context::background();
    for url in [
        "postgres://user:secret@127.0.0.1:1/db",
        "mysql://user:secret@127.0.0.1:1/db",
    ] {
        let start = Instant::now();
        let err = App::connect(&ctx, url).await.unwrap_err();
        let took = start.elapsed();
        assert!(matches!(err, AppError::Database(_)), "{url}: {err:?}");
        let text = err.to_string();
        assert!(text.contains("refused"), "{url}: {text}");
        assert!(!text.contains("secret"), "{url}: {text}");
        assert!(took < HARD_BOUND, "{url}: failed after {took:?}");
    }
}
