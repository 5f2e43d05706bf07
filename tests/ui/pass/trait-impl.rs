// A trait impl: the trait declares `ctx: &Context` and the wrapped return type; the impl's
// `#[cancellable]` adopts that parameter instead of adding one.
#![deny(warnings)]

use ctx_core::{Context, Error, cancellable};

trait Store {
    async fn get(&self, ctx: &Context, key: u32) -> Result<u32, Error>;
    async fn len(&self, ctx: &Context) -> Result<usize, Error>;
}

struct Memory(Vec<u32>);

impl Store for Memory {
    #[cancellable(timeout = "1s")]
    async fn get(&self, ctx: &Context, key: u32) -> Result<u32, Error> {
        assert!(ctx.deadline().is_some());
        Ok(self.0[key as usize])
    }

    #[cancellable]
    async fn len(&self, ctx: &Context) -> Result<usize, Error> {
        Ok(self.0.len() + usize::from(ctx.is_done()))
    }
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let ctx = Context::background();
    let store = Memory(vec![4, 5]);
    assert_eq!(store.get(&ctx, 1).await, Ok(5));
    assert_eq!(store.len(&ctx).await, Ok(2));
}
