//! Faults a service meets, with ctx-sqlx's `Pool`: the server restarted mid-query, a session
//! killed mid-query, an unreachable server, a wrong password, a database that does not exist,
//! a password corrected at run time, a malformed URL (PostgreSQL and MariaDB), and a database
//! file that cannot be opened (SQLite). Each gives a clear error, the server's own whenever
//! there is one (never a panic or a hang, and never the context's error for a fault of the
//! server), and the pool serves again, and stops queries in the server again, once the fault is
//! gone.
//!
//! Its own test binary: a restart takes the test server away from every test running at the
//! time, and cargo runs test binaries one after another (a restart waits until the server is
//! back before its test goes on, so nothing after this binary sees it). Inside it, a restart
//! waits for the other tests of the same server, and they for it.
//!
//! Needs `DATABASE_URL` (PostgreSQL) and `MYSQL_URL` (MariaDB), and to restart them
//! `CTX_PG_BIN` / `CTX_PG_DIR` and `CTX_MY_RESTART` (which `.ci/postgres` and `.ci/mariadb`
//! export); without them the tests say "skipped" and pass, except under `CI=true`.

use std::process::{Command, Stdio};

/// An environment variable a test needs: `None` (the test is skipped) when it is not set,
/// except under `CI=true`, where that is a failure.
fn required(var: &str, from: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{var} is not set but CI=true: {from} exports it")
        }
        _ => {
            println!("skipped: {var} not set");
            None
        }
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

#[cfg(feature = "postgres")]
mod postgres {
    use sqlx::postgres::{PgConnectOptions, PgDatabaseError};

    type Db = sqlx::Postgres;
    type Options = PgConnectOptions;

    const NAME: &str = "postgres";
    const ECHO: &str = "SELECT $1::int8";
    const SESSION_ID: &str = "SELECT pg_backend_pid()::int8";
    /// `invalid_password`: "password authentication failed for user ...".
    const WRONG_PASSWORD: &str = "28P01";
    /// `invalid_catalog_name`: "database ... does not exist".
    const UNKNOWN_DATABASE: &str = "3D000";
    const MALFORMED: &[&str] = &[
        "postgres://ctx:ctx@127.0.0.1:notaport/ctx",
        "postgres://ctx:ctx@127.0.0.1:54329/ctx?sslmode=bogus",
        "postgres://ctx:ctx@127.0.0.1:54329/ctx?statement-cache-capacity=many",
        "postgres://ctx:ctx@[::1/ctx",
    ];

    fn options() -> Option<Options> {
        let url = super::required("DATABASE_URL", ".ci/postgres")?;
        Some(
            url.parse()
                .unwrap_or_else(|e| panic!("DATABASE_URL is not a PostgreSQL URL: {e}")),
        )
    }

