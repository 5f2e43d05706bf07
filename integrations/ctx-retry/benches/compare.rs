//! What `ctx_retry::retry` costs beside backon's own `Retryable::retry`, on the same policy and
//! the same operation (fails twice, then succeeds, with 1 ms between attempts), on a runtime
//! whose clock is paused: the sleeps take no real time, so only the machinery is timed.
//! One JSON line per implementation, then the ratio:
//!
//! ```text
//! cargo bench -p ctx-retry --bench compare
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use backon::{ConstantBuilder, Retryable};
use ctx_core::Context;

const ROUNDS: usize = 15;

fn policy() -> ConstantBuilder {
    ConstantBuilder::default()
        .with_delay(Duration::from_millis(1))
        .with_max_times(5)
}

/// Median ns per call of `call` over ROUNDS batches of `n`.
fn measure<F: FnMut()>(n: usize, mut call: F) -> f64 {
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..n {
                call();
            }
            start.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[ROUNDS / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let n = 5_000;
    let (ctx, _h) = Context::background().with_timeout(Duration::from_secs(3600));

    let ours = measure(n, || {
        let mut calls = 0u32;
        let got = rt.block_on(ctx_retry::retry(&ctx, policy(), |_| {
            calls += 1;
            let n = calls;
            async move { if n < 3 { Err("busy") } else { Ok(n) } }
        }));
        black_box(got.ok());
    });
    let background = Context::background();
    let ours_no_deadline = measure(n, || {
        let mut calls = 0u32;
        let got = rt.block_on(ctx_retry::retry(&background, policy(), |_| {
            calls += 1;
            let n = calls;
            async move { if n < 3 { Err("busy") } else { Ok(n) } }
        }));
        black_box(got.ok());
    });
    let backon = measure(n, || {
        let mut calls = 0u32;
        let op = || {
            calls += 1;
            let n = calls;
            async move { if n < 3 { Err("busy") } else { Ok(n) } }
        };
        let got = rt.block_on(op.retry(policy()).sleep(tokio::time::sleep));
        black_box(got.ok());
    });
    for (name, ns) in [
        ("ctx-retry", ours),
        ("ctx-retry-no-deadline", ours_no_deadline),
        ("backon", backon),
    ] {
        println!(
            "{{\"name\":\"retry_third_attempt_succeeds\",\"impl\":\"{name}\",\"ns_per_op\":{ns:.1}}}"
        );
    }
    println!(
        "ctx-retry / backon: {:.2} (under a deadline), {:.2} (without one)",
        ours / backon,
        ours_no_deadline / backon
    );
}
