//! The clock reading of an operation: at most one per operation, and none unless a deadline
//! needs it (see "Deadlines" in the module docs of `tree`).

use tokio::time::Instant;

/// One clock reading per operation, taken only if a deadline needs it.
#[derive(Clone, Copy, Default)]
pub(crate) struct Now(Option<Instant>);

impl Now {
    /// A reading taken just now.
    pub(crate) fn reading(now: Instant) -> Now {
        Now(Some(now))
    }

    /// `reading` if one was taken, else a reading taken when first needed.
    pub(crate) fn maybe(reading: Option<Instant>) -> Now {
        Now(reading)
    }

    /// A reading known to be no earlier than `at` (a timer for `at` has fired).
    pub(crate) fn at_least(at: Instant) -> Now {
        Now(Some(Instant::now().max(at)))
    }

    #[inline]
    pub(crate) fn get(&mut self) -> Instant {
        *self.0.get_or_insert_with(Instant::now)
    }
}

/// Whether a check of a context reads the clock, so that a deadline that has passed unobserved
/// ends the context, or only reads its state.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clock {
    /// Read it (only on a chain with a deadline): every check but those below.
    Read,
    /// Only the state: the caller checked an instant ago with a reading of its own. The first
    /// poll of a `#[cancellable]` call's race, just after its child was derived (and checked
    /// with the reading its timeout was computed from), and a `Run`'s registration, just
    /// after the same poll's own check.
    Skip,
}
