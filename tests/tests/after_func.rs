//! `after_func` and `AfterFunc::stop`.
//!
//! An after-func runs on another thread, and the end that starts it does not wait for it: these
//! tests learn that it ran from a channel it sends on, and that it *started* (deterministically,
//! at the end) from `stop()` returning `false`.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Barrier, Mutex};
use std::thread::{self, ThreadId};
use std::time::Duration;

use ctx_core::{Context, Error};

/// Generous: only reached when the behaviour under test is broken (a run that never comes).
const LONG: Duration = Duration::from_secs(10);

/// The runs of after-funcs, reported on a channel.
struct Runs {
    tx: Sender<()>,
    rx: Receiver<()>,
}

impl Runs {
    fn new() -> Runs {
        let (tx, rx) = mpsc::channel();
        Runs { tx, rx }
    }

    /// An after-func body that reports its run.
    fn report(&self) -> impl FnOnce() + Send + 'static {
        let tx = self.tx.clone();
        move || tx.send(()).unwrap()
    }

    /// Waits for `n` runs.
    fn wait(&self, n: usize) {
        for i in 0..n {
            self.rx
                .recv_timeout(LONG)
                .unwrap_or_else(|_| panic!("only {i} of {n} after-funcs ran"));
        }
    }

    /// Runs reported so far that nobody waited for.
    fn extra(&self) -> usize {
        self.rx.try_iter().count()
    }
}

#[test]
fn runs_once_after_the_context_ends() {
    let (ctx, handle) = Context::background().with_cancel();
    let runs = Runs::new();
    let after = ctx.after_func(runs.report());
    assert_eq!(runs.extra(), 0);
    handle.cancel();
    handle.cancel();
    assert!(!after.stop(), "started by the cancel");
    runs.wait(1);
    assert_eq!(runs.extra(), 0);
}

#[test]
fn runs_when_an_ancestor_ends_and_sees_the_subtree_ended() {
    let (root, handle) = Context::background().with_cancel();
    let (child, _h) = root.with_cancel();
    let (grandchild, _h2) = child.with_cancel();
    let (tx, rx) = mpsc::channel();
    let _after = child.after_func(move || tx.send(grandchild.is_done()).unwrap());
    handle.cancel();
    assert!(
        rx.recv_timeout(LONG).unwrap(),
        "the grandchild was still live in the after-func"
    );
}

#[test]
fn starts_at_once_if_the_context_has_already_ended() {
    let (ctx, handle) = Context::background().with_cancel();
    handle.cancel();
    let runs = Runs::new();
    let after = ctx.after_func(runs.report());
    assert!(!after.stop(), "started by the registration");
    runs.wait(1);
}

#[test]
fn stop_before_the_end_prevents_it() {
    let (ctx, handle) = Context::background().with_cancel();
    let runs = Runs::new();
    let after = ctx.after_func(runs.report());
    assert!(after.stop());
    assert!(!after.stop());
    handle.cancel();
    // A function that runs later than the stopped one would have: it has run by then.
    let witness = ctx.after_func(runs.report());
    assert!(!witness.stop());
    runs.wait(1);
    drop(runs.tx);
    assert!(
        runs.rx.recv_timeout(LONG).is_err(),
        "the stopped function ran"
    );
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
    let runs = Runs::new();
    drop(ctx.after_func(runs.report()));
    handle.cancel();
    runs.wait(1);
}

#[test]
fn on_a_context_that_never_ends_it_never_runs_and_stop_says_so() {
    let runs = Runs::new();
    let after = Context::background().after_func(runs.report());
    assert!(after.stop());
    assert!(!after.stop());
    drop(runs.tx);
    assert!(runs.rx.recv().is_err(), "it ran");
}

#[test]
fn a_panicking_after_func_harms_nothing_else() {
    let (ctx, handle) = Context::background().with_cancel();
    let (child, _h) = ctx.with_cancel();
    let runs = Runs::new();
    let _a = ctx.after_func(runs.report());
    let _b = ctx.after_func(|| panic!("after-func panics on purpose"));
    let _c = child.after_func(runs.report());
    handle.cancel();
    runs.wait(2);
    assert_eq!(child.err(), Some(Error::Canceled));
    // The context still works after the panic.
    let (grandchild, _h3) = child.with_cancel();
    assert!(grandchild.is_done());
    let (fresh, fresh_handle) = Context::background().with_cancel();
    let _d = fresh.after_func(runs.report());
    fresh_handle.cancel();
    runs.wait(1);
}

