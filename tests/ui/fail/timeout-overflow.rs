// The message must say the duration is too large and give the allowed range (1ns up to
// u64::MAX seconds), pointing at the literal.
use ctx_core::cancellable;

#[cancellable(timeout = "99999999999999999999s")]
pub async fn load() {}

fn main() {}
