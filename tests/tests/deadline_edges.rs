//! Deadlines at the edge of what an `Instant` can hold (nothing panics on any input: rule 6 of
//! ctx-core's docs), and the reason of a context read while an end is still walking down to it
//! (the first end wins and is fixed forever: rule 1).

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Wake, Waker};
use std::time::Duration;

use ctx_core::{Context, Done, Error, cancellable};
use tokio::time::Instant;

/// The largest `Instant` after `from`, found with `checked_add` (the platform decides it).
fn largest_instant(from: Instant) -> Instant {
    let mut secs = 1u64;
    while from
        .checked_add(Duration::from_secs(secs.saturating_mul(2)))
        .is_some()
        && secs < u64::MAX / 2
    {
        secs *= 2;
    }
    let (mut low, mut high) = (secs, secs.saturating_mul(2));
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if from.checked_add(Duration::from_secs(mid)).is_some() {
            low = mid;
        } else {
            high = mid;
        }
    }
    let at = from + Duration::from_secs(low);
    let (mut low, mut high) = (0u32, 1_000_000_000u32);
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if at
            .checked_add(Duration::from_nanos(u64::from(mid)))
            .is_some()
        {
            low = mid;
        } else {
            high = mid;
        }
    }
    let largest = at + Duration::from_nanos(u64::from(low));
    assert!(largest.checked_add(Duration::from_nanos(1)).is_none());
    largest
}

const FIFTY_MS: Duration = Duration::from_millis(50);

#[tokio::test(start_paused = true)]
async fn done_with_the_largest_deadline_does_not_panic() {
    let (ctx, _h) = Context::background().with_deadline(largest_instant(Instant::now()));
    assert!(tokio::time::timeout(FIFTY_MS, ctx.done()).await.is_err());
    assert_eq!(ctx.err(), None);
}

