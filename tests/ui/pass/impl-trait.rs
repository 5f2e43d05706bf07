// `impl Trait` in argument and in return position, plain and inside a `Result`.
#![deny(warnings)]

use std::fmt::Display;

use ctx_core::{Context, Error, cancellable};

#[cancellable(timeout = "1s")]
async fn shout(text: impl Into<String>) -> impl Display {
    text.into().to_uppercase()
}

#[cancellable]
async fn evens(limit: u32) -> Result<impl Iterator<Item = u32>, Error> {
    Ok((0..limit).filter(|n| n % 2 == 0))
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let ctx = Context::background();
    assert_eq!(shout(&ctx, "hi").await.unwrap().to_string(), "HI");
    assert_eq!(evens(&ctx, 5).await.unwrap().collect::<Vec<_>>(), [0, 2, 4]);
}
