// `deadline = EXPR`: a `tokio::time::Instant`, evaluated per call, which may use the arguments.
#![deny(warnings)]

use std::time::Duration;

use ctx_core::{Context, cancellable};
use tokio::time::Instant;

#[cancellable(deadline = at)]
async fn until(at: Instant) -> Option<Instant> {
    ctx.deadline()
}

#[cancellable(deadline = start + Duration::from_secs(secs))]
async fn after(start: Instant, secs: u64) -> Option<Instant> {
    ctx.deadline()
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let ctx = Context::background();
    let at = Instant::now() + Duration::from_secs(9);
    assert_eq!(until(&ctx, at).await, Ok(Some(at)));
    assert_eq!(
        after(&ctx, at, 1).await,
        Ok(Some(at + Duration::from_secs(1)))
    );
}
