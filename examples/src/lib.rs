//! The album server of ctx's demo (`cargo run --example album_server`), as a library so that
//! its tests can start it.
//!
//! Every request gets a [`Context`] from [`ContextLayer`]; every handler is an
//! `#[cancellable(timeout = "5s")]` fn, so its context ends when the client hangs up, when
//! 5 s pass, or when the server shuts down, and the query it runs is stopped *inside the
//! database*: SQLite is interrupted, PostgreSQL is sent a cancel request.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ctx_core::{Context, cancellable};
use ctx_http::{ContextLayer, RequestContext};
use ctx_postgres::tokio_postgres;
use ctx_rusqlite::Db;
use rusqlite::functions::FunctionFlags;
use serde::{Deserialize, Serialize};

pub mod chain;
pub mod serve;

/// One row of the `album` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Album {
    /// The key.
    pub id: i64,
    /// The album's title.
    pub title: String,
    /// Who made it.
    pub artist: String,
    /// Its price, in dollars.
    pub price: f64,
}

/// The rows the server seeds its database with.
pub fn seed() -> Vec<Album> {
    [
        (1, "Blue Train", "John Coltrane", 56.99),
        (2, "Jeru", "Gerry Mulligan", 17.99),
        (
            3,
            "Sarah Vaughan and Clifford Brown",
            "Sarah Vaughan",
            39.99,
        ),
        (4, "Kind of Blue", "Miles Davis", 24.99),
        (5, "Mingus Ah Um", "Charles Mingus", 19.99),
    ]
    .into_iter()
    .map(|(id, title, artist, price)| Album {
        id,
        title: title.to_string(),
        artist: artist.to_string(),
        price,
    })
    .collect()
}

/// Where the albums are.
#[derive(Debug)]
pub enum Store {
    /// An embedded SQLite database (the default: nothing to install).
    Sqlite(Db),
    /// A PostgreSQL server (`DATABASE_URL=postgres://...`), through a deadpool-postgres pool
    /// whose connections return to it only when clean.
    Postgres(ctx_postgres::Pool),
}

/// The application's state.
#[derive(Debug)]
pub struct App {
    store: Store,
}

/// What a handler can fail with.
#[derive(Debug)]
pub enum AppError {
    /// The request's context ended: the client left, the deadline passed, or shutdown.
    Stopped(ctx_core::Error),
    /// No such album.
    NotFound,
    /// The database failed.
    Database(String),
}

impl From<ctx_core::Error> for AppError {
    fn from(err: ctx_core::Error) -> AppError {
        AppError::Stopped(err)
    }
}

impl From<ctx_rusqlite::Error> for AppError {
    fn from(err: ctx_rusqlite::Error) -> AppError {
        match err.context_err() {
            Some(err) => AppError::Stopped(err),
            None => AppError::Database(err.to_string()),
        }
    }
}

impl From<ctx_postgres::Error> for AppError {
    fn from(err: ctx_postgres::Error) -> AppError {
        match err.context_err() {
            Some(err) => AppError::Stopped(err),
            None => AppError::Database(err.to_string()),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::Stopped(ctx_core::Error::DeadlineExceeded) => {
                (StatusCode::GATEWAY_TIMEOUT, "context deadline exceeded").into_response()
            }
            AppError::Stopped(ctx_core::Error::Canceled) => {
                (StatusCode::SERVICE_UNAVAILABLE, "context canceled").into_response()
            }
            AppError::NotFound => (StatusCode::NOT_FOUND, "no such album").into_response(),
            AppError::Database(message) => {
                (StatusCode::INTERNAL_SERVER_ERROR, message).into_response()
            }
        }
    }
}

/// The routes, with a context for every request: children of `root` (cancel it with
/// [`ctx_http::RequestEnd::ShuttingDown`] to stop the server), each ending after `request_timeout` if
/// given (the handlers' own 5 s apply anyway: the nearer deadline wins).
pub fn router(app: Arc<App>, root: Context, request_timeout: Option<Duration>) -> Router {
    let layer = match request_timeout {
        Some(timeout) => ContextLayer::new(root).timeout(timeout),
        None => ContextLayer::new(root),
    };
    Router::new()
        .route("/albums", get(list_albums))
        .route("/albums/slow", get(slow_albums))
        .route("/audit", get(audit_trail))
        .route("/albums/{id}", get(get_album))
        .with_state(app)
        .layer(layer)
}

