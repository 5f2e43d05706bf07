//! Retries and hedged calls under a [`Context`]: the caller's deadline bounds all of it.
//!
//! Retry libraries count attempts and sleep between them; none knows when the caller stops
//! waiting. [`retry`] runs every attempt under the context, so an attempt in flight stops when
//! the context ends, and it never starts a backoff sleep that would end at or past the
//! context's deadline: it returns at once with [`RetryError::NoTimeLeft`] instead of sleeping
//! for nothing. The backoff policies are [backon]'s builders (exponential, constant,
//! Fibonacci, with jitter and limits), re-exported as [`backon`].
//!
//! [`hedge`] sends a second attempt when the first has not answered after a delay (and a
//! third, ...): the first success wins, and the others are cancelled through their contexts, so
//! their queries and calls stop too.
//!
//! ```
//! use std::time::Duration;
//! use ctx_core::Context;
//! use ctx_retry::{backon::ExponentialBuilder, retry, RetryError};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let (ctx, _h) = Context::background().with_timeout(Duration::from_millis(250));
//! let policy = ExponentialBuilder::default()
//!     .with_min_delay(Duration::from_millis(50))
//!     .with_max_times(10);
//!
//! // A dependency that fails every time.
//! let err = retry(&ctx, policy, |_ctx| async { Err::<(), _>("unavailable") })
//!     .await
//!     .unwrap_err();
//! // Attempts at 0, 50 and 150 ms; the next sleep (200 ms) would end past the deadline.
//! assert!(matches!(err, RetryError::NoTimeLeft { attempts: 3, .. }));
//! assert_eq!(err.last_error(), Some(&"unavailable"));
//! # }
//! ```
//!
//! # How it compares
//!
//! | | ctx-retry | backon alone | hand-written loop |
//! | --- | --- | --- | --- |
//! | an attempt in flight stops when the caller's context ends | yes | no | if written |
//! | a sleep that cannot end before the deadline is not started | yes | no | rarely |
//! | the caller's cause and the last attempt's error are both kept | yes | the error only | varies |
//! | hedged attempts, losers cancelled through their contexts | yes | no | rarely |

#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

use std::error::Error as StdError;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use backon::BackoffBuilder;
use ctx_core::{CancelHandle, Context, ContextError};
use tokio::time::Instant;

/// The backoff policies, re-exported at the version this crate is built with.
pub use backon;

/// Why [`retry`] or [`hedge`] gave up. `E` is the error of one attempt.
#[derive(Debug)]
#[non_exhaustive]
pub enum RetryError<E> {
    /// The context ended: before the first attempt, during an attempt (which was stopped) or
    /// during a backoff sleep. `last` is the error of the last attempt that failed, if any did.
    Context {
        /// The context's error and cause.
        stopped: ContextError,
        /// The last failed attempt's error.
        last: Option<E>,
        /// How many attempts were started.
        attempts: usize,
    },
    /// The next backoff sleep would have ended at or after the context's deadline, so it was
    /// not started: no attempt could have run after it.
    NoTimeLeft {
        /// The last attempt's error.
        last: E,
        /// How many attempts ran.
        attempts: usize,
        /// The sleep that was not started.
        next_delay: Duration,
        /// The time the context had left.
        left: Duration,
    },
    /// The backoff policy allows no more attempts.
    Exhausted {
        /// The last attempt's error.
        last: E,
        /// How many attempts ran.
        attempts: usize,
    },
    /// The attempt's error is not one to retry ([`retry_when`]'s predicate said so).
    NotRetryable {
        /// That attempt's error.
        err: E,
        /// How many attempts ran.
        attempts: usize,
    },
}

impl<E> RetryError<E> {
    /// The error of the last attempt that failed, if one did.
    pub fn last_error(&self) -> Option<&E> {
        match self {
            RetryError::Context { last, .. } => last.as_ref(),
            RetryError::NoTimeLeft { last, .. } | RetryError::Exhausted { last, .. } => Some(last),
            RetryError::NotRetryable { err, .. } => Some(err),
        }
    }

    /// The error of the last attempt that failed, by value.
    pub fn into_last_error(self) -> Option<E> {
        match self {
            RetryError::Context { last, .. } => last,
            RetryError::NoTimeLeft { last, .. } | RetryError::Exhausted { last, .. } => Some(last),
            RetryError::NotRetryable { err, .. } => Some(err),
        }
    }