#[tokio::test(start_paused = true)]
async fn done_with_a_deadline_in_the_last_millisecond_does_not_panic() {
    let now = Instant::now();
    let last_ms = largest_instant(now) - now - Duration::from_micros(500);
    let (ctx, _h) = Context::background().with_timeout(last_ms);
    assert!(ctx.deadline().is_some());
    assert!(tokio::time::timeout(FIFTY_MS, ctx.done()).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn run_with_a_deadline_in_the_last_millisecond_does_not_panic() {
    let largest = largest_instant(Instant::now());
    for before in [
        Duration::ZERO,
        Duration::from_nanos(1),
        Duration::from_micros(999),
    ] {
        let (ctx, _h) = Context::background().with_deadline(largest - before);
        let run = ctx.run(std::future::pending::<()>());
        assert!(tokio::time::timeout(FIFTY_MS, run).await.is_err());
    }
}

#[tokio::test(start_paused = true)]
async fn cancel_still_ends_a_wait_on_the_largest_deadline() {
    let (ctx, handle) = Context::background().with_deadline(largest_instant(Instant::now()));
    let waiter = tokio::spawn({
        let ctx = ctx.clone();
        async move { ctx.done().await }
    });
    tokio::time::sleep(FIFTY_MS).await;
    handle.cancel();
    assert_eq!(waiter.await.unwrap(), Error::Canceled);
}

#[cancellable(deadline = at)]
async fn wait_until(at: Instant) {
    std::future::pending::<()>().await;
}

#[tokio::test(start_paused = true)]
async fn cancellable_with_a_deadline_in_the_last_millisecond_does_not_panic() {
    let largest = largest_instant(Instant::now());
    let background = Context::background();
    let call = wait_until(&background, largest - Duration::from_micros(1));
    assert!(tokio::time::timeout(FIFTY_MS, call).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn the_after_func_timer_of_the_largest_deadline_does_not_panic() {
    let (ctx, handle) = Context::background().with_deadline(largest_instant(Instant::now()));
    let (ran, told) = std::sync::mpsc::channel();
    let _after = ctx.after_func(move || ran.send(()).unwrap());
    tokio::time::sleep(FIFTY_MS).await;
    // The timer task is still there, waiting: it did not panic.
    let metrics = tokio::runtime::Handle::current().metrics();
    assert_eq!(metrics.num_alive_tasks(), 1);
    handle.cancel();
    told.recv().unwrap();
}

/// A waker that runs `f` when woken: user code that runs inside a cancel's walk.
struct OnWake<F>(Mutex<Option<F>>);

impl<F: FnOnce() + Send> Wake for OnWake<F> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(f) = self.0.lock().unwrap().take() {
            f();
        }
    }
}

/// Registers `f` to run, as a waker of `ctx`, in the walk that ends `ctx`.
fn on_end_walk(ctx: &Context, f: impl FnOnce() + Send + Sync + 'static) -> Pin<Box<Done>> {
    let waker = Waker::from(Arc::new(OnWake(Mutex::new(Some(f)))));
    let mut done = Box::pin(ctx.done());
    assert!(
        done.as_mut()
            .poll(&mut TaskContext::from_waker(&waker))
            .is_pending()
    );
    done
}

/// Moves the paused clock on at once, from synchronous code inside the runtime.
fn advance_now(by: Duration) {
    let mut advance = pin!(tokio::time::advance(by));
    let _ = advance
        .as_mut()
        .poll(&mut TaskContext::from_waker(Waker::noop()));
}

#[tokio::test(start_paused = true)]
async fn a_reason_read_inside_the_walk_is_the_reason_the_walk_gives() {
    let (root, handle) = Context::background().with_timeout(Duration::from_secs(10));
    let (child, _h) = root.with_cancel();
    let seen = Arc::new(Mutex::new(None));
    let record = seen.clone();
    let reader = child.clone();
    let _done = on_end_walk(&root, move || {
        // The cancel was decided before the deadline; the deadline passes while the walk is
        // still on its way down to `child`.
        advance_now(Duration::from_secs(20));
        let cause = reader.cause().map(|c| c.to_string());
        *record.lock().unwrap() = Some((reader.err(), cause));
    });
    handle.cancel_with_cause("shutting down");
    let seen = seen.lock().unwrap().take().expect("the waker ran");
    assert_eq!(child.err(), Some(Error::Canceled));
    assert_eq!(child.cause().unwrap().to_string(), "shutting down");
    assert_eq!(
        seen,
        (Some(Error::Canceled), Some("shutting down".to_string()))
    );
}

#[tokio::test(start_paused = true)]
async fn a_child_derived_inside_the_walk_gets_the_walks_reason_and_cause() {
    let (root, handle) = Context::background().with_timeout(Duration::from_secs(10));
    let (child, _h) = root.with_cancel();
    let derived = Arc::new(Mutex::new(None));
    let keep = derived.clone();
    let parent = child.clone();
    let _done = on_end_walk(&root, move || {
        advance_now(Duration::from_secs(20));
        *keep.lock().unwrap() = Some(parent.with_cancel());
    });
    handle.cancel_with_cause("shutting down");
    let (grandchild, _g) = derived.lock().unwrap().take().expect("the waker ran");
    assert_eq!(grandchild.err(), Some(Error::Canceled));
    assert_eq!(grandchild.cause().unwrap().to_string(), "shutting down");
}

#[tokio::test(start_paused = true)]
async fn a_cancel_reads_the_clock_when_it_is_decided_not_later_in_its_walk() {
    let (root, handle) = Context::background().with_cancel();
    let (child, _h) = root.with_timeout(Duration::from_secs(10));
    let _done = on_end_walk(&root, || advance_now(Duration::from_secs(20)));
    // Cancelled at 0 s; the walk reaches `child` after its deadline (10 s) has passed.
    handle.cancel();
    assert_eq!(child.err(), Some(Error::Canceled));
}
