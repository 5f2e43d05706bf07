// `#[tracing::instrument]` above `#[cancellable]`: it expands first and sees the original
// signature (no `ctx`); `#[cancellable]` then rewrites the instrumented fn.
#![deny(warnings)]

use ctx_core::{Context, Error, cancellable};

#[tracing::instrument]
#[cancellable(timeout = "1s")]
async fn load(id: u32) -> Result<u32, Error> {
    tracing::info!("loading");
    Ok(id)
}

#[tracing::instrument(level = "debug")]
#[cancellable]
async fn plain(id: u32) -> u32 {
    id
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let ctx = Context::background();
    assert_eq!(load(&ctx, 1).await, Ok(1));
    assert_eq!(plain(&ctx, 2).await, Ok(2));
}
