// A local `type Result<T> = …` and shadowed prelude names (`Ok`, `Err`, `Option`, `From`)
// do not break the expansion, which names everything by absolute path.
#![deny(warnings)]
#![allow(non_snake_case)]

use ctx_core::{Context, cancellable};

#[derive(Debug, PartialEq)]
struct MyError(ctx_core::Error);

impl std::convert::From<ctx_core::Error> for MyError {
    fn from(err: ctx_core::Error) -> Self {
        MyError(err)
    }
}

type Result<T> = std::result::Result<T, MyError>;

#[allow(dead_code)]
trait From {}
#[allow(dead_code)]
struct Option;
#[allow(dead_code)]
fn Ok() {}
#[allow(dead_code)]
fn Err() {}

#[cancellable(timeout = "1s")]
async fn declared() -> Result<u8> {
    std::result::Result::Ok(1)
}

#[cancellable(timeout = "1s")]
async fn wrapped() -> u8 {
    2
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let ctx = Context::background();
    assert_eq!(declared(&ctx).await, std::result::Result::Ok(1));
    assert_eq!(wrapped(&ctx).await, std::result::Result::Ok(2));
}
