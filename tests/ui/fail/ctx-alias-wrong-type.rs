// A `ctx` parameter whose type is named `Context` but is not ctx-core's: the `Parent` bound's
// message must say the context parameter must be `&Context` or `Context`, at the type.
use ctx_core::cancellable;

pub struct Context;

#[cancellable(timeout = "5s")]
pub async fn load(ctx: &Context) {}

fn main() {}
