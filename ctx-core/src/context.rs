use std::fmt;
use std::future::{Future, IntoFuture};
use std::panic::Location;

use tokio::task::JoinHandle;
use tokio::time::{Duration, Instant};

use crate::after_func::AfterFunc;
use crate::done::{Done, Run};
use crate::error::{Cause, Error, into_cause};
use crate::handle::CancelHandle;
use crate::link::Link;
use crate::origin::Origin;
use crate::tree::{Clock, Loc, Node, Now};
use crate::values::{self, Values};

/// Cancellation, a deadline and request-scoped values, passed from a caller to everything it
/// starts. Go: `context.Context`.
///
/// A `Context` is cheap to clone (at most two reference counts), `Send + Sync + 'static`, and
/// every method takes `&self`. Derive children with [`with_cancel`](Self::with_cancel),
/// [`with_timeout`](Self::with_timeout), [`with_deadline`](Self::with_deadline) and
/// [`with_value`](Self::with_value); a child ends when its parent ends, never the other way.
///
/// ```
/// use std::time::Duration;
/// use ctx_core::{Context, Error};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(100));
/// let slow = tokio::time::sleep(Duration::from_secs(10));
/// assert_eq!(ctx.run(slow).await, Err(Error::DeadlineExceeded));
/// # }
/// ```
pub struct Context {
    /// The node (none for `background()`), or a lazy child's state (`crate::lazy`).
    pub(crate) node: Link,
    pub(crate) values: Option<Values>,
}

impl Context {
    /// The root context: never ends, has no deadline and no values. Costs no allocation.
    /// Go: `context.Background()`. Also [`Context::default()`].
    pub const fn background() -> Context {
        Context {
            node: Link::NONE,
            values: None,
        }
    }

    /// Same as [`background`](Self::background); marks a place where the right context is not
    /// plumbed through yet. Go: `context.TODO()`.
    ///
    /// ```
    /// use ctx_core::Context;
    ///
    /// // The caller has no context to pass yet.
    /// let ctx = Context::todo();
    /// assert!(!ctx.is_done());
    /// ```
    pub const fn todo() -> Context {
        Context::background()
    }

    /// `origin` is the user's call (`#[track_caller]`'s location), recorded in the node.
    #[inline]
    fn derive(
        &self,
        own_deadline: Option<Instant>,
        cause: Option<Cause>,
        origin: Loc,
        now: Now,
    ) -> (Context, CancelHandle) {
        let node = Node::derive(self.node.node(), own_deadline, cause, origin, now);
        let ctx = Context {
            node: Link::from_arc(node.clone()),
            values: self.values.clone(),
        };
        (ctx, CancelHandle::new(node))
    }

    /// A child that ends when `handle` is cancelled or dropped, or when `self` ends.
    /// Go: `context.WithCancel(ctx)` and `context.WithCancelCause(ctx)` (use
    /// [`CancelHandle::cancel_with_cause`]).
    ///
    /// If `self` has already ended, the child has ended too, with the same `err()` and
    /// `cause()`.
    ///
    /// ```
    /// use ctx_core::{Context, Error};
    ///
    /// let (parent, parent_handle) = Context::background().with_cancel();
    /// let (child, _child_handle) = parent.with_cancel();
    /// parent_handle.cancel();
    /// assert_eq!(child.err(), Some(Error::Canceled));
    /// ```
    #[track_caller]
    pub fn with_cancel(&self) -> (Context, CancelHandle) {
        self.derive(None, None, Location::caller(), Now::default())
    }

    /// A child that also ends with [`Error::DeadlineExceeded`] `timeout` from now.
    /// Go: `context.WithTimeout(ctx, timeout)`.
    ///
    /// Same as `with_deadline(Instant::now() + timeout)`; a timeout too large to represent
    /// (`Duration::MAX`) means no deadline of its own. `Duration::ZERO` gives a context that
    /// has already ended. No timer is started: one exists only while someone awaits
    /// [`done()`](Self::done) or an after-func needs it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctx_core::{Context, Error};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(1));
    /// assert_eq!(ctx.err(), None);
    /// tokio::time::sleep(Duration::from_secs(1)).await;
    /// assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    /// # }
    /// ```
    #[track_caller]
    pub fn with_timeout(&self, timeout: Duration) -> (Context, CancelHandle) {
        let now = Instant::now();
        let deadline = now.checked_add(timeout);
        self.derive(deadline, None, Location::caller(), Now::reading(now))
    }

