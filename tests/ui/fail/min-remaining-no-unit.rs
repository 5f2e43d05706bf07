// A bare number: the message must say a duration needs a unit and show
// `min_remaining = "5s"`, pointing at the number.
use ctx_core::cancellable;

#[cancellable(min_remaining = 50)]
pub async fn load() {}

fn main() {}
