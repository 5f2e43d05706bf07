// The future of a `#[cancellable]` fn is `Send` when its body is: it can be `tokio::spawn`ed.
#![deny(warnings)]

use std::sync::Arc;
use std::time::Duration;

use ctx_core::{Context, Error, cancellable};
use tokio::sync::Mutex;

#[cancellable(timeout = "1s")]
async fn bump(counter: Arc<Mutex<u32>>) -> u32 {
    let mut guard = counter.lock().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    *guard += 1;
    *guard
}

#[cancellable]
async fn adopted(ctx: Context, n: u32) -> Result<u32, Error> {
    ctx.run(async { n }).await
}

#[tokio::main]
async fn main() {
    let ctx = Context::background();
    let counter = Arc::new(Mutex::new(0));
    let task = tokio::spawn({
        let ctx = ctx.clone();
        async move { bump(&ctx, counter).await }
    });
    assert_eq!(task.await.unwrap(), Ok(1));
    assert_eq!(tokio::spawn(adopted(ctx, 3)).await.unwrap(), Ok(3));
}
