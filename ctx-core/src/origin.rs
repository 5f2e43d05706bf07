use std::fmt;
use std::panic::Location;

/// Where a context's end came from: the value of [`Context::origin`](crate::Context::origin).
///
/// A source location and what happened there ([`OriginKind`]): the
/// [`cancel()`](crate::CancelHandle::cancel) or
/// [`cancel_with_cause()`](crate::CancelHandle::cancel_with_cause) call that ended it; for an end
/// by a dropped [`CancelHandle`](crate::CancelHandle), the call that made the handle
/// ([`with_cancel`](crate::Context::with_cancel), [`with_timeout`](crate::Context::with_timeout),
/// ...), since a drop at the end of a scope has no call site of its own; for a deadline, the
/// call that set it (for a `#[cancellable]` fn, the fn itself). A context ended by an ancestor
/// has the ancestor's origin. Recording it costs no allocation: the location is a
/// `&'static` one, compiled into the binary.
///
/// Its `Display` is one line for a log: `canceled at src/main.rs:12:9`,
/// `canceled by dropping the handle made at src/main.rs:10:30`,
/// `deadline set at src/main.rs:10:30 exceeded`.
///
/// ```
/// use ctx_core::{Context, OriginKind};
///
/// let (ctx, handle) = Context::background().with_cancel();
/// assert_eq!(ctx.origin(), None); // live
/// let line = line!(); handle.cancel();
/// let origin = ctx.origin().unwrap();
/// assert_eq!(origin.kind(), OriginKind::Cancel);
/// assert_eq!(origin.location().line(), line);
/// assert_eq!(origin.location().file(), file!());
/// assert!(origin.to_string().starts_with("canceled at "));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    kind: OriginKind,
    location: &'static Location<'static>,
}

/// What ended a context, at an [`Origin`]'s location.
///
/// ```
/// use ctx_core::{Context, OriginKind};
///
/// let (ctx, handle) = Context::background().with_cancel();
/// drop(handle);
/// assert_eq!(ctx.origin().unwrap().kind(), OriginKind::Drop);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OriginKind {
    /// A [`cancel()`](crate::CancelHandle::cancel) or
    /// [`cancel_with_cause()`](crate::CancelHandle::cancel_with_cause) call; the location is
    /// the call's.
    Cancel,
    /// A [`CancelHandle`](crate::CancelHandle) (or a `#[cancellable]` call) was dropped while
    /// its context was live; the location is where the handle was made.
    Drop,
    /// A deadline passed; the location is the `with_timeout` / `with_deadline` call that set
    /// it, or the `#[cancellable]` fn whose `timeout` or `deadline` it was.
    Deadline,
}

impl Origin {
    pub(crate) fn new(kind: OriginKind, location: &'static Location<'static>) -> Origin {
        Origin { kind, location }
    }

    /// The source location: of the cancel call, of the call that made the dropped handle, or
    /// of the call that set the deadline (see [`OriginKind`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctx_core::{Context, OriginKind};
    ///
    /// let line = line!(); let (ctx, _h) = Context::background().with_timeout(Duration::ZERO);
    /// let origin = ctx.origin().unwrap();
    /// assert_eq!(origin.kind(), OriginKind::Deadline);
    /// assert_eq!(origin.location().line(), line);
    /// ```
    pub fn location(&self) -> &'static Location<'static> {
        self.location
    }

    /// What ended the context there.
    ///
    /// ```
    /// use ctx_core::{Context, OriginKind};
    ///
    /// let (root, handle) = Context::background().with_cancel();
    /// let (child, _h) = root.with_cancel();
    /// handle.cancel_with_cause("shutting down");
    /// // The child reports its ancestor's end.
    /// assert_eq!(child.origin(), root.origin());
    /// assert_eq!(child.origin().unwrap().kind(), OriginKind::Cancel);
    /// ```
    pub fn kind(&self) -> OriginKind {
        self.kind
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.location;
        match self.kind {
            OriginKind::Cancel => write!(f, "canceled at {at}"),
            OriginKind::Drop => write!(f, "canceled by dropping the handle made at {at}"),
            OriginKind::Deadline => write!(f, "deadline set at {at} exceeded"),
        }
    }
}
