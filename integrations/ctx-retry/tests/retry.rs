//! `retry`, `retry_when` and `hedge` on tokio's paused clock: what stops them, what they keep,
//! and when they sleep.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ctx_core::{Context, Error};
use ctx_retry::backon::{ConstantBuilder, ExponentialBuilder};
use ctx_retry::{RetryError, hedge, retry};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

/// Counts the attempts that were dropped before they finished.
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn every(ms: u64, times: usize) -> ConstantBuilder {
    ConstantBuilder::default()
        .with_delay(MS * ms as u32)
        .with_max_times(times)
}

#[tokio::test(start_paused = true)]
async fn succeeds_after_failures_sleeping_the_policys_delays() {
    let start = Instant::now();
    let mut calls = 0;
    let got = retry(&Context::background(), every(10, 5), |_| {
        calls += 1;
        let n = calls;
        async move { if n < 3 { Err("busy") } else { Ok(n) } }
    })
    .await
    .unwrap();
    assert_eq!(got, 3);
    assert_eq!(start.elapsed(), 20 * MS, "two sleeps of 10 ms");
}

#[tokio::test(start_paused = true)]
async fn the_policy_running_out_keeps_the_last_error() {
    let mut calls = 0;
    let err = retry(&Context::background(), every(1, 2), |_| {
        calls += 1;
        let n = calls;
        async move { Err::<(), _>(format!("failure {n}")) }
    })
    .await
    .unwrap_err();
    assert!(
        matches!(&err, RetryError::Exhausted { attempts: 3, .. }),
        "{err:?}"
    );
    assert_eq!(err.last_error().map(String::as_str), Some("failure 3"));
    assert_eq!(err.to_string(), "gave up after 3 attempts: failure 3");
}

#[tokio::test(start_paused = true)]
async fn a_sleep_that_would_end_past_the_deadline_is_not_started() {
    let (ctx, _h) = Context::background().with_timeout(100 * MS);
    let start = Instant::now();
    let policy = ExponentialBuilder::default()
        .with_min_delay(30 * MS)
        .with_factor(2.0)
        .with_max_times(10);
    let err = retry(&ctx, policy, |_| async { Err::<(), _>("down") })
        .await
        .unwrap_err();
    // Attempts at 0 and 30 ms; the next sleep (60 ms) would end at 90 ms: allowed, attempt 3;
    // then 120 ms would end past 100 ms.
    match &err {
        RetryError::NoTimeLeft {
            attempts,
            next_delay,
            left,
            ..
        } => {
            assert_eq!(*attempts, 3);
            // backon computes the delays in f32: 120 ms may come out a few ns short.
            assert!(next_delay.abs_diff(120 * MS) < MS, "{next_delay:?}");
            assert!(left.abs_diff(10 * MS) < MS, "{left:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        start.elapsed(),
        90 * MS,
        "returned at once, without the last sleep"
    );
    assert_eq!(
        ctx.err(),
        None,
        "the context did not end: the error must not say it did"
    );
}

#[tokio::test(start_paused = true)]
async fn the_contexts_end_stops_an_attempt_in_flight() {
    let (ctx, _h) = Context::background().with_timeout_cause(50 * MS, "lookup budget");
    let dropped = Arc::new(AtomicUsize::new(0));
    let err = retry(&ctx, every(1, 5), |_| {
        let guard = DropCount(dropped.clone());
        async move {
            let _guard = guard;
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<(), std::io::Error>(())
        }
    })
    .await
    .unwrap_err();
    assert_eq!(err.context_err(), Some(Error::DeadlineExceeded));
    assert!(matches!(
        &err,
        RetryError::Context {
            last: None,
            attempts: 1,
            ..
        }
    ));
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "the attempt was dropped");
    assert_eq!(
        err.to_string(),
        "stopped after 1 attempt: context deadline exceeded"
    );
    let source = std::error::Error::source(&err).map(ToString::to_string);
    assert_eq!(source.as_deref(), Some("lookup budget"));
}

#[tokio::test(start_paused = true)]
async fn a_cancel_during_a_backoff_sleep_keeps_the_last_attempts_error() {
    let (ctx, handle) = Context::background().with_cancel();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(15 * MS).await;
        handle.cancel_with_cause("client went away");
    });
    let err = retry(&ctx, every(10, 5), |_| async {
        Err::<(), _>(std::io::Error::other("refused"))
    })
    .await
    .unwrap_err();
    canceller.await.unwrap();
    assert!(
        matches!(&err, RetryError::Context { attempts: 2, .. }),
        "{err:?}"
    );
    assert_eq!(err.context_err(), Some(Error::Canceled));
    assert_eq!(err.last_error().unwrap().to_string(), "refused");
    // The chain goes on with the last attempt's error.
    let source = std::error::Error::source(&err).map(ToString::to_string);
    assert_eq!(source.as_deref(), Some("refused"));
}

