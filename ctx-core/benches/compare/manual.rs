//! The cases Go times by hand (chain, fan-out, wake latency), the 1,000,000-task scale run, and
//! the scaling series behind `docs/scaling.svg`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ctx_core::{CancelHandle, Context, Error};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

use crate::fan_out::{Outcome, fan_out};
use crate::harness::{
    Budget, Counted, Counter, Record, Reporter, count, counted, live, malloc_in_use, max, median,
    min, ns, percentile,
};
use crate::micro::multi_thread;

const HOUR: Duration = Duration::from_secs(3600);

// ---------------------------------------------------------------------------------------------
// The two trees: ctx and tokio-util.

/// A cancellation tree, as the manual cases use it.
trait Tree {
    const IMP: &'static str;
    /// A context with whatever cancels it.
    type Node: Send + Sync + 'static;
    /// What must stay alive for a node of a chain to stay in it.
    type Kept;
    fn root() -> Self::Node;
    fn child(parent: &Self::Node) -> Self::Node;
    fn cancel(node: &Self::Node);
    fn retire(node: Self::Node) -> Self::Kept;
    fn canceled(node: &Self::Node) -> bool;
    /// Waits for `node` to end: `true` if it ended as expected.
    fn wait(node: &Self::Node) -> impl Future<Output = bool> + Send + 'static;
    /// Makes a child of `parent` now and returns a future that owns it and waits for its end.
    fn wait_child(parent: &Self::Node) -> impl Future<Output = bool> + Send + 'static;
    /// A future that, when first polled, derives its own child of `parent` with a `timeout` and
    /// waits for its end.
    fn wait_timeout_child(
        parent: &Self::Node,
        timeout: Duration,
    ) -> impl Future<Output = bool> + Send + 'static;
}

struct Ctx;

impl Tree for Ctx {
    const IMP: &'static str = "ctx";
    type Node = (Context, CancelHandle);
    type Kept = CancelHandle;
    fn root() -> Self::Node {
        Context::background().with_cancel()
    }
    fn child(parent: &Self::Node) -> Self::Node {
        parent.0.with_cancel()
    }
    fn cancel(node: &Self::Node) {
        node.1.cancel();
    }
    /// Dropping a `CancelHandle` cancels, so the handle of every intermediate context is kept;
    /// the context itself is dropped (the child holds its parent).
    fn retire(node: Self::Node) -> CancelHandle {
        node.1
    }
    fn canceled(node: &Self::Node) -> bool {
        node.0.err() == Some(Error::Canceled)
    }
    fn wait(node: &Self::Node) -> impl Future<Output = bool> + Send + 'static {
        let done = node.0.done();
        async move { done.await == Error::Canceled }
    }
    /// The task owns the child's handle, so it is not dropped (which would cancel) before the
    /// parent's cancel; Go discards it.
    fn wait_child(parent: &Self::Node) -> impl Future<Output = bool> + Send + 'static {
        let (child, handle) = parent.0.with_cancel();
        async move {
            let err = child.done().await;
            drop(handle);
            err == Error::Canceled && child.err() == Some(Error::Canceled)
        }
    }
    fn wait_timeout_child(
        parent: &Self::Node,
        timeout: Duration,
    ) -> impl Future<Output = bool> + Send + 'static {
        let parent = parent.0.clone();
        async move {
            let (ctx, _handle) = parent.with_timeout(timeout);
            ctx.done().await == Error::Canceled
        }
    }
}

struct TokioUtil;

