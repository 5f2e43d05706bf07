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
