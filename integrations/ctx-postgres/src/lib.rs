//! PostgreSQL under a [`Context`]: tokio-postgres queries that are cancelled *on the server* when
//! the context ends. Go: `db.QueryContext(ctx, ...)` with lib/pq or pgx.
//!
//! Dropping a tokio-postgres future only stops waiting: the server carries on with the query.
//! A [`Client`] wraps a `tokio_postgres::Client` and, when the context of a query ends before
//! the query completes, does what libpq's `PQcancel` does: it sends a cancel request (the
//! backend's process id and secret key) through tokio-postgres's [`CancelToken`], over a
//! second connection made with *your* TLS connector, to the host the client is connected to.
//! Then it waits until the connection has finished whatever the cancelled work left in its
//! pipeline, so that the client is ready, and returns [`Error::Context`].
//!
//! ```no_run
//! use std::time::Duration;
//! use ctx_core::Context;
//! use ctx_postgres::{Client, Error};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let config = "postgres://app:secret@127.0.0.1:5432/app".parse().unwrap();
//! // Any TLS connector of tokio-postgres's (postgres-native-tls, postgres-openssl,
//! // tokio-postgres-rustls), or `NoTls`: the cancel requests use it too.
//! let client = Client::connect(&Context::background(), &config, tokio_postgres::NoTls).await?;
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
//! connection is executing when the request arrives. A `Client` keeps its own late cancel from
//! reaching the *next* query it is asked to run: it waits for the server's acknowledgement of
//! the cancel (see [`Canceller`]) and for a fence (an empty query sent behind the cancelled
//! work) to come back before returning. But tokio-postgres also lets several tasks
//! pipeline queries on one client at once; a cancel meant for one of them may then stop
//! another that was queued behind it. Give each cancellable piece of work a connection of its
//! own (a pool), as Go's `database/sql` does.
//!
//! # Events (`tracing`)
//!
//! A query cancelled in the server is recorded with one `DEBUG` event, `query canceled in the
//! server` (target `ctx_postgres`), in the span that was current at the call (and with the
//! subscriber that was, also when it is emitted from the task that cancels a dropped query):
//!
//! | field | type | value |
//! | --- | --- | --- |
//! | `cause` | text | the context's cause (`client disconnected`, `context deadline exceeded`, ...), or `the query was dropped` when its future was dropped while the context was live |
//! | `origin` | text | `file:line:col` of the context's [`origin()`](ctx_core::Context::origin); absent for a dropped query |
//! | `stop_ms` | `f64` | milliseconds the stop took: until the server had stopped the query and the connection was ready again; for a query whose future was dropped, until the server acknowledged the cancel request |
//!
//! A query that completes, or is never sent, records nothing. With no subscriber listening at
//! `DEBUG` it costs one atomic load per query.
//!
//! # How fast
//!
//! Measured with `cargo run -p ctx-postgres --example server_cancel` (PostgreSQL 15 on
//! 127.0.0.1, a 2-core machine): a `pg_sleep(30)` under a 200 ms deadline returns after 205 ms,
//! once the server has stopped it, and nothing of it is left in `pg_stat_activity`.

#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::fmt;
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};
use tokio_postgres::config::Host;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres::types::ToSql;
use tokio_postgres::{CancelToken, Config, Row, Socket, ToStatement};

use ctx_core::{Context, ContextError};
use ctx_report::Report;

/// The tokio-postgres this module is built with, for naming its types at the same version.
pub use tokio_postgres;

#[cfg(feature = "deadpool")]
mod pool;
#[cfg(feature = "deadpool")]
#[cfg_attr(docsrs, doc(cfg(feature = "deadpool")))]
/// The deadpool-postgres this crate is built with.
pub use deadpool_postgres;
#[cfg(feature = "deadpool")]
#[cfg_attr(docsrs, doc(cfg(feature = "deadpool")))]
pub use pool::{Pool, PooledClient};

