//! `Group`: Go's errgroup.WithContext.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ctx_core::{Context, Error, Group};

#[derive(Debug, PartialEq)]
struct Failed(&'static str);

#[tokio::test(start_paused = true)]
async fn all_ok_returns_ok_and_ends_the_context() {
    let mut group = Group::<Failed>::new(&Context::background());
    let gctx = group.context().clone();
    let done = Arc::new(AtomicUsize::new(0));
    for i in 0..5 {
        let done = done.clone();
        group.spawn(async move {
            tokio::time::sleep(Duration::from_millis(i * 10)).await;
            done.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
    }
    assert_eq!(group.wait().await, Ok(()));
    assert_eq!(done.load(Ordering::SeqCst), 5);
    assert_eq!(gctx.err(), Some(Error::Canceled));
}

#[tokio::test(start_paused = true)]
async fn the_first_error_cancels_the_rest_and_is_returned() {
    let mut group = Group::new(&Context::background());
    let gctx = group.context().clone();
    let stopped = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let (gctx, stopped) = (gctx.clone(), stopped.clone());
        group.spawn(async move {
            if gctx
                .run(tokio::time::sleep(Duration::from_secs(60)))
                .await
                .is_err()
            {
                stopped.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        });
    }
    group.spawn(async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Err(Failed("first"))
    });
    group.spawn(async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Err(Failed("second"))
    });
    let start = tokio::time::Instant::now();
    assert_eq!(group.wait().await, Err(Failed("first")));
    assert_eq!(stopped.load(Ordering::SeqCst), 3);
    assert!(start.elapsed() < Duration::from_secs(60));
    assert!(gctx.is_done());
}

#[tokio::test(start_paused = true)]
async fn the_group_context_is_a_child_of_the_parent() {
    let (parent, handle) = Context::background().with_value(7u8).with_cancel();
    let group = Group::<Failed>::new(&parent);
    assert_eq!(group.context().value::<u8>(), Some(&7));
    handle.cancel_with_cause("parent gone");
    assert_eq!(group.context().err(), Some(Error::Canceled));
    assert_eq!(group.context().cause().unwrap().to_string(), "parent gone");
}

#[tokio::test(start_paused = true)]
async fn a_panic_is_resumed_by_wait_after_the_others_were_cancelled() {
    let mut group = Group::<Failed>::new(&Context::background());
    let gctx = group.context().clone();
    let stopped = Arc::new(AtomicUsize::new(0));
    {
        let (gctx, stopped) = (gctx.clone(), stopped.clone());
        group.spawn(async move {
            let _ = gctx.done().await;
            stopped.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
    }
    group.spawn(async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        panic!("task panics on purpose")
    });
    let waited = tokio::spawn(group.wait()).await;
    let payload = waited.unwrap_err().into_panic();
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"task panics on purpose")
    );
    assert_eq!(stopped.load(Ordering::SeqCst), 1);
    assert!(gctx.is_done());
}

#[tokio::test(start_paused = true)]
async fn a_panic_wins_over_an_earlier_error_and_the_first_panic_is_resumed() {
    let mut group = Group::<Failed>::new(&Context::background());
    // Every task has started before the error: a task not yet started when the group fails
    // never starts at all.
    group.spawn(async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        Err(Failed("error first"))
    });
    group.spawn(async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        panic!("first panic")
    });
    group.spawn(async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        panic!("second panic")
    });
    let waited = AssertUnwindSafe(tokio::spawn(group.wait())).await;
    let payload = waited.unwrap_err().into_panic();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"first panic"));
}

