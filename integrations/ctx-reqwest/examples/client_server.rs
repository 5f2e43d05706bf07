//! A server whose requests carry contexts, and a client that calls it under contexts of its
//! own: the three ways a request's context ends, seen from both sides.
//!
//! Run it with `cargo run -p ctx-reqwest --example client_server`.

use std::time::Duration;

use axum::{Router, routing::get};
use ctx_core::Context;
use ctx_http::{ContextLayer, RequestContext, RequestEnd};
use ctx_reqwest::{RequestBuilderExt, run};

/// A report that takes 10 s to build: the layer stops it when the request's context ends.
async fn report(ctx: RequestContext) -> &'static str {
    // Says why the request's context ended, whoever ended it (the handler is dropped at its
    // `.await`, so its own code would never get to say it).
    let watched = ctx.clone();
    let _ = ctx.after_func(move || {
        println!(
            "  server: the request's context ended: {}",
            watched.cause().unwrap()
        );
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    "report"
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (root, shutdown) = Context::background().with_cancel();
    let app = Router::new()
        .route("/report", get(report))
        .layer(ContextLayer::new(root.clone()).timeout(Duration::from_millis(500)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/report", listener.local_addr()?);
    let stop = root.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                stop.done().await;
            })
            .await
    });
    let client = reqwest::Client::new();

    println!("1. the client gives up after 100 ms:");
    let (ctx, _cancel) =
        Context::background().with_timeout_cause(Duration::from_millis(100), "caller gave up");
    let err = client.get(&url).send_ctx(&ctx).await.unwrap_err();
    println!("  client: {err}");
    tokio::time::sleep(Duration::from_millis(50)).await;

    println!("2. the server's own timeout (500 ms) passes:");
    let ctx = Context::background();
    let response = client.get(&url).send_ctx(&ctx).await?;
    let status = response.status();
    println!("  client: {status} {}", run(&ctx, response.text()).await?);

    println!("3. the server shuts down with a request in flight:");
    let in_flight = tokio::spawn(client.get(&url).send_ctx(&Context::background()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    shutdown.cancel_with_cause(RequestEnd::ShuttingDown);
    let response = in_flight.await??;
    println!("  client: {} {}", response.status(), response.text().await?);
    server.await??;
    println!("  server: stopped");
    Ok(())
}
