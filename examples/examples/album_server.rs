//! The demo: an HTTP server of albums over an embedded SQLite database it creates and seeds
//! itself, on a ctx-sqlx pool (or over PostgreSQL, MySQL or MariaDB, given `DATABASE_URL`).
//! Every request has 5 s (the layer's timeout, and each handler's own
//! `#[cancellable(timeout = "5s")]`): when a client hangs up or 5 s pass, the handler stops
//! and so does its query, inside the database.
//!
//! ```sh
//! cargo run --example album_server                    # SQLite, on 127.0.0.1:8080
//! DATABASE_URL=postgres://user:pass@127.0.0.1/db cargo run --example album_server
//! DATABASE_URL=mysql://user:pass@127.0.0.1/db cargo run --example album_server  # or mariadb://
//! PORT=3000 cargo run --example album_server
//! RUST_LOG=info,ctx_sqlx=debug cargo run --example album_server   # and every query stopped
//! RUST_LOG=info,sqlx=debug cargo run --example album_server       # and every statement
//! ```
//!
//! A client gets 10 s to send a request head (a keep-alive connection idle that long is
//! closed), and a write to a client that stops reading fails after 10 s without progress
//! (`ctx_examples::serve`); a request body is bounded by the request's 5 s.
//!
//! It logs through `tracing` (`RUST_LOG`, default `info`): one line for each request stopped
//! before its answer was done, from `ContextLayer` (`request ended early cause=... origin=...
//! elapsed_ms=... method=... path=...`); at `debug`, sqlx's own events add each statement it
//! ran and how long it took (a stopped one included).
//!
//! Then, in another terminal:
//!
//! ```sh
//! curl http://127.0.0.1:8080/albums
//! curl http://127.0.0.1:8080/albums/2
//! curl 'http://127.0.0.1:8080/albums/slow?seconds=2'               # answers after 2 s
//! curl 'http://127.0.0.1:8080/albums/slow?seconds=30'              # 504 after 5 s
//! curl --max-time 1 'http://127.0.0.1:8080/albums/slow?seconds=30' # hangs up after 1 s
//! ```

use std::sync::Arc;
use std::time::Duration;

use ctx_examples::serve::{Limits, serve};
use ctx_examples::{App, log_to_stderr, router};
use ctx_http::Shutdown;

/// How long the requests in flight may run on after Ctrl-C or SIGTERM.
const DRAIN: Duration = Duration::from_secs(10);

/// The most threads of tokio's blocking pool, where SQLite's calls run. The pool adds a thread
/// whenever a call finds none idle, and a thread leaves only after 10 s without work; under
/// steady load the idle threads share the work, so none leaves and every burst adds threads
/// for good, with their stacks and allocator arenas (84 threads and +20 % resident memory
/// after 30 minutes of `scripts/soak.sh`). The database never runs more calls at once than its
/// 8 connections, so 16 threads are plenty.
const BLOCKING_THREADS: usize = 16;

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()?
        .block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    log_to_stderr();
    // Ctrl-C or SIGTERM: stop accepting, give the requests in flight 10 s, then end them (and
    // their queries) with "server shutting down (SIGTERM)"; a second signal ends them at once.
    let shutdown = Shutdown::on_signals(DRAIN)?;
    let root = shutdown.context().clone();
    // SQLite in a fresh file unless DATABASE_URL names a server; a malformed one is an error
    // that says so (the URL itself is not repeated: it may hold a password).
    let path = std::env::temp_dir().join(format!("ctx-albums-{}.db", std::process::id()));
    let app = match App::from_env(&root, &path).await {
        Ok(app) => app,
        Err(err) => {
            tracing::error!("could not set up the database: {err}");
            std::process::exit(2);
        }
    };
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".to_string());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    tracing::info!(
        "albums on http://{} over {}; Ctrl-C to stop",
        listener.local_addr()?,
        app.describe()
    );
    // The layer's 5 s, as the handlers' own: the layer sees (and logs) the requests it stops.
    let routes = router(Arc::new(app), root.clone(), Some(Duration::from_secs(5)));
    let signalled = shutdown.signalled();
    // Not `axum::serve`, which bounds no slow client: 10 s for a request head (or an idle
    // keep-alive connection), 10 s for a write to a client that stopped reading.
    serve(listener, routes, Limits::default(), async move {
        signalled.await;
        tracing::info!(
            "shutting down: no new connections; requests in flight have {} s",
            DRAIN.as_secs()
        );
    })
    .await;
    Ok(())
}
