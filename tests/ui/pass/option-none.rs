// No option: no child context; the body just races the caller's context.
#![deny(warnings)]

use ctx_core::{Context, cancellable};

#[cancellable]
async fn same_deadline() -> Option<tokio::time::Instant> {
    ctx.deadline()
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let (ctx, _cancel) = Context::background().with_timeout(std::time::Duration::from_secs(3));
    assert_eq!(same_deadline(&ctx).await, Ok(ctx.deadline()));
}
