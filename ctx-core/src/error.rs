use std::fmt;

/// Why a [`Context`](crate::Context) ended: the value of [`Context::err`](crate::Context::err).
///
/// Its `Display` is exactly Go's: `context canceled` and `context deadline exceeded`.
///
/// ```
/// use ctx_core::{Context, Error};
///
/// let (ctx, handle) = Context::background().with_cancel();
/// handle.cancel();
/// assert_eq!(ctx.err(), Some(Error::Canceled));
/// assert_eq!(Error::Canceled.to_string(), "context canceled");
/// assert_eq!(Error::DeadlineExceeded.to_string(), "context deadline exceeded");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The context was cancelled: by its [`CancelHandle`](crate::CancelHandle) (called or
    /// dropped), or by the end of an ancestor that was. Go: `context.Canceled`.
    Canceled,
    /// The context's deadline passed. Go: `context.DeadlineExceeded`.
    DeadlineExceeded,
}

impl Error {
    /// Whether this is [`Error::DeadlineExceeded`], the test Go users write as
    /// `errors.Is(err, context.DeadlineExceeded)`.
    ///
    /// ```
    /// assert!(ctx_core::Error::DeadlineExceeded.is_deadline_exceeded());
    /// assert!(!ctx_core::Error::Canceled.is_deadline_exceeded());
    /// ```
    pub fn is_deadline_exceeded(&self) -> bool {
        matches!(self, Error::DeadlineExceeded)
    }

    /// Whether this is [`Error::Canceled`].
    ///
    /// ```
    /// assert!(ctx_core::Error::Canceled.is_canceled());
    /// ```
    pub fn is_canceled(&self) -> bool {
        matches!(self, Error::Canceled)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Canceled => "context canceled",
            Error::DeadlineExceeded => "context deadline exceeded",
        })
    }
}

impl std::error::Error for Error {}

/// `DeadlineExceeded` becomes [`std::io::ErrorKind::TimedOut`], `Canceled` becomes
/// [`std::io::ErrorKind::Interrupted`]; the `Error` stays reachable as the source.
///
/// ```
/// use std::io;
///
/// let err: io::Error = ctx_core::Error::DeadlineExceeded.into();
/// assert_eq!(err.kind(), io::ErrorKind::TimedOut);
/// assert_eq!(err.to_string(), "context deadline exceeded");
/// ```
impl From<Error> for std::io::Error {
    fn from(err: Error) -> Self {
        let kind = match err {
            Error::Canceled => std::io::ErrorKind::Interrupted,
            Error::DeadlineExceeded => std::io::ErrorKind::TimedOut,
        };
        std::io::Error::new(kind, err)
    }
}

/// Why a context ended, in the words of whoever ended it: the value of
/// [`Context::cause`](crate::Context::cause).
///
/// A cause given to [`CancelHandle::cancel_with_cause`](crate::CancelHandle::cancel_with_cause)
/// or [`Context::with_timeout_cause`](crate::Context::with_timeout_cause) is kept as itself, so
/// `cause.downcast_ref::<MyError>()` finds it; otherwise the cause is the [`Error`]. A `Cause`
/// given there (another context's, or one made once and given to many contexts) is kept as
/// that same `Cause`, not wrapped in another one: it downcasts to what it holds, and giving
/// it costs a reference count rather than a copy.
///
/// ```
/// use ctx_core::{Context, Error};
///
/// let (ctx, handle) = Context::background().with_cancel();
/// handle.cancel_with_cause(std::io::Error::other("upstream reset"));
/// let cause = ctx.cause().unwrap();
/// assert!(cause.downcast_ref::<std::io::Error>().is_some());
/// assert_eq!(ctx.err(), Some(Error::Canceled));
/// ```
pub type Cause = std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>;

/// The cause a context keeps for `cause`, as given to `cancel_with_cause` or `with_*_cause`:
/// the given error in an `Arc`; a given [`Cause`] is kept as itself (a clone of the same
/// `Arc`), not wrapped in a new one that `downcast_ref` would no longer see through.
pub(crate) fn into_cause(cause: Box<dyn std::error::Error + Send + Sync>) -> Cause {
    match cause.downcast::<Cause>() {
        Ok(cause) => *cause,
        Err(cause) => Cause::from(cause),
    }
}
