//! Rule 4 of ctx-core's docs (a dropped child leaves nothing behind), measured with a counting
//! global allocator (this binary's own): dropped children
//! and dropped `Done`s leave nothing behind, a long-lived parent that sees ten million
//! short-lived children holds constant memory, and a live child costs at most 256 bytes.
//!
//! The checks share one allocator, so they run one after the other in a single test: any other
//! thread of the test harness that allocates during a measurement (a panic message, captured
//! output) would be counted.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::task::{Context as TaskContext, Waker};
use std::time::Duration;

use ctx_core::{CancelHandle, Context, Error, cancellable};

mod support;

use support::counting_alloc::{ALLOCATIONS, live};

/// Runs `f` and returns how many live bytes it left behind.
fn leaked_by(f: impl FnOnce()) -> isize {
    let before = live();
    f();
    live() - before
}

fn poll_once(fut: impl Future) {
    let mut fut = pin!(fut);
    let mut cx = TaskContext::from_waker(Waker::noop());
    assert!(fut.as_mut().poll(&mut cx).is_pending());
}

/// Polls `fut` once, which must complete it.
fn poll_ready<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = TaskContext::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("the future is pending"),
    }
}

const TEN_MILLION: usize = 10_000_000;

fn a_long_lived_parent_with_ten_million_short_lived_children_holds_constant_memory() {
    let (parent, _handle) = Context::background().with_cancel();
    // A long-lived sibling keeps the parent's child list in use the whole time.
    let (_sibling, _sibling_handle) = parent.with_cancel();
    let churn = |n: usize| {
        for i in 0..n {
            let (child, handle) = parent.with_cancel();
            if i % 2 == 0 {
                drop(handle); // cancelled, then dropped
                drop(child);
            } else {
                drop(child); // dropped context first, then the handle
                drop(handle);
            }
        }
    };
    churn(1_000);
    let warm = live();
    churn(TEN_MILLION);
    let after = live();
    assert!(after - warm <= 0, "grew by {} bytes", after - warm);
    assert!(!parent.is_done());
}

fn ten_million_merges_of_two_long_lived_parents_hold_constant_memory() {
    // A merged context is a child of both parents: dropping it must leave nothing in either.
    let (first, _first_handle) = Context::background().with_cancel();
    let (second, _second_handle) = Context::background().with_timeout(Duration::from_hours(1));
    // Long-lived siblings keep both parents' lists in use the whole time.
    let (_sibling, _sibling_handle) = first.merge(&second);
    let churn = |n: usize| {
        for i in 0..n {
            let (merged, handle) = first.merge(&second);
            match i % 3 {
                0 => drop((handle, merged)), // cancelled by the drop, then dropped
                1 => drop((merged, handle)), // the context first, then the handle
                _ => {
                    // A child below it, ended by the merged node's end.
                    let (child, _h) = merged.with_cancel();
                    handle.cancel();
                    assert!(child.is_done());
                }
            }
        }
    };
    churn(1_000);
    let warm = live();
    churn(TEN_MILLION);
    let after = live();
    assert!(after - warm <= 0, "grew by {} bytes", after - warm);
    assert!(!first.is_done() && !second.is_done());
}

fn dropped_done_futures_polled_or_not_leave_nothing() {
    let (ctx, _handle) = Context::background().with_timeout(Duration::from_secs(3600));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    // Warm up: the waiter slab reaches its steady size.
    rt.block_on(async { poll_once(ctx.done()) });
    let leaked = leaked_by(|| {
        rt.block_on(async {
            for i in 0..100_000 {
                if i % 2 == 0 {
                    poll_once(ctx.done());
                } else {
                    drop(ctx.done());
                }
            }
        });
    });
    assert!(leaked <= 0, "leaked {leaked} bytes");
}

fn a_polled_done_on_a_child_leaves_nothing_once_the_child_is_dropped() {
    let (parent, _handle) = Context::background().with_cancel();
    let leaked = leaked_by(|| {
        for _ in 0..10_000 {
            let (child, handle) = parent.with_cancel();
            poll_once(child.done());
            drop((child, handle));
        }
    });
    assert!(leaked <= 0, "leaked {leaked} bytes");
}

fn stopped_after_funcs_leave_nothing() {
    let (ctx, _handle) = Context::background().with_cancel();
    let _ = ctx.after_func(|| {}).stop();
    let leaked = leaked_by(|| {
        for _ in 0..100_000 {
            let after = ctx.after_func(|| {});
            assert!(after.stop());
        }
    });
    assert!(leaked <= 0, "leaked {leaked} bytes");
}

/// What the threads that run after-funcs keep while they live (their handles and names, the
/// queue's buffer): bounded by the number of threads, not by the number of functions run. A
/// byte left per context below would be 100,000 bytes.
const AFTER_FUNC_THREADS_SLACK: isize = 64 * 1024;

