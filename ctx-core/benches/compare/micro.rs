//! The cases that Go measures with `testing.Benchmark`, measured here with [`looped`]: a loop of
//! `n` ops, setup outside the timed part, median ns/op of several batches.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ctx_core::{CancelHandle, Context, Group};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

use crate::harness::{Budget, Reporter, looped, timed};

const HOUR: Duration = Duration::from_secs(3600);

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime")
}

/// Two workers, like the Go baseline's GOMAXPROCS=2.
pub(crate) fn multi_thread() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a multi-thread runtime")
}

/// Runs `n` times the async op `op` in one task on `rt`, timing the loop.
fn looped_async<F: Future>(rt: &Runtime, n: u64, mut op: impl FnMut() -> F) -> Duration {
    rt.block_on(async {
        let t0 = Instant::now();
        for _ in 0..n {
            black_box(op().await);
        }
        t0.elapsed()
    })
}

pub(crate) fn run(out: &mut Reporter, b: &Budget) {
    let bg = Context::background();

    let name = "with_cancel_cancel";
    if out.wants(name) {
        let m = looped(b, |n| {
            timed(n, || {
                let (ctx, handle) = bg.with_cancel();
                handle.cancel();
                black_box(ctx);
            })
        });
        out.emit(m.record(
            name,
            "ctx",
            "background().with_cancel(), then handle.cancel(); both dropped",
        ));
        let m = looped(b, |n| {
            timed(n, || {
                let token = CancellationToken::new();
                token.cancel();
                black_box(token);
            })
        });
        out.emit(m.record(
            name,
            "tokio-util",
            "CancellationToken::new(), then cancel(); dropped",
        ));
    }

    let name = "with_cancel_from_cancelable_parent";
    if out.wants(name) {
        let (parent, _parent_handle) = bg.with_cancel();
        // Warm the parent, as Go does (its children list has room for one).
        drop(parent.with_cancel());
        let m = looped(b, |n| {
            timed(n, || {
                let (ctx, handle) = parent.with_cancel();
                handle.cancel();
                black_box(ctx);
            })
        });
        out.emit(m.record(
            name,
            "ctx",
            "parent.with_cancel() on a live with_cancel parent (registers in its children), then handle.cancel() (unregisters)",
        ));
        let parent = CancellationToken::new();
        drop(parent.child_token());
        let m = looped(b, |n| {
            timed(n, || {
                let token = parent.child_token();
                token.cancel();
                black_box(token);
            })
        });
        out.emit(m.record(
            name,
            "tokio-util",
            "parent.child_token(), then cancel(); dropped",
        ));
    }

    // Ours only: merging two live parents, against the hand-written merge users write
    // without one (Go's `contextutil.Merge`): `with_cancel` on one parent plus an after-func
    // on the other that drops the handle (stopping the after-func drops it too).
    let name = "merge_cancel";
    if out.wants(name) {
        let (first, _first_handle) = bg.with_cancel();
        let (second, _second_handle) = bg.with_cancel();
        // Warm both parents' lists.
        drop(first.merge(&second));
        drop(second.after_func(|| {}));
        let m = looped(b, |n| {
            timed(n, || {
                let (ctx, handle) = first.merge(&second);
                handle.cancel();
                black_box(ctx);
            })
        });
        out.emit(m.record(
            name,
            "ctx",
            "first.merge(&second) of two live parents (an entry in each), then handle.cancel() (leaves both); dropped",
        ));
        let m = looped(b, |n| {
            timed(n, || {
                let (ctx, handle) = first.with_cancel();
                let stop = second.after_func(move || drop(handle));
                stop.stop(); // drops the closure, and with it the handle: cancels `ctx`
                black_box(ctx);
            })
        });
        out.emit(m.record(
            name,
            "after-func",
            "first.with_cancel() + second.after_func(move || drop(handle)), then stop() (drops the handle); dropped",
        ));
    }

    let name = "merge_other_parent_cancels";
    if out.wants(name) {
        let (first, _first_handle) = bg.with_cancel();
        drop(first.with_cancel());
        let m = looped(b, |n| {
            timed(n, || {
                let (second, second_handle) = bg.with_cancel();
                let (ctx, _handle) = first.merge(&second);
                second_handle.cancel();
                black_box(ctx.is_done());
            })
        });
        out.emit(m.record(
            name,
            "ctx",
            "second = background().with_cancel(); first.merge(&second); second cancelled; all dropped",
        ));
        let m = looped(b, |n| {
            timed(n, || {
                let (second, second_handle) = bg.with_cancel();
                let (ctx, handle) = first.with_cancel();
                let _after = second.after_func(move || drop(handle));
                second_handle.cancel();
                black_box(ctx.is_done());
            })
        });
        out.emit(m.record(
            name,
            "after-func",
            "the same with first.with_cancel() + second.after_func(move || drop(handle))",
        ));
    }

    let name = "with_timeout_cancel";
    if out.wants(name) {
        let m = looped(b, |n| {
            timed(n, || {
                let (ctx, handle) = bg.with_timeout(HOUR);
                handle.cancel();
                black_box(ctx);
            })
        });
        out.emit(m.record(
            name,
            "ctx",
            "background().with_timeout(1h), then handle.cancel(): one clock read at creation, one at cancel; no timer is ever started",
        ));
        // Hand-written tokio: the timer Go starts and stops, as tokio does it.
        let rt = current_thread();
        let m = looped(b, |n| {
            looped_async(&rt, n, || async {
                let mut sleep = std::pin::pin!(tokio::time::sleep(HOUR));
                // Poll once: registers the timer, as Go's WithTimeout starts one.
                std::future::poll_fn(|cx| {
                    let _ = sleep.as_mut().poll(cx);
                    std::task::Poll::Ready(())
                })
                .await;
            })
        });
        out.emit(m.record(
            name,
            "tokio",
            "tokio::time::sleep(1h) polled once (timer registered, as Go's WithTimeout starts one), then dropped (timer removed)",
        ));
    }

    let name = "err_check_live";
    if out.wants(name) {
        let (ctx, _handle) = bg.with_cancel();
        let m = looped(b, |n| {
            timed(n, || {
                black_box(ctx.err());
            })
        });
        out.emit(m.record(name, "ctx", "ctx.err() on a live with_cancel context"));
        let token = CancellationToken::new();
        let m = looped(b, |n| {
            timed(n, || {
                black_box(token.is_cancelled());
            })
        });
        out.emit(m.record(name, "tokio-util", "token.is_cancelled() on a live token"));
    }

    let name = "done_select_nonblocking";
    if out.wants(name) {
        let (ctx, _handle) = bg.with_cancel();
        let m = looped(b, |n| {
            timed(n, || {
                black_box(ctx.is_done());
            })
        });
        out.emit(m.record(name, "ctx", "ctx.is_done() on a live with_cancel context"));
        let token = CancellationToken::new();
        let m = looped(b, |n| {
            timed(n, || {
                black_box(token.is_cancelled());
            })
        });
        out.emit(m.record(name, "tokio-util", "token.is_cancelled() on a live token"));
        let rt = current_thread();
        let m = looped(b, |n| {
            looped_async(&rt, n, || async {
                tokio::select! {
                    biased;
                    _ = token.cancelled() => true,
                    _ = std::future::ready(()) => false,
                }
            })
        });
        out.emit(m.record(
            name,
            "tokio",
            "tokio::select! { biased; _ = token.cancelled() => .., _ = ready(()) => .. }: Go's select-with-default written literally",
        ));
    }

    for depth in [1usize, 10, 100, 1000] {
        let name = format!("cancel_tree_depth_{depth}");
        if !out.wants(&name) {
            continue;
        }
        // ctx: dropping a CancelHandle cancels, so unlike Go (which discards the intermediate
        // CancelFuncs) every handle is kept, in a Vec allocated once outside the timed loop.
        let mut handles: Vec<CancelHandle> = Vec::with_capacity(depth);
        let m = looped(b, |n| {
            timed(n, || {
                let (root, root_handle) = bg.with_cancel();
                let mut ctx = root;
                for _ in 0..depth {
                    let (child, handle) = ctx.with_cancel();
                    handles.push(handle);
                    ctx = child;
                }
                black_box(&ctx);
                root_handle.cancel();
                handles.clear();
            })
        });
        out.emit(
            m.record(
                &name,
                "ctx",
                "with_cancel root + N nested with_cancel (a chain, as in Go) + cancel(root); the N handles are kept alive in a pre-allocated Vec (dropping a CancelHandle cancels, Go discards its CancelFuncs); the op includes dropping everything",
            )
            .extra("depth", depth as f64),
        );
        let mut tokens: Vec<CancellationToken> = Vec::with_capacity(depth);
        let m = looped(b, |n| {
            timed(n, || {
                let root = CancellationToken::new();
                let mut token = root.clone();
                for _ in 0..depth {
                    let child = token.child_token();
                    tokens.push(std::mem::replace(&mut token, child));
                }
                black_box(&token);
                root.cancel();
                tokens.clear();
            })
        });
        out.emit(
            m.record(
                &name,
                "tokio-util",
                "CancellationToken root + N nested child_token() + cancel(root); every token kept in a pre-allocated Vec (a dropped token leaves the tree); the op includes dropping everything",
            )
            .extra("depth", depth as f64),
        );
    }

    let name = "common_parent_parallel";
    if out.wants(name) {
        let root = bg.with_value("value");
        let (shared, _shared_handle) = root.with_cancel();
        let m = looped(b, |n| {
            parallel(n, || {
                let (ctx, handle) = shared.with_cancel();
                assert_eq!(ctx.value::<&str>(), Some(&"value"));
                busy_work();
                handle.cancel();
                busy_work();
            })
        });
        out.emit(m.record(
            name,
            "ctx",
            "2 threads (Go's RunParallel, GOMAXPROCS=2); op = shared.with_cancel() + value::<&str>() + 100 divisions + cancel + 100 divisions; ns = wall time / all ops",
        ));
        let shared = CancellationToken::new();
        let m = looped(b, |n| {
            parallel(n, || {
                let token = shared.child_token();
                busy_work();
                token.cancel();
                busy_work();
            })
        });
        out.emit(m.record(
            name,
            "tokio-util",
            "as for ctx, with shared.child_token() and no value lookup (tokio-util has no values)",
        ));
    }

    let name = "common_parent_parallel_busy_work_only";
    if out.wants(name) {
        let m = looped(b, |n| {
            parallel(n, || {
                busy_work();
                busy_work();
            })
        });
        out.emit(m.record(
            name,
            "ctx",
            "the 200 divisions of common_parent_parallel alone, on 2 threads: the floor of that case",
        ));
    }

    for depth in [10usize, 100] {
        let name = format!("value_lookup_depth_{depth}_miss");
        if !out.wants(&name) {
            continue;
        }
        struct Missing;
        let mut ctx = bg.clone();
        for i in 0..depth {
            ctx = ctx.with_value(i);
        }
        let m = looped(b, |n| {
            timed(n, || {
                black_box(ctx.value::<Missing>());
            })
        });
        out.emit(m.record(
            &name,
            "ctx",
            "value::<Missing>() through N with_value layers (all of one other type): a miss walks all N",
        ));
    }

    for depth in [10usize, 100] {
        let name = format!("with_value_chain_depth_{depth}");
        if !out.wants(&name) {
            continue;
        }
        let m = looped(b, |n| {
            timed(n, || {
                let mut ctx = bg.clone();
                for i in 0..depth {
                    ctx = ctx.with_value(i);
                }
                black_box(ctx);
            })
        });
        out.emit(m.record(
            &name,
            "ctx",
            "build N with_value layers from background (and drop them)",
        ));
    }

    let name = "err_check_canceled";
    if out.wants(name) {
        let (ctx, handle) = bg.with_cancel();
        handle.cancel();
        let m = looped(b, |n| {
            timed(n, || {
                black_box(ctx.err());
            })
        });
        out.emit(m.record(name, "ctx", "ctx.err() on a cancelled context"));
        let token = CancellationToken::new();
        token.cancel();
        let m = looped(b, |n| {
            timed(n, || {
                black_box(token.is_cancelled());
            })
        });
        out.emit(m.record(
            name,
            "tokio-util",
            "token.is_cancelled() on a cancelled token",
        ));
    }

    let name = "done_select_canceled";
    if out.wants(name) {
        let (ctx, handle) = bg.with_cancel();
        handle.cancel();
        let m = looped(b, |n| {
            timed(n, || {
                black_box(ctx.is_done());
            })
        });
        out.emit(m.record(name, "ctx", "ctx.is_done() on a cancelled context"));
    }

    let name = "done_select_parallel_live";
    if out.wants(name) {
        let (ctx, _handle) = bg.with_cancel();
        let m = looped(b, |n| {
            parallel(n, || {
                black_box(ctx.is_done());
            })
        });
        out.emit(m.record(
            name,
            "ctx",
            "ctx.is_done() on one live context from 2 threads (Go's RunParallel); ns = wall time / all ops",
        ));
        let token = CancellationToken::new();
        let m = looped(b, |n| {
            parallel(n, || {
                black_box(token.is_cancelled());
            })
        });
        out.emit(m.record(name, "tokio-util", "token.is_cancelled() from 2 threads"));
    }

    for concurrent in [40usize, 400_000] {
        let name = format!("with_timeout_parallel_concurrency_{concurrent}");
        if !out.wants(&name) {
            continue;
        }
        // Go keeps N live 1 h timers; a ctx deadline starts no timer, so these are N live
        // with_timeout contexts (kept by their handles).
        let live: Vec<(Context, CancelHandle)> = (0..concurrent / b.shrink)
            .map(|_| bg.with_timeout(HOUR))
            .collect();
        let m = looped(b, |n| {
            parallel(n, || {
                let mut handles: [Option<CancelHandle>; 10] = Default::default();
                for slot in &mut handles {
                    let (ctx, handle) = bg.with_timeout(HOUR);
                    black_box(ctx);
                    *slot = Some(handle);
                }
                for handle in handles.iter().flatten() {
                    handle.cancel();
                }
            })
        });
        drop(live);
        out.emit(m.record(
            &name,
            "ctx",
            "op = 10 x background().with_timeout(1h) then 10 x cancel, on 2 threads, with N other live with_timeout contexts (Go: N live timers); ns = wall time / all ops",
        ));
    }

    cancellable_call_ready(out, b);

    let name = "run_ready";
    if out.wants(name) {
        let rt = current_thread();
        let (ctx, _handle) = bg.with_cancel();
        let mut x = 0u64;
        let m = looped(b, |n| {
            looped_async(&rt, n, || {
                x += 1;
                let x = x;
                ctx.run(async move { black_box(x) })
            })
        });
        out.emit(m.record(
            name,
            "ctx",
            "ctx.run(ready future).await on a live with_cancel context",
        ));
        let token = CancellationToken::new();
        let m = looped(b, |n| {
            looped_async(&rt, n, || {
                x += 1;
                let x = x;
                token.run_until_cancelled(async move { black_box(x) })
            })
        });
        out.emit(m.record(
            name,
            "tokio-util",
            "token.run_until_cancelled(ready future).await",
        ));
        let m = looped(b, |n| {
            looped_async(&rt, n, || {
                x += 1;
                let x = x;
                let token = &token;
                async move {
                    tokio::select! {
                        biased;
                        _ = token.cancelled() => None,
                        v = async move { black_box(x) } => Some(v),
                    }
                }
            })
        });
        out.emit(m.record(
            name,
            "tokio",
            "tokio::select! { biased; _ = token.cancelled() => None, v = ready => Some(v) }",
        ));
    }

    let name = "after_func_cancel";
    if out.wants(name) {
        // Waits until `ran` reaches `n`: the after-funcs run on other threads.
        fn until(ran: &std::sync::atomic::AtomicU64, n: u64) {
            while ran.load(std::sync::atomic::Ordering::Acquire) < n {
                std::hint::spin_loop();
            }
        }
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let register = |ctx: &Context| {
            let ran = ran.clone();
            ctx.after_func(move || {
                ran.fetch_add(1, std::sync::atomic::Ordering::Release);
            })
        };
        let m = looped(b, |n| {
            ran.store(0, std::sync::atomic::Ordering::Relaxed);
            let took = timed(n, || {
                let (ctx, handle) = bg.with_cancel();
                drop(register(&ctx));
                handle.cancel();
            });
            until(&ran, n);
            took
        });
        out.emit(m.record(
            name,
            "ctx",
            "with_cancel(), after_func(count), cancel(): what the canceller pays; the function runs on a thread of ctx-core's after-func pool (waited for outside the timed loop)",
        ));
        let m = looped(b, |n| {
            ran.store(0, std::sync::atomic::Ordering::Relaxed);
            let t0 = Instant::now();
            for _ in 0..n {
                let (ctx, handle) = bg.with_cancel();
                drop(register(&ctx));
                handle.cancel();
            }
            until(&ran, n);
            t0.elapsed()
        });
        out.emit(m.record(
            name,
            "ctx-until-ran",
            "the same, timed until every function has run on the pool",
        ));
        // What the end cost when it ran the function itself (before after-funcs left the
        // cancelling thread): the same, with the function called inline after the cancel.
        let m = looped(b, |n| {
            ran.store(0, std::sync::atomic::Ordering::Relaxed);
            timed(n, || {
                let (ctx, handle) = bg.with_cancel();
                let inline = ran.clone();
                let f: Box<dyn FnOnce() + Send> = Box::new(move || {
                    inline.fetch_add(1, std::sync::atomic::Ordering::Release);
                });
                let cell = std::sync::Mutex::new(Some(f));
                handle.cancel();
                if let Some(f) = cell.lock().unwrap().take() {
                    f();
                }
                black_box(ctx);
            })
        });
        out.emit(m.record(
            name,
            "inline-estimate",
            "with_cancel(), cancel(), then a boxed FnOnce taken from a Mutex and called on the cancelling thread: the work of an inline after-func without its registration",
        ));
    }

    let name = "group_spawn_wait_100";
    if out.wants(name) {
        let rt = multi_thread();
        let m = looped(b, |n| {
            on_worker(&rt, n, || async {
                let mut group = Group::<u32>::new(&Context::background());
                for _ in 0..100 {
                    group.spawn(async { Ok(()) });
                }
                group.wait().await.unwrap();
            })
        });
        out.emit(m.record(
            name,
            "ctx",
            "Group::new + 100 spawns of a ready Ok(()) task + wait(), from a task on a 2-worker runtime",
        ));
        let m = looped(b, |n| {
            on_worker(&rt, n, || async {
                let token = CancellationToken::new();
                let mut set = tokio::task::JoinSet::new();
                for _ in 0..100 {
                    let token = token.clone();
                    set.spawn(async move {
                        token
                            .run_until_cancelled(async { Ok::<(), u32>(()) })
                            .await
                            .unwrap_or(Ok(()))
                    });
                }
                let mut first = Ok(());
                while let Some(done) = set.join_next().await {
                    if let Err(e) = done.unwrap()
                        && first.is_ok()
                    {
                        first = Err(e);
                        token.cancel();
                    }
                }
                token.cancel();
                first.unwrap();
            })
        });
        out.emit(m.record(
            name,
            "tokio-util",
            "hand-written errgroup: CancellationToken + JoinSet, each task run_until_cancelled, first error cancels",
        ));
        let m = looped(b, |n| {
            on_worker(&rt, n, || async {
                let mut set = tokio::task::JoinSet::new();
                for _ in 0..100 {
                    set.spawn(async { Ok::<(), u32>(()) });
                }
                while let Some(done) = set.join_next().await {
                    done.unwrap().unwrap();
                }
            })
        });
        out.emit(m.record(
            name,
            "tokio",
            "JoinSet + 100 spawns of a ready task + join_next until empty (no cancellation at all)",
        ));
    }
}

