//! Budgets: `remaining()`, `ensure_remaining(min)` and `#[cancellable(min_remaining = ..)]`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ctx_core::{Context, Error, cancellable};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

#[test]
fn without_a_deadline_nothing_is_counted_and_everything_fits() {
    let (ctx, handle) = Context::background().with_cancel();
    for ctx in [Context::background(), ctx.clone(), ctx.without_cancel()] {
        assert_eq!(ctx.remaining(), None);
        assert_eq!(ctx.ensure_remaining(Duration::MAX), Ok(()));
    }
    handle.cancel();
    // Ended, but still no deadline: `remaining` says so, `ensure_remaining` the end.
    assert_eq!(ctx.remaining(), None);
    assert_eq!(ctx.ensure_remaining(Duration::ZERO), Err(Error::Canceled));
}

#[tokio::test(start_paused = true)]
async fn remaining_counts_down_to_zero_at_the_deadline() {
    let (ctx, _h) = Context::background().with_timeout(100 * MS);
    assert_eq!(ctx.remaining(), Some(100 * MS));
    tokio::time::sleep(30 * MS).await;
    assert_eq!(ctx.remaining(), Some(70 * MS));
    tokio::time::sleep(70 * MS).await;
    assert_eq!(ctx.remaining(), Some(Duration::ZERO));
    tokio::time::sleep(70 * MS).await;
    assert_eq!(ctx.remaining(), Some(Duration::ZERO));
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
}

#[tokio::test(start_paused = true)]
async fn remaining_is_zero_once_cancelled_and_follows_the_nearest_deadline() {
    let (parent, _p) = Context::background().with_timeout(50 * MS);
    let (child, handle) = parent.with_timeout(Duration::from_secs(10));
    assert_eq!(child.remaining(), Some(50 * MS)); // the parent's is earlier
    let valued = child.with_value(7u8);
    handle.cancel();
    assert_eq!(child.remaining(), Some(Duration::ZERO));
    assert_eq!(valued.remaining(), Some(Duration::ZERO));
    assert_eq!(parent.remaining(), Some(50 * MS));
}

#[tokio::test(start_paused = true)]
async fn ensure_remaining_refuses_what_cannot_finish_and_never_ends_the_context() {
    let (ctx, _h) = Context::background().with_timeout(100 * MS);
    assert_eq!(
        ctx.ensure_remaining(100 * MS),
        Ok(()),
        "exactly enough is enough"
    );
    assert_eq!(ctx.ensure_remaining(101 * MS), Err(Error::DeadlineExceeded));
    assert_eq!(ctx.err(), None);
    assert_eq!(ctx.ensure_remaining(Duration::ZERO), Ok(()));
    tokio::time::sleep(100 * MS).await;
    assert_eq!(
        ctx.ensure_remaining(Duration::ZERO),
        Err(Error::DeadlineExceeded)
    );
}

#[tokio::test(start_paused = true)]
async fn ensure_remaining_reports_a_cancel_as_a_cancel() {
    let (ctx, handle) = Context::background().with_timeout(Duration::from_secs(1));
    handle.cancel();
    assert_eq!(ctx.ensure_remaining(Duration::ZERO), Err(Error::Canceled));
    assert_eq!(
        ctx.ensure_remaining(Duration::from_secs(5)),
        Err(Error::Canceled)
    );
}

#[cancellable(min_remaining = "50ms")]
async fn needs_50ms(started: Arc<AtomicBool>) -> Option<Duration> {
    started.store(true, Ordering::SeqCst);
    ctx.remaining()
}

#[tokio::test(start_paused = true)]
async fn min_remaining_starts_the_body_only_with_enough_time_left() {
    let started = Arc::new(AtomicBool::new(false));
    let (enough, _h) = Context::background().with_timeout(50 * MS);
    assert_eq!(
        needs_50ms(&enough, started.clone()).await,
        Ok(Some(50 * MS))
    );
    assert!(started.swap(false, Ordering::SeqCst));

    let (short, _h) = Context::background().with_timeout(49 * MS);
    assert_eq!(
        needs_50ms(&short, started.clone()).await,
        Err(Error::DeadlineExceeded)
    );
    assert!(!started.load(Ordering::SeqCst), "the body started");
    assert_eq!(short.err(), None, "the caller's context was ended");

    // No deadline: always enough.
    assert_eq!(
        needs_50ms(&Context::background(), started.clone()).await,
        Ok(None)
    );
    // Ended: the end's own reason.
    let (ended, handle) = Context::background().with_cancel();
    handle.cancel();
    assert_eq!(
        needs_50ms(&ended, started.clone()).await,
        Err(Error::Canceled)
    );
}

#[derive(Debug, PartialEq)]
enum AppError {
    Stopped(Error),
}

impl From<Error> for AppError {
    fn from(err: Error) -> AppError {
        AppError::Stopped(err)
    }
}

#[cancellable(timeout = "200ms", min_remaining = need)]
async fn within_own_timeout(need: Duration) -> Result<Instant, AppError> {
    Ok(Instant::now())
}

#[tokio::test(start_paused = true)]
async fn min_remaining_counts_against_the_childs_own_deadline_and_maps_the_error() {
    let bg = Context::background();
    assert!(within_own_timeout(&bg, 200 * MS).await.is_ok());
    assert_eq!(
        within_own_timeout(&bg, 201 * MS).await,
        Err(AppError::Stopped(Error::DeadlineExceeded))
    );
    // The caller's nearer deadline counts too.
    let (caller, _h) = bg.with_timeout(100 * MS);
    assert_eq!(
        within_own_timeout(&caller, 150 * MS).await,
        Err(AppError::Stopped(Error::DeadlineExceeded))
    );
}

#[cancellable(deadline = at, min_remaining = "1s")]
async fn until(at: Instant) {}

#[tokio::test(start_paused = true)]
async fn min_remaining_with_a_deadline() {
    let bg = Context::background();
    assert_eq!(
        until(&bg, Instant::now() + Duration::from_secs(2)).await,
        Ok(())
    );
    assert_eq!(
        until(&bg, Instant::now() + Duration::from_millis(999)).await,
        Err(Error::DeadlineExceeded)
    );
}
