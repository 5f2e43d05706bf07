//! `ctx.merge(&other)`: a child of `ctx` that also ends when `other` ends, with `other`'s error,
//! cause and origin; the earlier deadline; races with both parents' ends. Time tests run on
//! tokio's paused clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ctx_core::{Context, Error, OriginKind};
use tokio::time::{Instant, sleep};

const HOUR: Duration = Duration::from_hours(1);

#[test]
fn it_ends_when_the_other_parent_ends_with_its_error_cause_and_origin() {
    let (ctx, _c) = Context::background().with_cancel();
    let (other, other_handle) = Context::background().with_cancel();
    let (merged, _m) = ctx.merge(&other);
    assert_eq!(merged.err(), None);
    let line = line!() + 1;
    other_handle.cancel_with_cause("server shutting down");
    assert_eq!(merged.err(), Some(Error::Canceled));
    assert_eq!(merged.cause().unwrap().to_string(), "server shutting down");
    let origin = merged.origin().unwrap();
    assert_eq!(
        (origin.kind(), origin.location().line()),
        (OriginKind::Cancel, line)
    );
    assert_eq!(merged.origin(), other.origin());
    assert!(
        !ctx.is_done(),
        "the first parent is not ended by the second's end"
    );
}

#[test]
fn it_ends_when_its_first_parent_ends() {
    let (ctx, handle) = Context::background().with_cancel();
    let (other, _o) = Context::background().with_cancel();
    let (merged, _m) = ctx.merge(&other);
    let line = line!() + 1;
    handle.cancel_with_cause("request done");
    assert_eq!(merged.err(), Some(Error::Canceled));
    assert_eq!(merged.cause().unwrap().to_string(), "request done");
    assert_eq!(merged.origin().unwrap().location().line(), line);
    assert!(!other.is_done());
}

#[test]
fn its_own_handle_ends_it_and_neither_parent() {
    let (ctx, _c) = Context::background().with_cancel();
    let (other, _o) = Context::background().with_cancel();
    let line = line!() + 1;
    let (merged, handle) = ctx.merge(&other);
    let (below, _b) = merged.with_cancel();
    drop(handle);
    assert_eq!(below.err(), Some(Error::Canceled));
    let origin = below.origin().unwrap();
    assert_eq!(
        (origin.kind(), origin.location().line()),
        (OriginKind::Drop, line)
    );
    assert!(!ctx.is_done() && !other.is_done());
}

#[test]
fn descendants_end_with_the_other_parent_however_deep() {
    let (ctx, _c) = Context::background().with_cancel();
    let (other, other_handle) = Context::background().with_cancel();
    let (merged, _m) = ctx.merge(&other);
    let mut handles = Vec::new();
    let mut leaf = merged.clone();
    for _ in 0..100_000 {
        let (child, handle) = leaf.with_cancel();
        handles.push(handle);
        leaf = child;
    }
    other_handle.cancel_with_cause("gone");
    assert_eq!(leaf.err(), Some(Error::Canceled));
    assert_eq!(leaf.cause().unwrap().to_string(), "gone");
    assert_eq!(leaf.origin(), other.origin());
}

#[test]
fn it_has_the_first_parents_values_only() {
    let ctx = Context::background().with_value(1u8);
    let other = Context::background().with_value(2u16);
    let (other, _o) = other.with_cancel();
    let (merged, _m) = ctx.merge(&other);
    assert_eq!(merged.value::<u8>(), Some(&1));
    assert_eq!(merged.value::<u16>(), None);
}

#[test]
fn an_ended_parent_gives_a_child_born_ended_with_its_end() {
    let (live, _l) = Context::background().with_cancel();
    let (ended, handle) = Context::background().with_cancel();
    let line = line!() + 1;
    handle.cancel_with_cause("already over");
    for merged in [live.merge(&ended).0, ended.merge(&live).0] {
        assert_eq!(merged.err(), Some(Error::Canceled));
        assert_eq!(merged.cause().unwrap().to_string(), "already over");
        assert_eq!(merged.origin().unwrap().location().line(), line);
    }
    // Both ended: the first parent's end.
    let (first, first_handle) = Context::background().with_cancel();
    first_handle.cancel_with_cause("first");
    let (merged, _m) = first.merge(&ended);
    assert_eq!(merged.cause().unwrap().to_string(), "first");
}

#[test]
fn merging_with_itself_or_with_a_context_that_never_ends_is_with_cancel() {
    let (ctx, handle) = Context::background().with_cancel();
    let (with_itself, _a) = ctx.merge(&ctx);
    let (with_background, _b) = ctx.merge(&Context::background());
    let (from_background, _c) = Context::background().merge(&ctx);
    handle.cancel();
    assert!(with_itself.is_done() && with_background.is_done() && from_background.is_done());
    let (never, _d) = Context::background().merge(&Context::background());
    assert!(!never.is_done());
}

