//! The demo server, end to end, with real clients on 127.0.0.1: correct answers, a timeout,
//! a client that hangs up, and 200 concurrent requests of which half are abandoned, after which
//! no query is left running in the database (SQLite; PostgreSQL too when `DATABASE_URL` is
//! set, which `.ci/run` does: under `CI=true` a missing server is a failure).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{HARD_BOUND, active_demo_queries, postgres_app, sqlite_app, wait_until};
use ctx_core::{CancelHandle, Context};
use ctx_examples::{Album, App, AuditRow, router, seed};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

struct Server {
    addr: SocketAddr,
    app: Arc<App>,
    _root: CancelHandle,
}

async fn serve(app: App, request_timeout: Option<Duration>) -> Server {
    let app = Arc::new(app);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_correct() {
    let server = serve(sqlite_app("answers"), None).await;
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
    let slow = reqwest::get(format!("{base}/albums/slow?seconds=0.05"))
        .await
        .unwrap();
    assert_eq!(slow.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_deadline_gets_504_and_its_query_stops() {
    let server = serve(sqlite_app("deadline"), Some(Duration::from_millis(300))).await;
    let start = Instant::now();
    let response = reqwest::get(format!("http://{}/albums/slow?seconds=30", server.addr))
        .await
        .unwrap();
    let took = start.elapsed();
    assert_eq!(response.status(), 504);
    assert!(took < HARD_BOUND, "answered after {took:?}");
    let stopped = wait_until("the query stops", HARD_BOUND, || {
        server.app.connections_in_use() == 0
    })
    .await;
    println!("504 after {took:?}; query stopped {stopped:?} later");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_stops_the_query_in_sqlite() {
    let server = serve(sqlite_app("hangup"), None).await;
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
    client.abort();
    let _ = client.await;
    let stopped = wait_until("the query stops after the hang-up", HARD_BOUND, || {
        app.connections_in_use() == 0
    })
    .await;
    println!("query stopped {stopped:?} after the client hung up (goal: 100 ms)");
}

/// The audit row of a request is written however the request ends: under a shield of its
/// context when the client hung up (the context had ended, the write still happens), and
/// `answered` otherwise. Read back through `GET /audit`.
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
        // In either order: the abandoned request's row may wait for its query's cancel.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_request_still_writes_its_audit_row_in_sqlite() {
    let server = serve(sqlite_app("audit"), None).await;
    audit_rows_are_written_under_a_shield(&server).await;
}

/// 200 concurrent requests: 100 slow ones abandoned by their clients, 100 normal ones whose
/// answers are checked. Afterwards nothing is left running.
async fn half_abandoned(server: &Server) {
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let mut abandoned = Vec::new();
    for _ in 0..100 {
        abandoned.push(tokio::spawn(abandon(
            server.addr,
            "/albums/slow?seconds=30",
            Duration::from_millis(100),
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_requests_half_abandoned_leave_nothing_running_in_sqlite() {
    let server = serve(sqlite_app("load"), None).await;
    half_abandoned(&server).await;
    let app = server.app.clone();
    wait_until("every slow query stops", HARD_BOUND, || {
        app.connections_in_use() == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_hang_ups_and_load_leave_nothing_running_on_the_server() {
    let Some(app) = postgres_app(&Context::background()).await else {
        return;
    };
    let url = std::env::var("DATABASE_URL").unwrap();
    let server = serve(app, None).await;
    // The audit trail first, while it holds nothing else (the tests of this file share one
    // PostgreSQL database, so they are one test).
    audit_rows_are_written_under_a_shield(&server).await;
    // One hang-up, checked on the server.
    let client = tokio::spawn(abandon(
        server.addr,
        "/albums/slow?seconds=30",
        Duration::from_secs(30),
    ));
    let start = Instant::now();
    while active_demo_queries(&url).await == 0 {
        assert!(
            start.elapsed() < HARD_BOUND,
            "the pg_sleep query never started"
        );
    }
    client.abort();
    let _ = client.await;
    let start = Instant::now();
    while active_demo_queries(&url).await > 0 {
        assert!(
            start.elapsed() < HARD_BOUND,
            "pg_sleep still running on the server"
        );
    }
    println!(
        "pg_sleep cancelled on the server {:?} after the hang-up",
        start.elapsed()
    );
    // Then the load.
    half_abandoned(&server).await;
    let start = Instant::now();
    while active_demo_queries(&url).await > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "queries still running on the server"
        );
    }
}

/// A malformed `DATABASE_URL` is a clear error at start-up, never a panic.
#[tokio::test]
async fn a_malformed_database_url_is_a_clear_error() {
    let err = App::postgres(&Context::background(), "postgres://host:notaport/db")
        .await
        .unwrap_err();
    let text = format!("{err:?}");
    assert!(text.contains("invalid"), "{text}");
}