/// `GET /albums`: every album.
#[cancellable(timeout = "5s")]
async fn list_albums(
    ctx: RequestContext,
    State(app): State<Arc<App>>,
) -> Result<Json<Vec<Album>>, AppError> {
    Ok(Json(app.albums(ctx, None).await?))
}

/// `GET /albums/{id}`: one album, or 404.
#[cancellable(timeout = "5s")]
async fn get_album(
    ctx: RequestContext,
    State(app): State<Arc<App>>,
    Path(id): Path<i64>,
) -> Result<Json<Album>, AppError> {
    let mut found = app.albums(ctx, Some(id)).await?;
    found.pop().map(Json).ok_or(AppError::NotFound)
}

/// The query of `GET /albums/slow`.
#[derive(Deserialize)]
struct Slow {
    seconds: f64,
}

/// `GET /albums/slow?seconds=N`: every album, from a query that takes N seconds inside the
/// database. Logs one line if the request is stopped, saying why.
#[cancellable(timeout = "5s")]
async fn slow_albums(
    ctx: RequestContext,
    State(app): State<Arc<App>>,
    Query(slow): Query<Slow>,
) -> Result<Json<Vec<Album>>, AppError> {
    let what = format!("GET /albums/slow?seconds={}", slow.seconds);
    let _audit = Audit::on_drop(app.clone(), ctx, what);
    app.pause(ctx, slow.seconds).await?;
    Ok(Json(app.albums(ctx, None).await?))
}

/// `GET /audit`: the audit trail of `/albums/slow`, oldest first: what was asked, and how it
/// ended (`answered`, or why it was stopped).
async fn audit_trail(
    ctx: RequestContext,
    State(app): State<Arc<App>>,
) -> Result<Json<Vec<AuditRow>>, AppError> {
    Ok(Json(app.audit_rows(&ctx).await?))
}

/// One row of the audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRow {
    /// The request.
    pub what: String,
    /// `answered`, or the cause its context ended with (`client disconnected`, ...).
    pub outcome: String,
    /// The time the request had when its handler started, in ms: the nearer of its own 5 s and
    /// what its caller gave it (`grpc-timeout`).
    pub budget_ms: Option<i64>,
}

/// Writes the audit row of a request when its handler ends, however it ends: answered, or
/// dropped at its `.await` because its context ended (the client hung up, the deadline
/// passed). The request's context has ended by then, so the row is written under a *shield*
/// of it: a context that keeps its values, ignores its end, and has 1 s of its own, so a
/// database that hangs cannot keep the write forever either.
struct Audit {
    app: Arc<App>,
    ctx: Context,
    what: String,
    budget: Option<Duration>,
    runtime: tokio::runtime::Handle,
}