#[tokio::test(start_paused = true)]
async fn its_deadline_is_the_earlier_one_and_ends_it_as_the_other_parents_would() {
    let (ctx, _c) = Context::background().with_timeout(HOUR);
    let line = line!() + 1;
    let (other, _o) = Context::background().with_timeout_cause(Duration::from_secs(1), "slow");
    let (merged, _m) = ctx.merge(&other);
    assert_eq!(merged.deadline(), other.deadline());
    // Nobody waits: the merged context's own check ends the other parent's deadline owner.
    sleep(Duration::from_secs(1)).await;
    assert_eq!(merged.err(), Some(Error::DeadlineExceeded));
    assert_eq!(merged.cause().unwrap().to_string(), "slow");
    let origin = merged.origin().unwrap();
    assert_eq!(
        (origin.kind(), origin.location().line()),
        (OriginKind::Deadline, line)
    );
    assert_eq!(other.err(), Some(Error::DeadlineExceeded));
    assert!(!ctx.is_done());

    // The first parent's deadline is the earlier one.
    let soon = Instant::now() + Duration::from_secs(1);
    let (ctx, _c) = Context::background().with_deadline(soon);
    let (other, _o) = Context::background().with_timeout(HOUR);
    let (merged, _m) = ctx.merge(&other);
    assert_eq!(merged.deadline(), Some(soon));
    assert_eq!(merged.done().await, Error::DeadlineExceeded);
    assert!(ctx.is_done() && !other.is_done());
}

#[tokio::test(start_paused = true)]
async fn done_wakes_on_the_other_parents_deadline_and_cancel() {
    let (ctx, _c) = Context::background().with_cancel();
    let (other, _o) = Context::background().with_timeout(Duration::from_secs(5));
    let (merged, _m) = ctx.merge(&other);
    let started = Instant::now();
    assert_eq!(merged.done().await, Error::DeadlineExceeded);
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert!(other.is_done());

    let (other, other_handle) = Context::background().with_cancel();
    let (merged, _m) = ctx.merge(&other);
    let waiter = tokio::spawn({
        let merged = merged.clone();
        async move { merged.done().await }
    });
    tokio::task::yield_now().await;
    other_handle.cancel();
    assert_eq!(waiter.await.unwrap(), Error::Canceled);
}

#[test]
fn after_funcs_of_a_merged_context_run_when_the_other_parent_ends() {
    let (ctx, _c) = Context::background().with_cancel();
    let (other, other_handle) = Context::background().with_cancel();
    let (merged, _m) = ctx.merge(&other);
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let _after = merged.after_func(move || flag.store(true, Ordering::SeqCst));
    other_handle.cancel();
    // After-funcs may run on another thread: wait for it without a timing assert.
    while !ran.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
}

#[test]
fn merges_of_merges_end_with_any_ancestor() {
    let (a, a_handle) = Context::background().with_cancel();
    let (b, _b) = Context::background().with_cancel();
    let (c, _c) = Context::background().with_cancel();
    let (ab, _ab) = a.merge(&b);
    let (abc, _abc) = c.merge(&ab);
    let (again, _again) = abc.merge(&a); // `a` reached twice
    a_handle.cancel();
    assert!(ab.is_done() && abc.is_done() && again.is_done());
    assert!(!b.is_done() && !c.is_done());
}

#[tokio::test(start_paused = true)]
async fn a_long_chain_of_merges_expires_without_recursion() {
    let (root, _r) = Context::background().with_timeout(Duration::from_secs(1));
    let (plain, _p) = Context::background().with_cancel();
    let mut handles = Vec::new();
    let mut ctx = root.clone();
    // Each link's deadline is its second parent's: `expire` walks the whole chain.
    for _ in 0..100_000 {
        let (merged, handle) = plain.merge(&ctx);
        handles.push(handle);
        ctx = merged;
    }
    sleep(Duration::from_secs(1)).await;
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    assert_eq!(ctx.origin(), root.origin());
    assert!(!plain.is_done());
}

/// Many rounds of: merge, while two threads cancel the two parents with different causes.
/// Whatever the interleaving, the merged context ends, with one parent's cause and that same
/// parent's origin, and both cancels return.
#[test]
fn a_merge_races_both_parents_cancels() {
    for round in 0..2_000 {
        let (first, first_handle) = Context::background().with_cancel();
        let (second, second_handle) = Context::background().with_cancel();
        let (a, b) = (
            std::thread::spawn(move || first_handle.cancel_with_cause("first")),
            std::thread::spawn(move || second_handle.cancel_with_cause("second")),
        );
        let (merged, _m) = first.merge(&second);
        let (below, _b) = merged.with_cancel();
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(below.err(), Some(Error::Canceled), "round {round}");
        let cause = below.cause().unwrap().to_string();
        let parent = if cause == "first" { &first } else { &second };
        assert_eq!(cause, parent.cause().unwrap().to_string());
        assert_eq!(below.origin(), parent.origin(), "round {round}");
    }
}

/// A merged context dropped while both parents are cancelled on other threads: nothing is
/// left behind, and every context ends.
#[test]
fn a_merged_context_dropped_while_both_parents_end() {
    for _ in 0..2_000 {
        let (first, first_handle) = Context::background().with_cancel();
        let (second, second_handle) = Context::background().with_cancel();
        let (merged, handle) = first.merge(&second);
        let (below, _b) = merged.with_cancel();
        let threads = [
            std::thread::spawn(move || first_handle.cancel()),
            std::thread::spawn(move || second_handle.cancel()),
            std::thread::spawn(move || drop((merged, handle))),
        ];
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(below.is_done() && first.is_done() && second.is_done());
    }
}
