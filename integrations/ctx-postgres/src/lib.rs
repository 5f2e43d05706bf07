//! PostgreSQL under a [`Context`]: tokio-postgres queries that are cancelled *on the server* when
//! the context ends. Go: `db.QueryContext(ctx, ...)` with lib/pq or pgx.
//!
//! Dropping a tokio-postgres future only stops waiting: the server carries on with the query.
//! A [`Client`] wraps a `tokio_postgres::Client` and, when the context of a query ends before
//! the query completes, does what libpq's `PQcancel` does: it opens a second connection, sends
//! a cancel request (the backend's process id and secret key) and waits until the server has
//! acted on it. Then it waits until the connection has finished whatever the cancelled work
//! left in its pipeline, so that the client is ready, and returns [`Error::Context`].
//!
//! ```no_run
//! use std::time::Duration;
//! use ctx_core::Context;
//! use ctx_postgres::{Client, Error};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let config = "postgres://app:secret@127.0.0.1:5432/app".parse().unwrap();
//! let client = Client::connect(&Context::background(), &config).await?;
//!
//! let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(200));
//! let err = client.query(&ctx, "SELECT pg_sleep(30)", &[]).await.unwrap_err();
//! assert_eq!(err.context_err(), Some(ctx_core::Error::DeadlineExceeded));
//! // The server has stopped the query, and the client is ready for the next one.
//! let row = client.query_one(&Context::background(), "SELECT 1::int4", &[]).await?;
//! assert_eq!(row.get::<_, i32>(0), 1);
//! # Ok(())
//! # }
//! ```
//!
//! # One query at a time per connection, if you cancel
//!
//! A cancel request names a connection, not a query: the server cancels whatever that
//! connection is executing when the request arrives. A `Client` makes sure its own late cancel
//! cannot reach the *next* query it is asked to run (it waits for the server's acknowledgement
//! and for the pipeline to drain before returning). But tokio-postgres also lets several tasks
//! pipeline queries on one client at once; a cancel meant for one of them may then stop
//! another that was queued behind it. Give each cancellable piece of work a connection of its
//! own (a pool), as Go's `database/sql` does.
//!
//! # How fast
//!
//! Measured with `cargo run -p ctx-postgres --example server_cancel` (PostgreSQL 15 on
//! 127.0.0.1, a 2-core machine): a `pg_sleep(30)` under a 200 ms deadline returns after 205 ms,
//! once the server has stopped it, and nothing of it is left in `pg_stat_activity`.

#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

use std::fmt;
use std::future::{Future, IntoFuture, poll_fn};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};
use tokio_postgres::config::Host;
use tokio_postgres::types::ToSql;
use tokio_postgres::{CancelToken, Config, NoTls, Row, ToStatement};

use ctx_core::{Context, ContextError};

/// The tokio-postgres this module is built with, for naming its types at the same version.
pub use tokio_postgres;

/// How long one cancel request (connect, send, acknowledgement) may take.
const CANCEL_LIMIT: Duration = Duration::from_secs(1);

/// How long to wait for the pipeline to drain before sending the cancel again (the first one
/// can reach the server between two statements of the cancelled work, where it does nothing).
const RECANCEL_AFTER: Duration = Duration::from_millis(100);

/// The longest a query whose context ended waits for the server before returning anyway.
const SETTLE_LIMIT: Duration = Duration::from_secs(2);

/// A boxed, `Send` future borrowing for `'a`: what the closure of [`Client::run_mut`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The error of a query run under a context.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The context ended before the query completed: it was never sent, or it was cancelled.
    /// Displays as `query canceled: context deadline exceeded` (or `... context canceled`); its
    /// `source()` is the context's cause, when one was given.
    Context(ContextError),
    /// The server or the client reported an error while the context was live.
    Postgres(tokio_postgres::Error),
    /// [`Client::connect`] could not reach the server.
    Connect(std::io::Error),
}

impl Error {
    /// The context's error if the context ended the query; `None` otherwise.
    pub fn context_err(&self) -> Option<ctx_core::Error> {
        self.context_error().map(ContextError::err)
    }

