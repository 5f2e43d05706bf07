//! Every method of `Context` and `CancelHandle`, and rules 1 (the first end wins), 2 (a child of
//! an ended context ends at once) and 6 (nothing panics on any input) of ctx-core's docs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ctx_core::{AfterFunc, CancelHandle, Cause, Context, Done, Error, Group};
use tokio::time::Instant;

#[derive(Debug, PartialEq)]
struct Disconnected;

impl std::fmt::Display for Disconnected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("client disconnected")
    }
}

impl std::error::Error for Disconnected {}

fn cause_text(ctx: &Context) -> String {
    ctx.cause().expect("ended").to_string()
}

#[test]
fn public_types_have_the_promised_traits() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    fn context_traits<T: Clone + Send + Sync + std::fmt::Debug + Default + 'static>() {}
    fn error_traits<T: Copy + Eq + std::hash::Hash + std::error::Error + Send + Sync + 'static>() {}
    fn done_future<T: std::future::Future<Output = Error> + Send + 'static>() {}
    context_traits::<Context>();
    send_sync::<CancelHandle>();
    send_sync::<AfterFunc>();
    send::<Done>();
    done_future::<Done>();
    send::<Group<std::io::Error>>();
    error_traits::<Error>();
    let _: Option<Cause> = None;
}

#[test]
fn error_display_and_io_conversion_match_go() {
    assert_eq!(Error::Canceled.to_string(), "context canceled");
    assert_eq!(
        Error::DeadlineExceeded.to_string(),
        "context deadline exceeded"
    );
    let io: std::io::Error = Error::DeadlineExceeded.into();
    assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
    let io: std::io::Error = Error::Canceled.into();
    assert_eq!(io.kind(), std::io::ErrorKind::Interrupted);
    assert_eq!(io.to_string(), "context canceled");
}

#[test]
fn background_and_todo_never_end_and_carry_nothing() {
    for ctx in [Context::background(), Context::todo(), Context::default()] {
        assert_eq!(ctx.err(), None);
        assert!(ctx.cause().is_none());
        assert!(!ctx.is_done());
        assert_eq!(ctx.deadline(), None);
        assert_eq!(ctx.value::<u32>(), None);
    }
}

#[tokio::test(start_paused = true)]
async fn background_done_never_completes() {
    let done = Context::background().done();
    let waited = tokio::time::timeout(Duration::from_secs(3600), done).await;
    assert!(waited.is_err(), "background's done() completed");
}

#[test]
fn cancel_ends_the_context_and_its_subtree_but_not_its_parent() {
    let (root, _root_handle) = Context::background().with_cancel();
    let (mid, mid_handle) = root.with_cancel();
    let (leaf, _leaf_handle) = mid.with_cancel();
    let (sibling, _sibling_handle) = root.with_cancel();
    mid_handle.cancel();
    assert_eq!(mid.err(), Some(Error::Canceled));
    assert_eq!(leaf.err(), Some(Error::Canceled));
    assert!(leaf.is_done());
    assert_eq!(root.err(), None);
    assert_eq!(sibling.err(), None);
}

#[test]
fn dropping_the_handle_cancels() {
    let (ctx, handle) = Context::background().with_cancel();
    let (child, _child_handle) = ctx.with_cancel();
    drop(handle);
    assert_eq!(ctx.err(), Some(Error::Canceled));
    assert_eq!(child.err(), Some(Error::Canceled));
}

#[test]
fn cancel_is_idempotent_and_the_first_cause_stays() {
    let (ctx, handle) = Context::background().with_cancel();
    handle.cancel_with_cause("first");
    handle.cancel_with_cause("second");
    handle.cancel();
    assert_eq!(ctx.err(), Some(Error::Canceled));
    assert_eq!(cause_text(&ctx), "first");
}

