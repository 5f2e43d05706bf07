// `ctx = name`: the parameter's name, adopted when declared, injected otherwise; the body sees
// the child under that name. A declared `ctx` of type `Context` (by value) is adopted too.
#![deny(warnings)]

use ctx_core::{Context, cancellable};

#[cancellable(ctx = parent, timeout = "1s")]
async fn declared(id: u32, parent: &Context) -> bool {
    parent.deadline().is_some() && id == 1
}

#[cancellable(timeout = "1s", ctx = cx)]
async fn injected() -> bool {
    cx.deadline().is_some()
}

#[cancellable(timeout = "1s")]
async fn by_value(ctx: Context) -> bool {
    ctx.deadline().is_some()
}

#[cancellable(timeout = "1s")]
async fn by_mut_ref(ctx: &mut Context) -> bool {
    ctx.deadline().is_some()
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let mut ctx = Context::background();
    assert_eq!(declared(1, &ctx).await, Ok(true));
    assert_eq!(injected(&ctx).await, Ok(true));
    assert_eq!(by_mut_ref(&mut ctx).await, Ok(true));
    assert_eq!(by_value(ctx).await, Ok(true));
}
