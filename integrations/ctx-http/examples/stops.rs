//! A server whose every request carries a context, and the three ways that context ends: the
//! client hangs up, the layer's timeout passes, the server shuts down. Each handler reports
//! why and how long after the event its context ended.
//!
//! Run it with `cargo run -p ctx-http --features axum --example stops`.

use std::time::Duration;

use axum::{Router, routing::get};
use ctx_core::Context;
use ctx_http::{ContextLayer, RequestContext};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A handler that would take a minute; it sends its context to `main` and waits.
async fn slow(ctx: RequestContext, started: mpsc::UnboundedSender<Context>) -> &'static str {
    let _ = started.send(ctx.0.clone());
    tokio::time::sleep(Duration::from_secs(60)).await;
    "done"
}

/// Sends `GET /slow` on a new connection and returns the connection unread.
async fn request(addr: std::net::SocketAddr) -> std::io::Result<TcpStream> {
    let mut conn = TcpStream::connect(addr).await?;
    conn.write_all(b"GET /slow HTTP/1.1\r\nhost: demo\r\n\r\n")
        .await?;
    Ok(conn)
}

/// Waits for `ctx` to end and prints why, and how long after `since`.
async fn report(what: &str, ctx: &Context, since: Instant) {
    ctx.done().await;
    println!(
        "{what}: the request's context ended {:?} later: {} ({})",
        since.elapsed(),
        ctx.err().expect("ended"),
        ctx.cause().expect("ended"),
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (root, shutdown) = Context::background().with_cancel();
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let app = Router::new()
        .route("/slow", get(move |ctx| slow(ctx, started_tx.clone())))
        .layer(ContextLayer::new(root.clone()).timeout(Duration::from_millis(300)));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    // 1. The client hangs up mid-request.
    let conn = request(addr).await?;
    let ctx = started.recv().await.expect("the handler started");
    let hung_up = Instant::now();
    drop(conn);
    report("client hung up", &ctx, hung_up).await;

    // 2. The layer's 300 ms timeout passes: the client is answered 504.
    let mut conn = request(addr).await?;
    let ctx = started.recv().await.expect("the handler started");
    let sent = Instant::now();
    report("300 ms timeout", &ctx, sent).await;
    let mut answer = vec![0; 1024];
    let n = conn.read(&mut answer).await?;
    let status_line = String::from_utf8_lossy(&answer[..n]);
    println!(
        "  the client read: {}",
        status_line.lines().next().unwrap_or("")
    );

    // 3. The server shuts down: every request's context ends with it.
    let _conn = request(addr).await?;
    let ctx = started.recv().await.expect("the handler started");
    let stopping = Instant::now();
    shutdown.cancel_with_cause(ctx_http::RequestEnd::ShuttingDown);
    report("server shutting down", &ctx, stopping).await;

    server.abort();
    Ok(())
}
