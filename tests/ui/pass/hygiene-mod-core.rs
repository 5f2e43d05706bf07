// A `mod core {}` and a `mod ctx_core {}` in the user's crate do not capture the expansion's
// `::core::…` and `::ctx_core::…` paths.
#![deny(warnings)]

#[allow(dead_code)]
mod core {}

#[allow(dead_code)]
mod ctx_core {}

use ::ctx_core::{Context, cancellable};

#[cancellable(timeout = "1s")]
async fn wrapped() -> u8 {
    1
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    assert_eq!(wrapped(&Context::background()).await, Ok(1));
}
