//! sqlx pools under a [`Context`]: Go's `db.QueryContext(ctx, ...)` on a `*sql.DB`, for
//! PostgreSQL, MySQL/MariaDB and SQLite, with the query stopped **in the server** when the
//! context ends.
//!
//! Dropping a sqlx future only stops waiting: the server carries on with the query (for
//! minutes, if it is a slow one), and the connection may go back to the pool in the middle of
//! it, or of a transaction. A [`Pool`] wraps a [`sqlx::Pool`] and runs work on it under a
//! context:
//!
//! - Waiting for a connection is bounded by the context: an ended context fails at once, and a
//!   deadline that passes while the pool is exhausted fails at the deadline.
//! - When the context ends while a query runs, the query is stopped in the server:
//!   PostgreSQL by `pg_cancel_backend(pid)`, MySQL and MariaDB by `KILL QUERY <connection id>`,
//!   both sent from a side connection of their own (so a pool whose connections are all busy
//!   can still be stopped), and SQLite by interrupting the statement on that connection
//!   (a progress handler, what `sqlite3_interrupt` does). The work sees the server's error,
//!   returns, and the call returns [`Error::Context`] with the context's error.
//! - The connection then goes back to the pool only if it is clean: the stop has been acted on
//!   and a statement run after it has completed (so no late stop can reach the next query on
//!   that connection), and no transaction is open (a cancelled transaction is rolled back).
//!   Otherwise the server session is ended and the connection closed; the pool opens another.
//! - If the future of a call is dropped while its work runs (a client that hung up), the same
//!   happens from a spawned task.
//!
//! ```
//! use std::time::Duration;
//! use ctx_core::Context;
//! use ctx_sqlx::{Error, Pool};
//! use sqlx::Row;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let pool = Pool::new(sqlx::SqlitePool::connect("sqlite::memory:").await?);
//! let ctx = Context::background();
//! let row = pool.fetch_one(&ctx, sqlx::query("SELECT 1 + 2")).await?;
//! assert_eq!(row.get::<i64, _>(0), 3);
//!
//! // A query that would count to a billion, stopped by a 50 ms deadline.
//! let (ctx, _cancel) = ctx.with_timeout(Duration::from_millis(50));
//! let err = pool
//!     .fetch_one(
//!         &ctx,
//!         sqlx::query(
//!             "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000)
//!              SELECT count(*) FROM c",
//!         ),
//!     )
//!     .await
//!     .unwrap_err();
//! assert_eq!(err.context_err(), Some(ctx_core::Error::DeadlineExceeded));
//! assert_eq!(err.to_string(), "query canceled: context deadline exceeded");
//! # Ok(())
//! # }
//! ```
//!
//! # What is stopped, and what is not
//!
//! - The statement running when the context ends, and (by the repeated stop, every 100 ms)
//!   whatever statement the work runs after it until it returns. A closure that ignores the
//!   errors and goes on for more than 2 s is dropped, the server session ended
//!   (`pg_terminate_backend`, `KILL CONNECTION`) and the connection closed.
//! - A result that was complete before the end was noticed is kept: the call returns `Ok` when
//!   the work returned `Ok`, even if the context ended meanwhile (the work was done, a write
//!   committed).
//! - Once the end is noticed and a stop sent, the call returns [`Error::Context`] whatever the
//!   work returns next, because a stopped statement may report success (a MySQL `SLEEP` that is
//!   killed returns 1 and no error). So for a write, [`Error::Context`] means *the outcome is
//!   unknown*, not *nothing was written*: a statement that committed in the moment between the
//!   context's end and the stop's arrival is reported the same way, as Go's `ExecContext`
//!   reports it. Make such writes idempotent, or read back what a retry needs to know.
//! - SQLite: a statement waiting for a lock held by another connection waits for sqlx's
//!   `busy_timeout` (5 s by default) before it can be interrupted. The progress handler of
//!   each call replaces one you set yourself on that connection.
//! - A transaction begun with a plain `BEGIN` statement that a closure leaves open *when it
//!   succeeds* is left to you, as plain sqlx leaves it; use [`Pool::transaction`] or
//!   [`sqlx::Connection::begin`]. One the context stopped is rolled back.
//! - Work on a connection taken with [`Pool::acquire`] is plain sqlx: only the wait for the
//!   connection is bounded by the context.
//!
//! # Events
//!
//! Each query the end of its context stopped is one `DEBUG` event of target `ctx_sqlx`,
//! `query stopped in the server`, in the span current at the call, with:
//!
//! | field | what |
//! | --- | --- |
//! | `cause` | the context's cause (`client disconnected`, `context deadline exceeded`, ...), or `the query was dropped` for a call dropped while its context was live |
//! | `origin` | where the end came from (`file:line:column` of the cancel, or of the context's making for a deadline), when known |
//! | `stop_ms` | from the end noticed (or the call dropped) until the work returned and the connection was settled |
//! | `connection` | `reused` (clean, back to the pool) or `closed` (its session ended) |
//!
//! A dropped call's event comes from the task that stops its work, still in the caller's span
//! and to the caller's subscriber. Nothing is recorded for work that completes, nor for a
//! call whose context had ended before anything was sent. With no subscriber listening at
//! `DEBUG`, a call checks so once and keeps nothing.
//!
//! # What it costs
//!
//! sqlx does not tell which server session a connection is (PostgreSQL's backend process id,
//! MySQL's connection id), so each call asks (`SELECT pg_backend_pid()`,
//! `SELECT CONNECTION_ID()`; for SQLite, one trip to the connection's worker thread to install
//! the progress handler). When the pool tests idle connections before handing them out, as
//! sqlx's pools do by default (one round trip, a ping, per acquire), that question *is* the
//! test: a call takes an idle connection without sqlx's ping, and a connection that fails the
//! question is closed and the next one taken, as sqlx does with one that fails its ping. So a
//! call costs the round trips of plain sqlx. The price: a `before_acquire` hook of the pool is
//! not run for those connections ([`Pool::with_sqlx_acquire`] runs it, at one more round trip).
//! A pool that does not test its connections (`test_before_acquire(false)`) pays the
//! question as one more round trip per call.
//!
//! # How fast
//!
//! Measured with `cargo run --release -p ctx-sqlx --example stop` (servers on 127.0.0.1, a
//! 2-core machine; PostgreSQL 15, MariaDB 10.11): a one-minute statement under a 200 ms
//! deadline returns after 202 ms on SQLite, 202 ms on PostgreSQL (`pg_sleep`) and 201 ms on
//! MariaDB (`SLEEP`), stopped in the server; from a cancel to the call's return takes a median
//! of 0.16 ms (SQLite), 0.66 ms (PostgreSQL) and 0.43 ms (MariaDB), and the next query on the
//! same connection 0.06 to 0.14 ms.