    /// A child that also ends with [`Error::DeadlineExceeded`] at `deadline`.
    /// Go: `context.WithDeadline(ctx, deadline)`.
    ///
    /// If `self`'s deadline is no later, the child keeps that one instead. A deadline that is
    /// not in the future gives a context that has already ended.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    /// use ctx_core::Context;
    ///
    /// let soon = Instant::now() + Duration::from_secs(1);
    /// let (parent, _p) = Context::background().with_deadline(soon);
    /// let (child, _c) = parent.with_deadline(soon + Duration::from_secs(60));
    /// assert_eq!(child.deadline(), Some(soon)); // the parent's is earlier
    /// ```
    #[track_caller]
    pub fn with_deadline(&self, deadline: Instant) -> (Context, CancelHandle) {
        self.derive(Some(deadline), None, Location::caller(), Now::default())
    }

    /// Like [`with_timeout`](Self::with_timeout); if the timeout ends the child, its
    /// [`cause()`](Self::cause) is `cause` while [`err()`](Self::err) is still
    /// `DeadlineExceeded`. Go: `context.WithTimeoutCause`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctx_core::{Context, Error};
    ///
    /// let (ctx, _h) = Context::background().with_timeout_cause(Duration::ZERO, "lookup too slow");
    /// assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    /// assert_eq!(ctx.cause().unwrap().to_string(), "lookup too slow");
    /// ```
    #[track_caller]
    pub fn with_timeout_cause(
        &self,
        timeout: Duration,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> (Context, CancelHandle) {
        let now = Instant::now();
        let cause = into_cause(cause.into());
        let deadline = now.checked_add(timeout);
        self.derive(deadline, Some(cause), Location::caller(), Now::reading(now))
    }

    /// Like [`with_deadline`](Self::with_deadline), with the `cause` reported if the deadline
    /// ends the child. Go: `context.WithDeadlineCause`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    /// use ctx_core::{Context, Error};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let end_of_day = Instant::now() + Duration::from_secs(60);
    /// let (ctx, _h) = Context::background().with_deadline_cause(end_of_day, "batch window closed");
    /// assert_eq!(ctx.done().await, Error::DeadlineExceeded);
    /// assert_eq!(ctx.cause().unwrap().to_string(), "batch window closed");
    /// # }
    /// ```
    #[track_caller]
    pub fn with_deadline_cause(
        &self,
        deadline: Instant,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> (Context, CancelHandle) {
        self.derive(
            Some(deadline),
            Some(into_cause(cause.into())),
            Location::caller(),
            Now::default(),
        )
    }

    /// A child of `self` that also ends when `other` ends: with `other`'s
    /// [`err()`](Self::err), [`cause()`](Self::cause) and [`origin()`](Self::origin) if `other`
    /// ends first, else with `self`'s or its handle's. It has `self`'s values, and the earlier
    /// of the two deadlines. Go has no `merge` (golang/go#36503 was declined), so Go services
    /// write one by hand with an `AfterFunc`; .NET calls it a linked token source.
    ///
    /// Typical use: a request's context merged with the server's shutdown context, or a
    /// batch's context merged with the context of the one caller waiting for an item.
    ///
    /// The child is a child in the tree of both: ending either parent ends it in the same walk
    /// as any other child (no after-func runs in between), and dropping it (its handle and
    /// every clone) leaves nothing behind in either parent. Merging a context with itself, or
    /// with one that can never end, is [`with_cancel`](Self::with_cancel).
    ///
    /// ```
    /// use ctx_core::{Context, Error};
    ///
    /// let (request, _r) = Context::background().with_value("req-7").with_cancel();
    /// let (server, shutdown) = Context::background().with_cancel();
    ///
    /// let (ctx, _h) = request.merge(&server);
    /// assert_eq!(ctx.value::<&str>(), Some(&"req-7")); // the request's values
    /// assert_eq!(ctx.err(), None);
    ///
    /// shutdown.cancel_with_cause("server shutting down");
    /// assert_eq!(ctx.err(), Some(Error::Canceled));
    /// assert_eq!(ctx.cause().unwrap().to_string(), "server shutting down");
    /// assert_eq!(ctx.origin(), server.origin());
    /// assert!(!request.is_done());
    /// ```
    #[track_caller]
    pub fn merge(&self, other: &Context) -> (Context, CancelHandle) {
        let origin = Location::caller();
        let first = self.node.node();
        let node = match other.node.node() {
            Some(second) if first.is_none_or(|first| first.as_ptr() != second.as_ptr()) => {
                Node::merge(first, second, origin, Now::default())
            }
            // `other` never ends, or is `self`'s node: an ordinary child.
            _ => Node::derive(first, None, None, origin, Now::default()),
        };
        let ctx = Context {
            node: Link::from_arc(node.clone()),
            values: self.values.clone(),
        };
        (ctx, CancelHandle::new(node))
    }

    /// A child carrying `value`, found by [`value::<T>()`](Self::value) here and in every
    /// context derived from the child. Go: `context.WithValue(ctx, key, value)`, with the type
    /// as the key: define a type per value to keep keys from colliding.
    ///
    /// A nearer value of the same type shadows a farther one. The child ends exactly when
    /// `self` does.
    ///
    /// ```
    /// use ctx_core::Context;
    ///
    /// #[derive(Debug, PartialEq)]
    /// struct RequestId(u64);
    ///
    /// let ctx = Context::background().with_value(RequestId(7));
    /// let (child, _h) = ctx.with_cancel();
    /// assert_eq!(child.value::<RequestId>(), Some(&RequestId(7)));
    /// assert_eq!(child.value::<String>(), None);
    /// ```
    pub fn with_value<T: Send + Sync + 'static>(&self, value: T) -> Context {
        Context {
            node: self.node.to_owned(),
            values: Some(values::push(self.values.clone(), value)),
        }
    }

    /// The nearest value of type `T` up the chain. Go: `ctx.Value(key)`.
    ///
    /// ```
    /// use ctx_core::Context;
    ///
    /// struct Tenant(&'static str);
    ///
    /// let ctx = Context::background().with_value(Tenant("acme")).with_value(Tenant("globex"));
    /// assert_eq!(ctx.value::<Tenant>().map(|t| t.0), Some("globex")); // the nearer one
    /// assert!(Context::background().value::<Tenant>().is_none());
    /// ```
    #[inline]
    pub fn value<T: 'static>(&self) -> Option<&T> {
        values::find(self.values.as_ref())
    }

