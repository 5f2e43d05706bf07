// `timeout = EXPR` of another type than `Duration`: rustc's type error must point at the
// user's expression.
use ctx_core::cancellable;

#[cancellable(timeout = secs * 1000)]
pub async fn load(secs: u64) {}

fn main() {}