#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod backend;

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{Execute, Executor};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout, timeout_at};

use ctx_core::{Context, ContextError};
use ctx_report::Report;

use crate::backend::{Backend, Control, Settled};

/// The sqlx this crate is built with, for naming its types at the same version.
pub use sqlx;

/// How long one stop (a statement on a side connection) may take.
const STOP_LIMIT: Duration = Duration::from_secs(1);

/// How long the work may go on after a stop before the stop is sent again (it can land
/// between two statements, where it stops nothing).
const RESTOP_AFTER: Duration = Duration::from_millis(100);

/// How long the work may go on after the first stop before it is dropped and its connection
/// closed.
const GRACE: Duration = Duration::from_secs(2);

/// How many statements a stopped connection may need to be clean (each stop of ours can spend
/// itself on one).
const SETTLE_TRIES: usize = 8;

/// A boxed, `Send` future borrowing for `'a`: what the closures of [`Pool::run`] and
/// [`Pool::transaction`] return (the usual way to lend a borrow to async work).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The databases a [`Pool`] can stop work in: [`sqlx::Postgres`], [`sqlx::MySql`] (MySQL and
/// MariaDB) and [`sqlx::Sqlite`].
pub trait Driver: Backend {}

#[cfg(feature = "postgres")]
impl Driver for sqlx::Postgres {}
#[cfg(feature = "mysql")]
impl Driver for sqlx::MySql {}
#[cfg(feature = "sqlite")]
impl Driver for sqlx::Sqlite {}

