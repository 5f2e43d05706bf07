// `timeout = EXPR`: any `Duration` expression, which may use the arguments and `self`.
#![deny(warnings)]

use std::time::Duration;

use ctx_core::{Context, cancellable};
use tokio::time::Instant;

const LIMIT: Duration = Duration::from_secs(4);

#[cancellable(timeout = LIMIT)]
async fn constant() -> Option<Instant> {
    ctx.deadline()
}

#[cancellable(timeout = Duration::from_millis(ms))]
async fn argument(ms: u64) -> Option<Instant> {
    ctx.deadline()
}

struct Client {
    limit: Duration,
}

impl Client {
    #[cancellable(timeout = self.limit * 2)]
    async fn call(&self) -> Option<Instant> {
        ctx.deadline()
    }
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let ctx = Context::background();
    let now = Instant::now();
    assert_eq!(constant(&ctx).await, Ok(Some(now + LIMIT)));
    assert_eq!(
        argument(&ctx, 7).await,
        Ok(Some(now + Duration::from_millis(7)))
    );
    let client = Client {
        limit: Duration::from_secs(1),
    };
    assert_eq!(
        client.call(&ctx).await,
        Ok(Some(now + Duration::from_secs(2)))
    );
}