impl Audit {
    fn on_drop(app: Arc<App>, ctx: &Context, what: String) -> Audit {
        Audit {
            app,
            ctx: ctx.clone(),
            what,
            budget: ctx.remaining(),
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

impl Drop for Audit {
    fn drop(&mut self) {
        let outcome = match self.ctx.cause() {
            Some(cause) => cause.to_string(),
            None => "answered".to_string(),
        };
        let (shielded, handle) = self.ctx.shield(AUDIT_BUDGET);
        let (app, what) = (self.app.clone(), std::mem::take(&mut self.what));
        let row = AuditRow {
            what,
            outcome,
            budget_ms: self
                .budget
                .map(|left| i64::try_from(left.as_millis()).unwrap_or(i64::MAX)),
        };
        self.runtime.spawn(async move {
            let _handle = handle;
            if let Err(err) = app.write_audit(&shielded, &row).await {
                tracing::warn!(what = row.what, error = ?err, "audit row not written");
            }
        });
    }
}

/// How long an audit row may take to write, once its request has ended.
const AUDIT_BUDGET: Duration = Duration::from_secs(1);

/// Logs through `tracing` to stderr, filtered by `RUST_LOG` (default `info`): the demo's
/// binaries call it first.
pub fn log_to_stderr() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// A tower layer that runs each request of a service in a span `service{name=...}`, so that
/// the log of several services in one process says which one spoke.
#[derive(Clone, Copy, Debug)]
pub struct ServiceSpan(pub &'static str);

impl<S> tower_layer::Layer<S> for ServiceSpan {
    type Service = ServiceSpanned<S>;

    fn layer(&self, inner: S) -> ServiceSpanned<S> {
        ServiceSpanned {
            inner,
            name: self.0,
        }
    }
}

/// The service of [`ServiceSpan`].
#[derive(Clone, Debug)]
pub struct ServiceSpanned<S> {
    inner: S,
    name: &'static str,
}

impl<S, R> tower_service::Service<R> for ServiceSpanned<S>
where
    S: tower_service::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tracing::instrument::Instrumented<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let span = tracing::info_span!("service", name = self.name);
        // Entered for the call too: what the layers below capture there is in the span.
        let future = span.in_scope(|| self.inner.call(req));
        tracing::Instrument::instrument(future, span)
    }
}

impl App {
    /// The app over an embedded SQLite database at `path`, created and seeded afresh.
    pub fn sqlite(path: &std::path::Path, connections: usize) -> rusqlite::Result<App> {
        let _ = std::fs::remove_file(path);
        let mut conns = Vec::with_capacity(connections);
        for _ in 0..connections.max(1) {
            let conn = rusqlite::Connection::open(path)?;
            conn.busy_timeout(Duration::from_secs(5))?;
            // `pause_ms(n)` sleeps n ms per row it is called for: a slow query made of many
            // short steps, which SQLite can interrupt between any two of them.
            conn.create_scalar_function("pause_ms", 1, FunctionFlags::SQLITE_UTF8, |f| {
                let millis = f.get::<i64>(0)?.clamp(0, 1000) as u64;
                std::thread::sleep(Duration::from_millis(millis));
                Ok(1i64)
            })?;
            conns.push(conn);
        }
        conns[0].execute_batch(
            "CREATE TABLE album (id INTEGER PRIMARY KEY, title TEXT NOT NULL,
                                 artist TEXT NOT NULL, price REAL NOT NULL);
             CREATE TABLE audit (n INTEGER PRIMARY KEY, what TEXT NOT NULL, outcome TEXT NOT NULL,
                                 budget_ms INTEGER);",
        )?;
        for album in seed() {
            conns[0].execute(
                "INSERT INTO album (id, title, artist, price) VALUES (?1, ?2, ?3, ?4)",
                (album.id, &album.title, &album.artist, album.price),
            )?;
        }
        Ok(App::new(Store::Sqlite(Db::from_connections(conns)?)))
    }

    /// The app over PostgreSQL at `url`; creates and seeds the `album` table.
    pub async fn postgres(ctx: &Context, url: &str) -> Result<App, AppError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| AppError::Database(e.to_string()))?;
        config.application_name("ctx-album-demo");
        let pool = ctx_postgres::Pool::new(config, tokio_postgres::NoTls, 8).await;
        let client = pool.get(ctx).await?;
        client
            .batch_execute(
                ctx,
                "DROP TABLE IF EXISTS album;
                 CREATE TABLE album (id BIGINT PRIMARY KEY, title TEXT NOT NULL,
                                     artist TEXT NOT NULL, price DOUBLE PRECISION NOT NULL);
                 DROP TABLE IF EXISTS audit;
                 CREATE TABLE audit (n BIGSERIAL PRIMARY KEY, what TEXT NOT NULL,
                                     outcome TEXT NOT NULL, budget_ms BIGINT);",
            )
            .await?;
        for album in seed() {
            client
                .execute(
                    ctx,
                    "INSERT INTO album (id, title, artist, price) VALUES ($1, $2, $3, $4)",
                    &[&album.id, &album.title, &album.artist, &album.price],
                )
                .await?;
        }
        drop(client);
        Ok(App::new(Store::Postgres(pool)))
    }

    fn new(store: Store) -> App {
        App { store }
    }

    /// The database connections in use right now: a query holds one until it has stopped in
    /// the database (SQLite interrupted, PostgreSQL's cancel acknowledged), which is what a
    /// metrics endpoint would report, and what the tests watch.
    pub fn connections_in_use(&self) -> usize {
        match &self.store {
            Store::Sqlite(db) => db.in_use(),
            Store::Postgres(pool) => {
                let status = pool.deadpool().status();
                status.size.saturating_sub(status.available)
            }
        }
    }

    /// Which database this is, for the start-up line.
    pub fn describe(&self) -> &'static str {
        match self.store {
            Store::Sqlite(_) => "SQLite (embedded)",
            Store::Postgres(_) => "PostgreSQL",
        }
    }

    async fn albums(&self, ctx: &Context, id: Option<i64>) -> Result<Vec<Album>, AppError> {
        match &self.store {
            Store::Sqlite(db) => Ok(db
                .call(ctx, move |conn| {
                    let mut stmt = conn.prepare(
                        "SELECT id, title, artist, price FROM album
                         WHERE ?1 IS NULL OR id = ?1 ORDER BY id",
                    )?;
                    let rows = stmt.query_map([id], |row| {
                        Ok(Album {
                            id: row.get(0)?,
                            title: row.get(1)?,
                            artist: row.get(2)?,
                            price: row.get(3)?,
                        })
                    })?;
                    rows.collect()
                })
                .await?),
            Store::Postgres(pool) => {
                let client = pool.get(ctx).await?;
                let rows = client
                    .query(
                        ctx,
                        "SELECT id, title, artist, price FROM album
                         WHERE $1::BIGINT IS NULL OR id = $1 ORDER BY id",
                        &[&id],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|row| Album {
                        id: row.get(0),
                        title: row.get(1),
                        artist: row.get(2),
                        price: row.get(3),
                    })
                    .collect())
            }
        }
    }

    /// Appends a row to the audit trail.
    async fn write_audit(&self, ctx: &Context, row: &AuditRow) -> Result<(), AppError> {
        match &self.store {
            Store::Sqlite(db) => {
                let row = row.clone();
                db.call(ctx, move |conn| {
                    conn.execute(
                        "INSERT INTO audit (what, outcome, budget_ms) VALUES (?1, ?2, ?3)",
                        (&row.what, &row.outcome, row.budget_ms),
                    )
                })
                .await?;
            }
            Store::Postgres(pool) => {
                let client = pool.get(ctx).await?;
                client
                    .execute(
                        ctx,
                        "INSERT INTO audit (what, outcome, budget_ms) VALUES ($1, $2, $3)",
                        &[&row.what, &row.outcome, &row.budget_ms],
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// The audit trail, oldest first.
    pub async fn audit_rows(&self, ctx: &Context) -> Result<Vec<AuditRow>, AppError> {
        const SQL: &str = "SELECT what, outcome, budget_ms FROM audit ORDER BY n";
        match &self.store {
            Store::Sqlite(db) => Ok(db
                .call(ctx, |conn| {
                    let mut stmt = conn.prepare(SQL)?;
                    let rows = stmt.query_map([], |row| {
                        Ok(AuditRow {
                            what: row.get(0)?,
                            outcome: row.get(1)?,
                            budget_ms: row.get(2)?,
                        })
                    })?;
                    rows.collect()
                })
                .await?),
            Store::Postgres(pool) => {
                let client = pool.get(ctx).await?;
                let rows = client.query(ctx, SQL, &[]).await?;
                Ok(rows
                    .iter()
                    .map(|row| AuditRow {
                        what: row.get(0),
                        outcome: row.get(1),
                        budget_ms: row.get(2),
                    })
                    .collect())
            }
        }
    }

    /// A query that takes `seconds` inside the database.
    async fn pause(self: &Arc<Self>, ctx: &Context, seconds: f64) -> Result<(), AppError> {
        let seconds = seconds.clamp(0.0, 3600.0);
        match &self.store {
            Store::Sqlite(db) => {
                let millis = (seconds * 1000.0) as i64;
                db.call(ctx, move |conn| {
                    conn.query_row(
                        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < ?1)
                         SELECT count(pause_ms(1)) FROM t",
                        [millis],
                        |_| Ok(()),
                    )
                })
                .await?;
            }
            Store::Postgres(pool) => {
                let client = pool.get(ctx).await?;
                client
                    .execute(ctx, "SELECT pg_sleep($1)", &[&seconds])
                    .await?;
            }
        }
        Ok(())
    }
}
