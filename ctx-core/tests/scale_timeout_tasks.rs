//! Scale: many tasks on a multi-thread runtime, each awaiting its own `with_timeout`
//! context, all ended by one root cancel. This is the test-sized run (100,000 tasks); the
//! benchmark-sized one (1,000,000, timed, with peak memory) is the `scale_1m_timeout_tasks` case
//! of `benches/compare.rs`, which runs the same driver. No timing is asserted here.

use std::time::Duration;

use ctx_core::{Context, Error};

#[allow(dead_code)]
#[path = "../benches/compare/fan_out.rs"]
mod fan_out;

const TASKS: usize = 100_000;

#[test]
fn a_root_cancel_wakes_every_task_waiting_on_its_own_timeout_context() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let outcome = rt.block_on(async {
        tokio::spawn(async {
            let (root, handle) = Context::background().with_cancel();
            let make = || {
                let root = root.clone();
                async move {
                    // An hour: only the root's cancel can end it within the test.
                    let (ctx, _handle) = root.with_timeout(Duration::from_secs(3600));
                    assert!(ctx.deadline().is_some());
                    let err = ctx.done().await;
                    err == Error::Canceled
                        && ctx.err() == Some(Error::Canceled)
                        && ctx.cause().is_some_and(|c| c.to_string() == "shutdown")
                }
            };
            let outcome = fan_out::fan_out(
                TASKS,
                make,
                Duration::ZERO,
                || assert!(!root.is_done()),
                || handle.cancel_with_cause("shutdown"),
            )
            .await;
            assert_eq!(root.err(), Some(Error::Canceled));
            outcome
        })
        .await
        .unwrap()
    });
    assert_eq!(outcome.wrong, 0, "tasks that woke with another error");
    assert_eq!(outcome.ok, TASKS);
}
