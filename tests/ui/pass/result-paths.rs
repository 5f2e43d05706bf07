// Any type path ending in `Result` counts as a `Result`: `io::Result<T>`, an alias, a
// `Result` whose error is a boxed error; anything else (`Option<Result<…>>`) is wrapped.
#![deny(warnings)]

use std::io;

use ctx_core::{Context, Error, cancellable};

mod app {
    pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
}

#[cancellable(timeout = "1s")]
async fn read() -> io::Result<u8> {
    Ok(1)
}

#[cancellable(timeout = "1s")]
async fn boxed() -> app::Result<u8> {
    Ok(2)
}

#[cancellable(timeout = "1s")]
async fn nested() -> Option<Result<u8, String>> {
    Some(Ok(3))
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let ctx = Context::background();
    assert_eq!(read(&ctx).await.unwrap(), 1);
    assert_eq!(boxed(&ctx).await.unwrap(), 2);
    let nested: Result<Option<Result<u8, String>>, Error> = nested(&ctx).await;
    assert_eq!(nested, Ok(Some(Ok(3))));
}
