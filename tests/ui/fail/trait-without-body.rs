// On a trait method without a body, the message must say to declare `ctx: &Context` in the
// trait and put `#[cancellable]` on the impls (or give a default body), pointing at the `;`.
use ctx_core::cancellable;

pub trait Store {
    #[cancellable]
    async fn load(&self, id: u32) -> u32;
}

fn main() {}
