// The message must say the literal is not a duration and give humantime examples ("250ms",
// "5s", "1m 30s", "2h"), pointing at the literal.
use ctx_core::cancellable;

#[cancellable(timeout = "5 parsecs")]
pub async fn load() {}

fn main() {}
