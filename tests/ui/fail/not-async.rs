// The message must say that `#[cancellable]` requires an `async fn` and show `async fn load(..)`,
// pointing at the `fn` keyword.
use ctx_core::cancellable;

#[cancellable(timeout = "1s")]
pub fn load(id: u32) -> u32 {
    id
}

fn main() {}