/// How long one cancel request (connect, TLS, send) may take before it is given up.
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
    /// [`Client::connect`] could not connect: no host answered, the TLS handshake or the
    /// authentication failed.
    Connect(tokio_postgres::Error),
    /// A cancel request ([`Canceller::cancel`]) could not be sent: its connection, its TLS
    /// handshake or the server failed.
    Cancel(Box<dyn std::error::Error + Send + Sync>),
    /// A cancel request ([`Canceller::cancel`]) got no answer within its time limit (1 s).
    CancelTimedOut,
    /// The pool could not lend a connection while the context was live: it could not connect,
    /// or it is closed.
    #[cfg(feature = "deadpool")]
    #[cfg_attr(docsrs, doc(cfg(feature = "deadpool")))]
    Pool(deadpool_postgres::PoolError),
    /// The context ended while waiting for a connection from the pool (every one was busy).
    /// Displays as `no connection from the pool: context deadline exceeded`.
    #[cfg(feature = "deadpool")]
    #[cfg_attr(docsrs, doc(cfg(feature = "deadpool")))]
    PoolWait(ContextError),
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
            #[cfg(feature = "deadpool")]
            Error::PoolWait(stopped) => Some(stopped),
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
            // tokio-postgres's own text for a server's error is only "db error": say the
            // server's message (a wrong password, an unknown database).
            Error::Connect(e) => match e.as_db_error() {
                Some(db) => write!(f, "could not connect to the server: {db}"),
                None => write!(f, "could not connect to the server: {e}"),
            },
            Error::Cancel(e) => write!(f, "could not send the cancel request: {e}"),
            #[cfg(feature = "deadpool")]
            Error::Pool(e) => write!(f, "no connection from the pool: {e}"),
            #[cfg(feature = "deadpool")]
            Error::PoolWait(stopped) => write!(f, "no connection from the pool: {stopped}"),
            Error::CancelTimedOut => write!(
                f,
                "the cancel request got no answer within {} s",
                CANCEL_LIMIT.as_secs()
            ),
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
            Error::Cancel(e) => Some(&**e),
            #[cfg(feature = "deadpool")]
            Error::Pool(e) => Some(e),
            #[cfg(feature = "deadpool")]
            Error::PoolWait(stopped) => stopped.source(),
            Error::CancelTimedOut => None,
        }
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        Error::Postgres(e)
    }
}

/// The TLS connectors a [`Client`] can connect and cancel with: tokio-postgres's
/// [`MakeTlsConnect`] over its [`Socket`] (for the connection) and over an [`AckStream`] (for
/// cancel requests), sendable to the task that sends a cancel (and shareable, as
/// deadpool-postgres needs). `tokio_postgres::NoTls`,
/// postgres-native-tls's, postgres-openssl's and tokio-postgres-rustls's connectors all are:
/// they are generic over the stream.
pub trait Tls:
    MakeTlsConnect<Socket, Stream = Self::Conn, TlsConnect = Self::Connect>
    + MakeTlsConnect<AckStream, Stream = Self::CancelConn, TlsConnect = Self::CancelConnect>
    + Clone
    + Send
    + Sync
    + 'static
{
    /// The connector's stream.
    type Conn: TlsStream + Unpin + Send + Sync + 'static;
    /// The connector's per-connection handshake.
    type Connect: TlsConnect<Socket, Stream = Self::Conn, Future = Self::Handshake> + Send + Sync;
    /// The handshake's future.
    type Handshake: Send;
    /// The stream of a cancel request.
    type CancelConn: TlsStream + Unpin + Send + 'static;
    /// The handshake of a cancel request.
    type CancelConnect: TlsConnect<AckStream, Stream = Self::CancelConn, Future = Self::CancelHandshake>
        + Send;
    /// The future of a cancel request's handshake.
    type CancelHandshake: Send;
}