#[test]
fn an_after_func_may_cancel_contexts_including_its_own() {
    let (ctx, handle) = Context::background().with_cancel();
    let (other, other_handle) = Context::background().with_cancel();
    let handle = Arc::new(handle);
    let own = handle.clone();
    let runs = Runs::new();
    let report = runs.report();
    let _after = ctx.after_func(move || {
        other_handle.cancel_with_cause("cancelled from an after-func");
        own.cancel();
        report();
    });
    handle.cancel();
    runs.wait(1);
    assert_eq!(other.err(), Some(Error::Canceled));
    assert_eq!(
        other.cause().unwrap().to_string(),
        "cancelled from an after-func"
    );
}

#[tokio::test(start_paused = true)]
async fn a_deadline_fires_it_with_a_runtime_even_if_nobody_waits() {
    let (ctx, _handle) = Context::background().with_timeout(Duration::from_secs(2));
    let runs = Runs::new();
    let after = ctx.after_func(runs.report());
    tokio::time::sleep(Duration::from_millis(1999)).await;
    assert_eq!(runs.extra(), 0);
    assert_eq!(ctx.err(), None);
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert!(!after.stop(), "the deadline started it");
    runs.wait(1);
}

#[tokio::test(start_paused = true)]
async fn an_inherited_deadline_fires_it_too() {
    let (parent, _handle) = Context::background().with_timeout(Duration::from_secs(1));
    let (child, _h) = parent.with_cancel();
    let runs = Runs::new();
    let after = child.after_func(runs.report());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!after.stop(), "the deadline started it");
    runs.wait(1);
    assert_eq!(parent.err(), Some(Error::DeadlineExceeded));
}

#[test]
fn without_a_runtime_a_passed_deadline_fires_it_when_observed() {
    let (ctx, _handle) = Context::background().with_timeout(Duration::from_millis(1));
    let runs = Runs::new();
    let _after = ctx.after_func(runs.report());
    thread::sleep(Duration::from_millis(5));
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    runs.wait(1);
}

#[test]
fn stop_racing_the_cancel_runs_exactly_once_or_stops_never_both() {
    for _ in 0..500 {
        let (ctx, handle) = Context::background().with_cancel();
        let runs = Runs::new();
        let after = ctx.after_func(runs.report());
        let canceller = thread::spawn(move || handle.cancel());
        let stopped = after.stop();
        canceller.join().unwrap();
        if stopped {
            drop(runs.tx);
            assert!(runs.rx.recv().is_err(), "stopped, and it ran too");
        } else {
            runs.wait(1);
            assert_eq!(runs.extra(), 0);
        }
    }
}

#[test]
fn runs_when_the_handle_is_dropped_last_after_everything_else() {
    let (ctx, handle) = Context::background().with_cancel();
    let runs = Runs::new();
    drop(ctx.after_func(runs.report()));
    drop(ctx);
    // The handle is now the only owner of the context: dropping it still ends the context, so
    // the after-func runs.
    drop(handle);
    runs.wait(1);
}

// As in Go, the end never waits for an after-func.

/// An after-func that blocks until the test releases it (after whatever ended the context has
/// returned), and reports whether it was released (`true`) or gave up waiting (`false`: the
/// end waited for it, and the release came only then).
fn blocking_after_func(ctx: &Context) -> (Sender<()>, Receiver<bool>) {
    let (release, released) = mpsc::channel::<()>();
    let (tx, outcome) = mpsc::channel();
    drop(ctx.after_func(move || {
        let waited = released.recv_timeout(LONG);
        tx.send(!matches!(waited, Err(RecvTimeoutError::Timeout)))
            .unwrap();
    }));
    (release, outcome)
}