fn timeouts_and_values_leave_nothing_once_dropped() {
    let (parent, _handle) = Context::background().with_cancel();
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let leaked = leaked_by(|| {
        for i in 0..100_000u64 {
            let (child, handle) = parent.with_value(i).with_timeout(Duration::from_secs(5));
            let (grandchild, _h) = child.with_timeout_cause(Duration::from_secs(1), "cause");
            let ran = ran.clone();
            let _ = grandchild.after_func(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            });
            drop(handle);
            assert!(grandchild.is_done());
        }
        // The functions run on other threads: wait until each has run and let go of what it
        // held.
        while std::sync::Arc::strong_count(&ran) > 1 {
            std::thread::yield_now();
        }
    });
    assert_eq!(ran.load(Ordering::SeqCst), 100_000);
    println!("after-func threads keep {leaked} bytes");
    assert!(leaked <= AFTER_FUNC_THREADS_SLACK, "leaked {leaked} bytes");
}

fn background_allocates_nothing() {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let ctx = Context::background();
    let clone = ctx.clone();
    let _ = (ctx.err(), clone.is_done(), ctx.deadline(), Context::todo());
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst) - before, 0);
}

fn a_live_child_costs_at_most_256_bytes_with_its_entry_in_the_parent() {
    const CHILDREN: usize = 100_000;
    let (parent, _handle) = Context::background().with_cancel();
    let mut kept: Vec<(Context, CancelHandle)> = Vec::with_capacity(CHILDREN);
    let allocs_before = ALLOCATIONS.load(Ordering::SeqCst);
    let before = live();
    for _ in 0..CHILDREN {
        kept.push(parent.with_cancel());
    }
    let per_child = (live() - before) as f64 / CHILDREN as f64;
    let allocs = (ALLOCATIONS.load(Ordering::SeqCst) - allocs_before) as f64 / CHILDREN as f64;
    println!(
        "live bytes per child (node + entry in the parent): {per_child:.1}, allocations: {allocs:.2}"
    );
    assert!(per_child <= 256.0, "{per_child} bytes per child");
    // The performance goal: one node of 96 bytes plus an 8-byte slot in the parent's list,
    // whose capacity doubles as it grows.
    assert!(per_child <= 112.0, "{per_child} bytes per child");

    // A chain: every node is some node's only child, kept inline in the parent.
    let mut chain = Vec::with_capacity(CHILDREN);
    let before = live();
    let mut ctx = parent.clone();
    for _ in 0..CHILDREN {
        let (child, handle) = ctx.with_cancel();
        chain.push(handle);
        ctx = child;
    }
    let per_link = (live() - before) as f64 / CHILDREN as f64;
    println!("live bytes per context in a chain: {per_link:.1}");
    assert!(per_link <= 96.0, "{per_link} bytes per context in a chain");
}

fn deriving_is_one_allocation_and_ending_without_a_cause_allocates_nothing() {
    let (parent, _handle) = Context::background().with_cancel();
    // Warm the parent's child list.
    drop(parent.with_cancel());
    for (name, parent) in [
        ("background", Context::background()),
        ("a live parent", parent),
    ] {
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        let (child, handle) = parent.with_cancel();
        let derived = ALLOCATIONS.load(Ordering::SeqCst) - before;
        handle.cancel();
        let ended = ALLOCATIONS.load(Ordering::SeqCst) - before - derived;
        drop((child, handle));
        assert_eq!(derived, 1, "allocations to derive from {name}");
        assert_eq!(ended, 0, "allocations to cancel a child of {name}");
    }
}

fn the_first_waiter_is_one_allocation_and_a_small_tree_ends_without_allocating() {
    // One waiter on a context: its registration allocates the node's extra state only (the
    // first waker is kept inline there); ending wakes it and allocates nothing.
    let (ctx, handle) = Context::background().with_cancel();
    let mut done = pin!(ctx.done());
    let mut cx = TaskContext::from_waker(Waker::noop());
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    assert!(done.as_mut().poll(&mut cx).is_pending());
    let registered = ALLOCATIONS.load(Ordering::SeqCst) - before;
    handle.cancel();
    let ended = ALLOCATIONS.load(Ordering::SeqCst) - before - registered;
    assert_eq!(registered, 1, "allocations to register the first waiter");
    assert_eq!(ended, 0, "allocations to end a context with one waiter");
    assert_eq!(poll_ready(done), Error::Canceled);

    // A chain ten deep below a root: the cancel's walk keeps its work on the call stack.
    let (root, root_handle) = Context::background().with_cancel();
    let mut handles = Vec::with_capacity(10);
    let mut ctx = root.clone();
    for _ in 0..10 {
        let (child, handle) = ctx.with_cancel();
        handles.push(handle);
        ctx = child;
    }
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    root_handle.cancel();
    assert_eq!(
        ALLOCATIONS.load(Ordering::SeqCst) - before,
        0,
        "allocations to end a chain of 10"
    );
    assert_eq!(ctx.err(), Some(Error::Canceled));
}

