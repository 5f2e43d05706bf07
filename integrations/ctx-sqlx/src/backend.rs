//! What differs between the databases: how a connection is named to the server, how what it
//! executes is stopped, and how a stopped connection is made clean again.

use std::future::Future;
#[cfg(feature = "sqlite")]
use std::sync::atomic::AtomicU8;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

#[cfg(feature = "mysql")]
use sqlx::AssertSqlSafe;
#[cfg(feature = "postgres")]
use sqlx::Row;
#[cfg(feature = "mysql")]
use sqlx::mysql::{MySql, MySqlDatabaseError};
use sqlx::pool::{PoolConnection, PoolOptions};
#[cfg(feature = "postgres")]
use sqlx::postgres::Postgres;
#[cfg(feature = "sqlite")]
use sqlx::sqlite::Sqlite;
use sqlx::{Connection, Database, Pool};

use crate::BoxFuture;

/// How often (in SQLite virtual-machine instructions) a statement checks whether its call was
/// stopped.
#[cfg(feature = "sqlite")]
const PROGRESS_OPS: i32 = 100;

/// Connections of the side pool that sends the stops (PostgreSQL, MySQL).
const CONTROL_CONNECTIONS: u32 = 4;

/// How one settle attempt ended.
#[derive(Debug)]
pub enum Settled {
    /// Outside any transaction, no stop pending.
    Clean,
    /// A stop of ours hit the settling statement (so it is spent): try again.
    Again,
    /// Something else went wrong: close the connection.
    Broken,
}

/// Stops sent from connections of their own, so that a pool whose connections are all busy can
/// still be stopped. Opened on first use, from the pool's connect options, and opened anew when
/// those change (sqlx's `set_connect_options`, a rotated password).
pub struct Control<DB: Database> {
    pool: Pool<DB>,
    /// The side pool, and the connect options of `pool` it was made from.
    side: Mutex<Option<SidePool<DB>>>,
    /// Whether the side pool was opened (see [`warm`](Control::warm)).
    warmed: AtomicBool,
    /// Whether calls test idle connections themselves (see `Pool::new`).
    pub(crate) own_test: bool,
}

/// A side pool, and the connect options it was made from.
type SidePool<DB> = (
    Arc<<<DB as Database>::Connection as Connection>::Options>,
    Pool<DB>,
);

impl<DB: Database> std::fmt::Debug for Control<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("side_open", &self.warmed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<DB: Database> Control<DB> {
    pub(crate) fn new(pool: Pool<DB>, own_test: bool) -> Control<DB> {
        Control {
            pool,
            side: Mutex::new(None),
            warmed: AtomicBool::new(false),
            own_test,
        }
    }

    pub(crate) fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// The side pool, made from the pool's connect options as they are now: the one made
    /// before if they have not changed since, else a new one (the old one closes its
    /// connections when its last stop is done with it).
    pub(crate) fn side(&self) -> Pool<DB> {
        let options = self.pool.connect_options();
        let mut side = self.side.lock().unwrap_or_else(PoisonError::into_inner);
        match &*side {
            Some((made_from, pool)) if Arc::ptr_eq(made_from, &options) => pool.clone(),
            _ => {
                let pool = PoolOptions::<DB>::new()
                    .max_connections(CONTROL_CONNECTIONS)
                    .min_connections(0)
                    .test_before_acquire(false)
                    .idle_timeout(None)
                    .acquire_timeout(crate::STOP_LIMIT)
                    .connect_lazy_with((*options).clone());
                *side = Some((options, pool.clone()));
                pool
            }
        }
    }

    /// Opens the side pool (see [`side`](Control::side)) on the first call, if this database
    /// needs one, so that the first stop does not wait for a connection to be opened.
    pub(crate) fn warm(&self)
    where
        DB: Backend,
    {
        if DB::REMOTE && !self.warmed.swap(true, Ordering::Relaxed) {
            let side = self.side();
            // A lazy pool opens nothing by itself: open the first side connection now, in the
            // background, so that the first stop finds it ready.
            drop(tokio::spawn(async move {
                drop(side.acquire().await);
            }));
        }
    }
}

/// Sends one statement on the side pool, again on another connection while it fails on a
/// connection that went bad (`broken`): after a restart of the server, or sessions ended by it,
/// every idle side connection may be dead, and the first statements on them fail. Each failure
/// drops one (the pool tests a connection given back, and closes a dead one), so one try per
/// side connection, and one more on a fresh one, is enough.
async fn on_side<T, Fut>(
    mut send: impl FnMut() -> Fut,
    broken: impl Fn(&sqlx::Error) -> bool,
) -> Result<T, sqlx::Error>
where
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut result = send().await;
    for _ in 0..CONTROL_CONNECTIONS {
        match &result {
            Err(e) if broken(e) => result = send().await,
            _ => break,
        }
    }
    result
}

