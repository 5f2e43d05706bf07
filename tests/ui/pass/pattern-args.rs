// Pattern parameters: tuples, structs, `mut` bindings, `_`.
#![deny(warnings)]

use ctx_core::{Context, cancellable};

struct Point {
    x: i32,
    y: i32,
}

#[cancellable(timeout = "1s")]
async fn sum((a, b): (u8, u8), Point { x, y }: Point, mut acc: i32, _: bool) -> i32 {
    acc += i32::from(a) + i32::from(b) + x + y;
    acc
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let ctx = Context::background();
    let total = sum(&ctx, (1, 2), Point { x: 3, y: 4 }, 10, true).await;
    assert_eq!(total, Ok(20));
}
