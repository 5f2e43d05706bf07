//! ctx-sqlx on MySQL / MariaDB: statements stopped in the server (`information_schema.PROCESSLIST`
//! shows it).
//!
//! These tests need a server: `MYSQL_URL=mysql://...` (or a `mysql://` `DATABASE_URL`;
//! `.ci/run` starts MariaDB, see `.ci/mariadb`). Without one they print "skipped: MYSQL_URL not
//! set" and pass, unless `CI=true`, where a missing server is a failure.

type Db = sqlx::MySql;

const NAME: &str = "mysql";
const ECHO: &str = "SELECT CAST(? AS SIGNED)";
const OBSERVABLE: bool = true;
const RACES: i64 = 1200;

struct Server {
    options: sqlx::mysql::MySqlConnectOptions,
    /// One connection that watches the server, opened on first use.
    observer: tokio::sync::OnceCell<sqlx::MySqlPool>,
}

impl Server {
    async fn pool(&self, size: u32) -> sqlx::MySqlPool {
        sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(size)
            .connect_with(self.options.clone())
            .await
            .unwrap_or_else(|e| panic!("cannot connect to MYSQL_URL: {e}"))
    }

    /// Options for a port nobody listens on, and for a wrong password.
    fn bad_options(
        &self,
    ) -> Option<(
        sqlx::mysql::MySqlConnectOptions,
        sqlx::mysql::MySqlConnectOptions,
    )> {
        let unreachable = self.options.clone().host("127.0.0.1").port(1);
        let wrong_password = self.options.clone().password("not-the-password");
        Some((unreachable, wrong_password))
    }

    fn lazy_pool(&self, size: u32) -> sqlx::MySqlPool {
        sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(size)
            .connect_lazy_with(self.options.clone())
    }
}

async fn server() -> Option<Server> {
    let url = match (std::env::var("MYSQL_URL"), std::env::var("DATABASE_URL")) {
        (Ok(url), _) if !url.is_empty() => url,
        (_, Ok(url)) if url.starts_with("mysql") => url,
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("MYSQL_URL is not set but CI=true: .ci/run must start MariaDB")
        }
        _ => {
            println!("skipped: MYSQL_URL not set");
            return None;
        }
    };
    let options = url.parse().expect("MYSQL_URL is not a valid URL");
    Some(Server {
        options,
        observer: tokio::sync::OnceCell::new(),
    })
}

fn slow(marker: &str) -> String {
    format!("SELECT SLEEP(60) AS {marker}")
}

fn short(marker: &str) -> String {
    // The value does not depend on SLEEP's: an interrupted SLEEP returns 1 instead of 0 (and
    // no error), so `? + SLEEP(..)` would come back one higher when a stop lands mid-sleep.
    format!("SELECT CAST(? AS SIGNED) AS {marker} FROM (SELECT SLEEP(0.002)) AS pause")
}

async fn running(server: &Server, marker: &str) -> i64 {
    let observer = server.observer.get_or_init(|| server.pool(1)).await;
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST
         WHERE INFO LIKE CONCAT('%', ?, '%') AND ID <> CONNECTION_ID()",
    )
    .bind(marker)
    .fetch_one(observer)
    .await
    .unwrap()
}

fn create_table(name: &str) -> String {
    format!("CREATE TABLE {name} (id BIGINT) ENGINE = InnoDB")
}

fn insert(name: &str) -> String {
    format!("INSERT INTO {name} (id) VALUES (?)")
}

const SESSION_ID: Option<&str> = Some("SELECT CAST(CONNECTION_ID() AS SIGNED)");

fn kill_session(id: i64) -> String {
    format!("KILL CONNECTION {id}")
}

include!("common/suite.rs");
