// An error type without `From<ctx_core::Error>`: the message must say so and suggest
// `impl From<ctx_core::Error> for AppError`, pointing at the return type.
use ctx_core::cancellable;

#[derive(Debug)]
pub struct AppError;

#[cancellable(timeout = "5s")]
pub async fn load(id: u32) -> Result<u32, AppError> {
    Ok(id)
}

fn main() {}
