// `unsafe async fn` stays unsafe, and its body may use unsafe operations in `unsafe` blocks.
#![deny(warnings)]

use ctx_core::{Context, cancellable};

/// # Safety
///
/// `ptr` must be valid for reads.
#[cancellable(timeout = "1s")]
async unsafe fn read(ptr: *const u32) -> u32 {
    // SAFETY: the caller promises that `ptr` is valid.
    unsafe { *ptr }
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let ctx = Context::background();
    let value = 5u32;
    // SAFETY: `value` is alive.
    let read = unsafe { read(&ctx, &value) };
    assert_eq!(read.await, Ok(5));
}
