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
//! never woken), a leaked `Arc` or a data race.
#![cfg(loom)]

use std::sync::atomic::{AtomicUsize, Ordering};

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
