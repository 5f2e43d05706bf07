//! loom models of the cancellation tree: every interleaving of the racing operations, with
//! loom's `Arc`, `Mutex` and atomics in place of std's (see `src/sync.rs`).
//!
//! Run with:
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" cargo test -p ctx-core --no-default-features --release --test loom
//! ```
//!
//! No model uses a deadline: deadlines read tokio's clock, which loom does not model. Each model
//! checks its invariant after every interleaving; loom also fails a model on a deadlock (a waiter
//! never woken), a leaked `Arc` or a data race. The last models cover the lazy child of a
//! `#[cancellable]` call (`ctx_core::__private_0_1_0::Lazy`): threads racing to make its node. (Its
//! node racing the `Lazy`'s drop cannot happen: the drop needs every borrow of the child to have
//! ended, which the borrow checker enforces.)
#![cfg(loom)]

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ctx_core::__private_0_1_0::Lazy;
use ctx_core::{Context, Error};
use loom::sync::Arc;
use loom::thread;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

#[test]
fn cancel_racing_a_new_child_ends_the_child() {
    model(|| {
        let (parent, handle) = Context::background().with_cancel();
        let deriver = thread::spawn(move || {
            let (child, child_handle) = parent.with_cancel();
            (child, child_handle)
        });
        handle.cancel();
        let (child, _child_handle) = deriver.join().unwrap();
        assert_eq!(child.err(), Some(Error::Canceled));
    });
}

#[test]
fn two_cancels_racing_agree_on_one_reason_everywhere() {
    model(|| {
        let (parent, handle) = Context::background().with_cancel();
        let (child, _child_handle) = parent.with_cancel();
        let handle = Arc::new(handle);
        let other = {
            let (handle, child) = (handle.clone(), child.clone());
            thread::spawn(move || {
                handle.cancel_with_cause("b");
                // A cancel that lost the race still returns only once the subtree has ended.
                assert!(child.is_done());
            })
        };
        handle.cancel_with_cause("a");
        assert!(child.is_done());
        other.join().unwrap();
        let parent_cause = parent.cause().unwrap().to_string();
        assert_eq!(child.cause().unwrap().to_string(), parent_cause);
        assert!(parent_cause == "a" || parent_cause == "b");
    });
}

#[test]
fn a_child_dropped_while_its_parent_cancels() {
    model(|| {
        let (parent, handle) = Context::background().with_cancel();
        let (child, child_handle) = parent.with_cancel();
        let (grandchild, grandchild_handle) = child.with_cancel();
        let dropper = thread::spawn(move || {
            drop(child_handle);
            drop(child);
        });
        handle.cancel();
        assert_eq!(grandchild.err(), Some(Error::Canceled));
        dropper.join().unwrap();
        drop(grandchild_handle);
        // loom fails the model if any node (a loom `Arc`) is leaked.
    });
}

#[test]
fn a_done_waiter_is_woken_by_a_racing_cancel() {
    model(|| {
        let (ctx, handle) = Context::background().with_cancel();
        let waiter = thread::spawn(move || loom::future::block_on(ctx.done()));
        handle.cancel();
        // A lost wake-up would leave the waiter blocked: loom reports that as a deadlock.
        assert_eq!(waiter.join().unwrap(), Error::Canceled);
    });
}

#[test]
fn a_done_waiter_of_a_child_is_woken_by_the_parents_cancel() {
    model(|| {
        let (parent, handle) = Context::background().with_cancel();
        let (child, _child_handle) = parent.with_cancel();
        let waiter = thread::spawn(move || loom::future::block_on(child.done()));
        drop(handle);
        assert_eq!(waiter.join().unwrap(), Error::Canceled);
    });
}

