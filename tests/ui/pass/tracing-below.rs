// `#[tracing::instrument]` below `#[cancellable]`: it sees the injected `ctx` parameter, so it
// records it as a field unless skipped with `skip(ctx)`.
#![deny(warnings)]

use ctx_core::{Context, Error, cancellable};

#[cancellable(timeout = "1s")]
#[tracing::instrument(skip(ctx))]
async fn load(id: u32) -> Result<u32, Error> {
    tracing::info!(deadline = ?ctx.deadline(), "loading");
    Ok(id)
}

#[cancellable]
#[tracing::instrument]
async fn recorded(id: u32) -> u32 {
    id
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let ctx = Context::background();
    assert_eq!(load(&ctx, 1).await, Ok(1));
    assert_eq!(recorded(&ctx, 2).await, Ok(2));
}