#[tokio::test(start_paused = true)]
async fn set_limit_bounds_the_running_tasks_and_spawn_never_blocks() {
    let mut group = Group::<Failed>::new(&Context::background());
    group.set_limit(3);
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    for _ in 0..20 {
        let (running, peak, finished) = (running.clone(), peak.clone(), finished.clone());
        // Would hang here if spawn blocked: nothing runs until this loop ends.
        group.spawn(async move {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(10)).await;
            running.fetch_sub(1, Ordering::SeqCst);
            finished.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
    }
    assert_eq!(group.wait().await, Ok(()));
    assert_eq!(finished.load(Ordering::SeqCst), 20);
    assert_eq!(peak.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn queued_tasks_never_start_once_the_group_has_failed() {
    let mut group = Group::new(&Context::background());
    group.set_limit(1);
    let started = Arc::new(AtomicUsize::new(0));
    group.spawn(async { Err(Failed("boom")) });
    for _ in 0..5 {
        let started = started.clone();
        group.spawn(async move {
            started.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
    }
    assert_eq!(group.wait().await, Err(Failed("boom")));
    assert_eq!(started.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_group_cancels_its_context_and_aborts_its_tasks() {
    let mut group = Group::<Failed>::new(&Context::background());
    let gctx = group.context().clone();
    let alive = Arc::new(());
    {
        let alive = alive.clone();
        group.spawn(async move {
            let _alive = alive;
            std::future::pending::<()>().await;
            Ok(())
        });
    }
    tokio::task::yield_now().await;
    assert_eq!(Arc::strong_count(&alive), 2);
    drop(group);
    assert_eq!(gctx.err(), Some(Error::Canceled));
    tokio::task::yield_now().await;
    assert_eq!(Arc::strong_count(&alive), 1, "the task outlived its group");
}

#[derive(Clone, Debug, PartialEq)]
struct NotFound(u32);

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "album {} not found", self.0)
    }
}

impl std::error::Error for NotFound {}

#[tokio::test(start_paused = true)]
async fn with_cause_the_first_error_is_the_contexts_cause() {
    let (parent, _p) = Context::background().with_cancel();
    let mut group = Group::with_cause(&parent);
    let gctx = group.context().clone();
    group.spawn(async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Err(NotFound(1))
    });
    group.spawn(async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Err(NotFound(2))
    });
    let (child, _c) = gctx.with_cancel();
    assert_eq!(group.wait().await, Err(NotFound(1)));
    assert_eq!(gctx.err(), Some(Error::Canceled));
    for ctx in [&gctx, &child] {
        let cause = ctx.cause().unwrap();
        assert_eq!(cause.downcast_ref::<NotFound>(), Some(&NotFound(1)));
        assert_eq!(cause.to_string(), "album 1 not found");
    }
    assert_eq!(parent.err(), None);
}

#[tokio::test(start_paused = true)]
async fn without_with_cause_the_cause_says_a_task_failed() {
    let mut group = Group::<NotFound>::new(&Context::background());
    let gctx = group.context().clone();
    group.spawn(async { Err(NotFound(1)) });
    assert_eq!(group.wait().await, Err(NotFound(1)));
    assert_eq!(
        gctx.cause().unwrap().to_string(),
        "a task of the group failed"
    );
}

#[tokio::test(start_paused = true)]
async fn with_cause_a_cleanly_finished_group_has_no_error_cause() {
    let mut group = Group::<NotFound>::with_cause(&Context::background());
    let gctx = group.context().clone();
    group.spawn(async { Ok(()) });
    assert_eq!(group.wait().await, Ok(()));
    assert_eq!(
        gctx.cause().unwrap().downcast_ref::<Error>(),
        Some(&Error::Canceled)
    );
}

#[tokio::test(start_paused = true)]
async fn try_spawn_starts_only_when_a_slot_is_free_now() {
    let mut group = Group::<Failed>::new(&Context::background());
    // No limit: always.
    assert!(group.try_spawn(async { Ok(()) }));
    group.set_limit(2);
    let (release, gate) = tokio::sync::watch::channel(false);
    let ran = Arc::new(AtomicUsize::new(0));
    let hold = |ran: Arc<AtomicUsize>, mut gate: tokio::sync::watch::Receiver<bool>| async move {
        gate.wait_for(|open| *open).await.unwrap();
        ran.fetch_add(1, Ordering::SeqCst);
        Ok(())
    };
    assert!(group.try_spawn(hold(ran.clone(), gate.clone())));
    assert!(group.try_spawn(hold(ran.clone(), gate.clone())));
    assert!(
        !group.try_spawn(hold(ran.clone(), gate.clone())),
        "both slots are taken"
    );
    // A queued `spawn` waits for a slot; `try_spawn` does not jump the queue.
    group.spawn(hold(ran.clone(), gate.clone()));
    assert!(!group.try_spawn(hold(ran.clone(), gate.clone())));
    release.send(true).unwrap();
    assert_eq!(group.wait().await, Ok(()));
    assert_eq!(ran.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn try_spawn_refuses_once_the_group_has_ended() {
    let mut group = Group::<Failed>::new(&Context::background());
    group.spawn(async { Err(Failed("first")) });
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    assert!(group.context().is_done());
    let ran = Arc::new(AtomicUsize::new(0));
    let counted = ran.clone();
    assert!(!group.try_spawn(async move {
        counted.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }));
    assert_eq!(group.wait().await, Err(Failed("first")));
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_cancels_waits_the_grace_and_aborts_and_names_the_overrunning_tasks() {
    let mut group = Group::<Failed>::new(&Context::background());
    let gctx = group.context().clone();
    let aborted = Arc::new(AtomicUsize::new(0));
    struct CountDrop(Arc<AtomicUsize>);
    impl Drop for CountDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    // 0: stops when told. 1: takes 2 s after being told (within the grace). 2 and 3: ignore
    // their context for an hour.
    let ctx0 = gctx.clone();
    group.spawn(async move {
        ctx0.done().await;
        Ok(())
    });
    let ctx1 = gctx.clone();
    group.spawn(async move {
        ctx1.done().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(())
    });
    for _ in 0..2 {
        let guard = CountDrop(aborted.clone());
        group.spawn(async move {
            let _guard = guard;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        });
    }
    tokio::task::yield_now().await;
    let start = tokio::time::Instant::now();
    let report = group.shutdown(Duration::from_secs(5)).await;
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(report.result, Ok(()));
    assert_eq!(report.overran, vec![2, 3]);
    assert_eq!(
        aborted.load(Ordering::SeqCst),
        2,
        "the overrunning tasks were dropped"
    );
    assert_eq!(
        gctx.cause().unwrap().to_string(),
        "the group is shutting down"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_returns_as_soon_as_every_task_has_stopped() {
    let mut group = Group::<Failed>::new(&Context::background());
    let gctx = group.context().clone();
    group.spawn(async move {
        gctx.done().await;
        Err(Failed("stopped badly"))
    });
    // Started (a task not started when the context ends never starts).
    tokio::task::yield_now().await;
    let start = tokio::time::Instant::now();
    let report = group.shutdown(Duration::from_secs(60)).await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(report.result, Err(Failed("stopped badly")));
    assert!(report.overran.is_empty());
}

#[tokio::test(start_paused = true)]
async fn shutdown_does_not_count_queued_tasks_that_never_started() {
    let mut group = Group::<Failed>::new(&Context::background());
    group.set_limit(1);
    group.spawn(async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(())
    });
    group.spawn(async { Ok(()) });
    tokio::task::yield_now().await;
    let report = group.shutdown(Duration::from_secs(1)).await;
    assert_eq!(report.overran, vec![0]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_keeps_an_earlier_error_as_the_cause() {
    let mut group = Group::<NotFound>::with_cause(&Context::background());
    let gctx = group.context().clone();
    group.spawn(async { Err(NotFound(9)) });
    tokio::task::yield_now().await;
    let report = group.shutdown(Duration::from_secs(1)).await;
    assert_eq!(report.result, Err(NotFound(9)));
    assert_eq!(
        gctx.cause().unwrap().downcast_ref::<NotFound>(),
        Some(&NotFound(9))
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_resumes_a_panic_after_aborting_the_rest() {
    let mut group = Group::<Failed>::new(&Context::background());
    group.spawn(async { panic!("a task panics on purpose") });
    group.spawn(async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(())
    });
    let caught = tokio::spawn(group.shutdown(Duration::from_secs(1))).await;
    let payload = caught.unwrap_err().into_panic();
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"a task panics on purpose")
    );
}
