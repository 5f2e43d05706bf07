use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::done::Done;
use crate::sync::{Arc, AtomicU8, Mutex, Ordering, lock};
use crate::tree::{AfterEntry, AfterRun, Node, NodeRef};

const PENDING: u8 = 0;
const STARTED: u8 = 1;
const STOPPED: u8 = 2;

/// Handle to a function registered with [`Context::after_func`](crate::Context::after_func).
///
/// Go: the `stop` function returned by `context.AfterFunc`. Dropping the handle does *not*
/// stop the function.
///
/// ```
/// use ctx_core::Context;
///
/// let (ctx, handle) = Context::background().with_cancel();
/// let after = ctx.after_func(|| println!("ended"));
/// assert!(after.stop()); // stopped before the context ended: it will never run
/// assert!(!after.stop()); // already stopped
/// handle.cancel();
/// ```
pub struct AfterFunc {
    node: Option<Arc<Node>>,
    key: usize,
    cell: std::sync::Arc<AfterCell>,
}

struct AfterCell {
    state: AtomicU8,
    f: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl AfterRun for AfterCell {
    fn run(&self) {
        if self
            .state
            .compare_exchange(PENDING, STARTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // Started from now on (`stop()` says so), even if it runs a moment later: the end
            // never waits for it, so it runs elsewhere.
            let f = lock(&self.f).take();
            if let Some(f) = f {
                runner::start(f);
            }
        }
    }
}

/// Runs `f`, keeping a panic inside it: the default hook has reported it, and whoever started
/// it and every other after-func carry on.
fn run_caught(f: Box<dyn FnOnce() + Send>) {
    let _ = catch_unwind(AssertUnwindSafe(f));
}

/// Where after-funcs run: never on the thread that ended the context (Go starts each one in a
/// goroutine of its own), so that one that blocks can neither stall nor deadlock the canceller.
///
/// They run on a pool of this crate's own detached threads, not on the blocking pool of the
/// current tokio runtime: a runtime's drop waits for its running blocking tasks (an after-func
/// that blocks would hang the shutdown of whichever runtime happened to cancel, and the end of
/// `#[tokio::main]`), a runtime that shuts down drops the blocking tasks still queued without
/// running them, and there may be no runtime at all.
///
/// The canceller only queues the function (and wakes an idle thread, if there is one). The
/// pool grows from a *keeper* thread, never from the canceller: while functions wait, it checks
/// every [`STUCK`](runner::STUCK) whether the oldest has waited that long without a free thread
/// (every thread is busy, maybe blocked in a function), and then starts one more, up to
/// [`MAX_THREADS`](runner::MAX_THREADS). So a burst of short functions (a subtree of thousands
/// ending) is served by the threads there are, and one that blocks delays the others by about
/// `STUCK`. A worker idle for [`KEEP_ALIVE`](runner::KEEP_ALIVE) ends.
///
/// Under loom the functions run inline: the models check the tree, and the start of a function
/// happens after every lock is released either way.
#[cfg(not(loom))]
mod runner {
    use std::collections::VecDeque;
    use std::sync::{Condvar, Mutex};
    use std::time::{Duration, Instant};

    use super::run_caught;
    use crate::sync::lock;

    type Job = Box<dyn FnOnce() + Send>;

    /// How long a worker waits for work before it ends.
    pub(super) const KEEP_ALIVE: Duration = Duration::from_secs(10);

    /// How long a function may wait for a busy thread before the pool grows for it.
    pub(super) const STUCK: Duration = Duration::from_millis(1);

    /// The room the queue keeps once drained.
    const QUEUE_KEPT: usize = 64;

    /// The most workers the pool runs at once; beyond, functions wait for one to be free.
    pub(super) const MAX_THREADS: usize = 256;

    #[derive(Clone, Copy, PartialEq)]
    enum Keeper {
        /// Not started yet.
        None,
        /// Waiting until functions wait: must be woken.
        Parked,
        /// Watching waiting functions: looks again within `STUCK`.
        Watching,
    }

    struct Pool {
        /// Functions to run, with when each was queued.
        jobs: VecDeque<(Job, Instant)>,
        /// Workers waiting for a job (including one woken that has not taken its job yet).
        idle: usize,
        /// Workers alive.
        workers: usize,
        /// Functions finished so far (wrapping): the keeper's sign of progress.
        finished: u64,
        keeper: Keeper,
    }

    static POOL: Mutex<Pool> = Mutex::new(Pool {
        jobs: VecDeque::new(),
        idle: 0,
        workers: 0,
        finished: 0,
        keeper: Keeper::None,
    });
    /// Workers wait on it for jobs.
    static WORK: Condvar = Condvar::new();
    /// The keeper waits on it for functions that wait.
    static KEEP: Condvar = Condvar::new();

    /// Starts `f` on a thread of the pool, without waiting for it.
    pub(super) fn start(f: Job) {
        let mut pool = lock(&POOL);
        pool.jobs.push_back((f, Instant::now()));
        if pool.jobs.len() <= pool.idle {
            // An idle worker for every queued job, this one included.
            drop(pool);
            WORK.notify_one();
            return;
        }
        match pool.keeper {
            Keeper::Watching => {}
            Keeper::Parked => {
                drop(pool);
                KEEP.notify_one();
            }
            Keeper::None => {
                pool.keeper = Keeper::Watching;
                drop(pool);
                if spawn("ctx-after-func-keeper", keep).is_err() {
                    lock(&POOL).keeper = Keeper::None;
                    run_here();
                }
            }
        }
    }

    fn spawn(name: &str, f: fn()) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(f)
            .map(drop)
    }