#[test]
fn a_context_stays_usable_after_every_call() {
    let (ctx, handle) = Context::background().with_cancel();
    let _ = ctx.err();
    let _ = ctx.cause();
    drop(ctx.done());
    let _ = ctx.with_value(1u8);
    handle.cancel();
    assert_eq!(ctx.err(), Some(Error::Canceled));
    assert_eq!(ctx.clone().err(), Some(Error::Canceled));
}

#[test]
fn cause_is_none_while_live_then_the_error_when_none_was_given() {
    let (ctx, handle) = Context::background().with_cancel();
    assert!(ctx.cause().is_none());
    handle.cancel();
    let cause = ctx.cause().unwrap();
    assert_eq!(cause.downcast_ref::<Error>(), Some(&Error::Canceled));
}

#[test]
fn a_given_cause_is_kept_as_itself_and_reaches_descendants() {
    let (root, handle) = Context::background().with_cancel();
    let (child, _h1) = root.with_cancel();
    let (grandchild, _h2) = child.with_timeout(Duration::from_secs(60));
    handle.cancel_with_cause(Disconnected);
    for ctx in [&root, &child, &grandchild] {
        assert_eq!(ctx.err(), Some(Error::Canceled));
        let cause = ctx.cause().unwrap();
        assert_eq!(cause.downcast_ref::<Disconnected>(), Some(&Disconnected));
    }
}

#[test]
fn cause_accepts_str_string_and_boxed_errors() {
    let (a, ha) = Context::background().with_cancel();
    ha.cancel_with_cause("a str");
    let (b, hb) = Context::background().with_cancel();
    hb.cancel_with_cause(String::from("a String"));
    let (c, hc) = Context::background().with_cancel();
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(Disconnected);
    hc.cancel_with_cause(boxed);
    assert_eq!(cause_text(&a), "a str");
    assert_eq!(cause_text(&b), "a String");
    assert!(c.cause().unwrap().downcast_ref::<Disconnected>().is_some());
}

#[tokio::test(start_paused = true)]
async fn a_given_cause_is_kept_as_that_same_cause_not_wrapped() {
    // Another context's cause, passed on: still downcasts to what it holds, and is the same
    // `Arc` (a cause made once can be given to many contexts for a reference count each).
    let (first, h1) = Context::background().with_cancel();
    h1.cancel_with_cause(Disconnected);
    let given: Cause = first.cause().unwrap();
    let (second, h2) = Context::background().with_cancel();
    h2.cancel_with_cause(given.clone());
    let kept = second.cause().unwrap();
    assert!(Arc::ptr_eq(&kept, &given));
    assert_eq!(kept.downcast_ref::<Disconnected>(), Some(&Disconnected));
    // The same for a deadline's cause, given to two contexts.
    let made_once: Cause = Arc::new(Disconnected);
    let (a, _ha) =
        Context::background().with_timeout_cause(Duration::from_secs(1), made_once.clone());
    let at = Instant::now() + Duration::from_secs(1);
    let (b, _hb) = Context::background().with_deadline_cause(at, made_once.clone());
    assert_eq!(a.done().await, Error::DeadlineExceeded);
    assert_eq!(b.done().await, Error::DeadlineExceeded);
    for ctx in [&a, &b] {
        let kept = ctx.cause().unwrap();
        assert!(Arc::ptr_eq(&kept, &made_once));
        assert_eq!(kept.downcast_ref::<Disconnected>(), Some(&Disconnected));
    }
}

#[test]
fn a_child_of_an_ended_context_ends_at_once_with_its_err_and_cause() {
    let (parent, handle) = Context::background().with_cancel();
    handle.cancel_with_cause(Disconnected);
    let (child, _h) = parent.with_cancel();
    let (timed, _h2) = parent.with_timeout(Duration::from_secs(5));
    let valued = parent.with_value(5u8);
    for ctx in [&child, &timed, &valued] {
        assert_eq!(ctx.err(), Some(Error::Canceled));
        assert!(
            ctx.cause()
                .unwrap()
                .downcast_ref::<Disconnected>()
                .is_some()
        );
    }
}

