// The message must name the unknown option and list the valid ones (`timeout`, `deadline`,
// `ctx`, `crate`), pointing at the unknown name.
use ctx_core::cancellable;

#[cancellable(timout = "5s")]
pub async fn load() {}

fn main() {}