/// The error of work run under a context.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The context ended before the work completed: it never started (no connection was
    /// taken, or it was taken but nothing sent), or it was stopped in the server. Displays as
    /// `query canceled: context deadline exceeded` (or `... context canceled`); its `source()`
    /// is the context's cause, when one was given.
    Context(ContextError),
    /// sqlx (or the server) reported an error while the context was live.
    Sqlx(sqlx::Error),
}

impl Error {
    /// The context's error if the context ended the work: `Some(Canceled)` or
    /// `Some(DeadlineExceeded)`; `None` otherwise.
    pub fn context_err(&self) -> Option<ctx_core::Error> {
        self.context_error().map(ContextError::err)
    }

    /// The context's error and cause, if the context ended the work.
    pub fn context_error(&self) -> Option<&ContextError> {
        match self {
            Error::Context(stopped) => Some(stopped),
            Error::Sqlx(_) => None,
        }
    }

    fn ended(ctx: &Context, err: ctx_core::Error) -> Error {
        Error::Context(ContextError::new(ctx, err))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Context(stopped) => write!(f, "query canceled: {stopped}"),
            Error::Sqlx(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // The text holds the context's error; the chain goes on with its cause.
            Error::Context(stopped) => stopped.source(),
            Error::Sqlx(e) => e.source(),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Sqlx(e)
    }
}

/// A sqlx pool whose work runs under a [`Context`] and is stopped in the server when it ends.
/// Cheap to clone: clones share the pool. See the [crate documentation](crate).
///
/// The sqlx pool stays available through [`get_ref`](Pool::get_ref), for work that needs no
/// context; both share the same connections.
///
/// ```
/// use ctx_core::Context;
/// use ctx_sqlx::Pool;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ctx_sqlx::Error> {
/// let sqlx_pool = sqlx::sqlite::SqlitePoolOptions::new()
///     .max_connections(4)
///     .connect("sqlite::memory:")
///     .await?;
/// let pool = Pool::new(sqlx_pool);
/// let done = pool.execute(&Context::background(), sqlx::query("SELECT 1")).await?;
/// assert_eq!(done.rows_affected(), 0);
/// # Ok(())
/// # }
/// ```
pub struct Pool<DB: Driver> {
    control: std::sync::Arc<Control<DB>>,
}

impl<DB: Driver> Clone for Pool<DB> {
    fn clone(&self) -> Self {
        Pool {
            control: self.control.clone(),
        }
    }
}

impl<DB: Driver> fmt::Debug for Pool<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.get_ref().size())
            .field("idle", &self.get_ref().num_idle())
            .finish()
    }
}

impl<DB: Driver> Pool<DB> {
    /// Wraps a sqlx pool. Idle connections are taken without sqlx's ping, the statement that
    /// learns their server session testing them instead (see [What it costs](crate#what-it-costs)),
    /// so a `before_acquire` hook of the pool is not run for them: use
    /// [`with_sqlx_acquire`](Pool::with_sqlx_acquire) for a pool that has one. The side
    /// connections that send stops (PostgreSQL, MySQL: one kept
    /// open from the first call on, at most four) are opened from its connect options, as they
    /// are when a stop is sent (options changed with [`sqlx::Pool::set_connect_options`], a
    /// rotated password, are used from then on). A side connection that went bad (the server
    /// restarted, or ended it) is replaced when a stop fails on it.
    pub fn new(pool: sqlx::Pool<DB>) -> Pool<DB> {
        Pool {
            control: std::sync::Arc::new(Control::new(pool, true)),
        }
    }

    /// Wraps a sqlx pool, as [`new`](Pool::new), but takes every connection through sqlx's
    /// acquire, so that a `before_acquire` hook of the pool runs for the calls of this crate
    /// too; at the cost of one more round trip a call (sqlx's ping, then the statement that
    /// learns the connection's name).
    pub fn with_sqlx_acquire(pool: sqlx::Pool<DB>) -> Pool<DB> {
        Pool {
            control: std::sync::Arc::new(Control::new(pool, false)),
        }
    }

    /// The sqlx pool, for work that needs no context.
    pub fn get_ref(&self) -> &sqlx::Pool<DB> {
        self.control.pool()
    }

