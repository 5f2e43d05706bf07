//! SQLite under a [`Context`]: Go's `db.QueryContext(ctx, ...)` for [rusqlite].
//!
//! A [`Db`] owns one connection (or a small pool of them). [`Db::call`] runs one closure, one
//! unit of work on a `&mut rusqlite::Connection`, on tokio's blocking threads. When the context
//! ends while the closure runs, the statement it is executing is interrupted inside SQLite
//! (`sqlite3_interrupt`, through rusqlite's [`InterruptHandle`]), so is every statement it starts
//! afterwards, and the call returns [`Error::Context`] with the context's error.
//!
//! ```
//! use std::time::Duration;
//! use ctx_core::Context;
//! use ctx_rusqlite::{Db, Error};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let db = Db::open_in_memory()?;
//! let ctx = Context::background();
//! db.call(&ctx, |conn| conn.execute_batch("CREATE TABLE album (title TEXT)")).await?;
//! let n = db
//!     .call(&ctx, |conn| {
//!         conn.execute("INSERT INTO album VALUES (?1)", ["Blue Train"])
//!     })
//!     .await?;
//! assert_eq!(n, 1);
//!
//! // A query that would count to a billion, stopped by a 50 ms timeout.
//! let (ctx, _cancel) = ctx.with_timeout(Duration::from_millis(50));
//! let err = db
//!     .call(&ctx, |conn| {
//!         conn.query_row(
//!             "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000)
//!              SELECT count(*) FROM c",
//!             [],
//!             |row| row.get::<_, i64>(0),
//!         )
//!     })
//!     .await
//!     .unwrap_err();
//! assert_eq!(err.context_err(), Some(ctx_core::Error::DeadlineExceeded));
//! assert_eq!(err.to_string(), "query interrupted: context deadline exceeded");
//!
//! // The connection is fine for the next call.
//! let title: String = db
//!     .call(&Context::background(), |conn| {
//!         conn.query_row("SELECT title FROM album", [], |row| row.get(0))
//!     })
//!     .await?;
//! assert_eq!(title, "Blue Train");
//! # Ok(())
//! # }
//! ```
//!
//! # What is interrupted, and what is not
//!
//! - The statement running when the context ends fails with `SQLITE_INTERRUPT` within a few
//!   virtual-machine steps. If it runs inside a transaction, dropping rusqlite's
//!   [`Transaction`](rusqlite::Transaction) (as `?` does) rolls it back; SQLite itself rolls
//!   back an explicit transaction whose write was interrupted. A transaction the closure
//!   leaves open when it returns (a bare `BEGIN`) is rolled back before the connection serves
//!   another call.
//! - Every statement the closure starts after the end is stopped too, after at most 100
//!   virtual-machine steps (an interrupt that lands between two statements is not lost; a
//!   statement shorter than that may still complete).
//! - A statement waiting for a lock held by another connection (another process, or another
//!   connection of a pool) waits at most 5 s, and stops within 10 ms of the context's end.
//! - Rust code in the closure between statements is not interrupted: a closure should not
//!   block on anything but SQLite.
//! - An interrupt never reaches the work of another call: interrupts are only sent while the
//!   call that asked for them is still running its closure on that connection.
//!
//! A result that was complete before the end was noticed is kept: `call` returns `Ok` when the
//! closure returned `Ok`, even if the context ended in the meantime (the work was done, a write
//! committed).
//!
//! # Events (`tracing`)
//!
//! Work interrupted inside SQLite is recorded with one `DEBUG` event, `query interrupted`
//! (target `ctx_rusqlite`), in the span that was current at the call (and with the subscriber
//! that was, although it is emitted from the blocking thread that ran the closure):
//!
//! | field | type | value |
//! | --- | --- | --- |
//! | `cause` | text | the context's cause (`client disconnected`, `context deadline exceeded`, ...), or `the call was dropped` when the future of `call` was dropped while the context was live |
//! | `origin` | text | `file:line:col` of the context's [`origin()`](ctx_core::Context::origin); absent for a dropped call |
//! | `stop_ms` | `f64` | milliseconds from the interrupt to the closure's return: how long SQLite took to stop |
//!
//! Work that completes, or never ran because the context had ended, records nothing. With no
//! subscriber listening at `DEBUG` it costs one atomic load per call.
//!
//! # How fast
//!
//! Measured with `cargo run -p ctx-rusqlite --example interrupt` (a 2-core machine): a query
//! counting to a billion returns 101.5 ms into a 100 ms deadline and 0.13 ms after a cancel from
//! another task, and the next query on the connection takes 0.12 ms.

