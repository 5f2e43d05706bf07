use std::fmt;
use std::panic::Location;

use crate::error::into_cause;
use crate::sync::Arc;
use crate::tree::{Node, release};

/// Cancels the context it came with, and every context derived from it. Dropping it cancels too.
///
/// Returned beside every context made by [`Context::with_cancel`](crate::Context::with_cancel),
/// [`with_timeout`](crate::Context::with_timeout) and
/// [`with_deadline`](crate::Context::with_deadline). Go: the `CancelFunc`, with
/// `defer cancel()` built in: a context cannot outlive its handle, so a forgotten cancel cannot
/// leak it.
///
/// ```
/// use ctx_core::{Context, Error};
///
/// let (ctx, handle) = Context::background().with_cancel();
/// let (child, _child_handle) = ctx.with_cancel();
/// drop(handle); // Go: `defer cancel()` returning
/// assert_eq!(ctx.err(), Some(Error::Canceled));
/// assert_eq!(child.err(), Some(Error::Canceled));
/// ```
#[must_use = "dropping the handle cancels the context"]
pub struct CancelHandle {
    node: Arc<Node>,
}

impl CancelHandle {
    pub(crate) fn new(node: Arc<Node>) -> CancelHandle {
        CancelHandle { node }
    }

    /// Ends the context and its whole subtree with [`Error::Canceled`](crate::Error::Canceled).
    /// Go: `cancel()`.
    ///
    /// Does nothing if the context has already ended: the first end wins. If its deadline has
    /// already passed, it ends with `DeadlineExceeded` instead, because that came first. When it
    /// returns, every descendant has ended, even if another thread ended the context first.
    ///
    /// ```
    /// use ctx_core::{Context, Error};
    ///
    /// let (ctx, handle) = Context::background().with_cancel();
    /// handle.cancel();
    /// handle.cancel(); // idempotent
    /// assert_eq!(ctx.err(), Some(Error::Canceled));
    /// ```
    #[track_caller]
    pub fn cancel(&self) {
        self.node.cancel(None, Some(Location::caller()));
    }

    /// Like [`cancel`](Self::cancel), recording `cause` as the context's
    /// [`cause()`](crate::Context::cause). Go: `cancel(cause)` from `context.WithCancelCause`.
    ///
    /// `cause` may be a `&str`, a `String` or any error; an error keeps its type, so
    /// `ctx.cause().unwrap().downcast_ref::<MyError>()` finds it.
    ///
    /// ```
    /// use ctx_core::{Context, Error};
    ///
    /// let (ctx, handle) = Context::background().with_cancel();
    /// handle.cancel_with_cause("client disconnected");
    /// assert_eq!(ctx.err(), Some(Error::Canceled));
    /// assert_eq!(ctx.cause().unwrap().to_string(), "client disconnected");
    /// ```
    #[track_caller]
    pub fn cancel_with_cause(&self, cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) {
        // Box the cause only if it can still matter; either way, return only once ended.
        let cause = self
            .node
            .state()
            .is_none()
            .then(|| into_cause(cause.into()));
        self.node.cancel(cause, Some(Location::caller()));
    }
}

impl Drop for CancelHandle {
    fn drop(&mut self) {
        release(&self.node);
    }
}

impl fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelHandle")
            .field("err", &self.node.state())
            .finish()
    }
}
