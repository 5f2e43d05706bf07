//! Runtime behaviour of `#[cancellable]`, on tokio's paused clock: no test waits for real time.
//!
//! The lints below also keep the expansion honest: `cargo clippy --all-targets -- -D warnings`
//! lints every `#[cancellable]` fn here with them.

#![warn(clippy::pedantic, unused_qualifications)]

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ctx_core::{Context, Error, cancellable};
use tokio::time::{Instant, sleep};

const HOUR: Duration = Duration::from_hours(1);

/// Where a body got to: set by the body, read by the test.
#[derive(Default)]
struct Progress {
    started: AtomicBool,
    finished: AtomicBool,
    dropped: AtomicBool,
}

impl Progress {
    fn started(&self) -> bool {
        self.started.load(Ordering::SeqCst)
    }
    fn finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }
    fn dropped(&self) -> bool {
        self.dropped.load(Ordering::SeqCst)
    }
}

/// Marks `dropped` when the body's state is dropped, wherever it stopped.
struct DropFlag<'a>(&'a Progress);

impl Drop for DropFlag<'_> {
    fn drop(&mut self) {
        self.0.dropped.store(true, Ordering::SeqCst);
    }
}

/// Starts, waits `wait` at one `.await`, then finishes.
#[cancellable]
async fn step(progress: &Progress, wait: Duration) -> u32 {
    let _flag = DropFlag(progress);
    progress.started.store(true, Ordering::SeqCst);
    sleep(wait).await;
    progress.finished.store(true, Ordering::SeqCst);
    7
}

/// The same, with a timeout of its own.
#[cancellable(timeout = "5s")]
async fn step_within_5s(progress: &Progress, wait: Duration) -> u32 {
    let _flag = DropFlag(progress);
    progress.started.store(true, Ordering::SeqCst);
    sleep(wait).await;
    progress.finished.store(true, Ordering::SeqCst);
    7
}

#[cancellable(timeout = "5s")]
async fn deadline_seen_within_5s() -> Option<Instant> {
    ctx.deadline()
}

#[tokio::test(start_paused = true)]
async fn the_body_sees_the_nearer_deadline() {
    let start = Instant::now();
    let background = Context::background();
    assert_eq!(
        deadline_seen_within_5s(&background).await,
        Ok(Some(start + Duration::from_secs(5))),
    );

    let (far, _far) = background.with_timeout(Duration::from_secs(10));
    assert_eq!(
        deadline_seen_within_5s(&far).await,
        Ok(Some(start + Duration::from_secs(5))),
    );

    let (near, _near) = background.with_timeout(Duration::from_secs(2));
    assert_eq!(
        deadline_seen_within_5s(&near).await,
        Ok(Some(start + Duration::from_secs(2))),
    );
}

#[tokio::test(start_paused = true)]
async fn a_body_that_finishes_in_time_returns_its_value() {
    let progress = Progress::default();
    let ctx = Context::background();
    assert_eq!(
        step_within_5s(&ctx, &progress, Duration::from_secs(4)).await,
        Ok(7)
    );
    assert!(progress.finished() && progress.dropped());
}