    /// The context's error and cause, if the context ended the query.
    pub fn context_error(&self) -> Option<&ContextError> {
        match self {
            Error::Context(stopped) => Some(stopped),
            _ => None,
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
            Error::Postgres(e) => fmt::Display::fmt(e, f),
            Error::Connect(e) => write!(f, "could not connect to the server: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // The text holds the context's error; the chain goes on with its cause.
            Error::Context(stopped) => stopped.source(),
            Error::Postgres(e) => e.source(),
            Error::Connect(e) => Some(e),
        }
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        Error::Postgres(e)
    }
}

/// Sends cancel requests for one connection and waits for the server to act on them.
///
/// With the server's address (what [`Client::connect`] records), a cancel is acknowledged: the
/// server closes the cancel connection once it has signalled the backend, as libpq's
/// `PQcancel` waits for. Without it (a Unix socket, or [`Client::new`] with `None`), the
/// request goes through tokio-postgres's own [`CancelToken::cancel_query`], which returns as
/// soon as the request is written.
#[derive(Clone)]
pub struct Canceller {
    token: CancelToken,
    addr: Option<SocketAddr>,
}

impl Canceller {
    /// Cancels the query that the connection of `token` is running, if any.
    ///
    /// # Errors
    ///
    /// If the server cannot be reached. (Whether a query was cancelled is never reported: the
    /// protocol does not say.)
    pub async fn cancel(&self) -> Result<(), Error> {
        let Some(addr) = self.addr else {
            return self
                .token
                .cancel_query(NoTls)
                .await
                .map_err(Error::Postgres);
        };
        let mut stream = TcpStream::connect(addr).await.map_err(Error::Connect)?;
        let _ = stream.set_nodelay(true);
        self.token
            .cancel_query_raw(&mut stream, NoTls)
            .await
            .map_err(Error::Postgres)?;
        // The server reads the request, signals the backend, then closes the connection.
        let mut buf = [0u8; 16];
        while let Ok(1..) = stream.read(&mut buf).await {}
        Ok(())
    }
}

impl fmt::Debug for Canceller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Canceller")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// A tokio-postgres client whose queries run under a [`Context`] and are cancelled on the
/// server when it ends. See the [module documentation](self).
///
/// The plain client stays available through [`get_ref`](Client::get_ref) and
/// [`get_mut`](Client::get_mut).
pub struct Client {
    client: tokio_postgres::Client,
    canceller: Canceller,
    /// The cancel sent for work whose future was dropped in flight (it could not wait for the
    /// server): the next query waits for it and settles the connection before it is sent.
    dropped: Mutex<Option<JoinHandle<()>>>,
}

impl Client {
    /// Connects to the server described by `config` (without TLS), under `ctx`, and spawns the
    /// connection's task on the current tokio runtime.
    ///
    /// TCP hosts are tried in order; the address that answered is kept for acknowledged
    /// cancels. For Unix-socket hosts, tokio-postgres connects by itself.
    ///
    /// # Errors
    ///
    /// [`Error::Context`] if `ctx` ended first, [`Error::Connect`] if no host could be
    /// reached, [`Error::Postgres`] if the server refused the connection.
    ///
    /// ```no_run
    /// use ctx_core::Context;
    /// use ctx_postgres::Client;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ctx_postgres::Error> {
    /// let mut config: tokio_postgres::Config = "host=127.0.0.1 user=app dbname=app".parse()?;
    /// config.application_name("albums");
    /// let client = Client::connect(&Context::background(), &config).await?;
    /// assert!(!client.get_ref().is_closed());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(ctx: &Context, config: &Config) -> Result<Client, Error> {
        if let Some(err) = ctx.err() {
            return Err(Error::ended(ctx, err));
        }
        match ctx.run(connect(config)).await {
            Ok(connected) => connected,
            Err(err) => Err(Error::ended(ctx, err)),
        }
    }

