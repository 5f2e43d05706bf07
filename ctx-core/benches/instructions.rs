//! A driver for instruction counts under callgrind, where the timed benchmark (`compare`) is too
//! noisy on a shared machine: runs one case exactly `N` times and exits.
//!
//! ```text
//! cargo bench -p ctx-core --bench instructions --no-run      # prints the binary's path
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null BINARY CASE 10000
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null BINARY CASE 20000
//! ```
//!
//! Instructions per op = (second total − first total) / 10,000: the difference cancels the
//! start-up, the runtime's construction and everything else outside the loop. Cases (the ops of
//! `compare`'s cases of the same names):
//!
//! - `cancellable_call_ready`: a `#[cancellable(timeout = "5s")]` fn whose body is ready at
//!   once, called with `background()` as the parent;
//! - `cancellable_call_ready_cancelable_parent`: the same with a live `with_cancel` parent;
//! - `tokio_timeout_ready`: the same body in `tokio::time::timeout(5s, ..)`;
//! - `run_ready`: `ctx.run(ready future).await` on a live `with_cancel` context;
//! - `err_check_live`: `ctx.err()` on a live `with_cancel` context;
//! - `value_lookup_depth_10_miss`: `ctx.value::<Missing>()` through 10 `with_value` layers;
//! - `with_cancel_cancel`: `background().with_cancel()`, then cancel, both dropped;
//! - `with_timeout_cancel`: the same with `with_timeout(1h)`;
//! - `cancel_one_waiter`, `tokio_util_cancel_one_waiter`: the work of `cancel_wake_latency`
//!   without the threads: a context (a token) made, its `done()` (`cancelled_owned()`) polled
//!   once (the waiter registered), cancelled, polled again (ready), all dropped;
//! - `fanout_1000_waiters`, `tokio_util_fanout_1000_waiters`: the tree work of
//!   `fanout_100k_cancel` without the tasks, at 1,000 children: each child's `done()`
//!   (`cancelled_owned()`) boxed and polled once, the root cancelled, every waiter polled again
//!   (ready), all dropped (one op is the whole fan-out: divide by 1,000 for a child);
//! - `with_cancel_from_cancelable_parent`: `with_cancel()` on a live `with_cancel` parent,
//!   then cancel, both dropped;
//! - `cancel_tree_depth_D` (any depth `D`: `compare` has 1, 10, 100 and 1000): a `with_cancel`
//!   root, a chain of `D` `with_cancel` below it (the handles kept in a `Vec` made outside the
//!   loop), the root cancelled, everything dropped;
//! - `with_value_chain_depth_10`: 10 `with_value` layers on `background()`, dropped;
//! - `tokio_util_cancel`, `tokio_util_child_cancel`, `tokio_util_tree_depth_D`: the
//!   `CancellationToken` ops of the same `compare` cases (`new` + `cancel`, `child_token` +
//!   `cancel`, the chain of `D`).

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::time::Duration;

use ctx_core::Context;

