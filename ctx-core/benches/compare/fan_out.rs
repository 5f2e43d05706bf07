//! Many tasks each waiting for its own context, all ended by one cancel: the driver shared by
//! the `fanout_*` and `scale_1m_timeout_tasks` benchmark cases and by the test-sized scale test
//! (`tests/scale_timeout_tasks.rs` includes this file), so the test checks exactly what the
//! benchmark times.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// What a fan-out run saw.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    /// Tasks whose wait ended as expected (the future returned `true`).
    pub(crate) ok: usize,
    /// Tasks whose wait ended otherwise.
    pub(crate) wrong: usize,
    /// From the first spawn until every task had polled its wait once (and was parked on it).
    pub(crate) setup: Duration,
    /// How long the cancel call itself took.
    pub(crate) cancel_call: Duration,
    /// From just before the cancel call until the controller saw the last task's wake.
    pub(crate) to_last_wake: Duration,
}

struct Counts {
    n: usize,
    parked: AtomicUsize,
    finished: AtomicUsize,
    ok: AtomicUsize,
    all_finished: Notify,
}

/// Spawns `n` tasks, each awaiting a future made by `make` (on the caller's task, in order), and
/// waits until every one of them is parked on it. Then sleeps `settle` (Go's benchmark sleeps
/// 50 ms so that every goroutine and processor goes idle), calls `at_parked`, calls `cancel` and
/// waits until every task has woken and finished.
///
/// Must run inside a task on a multi-thread runtime (as the canceller does on a Go P). A future
/// that completes on its first poll counts as parked, so the run cannot hang.
pub(crate) async fn fan_out<F>(
    n: usize,
    mut make: impl FnMut() -> F,
    settle: Duration,
    at_parked: impl FnOnce(),
    cancel: impl FnOnce(),
) -> Outcome
where
    F: Future<Output = bool> + Send + 'static,
{
    let counts = Arc::new(Counts {
        n,
        parked: AtomicUsize::new(0),
        finished: AtomicUsize::new(0),
        ok: AtomicUsize::new(0),
        all_finished: Notify::new(),
    });
    let t_setup = Instant::now();
    for _ in 0..n {
        let wait = make();
        let counts = counts.clone();
        tokio::spawn(async move {
            let mut wait = pin!(wait);
            let mut parked = false;
            let ok = poll_fn(|cx| {
                let poll = wait.as_mut().poll(cx);
                if !parked {
                    parked = true;
                    counts.parked.fetch_add(1, Ordering::Release);
                }
                poll
            })
            .await;
            if ok {
                counts.ok.fetch_add(1, Ordering::Relaxed);
            }
            if counts.finished.fetch_add(1, Ordering::AcqRel) + 1 == counts.n {
                counts.all_finished.notify_one();
            }
        });
    }
    while counts.parked.load(Ordering::Acquire) < n {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let setup = t_setup.elapsed();
    if !settle.is_zero() {
        tokio::time::sleep(settle).await;
    }
    at_parked();
    let t0 = Instant::now();
    cancel();
    let cancel_call = t0.elapsed();
    if n > 0 {
        // `notify_one` keeps a permit if the last task finished before this wait began.
        counts.all_finished.notified().await;
    }
    let to_last_wake = t0.elapsed();
    let ok = counts.ok.load(Ordering::Relaxed);
    Outcome {
        ok,
        wrong: n - ok,
        setup,
        cancel_call,
        to_last_wake,
    }
}
