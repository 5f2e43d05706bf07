// On a whole `impl` block, the message must say to put `#[cancellable]` on each `async fn`
// method instead, pointing at `impl`.
use ctx_core::cancellable;

pub struct Loader;

#[cancellable]
impl Loader {
    pub async fn load(&self) {}
}

fn main() {}