/// The database-specific half of ctx-sqlx. Implemented for [`Postgres`], [`MySql`] and
/// [`Sqlite`].
pub trait Backend: Database {
    /// Whether stops go through side connections to a server.
    #[doc(hidden)]
    const REMOTE: bool;

    /// What names one call's connection to the stopping side.
    #[doc(hidden)]
    type Id: Clone + Send + Sync + 'static;

    /// Learns the connection's name on the server (or arms its interrupt), before a call runs
    /// work on it.
    #[doc(hidden)]
    fn identify(
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<Self::Id, sqlx::Error>> + Send + '_;

    /// Stops what the connection `id` is executing; completes once the server has acted on it
    /// (a statement on another connection has returned).
    #[doc(hidden)]
    fn stop(control: &Control<Self>, id: &Self::Id) -> BoxFuture<'static, Result<(), sqlx::Error>>;

    /// Ends the session `id` on the server (the connection is about to be closed).
    #[doc(hidden)]
    fn kill(control: &Control<Self>, id: &Self::Id) -> BoxFuture<'static, ()>;

    /// One attempt at making a stopped connection clean: outside any transaction (rolled back),
    /// and no stop of ours still pending.
    #[doc(hidden)]
    fn settle<'c>(
        conn: &'c mut Self::Connection,
        id: &'c Self::Id,
    ) -> impl Future<Output = Settled> + Send + 'c;
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: `pg_cancel_backend(pid)` on a side connection. It returns once the backend has
// been signalled; the backend drops a cancel that arrives while it waits for a command, so once
// a statement sent after it has completed, no cancel of ours is pending.

#[cfg(feature = "postgres")]
impl Backend for Postgres {
    const REMOTE: bool = true;
    type Id = i32;

    async fn identify(conn: &mut Self::Connection) -> Result<i32, sqlx::Error> {
        sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
            .fetch_one(conn)
            .await
    }

    fn stop(control: &Control<Self>, id: &i32) -> BoxFuture<'static, Result<(), sqlx::Error>> {
        let side = control.side();
        let pid = *id;
        Box::pin(async move {
            let cancel = || {
                sqlx::query("SELECT pg_cancel_backend($1)")
                    .bind(pid)
                    .execute(&side)
            };
            on_side(cancel, |_| true).await.map(drop)
        })
    }

    fn kill(control: &Control<Self>, id: &i32) -> BoxFuture<'static, ()> {
        let side = control.side();
        let pid = *id;
        Box::pin(async move {
            let terminate = || {
                sqlx::query("SELECT pg_terminate_backend($1)")
                    .bind(pid)
                    .execute(&side)
            };
            let _ = on_side(terminate, |_| true).await;
        })
    }

    async fn settle(conn: &mut Self::Connection, _id: &i32) -> Settled {
        // In autocommit, a statement's transaction starts with it: the two timestamps are equal
        // unless a transaction was begun by an earlier statement. (Checked this way, not with a
        // blind ROLLBACK, so that the server logs no "no transaction in progress" warning.)
        let outside = sqlx::raw_sql("SELECT statement_timestamp() = transaction_timestamp()")
            .fetch_one(&mut *conn)
            .await;
        match outside {
            Ok(row) => match row.try_get::<bool, _>(0) {
                Ok(true) => Settled::Clean,
                Ok(false) => pg_rollback(conn).await,
                Err(_) => Settled::Broken,
            },
            Err(e) => match pg_code(&e) {
                Some("57014") => Settled::Again,
                // In a failed transaction: roll it back.
                Some("25P02") => pg_rollback(conn).await,
                _ => Settled::Broken,
            },
        }
    }
}

#[cfg(feature = "postgres")]
async fn pg_rollback(conn: &mut sqlx::PgConnection) -> Settled {
    match sqlx::raw_sql("ROLLBACK").execute(conn).await {
        Ok(_) => Settled::Again,
        Err(e) if pg_code(&e) == Some("57014") => Settled::Again,
        Err(_) => Settled::Broken,
    }
}

#[cfg(feature = "postgres")]
fn pg_code(e: &sqlx::Error) -> Option<&str> {
    e.as_database_error()
        .and_then(|d| d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>())
        .map(|d| d.code())
}

// ---------------------------------------------------------------------------------------------
// MySQL and MariaDB: `KILL QUERY <connection id>` on a side connection. It returns once the
// target's kill flag is set; a flag set while the target waits for a command does not reach the
// next one, and one that reaches our settling ROLLBACK fails it (so we know it is spent).

/// `ER_QUERY_INTERRUPTED`: "Query execution was interrupted".
#[cfg(feature = "mysql")]
const MYSQL_INTERRUPTED: u16 = 1317;

#[cfg(feature = "mysql")]
impl Backend for MySql {
    const REMOTE: bool = true;
    type Id = u64;

    async fn identify(conn: &mut Self::Connection) -> Result<u64, sqlx::Error> {
        sqlx::query_scalar::<_, u64>("SELECT CONNECTION_ID()")
            .fetch_one(conn)
            .await
    }