impl<T> Tls for T
where
    T: MakeTlsConnect<Socket> + MakeTlsConnect<AckStream> + Clone + Send + Sync + 'static,
    <T as MakeTlsConnect<Socket>>::Stream: Send + Sync + 'static,
    <T as MakeTlsConnect<Socket>>::TlsConnect: Send + Sync,
    <<T as MakeTlsConnect<Socket>>::TlsConnect as TlsConnect<Socket>>::Future: Send,
    <T as MakeTlsConnect<AckStream>>::Stream: Send + 'static,
    <T as MakeTlsConnect<AckStream>>::TlsConnect: Send,
    <<T as MakeTlsConnect<AckStream>>::TlsConnect as TlsConnect<AckStream>>::Future: Send,
{
    type Conn = <T as MakeTlsConnect<Socket>>::Stream;
    type Connect = <T as MakeTlsConnect<Socket>>::TlsConnect;
    type Handshake = <<T as MakeTlsConnect<Socket>>::TlsConnect as TlsConnect<Socket>>::Future;
    type CancelConn = <T as MakeTlsConnect<AckStream>>::Stream;
    type CancelConnect = <T as MakeTlsConnect<AckStream>>::TlsConnect;
    type CancelHandshake =
        <<T as MakeTlsConnect<AckStream>>::TlsConnect as TlsConnect<AckStream>>::Future;
}

/// The TCP stream a [`Client`] sends a cancel request on. Shutting it down (which
/// tokio-postgres does once the request is written) also waits until the server closes the
/// connection, which it does after it has signalled the backend: that is the request's
/// acknowledgement, as libpq's `PQcancel` waits for it.
#[derive(Debug)]
pub struct AckStream {
    tcp: TcpStream,
    write_shut: bool,
}

impl AsyncRead for AckStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for AckStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.write_shut {
            ready!(Pin::new(&mut self.tcp).poll_shutdown(cx))?;
            self.write_shut = true;
        }
        // The acknowledgement: whatever the server sends (over TLS, its close_notify) until
        // it closes the connection. An error is an end too.
        let mut scratch = [0u8; 64];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match ready!(Pin::new(&mut self.tcp).poll_read(cx, &mut buf)) {
                Ok(()) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Ok(()) => continue,
                Err(_) => return Poll::Ready(Ok(())),
            }
        }
    }
}

type SendCancel = dyn Fn(CancelToken) -> BoxFuture<'static, Result<(), Error>> + Send + Sync;

/// How to send a cancel request for any connection to one server (shared by a pool's
/// connections, so that lending one allocates nothing for it).
#[derive(Clone)]
struct CancelMethod {
    send: Arc<SendCancel>,
    acknowledged: bool,
}

impl CancelMethod {
    fn new<T: Tls>(tls: T, target: Option<(String, SocketAddr)>) -> CancelMethod {
        let acknowledged = target.is_some();
        let send: Arc<SendCancel> = match target {
            Some((domain, addr)) => Arc::new(move |token: CancelToken| {
                let mut tls = tls.clone();
                let domain = domain.clone();
                Box::pin(async move {
                    let tcp = TcpStream::connect(addr)
                        .await
                        .map_err(|e| Error::Cancel(e.into()))?;
                    let _ = tcp.set_nodelay(true);
                    let connect = MakeTlsConnect::<AckStream>::make_tls_connect(&mut tls, &domain)
                        .map_err(|e| Error::Cancel(e.into()))?;
                    let stream = AckStream {
                        tcp,
                        write_shut: false,
                    };
                    token
                        .cancel_query_raw(stream, connect)
                        .await
                        .map_err(|e| Error::Cancel(e.into()))
                })
            }),
            None => Arc::new(move |token: CancelToken| {
                let tls = tls.clone();
                Box::pin(async move {
                    token
                        .cancel_query(tls)
                        .await
                        .map_err(|e| Error::Cancel(e.into()))
                })
            }),
        };
        CancelMethod { send, acknowledged }
    }
}

