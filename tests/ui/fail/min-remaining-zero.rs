// The message must say a zero `min_remaining` checks nothing and ask for a duration greater
// than zero (or the option's removal), pointing at the literal.
use ctx_core::cancellable;

#[cancellable(min_remaining = "0s")]
pub async fn load() {}

fn main() {}