    /// `pg_ctl restart -m fast` (every session ended at once), as the cluster's owner when run
    /// as root (initdb's clusters refuse root), logging where `.ci/postgres` started it.
    fn restarter() -> Option<impl FnOnce() + Send + 'static> {
        let bin = super::required("CTX_PG_BIN", ".ci/postgres")?;
        let dir = super::required("CTX_PG_DIR", ".ci/postgres")?;
        Some(move || {
            let pg_ctl = format!("{bin}/pg_ctl");
            let mut command = if super::running_as_root() {
                let mut runuser = super::Command::new("runuser");
                runuser.args(["-u", "postgres", "--", pg_ctl.as_str()]);
                runuser
            } else {
                super::Command::new(&pg_ctl)
            };
            let status = command
                .args([
                    "-D",
                    &format!("{dir}/data"),
                    "-l",
                    &format!("{dir}/server.log"),
                ])
                .args(["-m", "fast", "-w", "restart"])
                .stdout(super::Stdio::null())
                .status()
                .unwrap_or_else(|e| panic!("cannot run {pg_ctl}: {e}"));
            assert!(status.success(), "pg_ctl restart failed: {status}");
        })
    }

    fn slow(marker: &str) -> String {
        format!("SELECT pg_sleep(60) AS {marker}")
    }

    const ACTIVE: &str = "FROM pg_stat_activity
         WHERE state <> 'idle' AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()";

    async fn running(observer: &sqlx::PgPool, marker: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) {ACTIVE}")))
            .bind(marker)
            .fetch_one(observer)
            .await
            .unwrap()
    }

    async fn session_running(observer: &sqlx::PgPool, marker: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT pid::int8 {ACTIVE}")))
            .bind(marker)
            .fetch_one(observer)
            .await
            .unwrap()
    }

    fn kill_session(id: i64) -> String {
        format!("SELECT pg_terminate_backend({id}::int4)")
    }

    fn code(e: &sqlx::Error) -> Option<String> {
        e.as_database_error()?
            .try_downcast_ref::<PgDatabaseError>()
            .map(|d| d.code().to_owned())
    }

    /// What a statement whose session the server ends (a fast shutdown, `pg_terminate_backend`)
    /// gets: the backend's `admin_shutdown` (57P01), "terminating connection due to
    /// administrator command".
    fn session_ended(e: &sqlx::Error) -> bool {
        code(e).as_deref() == Some("57P01")
    }

    fn wrong_password(options: &Options) -> Options {
        options.clone().password("not-the-password")
    }

    fn unknown_database(options: &Options) -> Options {
        options.clone().database("ctx_no_such_database")
    }

    fn unreachable(options: &Options) -> Options {
        options.clone().host("127.0.0.1").port(1)
    }

    include!("common/faults.rs");
}

