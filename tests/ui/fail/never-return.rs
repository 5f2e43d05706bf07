// `-> !` cannot be wrapped in a `Result`: the message must say so and suggest
// `Result<std::convert::Infallible, ctx_core::Error>`, pointing at the `!`.
use ctx_core::cancellable;

#[cancellable]
pub async fn forever() -> ! {
    loop {
        tokio::task::yield_now().await;
    }
}

fn main() {}