/// Sends cancel requests for one connection: tokio-postgres's [`CancelToken`], with the TLS
/// connector the client was connected with, each request bounded by a time limit of its own.
///
/// When the client knows the address of the server it is connected to (one TCP host in its
/// configuration, or several of which the server's own address picks one), the request goes
/// over an [`AckStream`] and `cancel` returns once the server has acknowledged it. Otherwise
/// (Unix sockets, an address behind a proxy that matches none of the hosts) it goes through
/// [`CancelToken::cancel_query`], which returns as soon as the request is written.
#[derive(Clone)]
pub struct Canceller {
    token: CancelToken,
    method: CancelMethod,
}

impl Canceller {
    fn new(token: CancelToken, method: CancelMethod) -> Canceller {
        Canceller { token, method }
    }

    /// Asks the server to cancel what this connection is running, if anything.
    ///
    /// # Errors
    ///
    /// [`Error::Cancel`] if the server cannot be reached, [`Error::CancelTimedOut`] if the
    /// request takes more than 1 s. (Whether a query was cancelled is never reported: the
    /// protocol does not say.)
    pub async fn cancel(&self) -> Result<(), Error> {
        match timeout(CANCEL_LIMIT, (self.method.send)(self.token.clone())).await {
            Ok(sent) => sent,
            Err(_) => Err(Error::CancelTimedOut),
        }
    }

    /// Whether [`cancel`](Canceller::cancel) waits for the server's acknowledgement.
    pub fn is_acknowledged(&self) -> bool {
        self.method.acknowledged
    }
}

impl fmt::Debug for Canceller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Canceller")
            .field("acknowledged", &self.method.acknowledged)
            .finish_non_exhaustive()
    }
}

/// What the queries of one [`Client`] share besides the connection: how to cancel, and the
/// cancel a dropped query left in flight.
struct Shared {
    canceller: Canceller,
    /// The cancel sent for work whose future was dropped in flight (it could not wait for the
    /// server): the next query waits for it and settles the connection before it is sent.
    dropped: Mutex<Option<JoinHandle<()>>>,
    /// A settle gave up (the server did not finish the cancelled work within its limit): the
    /// connection may still be running it.
    unsettled: AtomicBool,
}

/// A tokio-postgres client whose queries run under a [`Context`] and are cancelled on the
/// server when it ends. See the [module documentation](self).
///
/// The plain client stays available through [`get_ref`](Client::get_ref) and
/// [`get_mut`](Client::get_mut).
pub struct Client<C = tokio_postgres::Client> {
    client: C,
    shared: Shared,
}

/// What a [`Client`] can hold: a `tokio_postgres::Client` of its own, or (with the `deadpool`
/// feature) a connection lent by a deadpool-postgres pool ([`PooledClient`]).
pub trait Connection: sealed::Sealed + Send + Sync {
    /// The tokio-postgres client.
    fn pg(&self) -> &tokio_postgres::Client;
    /// The tokio-postgres client, mutably.
    fn pg_mut(&mut self) -> &mut tokio_postgres::Client;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for tokio_postgres::Client {}
    #[cfg(feature = "deadpool")]
    impl Sealed for deadpool_postgres::Object {}
}

impl Connection for tokio_postgres::Client {
    fn pg(&self) -> &tokio_postgres::Client {
        self
    }
    fn pg_mut(&mut self) -> &mut tokio_postgres::Client {
        self
    }
}

#[cfg(feature = "deadpool")]
impl Connection for deadpool_postgres::Object {
    fn pg(&self) -> &tokio_postgres::Client {
        self
    }
    fn pg_mut(&mut self) -> &mut tokio_postgres::Client {
        self
    }
}