    /// Takes a connection from the pool, waiting at most until `ctx` ends. Work on it is plain
    /// sqlx (not stopped in the server): use [`run`](Pool::run) for that.
    ///
    /// # Errors
    ///
    /// [`Error::Context`] at once if `ctx` has ended, or when it ends while the pool is
    /// exhausted; [`Error::Sqlx`] for the pool's own errors (its `acquire_timeout`, a
    /// connection that could not be opened).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctx_core::Context;
    /// use ctx_sqlx::Pool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ctx_sqlx::Error> {
    /// let pool = Pool::new(
    ///     sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect("sqlite::memory:").await?,
    /// );
    /// let held = pool.acquire(&Context::background()).await?;
    /// let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(20));
    /// let err = pool.acquire(&ctx).await.unwrap_err();
    /// assert_eq!(err.context_err(), Some(ctx_core::Error::DeadlineExceeded));
    /// drop(held);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn acquire(&self, ctx: &Context) -> Result<PoolConnection<DB>, Error> {
        if let Some(err) = ctx.err() {
            return Err(Error::ended(ctx, err));
        }
        match ctx.run(self.get_ref().acquire()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(Error::Sqlx(e)),
            Err(err) => Err(Error::ended(ctx, err)),
        }
    }

    /// Runs `f`, any sqlx work on one connection of the pool, under `ctx`. Go: the `ctx` of
    /// `db.QueryContext(ctx, ...)`, for a whole unit of work.
    ///
    /// - If `ctx` has already ended, nothing is taken or sent.
    /// - Waiting for a connection stops when `ctx` ends.
    /// - When `ctx` ends while `f`'s work runs, the statement it executes is stopped in the
    ///   server (see the [crate documentation](crate)); `run` returns once the work has
    ///   returned and the connection is clean again (or closed), with [`Error::Context`].
    /// - If the future of `run` is dropped while the work runs, the work is dropped and the same
    ///   stop and clean-up happen from a spawned task.
    ///
    /// # Errors
    ///
    /// [`Error::Context`] when `ctx` ended before the work completed; [`Error::Sqlx`] when it
    /// failed while `ctx` was live. After [`Error::Context`], whether a write of the work took
    /// effect is unknown: it may have committed just before the stop arrived (see the
    /// [crate documentation](crate#what-is-stopped-and-what-is-not)).
    ///
    /// ```
    /// use ctx_core::Context;
    /// use ctx_sqlx::Pool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ctx_sqlx::Error> {
    /// # let pool = Pool::new(
    /// #     sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect("sqlite::memory:").await?,
    /// # );
    /// let ctx = Context::background();
    /// let (id, title): (i64, String) = pool
    ///     .run(&ctx, |conn| {
    ///         Box::pin(async move {
    ///             sqlx::query_as("SELECT ?1, ?2")
    ///                 .bind(7_i64)
    ///                 .bind("Blue Train")
    ///                 .fetch_one(&mut *conn)
    ///                 .await
    ///         })
    ///     })
    ///     .await?;
    /// assert_eq!((id, title.as_str()), (7, "Blue Train"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn run<T, F>(&self, ctx: &Context, f: F) -> Result<T, Error>
    where
        F: for<'c> FnOnce(&'c mut DB::Connection) -> BoxFuture<'c, Result<T, sqlx::Error>>,
    {
        if let Some(err) = ctx.err() {
            return Err(Error::ended(ctx, err));
        }
        self.control.warm();
        let (conn, id) = self.take(ctx).await?;
        let mut lease = Lease {
            conn: Some(conn),
            side: Side {
                control: self.control.clone(),
                id: Some(id),
                stops: Vec::new(),
                state: State::Idle,
            },
            report: None,
        };
        let (ended, finished, since) = {
            let Lease { conn, side, report } = &mut lease;
            let conn = conn.as_mut().expect("the lease holds its connection");
            if let Some(err) = ctx.err() {
                return Err(Error::ended(ctx, err));
            }

            side.state = State::Working;
            *report = Report::new(ctx, tracing::enabled!(tracing::Level::DEBUG));
            let mut work = pin!(f(conn));
            let mut done = pin!(ctx.done());
            let first = poll_fn(|cx| {
                if let Poll::Ready(result) = work.as_mut().poll(cx) {
                    return Poll::Ready(Ok(result));
                }
                done.as_mut().poll(cx).map(Err)
            })
            .await;
            let ended = match first {
                Ok(result) => {
                    side.state = State::Idle;
                    return match result {
                        Ok(value) => Ok(value),
                        Err(e) => match ctx.err() {
                            Some(err) => Err(Error::ended(ctx, err)),
                            None => Err(Error::Sqlx(e)),
                        },
                    };
                }
                Err(ended) => ended,
            };

            // The context ended while the work runs: stop it in the server, and keep driving
            // the work so that it reads the server's answer and returns.
            side.state = State::Stopping;
            let since = Instant::now();
            let give_up = since + GRACE;
            let finished = loop {
                side.send_stop();
                let wait = (Instant::now() + RESTOP_AFTER).min(give_up);
                if let Ok(result) = timeout_at(wait, work.as_mut()).await {
                    break Some(result);
                }
                if Instant::now() >= give_up {
                    break None;
                }
            };
            (ended, finished, since)
        };
        let Lease { conn, side, report } = &mut lease;
        let conn = conn.as_mut().expect("the lease holds its connection");
        let result = match finished {
            Some(result) => {
                side.state = if side.recover(conn, false).await {
                    State::Idle
                } else {
                    State::Dirty
                };
                // The context ended before the work completed, and a stop was sent: the call
                // returns the context's error even if the server then reported success (a
                // MySQL `SLEEP` that is killed returns 1 and no error, so such a result cannot
                // be trusted), as the docs of `run` say.
                drop(result);
                Err(Error::ended(ctx, ended))
            }
            None => {
                side.state = State::Dirty;
                Err(Error::ended(ctx, ended))
            }
        };
        if let Some(report) = report.take() {
            stopped(&report, since.elapsed(), side.state == State::Idle);
        }
        result
    }

    /// A connection for a call, and its name on the server (which a stop needs).
    ///
    /// When the pool tests idle connections before handing them out (sqlx's default), an idle
    /// one is taken as it is and the statement that learns its name is the test, in place of
    /// sqlx's ping: one round trip, as plain sqlx's ping. A connection that fails it is closed
    /// and the next one tried, as sqlx does with one that fails its ping. Otherwise, or when
    /// none is idle, the connection comes from sqlx's acquire, then is named.
    async fn take(&self, ctx: &Context) -> Result<(PoolConnection<DB>, DB::Id), Error> {
        let pool = self.get_ref();
        if self.control.own_test && pool.options().get_test_before_acquire() {
            while let Some(mut conn) = pool.try_acquire() {
                match self.identify(ctx, &mut conn).await {
                    Ok(id) => return Ok((conn, id)),
                    Err(ended @ Error::Context(_)) => {
                        backend::close(conn).await;
                        return Err(ended);
                    }
                    // Dead, or gone bad: the next one.
                    Err(Error::Sqlx(_)) => backend::close(conn).await,
                }
            }
        }
        let mut conn = match ctx.run(pool.acquire()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(Error::Sqlx(e)),
            Err(err) => return Err(Error::ended(ctx, err)),
        };
        match self.identify(ctx, &mut conn).await {
            Ok(id) => Ok((conn, id)),
            Err(e) => {
                backend::close(conn).await;
                Err(e)
            }
        }
    }

    /// Learns the connection's name on the server, bounded by `ctx` and by the pool's acquire
    /// timeout (what bounds sqlx's own test of a connection). On an error the connection may
    /// be in the middle of the statement: it must be closed.
    async fn identify(&self, ctx: &Context, conn: &mut DB::Connection) -> Result<DB::Id, Error> {
        let limit = self.get_ref().options().get_acquire_timeout();
        match ctx.run(timeout(limit, DB::identify(conn))).await {
            Ok(Ok(Ok(id))) => Ok(id),
            Ok(Ok(Err(e))) => Err(Error::Sqlx(e)),
            Ok(Err(_)) => Err(Error::Sqlx(sqlx::Error::PoolTimedOut)),
            Err(err) => Err(Error::ended(ctx, err)),
        }
    }

    /// Runs `f` in a transaction on one connection of the pool, under `ctx`, with
    /// [`run`](Pool::run)'s rules: committed when `f` returns `Ok`, rolled back when it returns
    /// an error, and rolled back (never half-applied) when `ctx` ends first.
    ///
    /// # Errors
    ///
    /// As [`run`](Pool::run); a commit that fails is [`Error::Sqlx`].
    ///
    /// ```
    /// use ctx_core::Context;
    /// use ctx_sqlx::Pool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ctx_sqlx::Error> {
    /// # let pool = Pool::new(
    /// #     sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect("sqlite::memory:").await?,
    /// # );
    /// let ctx = Context::background();
    /// pool.execute(&ctx, sqlx::query("CREATE TABLE album (title TEXT)")).await?;
    /// let n = pool
    ///     .transaction(&ctx, |tx| {
    ///         Box::pin(async move {
    ///             sqlx::query("INSERT INTO album VALUES ('Kind of Blue')").execute(&mut **tx).await?;
    ///             sqlx::query("INSERT INTO album VALUES ('Blue Train')").execute(&mut **tx).await?;
    ///             Ok(2)
    ///         })
    ///     })
    ///     .await?;
    /// assert_eq!(n, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn transaction<T, F>(&self, ctx: &Context, f: F) -> Result<T, Error>
    where
        F: for<'c> FnOnce(
                &'c mut sqlx::Transaction<'_, DB>,
            ) -> BoxFuture<'c, Result<T, sqlx::Error>>
            + Send
            + 'static,
        T: Send + 'static,
    {
        self.run(ctx, move |conn| {
            Box::pin(async move {
                let mut tx = sqlx::Connection::begin(conn).await?;
                match f(&mut tx).await {
                    Ok(value) => {
                        tx.commit().await?;
                        Ok(value)
                    }
                    Err(e) => {
                        tx.rollback().await?;
                        Err(e)
                    }
                }
            })
        })
        .await
    }

    /// Executes `query` under `ctx` and returns what it did: sqlx's
    /// [`execute`](sqlx::Executor::execute), with [`run`](Pool::run)'s rules.
    ///
    /// # Errors
    ///
    /// As [`run`](Pool::run).
    pub async fn execute<E>(&self, ctx: &Context, query: E) -> Result<DB::QueryResult, Error>
    where
        E: Execute<'static, DB> + 'static,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    {
        self.run(ctx, move |conn| conn.execute(query)).await
    }

    /// Runs `query` under `ctx` and returns all its rows: sqlx's
    /// [`fetch_all`](sqlx::Executor::fetch_all), with [`run`](Pool::run)'s rules.
    ///
    /// # Errors
    ///
    /// As [`run`](Pool::run).
    pub async fn fetch_all<E>(&self, ctx: &Context, query: E) -> Result<Vec<DB::Row>, Error>
    where
        E: Execute<'static, DB> + 'static,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    {
        self.run(ctx, move |conn| conn.fetch_all(query)).await
    }

    /// Runs `query` under `ctx` and returns its one row (an error if there is none): sqlx's
    /// [`fetch_one`](sqlx::Executor::fetch_one), with [`run`](Pool::run)'s rules.
    ///
    /// # Errors
    ///
    /// As [`run`](Pool::run).
    pub async fn fetch_one<E>(&self, ctx: &Context, query: E) -> Result<DB::Row, Error>
    where
        E: Execute<'static, DB> + 'static,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    {
        self.run(ctx, move |conn| conn.fetch_one(query)).await
    }

    /// Runs `query` under `ctx` and returns its first row, if any: sqlx's
    /// [`fetch_optional`](sqlx::Executor::fetch_optional), with [`run`](Pool::run)'s rules.
    ///
    /// # Errors
    ///
    /// As [`run`](Pool::run).
    pub async fn fetch_optional<E>(&self, ctx: &Context, query: E) -> Result<Option<DB::Row>, Error>
    where
        E: Execute<'static, DB> + 'static,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    {
        self.run(ctx, move |conn| conn.fetch_optional(query)).await
    }
}