#[tokio::test(start_paused = true)]
async fn an_ended_context_makes_no_attempt() {
    let (ctx, handle) = Context::background().with_cancel();
    handle.cancel();
    let mut calls = 0;
    let err = retry(&ctx, every(1, 5), |_| {
        calls += 1;
        async { Ok::<(), &str>(()) }
    })
    .await
    .unwrap_err();
    assert_eq!(calls, 0);
    assert!(matches!(
        &err,
        RetryError::Context {
            last: None,
            attempts: 0,
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn an_attempt_failing_as_the_context_ends_is_the_contexts_end() {
    // The attempt sees its context end (as a query cancelled by it would) and fails.
    let (ctx, _h) = Context::background().with_timeout(10 * MS);
    let err = retry(&ctx, every(1, 5), |attempt_ctx| async move {
        attempt_ctx.done().await;
        Err::<(), _>("query canceled")
    })
    .await
    .unwrap_err();
    assert_eq!(err.context_err(), Some(Error::DeadlineExceeded));
    assert_eq!(err.attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_hedge_wins_with_the_first_success_and_cancels_the_others() {
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let got = hedge(&Context::background(), 20 * MS, 3, |attempt_ctx, n| {
        attempts.lock().unwrap().push((n, attempt_ctx.clone()));
        async move {
            let took = [100, 30, 100][n] * MS;
            attempt_ctx.run(tokio::time::sleep(took)).await?;
            Ok::<_, Error>(n)
        }
    })
    .await
    .unwrap();
    // Attempt 0 at 0 ms (done at 100), attempt 1 at 20 ms (done at 50), attempt 2 at 40 ms.
    assert_eq!(got, 1);
    assert_eq!(start.elapsed(), 50 * MS);
    let attempts = attempts.lock().unwrap();
    assert_eq!(attempts.len(), 3);
    for (n, attempt_ctx) in attempts.iter() {
        let cause = attempt_ctx.cause().map(|cause| cause.to_string());
        if *n == 1 {
            // The winner's context ends with its handle, as any finished call's.
            assert_eq!(attempt_ctx.err(), Some(Error::Canceled));
        } else {
            assert_eq!(cause.as_deref(), Some("another attempt won"), "attempt {n}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_hedge_starts_the_next_attempt_at_once() {
    let start = Instant::now();
    let got = hedge(
        &Context::background(),
        Duration::from_secs(10),
        2,
        |_, n| async move { if n == 0 { Err("replica down") } else { Ok(n) } },
    )
    .await
    .unwrap();
    assert_eq!(got, 1);
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "no wait for the hedge delay"
    );
}

#[tokio::test(start_paused = true)]
async fn every_hedge_failing_returns_the_last_failure() {
    let err = hedge(&Context::background(), 5 * MS, 3, |_, n| async move {
        Err::<(), _>(format!("replica {n} down"))
    })
    .await
    .unwrap_err();
    assert!(
        matches!(&err, RetryError::Exhausted { attempts: 3, .. }),
        "{err:?}"
    );
    assert_eq!(err.last_error().unwrap(), "replica 2 down");
}

#[tokio::test(start_paused = true)]
async fn the_contexts_end_stops_every_hedge() {
    let (ctx, _h) = Context::background().with_timeout(30 * MS);
    let dropped = Arc::new(AtomicUsize::new(0));
    let err = hedge(&ctx, 10 * MS, 5, |_, _| {
        let guard = DropCount(dropped.clone());
        async move {
            let _guard = guard;
            std::future::pending::<Result<(), &str>>().await
        }
    })
    .await
    .unwrap_err();
    assert_eq!(err.context_err(), Some(Error::DeadlineExceeded));
    assert_eq!(err.attempts(), 3, "attempts at 0, 10 and 20 ms");
    assert_eq!(dropped.load(Ordering::SeqCst), 3, "all of them dropped");
}