impl Client {
    /// Connects to the server described by `config` under `ctx`, with `tls` (or
    /// `tokio_postgres::NoTls`), as `tokio_postgres::connect` does (every host in order, its
    /// timeouts and keepalives), and spawns the connection's task on the current tokio runtime.
    /// The same connector sends the cancel requests.
    ///
    /// # Errors
    ///
    /// [`Error::Context`] if `ctx` ended first, [`Error::Connect`] if no host could be
    /// reached or the server refused the connection.
    ///
    /// ```no_run
    /// use ctx_core::Context;
    /// use ctx_postgres::Client;
    /// use tokio_postgres::NoTls;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ctx_postgres::Error> {
    /// let mut config: tokio_postgres::Config = "host=127.0.0.1 user=app dbname=app".parse()?;
    /// config.application_name("albums");
    /// let client = Client::connect(&Context::background(), &config, NoTls).await?;
    /// assert!(!client.get_ref().is_closed());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect<T: Tls>(ctx: &Context, config: &Config, tls: T) -> Result<Client, Error> {
        if let Some(err) = ctx.err() {
            return Err(Error::ended(ctx, err));
        }
        let (client, connection) = match ctx.run(config.connect(tls.clone())).await {
            Ok(connected) => connected.map_err(Error::Connect)?,
            Err(err) => return Err(Error::ended(ctx, err)),
        };
        drop(tokio::spawn(connection));
        let target = match ctx.run(cancel_target(config, &client)).await {
            Ok(target) => target,
            Err(err) => return Err(Error::ended(ctx, err)),
        };
        Ok(Client::new(client, tls, target))
    }

    /// Wraps a client you connected yourself, with the TLS connector its cancel requests
    /// should use (the one you connected with) and, for acknowledged cancels, the host name
    /// (for TLS) and address of the server it is connected to (see [`Canceller`]).
    pub fn new<T: Tls>(
        client: tokio_postgres::Client,
        tls: T,
        cancel_target: Option<(String, SocketAddr)>,
    ) -> Client {
        let canceller =
            Canceller::new(client.cancel_token(), CancelMethod::new(tls, cancel_target));
        Client::with_canceller(client, canceller)
    }
}

impl<C: Connection> Client<C> {
    fn with_canceller(client: C, canceller: Canceller) -> Client<C> {
        Client {
            client,
            shared: Shared {
                canceller,
                dropped: Mutex::new(None),
                unsettled: AtomicBool::new(false),
            },
        }
    }

    /// The tokio-postgres client, for work that needs no context.
    pub fn get_ref(&self) -> &tokio_postgres::Client {
        self.client.pg()
    }

    /// The tokio-postgres client, mutably.
    pub fn get_mut(&mut self) -> &mut tokio_postgres::Client {
        self.client.pg_mut()
    }

    /// Unwraps the connection.
    pub fn into_inner(self) -> C {
        self.client
    }

    /// What sends this connection's cancel requests.
    pub fn canceller(&self) -> &Canceller {
        &self.shared.canceller
    }

    /// Runs `fut`, work on this client (built from [`get_ref`](Client::get_ref)), under `ctx`.
    ///
    /// - If `ctx` has already ended, `fut` is never polled (nothing is sent).
    /// - If `ctx` ends first, `fut` is dropped, the server is told to cancel what this
    ///   connection is running, and `run` returns [`Error::Context`] once the connection has
    ///   finished what `fut` had sent (bounded by 2 s for a server that does not answer). The
    ///   client is then ready for the next query.
    /// - If the future of `run` itself is dropped while `fut` is in flight, a cancel request is
    ///   still sent (from a spawned task), and the next query run through this `Client` first
    ///   waits for it and for the connection to settle.
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
    /// # let config = "host=127.0.0.1".parse()?;
    /// # let client = &Client::connect(ctx, &config, tokio_postgres::NoTls).await?;
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
        let guard = Guard::open(&self.shared, self.client.pg(), ctx).await?;
        let raced = ctx.run(fut).await;
        guard.close(self.client.pg(), ctx, raced).await
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
    /// # let config = "host=127.0.0.1".parse()?;
    /// # let client = &mut Client::connect(ctx, &config, tokio_postgres::NoTls).await?;
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
        let guard = Guard::open(&self.shared, self.client.pg(), ctx).await?;
        let raced = ctx.run(f(self.client.pg_mut())).await;
        guard.close(self.client.pg(), ctx, raced).await
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
        self.run(ctx, self.client.pg().query(statement, params))
            .await
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
        self.run(ctx, self.client.pg().query_one(statement, params))
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
        self.run(ctx, self.client.pg().query_opt(statement, params))
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
        self.run(ctx, self.client.pg().execute(statement, params))
            .await
    }

    /// Runs statements separated by `;` (no parameters) under `ctx`.
    /// tokio-postgres's [`batch_execute`](tokio_postgres::Client::batch_execute), with
    /// [`run`](Client::run)'s rules.
    pub async fn batch_execute(&self, ctx: &Context, sql: &str) -> Result<(), Error> {
        self.run(ctx, self.client.pg().batch_execute(sql)).await
    }
}