#[test]
fn cancel_returns_without_waiting_for_an_after_func_that_blocks() {
    let (ctx, handle) = Context::background().with_cancel();
    let (release, outcome) = blocking_after_func(&ctx);
    handle.cancel();
    release.send(()).unwrap();
    assert!(
        outcome.recv().unwrap(),
        "cancel() waited for the after-func"
    );
}

#[test]
fn dropping_the_handle_returns_without_waiting_for_an_after_func_that_blocks() {
    let (ctx, handle) = Context::background().with_cancel();
    let (release, outcome) = blocking_after_func(&ctx);
    drop(ctx);
    drop(handle);
    release.send(()).unwrap();
    assert!(
        outcome.recv().unwrap(),
        "the handle's drop waited for the after-func"
    );
}

#[test]
fn a_parents_end_returns_without_waiting_for_a_childs_after_func_that_blocks() {
    let (parent, handle) = Context::background().with_cancel();
    let (child, _child_handle) = parent.with_cancel();
    let (release, outcome) = blocking_after_func(&child);
    handle.cancel();
    release.send(()).unwrap();
    assert!(
        outcome.recv().unwrap(),
        "the parent's end waited for the after-func"
    );
}

#[test]
fn registering_on_an_ended_context_returns_without_waiting_for_it() {
    let (ctx, handle) = Context::background().with_cancel();
    handle.cancel();
    let (release, outcome) = blocking_after_func(&ctx);
    release.send(()).unwrap();
    assert!(
        outcome.recv().unwrap(),
        "after_func() waited for the function"
    );
}

#[test]
fn an_after_func_may_take_a_lock_the_canceller_holds() {
    let (ctx, handle) = Context::background().with_cancel();
    let shared = Arc::new(Mutex::new(0));
    let runs = Runs::new();
    let report = runs.report();
    let inside = shared.clone();
    let _after = ctx.after_func(move || {
        *inside.lock().unwrap() += 1;
        report();
    });
    let guard = shared.lock().unwrap();
    handle.cancel(); // inline, this would deadlock on `shared`
    drop(guard);
    runs.wait(1);
    assert_eq!(*shared.lock().unwrap(), 1);
}

#[test]
fn after_funcs_that_block_do_not_delay_one_another() {
    // Both must be running at once to pass the barrier: one thread for all would stall.
    let (ctx, handle) = Context::background().with_cancel();
    let barrier = Arc::new(Barrier::new(3));
    let runs = Runs::new();
    let mut afters = Vec::new();
    for _ in 0..2 {
        let barrier = barrier.clone();
        let report = runs.report();
        afters.push(ctx.after_func(move || {
            barrier.wait();
            report();
        }));
    }
    handle.cancel();
    barrier.wait();
    runs.wait(2);
}

#[tokio::test(flavor = "current_thread")]
async fn a_runtime_thread_that_cancels_does_not_run_the_after_func() {
    let (ctx, handle) = Context::background().with_cancel();
    let (tx, rx) = mpsc::channel::<ThreadId>();
    let _after = ctx.after_func(move || tx.send(thread::current().id()).unwrap());
    let canceller = thread::current().id();
    tokio::task::spawn(async move { handle.cancel() })
        .await
        .unwrap();
    assert_ne!(rx.recv_timeout(LONG).unwrap(), canceller);
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
    let runs = Runs::new();
    let after = second.block_on(async {
        let after = ctx.after_func(runs.report());
        tokio::time::sleep(Duration::from_secs(3)).await;
        after
    });
    assert!(
        !after.stop(),
        "no timer fired the deadline in the second runtime"
    );
    runs.wait(1);
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
    let runs = Runs::new();
    let after = timed.block_on(async {
        let after = ctx.after_func(runs.report());
        tokio::time::sleep(Duration::from_secs(3)).await;
        after
    });
    assert!(!after.stop(), "no timer fired the deadline");
    runs.wait(1);
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
    let runs = Runs::new();
    let after = second.block_on(async { ctx.after_func(runs.report()) });
    drop(first);
    second.block_on(async { tokio::time::sleep(Duration::from_secs(3)).await });
    assert!(!after.stop(), "the second runtime had no timer of its own");
    runs.wait(1);
}
