// `crate = "path"`: ctx-core reached through a re-exporting module and under another name.
#![deny(warnings)]

extern crate ctx_core as renamed;

mod runtime {
    pub mod ctx {
        pub use ctx_core::*;
    }
}

use renamed::cancellable;

#[cancellable(crate = "runtime::ctx", timeout = "1s")]
async fn through_module() -> bool {
    ctx.deadline().is_some()
}

#[cancellable(crate = "::renamed")]
async fn through_renamed(id: u8) -> Result<u8, renamed::Error> {
    Ok(id)
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let ctx = runtime::ctx::Context::background();
    assert_eq!(through_module(&ctx).await, Ok(true));
    assert_eq!(through_renamed(&ctx, 3).await, Ok(3));
}
