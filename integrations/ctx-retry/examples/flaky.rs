//! A flaky dependency called with retries and with hedging, under a 300 ms budget: what each
//! attempt sees, and why the retries stop.
//!
//! Run it with `cargo run -p ctx-retry --example flaky`.

use std::time::Duration;

use ctx_core::Context;
use ctx_retry::backon::ExponentialBuilder;
use ctx_retry::{hedge, retry};
use tokio::time::Instant;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(300));
    let start = Instant::now();

    // Retries: a dependency that is down; exponential backoff from 40 ms.
    let policy = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(40))
        .with_max_times(10);
    let err = retry(&ctx, policy, |attempt_ctx| async move {
        let left = attempt_ctx.deadline().map(|d| d - Instant::now());
        println!("  attempt at {:?}, {left:?} left", start.elapsed());
        Err::<(), _>("503 from the albums service")
    })
    .await
    .unwrap_err();
    println!("retry: {err}");

    // Hedging: the first replica is stuck, the second answers in 10 ms.
    let start = Instant::now();
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(300));
    let answer = hedge(
        &ctx,
        Duration::from_millis(50),
        2,
        |attempt_ctx, n| async move {
            let took = if n == 0 {
                Duration::from_secs(5)
            } else {
                Duration::from_millis(10)
            };
            attempt_ctx
                .run(tokio::time::sleep(took))
                .await
                .map(|()| format!("replica {n}"))
        },
    )
    .await;
    println!("hedge: {answer:?} after {:?}", start.elapsed());
}