#[test]
fn a_child_cancel_after_the_parent_keeps_the_parents_reason() {
    let (parent, parent_handle) = Context::background().with_cancel();
    let (child, child_handle) = parent.with_cancel();
    parent_handle.cancel_with_cause("parent first");
    child_handle.cancel_with_cause("child second");
    assert_eq!(cause_text(&child), "parent first");
}

#[tokio::test(start_paused = true)]
async fn cancel_then_deadline_stays_canceled() {
    let (ctx, handle) = Context::background().with_timeout(Duration::from_secs(1));
    handle.cancel();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(ctx.err(), Some(Error::Canceled));
}

#[tokio::test(start_paused = true)]
async fn deadline_then_cancel_stays_deadline_exceeded_even_unobserved() {
    let (ctx, handle) = Context::background().with_timeout_cause(Duration::from_secs(1), "slow");
    // Nobody awaits or checks the context while the deadline passes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    handle.cancel_with_cause("too late");
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    assert_eq!(cause_text(&ctx), "slow");
}

#[tokio::test(start_paused = true)]
async fn an_earlier_child_deadline_beats_a_later_ancestor_cancel() {
    let (root, root_handle) = Context::background().with_cancel();
    let (child, _h) = root.with_timeout_cause(Duration::from_secs(1), "child budget");
    let (grandchild, _h2) = child.with_cancel();
    tokio::time::sleep(Duration::from_secs(2)).await;
    root_handle.cancel_with_cause("shutdown");
    assert_eq!(root.err(), Some(Error::Canceled));
    assert_eq!(child.err(), Some(Error::DeadlineExceeded));
    assert_eq!(cause_text(&child), "child budget");
    assert_eq!(grandchild.err(), Some(Error::DeadlineExceeded));
    assert_eq!(cause_text(&grandchild), "child budget");
}

#[tokio::test(start_paused = true)]
async fn an_inherited_deadline_reports_the_owners_cause() {
    let (parent, _h) = Context::background().with_timeout_cause(Duration::from_secs(1), "budget");
    let (child, child_handle) = parent.with_timeout(Duration::from_secs(10));
    assert_eq!(child.deadline(), parent.deadline());
    tokio::time::sleep(Duration::from_secs(1)).await;
    child_handle.cancel();
    assert_eq!(child.err(), Some(Error::DeadlineExceeded));
    assert_eq!(cause_text(&child), "budget");
    assert_eq!(parent.err(), Some(Error::DeadlineExceeded));
}

#[tokio::test(start_paused = true)]
async fn a_deadline_cause_does_not_apply_to_a_cancel() {
    let (ctx, handle) = Context::background().with_timeout_cause(Duration::from_secs(1), "slow");
    handle.cancel();
    assert_eq!(ctx.err(), Some(Error::Canceled));
    assert_eq!(
        ctx.cause().unwrap().downcast_ref::<Error>(),
        Some(&Error::Canceled)
    );
}

#[test]
fn a_deadline_now_or_past_has_already_ended() {
    let (zero, _h) = Context::background().with_timeout(Duration::ZERO);
    assert_eq!(zero.err(), Some(Error::DeadlineExceeded));
    let now = Instant::now();
    let (at_now, _h) = Context::background().with_deadline(now);
    assert_eq!(at_now.err(), Some(Error::DeadlineExceeded));
    assert_eq!(at_now.deadline(), Some(now));
    let past = now.checked_sub(Duration::from_secs(3600)).unwrap_or(now);
    let (in_past, _h) = Context::background().with_deadline_cause(past, "stale");
    assert_eq!(in_past.err(), Some(Error::DeadlineExceeded));
    assert_eq!(cause_text(&in_past), "stale");
}

#[test]
fn huge_timeouts_do_not_panic_and_mean_no_deadline() {
    let (ctx, handle) = Context::background().with_timeout(Duration::MAX);
    assert_eq!(ctx.deadline(), None);
    assert_eq!(ctx.err(), None);
    let (child, _h) = ctx.with_timeout_cause(Duration::MAX, "never");
    assert_eq!(child.deadline(), None);
    handle.cancel();
    assert_eq!(child.err(), Some(Error::Canceled));
}

