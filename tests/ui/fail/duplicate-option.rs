// The message must say the option is given twice and to remove one, pointing at the second.
use ctx_core::cancellable;

#[cancellable(timeout = "5s", timeout = "10s")]
pub async fn load() {}

fn main() {}
