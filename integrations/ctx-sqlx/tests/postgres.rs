//! ctx-sqlx on PostgreSQL: statements stopped in the server (`pg_stat_activity` shows it).
//!
//! These tests need a server: `DATABASE_URL=postgres://...` (`.ci/run` starts one, see
//! `.ci/postgres`). Without it they print "skipped: DATABASE_URL not set" and pass, unless
//! `CI=true`, where a missing server is a failure.

type Db = sqlx::Postgres;

const NAME: &str = "postgres";
const ECHO: &str = "SELECT $1::int8";
const OBSERVABLE: bool = true;
const RACES: i64 = 1200;

struct Server {
    options: sqlx::postgres::PgConnectOptions,
    /// One connection that watches the server, opened on first use.
    observer: tokio::sync::OnceCell<sqlx::PgPool>,
}

impl Server {
    async fn pool(&self, size: u32) -> sqlx::PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(size)
            .connect_with(self.options.clone())
            .await
            .unwrap_or_else(|e| panic!("cannot connect to DATABASE_URL: {e}"))
    }

    /// Options for a port nobody listens on, and for a wrong password.
    fn bad_options(
        &self,
    ) -> Option<(
        sqlx::postgres::PgConnectOptions,
        sqlx::postgres::PgConnectOptions,
    )> {
        let unreachable = self.options.clone().host("127.0.0.1").port(1);
        let wrong_password = self.options.clone().password("not-the-password");
        Some((unreachable, wrong_password))
    }

    fn lazy_pool(&self, size: u32) -> sqlx::PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(size)
            .connect_lazy_with(self.options.clone())
    }
}

async fn server() -> Option<Server> {
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => url,
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("DATABASE_URL is not set but CI=true: .ci/run must start PostgreSQL")
        }
        _ => {
            println!("skipped: DATABASE_URL not set");
            return None;
        }
    };
    let options = url.parse().expect("DATABASE_URL is not a valid URL");
    Some(Server {
        options,
        observer: tokio::sync::OnceCell::new(),
    })
}

fn slow(marker: &str) -> String {
    format!("SELECT pg_sleep(60) AS {marker}")
}

fn short(marker: &str) -> String {
    format!("SELECT $1::int8 AS {marker} FROM pg_sleep(0.002)")
}

async fn running(server: &Server, marker: &str) -> i64 {
    let observer = server.observer.get_or_init(|| server.pool(1)).await;
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE state <> 'idle' AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()",
    )
    .bind(marker)
    .fetch_one(observer)
    .await
    .unwrap()
}

fn create_table(name: &str) -> String {
    format!("CREATE TABLE {name} (id int8)")
}

fn insert(name: &str) -> String {
    format!("INSERT INTO {name} (id) VALUES ($1)")
}

const SESSION_ID: Option<&str> = Some("SELECT pg_backend_pid()::int8");

fn kill_session(id: i64) -> String {
    format!("SELECT pg_terminate_backend({id}::int4)")
}

include!("common/suite.rs");
