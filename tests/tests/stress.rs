//! Stress: threads and a multi-thread tokio runtime deriving, cancelling and dropping contexts
//! and awaiting `done()` all at once, for a bounded number of rounds. A watchdog fails the test
//! on a deadlock, every waiter of an ended context must wake (a lost wake-up shows as a waiter
//! still pending when its context has ended), and the heap must return to its baseline. This
//! binary counts allocations, so it holds this one test.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ctx_core::{CancelHandle, Context, Error};

mod support;

use support::counting_alloc::LIVE_BYTES;

/// Aborts the process if the test is still running after `limit`: a deadlock must fail, not hang.
fn watchdog(limit: Duration) -> Arc<AtomicBool> {
    let finished = Arc::new(AtomicBool::new(false));
    let flag = finished.clone();
    std::thread::spawn(move || {
        let step = Duration::from_millis(50);
        let mut waited = Duration::ZERO;
        while waited < limit {
            if flag.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(step);
            waited += step;
        }
        eprintln!("stress: still running after {limit:?}: deadlock");
        std::process::abort();
    });
    finished
}

/// A small xorshift generator: each thread its own, seeded, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Rounds of the stress run; `STRESS_ROUNDS` asks for more (see TESTING.md).
fn rounds() -> u64 {
    std::env::var("STRESS_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20)
}
const THREADS: u64 = 4;
const NODES_PER_THREAD: usize = 3_000;

fn round(runtime: &tokio::runtime::Runtime, seed: u64) {
    let (root, root_handle) = Context::background().with_cancel();
    let pool: Arc<Mutex<Vec<Context>>> = Arc::new(Mutex::new(vec![root.clone()]));
    let handles: Arc<Mutex<Vec<CancelHandle>>> = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();

    // Build and cancel at once: each thread derives from random contexts of the shared pool,
    // cancels random handles, drops some, and starts waiters on the runtime.
    let builders: Vec<_> = (0..THREADS)
        .map(|t| {
            let (pool, handles) = (pool.clone(), handles.clone());
            let runtime = runtime.handle().clone();
            std::thread::spawn(move || {
                let mut rng = Rng(seed * 7919 + t * 104_729 + 1);
                let mut waiters = Vec::new();
                for _ in 0..NODES_PER_THREAD {
                    let parent = {
                        let pool = pool.lock().unwrap();
                        pool[rng.below(pool.len())].clone()
                    };
                    let (child, handle) = match rng.below(3) {
                        0 => parent.with_timeout(Duration::from_millis(rng.below(20) as u64)),
                        _ => parent.with_cancel(),
                    };
                    if rng.below(4) == 0 {
                        let ctx = child.clone();
                        let waiter = runtime.spawn(async move { ctx.done().await });
                        waiters.push((child.clone(), Some(waiter)));
                    }
                    match rng.below(10) {
                        0 => handle.cancel(),
                        1 => drop(handle),
                        2 => {
                            let victim = {
                                let mut handles = handles.lock().unwrap();
                                let n = handles.len();
                                (n > 0).then(|| handles.swap_remove(rng.below(n)))
                            };
                            drop(victim);
                            handles.lock().unwrap().push(handle);
                        }
                        _ => handles.lock().unwrap().push(handle),
                    }
                    pool.lock().unwrap().push(child);
                }
                waiters
            })
        })
        .collect();
    for builder in builders {
        waiters.extend(builder.join().unwrap());
    }

    // Every waiter of a context that has ended must wake.
    runtime.block_on(async {
        for (ctx, waiter) in waiters.iter_mut() {
            if ctx.is_done() {
                let waiter = waiter.take().unwrap();
                let woke = tokio::time::timeout(Duration::from_secs(10), waiter).await;
                let err = woke.expect("lost wake-up: the context ended, the waiter sleeps");
                assert!(err.unwrap() == ctx.err().unwrap());
            }
        }
    });

    // End everything from several threads at once; then every context has ended.
    let cancellers: Vec<_> = (0..THREADS)
        .map(|_| {
            let handles = handles.clone();
            std::thread::spawn(move || {
                // The lock is released before the handle is dropped (which cancels).
                let pop = || handles.lock().unwrap().pop();
                while let Some(handle) = pop() {
                    drop(handle);
                }
            })
        })
        .collect();
    root_handle.cancel();
    for canceller in cancellers {
        canceller.join().unwrap();
    }
    assert!(pool.lock().unwrap().iter().skip(1).all(|ctx| ctx.is_done()));
    assert_eq!(root.err(), Some(Error::Canceled));
    runtime.block_on(async {
        for waiter in waiters.into_iter().filter_map(|(_, waiter)| waiter) {
            let woke = tokio::time::timeout(Duration::from_secs(10), waiter).await;
            woke.expect("lost wake-up after the root's cancel").unwrap();
        }
    });
}

#[test]
fn threads_and_runtimes_racing_leave_no_deadlock_lost_wakeup_or_leak() {
    let finished = watchdog(Duration::from_secs(120 + 5 * rounds()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .unwrap();
    // The first round warms up what the runtime and the allocator keep for reuse.
    round(&runtime, 0);
    let baseline = LIVE_BYTES.load(Ordering::SeqCst);
    let rounds = rounds();
    for seed in 1..=rounds {
        round(&runtime, seed);
    }
    // Tasks free their memory as the runtime reaps them: give it a moment.
    runtime.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
    let grown = LIVE_BYTES.load(Ordering::SeqCst) - baseline;
    finished.store(true, Ordering::SeqCst);
    // Allow the runtime's own buffers a little room, but not a per-context leak (rounds make
    // about 9,000 contexts each).
    assert!(
        grown < 64 * 1024,
        "the heap grew by {grown} bytes over {rounds} rounds"
    );
}