#[tokio::test(start_paused = true)]
async fn the_timeout_stops_the_body_at_its_await() {
    let progress = Progress::default();
    let start = Instant::now();
    let result = step_within_5s(&Context::background(), &progress, HOUR).await;
    assert_eq!(result, Err(Error::DeadlineExceeded));
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert!(progress.started());
    assert!(!progress.finished(), "the code after the `.await` ran");
    assert!(progress.dropped(), "the body was not dropped");
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_caller_stops_the_body_at_its_await() {
    let progress = Arc::new(Progress::default());
    let (ctx, handle) = Context::background().with_cancel();
    let task = tokio::spawn({
        let progress = progress.clone();
        async move { step(&ctx, &progress, HOUR).await }
    });
    sleep(Duration::from_secs(1)).await;
    assert!(progress.started());
    handle.cancel();
    assert_eq!(task.await.unwrap(), Err(Error::Canceled));
    assert!(!progress.finished(), "the code after the `.await` ran");
    assert!(progress.dropped());
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_caller_stops_a_body_with_a_timeout() {
    let progress = Arc::new(Progress::default());
    let (ctx, handle) = Context::background().with_cancel();
    let task = tokio::spawn({
        let progress = progress.clone();
        async move { step_within_5s(&ctx, &progress, HOUR).await }
    });
    sleep(Duration::from_secs(1)).await;
    handle.cancel();
    assert_eq!(task.await.unwrap(), Err(Error::Canceled));
    assert!(progress.started() && !progress.finished() && progress.dropped());
}

#[tokio::test(start_paused = true)]
async fn an_ended_caller_never_starts_the_body() {
    let (cancelled, handle) = Context::background().with_cancel();
    handle.cancel();
    for result in [
        step(&cancelled, &Progress::default(), Duration::ZERO).await,
        step_within_5s(&cancelled, &Progress::default(), Duration::ZERO).await,
    ] {
        assert_eq!(result, Err(Error::Canceled));
    }
    let progress = Progress::default();
    let _ = step(&cancelled, &progress, Duration::ZERO).await;
    assert!(!progress.started());
    let _ = step_within_5s(&cancelled, &progress, Duration::ZERO).await;
    assert!(!progress.started());
}

#[tokio::test(start_paused = true)]
async fn a_caller_whose_deadline_passed_unobserved_never_starts_the_body() {
    let (expired, _handle) = Context::background().with_timeout(Duration::from_secs(1));
    // Nobody looks at `expired` while its deadline passes.
    sleep(Duration::from_secs(2)).await;
    let progress = Progress::default();
    let result = step(&expired, &progress, Duration::ZERO).await;
    assert_eq!(result, Err(Error::DeadlineExceeded));
    assert!(
        !progress.started(),
        "the body of a fn without options started"
    );

    let (expired, _handle) = Context::background().with_timeout(Duration::from_secs(1));
    sleep(Duration::from_secs(2)).await;
    let result = step_within_5s(&expired, &progress, Duration::ZERO).await;
    assert_eq!(result, Err(Error::DeadlineExceeded));
    assert!(
        !progress.started(),
        "the body of a fn with a timeout started"
    );
}

/// Returns the context the body saw, to check it after the call.
#[cancellable(timeout = "1h")]
async fn keep_child() -> Context {
    assert_eq!(ctx.err(), None, "the child ended before the body started");
    sleep(Duration::from_secs(1)).await;
    assert_eq!(ctx.err(), None, "the child ended while the body ran");
    ctx.clone()
}

#[tokio::test(start_paused = true)]
async fn the_child_lives_exactly_as_long_as_the_call() {
    let child = keep_child(&Context::background()).await.unwrap();
    assert_eq!(
        child.err(),
        Some(Error::Canceled),
        "the child outlived the call"
    );
}

#[cancellable(timeout = "10s")]
async fn outer(progress: &Progress) -> Result<u32, Error> {
    let (deadline, value) = (ctx.deadline(), inner(ctx, progress).await?);
    assert_eq!(ctx.deadline(), deadline);
    Ok(value)
}

#[cancellable(timeout = "1h")]
async fn inner(progress: &Progress) -> Result<u32, Error> {
    let _flag = DropFlag(progress);
    progress.started.store(true, Ordering::SeqCst);
    sleep(Duration::from_mins(1)).await;
    progress.finished.store(true, Ordering::SeqCst);
    Ok(1)
}

#[cancellable(timeout = "10s")]
async fn outer_deadline() -> Option<Instant> {
    inner_deadline(ctx).await.unwrap()
}

#[cancellable(timeout = "1h")]
async fn inner_deadline() -> Option<Instant> {
    ctx.deadline()
}

#[tokio::test(start_paused = true)]
async fn nested_calls_inherit_the_deadline() {
    let start = Instant::now();
    let seen = outer_deadline(&Context::background()).await;
    assert_eq!(seen, Ok(Some(start + Duration::from_secs(10))));

    let progress = Progress::default();
    let result = outer(&Context::background(), &progress).await;
    assert_eq!(result, Err(Error::DeadlineExceeded));
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    assert!(progress.started() && !progress.finished() && progress.dropped());
}

#[tokio::test(start_paused = true)]
async fn nested_calls_stop_when_the_root_is_cancelled() {
    let progress = Arc::new(Progress::default());
    let (root, handle) = Context::background().with_cancel();
    let task = tokio::spawn({
        let progress = progress.clone();
        async move { outer(&root, &progress).await }
    });
    sleep(Duration::from_secs(1)).await;
    assert!(progress.started());
    handle.cancel();
    assert_eq!(task.await.unwrap(), Err(Error::Canceled));
    assert!(!progress.finished() && progress.dropped());
}

#[derive(Debug, PartialEq)]
enum AppError {
    NotFound,
    Stopped(Error),
}

impl From<Error> for AppError {
    fn from(err: Error) -> Self {
        Self::Stopped(err)
    }
}

#[cancellable(timeout = "1s")]
async fn find(found: bool, wait: Duration) -> Result<u32, AppError> {
    sleep(wait).await;
    if !found {
        return Err(AppError::NotFound);
    }
    Ok(42)
}

#[cancellable(timeout = "1s")]
async fn read(wait: Duration) -> io::Result<Vec<u8>> {
    sleep(wait).await;
    Err(io::Error::other("disk on fire"))?;
    Ok(vec![])
}

#[cancellable(timeout = "1s")]
async fn unit(wait: Duration) {
    sleep(wait).await;
}

#[tokio::test(start_paused = true)]
async fn a_declared_result_keeps_its_error_type() {
    let ctx = Context::background();
    assert_eq!(find(&ctx, true, Duration::ZERO).await, Ok(42));
    assert_eq!(
        find(&ctx, false, Duration::ZERO).await,
        Err(AppError::NotFound)
    );
    assert_eq!(
        find(&ctx, true, HOUR).await,
        Err(AppError::Stopped(Error::DeadlineExceeded))
    );

    let err = read(&ctx, Duration::ZERO).await.unwrap_err();
    assert_eq!(err.to_string(), "disk on fire");
    let err = read(&ctx, HOUR).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
}

#[tokio::test(start_paused = true)]
async fn any_other_return_type_is_wrapped() {
    let ctx = Context::background();
    let finished: Result<u32, Error> = step(&ctx, &Progress::default(), Duration::ZERO).await;
    assert_eq!(finished, Ok(7));
    let unit_ok: Result<(), Error> = unit(&ctx, Duration::ZERO).await;
    assert_eq!(unit_ok, Ok(()));
    assert_eq!(unit(&ctx, HOUR).await, Err(Error::DeadlineExceeded));
}

static LIMITS_COMPUTED: AtomicUsize = AtomicUsize::new(0);

fn limit(secs: u64) -> Duration {
    LIMITS_COMPUTED.fetch_add(1, Ordering::SeqCst);
    Duration::from_secs(secs)
}

#[cancellable(timeout = limit(secs))]
async fn within(secs: u64) -> Option<Instant> {
    ctx.deadline()
}

#[tokio::test(start_paused = true)]
async fn a_timeout_expression_is_evaluated_on_every_call() {
    let ctx = Context::background();
    let start = Instant::now();
    assert_eq!(
        within(&ctx, 3).await,
        Ok(Some(start + Duration::from_secs(3)))
    );
    assert_eq!(
        within(&ctx, 8).await,
        Ok(Some(start + Duration::from_secs(8)))
    );
    assert_eq!(LIMITS_COMPUTED.load(Ordering::SeqCst), 2);
}

#[cancellable(deadline = at)]
async fn until(at: Instant, wait: Duration) -> Option<Instant> {
    sleep(wait).await;
    ctx.deadline()
}

#[tokio::test(start_paused = true)]
async fn a_deadline_expression_may_use_the_arguments() {
    let ctx = Context::background();
    let at = Instant::now() + Duration::from_secs(30);
    assert_eq!(until(&ctx, at, Duration::ZERO).await, Ok(Some(at)));
    assert_eq!(until(&ctx, at, HOUR).await, Err(Error::DeadlineExceeded));
    assert_eq!(Instant::now(), at);
}

#[cancellable(ctx = parent, timeout = "2s")]
async fn named(parent: &Context) -> Option<Instant> {
    parent.deadline()
}

#[cancellable(ctx = caller)]
async fn named_and_injected() -> bool {
    caller.is_done()
}

#[cancellable(timeout = "2s")]
async fn adopted_by_value(label: &str, ctx: Context) -> String {
    format!("{label}: {:?}", ctx.deadline().is_some())
}

#[tokio::test(start_paused = true)]
async fn the_context_parameter_can_be_named_or_declared() {
    let background = Context::background();
    let start = Instant::now();
    assert_eq!(
        named(&background).await,
        Ok(Some(start + Duration::from_secs(2)))
    );
    assert_eq!(named_and_injected(&background).await, Ok(false));
    assert_eq!(
        adopted_by_value("deadline", background.clone()).await,
        Ok("deadline: true".to_string())
    );
}

#[derive(Debug, Default)]
struct Counter {
    hits: u32,
}

impl Counter {
    #[cancellable(timeout = "1s")]
    async fn get(&self) -> u32 {
        self.hits
    }

    #[cancellable(timeout = "1s")]
    async fn hit(&mut self, wait: Duration) -> u32 {
        sleep(wait).await;
        self.hits += 1;
        self.hits
    }

    #[cancellable]
    async fn into_hits(self) -> u32 {
        self.hits
    }

    #[cancellable(timeout = "1s")]
    async fn shared(self: Arc<Self>) -> u32 {
        self.hits
    }
}

#[tokio::test(start_paused = true)]
async fn methods_take_the_context_after_self() {
    let ctx = Context::background();
    let mut counter = Counter::default();
    assert_eq!(counter.hit(&ctx, Duration::ZERO).await, Ok(1));
    assert_eq!(counter.hit(&ctx, HOUR).await, Err(Error::DeadlineExceeded));
    assert_eq!(
        counter.get(&ctx).await,
        Ok(1),
        "a stopped body changed `self`"
    );
    assert_eq!(Arc::new(Counter { hits: 3 }).shared(&ctx).await, Ok(3));
    assert_eq!(counter.into_hits(&ctx).await, Ok(1));
}

trait Store {
    async fn load(&self, ctx: &Context, key: u32) -> Result<u32, Error>;

    #[cancellable(timeout = "1s")]
    async fn load_twice(&self, key: u32) -> Result<u32, Error> {
        Ok(self.load(ctx, key).await? + self.load(ctx, key).await?)
    }
}

struct Slow;

impl Store for Slow {
    #[cancellable]
    async fn load(&self, ctx: &Context, key: u32) -> Result<u32, Error> {
        assert!(ctx.deadline().is_some());
        sleep(Duration::from_millis(600)).await;
        Ok(key)
    }
}

#[tokio::test(start_paused = true)]
async fn trait_methods_adopt_the_declared_context() {
    let ctx = Context::background();
    let start = Instant::now();
    assert_eq!(Slow.load_twice(&ctx, 5).await, Err(Error::DeadlineExceeded));
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    let (long, _handle) = ctx.with_timeout(HOUR);
    assert_eq!(Slow.load(&long, 5).await, Ok(5));
}

#[tokio::test(start_paused = true)]
async fn the_future_is_send_when_the_body_is() {
    fn assert_send<T: Send>(value: T) -> T {
        value
    }
    let ctx = Context::background();
    let progress = Arc::new(Progress::default());
    let task = tokio::spawn(assert_send(async move {
        step_within_5s(&ctx, &progress, Duration::from_secs(1)).await
    }));
    assert_eq!(task.await.unwrap(), Ok(7));
}

// The child of a call with a `timeout` or a `deadline` is kept on the call's stack and made a
// node of the tree only when something needs one (a clone, a derivation, `done()`, an
// after-func, a pending body). Whichever way it goes, it behaves as a child derived with
// `with_timeout`: these tests run under each kind of parent.

/// The parents a call can have: nothing to end it, one that can be cancelled, one with a
/// deadline (earlier than some attributes' here, later than others'), one carrying a value.
/// (Their handles are returned to keep them alive.)
fn parents() -> Vec<(&'static str, Context, Option<ctx_core::CancelHandle>)> {
    let (cancelable, cancel) = Context::background().with_cancel();
    let (sooner, sooner_handle) = Context::background().with_timeout(Duration::from_secs(30));
    let (valued, valued_handle) = Context::background().with_value(7u64).with_cancel();
    vec![
        ("background", Context::background(), None),
        ("a live with_cancel parent", cancelable, Some(cancel)),
        ("a parent with a 30 s deadline", sooner, Some(sooner_handle)),
        ("a parent with a value", valued, Some(valued_handle)),
    ]
}

/// A task that waits for a context to end.
struct Waiting(tokio::task::JoinHandle<Error>);

/// Hands a clone of its context to a task that waits for it to end, and returns at once.
#[cancellable(timeout = "1h")]
async fn hand_off() -> Waiting {
    let child = ctx.clone();
    Waiting(tokio::spawn(async move { child.done().await }))
}

#[tokio::test(start_paused = true)]
async fn a_clone_handed_to_a_task_ends_when_the_call_returns() {
    for (name, parent, _handle) in parents() {
        let Waiting(task) = hand_off(&parent).await.unwrap();
        assert_eq!(task.await.unwrap(), Error::Canceled, "under {name}");
        assert_eq!(parent.err(), None, "the call ended its parent ({name})");
    }
}

#[cancellable(timeout = "1h")]
async fn request_id() -> Option<u64> {
    ctx.value::<u64>().copied()
}

#[cancellable(timeout = "2h")]
async fn request_id_nested() -> Option<u64> {
    let through_a_clone = request_id(&ctx.clone()).await.unwrap();
    assert_eq!(request_id(ctx).await.unwrap(), through_a_clone);
    through_a_clone
}

#[tokio::test(start_paused = true)]
async fn the_body_sees_the_callers_values() {
    for (name, parent, _handle) in parents() {
        let expected = (name == "a parent with a value").then_some(7);
        assert_eq!(request_id(&parent).await, Ok(expected), "under {name}");
        assert_eq!(
            request_id_nested(&parent).await,
            Ok(expected),
            "under {name}"
        );
    }
}

/// Returns a clone of its context, and what it saw of it.
#[cancellable(timeout = "1h")]
async fn inner_clone() -> (Context, Option<Instant>) {
    (ctx.clone(), ctx.deadline())
}

#[cancellable(timeout = "10s")]
async fn outer_of_clone() -> (Context, Option<Instant>, Option<Error>) {
    let (inner, seen) = inner_clone(ctx).await.unwrap();
    // The inner call has returned: its child has ended, this one has not.
    assert_eq!(inner.err(), Some(Error::Canceled));
    (inner, seen, ctx.err())
}

#[tokio::test(start_paused = true)]
async fn a_nested_call_derives_from_the_outer_calls_child() {
    let start = Instant::now();
    for (name, parent, _handle) in parents() {
        let (inner, seen, outer_err) = outer_of_clone(&parent).await.unwrap();
        // The outer call's 10 s, nearer than every parent's.
        let nearer = start + Duration::from_secs(10);
        assert_eq!(seen, Some(nearer), "under {name}");
        assert_eq!(inner.deadline(), Some(nearer), "under {name}");
        assert_eq!(outer_err, None, "under {name}");
        assert_eq!(inner.err(), Some(Error::Canceled), "under {name}");
    }
}

/// Makes its (and the outer call's) node by cloning, then cancels the caller's parent.
#[cancellable(timeout = "2h")]
async fn inner_cancels(handle: &ctx_core::CancelHandle) -> (Context, Option<Error>) {
    let clone = ctx.clone();
    handle.cancel_with_cause("caller gone");
    (clone, ctx.err())
}

#[cancellable(timeout = "1h")]
async fn outer_cancels(handle: &ctx_core::CancelHandle) -> (Context, Option<Error>, Option<Error>) {
    let (inner, inner_err) = inner_cancels(ctx, handle).await.unwrap();
    (inner, inner_err, ctx.err())
}

#[tokio::test(start_paused = true)]
async fn a_parent_cancelled_inside_nested_calls_ends_both_with_its_cause() {
    let (with_cancel, handle) = Context::background().with_cancel();
    let (sooner, sooner_handle) = Context::background().with_timeout(Duration::from_secs(30));
    for (name, parent, handle) in [
        ("a live with_cancel parent", with_cancel, handle),
        ("a parent with a 30 s deadline", sooner, sooner_handle),
    ] {
        let (inner, inner_err, outer_err) = outer_cancels(&parent, &handle).await.unwrap();
        assert_eq!(inner_err, Some(Error::Canceled), "under {name}");
        assert_eq!(outer_err, Some(Error::Canceled), "under {name}");
        assert_eq!(
            inner.cause().unwrap().to_string(),
            "caller gone",
            "under {name}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_pending_body_stops_at_the_nearer_deadline_or_the_parents_cancel() {
    for (name, parent, handle) in parents() {
        let start = Instant::now();
        let progress = Progress::default();
        let result = step_within_5s(&parent, &progress, HOUR).await;
        assert_eq!(result, Err(Error::DeadlineExceeded), "under {name}");
        assert_eq!(start.elapsed(), Duration::from_secs(5), "under {name}");
        assert!(progress.started() && !progress.finished() && progress.dropped());

        let Some(handle) = handle else { continue };
        let progress = Arc::new(Progress::default());
        let task = tokio::spawn({
            let (parent, progress) = (parent.clone(), progress.clone());
            async move { step_within_5s(&parent, &progress, HOUR).await }
        });
        sleep(Duration::from_secs(1)).await;
        handle.cancel();
        assert_eq!(task.await.unwrap(), Err(Error::Canceled), "under {name}");
        assert!(progress.started() && !progress.finished() && progress.dropped());
    }

    // A parent whose deadline comes before the attribute's: the body stops at the parent's.
    let (sooner, _handle) = Context::background().with_timeout(Duration::from_secs(3));
    let start = Instant::now();
    let result = step_within_5s(&sooner, &Progress::default(), HOUR).await;
    assert_eq!(result, Err(Error::DeadlineExceeded));
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[cancellable(timeout = "1h")]
async fn register_after_func(ran: std::sync::mpsc::Sender<()>) -> ctx_core::AfterFunc {
    ctx.after_func(move || ran.send(()).unwrap())
}

#[tokio::test(start_paused = true)]
async fn an_after_func_registered_in_the_body_runs_when_the_call_returns() {
    for (name, parent, _handle) in parents() {
        let (ran, told) = std::sync::mpsc::channel();
        let after = register_after_func(&parent, ran).await.unwrap();
        // Started when the call returned (it runs on a thread of its own).
        assert!(!after.stop(), "under {name}");
        told.recv()
            .unwrap_or_else(|_| panic!("it never ran, under {name}"));
    }
}

// The real clock, for what a paused clock cannot show: time passing while a body runs without
// ever being pending (the child then has no node until it is looked at).

/// Runs past its deadline without an `.await`, then looks at its context.
#[cancellable(timeout = limit)]
async fn overrun(limit: Duration) -> (Option<Error>, Option<Error>, String) {
    std::thread::sleep(limit * 2);
    let err = ctx.err();
    let clone = ctx.clone();
    (err, clone.err(), ctx.cause().unwrap().to_string())
}

#[tokio::test]
async fn a_deadline_passed_in_the_body_is_seen_alike_by_the_context_and_its_clones() {
    for (name, parent, _handle) in parents() {
        let (err, clone_err, cause) = overrun(&parent, Duration::from_millis(20)).await.unwrap();
        assert_eq!(err, Some(Error::DeadlineExceeded), "under {name}");
        assert_eq!(clone_err, err, "under {name}");
        assert_eq!(cause, "context deadline exceeded", "under {name}");
    }
}

/// Cancels the caller's parent and lets its own deadline pass, in the order asked, without an
/// `.await`; reports what the child says, and whether the cancel returned before the deadline.
#[cancellable(timeout = limit)]
async fn cancel_and_overrun(
    limit: Duration,
    handle: &ctx_core::CancelHandle,
    cancel_first: bool,
) -> (Option<Error>, Option<Error>, String, bool) {
    let deadline = ctx.deadline().unwrap();
    let mut cancelled_before_the_deadline = false;
    if cancel_first {
        handle.cancel_with_cause("caller gone");
        cancelled_before_the_deadline = Instant::now() < deadline;
    }
    std::thread::sleep(limit * 2);
    if !cancel_first {
        handle.cancel_with_cause("caller gone");
    }
    let err = ctx.err();
    let clone = ctx.clone();
    (
        err,
        clone.err(),
        ctx.cause().unwrap().to_string(),
        cancelled_before_the_deadline,
    )
}

#[tokio::test]
async fn a_parents_cancel_and_the_deadline_in_one_synchronous_stretch_keep_their_order() {
    let limit = Duration::from_millis(50);
    // The deadline first, the cancel after: the deadline decided (the first end wins).
    let (parent, handle) = Context::background().with_cancel();
    let (err, clone_err, cause, _) = cancel_and_overrun(&parent, limit, &handle, false)
        .await
        .unwrap();
    assert_eq!(err, Some(Error::DeadlineExceeded));
    assert_eq!(clone_err, err);
    assert_eq!(cause, "context deadline exceeded");

    // The cancel first: it decided, with its cause (unless this machine stalled for the whole
    // 50 ms before the cancel returned, and then the deadline came first after all).
    let (parent, handle) = Context::background().with_cancel();
    let (err, clone_err, cause, cancel_came_first) =
        cancel_and_overrun(&parent, limit, &handle, true)
            .await
            .unwrap();
    assert_eq!(clone_err, err);
    if cancel_came_first {
        assert_eq!(err, Some(Error::Canceled));
        assert_eq!(cause, "caller gone");
    } else {
        assert_eq!(err, Some(Error::DeadlineExceeded));
    }
}

/// Runs past its deadline and its parent's without an `.await`, then reports its cause.
#[cancellable(timeout = limit)]
async fn overrun_both(limit: Duration, parents_limit: Duration) -> (Option<Error>, String) {
    std::thread::sleep(limit.max(parents_limit) * 2);
    (ctx.err(), ctx.cause().unwrap().to_string())
}

#[tokio::test]
async fn of_two_deadlines_passed_in_the_body_the_earlier_gives_the_cause() {
    let short = Duration::from_millis(10);
    let long = Duration::from_millis(100);
    // The attribute's deadline is the earlier: the child's own, with no cause of its own.
    let (parent, _handle) = Context::background().with_timeout_cause(long, "slow parent");
    let (err, cause) = overrun_both(&parent, short, long).await.unwrap();
    assert_eq!(err, Some(Error::DeadlineExceeded));
    assert_eq!(cause, "context deadline exceeded");
    // The parent's is the earlier: the child ends with the parent, and its cause.
    let (parent, _handle) = Context::background().with_timeout_cause(short, "slow parent");
    let (err, cause) = overrun_both(&parent, long, short).await.unwrap();
    assert_eq!(err, Some(Error::DeadlineExceeded));
    assert_eq!(cause, "slow parent");
}
