// The error type hidden behind a one-parameter `Result` alias: the message must say the
// declared type cannot hold a context error and what to add, at the return type, and show no
// ctx-core source.
use ctx_core::cancellable;

#[derive(Debug)]
pub struct AppError;

pub type Result<T> = std::result::Result<T, AppError>;

#[cancellable(timeout = "5s")]
pub async fn load(id: u32) -> Result<u32> {
    Ok(id)
}

fn main() {}