    /// Wraps a client you connected yourself. `cancel_addr` is the server's address for
    /// acknowledged cancels; `None` uses tokio-postgres's own cancel (see [`Canceller`]).
    pub fn new(client: tokio_postgres::Client, cancel_addr: Option<SocketAddr>) -> Client {
        let canceller = Canceller {
            token: client.cancel_token(),
            addr: cancel_addr,
        };
        Client {
            client,
            canceller,
            dropped: Mutex::new(None),
        }
    }

    /// The tokio-postgres client, for work that needs no context.
    pub fn get_ref(&self) -> &tokio_postgres::Client {
        &self.client
    }

    /// The tokio-postgres client, mutably.
    pub fn get_mut(&mut self) -> &mut tokio_postgres::Client {
        &mut self.client
    }

    /// Unwraps the tokio-postgres client.
    pub fn into_inner(self) -> tokio_postgres::Client {
        self.client
    }

    /// What sends this connection's cancel requests.
    pub fn canceller(&self) -> &Canceller {
        &self.canceller
    }

    /// Runs `fut`, work on this client (built from [`get_ref`](Client::get_ref)), under `ctx`.
    ///
    /// - If `ctx` has already ended, `fut` is never polled (nothing is sent).
    /// - If `ctx` ends first, `fut` is dropped, the server is told to cancel what this
    ///   connection is running, and `run` returns [`Error::Context`] once the server has
    ///   acknowledged the cancel and finished what `fut` had sent (bounded by 2 s for a server
    ///   that does not answer). The client is then ready for the next query.
    /// - If the future of `run` itself is dropped while `fut` is in flight, a cancel request is
    ///   still sent (from a spawned task), and the next query run through this `Client` first
    ///   waits for it to be acknowledged and for the connection to settle.
    /// - If `fut` fails while `ctx` is live: [`Error::Postgres`]. A result `fut` completed
    ///   with is kept, even if `ctx` ended at the same moment.
    ///
    /// ```no_run
    /// use ctx_core::Context;
    /// use ctx_postgres::Client;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ctx_postgres::Error> {
    /// # let ctx = &Context::background();
    /// # let client = &Client::connect(ctx, &"host=127.0.0.1".parse()?).await?;
    /// let pg = client.get_ref();
    /// let statement = client.run(ctx, pg.prepare("SELECT title FROM album WHERE id = $1")).await?;
    /// let rows = client.run(ctx, pg.query(&statement, &[&7_i64])).await?;
    /// println!("{} albums", rows.len());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn run<'a, T, F>(&'a self, ctx: &Context, fut: F) -> Result<T, Error>
    where
        F: IntoFuture<Output = Result<T, tokio_postgres::Error>>,
        F::IntoFuture: 'a,
    {
        if let Some(err) = ctx.err() {
            return Err(Error::ended(ctx, err));
        }
        self.recover().await;
        let mut on_drop = CancelOnDrop {
            canceller: &self.canceller,
            dropped: &self.dropped,
            armed: true,
        };
        let raced = ctx.run(fut).await;
        let finished = self.finish(ctx, raced).await;
        on_drop.armed = false;
        finished
    }

