use std::fmt;

use crate::context::Context;
use crate::error::{Cause, Error};

/// Work was stopped because its [`Context`] ended: the context's [`Error`] and [`Cause`],
/// captured when the work stopped.
///
/// This is the one error the integration crates (`ctx-http`, `ctx-reqwest`, `ctx-rusqlite`,
/// `ctx-postgres`, ...) wrap when a context stops their work, so that every one of them says it
/// the same way:
///
/// - [`Display`](fmt::Display) is the context's error, exactly Go's text:
///   `context canceled` or `context deadline exceeded`;
/// - [`source()`](std::error::Error::source) is the cause when one was given (a
///   `cancel_with_cause`, a `with_timeout_cause`, an ancestor's cause), and `None` when the
///   cause is just the error itself. So a report of the whole chain (`anyhow`'s `{:#}`, a
///   `tracing` error field) reads `context canceled: client disconnected`, while the text of
///   this error alone stays what Go users grep for.
///
/// ```
/// use std::error::Error as _;
/// use ctx_core::{Context, ContextError, Error};
///
/// let (ctx, handle) = Context::background().with_cancel();
/// assert!(ContextError::of(&ctx).is_none()); // live: nothing stopped yet
///
/// handle.cancel_with_cause("client disconnected");
/// let stopped = ContextError::of(&ctx).unwrap();
/// assert_eq!(stopped.err(), Error::Canceled);
/// assert_eq!(stopped.to_string(), "context canceled");
/// assert_eq!(stopped.source().unwrap().to_string(), "client disconnected");
///
/// // Without a cause of its own, the cause is the error and there is no source.
/// let (ctx, handle) = Context::background().with_cancel();
/// handle.cancel();
/// let stopped = ContextError::of(&ctx).unwrap();
/// assert!(stopped.source().is_none());
/// assert_eq!(stopped.cause().downcast_ref::<Error>(), Some(&Error::Canceled));
/// ```
#[derive(Clone)]
pub struct ContextError {
    err: Error,
    cause: Cause,
}

impl ContextError {
    /// The error for work that `ctx` stopped with `err` (what [`Context::run`] or
    /// [`Context::err`] returned): `err`, and `ctx`'s cause.
    ///
    /// `ctx` has ended with `err`, so its cause is recorded; should it not be (a context that
    /// never ended), `err` itself stands in for the cause.
    ///
    /// ```
    /// use ctx_core::{Context, ContextError, Error};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (ctx, _h) = Context::background().with_timeout_cause(
    ///     std::time::Duration::from_millis(5),
    ///     "lookup budget spent",
    /// );
    /// let err = ctx.run(std::future::pending::<()>()).await.unwrap_err();
    /// let stopped = ContextError::new(&ctx, err);
    /// assert_eq!(stopped.err(), Error::DeadlineExceeded);
    /// assert_eq!(stopped.cause().to_string(), "lookup budget spent");
    /// # }
    /// ```
    pub fn new(ctx: &Context, err: Error) -> ContextError {
        ContextError {
            err,
            cause: ctx.cause().unwrap_or_else(|| std::sync::Arc::new(err)),
        }
    }

    /// The error for `ctx` if it has ended, else `None`.
    ///
    /// ```
    /// use ctx_core::{Context, ContextError};
    ///
    /// assert!(ContextError::of(&Context::background()).is_none());
    /// ```
    pub fn of(ctx: &Context) -> Option<ContextError> {
        ctx.err().map(|err| ContextError::new(ctx, err))
    }

    /// Why the context ended: [`Error::Canceled`] or [`Error::DeadlineExceeded`].
    pub fn err(&self) -> Error {
        self.err
    }

    /// The context's [`cause()`](Context::cause) when the work stopped: the cause given to
    /// whoever ended it, kept as itself (`downcast_ref` finds it), else the [`Error`].
    pub fn cause(&self) -> &Cause {
        &self.cause
    }

    /// Whether a cause other than the bare error was given.
    fn has_own_cause(&self) -> bool {
        self.cause.downcast_ref::<Error>() != Some(&self.err)
    }
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.err, f)
    }
}

impl fmt::Debug for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextError")
            .field("err", &self.err)
            .field("cause", &self.cause)
            .finish()
    }
}

impl std::error::Error for ContextError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        if self.has_own_cause() {
            Some(&*self.cause)
        } else {
            None
        }
    }
}

impl From<ContextError> for Error {
    /// The context's error, without the cause.
    fn from(stopped: ContextError) -> Error {
        stopped.err
    }
}

/// As for [`Error`]: `DeadlineExceeded` becomes [`std::io::ErrorKind::TimedOut`], `Canceled`
/// becomes [`std::io::ErrorKind::Interrupted`]; the `ContextError` is the inner error.
impl From<ContextError> for std::io::Error {
    fn from(stopped: ContextError) -> std::io::Error {
        let kind = match stopped.err {
            Error::Canceled => std::io::ErrorKind::Interrupted,
            Error::DeadlineExceeded => std::io::ErrorKind::TimedOut,
        };
        std::io::Error::new(kind, stopped)
    }
}