    /// A context with `self`'s values that never ends and has no deadline, whatever happens to
    /// `self`. Go: `context.WithoutCancel(ctx)`: for work that must finish after the request
    /// that started it (an audit log write, a cache fill).
    ///
    /// ```
    /// use ctx_core::Context;
    ///
    /// let (request, handle) = Context::background().with_value("trace-42").with_cancel();
    /// let detached = request.without_cancel();
    /// drop(handle);
    /// assert!(request.is_done());
    /// assert!(!detached.is_done());
    /// assert_eq!(detached.value::<&str>(), Some(&"trace-42"));
    /// ```
    pub fn without_cancel(&self) -> Context {
        Context {
            node: Link::NONE,
            values: self.values.clone(),
        }
    }

    /// A context for clean-up after `self` has ended: it keeps `self`'s values, is not ended by
    /// `self`'s end (nor has `self`'s deadline), and ends with [`Error::DeadlineExceeded`]
    /// `timeout` from now, or when its handle cancels (or is dropped). Trio: a shielded cancel
    /// scope with a deadline; Go: `context.WithTimeout(context.WithoutCancel(ctx), d)`.
    ///
    /// For the work that must still happen when a request is abandoned, but not forever: an
    /// audit row, a compensating write, releasing a lock held elsewhere. A `timeout` too large
    /// to represent (`Duration::MAX`) means no deadline, as for
    /// [`with_timeout`](Self::with_timeout).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctx_core::{Context, Error};
    ///
    /// #[derive(Debug, PartialEq)]
    /// struct RequestId(u64);
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (request, handle) = Context::background().with_value(RequestId(7)).with_cancel();
    /// drop(handle); // the client hung up
    /// assert!(request.is_done());
    ///
    /// let (cleanup, _h) = request.shield(Duration::from_secs(2));
    /// assert_eq!(cleanup.err(), None); // not ended by the request's end
    /// assert_eq!(cleanup.value::<RequestId>(), Some(&RequestId(7)));
    /// // The audit write may take its time, but not more than 2 s.
    /// let write = cleanup.run(tokio::time::sleep(Duration::from_secs(60)));
    /// assert_eq!(write.await, Err(Error::DeadlineExceeded));
    /// # }
    /// ```
    pub fn shield(&self, timeout: Duration) -> (Context, CancelHandle) {
        self.without_cancel().with_timeout(timeout)
    }

