//! `ctx.origin()`: where every kind of end came from, checked against `line!()` at the call
//! that caused it, on tokio's paused clock.

use std::sync::Mutex;
use std::time::Duration;

use ctx_core::{Context, Error, Origin, OriginKind, cancellable};
use tokio::time::{Instant, sleep};

const HOUR: Duration = Duration::from_hours(1);

#[track_caller]
fn assert_origin(ctx: &Context, kind: OriginKind, line: u32) -> Origin {
    let origin = ctx.origin().expect("the context has ended");
    assert_eq!(origin.kind(), kind, "{origin}");
    assert_eq!(origin.location().line(), line, "{origin}");
    assert_eq!(origin.location().file(), file!(), "{origin}");
    origin
}

#[test]
fn a_live_context_and_background_have_no_origin() {
    let (ctx, _handle) = Context::background().with_cancel();
    assert_eq!(ctx.origin(), None);
    assert_eq!(Context::background().origin(), None);
    assert_eq!(ctx.without_cancel().origin(), None);
}

#[test]
fn a_cancel_is_located_at_the_cancel_call() {
    let (ctx, handle) = Context::background().with_cancel();
    let line = line!() + 1;
    handle.cancel();
    let origin = assert_origin(&ctx, OriginKind::Cancel, line);
    assert_eq!(
        origin.to_string(),
        format!("canceled at {}", origin.location())
    );
    // Fixed forever: later cancels and the drop change nothing.
    handle.cancel();
    drop(handle);
    assert_origin(&ctx, OriginKind::Cancel, line);
}

#[test]
fn a_cancel_with_cause_is_located_at_its_call() {
    let (ctx, handle) = Context::background().with_cancel();
    let line = line!() + 1;
    handle.cancel_with_cause("client went away");
    assert_origin(&ctx, OriginKind::Cancel, line);
    assert_eq!(ctx.cause().unwrap().to_string(), "client went away");
}

