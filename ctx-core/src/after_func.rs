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
            let f = lock(&self.f).take();
            if let Some(f) = f {
                // A panic stays inside the after-func: the default hook has reported it, and
                // the canceller and every other after-func carry on.
                let _ = catch_unwind(AssertUnwindSafe(f));
            }
        }
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
    /// already started (or finished) or was already stopped. May be called any number of times,
    /// from any thread.
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
