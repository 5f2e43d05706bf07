// `crate` takes a string: the message must show `crate = "my::ctx"`, pointing at the path.
use ctx_core::cancellable;

#[cancellable(crate = my::ctx)]
pub async fn load() {}

fn main() {}