#[test]
fn a_drop_is_located_where_the_handle_was_made() {
    let line = line!() + 1;
    let (ctx, handle) = Context::background().with_cancel();
    let _observer = ctx.done(); // someone could observe the end: it is recorded
    drop(handle);
    let origin = assert_origin(&ctx, OriginKind::Drop, line);
    assert!(
        origin
            .to_string()
            .starts_with("canceled by dropping the handle made at ")
    );

    let line = line!() + 1;
    let (ctx, handle) = Context::background().with_timeout(HOUR);
    drop(handle);
    assert_origin(&ctx, OriginKind::Drop, line);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_is_located_at_the_call_that_set_it() {
    let bg = Context::background();
    let second = Duration::from_secs(1);
    let line = line!() + 1;
    let (timeout, _t) = bg.with_timeout(second);
    let line_deadline = line!() + 1;
    let (deadline, _d) = bg.with_deadline(Instant::now() + second);
    let line_timeout_cause = line!() + 1;
    let (timeout_cause, _tc) = bg.with_timeout_cause(second, "slow");
    let line_deadline_cause = line!() + 1;
    let (deadline_cause, _dc) = bg.with_deadline_cause(Instant::now() + second, "late");
    assert_eq!(timeout.origin(), None);
    sleep(Duration::from_secs(1)).await;
    // Nobody waited: the deadline is noticed by `origin()` itself.
    let origin = assert_origin(&timeout, OriginKind::Deadline, line);
    assert_eq!(
        origin.to_string(),
        format!("deadline set at {} exceeded", origin.location())
    );
    assert_origin(&deadline, OriginKind::Deadline, line_deadline);
    assert_origin(&timeout_cause, OriginKind::Deadline, line_timeout_cause);
    assert_origin(&deadline_cause, OriginKind::Deadline, line_deadline_cause);
    assert_eq!(deadline_cause.cause().unwrap().to_string(), "late");
}

#[tokio::test(start_paused = true)]
async fn a_deadline_seen_through_done_has_the_same_origin() {
    let line = line!() + 1;
    let (ctx, _h) = Context::background().with_timeout(Duration::from_millis(10));
    assert_eq!(ctx.done().await, Error::DeadlineExceeded);
    assert_origin(&ctx, OriginKind::Deadline, line);
}

#[test]
fn a_context_born_ended_by_its_own_deadline_is_located_at_its_call() {
    let line = line!() + 1;
    let (ctx, _h) = Context::background().with_timeout(Duration::ZERO);
    assert_origin(&ctx, OriginKind::Deadline, line);
}

#[tokio::test(start_paused = true)]
async fn a_passed_deadline_wins_over_a_later_cancel_and_keeps_its_origin() {
    let line = line!() + 1;
    let (ctx, handle) = Context::background().with_timeout(Duration::from_secs(1));
    sleep(Duration::from_secs(2)).await;
    handle.cancel(); // the deadline came first
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    assert_origin(&ctx, OriginKind::Deadline, line);
}

#[test]
fn descendants_report_their_ancestors_end() {
    let (root, handle) = Context::background().with_cancel();
    let (child, _c) = root.with_timeout(HOUR);
    let (grandchild, _g) = child.with_value(7u8).with_cancel();
    let line = line!() + 1;
    handle.cancel();
    assert_origin(&root, OriginKind::Cancel, line);
    assert_origin(&child, OriginKind::Cancel, line);
    assert_origin(&grandchild, OriginKind::Cancel, line);

    // A child derived after the end is born with it.
    let (late, _l) = grandchild.with_cancel();
    assert_origin(&late, OriginKind::Cancel, line);

    // A drop's origin is inherited as a drop, located where the dropped handle was made.
    let line = line!() + 1;
    let (root, handle) = Context::background().with_cancel();
    let (child, _c) = root.with_cancel();
    drop(handle);
    assert_origin(&child, OriginKind::Drop, line);
}

#[tokio::test(start_paused = true)]
async fn an_inherited_deadline_is_located_at_the_ancestor_that_set_it() {
    let line = line!() + 1;
    let (parent, _p) = Context::background().with_timeout(Duration::from_secs(1));
    let (child, _c) = parent.with_timeout(HOUR);
    sleep(Duration::from_secs(1)).await;
    // The child's own check ends the ancestor that owns the deadline.
    assert_origin(&child, OriginKind::Deadline, line);
    assert_origin(&parent, OriginKind::Deadline, line);
}

#[tokio::test(start_paused = true)]
async fn a_childs_own_earlier_deadline_wins_over_its_parents_later_cancel() {
    let (parent, handle) = Context::background().with_cancel();
    let line = line!() + 1;
    let (child, _c) = parent.with_timeout(Duration::from_secs(1));
    sleep(Duration::from_secs(2)).await;
    handle.cancel();
    assert_origin(&child, OriginKind::Deadline, line);
}

// `#[cancellable]`: the origin is the annotated fn (its name's line).

const SLOW_LINE: u32 = line!() + 2;
#[cancellable(timeout = "10ms")]
async fn slow(stash: &Mutex<Option<Context>>) {
    *stash.lock().unwrap() = Some(ctx.clone());
    sleep(HOUR).await;
}

const BY_DEADLINE_LINE: u32 = line!() + 2;
#[cancellable(deadline = Instant::now() + Duration::from_millis(10))]
async fn by_deadline(stash: &Mutex<Option<Context>>) {
    *stash.lock().unwrap() = Some(ctx.clone());
    sleep(HOUR).await;
}

const QUICK_LINE: u32 = line!() + 2;
#[cancellable(timeout = HOUR)]
async fn quick(stash: &Mutex<Option<Context>>) {
    *stash.lock().unwrap() = Some(ctx.clone());
}

#[cancellable(timeout = HOUR)]
async fn waits(stash: &Mutex<Option<Context>>) {
    *stash.lock().unwrap() = Some(ctx.clone());
    sleep(HOUR).await;
}

#[tokio::test(start_paused = true)]
async fn a_cancellable_timeout_is_located_at_the_fn() {
    let stash = Mutex::new(None);
    assert_eq!(
        slow(&Context::background(), &stash).await,
        Err(Error::DeadlineExceeded)
    );
    let ctx = stash.lock().unwrap().take().unwrap();
    assert_origin(&ctx, OriginKind::Deadline, SLOW_LINE);

    assert_eq!(
        by_deadline(&Context::background(), &stash).await,
        Err(Error::DeadlineExceeded)
    );
    let ctx = stash.lock().unwrap().take().unwrap();
    assert_origin(&ctx, OriginKind::Deadline, BY_DEADLINE_LINE);
}

#[tokio::test(start_paused = true)]
async fn a_cancellable_call_that_returns_ends_its_child_as_a_drop_at_the_fn() {
    let stash = Mutex::new(None);
    assert_eq!(quick(&Context::background(), &stash).await, Ok(()));
    let ctx = stash.lock().unwrap().take().unwrap();
    assert_origin(&ctx, OriginKind::Drop, QUICK_LINE);
}

#[tokio::test(start_paused = true)]
async fn a_cancellable_child_ended_by_its_caller_reports_the_callers_cancel() {
    let (parent, handle) = Context::background().with_cancel();
    let call = tokio::spawn({
        let parent = parent.clone();
        async move {
            let stash = Mutex::new(None);
            let out = waits(&parent, &stash).await;
            (out, stash.lock().unwrap().take())
        }
    });
    tokio::task::yield_now().await;
    let line = line!() + 1;
    handle.cancel();
    let (out, ctx) = call.await.unwrap();
    assert_eq!(out, Err(Error::Canceled));
    assert_origin(&ctx.unwrap(), OriginKind::Cancel, line);
}
