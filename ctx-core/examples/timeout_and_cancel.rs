//! The two things Go users reach for `context` for, in one program: an operation bounded by a
//! timeout, and two dependent operations where the failure of one stops the other.
//!
//! Run it with `cargo run -p ctx-core --example timeout_and_cancel`.

use std::time::{Duration, Instant};

use ctx_core::{Context, Error, Group};

/// A lookup that takes `latency`, unless its context ends first.
async fn lookup(ctx: &Context, what: &str, latency: Duration) -> Result<String, Error> {
    ctx.run(async {
        tokio::time::sleep(latency).await;
        format!("{what}: found")
    })
    .await
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let root = Context::background();

    // 1. A timeout: Go's `ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)`.
    let (ctx, _cancel) = root.with_timeout(Duration::from_millis(100));
    let started = Instant::now();
    let fast = lookup(&ctx, "album 7", Duration::from_millis(10)).await;
    let slow = lookup(&ctx, "album 8", Duration::from_secs(10)).await;
    println!("fast lookup: {fast:?}");
    println!(
        "slow lookup: {} after {} ms (the timeout was 100 ms)",
        slow.unwrap_err(),
        started.elapsed().as_millis()
    );

    // 2. A cancel: Go's `g, ctx := errgroup.WithContext(ctx)`.
    let mut group = Group::new(&root);
    let ctx = group.context().clone();
    group.spawn(async move {
        // A slow half that would take 60 s on its own.
        lookup(&ctx, "tracks", Duration::from_secs(60))
            .await
            .map(|_| ())
            .map_err(|stopped| format!("tracks lookup stopped: {stopped}"))
    });
    group.spawn(async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Err("artist lookup failed: connection refused".to_string())
    });
    let started = Instant::now();
    let first_error = group.wait().await.unwrap_err();
    println!(
        "group: {first_error} (the slow half stopped after {} ms, not 60 s)",
        started.elapsed().as_millis()
    );

    // 3. A cause: who ended the context and why.
    let (request, handle) = root.with_cancel();
    handle.cancel_with_cause("client disconnected");
    println!(
        "request: err = {}, cause = {}",
        request.err().unwrap_or(Error::Canceled),
        request.cause().expect("ended")
    );
}