#[ctx_core::cancellable(timeout = "5s")]
async fn ready_call(x: u64) -> Result<u64, ctx_core::Error> {
    Ok(black_box(x) + 1)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (case, n) = match args.as_slice() {
        [case, n] => (case.as_str(), n.parse::<u64>().expect("N is a number")),
        // `cargo bench` runs every bench target with `--bench`: nothing to time here.
        _ => {
            eprintln!("usage: instructions CASE N (see the source for the cases)");
            return;
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime");
    let background = Context::background();
    let (live, _handle) = Context::background().with_cancel();
    // One loop per case, so that choosing the case is not part of the op.
    rt.block_on(async {
        match case {
            "cancellable_call_ready" => {
                for x in 0..n {
                    black_box(ready_call(&background, x).await.ok());
                }
            }
            "cancellable_call_ready_cancelable_parent" => {
                for x in 0..n {
                    black_box(ready_call(&live, x).await.ok());
                }
            }
            "tokio_timeout_ready" => {
                for x in 0..n {
                    let body = async move { Ok::<u64, ctx_core::Error>(black_box(x) + 1) };
                    black_box(tokio::time::timeout(Duration::new(5, 0), body).await.ok());
                }
            }
            "run_ready" => {
                for x in 0..n {
                    black_box(live.run(async move { black_box(x) }).await.ok());
                }
            }
            "err_check_live" => {
                for _ in 0..n {
                    black_box(black_box(&live).err());
                }
            }
            "value_lookup_depth_10_miss" => {
                struct Missing;
                let mut ctx = background.clone();
                for i in 0..10u64 {
                    ctx = ctx.with_value(i);
                }
                for _ in 0..n {
                    black_box(black_box(&ctx).value::<Missing>());
                }
            }
            "with_cancel_cancel" => {
                for _ in 0..n {
                    let (ctx, handle) = Context::background().with_cancel();
                    handle.cancel();
                    black_box(ctx);
                }
            }
            "cancel_one_waiter" => {
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                for _ in 0..n {
                    let (ctx, handle) = Context::background().with_cancel();
                    let mut done = std::pin::pin!(ctx.done());
                    assert!(done.as_mut().poll(&mut cx).is_pending());
                    handle.cancel();
                    assert!(done.as_mut().poll(&mut cx).is_ready());
                }
            }
            "tokio_util_cancel_one_waiter" => {
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                for _ in 0..n {
                    let token = tokio_util::sync::CancellationToken::new();
                    let mut cancelled = std::pin::pin!(token.clone().cancelled_owned());
                    assert!(cancelled.as_mut().poll(&mut cx).is_pending());
                    token.cancel();
                    assert!(cancelled.as_mut().poll(&mut cx).is_ready());
                }
            }
            "fanout_1000_waiters" => {
                for _ in 0..n {
                    let (root, handle) = Context::background().with_cancel();
                    fan_out_waiters(
                        || {
                            let (child, child_handle) = root.with_cancel();
                            (Box::pin(child.done()), child_handle)
                        },
                        || handle.cancel(),
                    );
                }
            }
            "tokio_util_fanout_1000_waiters" => {
                for _ in 0..n {
                    let root = tokio_util::sync::CancellationToken::new();
                    fan_out_waiters(
                        || {
                            let child = root.child_token();
                            (Box::pin(child.clone().cancelled_owned()), child)
                        },
                        || root.cancel(),
                    );
                }
            }
            "with_timeout_cancel" => {
                for _ in 0..n {
                    let (ctx, handle) =
                        Context::background().with_timeout(Duration::from_secs(3600));
                    handle.cancel();
                    black_box(ctx);
                }
            }
            "with_cancel_from_cancelable_parent" => {
                drop(live.with_cancel());
                for _ in 0..n {
                    let (ctx, handle) = live.with_cancel();
                    handle.cancel();
                    black_box(ctx);
                }
            }
            tree if depth(tree, "cancel_tree_depth_").is_some() => {
                let depth = depth(tree, "cancel_tree_depth_").unwrap();
                let mut handles = Vec::with_capacity(depth);
                for _ in 0..n {
                    let (root, root_handle) = background.with_cancel();
                    let mut ctx = root;
                    for _ in 0..depth {
                        let (child, handle) = ctx.with_cancel();
                        handles.push(handle);
                        ctx = child;
                    }
                    black_box(&ctx);
                    root_handle.cancel();
                    handles.clear();
                }
            }
            "with_value_chain_depth_10" => {
                for _ in 0..n {
                    let mut ctx = background.clone();
                    for i in 0..10u64 {
                        ctx = ctx.with_value(i);
                    }
                    black_box(ctx);
                }
            }
            "tokio_util_cancel" => {
                for _ in 0..n {
                    let token = tokio_util::sync::CancellationToken::new();
                    token.cancel();
                    black_box(token);
                }
            }
            "tokio_util_child_cancel" => {
                let parent = tokio_util::sync::CancellationToken::new();
                drop(parent.child_token());
                for _ in 0..n {
                    let token = parent.child_token();
                    token.cancel();
                    black_box(token);
                }
            }
            tree if depth(tree, "tokio_util_tree_depth_").is_some() => {
                let depth = depth(tree, "tokio_util_tree_depth_").unwrap();
                let mut tokens = Vec::with_capacity(depth);
                for _ in 0..n {
                    let root = tokio_util::sync::CancellationToken::new();
                    let mut token = root.clone();
                    for _ in 0..depth {
                        let child = token.child_token();
                        tokens.push(std::mem::replace(&mut token, child));
                    }
                    black_box(&token);
                    root.cancel();
                    tokens.clear();
                }
            }
            other => panic!("unknown case {other:?}"),
        }
    });
}

/// The depth in a case named `<prefix><depth>` (`cancel_tree_depth_100`).
fn depth(case: &str, prefix: &str) -> Option<usize> {
    case.strip_prefix(prefix)?.parse().ok()
}

/// One op of the `fanout_1000_waiters` cases: 1,000 children made by `child`, each with its
/// waiting future (which `child` returns with whatever must stay alive meanwhile) polled once,
/// then `cancel`, then every future polled again, which must find it ready.
fn fan_out_waiters<F: Future, K>(child: impl Fn() -> (Pin<Box<F>>, K), cancel: impl FnOnce()) {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut waiting: Vec<_> = (0..1000)
        .map(|_| {
            let (mut waiter, keep) = child();
            assert!(waiter.as_mut().poll(&mut cx).is_pending());
            (waiter, keep)
        })
        .collect();
    cancel();
    for (waiter, _) in &mut waiting {
        assert!(waiter.as_mut().poll(&mut cx).is_ready());
    }
}
