// `timeout = "…"`: every humantime form, checked at compile time.
#![deny(warnings)]

use std::time::Duration;

use ctx_core::{Context, cancellable};
use tokio::time::Instant;

#[cancellable(timeout = "250ms")]
async fn quarter() -> Option<Instant> {
    ctx.deadline()
}

#[cancellable(timeout = "1m 30s")]
async fn ninety() -> Option<Instant> {
    ctx.deadline()
}

#[cancellable(timeout = "2h")]
async fn two_hours() -> Option<Instant> {
    ctx.deadline()
}

#[cancellable(timeout = "1.5s")]
async fn fraction() -> Option<Instant> {
    ctx.deadline()
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let ctx = Context::background();
    let now = Instant::now();
    assert_eq!(
        quarter(&ctx).await,
        Ok(Some(now + Duration::from_millis(250)))
    );
    assert_eq!(ninety(&ctx).await, Ok(Some(now + Duration::from_secs(90))));
    assert_eq!(
        two_hours(&ctx).await,
        Ok(Some(now + Duration::from_secs(7200)))
    );
    assert_eq!(
        fraction(&ctx).await,
        Ok(Some(now + Duration::from_millis(1500)))
    );
}