    fn stop(control: &Control<Self>, id: &u64) -> BoxFuture<'static, Result<(), sqlx::Error>> {
        let side = control.side();
        let sql = format!("KILL QUERY {id}");
        Box::pin(async move {
            let kill = || sqlx::raw_sql(AssertSqlSafe(sql.clone())).execute(&side);
            // Only errors that are not the server's say that the side connection went bad.
            match on_side(kill, |e| mysql_number(e).is_none()).await {
                Ok(_) => Ok(()),
                // `ER_NO_SUCH_THREAD`: the connection is gone, nothing to stop.
                Err(e) if mysql_number(&e) == Some(1094) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }

    fn kill(control: &Control<Self>, id: &u64) -> BoxFuture<'static, ()> {
        let side = control.side();
        let sql = format!("KILL CONNECTION {id}");
        Box::pin(async move {
            let kill = || sqlx::raw_sql(AssertSqlSafe(sql.clone())).execute(&side);
            let _ = on_side(kill, |e| mysql_number(e).is_none()).await;
        })
    }

    async fn settle(conn: &mut Self::Connection, _id: &u64) -> Settled {
        // ROLLBACK outside a transaction does nothing and says nothing.
        match sqlx::raw_sql("ROLLBACK").execute(conn).await {
            Ok(_) => Settled::Clean,
            // The killed statement's own error, read now, or a late kill spent on the ROLLBACK.
            Err(e) if mysql_number(&e) == Some(MYSQL_INTERRUPTED) => Settled::Again,
            Err(_) => Settled::Broken,
        }
    }
}

#[cfg(feature = "mysql")]
fn mysql_number(e: &sqlx::Error) -> Option<u16> {
    e.as_database_error()
        .and_then(|d| d.try_downcast_ref::<MySqlDatabaseError>())
        .map(MySqlDatabaseError::number)
}

// ---------------------------------------------------------------------------------------------
// SQLite: the database runs inside the process, on the connection's worker thread. Each call
// installs a progress handler that interrupts the running statement once the call's gate says
// stop (`SQLITE_INTERRUPT`, as `sqlite3_interrupt` does, without unsafe code here). A gate
// belongs to one call and is closed before the connection serves anything else, so a stop can
// never reach later work.

#[cfg(feature = "sqlite")]
const RUNNING: u8 = 0;
#[cfg(feature = "sqlite")]
const STOPPED: u8 = 1;
#[cfg(feature = "sqlite")]
const CLOSED: u8 = 2;

/// Whether one call's statements should stop.
#[cfg(feature = "sqlite")]
#[derive(Debug)]
pub struct Gate(AtomicU8);

#[cfg(feature = "sqlite")]
impl Gate {
    fn stopped(&self) -> bool {
        self.0.load(Ordering::Acquire) == STOPPED
    }
}

#[cfg(feature = "sqlite")]
impl Backend for Sqlite {
    const REMOTE: bool = false;
    type Id = Arc<Gate>;

    async fn identify(conn: &mut Self::Connection) -> Result<Arc<Gate>, sqlx::Error> {
        let gate = Arc::new(Gate(AtomicU8::new(RUNNING)));
        let seen = gate.clone();
        conn.lock_handle()
            .await?
            .set_progress_handler(PROGRESS_OPS, move || !seen.stopped());
        Ok(gate)
    }

    fn stop(
        _control: &Control<Self>,
        id: &Arc<Gate>,
    ) -> BoxFuture<'static, Result<(), sqlx::Error>> {
        let _ =
            id.0.compare_exchange(RUNNING, STOPPED, Ordering::AcqRel, Ordering::Acquire);
        Box::pin(std::future::ready(Ok(())))
    }

    fn kill(_control: &Control<Self>, id: &Arc<Gate>) -> BoxFuture<'static, ()> {
        let _ =
            id.0.compare_exchange(RUNNING, STOPPED, Ordering::AcqRel, Ordering::Acquire);
        Box::pin(std::future::ready(()))
    }

    async fn settle(conn: &mut Self::Connection, id: &Arc<Gate>) -> Settled {
        // Taking the handle waits until the worker has finished everything sent before (the
        // interrupted statement included); only then may the gate close.
        match conn.lock_handle().await {
            Ok(_handle) => id.0.store(CLOSED, Ordering::Release),
            Err(_) => return Settled::Broken,
        }
        match sqlx::raw_sql("ROLLBACK").execute(conn).await {
            Ok(_) => Settled::Clean,
            Err(e)
                if e.as_database_error()
                    .is_some_and(|d| d.message().contains("no transaction is active")) =>
            {
                Settled::Clean
            }
            Err(_) => Settled::Broken,
        }
    }
}

/// Closes a connection that could not be made clean: the pool opens a replacement.
pub(crate) async fn close<DB: Database>(conn: PoolConnection<DB>) {
    let raw = conn.detach();
    let _ = raw.close_hard().await;
}
