// A body whose value does not match the declared return type: the error must point at the
// user's value, not at the attribute.
use ctx_core::cancellable;

#[cancellable(timeout = "5s")]
pub async fn load(flag: bool) -> u32 {
    if flag {
        return "one";
    }
    2
}

fn main() {}
