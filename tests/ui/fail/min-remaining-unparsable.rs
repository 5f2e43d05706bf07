// The message must say the literal is not a duration and show humantime examples, pointing at
// the literal.
use ctx_core::cancellable;

#[cancellable(min_remaining = "fifty millis")]
pub async fn load() {}

fn main() {}
