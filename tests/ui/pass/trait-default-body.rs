// An `async fn` with a default body in a trait.
#![deny(warnings)]

use ctx_core::{Context, Error, cancellable};

trait Greeter {
    fn name(&self) -> String;

    #[cancellable(timeout = "1s")]
    async fn greet(&self) -> String {
        format!("hello {}", self.name())
    }

    #[cancellable]
    async fn greet_twice(&self, ctx: &Context) -> Result<String, Error> {
        Ok(format!(
            "{} {}",
            self.greet(ctx).await?,
            self.greet(ctx).await?
        ))
    }
}

struct World;

impl Greeter for World {
    fn name(&self) -> String {
        "world".into()
    }
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let ctx = Context::background();
    assert_eq!(World.greet(&ctx).await, Ok("hello world".to_string()));
    assert_eq!(
        World.greet_twice(&ctx).await,
        Ok("hello world hello world".to_string())
    );
}