    /// No thread can be made (the system is out of them) and none would take the waiting
    /// functions: run them here rather than never.
    #[cold]
    fn run_here() {
        let mut pool = lock(&POOL);
        if pool.workers == 0 {
            let jobs = std::mem::take(&mut pool.jobs);
            drop(pool);
            jobs.into_iter().for_each(|(job, _)| run_caught(job));
        }
    }

    /// The keeper's loop: while functions wait without an idle worker, starts a worker when
    /// there is none, or when the oldest function has waited [`STUCK`] and no function has
    /// finished meanwhile (every worker is busy with a long one, maybe blocked; workers that
    /// keep finishing functions are only slower than the functions come, and more threads
    /// would not help).
    fn keep() {
        let mut pool = lock(&POOL);
        let mut finished = pool.finished;
        loop {
            let waiting = pool.jobs.len() > pool.idle;
            if !waiting {
                pool.keeper = Keeper::Parked;
                pool = KEEP
                    .wait(pool)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                pool.keeper = Keeper::Watching;
                continue;
            }
            let progress = std::mem::replace(&mut finished, pool.finished) != pool.finished;
            let stuck = !progress
                && pool
                    .jobs
                    .front()
                    .is_some_and(|(_, queued)| queued.elapsed() >= STUCK);
            if (pool.workers == 0 || stuck) && pool.workers < MAX_THREADS {
                pool.workers += 1;
                drop(pool);
                if spawn("ctx-after-func", serve).is_err() {
                    lock(&POOL).workers -= 1;
                    run_here();
                }
                pool = lock(&POOL);
                if !stuck {
                    continue;
                }
            }
            pool = KEEP
                .wait_timeout(pool, STUCK)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// A worker's loop: runs queued jobs, waits up to [`KEEP_ALIVE`] for more.
    fn serve() {
        let mut pool = lock(&POOL);
        loop {
            if let Some((job, _)) = pool.jobs.pop_front() {
                // A burst may have grown the queue: give its memory back once it is drained.
                if pool.jobs.is_empty() && pool.jobs.capacity() > QUEUE_KEPT {
                    pool.jobs.shrink_to(QUEUE_KEPT);
                }
                drop(pool);
                run_caught(job);
                pool = lock(&POOL);
                pool.finished = pool.finished.wrapping_add(1);
                continue;
            }
            pool.idle += 1;
            let (woken, wait) = WORK
                .wait_timeout(pool, KEEP_ALIVE)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            pool = woken;
            pool.idle -= 1;
            if wait.timed_out() && pool.jobs.is_empty() {
                pool.workers -= 1;
                return;
            }
        }
    }
}

#[cfg(loom)]
mod runner {
    pub(super) fn start(f: Box<dyn FnOnce() + Send>) {
        super::run_caught(f);
    }
}

impl AfterFunc {
    pub(crate) fn register(node: Option<NodeRef<'_>>, f: Box<dyn FnOnce() + Send>) -> AfterFunc {
        let cell = std::sync::Arc::new(AfterCell {
            state: AtomicU8::new(PENDING),
            f: Mutex::new(Some(f)),
        });
        let Some(node) = node else {
            // A context that never ends: the function can never run.
            return AfterFunc {
                node: None,
                key: 0,
                cell,
            };
        };
        let entry: AfterEntry = cell.clone();
        // Deadlines need no timer until someone waits: an after-func waits, so a deadline gets
        // a task on the current runtime that fires it (one per node and runtime). Without a
        // runtime the function still runs as soon as the deadline is observed (`err()`,
        // `done()`, a derivation) or the context is cancelled.
        let runtime = node
            .deadline()
            .and_then(|_| tokio::runtime::Handle::try_current().ok());
        match node.register_after(entry, runtime.as_ref().map(tokio::runtime::Handle::id)) {
            Ok((key, timer)) => {
                let node = node.to_arc();
                if let (Some(runtime), Some(token)) = (runtime, timer) {
                    let done = Done::new(Some(node.clone()));
                    // The token goes with the task's future: dropped with its runtime, or if it
                    // panics (a runtime without a time driver), the next registration spawns
                    // another.
                    drop(runtime.spawn(async move {
                        let _alive = token;
                        done.await;
                    }));
                }
                AfterFunc {
                    node: Some(node),
                    key,
                    cell,
                }
            }
            Err(entry) => {
                // Already ended: run it now (no lock is held here).
                entry.run();
                AfterFunc {
                    node: None,
                    key: 0,
                    cell,
                }
            }
        }
    }

    /// Stops the function from running. Go: `stop()`.
    ///
    /// Returns `true` if this call stopped it, so that it will never run; `false` if it has
    /// already started (or finished) or was already stopped. It starts when the context ends
    /// (that end hands it to another thread), so once the end has returned, `stop()` returns
    /// `false` even if the function has not begun to execute yet. May be called any number of
    /// times, from any thread.
    pub fn stop(&self) -> bool {
        let stopped = self
            .cell
            .state
            .compare_exchange(PENDING, STOPPED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if stopped {
            if let Some(node) = &self.node {
                let entry: AfterEntry = self.cell.clone();
                node.remove_after(self.key, &entry);
            }
            // Release what the function captured now, not when the handle is dropped.
            let f = lock(&self.cell.f).take();
            drop(f);
        }
        stopped
    }
}

impl fmt::Debug for AfterFunc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.cell.state.load(Ordering::Acquire) {
            PENDING => "pending",
            STARTED => "started",
            _ => "stopped",
        };
        f.debug_struct("AfterFunc").field("state", &state).finish()
    }
}