#[test]
fn the_child_deadline_is_the_earlier_of_its_own_and_its_parents() {
    let now = Instant::now();
    let (parent, _h) = Context::background().with_deadline(now + Duration::from_secs(10));
    let (later, _h1) = parent.with_deadline(now + Duration::from_secs(20));
    let (earlier, _h2) = parent.with_deadline(now + Duration::from_secs(5));
    let (plain, _h3) = parent.with_cancel();
    assert_eq!(later.deadline(), Some(now + Duration::from_secs(10)));
    assert_eq!(earlier.deadline(), Some(now + Duration::from_secs(5)));
    assert_eq!(plain.deadline(), Some(now + Duration::from_secs(10)));
    assert_eq!(parent.with_value(1u8).deadline(), parent.deadline());
    assert_eq!(parent.without_cancel().deadline(), None);
}

#[tokio::test(start_paused = true)]
async fn with_timeout_counts_from_now_in_virtual_time() {
    let start = Instant::now();
    let (ctx, _h) = Context::background().with_timeout(Duration::from_millis(250));
    assert_eq!(ctx.deadline(), Some(start + Duration::from_millis(250)));
    let err = ctx.done().await;
    assert_eq!(err, Error::DeadlineExceeded);
    assert_eq!(start.elapsed(), Duration::from_millis(250));
}

#[tokio::test(start_paused = true)]
async fn done_wakes_every_waiter_with_the_reason() {
    let (ctx, handle) = Context::background().with_cancel();
    let (child, _h) = ctx.with_cancel();
    let waiters: Vec<_> = (0..10)
        .map(|i| {
            let ctx = if i % 2 == 0 {
                ctx.clone()
            } else {
                child.clone()
            };
            tokio::spawn(async move { ctx.done().await })
        })
        .collect();
    tokio::task::yield_now().await;
    handle.cancel();
    for waiter in waiters {
        assert_eq!(waiter.await.unwrap(), Error::Canceled);
    }
}

#[tokio::test(start_paused = true)]
async fn done_of_an_ended_context_is_ready_and_stays_ready() {
    let (ctx, handle) = Context::background().with_cancel();
    handle.cancel();
    let mut done = ctx.done();
    assert_eq!((&mut done).await, Error::Canceled);
    assert_eq!(done.await, Error::Canceled);
}

#[tokio::test(start_paused = true)]
async fn done_is_cancel_safe() {
    let (ctx, handle) = Context::background().with_cancel();
    for _ in 0..3 {
        let raced = tokio::time::timeout(Duration::from_millis(10), ctx.done()).await;
        assert!(raced.is_err());
    }
    handle.cancel();
    assert_eq!(ctx.done().await, Error::Canceled);
}

#[tokio::test(start_paused = true)]
async fn done_fires_on_a_deadline_inherited_from_an_ancestor() {
    let start = Instant::now();
    let (parent, _h) = Context::background().with_timeout(Duration::from_secs(3));
    let (child, _h2) = parent.with_cancel();
    assert_eq!(child.done().await, Error::DeadlineExceeded);
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert_eq!(parent.err(), Some(Error::DeadlineExceeded));
}

#[tokio::test(start_paused = true)]
async fn run_returns_the_output_of_a_future_that_completes() {
    let (ctx, _h) = Context::background().with_timeout(Duration::from_secs(5));
    assert_eq!(ctx.run(async { 7 }).await, Ok(7));
    let slow = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        8
    };
    assert_eq!(ctx.run(slow).await, Ok(8));
    assert_eq!(Context::background().run(async { 9 }).await, Ok(9));
}

