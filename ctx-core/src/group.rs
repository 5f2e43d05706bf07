use std::any::Any;
use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Duration;

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
    /// How many tasks were given to `spawn` and `try_spawn`: the next one's number.
    spawned: usize,
}

/// Makes a cause of a task's error.
type ToCause<E> = fn(&E) -> Box<dyn std::error::Error + Send + Sync>;

struct Shared<E> {
    handle: CancelHandle,
    outcome: Mutex<Outcome<E>>,
    /// Makes the group's cause of a task's error: the error itself (see [`Group::with_cause`]),
    /// or, when `None`, a text that says a task failed.
    to_cause: Option<ToCause<E>>,
    /// The numbers of the tasks whose body is running.
    running: Mutex<BTreeSet<usize>>,
}

struct Outcome<E> {
    error: Option<E>,
    panic: Option<Box<dyn Any + Send>>,
}

impl<E> Shared<E> {
    fn record_error(&self, error: E) {
        // The cause is made (user code: a clone) outside the lock, and only for what is
        // likely the first error.
        let first = lock(&self.outcome).error.is_none();
        let cause = self
            .to_cause
            .filter(|_| first)
            .map(|to_cause| to_cause(&error));
        let rejected = keep_first(&mut lock(&self.outcome).error, error);
        let kept = rejected.is_none();
        drop(rejected);
        match cause {
            Some(cause) if kept => self.handle.cancel_with_cause(cause),
            _ => self.handle.cancel_with_cause("a task of the group failed"),
        }
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

/// What [`Group::shutdown`] found: the group's outcome, and the tasks that had to be aborted.
///
/// ```
/// use std::time::Duration;
/// use ctx_core::{Context, Group};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let mut group = Group::<String>::new(&Context::background());
/// group.spawn(std::future::pending()); // never stops on its own
/// group.spawn(async {
///     tokio::time::sleep(Duration::from_millis(10)).await;
///     Err("flush failed".to_string())
/// });
/// tokio::task::yield_now().await; // both have started
/// let report = group.shutdown(Duration::from_millis(100)).await;
/// assert_eq!(report.result, Err("flush failed".to_string()));
/// assert_eq!(report.overran, vec![0]);
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Shutdown<E> {
    /// The first error a task returned, as [`Group::wait`] would return it.
    pub result: Result<(), E>,
    /// The tasks that were still running when the grace period ended, and were aborted: their
    /// numbers, from 0, in the order they were given to [`spawn`](Group::spawn) and
    /// [`try_spawn`](Group::try_spawn) (a queued task that never started is not among them).
    pub overran: Vec<usize>,
}

impl<E: std::error::Error + Clone + Send + Sync + 'static> Group<E> {
    /// A group whose context, when a task's error ends it, has that error as its
    /// [`cause()`](Context::cause): `cause.downcast_ref::<E>()` finds it. Go: errgroup cancels
    /// its context with the error as the cause.
    ///
    /// Rust cannot tell inside [`new`](Group::new) whether an `E` is an error type (that takes
    /// specialization), so a group that wants its error as the cause says so by being made
    /// here; `new` accepts any `E` and gives the cause "a task of the group failed".
    ///
    /// ```
    /// use ctx_core::{Context, Group};
    ///
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct NotFound(u32);
    /// impl std::fmt::Display for NotFound {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    ///         write!(f, "album {} not found", self.0)
    ///     }
    /// }
    /// impl std::error::Error for NotFound {}
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut group = Group::with_cause(&Context::background());
    /// let gctx = group.context().clone();
    /// group.spawn(async { Err(NotFound(7)) });
    /// assert_eq!(group.wait().await, Err(NotFound(7)));
    /// let cause = gctx.cause().unwrap();
    /// assert_eq!(cause.downcast_ref::<NotFound>(), Some(&NotFound(7)));
    /// # }
    /// ```
    pub fn with_cause(parent: &Context) -> Group<E> {
        Group::make(parent, Some(|error: &E| Box::new(error.clone())))
    }
}

impl<E: Send + 'static> Group<E> {
    /// A group whose context is a new child of `parent`.
    ///
    /// When a task's error ends the group's context, its [`cause()`](Context::cause) says "a
    /// task of the group failed"; make the group with [`with_cause`](Group::with_cause) to have
    /// the error itself as the cause.
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
        Group::make(parent, None)
    }

    fn make(parent: &Context, to_cause: Option<ToCause<E>>) -> Group<E> {
        let (ctx, handle) = parent.with_cancel();
        Group {
            ctx,
            shared: Arc::new(Shared {
                handle,
                outcome: Mutex::new(Outcome {
                    error: None,
                    panic: None,
                }),
                to_cause,
                running: Mutex::new(BTreeSet::new()),
            }),
            tasks: JoinSet::new(),
            limit: None,
            spawned: 0,
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
        let slot = match &self.limit {
            Some(limit) => Slot::Wait(limit.clone()),
            None => Slot::Free(None),
        };
        self.start(task, slot);
    }

    /// Starts `task` only if it can run now: there is no limit, or a slot is free (no task is
    /// queued for one), and the group's context has not ended. Says whether it started it.
    /// Never blocks, never queues. Go: `g.TryGo(f)`.
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
    /// let mut group = Group::<()>::new(&Context::background());
    /// group.set_limit(1);
    /// let (release, wait) = tokio::sync::oneshot::channel::<()>();
    /// assert!(group.try_spawn(async move { let _ = wait.await; Ok(()) }));
    /// assert!(!group.try_spawn(async { Ok(()) })); // the one slot is taken
    /// release.send(()).unwrap();
    /// group.wait().await.unwrap();
    /// # }
    /// ```
    pub fn try_spawn<F>(&mut self, task: F) -> bool
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        if self.ctx.is_done() {
            return false;
        }
        let permit = match &self.limit {
            Some(limit) => match limit.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => return false,
            },
            None => None,
        };
        self.start(task, Slot::Free(permit));
        true
    }

    fn start<F>(&mut self, task: F, slot: Slot)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let shared = self.shared.clone();
        let ctx = self.ctx.clone();
        let number = self.spawned;
        self.spawned += 1;
        self.tasks.spawn(async move {
            let _permit = match slot {
                // The semaphore is never closed, so acquiring cannot fail.
                Slot::Wait(limit) => limit.acquire_owned().await.ok(),
                Slot::Free(permit) => permit,
            };
            if ctx.is_done() {
                return;
            }
            let _running = Running::new(&shared, number);
            match (CatchUnwind { fut: task }).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => shared.record_error(error),
                Err(payload) => shared.record_panic(payload),
            }
        });
    }

    /// Ends the group's context, waits at most `grace` for the tasks to finish, and aborts the
    /// ones still running then; reports which those were, and the first error. For a server's
    /// shutdown: the tasks are told at once (through the context) and given a bounded time to
    /// stop on their own.
    ///
    /// The context is ended with the cause "the group is shutting down" (unless a task's
    /// error or a panic ended it first). An aborted task is dropped at its `.await`. A panic
    /// is resumed here, as by [`wait`](Group::wait), once every task has finished or been
    /// aborted.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctx_core::{Context, Group};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut group = Group::<String>::new(&Context::background());
    /// let gctx = group.context().clone();
    /// // Task 0 stops when told; task 1 ignores its context and would take an hour.
    /// group.spawn(async move { gctx.done().await; Ok(()) });
    /// group.spawn(async { tokio::time::sleep(Duration::from_secs(3600)).await; Ok(()) });
    /// tokio::task::yield_now().await; // both have started
    ///
    /// let report = group.shutdown(Duration::from_secs(5)).await;
    /// assert_eq!(report.result, Ok(()));
    /// assert_eq!(report.overran, vec![1]); // aborted after the 5 s of grace
    /// # }
    /// ```
    pub async fn shutdown(mut self, grace: Duration) -> Shutdown<E> {
        self.shared
            .handle
            .cancel_with_cause("the group is shutting down");
        let tasks = &mut self.tasks;
        let shared = &self.shared;
        let drained = tokio::time::timeout(grace, async {
            while let Some(joined) = tasks.join_next().await {
                shared.resumed_panic(joined);
            }
        })
        .await
        .is_ok();
        let mut overran = Vec::new();
        if !drained {
            overran.extend(lock(&self.shared.running).iter().copied());
            self.tasks.abort_all();
            while let Some(joined) = self.tasks.join_next().await {
                self.shared.resumed_panic(joined);
            }
        }
        Shutdown {
            result: self.outcome(),
            overran,
        }
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
            self.shared.resumed_panic(joined);
        }
        self.outcome()
    }

    /// Ends the group's context, then resumes the first panic or returns the first error.
    fn outcome(&self) -> Result<(), E> {
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

impl<E> Shared<E> {
    /// Records a task's panic that escaped it (panics are caught inside the task; this is
    /// only a fallback). An aborted task's end is no panic.
    fn resumed_panic(&self, joined: Result<(), tokio::task::JoinError>) {
        if let Err(err) = joined
            && err.is_panic()
        {
            self.record_panic(err.into_panic());
        }
    }
}

/// Where a task gets its slot under the limit: waits for one, or was given one (or needs none).
enum Slot {
    Wait(Arc<Semaphore>),
    Free(Option<OwnedSemaphorePermit>),
}

/// Marks a task's body as running, for [`Group::shutdown`]'s report.
struct Running<'a> {
    running: &'a Mutex<BTreeSet<usize>>,
    number: usize,
}

impl<'a> Running<'a> {
    fn new<E>(shared: &'a Shared<E>, number: usize) -> Running<'a> {
        lock(&shared.running).insert(number);
        Running {
            running: &shared.running,
            number,
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        lock(self.running).remove(&self.number);
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