    /// Like [`run`](Client::run), for work that needs the client mutably: a transaction.
    /// `f` gets the tokio-postgres client and returns its work boxed (the usual way to
    /// lend a borrow to an async closure).
    ///
    /// A [`tokio_postgres::Transaction`] that is dropped unfinished rolls back, so a
    /// transaction whose context ends is cancelled on the server and rolled back, never
    /// half-applied.
    ///
    /// ```no_run
    /// use ctx_core::Context;
    /// use ctx_postgres::Client;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ctx_postgres::Error> {
    /// # let ctx = &Context::background();
    /// # let client = &mut Client::connect(ctx, &"host=127.0.0.1".parse()?).await?;
    /// let moved = client
    ///     .run_mut(ctx, |pg| {
    ///         Box::pin(async move {
    ///             let tx = pg.transaction().await?;
    ///             let n = tx.execute("UPDATE album SET shelf = 2 WHERE shelf = 1", &[]).await?;
    ///             tx.execute("DELETE FROM shelf WHERE id = 1", &[]).await?;
    ///             tx.commit().await?;
    ///             Ok(n)
    ///         })
    ///     })
    ///     .await?;
    /// println!("{moved} albums moved");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn run_mut<T, F>(&mut self, ctx: &Context, f: F) -> Result<T, Error>
    where
        F: for<'c> FnOnce(
            &'c mut tokio_postgres::Client,
        ) -> BoxFuture<'c, Result<T, tokio_postgres::Error>>,
    {
        if let Some(err) = ctx.err() {
            return Err(Error::ended(ctx, err));
        }
        self.recover().await;
        let mut on_drop = CancelOnDrop {
            canceller: &self.canceller,
            dropped: &self.dropped,
            armed: true,
        };
        let raced = ctx.run(f(&mut self.client)).await;
        let finished = self.finish(ctx, raced).await;
        on_drop.armed = false;
        finished
    }

    /// Runs a query under `ctx` and returns its rows. tokio-postgres's
    /// [`query`](tokio_postgres::Client::query), with [`run`](Client::run)'s rules.
    pub async fn query<S>(
        &self,
        ctx: &Context,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error>
    where
        S: ?Sized + ToStatement,
    {
        self.run(ctx, self.client.query(statement, params)).await
    }

    /// Runs a query under `ctx` that returns exactly one row.
    /// tokio-postgres's [`query_one`](tokio_postgres::Client::query_one), with
    /// [`run`](Client::run)'s rules.
    pub async fn query_one<S>(
        &self,
        ctx: &Context,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, Error>
    where
        S: ?Sized + ToStatement,
    {
        self.run(ctx, self.client.query_one(statement, params))
            .await
    }

    /// Runs a query under `ctx` that returns at most one row.
    /// tokio-postgres's [`query_opt`](tokio_postgres::Client::query_opt), with
    /// [`run`](Client::run)'s rules.
    pub async fn query_opt<S>(
        &self,
        ctx: &Context,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error>
    where
        S: ?Sized + ToStatement,
    {
        self.run(ctx, self.client.query_opt(statement, params))
            .await
    }

    /// Runs a statement under `ctx` and returns how many rows it changed.
    /// tokio-postgres's [`execute`](tokio_postgres::Client::execute), with
    /// [`run`](Client::run)'s rules.
    pub async fn execute<S>(
        &self,
        ctx: &Context,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error>
    where
        S: ?Sized + ToStatement,
    {
        self.run(ctx, self.client.execute(statement, params)).await
    }

    /// Runs statements separated by `;` (no parameters) under `ctx`.
    /// tokio-postgres's [`batch_execute`](tokio_postgres::Client::batch_execute), with
    /// [`run`](Client::run)'s rules.
    pub async fn batch_execute(&self, ctx: &Context, sql: &str) -> Result<(), Error> {
        self.run(ctx, self.client.batch_execute(sql)).await
    }

    async fn finish<T>(
        &self,
        ctx: &Context,
        raced: Result<Result<T, tokio_postgres::Error>, ctx_core::Error>,
    ) -> Result<T, Error> {
        match raced {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => match ctx.err() {
                Some(err) => Err(Error::ended(ctx, err)),
                None => Err(Error::Postgres(e)),
            },
            Err(err) => {
                // The work was dropped in flight: stop it on the server.
                self.settle().await;
                Err(Error::ended(ctx, err))
            }
        }
    }

    /// If the future of an earlier query was dropped in flight, waits for the cancel sent then
    /// and settles the connection, so that cancel cannot stop the query about to be sent.
    async fn recover(&self) {
        let sent = lock(&self.dropped).take();
        if let Some(sent) = sent {
            let _ = timeout(CANCEL_LIMIT, sent).await;
            self.settle().await;
        }
    }

    /// Cancels what the connection is running and waits until the server has acknowledged the
    /// cancel and finished everything queued before a fence (an empty query sent now), sending
    /// the cancel again while the fence waits (the first one may have arrived between two
    /// statements, where it does nothing). Afterwards no cancel of ours is pending, so the next
    /// query cannot be hit by one.
    async fn settle(&self) {
        let give_up = Instant::now() + SETTLE_LIMIT;
        let mut fence = pin!(self.client.batch_execute(""));
        let mut fence_done = false;
        loop {
            // Spawned, so that the request goes out even if this future is dropped.
            let canceller = self.canceller.clone();
            let sent = tokio::spawn(async move { canceller.cancel().await });
            let mut acked = pin!(timeout(CANCEL_LIMIT, sent));
            // Drive the fence (so it is sent) while waiting for the acknowledgement.
            poll_fn(|cx| {
                if !fence_done && fence.as_mut().poll(cx).is_ready() {
                    fence_done = true;
                }
                acked.as_mut().poll(cx).map(drop)
            })
            .await;
            if fence_done {
                return;
            }
            let now = Instant::now();
            if now >= give_up {
                return;
            }
            let wait = RECANCEL_AFTER.min(give_up - now);
            if timeout(wait, fence.as_mut()).await.is_ok() {
                return;
            }
        }
    }
}

/// Sends a cancel from a spawned task if the future of a query is dropped in flight (or while
/// it settles), and leaves the task for the next query to wait for.
struct CancelOnDrop<'a> {
    canceller: &'a Canceller,
    dropped: &'a Mutex<Option<JoinHandle<()>>>,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let canceller = self.canceller.clone();
        let mut dropped = lock(self.dropped);
        let earlier = dropped.take();
        *dropped = Some(runtime.spawn(async move {
            if let Some(earlier) = earlier {
                let _ = timeout(CANCEL_LIMIT, earlier).await;
            }
            let _ = timeout(CANCEL_LIMIT, canceller.cancel()).await;
        }));
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding it; a poisoned lock is still consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("closed", &self.client.is_closed())
            .field("canceller", &self.canceller)
            .finish()
    }
}

/// The TCP endpoints of `config`, in order; `None` when tokio-postgres must connect by itself
/// (Unix sockets, or no host at all, which it reports).
fn tcp_endpoints(config: &Config) -> Option<Vec<(String, u16)>> {
    let ports = config.get_ports();
    let port = |i: usize| match ports {
        [] => 5432,
        [one] => *one,
        many => many.get(i).copied().unwrap_or(5432),
    };
    let addrs = config.get_hostaddrs();
    if !addrs.is_empty() {
        return Some(
            addrs
                .iter()
                .enumerate()
                .map(|(i, a)| (a.to_string(), port(i)))
                .collect(),
        );
    }
    let hosts = config.get_hosts();
    if hosts.is_empty() {
        return None;
    }
    hosts
        .iter()
        .enumerate()
        .map(|(i, h)| match h {
            Host::Tcp(name) => Some((name.clone(), port(i))),
            _ => None,
        })
        .collect()
}

async fn connect(config: &Config) -> Result<Client, Error> {
    let Some(endpoints) = tcp_endpoints(config) else {
        let (client, connection) = config.connect(NoTls).await?;
        drop(tokio::spawn(connection));
        return Ok(Client::new(client, None));
    };
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address for any host");
    for (host, port) in endpoints {
        let addrs = match tokio::net::lookup_host((host.as_str(), port)).await {
            Ok(addrs) => addrs,
            Err(e) => {
                last = e;
                continue;
            }
        };
        for addr in addrs {
            let attempt = TcpStream::connect(addr);
            let stream = match config.get_connect_timeout() {
                Some(limit) => match timeout(*limit, attempt).await {
                    Ok(stream) => stream,
                    Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
                },
                None => attempt.await,
            };
            match stream {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    let (client, connection) = config.connect_raw(stream, NoTls).await?;
                    drop(tokio::spawn(connection));
                    return Ok(Client::new(client, Some(addr)));
                }
                Err(e) => last = e,
            }
        }
    }
    Err(Error::Connect(last))
}
