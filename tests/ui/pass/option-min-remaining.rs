// `min_remaining = "…"` and `min_remaining = EXPR`, alone and with `timeout`/`deadline`, on
// every kind of return type.
#![deny(warnings)]

use std::time::Duration;

use ctx_core::{Context, Error, cancellable};
use tokio::time::Instant;

#[cancellable(min_remaining = "50ms")]
async fn alone() -> u8 {
    1
}

#[cancellable(timeout = "1s", min_remaining = "100ms")]
async fn with_timeout() -> Result<u8, Error> {
    Ok(2)
}

#[cancellable(min_remaining = need * 2, deadline = at)]
async fn with_deadline(at: Instant, need: Duration) -> std::io::Result<u8> {
    Ok(3)
}

struct Store {
    budget: Duration,
}

impl Store {
    #[cancellable(min_remaining = self.budget)]
    async fn get(&self) {}
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let bg = Context::background();
    assert_eq!(alone(&bg).await, Ok(1));
    assert_eq!(with_timeout(&bg).await, Ok(2));
    let at = Instant::now() + Duration::from_secs(1);
    assert_eq!(with_deadline(&bg, at, Duration::from_millis(100)).await.unwrap(), 3);
    let store = Store {
        budget: Duration::from_millis(10),
    };
    assert_eq!(store.get(&bg).await, Ok(()));
}
