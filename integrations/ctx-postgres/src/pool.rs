//! A deadpool-postgres pool whose connections run their queries under a context, and go back
//! to the pool only when clean.

use std::fmt;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};

use ctx_core::{Context, ContextError};
use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod};
use tokio_postgres::Config;

use crate::{CancelMethod, Canceller, Client, Error, Tls, cancel_candidates};

/// A pool of PostgreSQL connections (deadpool-postgres), lent under a [`Context`]. Go:
/// `*sql.DB` with `db.QueryContext(ctx, ...)`.
///
/// - [`get`](Pool::get) waits for a connection only as long as the context lives: an ended
///   context fails at once, a deadline while every connection is busy fails at the deadline.
/// - The [`PooledClient`] it lends is a [`Client`]: a query whose context ends is cancelled on
///   the server, and the call returns once the server has stopped it.
/// - A connection goes back to the pool only if it is clean: when a query's future was dropped
///   in flight (its cancel still on its way) or the server did not finish cancelled work in
///   time, the connection is closed instead, so nothing meant for old work can reach the next
///   borrower's query. A transaction whose context ended was rolled back before the connection
///   is returned.
///
/// deadpool-postgres rather than bb8: it is the pool tokio-postgres users most often run,
/// its `get` is cancel-safe (a dropped wait gives nothing up), and it lets a borrowed
/// connection be taken out of the pool (`Object::take`), which is how a dirty one is closed.
///
/// ```no_run
/// use std::time::Duration;
/// use ctx_core::Context;
/// use ctx_postgres::Pool;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ctx_postgres::Error> {
/// let config = "postgres://app:secret@127.0.0.1/app".parse()?;
/// let pool = Pool::new(config, tokio_postgres::NoTls, 16).await;
///
/// let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(2));
/// let client = pool.get(&ctx).await?; // waits at most until the deadline
/// let row = client.query_one(&ctx, "SELECT count(*) FROM album", &[]).await?;
/// println!("{} albums", row.get::<_, i64>(0));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Pool {
    pool: deadpool_postgres::Pool,
    cancel: CancelMethod,
}

impl Pool {
    /// A pool of at most `max_size` connections to the server of `config`, made with `tls`
    /// (which the cancel requests use too). Connections are made when first needed.
    ///
    /// With one TCP host in `config`, cancels are acknowledged by the server (see
    /// [`Canceller`]); with several hosts or a Unix socket they are not. A `max_size` of 0 is
    /// taken as 1.
    pub async fn new<T: Tls>(config: Config, tls: T, max_size: usize) -> Pool {
        let mut candidates = cancel_candidates(&config).await;
        let target = if candidates.len() == 1 {
            candidates.pop()
        } else {
            None
        };
        let manager = Manager::from_config(
            config,
            tls.clone(),
            ManagerConfig {
                // The pool checks a returned connection is open; this crate checks the rest.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(max_size.max(1))
            .build()
            // deadpool fails to build only when timeouts are set without a runtime.
            .expect("a pool without timeouts always builds");
        Pool::from_deadpool_with(pool, tls, target)
    }

    /// Wraps a deadpool-postgres pool you built yourself, with the TLS connector its manager
    /// connects with and, for acknowledged cancels, the server's host name and address.
    pub fn from_deadpool<T: Tls>(
        pool: deadpool_postgres::Pool,
        tls: T,
        cancel_target: Option<(String, SocketAddr)>,
    ) -> Pool {
        Pool::from_deadpool_with(pool, tls, cancel_target)
    }

    fn from_deadpool_with<T: Tls>(
        pool: deadpool_postgres::Pool,
        tls: T,
        target: Option<(String, SocketAddr)>,
    ) -> Pool {
        Pool {
            pool,
            cancel: CancelMethod::new(tls, target),
        }
    }

    /// Borrows a connection, waiting for one no longer than `ctx` lives.
    ///
    /// # Errors
    ///
    /// [`Error::PoolWait`] if `ctx` ended first (at once if it had already), [`Error::Pool`]
    /// if the pool could not connect.
    pub async fn get(&self, ctx: &Context) -> Result<PooledClient, Error> {
        let waited = |err| Error::PoolWait(ContextError::new(ctx, err));
        if let Some(err) = ctx.err() {
            return Err(waited(err));
        }
        let object = match ctx.run(self.pool.get()).await {
            Ok(Ok(object)) => object,
            Ok(Err(e)) => return Err(Error::Pool(e)),
            Err(err) => return Err(waited(err)),
        };
        let canceller = Canceller::new(object.cancel_token(), self.cancel.clone());
        Ok(PooledClient {
            client: Some(Client::with_canceller(object, canceller)),
        })
    }

    /// The deadpool-postgres pool, for its status and settings.
    pub fn deadpool(&self) -> &deadpool_postgres::Pool {
        &self.pool
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("status", &self.pool.status())
            .finish_non_exhaustive()
    }
}

/// A connection borrowed from a [`Pool`]: a [`Client`] (it dereferences to one), returned to
/// the pool when dropped if it is clean, closed otherwise.
pub struct PooledClient {
    client: Option<Client<deadpool_postgres::Object>>,
}

impl Deref for PooledClient {
    type Target = Client<deadpool_postgres::Object>;

    fn deref(&self) -> &Self::Target {
        self.client.as_ref().expect("present until dropped")
    }
}

impl DerefMut for PooledClient {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.client.as_mut().expect("present until dropped")
    }
}

impl PooledClient {
    /// Whether the connection will go back to the pool when this is dropped: no cancel of ours
    /// is in flight and no cancelled work may still be running on it.
    pub fn is_clean(&self) -> bool {
        self.shared.is_clean() && !self.get_ref().is_closed()
    }
}

impl Drop for PooledClient {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        if !client.shared.is_clean() {
            // Out of the pool, and closed with it: its next query could meet our cancel.
            drop(deadpool_postgres::Object::take(client.into_inner()));
        }
    }
}

impl fmt::Debug for PooledClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledClient")
            .field("clean", &self.is_clean())
            .finish_non_exhaustive()
    }
}
