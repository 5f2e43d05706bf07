//! `after_func` and `AfterFunc::stop`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ctx_core::{Context, Error};

fn counter() -> (Arc<AtomicUsize>, impl Fn() -> usize) {
    let count = Arc::new(AtomicUsize::new(0));
    let read = count.clone();
    (count, move || read.load(Ordering::SeqCst))
}

#[test]
fn runs_once_after_the_context_ends() {
    let (ctx, handle) = Context::background().with_cancel();
    let (count, ran) = counter();
    let _after = ctx.after_func(move || {
        count.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(ran(), 0);
    handle.cancel();
    handle.cancel();
    assert_eq!(ran(), 1);
}

#[test]
fn runs_when_an_ancestor_ends_and_sees_the_subtree_ended() {
    let (root, handle) = Context::background().with_cancel();
    let (child, _h) = root.with_cancel();
    let (grandchild, _h2) = child.with_cancel();
    let seen = Arc::new(AtomicBool::new(false));
    let flag = seen.clone();
    let _after = child.after_func(move || flag.store(grandchild.is_done(), Ordering::SeqCst));
    handle.cancel();
    assert!(
        seen.load(Ordering::SeqCst),
        "the grandchild was still live in the after-func"
    );
}

#[test]
fn runs_at_once_if_the_context_has_already_ended() {
    let (ctx, handle) = Context::background().with_cancel();
    handle.cancel();
    let (count, ran) = counter();
    let after = ctx.after_func(move || {
        count.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(ran(), 1);
    assert!(!after.stop());
}

#[test]
fn stop_before_the_end_prevents_it() {
    let (ctx, handle) = Context::background().with_cancel();
    let (count, ran) = counter();
    let after = ctx.after_func(move || {
        count.fetch_add(1, Ordering::SeqCst);
    });
    assert!(after.stop());
    assert!(!after.stop());
    handle.cancel();
    assert_eq!(ran(), 0);
    assert!(!after.stop());
}

#[test]
fn stop_releases_what_the_function_captured() {
    let (ctx, _handle) = Context::background().with_cancel();
    let captured = Arc::new(());
    let inside = captured.clone();
    let after = ctx.after_func(move || drop(inside));
    assert_eq!(Arc::strong_count(&captured), 2);
    assert!(after.stop());
    assert_eq!(Arc::strong_count(&captured), 1);
}

#[test]
fn dropping_the_handle_does_not_stop_it() {
    let (ctx, handle) = Context::background().with_cancel();
    let (count, ran) = counter();
    drop(ctx.after_func(move || {
        count.fetch_add(1, Ordering::SeqCst);
    }));
    handle.cancel();
    assert_eq!(ran(), 1);
}

#[test]
fn on_a_context_that_never_ends_it_never_runs_and_stop_says_so() {
    let (count, ran) = counter();
    let after = Context::background().after_func(move || {
        count.fetch_add(1, Ordering::SeqCst);
    });
    assert!(after.stop());
    assert!(!after.stop());
    assert_eq!(ran(), 0);
}

#[test]
fn a_panicking_after_func_harms_nothing_else() {
    let (ctx, handle) = Context::background().with_cancel();
    let (child, _h) = ctx.with_cancel();
    let (count, ran) = counter();
    let c1 = count.clone();
    let _a = ctx.after_func(move || {
        c1.fetch_add(1, Ordering::SeqCst);
    });
    let _b = ctx.after_func(|| panic!("after-func panics on purpose"));
    let _c = child.after_func(move || {
        count.fetch_add(1, Ordering::SeqCst);
    });
    handle.cancel();
    assert_eq!(ran(), 2);
    assert_eq!(child.err(), Some(Error::Canceled));
    // The context still works after the panic.
    let (grandchild, _h3) = child.with_cancel();
    assert!(grandchild.is_done());
    let (fresh, fresh_handle) = Context::background().with_cancel();
    fresh_handle.cancel();
    assert!(fresh.is_done());
}

#[test]
fn an_after_func_may_cancel_contexts_including_its_own() {
    let (ctx, handle) = Context::background().with_cancel();
    let (other, other_handle) = Context::background().with_cancel();
    let handle = Arc::new(handle);
    let own = handle.clone();
    let _after = ctx.after_func(move || {
        other_handle.cancel_with_cause("cancelled from an after-func");
        own.cancel();
    });
    handle.cancel();
    assert_eq!(other.err(), Some(Error::Canceled));
    assert_eq!(
        other.cause().unwrap().to_string(),
        "cancelled from an after-func"
    );
}

#[tokio::test(start_paused = true)]
async fn a_deadline_fires_it_with_a_runtime_even_if_nobody_waits() {
    let (ctx, _handle) = Context::background().with_timeout(Duration::from_secs(2));
    let (count, ran) = counter();
    let _after = ctx.after_func(move || {
        count.fetch_add(1, Ordering::SeqCst);
    });
    tokio::time::sleep(Duration::from_millis(1999)).await;
    assert_eq!(ran(), 0);
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(ran(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_inherited_deadline_fires_it_too() {
    let (parent, _handle) = Context::background().with_timeout(Duration::from_secs(1));
    let (child, _h) = parent.with_cancel();
    let (count, ran) = counter();
    let _after = child.after_func(move || {
        count.fetch_add(1, Ordering::SeqCst);
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(ran(), 1);
    assert_eq!(parent.err(), Some(Error::DeadlineExceeded));
}

#[test]
fn without_a_runtime_a_passed_deadline_fires_it_when_observed() {
    let (ctx, _handle) = Context::background().with_timeout(Duration::from_millis(1));
    let (count, ran) = counter();
    let _after = ctx.after_func(move || {
        count.fetch_add(1, Ordering::SeqCst);
    });
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    assert_eq!(ran(), 1);
}

#[test]
fn stop_racing_the_cancel_runs_exactly_once_or_stops_never_both() {
    for _ in 0..500 {
        let (ctx, handle) = Context::background().with_cancel();
        let (count, ran) = counter();
        let after = ctx.after_func(move || {
            count.fetch_add(1, Ordering::SeqCst);
        });
        let canceller = std::thread::spawn(move || handle.cancel());
        let stopped = after.stop();
        canceller.join().unwrap();
        assert!(stopped ^ (ran() == 1), "stopped={stopped} ran={}", ran());
        assert!(ran() <= 1);
    }
}

#[test]
fn runs_when_the_handle_is_dropped_last_after_everything_else() {
    let (ctx, handle) = Context::background().with_cancel();
    let (count, ran) = counter();
    drop(ctx.after_func(move || {
        count.fetch_add(1, Ordering::SeqCst);
    }));
    drop(ctx);
    // The handle is now the only owner of the context: dropping it still ends the context, so
    // the after-func runs.
    drop(handle);
    assert_eq!(ran(), 1);
}

/// A runtime whose clock is paused, so that the deadlines below pass in virtual time.
fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

#[test]
fn the_deadline_timer_is_armed_again_after_the_runtime_that_armed_it_is_gone() {
    let first = paused_runtime();
    let (ctx, _handle) =
        first.block_on(async { Context::background().with_timeout(Duration::from_secs(2)) });
    first.block_on(async {
        let _a = ctx.after_func(|| {});
    });
    // The runtime goes, and the timer task it ran with it.
    drop(first);

    let second = paused_runtime();
    let (count, ran) = counter();
    second.block_on(async {
        let _a = ctx.after_func(move || {
            count.fetch_add(1, Ordering::SeqCst);
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
    });
    assert_eq!(
        ran(),
        1,
        "no timer fired the deadline in the second runtime"
    );
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
}

#[test]
fn the_deadline_timer_is_armed_again_after_a_runtime_without_a_time_driver() {
    let (ctx, _handle) = Context::background().with_timeout(Duration::from_secs(2));
    let timeless = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    timeless.block_on(async {
        let _a = ctx.after_func(|| {});
        // Lets a timer task run, if one was spawned here.
        tokio::task::yield_now().await;
    });
    drop(timeless);

    let timed = paused_runtime();
    let (count, ran) = counter();
    timed.block_on(async {
        let _a = ctx.after_func(move || {
            count.fetch_add(1, Ordering::SeqCst);
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
    });
    assert_eq!(ran(), 1, "no timer fired the deadline");
}

#[test]
fn a_registration_in_a_second_live_runtime_gets_a_timer_of_its_own() {
    // Two runtimes alive at once; the first one's timer must not be all the second relies on.
    let first = paused_runtime();
    let (ctx, _handle) =
        first.block_on(async { Context::background().with_timeout(Duration::from_secs(2)) });
    first.block_on(async {
        let _a = ctx.after_func(|| {});
    });
    let second = paused_runtime();
    let (count, ran) = counter();
    let after = second.block_on(async {
        ctx.after_func(move || {
            count.fetch_add(1, Ordering::SeqCst);
        })
    });
    drop(first);
    second.block_on(async { tokio::time::sleep(Duration::from_secs(3)).await });
    assert_eq!(ran(), 1, "the second runtime had no timer of its own");
    assert!(!after.stop());
}
