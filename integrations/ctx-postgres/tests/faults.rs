//! Faults a service meets, with ctx-postgres's `Pool`: the server restarted mid-query, an
//! unreachable server, a wrong password, a malformed URL. Each gives a clear error (never a
//! panic or a hang), and the pool serves again once the server is back. Its own test binary:
//! the restart takes the shared test server away for a moment, and binaries run one at a time.
//!
//! Needs `DATABASE_URL`, and for the restart `CTX_PG_BIN` / `CTX_PG_DIR` (which `.ci/postgres`
//! exports); without them the tests say "skipped" and pass, except under `CI=true`.

use std::time::Duration;

use ctx_core::Context;
use ctx_postgres::{Error, Pool};
use tokio_postgres::{Config, NoTls};

mod support;
use support::*;

/// Taken by the tests that need the server up, and by the one that restarts it.
static SERVER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The server's binaries and data directory, to restart it.
fn server_dirs() -> Option<(String, String)> {
    match (std::env::var("CTX_PG_BIN"), std::env::var("CTX_PG_DIR")) {
        (Ok(bin), Ok(dir)) if !bin.is_empty() && !dir.is_empty() => Some((bin, dir)),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CTX_PG_BIN / CTX_PG_DIR not set under CI=true: .ci/postgres exports them")
        }
        _ => {
            println!("skipped: CTX_PG_BIN / CTX_PG_DIR not set");
            None
        }
    }
}

/// `pg_ctl restart -m fast`, as the server's owner (initdb's clusters refuse root), logging on
/// to the file `.ci/postgres` started it with (without `-l` the restarted server's log is lost).
fn restart_server(bin: &str, dir: &str) {
    let pg_ctl = format!("{bin}/pg_ctl");
    let data = format!("{dir}/data");
    let log = format!("{dir}/server.log");
    let args = [
        "-D",
        data.as_str(),
        "-l",
        log.as_str(),
        "-m",
        "fast",
        "-w",
        "restart",
    ];
    let status = if nix_is_root() {
        std::process::Command::new("runuser")
            .args(["-u", "postgres", "--", pg_ctl.as_str()])
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
    } else {
        std::process::Command::new(&pg_ctl)
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
    };
    assert!(
        status.expect("run pg_ctl").success(),
        "pg_ctl restart failed"
    );
}

fn nix_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_mid_query_gives_an_error_and_the_pool_recovers() {
    let Some(url) = database_url() else { return };
    let Some((bin, dir)) = server_dirs() else {
        return;
    };
    let pool = Pool::new(config(&url, "ctx-test-restart"), NoTls, 2).await;
    assert_eq!(
        select_int(&pool.get(&Context::background()).await.unwrap(), 1).await,
        1
    );

    let query = tokio::spawn({
        let pool = pool.clone();
        async move {
            let (ctx, _h) = Context::background().with_timeout(Duration::from_secs(20));
            let client = pool.get(&ctx).await?;
            client.execute(&ctx, "SELECT pg_sleep(30)", &[]).await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::task::spawn_blocking(move || restart_server(&bin, &dir))
        .await
        .unwrap();

    // The query fails with the server's error, at once (not after its 30 s or the 20 s
    // deadline), and is not mistaken for a context's end.
    let err = tokio::time::timeout(Duration::from_secs(10), query)
        .await
        .expect("the query returned")
        .unwrap()
        .unwrap_err();
    assert_eq!(err.context_err(), None, "{err}");
    assert!(matches!(err, Error::Postgres(_)), "{err:?}");

    // The pool drops the dead connections and serves again.
    let (ctx, _h) = Context::background().with_timeout(Duration::from_secs(10));
    let client = pool.get(&ctx).await.unwrap();
    assert_eq!(select_int(&client, 2).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_clear_error_within_the_deadline() {
    // Nothing listens on port 1 of the loopback.
    let mut config = Config::new();
    config
        .host("127.0.0.1")
        .port(1)
        .user("nobody")
        .dbname("none");
    let pool = Pool::new(config, NoTls, 1).await;
    let (ctx, _h) = Context::background().with_timeout(Duration::from_secs(5));
    let err = pool.get(&ctx).await.unwrap_err();
    assert!(matches!(err, Error::Pool(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with("no connection from the pool: "), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_clear_error() {
    let Some(url) = database_url() else { return };
    let _server = SERVER.lock().await;
    let mut config = config(&url, "ctx-test-password");
    config.password("certainly not the password");
    let err = ctx_postgres::Client::connect(&Context::background(), &config, NoTls)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("could not connect to the server: ")
            && text.contains("password authentication failed"),
        "{text}"
    );
}

#[test]
fn a_malformed_url_is_an_error_not_a_panic() {
    for url in [
        "postgres://host:notaport/db",
        "host=127.0.0.1 port=notaport",
        "postgres://127.0.0.1/db?sslmode=bogus",
        "postgresql://127.0.0.1/db?connect_timeout=soon",
    ] {
        assert!(url.parse::<Config>().is_err(), "{url} parsed");
    }
}
