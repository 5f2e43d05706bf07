// The expansion is clean under strict lints, with ctx-core's names imported (so a needlessly
// qualified path in the glue would trip `unused_qualifications`).
#![deny(warnings, clippy::all, clippy::pedantic, unused_qualifications)]

use std::time::Duration;

use ctx_core::{Context, Error, cancellable};
use tokio::time::Instant;

#[cancellable(timeout = "1s")]
async fn literal() {}

#[cancellable(timeout = Duration::from_secs(1))]
async fn expression() -> Result<(), Error> {
    Ok(())
}

#[cancellable(deadline = Instant::now())]
async fn deadline() -> u8 {
    1
}

#[cancellable]
async fn adopted(ctx: &Context) -> Option<Instant> {
    ctx.deadline()
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let ctx = Context::background();
    assert_eq!(literal(&ctx).await, Ok(()));
    assert_eq!(expression(&ctx).await, Ok(()));
    assert_eq!(deadline(&ctx).await, Err(Error::DeadlineExceeded));
    assert_eq!(adopted(&ctx).await, Ok(None));
}