#[tokio::test(start_paused = true)]
async fn run_never_polls_the_future_of_an_ended_context() {
    let (ctx, handle) = Context::background().with_cancel();
    handle.cancel();
    let polled = AtomicBool::new(false);
    let result = ctx
        .run(async { polled.store(true, Ordering::SeqCst) })
        .await;
    assert_eq!(result, Err(Error::Canceled));
    assert!(!polled.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn run_never_polls_a_future_whose_deadline_passed_unobserved() {
    let (ctx, _h) = Context::background().with_timeout(Duration::from_secs(1));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let polled = AtomicBool::new(false);
    let result = ctx
        .run(async { polled.store(true, Ordering::SeqCst) })
        .await;
    assert_eq!(result, Err(Error::DeadlineExceeded));
    assert!(!polled.load(Ordering::SeqCst));
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn run_drops_the_future_at_its_await_when_the_context_ends() {
    let (ctx, handle) = Context::background().with_cancel();
    let dropped = Arc::new(AtomicBool::new(false));
    let after_await = Arc::new(AtomicBool::new(false));
    let task = {
        let (dropped, after_await) = (dropped.clone(), after_await.clone());
        ctx.spawn(async move {
            let _guard = SetOnDrop(dropped);
            std::future::pending::<()>().await;
            after_await.store(true, Ordering::SeqCst);
        })
    };
    tokio::task::yield_now().await;
    assert!(!dropped.load(Ordering::SeqCst));
    handle.cancel_with_cause("stop");
    assert_eq!(task.await.unwrap(), Err(Error::Canceled));
    assert!(dropped.load(Ordering::SeqCst));
    assert!(!after_await.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn run_stops_at_the_deadline() {
    let start = Instant::now();
    let (ctx, _h) = Context::background().with_timeout(Duration::from_millis(300));
    let result = ctx.run(tokio::time::sleep(Duration::from_secs(30))).await;
    assert_eq!(result, Err(Error::DeadlineExceeded));
    assert_eq!(start.elapsed(), Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn spawn_runs_the_future_under_the_context() {
    let (ctx, _h) = Context::background().with_timeout(Duration::from_secs(1));
    let ok = ctx.spawn(async { "done" });
    let late = ctx.spawn(tokio::time::sleep(Duration::from_secs(10)));
    assert_eq!(ok.await.unwrap(), Ok("done"));
    assert_eq!(late.await.unwrap(), Err(Error::DeadlineExceeded));
}

#[test]
fn everything_but_waiting_works_outside_a_runtime() {
    let (ctx, handle) = Context::background().with_timeout(Duration::from_millis(1));
    let (child, _h) = ctx.with_deadline(Instant::now() + Duration::from_secs(5));
    let _ = child.with_value("v").value::<&str>();
    let _ = child.deadline();
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(child.err(), Some(Error::DeadlineExceeded));
    drop(handle);
    assert_eq!(child.err(), Some(Error::DeadlineExceeded));
}

#[test]
fn debug_shows_the_state() {
    let (ctx, handle) = Context::background().with_value(1u8).with_cancel();
    let live = format!("{ctx:?}");
    handle.cancel();
    let ended = format!("{ctx:?} {handle:?}");
    assert!(live.contains("err: None"), "{live}");
    assert!(live.contains("values: 1"), "{live}");
    assert!(ended.contains("Canceled"), "{ended}");
}

#[test]
fn cancel_storm_from_many_threads_has_one_winner() {
    for _ in 0..200 {
        let (ctx, handle) = Context::background().with_cancel();
        let (child, _h) = ctx.with_cancel();
        let handle = Arc::new(handle);
        let winners = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let (handle, child, winners) = (handle.clone(), child.clone(), winners.clone());
                std::thread::spawn(move || {
                    handle.cancel_with_cause(format!("thread {i}"));
                    let cause = child.cause().unwrap().to_string();
                    if cause == format!("thread {i}") {
                        winners.fetch_add(1, Ordering::SeqCst);
                    }
                    cause
                })
            })
            .collect();
        let causes: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(causes.iter().all(|c| *c == causes[0]), "{causes:?}");
        assert_eq!(winners.load(Ordering::SeqCst), 1);
        assert_eq!(cause_text(&ctx), causes[0]);
    }
}
