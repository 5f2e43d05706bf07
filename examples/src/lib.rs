//! The album server of ctx's demo (`cargo run --example album_server`), as a library so that
//! its tests can start it.
//!
//! Every request gets a [`Context`] from [`ContextLayer`]; every handler is an
//! `#[cancellable(timeout = "5s")]` fn, so its context ends when the client hangs up, when
//! 5 s pass, or when the server shuts down, and the query it runs is stopped *inside the
//! database*: the albums are on a [`ctx_sqlx::Pool`], over SQLite (embedded, the default),
//! PostgreSQL or MySQL/MariaDB, and a query whose context ends is interrupted in SQLite,
//! cancelled on PostgreSQL (`pg_cancel_backend`) or killed on MySQL (`KILL QUERY`).

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ctx_core::{Context, cancellable};
use ctx_http::{ContextLayer, RequestContext};
use ctx_sqlx::Pool;
use serde::{Deserialize, Serialize};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{ConnectOptions, Connection, Row};

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

/// Where the albums are: a sqlx pool under ctx-sqlx, whose connections go back to it only
/// once clean (no stop of a query that ended can reach the next one, no transaction open).
#[derive(Debug)]
pub enum Store {
    /// An embedded SQLite database (the default: nothing to install).
    Sqlite(Pool<sqlx::Sqlite>),
    /// A PostgreSQL server (`DATABASE_URL=postgres://...`).
    Postgres(Pool<sqlx::Postgres>),
    /// A MySQL or MariaDB server (`DATABASE_URL=mysql://...` or `mariadb://...`).
    MySql(Pool<sqlx::MySql>),
}

/// Inserts [`seed`]'s rows with `$sql`, in one transaction on `$pool` under `$ctx`.
macro_rules! seed_in {
    ($pool:expr, $ctx:expr, $sql:expr) => {
        $pool
            .transaction($ctx, |tx| {
                Box::pin(async move {
                    for album in seed() {
                        sqlx::query($sql)
                            .bind(album.id)
                            .bind(album.title)
                            .bind(album.artist)
                            .bind(album.price)
                            .execute(&mut **tx)
                            .await?;
                    }
                    Ok(())
                })
            })
            .await?
    };
}

/// Runs `$body` with `$pool` bound to the store's pool, whichever database it is: the same
/// sqlx code for the three (only the placeholders of the SQL differ, see `App::pick`).
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            Store::Sqlite($pool) => $body,
            Store::Postgres($pool) => $body,
            Store::MySql($pool) => $body,
        }
    };
}

