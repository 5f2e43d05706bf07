// The message must say `timeout` and `deadline` cannot be used together and to keep one,
// pointing at the later of the two.
use ctx_core::cancellable;
use tokio::time::Instant;

#[cancellable(timeout = "5s", deadline = at)]
pub async fn load(at: Instant) -> Instant {
    at
}

fn main() {}
