// A `ctx` parameter that is not a context: the message must say it must be `&Context` or
// `Context` and show `ctx: &ctx_core::Context`, pointing at the parameter's type.
use ctx_core::cancellable;

#[cancellable(timeout = "5s")]
pub async fn load(id: u32, ctx: &str) -> u32 {
    id + ctx.len() as u32
}

fn main() {}