impl Shared {
    /// Whether the connection can be given to other work: no cancel of ours in flight, and no
    /// cancelled work that may still be running. (Only the pool asks.)
    #[cfg(feature = "deadpool")]
    fn is_clean(&self) -> bool {
        lock(&self.dropped).is_none() && !self.unsettled.load(Ordering::Acquire)
    }

    /// If the future of an earlier query was dropped in flight, waits for the cancel sent then
    /// (bounded by the cancel's own limit) and settles the connection, so that cancel cannot
    /// stop the query about to be sent.
    async fn recover(&self, client: &tokio_postgres::Client) {
        let sent = lock(&self.dropped).take();
        if let Some(sent) = sent {
            let _ = sent.await;
            self.settle(client).await;
        }
    }

    /// Cancels what the connection is running, then waits until it has finished everything
    /// queued before a fence (an empty query sent after the cancel), sending the cancel again
    /// every 100 ms while the fence waits (the first one may have arrived between two
    /// statements, where it does nothing). Gives up after 2 s. Nothing is left running when it
    /// returns or is dropped: each cancel is awaited here, within its own time limit.
    ///
    /// Each cancel is sent before the fence, and returns once the server has acknowledged it
    /// (when the [`Canceller`] knows the server's address), so no cancel of ours is still on
    /// its way when the fence comes back; a backend that receives a cancel while idle ignores
    /// it.
    async fn settle(&self, client: &tokio_postgres::Client) {
        let give_up = Instant::now() + SETTLE_LIMIT;
        let mut fence = pin!(client.batch_execute(""));
        loop {
            let _ = self.canceller.cancel().await;
            let now = Instant::now();
            if now >= give_up {
                self.unsettled.store(true, Ordering::Release);
                return;
            }
            if timeout(RECANCEL_AFTER.min(give_up - now), fence.as_mut())
                .await
                .is_ok()
            {
                return;
            }
        }
    }
}

/// The guard of one piece of work under a context, shared by [`Client::run`] and
/// [`Client::run_mut`]: checks the context and recovers from an earlier dropped query before,
/// settles the connection after a cancel, and sends a cancel from a spawned task if the work's
/// future is dropped in flight (leaving the task for the next query to wait for).
struct Guard<'a> {
    shared: &'a Shared,
    armed: bool,
    report: Option<Report>,
}

/// The `query canceled in the server` event: the server was asked to cancel the query, and the
/// stop took `took`.
fn canceled(report: &Report, took: Duration) {
    report.emit("the query was dropped", |cause, origin| {
        tracing::debug!(
            cause,
            origin,
            stop_ms = took.as_secs_f64() * 1000.0,
            "query canceled in the server"
        );
    });
}