/// A body that is ready at once and looks at its context without keeping it.
#[cancellable(timeout = "5s")]
async fn ready_within_5s(x: u64) -> u64 {
    let seen = (ctx.err(), ctx.is_done(), ctx.deadline(), ctx.value::<u64>());
    assert!(seen.0.is_none() && !seen.1 && seen.2.is_some());
    x + seen.3.copied().unwrap_or(0)
}

/// The same behind another `#[cancellable]` call: the inner child's parent is a lazy child too.
#[cancellable(timeout = "1h")]
async fn ready_nested(x: u64) -> Result<u64, Error> {
    ready_within_5s(ctx, x).await
}

#[cancellable(deadline = at)]
async fn ready_until(at: tokio::time::Instant) -> bool {
    ctx.deadline() == Some(at)
}

fn a_cancellable_call_whose_body_is_ready_allocates_nothing() {
    let background = Context::background();
    let with_value = background.with_value(1u64);
    // A parent that can be cancelled, with no deadline, a later one, or an earlier one (then
    // the child's end is the parent's).
    let (live, _live_handle) = background.with_cancel();
    let (later, _later_handle) = background.with_timeout(Duration::from_secs(3600));
    let (sooner, _sooner_handle) = background.with_timeout(Duration::from_secs(1));
    let at = tokio::time::Instant::now() + Duration::from_secs(60);
    // Warm up (the clock's first reading, thread-locals).
    poll_ready(ready_within_5s(&background, 1)).unwrap();
    for (name, parent) in [
        ("background", &background),
        ("a parent with a value", &with_value),
        ("a live with_cancel parent", &live),
        ("a parent with a later deadline", &later),
        ("a parent with an earlier deadline", &sooner),
    ] {
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        let value = poll_ready(ready_within_5s(parent, 1)).unwrap();
        let nested = poll_ready(ready_nested(parent, 1)).unwrap();
        let until = poll_ready(ready_until(parent, at)).unwrap();
        assert_eq!(
            ALLOCATIONS.load(Ordering::SeqCst) - before,
            0,
            "allocations of a ready call under {name}"
        );
        assert_eq!(
            (value, nested),
            if name == "a parent with a value" {
                (2, 2)
            } else {
                (1, 1)
            }
        );
        assert_eq!(until, name != "a parent with an earlier deadline");
    }
}

/// Ten million shields of a long-lived parent (live, then ended), each used and dropped:
/// constant memory, since a shield is no child of its parent's node. A live shield costs one
/// node and nothing in the parent.
fn ten_million_shields_leave_nothing_behind() {
    let (parent, handle) = Context::background().with_value(7u32).with_cancel();
    let churn = |n: usize| {
        for i in 0..n {
            let (shield, shield_handle) = parent.shield(Duration::from_secs(5));
            assert_eq!(shield.value::<u32>(), Some(&7));
            if i % 2 == 0 {
                drop(shield_handle);
                drop(shield);
            } else {
                drop(shield);
                drop(shield_handle);
            }
        }
    };
    churn(1000);
    let leaked = leaked_by(|| churn(TEN_MILLION / 2));
    assert!(leaked <= 0, "live shields leaked {leaked} bytes");
    handle.cancel();
    let leaked = leaked_by(|| churn(TEN_MILLION / 2));
    assert!(
        leaked <= 0,
        "shields of an ended parent leaked {leaked} bytes"
    );

    let (parent, _handle) = Context::background().with_cancel();
    let mut kept = Vec::with_capacity(100_000);
    let before = live();
    for _ in 0..100_000 {
        kept.push(parent.shield(Duration::from_secs(5)));
    }
    let per_shield = (live() - before) as f64 / 100_000.0;
    println!("live bytes per shield: {per_shield:.1}");
    assert!(per_shield <= 256.0, "{per_shield} bytes per shield");
}

#[test]
fn memory_rules() {
    a_cancellable_call_whose_body_is_ready_allocates_nothing();
    deriving_is_one_allocation_and_ending_without_a_cause_allocates_nothing();
    the_first_waiter_is_one_allocation_and_a_small_tree_ends_without_allocating();
    // Cheapest first, so that a failure is reported quickly.
    background_allocates_nothing();
    a_live_child_costs_at_most_256_bytes_with_its_entry_in_the_parent();
    dropped_done_futures_polled_or_not_leave_nothing();
    a_polled_done_on_a_child_leaves_nothing_once_the_child_is_dropped();
    stopped_after_funcs_leave_nothing();
    timeouts_and_values_leave_nothing_once_dropped();
    a_long_lived_parent_with_ten_million_short_lived_children_holds_constant_memory();
    ten_million_merges_of_two_long_lived_parents_hold_constant_memory();
    ten_million_shields_leave_nothing_behind();
}