#[test]
fn a_leaf_with_a_waiter_and_an_after_func_ended_by_itself_and_its_parent_at_once() {
    // The leaf's own cancel ends it without the walk (nobody below it), the parent's through
    // its walk: whichever wins, the waiter is woken once, the after-func runs once, and both
    // cancels return with the leaf ended.
    model(|| {
        let (parent, handle) = Context::background().with_cancel();
        let (child, child_handle) = parent.with_cancel();
        let ran = std::sync::Arc::new(AtomicUsize::new(0));
        let _after = {
            let ran = ran.clone();
            child.after_func(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            })
        };
        let waiter = {
            let child = child.clone();
            thread::spawn(move || loom::future::block_on(child.done()))
        };
        let own = thread::spawn(move || {
            child_handle.cancel_with_cause("its own");
        });
        handle.cancel();
        assert_eq!(child.err(), Some(Error::Canceled));
        own.join().unwrap();
        assert_eq!(waiter.join().unwrap(), Error::Canceled);
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        let cause = child.cause().unwrap().to_string();
        assert!(
            cause == "its own" || cause == Error::Canceled.to_string(),
            "{cause}"
        );
    });
}

#[test]
fn stop_racing_the_cancel_runs_exactly_once_or_stops_never_both() {
    model(|| {
        let (ctx, handle) = Context::background().with_cancel();
        let ran = std::sync::Arc::new(AtomicUsize::new(0));
        let after = {
            let ran = ran.clone();
            ctx.after_func(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            })
        };
        let canceller = thread::spawn(move || handle.cancel());
        let stopped = after.stop();
        canceller.join().unwrap();
        let ran = ran.load(Ordering::SeqCst);
        assert!(ran <= 1);
        assert!(stopped ^ (ran == 1), "stopped = {stopped}, ran = {ran}");
    });
}

#[test]
fn a_child_cancelling_itself_while_the_parent_cancels() {
    model(|| {
        let (parent, handle) = Context::background().with_cancel();
        let (child, child_handle) = parent.with_cancel();
        let (grandchild, _grandchild_handle) = child.with_cancel();
        let other = thread::spawn(move || {
            child_handle.cancel_with_cause("child");
            assert!(grandchild.is_done());
            grandchild
        });
        handle.cancel_with_cause("parent");
        let grandchild = other.join().unwrap();
        // Whichever end reached the child first decided for the grandchild too.
        assert_eq!(
            grandchild.cause().unwrap().to_string(),
            child.cause().unwrap().to_string()
        );
        assert_eq!(parent.cause().unwrap().to_string(), "parent");
    });
}

/// The lazy child of a `#[cancellable]` call (`__private_0_1_0::Lazy`), shared with other threads.
/// loom's threads need `'static`, so the parent and the `Lazy` are leaked boxes, given back (the
/// `Lazy` first, which ends its node, then the parent) by `end`.
struct SharedLazy {
    parent: *mut Context,
    lazy: *mut Lazy<'static>,
    ctx: &'static Context,
}

impl SharedLazy {
    /// A lazy child of `parent` with that timeout. (Deadlines read tokio's clock, which loom
    /// does not model: only a deadline that never passes, or none (`Duration::MAX`), is
    /// deterministic.)
    fn new(parent: Context, timeout: Duration) -> SharedLazy {
        let parent = Box::into_raw(Box::new(parent));
        // SAFETY: leaked above; freed only by `end`, after every user of the child.
        let parent_ref: &'static Context = unsafe { &*parent };
        SharedLazy::below(parent, parent_ref, timeout)
    }

    /// A lazy child of another one's context (nested `#[cancellable]` calls).
    fn nested(outer: &SharedLazy) -> SharedLazy {
        SharedLazy::below(std::ptr::null_mut(), outer.ctx, Duration::MAX)
    }

    fn below(parent: *mut Context, parent_ref: &'static Context, timeout: Duration) -> SharedLazy {
        let lazy = Box::leak(Box::new(Lazy::timeout(parent_ref, timeout)));
        let lazy_ptr: *mut Lazy<'static> = lazy;
        // SAFETY: a leaked box never moves; it is dropped in place by `end`.
        let ctx = Lazy::context(unsafe { Pin::new_unchecked(&mut *lazy_ptr) });
        SharedLazy {
            parent,
            lazy: lazy_ptr,
            ctx,
        }
    }