impl<'a> Guard<'a> {
    async fn open(
        shared: &'a Shared,
        client: &tokio_postgres::Client,
        ctx: &Context,
    ) -> Result<Guard<'a>, Error> {
        if let Some(err) = ctx.err() {
            return Err(Error::ended(ctx, err));
        }
        shared.recover(client).await;
        Ok(Guard {
            shared,
            armed: true,
            report: Report::new(ctx, tracing::enabled!(tracing::Level::DEBUG)),
        })
    }

    async fn close<T>(
        mut self,
        client: &tokio_postgres::Client,
        ctx: &Context,
        raced: Result<Result<T, tokio_postgres::Error>, ctx_core::Error>,
    ) -> Result<T, Error> {
        let finished = match raced {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => match ctx.err() {
                Some(err) => Err(Error::ended(ctx, err)),
                None => Err(Error::Postgres(e)),
            },
            Err(err) => {
                // The work was dropped in flight: stop it on the server.
                let since = Instant::now();
                self.shared.settle(client).await;
                if let Some(report) = &self.report {
                    canceled(report, since.elapsed());
                }
                Err(Error::ended(ctx, err))
            }
        };
        self.armed = false;
        finished
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let canceller = self.shared.canceller.clone();
        let report = self.report.take();
        let mut dropped = lock(&self.shared.dropped);
        let earlier = dropped.take();
        *dropped = Some(runtime.spawn(async move {
            let since = Instant::now();
            if let Some(earlier) = earlier {
                let _ = earlier.await;
            }
            // Bounded by the cancel's own time limit.
            if canceller.cancel().await.is_ok()
                && let Some(report) = report
            {
                canceled(&report, since.elapsed());
            }
        }));
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding it; a poisoned lock is still consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<C: Connection> fmt::Debug for Client<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("closed", &self.client.pg().is_closed())
            .field("canceller", &self.shared.canceller)
            .finish()
    }
}

/// Where acknowledged cancel requests for `client` go: the TCP endpoint of `config` that the
/// connection reached. With one endpoint, that one; with several, the one whose address the
/// server reports for this connection (`inet_server_addr()`); `None` for Unix sockets or when
/// nothing matches (a proxy in between), and then cancels are not acknowledged.
async fn cancel_target(
    config: &Config,
    client: &tokio_postgres::Client,
) -> Option<(String, SocketAddr)> {
    let mut candidates = cancel_candidates(config).await;
    if candidates.len() <= 1 {
        return candidates.pop();
    }
    let row = client
        .query_one("SELECT host(inet_server_addr()), inet_server_port()", &[])
        .await
        .ok()?;
    let ip: std::net::IpAddr = row.get::<_, Option<String>>(0)?.parse().ok()?;
    let port = u16::try_from(row.get::<_, Option<i32>>(1)?).ok()?;
    candidates
        .into_iter()
        .find(|(_, addr)| addr.ip() == ip && addr.port() == port)
}

/// The TCP endpoints `config` names (host name for TLS, address), resolved, in order.
async fn cancel_candidates(config: &Config) -> Vec<(String, SocketAddr)> {
    let ports = config.get_ports();
    let port = |i: usize| match ports {
        [] => 5432,
        [one] => *one,
        many => many.get(i).copied().unwrap_or(5432),
    };
    let mut candidates = Vec::new();
    for (i, host) in config.get_hosts().iter().enumerate() {
        let Host::Tcp(name) = host else { continue };
        match config.get_hostaddrs().get(i).copied() {
            Some(ip) => candidates.push((name.clone(), SocketAddr::new(ip, port(i)))),
            None => {
                if let Ok(addrs) = tokio::net::lookup_host((name.as_str(), port(i))).await {
                    candidates.extend(addrs.map(|addr| (name.clone(), addr)));
                }
            }
        }
    }
    if config.get_hosts().is_empty() {
        for (i, ip) in config.get_hostaddrs().iter().enumerate() {
            candidates.push((ip.to_string(), SocketAddr::new(*ip, port(i))));
        }
    }
    candidates
}
