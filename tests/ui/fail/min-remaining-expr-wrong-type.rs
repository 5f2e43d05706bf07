// `min_remaining = EXPR` of another type than `Duration`: rustc's type error must point at the
// user's expression.
use ctx_core::cancellable;

#[cancellable(min_remaining = millis)]
pub async fn load(millis: u64) {}

fn main() {}