    /// How many attempts were started.
    pub fn attempts(&self) -> usize {
        match self {
            RetryError::Context { attempts, .. }
            | RetryError::NoTimeLeft { attempts, .. }
            | RetryError::Exhausted { attempts, .. }
            | RetryError::NotRetryable { attempts, .. } => *attempts,
        }
    }

    /// The context's error, if the context's end stopped the retries.
    pub fn context_err(&self) -> Option<ctx_core::Error> {
        match self {
            RetryError::Context { stopped, .. } => Some(stopped.err()),
            _ => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.attempts();
        let s = if n == 1 { "" } else { "s" };
        match self {
            RetryError::Context { stopped, .. } => {
                write!(f, "stopped after {n} attempt{s}: {stopped}")
            }
            RetryError::NoTimeLeft {
                last,
                next_delay,
                left,
                ..
            } => write!(
                f,
                "gave up after {n} attempt{s}: the next try in {next_delay:?} would be past the deadline ({left:?} left): {last}"
            ),
            RetryError::Exhausted { last, .. } => write!(f, "gave up after {n} attempt{s}: {last}"),
            RetryError::NotRetryable { err, .. } => write!(f, "attempt {n} failed: {err}"),
        }
    }
}

/// The source is the last attempt's error; when the context ended before any attempt failed,
/// the context's cause.
impl<E: StdError + 'static> StdError for RetryError<E> {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            RetryError::Context {
                last: Some(last), ..
            } => Some(last),
            RetryError::Context { stopped, .. } => stopped.source(),
            RetryError::NoTimeLeft { last, .. } | RetryError::Exhausted { last, .. } => Some(last),
            RetryError::NotRetryable { err, .. } => Some(err),
        }
    }
}

/// The time `ctx` has left before its deadline, `None` without one.
fn time_left(ctx: &Context) -> Option<Duration> {
    ctx.deadline()
        .map(|deadline| deadline.saturating_duration_since(Instant::now()))
}

/// Runs `op` under `ctx` until it succeeds, retrying every error with the delays of `policy`.
/// Same as [`retry_when`] with a predicate that retries everything.
///
/// `op` gets the context (a clone: cheap) and returns one attempt.
pub async fn retry<T, E, F, Fut, B>(ctx: &Context, policy: B, op: F) -> Result<T, RetryError<E>>
where
    B: BackoffBuilder,
    F: FnMut(Context) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    retry_when(ctx, policy, |_| true, op).await
}

/// Runs `op` under `ctx` until it succeeds, retrying the errors `retryable` accepts with the
/// delays of `policy`:
///
/// - no attempt starts once `ctx` has ended, and an attempt in flight is dropped when it ends
///   ([`RetryError::Context`], with the last failed attempt's error kept);
/// - a backoff sleep that would end at or after `ctx`'s deadline is not started
///   ([`RetryError::NoTimeLeft`]);
/// - an error that fails `retryable` ends it at once ([`RetryError::NotRetryable`]), and so
///   does the policy running out ([`RetryError::Exhausted`]).
///
/// An attempt that fails because the context ended at that moment (a query cancelled by it)
/// counts as the context's end, not as an error to retry.
///
/// ```
/// use std::time::Duration;
/// use ctx_core::Context;
/// use ctx_retry::{backon::ConstantBuilder, retry_when, RetryError};
///
/// #[derive(Debug, PartialEq)]
/// enum CallError { Busy, NotFound }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let ctx = Context::background();
/// let policy = ConstantBuilder::default().with_delay(Duration::from_millis(10));
/// let mut calls = 0;
/// let err = retry_when(&ctx, policy, |e| *e == CallError::Busy, |_ctx| {
///     calls += 1;
///     let answer = if calls < 3 { CallError::Busy } else { CallError::NotFound };
///     async move { Err::<(), _>(answer) }
/// })
/// .await
/// .unwrap_err();
/// assert!(matches!(err, RetryError::NotRetryable { err: CallError::NotFound, attempts: 3 }));
/// # }
/// ```
pub async fn retry_when<T, E, F, Fut, B, P>(
    ctx: &Context,
    policy: B,
    mut retryable: P,
    mut op: F,
) -> Result<T, RetryError<E>>
where
    B: BackoffBuilder,
    P: FnMut(&E) -> bool,
    F: FnMut(Context) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut delays = policy.build();
    let mut attempts = 0;
    let mut last = None;
    let stopped = |err, last, attempts| RetryError::Context {
        stopped: ContextError::new(ctx, err),
        last,
        attempts,
    };
    loop {
        if let Some(err) = ctx.err() {
            return Err(stopped(err, last, attempts));
        }
        attempts += 1;
        let failed = match ctx.run(op(ctx.clone())).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(failed)) => failed,
            Err(err) => return Err(stopped(err, last, attempts)),
        };
        if let Some(err) = ctx.err() {
            return Err(stopped(err, Some(failed), attempts));
        }
        if !retryable(&failed) {
            return Err(RetryError::NotRetryable {
                err: failed,
                attempts,
            });
        }
        let Some(delay) = delays.next() else {
            return Err(RetryError::Exhausted {
                last: failed,
                attempts,
            });
        };
        if let Some(left) = time_left(ctx).filter(|left| delay >= *left) {
            return Err(RetryError::NoTimeLeft {
                last: failed,
                attempts,
                next_delay: delay,
                left,
            });
        }
        last = Some(failed);
        if let Err(err) = ctx.run(tokio::time::sleep(delay)).await {
            return Err(stopped(err, last, attempts));
        }
    }
}