#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

use std::fmt;
use std::panic::resume_unwind;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, InterruptHandle};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use ctx_core::{AfterFunc, Context, ContextError};
use ctx_report::Report;

/// The rusqlite this module is built with, for naming its types at the same version.
pub use rusqlite;

/// How many SQLite virtual-machine instructions run between two checks of the stop flag by the
/// progress handler (the backstop for an interrupt that lands between two statements).
const PROGRESS_OPS: i32 = 100;

/// How long a statement waits for a lock held by another connection before `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest single sleep while waiting for a lock: the latency of a stop during that wait.
const BUSY_STEP: Duration = Duration::from_millis(10);

/// The error of [`Db::call`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The context ended before the work completed: it was never started, or it was interrupted
    /// inside SQLite. Displays as `query interrupted: context canceled` (or `... deadline
    /// exceeded`); its `source()` is the context's cause, when one was given.
    Context(ContextError),
    /// SQLite (or rusqlite) reported an error while the context was live.
    Sqlite(rusqlite::Error),
    /// The tokio runtime shut down before the work ran: the work never started, and the
    /// context did not end (so this is not [`Error::Context`]).
    RuntimeShutdown,
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
            Error::Context(stopped) => write!(f, "query interrupted: {stopped}"),
            Error::Sqlite(e) => fmt::Display::fmt(e, f),
            Error::RuntimeShutdown => {
                f.write_str("the tokio runtime shut down before the query ran")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // The text holds the context's error; the chain goes on with its cause.
            Error::Context(stopped) => stopped.source(),
            Error::Sqlite(e) => e.source(),
            Error::RuntimeShutdown => None,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Sqlite(e)
    }
}

/// SQLite connections that run work under a [`Context`]. Cheap to clone: clones share the
/// connections.
///
/// Each [`call`](Db::call) takes one connection for itself (waiting for one is cancellable too),
/// runs its closure on tokio's blocking threads, and gives the connection back. See the
/// [module documentation](self) for what is interrupted when the context ends.
///
/// ```
/// use ctx_core::Context;
/// use ctx_rusqlite::Db;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ctx_rusqlite::Error> {
/// let db = Db::open_in_memory()?;
/// let sum: i64 = db
///     .call(&Context::background(), |conn| {
///         conn.query_row("SELECT 1 + 2", [], |row| row.get(0))
///     })
///     .await?;
/// assert_eq!(sum, 3);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Db {
    pool: Arc<Pool>,
}

struct Pool {
    /// One permit per idle connection: a permit guarantees a connection in `idle`.
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Slot>>,
    size: usize,
}

struct Slot {
    conn: Connection,
    gate: Arc<Gate>,
}

/// Decides, for one connection, whether an interrupt may be sent: only while the call that asks
/// for it is running its closure. `current` names that call (0: none); it is set before the
/// closure runs and cleared after it returns, and interrupts are only sent while holding the
/// lock and seeing their own call there. So once a call has cleared `current`, no interrupt
/// meant for it can reach the connection, whatever the timing of its after-func.
struct Gate {
    current: Mutex<u64>,
    /// Set with the interrupt, read by the progress and busy handlers; cleared per call.
    stop: AtomicBool,
    /// When the interrupt was sent for the current call (for the event that reports it).
    stopped_at: Mutex<Option<Instant>>,
    interrupt: InterruptHandle,
}

