// The expansion's own locals (`__ctx_lazy`, `__ctx_timeout`, …) are invisible to the body: the
// user's variables and parameters of the same names are theirs.
#![deny(warnings)]

use ctx_core::{Context, cancellable};

#[cancellable(timeout = "1s")]
async fn shadows(__ctx_lazy: u8, __ctx_timeout: u8) -> u8 {
    let __ctx_guard = 1;
    let __ctx_ret = 2;
    __ctx_guard + __ctx_ret + __ctx_lazy + __ctx_timeout
}

#[cancellable(timeout = __ctx_lazy)]
async fn timeout_param(__ctx_lazy: std::time::Duration) -> bool {
    ctx.deadline().is_some()
}

#[cancellable(deadline = __ctx_deadline)]
async fn deadline_param(__ctx_deadline: tokio::time::Instant) -> bool {
    ctx.deadline() == Some(__ctx_deadline)
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let ctx = Context::background();
    assert_eq!(shadows(&ctx, 3, 4).await, Ok(10));
    let at = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
    assert_eq!(deadline_param(&ctx, at).await, Ok(true));
    let second = std::time::Duration::from_secs(1);
    assert_eq!(timeout_param(&ctx, second).await, Ok(true));
}