    /// Drops the `Lazy` (the call returns), then the parent it borrowed, if it owns it.
    ///
    /// # Safety
    ///
    /// Nothing uses `ctx` any more, and the children made with `nested` were ended first.
    unsafe fn end(self) {
        // SAFETY: the caller's word; both came from `Box::into_raw`/`Box::leak`.
        unsafe {
            drop(Box::from_raw(self.lazy));
            if !self.parent.is_null() {
                drop(Box::from_raw(self.parent));
            }
        }
    }
}

// SAFETY: `ctx` is a `&Context` (`Context: Sync`); the raw pointers are only used by `end`, on
// the thread that made them.
unsafe impl Send for SharedLazy {}
// SAFETY: as for `Send`.
unsafe impl Sync for SharedLazy {}

#[test]
fn two_threads_make_one_node_for_a_lazy_child() {
    model(|| {
        let (parent, handle) = Context::background().with_cancel();
        let lazy = Arc::new(SharedLazy::new(parent, Duration::MAX));
        let other = {
            let lazy = lazy.clone();
            thread::spawn(move || lazy.ctx.clone())
        };
        let mine = lazy.ctx.clone();
        let theirs = other.join().unwrap();
        // Both are the installed node: the loser's was ended when it lost.
        assert_eq!(mine.err(), None);
        assert_eq!(theirs.err(), None);
        let lazy = Arc::try_unwrap(lazy).ok().unwrap();
        // SAFETY: the other thread has finished; nothing else uses the child.
        unsafe { lazy.end() };
        // The call returned: its context ended, in every clone.
        assert_eq!(mine.err(), Some(Error::Canceled));
        assert_eq!(theirs.err(), Some(Error::Canceled));
        drop(handle);
        // loom fails the model if a node (the loser's included) is leaked.
    });
}

#[test]
fn two_threads_make_the_nodes_of_nested_lazy_children() {
    model(|| {
        let (parent, handle) = Context::background().with_cancel();
        let outer = SharedLazy::new(parent, Duration::MAX);
        let inner = Arc::new(SharedLazy::nested(&outer));
        let outer = Arc::new(outer);
        // One thread makes the inner child's node (and so the outer's first), the other the
        // outer's.
        let other = {
            let outer = outer.clone();
            thread::spawn(move || outer.ctx.clone())
        };
        let inner_clone = inner.ctx.clone();
        let outer_clone = other.join().unwrap();
        assert_eq!(inner_clone.err(), None);
        assert_eq!(outer_clone.err(), None);
        // The parent's cancel reaches both through the tree.
        handle.cancel_with_cause("parent");
        assert_eq!(inner_clone.err(), Some(Error::Canceled));
        assert_eq!(inner_clone.cause().unwrap().to_string(), "parent");
        assert_eq!(outer_clone.cause().unwrap().to_string(), "parent");
        let inner = Arc::try_unwrap(inner).ok().unwrap();
        // SAFETY: nothing uses the inner child any more.
        unsafe { inner.end() };
        let outer = Arc::try_unwrap(outer).ok().unwrap();
        // SAFETY: the other thread has finished and the inner child is gone.
        unsafe { outer.end() };
    });
}

#[test]
fn a_lazy_childs_clone_racing_its_parents_cancel() {
    model(|| {
        let (parent, handle) = Context::background().with_cancel();
        let lazy = Arc::new(SharedLazy::new(parent, Duration::MAX));
        let other = {
            let lazy = lazy.clone();
            thread::spawn(move || lazy.ctx.clone())
        };
        handle.cancel();
        // Whether the clone was made before or after the cancel, it has ended with it.
        let clone = other.join().unwrap();
        assert_eq!(clone.err(), Some(Error::Canceled));
        assert_eq!(lazy.ctx.err(), Some(Error::Canceled));
        let lazy = Arc::try_unwrap(lazy).ok().unwrap();
        // SAFETY: the other thread has finished; nothing else uses the child.
        unsafe { lazy.end() };
    });
}

