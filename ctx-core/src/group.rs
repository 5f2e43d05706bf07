use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::Context;
use crate::handle::CancelHandle;
use crate::sync::{Mutex, lock};

/// Tasks that share a context: the first error (or panic) cancels the rest, and
/// [`wait`](Group::wait) returns it. Go: `errgroup.WithContext`.
///
/// The group's [`context`](Group::context) is a child of the parent given to
/// [`new`](Group::new). It ends on the first task error or panic, when `wait` returns, or when
/// the group is dropped. Dropping the group also aborts its tasks, so nothing outlives it.
///
/// A task that has not started when the group's context ends is never started; tasks that are
/// running are told through the context and are awaited by `wait`.
///
/// ```
/// use ctx_core::{Context, Group};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let mut group = Group::<String>::new(&Context::background());
/// let gctx = group.context().clone();
/// group.spawn(async { Err("fetching the profile failed".to_string()) });
/// group.spawn(async move {
///     // The sibling's error ends this task's wait early.
///     gctx.done().await;
///     Ok(())
/// });
/// assert_eq!(group.wait().await, Err("fetching the profile failed".to_string()));
/// # }
/// ```
pub struct Group<E> {
    ctx: Context,
    shared: Arc<Shared<E>>,
    tasks: JoinSet<()>,
    limit: Option<Arc<Semaphore>>,
}

struct Shared<E> {
    handle: CancelHandle,
    outcome: Mutex<Outcome<E>>,
}

struct Outcome<E> {
    error: Option<E>,
    panic: Option<Box<dyn Any + Send>>,
}

impl<E> Shared<E> {
    fn record_error(&self, error: E) {
        let rejected = keep_first(&mut lock(&self.outcome).error, error);
        drop(rejected);
        self.handle.cancel_with_cause("a task of the group failed");
    }

    fn record_panic(&self, payload: Box<dyn Any + Send>) {
        let rejected = keep_first(&mut lock(&self.outcome).panic, payload);
        drop(rejected);
        self.handle
            .cancel_with_cause("a task of the group panicked");
    }
}

/// Stores `value` in `slot` unless it already holds one, and hands back whatever was not kept,
/// to be dropped after the lock is released (it may be user code).
fn keep_first<T>(slot: &mut Option<T>, value: T) -> Option<T> {
    match slot {
        None => {
            *slot = Some(value);
            None
        }
        Some(_) => Some(value),
    }
}

impl<E: Send + 'static> Group<E> {
    /// A group whose context is a new child of `parent`.
    ///
    /// ```
    /// use ctx_core::{Context, Group};
    ///
    /// let (parent, handle) = Context::background().with_cancel();
    /// let group = Group::<std::io::Error>::new(&parent);
    /// handle.cancel(); // the parent's end ends the group's context too
    /// assert!(group.context().is_done());
    /// ```
    pub fn new(parent: &Context) -> Group<E> {
        let (ctx, handle) = parent.with_cancel();
        Group {
            ctx,
            shared: Arc::new(Shared {
                handle,
                outcome: Mutex::new(Outcome {
                    error: None,
                    panic: None,
                }),
            }),
            tasks: JoinSet::new(),
            limit: None,
        }
    }

    /// The group's context: pass it (or clones) to the tasks. Go: the `ctx` returned by
    /// `errgroup.WithContext`.
    ///
    /// ```
    /// use ctx_core::{Context, Group};
    ///
    /// let group = Group::<String>::new(&Context::background().with_value(42u32));
    /// assert_eq!(group.context().value::<u32>(), Some(&42)); // values flow into the group
    /// ```
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// At most `limit` tasks spawned from now on run at once; the others wait in a queue and
    /// start, in order, as running ones finish. `0` removes the limit. Go: `g.SetLimit(n)`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use ctx_core::{Context, Group};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut group = Group::<()>::new(&Context::background());
    /// group.set_limit(2);
    /// let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    /// for _ in 0..10 {
    ///     let (running, peak) = (running.clone(), peak.clone());
    ///     group.spawn(async move {
    ///         peak.fetch_max(running.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
    ///         tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    ///         running.fetch_sub(1, Ordering::SeqCst);
    ///         Ok(())
    ///     });
    /// }
    /// group.wait().await.unwrap();
    /// assert_eq!(peak.load(Ordering::SeqCst), 2);
    /// # }
    /// ```
    pub fn set_limit(&mut self, limit: usize) {
        self.limit =
            (limit > 0).then(|| Arc::new(Semaphore::new(limit.min(Semaphore::MAX_PERMITS))));
    }

    /// Starts `task` on the current tokio runtime, or queues it if the limit is reached.
    /// Never blocks. Go: `g.Go(f)`.
    ///
    /// # Panics
    ///
    /// Like `tokio::spawn`, when called outside a tokio runtime.
    ///
    /// ```
    /// use ctx_core::{Context, Group};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut group = Group::<String>::new(&Context::background());
    /// for id in 1..=3 {
    ///     group.spawn(async move { if id == 2 { Err(format!("task {id} failed")) } else { Ok(()) } });
    /// }
    /// assert_eq!(group.wait().await, Err("task 2 failed".to_string()));
    /// # }
    /// ```
    pub fn spawn<F>(&mut self, task: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let shared = self.shared.clone();
        let limit = self.limit.clone();
        let ctx = self.ctx.clone();
        self.tasks.spawn(async move {
            let _permit = match limit {
                // The semaphore is never closed, so acquiring cannot fail.
                Some(limit) => limit.acquire_owned().await.ok(),
                None => None,
            };
            if ctx.is_done() {
                return;
            }
            match (CatchUnwind { fut: task }).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => shared.record_error(error),
                Err(payload) => shared.record_panic(payload),
            }
        });
    }

    /// Waits for every task, ends the group's context, and returns the first error. Go:
    /// `g.Wait()`.
    ///
    /// If a task panicked, the panic is resumed here (the first one, even if an error came
    /// before it), after the other tasks were cancelled and have finished.
    ///
    /// ```
    /// use ctx_core::{Context, Group};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut group = Group::<std::io::Error>::new(&Context::background());
    /// let gctx = group.context().clone();
    /// group.spawn(async { Ok(()) });
    /// assert!(group.wait().await.is_ok());
    /// assert!(gctx.is_done()); // wait's return ends the group's context
    /// # }
    /// ```
    pub async fn wait(mut self) -> Result<(), E> {
        while let Some(joined) = self.tasks.join_next().await {
            if let Err(err) = joined
                && err.is_panic()
            {
                // Panics are caught inside the task; this is only a fallback.
                self.shared.record_panic(err.into_panic());
            }
        }
        self.shared.handle.cancel();
        let (error, panic) = {
            let mut outcome = lock(&self.shared.outcome);
            (outcome.error.take(), outcome.panic.take())
        };
        if let Some(payload) = panic {
            resume_unwind(payload);
        }
        error.map_or(Ok(()), Err)
    }
}

impl<E> Drop for Group<E> {
    fn drop(&mut self) {
        self.shared.handle.cancel();
    }
}

impl<E> fmt::Debug for Group<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("context", &self.ctx)
            .field("tasks", &self.tasks.len())
            .finish()
    }
}

pin_project! {
    struct CatchUnwind<F> {
        #[pin]
        fut: F,
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let fut = self.project().fut;
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}