/// The application's state.
#[derive(Debug)]
pub struct App {
    store: Store,
    /// When the SQLite pause last slept a row, in µs on [`pause_clock`] (0: never).
    paused_at: Arc<AtomicU64>,
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
    /// The database's address is not one the app can use (a malformed `DATABASE_URL`).
    Config(String),
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Stopped(err) => write!(f, "{err}"),
            AppError::NotFound => f.write_str("no such album"),
            AppError::Database(message) => write!(f, "database error: {message}"),
            AppError::Config(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for AppError {}

impl From<ctx_core::Error> for AppError {
    fn from(err: ctx_core::Error) -> AppError {
        AppError::Stopped(err)
    }
}

impl From<ctx_sqlx::Error> for AppError {
    fn from(err: ctx_sqlx::Error) -> AppError {
        match err.context_err() {
            Some(err) => AppError::Stopped(err),
            None => AppError::Database(err.to_string()),
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> AppError {
        AppError::Database(err.to_string())
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
            AppError::Database(message) | AppError::Config(message) => {
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
    /// The app over an embedded SQLite database at `path`, created and seeded afresh (any file
    /// already there is replaced), on a pool of `connections`.
    ///
    /// SQLite has no `sleep()` (and sqlx registers no SQL functions), so the slow query is
    /// made of a collating sequence that sleeps: `sleep_until` compares strings as `BINARY`
    /// does, but first, if the left one is a number, sleeps until that instant (in µs on
    /// [`pause_clock`]), on the connection's own thread, inside SQLite. The slow query
    /// compares one row per 250 µs of the pause, each naming its instant, and ctx-sqlx's
    /// interrupt (a progress handler, every 100 virtual-machine instructions, a few rows) stops
    /// it between two of them.
    pub async fn sqlite(
        ctx: &Context,
        path: &std::path::Path,
        connections: u32,
    ) -> Result<App, AppError> {
        for stale in ["", "-journal", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(stale);
            let _ = std::fs::remove_file(name);
        }
        let paused_at = Arc::new(AtomicU64::new(0));
        let seen = paused_at.clone();
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .collation("sleep_until", move |a: &str, b: &str| {
                if let Ok(micros) = a.parse::<u64>() {
                    let at = pause_clock() + Duration::from_micros(micros);
                    std::thread::sleep(at.saturating_duration_since(Instant::now()));
                    seen.store(micros_since_pause_clock(), Ordering::Relaxed);
                }
                a.cmp(b)
            })
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
        let pool = ctx
            .run(
                SqlitePoolOptions::new()
                    .max_connections(connections.max(1))
                    .connect_with(options),
            )
            .await??;
        let pool = Pool::new(pool);
        for sql in [
            "CREATE TABLE album (id INTEGER PRIMARY KEY, title TEXT NOT NULL,
                                 artist TEXT NOT NULL, price REAL NOT NULL)",
            "CREATE TABLE audit (n INTEGER PRIMARY KEY, what TEXT NOT NULL,
                                 outcome TEXT NOT NULL, budget_ms INTEGER)",
        ] {
            pool.execute(ctx, sqlx::query(sql)).await?;
        }
        seed_in!(pool, ctx, INSERT_ALBUM);
        let mut app = App::new(Store::Sqlite(pool));
        app.paused_at = paused_at;
        Ok(app)
    }

    /// The app over the PostgreSQL server at `url` (`postgres://user:pass@host/db`); creates
    /// (afresh) and seeds its tables.
    pub async fn postgres(ctx: &Context, url: &str) -> Result<App, AppError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|err| AppError::Config(format!("invalid PostgreSQL URL ({err})")))?
            .application_name(APPLICATION_NAME)
            // No `NOTICE`s (`DROP TABLE IF EXISTS`'s "does not exist, skipping"), which sqlx
            // would log at `INFO` beside the demo's own lines.
            .options([("client_min_messages", "warning")])
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
        // One connection first, by itself: an unreachable server or a wrong password is then
        // reported as such, at once (a pool retries until its acquire timeout, and says so).
        ctx.run(options.connect()).await??.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_lazy_with(options);
        let pool = Pool::new(pool);
        for sql in [
            "DROP TABLE IF EXISTS album",
            "CREATE TABLE album (id BIGINT PRIMARY KEY, title TEXT NOT NULL,
                                 artist TEXT NOT NULL, price DOUBLE PRECISION NOT NULL)",
            "DROP TABLE IF EXISTS audit",
            "CREATE TABLE audit (n BIGSERIAL PRIMARY KEY, what TEXT NOT NULL,
                                 outcome TEXT NOT NULL, budget_ms BIGINT)",
        ] {
            pool.execute(ctx, sqlx::query(sql)).await?;
        }
        seed_in!(pool, ctx, INSERT_ALBUM_PG);
        Ok(App::new(Store::Postgres(pool)))
    }

