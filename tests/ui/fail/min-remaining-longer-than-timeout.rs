// `min_remaining` longer than a literal `timeout`: the body could never start. The message
// must say so, pointing at the `min_remaining` option.
use ctx_core::cancellable;

#[cancellable(timeout = "1s", min_remaining = "2s")]
pub async fn load() {}

fn main() {}
