//! ctx-sqlx on SQLite: statements interrupted inside SQLite. Needs nothing installed (SQLite is
//! built in); each test has a database file of its own in a temporary directory.
//!
//! SQLite runs in the process: "gone from the server" is shown by the pool's one connection
//! answering at once after the call returned.

type Db = sqlx::Sqlite;

const NAME: &str = "sqlite";
const ECHO: &str = "SELECT ?1";
const OBSERVABLE: bool = false;
const RACES: i64 = 1200;

struct Server {
    options: sqlx::sqlite::SqliteConnectOptions,
    _dir: TempDir,
}

impl Server {
    async fn pool(&self, size: u32) -> sqlx::SqlitePool {
        sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(size)
            .connect_with(self.options.clone())
            .await
            .expect("cannot open the database file")
    }

    /// SQLite has no server to miss.
    fn bad_options(
        &self,
    ) -> Option<(
        sqlx::sqlite::SqliteConnectOptions,
        sqlx::sqlite::SqliteConnectOptions,
    )> {
        None
    }

    fn lazy_pool(&self, size: u32) -> sqlx::SqlitePool {
        sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(size)
            .connect_lazy_with(self.options.clone())
    }
}

/// A directory removed when dropped.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn server() -> Option<Server> {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ctx-sqlx-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.join("test.db"))
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
    Some(Server {
        options,
        _dir: TempDir(dir),
    })
}

fn slow(marker: &str) -> String {
    format!(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000000)
         SELECT count(*) AS {marker} FROM c"
    )
}

fn short(marker: &str) -> String {
    format!(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 4000)
         SELECT ?1 + count(*) - count(*) AS {marker} FROM c"
    )
}

async fn running(_server: &Server, _marker: &str) -> i64 {
    0
}

fn create_table(name: &str) -> String {
    format!("CREATE TABLE {name} (id INTEGER)")
}

fn insert(name: &str) -> String {
    format!("INSERT INTO {name} (id) VALUES (?1)")
}

/// SQLite has no sessions to kill.
const SESSION_ID: Option<&str> = None;

fn kill_session(_id: i64) -> String {
    unreachable!("SQLite has no sessions")
}

include!("common/suite.rs");
