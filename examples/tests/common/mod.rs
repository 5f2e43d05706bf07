//! What the demo's end-to-end tests share: databases to run the album server over, a watcher
//! of what runs on a database server, and waiting.

#![allow(dead_code, unreachable_pub)] // each test file uses a part of it

use std::time::{Duration, Instant};

use ctx_core::Context;
use ctx_examples::{APPLICATION_NAME, App};
use sqlx::Row;

/// A hard bound for things that take milliseconds, safe on a loaded 2-core CI machine.
pub const HARD_BOUND: Duration = Duration::from_secs(3);

/// The SQLite file of the test `name`, in the temporary directory, named after this process.
/// The files of earlier test processes that have ended are removed first: nothing removes a
/// test's own file (the app may still hold it when the test ends), so without this every run
/// left its databases behind.
pub fn sqlite_path(name: &str) -> std::path::PathBuf {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(remove_files_of_ended_runs);
    std::env::temp_dir().join(format!("ctx-demo-test-{name}-{}.db", std::process::id()))
}

/// Removes `ctx-demo-test-<name>-<pid>.db` (and its `-wal`, `-shm`) where no process `<pid>`
/// runs any more. Only where `/proc` tells which processes run (Linux); elsewhere, nothing.
fn remove_files_of_ended_runs() {
    if !std::path::Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix("ctx-demo-test-") else {
            continue;
        };
        let stem = rest.split(".db").next().unwrap_or(rest);
        let Some(pid) = stem.rsplit('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The album app over a fresh SQLite file named after the test ([`sqlite_path`]).
pub async fn sqlite_app(name: &str) -> App {
    App::sqlite(&Context::background(), &sqlite_path(name), 8)
        .await
        .unwrap()
}

/// The URL of a server from `var`, or `None` (the test is then skipped, saying so) if it is not
/// set; under `CI=true` a missing server is a failure.
pub fn server_url(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{var} is not set under CI=true: .ci/run must start {what}")
        }
        _ => {
            eprintln!("skipped: {var} not set");
            None
        }
    }
}

/// The album app over the PostgreSQL server at `DATABASE_URL`, and a watcher of that server;
/// `None` if it is not set (see [`server_url`]).
pub async fn postgres_app(ctx: &Context) -> Option<(App, Watcher)> {
    let url = server_url("DATABASE_URL", "PostgreSQL")?;
    let watcher = Watcher::connect(&url).await;
    let app = App::postgres(ctx, &url).await.unwrap();
    Some((app, watcher))
}

/// The album app over the MySQL or MariaDB server at `MYSQL_URL`, and a watcher of that
/// server; `None` if it is not set (see [`server_url`]).
pub async fn mysql_app(ctx: &Context) -> Option<(App, Watcher)> {
    let url = server_url("MYSQL_URL", "MariaDB")?;
    let watcher = Watcher::connect(&url).await;
    let app = App::mysql(ctx, &url).await.unwrap();
    Some((app, watcher))
}

/// A connection of its own to the demo's database server, that sees what the demo runs there:
/// only on the sessions opened after it (made before the app), so that what an earlier run
/// left on a shared server is not counted (PostgreSQL finishes a `pg_sleep` whose client has
/// gone away).
pub enum Watcher {
    /// The pool, and the server's clock when the watcher was made.
    Postgres(sqlx::PgPool, String),
    /// The pool, and the watcher's connection id (later ones are higher).
    MySql(sqlx::MySqlPool, u64),
}

impl Watcher {
    pub async fn connect(url: &str) -> Watcher {
        if url.starts_with("postgres") {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
                .unwrap();
            let since = sqlx::query_scalar("SELECT clock_timestamp()::text")
                .fetch_one(&pool)
                .await
                .unwrap();
            Watcher::Postgres(pool, since)
        } else {
            let pool = sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
                .unwrap();
            let since = sqlx::query_scalar("SELECT CONNECTION_ID()")
                .fetch_one(&pool)
                .await
                .unwrap();
            Watcher::MySql(pool, since)
        }
    }

    /// The demo's slow statements (`pg_sleep`, `SLEEP`) running on the server right now, as
    /// the server itself reports them (`pg_stat_activity`, `information_schema.PROCESSLIST`).
    pub async fn sleeping(&self) -> i64 {
        match self {
            Watcher::Postgres(pool, since) => sqlx::query(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE application_name = $1 AND state = 'active' AND query LIKE '%pg_sleep%'
                   AND backend_start > $2::timestamptz",
            )
            .bind(APPLICATION_NAME)
            .bind(since)
            .fetch_one(pool)
            .await
            .unwrap()
            .get(0),
            Watcher::MySql(pool, since) => sqlx::query(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST
                 WHERE ID > ? AND INFO LIKE 'SELECT SLEEP(%'",
            )
            .bind(since)
            .fetch_one(pool)
            .await
            .unwrap()
            .get(0),
        }
    }

    /// What the server calls its slow statement, for messages.
    pub fn sleep_name(&self) -> &'static str {
        match self {
            Watcher::Postgres(..) => "pg_sleep",
            Watcher::MySql(..) => "SLEEP",
        }
    }

    /// Waits until the server runs a slow statement of the demo, failing after `bound`.
    pub async fn wait_for_sleep(&self, bound: Duration) -> Duration {
        let start = Instant::now();
        while self.sleeping().await == 0 {
            assert!(
                start.elapsed() < bound,
                "{} never started on the server",
                self.sleep_name()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        start.elapsed()
    }

    /// Waits until no slow statement of the demo runs on the server, failing after `bound`;
    /// returns how long it took.
    pub async fn wait_until_none(&self, bound: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let left = self.sleeping().await;
            if left == 0 {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < bound,
                "{left} {} still running on the server after {bound:?}",
                self.sleep_name()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Waits until `done()`, failing after `bound`; returns how long it took.
pub async fn wait_until(what: &str, bound: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < bound, "{what}: not within {bound:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}