    /// `None` while the context is live; then why it ended, fixed forever. Go: `ctx.Err()`.
    ///
    /// One atomic load, plus a clock reading when the chain has a deadline (a deadline that
    /// has passed is reported even if nothing was waiting for it).
    ///
    /// ```
    /// use ctx_core::{Context, Error};
    ///
    /// let (ctx, handle) = Context::background().with_cancel();
    /// assert_eq!(ctx.err(), None);
    /// handle.cancel();
    /// assert_eq!(ctx.err(), Some(Error::Canceled));
    /// ```
    #[inline]
    pub fn err(&self) -> Option<Error> {
        self.node.check(Clock::Read)
    }

    /// Why the context ended, in the words of whoever ended it. Go: `context.Cause(ctx)`.
    ///
    /// `None` while live. Then: the cause given to the cancel that ended it (or that ended the
    /// ancestor whose end ended it), the cause given with
    /// [`with_timeout_cause`](Self::with_timeout_cause) if its deadline ended it, else the
    /// [`Error`] itself.
    ///
    /// ```
    /// use ctx_core::{Context, Error};
    ///
    /// #[derive(Debug)]
    /// struct Shutdown;
    /// impl std::fmt::Display for Shutdown {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    ///         f.write_str("server shutting down")
    ///     }
    /// }
    /// impl std::error::Error for Shutdown {}
    ///
    /// let (root, handle) = Context::background().with_cancel();
    /// let (request, _h) = root.with_cancel();
    /// handle.cancel_with_cause(Shutdown);
    /// assert!(request.cause().unwrap().downcast_ref::<Shutdown>().is_some());
    ///
    /// let (plain, handle) = Context::background().with_cancel();
    /// handle.cancel();
    /// assert_eq!(plain.cause().unwrap().downcast_ref::<Error>(), Some(&Error::Canceled));
    /// ```
    pub fn cause(&self) -> Option<Cause> {
        self.node.cause()
    }

    /// Where the context's end came from: `None` while live; then, fixed forever, the source
    /// location of the [`cancel()`](CancelHandle::cancel) or
    /// [`cancel_with_cause()`](CancelHandle::cancel_with_cause) call that ended it; for an end
    /// by its handle's drop, where the handle was made (the `with_cancel` / `with_timeout` /
    /// `with_deadline` call: a drop at the end of a scope has no call site); for a deadline, the
    /// `with_timeout` / `with_deadline` call (for a `#[cancellable]` fn's `ctx`, the fn). A
    /// context ended by an ancestor reports the ancestor's origin. Go has no counterpart: it
    /// answers "who cancelled this, and where?", which a cause alone often does not.
    ///
    /// Recording it costs no allocation (the locations are `&'static`, from `#[track_caller]`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctx_core::{Context, OriginKind};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let made = line!(); let (request, _h) = Context::background().with_timeout(Duration::from_secs(1));
    /// let (query, _q) = request.with_cancel();
    /// assert_eq!(query.origin(), None);
    /// tokio::time::sleep(Duration::from_secs(1)).await;
    ///
    /// // The query ended because the request's deadline, set on line `made`, passed.
    /// let origin = query.origin().unwrap();
    /// assert_eq!(origin.kind(), OriginKind::Deadline);
    /// assert_eq!(origin.location().line(), made);
    /// println!("{origin}"); // deadline set at src/main.rs:9:61 exceeded
    /// # }
    /// ```
    pub fn origin(&self) -> Option<Origin> {
        self.node.origin()
    }

    /// Whether the context has ended: `self.err().is_some()`. Go: `select { case <-ctx.Done(): }`
    /// with a `default` branch.
    ///
    /// ```
    /// use ctx_core::Context;
    ///
    /// let (ctx, handle) = Context::background().with_cancel();
    /// let mut done = 0;
    /// for item in 0..1_000 {
    ///     if ctx.is_done() {
    ///         break; // checked between steps of a long loop
    ///     }
    ///     if item == 10 {
    ///         handle.cancel();
    ///     }
    ///     done += 1;
    /// }
    /// assert_eq!(done, 11);
    /// ```
    #[inline]
    pub fn is_done(&self) -> bool {
        self.err().is_some()
    }

