// Type, lifetime and const generics, bounds and `where` clauses are kept.
#![deny(warnings)]

use std::fmt::Display;

use ctx_core::{Context, Error, cancellable};

#[cancellable(timeout = "1s")]
async fn describe<'a, T: Display + Send, const N: usize>(items: &'a [T; N], sep: &'a str) -> String
where
    T: Sync,
{
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}

#[cancellable]
async fn first<'a, 'b: 'a, T>(left: &'a T, _right: &'b T) -> Result<&'a T, Error>
where
    T: PartialEq + ?Sized,
{
    Ok(left)
}

struct Wrapper<T>(T);

impl<T: Clone + Send + Sync> Wrapper<T> {
    #[cancellable]
    async fn get<U>(&self, extra: U) -> (T, U)
    where
        U: Send,
    {
        (self.0.clone(), extra)
    }
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let ctx = Context::background();
    assert_eq!(
        describe(&ctx, &[1, 2, 3], "-").await,
        Ok("1-2-3".to_string())
    );
    assert_eq!(first(&ctx, "a", "b").await, Ok("a"));
    assert_eq!(Wrapper(1u8).get(&ctx, 'x').await, Ok((1, 'x')));
}