#[test]
fn a_lazy_child_watching_its_parent_racing_the_parents_cancel() {
    model(|| {
        let (parent, handle) = Context::background().with_cancel();
        // A deadline of its own, far away: the child watches its parent (the parent's cancel
        // records when it happened), unless the parent has already ended, and then its node
        // is made at once.
        let maker = thread::spawn(move || {
            let lazy = SharedLazy::new(parent, Duration::from_secs(3600));
            let seen = lazy.ctx.err();
            (lazy, seen)
        });
        handle.cancel_with_cause("parent");
        let (lazy, seen) = maker.join().unwrap();
        assert!(seen.is_none() || seen == Some(Error::Canceled));
        // Whichever came first, the child has ended with its parent, cause included, and so
        // has a clone of it.
        assert_eq!(lazy.ctx.err(), Some(Error::Canceled));
        assert_eq!(lazy.ctx.cause().unwrap().to_string(), "parent");
        assert_eq!(lazy.ctx.clone().cause().unwrap().to_string(), "parent");
        // SAFETY: the other thread has finished; nothing else uses the child.
        unsafe { lazy.end() };
    });
}

#[test]
fn a_merge_racing_the_other_parents_cancel_ends_with_it() {
    model(|| {
        let (first, _first_handle) = Context::background().with_cancel();
        let (second, second_handle) = Context::background().with_cancel();
        let canceller = thread::spawn(move || second_handle.cancel_with_cause("second"));
        let (merged, merged_handle) = first.merge(&second);
        canceller.join().unwrap();
        assert_eq!(merged.err(), Some(Error::Canceled));
        assert_eq!(merged.cause().unwrap().to_string(), "second");
        assert!(!first.is_done());
        // Whatever the interleaving, no entry is left: an entry kept in `second` with `merged`
        // keeping `second` would be a reference cycle, which loom reports as a leak.
        drop((merged, merged_handle));
    });
}

#[test]
fn a_merge_racing_both_parents_cancels() {
    model(|| {
        let (first, first_handle) = Context::background().with_cancel();
        let (second, second_handle) = Context::background().with_cancel();
        let a = thread::spawn(move || first_handle.cancel_with_cause("first"));
        let b = thread::spawn(move || second_handle.cancel_with_cause("second"));
        let (merged, _merged_handle) = first.merge(&second);
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(merged.err(), Some(Error::Canceled));
        let cause = merged.cause().unwrap().to_string();
        assert!(cause == "first" || cause == "second", "{cause}");
    });
}

#[test]
fn a_merged_child_dropped_while_its_second_parent_cancels() {
    model(|| {
        let (first, _first_handle) = Context::background().with_cancel();
        let (second, second_handle) = Context::background().with_cancel();
        let (merged, merged_handle) = first.merge(&second);
        let (below, _below_handle) = merged.with_cancel();
        let dropper = thread::spawn(move || drop((merged, merged_handle)));
        second_handle.cancel();
        dropper.join().unwrap();
        assert!(below.is_done());
        assert!(!first.is_done());
    });
}

#[test]
fn both_parents_of_a_merged_child_cancel_at_once() {
    model(|| {
        let (first, first_handle) = Context::background().with_cancel();
        let (second, second_handle) = Context::background().with_cancel();
        let (merged, _merged_handle) = first.merge(&second);
        let (below, _below_handle) = merged.with_cancel();
        let other = thread::spawn(move || second_handle.cancel_with_cause("second"));
        first_handle.cancel_with_cause("first");
        other.join().unwrap();
        // One of the two ends reached the merged child first, and its subtree agrees.
        let cause = merged.cause().unwrap().to_string();
        assert_eq!(below.cause().unwrap().to_string(), cause);
        assert_eq!(below.origin(), merged.origin());
    });
}