    /// The earliest deadline on the chain, if any. Go: `ctx.Deadline()`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctx_core::Context;
    ///
    /// let (ctx, _h) = Context::background().with_timeout(Duration::from_secs(2));
    /// let left = ctx.deadline().unwrap() - tokio::time::Instant::now();
    /// assert!(left <= Duration::from_secs(2));
    /// assert_eq!(Context::background().deadline(), None);
    /// ```
    #[inline]
    pub fn deadline(&self) -> Option<Instant> {
        self.node.deadline()
    }

    /// The time left until [`deadline()`](Self::deadline): `None` when the chain has no
    /// deadline (ended or not); `Duration::ZERO` once the context has ended or its deadline has
    /// passed. Trio: `current_effective_deadline() - now`; Go users write
    /// `time.Until(deadline)` after `ctx.Deadline()`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctx_core::Context;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (ctx, handle) = Context::background().with_timeout(Duration::from_secs(2));
    /// tokio::time::sleep(Duration::from_millis(500)).await;
    /// assert_eq!(ctx.remaining(), Some(Duration::from_millis(1500)));
    /// handle.cancel();
    /// assert_eq!(ctx.remaining(), Some(Duration::ZERO)); // ended: nothing left
    /// assert_eq!(Context::background().remaining(), None); // no deadline at all
    /// # }
    /// ```
    pub fn remaining(&self) -> Option<Duration> {
        let deadline = self.deadline()?;
        if self.is_done() {
            return Some(Duration::ZERO);
        }
        Some(deadline.saturating_duration_since(Instant::now()))
    }

    /// Whether work that needs `min` may start: `Err(err)` if the context has ended,
    /// `Err(Error::DeadlineExceeded)` if less than `min` is left before its deadline (the work
    /// cannot finish in time, so it should not start), else `Ok(())`. Never ends the context:
    /// a caller with a later deadline may still use it for something shorter.
    ///
    /// A context without a deadline always has time left. Go libraries hand-write this as a
    /// "deadline too soon" check before a call.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctx_core::{Context, Error};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (ctx, _h) = Context::background().with_timeout(Duration::from_millis(80));
    /// assert_eq!(ctx.ensure_remaining(Duration::from_millis(50)), Ok(()));
    /// // A query that takes 100 ms cannot finish: do not send it.
    /// assert_eq!(ctx.ensure_remaining(Duration::from_millis(100)), Err(Error::DeadlineExceeded));
    /// assert_eq!(ctx.err(), None); // still live
    /// # }
    /// ```
    pub fn ensure_remaining(&self, min: Duration) -> Result<(), Error> {
        if let Some(err) = self.err() {
            return Err(err);
        }
        match self.remaining() {
            Some(left) if left < min => Err(Error::DeadlineExceeded),
            _ => Ok(()),
        }
    }

    /// A future that completes with the reason when the context ends. Go: `<-ctx.Done()`.
    ///
    /// Equivalent to `async fn done(&self) -> Error`. Any number of `Done`s may wait on one
    /// context. For [`background`](Self::background) and
    /// [`without_cancel`](Self::without_cancel) contexts it never completes.
    ///
    /// # Cancellation safety
    ///
    /// This method is cancel safe: use it in `tokio::select!` freely.
    ///
    /// ```
    /// use ctx_core::{Context, Error};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (ctx, handle) = Context::background().with_cancel();
    /// let waiter = tokio::spawn({
    ///     let ctx = ctx.clone();
    ///     async move { ctx.done().await }
    /// });
    /// handle.cancel();
    /// assert_eq!(waiter.await.unwrap(), Error::Canceled);
    /// # }
    /// ```
    pub fn done(&self) -> Done {
        Done::new(self.node.node().map(|node| node.to_arc()))
    }

