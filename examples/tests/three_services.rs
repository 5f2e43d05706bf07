//! Three real services on 127.0.0.1 (`ctx_examples::chain`): A (axum) → B (tonic gRPC) → C
//! (axum over SQLite; PostgreSQL too when `DATABASE_URL` is set and MySQL/MariaDB when
//! `MYSQL_URL` is, which `.ci/run` does).
//!
//! - a budget set at A reaches C's query as a deadline under that budget;
//! - a client that hangs up on A stops C's query within 200 ms, and B and C say why;
//! - a budget that has run out is refused before any work starts, at A and at B.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{HARD_BOUND, Watcher, mysql_app, postgres_app, sqlite_app, wait_until};
use ctx_core::Context;
use ctx_examples::chain::{Chain, proto};
use ctx_examples::{App, AuditRow};
use ctx_http::RequestEnd;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn start(app: App, budget: Duration) -> Chain {
    Chain::start(app, budget, [0, 0, 0]).await.unwrap()
}

fn running(chain: &Chain) -> usize {
    chain.albums_state.connections_in_use()
}

/// Nothing runs in C's database: every connection back, and on SQLite no pause row sleeping.
fn stopped(chain: &Chain) -> bool {
    chain.albums_state.nothing_running()
}

/// C's audit trail once it holds `n` rows (they are written as C's handlers end).
async fn audit_at_c(chain: &Chain, n: usize) -> Vec<AuditRow> {
    let start = Instant::now();
    loop {
        let rows = chain
            .albums_state
            .audit_rows(&Context::background())
            .await
            .unwrap();
        if rows.len() >= n {
            return rows;
        }
        assert!(start.elapsed() < HARD_BOUND, "C's audit trail: {rows:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_request_goes_through_all_three() {
    let chain = start(sqlite_app("chain-quick").await, Duration::from_secs(10)).await;
    let url = format!("http://{}/albums/slow?seconds=0.01", chain.edge);
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let albums: Vec<ctx_examples::Album> = response.json().await.unwrap();
    assert_eq!(albums, ctx_examples::seed());
    let rows = audit_at_c(&chain, 1).await;
    assert_eq!(rows[0].outcome, "answered");
    let budget = rows[0].budget_ms.expect("C's request had no deadline");
    assert!(budget <= 10_000, "{budget} ms");
    chain.shut_down();
}

/// A 300 ms budget set at A: C's query starts with less than 300 ms left, and the whole chain
/// stops when it runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_set_at_a_is_the_deadline_of_cs_query() {
    let budget = Duration::from_millis(300);
    let chain = start(sqlite_app("chain-budget").await, budget).await;
    let sent = Instant::now();
    let response = reqwest::get(format!("http://{}/albums/slow?seconds=30", chain.edge))
        .await
        .unwrap();
    let took = sent.elapsed();
    assert_eq!(response.status(), reqwest::StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(response.text().await.unwrap(), "request timed out");
    assert!(
        took >= budget,
        "answered before the budget ran out: {took:?}"
    );

    // C's request started with less than A's budget: its deadline came from A through B (B
    // has no timeout of its own, C's own is 5 s).
    let rows = audit_at_c(&chain, 1).await;
    let left =
        Duration::from_millis(rows[0].budget_ms.expect("C's request had no deadline") as u64);
    eprintln!("C's request started with {left:?} of A's {budget:?} left");
    assert!(
        left < budget,
        "C's request started with {left:?} left, not under A's {budget:?}"
    );
    assert_ne!(rows[0].outcome, "answered");
    // The query stopped in the database, not 30 s later.
    wait_until("C's query stops", HARD_BOUND, || stopped(&chain)).await;
    chain.shut_down();
}

/// Sends a request on a raw socket, waits until C's query runs, then hangs up: returns when it
/// hung up, and how long C's handler took to drop its query after that.
async fn hang_up_on_a(chain: &Chain) -> (Instant, Duration) {
    let mut socket = TcpStream::connect(chain.edge).await.unwrap();
    let request = "GET /albums/slow?seconds=30 HTTP/1.1\r\nHost: edge\r\n\r\n";
    socket.write_all(request.as_bytes()).await.unwrap();
    wait_until("C's query starts", HARD_BOUND, || running(chain) == 1).await;
    let hung_up = Instant::now();
    drop(socket);
    let stopped = wait_until("C's query stops", HARD_BOUND, || stopped(chain)).await;
    eprintln!("C's query stopped {stopped:?} after the client hung up on A");
    (hung_up, stopped)
}

async fn assert_hang_up_reached_the_bottom(chain: &Chain, stopped: Duration) {
    assert!(
        stopped < Duration::from_millis(200),
        "C's query stopped {stopped:?} after the hang-up at A, not within 200 ms"
    );
    // C's request ended as the client's did at A: B passed the hang-up on as one.
    let rows = audit_at_c(chain, 1).await;
    assert_eq!(
        rows[0].outcome,
        RequestEnd::ClientDisconnected.to_string(),
        "C's request ended for another reason"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_on_a_stops_cs_query_in_sqlite() {
    let chain = start(sqlite_app("chain-hang-up").await, Duration::from_secs(60)).await;
    // SQLite runs in C's process: the query has stopped when its connection is back in the
    // pool (ctx-sqlx gives it back only once SQLite has returned).
    let (_, stopped) = hang_up_on_a(&chain).await;
    assert_hang_up_reached_the_bottom(&chain, stopped).await;
    chain.shut_down();
}

/// A hang-up at A, with C on a database server: C's query has stopped when the server says so.
async fn hang_up_on_a_with_c_on_a_server(app: App, watcher: Watcher) {
    let chain = start(app, Duration::from_secs(60)).await;
    let (hung_up, _) = hang_up_on_a(&chain).await;
    while watcher.sleeping().await > 0 {
        assert!(
            hung_up.elapsed() < HARD_BOUND,
            "{} still running on the server",
            watcher.sleep_name()
        );
    }
    let stopped = hung_up.elapsed();
    eprintln!(
        "{} ended on the server {stopped:?} after the client hung up on A",
        watcher.sleep_name()
    );
    assert_hang_up_reached_the_bottom(&chain, stopped).await;
    chain.shut_down();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_on_a_stops_cs_query_in_postgres() {
    let Some((app, watcher)) = postgres_app(&Context::background()).await else {
        return;
    };
    hang_up_on_a_with_c_on_a_server(app, watcher).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_on_a_stops_cs_query_in_mariadb() {
    let Some((app, watcher)) = mysql_app(&Context::background()).await else {
        return;
    };
    hang_up_on_a_with_c_on_a_server(app, watcher).await;
}

/// A client whose budget has run out (`grpc-timeout: 0m`): A answers at once, B and C never
/// hear of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_is_refused_at_a_before_any_work() {
    let chain = start(sqlite_app("chain-spent-a").await, Duration::from_secs(10)).await;
    let response = reqwest::Client::new()
        .get(format!("http://{}/albums/slow?seconds=1", chain.edge))
        .header("grpc-timeout", "0m")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(response.text().await.unwrap(), "caller's deadline exceeded");
    assert_eq!(chain.catalog_state.calls.load(Ordering::SeqCst), 0);
    assert!(no_audit_at_c(&chain).await);
    chain.shut_down();
}

/// A gRPC call to B whose time has run out: `DEADLINE_EXCEEDED` at once, C never called; and a
/// caller whose context has ended does not call at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_is_refused_at_b_before_any_work() {
    let chain = start(sqlite_app("chain-spent-b").await, Duration::from_secs(10)).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", chain.catalog))
        .unwrap()
        .connect()
        .await
        .unwrap();

    // A gRPC call with `grpc-timeout: 0n`, sent by hand over HTTP/2: tonic's own client would
    // give up before sending it.
    let message = prost::Message::encode_to_vec(&proto::SlowAlbumsRequest { seconds: 1.0 });
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&message);
    let response = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
        .post(format!(
            "http://{}/ctx.demo.Catalog/SlowAlbums",
            chain.catalog
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "0n")
        .body(frame)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_string();
    assert_eq!(header("grpc-status"), "4", "not DEADLINE_EXCEEDED");
    assert_eq!(header("grpc-message"), "caller's deadline exceeded");

    // Under a context that has ended: not sent.
    let (ctx, _cancel) = Context::background().with_timeout(Duration::ZERO);
    let status = ctx_examples::chain::slow_albums(&ctx, &channel, 1.0)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded);

    assert_eq!(chain.catalog_state.calls.load(Ordering::SeqCst), 0);
    assert!(no_audit_at_c(&chain).await);
    chain.shut_down();
}

/// C's audit trail is empty: C served no slow request.
async fn no_audit_at_c(chain: &Chain) -> bool {
    let rows = chain
        .albums_state
        .audit_rows(&Context::background())
        .await
        .unwrap();
    rows.is_empty()
}

/// The ports the chain listens on are all on 127.0.0.1.
#[tokio::test]
async fn every_service_listens_on_loopback() {
    let chain = start(sqlite_app("chain-loopback").await, Duration::from_secs(1)).await;
    for addr in [chain.edge, chain.catalog, chain.albums] {
        assert_eq!(addr.ip(), SocketAddr::from(([127, 0, 0, 1], 0)).ip());
    }
    chain.shut_down();
}