/// Go's `b.RunParallel` with GOMAXPROCS=2: `n` ops split over 2 threads; the wall time from the
/// first thread's start to the last one's end, each read by the threads themselves (the spawning
/// thread may be descheduled at any point: there are only 2 cores).
fn parallel(n: u64, op: impl Fn() + Sync) -> Duration {
    let barrier = std::sync::Barrier::new(2);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let workers: Vec<_> = [n / 2, n - n / 2]
            .into_iter()
            .map(|share| {
                let (barrier, op) = (&barrier, &op);
                s.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..share {
                        op();
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a benchmark thread"))
            .collect()
    });
    let start = spans.iter().map(|s| s.0).min().expect("two spans");
    let end = spans.iter().map(|s| s.1).max().expect("two spans");
    end - start
}

/// The busy work of Go's `BenchmarkCommonParentCancel`: `for i := 0; i < 100; i++ { x /= x + 1 }`.
fn busy_work() {
    let mut x: i64 = black_box(0);
    for _ in 0..100 {
        x /= black_box(x + 1);
    }
    black_box(x);
}

/// Runs `n` ops in a task spawned on `rt` (so on a worker thread, as a server's code runs).
fn on_worker<F>(rt: &Runtime, n: u64, op: impl Fn() -> F + Send + 'static) -> Duration
where
    F: Future<Output = ()> + Send,
{
    rt.block_on(async move {
        tokio::spawn(async move {
            let t0 = Instant::now();
            for _ in 0..n {
                op().await;
            }
            t0.elapsed()
        })
        .await
        .expect("the benchmark task")
    })
}

// ---------------------------------------------------------------------------------------------
// `#[cancellable]`.

/// The function of `cancellable_call_ready`, written with the real macro: a body that is ready at
/// once, under a 5 s timeout.
mod with_macro {
    #[ctx_core::cancellable(timeout = "5s")]
    pub(super) async fn ready_call(x: u64) -> Result<u64, ctx_core::Error> {
        Ok(std::hint::black_box(x) + 1)
    }
}

/// What `cancellable_call_ready` measures.
async fn call_ready(parent: &Context, x: u64) -> Result<u64, ctx_core::Error> {
    with_macro::ready_call(parent, x).await
}

/// What [`call_ready`] measures, for the note of the case.
const CALL_READY_IS: &str = "#[cancellable(timeout = \"5s\")] async fn";

fn cancellable_call_ready(out: &mut Reporter, b: &Budget) {
    let rt = current_thread();
    let (cancelable, _handle) = Context::background().with_cancel();
    let parents = [
        (
            "cancellable_call_ready",
            Context::background(),
            "background()",
        ),
        (
            "cancellable_call_ready_cancelable_parent",
            cancelable,
            "a live with_cancel context",
        ),
    ];
    for (name, parent, parent_is) in parents {
        if !out.wants(name) {
            continue;
        }
        let mut x = 0u64;
        let m = looped(b, |n| {
            looped_async(&rt, n, || {
                x += 1;
                call_ready(&parent, x)
            })
        });
        out.emit(m.record(
            name,
            "ctx",
            format!(
                "{CALL_READY_IS} whose body is ready at once, called with {parent_is} as the parent"
            ),
        ));
        if name == "cancellable_call_ready" {
            let m = looped(b, |n| {
                looped_async(&rt, n, || {
                    x += 1;
                    let x = x;
                    tokio::time::timeout(Duration::new(5, 0), async move {
                        Ok::<u64, ctx_core::Error>(black_box(x) + 1)
                    })
                })
            });
            out.emit(m.record(
                name,
                "tokio",
                "tokio::time::timeout(5s, the same ready body).await",
            ));
        }
    }
}
