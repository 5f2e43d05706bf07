// The message must say that `#[cancellable]` applies to an `async fn` only, pointing at the item
// (`struct`), which is kept unchanged.
use ctx_core::cancellable;

#[cancellable]
pub struct Loader;

fn main() {
    let _still_there = Loader;
}
