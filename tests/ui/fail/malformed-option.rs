// An option without its value: the message must show how to write it
// (`timeout = "5s"` or `timeout = EXPR`), pointing at the option.
use ctx_core::cancellable;

#[cancellable(timeout)]
pub async fn load() {}

fn main() {}
