//! The demo on SQLite with its database file locked by another connection (`BEGIN EXCLUSIVE`,
//! as another process or a backup tool would hold it): every request is answered within its
//! deadline, with `database is locked` (500) once the demo's busy timeout has passed or with
//! 504 when its deadline comes first, never a hang; once the waits are over nothing is left
//! holding a connection, and when the lock is released the server serves again.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{HARD_BOUND, sqlite_app, sqlite_path, wait_until};
use ctx_core::{CancelHandle, Context};
use ctx_examples::{Album, App, SQLITE_BUSY_TIMEOUT, router, seed};
use sqlx::Connection;

async fn serve(app: Arc<App>, request_timeout: Option<Duration>) -> (SocketAddr, CancelHandle) {
    let (root, handle) = Context::background().with_cancel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = router(app, root, request_timeout);
    tokio::spawn(async move { axum::serve(listener, routes).await });
    (addr, handle)
}

/// The handlers' own deadline.
const HANDLER_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_file_gets_clear_errors_within_the_deadline_then_serves_again() {
    let app = Arc::new(sqlite_app("locked").await);
    let (addr, _root) = serve(app.clone(), None).await;
    let (short_addr, _short_root) = serve(app.clone(), Some(Duration::from_millis(300))).await;
    let http = reqwest::Client::new();

    // Served before the lock.
    let before: Vec<Album> = http
        .get(format!("http://{addr}/albums"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(before, seed());

    // Another connection takes the file's exclusive lock: no one else may read or write.
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(sqlite_path("locked"));
    let mut locker = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .unwrap();
    let locked_at = Instant::now();

    // 20 requests at once: more than the pool's 8 connections, so some wait for a connection
    // too. Plus one slow request (its pause touches no table, its read does) and one under a
    // 300 ms deadline.
    let mut requests = Vec::new();
    for i in 0..20 {
        let url = format!("http://{addr}/albums/{}", i % 5 + 1);
        requests.push(tokio::spawn(timed(http.clone(), url)));
    }
    requests.push(tokio::spawn(timed(
        http.clone(),
        format!("http://{addr}/albums/slow?seconds=0.1"),
    )));
    let short = tokio::spawn(timed(http.clone(), format!("http://{short_addr}/albums")));

    let mut locked = 0;
    let mut timed_out = 0;
    let mut slowest = Duration::ZERO;
    for request in requests {
        let (status, body, took) = request.await.unwrap();
        slowest = slowest.max(took);
        // Never later than the handlers' deadline (plus scheduling on a loaded machine).
        assert!(
            took < HANDLER_TIMEOUT + Duration::from_secs(1),
            "answered after {took:?}"
        );
        match status {
            500 => {
                assert!(body.contains("database is locked"), "500 saying {body:?}");
                // Not before SQLite's busy timeout: it did wait for the lock.
                assert!(took >= SQLITE_BUSY_TIMEOUT, "locked after only {took:?}");
                locked += 1;
            }
            504 => {
                assert_eq!(body, "context deadline exceeded");
                assert!(took >= HANDLER_TIMEOUT, "504 after only {took:?}");
                timed_out += 1;
            }
            other => panic!("{other} saying {body:?} under the lock"),
        }
    }
    let (status, body, took) = short.await.unwrap();
    assert_eq!((status, body.as_str()), (504, "context deadline exceeded"));
    assert!(took < Duration::from_millis(300) + HARD_BOUND, "{took:?}");
    assert!(locked > 0, "no request saw `database is locked`");
    println!(
        "under the lock: {locked} × 500 database is locked, {timed_out} × 504, slowest {slowest:?}; \
         the 300 ms request: 504 after {took:?}"
    );

    // Still locked, but every statement has given up waiting: nothing holds a connection.
    let idle = wait_until(
        "every connection back while the file is still locked",
        SQLITE_BUSY_TIMEOUT + HARD_BOUND,
        || app.connections_in_use() == 0,
    )
    .await;
    println!("connections all back {idle:?} after the answers, the file still locked");

    // Released: the server serves again, at once, every answer correct.
    locker.close().await.unwrap();
    println!("the lock was held for {:?}", locked_at.elapsed());
    for i in 0..50 {
        let id = i % 5 + 1;
        let start = Instant::now();
        let album: Album = http
            .get(format!("http://{addr}/albums/{id}"))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(album, seed()[(id - 1) as usize]);
        assert!(start.elapsed() < HARD_BOUND);
    }
    let slow = http
        .get(format!("http://{addr}/albums/slow?seconds=0.05"))
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), 200);
    wait_until("every connection back", HARD_BOUND, || {
        app.connections_in_use() == 0
    })
    .await;
}

/// Sends a GET and returns its status, its body and how long the answer took.
async fn timed(http: reqwest::Client, url: String) -> (u16, String, Duration) {
    let start = Instant::now();
    let response = http.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    (status, body, start.elapsed())
}
