//! Faults: panics and cancels from unexpected places leave every other context working and
//! lose no wake-up. (A panicking after-func and a panicking `Group` task are in `after_func.rs`
//! and `group.rs`.)

use std::future::Future;

use std::sync::{Arc, mpsc};
use std::time::Duration;

use ctx_core::{CancelHandle, Context, Error};

/// Runs `f` on its own thread and fails if it does not finish in time (a deadlock).
fn within(limit: Duration, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    rx.recv_timeout(limit)
        .expect("deadlock: did not finish in time");
}

struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("a Drop in the cancelled body panics on purpose");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_drop_inside_a_cancelled_body_harms_nothing_else() {
    let (ctx, handle) = Context::background().with_cancel();
    let bomb = ctx.spawn(async {
        let _bomb = PanicOnDrop;
        std::future::pending::<()>().await;
    });
    let other_waiter = {
        let ctx = ctx.clone();
        tokio::spawn(async move { ctx.done().await })
    };
    let (sibling, _sibling_handle) = Context::background().with_timeout(Duration::from_secs(1));
    let sibling = tokio::spawn(async move { sibling.done().await });
    tokio::task::yield_now().await;
    handle.cancel();
    let joined = bomb.await;
    assert!(
        joined.unwrap_err().is_panic(),
        "the body's Drop panic surfaces in its own task"
    );
    assert_eq!(other_waiter.await.unwrap(), Error::Canceled);
    assert_eq!(sibling.await.unwrap(), Error::DeadlineExceeded);
    let (child, _h) = ctx.with_cancel();
    assert!(child.is_done());
}

struct CancelOnDrop(Option<CancelHandle>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.cancel_with_cause("cancelled from a Drop");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_cancel_from_the_drop_of_a_cancelled_body_reaches_its_waiters() {
    let (ctx, handle) = Context::background().with_cancel();
    let (other, other_handle) = Context::background().with_cancel();
    let body = ctx.spawn(async move {
        let _guard = CancelOnDrop(Some(other_handle));
        std::future::pending::<()>().await;
    });
    let waiter = {
        let other = other.clone();
        tokio::spawn(async move { other.done().await })
    };
    tokio::task::yield_now().await;
    handle.cancel();
    assert_eq!(body.await.unwrap(), Err(Error::Canceled));
    assert_eq!(waiter.await.unwrap(), Error::Canceled);
    assert_eq!(other.cause().unwrap().to_string(), "cancelled from a Drop");
}

/// A waker whose `wake` cancels a context: user code that runs inside the cancel walk.
struct CancellingWaker(std::sync::Mutex<Option<Arc<CancelHandle>>>);

impl std::task::Wake for CancellingWaker {
    fn wake(self: Arc<Self>) {
        let handle = self.0.lock().unwrap().take();
        if let Some(handle) = handle {
            handle.cancel_with_cause("cancelled from a waker");
        }
    }
}

#[test]
fn a_cancel_from_inside_the_cancel_walk_does_not_deadlock() {
    within(Duration::from_secs(10), || {
        let (root, root_handle) = Context::background().with_cancel();
        let root_handle = Arc::new(root_handle);
        let (child, _child_handle) = root.with_cancel();
        let (sibling, _sibling_handle) = root.with_cancel();
        // The waiter on `child` is woken by the root's walk, and its wake cancels the root
        // again, from inside that walk, while the root has not settled yet.
        let waker = std::task::Waker::from(Arc::new(CancellingWaker(std::sync::Mutex::new(Some(
            root_handle.clone(),
        )))));
        let mut done = child.done();
        let polled =
            std::pin::Pin::new(&mut done).poll(&mut std::task::Context::from_waker(&waker));
        assert!(polled.is_pending());
        root_handle.cancel();
        assert_eq!(root.err(), Some(Error::Canceled));
        assert_eq!(child.err(), Some(Error::Canceled));
        assert_eq!(sibling.err(), Some(Error::Canceled));
        assert_eq!(
            root.cause().unwrap().downcast_ref::<Error>(),
            Some(&Error::Canceled)
        );
    });
}

#[test]
fn cancelling_from_many_threads_while_after_funcs_cancel_back() {
    within(Duration::from_secs(30), || {
        for _ in 0..200 {
            let (a, a_handle) = Context::background().with_cancel();
            let (b, b_handle) = Context::background().with_cancel();
            let (a_handle, b_handle) = (Arc::new(a_handle), Arc::new(b_handle));
            // Each context's after-func cancels the other: a cycle of cancels across threads.
            let _on_a = a.after_func({
                let b_handle = b_handle.clone();
                move || b_handle.cancel()
            });
            let _on_b = b.after_func({
                let a_handle = a_handle.clone();
                move || a_handle.cancel()
            });
            let t = std::thread::spawn(move || b_handle.cancel());
            a_handle.cancel();
            t.join().unwrap();
            assert!(a.is_done() && b.is_done());
        }
    });
}

#[test]
fn a_panic_while_a_waker_is_registered_leaves_the_context_usable() {
    let (ctx, handle) = Context::background().with_cancel();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let done = ctx.done();
            tokio::pin!(done);
            let _ = futures_poll_once(done.as_mut()).await;
            panic!("panics on purpose while a waiter is registered");
        })
    }));
    assert!(caught.is_err());
    let (tx, told) = std::sync::mpsc::channel();
    let _after = ctx.after_func(move || tx.send(()).unwrap());
    handle.cancel();
    told.recv().expect("the after-func ran");
    assert_eq!(ctx.err(), Some(Error::Canceled));
}

async fn futures_poll_once<F: std::future::Future + Unpin>(fut: F) -> Option<F::Output> {
    let mut fut = fut;
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut fut).poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}
