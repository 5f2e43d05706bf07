// A bare number: the message must say a duration needs a unit and show `timeout = "5s"`,
// pointing at the number.
use ctx_core::cancellable;

#[cancellable(timeout = 5)]
pub async fn load() {}

fn main() {}