    /// Runs `fut` until it completes (`Ok`) or the context ends (`Err`, and `fut` is dropped at
    /// the `.await` where it waits). If the context has already ended, `fut` is never polled.
    ///
    /// This is what Go code writes as `select { case <-ctx.Done(): case r := <-work: }`.
    ///
    /// # Fairness
    ///
    /// Each poll first checks the context (one atomic load, and the clock if there is a
    /// deadline), then polls `fut`, then registers for the context's end. So an ended context
    /// always wins, and a future that completes before the end is noticed keeps its result.
    ///
    /// # Cancellation safety
    ///
    /// As cancel safe as `fut` is.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctx_core::{Context, Error};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (ctx, _h) = Context::background().with_timeout(Duration::from_secs(5));
    /// assert_eq!(ctx.run(async { 42 }).await, Ok(42));
    ///
    /// let (ctx, handle) = Context::background().with_cancel();
    /// handle.cancel();
    /// let never = ctx.run(async { unreachable!("not polled after the end") }).await;
    /// assert_eq!(never, Err(Error::Canceled));
    /// # }
    /// ```
    pub fn run<F: IntoFuture>(&self, fut: F) -> Run<'_, F::IntoFuture> {
        crate::done::run(self, fut, Clock::Read)
    }

    /// Spawns `fut` on the current tokio runtime, run under a clone of this context as
    /// [`run`](Self::run) does. Go: `go func() { ... }()` with `ctx` passed in.
    ///
    /// # Panics
    ///
    /// Like `tokio::spawn`, when called outside a tokio runtime.
    ///
    /// ```
    /// use ctx_core::{Context, Error};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (ctx, handle) = Context::background().with_cancel();
    /// let task = ctx.spawn(std::future::pending::<()>());
    /// handle.cancel();
    /// assert_eq!(task.await.unwrap(), Err(Error::Canceled));
    /// # }
    /// ```
    pub fn spawn<F>(&self, fut: F) -> JoinHandle<Result<F::Output, Error>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let ctx = self.clone();
        tokio::spawn(async move { ctx.run(fut).await })
    }

    /// Runs `f` once after the context ends (starts it at once if it already has).
    /// Go: `context.AfterFunc(ctx, f)`.
    ///
    /// As in Go, the end never waits for `f`: `cancel()`, a handle's drop or a parent's end
    /// starts `f` on another thread and returns without waiting for it to begin or finish, so
    /// an `f` that blocks can neither stall nor deadlock whoever ended the context. It starts
    /// after every context of the ended subtree has ended and no internal lock is held, so it
    /// may cancel other contexts (its own included). A panic in `f` harms nothing else.
    ///
    /// `f` runs on a pool of threads of this crate (not a tokio runtime's): an idle one if
    /// there is one, else a new one, so one `f` that blocks delays the others by a millisecond
    /// at most. The threads are detached: as with Go's goroutines, a process that exits does
    /// not wait for an `f` that has not finished. A deadline starts
    /// `f` from a timer task on the tokio runtime current at registration; outside a runtime
    /// (or once that runtime is gone), it starts when the passed deadline is first noticed
    /// (`err()`, `done()`, a derivation) or the context is cancelled.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use ctx_core::Context;
    ///
    /// let (ctx, handle) = Context::background().with_cancel();
    /// let (ran, told) = mpsc::channel();
    /// let after = ctx.after_func(move || ran.send("ended").unwrap());
    /// handle.cancel(); // returns at once; `f` runs on a thread of its own
    /// assert_eq!(told.recv().unwrap(), "ended");
    /// assert!(!after.stop()); // it had started
    /// ```
    pub fn after_func(&self, f: impl FnOnce() + Send + 'static) -> AfterFunc {
        AfterFunc::register(self.node.node(), Box::new(f))
    }
}

impl Clone for Context {
    /// Another reference to the same context. The clone of a `#[cancellable]` fn's `ctx` is an
    /// ordinary context that ends when the call returns (its node is made here if it has none
    /// yet).
    #[inline]
    fn clone(&self) -> Context {
        Context {
            node: self.node.to_owned(),
            values: self.values.clone(),
        }
    }
}

/// A `Context` is its own context: lets APIs take `impl AsRef<Context>`, so that they accept
/// `Context`, `&Context` and types that hold one (such as an HTTP framework's extractor).
impl AsRef<Context> for Context {
    #[inline]
    fn as_ref(&self) -> &Context {
        self
    }
}

impl Default for Context {
    /// [`Context::background()`].
    fn default() -> Context {
        Context::background()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("err", &self.node.state())
            .field("deadline", &self.deadline())
            .field("values", &values::len(self.values.as_ref()))
            .finish()
    }
}