impl Tree for TokioUtil {
    const IMP: &'static str = "tokio-util";
    type Node = CancellationToken;
    type Kept = CancellationToken;
    fn root() -> Self::Node {
        CancellationToken::new()
    }
    fn child(parent: &Self::Node) -> Self::Node {
        parent.child_token()
    }
    fn cancel(node: &Self::Node) {
        node.cancel();
    }
    /// A token whose last handle is dropped leaves the tree (its children move to its parent),
    /// so every intermediate token is kept.
    fn retire(node: Self::Node) -> CancellationToken {
        node
    }
    fn canceled(node: &Self::Node) -> bool {
        node.is_cancelled()
    }
    fn wait(node: &Self::Node) -> impl Future<Output = bool> + Send + 'static {
        let cancelled = node.clone().cancelled_owned();
        async move {
            cancelled.await;
            true
        }
    }
    fn wait_child(parent: &Self::Node) -> impl Future<Output = bool> + Send + 'static {
        let child = parent.child_token();
        async move {
            child.cancelled().await;
            child.is_cancelled()
        }
    }
    /// The hand-written equivalent of a ctx timeout context: a child token under a
    /// `tokio::time::timeout`.
    fn wait_timeout_child(
        parent: &Self::Node,
        timeout: Duration,
    ) -> impl Future<Output = bool> + Send + 'static {
        let parent = parent.clone();
        async move {
            let token = parent.child_token();
            tokio::time::timeout(timeout, token.cancelled())
                .await
                .is_ok()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Chains.

#[derive(Debug, Clone, Copy, Default)]
struct ChainRun {
    build: f64,
    cancel: f64,
    drop: f64,
}

/// Root + `n` nested children + cancel(root), then everything dropped. `kept` is allocated by the
/// caller with room for `n`. `at_built` is called with the chain alive (for memory readings).
fn chain_once<T: Tree>(n: usize, kept: &mut Vec<T::Kept>, at_built: impl FnOnce()) -> ChainRun {
    let t0 = Instant::now();
    let root = T::root();
    let mut node = T::child(&root);
    for _ in 1..n {
        let child = T::child(&node);
        kept.push(T::retire(std::mem::replace(&mut node, child)));
    }
    let t1 = Instant::now();
    at_built();
    let t1b = Instant::now();
    T::cancel(&root);
    let t2 = Instant::now();
    assert!(
        T::canceled(&node),
        "{}: the leaf did not end with the root",
        T::IMP
    );
    drop(node);
    kept.clear();
    drop(root);
    let t3 = Instant::now();
    ChainRun {
        build: ns(t1 - t0),
        cancel: ns(t2 - t1b),
        drop: ns(t3 - t2),
    }
}

/// Memory of a live chain of `n`: (bytes asked of the allocator, bytes malloc has in use), per
/// context. The `kept` Vec is allocated before, so neither counts its 8 bytes per context.
fn chain_memory<T: Tree>(n: usize, kept: &mut Vec<T::Kept>) -> (f64, f64) {
    let counter = Counter::start();
    let malloc0 = malloc_in_use();
    let (mut live_bytes, mut malloc) = (0, 0);
    chain_once::<T>(n, kept, || {
        live_bytes = live();
        malloc = malloc_in_use();
    });
    counter.stop();
    (
        live_bytes as f64 / n as f64,
        (malloc as f64 - malloc0 as f64) / n as f64,
    )
}

struct ChainStats {
    runs: Vec<ChainRun>,
    counted_bytes: f64,
    counted_allocs: f64,
    live_per_ctx: f64,
    malloc_per_ctx: f64,
}

fn chain_series<T: Tree>(n: usize, runs: usize) -> ChainStats {
    let mut kept = Vec::with_capacity(n);
    // A warm-up run, so that the allocator has its arenas.
    chain_once::<T>(n, &mut kept, || ());
    let (live_per_ctx, malloc_per_ctx) = chain_memory::<T>(n, &mut kept);
    let (_, counted) = count(|| chain_once::<T>(n, &mut kept, || ()));
    let runs = (0..runs)
        .map(|_| chain_once::<T>(n, &mut kept, || ()))
        .collect();
    ChainStats {
        runs,
        counted_bytes: counted.bytes as f64,
        counted_allocs: counted.allocs as f64,
        live_per_ctx,
        malloc_per_ctx,
    }
}

fn chain_record<T: Tree>(name: &str, n: usize, runs: usize, note: &str) -> Record {
    let s = chain_series::<T>(n, runs);
    let totals: Vec<f64> = s.runs.iter().map(|r| r.build + r.cancel).collect();
    let builds: Vec<f64> = s.runs.iter().map(|r| r.build).collect();
    let cancels: Vec<f64> = s.runs.iter().map(|r| r.cancel).collect();
    let drops: Vec<f64> = s.runs.iter().map(|r| r.drop).collect();
    let mut r = Record::new(name, T::IMP, note);
    r.ns_per_op = median(&totals);
    r.bytes_per_op = s.counted_bytes;
    r.allocs_per_op = s.counted_allocs;
    r.iterations = runs as u64;
    r.extra("contexts", n as f64)
        .extra("build_ns_median", median(&builds))
        .extra("cancel_ns_median", median(&cancels))
        .extra("drop_ns_median", median(&drops))
        .extra("ns_per_context", median(&totals) / n as f64)
        .extra("live_heap_bytes_per_ctx", s.live_per_ctx)
        .extra("malloc_bytes_per_ctx", s.malloc_per_ctx)
        .extra("alloc_bytes_per_ctx", s.counted_bytes / n as f64)
        .extra("allocs_per_ctx", s.counted_allocs / n as f64)
        .extra("total_ns_min", min(&totals))
        .extra("total_ns_max", max(&totals))
}

const CHAIN_NOTE_CTX: &str = "op = with_cancel root + N nested with_cancel + cancel(root), timed like Go's (median of runs, build + cancel; the drop afterwards is drop_ns_median). Every intermediate CancelHandle is kept in a Vec allocated before the run, because dropping a handle cancels (Go discards its CancelFuncs). live_heap_bytes_per_ctx = bytes asked of the allocator and live with the chain built / N; malloc_bytes_per_ctx = the same as glibc's malloc accounts it (mallinfo2: chunk headers and rounding included); both exclude the handle Vec (8 B per context)";
const CHAIN_NOTE_TOKIO_UTIL: &str = "op = CancellationToken root + N nested child_token() + cancel(root), timed as for ctx; every intermediate token is kept in a Vec allocated before the run (a dropped token leaves the tree). Memory as for ctx";

// ---------------------------------------------------------------------------------------------
// Fan-out.

struct FanOutStats {
    outcomes: Vec<Outcome>,
    /// Over the timed window (cancel to last wake), from the counted run.
    window_bytes: f64,
    window_allocs: f64,
    /// Live heap bytes per parked task (its context, its task, its registration), counted run.
    live_per_task: f64,
}

fn fan_out_series<T: Tree>(rt: &Runtime, n: usize, runs: usize, settle: Duration) -> FanOutStats {
    // One run; with `counting`, also (live bytes at the cancel, counts at the cancel).
    let one = |counting: bool| -> (Outcome, i64, Counted) {
        let parent = Arc::new(T::root());
        let (outcome, live_bytes, at_cancel) = rt.block_on(async {
            tokio::spawn(async move {
                let mut readings = (0, Counted::default());
                let waiters = parent.clone();
                let outcome = fan_out(
                    n,
                    || T::wait_child(&waiters),
                    settle,
                    || {
                        if counting {
                            readings = (live(), counted());
                        }
                    },
                    || T::cancel(&parent),
                )
                .await;
                (outcome, readings.0, readings.1)
            })
            .await
            .expect("the fan-out controller")
        });
        assert_eq!(
            outcome.ok,
            n,
            "{}: {} tasks woke wrongly",
            T::IMP,
            outcome.wrong
        );
        (outcome, live_bytes, at_cancel)
    };
    let counter = Counter::start();
    let (_, live_bytes, at_cancel) = one(true);
    let end = counter.stop();
    let outcomes = (0..runs).map(|_| one(false).0).collect();
    FanOutStats {
        outcomes,
        window_bytes: (end.bytes - at_cancel.bytes) as f64,
        window_allocs: (end.allocs - at_cancel.allocs) as f64,
        live_per_task: live_bytes as f64 / n as f64,
    }
}

fn fan_out_record<T: Tree>(
    rt: &Runtime,
    name: &str,
    n: usize,
    runs: usize,
    settle: Duration,
    note: &str,
) -> Record {
    let s = fan_out_series::<T>(rt, n, runs, settle);
    let totals: Vec<f64> = s.outcomes.iter().map(|o| ns(o.to_last_wake)).collect();
    let calls: Vec<f64> = s.outcomes.iter().map(|o| ns(o.cancel_call)).collect();
    let setups: Vec<f64> = s.outcomes.iter().map(|o| ns(o.setup)).collect();
    let mut r = Record::new(name, T::IMP, note);
    r.ns_per_op = median(&totals);
    r.bytes_per_op = s.window_bytes;
    r.allocs_per_op = s.window_allocs;
    r.iterations = runs as u64;
    r.extra("children", n as f64)
        .extra("cancel_call_ns_median", median(&calls))
        .extra("ns_per_child", median(&totals) / n as f64)
        .extra("setup_ns_median", median(&setups))
        .extra("live_heap_bytes_per_waiting_child", s.live_per_task)
        .extra("total_ns_min", min(&totals))
        .extra("total_ns_max", max(&totals))
}

const FAN_OUT_NOTE_CTX: &str = "op = from parent handle.cancel() until all N tasks parked on child.done() have woken (2-worker multi-thread runtime; the canceller is a task on a worker, as Go's main goroutine is on a P); each task owns its child's CancelHandle (dropping it would cancel; Go discards it); setup untimed, then 50 ms idle as in Go; median of runs; bytes/allocs over the timed window; live_heap_bytes_per_waiting_child = context + task + waiter registration";
const FAN_OUT_NOTE_TOKIO_UTIL: &str = "op = from parent.cancel() until all N tasks parked on child_token().cancelled() have woken; otherwise as for ctx";

// ---------------------------------------------------------------------------------------------
// Wake latency.

/// One sample: a task parked on the context's end; the time from just before the cancel to the
/// waiter's first instruction after its wake.
async fn wake_sample<T: Tree>() -> f64 {
    let node = T::root();
    let wait = T::wait(&node);
    let parked = Arc::new(AtomicBool::new(false));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let flag = parked.clone();
    tokio::spawn(async move {
        let mut wait = std::pin::pin!(wait);
        let ok = std::future::poll_fn(|cx| {
            let poll = wait.as_mut().poll(cx);
            flag.store(true, Ordering::Release);
            poll
        })
        .await;
        let _ = tx.send((Instant::now(), ok));
    });
    while !parked.load(Ordering::Acquire) {
        tokio::task::yield_now().await;
    }
    let t0 = Instant::now();
    T::cancel(&node);
    let (woke, ok) = rx.await.expect("the waiter");
    assert!(ok, "{}: the waiter woke wrongly", T::IMP);
    ns(woke - t0)
}

fn wake_record<T: Tree>(rt: &Runtime, name: &str, samples: usize, note: &str) -> Record {
    let lat: Vec<f64> = rt.block_on(async {
        tokio::spawn(async move {
            let mut lat = Vec::with_capacity(samples);
            for _ in 0..samples {
                lat.push(wake_sample::<T>().await);
            }
            lat
        })
        .await
        .expect("the latency controller")
    });
    let per = samples.clamp(1, 200);
    let (_, counted) = count(|| {
        rt.block_on(async {
            tokio::spawn(async move {
                for _ in 0..per {
                    wake_sample::<T>().await;
                }
            })
            .await
        })
    });
    let mut r = Record::new(name, T::IMP, note);
    r.ns_per_op = median(&lat);
    r.bytes_per_op = counted.bytes as f64 / per as f64;
    r.allocs_per_op = counted.allocs as f64 / per as f64;
    r.iterations = samples as u64;
    r.extra("p10_ns", percentile(&lat, 0.10))
        .extra("p90_ns", percentile(&lat, 0.90))
        .extra("p99_ns", percentile(&lat, 0.99))
        .extra("min_ns", min(&lat))
        .extra("max_ns", max(&lat))
        .extra("mean_ns", lat.iter().sum::<f64>() / lat.len() as f64)
}

const WAKE_NOTE: &str = "ns_per_op = median over samples of (waiter's Instant::now() after its wake) - (Instant::now() just before cancel); the waiter is a task parked on done() (tokio-util: cancelled_owned()), the canceller a task on a worker of a 2-worker runtime that then awaits a oneshot, so the waiter usually runs next on the same worker (tokio's LIFO slot, like Go's runnext); bytes/allocs per sample incl. setup (task, oneshot, context)";

// ---------------------------------------------------------------------------------------------
// The 1,000,000-task scale run.

/// One scale run; with `counting`, also the live heap bytes with every task parked.
fn scale_once<T: Tree>(rt: &Runtime, n: usize, counting: bool) -> (Outcome, i64, u64) {
    let malloc0 = malloc_in_use();
    let (outcome, live_bytes, malloc) = rt.block_on(async {
        tokio::spawn(async move {
            let mut readings = (0, 0);
            let at_parked = || readings = (if counting { live() } else { 0 }, malloc_in_use());
            let root = T::root();
            let make = || T::wait_timeout_child(&root, HOUR);
            let outcome = fan_out(n, make, Duration::ZERO, at_parked, || T::cancel(&root)).await;
            (outcome, readings.0, readings.1)
        })
        .await
        .expect("the scale controller")
    });
    assert_eq!(
        outcome.ok,
        n,
        "{}: {} tasks woke wrongly",
        T::IMP,
        outcome.wrong
    );
    (outcome, live_bytes, malloc.saturating_sub(malloc0))
}

fn scale_record<T: Tree>(rt: &Runtime, name: &str, n: usize, runs: usize, note: &str) -> Record {
    let counter = Counter::start();
    let (_, live_bytes, malloc) = scale_once::<T>(rt, n, true);
    let counted = counter.stop();
    let outcomes: Vec<Outcome> = (0..runs).map(|_| scale_once::<T>(rt, n, false).0).collect();
    let totals: Vec<f64> = outcomes.iter().map(|o| ns(o.to_last_wake)).collect();
    let setups: Vec<f64> = outcomes.iter().map(|o| ns(o.setup)).collect();
    let calls: Vec<f64> = outcomes.iter().map(|o| ns(o.cancel_call)).collect();
    let mut r = Record::new(name, T::IMP, note);
    r.ns_per_op = median(&totals);
    r.bytes_per_op = counted.bytes as f64;
    r.allocs_per_op = counted.allocs as f64;
    r.iterations = runs as u64;
    r.extra("tasks", n as f64)
        .extra("time_to_last_wake_ns_min", min(&totals))
        .extra("time_to_last_wake_ns_max", max(&totals))
        .extra("cancel_call_ns_median", median(&calls))
        .extra("setup_ns_median", median(&setups))
        .extra("peak_live_heap_bytes", counted.peak_live as f64)
        .extra("live_heap_bytes_parked", live_bytes as f64)
        .extra("live_heap_bytes_per_task", live_bytes as f64 / n as f64)
        .extra("malloc_growth_bytes_parked", malloc as f64)
}

const SCALE_NOTE_CTX: &str = "op = 1 root cancel ending N tasks on a 2-worker multi-thread runtime, each task awaiting done() of its own root.with_timeout(1h) context (so each has a timer); ns_per_op = time from the cancel call until the last task has woken (median of runs); peak_live_heap_bytes = allocator peak over a whole counted run (bytes asked for); malloc_growth_bytes_parked = growth of glibc's in-use heap with every task parked (headers included); bytes/allocs over that counted run";
const SCALE_NOTE_TOKIO_UTIL: &str =
    "as for ctx, each task awaiting tokio::time::timeout(1h, root.child_token().cancelled())";

// ---------------------------------------------------------------------------------------------
// The cases.

pub(crate) fn run(out: &mut Reporter, b: &Budget) {
    let rt = multi_thread();
    let shrink = b.shrink;
    let name = "chain_1m_create_cancel";
    if out.wants(name) {
        let n = 1_000_000 / shrink;
        out.emit(chain_record::<Ctx>(name, n, 3, CHAIN_NOTE_CTX));
        out.emit(chain_record::<TokioUtil>(name, n, 3, CHAIN_NOTE_TOKIO_UTIL));
    }
    let name = "fanout_100k_cancel";
    if out.wants(name) {
        let n = 100_000 / shrink;
        let settle = Duration::from_millis(50);
        out.emit(fan_out_record::<Ctx>(
            &rt,
            name,
            n,
            5,
            settle,
            FAN_OUT_NOTE_CTX,
        ));
        out.emit(fan_out_record::<TokioUtil>(
            &rt,
            name,
            n,
            5,
            settle,
            FAN_OUT_NOTE_TOKIO_UTIL,
        ));
    }
    let name = "cancel_wake_latency";
    if out.wants(name) {
        let samples = 2000 / shrink;
        out.emit(wake_record::<Ctx>(&rt, name, samples, WAKE_NOTE));
        out.emit(wake_record::<TokioUtil>(&rt, name, samples, WAKE_NOTE));
    }
    let name = "scale_1m_timeout_tasks";
    if out.wants(name) {
        let n = 1_000_000 / shrink;
        out.emit(scale_record::<Ctx>(&rt, name, n, 3, SCALE_NOTE_CTX));
        out.emit(scale_record::<TokioUtil>(
            &rt,
            name,
            n,
            3,
            SCALE_NOTE_TOKIO_UTIL,
        ));
    }
}

/// `--scaling`: chain depth and fan-out from 10 to 1,000,000, time and memory.
pub(crate) fn scaling(out: &mut Reporter, b: &Budget) {
    let rt = multi_thread();
    let sizes = [10usize, 100, 1_000, 10_000, 100_000, 1_000_000];
    for n in sizes.map(|n| (n / b.shrink).max(10)) {
        let name = format!("cancel_tree_depth_{n}");
        if out.wants(&name) {
            let runs = (2_000_000 / n).clamp(5, 201);
            out.emit(chain_record::<Ctx>(&name, n, runs, CHAIN_NOTE_CTX));
            out.emit(chain_record::<TokioUtil>(
                &name,
                n,
                runs,
                CHAIN_NOTE_TOKIO_UTIL,
            ));
        }
    }
    for n in sizes.map(|n| (n / b.shrink).max(10)) {
        let name = format!("fanout_{n}_cancel");
        if out.wants(&name) {
            let runs = (1_000_000 / n).clamp(3, 21);
            let settle = Duration::from_millis(20);
            out.emit(fan_out_record::<Ctx>(
                &rt,
                &name,
                n,
                runs,
                settle,
                FAN_OUT_NOTE_CTX,
            ));
            out.emit(fan_out_record::<TokioUtil>(
                &rt,
                &name,
                n,
                runs,
                settle,
                FAN_OUT_NOTE_TOKIO_UTIL,
            ));
        }
    }
}
