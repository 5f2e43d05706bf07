// `return` and `?` in the body return from the body, with the declared types: `?` converts
// errors with `From` as it would without the attribute.
#![deny(warnings)]

use std::num::ParseIntError;

use ctx_core::{Context, Error, cancellable};

#[derive(Debug, PartialEq)]
enum AppError {
    Parse,
    Stopped(Error),
}

impl From<ParseIntError> for AppError {
    fn from(_: ParseIntError) -> Self {
        AppError::Parse
    }
}

impl From<Error> for AppError {
    fn from(err: Error) -> Self {
        AppError::Stopped(err)
    }
}

#[cancellable(timeout = "1s")]
async fn parse(text: &str) -> Result<u32, AppError> {
    if text.is_empty() {
        return Ok(0);
    }
    let n: u32 = text.parse()?;
    Ok(n * 2)
}

#[cancellable]
async fn first_char(text: &str) -> Option<char> {
    let c = text.chars().next()?;
    Some(c)
}

#[cancellable]
async fn early(flag: bool) -> u8 {
    if flag {
        return 1;
    }
    2
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let ctx = Context::background();
    assert_eq!(parse(&ctx, "").await, Ok(0));
    assert_eq!(parse(&ctx, "21").await, Ok(42));
    assert_eq!(parse(&ctx, "x").await, Err(AppError::Parse));
    assert_eq!(first_char(&ctx, "").await, Ok(None));
    assert_eq!(early(&ctx, true).await, Ok(1));
}
