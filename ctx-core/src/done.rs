use std::fmt;
use std::future::{Future, IntoFuture};
use std::ops::Deref;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::{Duration, Instant, Sleep};

use crate::Context;
use crate::error::Error;
use crate::sync::Arc;
use crate::tree::{Clock, Node, Now};

/// How far ahead a deadline timer is set at most: about 30 years, as tokio's own far future.
/// A timer for a later deadline fires there and is set again.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// The instant a timer for `deadline` is set for, at `now`: the deadline itself, or at most
/// [`FAR_FUTURE`] ahead. tokio rounds a timer's target up by just under a millisecond and panics
/// if that overflows `Instant`, so a deadline in the last millisecond of its range (or any
/// beyond the far future) cannot be given to it as it is. Kept clear of that last millisecond
/// whatever `now` is.
fn timer_target(deadline: Instant, now: Instant) -> Instant {
    const ROUNDING: Duration = Duration::from_millis(1);
    let target = now
        .checked_add(FAR_FUTURE)
        .map_or(deadline, |far| far.min(deadline));
    match target.checked_add(ROUNDING) {
        Some(_) => target,
        None => target.checked_sub(ROUNDING).unwrap_or(target),
    }
}

/// A registration to be woken when a node ends, plus the timer for its deadline, created on the
/// first poll that needs it.
pub(crate) struct Waiter<N: Deref<Target = Node>> {
    node: N,
    key: Option<usize>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<N: Deref<Target = Node>> Waiter<N> {
    pub(crate) fn new(node: N) -> Self {
        Waiter {
            node,
            key: None,
            sleep: None,
        }
    }

    pub(crate) fn node(&self) -> &Node {
        &self.node
    }

    /// Polls for the end of the node. Cancel safe; may be polled again after it is ready.
    pub(crate) fn poll_end(&mut self, cx: &mut TaskContext<'_>, clock: Clock) -> Poll<Error> {
        let ended = match clock {
            Clock::Read => self.node.check(&mut Now::default()),
            Clock::Skip => self.node.state(),
        };
        if let Some(err) = ended.or_else(|| self.node.register_waiter(&mut self.key, cx.waker())) {
            self.release();
            return Poll::Ready(err);
        }
        if let Some(deadline) = self.node.deadline() {
            let sleep = self.sleep.get_or_insert_with(|| {
                Box::pin(tokio::time::sleep_until(timer_target(
                    deadline,
                    Instant::now(),
                )))
            });
            loop {
                ready!(sleep.as_mut().poll(cx));
                if sleep.deadline() >= deadline {
                    break;
                }
                // The target was clamped: the deadline is further away than a timer is set.
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                let next = timer_target(deadline, now);
                if next <= now {
                    // No timer can be set nearer to this deadline: it ends the context when
                    // it is observed (or the context ends otherwise, which wakes this waiter).
                    return Poll::Pending;
                }
                sleep.as_mut().reset(next);
            }
            let err = self.node.expire(&mut Now::at_least(deadline));
            self.release();
            return Poll::Ready(err);
        }
        Poll::Pending
    }

    fn release(&mut self) {
        self.forget_key();
        self.sleep = None;
    }

    /// Takes this waiter out of the node's waiters, if it is still in them. Once the node has
    /// ended, its waiters were all taken out by the end (invariant 1 of `tree`), so there is
    /// nothing to remove and no lock to take: a fan-out of woken waiters does not lock each
    /// node a second time.
    fn forget_key(&mut self) {
        if let Some(key) = self.key.take()
            && self.node.state().is_none()
        {
            self.node.remove_waiter(key);
        }
    }
}

impl<N: Deref<Target = Node>> Drop for Waiter<N> {
    fn drop(&mut self) {
        self.forget_key();
    }
}

/// Future returned by [`Context::done`]: completes with the reason when the context ends.
///
/// Equivalent to `async fn done(&self) -> Error`, but owns what it needs, so it is `'static`
/// and can be moved into a task. Go: `<-ctx.Done()`.
///
/// # Cancellation safety
///
/// Cancel safe: dropping it before it completes loses nothing and leaves nothing behind in the
/// context. It may be polled again after completing, and completes again with the same error.
///
/// # Panics
///
/// Polling it on a context with a deadline needs a tokio runtime with its time driver (as
/// `tokio::time::sleep` does); without a deadline it runs on any executor.
///
/// ```
/// use std::time::Duration;
/// use ctx_core::{Context, Error};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let (ctx, _h) = Context::background().with_timeout(Duration::from_secs(1));
/// tokio::select! {
///     err = ctx.done() => assert_eq!(err, Error::DeadlineExceeded),
///     _ = tokio::time::sleep(Duration::from_secs(5)) => unreachable!("the context ends first"),
/// }
/// # }
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Done {
    waiter: Option<Waiter<Arc<Node>>>,
}

impl Done {
    pub(crate) fn new(node: Option<Arc<Node>>) -> Done {
        Done {
            waiter: node.map(Waiter::new),
        }
    }
}

impl Future for Done {
    type Output = Error;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Error> {
        match self.waiter.as_mut() {
            Some(waiter) => waiter.poll_end(cx, Clock::Read),
            // A context that can never end (background, `without_cancel`).
            None => Poll::Pending,
        }
    }
}

impl fmt::Debug for Done {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Done")
            .field("err", &self.waiter.as_ref().and_then(|w| w.node().state()))
            .finish()
    }
}