// The busy handler is a plain `fn` (rusqlite takes no closure for it), so it finds the gate of
// the call whose statement waits through the thread that runs the statement: the call sets it
// for the time its closure runs (see `OnThisThread`).
thread_local! {
    static BUSY_GATE: std::cell::RefCell<Option<Arc<Gate>>> = const { std::cell::RefCell::new(None) };
    static BUSY_SINCE: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// SQLite's busy handler for every connection: waits for a lock held by another connection in
/// steps of at most 10 ms, for at most 5 s, and gives up as soon as the call's context ends.
fn busy_wait(count: i32) -> bool {
    let now = Instant::now();
    if count == 0 {
        BUSY_SINCE.set(Some(now));
    }
    let waited = BUSY_SINCE.get().map_or(Duration::ZERO, |t| now - t);
    let stopped = || BUSY_GATE.with_borrow(|gate| gate.as_ref().is_some_and(|g| g.stopped()));
    if stopped() || waited >= BUSY_TIMEOUT {
        return false;
    }
    // 1, 2, 3 ... 10 ms, then 10 ms at a time.
    let step = Duration::from_millis(u64::try_from(count).unwrap_or(0) + 1);
    std::thread::sleep(step.min(BUSY_STEP).min(BUSY_TIMEOUT - waited));
    !stopped()
}

/// Makes a call's gate the one the busy handler sees on this thread, until dropped (also when
/// the closure panics).
struct OnThisThread;

impl OnThisThread {
    fn set(gate: &Arc<Gate>) -> OnThisThread {
        BUSY_GATE.set(Some(gate.clone()));
        OnThisThread
    }
}

impl Drop for OnThisThread {
    fn drop(&mut self) {
        BUSY_GATE.set(None);
    }
}

/// Call ids, never reused (0 means "no call").
static NEXT_CALL: AtomicU64 = AtomicU64::new(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing holding these locks can panic half-way; a poisoned lock is still consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Gate {
    fn begin(&self, call: u64) {
        let mut current = lock(&self.current);
        *current = call;
        self.stop.store(false, Ordering::Release);
    }

    fn end(&self, call: u64) {
        let mut current = lock(&self.current);
        if *current == call {
            *current = 0;
            self.stop.store(false, Ordering::Release);
        }
    }

    /// Interrupts `call`'s work if, and only if, it is still running.
    fn stop(&self, call: u64) {
        let current = lock(&self.current);
        if *current == call {
            // The instant before the flag (stops take turns under `current`), so that whoever
            // sees the flag sees this call's instant.
            if !self.stopped() {
                *lock(&self.stopped_at) = Some(Instant::now());
                self.stop.store(true, Ordering::Release);
            }
            self.interrupt.interrupt();
        }
    }

    /// When the current call's work was interrupted, if it was.
    fn stopped_since(&self) -> Option<Instant> {
        if self.stopped() {
            *lock(&self.stopped_at)
        } else {
            None
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

impl Db {
    /// Opens (or creates) the database file at `path`, with one connection: calls take turns.
    ///
    /// For concurrent readers, see [`open_pool`](Db::open_pool).
    pub fn open(path: impl AsRef<Path>) -> rusqlite::Result<Db> {
        Db::from_connections([Connection::open(path)?])
    }

    /// A new private in-memory database, with one connection (an in-memory database belongs
    /// to its connection, so it cannot be pooled).
    pub fn open_in_memory() -> rusqlite::Result<Db> {
        Db::from_connections([Connection::open_in_memory()?])
    }

    /// Opens the database file at `path` with `size` connections (at least one), in WAL mode so
    /// that readers do not wait for a writer. Up to `size` calls run at once; writers still take
    /// turns, waiting for each other's locks.
    pub fn open_pool(path: impl AsRef<Path>, size: usize) -> rusqlite::Result<Db> {
        let path = path.as_ref();
        let first = Connection::open(path)?;
        first.pragma_update(None, "journal_mode", "WAL")?;
        let mut conns = vec![first];
        for _ in 1..size.max(1) {
            conns.push(Connection::open(path)?);
        }
        Db::from_connections(conns)
    }

    /// Wraps connections you opened yourself (with flags, pragmas or functions of your choice);
    /// each call takes one of them.
    ///
    /// Each connection gets a progress handler and a busy handler of this module's own (they
    /// stop work when its context ends): do not replace them, and note that they replace any
    /// `busy_timeout` set before (the wait for a lock is 5 s here).
    ///
    /// # Errors
    ///
    /// If SQLite refuses the handlers.
    ///
    /// # Panics
    ///
    /// If `conns` is empty.
    pub fn from_connections(conns: impl IntoIterator<Item = Connection>) -> rusqlite::Result<Db> {
        let mut idle = Vec::new();
        for conn in conns {
            let gate = Arc::new(Gate {
                current: Mutex::new(0),
                stop: AtomicBool::new(false),
                stopped_at: Mutex::new(None),
                interrupt: conn.get_interrupt_handle(),
            });
            let progress = gate.clone();
            conn.progress_handler(PROGRESS_OPS, Some(move || progress.stopped()))?;
            conn.busy_handler(Some(busy_wait))?;
            idle.push(Slot { conn, gate });
        }
        assert!(!idle.is_empty(), "a Db needs at least one connection");
        let size = idle.len();
        Ok(Db {
            pool: Arc::new(Pool {
                permits: Arc::new(Semaphore::new(size)),
                idle: Mutex::new(idle),
                size,
            }),
        })
    }

    /// How many connections this `Db` has.
    pub fn size(&self) -> usize {
        self.pool.size
    }

    /// How many calls are running their closure right now (connections taken). Zero once every
    /// call has returned, including calls whose context ended or whose future was dropped:
    /// their work has stopped and their connection is back.
    pub fn in_use(&self) -> usize {
        self.pool.size - lock(&self.pool.idle).len()
    }

    /// Runs `f` on a connection, under `ctx`. Go: `db.QueryContext(ctx, ...)` and friends,
    /// with one closure for one unit of work.
    ///
    /// - If `ctx` has already ended, `f` never runs.
    /// - Waiting for a free connection stops when `ctx` ends.
    /// - `f` runs on tokio's blocking threads (`spawn_blocking`), never on the async ones.
    /// - When `ctx` ends while `f` runs, SQLite interrupts the statement it is executing and
    ///   every statement it starts afterwards; `call` returns once `f` has returned and the
    ///   connection is back, with [`Error::Context`] if `f` failed.
    /// - If the future of `call` is dropped while `f` runs, the work is interrupted the same
    ///   way (nobody will see its result); the connection comes back when `f` returns.
    ///
    /// # Errors
    ///
    /// [`Error::Context`] when `ctx` ended before `f` ran or while it ran and `f` then failed;
    /// [`Error::Sqlite`] when `f` failed while `ctx` was live.
    ///
    /// # Panics
    ///
    /// A panic in `f` is resumed here (the connection is kept: rusqlite rolls back an open
    /// [`Transaction`](rusqlite::Transaction) as the panic unwinds).
    ///
    /// ```
    /// use ctx_core::{Context, Error as CtxError};
    /// use ctx_rusqlite::Db;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ctx_rusqlite::Error> {
    /// let db = Db::open_in_memory()?;
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// cancel.cancel();
    /// let err = db.call(&ctx, |_conn| -> rusqlite::Result<()> { unreachable!() }).await;
    /// assert_eq!(err.unwrap_err().context_err(), Some(CtxError::Canceled));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn call<T, F>(&self, ctx: &Context, f: F) -> Result<T, Error>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        if let Some(err) = ctx.err() {
            return Err(Error::ended(ctx, err));
        }
        let permit = match ctx.run(self.pool.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            // The semaphore is never closed.
            Ok(Err(_closed)) => unreachable!("the connection semaphore is never closed"),
            Err(err) => return Err(Error::ended(ctx, err)),
        };
        let slot = lock(&self.pool.idle)
            .pop()
            .expect("a permit guarantees an idle connection");
        let call = NEXT_CALL.fetch_add(1, Ordering::Relaxed);
        // `current` is set before the after-func exists, so an after-func that runs at once
        // (the context ended just now) interrupts this call's work, not nothing.
        slot.gate.begin(call);
        let gate = slot.gate.clone();
        let after = ctx.after_func(move || gate.stop(call));
        let mut on_drop = StopOnDrop {
            gate: slot.gate.clone(),
            call,
            armed: true,
        };
        let lease = Lease {
            slot: Some(slot),
            pool: self.pool.clone(),
            call,
            after,
            _permit: permit,
        };
        // The context may have ended while the connection was being taken: then `f` never
        // runs (the after-func has already run, or runs now and finds the call gone).
        if let Some(err) = ctx.err() {
            on_drop.armed = false;
            drop(lease);
            return Err(Error::ended(ctx, err));
        }
        let report = Report::new(ctx, tracing::enabled!(tracing::Level::DEBUG));
        let joined = tokio::task::spawn_blocking(move || {
            let mut lease = lease;
            let slot = lease.slot.as_mut().expect("the lease holds its slot");
            let _busy = OnThisThread::set(&slot.gate);
            let result = f(&mut slot.conn);
            if let (Some(report), Err(_)) = (&report, &result)
                && let Some(since) = slot.gate.stopped_since()
            {
                interrupted(report, since.elapsed());
            }
            result
            // Dropping the lease stops the after-func, closes the gate and gives the
            // connection back, even if `f` panicked.
        })
        .await;
        on_drop.armed = false;
        match joined {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => match ctx.err() {
                Some(err) => Err(Error::ended(ctx, err)),
                None => Err(Error::Sqlite(e)),
            },
            Err(join) if join.is_panic() => resume_unwind(join.into_panic()),
            // The runtime is shutting down and dropped the task before it ran.
            Err(_cancelled) => Err(Error::RuntimeShutdown),
        }
    }
}

/// The `query interrupted` event: the work was interrupted inside SQLite, and stopped `took`
/// after the interrupt (emitted from the blocking thread, in the call's span).
fn interrupted(report: &Report, took: Duration) {
    report.emit("the call was dropped", |cause, origin| {
        tracing::debug!(
            cause,
            origin,
            stop_ms = took.as_secs_f64() * 1000.0,
            "query interrupted"
        );
    });
}

/// A connection taken by one call; dropping it (after the closure, or with the task if it
/// never ran) ends the call and returns the connection to the pool.
struct Lease {
    slot: Option<Slot>,
    pool: Arc<Pool>,
    call: u64,
    after: AfterFunc,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.after.stop();
        if let Some(slot) = self.slot.take() {
            // After this, a late after-func finds another call (or none) and does nothing.
            slot.gate.end(self.call);
            // One call is one unit of work: a transaction it left open (a `BEGIN` whose
            // statements failed, for example) must not swallow the next call's writes.
            if !slot.conn.is_autocommit() {
                let _ = slot.conn.execute_batch("ROLLBACK");
            }
            lock(&self.pool.idle).push(slot);
        }
        // The permit is released after the connection is back (field order).
    }
}

/// Interrupts the call's work when the future of `call` is dropped before it completes.
struct StopOnDrop {
    gate: Arc<Gate>,
    call: u64,
    armed: bool,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.gate.stop(self.call);
        }
    }
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("size", &self.pool.size)
            .field("in_use", &self.in_use())
            .finish()
    }
}