/// Where a call's connection is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing of the call runs on it and no stop was sent: it goes back to the pool as it is.
    Idle,
    /// The work runs on it (if the call is dropped now, the work may still run in the server).
    Working,
    /// Stops were sent and the work is being driven to its end.
    Stopping,
    /// It could not be made clean: end the session and close it.
    Dirty,
}

/// One call's connection, and what it takes to give it back clean.
struct Lease<DB: Driver> {
    conn: Option<PoolConnection<DB>>,
    side: Side<DB>,
    /// Taken when the work starts, if a subscriber may listen; the `query stopped in the
    /// server` event is emitted once, by whichever ends the stop (the call, or the clean-up of
    /// a dropped call).
    report: Option<Report>,
}

/// The `query stopped in the server` event: the work was stopped in the server, `took` after
/// its end was noticed (or its call dropped); `clean`: its connection goes back to the pool
/// (else it is closed).
fn stopped(report: &Report, took: Duration, clean: bool) {
    report.emit("the query was dropped", |cause, origin| {
        tracing::debug!(
            cause,
            origin,
            stop_ms = took.as_secs_f64() * 1000.0,
            connection = if clean { "reused" } else { "closed" },
            "query stopped in the server"
        );
    });
}

struct Side<DB: Driver> {
    control: std::sync::Arc<Control<DB>>,
    id: Option<DB::Id>,
    /// Stops sent and not yet known to be acted on.
    stops: Vec<JoinHandle<Result<(), sqlx::Error>>>,
    state: State,
}

