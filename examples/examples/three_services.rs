//! Three services, one deadline, one hang-up: A (axum) calls B (tonic gRPC), which calls C (the
//! album server, axum over SQLite). A gives each request a budget; the time left travels with
//! every call, and a client that hangs up on A stops C's query.
//!
//! ```sh
//! cargo run --example three_services             # A on 127.0.0.1:8090, B on :50051, C on :8091
//! BUDGET_MS=300 cargo run --example three_services
//! DATABASE_URL=postgres://... cargo run --example three_services   # C over PostgreSQL
//! DATABASE_URL=mysql://... cargo run --example three_services      # C over MySQL/MariaDB
//! ```
//!
//! Then, in another terminal:
//!
//! ```sh
//! curl 'http://127.0.0.1:8090/albums/slow?seconds=0.5'               # answers after 0.5 s
//! curl 'http://127.0.0.1:8090/albums/slow?seconds=30'                # 504 when A's budget runs out
//! curl --max-time 1 'http://127.0.0.1:8090/albums/slow?seconds=30'   # hangs up after 1 s
//! curl -H 'grpc-timeout: 0m' 'http://127.0.0.1:8090/albums/slow?seconds=1'  # spent: refused
//! ```
//!
//! It logs through `tracing` (`RUST_LOG`, default `info`): each service's `ContextLayer` logs
//! one line for each request it stopped, and why, in a span that names the service
//! (`service{name="A"}`); `RUST_LOG=info,ctx_reqwest=debug,ctx_tonic=debug` adds the calls
//! aborted on the way, and `sqlx=debug` C's statements.

use std::time::Duration;

use ctx_core::Context;
use ctx_examples::chain::Chain;
use ctx_examples::{App, log_to_stderr};
use ctx_http::Shutdown;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    log_to_stderr();
    // Ctrl-C or SIGTERM, listened for from the start; the chain ends its requests itself.
    let shutdown = Shutdown::on_signals(Duration::ZERO)?;
    let budget = match std::env::var("BUDGET_MS") {
        Ok(ms) => Duration::from_millis(ms.parse().map_err(|_| "BUDGET_MS: not a number")?),
        Err(_) => Duration::from_secs(2),
    };
    let path = std::env::temp_dir().join(format!("ctx-chain-{}.db", std::process::id()));
    let app = match App::from_env(&Context::background(), &path).await {
        Ok(app) => app,
        Err(err) => {
            tracing::error!("could not set up C's database: {err}");
            std::process::exit(2);
        }
    };
    let database = app.describe();
    let chain = Chain::start(app, budget, [8090, 50051, 8091]).await?;
    tracing::info!("A (axum, {budget:?} per request): http://{}", chain.edge);
    tracing::info!("B (tonic gRPC):                  http://{}", chain.catalog);
    tracing::info!("C (axum over {database}):  http://{}", chain.albums);
    tracing::info!(
        "try: curl 'http://{}/albums/slow?seconds=0.5'; Ctrl-C to stop",
        chain.edge
    );
    shutdown.signalled().await;
    tracing::info!("shutting down");
    chain.shut_down();
    // Let the servers answer what is in flight ("server shutting down") and close.
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}
