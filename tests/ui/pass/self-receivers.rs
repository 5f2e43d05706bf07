// Every form of `self` receiver: the context goes right after it.
#![deny(warnings)]

use std::pin::Pin;
use std::sync::Arc;

use ctx_core::{Context, Error, cancellable};

#[derive(Clone, Default)]
struct Thing {
    n: u32,
}

impl Thing {
    #[cancellable]
    async fn by_value(self) -> u32 {
        self.n
    }

    #[cancellable]
    async fn by_mut_value(mut self) -> u32 {
        self.n += 1;
        self.n
    }

    #[cancellable(timeout = "1s")]
    async fn by_ref(&self) -> u32 {
        self.n
    }

    #[cancellable(timeout = "1s")]
    async fn by_mut_ref(&mut self, by: u32) -> Result<u32, Error> {
        self.n += by;
        Ok(self.n)
    }

    #[cancellable(timeout = "1s")]
    async fn by_ref_with_lifetime<'a>(&'a self, other: &'a str) -> usize {
        other.len() + self.n as usize
    }

    #[cancellable]
    async fn by_arc(self: Arc<Self>) -> u32 {
        self.n
    }

    #[cancellable]
    async fn by_box(self: Box<Self>) -> u32 {
        self.n
    }

    #[cancellable]
    async fn by_pin(self: Pin<&mut Self>) -> u32 {
        self.n
    }
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let ctx = Context::background();
    let mut thing = Thing::default();
    assert_eq!(thing.by_mut_ref(&ctx, 2).await, Ok(2));
    assert_eq!(thing.by_ref(&ctx).await, Ok(2));
    assert_eq!(thing.by_ref_with_lifetime(&ctx, "ab").await, Ok(4));
    assert_eq!(thing.clone().by_mut_value(&ctx).await, Ok(3));
    assert_eq!(Arc::new(thing.clone()).by_arc(&ctx).await, Ok(2));
    assert_eq!(Box::new(thing.clone()).by_box(&ctx).await, Ok(2));
    assert_eq!(Pin::new(&mut thing.clone()).by_pin(&ctx).await, Ok(2));
    assert_eq!(thing.by_value(&ctx).await, Ok(2));
}