pin_project! {
    /// Future returned by [`Context::run`]: runs `fut` until it completes or the context ends.
    ///
    /// Output: `Ok(output)` if `fut` completed, `Err(reason)` if the context ended first (`fut`
    /// is then dropped at once, at the `.await` where it was waiting). Like every future, it
    /// panics if polled again after it completed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctx_core::{Context, Error};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let (ctx, _h) = Context::background().with_timeout(Duration::from_millis(10));
    /// let run = ctx.run(tokio::time::sleep(Duration::from_secs(1)));
    /// assert_eq!(run.await, Err(Error::DeadlineExceeded));
    /// # }
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct Run<'a, F> {
        #[pin]
        fut: Option<F>,
        ctx: &'a Context,
        // Registered on the first poll where `fut` is pending (a lazy child's node is made
        // then): a future that completes in its first poll registers nothing.
        waiter: Option<Waiter<&'a Node>>,
        clock: Clock,
    }
}

impl<'a, F: Future> Run<'a, F> {
    pub(crate) fn new(ctx: &'a Context, fut: F, clock: Clock) -> Self {
        Run {
            fut: Some(fut),
            ctx,
            waiter: None,
            clock,
        }
    }
}

impl<F: Future> Future for Run<'_, F> {
    type Output = Result<F::Output, Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let ctx: &Context = this.ctx;
        // Priority: an ended context stops the future before it is polled again; then the
        // future; then the context's end (including a deadline timer).
        let ended = match this.waiter.as_ref() {
            Some(waiter) => waiter.node().check(&mut Now::default()),
            // Only the first poll of a context derived just now may skip the clock.
            None => ctx.node.check(std::mem::replace(this.clock, Clock::Read)),
        };
        if let Some(err) = ended {
            this.fut.set(None);
            this.waiter.take();
            return Poll::Ready(Err(err));
        }
        let fut = this
            .fut
            .as_mut()
            .as_pin_mut()
            .expect("`Run` polled after completion");
        if let Poll::Ready(output) = fut.poll(cx) {
            this.fut.set(None);
            this.waiter.take();
            return Poll::Ready(Ok(output));
        }
        let waiter = match this.waiter {
            Some(waiter) => waiter,
            None => match ctx.node.node() {
                Some(node) => this.waiter.insert(Waiter::new(node.get())),
                // A context that can never end (background, `without_cancel`).
                None => return Poll::Pending,
            },
        };
        let err = ready!(waiter.poll_end(cx, Clock::Skip));
        this.fut.set(None);
        this.waiter.take();
        Poll::Ready(Err(err))
    }
}

impl<F> fmt::Debug for Run<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run")
            .field("completed", &self.fut.is_none())
            .finish()
    }
}

/// `IntoFuture` lets callers pass `async` blocks and anything else that turns into a future.
pub(crate) fn run<F: IntoFuture>(ctx: &Context, fut: F, clock: Clock) -> Run<'_, F::IntoFuture> {
    Run::new(ctx, fut.into_future(), clock)
}