#[cfg(feature = "mysql")]
mod mysql {
    use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError};

    type Db = sqlx::MySql;
    type Options = MySqlConnectOptions;

    const NAME: &str = "mariadb";
    const ECHO: &str = "SELECT CAST(? AS SIGNED)";
    const SESSION_ID: &str = "SELECT CAST(CONNECTION_ID() AS SIGNED)";
    /// `ER_ACCESS_DENIED_ERROR`: "Access denied for user ...".
    const WRONG_PASSWORD: &str = "1045";
    /// `ER_DBACCESS_DENIED_ERROR`: "Access denied for user ... to database ...": MariaDB
    /// does not tell a user without rights on a database whether it exists.
    const UNKNOWN_DATABASE: &str = "1044";
    const MALFORMED: &[&str] = &[
        "mysql://ctx:ctx@127.0.0.1:notaport/ctx",
        "mysql://ctx:ctx@127.0.0.1:33069/ctx?ssl-mode=bogus",
        "mysql://ctx:ctx@127.0.0.1:33069/ctx?statement-cache-capacity=many",
        "mysql://ctx:ctx@[::1/ctx",
    ];

    fn options() -> Option<Options> {
        let url = super::required("MYSQL_URL", ".ci/mariadb")?;
        Some(
            url.parse()
                .unwrap_or_else(|e| panic!("MYSQL_URL is not a MySQL URL: {e}")),
        )
    }

    /// `.ci/mariadb`'s restart command: the server stopped (every session ended), then started
    /// again with the same arguments, and answering when it returns.
    fn restarter() -> Option<impl FnOnce() + Send + 'static> {
        let restart = super::required("CTX_MY_RESTART", ".ci/mariadb")?;
        Some(move || {
            let status = super::Command::new(&restart)
                .stdout(super::Stdio::null())
                .status()
                .unwrap_or_else(|e| panic!("cannot run {restart}: {e}"));
            assert!(status.success(), "{restart} failed: {status}");
        })
    }

    fn slow(marker: &str) -> String {
        format!("SELECT SLEEP(60) AS {marker}")
    }

    const ACTIVE: &str = "FROM information_schema.PROCESSLIST
         WHERE INFO LIKE CONCAT('%', ?, '%') AND ID <> CONNECTION_ID()";

    async fn running(observer: &sqlx::MySqlPool, marker: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) {ACTIVE}")))
            .bind(marker)
            .fetch_one(observer)
            .await
            .unwrap()
    }

    async fn session_running(observer: &sqlx::MySqlPool, marker: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT CAST(ID AS SIGNED) {ACTIVE}"
        )))
        .bind(marker)
        .fetch_one(observer)
        .await
        .unwrap()
    }

    fn kill_session(id: i64) -> String {
        format!("KILL {id}")
    }

    fn code(e: &sqlx::Error) -> Option<String> {
        e.as_database_error()?
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(|d| d.number().to_string())
    }

    /// What a statement whose session the server ends (a shutdown, `KILL`) gets: MariaDB
    /// closes the connection without a word, so the end of the stream, "expected to read 4
    /// bytes, got 0 bytes at EOF".
    fn session_ended(e: &sqlx::Error) -> bool {
        matches!(e, sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof)
    }

    fn wrong_password(options: &Options) -> Options {
        options.clone().password("not-the-password")
    }

    fn unknown_database(options: &Options) -> Options {
        options.clone().database("ctx_no_such_database")
    }

    fn unreachable(options: &Options) -> Options {
        options.clone().host("127.0.0.1").port(1)
    }

    include!("common/faults.rs");
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use std::time::Duration;

    use ctx_core::Context;
    use ctx_sqlx::{Error, Pool};
    use sqlx::Row;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    /// A directory removed when dropped.
    struct TempDir(std::path::PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Database files that cannot be opened: SQLite's error (`SQLITE_CANTOPEN`, 14;
    /// `SQLITE_NOTADB`, 26), at once, not the context's; and once the missing directory is
    /// there, the same pool serves.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_database_file_that_cannot_be_opened_is_sqlites_error() {
        let dir =
            TempDir(std::env::temp_dir().join(format!("ctx-sqlx-faults-{}", std::process::id())));
        std::fs::create_dir_all(&dir.0).unwrap();
        let missing_dir = dir.0.join("no-such-directory");
        let not_a_database = dir.0.join("not-a-database.db");
        std::fs::write(&not_a_database, [0x5a_u8; 4096]).unwrap();
        let cases = [
            (
                "in a directory that does not exist",
                missing_dir.join("test.db"),
                "14",
            ),
            ("a directory", dir.0.clone(), "14"),
            (
                "a file that is not a database",
                not_a_database.clone(),
                "26",
            ),
        ];
        for (what, path, expected) in cases {
            let pool = Pool::new(
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_lazy_with(
                        SqliteConnectOptions::new()
                            .filename(&path)
                            .create_if_missing(true),
                    ),
            );
            let (ctx, _h) = Context::background().with_timeout(Duration::from_secs(10));
            let err = pool
                .fetch_one(&ctx, sqlx::query("SELECT 1"))
                .await
                .expect_err("a database that cannot be opened answered");
            assert_eq!(err.context_err(), None, "sqlite: {what}: {err}");
            let code = match &err {
                Error::Sqlx(e) => e
                    .as_database_error()
                    .and_then(|d| d.code())
                    .map(|c| c.into_owned()),
                _ => None,
            };
            assert_eq!(code.as_deref(), Some(expected), "sqlite: {what}: {err:?}");
            println!("sqlite: {what}: {err}");

            // The directory created: the same pool opens the file and serves. (A file that is
            // not a database was opened; its connection, which read garbage, stays in the pool,
            // as with plain sqlx.)
            if !path.starts_with(&missing_dir) {
                continue;
            }
            std::fs::create_dir_all(&missing_dir).unwrap();
            let row = pool
                .fetch_one(&ctx, sqlx::query("SELECT 7"))
                .await
                .unwrap_or_else(|e| panic!("sqlite: {what}, fixed: {e}"));
            assert_eq!(row.get::<i64, _>(0), 7);
        }
    }
}
