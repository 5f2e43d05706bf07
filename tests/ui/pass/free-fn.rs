// A free fn of every return shape: none, a plain type, a `Result`; visibility, doc comments and
// other attributes are kept in order.
#![deny(warnings)]

use ctx_core::{Context, Error, cancellable};

/// Doc comments stay.
#[cancellable]
#[must_use]
pub async fn plain(x: u32) -> u32 {
    x + 1
}

#[cancellable(timeout = "1s")]
pub(crate) async fn nothing() {}

#[cancellable(timeout = "1s")]
async fn fallible(x: u32) -> Result<u32, Error> {
    Ok(x)
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let ctx = Context::background();
    let plain: Result<u32, Error> = plain(&ctx, 1).await;
    assert_eq!(plain, Ok(2));
    let nothing: Result<(), Error> = nothing(&ctx).await;
    assert_eq!(nothing, Ok(()));
    assert_eq!(fallible(&ctx, 3).await, Ok(3));
}