/// Runs up to `max_attempts` copies of `op` under `ctx`, each under a child context of its
/// own: the first at once, the next whenever `delay` passes without an answer or an attempt
/// fails. The first success is returned; every other attempt is then cancelled (its context
/// ends with the cause `another attempt won`, so what it runs under its context stops) and
/// dropped. If every attempt fails, the last failure is returned
/// ([`RetryError::Exhausted`]); if `ctx` ends first, [`RetryError::Context`].
///
/// `op` gets the attempt's context and its number (0 for the first). At least one attempt is
/// made, even with a `max_attempts` of 0.
///
/// ```
/// use std::time::Duration;
/// use ctx_core::Context;
/// use ctx_retry::hedge;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// // The first replica is stuck; the second, asked after 20 ms, answers in 5 ms.
/// let ctx = Context::background();
/// let answer = hedge(&ctx, Duration::from_millis(20), 2, |attempt_ctx, n| async move {
///     let slow = if n == 0 { Duration::from_secs(60) } else { Duration::from_millis(5) };
///     attempt_ctx.run(tokio::time::sleep(slow)).await.map(|()| n)
/// })
/// .await
/// .unwrap();
/// assert_eq!(answer, 1);
/// # }
/// ```
pub async fn hedge<T, E, F, Fut>(
    ctx: &Context,
    delay: Duration,
    max_attempts: usize,
    mut op: F,
) -> Result<T, RetryError<E>>
where
    F: FnMut(Context, usize) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let max_attempts = max_attempts.max(1);
    let mut running: Vec<(Pin<Box<Fut>>, CancelHandle)> = Vec::new();
    let mut started = 0;
    let mut last = None;
    let mut next_at = Instant::now();
    let mut timer = Box::pin(tokio::time::sleep_until(next_at));
    let mut done = Box::pin(ctx.done());
    let outcome = poll_fn(|cx| {
        loop {
            if let Poll::Ready(err) = done.as_mut().poll(cx) {
                return Poll::Ready(Err(RetryError::Context {
                    stopped: ContextError::new(ctx, err),
                    last: last.take(),
                    attempts: started,
                }));
            }
            // Start the next attempt when its time has come (or when nothing is running).
            let due = running.is_empty() || timer.as_mut().poll(cx).is_ready();
            if due && started < max_attempts {
                let (attempt_ctx, handle) = ctx.with_cancel();
                running.push((Box::pin(op(attempt_ctx, started)), handle));
                started += 1;
                next_at = Instant::now() + delay;
                timer.as_mut().reset(next_at);
                continue;
            }
            let mut i = 0;
            while i < running.len() {
                match running[i].0.as_mut().poll(cx) {
                    Poll::Ready(Ok(value)) => {
                        // The winner's context ends with its handle, as any finished call's.
                        drop(running.swap_remove(i));
                        return Poll::Ready(Ok(value));
                    }
                    Poll::Ready(Err(err)) => {
                        last = Some(err);
                        drop(running.swap_remove(i));
                    }
                    Poll::Pending => i += 1,
                }
            }
            if running.is_empty() {
                if started >= max_attempts {
                    let last = last.take().expect("every attempt ran and failed");
                    return Poll::Ready(Err(RetryError::Exhausted {
                        last,
                        attempts: started,
                    }));
                }
                // A failure frees the slot: the next attempt starts now.
                continue;
            }
            return Poll::Pending;
        }
    })
    .await;
    for (_, handle) in &running {
        handle.cancel_with_cause("another attempt won");
    }
    outcome
}
