// The message must say a zero timeout would end the context before the body starts and ask for
// a duration greater than zero, pointing at the literal.
use ctx_core::cancellable;

#[cancellable(timeout = "0ms")]
pub async fn load() {}

fn main() {}