    /// The app over the MySQL or MariaDB server at `url` (`mysql://user:pass@host/db`, or
    /// `mariadb://...`); creates (afresh) and seeds its tables.
    pub async fn mysql(ctx: &Context, url: &str) -> Result<App, AppError> {
        let options = MySqlConnectOptions::from_str(url)
            .map_err(|err| AppError::Config(format!("invalid MySQL URL ({err})")))?
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
        // One connection first, by itself (see `postgres`).
        ctx.run(options.connect()).await??.close().await?;
        let pool = MySqlPoolOptions::new()
            .max_connections(8)
            .connect_lazy_with(options);
        let pool = Pool::new(pool);
        for sql in [
            "DROP TABLE IF EXISTS album",
            "CREATE TABLE album (id BIGINT PRIMARY KEY, title TEXT NOT NULL,
                                 artist TEXT NOT NULL, price DOUBLE NOT NULL)",
            "DROP TABLE IF EXISTS audit",
            "CREATE TABLE audit (n BIGINT AUTO_INCREMENT PRIMARY KEY, what TEXT NOT NULL,
                                 outcome TEXT NOT NULL, budget_ms BIGINT)",
        ] {
            pool.execute(ctx, sqlx::query(sql)).await?;
        }
        seed_in!(pool, ctx, INSERT_ALBUM);
        Ok(App::new(Store::MySql(pool)))
    }

    /// The app over the server `url` names by its scheme: `postgres://` (or `postgresql://`)
    /// for PostgreSQL, `mysql://` or `mariadb://` for MySQL and MariaDB.
    ///
    /// # Errors
    ///
    /// [`AppError::Config`] for a URL of another scheme, or one the driver cannot read (the
    /// message never repeats the URL, which may hold a password); [`AppError::Database`] if the
    /// server cannot be reached or the tables set up.
    pub async fn connect(ctx: &Context, url: &str) -> Result<App, AppError> {
        let scheme = url.split_once("://").map(|(scheme, _)| scheme);
        match scheme.map(str::to_ascii_lowercase).as_deref() {
            Some("postgres" | "postgresql") => App::postgres(ctx, url).await,
            Some("mysql" | "mariadb") => App::mysql(ctx, url).await,
            _ => Err(AppError::Config(
                "invalid URL: it must start with postgres://, postgresql://, mysql:// or mariadb://"
                    .to_string(),
            )),
        }
    }

    /// The app the demo's binaries run: over the server in `DATABASE_URL` if it is set (see
    /// [`connect`](App::connect)), else over a fresh SQLite file at `sqlite_path`.
    ///
    /// # Errors
    ///
    /// As [`connect`](App::connect) and [`sqlite`](App::sqlite), the message saying that
    /// `DATABASE_URL` was used.
    pub async fn from_env(ctx: &Context, sqlite_path: &std::path::Path) -> Result<App, AppError> {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => App::connect(ctx, &url).await.map_err(|err| match err {
                AppError::Config(why) => AppError::Config(format!("DATABASE_URL: {why}")),
                AppError::Database(why) => AppError::Database(format!("DATABASE_URL: {why}")),
                other => other,
            }),
            _ => App::sqlite(ctx, sqlite_path, 8).await,
        }
    }

    fn new(store: Store) -> App {
        App {
            store,
            paused_at: Arc::default(),
        }
    }

    /// The database connections in use right now (the pool's size minus its idle ones): a query
    /// holds one until it has stopped in the database and its connection is clean again (SQLite
    /// interrupted, PostgreSQL's cancel or MySQL's `KILL QUERY` acted on), which is what a
    /// metrics endpoint would report, and what the tests watch.
    pub fn connections_in_use(&self) -> usize {
        on_pool!(&self.store, pool => {
            let pool = pool.get_ref();
            (pool.size() as usize).saturating_sub(pool.num_idle())
        })
    }

    /// Whether nothing runs in the database for this app: no connection is in use
    /// ([`connections_in_use`](App::connections_in_use)) and, on SQLite, the slow endpoint's
    /// pause has slept no row in the last 20 ms. The second half sees inside SQLite itself: a
    /// connection that ctx-sqlx gave up on (closed as dirty) is no longer in use, but the
    /// statement on it would still be sleeping rows if it had not been interrupted.
    pub fn nothing_running(&self) -> bool {
        let last = self.paused_at.load(Ordering::Relaxed);
        self.connections_in_use() == 0
            && (last == 0 || micros_since_pause_clock().saturating_sub(last) > 20_000)
    }

    /// Which database this is, for the start-up line.
    pub fn describe(&self) -> &'static str {
        match self.store {
            Store::Sqlite(_) => "SQLite (embedded)",
            Store::Postgres(_) => "PostgreSQL",
            Store::MySql(_) => "MySQL/MariaDB",
        }
    }

    async fn albums(&self, ctx: &Context, id: Option<i64>) -> Result<Vec<Album>, AppError> {
        let rows = on_pool!(&self.store, pool => {
            let query = match id {
                None => sqlx::query(
                    "SELECT id, title, artist, price FROM album ORDER BY id",
                ),
                Some(id) => sqlx::query(self.pick(
                    "SELECT id, title, artist, price FROM album WHERE id = ?",
                    "SELECT id, title, artist, price FROM album WHERE id = $1",
                ))
                .bind(id),
            };
            pool.fetch_all(ctx, query).await?.iter().map(|row| {
                Ok(Album {
                    id: row.try_get(0)?,
                    title: row.try_get(1)?,
                    artist: row.try_get(2)?,
                    price: row.try_get(3)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
        });
        Ok(rows?)
    }

    /// Appends a row to the audit trail.
    async fn write_audit(&self, ctx: &Context, row: &AuditRow) -> Result<(), AppError> {
        on_pool!(&self.store, pool => {
            let insert = sqlx::query(self.pick(
                "INSERT INTO audit (what, outcome, budget_ms) VALUES (?, ?, ?)",
                "INSERT INTO audit (what, outcome, budget_ms) VALUES ($1, $2, $3)",
            ))
            .bind(&row.what)
            .bind(&row.outcome)
            .bind(row.budget_ms);
            pool.execute(ctx, insert).await?;
        });
        Ok(())
    }

    /// The audit trail, oldest first.
    pub async fn audit_rows(&self, ctx: &Context) -> Result<Vec<AuditRow>, AppError> {
        const SQL: &str = "SELECT what, outcome, budget_ms FROM audit ORDER BY n";
        let rows = on_pool!(&self.store, pool => {
            pool.fetch_all(ctx, sqlx::query(SQL)).await?.iter().map(|row| {
                Ok(AuditRow {
                    what: row.try_get(0)?,
                    outcome: row.try_get(1)?,
                    budget_ms: row.try_get(2)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
        });
        Ok(rows?)
    }

    /// A query that takes `seconds` inside the database: `pg_sleep` on PostgreSQL, `SLEEP` on
    /// MySQL and MariaDB, and on SQLite one row per 250 µs, each compared once with the
    /// `sleep_until` collating sequence (see [`sqlite`](App::sqlite)).
    async fn pause(&self, ctx: &Context, seconds: f64) -> Result<(), AppError> {
        let seconds = if seconds.is_finite() {
            seconds.clamp(0.0, 3600.0)
        } else {
            0.0
        };
        match &self.store {
            Store::Sqlite(pool) => {
                let micros = (seconds * 1e6).round() as i64;
                // In `run`, so that the pause is counted from when the statement is sent (after
                // any wait for a connection), not from when it was asked for.
                pool.run(ctx, move |conn| {
                    let start = i64::try_from(pause_clock().elapsed().as_micros()).unwrap_or(0);
                    Box::pin(
                        sqlx::query(
                            "WITH RECURSIVE t(at) AS (
                                 SELECT ?1 UNION ALL SELECT min(at + 250, ?2) FROM t WHERE at < ?2)
                             SELECT count(*) FROM t WHERE CAST(at AS TEXT) COLLATE sleep_until <> ''",
                        )
                        .bind(start)
                        .bind(start.saturating_add(micros))
                        .fetch_one(conn),
                    )
                })
                .await?;
            }
            Store::Postgres(pool) => {
                pool.execute(ctx, sqlx::query("SELECT pg_sleep($1)").bind(seconds))
                    .await?;
            }
            Store::MySql(pool) => {
                pool.execute(ctx, sqlx::query("SELECT SLEEP(?)").bind(seconds))
                    .await?;
            }
        }
        Ok(())
    }

    /// `question_marks` (SQLite, MySQL), or `dollars` on PostgreSQL: the same SQL with the
    /// placeholders each database reads.
    fn pick(&self, question_marks: &'static str, dollars: &'static str) -> &'static str {
        match self.store {
            Store::Postgres(_) => dollars,
            Store::Sqlite(_) | Store::MySql(_) => question_marks,
        }
    }
}

/// The clock of the SQLite pause's `sleep_until` collating sequence: its instants are in µs
/// since this one (the first time it is asked for).
pub fn pause_clock() -> Instant {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn micros_since_pause_clock() -> u64 {
    u64::try_from(pause_clock().elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// The application name the PostgreSQL connections give the server (`pg_stat_activity` shows
/// it).
pub const APPLICATION_NAME: &str = "ctx-album-demo";

/// How long a SQLite statement waits for a lock another connection holds before it fails
/// with `database is locked`: below the handlers' 5 s, so that a locked database is answered
/// with that error rather than a timeout. The wait is not interrupted by a context's end
/// (SQLite does not call the progress handler while it waits).
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(2);

const INSERT_ALBUM: &str = "INSERT INTO album (id, title, artist, price) VALUES (?, ?, ?, ?)";
const INSERT_ALBUM_PG: &str =
    "INSERT INTO album (id, title, artist, price) VALUES ($1, $2, $3, $4)";
