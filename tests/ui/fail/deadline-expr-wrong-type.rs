// `deadline = EXPR` of another type than `tokio::time::Instant` (here std's): rustc's type error
// must point at the user's expression.
use ctx_core::cancellable;

#[cancellable(deadline = at)]
pub async fn load(at: std::time::Instant) {}

fn main() {}
