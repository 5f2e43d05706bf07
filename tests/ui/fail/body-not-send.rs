// A body that holds a `std::sync::MutexGuard` across an `.await` makes the fn's future
// `!Send`: the error must point at the user's `.await` and at the spawn.
use std::sync::Mutex;

use ctx_core::{Context, cancellable};

#[cancellable(timeout = "5s")]
pub async fn bump(counter: &Mutex<u32>) {
    let mut guard = counter.lock().unwrap();
    tokio::task::yield_now().await;
    *guard += 1;
}

fn main() {
    let counter: &'static Mutex<u32> = Box::leak(Box::new(Mutex::new(0)));
    tokio::spawn(async move { bump(&Context::background(), counter).await });
}