impl<DB: Driver> Side<DB> {
    fn send_stop(&mut self) {
        if let Some(id) = &self.id {
            // Spawned, so that a stop that was sent is always waited for, even if the call is
            // dropped meanwhile.
            self.stops.push(tokio::spawn(DB::stop(&self.control, id)));
        }
    }

    /// Makes a connection whose work was stopped (or dropped) clean: every stop sent has been
    /// acted on, then statements are run until one completes with no stop of ours hitting it
    /// and no transaction open. `stop_first`: the work may still run (it was dropped), so stop
    /// it first. Returns whether the connection is clean; bounded by [`GRACE`].
    async fn recover(&mut self, conn: &mut DB::Connection, stop_first: bool) -> bool {
        let Some(id) = self.id.clone() else {
            return true;
        };
        if stop_first {
            self.send_stop();
        }
        let give_up = Instant::now() + GRACE;
        for _ in 0..SETTLE_TRIES {
            // One at a time, removed only once acted on: if this future is dropped meanwhile,
            // the clean-up that takes over still waits for the rest.
            while let Some(stop) = self.stops.last_mut() {
                match timeout(STOP_LIMIT, stop).await {
                    Ok(Ok(Ok(()))) => drop(self.stops.pop()),
                    // A stop that failed or may still arrive: the connection cannot be trusted.
                    _ => return false,
                }
            }
            let wait = (Instant::now() + RESTOP_AFTER).min(give_up);
            match timeout_at(wait, DB::settle(conn, &id)).await {
                // A transaction sqlx still counts as open (its rollback failed) would make sqlx
                // treat the next `begin` as a savepoint: such a connection is not clean.
                Ok(Settled::Clean) => return !sqlx::Connection::is_in_transaction(conn),
                Ok(Settled::Again) => {}
                Ok(Settled::Broken) => return false,
                // Still busy: the stop may have landed before the statement it was for.
                Err(_) if Instant::now() < give_up => self.send_stop(),
                Err(_) => return false,
            }
        }
        false
    }
}

impl<DB: Driver> Drop for Lease<DB> {
    fn drop(&mut self) {
        let state = self.side.state;
        if state == State::Idle {
            return; // The connection goes back to the pool with `conn`.
        }
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let mut side = Side {
            control: self.side.control.clone(),
            id: self.side.id.take(),
            stops: std::mem::take(&mut self.side.stops),
            state,
        };
        let report = self.report.take();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to clean up on: never give the connection back.
            drop(conn.detach());
            return;
        };
        let since = Instant::now();
        drop(runtime.spawn(async move {
            let clean = state != State::Dirty && side.recover(&mut conn, true).await;
            if let Some(report) = report {
                stopped(&report, since.elapsed(), clean);
            }
            if clean {
                drop(conn);
            } else {
                if let Some(id) = &side.id {
                    let _ = timeout(STOP_LIMIT, DB::kill(&side.control, id)).await;
                }
                backend::close(conn).await;
            }
        }));
    }
}
