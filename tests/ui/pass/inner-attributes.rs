// Inner attributes of the body (`#![…]`) are re-emitted at the top of the new body, where they
// cover the whole fn.
#![deny(warnings)]

use ctx_core::{Context, cancellable};

#[cancellable(timeout = "1s")]
async fn lenient() -> u8 {
    #![allow(unused_variables)]
    //! An inner doc comment is an inner attribute too.
    let unused = 1;
    2
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    assert_eq!(lenient(&Context::background()).await, Ok(2));
}
